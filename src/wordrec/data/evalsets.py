"""The images every post-training stage shares: calibration (synth val) and test sets (synth test + data/real/*).

Test sets are the ones `evaluate` reports on, so INT8 accuracy is comparable with the FP32 evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError
from wordrec.data.lmdb_io import LmdbDataset


def load_split(path: str | Path, n: int | None = None, key: str | None = None) -> tuple[list[np.ndarray], list[str]]:
    """First `n` (all when None or <= 0) RGB images and labels of an LMDB, in order (deterministic). With `key`
    (the parameter that asked for n) an LMDB smaller than n is an error instead of a shorter list."""
    ds = LmdbDataset(path)
    if key and n and len(ds) < n:
        raise DataError(f"{path}: {len(ds)} images, {key} asks for {n}")
    k = len(ds) if not n or n <= 0 else min(n, len(ds))
    if k == 0:
        raise DataError(f"{path}: LMDB is empty")
    items = [ds[i] for i in range(k)]
    return [im for im, _ in items], [t for _, t in items]


def dataset_paths(synth: str | Path, real: str | Path | None, extra=()) -> dict[str, Path]:
    """{"synth_test": synth/test, "<name>": each LMDB folder under `real` (if any), then `extra` LMDB folders}:
    the test sets evaluate, quantize and bench all report on."""
    found = {"synth_test": Path(synth) / "test"}
    if real and Path(real).is_dir():
        found.update({p.name: p for p in sorted(Path(real).iterdir()) if (p / "data.mdb").is_file()})
    for e in extra:
        p = Path(e)
        if not (p / "data.mdb").is_file():
            raise DataError(f"{p}: not an LMDB dataset (no data.mdb)")
        found[p.name] = p
    return found


def test_sets(synth: str | Path, real: str | Path | None, n: int | None) -> dict[str, tuple[list, list]]:
    """{"synth_test": (images, labels), "<real name>": ...}: the first `n` of each of `dataset_paths`."""
    return {name: load_split(path, n) for name, path in dataset_paths(synth, real).items()}


def calibration_images(synth: str | Path, n: int, mode: str = "val") -> list[np.ndarray]:
    """Calibration images. `mode: constant` deliberately feeds flat grey images: a broken calibration that
    the accuracy-drop gate must catch (used by tests and to demonstrate the gate)."""
    images, _ = load_split(Path(synth) / "val", n)
    if mode == "val":
        return images
    if mode == "constant":
        return [np.full_like(im, 128) for im in images]
    raise ConfigError(f"calibration mode {mode!r}: expected 'val' or 'constant'")

