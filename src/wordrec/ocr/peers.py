"""Off-the-shelf whole-image OCR on the same pages, returning `read_image`'s structure so one scorer fits all.

- `RapidOCRPage`: rapidocr_onnxruntime's own pipeline (PP-OCRv4 det + angle classifier + PP-OCRv4 rec, ONNX,
  offline, models from its wheel). Reads no files besides its wheel's models.
- `TesseractPage`: Debian `tesseract-ocr`, `--psm 3` (automatic page segmentation), TSV output; words are grouped
  into lines by (block, paragraph, line) number and a line's box is the union of its words' boxes.

Each is a callable `rgb -> [{"box", "text", "confidence", "det_score"}]`; det_score is None (neither exposes one).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import cv2
import numpy as np

from wordrec.errors import ConfigError, DataError


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


class RapidOCRPage:
    name = "rapidocr_ppocrv4"

    def __init__(self, threads: int = 1):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise ConfigError("rapidocr_onnxruntime is not installed "
                              "(pip install rapidocr-onnxruntime==1.4.4)") from None
        self.ocr = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def __call__(self, rgb: np.ndarray) -> list[dict]:
        result, _ = self.ocr(np.ascontiguousarray(rgb[:, :, ::-1]))  # it expects BGR, as cv2 decodes
        return [{"box": [[round(float(x), 1), round(float(y), 1)] for x, y in box], "text": text,
                 "confidence": round(float(conf), 4), "det_score": None} for box, text, conf in (result or [])]


class TesseractPage:
    name = "tesseract_psm3"

    def __init__(self, threads: int = 1, lang: str = "eng"):
        if shutil.which("tesseract") is None:
            raise ConfigError("tesseract not found on PATH (Debian package tesseract-ocr)")
        self.env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
        self.lang = lang

    def __call__(self, rgb: np.ndarray) -> list[dict]:
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise DataError("cannot encode the image for tesseract")
        r = subprocess.run(["tesseract", "stdin", "stdout", "-l", self.lang, "--psm", "3", "tsv"],
                           input=png.tobytes(), capture_output=True, env=self.env)
        if r.returncode != 0:
            raise DataError(f"tesseract failed: {r.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:]}")
        return parse_tsv(r.stdout.decode("utf-8", "replace"))


def parse_tsv(tsv: str) -> list[dict]:
    """Tesseract TSV -> one entry per text line (level-5 words grouped by block/par/line), in output order."""
    rows = [line.split("\t") for line in tsv.splitlines()]
    if not rows:
        return []
    head = {k: i for i, k in enumerate(rows[0])}
    lines: dict[tuple, dict] = {}
    for row in rows[1:]:
        if len(row) != len(head) or row[head["level"]] != "5" or not row[head["text"]].strip():
            continue
        key = tuple(int(row[head[k]]) for k in ("page_num", "block_num", "par_num", "line_num"))
        x, y, w, h = (int(row[head[k]]) for k in ("left", "top", "width", "height"))
        ln = lines.setdefault(key, {"words": [], "confs": [], "x0": x, "y0": y, "x1": x + w, "y1": y + h})
        ln["words"].append(row[head["text"]].strip())
        ln["confs"].append(max(0.0, float(row[head["conf"]])) / 100.0)
        ln["x0"], ln["y0"] = min(ln["x0"], x), min(ln["y0"], y)
        ln["x1"], ln["y1"] = max(ln["x1"], x + w), max(ln["y1"], y + h)
    return [{"box": _rect(float(v["x0"]), float(v["y0"]), float(v["x1"]), float(v["y1"])),
             "text": " ".join(v["words"]), "confidence": round(float(np.mean(v["confs"])), 4), "det_score": None}
            for v in lines.values()]


PAGE_PEERS = {"rapidocr": RapidOCRPage, "tesseract": TesseractPage}
