"""Whole-image OCR pieces of issue #14 beyond wordrec.ocr's core (tests/test_ocr.py): the detector as a pretrained
artifact, reading lines at their own width, the resize option, and the `pages` stage on a few tiny pages.

Tests that need the pinned wheels (build/wheels, scripts/setup.sh) or an imported recognizer
(models/pretrained/<name>, the pretrained stage) skip without them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FEW_FONTS, REPO, smoke_cfg
from wordrec.errors import ConfigError, DataError
from wordrec.ocr import cli
from wordrec.ocr.detect import Detector
from wordrec.ocr.evaluate import page_counts
from wordrec.ocr.pages import PageRenderer, caps_only
from wordrec.ocr.pipeline import read_image

WHEELS = REPO / "build" / "wheels"
DET_WHEEL = WHEELS / "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
PRETRAINED = REPO / "models" / "pretrained"
# the most accurate import first; any one that reads lines at their own width will do
REC = next((PRETRAINED / n for n in ("ppocrv6_small", "ppocrv4") if (PRETRAINED / n / "model.onnx").is_file()), None)
needs_det_wheel = pytest.mark.skipif(not DET_WHEEL.is_file(), reason="scripts/setup.sh fetches the pinned wheels")
needs_rec = pytest.mark.skipif(REC is None, reason="no imported recognizer in models/pretrained (pretrained stage)")


class FixedText:
    def predict(self, images, batch_size: int = 64):
        return [("hi", 0.5) for _ in images]


@pytest.fixture(scope="module")
def renderer():
    return PageRenderer(font_dirs=[FEW_FONTS])


@pytest.fixture(scope="module")
def det_dir(tmp_path_factory) -> Path:
    if not DET_WHEEL.is_file():
        pytest.skip("scripts/setup.sh fetches the pinned wheels")
    from wordrec.models.imported import import_detector

    d = tmp_path_factory.mktemp("detect") / "ppocrv4"
    import_detector("ppocrv4", WHEELS, d)
    return d


# --- the detector as a pretrained artifact -------------------------------------------------------------------------

@needs_det_wheel
def test_detector_dir_is_the_wheels_file_with_its_provenance(det_dir, renderer):
    import hashlib
    import zipfile

    meta = json.loads((det_dir / "meta.json").read_text())
    with zipfile.ZipFile(DET_WHEEL) as z:
        shipped = z.read("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")
    assert (det_dir / "model.onnx").read_bytes() == shipped
    assert meta["kind"] == "detector" and meta["source"]["model_sha256"] == hashlib.sha256(shipped).hexdigest()
    assert meta["source"]["licence"].startswith("Apache-2.0") and meta["source"]["params"] > 1_000_000
    rgb, truth = renderer.render(3, 0, "document")
    boxes, _ = Detector(det_dir)(rgb)
    assert len(boxes) >= 0.9 * len(truth)


def test_detector_dir_must_be_a_detector(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"name": "crnn", "framework": "onnx"}))
    with pytest.raises(ConfigError, match="kind None, expected 'detector'"):
        Detector(d)
    with pytest.raises(ConfigError, match="meta.json: detector not found"):
        Detector(tmp_path)


@needs_det_wheel
def test_pretrained_stage_writes_the_detector_apart_from_the_recognizers(tmp_path):
    from stages import pretrained

    out = {"out": tmp_path / "pre", "det_out": tmp_path / "detect", "paddle_out": tmp_path / "pp",
           "report": tmp_path / "pre.json"}
    report = pretrained.run(smoke_cfg(), {"wheels": WHEELS}, out)
    assert list(report) == ["ppocrv3"]  # the report and models/pretrained hold recognizers only
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["ppocrv3"]
    assert json.loads((tmp_path / "detect" / "ppocrv4" / "meta.json").read_text())["kind"] == "detector"


def test_pretrained_stage_rejects_an_unknown_detector_before_any_work(tmp_path):
    from stages import pretrained

    with pytest.raises(ConfigError, match="imported detector 'dbnet'"):
        pretrained.run(smoke_cfg("pretrained.detectors=[dbnet]"), {"wheels": tmp_path},
                       {"out": tmp_path / "pre", "det_out": tmp_path / "det", "paddle_out": tmp_path / "pp",
                        "report": tmp_path / "pre.json"})
    assert not any(tmp_path.iterdir())


# --- resize instead of refuse --------------------------------------------------------------------------------------

def test_resize_reads_a_phone_sized_photo_in_its_own_pixels(renderer):
    rgb, truth = renderer.render(5, 1, "photo")
    scale = 4032 / rgb.shape[1]  # a phone photo's width
    big = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    big_truth = [(box * scale, text) for box, text in truth]
    with pytest.raises(DataError, match="larger than max_side=4000.*resize"):
        read_image(Detector(threads=1), FixedText(), big)
    det = Detector(threads=1, resize=True)
    small, s = det.fit(big)
    assert max(small.shape[:2]) == 4000 and s == pytest.approx(4000 / 4032)
    c = page_counts(read_image(det, FixedText(), big), big_truth)  # boxes come back in the big image's pixels
    c0 = page_counts(read_image(det, FixedText(), rgb), truth)  # the page as rendered
    assert c["tp"] == c0["tp"] >= len(truth) - 1 and c["pred"] == c0["pred"]


def test_resize_still_refuses_an_absurd_strip():
    det = Detector(threads=1, resize=True)
    with pytest.raises(DataError, match="short side would be 6 px .*too extreme"):
        det.fit(np.full((30, 20000, 3), 255, np.uint8))
    ok, scale = det.fit(np.full((300, 3000, 3), 255, np.uint8))  # within max_side: untouched
    assert scale == 1.0 and ok.shape == (300, 3000, 3)


def test_cli_resize_and_max_side(tmp_path, renderer, capsys):
    rgb, _ = renderer.render(5, 2, "photo")
    big = cv2.resize(rgb, (4400, round(rgb.shape[0] * 4400 / rgb.shape[1])))
    cv2.imwrite(str(tmp_path / "big.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    rc = cli.main([str(tmp_path / "big.jpg"), "--model", "stub"], recognizer_factory=lambda p: FixedText())
    assert rc == 2 and "larger than max_side=4000" in capsys.readouterr().err
    rc = cli.main([str(tmp_path / "big.jpg"), "--model", "stub", "--resize"], recognizer_factory=lambda p: FixedText())
    rows = [r.split("\t") for r in capsys.readouterr().out.splitlines()]
    assert rc == 0 and rows and max(float(v) for r in rows for v in r[1].split(",")) > 3000  # original pixels
    rc = cli.main([str(tmp_path / "big.jpg"), "--model", "stub", "--max-side", "0"],
                  recognizer_factory=lambda p: FixedText())
    assert rc == 2 and "--max-side: 0" in capsys.readouterr().err


# --- renderer ------------------------------------------------------------------------------------------------------

def test_renderer_kinds_and_caps_only_fonts(renderer):
    assert caps_only("/usr/share/fonts/fonts-go/Go-Smallcaps.ttf") if Path(
        "/usr/share/fonts/fonts-go/Go-Smallcaps.ttf").is_file() else True
    assert not caps_only(str(Path(FEW_FONTS) / "DejaVuSans.ttf"))
    doc, photo = renderer.render(1, 0, "document")[1], renderer.render(1, 0, "photo")[1]
    assert len(doc) > 6 >= len(photo)  # documents: a page of lines; photos: 2-6 scattered ones
    a, b = renderer.render(1, 3), renderer.render(1, 3)
    assert np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="kind"):
        renderer.render(1, 0, "poster")


# --- lines at their own width --------------------------------------------------------------------------------------

@needs_rec
def test_line_reader_reads_a_long_line_the_fixed_width_squeezes():
    from PIL import Image, ImageDraw, ImageFont

    from wordrec.infer import recognizer
    from wordrec.ocr.lines import LineRecognizer, line_width, load_line_reader

    text = "blustering erectly Kirov chronologies 8502 taillights"
    font = ImageFont.truetype(str(Path(FEW_FONTS) / "DejaVuSans.ttf"), 32)
    img = Image.new("RGB", (font.getbbox(text)[2] + 20, 48), "white")
    ImageDraw.Draw(img).text((10, 4), text, font=font, fill="black")
    crop = np.asarray(img)
    line = load_line_reader(REC)
    assert isinstance(line, LineRecognizer) and line_width(line) == "dynamic"
    assert line.predict([crop])[0][0] == text
    assert recognizer.load(REC).predict([crop])[0][0] != text  # 48 x 320: too few CTC steps for 53 characters


@needs_rec
def test_fixed_length_graph_falls_back_to_the_fixed_width(tmp_path):
    """A model whose T does not follow W (PP-OCRv3's folded reshape) is read the usual way, not refused."""
    v3 = PRETRAINED / "ppocrv3"
    if not (v3 / "model.onnx").is_file():
        pytest.skip("no ppocrv3 import")
    from wordrec.ocr.lines import SplitLines, line_width, load_line_reader

    rec = load_line_reader(v3)
    assert isinstance(rec, SplitLines) and line_width(rec) == "fixed 320x48, split at gaps"


def test_split_at_gaps_cuts_word_spaces_only_as_needed():
    from PIL import Image, ImageDraw, ImageFont

    from wordrec.ocr.lines import split_at_gaps

    font = ImageFont.truetype(str(Path(FEW_FONTS) / "DejaVuSans.ttf"), 30)
    text = "alpha beta gamma delta epsilon"
    img = Image.new("RGB", (font.getbbox(text)[2] + 16, 44), (200, 220, 240))
    ImageDraw.Draw(img).text((8, 4), text, font=font, fill=(20, 20, 20))
    crop = np.asarray(img)
    assert len(split_at_gaps(crop, 100.0)) == 1  # fits: not cut
    pieces = split_at_gaps(crop, 320 / 48)
    assert 2 <= len(pieces) <= 5 and all(p.shape[1] <= 320 / 48 * 44 for p in pieces)
    assert sum(p.shape[1] for p in pieces) == crop.shape[1]  # cuts, no loss
    blank = np.full((40, 900, 3), 255, np.uint8)
    assert len(split_at_gaps(blank, 3.0)) == 1  # nothing to cut at


# --- the pages stage -----------------------------------------------------------------------------------------------

def _inputs(tmp_path, det_dir, quant=None):
    return {"pretrained": str(REC.parent), "export": str(tmp_path / "export"), "detect": str(det_dir),
            "quant": str(quant or tmp_path / "quant")}


def _outputs(tmp_path):
    return {"report": tmp_path / "pages.json", "plots": tmp_path / "plots"}


def _cfg(*overrides):
    return smoke_cfg(f"pages.models=[{REC.name}]", f"pages.font_dirs=[{FEW_FONTS}]", "pages.n_documents=1",
                     "pages.n_photos=2", "pages.peers.rapidocr=false", "pages.peers.tesseract=false", *overrides)


@pytest.mark.slow
@needs_rec
def test_pages_stage_on_three_tiny_pages(tmp_path, det_dir):
    """FP32 read and scored per kind; the INT8 wiring exercised with stand-in files (the FP32 graph at the onnx_qdq
    path, and as an OpenVINO IR at the openvino path: the same text expected)."""
    import openvino as ov

    from stages import pages

    quant = tmp_path / "quant" / REC.name
    for backend in ("onnx_qdq", "openvino"):
        (quant / backend).mkdir(parents=True)
        shutil.copy(REC / "meta.json", quant / backend / "meta.json")
    shutil.copy(REC / "model.onnx", quant / "onnx_qdq" / "model.onnx")
    ov.save_model(ov.convert_model(str(REC / "model.onnx")), str(quant / "openvino" / "model.xml"))
    report = pages.run(_cfg("pages.peers.tesseract=true"), _inputs(tmp_path, det_dir), _outputs(tmp_path))
    assert json.loads((tmp_path / "pages.json").read_text()) == report
    assert report["pages"] == {"documents": 1, "photos": 2} and report["detector"]["arch"] == "ch_PP-OCRv4_det"
    ours = report["readers"][REC.name]
    assert ours["line_width"] == "dynamic" and ours["family"] == "ours"
    for kind in ("documents", "photos", "all"):
        assert ours[kind]["f1"] >= 0.9 and ours[kind]["cer"] <= 0.1, (kind, ours[kind])
        assert ours[kind]["pages_per_s"] > 0
    stand_in = report["readers"][f"{REC.name}_int8_onnx_qdq"]
    assert stand_in["all"]["cer"] == ours["all"]["cer"] and stand_in["precision"] == "int8 (onnx_qdq)"
    ir = report["readers"][f"{REC.name}_int8_openvino"]  # OpenVINO reshaped to a dynamic width
    assert ir["line_width"] == "dynamic" and abs(ir["all"]["cer"] - ours["all"]["cer"]) <= 0.01
    assert "tesseract_psm3" in report["readers"]
    assert report["targets"]["met"][REC.name] in (True, False)
    assert cv2.imread(str(tmp_path / "plots" / "gallery.png")) is not None


@needs_rec
def test_pages_stage_reports_a_missing_int8_model_as_not_available(tmp_path, det_dir):
    from stages import pages

    report = pages.run(_cfg("pages.n_documents=0", "pages.n_photos=1", "pages.gallery=0"),
                       _inputs(tmp_path, det_dir), _outputs(tmp_path))
    for backend, f in (("openvino", "model.xml"), ("onnx_qdq", "model.onnx")):
        entry = report["readers"][f"{REC.name}_int8_{backend}"]
        assert entry["available"] is False and f"{REC.name}/{backend}/{f}: not found" in entry["reason"]
    assert report["pages"] == {"documents": 0, "photos": 1} and not (tmp_path / "plots" / "gallery.png").exists()


@needs_rec
def test_pages_stage_missing_recognizer_is_a_clear_error(tmp_path, det_dir):
    from stages import pages

    with pytest.raises(DataError, match=r"pages.models: 'nope': expected an imported model dir or an exported "
                                        r"model of ours, found neither .*pretrained/nope nor .*export/nope/model.onnx"):
        pages.run(_cfg("pages.models=[nope]"), _inputs(tmp_path, det_dir), _outputs(tmp_path))
    assert not (tmp_path / "pages.json").exists() and not (tmp_path / "plots").exists()


@needs_rec
def test_pages_stage_reads_an_exported_model_of_ours(tmp_path, det_dir):
    """A name under EXPORT (our trained model, as the export stage writes it: model.onnx + meta.json) is read like
    an import; a name in both places is refused rather than guessed."""
    from stages import pages

    ours = tmp_path / "export" / "mine"
    ours.mkdir(parents=True)
    shutil.copy(REC / "model.onnx", ours / "model.onnx")
    shutil.copy(REC / "meta.json", ours / "meta.json")
    report = pages.run(_cfg("pages.models=[mine]", "pages.n_documents=0", "pages.n_photos=1", "pages.gallery=0"),
                       _inputs(tmp_path, det_dir), _outputs(tmp_path))
    mine = report["readers"]["mine"]
    assert mine["recognizer"] == str(ours / "model.onnx") and mine["family"] == "ours" and mine["all"]["f1"] > 0
    twin = tmp_path / "export" / REC.name
    shutil.copytree(ours, twin)
    with pytest.raises(DataError, match=f"'{REC.name}': .*found both"):
        pages.run(_cfg(), _inputs(tmp_path, det_dir), _outputs(tmp_path / "b"))


@needs_rec
def test_pages_stage_int8_named_but_missing_is_a_clear_error(tmp_path, det_dir):
    from stages import pages

    with pytest.raises(DataError, match=r"openvino/model.xml: params.yaml:pages.int8 names openvino"):
        pages.run(_cfg("pages.int8=[openvino]"), _inputs(tmp_path, det_dir), _outputs(tmp_path))
    assert not (tmp_path / "pages.json").exists() and not (tmp_path / "plots").exists()


@needs_rec
def test_pages_stage_needs_the_detector(tmp_path):
    from stages import pages

    with pytest.raises(DataError, match="detector not found .*pretrained stage"):
        pages.run(_cfg(), _inputs(tmp_path, tmp_path / "no_det"), _outputs(tmp_path))
