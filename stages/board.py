"""board: pick the model the Cortex-M55 board ships and draw the zoo (issue #17).

Reads EVAL (reports/eval.json), QUANTIZE (reports/quantize.json), BENCH (reports/bench.json), the device runs'
reports (MCU: comma-separated reports/mcu/<model>.json; MCU_IMPORTED/<name>.json for each name in params
mcu.imported), their builds ELFS/<model>/app.elf (models/mcu) and params `board`; writes
OUT (models/board/: app.elf of the chosen model + board.json saying which, why and its figures), REPORT
(reports/board.json: the choice and every candidate's verdict) and ZOO (reports/zoo.png: dev-set accuracy vs CPU
latency and vs M55 instructions per word, every model, FP32 and INT8). `board.model: auto` ships the most
accurate device run within `board.budgets`; a name ships that model or fails naming the budget it exceeds.
"""

import shutil
from pathlib import Path

from wordrec.errors import DataError
from wordrec.io import atomic_dir, read_json, write_json
from wordrec.pipeline.config import section
from wordrec.pipeline.stage import stage_main
from wordrec.pipeline.zoo import choose, device_report_paths, read_device_reports, zoo_png, zoo_rows


def run(cfg, inputs, outputs):
    c = section(cfg, "board")
    ev, quant, bench = (read_json(inputs[k]) for k in ("eval", "quantize", "bench"))
    mcu = read_device_reports(device_report_paths(inputs["mcu"], inputs["mcu_imported"],
                                                  list(section(cfg, "mcu").imported),
                                                  list(section(cfg, "mcu").imported_int8)))
    # int8-kernel builds are reported as <model>_int8 and built under their own folder (the mcu_int8 stage)
    elf_of = {name: (Path(inputs["elfs_int8"]) / name.removesuffix("_int8") if d.get("kernels") == "int8"
                     else Path(inputs["elfs"]) / name) / "app.elf" for name, d in mcu.items()}
    budgets = {k: (None if v is None else float(v)) for k, v in c.budgets.items()}
    shipped, verdicts = choose(mcu, ev, c.dev_set, budgets, str(c.model), quant)
    if not elf_of[shipped].is_file():
        raise DataError(f"{elf_of[shipped]}: the device build of {shipped} is missing (run the mcu stage)")

    d = mcu[shipped]
    facts = {"model": shipped, "chosen_by": "auto: most accurate within budgets" if c.model == "auto" else "named",
             "dev_set": c.dev_set, "dev_accuracy": verdicts[shipped]["dev_accuracy"], "budgets": budgets,
             **{k: d[k] for k in ("board", "insns_per_inference", "macs_per_insn", "flash_bytes", "arena_bytes",
                                  "arena_region", "weights_region", "device_kernels", "weights", "text_agreement",
                                  "est_latency_ms_at_400mhz", "bit_exact", "integer_mac_share")
                if k in d}}
    with atomic_dir(outputs["out"]) as tmp:
        shutil.copyfile(elf_of[shipped], tmp / "app.elf")
        write_json(tmp / "board.json", facts)
    zoo_png(zoo_rows(ev, quant, bench, mcu, c.dev_set), shipped, budgets, c.dev_set, outputs["zoo"])
    metrics = {**facts, "candidates": verdicts}
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"eval": "reports/eval.json", "quantize": "reports/quantize.json", "bench": "reports/bench.json",
                "mcu": "comma-separated reports/mcu/<model>.json",
                "mcu_imported": "dir of reports/mcu/<name>.json for params mcu.imported (reports/mcu)",
                "elfs": "dir of the device builds, <model>/app.elf (models/mcu)",
                "elfs_int8": "dir of the int8-kernel device builds, <model>/app.elf (models/mcu_int8)"},
        outputs={"out": "models/board", "report": "reports/board.json", "zoo": "reports/zoo.png"}))
