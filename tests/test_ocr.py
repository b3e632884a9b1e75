"""Whole-image OCR: DB post-processing, metrics, detector on rendered pages, the CLI, bad inputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from wordrec.errors import ConfigError, DataError
from wordrec.ocr import cli
from wordrec.ocr.crop import crop_quad
from wordrec.data.images import load_image
from wordrec.ocr.detect import Detector, db_postprocess, order_clockwise, sort_boxes, unclip_rect
from wordrec.ocr.evaluate import match, page_counts, quad_iou, summarize
from wordrec.ocr.pages import PageRenderer
from wordrec.ocr.peers import PAGE_PEERS, parse_tsv
from wordrec.ocr.pipeline import read_image

FEW_FONTS = "/usr/share/fonts/truetype/dejavu"


class FixedText:
    """Test double for a recognizer: every crop reads as the same text."""

    def __init__(self, text: str = "word"):
        self.text = text
        self.seen: list[np.ndarray] = []

    def predict(self, images, batch_size: int = 64):
        self.seen += list(images)
        return [(self.text, 0.5) for _ in images]


@pytest.fixture(scope="module")
def detector():
    return Detector(threads=1)


@pytest.fixture(scope="module")
def renderer():
    return PageRenderer(font_dirs=[FEW_FONTS])


def _rect_quad(cx, cy, w, h, angle):
    return cv2.boxPoints(((cx, cy), (w, h), angle))


# --- DB post-processing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("angle", [0.0, 12.0, -30.0])
def test_db_postprocess_recovers_rectangles(angle):
    prob = np.zeros((240, 320), np.float32)
    rects = [(160, 60, 200, 24, angle), (100, 170, 120, 30, angle / 2)]
    for cx, cy, w, h, a in rects:
        cv2.fillPoly(prob, [np.round(_rect_quad(cx, cy, w, h, a)).astype(np.int32)], 0.9)
    # unclip_ratio 0 returns the regions themselves; the map is at half the image's resolution.
    boxes, scores = db_postprocess(prob, (480, 640), unclip_ratio=0.0)
    assert len(boxes) == 2 and all(s > 0.85 for s in scores)
    for box, (cx, cy, w, h, a) in zip(boxes, rects):  # sorted top to bottom
        assert quad_iou(box, _rect_quad(2 * cx, 2 * cy, 2 * w, 2 * h, a)) >= 0.9


def test_db_unclip_grows_by_area_ratio_over_perimeter():
    prob = np.zeros((200, 300), np.float32)
    cv2.fillPoly(prob, [np.round(_rect_quad(150, 100, 100, 20, 8)).astype(np.int32)], 1.0)
    boxes, _ = db_postprocess(prob, (200, 300), unclip_ratio=1.6)
    d = 100 * 20 * 1.6 / (2 * (100 + 20))
    assert quad_iou(boxes[0], _rect_quad(150, 100, 100 + 2 * d, 20 + 2 * d, 8)) >= 0.9


def test_unclip_matches_polygon_offset():
    pyclipper = pytest.importorskip("pyclipper")
    rect = ((50.0, 40.0), (80.0, 16.0), 20.0)
    pts = cv2.boxPoints(rect)
    d = 80 * 16 * 1.6 / (2 * 96)
    off = pyclipper.PyclipperOffset()  # integer coordinates: scaled by 100 so rounding does not blur the comparison
    off.AddPath(np.round(pts * 100).astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    ref = cv2.boxPoints(cv2.minAreaRect(np.array(off.Execute(d * 100)[0], np.float32) / 100))
    assert quad_iou(cv2.boxPoints(unclip_rect(rect, 1.6)), ref) > 0.99


def test_order_clockwise_from_top_left():
    q = np.array([[10, 30], [110, 40], [108, 60], [8, 50]], np.float32)  # tl, tr, br, bl of a tilted line
    for perm in ([2, 0, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]):
        np.testing.assert_array_equal(order_clockwise(q[perm]), q)


def test_sort_boxes_reading_order():
    right_higher = np.array(_sq(200, 8), np.float32)  # same visual line as `left`, its top 2 px higher
    left = np.array(_sq(0, 10), np.float32)
    below = np.array(_sq(0, 60), np.float32)
    boxes, scores = sort_boxes([below, right_higher, left], [3, 2, 1])
    assert scores == [1, 2, 3]


def test_crop_is_upright_and_turns_tall_boxes():
    img = np.zeros((100, 200, 3), np.uint8)
    assert crop_quad(img, [[10, 10], [110, 10], [110, 40], [10, 40]]).shape == (30, 100, 3)
    assert crop_quad(img, [[10, 10], [40, 10], [40, 90], [10, 90]]).shape == (30, 80, 3)  # 80/30 >= 1.5
    assert crop_quad(img, [[10, 10], [10.5, 10], [10.5, 40], [10, 40]]) is None


# --- metrics ------------------------------------------------------------------------------------------------------

def _sq(x, y, w=100, h=20):
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


TRUTH = [(np.array(_sq(0, 0), np.float32), "hello world"), (np.array(_sq(0, 50), np.float32), "abc")]


def test_metrics_perfect():
    pred = [{"box": _sq(1, 0), "text": "hello world"}, {"box": _sq(0, 51), "text": "abc"}]
    m = summarize([page_counts(pred, TRUTH)])
    assert (m["precision"], m["recall"], m["f1"], m["cer"], m["wer"]) == (1, 1, 1, 0, 0)


def test_metrics_missed_line_counts_fully():
    m = summarize([page_counts([{"box": _sq(0, 0), "text": "hello world"}], TRUTH)])
    assert m["precision"] == 1 and m["recall"] == 0.5
    assert m["cer"] == pytest.approx(3 / 14) and m["wer"] == pytest.approx(1 / 3)


def test_metrics_false_positive_costs_precision_only():
    pred = [{"box": _sq(0, 0), "text": "hello world"}, {"box": _sq(0, 50), "text": "abc"},
            {"box": _sq(300, 300), "text": "noise"}]
    m = summarize([page_counts(pred, TRUTH)])
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1 and m["cer"] == 0


def test_metrics_wrong_character():
    pred = [{"box": _sq(0, 0), "text": "hellp world"}, {"box": _sq(0, 50), "text": "abc"}]
    m = summarize([page_counts(pred, TRUTH)])
    assert m["cer"] == pytest.approx(1 / 14) and m["wer"] == pytest.approx(1 / 3) and m["f1"] == 1


def test_match_is_one_to_one_and_needs_half_overlap():
    assert quad_iou(_sq(0, 0), _sq(50, 0)) == pytest.approx(1 / 3)
    assert match([_sq(0, 0), _sq(2, 0)], [_sq(1, 0)]) in ([(0, 0)], [(1, 0)])
    assert match([_sq(50, 0)], [_sq(0, 0)]) == []


# --- detector on rendered pages -----------------------------------------------------------------------------------

def test_pages_are_deterministic(renderer):
    a, ta = renderer.render(3, 5)
    b, tb = renderer.render(3, 5)
    assert np.array_equal(a, b) and [t for _, t in ta] == [t for _, t in tb] and ta
    assert all(1 <= len(t.split()) <= 6 for _, t in ta)


def test_detector_finds_rendered_lines(detector, renderer):
    counts = []
    stub = FixedText()
    for i in range(3):
        rgb, truth = renderer.render(0, i)
        lines = read_image(detector, stub, rgb)
        assert all(set(ln) == {"box", "text", "confidence", "det_score"} for ln in lines)
        counts.append(page_counts(lines, truth))
    m = summarize(counts)
    assert m["f1"] >= 0.9, m
    assert stub.seen and all(c.dtype == np.uint8 and c.shape[1] >= c.shape[0] for c in stub.seen)


# --- bad inputs ---------------------------------------------------------------------------------------------------

def test_bad_files_raise_data_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("empty.png", "junk.png", "missing.png"):
        with pytest.raises(DataError, match=name):
            load_image(tmp_path / name)


def test_degenerate_images_never_crash(detector):
    assert read_image(detector, FixedText(), np.zeros((1, 1, 3), np.uint8)) == []
    assert read_image(detector, FixedText(), np.full((700, 500, 3), 255, np.uint8)) == []  # blank page
    assert read_image(detector, FixedText(), np.full((30, 3000, 3), 255, np.uint8)) == []  # extreme aspect
    with pytest.raises(DataError, match="max_side"):
        read_image(detector, FixedText(), np.full((30, 20000, 3), 255, np.uint8))
    with pytest.raises(DataError, match="RGB uint8"):
        detector(np.zeros((10, 10), np.float32))
    with pytest.raises(DataError, match="empty image"):
        detector(np.zeros((0, 10, 3), np.uint8))


# --- CLI ----------------------------------------------------------------------------------------------------------

def _write_page(renderer, path, index=0):
    rgb, truth = renderer.render(7, index)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return truth


def test_cli_json_and_viz(tmp_path, renderer, capsys):
    truth = _write_page(renderer, tmp_path / "page.png")
    rc = cli.main([str(tmp_path / "page.png"), "--model", "stub", "--json", "--viz", str(tmp_path / "viz")],
                  recognizer_factory=lambda path: FixedText("hi"))
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["file"].endswith("page.png")
    assert len(rows[0]["lines"]) >= 0.9 * len(truth) and rows[0]["lines"][0]["text"] == "hi"
    viz = cv2.imread(str(tmp_path / "viz" / "page.png"))
    assert viz is not None and viz.shape[1] > viz.shape[0]


def test_cli_folder_keeps_going_past_a_bad_file(tmp_path, renderer, capsys):
    (tmp_path / "a_bad.png").write_bytes(b"\x89PNG broken")
    _write_page(renderer, tmp_path / "b_good.png", 1)
    rc = cli.main([str(tmp_path), "--model", "stub"], recognizer_factory=lambda path: FixedText("hi"))
    out, err = capsys.readouterr()
    assert rc == 2
    assert "a_bad.png" in err and len(err.strip().splitlines()) == 1
    rows = [r.split("\t") for r in out.splitlines()]
    assert rows and all(r[0].endswith("b_good.png") and len(r[1].split(",")) == 8 and r[2] == "hi" for r in rows)


def test_cli_missing_detector_is_one_line(tmp_path, capsys):
    rc = cli.main([str(tmp_path), "--model", "stub", "--det", str(tmp_path / "nope.onnx")],
                  recognizer_factory=lambda path: FixedText())
    assert rc == 2 and "nope.onnx" in capsys.readouterr().err


def test_cli_default_recognizer_loader_reports_a_bad_model(tmp_path, renderer, capsys):
    _write_page(renderer, tmp_path / "page.png")
    rc = cli.main([str(tmp_path / "page.png"), "--model", str(tmp_path / "no_model")])
    err = capsys.readouterr().err
    assert rc == 2 and "no_model" in err and len(err.strip().splitlines()) == 1


# --- peers --------------------------------------------------------------------------------------------------------

def test_tesseract_tsv_groups_words_into_lines():
    head = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = ["4\t1\t1\t1\t1\t0\t10\t10\t200\t20\t-1\t",
            "5\t1\t1\t1\t1\t1\t10\t12\t50\t18\t90\tHello",
            "5\t1\t1\t1\t1\t2\t70\t10\t60\t20\t80\tworld",
            "5\t1\t1\t1\t2\t1\t10\t40\t30\t20\t70\tnext",
            "5\t1\t1\t1\t2\t2\t50\t40\t30\t20\t95\t "]
    lines = parse_tsv("\n".join([head, *rows]))
    assert [ln["text"] for ln in lines] == ["Hello world", "next"]
    assert lines[0]["box"] == [[10, 10], [130, 10], [130, 30], [10, 30]] and lines[0]["confidence"] == 0.85


@pytest.mark.parametrize("peer", ["rapidocr", "tesseract"])
def test_page_peers_score_like_read_image(peer, renderer):
    try:
        reader = PAGE_PEERS[peer](threads=1)
    except ConfigError as e:
        pytest.skip(str(e))
    rgb, truth = renderer.render(0, 0)
    lines = reader(rgb)
    assert all(set(ln) == {"box", "text", "confidence", "det_score"} and len(ln["box"]) == 4 for ln in lines)
    m = summarize([page_counts(lines, truth)])
    assert m["f1"] >= 0.8 and m["cer"] < 0.5, m
