"""wrnn int8 kernels: numpy reference == host scalar build == QEMU Helium build, bit for bit."""

from __future__ import annotations

import math
import shutil
from fractions import Fraction

import numpy as np
import pytest

from wordrec.device import int8_host as H
from wordrec.device import int8_ref as R
from wordrec.errors import ConfigError, DataError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
HAVE_DEVICE = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
device = pytest.mark.skipif(not HAVE_DEVICE, reason="arm-none-eabi-gcc / qemu-system-arm not installed")

CHANNELS = [1, 3, 15, 16, 17, 33, 100]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wrnn_build")


@pytest.fixture(scope="module")
def lib(build_dir):
    return H.HostLib(build_dir)


# ------------------------------------------------------------------ random case generators: (name, call, expected)

def _i8(rng, *shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def _requant_params(rng, n):
    """Per-channel Q31 multipliers (incl. extremes) and shifts both ways."""
    mult = rng.integers(2**30, 2**31, n)
    mult[rng.random(n) < 0.1] = I32_MAX
    shift = rng.integers(-14, 3, n)
    return mult.astype(np.int64), shift.astype(np.int64)


def _quant(rng):
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    lo, hi = (lo, hi) if rng.random() < 0.5 else (-128, 127)
    return in_zp, out_zp, lo, hi


def _bias(rng, n):
    return None if rng.random() < 0.2 else rng.integers(-40000, 40000, n)


def fc_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        m = int(rng.integers(1, 7))
        k, n = (int(v) for v in rng.choice(CHANNELS, 2))
        x, w, b = _i8(rng, m, k), _i8(rng, n, k), _bias(rng, n)
        mult, shift = _requant_params(rng, n)
        q = _quant(rng)
        out.append((f"fc{i} m{m} k{k} n{n}", H.fc_call(x, w, b, mult, shift, *q), R.fc(x, w, b, mult, shift, *q)))
    return out


def conv1x1_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        h, wd = (int(v) for v in rng.integers(1, 6, 2))
        ci, co = (int(v) for v in rng.choice(CHANNELS, 2))
        x, w, b = _i8(rng, h, wd, ci), _i8(rng, co, ci), _bias(rng, co)
        mult, shift = _requant_params(rng, co)
        q = _quant(rng)
        out.append((f"conv1x1_{i} {h}x{wd} {ci}->{co}", H.conv1x1_call(x, w, b, mult, shift, *q),
                    R.conv1x1(x, w, b, mult, shift, *q)))
    return out


def _window(rng):
    k = int(rng.choice([1, 3, 5]))
    stride = int(rng.choice([1, 2]))
    pad = int(rng.integers(0, min(2, k - 1) + 1))
    h, wd = (int(v) for v in rng.integers(k, k + 7, 2)) if rng.random() < 0.8 else (k, k)
    if rng.random() < 0.4:  # rows wider than the Helium depthwise step (16 pixels), with a partial last step
        wd = int(rng.integers(16 * stride + k, 40 * stride + k))
    oh, ow = H.conv_out_dim(h, k, stride, pad, pad), H.conv_out_dim(wd, k, stride, pad, pad)
    return h, wd, k, stride, pad, oh, ow


def conv_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        h, wd, k, s, p, oh, ow = _window(rng)
        ci, co = (int(v) for v in rng.choice(CHANNELS[:6], 2))
        x, w, b = _i8(rng, h, wd, ci), _i8(rng, co, k, k, ci), _bias(rng, co)
        mult, shift = _requant_params(rng, co)
        q = _quant(rng)
        geo = ((s, s), (p, p), (oh, ow))
        out.append((f"conv{i} {h}x{wd}x{ci} k{k} s{s} p{p} ->{co}",
                    H.conv_call(x, w, b, mult, shift, *q, *geo, lib), R.conv(x, w, b, mult, shift, *q, *geo)))
    return out


def dwconv_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        h, wd, k, s, p, oh, ow = _window(rng)
        c = int(rng.choice(CHANNELS))
        x, w, b = _i8(rng, h, wd, c), _i8(rng, k, k, c), _bias(rng, c)
        mult, shift = _requant_params(rng, c)
        q = _quant(rng)
        geo = ((s, s), (p, p), (oh, ow))
        out.append((f"dwconv{i} {h}x{wd}x{c} k{k} s{s} p{p}", H.dwconv_call(x, w, b, mult, shift, *q, *geo, lib),
                    R.dwconv(x, w, b, mult, shift, *q, *geo)))
    return out


def _f32_bytes(a: np.ndarray) -> np.ndarray:
    """A float32 tensor as the int8 bytes a float-output call returns (out_shape (..., 4))."""
    a = np.ascontiguousarray(a, np.float32)
    return a.view(np.int8).reshape(*a.shape, 4)


def dwconv_f32_case(rng, name, h, wd, c, kh, kw, stride, pad, zp=None, bias=True, lib=None):
    """wrnn_dwconv_s8_f32 with random data; pad (top, left), the bottom/right padding the same."""
    oh = H.conv_out_dim(h, kh, stride[0], pad[0], pad[0])
    ow = H.conv_out_dim(wd, kw, stride[1], pad[1], pad[1])
    x, w = _i8(rng, h, wd, c), _i8(rng, kh, kw, c)
    zp = rng.integers(-128, 128, c) if zp is None else np.broadcast_to(zp, (c,))
    scale = (rng.random(c) * 2e-3 - 5e-4).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32) if bias else None
    return (f"{name} {h}x{wd}x{c} k{kh}x{kw} s{stride} p{pad}", H.dwconv_f32_call(x, w, zp, scale, b, stride, pad,
                                                                                   (oh, ow)),
            _f32_bytes(R.dwconv_f32(x, w, zp, scale, b, stride, pad, (oh, ow))))


def dwconv_f32_cases(rng, n_cases, lib):
    """Random windows (the Helium path: 3-wide assembly tiles for full blocks of 4 channels, border tiles at
    padding 1, a generic stride-1 row for other widths, C for the channel tail and cut windows)."""
    out = []
    for i in range(n_cases):
        kh, kw = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2, 3, 3, 4, 5, 7]))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        p = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        h, wd = int(rng.integers(max(1, kh - 2 * p[0]), kh + 6)), int(rng.integers(max(1, kw - 2 * p[1]), 30))
        c = int(rng.choice(CHANNELS + [4, 8, 12, 20, 36]))
        out.append(dwconv_f32_case(rng, f"dwconv_f32{i}", h, wd, c, kh, kw, s, p, bias=i % 3 != 0))
    return out


def avgpool_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        h, wd, k, s, p, oh, ow = _window(rng)
        c = int(rng.choice(CHANNELS))
        x = _i8(rng, h, wd, c)
        _, _, lo, hi = _quant(rng)
        if i == 0:  # global pooling
            k, s, p, oh, ow = max(h, wd), 1, 0, 1, 1
            h = wd = k
            x = _i8(rng, h, wd, c)
        geo = ((k, k), (s, s), (p, p), (oh, ow))
        out.append((f"avgpool{i} {h}x{wd}x{c} k{k} s{s} p{p}", H.avgpool_call(x, *geo, lo, hi),
                    R.avgpool(x, *geo, lo, hi)))
    return out


def lut_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        n = int(rng.choice([1, 15, 16, 17, 100, 256, 1000]))
        x = _i8(rng, n)
        if i == 0:
            x = np.arange(-128, 128, dtype=np.int8)
        table = R.lut_table(lambda v: v * np.clip(v + 3, 0, 6) / 6, 0.05, int(rng.integers(-20, 20)), 0.04, -20)
        out.append((f"lut{i} n{x.size}", H.lut_call(x, table), R.lut(x, table)))
    return out


def mul_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        p, c = int(rng.integers(1, 9)), int(rng.choice(CHANNELS))
        x, s = _i8(rng, p, c), _i8(rng, c)
        mult, shift = (int(v[0]) for v in _requant_params(rng, 1))
        shift -= 5  # products are up to 2^16: a typical scale is below 2^-7
        xzp, szp, ozp = (int(v) for v in rng.integers(-128, 128, 3))
        _, _, lo, hi = _quant(rng)
        args = (xzp, szp, mult, shift, ozp, lo, hi)
        out.append((f"mul{i} {p}x{c}", H.mul_call(x, s, *args), R.mul(x, s, *args)))
    return out


