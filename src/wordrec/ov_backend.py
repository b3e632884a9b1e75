"""OpenVINO backend for `wordrec.recognizer`: an IR (.xml + .bin) or ONNX file with its meta.json beside it.

Decoding, confidence and batching come from `wordrec.recognizer.Recognizer`, like every other backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.errors import DataError
from wordrec.recognizer import Recognizer
from wordrec.runtimes import OvRunner, ov_precision, read_meta


class OpenVINORecognizer(Recognizer):
    suffixes = (".xml", ".onnx")

    def __init__(self, path: str | Path, threads: int = 1):
        path = Path(path)
        if path.suffix not in self.suffixes:
            raise DataError(f"{path}: OpenVINO backend expects one of {self.suffixes}")
        if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise DataError(f"{path}: IR weights {path.with_suffix('.bin').name} not found beside it")
        super().__init__(read_meta(path), path)
        self._runner = OvRunner(path, threads, precision=ov_precision(self.meta))

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self.check_probs(self._runner.probs(x))
