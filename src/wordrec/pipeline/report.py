"""Markdown summary of a pipeline run (stages/report.py): the headline tables the README points to.

Pure formatting of the stages' own JSON reports. Every metrics file holds accuracies as fractions; tables show
percent.
"""

from __future__ import annotations

import csv
import io


def _pct(x) -> str:
    """A fraction as percent with one decimal."""
    return "–" if x is None else f"{100 * x:.1f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    return f"`{text}`" if text else "(empty)"


def _mib(n) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


FAMILIES = ("from scratch (synthetic words only)", "ours from PaddleOCR's pretrained weights (train init)",
            "pretrained (PaddleOCR weights, imported, no training)")


def family(name: str, pretrained: dict, inits: dict) -> int:
    """0 from scratch, 1 one of our trained models started from imported weights (params train.models.<m>.init),
    2 an import; the grid's fine-tuned best (<name>_grid) belongs with the model it tunes."""
    if name in pretrained:
        return 2
    return 1 if inits.get(name.removesuffix("_grid"), "scratch") != "scratch" else 0


def accuracy_table(ev: dict, pretrained: dict, inits: dict | None = None) -> str:
    """One row per model, the families apart: ours from scratch first, ours from pretrained weights, then the
    imported pretrained ones. `inits`: {trained model: its train init (scratch | ppocrv3 | a dir)}."""
    inits = inits or {}
    ev = {m: per for m, per in ev.items() if m != GEOMETRY}
    sets = sorted({d for m in ev.values() for d in m})
    header = ["model", "family"] + [f"{d} acc / alnum-ci / NED" for d in sets]
    rows = []
    for m, per in sorted(ev.items(), key=lambda kv: (family(kv[0], pretrained, inits), list(ev).index(kv[0]))):
        f = family(m, pretrained, inits)
        rows.append([f"`{m}`", FAMILIES[f] + (f": {inits[m]}" if f == 1 else "")] + [
            (f"{100 * per[d]['accuracy']:.1f} / {100 * per[d]['accuracy_alnum_ci']:.1f} / {per[d]['ned']:.3f}"
             if d in per else "–") for d in sets])
    return _table(header, rows)


GEOMETRY = "geometry"  # evaluate's report key for its input-geometry scores (wordrec.pipeline.geometry.KEY)


def geometry_table(ev: dict) -> str:
    """One row per imported model x test set x input height x width that `evaluate.geometry` scored, the largest
    input first (the JSON's keys are sorted as strings: "32x160" before "32x32")."""
    def size(hw: str) -> tuple[int, ...]:
        return tuple(-int(v) for v in hw.split("x"))

    rows = [[f"`{m}`", s, hw.replace("x", " x "), r["frames"], _pct(r["squeezed"]), _pct(r["too_long"]),
             f"{100 * r['accuracy']:.1f} / {100 * r['accuracy_alnum_ci']:.1f}"]
            for m, per in ev.get(GEOMETRY, {}).items() for s, geoms in per.items()
            for hw, r in sorted(geoms.items(), key=lambda kv: size(kv[0]))]
    return _table(["model", "set", "H x W", "CTC frames", "squeezed %", "too long %", "acc / alnum-ci"], rows)


def bench_table(bench: dict) -> str:
    rows = []
    for m, per in bench.items():
        for rt, r in per.items():
            rows.append([f"`{m}`", rt, _pct(r.get("accuracy_alnum_ci")), f"{r['latency_ms_b1']:.2f}",
                         f"{r['throughput_fps']:.0f}", r.get("throughput_vs_onnxruntime_fp32", "–"),
                         r.get("note", "")])
    return _table(["model", "runtime-precision", "alnum-ci %", "latency b1 ms", "images/s", "× ORT-FP32", "note"],
                  rows)


