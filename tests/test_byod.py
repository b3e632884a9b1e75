"""Bring-your-own-data converter and dataset check: round trip, bad inputs leave nothing behind."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SHARED_REAL
from wordrec.data.byod import convert, main
from wordrec.data.charset import Charset
from wordrec.data.datacheck import main as check_main
from wordrec.errors import DataError
from wordrec.data.lmdb_io import LmdbDataset


def _folder(tmp_path, labels):
    d = tmp_path / "crops"
    (d / "img").mkdir(parents=True)
    for i, (_, word) in enumerate(labels):
        img = np.full((20, 60, 3), 255, np.uint8)
        cv2.putText(img, word, (2, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        cv2.imwrite(str(d / "img" / f"{i}.png"), img)
    (d / "labels.txt").write_text("".join(f"{p}\t{w}\n" for p, w in labels))
    return d


GOOD = [("img/0.png", "Hello"), ("img/1.png", "42KM"), ("img/2.png", "it's")]


def test_convert_round_trip(tmp_path):
    d = _folder(tmp_path, GOOD)
    assert convert(d, tmp_path / "db", charset=Charset.from_spec("en")) == 3
    ds = LmdbDataset(tmp_path / "db")
    assert [ds[i][1] for i in range(3)] == ["Hello", "42KM", "it's"]
    img, _ = ds[1]
    assert img.shape == (20, 60, 3)
    assert ds.raw(0)[0] == (d / "img/0.png").read_bytes()  # original bytes kept


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: (d / "img/1.png").unlink(), r"labels.txt: image .*1.png not found"),
        (lambda d: (d / "img/2.png").write_bytes(b"garbage"), r"2.png: cannot decode image"),
        (lambda d: (d / "labels.txt").write_text("img/0.png Hello\n"), r"labels.txt:1: expected 'relative/path<TAB>label'"),
        (lambda d: (d / "labels.txt").write_text("img/0.png\t\n"), r"labels.txt:1: empty label"),
        (lambda d: (d / "labels.txt").write_text(""), r"labels.txt: no samples"),
        (lambda d: (d / "labels.txt").unlink(), r"labels.txt: label file not found"),
    ],
)
def test_bad_inputs_are_clear_errors_and_write_nothing(tmp_path, mutate, match):
    d = _folder(tmp_path, GOOD)
    mutate(d)
    with pytest.raises(DataError, match=match):
        convert(d, tmp_path / "db")
    assert not (tmp_path / "db").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["crops"]


def test_label_outside_charset(tmp_path, capsys):
    d = _folder(tmp_path, [("img/0.png", "Hello"), ("img/1.png", "naïve")])
    assert main([str(d), str(tmp_path / "db"), "--charset", "en"]) == 2
    err = capsys.readouterr().err
    assert "naïve" in err and "'ï'" in err and "outside the charset" in err
    assert not (tmp_path / "db").exists()


def test_dataset_check_cli(tmp_path, capsys):
    d = _folder(tmp_path, GOOD)
    convert(d, tmp_path / "db")
    assert check_main([str(tmp_path / "db"), "--charset", "alnum_lower", "--out", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "check.json").read_text())
    assert rep["n"] == 3 and rep["chars_outside_charset"] == ["'", "H", "K", "M"]
    assert rep["length_hist"] == {"4": 2, "5": 1}
    assert (tmp_path / "rep" / "montage.png").is_file() and (tmp_path / "rep" / "lengths.png").is_file()
    assert check_main([str(tmp_path / "nodb")]) == 2


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason="../shared/data not present")
def test_real_iiit5k_converts(tmp_path):
    n = convert(SHARED_REAL, tmp_path / "iiit5k", charset=Charset.from_spec("en"))
    assert n == 2000 and len(LmdbDataset(tmp_path / "iiit5k")) == 2000
