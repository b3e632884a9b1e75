"""BDA-style photometric degradations (blur, noise, compression, low resolution, inversion) via albumentations.

Shared by the synthetic generator and by on-the-fly training augmentation, so both use one definition.
"""

from __future__ import annotations

import albumentations as A


def build_bda(cfg) -> A.Compose:
    """`cfg` holds one probability per transform (0 disables it)."""
    return A.Compose(
        [
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7)), A.Defocus(radius=(1, 2))],
                p=cfg.blur,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.4, p=cfg.contrast),
            A.HueSaturationValue(p=cfg.color),
            A.Downscale(scale_range=(0.4, 0.8), p=cfg.downscale),
            A.GaussNoise(std_range=(0.02, 0.12), p=cfg.noise),
            A.ImageCompression(quality_range=(20, 80), p=cfg.jpeg),
            A.InvertImg(p=cfg.invert),
            A.ToGray(p=cfg.gray),
        ]
    )
