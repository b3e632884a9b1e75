"""OpenVINO backend for `wordrec.recognizer`: an IR (.xml + .bin) or ONNX file with its meta.json beside it.

Same surface as the other recognizers: `.meta`, `.charset`, `.probs(NCHW) -> NTK`, `.predict(list_of_rgb)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.errors import DataError
from wordrec.evalsets import tensors
from wordrec.runtimes import OvRunner, charset_of, decode, read_meta


class OpenVINORecognizer:
    suffixes = (".xml", ".onnx")

    def __init__(self, path: str | Path, threads: int = 1):
        path = Path(path)
        if path.suffix not in self.suffixes:
            raise DataError(f"{path}: OpenVINO backend expects one of {self.suffixes}")
        if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise DataError(f"{path}: IR weights {path.with_suffix('.bin').name} not found beside it")
        self.path = path
        self.meta = read_meta(path)
        self.charset = charset_of(self.meta)
        self._runner = OvRunner(path, threads)

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self._runner.probs(x)

    def predict(self, images: list[np.ndarray], batch_size: int = 32) -> list[tuple[str, float]]:
        out = []
        for i in range(0, len(images), batch_size):
            p = self.probs(tensors(images[i:i + batch_size], self.meta))
            # Confidence: mean over frames of the best class probability, as the other backends report it.
            conf = p.max(-1).mean(-1)
            out += list(zip(decode(p, self.charset), map(float, conf)))
        return out