def quantize_table(q: dict) -> str:
    """One row per model and backend; the test set and metric each row was measured on (trained models: synth
    test, in-charset accuracy; imported ones: their dev set, alnum-ci); a skipped backend shows its reason. The
    last column is alnum-ci FP32 / INT8 on the same set, where recorded: for `en` charsets (svtr3) the
    in-charset figure is exact-case, which IIIT5K's labels do not mean."""
    from wordrec.pipeline.zoo import alnum_ci

    def ci(r):
        c = alnum_ci(r)
        return f"{_pct(c['accuracy_fp32'])} / {_pct(c['accuracy_int8'])}" if c else "–"

    rows = [[f"`{m}`", be, "—", "—", "—", "—", "—", f"skipped: {r['skipped']}", "—"] if "skipped" in r else
            [f"`{m}`", be, r.get("set", "synth_test"), r.get("metric", "accuracy"), _pct(r["accuracy_fp32"]),
             _pct(r["accuracy_int8"]), f"{100 * (r['accuracy_int8'] - r['accuracy_fp32']):+.1f}", _mib(r["bytes"]),
             ci(r)]
            for m, per in q.items() for be, r in per.items()]
    return _table(["model", "backend", "set", "metric", "FP32 %", "INT8 %", "Δ points", "size",
                   "alnum-ci FP32 / INT8 %"], rows)


def mcu_table(mcu: dict, ev: dict, quant: dict, dev_set: str) -> str:
    """Every device run, a model's float and int8-kernel builds side by side; latency assumes 1 instruction per
    cycle at 400 MHz. Dev accuracy: evaluate's host FP32 figure for float builds (the mcu gate holds them to it),
    quantize's QDQ-ONNX figure for int8 builds (zoo.device_accuracy)."""
    from wordrec.pipeline.zoo import device_accuracy

    order = sorted(mcu, key=lambda m: (m.removesuffix("_int8"), m.endswith("_int8")))
    rows = []
    for m in order:
        r = mcu[m]
        insns = r["insns_per_inference"]
        rows.append([f"`{m}`", r["device_kernels"], r["images"], _pct(device_accuracy(ev, m, r, dev_set, quant)),
                     f"{100 * r['text_agreement']:.0f} %" + (" (bit-exact)" if r.get("bit_exact") else ""),
                     f"{insns / 1e6:,.0f} M", f"{r['macs'] / 1e6:.0f} M", r["macs_per_insn"],
                     f"{insns / 400e3:,.0f}",
                     f"{_mib(r['arena_bytes'])} ({r['arena_region']})",
                     f"{_mib(r['weight_bytes'])} {r.get('weights', 'float32')} ({r['weights_region']})"])
    return _table(["device run", "kernels", "images", f"{dev_set} %", "device = host text", "insns/inference",
                   "MACs", "MACs/insn", "ms at 400 MHz", "arena", "weights"], rows)


def samples_table(mcu_samples: dict[str, str], n: int) -> str:
    rows = []
    for m, text in mcu_samples.items():
        for r in list(csv.DictReader(io.StringIO(text)))[:n]:
            rows.append([f"`{m}`", _code(r["label"]), f"{_code(r['host'])} {float(r['host_conf']):.4f}",
                         f"{_code(r['device'])} {float(r['device_conf']):.4f}"])
    return _table(["model", "label", "host (TVM llvm)", "device (Cortex-M55)"], rows)


def grid_line(g: dict) -> str:
    head = f"\nGrid (`{g['model']}`, launcher {g['launcher']}, {len(g['runs'])} runs): "
    if g["best"].get("source") == "init":
        top = max(r["accuracy"] for r in g["runs"])
        return (head + f"no fine-tuning run beat the trained model (best run {100 * top:.1f} % vs "
                f"{100 * g['best']['accuracy']:.1f} % val accuracy), so it is kept unchanged.\n")
    return head + f"best {g['best']['params']} → val accuracy {100 * g['best']['accuracy']:.1f} %.\n"


def pretrained_table(pre: dict) -> str:
    return _table(["model", "architecture", "parameters (cut head)", "classes in the original head", "from", "licence"],
                  [[f"`{m}`", r["arch"], f"{r['params']:,}", f"{r['source_classes']:,}", r["origin"], r["licence"]]
                   for m, r in pre.items()])


def zoo_table(reports: dict, mcu: dict) -> str:
    """Every exported or imported model, FP32 / each INT8 backend / the M55 build, on the board stage's dev set."""
    from wordrec.pipeline.zoo import zoo_rows

    b = reports["board"]
    rows = zoo_rows(reports["eval"], reports["quantize"], reports["bench"], mcu, b["dev_set"])
    return (f"Dev set `{b['dev_set']}`; the board ships **`{b['model']}`** ({b['chosen_by']}; budgets "
            f"{', '.join(f'{k} ≤ {v:,.0f}' for k, v in b['budgets'].items() if v is not None)}); `reports/zoo.png` "
            "plots it.\n\n" + _table(
                ["model", "variant", "dev %", "CPU latency b1 ms", "M55 insns/word", "ships"],
                [[f"`{r.model}`", r.variant, _pct(r.dev_accuracy) + (
                    "" if r.fp32_same_images is None or r.dev_accuracy is None
                    else f" (FP32 {_pct(r.fp32_same_images)} on the same images)"),
                  "–" if r.cpu_latency_ms is None else f"{r.cpu_latency_ms:.2f}",
                  "–" if r.m55_insns is None else f"{r.m55_insns / 1e6:,.0f} M",
                  "yes" if r.device is not None and r.device == b["model"] else ""] for r in rows]))


