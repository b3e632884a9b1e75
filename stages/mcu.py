"""mcu: build the bare-metal Cortex-M55 ELF and run it on Corstone-300 virtual hardware against the host.

Reads COMPILED (compile stage dir: device/ sources, host/model.so, meta.json), DATA (an LMDB of test words,
data/synth/test) and params `mcu`; writes OUT/app.elf (+ its linker script), REPORT (reports/mcu/<name>.json:
{name: {board, images, text_agreement, max_abs_diff, insns_per_inference, macs, macs_per_insn, arena_bytes,
flash_bytes, ...}}) and PLOTS/samples.csv (label, host and device text per image). Fails unless the decoded text
agrees on every image and the probabilities agree within mcu.max_abs_diff_tol.
"""

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wordrec.charset import Charset
from wordrec.config import check_keys
from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir, atomic_file, write_json
from wordrec.mcu import sim, toolchain
from wordrec.stage import stage_main
from wordrec.tvm_mcu.host import HostModule, decode, load_images

KEYS = {"runner", "images", "opt", "extra_cflags", "arena_region", "weights_region", "timeout_s", "max_abs_diff_tol", "plugin_dir",
        "samples"}
BOARDS = {"qemu": "Corstone-300 (SSE-300, Cortex-M55) as QEMU 7.2 mps3-an547",
          "fvp": "Corstone-300 FVP_Corstone_SSE-300_Ethos-U55"}


def compare(labels, host_probs, dev_probs, charset):
    rows, agree = [], 0
    for label, hp, dp in zip(labels, host_probs, dev_probs):
        (ht, hc), (dt, dc) = decode(hp[0], charset), decode(dp[0], charset)
        agree += ht == dt
        rows.append({"label": label, "host": ht, "device": dt, "host_conf": round(hc, 4),
                     "device_conf": round(dc, 4), "max_abs_diff": float(np.abs(hp - dp).max())})
    return rows, agree


def run(cfg, inputs, outputs):
    c = cfg.mcu
    check_keys(c, KEYS, "params mcu")
    if c.runner not in BOARDS:
        raise ConfigError(f"mcu.runner: {c.runner!r}, expected one of {sorted(BOARDS)}")
    sim.check_runner(c.runner)
    if int(c.images) < 1:
        raise ConfigError(f"mcu.images: {c.images}, expected >= 1")
    compiled = Path(inputs["compiled"])
    meta_path = compiled / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: not found (expected the compile stage's output dir)")
    meta = json.loads(meta_path.read_text())
    facts = meta["compile"]
    name = meta.get("name", compiled.name)
    charset = Charset.from_spec(meta["charset"])

    xs, labels = load_images(Path(inputs["data"]), int(c.images), meta["input"], "mcu.images")
    host = HostModule(compiled / "host" / "model.so")
    host_probs = np.stack([host(x) for x in tqdm(xs, desc="host", leave=False)])

    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:  # the ELF is kept only if the device agrees with the host
        build = toolchain.build_elf(compiled / "device", tmp / "app.elf", c.opt, list(c.extra_cflags),
                                    c.arena_region, c.weights_region)
        with tempfile.TemporaryDirectory(prefix="wordrec-mcu-") as work:
            res = sim.run(tmp / "app.elf", xs, Path(work), runner=c.runner, timeout_s=float(c.timeout_s),
                          plugin_dir=Path(c.plugin_dir))
        sizes = toolchain.sizes(tmp / "app.elf")
        dev_probs = res["outputs"].reshape(host_probs.shape)
        rows, agree = compare(labels, host_probs, dev_probs, charset)
        n = len(rows)
        max_diff = float(np.abs(host_probs - dev_probs).max())
        if agree != n or not max_diff <= c.max_abs_diff_tol:
            bad = [r for r in rows if r["host"] != r["device"]][:3]
            raise DataError(f"{name}: device disagrees with host: text on {n - agree}/{n} images {bad}, "
                            f"max |diff| {max_diff:.3g} (mcu.max_abs_diff_tol {c.max_abs_diff_tol})")
    with atomic_file(Path(outputs["plots"]) / "samples.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[: int(c.samples)])

    insns = res["insns"]
    per = float(np.mean(insns)) if insns else None
    report = {
        "board": BOARDS[c.runner], "runner": c.runner, "images": n, "text_agreement": agree / n,
        "max_abs_diff": max_diff, "insns_per_inference": per,
        "insns_min": min(insns) if insns else None, "insns_max": max(insns) if insns else None,
        "macs": facts["macs"], "macs_per_insn": round(facts["macs"] / per, 4) if per else None,
        "arena_bytes": facts["arena_bytes"], "weight_bytes": facts["weight_bytes"], **sizes,
        "device_kernels": facts["device_kernels"], "weights": facts.get("weights", "float32"),
        "qdq_model": facts["qdq_model"],
        "host_word_accuracy": sum(r["host"] == charset.filter(lb) for r, lb in zip(rows, labels)) / n,
        "arena_region": build["arena_region"], "weights_region": build["weights_region"],
        "input_shape": facts["input_shape"], "cflags": [c.opt, *c.extra_cflags],
    }
    metrics = {name: report}
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(run, doc=__doc__,
                                inputs={"compiled": "compile dir", "data": "test LMDB (data/synth/test)"},
                                outputs={"out": "device build dir (app.elf)", "report": "metrics JSON",
                                         "plots": "samples dir"}))
