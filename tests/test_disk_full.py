"""A stage that runs out of disk (here: `ulimit -f`, which a full disk or quota looks like to the writer) fails
with one clear line and leaves nothing half-written: no output, no temporary (issue #15)."""

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, FEW_FONTS
from wordrec.pipeline.config import compose, dump

pytestmark = pytest.mark.slow  # subprocesses, ~45 s


def _limited(limit_bytes: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def _run_limited(stage: str, args: list[str], tmp: Path, limit: int, *overrides: str):
    params = tmp / "params.yaml"
    params.write_text(dump(compose(["profile=smoke", *overrides])))
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), "--params", str(params), *args],
                          cwd=REPO, capture_output=True, text=True, preexec_fn=_limited(limit), timeout=600)


def _assert_clean_failure(p, outs: list[Path], root: Path):
    assert p.returncode == 2, p.stderr[-2000:]
    err = re.findall(r"error: .*", p.stderr)  # after a progress bar's carriage return
    assert len(err) == 1 and "no space left" in err[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    for o in outs:
        assert not o.exists(), f"{o} was left behind"
    assert not list(root.rglob("*.tmp")), "a temporary was left behind"


def test_synth_on_a_full_disk(tmp_path):
    out = tmp_path / "o"
    p = _run_limited("synth", ["--out", str(out / "synth"), "--report", str(out / "synth.json"),
                               "--plots", str(out / "plots")], tmp_path, 150_000,
                     "synth.n_train=200", "synth.n_val=20", "synth.n_test=20", f"synth.fonts.dirs=[{FEW_FONTS}]",
                     "synth.fonts.min_fonts=1")
    _assert_clean_failure(p, [out / "synth", out / "synth.json"], tmp_path)


def test_train_on_a_full_disk_keeps_no_checkpoint_half_written(tmp_path, synth_data):
    out = tmp_path / "o"
    p = _run_limited("train", ["--model", "crnn", "--data", str(synth_data), "--out", str(out / "model"),
                               "--ckpt", str(out / "ckpt"), "--plots", str(out / "plots")], tmp_path, 4096,
                     "train.threads=1")
    _assert_clean_failure(p, [out / "model", out / "plots"], tmp_path)
    assert not list((out / "ckpt").glob("*.pt")) if (out / "ckpt").exists() else True


@pytest.mark.skipif(not (REPO / "build" / "wheels").is_dir(), reason="scripts/setup.sh fetches the wheels")
def test_import_on_a_full_disk(tmp_path):
    out = tmp_path / "o"
    p = _run_limited("pretrained", ["--wheels", str(REPO / "build" / "wheels"), "--out", str(out / "pretrained"),
                                    "--det-out", str(out / "detect"), "--paddle-out", str(out / "pretrained_paddle"),
                                    "--report", str(out / "pretrained.json")],
                     tmp_path, 1_000_000)
    _assert_clean_failure(p, [out / "pretrained", out / "detect", out / "pretrained_paddle", out / "pretrained.json"],
                          tmp_path)


def test_the_same_stage_with_room_succeeds(tmp_path):
    """The limit, not the setup, is what fails above."""
    out = tmp_path / "o"
    p = _run_limited("synth", ["--out", str(out / "synth"), "--report", str(out / "synth.json"),
                               "--plots", str(out / "plots")], tmp_path, 2**30,
                     "synth.n_train=200", "synth.n_val=20", "synth.n_test=20", f"synth.fonts.dirs=[{FEW_FONTS}]",
                     "synth.fonts.min_fonts=1")
    assert p.returncode == 0, p.stderr[-2000:]
    assert yaml.safe_load((out / "synth.json").read_text())["train"] == 200
