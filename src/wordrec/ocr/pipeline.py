"""Detect every text line of an image, crop it upright and read it with a recognizer.

The recognizer is anything with `.predict(list_of_rgb_uint8) -> [(text, confidence)]` (e.g. what
`wordrec.infer.recognizer.load(path)` returns). Reads and writes nothing but the arrays passed in.
"""

from __future__ import annotations

import numpy as np

from wordrec.ocr.crop import crop_quad


def _box_list(box: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in box]


def detect_lines(detector, rgb: np.ndarray, where: str = "image") -> list[dict]:
    """Detection only: [{"box": [[x, y] x 4], "det_score"}] in reading order."""
    boxes, scores = detector(rgb, where)
    return [{"box": _box_list(b), "det_score": round(float(s), 4)} for b, s in zip(boxes, scores)]


def read_image(detector, recognizer, rgb: np.ndarray, where: str = "image") -> list[dict]:
    """[{"box": [[x, y] x 4], "text", "confidence", "det_score"}] for every line whose crop is not degenerate.

    A detector with `fit` (wordrec.ocr.detect.Detector) may scale an oversized image down first (its `resize`
    option): lines are then read on the scaled image and their boxes given in the original image's pixels."""
    rgb, scale = detector.fit(rgb, where) if hasattr(detector, "fit") else (rgb, 1.0)
    lines, crops = [], []
    for line in detect_lines(detector, rgb, where):
        crop = crop_quad(rgb, np.array(line["box"], np.float32))
        if crop is not None:
            lines.append(line)
            crops.append(crop)
    if not crops:
        return []
    out = []
    for line, (text, conf) in zip(lines, recognizer.predict(crops)):
        box = line["box"] if scale == 1.0 else _box_list(np.array(line["box"], np.float32) / scale)
        out.append({"box": box, "text": text, "confidence": round(float(conf), 4),
                    "det_score": line["det_score"]})
    return out
