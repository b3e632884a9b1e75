"""synth stage: determinism, LMDB layout and round trip, bad inputs."""

import hashlib
from pathlib import Path

import pytest

from conftest import FEW_FONTS, REPO, smoke_cfg
from wordrec.errors import ConfigError, DataError
from wordrec.data.lmdb_io import LmdbDataset, write_lmdb
from stages import synth

SMALL = ["synth.n_train=40", "synth.n_val=10", "synth.n_test=10", f"synth.fonts.dirs=[{FEW_FONTS}]",
         "synth.fonts.min_fonts=1"]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(tmp, *ov):
    out = {"out": tmp / "synth", "report": tmp / "synth.json", "plots": tmp / "plots"}
    return synth.run(smoke_cfg(*SMALL, *ov), {}, out), out


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    _, a = _run(tmp_path / "a", "synth.workers=2")
    _, b = _run(tmp_path / "b", "synth.workers=1")
    _, c = _run(tmp_path / "c", "synth.seed=1")
    assert _digest(a["out"]) == _digest(b["out"])
    assert _digest(a["out"]) != _digest(c["out"])


def test_layout_and_report(tmp_path):
    m, out = _run(tmp_path)
    assert sorted(p.name for p in out["out"].iterdir()) == ["charset.txt", "fonts.txt", "lines_test", "lines_train",
                                                            "lines_val", "test", "train", "val"]
    assert not (out["out"] / "train" / "lock.mdb").exists()
    # Through the dataset's own handle: py-lmdb allows one open environment per path and process.
    with LmdbDataset(out["out"] / "train")._open().begin() as txn:
        assert txn.get(b"num-samples") == b"40"
        assert txn.get(b"image-000000001")[:2] == b"\xff\xd8"  # JPEG
        assert txn.get(b"label-000000040")
        assert txn.get(b"image-000000041") is None
    for key in ("train", "val", "test", "fonts", "charset_size", "images_per_second"):
        assert key in m
    fonts = (out["out"] / "fonts.txt").read_text().splitlines()
    assert fonts and all(l.startswith("fonts-dejavu") and "\t/usr/share/fonts/" in l for l in fonts)
    assert m["font_packages"] >= 1
    assert (m["train"], m["val"], m["test"], m["charset_size"]) == (40, 10, 10, 95)
    assert (out["plots"] / "montage_train.png").stat().st_size > 1000
    assert (out["plots"] / "label_lengths.png").is_file()
    ds = LmdbDataset(out["out"] / "val")
    img, label = ds[0]
    assert img.ndim == 3 and img.shape[0] == 32 and img.shape[2] == 3 and label


def test_lines_split_reads_as_words_with_spaces_and_leaves_the_word_splits_alone(tmp_path):
    m, out = _run(tmp_path / "a", "synth.lines.n_train=30", "synth.lines.words=[2,4]", "synth.lines.max_width=500")
    ds = LmdbDataset(out["out"] / "lines_train")
    words = [len(ds[i][1].split(" ")) for i in range(len(ds))]
    assert len(ds) == m["lines_train"] == 30 and min(words) >= 2 and max(words) <= 4 and len(set(words)) > 1
    widths = [ds[i][0].shape[1] for i in range(len(ds))]
    assert max(widths) <= 500 and sum(w > 320 for w in widths) > 0  # wider than a word crop may be
    assert m["label_len_mean_lines_train"] > 10
    assert (out["plots"] / "montage_lines.png").stat().st_size > 1000
    # The words' bytes do not depend on the lines' settings: DVC keeps every stage downstream of them cached.
    _, b = _run(tmp_path / "b", "synth.lines.n_train=0", "synth.lines.words=[3,5]")
    assert not (b["out"] / "lines_train").exists()
    da, db = _digest(out["out"]), _digest(b["out"])
    assert all(da[k] == db[k] for k in db if k.split("/")[0] in ("train", "val", "test"))


def test_lines_need_a_space_in_the_charset(tmp_path):
    with pytest.raises(ConfigError, match="synth.charset 'alnum_lower' has no space"):
        _run(tmp_path, "synth.charset=alnum_lower")
    assert not (tmp_path / "synth").exists()


def test_lmdb_round_trip(tmp_path):
    samples = [(b"\x89PNGfake%d" % i, w) for i, w in enumerate(["héllo", "a b", "42"])]
    assert write_lmdb(tmp_path / "db", samples) == 3
    ds = LmdbDataset(tmp_path / "db")
    assert len(ds) == 3 and [ds.raw(i) for i in range(3)] == samples
    with pytest.raises(IndexError):
        ds.raw(3)


def test_failed_write_leaves_nothing(tmp_path):
    def boom():
        yield b"x", "a"
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError):
        write_lmdb(tmp_path / "db", boom())
    assert list(tmp_path.iterdir()) == []


def test_missing_fonts_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=r"synth.fonts.dirs=.*found 0 usable fonts"):
        _run(tmp_path, f"synth.fonts.dirs=[{tmp_path / 'nofonts'}]")
    assert not (tmp_path / "synth").exists()


def test_empty_font_dir_with_junk_file(tmp_path):
    d = tmp_path / "fonts"
    d.mkdir()
    (d / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(DataError, match="found 0 usable fonts"):
        _run(tmp_path, f"synth.fonts.dirs=[{d}]")


def test_unknown_synth_key_is_rejected(tmp_path):
    cfg = smoke_cfg(*SMALL)
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    cfg.synth.n_trian = 5
    with pytest.raises(ConfigError, match="n_trian"):
        synth.run(cfg, {}, {"out": tmp_path / "s", "report": tmp_path / "r.json", "plots": tmp_path / "p"})
