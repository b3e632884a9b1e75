"""report: collect the pipeline's metrics into the two files people read first.

Reads reports/{synth,pretrained,eval,grid,export,quantize,bench,board,pages}.json and, for each model run on the device,
reports/mcu/<model>.json + reports/mcu/<model>/samples.csv (paths from dvc.yaml; the imported models' as
MCU_IMPORTED/<name>.json for each name in params mcu.imported, which varies by profile). Writes MCU_OUT
(reports/mcu.json, `{model: {...}}` for all device runs together) and SUMMARY (reports/summary.md: the headline
tables, device text next to host text). Nothing is measured here; a missing input is an error.
"""


from wordrec.pipeline.config import section
from wordrec.errors import DataError
from wordrec.io import atomic_file, read_json, write_json
from wordrec.pipeline.report import summary_markdown
from wordrec.pipeline.stage import stage_main
from wordrec.pipeline.zoo import device_report_paths, read_device_reports

def run(cfg, inputs, outputs):
    c = section(cfg, "report")
    reports = {k: read_json(inputs[k]) for k in ("synth", "pretrained", "eval", "grid", "export", "quantize",
                                                 "bench", "board", "pages")}
    m = section(cfg, "mcu")
    paths = device_report_paths(inputs["mcu"], inputs["mcu_imported"], list(m.imported), list(m.imported_int8))
    mcu, samples = read_device_reports(paths), {}
    for p, name in zip(paths, mcu):
        csv = p.with_suffix("") / "samples.csv"
        if not csv.is_file():
            raise DataError(f"{csv}: device samples missing (run the mcu stage)")
        samples[name] = csv.read_text()
    write_json(outputs["mcu_out"], mcu)
    inits = {name: str(mc.get("init", "scratch")) for name, mc in section(cfg, "train").models.items()}
    text = summary_markdown(reports, mcu, samples, int(c.samples), inits)
    with atomic_file(outputs["summary"], "w") as f:
        f.write(text)
    return {m: {"text_agreement": r["text_agreement"], "arena_bytes": r["arena_bytes"]} for m, r in mcu.items()}


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"synth": "reports/synth.json", "pretrained": "reports/pretrained.json", "eval": "reports/eval.json",
                "grid": "reports/grid.json",
                "export": "reports/export.json", "quantize": "reports/quantize.json", "bench": "reports/bench.json",
                "board": "reports/board.json", "pages": "reports/pages.json", "mcu": "comma-separated reports/mcu/<model>.json",
                "mcu_imported": "dir of reports/mcu/<name>.json for params mcu.imported (reports/mcu)"},
        outputs={"mcu_out": "reports/mcu.json", "summary": "reports/summary.md"}))