def pages_table(pg: dict) -> str:
    """Whole-image OCR per reader on all rendered pages (documents + photos), CER by kind beside."""
    rows = []
    for name, r in pg["readers"].items():
        if not r.get("available", True):
            rows.append([f"`{name}`", "–", "–", "–", "–", "–", "–", "–", f"not available: {r['reason']}"])
            continue
        a = r["all"]
        rows.append([f"`{name}`", r.get("family", ""), f"{a['precision']:.3f} / {a['recall']:.3f} / {a['f1']:.3f}",
                     f"{100 * a['cer']:.1f}", f"{100 * a['wer']:.1f}",
                     f"{100 * r['documents']['cer']:.1f}" if r.get("documents", {}).get("pages") else "–",
                     f"{100 * r['photos']['cer']:.1f}" if r.get("photos", {}).get("pages") else "–",
                     f"{a['pages_per_s']:.2f}", ""])
    t = pg["targets"]
    return (f"{pg['pages']['documents']} documents + {pg['pages']['photos']} photos ({sum(pg['lines'].values())} "
            f"lines), detection at IoU ≥ {pg['iou']}; targets: F1 ≥ {t['det_f1']}, line CER ≤ "
            f"{100 * t['line_cer']:.0f} %.\n\n" + _table(
                ["reader", "family", "det P / R / F1", "line CER %", "WER %", "CER documents %", "CER photos %",
                 "pages/s", "note"], rows))


def summary_markdown(reports: dict, mcu: dict, mcu_samples: dict[str, str], n_samples: int,
                     inits: dict | None = None) -> str:
    s = reports["synth"]
    g = reports["grid"]
    parts = [
        "# Pipeline summary (written by the `report` stage; do not edit)\n",
        f"Synthetic data: {s['train']:,} / {s['val']:,} / {s['test']:,} images (train/val/test), {s['fonts']} fonts, "
        f"{s['words']:,} words.\n",
        "## Word accuracy (`evaluate`, percent; alnum-ci = lowercase alphanumerics, the scene-text rule)\n",
        accuracy_table(reports["eval"], reports["pretrained"], inits),
        *(["\n## Input geometry (`evaluate.geometry`: imported recognizers fed H x W crops; squeezed = wider than W "
           "at height H, too long = more characters than CTC frames; percent)\n", geometry_table(reports["eval"])]
          if reports["eval"].get(GEOMETRY) else []),
        "\nPretrained recognizers (`pretrained`: PaddleOCR's weights from sha256-pinned wheels, classifier cut to our "
        "charset; no training here):\n",
        pretrained_table(reports["pretrained"]),
        grid_line(g),
        "\n## Export parity (`export`)\n",
        _table(["model", "max abs diff", "text agreement", "nodes", "ONNX"],
               [[f"`{m}`", f"{r['max_abs_diff']:.1e}", f"{100 * r['text_agreement']:.0f} %", r["nodes"],
                 _mib(r["onnx_bytes"])] for m, r in reports["export"].items()]),
        "\n## INT8 vs FP32 (`quantize`; trained models on synthetic test in their charset, imported ones on "
        "their dev set, alnum-ci)\n",
        quantize_table(reports["quantize"]),
        "\n## Speed (`bench`, synthetic test)\n",
        bench_table(reports["bench"]),
        "\n## Whole images: detection + recognition (`pages`)\n",
        pages_table(reports["pages"]),
        "\n## The zoo and the board's model (`board`)\n",
        zoo_table(reports, mcu),
        "\n## Cortex-M55 on Corstone-300 (`mcu`)\n",
        mcu_table(mcu, reports["eval"], reports["quantize"], reports["board"]["dev_set"]),
        "\n### Device output next to host output\n",
        samples_table(mcu_samples, n_samples),
    ]
    return "\n".join(parts)
