"""Latency/throughput measurement, the runtime registry and the accuracy-vs-latency plot for the bench stage.

A runtime is a factory `(artefacts, precision, threads, batch, **options) -> runner | None` (a runner has
`.probs(NCHW) -> NTK`; None: that runtime has no such variant for this model; `batch` is the throughput batch,
for runtimes that compile static shapes). torch, onnxruntime and OpenVINO are registered here; another backend
(TVM on the host, from the compile stage's `host/model.so`) is registered the same way and appears in bench.json
and the plot as `tvm-fp32` (`tvm-int8` with a note when the compile stage stored int8 weights: float kernels).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from wordrec.errors import ConfigError, DataError
from wordrec.infer.runners import OrtRunner, OvRunner, TorchRunner, TvmHostRunner, ov_precision
from wordrec.io import save_figure
from wordrec.models.meta import ModelMeta


@dataclass
class Artefacts:
    """Everything the earlier stages produced for one model (paths are None when a stage skipped it); each
    artefact's meta is read once here and passed to its runtime."""

    name: str
    meta: ModelMeta  # the export's
    train_dir: Path
    onnx: Path
    onnx_int8: Path | None = None
    ov_int8: Path | None = None
    ov_int8_meta: ModelMeta | None = None
    inc_int8: Path | None = None
    tvm_host: Path | None = None
    tvm_meta: ModelMeta | None = None


def artefacts(model_dir: Path, export: Path, quant: Path, compiled: Path, imported: bool = False) -> Artefacts:
    """A trained model's artefacts (its FP32 ONNX in EXPORT/<name>/), or with `imported` an imported model's
    (models/pretrained/<name>: the dir itself holds the FP32 ONNX; `export` is ignored)."""
    name = ModelMeta.load(model_dir).name
    export_dir = model_dir if imported else export / name
    onnx = export_dir / "model.onnx"
    if not onnx.is_file():
        raise DataError(f"{onnx}: not found ({'run the pretrained stage' if imported else 'run the export stage'})")
    q = quant / name
    some = lambda p: p if p.is_file() else None  # noqa: E731  (a backend may be off or not apply to this model)
    ov, so = some(q / "openvino" / "model.xml"), some(compiled / name / "host" / "model.so")
    return Artefacts(name, ModelMeta.load(export_dir), model_dir, onnx, some(q / "onnx_qdq" / "model.onnx"),
                     ov, ModelMeta.load(ov) if ov else None, some(q / "inc" / "model.pt2"),
                     so, ModelMeta.load(compiled / name) if so else None)


RUNTIMES: dict[str, Callable] = {}


def register_runtime(name: str, factory: Callable) -> None:
    RUNTIMES[name] = factory


def check_runtimes(names) -> None:
    unknown = sorted(set(names) - set(RUNTIMES))
    if unknown:
        raise ConfigError(f"params.yaml:bench.runtimes: unknown {unknown}; registered: {sorted(RUNTIMES)}")


def _torch(a: Artefacts, precision: str, threads: int, batch: int, compile_fp32: bool = False):
    import torch

    if a.meta.framework != "torch":
        return None
    if precision == "fp32":
        module = TorchRunner.from_dir(a.train_dir, a.meta).module
        return TorchRunner(torch.compile(module, dynamic=False) if compile_fp32 else module, threads,
                           pad_to=(1, batch) if compile_fp32 else ())
    if a.inc_int8 is None:
        return None
    from wordrec.post.quant import inc_ptq

    # INC's PT2E output is only fast through inductor, which needs static shapes: pad to one of two batch sizes.
    return TorchRunner(inc_ptq.load(a.inc_int8, compile_model=True), threads, pad_to=(1, batch))


def _onnxruntime(a: Artefacts, precision: str, threads: int, batch: int, **_):
    path = a.onnx if precision == "fp32" else a.onnx_int8
    return OrtRunner(path, threads) if path else None


def _openvino(a: Artefacts, precision: str, threads: int, batch: int, **_):
    if precision == "fp32":
        return OvRunner(a.onnx, threads, precision="f32")
    return OvRunner(a.ov_int8, threads, precision=ov_precision(a.ov_int8_meta)) if a.ov_int8 else None


def _tvm(a: Artefacts, precision: str, threads: int, batch: int, **_):
    # Relax imports QDQ as float fake-quant, so TVM never runs integer kernels (docs/mcu.md). A module compiled
    # with int8 weight storage is listed as tvm-int8 with a note saying its kernels are float.
    if not a.tvm_host:
        return None
    w8 = a.tvm_meta.section("compile").get("weights", "float32") == "int8"
    if precision != ("int8" if w8 else "fp32"):
        return None
    return TvmHostRunner(a.tvm_host, "int8 weights, float kernels" if w8 else None)


register_runtime("torch", _torch)
register_runtime("onnxruntime", _onnxruntime)
register_runtime("openvino", _openvino)
register_runtime("tvm", _tvm)


MIN_REPEATS = 3  # the median of 3 still discards one outlier
BUDGET_S = 10.0  # per measurement: a slow runtime (TVM's naive host kernels, ~3 s per batch of 32) stops early


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int, budget_s: float = BUDGET_S) -> float:
    """Median of `repeats` timed calls after `warmup` untimed ones; once MIN_REPEATS are in, stops when the
    timed calls have used `budget_s` (the median of a slow runtime is stable long before 20 repeats)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= MIN_REPEATS and sum(times) > budget_s:
            break
    return statistics.median(times)


def time_runner(runner, x1: np.ndarray, xb: np.ndarray, warmup: int, repeats: int) -> dict:
    """Median latency of one image and images/s of a `len(xb)` batch."""
    lat = median_seconds(lambda: runner.probs(x1), warmup, repeats)
    tput = median_seconds(lambda: runner.probs(xb), warmup, repeats)
    return {"latency_ms_b1": round(1000 * lat, 3), "throughput_fps": round(len(xb) / tput, 1)}


def machine(threads: int) -> dict:
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    versions = {}
    for pkg in ("torch", "onnxruntime", "openvino", "nncf", "neural_compressor", "rapidocr_onnxruntime"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": info.get("brand_raw", platform.processor()), "logical_cores": os.cpu_count(),
            "flags_avx512_vnni": "avx512_vnni" in info.get("flags", []),
            "flags_amx": any(f.startswith("amx") for f in info.get("flags", [])),
            "threads": threads, "python": platform.python_version(), "versions": versions}


def plot(report: dict, mach: dict, path: Path) -> None:
    """Accuracy (alnum, case-insensitive: fair across charsets and peers) against batch-1 latency, log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {"fp32": "o", "int8": "s"}
    for i, (model, variants) in enumerate(report.items()):
        color = f"C{i % 10}"
        for key, r in variants.items():
            prec = key.rsplit("-", 1)[-1]
            acc = 100 * r["accuracy_alnum_ci"]  # bench.json holds fractions; the axis reads in percent
            ax.scatter(r["latency_ms_b1"], acc, marker=markers.get(prec, "^"), s=40, c=color,
                       label=model if key == next(iter(variants)) else None)
            ax.annotate(key, (r["latency_ms_b1"], acc), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=color)
    ax.legend(fontsize=7, title="circle FP32, square INT8", title_fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency at batch 1 (ms, median, log scale)")
    ax.set_ylabel("word accuracy, alnum case-insensitive (%)")
    ax.set_title(f"{mach['cpu']}, {mach['threads']} thread(s)", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
