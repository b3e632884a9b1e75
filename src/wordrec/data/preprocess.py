"""Image -> model input, shared by training, evaluation, export parity, calibration and the MCU runner.

Normalisation is PaddleOCR's: (x / 255 - 0.5) / 0.5, so pixels land in [-1, 1] and right padding is 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def prepare(img: np.ndarray, spec) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 CxHxW for an input spec (models.meta.InputSpec, or a config section with the
    same keys: channels, height, width, keep_ratio, optional channel_order rgb|bgr).

    keep_ratio=False stretches to width x height (classic CRNN 32x100); keep_ratio=True resizes to the height,
    keeps the aspect ratio up to `width` and pads the right side with zeros (PP-OCR rec). channel_order bgr feeds
    the channels reversed (PaddleOCR's pretrained weights saw cv2's BGR decode).
    """
    channels, height, width = int(spec.channels), int(spec.height), int(spec.width)
    keep_ratio = bool(spec.keep_ratio)
    if channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    elif getattr(spec, "channel_order", "rgb") == "bgr":
        img = img[..., ::-1]
    h, w = img.shape[:2]
    new_w = min(width, max(1, math.ceil(w * height / h))) if keep_ratio else width
    x = cv2.resize(img, (new_w, height), interpolation=cv2.INTER_LINEAR)
    if x.ndim == 2:
        x = x[..., None]
    x = (x.astype(np.float32) / 255.0 - 0.5) / 0.5
    out = np.zeros((channels, height, width), np.float32)
    out[:, :, :new_w] = x.transpose(2, 0, 1)
    return out


def prepare_batch(images, spec) -> np.ndarray:
    return np.stack([prepare(im, spec) for im in images])
