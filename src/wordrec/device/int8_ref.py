"""Numpy model of the wrnn int8 kernels' integer arithmetic (kernels/wrnn.h), plus the compiler-side helpers.

Pure functions of numpy arrays; reads and writes no files. The integer path uses int64 numpy only (no floats);
floats appear only in quantize_multiplier and lut_table, which build constants the way a compiler would.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from wordrec.errors import ConfigError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real_scale: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real_scale = mult * 2^(shift - 31), mult in [2^30, 2^31 - 1] (0 for 0.0).

    frexp gives real_scale = q * 2^shift with q in [0.5, 1); q is rounded to Q31, and a round-up to 2^31 halves it
    and bumps the shift. The kernels take shift in [-31, 31]: scales below 2^-32 become (0, 0) (output = out_zp),
    scales of 2^31 or more raise ConfigError.
    """
    if not math.isfinite(real_scale) or real_scale < 0:
        raise ConfigError(f"quantize_multiplier: real_scale {real_scale!r} must be finite and >= 0")
    if real_scale == 0.0:
        return 0, 0
    q, shift = math.frexp(real_scale)
    mult = round(q * (1 << 31))  # Python rounds half to even; TFLite's std::round rounds half away: q > 0 here
    if mult - q * (1 << 31) == -0.5:  # an exact .5 tie: follow std::round (away from zero)
        mult += 1
    if mult == 1 << 31:
        mult //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 31:
        raise ConfigError(f"quantize_multiplier: real_scale {real_scale!r} needs shift {shift} > 31")
    return int(mult), int(shift)


def wrap32(x: np.ndarray) -> np.ndarray:
    """Reduce int64 values modulo 2^32 into int32 range (the kernels' wrapping accumulator)."""
    x = np.asarray(x, np.int64)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Not used by the kernels since single rounding; kept for comparison.)
    gemmlowp SaturatingRoundingDoublingHighMul (= VQRDMULH): floor((a*b + 2^30) / 2^31), MIN*MIN -> MAX.

    a*b fits int64 (|a*b| <= 2^62)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    r = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, r)


def rdbpot(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """(Not used by the kernels since single rounding; kept for comparison.)
    gemmlowp RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero; e in [0, 31]."""
    x = np.asarray(x, np.int64)
    e = np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > threshold)


def dmulh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Saturating doubling high multiply without rounding (= VQDMULH): floor(a*b / 2^31), MIN*MIN -> MAX."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, (a * b) >> 31)


def scale(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """wrnn_scale: one rounding (half up) of acc * mult * 2^(shift - 31).

    r = max(-shift, 1), l = shift + r: floor((DMULH(sat32(acc * 2^l), mult) + 2^(r-1)) / 2^r). The high multiply
    truncates and floor(floor(z) / 2^r + 1/2) = floor(z / 2^r + 1/2), so there is a single rounding (CMSIS-NN's
    single-rounding mode; the Helium path is VQSHL, VQDMULH, VRSHL)."""
    acc = np.asarray(acc, np.int64)
    shift = np.asarray(shift, np.int64)
    r = np.maximum(-shift, 1)
    a = np.clip(acc << (shift + r), INT32_MIN, INT32_MAX)
    return (dmulh(a, mult) + (np.int64(1) << (r - 1))) >> r


def requant(acc, mult, shift, out_zp: int, act_min: int, act_max: int) -> np.ndarray:
    """wrnn_requant: clamp(scale(acc) + out_zp, act_min, act_max) as int8."""
    return np.clip(scale(acc, mult, shift) + out_zp, act_min, act_max).astype(np.int8)


def _bias(bias, n: int) -> np.ndarray:
    return np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64)


def fc(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max) -> np.ndarray:
    """x [M][K] int8, w [N][K] int8 -> [M][N] int8 (also the 1x1 conv with M = pixels)."""
    xs = np.asarray(x, np.int64) - in_zp
    acc = wrap32(xs @ np.asarray(w, np.int64).T + _bias(bias, w.shape[0]))
    return requant(acc, np.asarray(mult)[None, :], np.asarray(shift)[None, :], out_zp, act_min, act_max)


def conv1x1(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max) -> np.ndarray:
    """x [H][W][Cin], w [Cout][Cin] (or OHWI with H=W=1) -> [H][W][Cout]."""
    h, wd, c = x.shape
    out = fc(x.reshape(h * wd, c), np.asarray(w).reshape(w.shape[0], c), bias, mult, shift, in_zp, out_zp,
             act_min, act_max)
    return out.reshape(h, wd, -1)


def _windows(x: np.ndarray, kh, kw, stride, pad, out_hw, fill) -> np.ndarray:
    """[OH][OW][KH][KW][C] receptive fields, outside positions = fill (int64)."""
    (sh, sw), (pt, pl), (oh, ow) = stride, pad, out_hw
    h, w, c = x.shape
    ph = max(h + pt, (oh - 1) * sh + kh)
    pw = max(w + pl, (ow - 1) * sw + kw)
    xp = np.full((ph, pw, c), fill, np.int64)
    xp[pt:pt + h, pl:pl + w] = x
    iy = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :]
    ix = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :]
    return xp[iy[:, None, :, None], ix[None, :, None, :]]


