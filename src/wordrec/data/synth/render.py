"""Render one word image the way trdg/SynthText do: font, colours, background, geometry, then BDA.

Everything random comes from the numpy Generator passed in, so a (seed, split, index) triple always yields
the same image whichever worker renders it.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont


@lru_cache(maxsize=4096)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _colors(rng, min_contrast: float):
    """Background and text colours at least `min_contrast` apart in luma (0-255), so text stays legible."""
    for _ in range(50):
        bg = rng.integers(0, 256, 3)
        fg = rng.integers(0, 256, 3)
        if rng.random() < 0.5:  # scene text is often near-monochrome: dark on light or light on dark
            v = rng.integers(0, 70)
            fg = np.array([v, v, v]) + rng.integers(0, 30, 3) if _luma(bg) > 128 else 255 - np.array([v, v, v]) - rng.integers(0, 30, 3)
        if abs(_luma(bg) - _luma(fg)) >= min_contrast:
            return bg.clip(0, 255), fg.clip(0, 255)
    return np.array([255, 255, 255]), np.array([0, 0, 0])


def _background(h: int, w: int, bg, rng) -> np.ndarray:
    kind = rng.choice(4, p=[0.35, 0.25, 0.25, 0.15])
    base = np.empty((h, w, 3), np.float32)
    base[:] = bg
    if kind == 1:  # linear gradient
        other = np.clip(bg + rng.normal(0, 40, 3), 0, 255)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        t = t[None, :, None] if len(t) == w else t[:, None, None]
        base = base * (1 - t) + other * t
    elif kind == 2:  # low-frequency blotches (paper, walls, signs)
        small = rng.normal(0, rng.uniform(8, 30), (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        base += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 3:  # clutter: lines and rectangles behind the text
        img = np.ascontiguousarray(base)
        for _ in range(rng.integers(1, 5)):
            col = tuple(float(x) for x in np.clip(bg + rng.normal(0, 50, 3), 0, 255))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            if rng.random() < 0.5:
                cv2.line(img, p1, p2, col, int(rng.integers(1, 3)))
            else:
                cv2.rectangle(img, p1, p2, col, -1)
        base = img
    base += rng.normal(0, rng.uniform(0, 6), base.shape).astype(np.float32)
    return base


def render_text(text: str, font_path: str, rng, cfg, context: tuple[str, ...] = ()) -> np.ndarray:
    """Draw `text` and return an RGB uint8 image of height cfg.height (width follows the text, capped).

    `context` lines are drawn just above and below, so that cut-off parts of neighbouring text show at the
    crop's edges as they do in real word crops from signs and pages.
    """
    size = int(rng.integers(cfg.font_size[0], cfg.font_size[1] + 1))
    font = _font(font_path, size)
    spacing = int(round(rng.uniform(*cfg.char_spacing) * size)) if rng.random() < 0.3 else 0
    stroke = int(rng.integers(1, max(2, size // 12) + 1)) if rng.random() < cfg.stroke_p else 0

    # Text advance: per-character when letter-spacing is jittered, otherwise let FreeType kern the string.
    if spacing:
        adv = [font.getlength(c) + spacing for c in text]
        width = int(sum(adv) - spacing)
    else:
        width = int(font.getlength(text))
    ascent, descent = font.getmetrics()
    pad_x = int(rng.uniform(*cfg.pad) * size) + stroke
    pad_y = int(rng.uniform(*cfg.pad) * size * 0.5) + stroke
    if context:
        pad_y += int(rng.uniform(0.1, 0.35) * size)
    W, H = max(width, 1) + 2 * pad_x, ascent + descent + 2 * pad_y

    bg, fg = _colors(rng, cfg.min_contrast)
    mask = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(mask)
    if spacing:
        x = pad_x
        for c, a in zip(text, adv):
            draw.text((x, pad_y), c, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            x += a
    else:
        draw.text((pad_x, pad_y), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    line = ascent + descent + int(rng.uniform(0.0, 0.25) * size)
    for k, ctx in enumerate(context[:2]):
        x = pad_x + int(rng.uniform(-0.5, 0.5) * width)
        draw.text((x, pad_y - line if k == 0 else pad_y + line), ctx, font=font, fill=255)
    alpha = np.asarray(mask, np.float32)[..., None] / 255.0

    canvas = _background(H, W, bg, rng)
    if rng.random() < cfg.shadow_p:  # drop shadow: offset, blurred, darker copy of the glyph mask
        dx, dy = (int(v) for v in rng.integers(1, max(2, size // 10) + 1, 2))
        sh = np.roll(np.roll(alpha, dy, 0), dx, 1)
        sh = cv2.GaussianBlur(sh[..., 0], (0, 0), 1.0)[..., None] * 0.6
        canvas = canvas * (1 - sh) + (canvas * 0.3) * sh
    fg_layer = np.clip(fg + rng.normal(0, 8, 3), 0, 255).astype(np.float32)
    img = canvas * (1 - alpha) + fg_layer * alpha

    img = _geometry(np.clip(img, 0, 255).astype(np.uint8), rng, cfg)
    return _to_height(img, cfg.height, cfg.max_width)


def _geometry(img: np.ndarray, rng, cfg) -> np.ndarray:
    """Small rotation, shear and perspective, plus crop jitter: the affine/perspective part of BDA."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    j = cfg.perspective * h
    dst = src + rng.uniform(-j, j, (4, 2)).astype(np.float32)
    shear = rng.uniform(-cfg.shear, cfg.shear)
    dst[:, 0] += shear * (dst[:, 1] - h / 2)
    ang = np.deg2rad(rng.uniform(-cfg.rotate, cfg.rotate))
    c, s = np.cos(ang), np.sin(ang)
    ctr = dst.mean(0)
    dst = (dst - ctr) @ np.float32([[c, -s], [s, c]]).T + ctr
    x0, y0 = dst.min(0)
    dst -= (x0, y0)
    ow, oh = int(np.ceil(dst[:, 0].max())), int(np.ceil(dst[:, 1].max()))
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(img, m, (max(ow, 1), max(oh, 1)), borderMode=cv2.BORDER_REPLICATE)
    # Crop jitter: trim up to cfg.crop of the height from each side (text touching the border is common).
    ch = out.shape[0]
    t, b = (int(rng.uniform(0, cfg.crop) * ch) for _ in range(2))
    l, r = (int(rng.uniform(0, cfg.crop) * ch) for _ in range(2))
    return out[t : ch - b or None, l : out.shape[1] - r or None]


def _to_height(img: np.ndarray, height: int, max_width: int) -> np.ndarray:
    h, w = img.shape[:2]
    nw = min(max_width, max(8, int(round(w * height / h))))
    return cv2.resize(img, (nw, height), interpolation=cv2.INTER_AREA)
