"""Paddle backend for `wordrec.recognizer`: a trained model dir served by Paddle Inference (`inference/`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from wordrec.errors import DataError
from wordrec.recognizer import Recognizer, read_meta


class PaddleRecognizer(Recognizer):
    """A trained Paddle model dir served by Paddle Inference; decoding and batching come from `Recognizer`."""

    def __init__(self, model_dir: str | Path, threads: int = 1):
        from wordrec.paddle_rec.export import paddle_predictor

        model_dir = Path(model_dir)
        meta_path = model_dir / "meta.json"
        super().__init__(read_meta(meta_path), model_dir)
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
        return self.check_probs(self._run(x))


def load(model_dir: str | Path, threads: int = 1) -> PaddleRecognizer:
    return PaddleRecognizer(model_dir, threads)