def _add_params(rng, out_shift_delta=0):
    sa, sb, so = 0.02 + 0.1 * rng.random(), 0.02 + 0.1 * rng.random(), 0.05 + 0.1 * rng.random()
    ls = 20
    twice = 2 * max(sa, sb)
    am, ash = R.quantize_multiplier(sa / twice)
    bm, bsh = R.quantize_multiplier(sb / twice)
    om, osh = R.quantize_multiplier(twice / ((1 << ls) * so))
    _, _, lo, hi = _quant(rng)
    azp, bzp, ozp = (int(v) for v in rng.integers(-128, 128, 3))
    return dict(left_shift=ls, a_zp=azp, a_mult=am, a_shift=ash, b_zp=bzp, b_mult=bm, b_shift=bsh, out_zp=ozp,
                out_mult=om, out_shift=osh + out_shift_delta, act_min=lo, act_max=hi)


def add_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        n = int(rng.choice([1, 3, 15, 16, 17, 100, 333]))
        a, b = _i8(rng, n), _i8(rng, n)
        p = _add_params(rng)
        out.append((f"add{i} n{n}", H.add_call(a, b, p), R.add(a, b, p)))
    return out


def matmul_cases(rng, n_cases, lib):
    out = []
    for i in range(n_cases):
        m = int(rng.integers(1, 9))
        k, n = (int(v) for v in rng.choice(CHANNELS, 2))
        a, b = _i8(rng, m, k), _i8(rng, n, k)
        mult, shift = (int(v[0]) for v in _requant_params(rng, 1))
        shift -= 6  # sums of k products up to 2^16 each
        azp, bzp, ozp = (int(v) for v in rng.integers(-128, 128, 3))
        _, _, lo, hi = _quant(rng)
        args = (azp, bzp, mult, shift, ozp, lo, hi)
        out.append((f"matmul{i} {m}x{k} . {n}x{k}", H.matmul_call(a, b, *args, lib), R.matmul(a, b, *args)))
    return out


def matmul_f32_cases(rng, n_cases, lib):
    """Attention's Q.K^T with a float output: batches of heads, row counts around the 32-row chunk, K and N with
    channel tails, zero points on both sides (ppocrv6_small's are 0), one float32 scale."""
    out = []
    for i in range(n_cases):
        batch, m = int(rng.integers(1, 4)), int(rng.choice([1, 3, 33, 40]))
        k, n = int(rng.choice([1, 15, 16, 17, 64])), int(rng.choice([1, 5, 40, 41]))
        a, b = _i8(rng, batch, m, k), _i8(rng, batch, n, k)
        azp, bzp = (0, 0) if i % 3 == 0 else (int(v) for v in rng.integers(-128, 128, 2))
        scale = np.float32(rng.uniform(1e-4, 1e-2))
        out.append((f"matmul_f32{i} {batch}x[{m}x{k} . {n}x{k}]", H.matmul_f32_call(a, b, azp, bzp, scale, lib),
                    _f32_bytes(R.matmul_f32(a, b, azp, bzp, scale))))
    return out


def quantize_f32_cases(rng, n_cases, lib):
    """Per-channel quantize of a float tensor or of a residual sum: channel tails, levels across the whole int8
    range and beyond it (saturation), values on exact .5 ties of the quotient, +-0, +-inf, NaN, huge values. The
    reference divides (numpy float32): the kernel's divide-free quotient must give the same int8 everywhere."""
    out = []
    for i in range(n_cases):
        p, c = int(rng.choice([1, 2, 7, 40])), int(rng.choice(CHANNELS + [4, 96]))
        scale = rng.uniform(1e-3, 0.5, c).astype(np.float32)
        zp = rng.integers(-128, 128, c).astype(np.float32)
        levels = rng.uniform(-300, 300, (p, c)).astype(np.float32)
        a = (levels * scale).astype(np.float32)
        ties = ((np.floor(levels) + np.float32(0.5)) * scale).astype(np.float32)  # x / s on (or next to) a .5 tie
        a = np.where(rng.random((p, c)) < 0.3, ties, a).astype(np.float32)
        special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38, -3e38, 1e-40], np.float32)
        a.ravel()[: min(a.size, special.size)] = special[: min(a.size, special.size)]
        b = None if i % 2 else rng.uniform(-20, 20, (p, c)).astype(np.float32)
        relu = b is None and i % 4 == 1
        kind = "sum" if b is not None else "relu" if relu else "plain"
        out.append((f"quantize_f32{i} {p}x{c} {kind}", H.quantize_f32_call(a, b, scale, zp, relu),
                    R.quantize_f32(a, b, scale, zp, relu)))
    return out


def _q_params(rng, c: int, spread: float):
    """Per-channel output quantization for float values of about +-spread: scale, zero point (float32 [C])."""
    return ((rng.uniform(0.5, 2.0, c) * spread / 100).astype(np.float32),
            rng.integers(-128, 128, c).astype(np.float32))


def conv1x1_q8_cases(rng, n_cases, lib):
    """wrnn_conv1x1_s8_q8 against numpy: the 1x1 conv's float value ((float)acc * scale, then + bias, two
    roundings) quantized per channel by int8_ref.quantize_f32, relu or not; pixel counts around the band size
    (WRNN_BAND_FLOATS / out_c pixels), channel tails, no bias."""
    out = []
    for i in range(n_cases):
        n = int(rng.choice(CHANNELS + [96, 384]))
        band = max(1, 8192 // n)
        p = int(rng.choice([1, 3, band - 1, band, band + 1, 2 * band + 5]))
        k = int(rng.choice(CHANNELS))
        x, w = _i8(rng, max(p, 1), k), _i8(rng, n, k)
        in_zp = int(rng.integers(-128, 128))
        scale = (rng.uniform(0.5, 1.5, n) / (64 * 128 * math.sqrt(k))).astype(np.float32)
        bias = None if i % 4 == 0 else rng.uniform(-1, 1, n).astype(np.float32)
        acc = (x.astype(np.int64) - in_zp) @ w.astype(np.int64).T
        f = (acc.astype(np.float32) * scale).astype(np.float32)
        f = (f + bias).astype(np.float32) if bias is not None else f
        qs, qz = _q_params(rng, n, 1.0)
        relu = i % 2 == 1
        out.append((f"conv1x1_q8{i} p{p} k{k} n{n} relu{int(relu)}",
                    H.conv1x1_q8_call(x, w, in_zp, scale, bias, qs, qz, relu, lib),
                    R.quantize_f32(f, None, qs, qz, relu)))
    return out


def dwconv_q8_cases(rng, n_cases, lib):
    """wrnn_dwconv_s8_q8 (one output row at a time) against int8_ref.quantize_f32 of int8_ref.dwconv_f32: the
    windows of dwconv_f32_cases, so rows cut by the top and bottom padding and strided rows come up."""
    out = []
    for i in range(n_cases):
        kh, kw = int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 3, 7]))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        p = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        h, wd = int(rng.integers(max(1, kh - 2 * p[0]), kh + 6)), int(rng.integers(max(1, kw - 2 * p[1]), 30))
        c = int(rng.choice(CHANNELS + [4, 12, 96]))
        oh, ow = H.conv_out_dim(h, kh, s[0], p[0], p[0]), H.conv_out_dim(wd, kw, s[1], p[1], p[1])
        x, w = _i8(rng, h, wd, c), _i8(rng, kh, kw, c)
        zp = rng.integers(-128, 128, c)
        scale = (rng.random(c) * 2e-3 - 5e-4).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32) if i % 3 else None
        qs, qz = _q_params(rng, c, 5.0)
        relu = i % 2 == 0
        f = R.dwconv_f32(x, w, zp, scale, b, s, p, (oh, ow))
        out.append((f"dwconv_q8{i} {h}x{wd}x{c} k{kh}x{kw} s{s} p{p} relu{int(relu)}",
                    H.dwconv_q8_call(x, w, zp, scale, b, s, p, (oh, ow), qs, qz, relu, lib),
                    R.quantize_f32(f, None, qs, qz, relu)))
    return out


