"""A Recognizer = a model's meta + a runner: it owns preprocessing, decoding and confidence for every backend.

    rec = wordrec.infer.recognizer.load(path)      # model dir (torch/paddle/onnx) or model file (.onnx/.xml/.so)
    rec.probs(x)                                   # float32 N x C x H x W -> N x T x K probabilities (checked)
    rec.predict(rgb_images, 64)                    # -> [(text, confidence)]
    rec.predict_tensors(x, 32)                     # already-preprocessed tensors -> [(text, confidence)]

`Recognizer(meta, runner)` wraps any runner (wordrec.infer.runners), so stages that hold a runner of their own
(an INT8 model being gated, the device's outputs) decode exactly as `wordrec-predict` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.data.preprocess import prepare_batch
from wordrec.errors import DataError
from wordrec.infer.decode import decode
from wordrec.infer.runners import MODEL_SUFFIXES, Runner, runner_for
from wordrec.models.meta import ModelMeta


class Recognizer:
    def __init__(self, meta: ModelMeta, runner: Runner, where: str | Path | None = None):
        self.meta, self.runner = meta, runner
        self.charset = meta.charset
        self.where = str(where or meta.path or meta.name)

    def prepare(self, images) -> np.ndarray:
        return prepare_batch(images, self.meta.input)

    def probs(self, x: np.ndarray) -> np.ndarray:
        p = self.runner.probs(x)
        if p.ndim != 3 or p.shape[0] != len(x) or p.shape[2] != self.charset.num_classes:
            raise DataError(f"{self.where}: model outputs {p.shape}, expected {len(x)} x T x "
                            f"{self.charset.num_classes} for its {len(self.charset.chars)}-char charset")
        return p

    def decode(self, probs: np.ndarray) -> list[tuple[str, float]]:
        return decode(probs, self.charset)

    def predict_tensors(self, x: np.ndarray, batch_size: int = 64) -> list[tuple[str, float]]:
        out = []
        for s in range(0, len(x), batch_size):
            out += self.decode(self.probs(x[s:s + batch_size]))
        return out

    def predict(self, images, batch_size: int = 64) -> list[tuple[str, float]]:
        out = []
        for s in range(0, len(images), batch_size):
            out += self.predict_tensors(self.prepare(images[s:s + batch_size]), batch_size)
        return out


def load(path: str | Path, threads: int = 1, meta: ModelMeta | None = None) -> Recognizer:
    """Recognizer for a model dir or model file; `meta` when the caller already holds it (no second read)."""
    path = Path(path)
    if path.is_file() and path.suffix not in MODEL_SUFFIXES:
        raise DataError(f"{path}: not a model dir nor a model file ({', '.join(MODEL_SUFFIXES)} with meta.json "
                        "beside it)")
    meta = meta or ModelMeta.load(path)
    return Recognizer(meta, runner_for(path, meta, threads), path)
