"""bench: FP32 vs INT8 latency (batch 1) and throughput (batch `batch`) across runtimes, with accuracy.

Reads params `bench`, trained dirs MODELS (comma-separated), EXPORT/<name>/model.onnx, QUANT/<name>/<backend>/
and DATA/test, and the imported model dirs under PRETRAINED (their model.onnx is the FP32 ONNX; INT8 from
QUANT/<name>/ as for trained models). Writes REPORT (reports/bench.json: {name: {"<runtime>-<precision>":
{latency_ms_b1, throughput_fps, throughput_vs_onnxruntime_fp32, accuracy, accuracy_alnum_ci (fractions)}}}, peers
as extra names) and
PLOTS/ (accuracy_latency.png, machine.json: CPU, cores, threads, package versions). Medians of `repeats` timed
calls after `warmup`, every runtime on `threads` threads.
"""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from wordrec.data.evalsets import load_split
from wordrec.data.preprocess import prepare_batch
from wordrec.errors import DataError
from wordrec.infer.recognizer import Recognizer
from wordrec.io import write_json
from wordrec.pipeline.config import section
from wordrec.pipeline.metrics import score
from wordrec.pipeline.stage import stage_main
from wordrec.post.benchmark import (RUNTIMES, Artefacts, artefacts, check_runtimes, machine, median_seconds, plot,
                                    time_runner)
from wordrec.post.export_onnx import model_dirs, pretrained_dirs
from wordrec.post.peers import PEERS


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    return np.resize(x, (n, *x.shape[1:]))  # repeats images when the test set is smaller than the batch


def bench_model(c, a: Artefacts, images, labels) -> dict:
    x = prepare_batch(images, a.meta.input)
    x1, xb = x[:1], batch_of(x, c.batch)
    out = {}
    for runtime in c.runtimes:
        for precision in ("fp32", "int8"):
            runner = RUNTIMES[runtime](a, precision, c.threads, c.batch, compile_fp32=bool(c.compile_fp32))
            if runner is None:
                continue
            r = time_runner(runner, x1, xb, c.warmup, c.repeats)
            preds = [t for t, _ in Recognizer(a.meta, runner, a.name).predict_tensors(x, c.batch)]
            m = score(preds, labels, a.meta.charset)
            r.update(accuracy=m["accuracy"], accuracy_alnum_ci=m["accuracy_alnum_ci"])
            if getattr(runner, "note", None):
                r["note"] = runner.note
            out[f"{runtime}-{precision}"] = r
            print(f"bench {a.name} {runtime}-{precision}: {r}")
    base = out.get("onnxruntime-fp32")
    for r in out.values():
        if base:
            r["throughput_vs_onnxruntime_fp32"] = round(r["throughput_fps"] / base["throughput_fps"], 2)
    return out


def bench_peer(c, peer, images, labels) -> dict:
    p = c.peers
    lat = median_seconds(lambda: peer(images[:1]), 1, p.repeats)
    if peer.batched:
        many = (images * c.batch)[:c.batch]
        fps = c.batch / median_seconds(lambda: peer(many), 1, p.repeats)
    else:
        fps = 1.0 / lat  # one image per call: throughput is the inverse latency
    m = score(peer(images), labels)
    return {"latency_ms_b1": round(1000 * lat, 3), "throughput_fps": round(fps, 1),
            "accuracy": m["accuracy"], "accuracy_alnum_ci": m["accuracy_alnum_ci"]}


def run(cfg, inputs, outputs):
    c = section(cfg, "bench")
    check_runtimes(c.runtimes)
    images, labels = load_split(Path(inputs["data"]) / "test", c.n_accuracy)
    report = {}
    quant, compiled = Path(inputs["quant"]), Path(inputs["compiled"])
    todo = [(d, False) for d in (model_dirs(inputs["models"]) if inputs.get("models") else [])]
    todo += [(d, True) for d in pretrained_dirs(inputs.get("pretrained"))]
    for model_dir, imported in todo:
        a = artefacts(model_dir, Path(inputs["export"]), quant, compiled, imported=imported)
        if a.name in report:
            raise DataError(f"{model_dir}: model name {a.name!r} appears twice")
        report[a.name] = bench_model(c, a, images, labels)
    n_peer = min(c.peers.n_images, len(images)) if c.peers.n_images > 0 else len(images)
    for key, cls in tqdm(PEERS.items(), desc="peers", leave=False):
        if c.peers[key] and cls.available():
            peer = cls(c.threads) if not cls.batched else cls(c.threads, c.batch)
            report[cls.name] = {cls.runtime: bench_peer(c, peer, images[:n_peer], labels[:n_peer])}
            print(f"bench peer {cls.name}: {report[cls.name]}")
    mach = machine(c.threads)
    plots = Path(outputs["plots"])
    plot(report, mach, plots / "accuracy_latency.png")
    write_json(plots / "machine.json", mach)
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"models": "comma-separated trained model dirs", "export": "export dir (models/export)",
                "quant": "INT8 models dir (models/quant)",
                "compiled": "TVM compile dir (models/compile; conv-only models have <name>/host/model.so)",
                "data": "synth dataset dir (uses test/)",
                "pretrained": "imported model dirs (models/pretrained; their model.onnx is the FP32 ONNX)"},
        outputs={"report": "metrics JSON", "plots": "PNG + machine.json folder"},
    ))
