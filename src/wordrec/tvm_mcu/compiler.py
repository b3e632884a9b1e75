"""One call from an ONNX file to a compile directory: host module + device C sources + facts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError
from wordrec.tvm_mcu import emit, frontend, host, macs, plan


def compile_onnx(onnx_path: Path, shape: list[int], out: Path, *, threads: int, parity_tol: float,
                 parity_inputs: int = 2, seed: int = 0, pad_in_arena: str | bool = False,
                 arena_target: int = 512 * 1024) -> dict:
    """Write out/{device/*.c,*.h, host/model.so} and return facts (sizes, MACs, parity).

    Raises DataError when the host module differs from onnxruntime by more than `parity_tol` (max |diff| of
    the softmax probabilities over `parity_inputs` random inputs in [-1, 1]).
    """
    t0 = time.perf_counter()
    model = frontend.load_onnx(onnx_path)
    mod, pad_choice = _choose_variant(model, shape, str(onnx_path), pad_in_arena, arena_target)

    dtypes = [str(d) for d in mod.attrs["wordrec_compute_dtypes"]]
    ex = host.build(mod)
    run = host.HostModule(ex)
    diff = 0.0
    for i in range(parity_inputs):
        x = frontend.random_input(shape, seed + i)
        diff = max(diff, float(np.abs(run(x) - host.onnxruntime_probs(onnx_path, x, threads)).max()))
    if not diff <= parity_tol:
        raise DataError(f"{onnx_path}: TVM host module differs from onnxruntime by {diff:.3g} "
                        f"(> compile.parity_tol {parity_tol})")

    planned = plan.extract(plan.lower_memory(mod))
    kernels = emit.build_kernels(plan.lower_memory(mod))
    emit.emit(planned, kernels, out / "device")
    (out / "host").mkdir(parents=True, exist_ok=True)
    ex.export_library(str(out / "host" / "model.so"))
    return {
        "input_shape": list(shape),
        "output_shape": list(planned.tensors[planned.output].shape),
        "pad_in_arena": pad_choice,
        "arena_bytes": planned.arena_bytes,
        "arena_bytes_without_reuse": planned.bytes_without_reuse,
        "weight_bytes": planned.weight_bytes,
        "kernel_calls": len(planned.calls),
        "kernels": len({c[0] for c in planned.calls}),
        "macs": macs.count_macs(model, shape),
        "host_vs_onnxruntime_max_abs_diff": diff,
        "qdq_model": frontend.is_qdq(model),
        "mac_op_dtypes": dtypes,
        "device_kernels": "integer" if any(d.startswith(("int", "uint")) for d in dtypes) else "float",
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _choose_variant(model, shape, where, pad_in_arena, arena_target: int):
    """pad_in_arena True/False, or "auto": take the faster padded variant unless it pushes an arena that meets
    the target over it (when the compact plan misses the target anyway, the speed is worth the memory)."""
    if pad_in_arena in (True, False):
        return frontend.import_relax(model, shape, where, pad_in_arena), bool(pad_in_arena)
    if pad_in_arena != "auto":
        raise ConfigError(f"compile.pad_in_arena: {pad_in_arena!r}, expected true, false or auto")
    compact = frontend.import_relax(model, shape, where, False)
    if plan.extract(plan.lower_memory(compact)).arena_bytes > arena_target:
        return frontend.import_relax(model, shape, where, True), True
    fast = frontend.import_relax(model, shape, where, True)
    if plan.extract(plan.lower_memory(fast)).arena_bytes <= arena_target:
        return fast, True
    return compact, False
