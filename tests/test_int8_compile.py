"""compile.kernels=int8: a tiny QDQ ONNX built here, its quantized convs offloaded to the wrnn kernels.

Host: the emitted C built natively (-DWRNN_SCALAR) equals numpy's int8_ref on the last int8 tensor.
Device (skipped without arm-none-eabi-gcc / qemu-system-arm): QEMU == host bit for bit, and a requantization
shift changed on the device side only fails mcu's bit-exact gate.
"""

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wordrec.device import int8_ref
from wordrec.device.compile import emit, frontend, native, offload, plan
from wordrec.errors import DataError

H, W, C0, C1, C2 = 6, 10, 3, 8, 5
S_IN, S_MID, S_OUT = 0.05, 0.04, 0.03


def _qdq_model(rng) -> tuple[onnx.ModelProto, dict]:
    """x -> Q -> DQ -> conv3x3(DQ w1) + b1 -> relu -> Q -> DQ -> conv1x1(DQ w2) + b2 -> Q -> DQ (uint8 activations
    with zero points 0 after relu / 128 at the input, as onnxruntime's quantizer writes)."""
    w1 = rng.integers(-127, 128, (C1, C0, 3, 3)).astype(np.int8)
    w2 = rng.integers(-127, 128, (C2, C1, 1, 1)).astype(np.int8)
    ws1 = rng.uniform(0.002, 0.01, C1).astype(np.float32)
    ws2 = rng.uniform(0.002, 0.01, C2).astype(np.float32)
    b1 = rng.uniform(-0.5, 0.5, C1).astype(np.float32)
    b2 = rng.uniform(-0.5, 0.5, C2).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w1, "w1"), (w2, "w2"), (ws1, "ws1"), (ws2, "ws2"), (b1, "b1"), (b2, "b2"),
        (np.zeros(C1, np.int8), "wz1"), (np.zeros(C2, np.int8), "wz2"),
        (np.float32(S_IN), "s_in"), (np.uint8(128), "z_in"), (np.float32(S_MID), "s_mid"), (np.uint8(0), "z_mid"),
        (np.float32(S_OUT), "s_out"), (np.uint8(100), "z_out")]]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w1", "ws1", "wz1"], ["w1d"], axis=0),
        helper.make_node("Conv", ["xd", "w1d", "b1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("QuantizeLinear", ["r1", "s_mid", "z_mid"], ["q1"]),
        helper.make_node("DequantizeLinear", ["q1", "s_mid", "z_mid"], ["d1"]),
        helper.make_node("DequantizeLinear", ["w2", "ws2", "wz2"], ["w2d"], axis=0),
        helper.make_node("Conv", ["d1", "w2d", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("QuantizeLinear", ["c2", "s_out", "z_out"], ["q2"]),
        helper.make_node("DequantizeLinear", ["q2", "s_out", "z_out"], ["y"]),
    ]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C0, H, W])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C2, H, W])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return m, dict(w1=w1, w2=w2, ws1=ws1, ws2=ws2, b1=b1, b2=b2)


