"""The one model-meta schema (wordrec.models.meta): round trip, validation at load, and that nothing else reads
or writes meta.json."""

import ast
import json

import pytest

from conftest import REPO
from wordrec.data.charset import Charset
from wordrec.errors import DataError
from wordrec.models.meta import InputSpec, ModelMeta

GOOD = {"name": "m", "framework": "torch", "arch": {"type": "crnn"}, "charset": "abc",
        "input": {"channels": 1, "height": 32, "width": 100, "keep_ratio": False}}


def test_round_trip_and_sections(tmp_path):
    meta = ModelMeta("m", "onnx", "PP-OCRv4", Charset.from_spec("alnum_lower"),
                     InputSpec(3, 48, 320, True, "bgr"), {"train": {"val_accuracy": 0.5}})
    meta.with_section("export", {"opset": 17}).save(tmp_path)
    back = ModelMeta.load(tmp_path)
    assert back.to_dict() == {**meta.to_dict(), "export": {"opset": 17}} and back.path == tmp_path / "meta.json"
    assert back.input.channel_order == "bgr" and back.num_classes == 37
    (tmp_path / "model.onnx").write_bytes(b"")
    assert ModelMeta.load(tmp_path / "model.onnx").name == "m"  # a model file finds the meta beside it
    assert meta.section("export") == {}  # with_section returns a new meta; the original is unchanged


@pytest.mark.parametrize("change, message", [
    ({"framework": "tf"}, "framework 'tf'"),
    ({"input": {"channels": 1, "height": 32}}, r"missing key\(s\) \['input.width', 'input.keep_ratio'\]"),
    ({"input": {**GOOD["input"], "channels": 2}}, "expected 1 or 3 channels"),
    ({"input": {**GOOD["input"], "channel_order": "grb"}}, "channel_order 'grb'"),
    ({"charset": "aab"}, "duplicate characters"),
    ({"charset": ""}, "non-empty string"),
    ({"val_accuracy": 0.7}, r"unknown key\(s\) \['val_accuracy'\]; stage facts go under one of"),
    ({"train": 3}, r"section\(s\) \['train'\] must be JSON objects"),
])
def test_validation_names_the_file_and_key(tmp_path, change, message):
    (tmp_path / "meta.json").write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(DataError, match=message) as e:
        ModelMeta.load(tmp_path)
    assert str(tmp_path / "meta.json") in str(e.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="model not found"):
        ModelMeta.load(tmp_path / "nope")
    with pytest.raises(DataError, match="model metadata not found"):
        ModelMeta.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"name": ')
    with pytest.raises(DataError, match="not valid JSON"):
        ModelMeta.load(tmp_path)
    (tmp_path / "meta.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(DataError, match="not valid JSON"):
        ModelMeta.load(tmp_path)


def _code_strings(path):
    """String constants in code (docstrings excluded)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_models_meta_is_the_only_reader_and_writer_of_meta_json():
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "stages").glob("*.py"))
    # a reader or writer needs the file name as a path component: `dir / "meta.json"` (messages may mention it)
    users = [str(f.relative_to(REPO)) for f in files if "meta.json" in _code_strings(f)]
    # ModelMeta and DetectorMeta (a detector has no charset or input geometry) both live in models/meta.py;
    # export_onnx only checks that an import dir has one before skipping it.
    detector = {"src/wordrec/post/export_onnx.py"}
    assert [u for u in users if u not in detector] == ["src/wordrec/models/meta.py"]


def test_detector_meta_round_trip_and_errors(tmp_path):
    from wordrec.models.meta import DetectorMeta

    m = DetectorMeta("ppocrv4", "ch_PP-OCRv4_det", "N x 3 x H x W", "N x 1 x H x W", {"licence": "Apache-2.0"})
    m.save(tmp_path)
    assert DetectorMeta.load(tmp_path) == m
    d = json.loads((tmp_path / "meta.json").read_text())
    d["kind"] = "recognizer"
    (tmp_path / "meta.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="kind 'recognizer', expected 'detector'"):
        DetectorMeta.load(tmp_path)
    d["kind"] = "detector"
    del d["source"]
    (tmp_path / "meta.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"meta.json: missing key\(s\) \['source'\]"):
        DetectorMeta.load(tmp_path)
    with pytest.raises(DataError, match="not found"):
        DetectorMeta.load(tmp_path / "nowhere")
