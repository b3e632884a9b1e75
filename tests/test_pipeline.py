"""End to end: the DVC pipeline on the smoke profile in a fresh copy of the repo (slow; CI runs it)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow


def _sh(cwd, *args):
    # Stage commands call `python`: make it this interpreter, as `make` does by putting .venv/bin first.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, f"{args} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


def make_clone(dst: Path, profile: str = "smoke") -> Path:
    """The repo's tracked + untracked-but-not-ignored files, as a fresh clone would have them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    # What `make` sets up before the DAG on a fresh clone: scripts/setup.sh's pinned wheels (build/ is git-ignored).
    shutil.copytree(REPO / "build" / "wheels", dst / "build" / "wheels")
    _sh(dst, "git", "init", "-q")
    _sh(dst, "git", "add", "-A")
    _sh(dst, "git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "snapshot")
    _sh(dst, sys.executable, "-m", "wordrec.pipeline.config", f"profile={profile}")
    return dst


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return make_clone(tmp_path_factory.mktemp("clone") / "repo")


def dvc(cwd, *args):
    return _sh(cwd, sys.executable, "-m", "dvc", *args)


def test_smoke_pipeline_runs_then_is_a_noop_then_reruns_only_dependents(clone):
    out = dvc(clone, "repro")
    stages = list(yaml.safe_load((clone / "dvc.yaml").read_text())["stages"])
    assert "Running stage 'synth'" in out
    rep = json.loads((clone / "reports" / "synth.json").read_text())
    assert rep["train"] == 800 and rep["fonts"] >= 20
    # Checkpoints exactly as the train stage writes them (torch and Paddle) went through export, quantize and
    # bench: every model appears in each report, with accuracies as fractions (the one unit of every metrics file).
    reports = {k: json.loads((clone / "reports" / f"{k}.json").read_text()) for k in ("export", "quantize", "bench")}
    for name in ("crnn", "crnn_lite", "svtr"):
        assert reports["export"][name]["text_agreement"] == 1.0
        runs = reports["quantize"][name]
        assert {"openvino", "onnx_qdq"} <= set(runs) and "accuracy_int8" in runs["onnx_qdq"]
        # a backend left out by quantize.model_skip (svtr's OpenVINO) still has its entry, saying why
        assert all(r.get("skipped") or 0.0 <= r["accuracy_int8"] <= 1.0 for r in runs.values())
        assert "onnxruntime-fp32" in reports["bench"][name]
    assert "inc" in reports["quantize"]["crnn"] and "torch-int8" in reports["bench"]["crnn"]
    # the pretrained stage's import is scored like our own models (smoke profile: ppocrv3 only)
    assert "ppocrv3" in json.loads((clone / "reports" / "eval.json").read_text())
    # ... and runs on the device (compile_imported/mcu_imported over params mcu.imported: ppocrv3 in smoke)
    assert json.loads((clone / "reports" / "mcu.json").read_text())["ppocrv3"]["text_agreement"] == 1.0
    curves = [(clone / "reports" / "train" / m / "curves.csv").read_text().splitlines()[0] for m in ("crnn", "svtr")]
    assert curves[0] == curves[1]  # one curves schema for both frameworks (dvc plots overlays them)

    again = dvc(clone, "repro")
    assert "Running stage" not in again, again  # second run is a no-op
    assert "Data and pipelines are up to date" in dvc(clone, "status")

    # Changing one synth parameter reruns synth (and whatever depends on its outputs) and nothing else.
    _sh(clone, sys.executable, "-m", "wordrec.pipeline.config", "profile=smoke", "synth.n_val=90")
    third = dvc(clone, "repro")
    assert "Running stage 'synth'" in third
    assert json.loads((clone / "reports" / "synth.json").read_text())["val"] == 90
    assert len(stages) >= 1
