"""Synthetic pages and scene-like photos with known text-line boxes, for testing and scoring whole-image OCR.

Reads fonts (folders of TTF/OTF files, filtered by `wordrec.data.synth.fonts.load_fonts`) and word lists; writes
nothing. `PageRenderer(...).render(seed, index)` -> (RGB uint8 image, [(4x2 float32 box, text)]), identical for the
same (seed, index). Ground-truth boxes are the ink extent of each line (as ICDAR annotates), padded by a tenth of
the font size, and go through the same rotation/perspective as the pixels.
"""

from __future__ import annotations

import string
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wordrec.errors import DataError
from wordrec.data.synth.fonts import load_fonts
from wordrec.data.synth.text import load_words

CHARSET = string.ascii_letters + string.digits + ".,:;!?'()-$%&"


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _line_mask(text: str, font) -> tuple[np.ndarray, np.ndarray] | None:
    """Text drawn into a tight L mask (float 0..1) and its ink box inside the mask, or None if nothing drew."""
    x0, y0, x1, y1 = font.getbbox(text)
    pad = 4
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad))
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=font, fill=255)
    a = np.asarray(img, np.float32) / 255.0
    ys, xs = np.nonzero(a > 0.3)
    if len(xs) == 0:
        return None
    return a, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


CASE_PROBE = "aegnrt"  # letters whose lower case differs in shape from the upper case in ordinary fonts


def _glyph(font, ch: str) -> np.ndarray | None:
    drawn = _line_mask(ch, font)
    if drawn is None:
        return None
    a, (x0, y0, x1, y1) = drawn
    return a[int(y0):int(y1), int(x0):int(x1)] > 0.3


