"""compile.kernels=int8 on NNCF-style QDQ graphs (ppocrv6_small): quantized inputs, float outputs.

Each new offload pattern on a tiny QDQ ONNX built here: the native host build (-DWRNN_SCALAR) equals a numpy model
of the kernel's arithmetic bit for bit (int32 accumulator -> float32 -> * scale -> + bias, each rounded once):
  1x1 conv (wrnn_conv1x1_s8_f32), k x k conv with stride (wrnn_conv_s8_f32), depthwise with per-channel input zero
  points (wrnn_dwconv_s8_f32), MatMul by a DQ'd constant + bias (fc), a SAME_UPPER 2x2 conv (explicit pads, so the
  requantizing wrnn_conv_s8 takes it), concat of two equally quantized DQs, and the permute sinking (the GELU between
  two float-output 1x1 convs runs NHWC with no transposes; the result matches onnxruntime).
Device (skipped without arm-none-eabi-gcc / qemu-system-arm): a chain of all the float-output kernels on QEMU gives
the host build's output bit for bit.
"""

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wordrec.device.compile import emit, frontend, native, offload, plan

RNG = np.random.default_rng(7)


class G:
    """A tiny ONNX graph builder: initializers + nodes."""

    def __init__(self):
        self.inits, self.nodes, self.n = [], [], 0

    def const(self, a, name=None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def node(self, op, inputs, **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def qdq(self, x, s, z, axis=1) -> str:
        sc, zc = self.const(np.asarray(s, np.float32)), self.const(np.asarray(z, np.int8))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, sc, zc], axis=axis), sc, zc], axis=axis)

    def wdq(self, w, ws, axis=0) -> str:
        return self.node("DequantizeLinear", [self.const(w), self.const(ws), self.const(np.zeros(len(ws), np.int8))],
                         axis=axis)

    def model(self, out, in_shape, out_shape) -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _build(model, shape, tmp, fuse_gelu=True, quantize=True, fuse_mlp=True, dq_add=True):
    off = offload.Offloader(fuse_gelu=fuse_gelu, quantize=quantize, fuse_mlp=fuse_mlp, dq_add=dq_add)
    mod = frontend.import_relax(model, shape, "tiny", offloader=off)
    lowered = plan.lower_memory(mod)
    planned = plan.extract(lowered, externs=set(off.layers))
    emit.emit(planned, emit.build_kernels(lowered), tmp / "device", layers=off.layers)
    so = native.build(tmp / "device", tmp / "host" / "native.so")
    return off, planned, native.NativeModel(so, tmp / "device")


def _w(*shape):
    return RNG.integers(-127, 128, shape).astype(np.int8)


def _f32_epilogue(acc, scale, bias):
    """(float)acc * scale + bias, one float32 rounding per operation (the kernels' contract)."""
    return (acc.astype(np.float32) * scale.astype(np.float32)).astype(np.float32) + bias.astype(np.float32)


def _grid_input(shape, s, z):
    """Inputs on the quantization grid, (q - z) * s, so quantize reproduces q exactly (no ties)."""
    q = RNG.integers(-128, 128, shape)
    z = np.asarray(z).reshape((1, -1) + (1,) * (len(shape) - 2)) if np.ndim(z) else z
    s = np.asarray(s, np.float32).reshape((1, -1) + (1,) * (len(shape) - 2)) if np.ndim(s) else np.float32(s)
    return ((q - z) * s).astype(np.float32), q


def _conv_ref(q, z, w, stride, pad, groups=1):
    """int64 accumulator of sum (q - z) * w over in-bounds taps (padding contributes 0), NCHW."""
    x = q.astype(np.int64) - np.asarray(z).reshape(1, -1, 1, 1)
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    co, ci, kh, kw = w.shape
    oh = (x.shape[2] - kh) // stride + 1
    ow = (x.shape[3] - kw) // stride + 1
    acc = np.zeros((1, co, oh, ow), np.int64)
    for o in range(co):
        xs = x[:, o:o + 1] if groups > 1 else x
        for ky in range(kh):
            for kx in range(kw):
                patch = xs[:, :, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
                acc[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, ky, kx].astype(np.int64))
    return acc


