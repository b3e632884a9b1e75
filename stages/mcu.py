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
from wordrec.device.compile import native
from wordrec.errors import DataError
from wordrec.infer.recognizer import Recognizer
from wordrec.infer.runners import TvmHostRunner
from wordrec.io import atomic_dir, atomic_file, save_figure, write_json
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


def bit_exact_gate(name: str, host, device) -> None:
    """The last int8 tensor must be bit-identical on the device and in the native host build, for every image."""
    if device is None or host is None or device.shape != host.shape:
        raise DataError(f"{name}: device run returned no probe of the last int8 tensor (expected "
                        f"{None if host is None else host.shape})")
    bad = [i for i in range(len(host)) if not np.array_equal(host[i], device[i])]
    if bad:
        n = int((host[bad[0]] != device[bad[0]]).sum())
        raise DataError(f"{name}: device int8 output differs from the host reference (-DWRNN_SCALAR) on images "
                        f"{bad[:10]} of {len(host)} ({n} bytes differ on image {bad[0]}); not bit-exact")


def profile(compiled: Path, facts: dict, xs, c, cflags) -> list[dict]:
    """Instructions per kernel call: a second ELF whose runner brackets every call with the markers
    (WORDREC_PROFILE_LAYERS), run on xs; one row per call (int8 layers carry MACs)."""
    calls = int(facts["kernel_calls"])
    layers = {int(L["call"]): L for L in facts["layers"]}
    with tempfile.TemporaryDirectory(prefix="wordrec-prof-") as work:
        elf = Path(work) / "prof.elf"
        toolchain.build_elf(compiled / "device", elf, c.opt, [*cflags, "-DWORDREC_PROFILE_LAYERS"],
                            c.arena_region, c.weights_region)
        res = sim.run(elf, xs[:, None], Path(work) / "run", runner=c.runner, timeout_s=float(c.timeout_s),
                      plugin_dir=Path(c.plugin_dir), windows=calls)
    per_call = np.asarray(res["insns"], np.float64).reshape(len(xs), calls).mean(axis=0)
    rows = []
    for k in range(calls):
        L = layers.get(k)
        macs = L["macs"] if L else ""
        window = f" {L['geom']['k_h']}x{L['geom']['k_w']}" if L and "k_h" in L["geom"] else ""  # convs only
        op = f"int8 {L['op']}{window}" if L else "float TIR"
        tir = facts.get("call_names", [f"tir_{k}"] * calls)[k]
        rows.append({"call": k, "layer": L["layer"] if L else tir, "op": op, "macs": macs,
                     "instructions": int(round(per_call[k])),
                     "macs_per_insn": round(macs / per_call[k], 3) if L else ""})
    return rows


def _per_kind(rows: list[dict]) -> dict:
    kinds: dict = {}
    for r in rows:
        if r["macs"] != "":
            m, i = kinds.get(r["op"], (0, 0))
            kinds[r["op"]] = (m + r["macs"], i + r["instructions"])
    by_op = {k: round(m / i, 3) for k, (m, i) in kinds.items() if m}  # quantize/GELU kernels do no MACs
    out = {"macs_per_insn_by_op": by_op} if by_op else {}
    if rows:
        out["profiled_insns_int8"] = sum(i for _, i in kinds.values())
        out["profiled_insns_float"] = sum(r["instructions"] for r in rows if r["macs"] == "")
    return out


def plot_layers(rows: list[dict], path: Path, name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    labels = [f"{r['layer']}\n{r['op'].replace('int8 ', '')}" for r in rows]
    colors = ["tab:blue" if r["macs"] != "" else "tab:gray" for r in rows]
    ax.bar(range(len(rows)), [r["instructions"] / 1e6 for r in rows], color=colors)
    for k, r in enumerate(rows):
        if r["macs"] != "":
            ax.text(k, r["instructions"] / 1e6, f"{r['macs_per_insn']:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("M instructions / call")
    ax.set_title(f"{name}: executed instructions per kernel call (blue: int8 wrnn, label = MACs/insn)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


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
    int8 = facts.get("kernels") == "int8"
    cflags = list(c.extra_cflags)
    if int8:  # the native build of the same C is the bit-exact reference (wordrec.device.compile.native)
        ref = native.NativeModel(compiled / "host" / "native.so", compiled / "device", facts["output_shape"][1:])
        cflags += [f for f in native.FLOAT_CFLAGS if f not in cflags]
        host = Recognizer(meta, ref, compiled)
    else:
        host = Recognizer(meta, TvmHostRunner(compiled / "host" / "model.so"), compiled)
    host_probs = host.probs(xs)
    host_probes = ref.probes if int8 else None

    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:  # the ELF is kept only if the device agrees with the host
        build = toolchain.build_elf(compiled / "device", tmp / "app.elf", c.opt, cflags,
                                    c.arena_region, c.weights_region)
        with tempfile.TemporaryDirectory(prefix="wordrec-mcu-") as work:
            res = sim.run(tmp / "app.elf", xs[:, None], Path(work), runner=c.runner, timeout_s=float(c.timeout_s),
                          plugin_dir=Path(c.plugin_dir))
        sizes = toolchain.sizes(tmp / "app.elf")
        dev_probs = res["outputs"].reshape(host_probs.shape)
        max_diff = float(np.abs(host_probs - dev_probs).max())
        rows = compare(labels, host.decode(host_probs), host.decode(dev_probs), host_probs, dev_probs)
        if int8:
            bit_exact_gate(meta.name, host_probes, res["probes"])
        device_gate(meta.name, rows, max_diff, c.max_abs_diff_tol)
        n = len(rows)
        layer_rows = profile(compiled, facts, xs[: int(c.profile_images)], c, cflags) \
            if int8 and int(c.profile_images) > 0 else []
    with atomic_file(Path(outputs["plots"]) / "samples.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[: int(c.samples)])

    if layer_rows:
        with atomic_file(Path(outputs["plots"]) / "layers.csv") as f:
            w = csv.DictWriter(f, fieldnames=list(layer_rows[0]))
            w.writeheader()
            w.writerows(layer_rows)
        plot_layers(layer_rows, Path(outputs["plots"]) / "layers.png", meta.name)
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
        "input_shape": facts["input_shape"], "cflags": [c.opt, *cflags],
        "est_latency_ms_at_400mhz": round(per / 400e3, 2) if per else None,  # assumes 1 instruction per cycle
    }
    if int8:
        report.update({
            "kernels": "int8", "bit_exact": True, "bit_exact_images": n, "probe_bytes": facts["probe_bytes"],
            "integer_mac_share": facts["integer_mac_share"], "integer_macs": facts["integer_macs"],
            "text_agreement_vs_ort_qdq": facts["text_agreement_vs_ort_qdq"], "check_images": facts["check_images"],
            "check_set": facts.get("check_set"),
            **{k: facts.get(k) for k in ("int8_word_accuracy", "int8_word_accuracy_alnum_ci", "fp32_word_accuracy",
                                         "fp32_word_accuracy_alnum_ci", "ort_qdq_word_accuracy",
                                         "ort_qdq_word_accuracy_alnum_ci")},
            **_per_kind(layer_rows)})
    metrics = {f"{meta.name}_int8" if int8 else meta.name: report}  # int8 beside float in reports/mcu.json
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(run, doc=__doc__,
                                inputs={"compiled": "compile dir", "data": "test LMDB (data/synth/test)"},
                                outputs={"out": "device build dir (app.elf)", "report": "metrics JSON",
                                         "plots": "samples dir"}))
