"""evaluate: score every trained recognizer on the synthetic test set and on each real dataset.

Reads MODELS/<name>/ for each name in params `evaluate.models` (torch or paddle model dirs), DATA/test (LMDB),
every LMDB under REAL/*/ (e.g. data/real/iiit5k_train from `wordrec-byod`; none is fine) and `evaluate.extra`.
Writes REPORT (reports/eval.json: {model: {dataset: {accuracy, accuracy_alnum_ci, ned, n}}}) and
PLOTS/<model>_mistakes.png (the worst misreadings per dataset).
"""

from pathlib import Path

import torch

from wordrec import recognizer
from wordrec.config import check_keys
from wordrec.errors import DataError
from wordrec.evaluation import evaluate_lmdb, worst_mistakes_png
from wordrec.io import atomic_dir, write_json
from wordrec.runtimes import read_meta
from wordrec.stage import stage_main

KEYS = {"models", "extra", "batch_size", "threads", "limit", "worst_per_dataset"}


def datasets(data: Path, real: Path, extra) -> dict[str, Path]:
    found = {"synth_test": data / "test"}
    if real.is_dir():
        found.update({p.name: p for p in sorted(real.iterdir()) if (p / "data.mdb").is_file()})
    for e in extra:
        p = Path(e)
        if not (p / "data.mdb").is_file():
            raise DataError(f"params evaluate.extra: {p} is not an LMDB dataset (no data.mdb)")
        found[p.name] = p
    return found


def run(cfg, inputs, outputs):
    c = cfg.evaluate
    check_keys(c, KEYS, "params evaluate")
    torch.set_num_threads(int(c.threads))
    sets = datasets(Path(inputs["data"]), Path(inputs["real"]), c.extra)
    report = {}
    with atomic_dir(outputs["plots"]) as plots:
        # The grid's fine-tuned best is what export/quantize/bench/mcu use: score it too, as <name>_grid.
        grid = Path(inputs["grid"])
        dirs = {name: Path(inputs["models"]) / name for name in c.models}
        dirs[f"{read_meta(grid)['name']}_grid"] = grid
        for name, model_dir in dirs.items():
            rec = recognizer.load(model_dir)
            report[name], rows = {}, []
            for ds_name, path in sets.items():
                report[name][ds_name], records = evaluate_lmdb(rec, path, int(c.batch_size), c.limit)
                rows.append((ds_name, path, records))
            worst_mistakes_png(rows, plots / f"{name}_mistakes.png", int(c.worst_per_dataset),
                               f"{name}: worst mistakes (alnum/ci), lowest normalized edit similarity first")
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(
        stage_main(
            run,
            doc=__doc__,
            inputs={"models": "folder of model dirs (models/train)",
                    "grid": "the grid stage's best model dir (models/grid/best), reported as <name>_grid",
                    "data": "synth dataset folder",
                    "real": "folder of real LMDBs (data/real)"},
            outputs={"report": "metrics JSON", "plots": "PNG folder"},
        )
    )