def _reference(x_int8_nhwc, p) -> np.ndarray:
    """numpy int8_ref of the two offloaded layers (int8 = uint8 - 128, zero points likewise)."""
    def consts(w, ws, b, s_in, s_out):
        # float32, as onnxruntime's QLinearConv fusion computes them (offload._conv does the same)
        acc = np.float32(s_in) * ws.astype(np.float32)
        mult, shift = zip(*(int8_ref.quantize_multiplier(float(a / np.float32(s_out))) for a in acc))
        return np.round(b.astype(np.float32) / acc).astype(np.int64), np.array(mult), np.array(shift)

    b1, m1, sh1 = consts(p["w1"], p["ws1"], p["b1"], S_IN, S_MID)
    y1 = int8_ref.conv(x_int8_nhwc, p["w1"].transpose(0, 2, 3, 1), b1, m1, sh1, 0, -128, -128, 127, (1, 1),
                       (1, 1), (H, W))
    b2, m2, sh2 = consts(p["w2"], p["ws2"], p["b2"], S_MID, S_OUT)
    return int8_ref.conv1x1(y1, p["w2"][:, :, 0, 0], b2, m2, sh2, -128, 100 - 128, -128, 127)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(0)
    model, p = _qdq_model(rng)
    off = offload.Offloader()
    mod = frontend.import_relax(model, [1, C0, H, W], "tiny", offloader=off)
    lowered = plan.lower_memory(mod)
    planned = plan.extract(lowered, externs=set(off.layers))
    out = tmp_path_factory.mktemp("int8c")
    emit.emit(planned, emit.build_kernels(lowered), out / "device", layers=off.layers)
    so = native.build(out / "device", out / "host" / "native.so")
    # inputs on the quantization grid (k * S_IN), so quantize has no rounding ties to disagree about
    k = rng.integers(-128, 128, (4, C0, H, W))
    x = (k * S_IN).astype(np.float32)
    return dict(out=out, so=so, off=off, p=p, x=x, k=k, planned=planned)


def test_offload_replaces_both_convs_and_keeps_one_arena(built):
    layers = list(built["off"].layers.values())
    assert [layer.op for layer in layers] == ["conv", "conv1x1"]
    assert built["off"].skipped == []
    assert built["planned"].externs == {"wrnn_L0", "wrnn_L1"}
    assert (built["out"] / "device" / "wrnn.c").is_file()


def test_native_build_equals_int8_ref(built):
    run = native.NativeModel(built["so"], built["out"] / "device")
    run.probs(built["x"])
    for i in range(len(built["x"])):
        q = np.clip(built["k"][i], -128, 127).astype(np.int8).transpose(1, 2, 0)  # round(x/s) + 128 - 128
        want = _reference(q, built["p"])
        assert np.array_equal(run.probes[i], want.reshape(-1))


def _toolchain():
    return shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


@pytest.mark.skipif(not _toolchain(), reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_device_bit_exact_and_wrong_shift_fails_gate(built, tmp_path):
    import importlib.util

    from wordrec.device.board import sim, toolchain
    from wordrec.pipeline.config import REPO

    spec = importlib.util.spec_from_file_location("mcu_stage", REPO / "stages" / "mcu.py")
    mcu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mcu)
    ref = native.NativeModel(built["so"], built["out"] / "device")
    ref.probs(built["x"])

    def device(dev_dir):
        elf = tmp_path / f"elf-{dev_dir.name}" / "app.elf"
        elf.parent.mkdir()
        toolchain.build_elf(dev_dir, elf, "-O3", native.FLOAT_CFLAGS, "auto", "auto")
        return sim.run(elf, built["x"][:, None], tmp_path / f"{dev_dir.name}-run", runner="qemu", timeout_s=120,
                       plugin_dir=REPO / "build" / "qemu")["probes"]

    mcu.bit_exact_gate("tiny", ref.probes, device(built["out"] / "device"))  # passes: bit-exact

    # the device side only: layer 1's first per-channel shift constant one lower (host reference unchanged)
    wrong = tmp_path / "wrong"
    shutil.copytree(built["out"] / "device", wrong)
    planned = built["planned"]
    shift_tensor = planned.calls[[c[0] for c in planned.calls].index("wrnn_L1")][1][4]
    cidx = planned.tensors[shift_tensor].offset
    src = (wrong / "weights.c").read_text()
    decl = f"wordrec_const_{cidx}["
    head, tail = src.split(decl, 1)
    body_start = tail.index("{\n") + 2
    word = tail[body_start:body_start + 11]  # "0x%08xu"
    new = f"0x{(int(word[2:10], 16) - 1) & 0xffffffff:08x}u"
    (wrong / "weights.c").write_text(head + decl + tail[:body_start] + new + tail[body_start + 11:])
    with pytest.raises(DataError, match="not bit-exact"):
        mcu.bit_exact_gate("tiny", ref.probes, device(wrong))
