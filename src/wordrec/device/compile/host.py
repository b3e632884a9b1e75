"""The host (`llvm`) build of the same localized Relax module (parity gates, mcu's reference, bench's
`wordrec.infer.runners.TvmHostRunner`)."""

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
