"""grid: fine-tune a trained recognizer over batch size x learning rate x epochs (a Hydra multirun).

Reads INIT (the trained model dir, e.g. models/train/crnn), DATA/{train,val} and params `grid` (+ `train` for
everything not swept). Runs `stages/train.py -m` with the configured Hydra launcher (basic = sequential,
joblib = local processes, submitit_slurm = a SLURM cluster), each job fine-tuning from INIT's best.pt.
Runs are ranked by validation accuracy (the synthetic val split; test sets are left to `evaluate`); with
`keep_init` the trained model itself is a candidate, so a grid whose fine-tuning only lowers accuracy hands on
INIT unchanged. Writes OUT (the winner's complete model dir, same layout as models/train/<name>), REPORT
(reports/grid.json: {"runs": [{"params", "accuracy", ...}], "best": {...}}) and PLOTS (table.md, grid.png).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from wordrec.data.lmdb_io import LmdbDataset
from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir, read_json, save_figure, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import section
from wordrec.pipeline.gates import pick_best
from wordrec.pipeline.stage import stage_main

TRAIN_SCRIPT = Path(__file__).resolve().parent / "train.py"


def job_config(cfg, g, init: Path, data: Path, sweep_dir: Path) -> dict:
    """params.yaml + what the multirun needs: fine-tune from INIT, the launcher, and where jobs write."""
    job = OmegaConf.to_container(cfg, resolve=True)
    job["train"].update({"init": str(init.resolve()), "threads": int(g.threads),
                         "sweep": {"model": g.model, "data": str(data.resolve())}})
    launcher = {"n_jobs": len(g.batch_size) * len(g.lr) * len(g.epochs)} if g.launcher == "joblib" else {}
    launcher.update(OmegaConf.to_container(g.launcher_params))
    job["defaults"] = ["_self_", {"override hydra/launcher": g.launcher}]
    job["hydra"] = {"sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"}, "job": {"chdir": False},
                    "launcher": launcher}
    return job


def sweep_overrides(g) -> list[str]:
    return [f"train.{k}=" + ",".join(str(v) for v in g[k]) for k in ("batch_size", "lr", "epochs")]


def table(runs: list[dict]) -> str:
    lines = ["| batch_size | lr | epochs | val accuracy | val NED | train s |", "|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        p = r["params"]
        lines.append(f"| {p['batch_size']} | {p['lr']} | {p['epochs']} | {r['accuracy']:.4f} | "
                     f"{r['ned']:.4f} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], init_acc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"bs {r['params']['batch_size']}\nlr {r['params']['lr']}\nep {r['params']['epochs']}" for r in runs]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(runs)), 3.5))
    ax.bar(range(len(runs)), [r["accuracy"] for r in runs])
    ax.axhline(init_acc, color="k", ls="--", lw=1, label=f"before fine-tuning {init_acc:.3f}")
    ax.set_xticks(range(len(runs)), labels, fontsize=7)
    ax.set(ylabel="val accuracy", ylim=(0, 1), title="grid: fine-tuning runs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, metadata={"Software": None})


def run(cfg, inputs, outputs):
    g = section(cfg, "grid")
    if g.model not in section(cfg, "train").models:
        raise ConfigError(f"params.yaml:grid.model: {g.model!r} is not in train.models")
    init, data = Path(inputs["init"]), Path(inputs["data"])
    init_meta = ModelMeta.load(init)
    if init_meta.name != g.model:
        raise ConfigError(f"params.yaml:grid.model={g.model!r} but --init {init} holds model {init_meta.name!r}")
    for split in ("train", "val"):
        LmdbDataset(data / split)  # fail here, not inside a launched job whose log is all the user would see
    trained = init_meta.section("train")
    if "val_accuracy" not in trained:
        raise DataError(f"{init_meta.path}: no train.val_accuracy (expected a train stage's model dir)")

    out = Path(outputs["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".grid.", dir=out.parent) as tmp:
        tmp = Path(tmp)
        (tmp / "job.yaml").write_text(OmegaConf.to_yaml(job_config(cfg, g, init, data, tmp / "runs")))
        cmd = [sys.executable, str(TRAIN_SCRIPT), "-m", "--config-dir", str(tmp), "--config-name", "job",
               *sweep_overrides(g)]
        print("grid:", " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise DataError(f"grid: a fine-tuning job failed (exit {proc.returncode}); see the log above")
        results = sorted(tmp.glob("runs/*/result.json"), key=lambda p: int(p.parent.name))
        n_want = len(g.batch_size) * len(g.lr) * len(g.epochs)
        if len(results) != n_want:
            raise DataError(f"grid: {len(results)} of {n_want} runs left a result.json in {tmp / 'runs'}")
        runs = []
        for p in results:
            r = read_json(p)
            runs.append({"params": r["params"], "accuracy": r["val_accuracy"], "ned": r["val_ned"],
                         "best_step": r["best_step"], "total_steps": r["total_steps"],
                         "train_seconds": r["train_seconds"], "images_per_second": r["images_per_second"],
                         "job": int(p.parent.name)})
        # Same val images for both (train.models.<name>.val_max), so the figures compare.
        init_run = {"accuracy": trained["val_accuracy"], "ned": trained["val_ned"],
                    "params": {k: trained[k] for k in ("batch_size", "lr", "epochs")}} if g.keep_init else None
        best = pick_best(runs, init_run)
        src = init if best["source"] == "init" else tmp / "runs" / str(best["job"]) / "model"
        with atomic_dir(out) as dst:
            for f in src.iterdir():
                if f.is_file():
                    (dst / f.name).write_bytes(f.read_bytes())
                else:
                    shutil.copytree(f, dst / f.name)
            winner = init_meta if src == init else ModelMeta.load(src)
            winner.with_section("grid", {"params": best["params"], "source": best["source"],
                                         "init_val_accuracy": trained["val_accuracy"]}).save(dst)
    report = {"model": g.model, "launcher": g.launcher, "init_val_accuracy": trained["val_accuracy"],
              "runs": runs, "best": best}
    with atomic_dir(outputs["plots"]) as plots:
        (plots / "table.md").write_text(table(runs))
        plot(runs, trained["val_accuracy"], plots / "grid.png")
    write_json(outputs["report"], report)
    print(table(runs))
    return {"best": best, "init_val_accuracy": trained["val_accuracy"]}


if __name__ == "__main__":
    raise SystemExit(
        stage_main(
            run,
            doc=__doc__,
            inputs={"init": "trained model dir to fine-tune", "data": "synth dataset folder"},
            outputs={"out": "best model dir", "report": "grid JSON", "plots": "table + PNG folder"},
        )
    )
