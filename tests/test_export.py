"""export stage: torch -> ONNX with a dynamic batch, parity gate, clear errors for broken ONNX files."""

import json

import numpy as np
import pytest

from fixtures.quant_fixtures import load_stage, smoke
from fixtures.tiny_models import INPUT
from wordrec.errors import ConfigError, DataError
from wordrec.data.evalsets import load_split
from wordrec.data.preprocess import prepare_batch
from wordrec.infer.runners import OrtRunner, TorchRunner
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.gates import parity_gate
from wordrec.post.export_onnx import check_onnx


def test_export_parity_and_dynamic_batch(tiny_models_dirs, tiny_trained, tiny_task, tmp_path):
    out = tmp_path / "export"
    report = load_stage("export").run(smoke(), {"models": tiny_models_dirs, "data": tiny_task},
                                      {"out": out, "report": tmp_path / "export.json"})
    assert set(report) == {"tiny_crnn", "tiny_lite"}
    assert json.loads((tmp_path / "export.json").read_text()) == report
    images, _ = load_split(tiny_task / "test", 5)
    for name, r in report.items():
        assert set(r) == {"max_abs_diff", "text_agreement", "onnx_bytes", "nodes"}
        assert r["max_abs_diff"] < 1e-4 and r["text_agreement"] == 1.0
        meta = ModelMeta.load(out / name)
        assert meta.input == INPUT and meta.section("export")["opset"] == 17
        torch_runner = TorchRunner.from_dir(next(d for d in tiny_trained if d.name == name), meta)
        x = prepare_batch(images, meta.input)
        ort = OrtRunner(out / name / "model.onnx")
        for n in (1, 5):  # dynamic batch axis: sizes other than the export example's
            np.testing.assert_allclose(ort.probs(x[:n]), torch_runner.probs(x[:n]), atol=1e-5)


def test_parity_gate_fails_and_leaves_nothing(tiny_models_dirs, tiny_task, tmp_path):
    cfg = smoke("export.parity.max_abs_diff=1e-12")  # tighter than float32 arithmetic can match
    with pytest.raises(DataError, match="parity failed"):
        load_stage("export").run(cfg, {"models": tiny_models_dirs, "data": tiny_task},
                                 {"out": tmp_path / "export", "report": tmp_path / "export.json"})
    assert not (tmp_path / "export").exists() and not (tmp_path / "export.json").exists()


def test_unknown_key_and_bad_opset(tiny_models_dirs, tiny_task, tmp_path):
    io = ({"models": tiny_models_dirs, "data": tiny_task}, {"out": tmp_path / "e", "report": tmp_path / "e.json"})
    cfg = smoke()
    with pytest.raises(ConfigError, match="opset"):
        load_stage("export").run(smoke("export.opset=11"), *io)
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    cfg.export.opsett = 17
    with pytest.raises(ConfigError, match="opsett"):
        load_stage("export").run(cfg, *io)


def test_truncated_onnx_is_a_clear_error(tiny_exported, tmp_path):
    src = tiny_exported / "tiny_lite" / "model.onnx"
    bad = tmp_path / "model.onnx"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    meta = ModelMeta.load(tiny_exported / "tiny_lite")
    with pytest.raises(DataError, match="corrupt model file"):
        check_onnx(bad, meta)
    with pytest.raises(DataError, match="onnxruntime cannot load"):
        OrtRunner(bad)


def test_wrong_input_shape_is_a_clear_error(tiny_exported):
    meta = ModelMeta.load(tiny_exported / "tiny_lite")
    check_onnx(tiny_exported / "tiny_lite" / "model.onnx", meta)
    wrong = meta.with_input(channels=3, width=320)
    with pytest.raises(DataError, match=r"expects float32 \[N, 3, 32, 320\]"):
        check_onnx(tiny_exported / "tiny_lite" / "model.onnx", wrong)


@pytest.mark.parametrize("facts, match", [
    ({"max_abs_diff": 1e-6, "text_agreement": 1.0}, None),
    ({"max_abs_diff": 1e-6, "text_agreement": 0.9}, "decoded texts agree on 0.900"),
    ({"max_abs_diff": 1e-3, "text_agreement": 1.0}, "max \\|diff\\| 0.001"),
    ({"max_abs_diff": float("nan"), "text_agreement": 1.0}, "max \\|diff\\| nan"),
])
def test_parity_gate_bounds(facts, match):
    """The gate every framework's export goes through (torch and Paddle alike)."""
    if match is None:
        parity_gate(facts, "m", 1e-4, 1.0)
    else:
        with pytest.raises(DataError, match=match):
            parity_gate(facts, "m", 1e-4, 1.0)
