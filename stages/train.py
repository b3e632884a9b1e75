"""train: fit one recognizer (train.models.<MODEL>) on the synthetic LMDBs.

Reads DATA/{train,val} (LMDB) and params `train` (common keys + train.models.<MODEL>); writes the model dir
OUT (meta.json, best.pt, last.pt, curves.csv/png), the resumable state CKPT (a DVC `persist` output: rerunning
after a kill continues from the last validation) and PLOTS (curves.csv/png for `dvc plots`).
Dispatches on train.models.<MODEL>.framework: torch -> wordrec.models.torch_rec.train.fit,
paddle -> wordrec.models.paddle_rec.train.fit (same signature).

Ad-hoc Hydra sweeps (outside DVC, composing conf/):
    python stages/train.py -m train.lr=1e-3,3e-4 train.sweep.model=crnn_lite [hydra/launcher=joblib]
Each job trains train.sweep.model on train.sweep.data and writes model/, ckpt/, plots/ and result.json into
its Hydra output dir.
"""

import importlib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from wordrec.io import write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import model_section, section
from wordrec.pipeline.stage import stage_main

FIT = {"torch": "wordrec.models.torch_rec.train", "paddle": "wordrec.models.paddle_rec.train"}


def train_one(cfg, name, data, out, ckpt, plots) -> dict:
    train = section(cfg, "train")
    mcfg = model_section(cfg, name)
    tcfg = OmegaConf.masked_copy(train, [k for k in train if k != "models"])
    fit = importlib.import_module(FIT[mcfg.framework]).fit  # lazy: a torch-only run never imports paddle
    return fit(name, mcfg, tcfg, Path(data), Path(out), Path(ckpt), Path(plots))


def run(cfg, inputs, outputs):
    return train_one(cfg, inputs["model"], inputs["data"], outputs["out"], outputs["ckpt"], outputs["plots"])


def hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path="../conf", config_name="config", version_base=None)
    def job(cfg):
        out = Path(HydraConfig.get().runtime.output_dir)
        name = cfg.train.sweep.model
        metrics = train_one(cfg, name, cfg.train.sweep.data, out / "model", out / "ckpt", out / "plots")
        run = ModelMeta.load(out / "model").section("train")  # what the run used, whichever framework
        write_json(out / "result.json", {**metrics, "model": name, "model_dir": str(out / "model"),
                                         "params": {k: run[k] for k in ("batch_size", "lr", "epochs")}})

    job()


if __name__ == "__main__":
    if "-m" in sys.argv or "--multirun" in sys.argv:
        hydra_main()
    else:
        raise SystemExit(
            stage_main(
                run,
                doc=__doc__,
                inputs={"model": "model name (train.models.<name>)", "data": "synth dataset folder"},
                outputs={"out": "model dir", "ckpt": "resumable state dir (persist)", "plots": "curves dir"},
            )
        )
