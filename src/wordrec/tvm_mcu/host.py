"""The host (`llvm`) build of the same localized Relax module (parity gates, mcu's reference, bench), and the
batch-1 test images both the compile and mcu stages feed it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build(mod):
    """Relax VM executable for the host CPU (same kernels as the device, compiled by LLVM). The localized
    kernels carry no parallel schedule, so it runs on one thread whatever TVM_NUM_THREADS says."""
    import tvm

    return tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))


class HostModule:
    """Runs a compiled (or exported `.so`) Relax executable on batch-1 inputs."""

    def __init__(self, ex_or_path):
        import tvm
        from tvm import relax

        ex = tvm.runtime.load_module(str(ex_or_path)) if isinstance(ex_or_path, (str, Path)) else ex_or_path
        self._vm = relax.VirtualMachine(ex, tvm.cpu())
        self._tvm = tvm

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: float32[1, C, H, W] -> float32[1, T, K]."""
        out = self._vm["main"](self._tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32)))
        return out.numpy()


def load_images(data: Path, n: int, inp: dict, key: str) -> tuple[np.ndarray, list[str]]:
    """The first n images of a test LMDB, preprocessed for the model's input: float32[n, 1, C, H, W] (batch 1).
    `key` names the parameter that asked for n, for the error when the LMDB is smaller."""
    from tqdm import tqdm

    from wordrec.errors import DataError
    from wordrec.lmdb_io import LmdbDataset
    from wordrec.preprocess import prepare

    ds = LmdbDataset(data)
    if len(ds) < n:
        raise DataError(f"{data}: {len(ds)} images, {key} asks for {n}")
    xs, labels = [], []
    for i in tqdm(range(n), desc="prepare", leave=False):
        rgb, label = ds[i]
        xs.append(prepare(rgb, inp["channels"], inp["height"], inp["width"], inp["keep_ratio"]))
        labels.append(label)
    return np.stack(xs)[:, None], labels


def decode(probs: np.ndarray, charset) -> tuple[str, float]:
    """Greedy CTC text and mean max-probability of one [T, K] output."""
    from wordrec.charset import ctc_greedy_decode

    best = probs.argmax(-1)
    return ctc_greedy_decode(best, charset), float(probs.max(-1).mean())
