"""Atomic writes: temporaries of killed writers are swept, figures and PNGs are written whole."""

import os
import subprocess
import sys

import numpy as np

from wordrec.io import atomic_dir, atomic_file, out_of_space, sweep_stale, write_png


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_dead_writers_are_swept_live_ones_kept(tmp_path):
    target = tmp_path / "model"
    dead = tmp_path / f".model.{_dead_pid()}.abc123.tmp"
    dead.mkdir()
    (dead / "half.pt").write_bytes(b"\0" * 10)
    live = tmp_path / f".model.{os.getppid()}.def456.tmp"   # our parent runs
    live.mkdir()
    other = tmp_path / f".model_lite.{_dead_pid()}.x.tmp"  # another output's temporary: not ours to judge
    other.write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "best.pt").write_text("ok")
    assert not dead.exists() and live.exists() and other.exists()
    assert (target / "best.pt").read_text() == "ok"
    assert sweep_stale(tmp_path / "model_lite") == [other]


def test_atomic_file_sweeps_and_names_its_temporary_with_its_pid(tmp_path):
    stale = tmp_path / f".r.json.{_dead_pid()}.zz.tmp"
    stale.write_text("{")
    with atomic_file(tmp_path / "r.json") as f:
        names = [p.name for p in tmp_path.iterdir()]
        assert any(n.startswith(f".r.json.{os.getpid()}.") for n in names)
        f.write("{}")
    assert not stale.exists() and (tmp_path / "r.json").read_text() == "{}"


def test_write_png_and_out_of_space(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 5, 3), np.uint8))
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert out_of_space(OSError(28, "No space left on device"))
    assert out_of_space(RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed "
                                     "writing file data/3: file write failed"))
    try:
        try:
            raise OSError(27, "File too large")
        except OSError as e:
            raise ValueError("wrapped") from e
    except ValueError as e:
        assert out_of_space(e)
    assert not out_of_space(OSError(2, "No such file or directory"))
    assert not out_of_space(ValueError("bad value"))
