"""The model zoo at a glance and the board's model (stages/board.py, issue #17).

Joins what the stages measured, for every model that went past training (ours and imported, FP32 and INT8):
word accuracy on the dev set (evaluate: FP32 on the host; quantize: each INT8 backend), CPU latency (bench) and,
for the models run on the Cortex-M55 (mcu), executed instructions per word, flash and arena. Then picks the
model the board ships: the one `board.model` names, or (`auto`) the most accurate device run within the budgets.
Nothing is measured here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wordrec.errors import ConfigError, DataError
from wordrec.io import read_json

# quantize backend -> the bench runtime that runs its INT8 model
INT8_RUNTIME = {"onnx_qdq": "onnxruntime-int8", "openvino": "openvino-int8", "inc": "torch-int8"}
# the device report's figures that budgets bound, with the report key each budget reads
BUDGET_KEYS = {"flash_bytes": "flash_bytes", "arena_bytes": "arena_bytes",
               "insns_per_inference": "insns_per_inference"}


def device_report_paths(listed: str, imported_dir: str, imported: list[str], imported_int8=()) -> list[Path]:
    """The mcu stages' reports: ours (comma-separated paths from dvc.yaml) and the imported models' (one per
    name in params mcu.imported, and `<name>_int8` per name in mcu.imported_int8; both vary by profile, so dvc.yaml
    can only name their folder)."""
    return ([Path(p) for p in listed.split(",") if p] + [Path(imported_dir) / f"{n}.json" for n in imported]
            + [Path(imported_dir) / f"{n}_int8.json" for n in imported_int8])


def read_device_reports(paths: list[Path]) -> dict[str, dict]:
    """{model: its device report}; each file holds exactly one model's."""
    out = {}
    for p in paths:
        one = read_json(p)
        if not isinstance(one, dict) or len(one) != 1:
            raise DataError(f"{p}: expected one model's device report, got "
                            f"{sorted(one) if isinstance(one, dict) else type(one).__name__}")
        name, rec = next(iter(one.items()))
        out[name] = rec
    return out


def eval_key(name: str, ev: dict) -> str:
    """The evaluate report's name for a post-training model: the grid's best is what export/quantize/bench/mcu
    call `crnn`, and what evaluate scores as `crnn_grid` (beside the un-tuned `crnn`)."""
    return f"{name}_grid" if f"{name}_grid" in ev else name


def dev_accuracy(ev: dict, name: str, dev_set: str) -> float | None:
    per = ev.get(eval_key(name, ev), {})
    return per[dev_set]["accuracy_alnum_ci"] if dev_set in per else None


def comparable(ev: dict, name: str, dev_set: str, q: dict) -> bool:
    """Whether a quantize entry's figures are on the zoo's scale (alnum case-insensitive). Trained models are
    scored in their own charset (`accuracy`): the same thing for lowercase-alphanumeric charsets, where evaluate's
    two figures agree, not for `en` ones (svtr3: 46.8 % exact vs 90.5 % alnum-ci), which take their INT8 figure
    from the alnum-ci record quantize keeps beside it (`alnum_ci`; none in reports from before that record)."""
    if q.get("metric", "accuracy") == "accuracy_alnum_ci":
        return True
    per = ev.get(eval_key(name, ev), {}).get(dev_set)
    return per is not None and per["accuracy"] == per["accuracy_alnum_ci"]


def alnum_ci(q: dict) -> dict | None:
    """A quantize entry's alnum-ci figures as {accuracy_fp32, accuracy_int8, sets}: the entry itself where that is
    its metric (imported models), else the block quantize records beside a trained model's in-charset figures;
    None for reports written before it did."""
    return q if q.get("metric", "accuracy") == "accuracy_alnum_ci" else q.get("accuracy_alnum_ci")


def int8_dev_accuracy(ev: dict, name: str, dev_set: str, q: dict, precision: str = "int8") -> float | None:
    """A quantize entry's INT8 figure on dev_set on the zoo's scale; without an alnum-ci record, the in-charset
    figure where `comparable` says it is the same thing. precision="fp32": the FP32 model on the same images
    (quantize scores the first quantize.n_test of each set, evaluate all of it, so only this pair compares)."""
    ci = alnum_ci(q)
    if ci is None:
        ci = q if comparable(ev, name, dev_set, q) else {}
    return ci.get("sets", {}).get(dev_set, {}).get(precision)


def device_accuracy(ev: dict, name: str, dev: dict, dev_set: str, quant: dict | None = None) -> float | None:
    """A device run's dev-set accuracy. Float kernels compute what the host FP32 model does (the mcu gate holds
    them to it), so evaluate's figure stands. An int8-kernel build (`<model>_int8`) computes what onnxruntime does
    with the same QDQ ONNX (its compile gate: the same text on >= 99 % of the check images), so it carries the
    quantize stage's QDQ figure on the dev set: every image of it, where the compile check scores only a sample."""
    if dev.get("kernels") == "int8":
        base = name.removesuffix("_int8")
        qdq = (quant or {}).get(base, {}).get("onnx_qdq", {})
        return int8_dev_accuracy(ev, base, dev_set, qdq)
    return dev_accuracy(ev, name, dev_set)


@dataclass
class Row:
    model: str
    variant: str           # fp32 | int8 backend | device
    dev_accuracy: float | None
    cpu_latency_ms: float | None = None
    m55_insns: float | None = None
    device: str | None = None  # the device run's name (<model> or <model>_int8), for M55 rows
    fp32_same_images: float | None = None  # INT8 rows: the FP32 model on the images the INT8 figure scored