def conv(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max, stride, pad, out_hw) -> np.ndarray:
    """x [H][W][Cin], w OHWI [Cout][KH][KW][Cin]; stride (sh, sw), pad (top, left), out_hw (oh, ow)."""
    co, kh, kw, ci = w.shape
    win = _windows(x, kh, kw, stride, pad, out_hw, in_zp) - in_zp
    acc = np.einsum("yxhwc,ohwc->yxo", win, np.asarray(w, np.int64))
    acc = wrap32(acc + _bias(bias, co))
    return requant(acc, np.asarray(mult), np.asarray(shift), out_zp, act_min, act_max)


def dwconv(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max, stride, pad, out_hw) -> np.ndarray:
    """x [H][W][C], w HWC [KH][KW][C] (channel multiplier 1)."""
    kh, kw, c = w.shape
    win = _windows(x, kh, kw, stride, pad, out_hw, in_zp) - in_zp
    acc = wrap32((win * np.asarray(w, np.int64)).sum(axis=(2, 3)) + _bias(bias, c))
    return requant(acc, np.asarray(mult), np.asarray(shift), out_zp, act_min, act_max)


def dwconv_f32(x, w, in_zp, scale, bias, stride, pad, out_hw) -> np.ndarray:
    """wrnn_dwconv_s8_f32: per-channel input zero points (int [C]), float32 out = float32(acc) * scale[c], then
    + bias[c] (bias may be None: + 0.0), each rounded to float32 (no fused multiply-add)."""
    kh, kw, c = w.shape
    zp = np.asarray(in_zp, np.int64)
    win = _windows(x, kh, kw, stride, pad, out_hw, 0) - zp
    inside = _windows(np.ones(x.shape[:2] + (1,), np.int64), kh, kw, stride, pad, out_hw, 0)
    acc = (win * inside * np.asarray(w, np.int64)).sum(axis=(2, 3))
    prod = acc.astype(np.float32) * np.asarray(scale, np.float32)
    return prod + (np.float32(0) if bias is None else np.asarray(bias, np.float32))


def avgpool(x, k, stride, pad, out_hw, act_min, act_max) -> np.ndarray:
    """Average over the in-input window positions, rounded half away from zero, clamped; k = (kh, kw)."""
    kh, kw = k
    xi = np.asarray(x, np.int64)
    sums = _windows(xi, kh, kw, stride, pad, out_hw, 0).sum(axis=(2, 3))
    counts = _windows(np.ones(x.shape[:2] + (1,), np.int64), kh, kw, stride, pad, out_hw, 0).sum(axis=(2, 3))
    half = counts // 2
    num = np.where(sums >= 0, sums + half, sums - half)
    avg = np.sign(num) * (np.abs(num) // counts)  # C's truncating division
    return np.clip(avg, act_min, act_max).astype(np.int8)


def lut(x, table) -> np.ndarray:
    """out = table[x + 128]."""
    return np.asarray(table, np.int8)[np.asarray(x, np.int64) + 128]


def lut_table(fn: Callable[[np.ndarray], np.ndarray], in_scale: float, in_zp: int, out_scale: float,
              out_zp: int) -> np.ndarray:
    """256-entry int8 table of fn for the int8 input q = -128..127: round(fn(in_scale*(q-in_zp))/out_scale)+out_zp,
    rounded half away from zero and saturated to int8. Runs in float64 at compile time."""
    if in_scale <= 0 or out_scale <= 0:
        raise ConfigError(f"lut_table: scales must be > 0 (in_scale={in_scale}, out_scale={out_scale})")
    q = np.arange(-128, 128, dtype=np.float64)
    y = np.asarray(fn(in_scale * (q - in_zp)), np.float64) / out_scale
    r = np.sign(y) * np.floor(np.abs(y) + 0.5) + out_zp
    return np.clip(r, -128, 127).astype(np.int8)


def mul(x, s, x_zp, s_zp, mult, shift, out_zp, act_min, act_max) -> np.ndarray:
    """x [P][C] * s [C] broadcast along pixels, one (mult, shift)."""
    prod = (np.asarray(x, np.int64) - x_zp) * (np.asarray(s, np.int64) - s_zp)[None, :]
    return requant(prod, mult, shift, out_zp, act_min, act_max)


def add(a, b, p: dict) -> np.ndarray:
    """TFLite add: keys left_shift, a_zp/a_mult/a_shift, b_*, out_zp/out_mult/out_shift, act_min/act_max."""
    ls = p["left_shift"]
    av = scale((np.asarray(a, np.int64) - p["a_zp"]) << ls, p["a_mult"], p["a_shift"])
    bv = scale((np.asarray(b, np.int64) - p["b_zp"]) << ls, p["b_mult"], p["b_shift"])
    return requant(wrap32(av + bv), p["out_mult"], p["out_shift"], p["out_zp"], p["act_min"], p["act_max"])


def matmul(a, b, a_zp, b_zp, mult, shift, out_zp, act_min, act_max) -> np.ndarray:
    """a [M][K] x b [N][K], both with zero points, one (mult, shift) -> [M][N]."""
    acc = wrap32((np.asarray(a, np.int64) - a_zp) @ (np.asarray(b, np.int64) - b_zp).T)
    return requant(acc, mult, shift, out_zp, act_min, act_max)
