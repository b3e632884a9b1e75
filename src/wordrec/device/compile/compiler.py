"""One call from an ONNX file to a compile directory: host module + device C sources + facts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wordrec.errors import ConfigError, DataError
from wordrec.infer.decode import texts
from wordrec.infer.runners import OrtRunner
from wordrec.device.compile import emit, frontend, host, macs, plan

WEIGHTS = ("float32", "int8", "auto")  # compile.weights


def compile_onnx(onnx_path: Path, shape: list[int], out: Path, *, threads: int, parity_tol: float,
                 parity_inputs: int = 2, seed: int = 0, pad_in_arena: str | bool = False,
                 arena_target: int = 512 * 1024, weights: str = "float32", weight_target: int = 2 * 1024 * 1024,
                 check=None) -> dict:
    """Write out/{device/*.c,*.h, host/model.so} and return facts (sizes, MACs, parity).

    Raises DataError when the float host module differs from onnxruntime by more than `parity_tol` (max |diff|
    of the softmax probabilities over `parity_inputs` random inputs in [-1, 1]).

    weights: float32 | int8 | auto (int8 when the float constants exceed `weight_target`). With int8 storage the
    shipped module is no longer onnxruntime's arithmetic, so `check` (a WeightCheck of real images) must be given:
    the decoded text of the int8-weight host module must agree with onnxruntime FP32 on `check.min_agreement`
    of them, or DataError.
    """
    if weights not in WEIGHTS:
        raise ConfigError(f"compile.weights: {weights!r}, expected one of {list(WEIGHTS)}")
    t0 = time.perf_counter()
    model = frontend.load_onnx(onnx_path)
    ort = OrtRunner(onnx_path, threads)  # the reference for both gates: one session
    mod, pad_choice = _choose_variant(model, shape, str(onnx_path), pad_in_arena, arena_target)

    dtypes = [str(d) for d in mod.attrs["wordrec_compute_dtypes"]]
    ex = host.build(mod)
    run = host.HostModule(ex)
    diff = 0.0
    for i in range(parity_inputs):
        x = frontend.random_input(shape, seed + i)
        diff = max(diff, float(np.abs(run(x) - ort.probs(x)).max()))
    if not diff <= parity_tol:
        raise DataError(f"{onnx_path}: TVM host module differs from onnxruntime by {diff:.3g} "
                        f"(> compile.parity_tol {parity_tol})")

    planned = plan.extract(plan.lower_memory(mod))
    float_weight_bytes = planned.weight_bytes
    if weights == "auto":
        weights = "int8" if float_weight_bytes > weight_target else "float32"
    w8 = {}
    if weights != "float32":
        mod = frontend.import_relax(model, shape, str(onnx_path), pad_choice, weights)
        ex = host.build(mod)
        w8 = _check_int8_weights(onnx_path, host.HostModule(ex), ort, check)
        w8.update({f"weights_{k}": int(v) for k, v in mod.attrs["wordrec_weight_stats"].items()})
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
        "weights": weights,
        "float_weight_bytes": float_weight_bytes,
        **w8,
        "kernel_calls": len(planned.calls),
        "kernels": len({c[0] for c in planned.calls}),
        "macs": macs.count_macs(model, shape),
        "host_vs_onnxruntime_max_abs_diff": diff,
        "qdq_model": frontend.is_qdq(model),
        "mac_op_dtypes": dtypes,
        "device_kernels": "integer" if any(d.startswith(("int", "uint")) for d in dtypes) else "float",
        "seconds": round(time.perf_counter() - t0, 1),
    }


@dataclass
class WeightCheck:
    """Real test images for the int8-weight gate: x float32[N, C, H, W], the model's charset."""
    x: np.ndarray
    charset: object
    min_agreement: float


def _check_int8_weights(onnx_path, run, ort: OrtRunner, check: WeightCheck | None) -> dict:
    if check is None:
        raise ConfigError(f"{onnx_path}: int8 weight storage needs test images for its text-agreement gate "
                          "(compile stage --data)")
    ref = np.concatenate([ort.probs(x[None]) for x in check.x])  # batch 1, as the TVM module is built
    got = np.concatenate([run(x[None]) for x in tqdm(check.x, desc="int8-weight check", leave=False)])
    agree = sum(r == g for r, g in zip(texts(ref, check.charset), texts(got, check.charset))) / len(ref)
    facts = {"int8_weights_text_agreement": agree, "int8_weights_images": len(ref),
             "int8_weights_max_abs_diff": float(np.abs(ref - got).max())}
    if not agree >= check.min_agreement:
        raise DataError(f"{onnx_path}: with int8 weights the host module reads the same text as onnxruntime FP32 "
                        f"on {agree:.1%} of {len(ref)} test images (< compile.int8_check.min_text_agreement "
                        f"{check.min_agreement})")
    return facts


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


KERNELS = ("float", "int8")  # compile.kernels


@dataclass
class QdqCheck:
    """Real test images with labels for the int8 build's gates: x float32[N, C, H, W]."""
    x: np.ndarray
    labels: list
    charset: object
    min_agreement: float
    fp32_onnx: Path | None = None  # the float model the QDQ one was quantized from, for the accuracy beside it


def compile_qdq(onnx_path: Path, shape: list[int], out: Path, *, threads: int, check: QdqCheck,
                pad_in_arena: bool = False, stem_strips: int = 0) -> dict:
    """Compile a QDQ ONNX with its quantized conv blocks on the wrnn int8 kernels; write out/device (sources incl.
    wrnn.c) and out/host/native.so (the same C built for this CPU with -DWRNN_SCALAR: the device's bit-exact
    reference). Gate: the native build's decoded text agrees with onnxruntime running the same QDQ ONNX on at
    least `check.min_agreement` of the images, else DataError. stem_strips: run the input stem in that many
    vertical strips (wordrec.device.compile.strips; 0: whole)."""
    from wordrec.device.compile import native, offload, strips
    from wordrec.pipeline.metrics import score

    t0 = time.perf_counter()
    model = frontend.load_onnx(onnx_path)
    if not frontend.is_qdq(model):
        raise ConfigError(f"{onnx_path}: compile.kernels=int8 needs a QDQ ONNX (QuantizeLinear/DequantizeLinear), "
                          "e.g. models/quant/<name>/onnx_qdq")
    graph = model
    if stem_strips:
        # on the graph the kernels run (int8 zero points, explicit SAME pads: both exact rewrites, which the import
        # would apply anyway): there onnxruntime's check is bit for bit; on the uint8 graph its convs round
        # differently at other widths (ppocrv6_small: one level at the stem output)
        graph = strips.tile_stem(offload.explicit_same_pads(offload.int8_activations(model)), shape, stem_strips)
    off = offload.Offloader()
    mod = frontend.import_relax(graph, shape, str(onnx_path), bool(pad_in_arena), offloader=off)
    if not off.layers:
        raise DataError(f"{onnx_path}: no quantized conv block could be offloaded to the int8 kernels: "
                        f"{off.skipped or 'no QDQ conv found'}")
    lowered = plan.lower_memory(mod)
    planned = plan.extract(lowered, externs=set(off.layers))
    kernels = emit.build_kernels(lowered)
    emit.emit(planned, kernels, out / "device", layers=off.layers)
    so = native.build(out / "device", out / "host" / "native.so")
    t_compile = time.perf_counter() - t0

    run = native.NativeModel(so, out / "device")
    out_shape = planned.tensors[planned.output].shape[1:]
    got = run.probs(check.x, out_shape)
    ort = OrtRunner(onnx_path, threads)
    ref = np.concatenate([ort.probs(x[None]) for x in check.x])
    t_text, r_text = texts(got, check.charset), texts(ref, check.charset)
    agree = sum(a == b for a, b in zip(t_text, r_text)) / len(ref)
    acc = {}

    def scored(kind, text):  # exact in the model's charset, and the scene-text rule the zoo ranks models by
        s = score(text, check.labels, check.charset)
        acc[f"{kind}_word_accuracy"], acc[f"{kind}_word_accuracy_alnum_ci"] = s["accuracy"], s["accuracy_alnum_ci"]

    scored("int8", t_text)
    scored("ort_qdq", r_text)
    if check.fp32_onnx is not None:
        f32 = OrtRunner(check.fp32_onnx, threads)
        scored("fp32", texts(np.concatenate([f32.probs(x[None]) for x in check.x]), check.charset))
    if not agree >= check.min_agreement:
        raise DataError(f"{onnx_path}: the int8-kernel build reads the same text as onnxruntime (same QDQ ONNX) on "
                        f"{agree:.1%} of {len(ref)} images (< compile.int8_kernels.min_text_agreement "
                        f"{check.min_agreement})")
    total = macs.count_macs(model, shape)
    executed = macs.count_macs(graph, shape) if graph is not model else total  # + the strips' overlaps
    int_macs = sum(layer.macs for layer in off.layers.values())
    layers = [{"layer": k, "call": [c[0] for c in planned.calls].index(k), "op": v.op, "macs": v.macs,
               "geom": v.geom} for k, v in off.layers.items()]
    return {
        "input_shape": list(shape),
        "output_shape": list(planned.tensors[planned.output].shape),
        "kernels": "int8",
        "device_kernels": "integer",
        "pad_in_arena": bool(pad_in_arena),
        "stem_strips": int(stem_strips),
        "arena_bytes": planned.arena_bytes,
        "arena_bytes_without_reuse": planned.bytes_without_reuse,
        "weight_bytes": planned.weight_bytes,
        "weights": "int8",
        "kernel_calls": len(planned.calls),
        "integer_calls": len(off.layers),
        "call_names": [name for name, _ in planned.calls],
        "macs": total,
        "executed_macs": executed,
        "integer_macs": int_macs,
        "integer_mac_share": round(int_macs / executed, 4) if executed else 0.0,
        "not_offloaded": off.skipped,
        "layers": layers,
        "probe_bytes": run.probe_bytes,
        "qdq_model": True,
        "mac_op_dtypes": ["int8"],
        "text_agreement_vs_ort_qdq": agree,
        "check_images": len(ref),
        "native_vs_ort_qdq_max_abs_diff": float(np.abs(ref - got).max()),
        **acc,
        "compile_seconds": round(t_compile, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
