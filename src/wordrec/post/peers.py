"""Off-the-shelf recognizers run on the same word crops, so users see where their model stands.

Both are optional: Tesseract (Debian `tesseract-ocr`, one word per image: `--psm 8`) and the PP-OCRv4 recognizer
ONNX shipped inside the `rapidocr_onnxruntime` wheel (its recognizer only, offline; its dictionary has ~6.6k
classes). Each peer is a callable list_of_rgb -> list of texts, or None when not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np


class Tesseract:
    name = "tesseract"
    runtime = "tesseract-lstm"
    batched = False  # one process per image: its latency includes process start-up, as users would call it

    def __init__(self, threads: int = 1):
        self.env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}

    @staticmethod
    def available() -> bool:
        return shutil.which("tesseract") is not None

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        out = []
        for im in images:
            ok, png = cv2.imencode(".png", cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
            r = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "8"], input=png.tobytes(),
                               capture_output=True, env=self.env, check=True)
            out.append(r.stdout.decode("utf-8", "replace").strip())
        return out


class RapidOCR:
    name = "rapidocr_ppocrv4"
    runtime = "onnxruntime-fp32"
    batched = True

    def __init__(self, threads: int = 1, batch: int = 32):
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_rec.text_recognize import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        pkg = Path(rapidocr_onnxruntime.__file__).parent
        cfg = read_yaml(str(pkg / "config.yaml"))["Rec"]
        cfg.update(model_path=str(pkg / cfg["model_path"]), intra_op_num_threads=threads, inter_op_num_threads=1,
                   rec_batch_num=batch)
        self.rec = TextRecognizer(cfg)

    @staticmethod
    def available() -> bool:
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        res, _ = self.rec([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images])
        return [t for t, _ in res]


PEERS = {"tesseract": Tesseract, "rapidocr": RapidOCR}
