"""Image -> model input, shared by training, evaluation, export parity, calibration and the MCU runner.

Normalisation is PaddleOCR's: (x / 255 - 0.5) / 0.5, so pixels land in [-1, 1] and right padding is 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def prepare(img: np.ndarray, channels: int, height: int, width: int, keep_ratio: bool) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 CxHxW.

    keep_ratio=False stretches to width x height (classic CRNN 32x100); keep_ratio=True resizes to the height,
    keeps the aspect ratio up to `width` and pads the right side with zeros (PP-OCR rec).
    """
    if channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    h, w = img.shape[:2]
    new_w = min(width, max(1, math.ceil(w * height / h))) if keep_ratio else width
    x = cv2.resize(img, (new_w, height), interpolation=cv2.INTER_LINEAR)
    if x.ndim == 2:
        x = x[..., None]
    x = (x.astype(np.float32) / 255.0 - 0.5) / 0.5
    out = np.zeros((channels, height, width), np.float32)
    out[:, :, :new_w] = x.transpose(2, 0, 1)
    return out


def prepare_batch(images, channels: int, height: int, width: int, keep_ratio: bool) -> np.ndarray:
    return np.stack([prepare(im, channels, height, width, keep_ratio) for im in images])