def caps_only(path: str, size: int = 48, same: float = 0.65) -> bool:
    """True for a font that draws lower case as (small) capitals: its lower-case probe letters, compared with
    the upper-case ones scaled to the same box, overlap with IoU >= `same` on average. Text drawn with such a font
    cannot be read back in the case it was written (measured: one small-caps page made 87 % of the character
    errors of 60 pages), so the renderer does not use it. On Debian's font pool 11 fonts score >= 0.75 (all
    caps-only); between 0.65 and 0.75 are caps-only ones drawn differently (aenigma's grudge2: capitals in
    inverted boxes; chintzys: small caps) and a few decorative fonts with a real lower case (phorfeis), whose
    loss costs a test renderer nothing; ordinary text fonts score below 0.65."""
    font = _font(path, size)
    ious = []
    for ch in CASE_PROBE:
        lo, up = _glyph(font, ch), _glyph(font, ch.upper())
        if lo is None or up is None or min(lo.shape) < 2:
            return False
        up = cv2.resize(up.astype(np.uint8), (lo.shape[1], lo.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        ious.append((lo & up).sum() / max(1, (lo | up).sum()))
    return float(np.mean(ious)) >= same


def _background(h: int, w: int, rng, photo: bool) -> np.ndarray:
    base = rng.uniform(200, 255, 3) if not photo else rng.uniform(0, 255, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    kind = rng.choice(["flat", "gradient", "noise"])
    if kind == "gradient":
        other = np.clip(base + rng.normal(0, 50, 3), 0, 255)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        t = t[None, :, None] if len(t) == w else t[:, None, None]
        img = img * (1 - t) + other * t
    elif kind == "noise":  # low-frequency texture: paper, walls
        small = rng.normal(0, rng.uniform(6, 25), (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return img


def _ink(bg_mean: np.ndarray, rng, photo: bool) -> np.ndarray:
    """A text colour at least 100 luma away from the local background, so every line is legible."""
    luma = lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]  # noqa: E731
    for _ in range(50):
        c = rng.uniform(0, 80, 3) if not photo else rng.uniform(0, 255, 3)
        if abs(luma(c) - luma(bg_mean)) >= 100:
            return c
    return np.zeros(3) if luma(bg_mean) > 127 else np.full(3, 255.0)


class PageRenderer:
    """Renders documents (stacked left-aligned lines) and photos (a few scattered, individually tilted lines)."""

    def __init__(self, font_dirs=("/usr/share/fonts",), word_lists=("/usr/share/dict/words",), photo_p: float = 0.4,
                 max_side: int = 960):
        fonts = load_fonts(font_dirs, CHARSET)
        self.fonts = [f for f in fonts if not caps_only(f)]
        self.caps_only = len(fonts) - len(self.fonts)
        if not self.fonts:
            raise DataError(f"{list(font_dirs)}: every font draws lower case as capitals")
        self.words = [w for w in load_words(word_lists, False, string.ascii_letters + string.digits, 12)
                      if len(w) >= 2]
        if not self.words:
            raise DataError(f"{list(word_lists)}: no usable words")
        self.photo_p, self.max_side = photo_p, max_side

    def _text(self, rng) -> str:
        words = []
        for _ in range(rng.integers(1, 7)):
            w = self.words[rng.integers(len(self.words))]
            r = rng.random()
            if r < 0.1:
                w = str(rng.integers(1, 10000))
            elif r < 0.2:
                w = w.capitalize()
            elif r < 0.25:
                w = w.upper()
            words.append(w)
        if rng.random() < 0.3:
            words[-1] += rng.choice([".", ",", ":", "!", "?"])
        return " ".join(words)

    def render(self, seed: int, index: int, kind: str | None = None
               ) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
        """`kind`: "document", "photo", or None (a photo with probability `photo_p`, drawn from the page's own
        random stream, so render(seed, index) is the same page whatever else was rendered)."""
        if kind not in (None, "document", "photo"):
            raise ValueError(f"kind {kind!r}: expected None, 'document' or 'photo'")
        rng = np.random.default_rng([seed, index])
        photo = rng.random() < self.photo_p
        if kind is not None:
            photo = kind == "photo"
        if photo:
            w, h = int(rng.integers(640, self.max_side + 1)), int(rng.integers(480, 721))
        else:
            w, h = int(rng.integers(600, 801)), int(rng.integers(700, self.max_side + 1))
        bg = _background(h, w, rng, photo)
        alpha = np.zeros((h, w), np.float32)
        color = np.zeros((h, w, 3), np.float32)
        truth: list[tuple[np.ndarray, str]] = []
        occupied = np.zeros((h, w), bool)
        page_font = self.fonts[rng.integers(len(self.fonts))]
        size = int(rng.integers(16, 33))
        y = int(rng.integers(20, 60))
        x_margin = int(rng.integers(20, 80))
        n_lines = int(rng.integers(2, 7)) if photo else 99
        for _ in range(n_lines * 4 if photo else 200):
            if len(truth) >= n_lines:
                break
            text = self._text(rng)
            if photo:
                font_path, fsize = self.fonts[rng.integers(len(self.fonts))], int(rng.integers(22, 61))
            else:
                font_path, fsize = page_font, size
            drawn = _line_mask(text, _font(font_path, fsize))
            if drawn is None:
                continue
            mask, ink = drawn
            pad = 0.1 * fsize
            quad = np.array([[ink[0] - pad, ink[1] - pad], [ink[2] + pad, ink[1] - pad],
                             [ink[2] + pad, ink[3] + pad], [ink[0] - pad, ink[3] + pad]], np.float32)
            mh, mw = mask.shape
            # Photos tilt each line on its own; documents get one page rotation afterwards.
            angle = rng.uniform(-5, 5) if photo else 0.0
            m = cv2.getRotationMatrix2D((mw / 2, mh / 2), angle, 1.0)
            if photo:
                ox, oy = int(rng.integers(0, max(1, w - mw))), int(rng.integers(0, max(1, h - mh)))
            else:
                ox, oy = x_margin, y
            m[:, 2] += (ox, oy)
            placed = cv2.transform(quad[None], m)[0]
            if not photo and (placed[:, 1] > h - 2).any():
                break  # the page is full
            if placed.min() < 2 or (placed[:, 0] > w - 2).any() or (placed[:, 1] > h - 2).any():
                continue  # too wide for the page: draw another line
            if not photo:
                y += int(mh * rng.uniform(1.1, 1.8))
            region = np.zeros((h, w), np.uint8)
            cv2.fillPoly(region, [np.round(placed).astype(np.int32)], 1)
            if (occupied & region.astype(bool)).any():
                continue
            occupied |= cv2.dilate(region, np.ones((7, 7), np.uint8)).astype(bool)
            layer = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)
            ink_color = _ink(bg[np.round(placed).astype(int)[:, 1].clip(0, h - 1),
                                np.round(placed).astype(int)[:, 0].clip(0, w - 1)].mean(0), rng, photo)
            color[layer > 0] = ink_color
            alpha = np.maximum(alpha, layer)
            truth.append((placed, text))
        # A whole-image geometric change: rotation for documents, rotation + perspective for photos.
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        # Scaled by 0.9 so rotated and tilted corners stay inside the frame: no line is cut off.
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-5, 5) if not photo else 0.0, 0.9)
        dst = cv2.transform(src[None], rot)[0]
        if photo:
            dst = dst + rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * [w, h]
        hm = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        alpha = cv2.warpPerspective(alpha, hm, (w, h), flags=cv2.INTER_LINEAR)
        color = cv2.warpPerspective(color, hm, (w, h), flags=cv2.INTER_NEAREST)
        img = bg * (1 - alpha[..., None]) + color * alpha[..., None]
        if photo and rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.0))
        img += rng.normal(0, rng.uniform(0, 8), img.shape).astype(np.float32)
        truth = [(cv2.perspectiveTransform(q[None], hm)[0], t) for q, t in truth]
        return np.clip(img, 0, 255).astype(np.uint8), truth
