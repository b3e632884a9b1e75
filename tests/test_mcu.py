"""TVM compile for the Cortex-M55 and device runs on QEMU mps3-an547 (tiny ONNX models built here)."""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import REPO, smoke_cfg
from wordrec.errors import ConfigError, DataError

CHARS = "abcdefghij"  # K = 11 classes with the blank
SHAPE = [1, 3, 32, 64]
pytestmark = pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"),
                                reason="needs the Debian toolchain from scripts/setup.sh")


def _stage(name):
    return importlib.import_module(f"stages.{name}")


def tiny_onnx(path: Path) -> Path:
    """conv+BN+relu, maxpool, depthwise conv + hardswish, avgpool, reshape/transpose neck, matmul head, softmax."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.c2 = nn.Conv2d(8, 16, 3, padding=1, groups=8)
            self.fc = nn.Linear(16 * 8, len(CHARS) + 1)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
            x = nn.functional.avg_pool2d(nn.functional.hardswish(self.c2(x)), (2, 1))
            n, c, h, w = x.shape
            return torch.softmax(self.fc(x.reshape(n, c * h, w).transpose(1, 2)), -1)

    torch.manual_seed(0)
    m = Tiny().eval()
    with torch.no_grad():  # a sharper softmax than the init's, so argmax ties cannot flip the decoding
        m.fc.weight.mul_(8)
    torch.onnx.export(m, torch.randn(*SHAPE), str(path), dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["probs"], dynamic_axes={"x": {0: "N"}, "probs": {0: "N"}})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """An export-like dir: model.onnx + meta.json."""
    d = tmp_path_factory.mktemp("export") / "tiny"
    d.mkdir()
    tiny_onnx(d / "model.onnx")
    meta = {"name": "tiny", "framework": "torch", "arch": "tiny", "charset": CHARS,
            "input": {"channels": 3, "height": 32, "width": 64, "keep_ratio": True}}
    (d / "meta.json").write_text(json.dumps(meta))
    return d


@pytest.fixture(scope="module")
def compiled(tiny, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compile")
    metrics = _stage("compile").run(smoke_cfg(), {"model": tiny},
                                    {"out": root / "tiny", "report": root / "compile.json"})
    assert metrics["host_vs_onnxruntime_max_abs_diff"] < 1e-5
    return root / "tiny"


def test_compile_twice_gives_the_same_bytes(tiny, compiled, tmp_path):
    """A rerun of compile on the same inputs writes the same files (the wall-clock times go to the report only),
    so DVC sees an unchanged output and does not rerun mcu/bench on an identical build."""
    again = tmp_path / "tiny"
    metrics = _stage("compile").run(smoke_cfg(), {"model": tiny}, {"out": again, "report": tmp_path / "c.json"})
    assert "seconds" in metrics and "seconds" not in json.loads((again / "meta.json").read_text())["compile"]
    files = sorted(p.relative_to(compiled) for p in compiled.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (compiled / f).read_bytes() == (again / f).read_bytes(), f


def ort(onnx_path, x):
    import onnxruntime

    return onnxruntime.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]


def _host_runner_matches_onnxruntime(dev: Path, onnx_path: Path, tmp_path: Path) -> None:
    """The generated runner + TVM C kernels, built by the host gcc, against onnxruntime."""
    assert "TVMBackendAllocWorkspace" not in (dev / "kernels.c").read_text()  # no memory outside the arena
    lib = tmp_path / "librunner.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), *map(str, dev.glob("*.c")), "-lm"],
                   check=True, capture_output=True)
    run = ctypes.CDLL(str(lib)).wordrec_run
    for seed in range(2):
        x = np.random.default_rng(seed).uniform(-1, 1, SHAPE).astype(np.float32)
        y = np.zeros((1, 32, len(CHARS) + 1), np.float32)
        assert run(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p)) == 0
        np.testing.assert_allclose(y, ort(onnx_path, x), atol=1e-5)


def test_runner_on_host_matches_onnxruntime(compiled, tmp_path):
    facts = json.loads((compiled / "meta.json").read_text())["compile"]
    assert facts["pad_in_arena"] is True  # auto: the tiny arena stays within the 512 KB target either way
    assert 0 < facts["arena_bytes"] < facts["arena_bytes_without_reuse"]  # Relax's plan reuses storage
    assert facts["weight_bytes"] > 0 and facts["device_kernels"] == "float"
    # MACs by hand: conv 8*27*32*64 + depthwise 16*9*16*32 + matmul 32*128*11
    assert facts["macs"] == 8 * 27 * 32 * 64 + 16 * 9 * 16 * 32 + 32 * 128 * 11
    _host_runner_matches_onnxruntime(compiled / "device", compiled / "model.onnx", tmp_path)


def test_compact_variant_runner_on_host(tiny, compiled, tmp_path):
    """pad_in_arena=false: padding stays inside the conv kernels, so the arena is smaller."""
    from wordrec.device.compile.compiler import compile_onnx

    facts = compile_onnx(tiny / "model.onnx", SHAPE, tmp_path / "c", threads=1, parity_tol=1e-5,
                         pad_in_arena=False)
    fast = json.loads((compiled / "meta.json").read_text())["compile"]
    assert facts["pad_in_arena"] is False and facts["arena_bytes"] < fast["arena_bytes"]
    _host_runner_matches_onnxruntime(tmp_path / "c" / "device", tiny / "model.onnx", tmp_path)


def test_elf_on_qemu_and_deterministic_counts(compiled, tmp_path):
    from wordrec.device.board import sim, toolchain

    elf = tmp_path / "app.elf"
    toolchain.build_elf(compiled / "device", elf, "-O3", [])
    xs = np.random.default_rng(1).uniform(-1, 1, [2, *SHAPE]).astype(np.float32)
    runs = [sim.run(elf, xs, tmp_path / f"w{i}", runner="qemu", timeout_s=60, plugin_dir=tmp_path / "plugin")
            for i in range(2)]
    assert runs[0]["exit_status"] == 0 and "2 inferences ok" in runs[0]["log"]
    ref = np.concatenate([ort(compiled / "model.onnx", x) for x in xs]).reshape(2, -1)
    np.testing.assert_allclose(runs[0]["outputs"], ref, atol=1e-5)
    assert runs[0]["insns"] == runs[1]["insns"] and min(runs[0]["insns"]) > 100_000
    s = toolchain.sizes(elf)
    assert s["weights_section_bytes"] >= json.loads((compiled / "meta.json").read_text())["compile"]["weight_bytes"]


def test_mcu_stage_and_its_gate(compiled, synth_data, tmp_path):
    mcu = _stage("mcu")
    cfg = smoke_cfg("mcu.images=3", f"mcu.plugin_dir={tmp_path / 'plugin'}")
    out = {"out": tmp_path / "elf", "report": tmp_path / "mcu.json", "plots": tmp_path / "plots"}
    m = mcu.run(cfg, {"compiled": compiled, "data": synth_data / "test"}, out)["tiny"]
    assert m["text_agreement"] == 1.0 and m["images"] == 3 and m["max_abs_diff"] < 1e-5
    assert m["insns_per_inference"] > 0 and m["macs_per_insn"] > 0 and m["flash_bytes"] > m["weight_bytes"]
    assert (tmp_path / "plots" / "samples.csv").read_text().startswith("label,host,device")

    # A corrupted weight on the device only: the device-vs-host gate must fail the stage and write nothing.
    bad = tmp_path / "bad"
    shutil.copytree(compiled, bad)
    w = (bad / "device" / "weights.c").read_text()
    first = w.index("0x", w.index("wordrec_const_"))
    (bad / "device" / "weights.c").write_text(w[:first] + "0x7f000000u" + w[first + 11:])
    out2 = {"out": tmp_path / "elf2", "report": tmp_path / "mcu2.json", "plots": tmp_path / "plots2"}
    with pytest.raises(DataError, match="device disagrees with host"):
        mcu.run(cfg, {"compiled": bad, "data": synth_data / "test"}, out2)
    assert not (tmp_path / "mcu2.json").exists() and not (tmp_path / "elf2").exists()


def test_compile_parity_gate_fails(tiny, tmp_path):
    with pytest.raises(DataError, match="differs from onnxruntime"):
        _stage("compile").run(smoke_cfg("compile.parity_tol=1e-12"), {"model": tiny},
                              {"out": tmp_path / "c", "report": tmp_path / "c.json"})
    assert not (tmp_path / "c").exists()


def test_lstm_is_a_clear_error(tmp_path):
    from wordrec.device.compile.frontend import import_relax

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("W", TensorProto.FLOAT, [1, 12, 4], np.zeros(48, np.float32))
    r = helper.make_tensor("R", TensorProto.FLOAT, [1, 12, 3], np.zeros(36, np.float32))
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=3)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [w, r]),
                              opset_imports=[helper.make_opsetid("", 14)])
    with pytest.raises(ConfigError, match=r"\['LSTM'\].*conv-only"):
        import_relax(model, [5, 1, 4], "lstm.onnx")


def _path_without(tmp_path, missing: str) -> str:
    """A PATH holding links to the real tools except `missing`."""
    d = tmp_path / f"bin-no-{missing}"
    d.mkdir()
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "qemu-system-arm", "gcc", "cc",
                 "as", "ld"):
        if tool != missing and shutil.which(tool):
            os.symlink(shutil.which(tool), d / tool)
    return str(d)


def test_missing_toolchain_and_simulators(compiled, tmp_path, monkeypatch):
    from wordrec.device.board import sim, toolchain

    monkeypatch.setenv("PATH", _path_without(tmp_path, "arm-none-eabi-gcc"))
    with pytest.raises(ConfigError, match="arm-none-eabi-gcc not found.*gcc-arm-none-eabi"):
        toolchain.build_elf(compiled / "device", tmp_path / "a.elf", "-O3", [])
    monkeypatch.undo()
    elf = tmp_path / "a.elf"
    toolchain.build_elf(compiled / "device", elf, "-O1", [])
    xs = np.zeros([1, *SHAPE], np.float32)
    monkeypatch.setenv("PATH", _path_without(tmp_path, "qemu-system-arm"))
    with pytest.raises(ConfigError, match="qemu-system-arm not found"):
        sim.run(elf, xs, tmp_path / "w", runner="qemu", timeout_s=30, plugin_dir=tmp_path / "p")
    with pytest.raises(ConfigError, match="FVP_Corstone_SSE-300_Ethos-U55 is not on PATH"):
        sim.run(elf, xs, tmp_path / "w", runner="fvp", timeout_s=30, plugin_dir=tmp_path / "p")


def ppocr_like_onnx(path: Path, classes: int) -> Path:
    """A slim PP-OCRv3-style net (depthwise k3/k5 + hardswish, SE with hardsigmoid, avg pool, reshape neck,
    two linear heads) at the seed's 1x3x32x320."""
    import torch
    from torch import nn

    def cbh(i, o, k, s, g=1):
        return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.Hardswish())

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a, self.b = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

        def forward(self, x):
            s = nn.functional.adaptive_avg_pool2d(x, 1)
            return x * nn.functional.hardsigmoid(self.b(torch.relu(self.a(s))))

    def dws(i, o, s, k=3, se=False):
        return nn.Sequential(cbh(i, i, k, s, i), *([SE(i)] if se else []), cbh(i, o, 1, 1))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(cbh(3, 8, 3, 2), dws(8, 16, 1), dws(16, 32, (2, 1)), dws(32, 64, (2, 1), 5),
                                   dws(64, 64, (2, 1), 5, True))
            self.pool = nn.AvgPool2d(2, 2)
            self.fc1, self.fc2 = nn.Linear(64, 24), nn.Linear(24, classes)

        def forward(self, x):
            x = self.pool(self.f(x))
            n, c, h, w = x.shape
            return torch.softmax(self.fc2(self.fc1(x.reshape(n, c * h, w).transpose(1, 2))) * 4, -1)

    torch.manual_seed(1)
    torch.onnx.export(Net().eval(), torch.randn(1, 3, 32, 320), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["probs"], dynamic_axes={"x": {0: "N"}, "probs": {0: "N"}})
    return path