def dwconv_q8_tile_case(rng, name, h, wd, c, stride_h, pad, relu, bias=True, zp=None, scale_mag=2e-3, lib=None,
                        op="dwconv3x3_q8"):
    """One wrnn_dwconv3x3_s8_q8 (or wrnn_dwconv_s8_q8) call on the shapes of the tile path (3x3, column stride 1,
    C % 4 == 0, out_w >= 4, one output quantizer for all channels), against numpy."""
    s = (stride_h, 1)
    oh, ow = H.conv_out_dim(h, 3, s[0], pad[0], pad[0]), H.conv_out_dim(wd, 3, 1, pad[1], pad[1])
    x, w = _i8(rng, h, wd, c), _i8(rng, 3, 3, c)
    zp = rng.integers(-128, 128, c) if zp is None else np.broadcast_to(zp, (c,))
    scale = ((rng.random(c) - 0.25) * scale_mag).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32) if bias else None
    qs, qz = np.full(c, rng.uniform(0.01, 0.1), np.float32), np.full(c, rng.integers(-128, 128), np.float32)
    f = R.dwconv_f32(x, w, zp, scale, b, s, pad, (oh, ow))
    return (f"{name} {h}x{wd}x{c} s{s} p{pad} relu{int(relu)}",
            H.dwconv_q8_call(x, w, zp, scale, b, s, pad, (oh, ow), qs, qz, relu, lib, op),
            R.quantize_f32(f, None, qs, qz, relu))


def dwconv_q8_tile_cases(rng, n_cases, lib):
    """Random windows of the tile path: rows cut by the top / bottom padding (the tiles that leave a kernel row out,
    and windows with two rows outside, which convert zero-point rows), strides 1-3 down, 1-2 columns of padding,
    row widths that are not a multiple of 4 (the last tile recomputed), relu, no bias."""
    out = []
    for i in range(n_cases):
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        h, wd = int(rng.integers(max(1, 3 - 2 * pad[0]), 9)), int(rng.integers(max(2, 6 - 2 * pad[1]), 19))
        c = int(rng.choice([4, 8, 12, 20, 96]))
        out.append(dwconv_q8_tile_case(rng, f"dwconv_q8_tile{i}", h, wd, c, int(rng.integers(1, 4)), pad,
                                       relu=i % 2 == 0, bias=i % 3 != 0, lib=lib))
    return out


def mean_f32_cases(rng, n_cases, lib):
    """wrnn_mean_s8_f32 against int8_ref.mean_f32: whole-map means (SE) and tiling windows (average pool), channel
    tails, zero points at both ends."""
    out = []
    for i in range(n_cases):
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        oh, ow = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        if i % 3 == 0:  # one window over the whole map
            kh, kw, oh, ow = int(rng.integers(1, 13)), int(rng.integers(1, 81)), 1, 1
        c = int(rng.choice(CHANNELS + [4, 96]))
        x = _i8(rng, oh * kh, ow * kw, c)
        zp = int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))
        scale = np.float32(rng.uniform(1e-3, 0.5))
        out.append((f"mean_f32{i} {oh * kh}x{ow * kw}x{c} k{kh}x{kw} zp{zp}", H.mean_f32_call(x, (kh, kw), scale, zp),
                    _f32_bytes(R.mean_f32(x, (kh, kw), scale, zp))))
    return out


def edge_accumulators():
    """Accumulator/multiplier/shift triples at the rounding and saturation edges."""
    acc, mult, shift = [], [], []
    base = [I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, 0, 1, -1, 2, -2, 3, -3, 2**30, -(2**30), 12345, -12345]
    mults = [I32_MIN, I32_MAX, 2**30, 2**30 + 1, 1, -1, 0, 1 << 29, 3 << 29]
    for a in base:
        for m in mults:
            for s in (-31, -30, -16, -2, -1, 0, 1, 2, 16, 31):
                acc.append(a), mult.append(m), shift.append(s)
    # exact ties in the high-mul: a * 2^30 / 2^31 = a / 2 with a odd, both signs
    for a in (1, -1, 3, -3, 5, -5, 2**31 - 1, -(2**31) + 1):
        acc.append(a), mult.append(2**30), shift.append(0)
    # exact ties in the rounding shift: x = (2j+1) * 2^(e-1) reaches RDBPOT unchanged with mult = 2^31 - 1 ~ 1?
    # No: use mult 2^30 (halves) and shift -e on x = (2j+1) * 2^e: high-mul gives (2j+1) * 2^(e-1), exact.
    for e in (1, 2, 5, 12):
        for j in (-3, -2, -1, 0, 1, 2):
            acc.append((2 * j + 1) << e), mult.append(2**30), shift.append(-e)
    return (np.array(acc, np.int64), np.array(mult, np.int64), np.array(shift, np.int64))


def requant_cases(rng, n_cases, lib):
    acc, mult, shift = edge_accumulators()
    out = []
    for lo, hi, zp in ((-128, 127, 0), (-128, 127, -7), (0, 127, 5), (-20, 30, 127)):
        out.append((f"requant edges zp{zp} [{lo},{hi}]", H.requantize_call(acc, mult, shift, zp, lo, hi),
                    R.requant(acc, mult, shift, zp, lo, hi)))
    for i in range(n_cases):
        n = int(rng.integers(1, 300))
        a = rng.integers(I32_MIN, I32_MAX, n, endpoint=True)
        m = rng.integers(I32_MIN, I32_MAX, n, endpoint=True)
        s = rng.integers(-31, 32, n)
        out.append((f"requant random{i}", H.requantize_call(a, m, s, 0, -128, 127), R.requant(a, m, s, 0, -128, 127)))
    return out


def _gelu_table(rng):
    """A GELU step table for a random output scale / zero point, as offload builds them from a QDQ graph."""
    return R.gelu_table(np.float32(1.4142135), np.float32(rng.uniform(0.005, 0.2)), int(rng.integers(-128, 128)))


def conv1x1_gelu_cases(rng, n_cases, lib):
    """wrnn_conv1x1_s8_gelu_s8 against the two calls it fuses (wrnn_conv1x1_s8_f32 -> float buffer ->
    wrnn_gelu_s8) run by the same build: odd pixel counts around the 32-pixel chunk, channel tails, no bias, and
    float values from well inside to beyond the table's saturation."""
    out = []
    for i in range(n_cases):
        p = int(rng.choice([1, 2, 3, 31, 33, 65]))
        k, n = (int(v) for v in rng.choice(CHANNELS, 2))
        x, w = _i8(rng, p, k), _i8(rng, n, k)
        in_zp = int(rng.integers(-128, 128))
        spread = float(rng.choice([0.5, 2.0, 8.0]))  # typical |f| of the float value before the GELU
        scale = (rng.uniform(0.5, 1.5, n) * spread / (64 * 128 * math.sqrt(k))).astype(np.float32)
        bias = None if rng.random() < 0.25 else rng.uniform(-1, 1, n).astype(np.float32)
        args = (x, w, in_zp, scale, bias, _gelu_table(rng))
        rc, want = lib.run(H.conv1x1_gelu_call(*args, fused=False))
        assert rc == 0
        out.append((f"conv1x1_gelu{i} p{p} k{k} n{n} spread{spread}", H.conv1x1_gelu_call(*args), want))
    return out


def gelu_cases(rng, n_cases, lib):
    """wrnn_gelu_s8 against int8_ref.gelu_lookup (itself equal to the exact Q(GELU), test_gelu_table_*): random
    floats, every threshold and its two float32 neighbours, the ends of the table, +-0, +-inf, NaN; odd lengths
    for the 4-lane tail."""
    out = []
    for i in range(n_cases):
        table = _gelu_table(rng)
        bins = int(table[0])
        thr = table[R.GELU_HEADER:R.GELU_HEADER + bins].view(np.float32)
        thr = thr[thr < np.finfo(np.float32).max]
        x = np.concatenate([rng.standard_normal(int(rng.integers(1, 300))) * rng.choice([0.5, 3.0, 30.0]), thr,
                            np.nextafter(thr, np.float32(-np.inf)), np.nextafter(thr, np.float32(np.inf)),
                            [0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38]]).astype(np.float32)
        x = x[: x.size - int(rng.integers(0, 4))]
        out.append((f"gelu{i} n{x.size} bins{bins}", H.gelu_call(x, table), R.gelu_lookup(x, table)))
    return out


