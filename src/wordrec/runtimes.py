"""Model loading and uniform runners (torch, onnxruntime, OpenVINO) for export, quantize and bench.

Every runner has `.probs(x: float32 NCHW) -> float32 NTK` softmax probabilities, the inference contract of
docs/DEVELOPING.md, so parity, accuracy and timing code is written once for all runtimes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wordrec.charset import Charset, ctc_greedy_decode
from wordrec.errors import ConfigError, DataError
from wordrec.metrics import score

META_KEYS = ("name", "framework", "charset", "input")
INPUT_KEYS = ("channels", "height", "width", "keep_ratio")


def read_meta(path: str | Path) -> dict:
    """meta.json of a model dir (or the one beside a model file), checked for the keys every stage needs."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: model not found (expected a model dir or a model file with meta.json beside it)")
    f = path / "meta.json" if path.is_dir() else path.parent / "meta.json"
    if not f.is_file():
        raise DataError(f"{f}: model metadata not found (expected meta.json beside the model)")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{f}: not valid JSON ({e})") from None
    missing = [k for k in META_KEYS if k not in meta] + [f"input.{k}" for k in INPUT_KEYS
                                                         if k not in meta.get("input", {})]
    if missing:
        raise DataError(f"{f}: missing key(s) {missing}")
    return meta


def charset_of(meta: dict) -> Charset:
    return Charset.from_spec(meta["charset"])


def input_shape(meta: dict, batch: int) -> tuple[int, int, int, int]:
    i = meta["input"]
    return (batch, int(i["channels"]), int(i["height"]), int(i["width"]))


def torch_builder():
    """The one place that binds to the crnn helper's model code (patched by tests with tiny stand-ins)."""
    from wordrec.torch_rec.models import InferenceWrapper, build_model

    return build_model, InferenceWrapper


def load_torch(model_dir: str | Path):
    """Trained torch dir -> (eval module returning softmax probabilities, meta)."""
    import torch

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    ckpt = model_dir / "best.pt"
    if not ckpt.is_file():
        raise DataError(f"{ckpt}: checkpoint not found")
    build_model, wrapper = torch_builder()
    i = meta["input"]
    model = build_model(meta["arch"], charset_of(meta).num_classes, int(i["channels"]), int(i["height"]))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    # wordrec.torch_rec checkpoints are {"state_dict", "meta"}; also accept {"model": ...} or a bare state_dict.
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(f"{ckpt}: checkpoint does not fit the model in meta.json: {str(e)[:300]}") from None
    return wrapper(model).eval(), meta


class TorchRunner:
    """`pad_to`: allowed batch sizes for a static-shape (compiled) graph; other batches are padded/chunked."""

    def __init__(self, module, threads: int | None = None, pad_to: tuple[int, ...] = ()):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.module, self.pad_to = module, tuple(sorted(pad_to))

    def probs(self, x: np.ndarray) -> np.ndarray:
        import torch

        n = len(x)
        if self.pad_to and n not in self.pad_to:
            top = self.pad_to[-1]
            if n > top:
                return np.concatenate([self.probs(x[i:i + top]) for i in range(0, n, top)])
            size = next(b for b in self.pad_to if b >= n)
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(x))).numpy()[:n]


class OrtRunner:
    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unreadable/invalid files
            raise DataError(f"{path}: onnxruntime cannot load the model ({str(e).splitlines()[0]})") from None
        self.name = self.sess.get_inputs()[0].name

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.name: np.ascontiguousarray(x, np.float32)})[0]


class OvRunner:
    """OpenVINO on an IR (.xml) or ONNX file; one compiled model serves any batch size (dynamic batch).

    `precision` is what OpenVINO runs the ops that are not INT8 in: "f32" forces float32 (on CPUs with bf16 it
    would otherwise silently run "FP32" models in bf16); "auto" is OpenVINO's own CPU default (bf16 where the CPU
    has it). Callers holding a model's meta pass `ov_precision(meta)`, so bench, predict and the quantize gate all
    run an INT8 IR the way its accuracy was measured."""

    def __init__(self, path: str | Path, threads: int = 1, hint: str = "LATENCY", precision: str = "f32"):
        import openvino as ov

        if precision not in ("f32", "auto"):
            raise ConfigError(f"{path}: openvino precision {precision!r}: expected 'f32' or 'auto'")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise DataError(f"{path}: OpenVINO cannot read the model ({str(e).splitlines()[0]})") from None
        props = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint}
        if precision == "f32":
            props["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model, "CPU", props)
        self.request = self.compiled.create_infer_request()
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.note = (f"ops left out of INT8 run in {self.precision} (OpenVINO's CPU default here)"
                     if precision == "auto" and self.precision != "f32" else None)

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer([np.ascontiguousarray(x, np.float32)])[0].copy()


def ov_precision(meta: dict) -> str:
    """OvRunner's `precision` for a model: what the quantize stage recorded for an INT8 IR, else f32."""
    return meta.get("quantize", {}).get("openvino_precision", "f32")


def batched_probs(runner, x: np.ndarray, batch: int) -> list[np.ndarray]:
    return [runner.probs(x[i:i + batch]) for i in range(0, len(x), batch)]


def decode(probs: np.ndarray, charset: Charset) -> list[str]:
    return [ctc_greedy_decode(row, charset) for row in probs.argmax(-1)]


def predict(runner, x: np.ndarray, charset: Charset, batch: int = 32) -> list[str]:
    return [t for p in batched_probs(runner, x, batch) for t in decode(p, charset)]


def accuracy(preds: list[str], labels: list[str], charset: Charset) -> float:
    """Word accuracy in percent, defined as `evaluate` does: exact match with the label mapped into the model's
    charset (`Charset.filter`), so quantize/bench figures line up with reports/eval.json."""
    if not labels:
        return float("nan")
    return 100.0 * score(preds, [charset.filter(t) for t in labels])["accuracy"]


def accuracy_alnum_ci(preds: list[str], labels: list[str]) -> float:
    """Percent exact matches ignoring case and non-alphanumerics: fair across charsets (and peer OCRs)."""
    return 100.0 * score(preds, labels)["accuracy_alnum_ci"] if labels else float("nan")