@pytest.mark.slow
def test_seed_shape_ppocr_like_end_to_end(synth_data, tmp_path):
    """compile + mcu stages at 1x3x32x320 on a PP-OCR-like graph (SE, hardswish, depthwise k5)."""
    from wordrec.data.charset import EN_CHARS

    exp = tmp_path / "export" / "svtr"
    exp.mkdir(parents=True)
    ppocr_like_onnx(exp / "model.onnx", len(EN_CHARS) + 1)
    (exp / "meta.json").write_text(json.dumps({"name": "svtr", "framework": "onnx", "arch": "ppocr_like",
                                               "charset": EN_CHARS, "input": {
        "channels": 3, "height": 32, "width": 320, "keep_ratio": True}}))
    c = _stage("compile").run(smoke_cfg(), {"model": exp}, {"out": tmp_path / "c", "report": tmp_path / "c.json"})
    assert c["input_shape"] == [1, 3, 32, 320] and c["output_shape"] == [1, 80, len(EN_CHARS) + 1]
    assert c["arena_bytes"] < c["arena_bytes_without_reuse"] and c["within_targets"]
    cfg = smoke_cfg("mcu.images=2", f"mcu.plugin_dir={tmp_path / 'plugin'}")
    m = _stage("mcu").run(cfg, {"compiled": tmp_path / "c", "data": synth_data / "test"},
                          {"out": tmp_path / "m", "report": tmp_path / "m.json", "plots": tmp_path / "p"})["svtr"]
    assert m["text_agreement"] == 1.0 and m["arena_region"] == "dtcm" and m["weights_region"] == "sram"