def mlp_cases(rng, n_cases, lib):
    """wrnn_mlp_s8 against its two calls (the 1x1 + GELU's two-call reference, then numpy's requantizing 1x1):
    pixel counts below, at and across band boundaries (hidden widths whose 32 KB band is 1 pixel, 29 pixels, or
    whole 32-pixel chunks), channel tails, both clamps."""
    out = []
    for i in range(n_cases):
        n1 = int(rng.choice([4, 17, 100, 384, 1100, 40000]))
        band = max(1, 32768 // n1)
        band = band - band % 32 if band >= 32 else band
        p = int(rng.choice([1, 3, band, band + 1, 2 * band + 5, 150]))
        k, n2 = (int(v) for v in rng.choice(CHANNELS, 2))
        if n1 * max(k, n2) > 2_000_000:
            n1 = 4000
        x, w1, w2 = _i8(rng, p, k), _i8(rng, n1, k), _i8(rng, n2, n1)
        in_zp = int(rng.integers(-128, 128))
        scale = (rng.uniform(0.5, 1.5, n1) * 2.0 / (64 * 128 * math.sqrt(k))).astype(np.float32)
        bias = None if i % 4 == 0 else rng.uniform(-1, 1, n1).astype(np.float32)
        table = _gelu_table(rng)
        rc, hidden = lib.run(H.conv1x1_gelu_call(x, w1, in_zp, scale, bias, table, fused=False))
        assert rc == 0
        hidden_zp = int(rng.integers(-128, 128))  # the requantizing 1x1 takes any; the graph's is the table's
        b2 = _bias(rng, n2)
        mult, shift = _requant_params(rng, n2)
        _, out_zp, lo, hi = _quant(rng)
        out.append((f"mlp{i} p{p} k{k} hidden{n1} n{n2}",
                    H.mlp_call(x, w1, in_zp, scale, bias, table, w2, b2, mult, shift, hidden_zp, out_zp, lo, hi,
                               lib),
                    R.conv1x1(hidden[None], w2, b2, mult, shift, hidden_zp, out_zp, lo, hi)[0]))
    return out


def add_dq_cases(rng, n_cases, lib):
    """wrnn_add_dq_s8 against numpy's float32 arithmetic (each product and the sum rounded once) and
    int8_ref.quantize_f32: channel tails, extreme zero points, sums far past the output range."""
    out = []
    for i in range(n_cases):
        p, c = int(rng.integers(1, 40)), int(rng.choice(CHANNELS + [4, 96]))
        a, b = _i8(rng, p, c), _i8(rng, p, c)
        a_zp, b_zp = (int(v) for v in rng.integers(-128, 128, 2))
        a_s, b_s = (np.float32(v) for v in rng.uniform(0.001, 0.2, 2))
        qs, qz = _q_params(rng, c, float(rng.choice([2.0, 10.0, 40.0])))
        x = ((a.astype(np.int32) - a_zp).astype(np.float32) * a_s).astype(np.float32) + \
            ((b.astype(np.int32) - b_zp).astype(np.float32) * b_s).astype(np.float32)
        out.append((f"add_dq{i} p{p} c{c}", H.add_dq_call(a, b, a_zp, a_s, b_zp, b_s, qs, qz),
                    R.quantize_f32(x.astype(np.float32), None, qs, qz, False)))
    return out


KERNELS = {"requantize": requant_cases, "fc": fc_cases, "conv1x1": conv1x1_cases, "conv": conv_cases,
           "dwconv": dwconv_cases, "avgpool": avgpool_cases, "lut": lut_cases, "mul": mul_cases, "add": add_cases,
           "matmul": matmul_cases, "conv1x1_gelu": conv1x1_gelu_cases, "gelu": gelu_cases,
           "dwconv_f32": dwconv_f32_cases, "matmul_f32": matmul_f32_cases,
           "quantize_f32": quantize_f32_cases, "conv1x1_q8": conv1x1_q8_cases, "dwconv_q8": dwconv_q8_cases,
           "dwconv3x3_q8": dwconv_q8_tile_cases, "mean_f32": mean_f32_cases, "mlp": mlp_cases,
           "add_dq": add_dq_cases}


# ------------------------------------------------------------------ the arithmetic itself

def gemmlowp_srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul, transcribed with Python ints and C truncating division."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)
    return q if ab + nudge >= 0 else -q


def exact_rdbpot(x: int, e: int) -> int:
    """x / 2^e rounded to nearest, ties away from zero, with exact rationals."""
    f = Fraction(x, 1 << e)
    r = math.floor(abs(f) + Fraction(1, 2))
    return r if f >= 0 else -r


def test_srdhm_matches_gemmlowp_on_edges_and_ties():
    rng = np.random.default_rng(1)
    vals = [I32_MIN, I32_MIN + 1, I32_MAX, -1, 0, 1, 2**30, -(2**30), 3, -3]
    pairs = [(a, b) for a in vals for b in vals] + [(int(a), int(b)) for a, b in
                                                     rng.integers(I32_MIN, I32_MAX, (2000, 2), endpoint=True)]
    pairs += [(a, 2**30) for a in range(-9, 10)]  # a/2: ties for odd a, both signs
    a, b = np.array(pairs).T
    got = R.srdhm(a, b)
    assert got.tolist() == [gemmlowp_srdhm(int(x), int(y)) for x, y in pairs]
    assert R.srdhm(I32_MIN, I32_MIN) == I32_MAX
    # the convention: ties round up (towards +inf), as gemmlowp and VQRDMULH do
    assert R.srdhm(-3, 2**30) == -1 and R.srdhm(3, 2**30) == 2


def test_rdbpot_rounds_half_away_from_zero():
    rng = np.random.default_rng(2)
    xs = [I32_MIN, I32_MAX, -1, 0, 1, -2, 2, -3, 3, 5, -5, 6, -6] + rng.integers(I32_MIN, I32_MAX, 500).tolist()
    for e in (0, 1, 2, 3, 16, 30, 31):
        got = R.rdbpot(np.array(xs), e).tolist()
        assert got == [exact_rdbpot(int(x), e) for x in xs], e
    assert R.rdbpot(-5, 1) == -3 and R.rdbpot(5, 1) == 3 and R.rdbpot(-3, 1) == -2


def test_requant_left_shift_saturates_before_the_high_mul():
    # shift 31: l = 32, acc * 2^32 saturates to INT32_MAX; DMULH(MAX, MAX) = MAX - 1; rounding shift by 1 -> 2^30 - 1
    assert R.scale(I32_MAX, I32_MAX, 31) == 2**30 - 1
    assert R.scale(I32_MIN, I32_MIN, 1) == 2**30  # saturated to MIN, then MIN * MIN -> MAX, then (MAX + 1) / 2
    assert R.scale(-1, I32_MAX, 31) == (R.dmulh(I32_MIN, I32_MAX) + 1) >> 1


def test_requant_is_one_rounding_of_the_exact_product():
    """Without saturation, scale(acc) is acc * mult * 2^(shift - 31) rounded once to the nearest integer, ties
    towards +inf (exact rationals), incl. exact ties; TFLite's double rounding differs on some of these."""
    rng = np.random.default_rng(3)
    cases = [(int(a), int(m), int(s)) for a, m, s in zip(rng.integers(-2**24, 2**24, 3000),
                                                          rng.integers(2**30, 2**31 - 1, 3000),
                                                          rng.integers(-31, 5, 3000))]
    # (no saturation above: |acc| * 2^(shift + 1) < 2^31)
    cases += [((2 * j + 1) << e, 2**30, -e) for e in (1, 2, 5, 12) for j in range(-3, 3)]  # exact ties
    cases += [(a, 2**30, 0) for a in range(-9, 10)] + [(a, -(2**30) - 7, -3) for a in range(-50, 50)]
    a, m, s = (np.array(v, np.int64) for v in zip(*cases))
    got = R.scale(a, m, s).tolist()
    want = [math.floor(Fraction(x * y) * Fraction(2) ** (z - 31) + Fraction(1, 2)) for x, y, z in cases]
    assert got == want
    assert R.scale(-3, 2**30, -1) == -1 and R.scale(3, 2**30, -1) == 1  # -0.75, 0.75
    assert R.scale(-1, 2**30, -0) == 0 and R.scale(1, 2**30, 0) == 1  # -0.5 -> 0, 0.5 -> 1 (half up)


@pytest.mark.parametrize("real", [1e-9, 2.3e-5, 0.0012, 0.25, 0.5, 0.999999999, 1.0, 1.5, 3.0e3, 2.0**30])
def test_quantize_multiplier_reconstructs_the_scale(real):
    mult, shift = R.quantize_multiplier(real)
    assert 2**30 <= mult <= I32_MAX and -31 <= shift <= 31
    assert abs(mult * 2.0 ** (shift - 31) - real) <= real * 2.0**-30


def test_quantize_multiplier_edges():
    assert R.quantize_multiplier(0.0) == (0, 0)
    assert R.quantize_multiplier(1e-12) == (0, 0)  # below 2^-32: outputs become out_zp
    assert R.quantize_multiplier(1.0) == (2**30, 1)
    assert R.quantize_multiplier(0.5) == (2**30, 0)
    assert R.quantize_multiplier(1 - 2.0**-40) == (2**30, 1)  # rounds up to 2^31: halved, shift bumped
    with pytest.raises(ConfigError, match="real_scale"):
        R.quantize_multiplier(-1.0)
    with pytest.raises(ConfigError, match="shift 32"):
        R.quantize_multiplier(2.0**31)


def test_lut_table_hardswish():
    t = R.lut_table(lambda v: v * np.clip(v + 3, 0, 6) / 6, 0.1, 0, 0.1, 0)
    assert t.shape == (256,) and t.dtype == np.int8
    assert t[128] == 0 and t[128 + 40] == 40 and t[128 - 40] == 0  # 0 -> 0; 4.0 -> 4.0; -4.0 -> 0
    with pytest.raises(ConfigError, match="scales"):
        R.lut_table(np.tanh, 0.0, 0, 0.1, 0)


# ------------------------------------------------------------------ host scalar build == numpy

GELU_PARAMS = [(1.4142135, 0.05, -100), (1.4142135, 0.011, -128), (1.4142135, 0.2, 0), (1.4142135, 0.003, 20),
               (1.0, 0.04, 127), (2.5, 0.5, -128), (1.4142135, 0.0009, -60)]


@pytest.mark.parametrize("c, s, zp", GELU_PARAMS)
def test_gelu_table_is_the_exact_function(c, s, zp):
    """The step table reads the exact Q(x * (erf(x / c) + 1)) (float64 erf) at every float32 tried: random values
    over the whole range, each threshold and the 20 floats on either side of it, the first and last bins' edges."""
    table = R.gelu_table(np.float32(c), np.float32(s), zp)
    bins = int(table[0])
    thr = table[R.GELU_HEADER:R.GELU_HEADER + bins].view(np.float32)
    thr = thr[thr < np.finfo(np.float32).max]
    assert thr.size >= 10  # the table holds the steps of the curve, not a constant
    bits = thr.view(np.int32)[:, None] + np.arange(-20, 21)[None, :]
    near = np.where(thr[:, None] >= 0, bits, thr.view(np.int32)[:, None] - np.arange(-20, 21)[None, :])
    rng = np.random.default_rng(5)
    x = np.concatenate([near.astype(np.int32).view(np.float32).ravel(), rng.standard_normal(20000) * 4,
                        rng.uniform(-1000, 1000, 2000), np.float32(table[1:2].view(np.float32)) + [-1, 0, 1],
                        [0.0, -0.0, 3e38, -3e38]]).astype(np.float32)
    assert np.array_equal(R.gelu_lookup(x, table), R.gelu_q_exact(x, c, s, zp))


def test_gelu_table_thresholds_matter_and_bad_tables_fail():
    """Moving one threshold by a single float32 step changes what the table reads there (the check above can fail);
    a bin width wider than two steps is refused by name, as are bad constants; the kernel refuses a bad header."""
    table = R.gelu_table(np.float32(1.4142135), np.float32(0.05), -100)
    bins = int(table[0])
    thr = table[R.GELU_HEADER:R.GELU_HEADER + bins].view(np.float32)
    k = int(np.flatnonzero(thr < 1e30)[len(np.flatnonzero(thr < 1e30)) // 2])
    x = thr[k:k + 1].copy()
    bent = table.copy()
    bent[R.GELU_HEADER + k] = np.nextafter(thr[k], np.float32(np.inf)).view(np.int32)
    assert R.gelu_lookup(x, bent)[0] != R.gelu_q_exact(x, 1.4142135, 0.05, -100)[0]
    with pytest.raises(DataError, match="holds two steps"):
        R.gelu_table(np.float32(1.4142135), np.float32(0.05), -100, width=3.0)
    for bad in ((0.0, 0.05, 0), (1.4142135, -0.05, 0), (1.4142135, 0.05, 300), (np.inf, 0.05, 0)):
        with pytest.raises(ConfigError, match="gelu_table"):
            R.gelu_table(*bad)


def test_matmul_f32_rejects_bad_arguments(lib):
    rng = np.random.default_rng(3)
    a, b = _i8(rng, 2, 4, 8), _i8(rng, 2, 5, 8)
    assert lib.run(H.matmul_f32_call(a, b, 0, 0, 0.01, lib))[0] == 0
    assert lib.run(H.matmul_f32_call(a, b, 0, 130, 0.01, lib))[0] == -3  # zero point out of range
    call = H.matmul_f32_call(a, b, 0, 0, 0.01, lib)
    call.args[0] = 0  # no heads
    assert lib.run(call)[0] == -2
    call = H.matmul_f32_call(a, b, 0, 0, 0.01, lib)
    call.bufs[2] = None  # no scale
    assert lib.run(call)[0] == -1
    assert lib.scratch_bytes("matmul_f32", [4, 5]) == 4 * (4 + 2 * 5)


def test_quantize_f32_without_a_divide_equals_division(lib):
    """wrnn_quantize_f32 computes x / s with two fused multiply-adds: on a million random (x, s) whose quotient lies
    where the int8 rounding is decided, its levels equal those of a true division; and the comparison can fail
    (the plain x * (1 / s) it corrects differs at ties)."""
    rng = np.random.default_rng(11)
    c = 1000
    s = (rng.uniform(1, 2, c) * np.float32(2.0) ** rng.integers(-12, 2, c)).astype(np.float32)
    zp = np.zeros(c, np.float32)
    q = rng.integers(-150, 150, (1000, c)) + np.where(rng.random((1000, c)) < 0.5, 0.5, rng.random((1000, c)))
    x = (q * s).astype(np.float32)
    rc, got = lib.run(H.quantize_f32_call(x, None, s, zp))
    assert rc == 0 and np.array_equal(got, R.quantize_f32(x, None, s, zp))
    naive = np.clip(np.rint(x * (np.float32(1) / s)), -128, 127).astype(np.int8)
    assert not np.array_equal(naive, got)


def test_quantize_f32_rejects_bad_arguments(lib):
    a = np.ones((2, 3), np.float32)
    assert lib.run(H.quantize_f32_call(a, None, [0.1] * 3, [0] * 3))[0] == 0
    for scale, zp in (([0.1, 0.0, 0.1], [0] * 3), ([0.1] * 3, [0, 128, 0]), ([0.1] * 3, [0, 0.5, 0]),
                      ([0.1, np.nan, 0.1], [0] * 3)):
        assert lib.run(H.quantize_f32_call(a, None, scale, zp))[0] == -3, (scale, zp)
    call = H.quantize_f32_call(a, None, [0.1] * 3, [0] * 3)
    call.bufs[0] = None
    assert lib.run(call)[0] == -1
    call = H.quantize_f32_call(a, None, [0.1] * 3, [0] * 3)
    call.args[1] = 0
    assert lib.run(call)[0] == -2
    assert lib.run(H.quantize_f32_call(a, a, [0.1] * 3, [0] * 3, relu=True))[0] == -2  # relu of a sum: not a case


def test_gelu_kernel_rejects_a_bad_table(lib):
    table = R.gelu_table(np.float32(1.4142135), np.float32(0.05), -100)
    x = np.linspace(-3, 3, 9, dtype=np.float32)
    assert lib.run(H.gelu_call(x, table))[0] == 0
    for word, value in ((0, 1), (0, -5), (2, np.float32(0).view(np.int32)), (2, np.float32(-1).view(np.int32))):
        bad = table.copy()
        bad[word] = value
        assert lib.run(H.gelu_call(x, bad))[0] == -3, (word, value)
    call = H.gelu_call(x, table)
    call.bufs[1] = None
    assert lib.run(call)[0] == -1


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_host_matches_reference(kernel, lib):
    rng = np.random.default_rng(list(KERNELS).index(kernel) + 100)
    for name, call, want in KERNELS[kernel](rng, 25, lib):
        rc, got = lib.run(call)
        assert rc == 0, name
        assert got.shape == want.shape, name
        assert np.array_equal(got, want), f"{name}: {np.count_nonzero(got != want)} of {got.size} differ"


def test_wrong_shift_is_detected(lib):
    """The comparison can fail: the reference with every shift off by one differs from the kernel."""
    rng = np.random.default_rng(7)
    x, w = _i8(rng, 6, 40), _i8(rng, 24, 40)
    mult, shift = _requant_params(rng, 24)
    shift = np.clip(shift, -14, -3)
    rc, got = lib.run(H.fc_call(x, w, None, mult, shift, 0, 0, -128, 127))
    assert rc == 0
    assert np.array_equal(got, R.fc(x, w, None, mult, shift, 0, 0, -128, 127))
    assert not np.array_equal(got, R.fc(x, w, None, mult, shift + 1, 0, 0, -128, 127))
    assert not np.array_equal(got, R.fc(x, w, None, mult, shift - 1, 0, 0, -128, 127))


def test_bad_arguments_return_error_codes(lib):
    rng = np.random.default_rng(8)
    x, w = _i8(rng, 2, 8), _i8(rng, 4, 8)
    m, s = np.full(4, 2**30), np.full(4, -3)
    assert lib.run(H.fc_call(x, w, None, m, s, 0, 0, -128, 127))[0] == 0
    assert lib.run(H.fc_call(x, w, None, m, s, 200, 0, -128, 127))[0] == -3  # zero point out of range
    assert lib.run(H.fc_call(x, w, None, m, s, 0, 0, 10, -10))[0] == -3  # empty clamp
    assert lib.run(H.fc_call(x, w, None, m, np.full(4, 32), 0, 0, -128, 127))[0] == -3  # shift out of range
    call = H.fc_call(x, w, None, m, s, 0, 0, -128, 127)
    call.bufs[0] = None
    assert lib.run(call)[0] == -1
    call = H.fc_call(x, w, None, m, s, 0, 0, -128, 127)
    call.args[0] = 0
    assert lib.run(call)[0] == -2
    # a window that lies entirely in the padding is rejected, as is depthwise with out_c != in_c
    g = H.geom((4, 4, 3), (4, 4), 3, (3, 3), (2, 2), (1, 1))
    assert lib.scratch_bytes("conv", g) == -2
    assert lib.scratch_bytes("dwconv", H.geom((4, 4, 3), (4, 4), 5, (3, 3), (1, 1), (1, 1))) == -2
    assert lib.scratch_bytes("conv", H.geom((4, 4, 3), (4, 4), 8, (3, 3), (1, 1), (1, 1))) == 4 * 8 + 32 * 27


def test_kernels_are_package_data():
    from importlib import resources

    kdir = resources.files("wordrec.device") / "kernels"
    assert (kdir / "wrnn.h").is_file() and (kdir / "wrnn.c").is_file()


# ------------------------------------------------------------------ QEMU (Helium path) == host

QEMU_CASES = 8  # per kernel, all in one QEMU boot (~1 s)


@pytest.fixture(scope="module")
def qemu_run(lib, build_dir, tmp_path_factory):
    from wordrec.device import int8_qemu

    cases = []
    for i, (kernel, gen) in enumerate(KERNELS.items()):
        cases += [(kernel, *c) for c in gen(np.random.default_rng(1000 + i), QEMU_CASES, lib)]
    res = int8_qemu.run_qemu([c[2] for c in cases], tmp_path_factory.mktemp("wrnn_qemu"), build_dir)
    return cases, res


@device
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_qemu_helium_matches_host(kernel, qemu_run, lib):
    cases, res = qemu_run
    seen = 0
    for (k, name, call, want), (rc, got) in zip(cases, res["results"]):
        if k != kernel:
            continue
        seen += 1
        host_rc, host = lib.run(call)
        assert rc == 0 == host_rc, name
        assert np.array_equal(host, want), name
        assert np.array_equal(got, host), f"{name}: {np.count_nonzero(got != host)} of {got.size} differ on QEMU"
    assert seen >= QEMU_CASES


@device
def test_qemu_detects_a_wrong_shift(lib, build_dir, tmp_path):
    """Device output compared with a host run whose shifts are off by one must differ."""
    from wordrec.device import int8_qemu

    rng = np.random.default_rng(9)
    x, w = _i8(rng, 3, 5, 21), _i8(rng, 3, 3, 21)
    mult, shift = _requant_params(rng, 21)
    shift = np.clip(shift, -14, -3)
    geo = ((1, 1), (1, 1), (3, 5))
    good = H.dwconv_call(x, w, None, mult, shift, 0, 0, -128, 127, *geo, lib)
    off = H.dwconv_call(x, w, None, mult, shift + 1, 0, 0, -128, 127, *geo, lib)
    (rc, dev), = int8_qemu.run_qemu([good], tmp_path, build_dir)["results"]
    assert rc == 0
    assert np.array_equal(dev, lib.run(good)[1])
    assert not np.array_equal(dev, lib.run(off)[1])


@device
def test_qemu_scalar_path_matches_too(lib, build_dir, tmp_path):
    """-DWRNN_SCALAR on the device: the portable path gives the same bits there as well."""
    from wordrec.device import int8_qemu

    rng = np.random.default_rng(11)
    cases = conv_cases(rng, 2, lib) + dwconv_cases(rng, 2, lib) + requant_cases(rng, 1, lib)[:2]
    res = int8_qemu.run_qemu([c[1] for c in cases], tmp_path, build_dir, extra_cflags=["-DWRNN_SCALAR"])
    for (name, _, want), (rc, got) in zip(cases, res["results"]):
        assert rc == 0 and np.array_equal(got, want), name


@device
def test_qemu_throughput_floor(lib, build_dir, tmp_path):
    """MACs per executed instruction on the benchmark shapes stay above a floor (catches de-vectorisation)."""
    from wordrec.device import int8_qemu

    rows = int8_qemu.measure(lib, build_dir, tmp_path)
    by = {r["name"]: r for r in rows}
    assert all(r["match"] for r in rows), [r["name"] for r in rows if not r["match"]]
    # floors a little under the measured figures (docs/int8_kernels.md); QEMU's counts are deterministic
    assert by["conv1x1"]["macs_per_insn"] >= 3.9
    assert by["fc"]["macs_per_insn"] >= 3.3
    assert by["conv3x3"]["macs_per_insn"] >= 1.0
    assert by["dwconv3x3"]["macs_per_insn"] >= 0.45
    assert by["dwconv5x5"]["macs_per_insn"] >= 0.75
    body = [r for r in rows if r["name"].startswith("model/")]
    assert sum(r["macs"] for r in body) / sum(r["insns"] for r in body) >= 2.0


@device
def test_qemu_vmladava_tail_predication(lib, build_dir, tmp_path):
    """K around multiples of 16 (predicated VMLADAVA tail), channel tails (1..5 of a block of 4), pixel chunks
    past 32: every edge of the Helium GEMM loop structure, against numpy directly."""
    from wordrec.device import int8_qemu

    rng = np.random.default_rng(12)
    cases = []
    for k in (1, 15, 16, 17, 31, 32, 33, 48):
        for n, m in ((1, 1), (3, 5), (5, 33), (4, 64)):
            x, w = _i8(rng, m, k), _i8(rng, n, k)
            mult, shift = _requant_params(rng, n)
            q = (int(rng.integers(-128, 128)), 0, -128, 127)
            cases.append((H.fc_call(x, w, None, mult, shift, *q), R.fc(x, w, None, mult, shift, *q)))
    res = int8_qemu.run_qemu([c for c, _ in cases], tmp_path, build_dir)
    for (call, want), (rc, got) in zip(cases, res["results"]):
        assert rc == 0 and np.array_equal(got, want), call.args[:3]


@device
def test_qemu_fused_gelu_equals_the_two_calls_on_helium(lib, build_dir, tmp_path):
    """On the Helium path too, the fused conv1x1 + GELU kernel gives the int8 values of wrnn_conv1x1_s8_f32 followed
    by wrnn_gelu_s8 (both run on QEMU), and the output actually depends on the GELU's table."""
    from wordrec.device import int8_qemu

    rng = np.random.default_rng(13)
    calls = []
    for p, k, n in ((33, 17, 5), (2, 100, 16), (65, 48, 3), (1, 1, 1)):
        x, w = _i8(rng, p, k), _i8(rng, n, k)
        scale = (rng.uniform(0.5, 1.5, n) * 3 / (64 * 128 * math.sqrt(k))).astype(np.float32)
        args = [x, w, -7, scale, rng.uniform(-1, 1, n).astype(np.float32),
                R.gelu_table(np.float32(1.4142135), np.float32(1 / 30), -100)]
        calls += [H.conv1x1_gelu_call(*args), H.conv1x1_gelu_call(*args, fused=False)]
        args[5] = R.gelu_table(np.float32(1.4142135), np.float32(1 / 31), -100)
        calls.append(H.conv1x1_gelu_call(*args))
    res = int8_qemu.run_qemu(calls, tmp_path, build_dir)["results"]
    for j in range(0, len(calls), 3):
        (rc_f, fused), (rc_u, two), (_, other) = res[j:j + 3]
        assert rc_f == 0 == rc_u
        assert np.array_equal(fused, two), calls[j].args[:3]
        assert np.array_equal(fused, lib.run(calls[j])[1]), calls[j].args[:3]
        if fused.size > 4:
            assert not np.array_equal(fused, other)


# ppocrv6_small's depthwise layers (H, W, C, KH, KW, stride, pad), as its compiled runner calls wrnn_dwconv_s8_f32
PPOCRV6_DW = [(12, 80, 96, 3, 3, (1, 1), (1, 1)), (12, 80, 96, 3, 3, (2, 1), (1, 1)),
              (6, 80, 192, 3, 3, (1, 1), (1, 1)), (6, 80, 192, 3, 3, (2, 1), (1, 1)),
              (3, 80, 384, 3, 3, (1, 1), (1, 1)), (1, 40, 120, 1, 7, (1, 1), (0, 3))]


def test_dwconv_f32_float_accumulation_edges(lib):
    """Host == numpy on the shapes that bound the Helium path's exact float accumulation: extreme zero points
    (-128 / 127 with inputs and weights at -128), windows cut on every side, C = 1, 3, 17, 33."""
    rng = np.random.default_rng(21)
    cases = dwconv_f32_edge_cases(rng)
    for name, call, want in cases:
        rc, got = lib.run(call)
        assert rc == 0 and np.array_equal(got, want), name


def dwconv_f32_edge_cases(rng):
    out = []
    for c in (1, 3, 4, 17, 33):
        for kh, kw, s, p in ((3, 3, (1, 1), (1, 1)), (3, 3, (2, 2), (1, 1)), (3, 3, (2, 1), (1, 1)),
                             (3, 3, (1, 1), (0, 2)), (1, 7, (1, 1), (0, 3)), (5, 5, (1, 2), (2, 2))):
            out.append(dwconv_f32_case(rng, "edge", 5, 13, c, kh, kw, s, p, bias=c % 2 == 1))
    # one kernel row wider than 3 with padding: the row converted with zero-point columns (1x4..1x7, padding 1-3,
    # widths 4..9 so the last tile is recomputed, row stride 2, one channel tail block, a row wider than the copy)
    for h, wd, c, kw, sh, pw in ((1, 4, 8, 4, 1, 1), (3, 9, 12, 5, 2, 2), (2, 6, 6, 7, 1, 3), (1, 7, 4, 7, 1, 3),
                                 (1, 130, 8, 7, 1, 3), (2, 5, 16, 6, 1, 1)):
        out.append(dwconv_f32_case(rng, "row", h, wd, c, 1, kw, (sh, 1), (0, pw), bias=c % 8 == 0))
    for zp in (-128, 127):  # largest |x - zp| and |zp * sum w|: every partial sum must stay exact in float32
        name, call, _ = dwconv_f32_case(rng, f"zp{zp}", 1, 11, 8, 1, 7, (1, 1), (0, 3), zp=zp)
        x, w, zps, scale, bias = call.bufs[:5]
        x[...] = 127 if zp == -128 else -128
        w[...] = -128
        out.append((name, call, _f32_bytes(R.dwconv_f32(x, w, zps, scale, bias, (1, 1), (0, 3), (1, 11)))))
        name, call, _ = dwconv_f32_case(rng, f"zp{zp}", 4, 11, 8, 3, 3, (1, 1), (1, 1), zp=zp)
        x, w, zps, scale, bias = call.bufs[:5]
        x[...] = 127 if zp == -128 else -128
        w[...] = -128
        out.append((name, call, _f32_bytes(R.dwconv_f32(x, w, zps, scale, bias, (1, 1), (1, 1), (4, 11)))))
    # bias -0.0 with an all-zero weight channel: the sum must be +0.0 as (float)0 is, or the sign of the output flips
    name, call, _ = dwconv_f32_case(rng, "negzero", 3, 9, 8, 3, 3, (1, 1), (1, 1), zp=0)
    x, w, zps, scale, bias = call.bufs[:5]
    w[..., :4] = 0
    x[...] = -np.abs(x.astype(np.int16)).clip(1, 127).astype(np.int8)
    bias[:4] = -0.0
    out.append((name, call, _f32_bytes(R.dwconv_f32(x, w, zps, scale, bias, (1, 1), (1, 1), (3, 9)))))
    for i, (h, wd, c, kh, kw, s, p) in enumerate(PPOCRV6_DW):
        out.append(dwconv_f32_case(rng, f"ppocrv6/{i}", h, wd, c, kh, kw, s, p))
    return out


@device
def test_qemu_dwconv_f32_edges_and_throughput(lib, build_dir, tmp_path):
    """Helium wrnn_dwconv_s8_f32 == numpy bit for bit on the edge cases (border tiles, stride 2, channel tails,
    1x7, extreme zero points, -0.0 bias) and >= 1 MAC per executed instruction on ppocrv6_small's 3x3 layers."""
    from wordrec.device import int8_qemu

    cases = dwconv_f32_edge_cases(np.random.default_rng(21))
    res = int8_qemu.run_qemu([c[1] for c in cases], tmp_path, build_dir, timeout_s=300)
    for (name, call, want), (rc, got), insns in zip(cases, res["results"], res["insns"]):
        assert rc == 0 and np.array_equal(got, want), name
        if name.startswith("ppocrv6/"):
            h, wd, c, kh, kw, s, p = PPOCRV6_DW[int(name.split("/")[1].split()[0])]
            macs = int(np.prod(want.shape[:3])) * kh * kw
            assert macs / insns >= (1.0 if kh == 3 else 0.75), (name, macs / insns)


def dwconv_q8_tile_edge_cases(rng, lib, op):
    """The tile path's edges through `op`, and (wrnn_dwconv_s8_q8 only) calls it leaves to the row-by-row path
    (per-channel quantizer, a scale too large for the clamp-free quantize): all equal numpy either way."""
    def t(*args, **kw):
        return dwconv_q8_tile_case(rng, *args, lib=lib, op=op, **kw)

    out = [t("one row, two outside", 1, 9, 8, 1, (1, 1), False), t("pad 2 top and bottom", 3, 7, 8, 1, (2, 2), True),
           t("stride 3", 9, 6, 12, 3, (1, 0), False), t("4 wide, 4 channels", 5, 4, 4, 1, (1, 1), True),
           t("5 wide: last tile again", 4, 5, 4, 2, (1, 1), False, bias=False),
           t("zero points -128", 4, 11, 8, 1, (1, 1), False, zp=-128),
           t("zero points 127", 4, 11, 8, 1, (1, 1), True, zp=127)]
    x = np.full((4, 12, 8), -128, np.int8)  # extreme inputs and weights: the largest exact partial sums
    w = np.full((3, 3, 8), -128, np.int8)
    zp, scale, qs, qz = np.full(8, 127), np.full(8, 1e-6, np.float32), np.full(8, 0.05, np.float32), np.zeros(8)
    f = R.dwconv_f32(x, w, zp, scale, None, (1, 1), (1, 1), (4, 12))
    out.append(("extreme values", H.dwconv_q8_call(x, w, zp, scale, None, (1, 1), (1, 1), (4, 12), qs,
                                                   qz.astype(np.float32), False, lib, op),
                R.quantize_f32(f, None, qs, qz.astype(np.float32), False)))
    if op == "dwconv_q8":
        out.append(t("scale too large: row path", 3, 8, 8, 1, (1, 1), False, scale_mag=1e31))
        name, call, _ = t("per-channel quantizer: row path", 4, 9, 8, 1, (1, 1), False)
        x, w, zp, scale, b = call.bufs[:5]
        qs, qz = _q_params(rng, 8, 5.0)
        f = R.dwconv_f32(x, w, zp, scale, b, (1, 1), (1, 1), (4, 9))
        out.append((name, H.dwconv_q8_call(x, w, zp, scale, b, (1, 1), (1, 1), (4, 9), qs, qz, False, lib, op),
                    R.quantize_f32(f, None, qs, qz, False)))
    return out + [(n.replace("dwconv_q8_tile", op), c, w) for n, c, w in dwconv_q8_tile_cases(rng, 30, lib)]


def test_dwconv3x3_q8_takes_only_its_shapes_and_quantizers(lib):
    """wrnn_dwconv3x3_s8_q8 rejects what its tiles cannot do exactly: other windows / strides / channel counts /
    rows under 4 pixels (WRNN_EDIM from the scratch size), a per-channel quantizer or a scale beyond the quantize's
    bound (WRNN_EQUANT); wrnn_dwconv_s8_q8 computes the same calls."""
    rng = np.random.default_rng(31)
    for kh, kw, c, st, wd in [(3, 5, 8, (1, 1), 9), (3, 3, 6, (1, 1), 9), (3, 3, 8, (1, 2), 9), (3, 3, 8, (1, 1), 3)]:
        g = H.geom((5, wd, c), (5, H.conv_out_dim(wd, kw, st[1], 1, 1)), c, (kh, kw), st, (1, 1))
        assert lib.scratch_bytes("dwconv3x3_q8", g) == -2, (kh, kw, c, st, wd)
    g = H.geom((5, 9, 8), (5, 9), 8, (3, 3), (1, 1), (1, 1))
    assert 0 < lib.scratch_bytes("dwconv3x3_q8", g) == 16 * 14 + 48 * 11 < lib.scratch_bytes("dwconv_q8", g) + 1000
    name, call, want = dwconv_q8_tile_case(rng, "ok", 5, 9, 8, 1, (1, 1), False, lib=lib)
    assert lib.run(call)[0] == 0 and np.array_equal(lib.run(call)[1], want)
    x, w, zp, scale, b, qs, qr, qz = call.bufs[:8]
    for bad in ("per-channel", "huge scale", "zero point"):
        rcs = [lib.run(H.dwconv_q8_call(x, w, zp, scale * (1e31 if bad == "huge scale" else 1), b, (1, 1), (1, 1),
                                        (5, 9), qs * (np.arange(8) + 1 if bad == "per-channel" else 1),
                                        qz + (300 if bad == "zero point" else 0), False, lib, op))[0]
               for op in ("dwconv3x3_q8", "dwconv_q8")]
        assert rcs == [-3, -3 if bad == "zero point" else 0], bad


@device
def test_qemu_dwconv_q8_tiles_edges_and_throughput(lib, build_dir, tmp_path):
    """Helium wrnn_dwconv3x3_s8_q8 and wrnn_dwconv_s8_q8 == numpy bit for bit on the tile path's edges, and the
    tiles' MACs per executed instruction (the quantize included) on ppocrv6_small's 3x3 layers: >= 1 at stride 1,
    >= 0.85 at stride 2 down (each input row feeds 1.5 output rows there instead of 3, so its conversion to float
    weighs twice)."""
    from wordrec.device import int8_qemu

    rng = np.random.default_rng(23)
    cases = dwconv_q8_tile_edge_cases(rng, lib, "dwconv3x3_q8") + dwconv_q8_tile_edge_cases(rng, lib, "dwconv_q8")
    shapes = [s for s in PPOCRV6_DW if s[3] == 3]
    for i, (h, wd, c, _, _, st, pad) in enumerate(shapes):
        cases.append(dwconv_q8_tile_case(rng, f"ppocrv6/{i}", h, wd, c, st[0], pad, False, lib=lib))
    res = int8_qemu.run_qemu([c[1] for c in cases], tmp_path, build_dir, timeout_s=300)
    for (name, call, want), (rc, got), insns in zip(cases, res["results"], res["insns"]):
        assert rc == 0 and np.array_equal(got, want), name
        assert np.array_equal(lib.run(call)[1], want), name
        if name.startswith("ppocrv6/"):
            h, wd, c, kh, kw, st, pad = shapes[int(name.split("/")[1].split()[0])]
            macs = int(np.prod(want.shape)) * kh * kw
            assert macs / insns >= (1.0 if st[0] == 1 else 0.85), (name, macs / insns)


def test_offload_knows_when_dwconv3x3_q8_takes_a_call(lib):
    """The compiler's mirror of wrnn_dwconv3x3_s8_q8's precondition (offload.dwconv3x3_q8_ok, and its scratch size)
    gives the kernel's own answer on calls at both sides of every condition."""
    from wordrec.device.compile.offload import dwconv3x3_q8_ok, dwconv3x3_q8_scratch_bytes

    rng = np.random.default_rng(37)
    fields = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "pad_top",
              "pad_left")
    variants = [("ok", {}), ("per-channel scale", {"qs": True}), ("scale at the bound", {"mag": 1e12}),
                ("scale past the bound", {"mag": 1e13}), ("infinite bias", {"bias": np.inf}),
                ("4 wide", {"wd": 4}), ("3 wide", {"wd": 3}), ("6 channels", {"c": 6}), ("5x5", {"k": 5}),
                ("column stride 2", {"sw": 2}), ("row stride 2", {"sh": 2})]
    for name, v in variants:
        c, k, wd, sh, sw = v.get("c", 8), v.get("k", 3), v.get("wd", 9), v.get("sh", 1), v.get("sw", 1)
        oh, ow = H.conv_out_dim(6, k, sh, 1, 1), H.conv_out_dim(wd, k, sw, 1, 1)
        x, w = _i8(rng, 6, wd, c), _i8(rng, k, k, c)
        zp = rng.integers(-128, 128, c)
        scale = (rng.random(c).astype(np.float32) + 0.5) * np.float32(v.get("mag", 1e-3))
        bias = rng.standard_normal(c).astype(np.float32)
        bias[0] = v.get("bias", bias[0])
        qs = np.full(c, 0.05, np.float32) * (np.arange(1, c + 1) if v.get("qs") else 1)
        qz = np.full(c, -3, np.float32)
        g = H.geom(x.shape, (oh, ow), c, (k, k), (sh, sw), (1, 1))
        gd = dict(zip(fields, g))
        try:
            call = H.dwconv_q8_call(x, w, zp, scale, bias, (sh, sw), (1, 1), (oh, ow), qs, qz, False, lib,
                                    "dwconv3x3_q8")
            takes = lib.run(call)[0] == 0
            assert lib.scratch_bytes("dwconv3x3_q8", g) == dwconv3x3_q8_scratch_bytes(gd), name
        except ConfigError:  # the scratch size already says no
            takes = False
        recip = (np.float32(1) / qs).astype(np.float32)
        assert dwconv3x3_q8_ok(gd, scale, bias, qs, recip, qz) == takes, name
        assert takes == (name in ("ok", "scale at the bound", "4 wide", "row stride 2")), name


def test_offload_sizes_the_mlp_scratch_as_the_kernel(lib):
    """offload.mlp_scratch_bytes (the plan's size for wrnn_mlp_s8's scratch) == the kernel's own, on hidden widths
    whose band is 1 pixel, under a chunk, whole chunks, and larger than the map."""
    from wordrec.device.compile.offload import mlp_scratch_bytes

    for pixels, hidden, out_c in [(960, 192, 48), (240, 768, 192), (7, 1100, 3), (5, 40000, 9), (100, 8, 4)]:
        assert lib.scratch_bytes("mlp", [pixels, hidden, out_c]) == mlp_scratch_bytes(pixels, hidden, out_c)
