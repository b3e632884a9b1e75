"""Paddle backend for `wordrec.recognizer`: a trained model dir served by Paddle Inference (`inference/`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from wordrec.charset import Charset, ctc_greedy_decode
from wordrec.errors import DataError
from wordrec.preprocess import prepare_batch

META_KEYS = ("name", "framework", "arch", "charset", "input")


class PaddleRecognizer:
    """`.probs(NCHW float32) -> NTK` softmax probabilities; `.predict(rgb_images) -> [(text, confidence)]`."""

    def __init__(self, model_dir: str | Path, threads: int = 1):
        from wordrec.paddle_rec.export import paddle_predictor

        self.path = Path(model_dir)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: meta.json not found (not a trained model dir)")
        self.meta = json.loads(meta_path.read_text())
        missing = [k for k in META_KEYS if k not in self.meta]
        if missing:
            raise DataError(f"{meta_path}: meta.json lacks {missing}")
        self.charset = Charset.from_spec(self.meta["charset"])
        self.input = self.meta["input"]
        self._check_dictionary()
        self._run = paddle_predictor(self.path, threads)
        i = self.input
        k = self._run(np.zeros((1, i["channels"], i["height"], i["width"]), np.float32)).shape[-1]
        if k != self.charset.num_classes:
            raise DataError(f"{self.path / 'inference'}: the model has {k} output classes but {meta_path} has a "
                            f"{len(self.charset.chars)}-char charset ({self.charset.num_classes} classes with the "
                            "blank): dictionary and checkpoint disagree")

    def _check_dictionary(self) -> None:
        """inference.yml's character_dict (what PaddleOCR decodes with) must be meta.json's charset."""
        yml = self.path / "inference" / "inference.yml"
        if not yml.is_file():
            raise DataError(f"{yml}: not found (PaddleOCR needs it beside inference.json)")
        chars = "".join(yaml.safe_load(yml.read_text(encoding="utf-8"))["PostProcess"]["character_dict"])
        if chars + " " != self.charset.chars and chars != self.charset.chars:
            raise DataError(f"{yml}: character_dict ({len(chars)} chars) disagrees with the charset in "
                            f"{self.path / 'meta.json'} ({len(self.charset.chars)} chars)")

    def probs(self, x: np.ndarray) -> np.ndarray:
        p = self._run(x)
        if p.ndim != 3 or p.shape[2] != self.charset.num_classes:
            raise DataError(f"{self.path}: model outputs {p.shape}, expected N x T x {self.charset.num_classes}")
        return p

    def decode(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """Greedy CTC; confidence = mean max-probability over the emitted characters (PaddleOCR's rule)."""
        out = []
        for p in probs:
            best, conf = p.argmax(1), p.max(1)
            keep = [t for t in range(len(best)) if best[t] != 0 and (t == 0 or best[t] != best[t - 1])]
            out.append((ctc_greedy_decode(best, self.charset), float(np.mean(conf[keep])) if keep else 0.0))
        return out

    def predict(self, images, batch_size: int = 64) -> list[tuple[str, float]]:
        i, out = self.input, []
        for s in range(0, len(images), batch_size):
            x = prepare_batch(images[s:s + batch_size], i["channels"], i["height"], i["width"], i["keep_ratio"])
            out += self.decode(self.probs(x))
        return out


def load(model_dir: str | Path, threads: int = 1) -> PaddleRecognizer:
    return PaddleRecognizer(model_dir, threads)
