"""Perspective crop of a detected quadrilateral to an upright text-line image (PP-OCR's get_rotate_crop_image)."""

from __future__ import annotations

import cv2
import numpy as np

TALL = 1.5  # height/width at which PP-OCR assumes vertical text and turns the crop


def crop_quad(rgb: np.ndarray, box: np.ndarray, min_side: int = 2) -> np.ndarray | None:
    """Warp the 4x2 `box` (clockwise from top-left) of `rgb` to an axis-aligned crop; None if degenerate.

    The output size is the longer of each pair of opposite edges; tall crops (h/w >= 1.5) are rotated 90° counter-
    clockwise so the recognizer sees a horizontal line. Degenerate means a side under `min_side` pixels."""
    box = np.asarray(box, np.float32).reshape(4, 2)
    if not np.isfinite(box).all():
        return None
    w = int(round(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[3] - box[2]))))
    h = int(round(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2]))))
    if min(w, h) < min_side:
        return None
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(box, dst)
    out = cv2.warpPerspective(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if h / w >= TALL:
        out = np.ascontiguousarray(np.rot90(out))
    return out