def test_qdq_model_is_reported_as_float_kernels(tiny, tmp_path):
    """Relax imports QDQ as float fake-quant: the report must say the device kernels are float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from wordrec.device.compile.compiler import compile_onnx

    class Calib(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": np.random.default_rng(i).uniform(-1, 1, SHAPE).astype(np.float32)}
                            for i in range(4)])

        def get_next(self):
            return next(self.it, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(tiny / "model.onnx"), str(qdq), Calib(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    # TVM's float fake-quant vs onnxruntime's int8 kernels differ by rounding only (measured ~4e-3).
    facts = compile_onnx(qdq, SHAPE, tmp_path / "c", threads=1, parity_tol=5e-2)
    assert facts["qdq_model"] and facts["device_kernels"] == "float" and facts["mac_op_dtypes"] == ["float32"]


def test_mcu_stage_checks_the_runner_first(compiled, tmp_path):
    out = {"out": tmp_path / "o", "report": tmp_path / "r.json", "plots": tmp_path / "p"}
    with pytest.raises(ConfigError, match="FVP_Corstone_SSE-300_Ethos-U55 is not on PATH"):
        _stage("mcu").run(smoke_cfg("mcu.runner=fvp"), {"compiled": compiled, "data": tmp_path / "none"}, out)
    with pytest.raises(ConfigError, match="mcu.runner: 'fpga'"):  # params.yaml:mcu.runner: 'fpga': expected ...
        _stage("mcu").run(smoke_cfg("mcu.runner=fpga"), {"compiled": compiled, "data": tmp_path / "none"}, out)


def test_int8_weight_quantization_is_per_channel_and_bounded():
    from wordrec.device.compile.weights import quantize

    w = np.random.default_rng(0).normal(size=(6, 4, 3, 3)).astype(np.float32) * np.arange(1, 7)[:, None, None, None]
    q, s = quantize(w)
    assert q.dtype == np.int8 and s.shape == (6, 1, 1, 1) and np.abs(q).max() == 127
    assert np.all(np.abs(q * s - w) <= s / 2 + 1e-7)  # rounding error: at most half a step of its own channel
    q0, s0 = quantize(np.zeros((2, 3), np.float32))
    assert not q0.any() and np.all(s0 == 1)  # an all-zero channel keeps a finite scale


def test_int8_weights_on_host_and_qemu(tiny, synth_data, tmp_path):
    """compile.weights=int8: int8 constants in flash, dequantized inside the kernels; the device still matches
    the host module bit for bit, and the text-agreement gate against onnxruntime FP32 is reported."""
    from wordrec.device.compile.host import HostModule

    compile_ = _stage("compile")
    # an untrained model's argmax has near-ties that int8 rounding flips (trained crnn_lite: 98 % on 200 images)
    cfg = smoke_cfg("compile.weights=int8", "compile.int8_check.images=20", "compile.int8_check.min_text_agreement=0.5")
    out = tmp_path / "c"
    m = compile_.run(cfg, {"model": tiny, "data": synth_data / "test"}, {"out": out, "report": tmp_path / "c.json"})
    assert m["weights"] == "int8" and m["weights_int8"] == 1  # the 1408-weight head; small convs stay float
    # 4 -> 1 byte per head weight, plus one float scale per output class
    assert m["weight_bytes"] == m["float_weight_bytes"] - 3 * 1408 + 4 * (len(CHARS) + 1)
    assert m["int8_weights_images"] == 20 and m["int8_weights_text_agreement"] >= 0.5
    assert m["device_kernels"] == "float" and "/* int8[" in (out / "device" / "weights.c").read_text()

    # The C runner (host gcc) computes what the TVM host module computes.
    lib = tmp_path / "librunner.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), *map(str, (out / "device").glob("*.c")),
                    "-lm"], check=True, capture_output=True)
    run, host = ctypes.CDLL(str(lib)).wordrec_run, HostModule(out / "host" / "model.so")
    x = np.random.default_rng(3).uniform(-1, 1, SHAPE).astype(np.float32)
    y = np.zeros((1, 32, len(CHARS) + 1), np.float32)
    assert run(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p)) == 0
    np.testing.assert_allclose(y, host(x), atol=1e-5)

    mcu = _stage("mcu").run(smoke_cfg("mcu.images=2", f"mcu.plugin_dir={tmp_path / 'plugin'}"),
                            {"compiled": out, "data": synth_data / "test"},
                            {"out": tmp_path / "elf", "report": tmp_path / "m.json", "plots": tmp_path / "p"})["tiny"]
    assert mcu["text_agreement"] == 1.0 and mcu["max_abs_diff"] < 1e-5


def test_int8_weight_gate_fails_on_broken_quantization(tiny, synth_data, tmp_path, monkeypatch):
    """Sign-flipped int8 weights change the text: the gate must fail and leave no compile dir behind."""
    from wordrec.device.compile import weights

    good = weights.quantize
    monkeypatch.setattr(weights, "quantize", lambda w, axis=0: (lambda q, s: (-q, s))(*good(w, axis)))
    cfg = smoke_cfg("compile.weights=int8", "compile.int8_check.images=20", "compile.int8_check.min_text_agreement=0.5")
    out = {"out": tmp_path / "c", "report": tmp_path / "c.json"}
    with pytest.raises(DataError, match="with int8 weights the host module reads the same text"):
        _stage("compile").run(cfg, {"model": tiny, "data": synth_data / "test"}, out)
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.json").exists()


def test_int8_weights_need_test_images_and_a_known_mode(tiny, tmp_path):
    out = {"out": tmp_path / "c", "report": tmp_path / "c.json"}
    with pytest.raises(ConfigError, match="needs test images"):
        _stage("compile").run(smoke_cfg("compile.weights=int8"), {"model": tiny}, out)
    with pytest.raises(ConfigError, match="compile.weights: 'int4'"):
        _stage("compile").run(smoke_cfg("compile.weights=int4"), {"model": tiny}, out)


def test_weights_split_over_two_regions_on_qemu(compiled, tmp_path, monkeypatch):
    """With SRAM made too small for the tiny model's weights, sram+isram splits them: some constants in SRAM, the
    rest in ISRAM (nm), and the device computes exactly what the one-region build computes. (`auto` chooses the
    split only when neither region holds them whole: test_mcu_imported.test_weights_split_over_sram_and_isram.)"""
    from wordrec.device.board import sim, toolchain

    xs = np.random.default_rng(2).uniform(-1, 1, [1, *SHAPE]).astype(np.float32)
    whole = tmp_path / "whole" / "app.elf"
    whole.parent.mkdir()
    assert toolchain.build_elf(compiled / "device", whole, "-O3", [], "auto", "auto")["weights_region"] == "sram"
    sizes = toolchain.weight_sections(compiled / "device", tmp_path)
    assert len(sizes) > 2 and sum(sizes.values()) >= json.loads((compiled / "meta.json").read_text())[
        "compile"]["weight_bytes"]
    cap = max(sizes.values()) + 16  # room for the largest constant only, so the rest spills
    monkeypatch.setitem(toolchain.WEIGHT_REGIONS, "sram", ("SRAM", cap))
    split = tmp_path / "split" / "app.elf"
    split.parent.mkdir()
    assert toolchain.build_elf(compiled / "device", split, "-O3", [], "auto", toolchain.SPLIT)[
        "weights_region"] == toolchain.SPLIT
    nm = subprocess.run(["arm-none-eabi-nm", str(split)], capture_output=True, text=True, check=True).stdout
    where = {int(a, 16) >> 24 for a, _, n in (ln.split() for ln in nm.splitlines() if ln.count(" ") == 2)
             if n.startswith("wordrec_const_")}
    assert where == {0x01, 0x21}  # SRAM 0x01000000 and ISRAM 0x21000000
    by_region = toolchain.sizes(split)["weights_bytes_by_region"]
    assert 0 < by_region[".weights"] <= cap and by_region[".weights2"] > 0
    runs = [sim.run(elf, xs, tmp_path / f"w{i}", runner="qemu", timeout_s=60, plugin_dir=tmp_path / "plugin")
            for i, elf in enumerate((whole, split))]
    assert all(r["exit_status"] == 0 for r in runs)
    np.testing.assert_array_equal(runs[0]["outputs"], runs[1]["outputs"])
