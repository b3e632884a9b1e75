"""The images every post-training stage shares: calibration (synth val) and test sets (synth test + data/real/*).

Test sets are the ones `evaluate` reports on, so INT8 accuracy is comparable with the FP32 evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError
from wordrec.lmdb_io import LmdbDataset
from wordrec.preprocess import prepare_batch


def load_split(path: str | Path, n: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """First `n` (all when None or <= 0) RGB images and labels of an LMDB, in order (deterministic)."""
    ds = LmdbDataset(path)
    k = len(ds) if not n or n <= 0 else min(n, len(ds))
    if k == 0:
        raise DataError(f"{path}: LMDB is empty")
    items = [ds[i] for i in range(k)]
    return [im for im, _ in items], [t for _, t in items]


def test_sets(synth: str | Path, real: str | Path | None, n: int | None) -> dict[str, tuple[list, list]]:
    """{"synth_test": ..., "<real name>": ...}; real sets are every LMDB folder under `real` (if any)."""
    sets = {"synth_test": load_split(Path(synth) / "test", n)}
    if real and Path(real).is_dir():
        for d in sorted(p for p in Path(real).iterdir() if (p / "data.mdb").is_file()):
            sets[d.name] = load_split(d, n)
    return sets


def calibration_images(synth: str | Path, n: int, mode: str = "val") -> list[np.ndarray]:
    """Calibration images. `mode: constant` deliberately feeds flat grey images: a broken calibration that
    the accuracy-drop gate must catch (used by tests and to demonstrate the gate)."""
    images, _ = load_split(Path(synth) / "val", n)
    if mode == "val":
        return images
    if mode == "constant":
        return [np.full_like(im, 128) for im in images]
    raise ConfigError(f"calibration mode {mode!r}: expected 'val' or 'constant'")


def tensors(images: list[np.ndarray], meta: dict) -> np.ndarray:
    i = meta["input"]
    return prepare_batch(images, int(i["channels"]), int(i["height"]), int(i["width"]), bool(i["keep_ratio"]))
