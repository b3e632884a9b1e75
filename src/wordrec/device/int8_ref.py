"""Numpy model of the wrnn int8 kernels' integer arithmetic (kernels/wrnn.h), plus the compiler-side helpers.

Pure functions of numpy arrays; reads and writes no files. The integer path uses int64 numpy only (no floats);
floats appear only in quantize_multiplier and lut_table, which build constants the way a compiler would.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from wordrec.errors import ConfigError, DataError

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


def matmul_f32(a, b, a_zp, b_zp, scale) -> np.ndarray:
    """a [B][M][K] x b [B][N][K] -> float32 [B][M][N]: (float32)(wrapping int32 sum of (a - a_zp)(b - b_zp)) * scale,
    each step rounded to float32 (wrnn_matmul_s8s8_f32)."""
    acc = np.einsum("bik,bjk->bij", np.asarray(a, np.int64) - a_zp, np.asarray(b, np.int64) - b_zp)
    return wrap32(acc).astype(np.float32) * np.float32(scale)


def mean_f32(x, k, scale: float, zp: int) -> np.ndarray:
    """wrnn_mean_s8_f32: x [H][W][C] int8 over windows k = (kh, kw) that tile it: float32 sum, rows then columns,
    of (x - zp) * scale (each rounded), divided by kh * kw."""
    h, w, c = x.shape
    kh, kw = k
    t = x.astype(np.int32).reshape(h // kh, kh, w // kw, kw, c)
    acc = np.zeros((h // kh, w // kw, c), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            acc = (acc + ((t[:, ky, :, kx] - zp).astype(np.float32) * np.float32(scale)).astype(np.float32))
            acc = acc.astype(np.float32)
    return (acc / np.float32(kh * kw)).astype(np.float32)


def quantize_f32(a, b, scale, zp, relu: bool = False) -> np.ndarray:
    """The graph's QuantizeLinear of a (+ b, or of relu(a)) per channel (last axis) as TVM legalizes it, which
    wrnn_quantize_f32 reproduces: clamp(rint(x / scale) + zp) in float32, the clamp min-then-max (NaN -> 127)."""
    x = np.asarray(a, np.float32) + (np.float32(0) if b is None else np.asarray(b, np.float32))
    if relu:
        x = np.where(x > 0, x, np.float32(0))  # NaN -> 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = np.rint(x / np.asarray(scale, np.float32)) + np.asarray(zp, np.float32)
    v = np.where(v < np.float32(127), v, np.float32(127))
    return np.where(v > np.float32(-128), v, np.float32(-128)).astype(np.int8)


# ------------------------------------------------------------------ GELU + quantize by step table
#
# Q(GELU(x)) is a step function of the float input x with at most 256 levels. wrnn_gelu_s8 looks the level up
# instead of evaluating erf: the x axis from x0 is cut into bins of equal width, narrower than the closest two
# steps, so a bin holds at most one step; per bin the table stores the step's float32 threshold and the int8 levels
# below and at/above it. Two float operations, a convert and three gathers per four lanes on Helium, where the erf
# polynomial took ~54 instructions. The levels are those of the exact function (float64 erf), so the kernel is
# correctly rounded where a float32 erf is not; host and device read the same table, so they agree bit for bit.
# No library builds such tables for a graph's constants, hence this code.

GELU_HEADER = 4  # int32 words: bins, x0 (float32 bits), 1 / bin width (float32 bits), 0


def gelu_q_exact(x, erf_div: float, out_scale: float, out_zp: int) -> np.ndarray:
    """The level of the QDQ graph's Q(x * (erf(x / erf_div) + 1)) in exact arithmetic (float64 erf; float32 x and
    the graph's float32 constants taken exactly): clamp(rint(y / out_scale) + out_zp, -128, 127), ties to even."""
    x = np.asarray(x, np.float32).astype(np.float64)
    c, s = float(np.float32(erf_div)), float(np.float32(out_scale))
    erf = np.frompyfunc(math.erf, 1, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        y = x * (np.asarray(erf(x / c), np.float64) + 1.0) / s
    y = np.nan_to_num(y, nan=0.0, posinf=1e9, neginf=-1e9)  # x * 0 at -inf; the clamp takes care of the rest
    return np.clip(np.rint(y) + out_zp, -128, 127).astype(np.int64)


def _bin_of(x, x0: np.float32, inv: np.float32, bins: int) -> np.ndarray:
    """The kernel's bin index, operation for operation: clamp((x - x0) * inv, 0, bins - 1) in float32 (a NaN goes
    to 0, as VMAXNM and the scalar compare do), truncated."""
    with np.errstate(invalid="ignore", over="ignore"):
        v = (np.asarray(x, np.float32) - x0) * inv
    v = np.where(v > 0, v, np.float32(0))
    v = np.where(v < np.float32(bins - 1), v, np.float32(bins - 1))
    return v.astype(np.int64)


def _f32_order(x: np.ndarray) -> np.ndarray:
    """float32 -> int64 key increasing with the value (negative floats reversed), for bisection over floats."""
    b = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFF), b)


def _f32_from_order(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.int64)
    return np.where(k < 0, (-k) | 0x80000000, k).astype(np.uint32).view(np.float32)


