"""Shared fixtures: a tiny synthetic dataset (session-scoped) and smoke-profile params in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from wordrec.pipeline.config import compose

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "iiit5k_train"
FEW_FONTS = "/usr/share/fonts/truetype/dejavu"

os.environ.setdefault("OMP_NUM_THREADS", "2")

# Tiny models + exports shared by the export/quantize/bench tests.
pytest_plugins = ["fixtures.quant_fixtures"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    # Stages resolve conf/ relative to the working directory, as under DVC.
    monkeypatch.chdir(REPO)


def smoke_cfg(*overrides: str):
    cfg = compose(["profile=smoke", *overrides])
    OmegaConf.set_struct(cfg, True)
    return cfg


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """data/synth-like folder with 300/60/60 images rendered from the DejaVu fonts (a few seconds)."""
    from stages import synth as mod

    cfg = compose(["profile=smoke", "synth.n_train=300", "synth.n_val=60", "synth.n_test=60",
                   f"synth.fonts.dirs=[{FEW_FONTS}]", "synth.fonts.min_fonts=1"])
    root = tmp_path_factory.mktemp("synth")
    mod.run(cfg, {}, {"out": root / "synth", "report": root / "synth.json", "plots": root / "plots"})
    return root / "synth"
