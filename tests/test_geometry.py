"""evaluate.geometry (issue #16): imported recognizers scored at other input heights x widths.

The models here are tiny ONNX graphs built in the test, shaped like the imports (N x 3 x 48 x 320 in, N x W/8 x K
softmax out, meta framework onnx); one of them folds its frame count into a Reshape the way onnxsim folded
PP-OCRv3's, so it runs only at its import width.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wordrec.data.charset import Charset
from wordrec.data.lmdb_io import write_lmdb
from wordrec.errors import ConfigError, DataError
from wordrec.models.meta import InputSpec, ModelMeta
from wordrec.pipeline import geometry
from wordrec.pipeline.config import compose, section
from wordrec.pipeline.report import accuracy_table, geometry_table

CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
LABELS = ["ab", "hello", "a", "committee", "xyz1"]
ASPECTS = [2.0, 5.0, 1.0, 9.0, 3.0]  # width / height of each crop: at 32 high, 9.0 is 288 px, wider than 160


def _tiny_model(out_dir, fold_frames: int | None = None):
    """Mean over channels and rows, one frame per 8 columns, a 1 -> K linear layer, softmax: any H, any W % 8 == 0.
    `fold_frames`: end with a Reshape to (-1, fold_frames, K), as a graph simplified at one width does."""
    k = len(CHARS) + 1
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 3, (1, k)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 1, (k,)).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2")]
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=1),
             helper.make_node("AveragePool", ["m"], ["p"], kernel_shape=[1, 8], strides=[1, 8]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Unsqueeze", ["f", "ax2"], ["u"]),
             helper.make_node("MatMul", ["u", "w"], ["l"]),
             helper.make_node("Add", ["l", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probs" if fold_frames is None else "s"], axis=-1)]
    if fold_frames is not None:
        inits.append(numpy_helper.from_array(np.array([-1, fold_frames, k], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["s", "shape"], ["probs"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 48, 320])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 40, k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    out_dir.mkdir(parents=True)
    onnx.save(model, str(out_dir / "model.onnx"))
    ModelMeta(out_dir.name, "onnx", "tiny", Charset.from_chars(CHARS), InputSpec(3, 48, 320, True, "bgr")).save(out_dir)
    return out_dir


def _lmdb(path):
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 255, (20, int(20 * a), 3), np.uint8) for a in ASPECTS]
    write_lmdb(path, [(cv2.imencode(".png", c)[1].tobytes(), t) for c, t in zip(crops, LABELS)])
    return path


def _cfg(*overrides):
    return section(compose(["profile=smoke", "evaluate.geometry.models=[tiny]", "evaluate.geometry.sets=[crops]",
                            *overrides]), "evaluate")


@pytest.mark.parametrize("override, message", [
    ("evaluate.geometry.heights=[48,30]", r"params.yaml:evaluate.geometry.heights: \[48, 30\]: expected distinct "
                                          r"multiples of 8"),
    ("evaluate.geometry.widths=[]", r"params.yaml:evaluate.geometry.widths: \[\]: expected"),
    ("evaluate.geometry.widths=[160,160]", r"params.yaml:evaluate.geometry.widths: \[160, 160\]"),
    ("evaluate.geometry.widths=[8]", r"params.yaml:evaluate.geometry.widths: \[8\]: .* >= 16"),
    ("evaluate.geometry.sets=[]", r"params.yaml:evaluate.geometry.sets: empty"),
    ("evaluate.geometry.limit=0", r"params.yaml:evaluate.geometry.limit: 0: expected > 0"),
    ("evaluate.geometry.heights=abc", r"params.yaml:evaluate.geometry.heights"),
])
def test_bad_geometry_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(override)


def test_no_models_means_nothing_to_check_or_measure(tmp_path):
    c = section(compose(["profile=smoke"]), "evaluate")
    assert list(c.geometry.models) == []  # smoke: the DAG stays fast
    assert geometry.evaluate_geometry(c.geometry, tmp_path, {}, 8) == {}
    assert list(section(compose([]), "evaluate").geometry.models)  # the default profile measures


def test_frames_needed_counts_a_blank_between_repeats():
    assert [geometry.frames_needed(t) for t in ("", "a", "ab", "hello", "aaa")] == [0, 1, 2, 6, 5]


def test_evaluate_stage_scores_each_geometry(tmp_path):
    from stages import evaluate as stage

    pretrained = tmp_path / "pretrained"
    tiny = _tiny_model(pretrained / "tiny")
    _lmdb(tmp_path / "synth" / "test")
    _lmdb(tmp_path / "real" / "crops")
    cfg = compose(["profile=smoke", "evaluate.models=[]", "evaluate.geometry.models=[tiny]",
                   "evaluate.geometry.heights=[48,32]", "evaluate.geometry.widths=[320,16]",
                   "evaluate.geometry.sets=[crops]"])
    out = stage.run(cfg, {"models": tmp_path / "none", "grid": tiny, "pretrained": pretrained,
                          "data": tmp_path / "synth", "real": tmp_path / "real"},
                    {"report": tmp_path / "eval.json", "plots": tmp_path / "plots"})
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert rep == out and set(rep) == {"tiny_grid", "tiny", "geometry"}
    geo = rep["geometry"]["tiny"]["crops"]
    assert set(geo) == {"48x320", "48x16", "32x320", "32x16"}
    for hw, r in geo.items():
        assert set(r) == {"accuracy", "accuracy_alnum_ci", "ned", "n", "frames", "squeezed", "too_long"}
        assert r["n"] == 5 and r["frames"] == int(hw.split("x")[1]) // 8
    # 16 wide: every crop is squeezed (even the square one); 2 frames hold "ab" and "a", not the other three
    assert geo["48x16"]["squeezed"] == geo["32x16"]["squeezed"] == 1.0 and geo["48x16"]["too_long"] == 0.6
    assert geo["48x320"]["squeezed"] == 0.2 and geo["32x320"]["squeezed"] == 0.0  # 9:1 is 432 px at 48, 288 at 32
    assert geo["48x320"]["too_long"] == 0.0
    # the untouched geometry is the ordinary evaluation of the same model
    assert {k: geo["48x320"][k] for k in rep["tiny"]["crops"]} == rep["tiny"]["crops"]
    assert (tmp_path / "plots" / "geometry.png").stat().st_size > 1000
    assert "geometry" not in accuracy_table(rep, {"tiny": {}})
    table = geometry_table(rep)
    assert "| `tiny` | crops | 32 x 16 | 2 | 100.0 | 60.0 |" in table
    assert table.index("48 x 320") < table.index("48 x 16") < table.index("32 x 320")  # largest first, not as sorted


def test_a_graph_folded_at_its_import_width_is_refused_not_scored(tmp_path):
    folded = _tiny_model(tmp_path / "folded", fold_frames=40)
    meta = ModelMeta.load(folded)
    assert geometry.recognizer_at(folded, meta, 32, 320).meta.input.height == 32  # frames unchanged: it runs
    with pytest.raises(DataError, match=r"folded at 48x160: the graph does not run at this input size"):
        geometry.recognizer_at(folded, meta, 48, 160)


def test_unknown_set_or_model_is_a_config_error_before_scoring(tmp_path):
    _tiny_model(tmp_path / "pretrained" / "tiny")
    sets = {"crops": _lmdb(tmp_path / "crops")}
    with pytest.raises(ConfigError, match=r"evaluate.geometry.sets: \['nope'\] not among the test sets \['crops'\]"):
        geometry.check_inputs(_cfg("evaluate.geometry.sets=[nope]").geometry, tmp_path / "pretrained", sets)
    with pytest.raises(ConfigError, match=r"evaluate.geometry.models: 'ppocrv9': no imported model"):
        geometry.check_inputs(_cfg("evaluate.geometry.models=[ppocrv9]").geometry, tmp_path / "pretrained", sets)
