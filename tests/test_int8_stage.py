"""compile (kernels=int8) and mcu as stages, on a tiny CTC recognizer quantized to QDQ by onnxruntime here.

The stage-level proof of issue #13's gate: the device build with one requantization constant wrong (an int8
output's shift off by one, or a float output's scale doubled; device sources only, the host reference stays right) fails the mcu stage's bit-exact gate, and the stage leaves no ELF,
no report and no samples behind. Slow: TVM compile, two ELF builds and QEMU runs (~1 minute).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil

import numpy as np
import pytest

from conftest import smoke_cfg
from wordrec.errors import DataError

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"),
                                 reason="needs the Debian toolchain from scripts/setup.sh")]

CHARS = "abcdefghij"
SHAPE = [1, 3, 32, 64]


def _stage(name):
    return importlib.import_module(f"stages.{name}")


def _qdq_recognizer(d, synth_data):
    """conv-relu-pool x2 -> height pooled away -> 1x1 head over 11 classes -> softmax over classes (N, T, K),
    exported FP32 and quantized to QDQ (per-channel int8 weights) on synth val images."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from torch import nn

    from wordrec.data.evalsets import load_split
    from wordrec.data.preprocess import prepare_batch
    from wordrec.models.meta import ModelMeta

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 24, 3, padding=1)
            self.head = nn.Conv2d(24, len(CHARS) + 1, 1)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
            x = self.head(nn.functional.avg_pool2d(x, (SHAPE[2] // 4, 1)))  # N, K, 1, T
            return torch.softmax(x[:, :, 0].transpose(1, 2), -1)

    torch.manual_seed(0)
    m = Tiny().eval()
    with torch.no_grad():
        m.head.weight.mul_(6)  # sharper classes: argmax ties cannot flip a decoded character
    d.mkdir(parents=True)
    fp32 = d / "fp32.onnx"
    torch.onnx.export(m, torch.randn(*SHAPE), str(fp32), dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["probs"], dynamic_axes={"x": {0: "N"}, "probs": {0: "N"}})
    meta = ModelMeta.from_dict({"name": "tiny", "framework": "onnx", "arch": "tiny", "charset": CHARS,
                                "input": {"channels": 3, "height": 32, "width": 64, "keep_ratio": False}})
    images, _ = load_split(synth_data / "val", 16)
    calib = prepare_batch(images, meta.input)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x}

    quantize_static(str(fp32), str(d / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    meta.save(d)
    return d


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, synth_data):
    root = tmp_path_factory.mktemp("int8stage")
    qdq = _qdq_recognizer(root / "qdq", synth_data)
    # An untrained tiny model's classes are near-ties, so its decoded text is no measure of the arithmetic (the
    # agreement gate is exercised on the real models by the DAG); this module proves the bit-exact gate.
    cfg = smoke_cfg("compile.kernels=int8", "compile.int8_kernels.images=40",
                    "compile.int8_kernels.min_text_agreement=0.0")
    facts = _stage("compile").run(cfg, {"model": qdq, "data": synth_data / "test"},
                                  {"out": root / "c", "report": root / "c.json"})
    return root, facts


def test_compile_offloads_every_conv_and_mcu_is_bit_exact(compiled, synth_data, tmp_path):
    root, facts = compiled
    assert facts["kernels"] == "int8" and facts["integer_calls"] >= 2 and facts["integer_mac_share"] > 0.9
    assert facts["check_set"] == str(synth_data / "test")  # no real set given: the synth test split
    out = {"out": tmp_path / "mcu", "report": tmp_path / "mcu.json", "plots": tmp_path / "plots"}
    m = _stage("mcu").run(smoke_cfg("mcu.images=3"), {"compiled": root / "c", "data": synth_data / "test"}, out)
    r = m["tiny_int8"]
    assert r["bit_exact"] is True and r["bit_exact_images"] == 3 and r["text_agreement"] == 1.0
    assert (tmp_path / "mcu" / "app.elf").is_file() and (tmp_path / "plots" / "layers.csv").is_file()


def test_a_wrong_requantization_on_the_device_fails_the_stage_and_leaves_nothing(compiled, synth_data,
                                                                                       tmp_path):
    root, _ = compiled
    wrong = tmp_path / "c"
    shutil.copytree(root / "c", wrong)
    dev = wrong / "device"
    runner = (dev / "runner.c").read_text()
    # the first int8 conv call's requantization: an int8-output kernel's per-channel shift table (5th tensor
    # argument; channel 0's shift one lower), or a float-output kernel's per-channel scale (3rd; channel 0's
    # doubled): a constant in weights.c either way
    m = re.search(r"wrnn_conv(?:1x1)?_s8(_f32)?\((.*?)\);", runner, re.S)
    float_out = m.group(1) is not None
    table = re.findall(r"t_(\d+)\.data", m.group(2))[2 if float_out else 4]
    const = re.search(rf"static DLTensor t_{table} = {{\.data = \(void\*\)wordrec_const_(\d+),", runner).group(1)
    weights = (dev / "weights.c").read_text()
    head, tail = weights.split(f"wordrec_const_{const}[", 1)
    start = tail.index("{\n") + 2
    word = tail[start:start + 11]
    assert re.fullmatch(r"0x[0-9a-f]{8}u", word), word
    bits = int(word[2:10], 16)
    new = f"0x{(bits + 0x00800000 if float_out else bits - 1) & 0xffffffff:08x}u"
    (dev / "weights.c").write_text(head + f"wordrec_const_{const}[" + tail[:start] + new + tail[start + 11:])

    out = {"out": tmp_path / "mcu", "report": tmp_path / "mcu.json", "plots": tmp_path / "plots"}
    with pytest.raises(DataError, match="not bit-exact"):
        _stage("mcu").run(smoke_cfg("mcu.images=3"), {"compiled": wrong, "data": synth_data / "test"}, out)
    assert not (tmp_path / "mcu").exists() and not (tmp_path / "mcu.json").exists()
    assert not (tmp_path / "plots").exists() or not any((tmp_path / "plots").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no hidden temporaries either
    json.loads((root / "c.json").read_text())  # the compile report of the good build is untouched
