"""evaluate: score every trained recognizer on the synthetic test set and on each real dataset.

Reads MODELS/<name>/ for each name in params `evaluate.models` (torch or paddle model dirs), GRID (the grid's
best, reported as <name>_grid), every model dir under PRETRAINED (the `pretrained` stage's imports, reported under
their own names), DATA/test (LMDB), DATA/lines_test (multi-word lines, when synth made them; reported as
synth_lines_test, where `accuracy` and `ned` count the spaces), every LMDB under REAL/*/ (e.g. data/real/iiit5k_test_dev and
data/real/iiit5k_train from `wordrec-byod`; none is fine) and `evaluate.extra`. Writes REPORT (reports/eval.json:
{model: {dataset: {accuracy, accuracy_alnum_ci, ned, n}}}, fractions) and PLOTS/<model>_mistakes.png (the
worst misreadings per dataset). With `evaluate.geometry.models`, those imports are also scored at every input
height x width of `evaluate.geometry` (wordrec.pipeline.geometry): REPORT's `geometry` key and PLOTS/geometry.png.
"""

from pathlib import Path

from wordrec.data.evalsets import dataset_paths
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.errors import ConfigError
from wordrec.infer import recognizer
from wordrec.io import atomic_dir, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline import geometry
from wordrec.pipeline.config import section
from wordrec.pipeline.evaluation import evaluate_lmdb, worst_mistakes_png
from wordrec.pipeline.stage import stage_main


def run(cfg, inputs, outputs):
    c = section(cfg, "evaluate")
    sets = dataset_paths(inputs["data"], inputs["real"], c.extra)
    lines = Path(inputs["data"]) / "lines_test"
    if (lines / "data.mdb").is_file():  # synth.lines: how well each model reads multi-word lines (spaces count)
        sets["synth_lines_test"] = lines
    for path in sets.values():
        LmdbDataset(path)  # every dataset's structural check before minutes of model loading and scoring
    grid = Path(inputs["grid"])
    grid_meta = ModelMeta.load(grid)
    dirs = {name: (Path(inputs["models"]) / name, None) for name in c.models}
    # The grid's fine-tuned best is what export/quantize/bench/mcu use: score it too, as <name>_grid.
    dirs[f"{grid_meta.name}_grid"] = (grid, grid_meta)
    pretrained = Path(inputs["pretrained"])
    for d in sorted(p for p in pretrained.iterdir() if p.is_dir()) if pretrained.is_dir() else []:
        meta = ModelMeta.load(d)
        dirs[meta.name] = (d, meta)
    if geometry.KEY in dirs:
        raise ConfigError(f"a model named {geometry.KEY!r}: that name is the report's key for evaluate.geometry")
    geometry.check_inputs(c.geometry, pretrained, sets)  # before the minutes of scoring, not after
    report = {}
    with atomic_dir(outputs["plots"]) as plots:
        for name, (model_dir, meta) in dirs.items():
            rec = recognizer.load(model_dir, threads=int(c.threads), meta=meta)
            report[name], rows = {}, []
            for ds_name, path in sets.items():
                report[name][ds_name], records = evaluate_lmdb(rec, path, int(c.batch_size), c.limit)
                rows.append((ds_name, path, records))
            worst_mistakes_png(rows, plots / f"{name}_mistakes.png", int(c.worst_per_dataset),
                               f"{name}: worst mistakes (alnum/ci), lowest normalized edit similarity first")
        if c.geometry.models:
            report[geometry.KEY] = geometry.evaluate_geometry(c.geometry, pretrained, sets, int(c.batch_size),
                                                              int(c.threads))
            geometry.geometry_png(report[geometry.KEY], plots / "geometry.png")
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(
        stage_main(
            run,
            doc=__doc__,
            inputs={"models": "folder of model dirs (models/train)",
                    "grid": "the grid stage's best model dir (models/grid/best), reported as <name>_grid",
                    "pretrained": "folder of imported model dirs (models/pretrained)",
                    "data": "synth dataset folder",
                    "real": "folder of real LMDBs (data/real)"},
            outputs={"report": "metrics JSON", "plots": "PNG folder"},
        )
    )
