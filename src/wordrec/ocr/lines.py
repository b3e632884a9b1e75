"""Read whole text lines at their own width, as PaddleOCR's rec does, instead of squashing them into 320 px.

A model dir's `meta.json` fixes the input at C x H x W (the imported PP-OCR recognizers: 3 x 48 x 320, T = 40 CTC
steps): a 40-character line resized to height 48 is ~900 px wide, and squeezed into 320 px it loses characters
(measured on the `pages` stage's rendered pages: line CER 0.32 with ppocrv6_small, docs/ocr.md). PP-OCRv4 and v6
compute on any width (T = W / 8), so `LineRecognizer` declares the width symbolic and runs each batch at
max(W, the widest crop's width at height H), right-padded with 0 like `wordrec.data.preprocess.prepare`.

    rec = load_line_reader("models/pretrained/ppocrv6_small")      # ONNX model dir, .onnx or OpenVINO .xml
    rec.predict(list_of_rgb_line_crops) -> [(text, confidence)]

Reads the model files; writes nothing. A model whose graph does not compute on other widths (PP-OCRv3: a Reshape
folded to T = 40; any keep_ratio=False model such as our CRNN at 32x100) is read through `SplitLines`: a crop too
wide for its input is cut at its widest blank gaps (word spaces) and the pieces' texts joined with a space.
`line_width(rec)` says which ("dynamic" or "fixed WxH, split at gaps").
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from wordrec.errors import DataError, one_line
from wordrec.infer.decode import decode
from wordrec.models.meta import ModelMeta

class FixedWidth(DataError):
    """The model reads but does not compute on other widths (a fixed sequence length in the graph)."""


MAX_RATIO = 40  # widest crop read at its own width: 40 x height (1,920 px at 48); wider crops are squeezed to it


def model_file(path: Path, meta: ModelMeta) -> Path | None:
    """The ONNX / OpenVINO file behind `path` (a framework-onnx model dir or a model file), else None."""
    if path.is_dir():
        return path / "model.onnx" if meta.framework == "onnx" else None
    return path if path.suffix in (".onnx", ".xml") else None


class _OrtDynamic:
    def __init__(self, path: Path, threads: int):
        import onnx
        import onnxruntime as ort

        try:
            model = onnx.load(str(path))
        except Exception as e:  # protobuf raises its own DecodeError for garbage
            raise DataError(f"{path}: onnx cannot read the model (corrupt or not ONNX? {one_line(e)})") from None
        dims = model.graph.input[0].type.tensor_type.shape.dim
        if len(dims) != 4:
            raise DataError(f"{path}: input has {len(dims)} dims, expected N x C x H x W")
        dims[3].Clear()
        dims[3].dim_param = "W"
        for out in model.graph.output:  # T follows W; a fixed T would make onnxruntime warn on every call
            odims = out.type.tensor_type.shape.dim
            if len(odims) == 3:
                odims[1].Clear()
                odims[1].dim_param = "T"
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types
            raise DataError(f"{path}: onnxruntime cannot load the model ({one_line(e)})") from None
        self.name = self.sess.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.name: np.ascontiguousarray(x, np.float32)})[0]


class _OvDynamic:
    def __init__(self, path: Path, threads: int, precision: str):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError for truncated/garbage IR or weights
            raise DataError(f"{path}: OpenVINO cannot read the model (corrupt? {one_line(e)})") from None
        try:
            shape = model.inputs[0].get_partial_shape()
            model.reshape({model.inputs[0]: ov.PartialShape([-1, shape[1], shape[2], -1])})
            props = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            if precision == "f32":
                props["INFERENCE_PRECISION_HINT"] = "f32"
            self.compiled = core.compile_model(model, "CPU", props)
        except Exception as e:  # OpenVINO raises RuntimeError for unreadable IR or shapes it cannot take
            raise FixedWidth(f"{path}: OpenVINO cannot run the model at a dynamic width ({one_line(e)})") from None
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer([np.ascontiguousarray(x, np.float32)])[0].copy()


class LineRecognizer:
    """`.predict(rgb crops, batch_size) -> [(text, confidence)]`, each batch at its widest crop's width."""

    line_width = "dynamic"

    def __init__(self, path: str | Path, threads: int = 1, meta: ModelMeta | None = None, batch_size: int = 16):
        path = Path(path)
        self.batch_size = batch_size
        self.meta = meta or ModelMeta.load(path)
        self.where = str(path)
        f = model_file(path, self.meta)
        if f is None or not self.meta.input.keep_ratio:
            raise DataError(f"{path}: not an ONNX/OpenVINO recognizer with keep_ratio input (cannot read lines at "
                            "their own width)")
        if not f.is_file():
            raise DataError(f"{f}: not found")
        if f.suffix == ".xml":
            from wordrec.infer.runners import ov_precision

            self.run = _OvDynamic(f, threads, ov_precision(self.meta))
        else:
            self.run = _OrtDynamic(f, threads)
        self.check_width()

    def check_width(self) -> None:
        """The graph must compute on other widths, one CTC step per W/T pixels: probe W and 2W."""
        s = self.meta.input
        t = []
        for w in (s.width, 2 * s.width):
            try:
                p = self.run(np.zeros((1, s.channels, s.height, w), np.float32))
            except Exception as e:  # noqa: BLE001 - ORT/OpenVINO raise their own types on a shape they cannot take
                raise FixedWidth(f"{self.where}: the graph does not run at width {w} ({one_line(e)})") from None
            if p.ndim != 3 or p.shape[0] != 1 or p.shape[2] != self.meta.charset.num_classes:
                kind = DataError if w == s.width else FixedWidth  # wrong at its own width: a broken model
                raise kind(f"{self.where}: at width {w} the model outputs {p.shape}, expected 1 x T x "
                           f"{self.meta.charset.num_classes}")
            t.append(p.shape[1])
        if t[1] != 2 * t[0]:
            raise FixedWidth(f"{self.where}: CTC steps do not follow the width ({t[0]} at {s.width} px, {t[1]} at "
                            f"{2 * s.width}): the graph has a fixed sequence length")

    def prepare(self, images) -> np.ndarray:
        """RGB crops -> N x C x H x Wb: each resized to height H keeping its ratio (at most MAX_RATIO), BGR if the
        model wants it, (x/255-0.5)/0.5, right-padded with 0 to Wb = max(W, widest crop), a multiple of 8."""
        s = self.meta.input
        widths = [min(MAX_RATIO * s.height, max(1, math.ceil(im.shape[1] * s.height / max(1, im.shape[0]))))
                  for im in images]
        wb = max(s.width, int(math.ceil(max(widths) / 8)) * 8)
        out = np.zeros((len(images), s.channels, s.height, wb), np.float32)
        for i, (im, w) in enumerate(zip(images, widths)):
            if s.channels == 1:
                im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None]
            elif s.channel_order == "bgr":
                im = im[..., ::-1]
            x = cv2.resize(np.ascontiguousarray(im), (w, s.height), interpolation=cv2.INTER_LINEAR)
            if x.ndim == 2:
                x = x[..., None]
            out[i, :, :, :w] = ((x.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
        return out

    def predict(self, images, batch_size: int | None = None) -> list[tuple[str, float]]:
        """Crops sorted by aspect ratio so each batch pads little (PaddleOCR's order), results in input order."""
        batch_size = batch_size or self.batch_size
        order = sorted(range(len(images)), key=lambda i: images[i].shape[1] / max(1, images[i].shape[0]))
        out: list = [None] * len(images)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            probs = self.run(self.prepare([images[i] for i in idx]))
            for i, r in zip(idx, decode(probs, self.meta.charset)):
                out[i] = r
        return out


def blank_runs(crop: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] column runs of `crop` (RGB) with no ink: ink is a pixel further than max(24, half the
    largest distance) in gray level from the background (the median of the crop's border pixels)."""
    g = crop.astype(np.float32).mean(2) if crop.ndim == 3 else crop.astype(np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    d = np.abs(g - np.median(border))
    ink = (d > max(24.0, 0.5 * float(d.max()))).sum(0) > 0
    runs, start = [], None
    for x, v in enumerate(ink):
        if not v and start is None:
            start = x
        elif v and start is not None:
            runs.append((start, x))
            start = None
    if start is not None:
        runs.append((start, len(ink)))
    return [(a, b) for a, b in runs if a > 0 and b < len(ink)]  # gaps between ink, not the margins


def split_at_gaps(crop: np.ndarray, max_ratio: float) -> list[np.ndarray]:
    """Cut a line crop wider than `max_ratio` x its height at its widest blank gap in the middle 60 % (else the
    widest anywhere), recursively, until each piece fits or has no gap left: word spaces are the widest gaps."""
    h, w = crop.shape[:2]
    if w <= max_ratio * h:
        return [crop]
    runs = blank_runs(crop)
    middle = [r for r in runs if 0.2 * w <= (r[0] + r[1]) / 2 <= 0.8 * w] or runs
    if not middle:
        return [crop]
    a, b = max(middle, key=lambda r: r[1] - r[0])
    cut = (a + b) // 2
    return split_at_gaps(crop[:, :cut], max_ratio) + split_at_gaps(crop[:, cut:], max_ratio)


STRETCH = 1.5  # keep_ratio=False pieces may be this many times wider than the input ratio (docs/ocr.md)


class SplitLines:
    """A fixed-width recognizer made a line reader: each crop wider than the model's input ratio is cut at word
    gaps (`split_at_gaps`), the pieces read in one batch and joined with a space."""

    def __init__(self, rec, batch_size: int = 64):
        self.rec, self.meta, self.batch_size = rec, rec.meta, batch_size
        s = rec.meta.input
        # keep_ratio models (PP-OCRv3) pad up to their width; stretching ones (CRNN 32x100) were trained on words
        # of any length squeezed to their width, so they are cut only at the wider gaps: roughly one word a piece
        self.max_ratio = s.width / s.height * (1 if s.keep_ratio else STRETCH)

    def predict(self, images, batch_size: int | None = None) -> list[tuple[str, float]]:
        pieces = [split_at_gaps(np.ascontiguousarray(im), self.max_ratio) for im in images]
        flat = self.rec.predict([p for ps in pieces for p in ps], batch_size or self.batch_size)
        out, i = [], 0
        for ps in pieces:
            got = flat[i:i + len(ps)]
            i += len(ps)
            texts = [t.strip() for t, _ in got if t.strip()]
            conf = float(np.mean([c for t, c in got if t.strip()])) if texts else 0.0
            out.append((" ".join(texts), conf))
        return out


def load_line_reader(path: str | Path, threads: int = 1, batch_size: int = 16):
    """A LineRecognizer when the model computes on any width, else the fixed-width Recognizer behind SplitLines
    (`line_width` tells which). Errors reading the model itself (missing, corrupt) are raised either way."""
    from wordrec.infer import recognizer

    path = Path(path)
    meta = ModelMeta.load(path)
    f = model_file(path, meta)
    if f is not None and meta.input.keep_ratio and f.is_file():
        try:
            return LineRecognizer(path, threads, meta, batch_size)
        except FixedWidth:
            pass
    return SplitLines(recognizer.load(path, threads, meta=meta), batch_size)


def line_width(rec) -> str:
    """"dynamic" for a LineRecognizer, "fixed WxH, split at gaps" for SplitLines, "fixed WxH" otherwise."""
    if isinstance(rec, LineRecognizer):
        return "dynamic"
    s = rec.meta.input
    return f"fixed {s.width}x{s.height}" + (", split at gaps" if isinstance(rec, SplitLines) else "")