def _first_true(pred, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per element, the smallest float32 in [lo, hi] where pred holds; pred is elementwise over the whole array,
    false then true along each interval, and true at hi."""
    a, b = _f32_order(lo), _f32_order(hi)
    at_lo = pred(_f32_from_order(a))
    while True:
        open_ = ~at_lo & (b - a > 1)  # pred(a) false, pred(b) true: the answer is in (a, b]
        if not open_.any():
            return _f32_from_order(np.where(at_lo, a, b))
        m = (a + b) // 2
        ok = pred(_f32_from_order(m))
        b, a = np.where(open_ & ok, m, b), np.where(open_ & ~ok, m, a)


def _gelu_argmin(c: float) -> float:
    """Where x (erf(x / c) + 1) is smallest: u = x / c solves 1 + erf(u) + 2 u exp(-u^2) / sqrt(pi) = 0 on
    (-3, 0) (float64 bisection)."""
    a, b = -3.0, 0.0
    for _ in range(80):
        m = (a + b) / 2
        a, b = (m, b) if 1 + math.erf(m) + 2 * m * math.exp(-m * m) / math.sqrt(math.pi) < 0 else (a, m)
    return (a + b) / 2 * c


def gelu_table(erf_div: float, out_scale: float, out_zp: int, width: float = 0.8) -> np.ndarray:
    """The int32 table wrnn_gelu_s8 reads (layout in kernels/wrnn.h) for Q(x * (erf(x / erf_div) + 1)) with the
    graph's float32 erf divisor and output scale/zero point. Bin width: `width` of the closest two steps (the slope of
    x (erf(x / c) + 1) is below 2.49 for any c); bins from where the level leaves out_zp on the left to where it
    saturates at 127 on the right. Raises DataError if a bin would hold two steps (the bins' float32 edges are found
    exactly, so this is a proof, not a sample)."""
    c, s = float(np.float32(erf_div)), float(np.float32(out_scale))
    if not (c > 0 and s > 0 and math.isfinite(c) and math.isfinite(s)) or not -128 <= int(out_zp) <= 127:
        raise ConfigError(f"gelu_table: erf divisor {erf_div} and output scale {out_scale} must be finite and > 0, "
                          f"zero point {out_zp} in [-128, 127]")
    q = lambda x: gelu_q_exact(x, c, s, out_zp)  # noqa: E731
    x_min = _gelu_argmin(c)  # the curve falls left of it and rises right of it
    # slope of x (erf(x / c) + 1): at most 2 from the erf term plus sqrt(2 / (e pi)) from its derivative term
    step = width * s / (2.0 + math.sqrt(2.0 / (math.e * math.pi)))
    far = np.float32([-np.finfo(np.float32).max])
    big = np.float32(np.finfo(np.float32).max)
    # left of the first level off the zero point everything reads out_zp (|y| only shrinks leftwards)
    off_zp = _first_true(lambda v: q(v) != out_zp, far, np.float32([x_min]))[0]
    x0 = np.float32(min(float(off_zp), x_min) - step)
    x_hi = _first_true(lambda v: q(v) == 127, np.float32([0.0]), np.float32([big]))[0]  # 127 from here on
    inv = np.float32(1.0 / step)
    bins = int(math.ceil((float(x_hi) - float(x0)) * float(inv))) + 2
    if bins > 1 << 16:
        raise ConfigError(f"gelu_table: output scale {out_scale} needs {bins} bins (> 65536)")
    starts = _first_true(lambda v: _bin_of(v, x0, inv, bins) >= np.arange(1, bins),
                         np.full(bins - 1, -big), np.full(bins - 1, big))
    lo_x = np.concatenate([[-big], starts])
    hi_x = np.concatenate([np.nextafter(starts, np.float32(-np.inf)), [big]])
    q_lo, q_hi = q(lo_x), q(hi_x)
    inside = (lo_x < x_min) & (hi_x > x_min)
    q_mid = np.where(inside, q(np.float32(x_min)), q_lo)
    two = inside & (q_mid != q_lo) & (q_mid != q_hi)
    if np.any(np.abs(q_hi - q_lo) > 1) or two.any():
        bad = int(np.flatnonzero((np.abs(q_hi - q_lo) > 1) | two)[0])
        raise DataError(f"gelu_table: bin {bad} of {bins} holds two steps (x {lo_x[bad]}..{hi_x[bad]}); "
                        "the bin width is too wide for this output scale")
    after = np.where(inside & (q_mid != q_lo), q_mid, q_hi)  # the level past the bin's one step
    has_step = after != q_lo
    thr = np.full(bins, big)  # no step: never reached by a finite x (lo == hi then, so even +inf reads right)
    if has_step.any():
        k = np.flatnonzero(has_step)
        thr[k] = _first_true(lambda v: q(v) == after[k], lo_x[k], hi_x[k])
    hi_level = np.where(has_step, after, q_lo)
    table = np.zeros(GELU_HEADER + bins + (2 * bins + 3) // 4, np.int32)
    table[0] = bins
    table[1] = np.float32(x0).view(np.int32)
    table[2] = inv.view(np.int32)
    table[GELU_HEADER:GELU_HEADER + bins] = thr.astype(np.float32).view(np.int32)
    levels = np.zeros(4 * (len(table) - GELU_HEADER - bins), np.int8)
    levels[:bins], levels[bins:2 * bins] = q_lo, hi_level
    table[GELU_HEADER + bins:] = levels.view(np.int32)
    return table


def gelu_lookup(x, table) -> np.ndarray:
    """wrnn_gelu_s8's arithmetic on float32 x: the bin, then the level at/above or below its threshold."""
    table = np.asarray(table, np.int32)
    bins = int(table[0])
    x0, inv = table[1:3].view(np.float32)
    thr = table[GELU_HEADER:GELU_HEADER + bins].view(np.float32)
    levels = table[GELU_HEADER + bins:].view(np.int8)
    j = _bin_of(x, x0, inv, bins)
    x = np.asarray(x, np.float32)
    return np.where(x >= thr[j], levels[bins + j], levels[j]).astype(np.int8)
