"""mcu: build the bare-metal Cortex-M55 ELF and run it on Corstone-300 virtual hardware against the host.

Reads COMPILED (compile stage dir: device/ sources, host/model.so, meta.json), DATA (an LMDB of test words,
data/synth/test) and params `mcu`; writes OUT/app.elf (+ its linker script), REPORT (reports/mcu/<name>.json:
{name: {board, images, text_agreement, max_abs_diff, insns_per_inference, macs, macs_per_insn, arena_bytes,
flash_bytes, ...}}) and PLOTS/samples.csv (label, host and device text per image). Fails unless the decoded text
agrees on every image and the probabilities agree within mcu.max_abs_diff_tol.
"""

import csv
import tempfile
from pathlib import Path

import numpy as np

from wordrec.data.evalsets import load_split
from wordrec.data.preprocess import prepare_batch
from wordrec.device.board import sim, toolchain
from wordrec.errors import DataError
from wordrec.infer.recognizer import Recognizer
from wordrec.infer.runners import TvmHostRunner
from wordrec.io import atomic_dir, atomic_file, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import section
from wordrec.pipeline.gates import device_gate
from wordrec.pipeline.metrics import score
from wordrec.pipeline.stage import stage_main

BOARDS = {"qemu": "Corstone-300 (SSE-300, Cortex-M55) as QEMU 7.2 mps3-an547",
          "fvp": "Corstone-300 FVP_Corstone_SSE-300_Ethos-U55"}


def compare(labels, host: list[tuple[str, float]], dev: list[tuple[str, float]], host_probs, dev_probs) -> list[dict]:
    """One row per image: label, host/device text and confidence (the Recognizer's decode), max |diff|."""
    return [{"label": label, "host": ht, "device": dt, "host_conf": round(hc, 4), "device_conf": round(dc, 4),
             "max_abs_diff": float(np.abs(hp - dp).max())}
            for label, (ht, hc), (dt, dc), hp, dp in zip(labels, host, dev, host_probs, dev_probs)]


def run(cfg, inputs, outputs):
    c = section(cfg, "mcu")
    sim.check_runner(c.runner)
    compiled = Path(inputs["compiled"])
    meta = ModelMeta.load(compiled)
    facts = meta.section("compile")
    if not facts:
        raise DataError(f"{meta.path}: no compile section (expected the compile stage's output dir)")
    images, labels = load_split(inputs["data"], int(c.images), "mcu.images")
    xs = prepare_batch(images, meta.input)
    host = Recognizer(meta, TvmHostRunner(compiled / "host" / "model.so"), compiled)
    host_probs = host.probs(xs)

    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:  # the ELF is kept only if the device agrees with the host
        build = toolchain.build_elf(compiled / "device", tmp / "app.elf", c.opt, list(c.extra_cflags),
                                    c.arena_region, c.weights_region)
        with tempfile.TemporaryDirectory(prefix="wordrec-mcu-") as work:
            res = sim.run(tmp / "app.elf", xs[:, None], Path(work), runner=c.runner, timeout_s=float(c.timeout_s),
                          plugin_dir=Path(c.plugin_dir))
        sizes = toolchain.sizes(tmp / "app.elf")
        dev_probs = res["outputs"].reshape(host_probs.shape)
        max_diff = float(np.abs(host_probs - dev_probs).max())
        rows = compare(labels, host.decode(host_probs), host.decode(dev_probs), host_probs, dev_probs)
        device_gate(meta.name, rows, max_diff, c.max_abs_diff_tol)
        n = len(rows)
    with atomic_file(Path(outputs["plots"]) / "samples.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[: int(c.samples)])

    insns = res["insns"]
    per = float(np.mean(insns)) if insns else None
    report = {
        "board": BOARDS[c.runner], "runner": c.runner, "images": n,
        "text_agreement": sum(r["host"] == r["device"] for r in rows) / n,
        "max_abs_diff": max_diff, "insns_per_inference": per,
        "insns_min": min(insns) if insns else None, "insns_max": max(insns) if insns else None,
        "macs": facts["macs"], "macs_per_insn": round(facts["macs"] / per, 4) if per else None,
        "arena_bytes": facts["arena_bytes"], "weight_bytes": facts["weight_bytes"], **sizes,
        "device_kernels": facts["device_kernels"], "weights": facts.get("weights", "float32"),
        "qdq_model": facts["qdq_model"],
        "host_word_accuracy": score([r["host"] for r in rows], labels, meta.charset)["accuracy"],
        "arena_region": build["arena_region"], "weights_region": build["weights_region"],
        "input_shape": facts["input_shape"], "cflags": [c.opt, *c.extra_cflags],
    }
    metrics = {meta.name: report}
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(run, doc=__doc__,
                                inputs={"compiled": "compile dir", "data": "test LMDB (data/synth/test)"},
                                outputs={"out": "device build dir (app.elf)", "report": "metrics JSON",
                                         "plots": "samples dir"}))
