"""Load any trained/exported recognizer behind one interface.

    rec = wordrec.recognizer.load(path)
    rec.probs(x)                     # float32 N x C x H x W -> N x T x K softmax probabilities
    rec.predict(rgb_images, 64)      # -> [(text, confidence)]

`path` is a model dir (dispatched on meta.json `framework`) or a model file (dispatched on its suffix, with
meta.json beside it). Other backends register themselves here (`register_framework` / `register_suffix`);
a loader may be given as "module:function" so heavy frameworks are imported only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import numpy as np

from wordrec.charset import Charset, ctc_greedy_decode
from wordrec.errors import DataError
from wordrec.preprocess import prepare_batch
from wordrec.runtimes import read_meta  # the one meta.json reader: checks the keys every stage needs

META_KEYS = ("name", "framework", "arch", "charset", "input")


class Recognizer:
    """Base class: subclasses implement `probs`; decoding and batching are shared."""

    def __init__(self, meta: dict, where: Path):
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise DataError(f"{where}: meta.json lacks {missing}")
        self.meta, self.path = meta, where
        self.charset = Charset.from_spec(meta["charset"])
        self.input = meta["input"]

    def probs(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, images) -> np.ndarray:
        i = self.input
        return prepare_batch(images, i["channels"], i["height"], i["width"], i["keep_ratio"])

    def check_probs(self, p: np.ndarray) -> np.ndarray:
        if p.ndim != 3 or p.shape[2] != self.charset.num_classes:
            raise DataError(f"{self.path}: model outputs {p.shape}, expected N x T x {self.charset.num_classes} "
                            f"for its {len(self.charset.chars)}-char charset")
        return p

    def decode(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """Greedy CTC; confidence = mean max-probability over the emitted characters (PaddleOCR's rule)."""
        out = []
        for p in probs:
            best, conf = p.argmax(1), p.max(1)
            keep = [t for t in range(len(best)) if best[t] != 0 and (t == 0 or best[t] != best[t - 1])]
            text = ctc_greedy_decode(best, self.charset)
            out.append((text, float(np.mean(conf[keep])) if keep else 0.0))
        return out

    def predict(self, images, batch_size: int = 64) -> list[tuple[str, float]]:
        out = []
        for s in range(0, len(images), batch_size):
            out += self.decode(self.probs(self.prepare(images[s:s + batch_size])))
        return out


class TorchRecognizer(Recognizer):
    def __init__(self, model_dir: Path, weights: str = "best.pt"):
        import torch

        from wordrec.torch_rec.models import InferenceWrapper, build_model
        from wordrec.torch_rec.train import load_weights

        super().__init__(read_meta(model_dir / "meta.json"), model_dir)
        i = self.input
        model = build_model(self.meta["arch"], self.charset.num_classes, i["channels"], i["height"])
        load_weights(model, model_dir / weights, self.charset)
        self.model = InferenceWrapper(model).eval()
        self._torch = torch

    def probs(self, x):
        with self._torch.no_grad():
            return self.check_probs(self.model(self._torch.from_numpy(np.ascontiguousarray(x))).numpy())


class OnnxRecognizer(Recognizer):
    def __init__(self, path: Path):
        import onnxruntime as ort

        super().__init__(read_meta(path.parent / "meta.json"), path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # deterministic and polite on the shared box; callers batch instead
        try:
            self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unreadable files
            raise DataError(f"{path}: onnxruntime cannot load it: {e}") from None
        self.input_name = self.sess.get_inputs()[0].name

    def probs(self, x):
        return self.check_probs(self.sess.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0])


Loader = Callable[[Path], Recognizer] | str
FRAMEWORKS: dict[str, Loader] = {"torch": TorchRecognizer, "paddle": "wordrec.paddle_rec.recognizer:load"}
SUFFIXES: dict[str, Loader] = {".onnx": OnnxRecognizer, ".xml": "wordrec.ov_backend:OpenVINORecognizer"}


def register_framework(name: str, loader: Loader) -> None:
    """Model dirs whose meta.json says `framework: name` are loaded with `loader(path)`."""
    FRAMEWORKS[name] = loader


def register_suffix(suffix: str, loader: Loader) -> None:
    """Model files ending in `suffix` (e.g. ".xml") are loaded with `loader(path)`."""
    SUFFIXES[suffix] = loader


def _call(loader: Loader, path: Path) -> Recognizer:
    if isinstance(loader, str):
        mod, fn = loader.split(":")
        try:
            loader = getattr(importlib.import_module(mod), fn)
        except ImportError as e:
            raise DataError(f"{path}: its backend {mod} is not available: {e}") from None
    return loader(path)


def load(path: str | Path) -> Recognizer:
    path = Path(path)
    if path.is_dir():
        meta = read_meta(path / "meta.json")
        fw = meta.get("framework")
        if fw not in FRAMEWORKS:
            raise DataError(f"{path}/meta.json: unknown framework {fw!r}; known: {sorted(FRAMEWORKS)}")
        return _call(FRAMEWORKS[fw], path)
    if path.suffix in SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: model file not found")
        return _call(SUFFIXES[path.suffix], path)
    raise DataError(f"{path}: not a model dir with meta.json nor a model file ({', '.join(sorted(SUFFIXES))})")