def test_conv1x1_and_kxk_float_output_bit_exact(tmp_path):
    s, z = np.float32(0.05), -7
    ws1, ws2 = RNG.uniform(0.002, 0.01, 12).astype(np.float32), RNG.uniform(0.002, 0.01, 6).astype(np.float32)
    w1, w2 = _w(12, 5, 1, 1), _w(6, 5, 3, 3)
    b1, b2 = RNG.uniform(-1, 1, 12).astype(np.float32), RNG.uniform(-1, 1, 6).astype(np.float32)
    g = G()
    xd = g.qdq("x", s, z)
    y1 = g.node("Conv", [xd, g.wdq(w1, ws1), g.const(b1)], kernel_shape=[1, 1])
    y2 = g.node("Conv", [xd, g.wdq(w2, ws2), g.const(b2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = g.node("Concat", [g.node("Reshape", [y1, g.const(np.array([1, -1], np.int64))]),
                          g.node("Reshape", [y2, g.const(np.array([1, -1], np.int64))])], axis=1)
    n1, n2 = 12 * 7 * 9, 6 * 4 * 5
    off, _, run = _build(g.model(y, [1, 5, 7, 9], [1, n1 + n2]), [1, 5, 7, 9], tmp_path)
    assert sorted(layer.op for layer in off.layers.values()) == ["conv1x1_f32", "conv_f32"]
    assert off.skipped == []
    for _ in range(3):
        x, q = _grid_input((1, 5, 7, 9), s, z)
        got = run.probs(x[None])[0]
        want1 = _f32_epilogue(_conv_ref(q, [z] * 5, w1, 1, (0, 0, 0, 0)), s * ws1[None, :, None, None], b1[None, :, None, None])
        want2 = _f32_epilogue(_conv_ref(q, [z] * 5, w2, 2, (1, 1, 1, 1)), s * ws2[None, :, None, None], b2[None, :, None, None])
        assert np.array_equal(got.view(np.uint32), np.concatenate([want1.ravel(), want2.ravel()]).view(np.uint32))


def test_depthwise_per_channel_zero_points_bit_exact(tmp_path):
    c = 7
    s = RNG.uniform(0.01, 0.05, c).astype(np.float32)
    z = RNG.integers(-120, 60, c).astype(np.int8)
    ws, w, b = RNG.uniform(0.002, 0.01, c).astype(np.float32), _w(c, 1, 3, 3), RNG.uniform(-1, 1, c).astype(np.float32)
    g = G()
    y = g.node("Conv", [g.qdq("x", s, z, axis=1), g.wdq(w, ws), g.const(b)], kernel_shape=[3, 3], group=c,
               pads=[1, 1, 1, 1])
    off, _, run = _build(g.model(y, [1, c, 5, 11], [1, c, 5, 11]), [1, c, 5, 11], tmp_path)
    assert [layer.op for layer in off.layers.values()] == ["dwconv_f32"]
    for _ in range(3):
        x, q = _grid_input((1, c, 5, 11), s, z)
        got = run.probs(x[None])[0]
        acc = _conv_ref(q, z.astype(np.int64), w, 1, (1, 1, 1, 1), groups=c)
        want = _f32_epilogue(acc, (s * ws)[None, :, None, None], b[None, :, None, None])
        assert np.array_equal(got.view(np.uint32), want.ravel().view(np.uint32))


def test_matmul_by_quantized_constant_bit_exact(tmp_path):
    m, k, n = 6, 20, 9
    s, z = np.float32(0.03), 4
    ws, w, b = RNG.uniform(0.002, 0.01, n).astype(np.float32), _w(k, n), RNG.uniform(-1, 1, n).astype(np.float32)
    g = G()
    y = g.node("Add", [g.node("MatMul", [g.qdq("x", s, z), g.wdq(w, ws, axis=1)]), g.const(b)])
    off, _, run = _build(g.model(y, [1, m, k], [1, m, n]), [1, m, k], tmp_path)
    assert [layer.op for layer in off.layers.values()] == ["conv1x1_f32"]
    for _ in range(3):
        x, q = _grid_input((1, m, k), s, z)
        got = run.probs(x[None])[0]
        acc = (q[0].astype(np.int64) - z) @ w.astype(np.int64)
        assert np.array_equal(got.reshape(m, n).view(np.uint32), _f32_epilogue(acc, s * ws, b).view(np.uint32))


def test_same_upper_conv_concat_and_gelu_without_transposes(tmp_path):
    """2x2 SAME_UPPER conv (requantized, int8 out) and an equally quantized concat feed a float-output 1x1, GELU in
    float, Q, a second float-output 1x1: every conv offloaded, the GELU kernel has no transpose, and the result
    matches onnxruntime (float tail: erf from libm vs onnxruntime's, so a tolerance)."""
    import onnxruntime as ort

    s, z = np.float32(0.04), -3
    g = G()
    xd = g.qdq("x", s, z)
    w0, ws0, b0 = _w(4, 4, 2, 2), RNG.uniform(0.005, 0.02, 4).astype(np.float32), RNG.uniform(-1, 1, 4).astype(np.float32)
    r0 = g.node("Relu", [g.node("Conv", [xd, g.wdq(w0, ws0), g.const(b0)], kernel_shape=[2, 2], auto_pad="SAME_UPPER")])
    cat = g.node("Concat", [g.qdq(r0, s, z), xd], axis=1)
    w1, ws1, b1 = _w(16, 8, 1, 1), RNG.uniform(0.002, 0.01, 16).astype(np.float32), RNG.uniform(-1, 1, 16).astype(np.float32)
    c1 = g.node("Conv", [cat, g.wdq(w1, ws1), g.const(b1)], kernel_shape=[1, 1])
    gelu = g.node("Mul", [c1, g.node("Add", [g.node("Erf", [g.node("Div", [c1, g.const(np.float32(1.4142135))])]),
                                             g.const(np.float32(1.0))])])
    w2, ws2, b2 = _w(6, 16, 1, 1), RNG.uniform(0.002, 0.01, 6).astype(np.float32), RNG.uniform(-1, 1, 6).astype(np.float32)
    y = g.node("Conv", [g.qdq(gelu, np.float32(0.05), -100), g.wdq(w2, ws2), g.const(b2)], kernel_shape=[1, 1])
    model = g.model(y, [1, 4, 6, 10], [1, 6, 6, 10])
    off, planned, run = _build(model, [1, 4, 6, 10], tmp_path)
    assert sorted(layer.op for layer in off.layers.values()) == ["conv", "conv1x1_f32", "conv1x1_gelu"]
    assert off.layers["wrnn_L0"].geom["pad_top"] == 0 and off.layers["wrnn_L0"].geom["in_h"] == 6
    tir = [name for name, _ in planned.calls if name not in planned.externs]
    assert [name for name in tir if "erf" in name] == []  # conv + GELU + quantize is wrnn_conv1x1_s8_gelu_s8
    # NCHW->NHWC at the input, the int8 concat (NCHW, axis 1), NHWC->NCHW at the output: none around the GELU
    assert len([name for name in tir if "transpose" in name]) <= 3
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x, _ = _grid_input((1, 4, 6, 10), s, z)
    ref = sess.run(None, {"x": x})[0]
    got = run.probs(x[None])[0]
    assert np.abs(got - ref.ravel()).max() < 0.05 * np.abs(ref).max()


def _gelu(g, x):
    return g.node("Mul", [x, g.node("Add", [g.node("Erf", [g.node("Div", [x, g.const(np.float32(1.4142135))])]),
                                            g.const(np.float32(1.0))])])


def _mlp_model(residual: bool):
    """1x1 conv (7 -> 13 channels over 5 x 13 = 65 pixels: channel tail, two 32-pixel chunks and one odd pixel) ->
    GELU -> Q -> 1x1 conv, then [M, K] MatMul + bias -> GELU -> Q -> MatMul (the FC form); residual: the first
    conv's float output also feeds a residual add, so that GELU must stay a separate kernel."""
    g = G()
    s, z = np.float32(0.04), -9

    def f(n):
        return RNG.uniform(0.002, 0.01, n).astype(np.float32)

    def b(n):
        return g.const(RNG.uniform(-1, 1, n).astype(np.float32))

    c1 = g.node("Conv", [g.qdq("x", s, z), g.wdq(_w(13, 7, 1, 1), f(13)), b(13)], kernel_shape=[1, 1])
    h = g.qdq(_gelu(g, c1), np.float32(0.03), -110)
    c2 = g.node("Conv", [h, g.wdq(_w(7, 13, 1, 1), f(7)), b(7)], kernel_shape=[1, 1])
    if residual:
        c2 = g.node("Add", [c2, g.node("Slice", [c1, *(g.const(np.array([v], np.int64)) for v in (0, 7, 1))])])
    mk = g.node("Transpose", [g.node("Reshape", [c2, g.const(np.array([1, 7, -1], np.int64))])], perm=[0, 2, 1])
    fc1 = g.node("Add", [g.node("MatMul", [g.qdq(mk, np.float32(0.05), 4), g.wdq(_w(7, 9), f(9), axis=1)]), b(9)])
    fc2 = g.node("MatMul", [g.qdq(_gelu(g, fc1), np.float32(0.02), -120), g.wdq(_w(9, 5), f(5), axis=1)])
    return g.model(fc2, [1, 7, 5, 13], [1, 65, 5])


@pytest.mark.parametrize("residual", [False, True])
def test_conv_gelu_fusion_equals_the_two_kernels(tmp_path, residual):
    """conv1x1 / FC with a float output -> GELU -> Q becomes one wrnn_conv1x1_s8_gelu_s8 whose int8 output is the
    separate kernels' bit for bit (the whole network's float output is identical), and its float tensor leaves the
    arena; where the float output has another consumer (residual) that block keeps the separate GELU."""
    model = _mlp_model(residual)
    off, planned, run = _build(model, [1, 7, 5, 13], tmp_path / "fused")
    ref_off, ref_planned, ref_run = _build(model, [1, 7, 5, 13], tmp_path / "two", fuse_gelu=False)
    ops = sorted(layer.op for layer in off.layers.values())
    want = ["conv1x1_f32", "conv1x1_f32", "conv1x1_gelu"] + (["conv1x1_f32", "gelu"] if residual else
                                                             ["conv1x1_gelu"])
    assert ops == sorted(want)
    assert sorted(layer.op for layer in ref_off.layers.values()) == sorted(["conv1x1_f32"] * 4 + ["gelu"] * 2)
    assert off.skipped == ref_off.skipped == []
    assert sum(layer.macs for layer in off.layers.values()) == sum(layer.macs for layer in ref_off.layers.values())
    if not residual:  # (with the residual the planner's storage sharing decides: no size claim there)
        assert planned.arena_bytes < ref_planned.arena_bytes
    assert [n for n, _ in planned.calls if "erf" in n] == []
    xs = RNG.uniform(-4, 4, (4, 1, 7, 5, 13)).astype(np.float32)
    got, ref = run.probs(xs[:, 0]), ref_run.probs(xs[:, 0])
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(run.probes, ref_run.probes)


def test_gelu_quantize_kernel_against_exact_erf(tmp_path):
    """Q(x * (erf(x / sqrt 2) + 1)) compiled from a QDQ graph runs on wrnn_gelu_s8 (step table): its int8 values
    are those of the exact erf (math.erf in float64) at every input, thresholds included."""
    import math

    s, z, n = np.float32(0.02), -60, 4000
    c = np.float32(1.4142135)
    g = G()
    x = "x"
    y = g.node("Mul", [x, g.node("Add", [g.node("Erf", [g.node("Div", [x, g.const(c)])]),
                                         g.const(np.float32(1.0))])])
    out = g.qdq(y, s, z)
    off, _, run = _build(g.model(out, [1, n], [1, n]), [1, n], tmp_path)
    assert [layer.op for layer in off.layers.values()] == ["gelu"]
    xs = np.linspace(-6, 6, n, dtype=np.float32)
    got = np.round(run.probs(xs[None, None])[0] / s).astype(np.int64) + z
    exact = np.array([v * (math.erf(v / float(c)) + 1.0) for v in xs.astype(np.float64)])
    assert np.array_equal(got, np.clip(np.rint(exact / float(s)) + z, -128, 127))


def _chain_model():
    """Every float-output kernel in one graph with no libm function in between (bit-exact across C libraries):
    2x2 SAME conv (int8) -> 1x1 + GELU + Q (fused) -> 1x1 f32 + Q per channel (fused, in pixel bands) -> depthwise
    f32 + Q (24 channels: the 8-lane path; fused, row by row) -> 3x3/2 f32 -> Q per channel -> depthwise f32 (13
    channels: the 4-lane path and its tail) -> [M, K] -> GELU + Q (wrnn_gelu_s8: 260 elements, the 4-wide loop and
    its tail) -> fc f32."""
    g = G()
    s, z = np.float32(0.04), 5
    xd = g.qdq("x", s, z)

    def f(*shape):
        return RNG.uniform(0.002, 0.01, shape).astype(np.float32)

    def b(n):
        return g.const(RNG.uniform(-1, 1, n).astype(np.float32))

    def dw(x, c):
        zc = RNG.integers(-100, 50, c).astype(np.int8)
        return g.node("Conv", [g.qdq(x, RNG.uniform(0.01, 0.05, c).astype(np.float32), zc),
                               g.wdq(_w(c, 1, 3, 3), f(c)), b(c)], kernel_shape=[3, 3], group=c, pads=[1, 1, 1, 1])

    r0 = g.node("Relu", [g.node("Conv", [xd, g.wdq(_w(8, 3, 2, 2), f(8)), b(8)], kernel_shape=[2, 2],
                                auto_pad="SAME_UPPER")])
    # 1x1 f32 -> GELU -> Q: the fused wrnn_conv1x1_s8_gelu_s8 (11 channels: a channel tail; 80 pixels: 2-pixel steps
    # over two full chunks and a partial one)
    c0 = g.node("Conv", [g.qdq(r0, np.float32(0.03), -128), g.wdq(_w(11, 8, 1, 1), f(11)), b(11)],
                kernel_shape=[1, 1])
    mk0 = g.node("Mul", [c0, g.node("Add", [g.node("Erf", [g.node("Div", [c0, g.const(np.float32(1.4142135))])]),
                                            g.const(np.float32(1.0))])])
    c1 = g.node("Conv", [g.qdq(mk0, np.float32(0.02), -115), g.wdq(_w(24, 11, 1, 1), f(24)), b(24)],
                kernel_shape=[1, 1])
    d = dw(c1, 24)
    c3 = g.node("Conv", [g.qdq(d, np.float32(0.05), 3), g.wdq(_w(13, 24, 3, 3), f(13)), b(13)], kernel_shape=[3, 3],
                strides=[2, 2], pads=[1, 1, 1, 1])
    d2 = dw(c3, 13)
    mk = g.node("Transpose", [g.node("Reshape", [d2, g.const(np.array([1, 13, -1], np.int64))])], perm=[0, 2, 1])
    mk = g.node("Mul", [mk, g.node("Add", [g.node("Erf", [g.node("Div", [mk, g.const(np.float32(1.4142135))])]),
                                           g.const(np.float32(1.0))])])
    y = g.node("Add", [g.node("MatMul", [g.qdq(mk, np.float32(0.06), -2), g.wdq(_w(13, 10), f(10), axis=1)]), b(10)])
    return g.model(y, [1, 3, 8, 10], [1, 20, 10])


def _toolchain():
    return shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


@pytest.mark.skipif(not _toolchain(), reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_device_equals_host_on_float_output_chain(tmp_path):
    from wordrec.device.board import sim, toolchain
    from wordrec.pipeline.config import REPO

    off, _, run = _build(_chain_model(), [1, 3, 8, 10], tmp_path)
    # the 1x1 quantizes its float output band by band (conv1x1_q8), the first depthwise in its 3x3 tiles
    # (dwconv3x3_q8: 24 channels, one output quantizer); the 3x3's goes through wrnn_quantize_f32; the second
    # depthwise and the FC keep float outputs
    assert sorted(layer.op for layer in off.layers.values()) == \
        ["conv", "conv1x1_f32", "conv1x1_gelu", "conv1x1_q8", "conv_f32", "dwconv3x3_q8", "dwconv_f32", "gelu",
         "quantize_f32"]
    xs = RNG.uniform(-3, 3, (3, 1, 3, 8, 10)).astype(np.float32)
    host = run.probs(xs[:, 0])
    elf = tmp_path / "elf" / "app.elf"
    elf.parent.mkdir()
    toolchain.build_elf(tmp_path / "device", elf, "-O3", native.FLOAT_CFLAGS, "auto", "auto")
    dev = sim.run(elf, xs, tmp_path / "run", runner="qemu", timeout_s=120, plugin_dir=REPO / "build" / "qemu")
    assert np.array_equal(np.asarray(dev["outputs"], np.float32).reshape(host.shape).view(np.uint32),
                          host.view(np.uint32))
    assert np.array_equal(dev["probes"], run.probes)


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
def test_every_profile_runs_int8_kernels_only_on_what_it_imports(profile):
    """mcu.imported_int8 (dvc.yaml's compile_int8_imported/mcu_int8_imported) names imports of the profile:
    their QDQ ONNX comes from quantize over models/pretrained; smoke runs none (its DAG is unchanged)."""
    from wordrec.pipeline.config import compose, section

    cfg = compose([f"profile={profile}"])
    names = set(section(cfg, "mcu").imported_int8)
    assert names <= set(section(cfg, "pretrained").models)
    assert (names == set()) == (profile == "smoke")


@pytest.mark.parametrize("softmax", [False, True])
def test_attention_scores_run_on_the_integer_matmul(tmp_path, softmax):
    """NNCF's attention scores, DQ(Q) @ Transpose(DQ(K), last two axes) (-> Softmax), become one
    wrnn_matmul_s8s8_f32 over the heads: no float matmul is left, the scores equal the kernel's arithmetic bit for
    bit ((float)sum (q - zq)(k - zk) * (sq * sk)), and after the softmax the model matches onnxruntime."""
    import onnxruntime as ort

    from wordrec.device import int8_ref as R

    s, z = np.float32(0.05), -7
    g = G()
    q, k = g.qdq("x", s, z), g.qdq("x", s, z)  # two quantizers, as NNCF writes one per operand
    y = g.node("MatMul", [q, g.node("Transpose", [k], perm=[0, 1, 3, 2])])
    if softmax:
        y = g.node("Softmax", [y], axis=-1)
    model = g.model(y, [1, 3, 6, 5], [1, 3, 6, 6])
    off, planned, run = _build(model, [1, 3, 6, 5], tmp_path)
    assert [layer.op for layer in off.layers.values()] == ["matmul_f32"]
    assert off.layers["wrnn_L0"].macs == 3 * 6 * 5 * 6
    assert [name for name, _ in planned.calls if name not in planned.externs and "matmul" in name] == []
    x, qi = _grid_input((1, 3, 6, 5), s, z)
    got = run.probs(x[None])[0].reshape(3, 6, 6)
    if softmax:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        assert np.abs(got - sess.run(None, {"x": x})[0][0]).max() < 1e-5
    else:
        want = R.matmul_f32(qi[0], qi[0], z, z, np.float32(s) * np.float32(s))
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_quantize_kernel_equals_the_tvm_loops(tmp_path):
    """A residual block as NNCF leaves it in ppocrv6_small (two float-output 1x1 convs summed, the sum quantized per
    channel for a depthwise conv whose float output goes through a ReLU and a per-tensor quantize to the next 1x1): the
    quantize of the sum becomes wrnn_quantize_f32 (no new float tensor: the arena does not grow; the model input's
    stays fused with its transpose), the ReLU + quantize of the depthwise output goes into its call
    (wrnn_dwconv3x3_s8_q8), and the output is bit for bit the build that leaves them to TVM."""
    s, z = np.float32(0.04), -3
    g = G()

    def f32_conv(x, co, ci):
        return g.node("Conv", [x, g.wdq(_w(co, ci, 1, 1), RNG.uniform(0.002, 0.01, co).astype(np.float32)),
                               g.const(RNG.uniform(-1, 1, co).astype(np.float32))], kernel_shape=[1, 1])

    c0 = f32_conv(g.qdq("x", s, z), 8, 8)
    c1 = f32_conv(g.qdq(c0, np.float32(0.03), 5), 8, 8)
    res = g.node("Add", [c1, c0])
    qs, qz = RNG.uniform(0.01, 0.05, 8).astype(np.float32), RNG.integers(-20, 20, 8).astype(np.int8)
    d = g.node("Conv", [g.qdq(res, qs, qz), g.wdq(_w(8, 1, 3, 3), RNG.uniform(0.005, 0.02, 8).astype(np.float32)),
                        g.const(RNG.uniform(-1, 1, 8).astype(np.float32))], kernel_shape=[3, 3], group=8,
               pads=[1, 1, 1, 1])
    y = f32_conv(g.qdq(g.node("Relu", [d]), np.float32(0.05), -9), 5, 8)
    model = g.model(y, [1, 8, 6, 10], [1, 5, 6, 10])
    off, planned, run = _build(model, [1, 8, 6, 10], tmp_path / "kernel")
    ref_off, ref_planned, ref_run = _build(model, [1, 8, 6, 10], tmp_path / "tvm", quantize=False)
    quant = [layer for layer in off.layers.values() if layer.op == "quantize_f32"]
    assert [(layer.extra["inputs"], layer.extra["relu"]) for layer in quant] == [(2, False)]
    # the ReLU'd depthwise output nothing else reads is quantized inside the depthwise call (its 3x3 tiles: one
    # output quantizer)
    assert [layer.extra["relu"] for layer in off.layers.values() if layer.op == "dwconv3x3_q8"] == [True]
    assert sorted(layer.op for layer in ref_off.layers.values()) == ["conv1x1"] + ["conv1x1_f32"] * 3 + ["dwconv_f32"]
    assert [n for n, _ in planned.calls if n not in planned.externs and "quantize" in n] == ["fused_quantize_transpose"]
    assert planned.arena_bytes <= ref_planned.arena_bytes
    x = np.concatenate([_grid_input((1, 8, 6, 10), s, z)[0] for _ in range(3)]) + RNG.normal(0, 0.01, (3, 8, 6, 10))
    x = x.astype(np.float32)[:, None]
    got, ref = run.probs(x), ref_run.probs(x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_se_mean_and_average_pool_read_the_int8_map(tmp_path):
    """An SE block whose input is held in int8 (int8_residuals: one dequantized copy per reader) and an average pool
    over tiling windows of an int8 map: both means run as wrnn_mean_s8_f32 on the int8 map, so no float copy of a
    whole map is stored (TVM would store the dequantized map the mean and the multiply share, and fuse the pool's
    dequantize into the producer's kernel), and the output matches onnxruntime."""
    import onnxruntime as ort

    s, z = np.float32(0.04), -3
    g = G()
    c = 16
    d = g.node("Conv", [g.qdq("x", s, z), g.wdq(_w(c, 1, 3, 3), RNG.uniform(0.005, 0.02, c).astype(np.float32)),
                        g.const(RNG.uniform(-1, 1, c).astype(np.float32))], kernel_shape=[3, 3], group=c,
               pads=[1, 1, 1, 1])
    ds, dz = g.const(np.float32(0.05)), g.const(np.int8(2))
    dq = g.node("QuantizeLinear", [d, ds, dz])
    se = g.node("HardSigmoid", [g.node("Conv", [g.node("ReduceMean", [g.node("DequantizeLinear", [dq, ds, dz])],
                                                       axes=[2, 3], keepdims=1),
                                                g.const(RNG.uniform(-0.3, 0.3, (c, c, 1, 1)).astype(np.float32))])])
    m = g.node("Mul", [g.node("DequantizeLinear", [dq, ds, dz]), se])
    pool = g.node("AveragePool", [g.qdq(m, np.float32(0.03), 0)], kernel_shape=[3, 2], strides=[3, 2])
    y = g.node("Conv", [g.qdq(pool, np.float32(0.02), 1), g.wdq(_w(5, c, 1, 1),
                                                               RNG.uniform(0.005, 0.02, 5).astype(np.float32))],
               kernel_shape=[1, 1])
    shape = [1, c, 6, 10]
    model = g.model(y, shape, [1, 5, 2, 5])
    off, planned, run = _build(model, shape, tmp_path)
    means = [layer.geom for layer in off.layers.values() if layer.op == "mean_f32"]
    assert [(m["k_h"], m["k_w"], m["out_h"], m["out_w"]) for m in means] == [(6, 10, 1, 1), (3, 2, 2, 5)]
    full_float = [t for t in planned.tensors if t.base == "arena" and t.dtype == "float32"
                  and int(np.prod(t.shape)) >= c * 6 * 10]
    assert full_float == []
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.stack([_grid_input(tuple(shape), s, z)[0] for _ in range(3)])
    ref = np.stack([sess.run(None, {"x": xi})[0] for xi in x])
    got = run.probs(x)
    err = np.abs(got.reshape(ref.shape) - ref).max()
    assert err < 0.05 * np.abs(ref).max(), err  # float summation order differs; the int8 levels mostly agree


def _mlp_block_model():
    """A residual block's MLP as NNCF leaves ppocrv6_small's: DQ(x) -> 1x1 (float out) -> GELU -> Q/DQ -> 1x1 ->
    Q (int8 out) -> DQ -> + DQ(x) (residual); 12 -> 400 -> 12 channels over 6 x 50 pixels: the 32 KB band of the
    hidden map holds 64 pixels, so 300 take 5 bands, the last one short."""
    s, z = np.float32(0.04), -3
    g = G()
    xd = g.qdq("x", s, z)
    h = g.node("Conv", [xd, g.wdq(_w(400, 12, 1, 1), RNG.uniform(0.002, 0.01, 400).astype(np.float32)),
                        g.const(RNG.uniform(-1, 1, 400).astype(np.float32))], kernel_shape=[1, 1])
    gelu = g.node("Mul", [h, g.node("Add", [g.node("Erf", [g.node("Div", [h, g.const(np.float32(1.4142135))])]),
                                            g.const(np.float32(1.0))])])
    y = g.node("Conv", [g.qdq(gelu, np.float32(0.03), -100),
                        g.wdq(_w(12, 400, 1, 1), RNG.uniform(0.0005, 0.002, 12).astype(np.float32)),
                        g.const(RNG.uniform(-1, 1, 12).astype(np.float32))], kernel_shape=[1, 1])
    out = g.node("Add", [g.qdq(y, np.float32(0.05), 2), xd])
    return g.model(out, [1, 12, 6, 50], [1, 12, 6, 50]), s, z


def test_mlp_pair_runs_in_bands_bit_for_bit(tmp_path):
    """The 1x1 + GELU -> requantizing 1x1 pair with nothing else reading the hidden map becomes one wrnn_mlp_s8
    call: the build's output equals the two-call build's bit for bit, the hidden map leaves the arena plan, and on
    QEMU the device equals the host."""
    model, s, z = _mlp_block_model()
    shape = [1, 12, 6, 50]
    off, planned, run = _build(model, shape, tmp_path / "mlp")
    ref_off, ref_planned, ref_run = _build(model, shape, tmp_path / "two", fuse_mlp=False)
    assert sorted(layer.op for layer in off.layers.values()) == ["mlp"]
    assert sorted(layer.op for layer in ref_off.layers.values()) == ["conv1x1", "conv1x1_gelu"]
    (mlp,) = off.layers.values()
    assert mlp.macs == sum(layer.macs for layer in ref_off.layers.values())
    # the hidden map (300 x 400 B) leaves the plan; the scratch holds one band (64 x 400 B) and 412 folded terms;
    # the packing may give one 12-channel map (3,600 B) a storage of its own that it shared before
    assert planned.arena_bytes <= ref_planned.arena_bytes - 300 * 400 + 64 * 400 + 4 * (400 + 12) + 300 * 12
    x = np.concatenate([_grid_input(tuple(shape), s, z)[0] for _ in range(3)]) + RNG.normal(0, 0.02, (3, *shape[1:]))
    x = x.astype(np.float32)[:, None]
    got, ref = run.probs(x), ref_run.probs(x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    if not _toolchain():
        return
    from wordrec.device.board import sim, toolchain
    from wordrec.pipeline.config import REPO

    elf = tmp_path / "elf" / "app.elf"
    elf.parent.mkdir()
    toolchain.build_elf(tmp_path / "mlp" / "device", elf, "-O3", native.FLOAT_CFLAGS, "auto", "auto")
    dev = sim.run(elf, x, tmp_path / "run", runner="qemu", timeout_s=120, plugin_dir=REPO / "build" / "qemu")
    assert np.array_equal(np.asarray(dev["outputs"], np.float32).reshape(got.shape).view(np.uint32),
                          got.view(np.uint32))


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_add_kernel_equals_the_tvm_loop(tmp_path, seed):
    """quantize(DQ(a) + DQ(b)) of two int8 maps -> wrnn_add_dq_s8 with TVM's own constants: per-tensor and
    per-channel output quantizers (the latter on NHWC maps from float-output 1x1 convs, as in ppocrv6_small's
    residual blocks), random scales (7-digit literals that do and do not round-trip), bit for bit the build that
    leaves the adds to TVM (whose loops the test of tvm_c_float below pins to the same constants)."""
    rng = np.random.default_rng(seed)
    g = G()
    s, z = np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(-20, 20))
    xd = g.qdq("x", s, z)

    def f32_conv(x, co, ci):
        return g.node("Conv", [x, g.wdq(_w(co, ci, 1, 1), rng.uniform(0.002, 0.01, co).astype(np.float32)),
                               g.const(rng.uniform(-1, 1, co).astype(np.float32))], kernel_shape=[1, 1])

    # per-tensor: two requantized copies of the input summed, one scale for the sum
    plain = g.node("Add", [g.qdq("x", np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(-50, 50))),
                           g.qdq("x", np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(-50, 50)))])
    plain = g.qdq(plain, np.float32(rng.uniform(0.02, 0.2)), int(rng.integers(-20, 20)))
    # per-channel: a residual block's sum of two 1x1 outputs, each held int8 per tensor, the sum per channel
    c0 = g.qdq(f32_conv(xd, 8, 8), np.float32(rng.uniform(0.02, 0.1)), int(rng.integers(-30, 30)))
    c1 = g.qdq(f32_conv(g.qdq(c0, np.float32(0.05), 3), 8, 8), np.float32(rng.uniform(0.02, 0.1)), 7)
    qs, qz = rng.uniform(0.02, 0.1, 8).astype(np.float32), rng.integers(-20, 20, 8).astype(np.int8)
    res = g.qdq(g.node("Add", [c1, c0]), qs, qz)
    y = g.node("Add", [f32_conv(res, 8, 8), plain])
    model = g.model(y, [1, 8, 60, 100], [1, 8, 60, 100])
    off, _, run = _build(model, [1, 8, 60, 100], tmp_path / "kernel")
    ref_off, _, ref_run = _build(model, [1, 8, 60, 100], tmp_path / "tvm", dq_add=False)
    assert sorted(layer.op for layer in off.layers.values() if layer.op == "add_dq") == ["add_dq"] * 2
    assert "add_dq" not in {layer.op for layer in ref_off.layers.values()}
    x = np.concatenate([_grid_input((1, 8, 60, 100), s, z)[0] for _ in range(4)]) + rng.normal(0, 0.02, (4, 8, 60, 100))
    x = x.astype(np.float32)[:, None]
    got, ref = run.probs(x), ref_run.probs(x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_tvm_c_float_is_the_constant_tvm_loops_compute_with(tmp_path):
    """TVM's C codegen prints a float32 constant as a "%.6e" literal, which the C compiler rounds to float32:
    offload.tvm_c_float gives that float32 (wrnn_add_dq_s8 computes with it to reproduce the loop). Scales that do
    and do not survive 7 digits, built through DQ -> add -> Q loops and read back from the generated C."""
    import re
    from fractions import Fraction

    scales = [np.float32(v) for v in (0.0124393096, 1 / 3, 123456.789, 1.0000001, 9.87654321e-5, 0.0731234567)]
    g = G()
    y = g.qdq("x", scales[0], 3)
    for k, v in enumerate(scales[1:]):
        y = g.node("Add", [y, g.qdq("x", v, k - 2)])
    _build(g.model(y, [1, 4, 3, 5], [1, 4, 3, 5]), [1, 4, 3, 5], tmp_path, dq_add=False)
    literals = set(re.findall(r"[-+]?\d\.\d{6}e[-+]\d+f", (tmp_path / "device" / "kernels.c").read_text()))
    for v in scales:
        lit = f"{float(v):.6e}f"
        assert lit in literals, (v, sorted(literals))
        want = Fraction(lit[:-1])
        got = offload.tvm_c_float(v)
        for other in (np.nextafter(got, np.float32(-np.inf)), np.nextafter(got, np.float32(np.inf))):
            assert abs(Fraction(float(got)) - want) <= abs(Fraction(float(other)) - want)
    assert offload.tvm_c_float(np.float32(1.0000001)) == np.float32(1.0)  # 7 digits lose the last bit