def zoo_rows(ev: dict, quant: dict, bench: dict, mcu: dict, dev_set: str) -> list[Row]:
    """One row per model x variant that some stage measured; models only evaluated (not exported) are left out,
    as are the bench's peer engines (no model of ours behind them)."""
    base = [m.removesuffix("_int8") if mcu[m].get("kernels") == "int8" else m for m in mcu]
    models = [m for m in dict.fromkeys([*quant, *base, *(m for m in bench if m in quant or m in base)])]
    rows = []
    for m in models:
        b = bench.get(m, {})
        rows.append(Row(m, "fp32", dev_accuracy(ev, m, dev_set), b.get("onnxruntime-fp32", {}).get("latency_ms_b1")))
        for backend, r in quant.get(m, {}).items():
            if "skipped" in r:  # e.g. INC for the imported ONNX models; the quantize table says why
                continue
            rows.append(Row(m, f"int8 {backend}", int8_dev_accuracy(ev, m, dev_set, r),
                            b.get(INT8_RUNTIME.get(backend, ""), {}).get("latency_ms_b1"),
                            fp32_same_images=int8_dev_accuracy(ev, m, dev_set, r, "fp32")))
        for dm in (m, f"{m}_int8"):
            if dm in mcu:
                d = mcu[dm]
                rows.append(Row(m, f"M55 ({d.get('device_kernels', 'float')} kernels, {d.get('weights', 'float32')} "
                                   "weights)", device_accuracy(ev, dm, d, dev_set, quant), m55_insns=d["insns_per_inference"],
                                device=dm))
    return rows


def violations(dev: dict, budgets: dict) -> list[str]:
    """The budgets a device run exceeds, as `key: value > budget`."""
    return [f"{k}: {dev[r]:,.0f} > {budgets[k]:,.0f}" for k, r in BUDGET_KEYS.items()
            if budgets.get(k) is not None and dev[r] > budgets[k]]


def choose(mcu: dict, ev: dict, dev_set: str, budgets: dict, model: str = "auto", quant: dict | None = None,
           ) -> tuple[str, dict]:
    """(shipped model, per-candidate verdicts). Candidates are the device runs (each already passed the mcu
    stage's host/device gate); `auto` ranks those within every budget by dev-set accuracy (ties: fewer
    instructions). A named model must have run on the device and meet the budgets too."""
    if not mcu:
        raise DataError("no device runs to choose from (the mcu stage ran no model)")
    verdicts = {m: {"dev_accuracy": device_accuracy(ev, m, d, dev_set, quant), "violations": violations(d, budgets),
                    "insns_per_inference": d["insns_per_inference"], "flash_bytes": d["flash_bytes"],
                    "arena_bytes": d["arena_bytes"], "text_agreement": d["text_agreement"]}
                for m, d in mcu.items()}
    if model != "auto":
        if model not in mcu:
            raise ConfigError(f"params.yaml:board.model: {model!r} did not run on the device "
                              f"(device runs: {sorted(mcu)}; add it to the mcu stage or use auto)")
        if verdicts[model]["violations"]:
            raise ConfigError(f"params.yaml:board.model: {model!r} exceeds params.yaml:board.budgets: "
                              + "; ".join(verdicts[model]["violations"]))
        return model, verdicts
    ok = [m for m, v in verdicts.items() if not v["violations"]]
    if not ok:
        why = "; ".join(f"{m}: {', '.join(v['violations'])}" for m, v in verdicts.items())
        raise ConfigError(f"params.yaml:board.budgets: no device run meets them ({why})")
    best = max(ok, key=lambda m: (verdicts[m]["dev_accuracy"] if verdicts[m]["dev_accuracy"] is not None else -1,
                                  -verdicts[m]["insns_per_inference"]))
    return best, verdicts


def zoo_png(rows: list[Row], shipped: str, budgets: dict, dev_set: str, path) -> None:
    """Left: dev accuracy vs CPU latency (FP32 and INT8); right: dev accuracy vs M55 instructions per word."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wordrec.io import save_figure

    models = list(dict.fromkeys(r.model for r in rows))
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    fig, (cpu, dev) = plt.subplots(1, 2, figsize=(12, 4.8))
    for r in rows:
        if r.dev_accuracy is None:
            continue
        y = 100 * r.dev_accuracy
        if r.cpu_latency_ms is not None:
            marker = "o" if r.variant == "fp32" else "^"
            cpu.scatter(r.cpu_latency_ms, y, color=colors[r.model], marker=marker, s=40)
            cpu.annotate(f"{r.model} {r.variant}", (r.cpu_latency_ms, y), fontsize=6, xytext=(3, 2),
                         textcoords="offset points")
        if r.m55_insns is not None:
            star = r.device == shipped
            dev.scatter(r.m55_insns, y, color=colors[r.model], marker="*" if star else "s", s=160 if star else 40)
            dev.annotate(f"{r.device}{' (ships)' if star else ''}", (r.m55_insns, y), fontsize=7, xytext=(4, 2),
                         textcoords="offset points")
    if budgets.get("insns_per_inference"):
        dev.axvline(budgets["insns_per_inference"], color="k", ls="--", lw=1, label="instruction budget")
        dev.legend(fontsize=7)
    cpu.set(xscale="log", xlabel="CPU latency at batch 1 (ms; circle FP32, triangle INT8)",
            ylabel=f"{dev_set} word accuracy, alnum case-insensitive (%)", title="host CPU")
    dev.set(xscale="log", xlabel="Cortex-M55 executed instructions per word (QEMU AN547)",
            ylabel=f"{dev_set} word accuracy (%), host FP32", title="on the board")
    for ax in (cpu, dev):
        ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, path, dpi=110, metadata={"Software": None})
