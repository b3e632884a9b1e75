"""bench: FP32 vs INT8 latency (batch 1) and throughput (batch `batch`) across runtimes, with accuracy.

Reads params `bench`, trained dirs MODELS (comma-separated), EXPORT/<name>/model.onnx, QUANT/<name>/<backend>/
and DATA/test. Writes REPORT (reports/bench.json: {name: {"<runtime>-<precision>": {latency_ms_b1,
throughput_fps, throughput_vs_onnxruntime_fp32, accuracy, accuracy_alnum_ci}}}, peers as extra names) and
PLOTS/ (accuracy_latency.png, machine.json: CPU, cores, threads, package versions). Medians of `repeats` timed
calls after `warmup`, every runtime on `threads` threads.
"""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from wordrec.benchmark import RUNTIMES, Artefacts, machine, median_seconds, plot, time_runner
from wordrec.config import check_keys
from wordrec.errors import ConfigError, DataError
from wordrec.evalsets import load_split, tensors
from wordrec.io import write_json
from wordrec.peers import PEERS
from wordrec.runtimes import accuracy, accuracy_alnum_ci, charset_of, predict, read_meta
from wordrec.stage import stage_main

KEYS = {"runtimes", "threads", "batch", "warmup", "repeats", "n_accuracy", "compile_fp32", "peers"}
PEER_KEYS = {"tesseract", "rapidocr", "n_images", "repeats"}


def artefacts(model_dir: Path, export: Path, quant: Path, compiled: Path) -> Artefacts:
    name = read_meta(model_dir)["name"]
    onnx = export / name / "model.onnx"
    if not onnx.is_file():
        raise DataError(f"{onnx}: not found (run the export stage)")
    q = quant / name
    some = lambda p: p if p.is_file() else None  # noqa: E731  (a backend may be off or not apply to this model)
    return Artefacts(name, read_meta(export / name), model_dir, onnx, some(q / "onnx_qdq" / "model.onnx"),
                     some(q / "openvino" / "model.xml"), some(q / "inc" / "model.pt2"),
                     some(compiled / name / "host" / "model.so"))


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    return np.resize(x, (n, *x.shape[1:]))  # repeats images when the test set is smaller than the batch


def bench_model(c, a: Artefacts, images, labels) -> dict:
    charset = charset_of(a.meta)
    x = tensors(images, a.meta)
    x1, xb = x[:1], batch_of(x, c.batch)
    out = {}
    for runtime in c.runtimes:
        for precision in ("fp32", "int8"):
            runner = RUNTIMES[runtime](a, precision, c.threads, c.batch, compile_fp32=bool(c.compile_fp32))
            if runner is None:
                continue
            r = time_runner(runner, x1, xb, c.warmup, c.repeats)
            preds = predict(runner, x, charset, c.batch)
            r.update(accuracy=accuracy(preds, labels, charset), accuracy_alnum_ci=accuracy_alnum_ci(preds, labels))
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
    preds = peer(images)
    return {"latency_ms_b1": round(1000 * lat, 3), "throughput_fps": round(fps, 1),
            "accuracy": 100.0 * sum(a == b for a, b in zip(preds, labels)) / len(labels),
            "accuracy_alnum_ci": accuracy_alnum_ci(preds, labels)}


def run(cfg, inputs, outputs):
    c = cfg.bench
    check_keys(c, KEYS, "params bench")
    check_keys(c.peers, PEER_KEYS, "params bench.peers")
    unknown = set(c.runtimes) - set(RUNTIMES)
    if unknown:
        raise ConfigError(f"params bench.runtimes: unknown {sorted(unknown)}; registered: {sorted(RUNTIMES)}")
    images, labels = load_split(Path(inputs["data"]) / "test", c.n_accuracy)
    report = {}
    for model_dir in [Path(p) for p in str(inputs["models"]).split(",") if p.strip()]:
        a = artefacts(model_dir, Path(inputs["export"]), Path(inputs["quant"]), Path(inputs["compiled"]))
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
                "data": "synth dataset dir (uses test/)"},
        outputs={"report": "metrics JSON", "plots": "PNG + machine.json folder"},
    ))
