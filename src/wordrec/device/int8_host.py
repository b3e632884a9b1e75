"""Host build of the wrnn kernels (system gcc, scalar path) and numpy-facing wrappers.

Reads the C sources under wordrec/device/{kernels,harness}; writes `libwrnn-<hash>.so` into the build directory
the caller passes (rebuilt only when the sources or flags change). Every kernel wrapper first builds a `Call`
(opcode, int32 arguments, buffers; the last buffer is the output) so the same call can run on the host
(`run_host`) or be shipped to the device (wordrec.device.int8_qemu.run_qemu) with identical arguments.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError

OPS = {"requantize": 0, "conv1x1": 1, "fc": 2, "conv": 3, "dwconv": 4, "avgpool": 5, "lut": 6, "mul": 7,
       "add": 8, "conv_scratch": 9, "dwconv_scratch": 10, "matmul": 11, "matmul_scratch": 12,
       "conv1x1_gelu": 13, "conv1x1_f32_then_gelu": 14, "dwconv_f32": 15, "gelu": 16,
       "matmul_f32": 17, "matmul_f32_scratch": 18, "quantize_f32": 19, "conv1x1_q8": 20, "dwconv_q8": 21,
       "conv1x1_q8_scratch": 22, "dwconv_q8_scratch": 23, "mean_f32": 24, "dwconv3x3_q8": 25,
       "dwconv3x3_q8_scratch": 26, "mlp": 27, "mlp_scratch": 28, "add_dq": 29}
HOST_CFLAGS = ["-O2", "-fPIC", "-shared", "-std=c99", "-Wall", "-Wextra", "-Werror", "-DWRNN_SCALAR"]


def kernels_dir() -> Path:
    return Path(str(resources.files("wordrec.device") / "kernels"))


def harness_dir() -> Path:
    return Path(str(resources.files("wordrec.device") / "harness"))


def sources() -> list[Path]:
    """The library (kernels/*.c) plus the opcode dispatcher the harnesses call."""
    return sorted(kernels_dir().glob("*.c")) + [harness_dir() / "wrnn_call.c"]


def source_hash(extra: list[str]) -> str:
    h = hashlib.sha256(" ".join(extra).encode())
    for p in sorted(kernels_dir().glob("*.[ch]")) + sorted(harness_dir().glob("*.[ch]")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def build_host(build_dir: Path, extra_cflags: list[str] | None = None) -> Path:
    """Compile the scalar library into build_dir/libwrnn-<hash>.so (cached by source + flag hash)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ConfigError("no host C compiler (gcc) to build the wrnn kernels (wordrec/device/kernels)")
    flags = HOST_CFLAGS + list(extra_cflags or [])
    build_dir = Path(build_dir)
    so = build_dir / f"libwrnn-{source_hash(flags)}.so"
    if so.is_file():
        return so
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f".{so.name}.{os.getpid()}.tmp")
    cmd = [cc, *flags, "-I", str(kernels_dir()), "-I", str(harness_dir()), "-o", str(tmp), *map(str, sources()),
           "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise DataError(f"building {so.name} from {kernels_dir()} failed:\n{res.stderr[-2000:]}")
    os.replace(tmp, so)
    return so


@dataclass
class Call:
    """One kernel invocation: opcode name, int32 args, buffers (last = output, filled by the run)."""

    op: str
    args: list[int]
    bufs: list[np.ndarray | None]
    out_shape: tuple[int, ...] = field(default=())

    def arg_array(self) -> np.ndarray:
        a = np.asarray(self.args, np.int64)
        if a.size and (a.min() < -(2**31) or a.max() > 2**31 - 1):
            raise ConfigError(f"{self.op}: an argument does not fit int32: {self.args}")
        return a.astype(np.int32)


class HostLib:
    """ctypes handle on the host build; `run(call)` returns (rc, output array)."""

    def __init__(self, build_dir: Path):
        self.path = build_host(build_dir)
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.wrnn_call.restype = ctypes.c_int32
        self.lib.wrnn_call.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p]

    def run(self, call: Call) -> tuple[int, np.ndarray]:
        args = call.arg_array()
        bufs = [None if b is None else np.ascontiguousarray(b) for b in call.bufs]
        out = np.zeros(call.out_shape, np.int8)
        bufs[-1] = out
        ptrs = (ctypes.c_void_p * len(bufs))(*[None if b is None else b.ctypes.data for b in bufs])
        rc = int(self.lib.wrnn_call(OPS[call.op], args.ctypes.data, ctypes.cast(ptrs, ctypes.c_void_p)))
        return rc, out

    def scratch_bytes(self, op: str, geom: list[int]) -> int:
        """The kernel's own scratch size for geometry args (wrnn_geom fields; matmul: [m, n])."""
        args = np.asarray(geom, np.int32)
        return int(self.lib.wrnn_call(OPS[f"{op}_scratch"], args.ctypes.data, None))


# ------------------------------------------------------------------ call builders (argument order = wrnn_call.c)

def _i8(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.int8)


def _i32(a) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, np.int32)


def conv_out_dim(size: int, k: int, stride: int, pad_before: int, pad_after: int) -> int:
    return (size + pad_before + pad_after - k) // stride + 1


def requantize_call(acc, mult, shift, out_zp, act_min, act_max) -> Call:
    acc = np.ascontiguousarray(acc, np.int32)
    n, ch = acc.size, np.asarray(mult).size
    return Call("requantize", [n, ch, out_zp, act_min, act_max], [acc, _i32(mult), _i32(shift), None], acc.shape)


def fc_call(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max) -> Call:
    m, k = x.shape
    n = w.shape[0]
    return Call("fc", [m, k, n, in_zp, out_zp, act_min, act_max],
                [_i8(x), _i8(w), _i32(bias), _i32(mult), _i32(shift), None], (m, n))


def conv1x1_call(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max) -> Call:
    h, wd, c = x.shape
    n = w.shape[0]
    return Call("conv1x1", [h * wd, c, n, in_zp, out_zp, act_min, act_max],
                [_i8(x), _i8(np.asarray(w).reshape(n, c)), _i32(bias), _i32(mult), _i32(shift), None], (h, wd, n))


def geom(in_shape, out_hw, out_c, k, stride, pad) -> list[int]:
    """wrnn_geom fields in order: in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h, stride_w, pad_t, pad_l."""
    return [*in_shape, *out_hw, out_c, *k, *stride, *pad]


def _scratch(nbytes: int, what: str) -> np.ndarray:
    if nbytes < 0:
        raise ConfigError(f"{what}: geometry rejected by the kernel (error {nbytes})")
    return np.zeros(max(nbytes, 4), np.int8)


def conv_call(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max, stride, pad, out_hw, lib: HostLib) -> Call:
    co, kh, kw, ci = w.shape
    g = geom(x.shape, out_hw, co, (kh, kw), stride, pad)
    scratch = _scratch(lib.scratch_bytes("conv", g), "conv")
    return Call("conv", g + [in_zp, out_zp, act_min, act_max],
                [_i8(x), _i8(w), _i32(bias), _i32(mult), _i32(shift), scratch, None], (*out_hw, co))


def dwconv_call(x, w, bias, mult, shift, in_zp, out_zp, act_min, act_max, stride, pad, out_hw,
                lib: HostLib) -> Call:
    kh, kw, c = w.shape
    g = geom(x.shape, out_hw, c, (kh, kw), stride, pad)
    scratch = _scratch(lib.scratch_bytes("dwconv", g), "dwconv")
    return Call("dwconv", g + [in_zp, out_zp, act_min, act_max],
                [_i8(x), _i8(w), _i32(bias), _i32(mult), _i32(shift), scratch, None], (*out_hw, c))


def dwconv_f32_call(x, w, in_zp, scale, bias, stride, pad, out_hw) -> Call:
    """wrnn_dwconv_s8_f32: x [H][W][C] int8, w [KH][KW][C] int8, in_zp int32 [C], scale/bias float32 [C] (bias may
    be None). The output travels as bytes: out_shape (out_h, out_w, C, 4) int8; `.view(np.float32)[..., 0]` reads it."""
    kh, kw, c = w.shape
    f32 = (lambda a: None if a is None else np.ascontiguousarray(a, np.float32))
    return Call("dwconv_f32", geom(x.shape, out_hw, c, (kh, kw), stride, pad),
                [_i8(x), _i8(w), _i32(in_zp), f32(scale), f32(bias), None], (*out_hw, c, 4))


def avgpool_call(x, k, stride, pad, out_hw, act_min, act_max) -> Call:
    c = x.shape[2]
    return Call("avgpool", geom(x.shape, out_hw, c, k, stride, pad) + [act_min, act_max], [_i8(x), None],
                (*out_hw, c))


def lut_call(x, table) -> Call:
    x = _i8(x)
    return Call("lut", [x.size], [x, _i8(table), None], x.shape)


def mul_call(x, s, x_zp, s_zp, mult, shift, out_zp, act_min, act_max) -> Call:
    p, c = x.shape
    return Call("mul", [p, c, x_zp, s_zp, mult, shift, out_zp, act_min, act_max], [_i8(x), _i8(s), None], (p, c))


ADD_KEYS = ["left_shift", "a_zp", "a_mult", "a_shift", "b_zp", "b_mult", "b_shift", "out_zp", "out_mult",
            "out_shift", "act_min", "act_max"]


def add_call(a, b, params: dict) -> Call:
    a = _i8(a)
    return Call("add", [a.size] + [int(params[k]) for k in ADD_KEYS], [a, _i8(b), None], a.shape)


def matmul_call(a, b, a_zp, b_zp, mult, shift, out_zp, act_min, act_max, lib: HostLib) -> Call:
    """a [M][K] x b [N][K] (both activations) -> [M][N]."""
    m, k = a.shape
    n = b.shape[0]
    scratch = _scratch(lib.scratch_bytes("matmul", [m, n]), "matmul")
    return Call("matmul", [m, k, n, a_zp, b_zp, mult, shift, out_zp, act_min, act_max],
                [_i8(a), _i8(b), scratch, None], (m, n))


def matmul_f32_call(a, b, a_zp, b_zp, scale, lib: HostLib) -> Call:
    """wrnn_matmul_s8s8_f32: a [batch][M][K] x b [batch][N][K] (both activations, int8) -> float [batch][M][N]. The
    output travels as bytes: out_shape (batch, M, N, 4) int8; `.view(np.float32)[..., 0]` reads it."""
    a, b = _i8(a), _i8(b)
    batch, m, k = a.shape
    n = b.shape[1]
    scratch = _scratch(lib.scratch_bytes("matmul_f32", [m, n]), "matmul_f32")
    return Call("matmul_f32", [batch, m, k, n, a_zp, b_zp],
                [a, b, np.asarray([scale], np.float32), scratch, None], (batch, m, n, 4))


def quantize_f32_call(a, b, scale, zp, relu: bool = False) -> Call:
    """wrnn_quantize_f32: float32 a (+ b, or b None; or relu(a)) [..., C] -> int8, per channel (last axis)
    scale/zp [C]."""
    a = np.ascontiguousarray(a, np.float32)
    c = a.shape[-1]
    return Call("quantize_f32", [a.size // c, c, int(relu)],
                [a, None if b is None else np.ascontiguousarray(b, np.float32), *_quant_bufs(scale, zp, c), None],
                a.shape)


def _quant_bufs(scale, zp, c: int) -> list[np.ndarray]:
    """Per-channel scale, 1 / scale and zero point (float32 [C]) as wrnn_quantize_f32 takes them."""
    scale = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, np.float32), (c,)))
    with np.errstate(divide="ignore"):  # a zero scale is for the kernel to refuse
        recip = np.float32(1) / scale
    return [scale, recip, np.ascontiguousarray(np.broadcast_to(np.asarray(zp, np.float32), (c,)))]


def conv1x1_q8_call(x, w, in_zp, scale, bias, q_scale, q_zp, relu: bool, lib: HostLib) -> Call:
    """wrnn_conv1x1_s8_q8: the float-output 1x1 conv of x [..., K] (w [N][K], scale/bias float32 [N], bias may be
    None) quantized per channel (q_scale, q_zp [N]; relu first if asked) band by band -> int8 [..., N]."""
    x = _i8(x)
    k = x.shape[-1]
    p, n = x.size // k, w.shape[0]
    scratch = _scratch(lib.scratch_bytes("conv1x1_q8", [p, n]), "conv1x1_q8")
    return Call("conv1x1_q8", [p, k, n, in_zp, int(relu)],
                [x, _i8(np.asarray(w).reshape(n, k)), np.ascontiguousarray(scale, np.float32),
                 None if bias is None else np.ascontiguousarray(bias, np.float32), *_quant_bufs(q_scale, q_zp, n),
                 scratch, None], (*x.shape[:-1], n))


def dwconv_q8_call(x, w, in_zp, scale, bias, stride, pad, out_hw, q_scale, q_zp, relu: bool, lib: HostLib,
                   op: str = "dwconv_q8") -> Call:
    """wrnn_dwconv_s8_q8: wrnn_dwconv_s8_f32's arguments (see dwconv_f32_call) plus the per-channel quantize
    (q_scale, q_zp [C], relu first if asked), row by row -> int8 [out_h][out_w][C]. op="dwconv3x3_q8": the same
    arguments to wrnn_dwconv3x3_s8_q8 (its own, smaller scratch)."""
    kh, kw, c = w.shape
    g = geom(x.shape, out_hw, c, (kh, kw), stride, pad)
    scratch = _scratch(lib.scratch_bytes(op, g), op)
    f32 = (lambda a: None if a is None else np.ascontiguousarray(a, np.float32))
    return Call(op, g + [int(relu)], [_i8(x), _i8(w), _i32(in_zp), f32(scale), f32(bias),
                                      *_quant_bufs(q_scale, q_zp, c), scratch, None], (*out_hw, c))


def mean_f32_call(x, k, scale, zp) -> Call:
    """wrnn_mean_s8_f32: x [H][W][C] int8, windows k = (kh, kw) tiling it -> float [H / kh][W / kw][C]. The output
    travels as bytes: out_shape (..., C, 4) int8; `.view(np.float32)[..., 0]` reads it."""
    x = _i8(x)
    h, w, c = x.shape
    out_hw = (h // k[0], w // k[1])
    return Call("mean_f32", geom(x.shape, out_hw, c, k, k, (0, 0)) + [zp],
                [x, np.asarray([scale], np.float32), None], (*out_hw, c, 4))


def gelu_call(x, gelu_table) -> Call:
    """wrnn_gelu_s8: float32 x (any shape) -> int8 levels from gelu_table (int8_ref.gelu_table)."""
    x = np.ascontiguousarray(x, np.float32)
    return Call("gelu", [x.size], [x, np.ascontiguousarray(gelu_table, np.int32), None], x.shape)


def mlp_call(x, w1, in_zp, scale1, bias1, gelu_table, w2, bias2, mult2, shift2, hidden_zp, out_zp, act_min, act_max,
             lib: HostLib) -> Call:
    """wrnn_mlp_s8: conv1x1_gelu_call's arguments (x [P][K] or [H][W][K], w1 [N1][K], ...) then conv1x1_call's for
    the second 1x1 (w2 [N2][N1], int32 bias2 / mult2 / shift2, the hidden map's zero point as its input zero
    point, out_zp, clamp) -> int8 [..., N2], in pixel bands through scratch."""
    x = _i8(x)
    k = x.shape[-1]
    p, n1, n2 = x.size // k, w1.shape[0], w2.shape[0]
    scratch = _scratch(lib.scratch_bytes("mlp", [p, n1, n2]), "mlp")
    bufs = [x, _i8(np.asarray(w1).reshape(n1, k)), np.ascontiguousarray(scale1, np.float32),
            None if bias1 is None else np.ascontiguousarray(bias1, np.float32),
            np.ascontiguousarray(gelu_table, np.int32), _i8(np.asarray(w2).reshape(n2, n1)), _i32(bias2),
            _i32(mult2), _i32(shift2), scratch, None]
    return Call("mlp", [p, k, n1, in_zp, n2, hidden_zp, out_zp, act_min, act_max], bufs, (*x.shape[:-1], n2))


def add_dq_call(a, b, a_zp, a_scale, b_zp, b_scale, q_scale, q_zp) -> Call:
    """wrnn_add_dq_s8: a, b int8 [..., C] (same shape), per-tensor zero points and float32 scales, the per-channel
    output quantize (q_scale, q_zp [C]) -> int8 [..., C]."""
    a, b = _i8(a), _i8(b)
    c = a.shape[-1]
    return Call("add_dq", [a.size // c, c, a_zp, b_zp],
                [a, b, np.asarray([a_scale], np.float32), np.asarray([b_scale], np.float32),
                 *_quant_bufs(q_scale, q_zp, c), None], a.shape)


def conv1x1_gelu_call(x, w, in_zp, scale, bias, gelu_table, fused: bool = True) -> Call:
    """wrnn_conv1x1_s8_gelu_s8, or with fused=False the two calls it replaces (wrnn_conv1x1_s8_f32 into a float
    buffer, then wrnn_gelu_s8): x [P][K] (or [H][W][K]), w [N][K], scale/bias float32 [N] (bias may be None),
    gelu_table int32 (int8_ref.gelu_table)."""
    x = _i8(x)
    k = x.shape[-1]
    p, n = x.size // k, w.shape[0]
    bufs = [x, _i8(np.asarray(w).reshape(n, k)), np.ascontiguousarray(scale, np.float32),
            None if bias is None else np.ascontiguousarray(bias, np.float32),
            np.ascontiguousarray(gelu_table, np.int32), np.zeros(4 * n, np.int8)]
    if not fused:
        bufs.append(np.zeros(p * n, np.float32))
    args = [p, k, n, in_zp]
    return Call("conv1x1_gelu" if fused else "conv1x1_f32_then_gelu", args, bufs + [None], (*x.shape[:-1], n))
