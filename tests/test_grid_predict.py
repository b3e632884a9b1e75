"""Grid stage (Hydra multirun, basic and joblib launchers), the predict command and the ONNX backend."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from test_torch_rec import load_stage, tiny_cfg, tiny_model  # noqa: F401  (module-scoped fixture)
from wordrec.infer import recognizer
from wordrec.errors import ConfigError
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.infer.predict import main as predict_main
from wordrec.models.meta import ModelMeta


def init_with_val_accuracy(tiny_model, tmp_path, acc: float):  # noqa: F811
    """A copy of the trained model whose recorded val accuracy is `acc`: decides init-vs-runs deterministically."""
    init = tmp_path / "init"
    shutil.copytree(tiny_model, init)
    meta = ModelMeta.load(init)
    meta.with_section("train", {**meta.section("train"), "val_accuracy": acc}).save(init)
    return init


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_grid_2x1x1_keeps_the_best_run_as_a_model_dir(launcher, tiny_model, synth_data, tmp_path):  # noqa: F811
    cfg = tiny_cfg(f"grid.launcher={launcher}", "grid.batch_size=[8,16]", "grid.lr=[0.0003]",
                   "grid.epochs=[0.15]", "grid.threads=1")
    init = init_with_val_accuracy(tiny_model, tmp_path, -1.0)  # any run beats it
    out = tmp_path / "models" / "grid" / "best"
    res = load_stage("grid").run(cfg, {"init": init, "data": synth_data},
                                 {"out": out, "report": tmp_path / "grid.json", "plots": tmp_path / "plots"})
    rep = json.loads((tmp_path / "grid.json").read_text())
    assert [r["params"]["batch_size"] for r in rep["runs"]] == [8, 16]
    assert all(r["params"]["lr"] == 0.0003 and r["params"]["epochs"] == 0.15 for r in rep["runs"])
    assert rep["best"]["accuracy"] == max(r["accuracy"] for r in rep["runs"]) and rep["launcher"] == launcher
    assert res["best"] == rep["best"]
    meta = ModelMeta.load(out)
    assert meta.section("grid")["params"] == rep["best"]["params"]
    assert meta.section("train")["init"] == str(init.resolve())
    assert rep["best"]["source"] == meta.section("grid")["source"] == "grid"
    assert recognizer.load(out).meta.name == "crnn"
    assert "| 8 | 0.0003 | 0.15 |" in (tmp_path / "plots" / "table.md").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["best"]  # the scratch runs are gone


def test_grid_hands_on_the_trained_model_when_no_run_beats_it(tiny_model, synth_data, tmp_path):  # noqa: F811
    init = init_with_val_accuracy(tiny_model, tmp_path, 1.0)  # no run can beat it
    cfg = tiny_cfg("grid.batch_size=[8]", "grid.lr=[0.0003]", "grid.epochs=[0.1]", "grid.threads=1")
    out = tmp_path / "best"
    load_stage("grid").run(cfg, {"init": init, "data": synth_data},
                           {"out": out, "report": tmp_path / "grid.json", "plots": tmp_path / "plots"})
    rep = json.loads((tmp_path / "grid.json").read_text())
    assert rep["best"]["source"] == "init" and rep["best"]["accuracy"] == 1.0 and len(rep["runs"]) == 1
    assert (out / "best.pt").read_bytes() == (init / "best.pt").read_bytes()
    assert ModelMeta.load(out).section("grid")["source"] == "init"
    # keep_init: false takes the best run even though it is worse
    load_stage("grid").run(tiny_cfg("grid.batch_size=[8]", "grid.lr=[0.0003]", "grid.epochs=[0.1]",
                                    "grid.threads=1", "grid.keep_init=false"),
                           {"init": init, "data": synth_data},
                           {"out": out, "report": tmp_path / "grid.json", "plots": tmp_path / "plots"})
    assert json.loads((tmp_path / "grid.json").read_text())["best"]["source"] == "grid"
    assert (out / "best.pt").read_bytes() != (init / "best.pt").read_bytes()


def test_grid_rejects_a_model_that_does_not_match_init(tiny_model, synth_data, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="grid.model"):
        load_stage("grid").run(tiny_cfg("grid.model=crnn_lite"), {"init": tiny_model, "data": synth_data},
                               {"out": tmp_path / "o", "report": tmp_path / "g.json", "plots": tmp_path / "p"})


def test_predict_reads_a_png_file_and_a_folder(tiny_model, synth_data, tmp_path, capsys):  # noqa: F811
    img, _ = LmdbDataset(synth_data / "test")[0]
    (tmp_path / "imgs").mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / "imgs" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert predict_main([str(tiny_model), str(tmp_path / "imgs" / "a.png"), "--threads", "1"]) == 0
    f, text, conf = capsys.readouterr().out.rstrip("\n").split("\t")
    assert f.endswith("a.png") and 0.0 <= float(conf) <= 1.0
    assert text == recognizer.load(tiny_model).predict([img])[0][0]
    assert predict_main([str(tiny_model), str(tmp_path / "imgs"), "--json", "--threads", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"][-5:] for r in rows] == ["a.png", "b.jpg"] and rows[0]["text"] == text
    assert predict_main([str(tiny_model), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_onnx_backend_matches_torch(tiny_model, synth_data, tmp_path):  # noqa: F811
    rec = recognizer.load(tiny_model)
    x = torch.zeros(rec.meta.input.shape(2))
    torch.onnx.export(rec.runner.module, (x,), tmp_path / "model.onnx", dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["probs"],
                      dynamic_axes={"x": {0: "n"}, "probs": {0: "n"}})
    shutil.copy(tiny_model / "meta.json", tmp_path / "meta.json")
    onnx_rec = recognizer.load(tmp_path / "model.onnx")
    imgs = [LmdbDataset(synth_data / "test")[k][0] for k in range(3)]
    xb = rec.prepare(imgs)
    assert np.allclose(onnx_rec.probs(xb), rec.probs(xb), atol=1e-5)
    assert [t for t, _ in onnx_rec.predict(imgs)] == [t for t, _ in rec.predict(imgs)]


def test_predict_folder_with_a_bad_file_reads_the_rest(tiny_model, synth_data, tmp_path, capsys):  # noqa: F811
    """One undecodable crop used to abort the whole run; now it is named on stderr, the good ones are printed,
    and the exit status says something failed."""
    img, _ = LmdbDataset(synth_data / "test")[0]
    folder = tmp_path / "crops"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (folder / "b.png").write_bytes(b"not a png")
    (folder / "c.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "d.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert predict_main([str(tiny_model), str(folder), str(tmp_path / "nope"), "--threads", "1"]) == 2
    out, err = capsys.readouterr()
    assert [line.split("\t")[0][-5:] for line in out.splitlines()] == ["a.png", "d.png"]
    assert sorted(err.splitlines()) == sorted([
        f"error: {folder / 'b.png'} (expected PNG/JPEG/BMP/TIFF/WebP): cannot decode image",
        f"error: {folder / 'c.jpg'}: empty file, expected an image",
        f"error: {tmp_path / 'nope'}: no such image file or folder"])


def test_grid_sweeps_a_paddle_model_on_the_torch_twin(synth_data, tmp_path):  # noqa: F811
    """grid.model may be a Paddle model (issue 16: the grid sweeps every framework): each run fine-tunes the
    trained Paddle model dir (its best.pdparams, train.init), the winner is a complete Paddle model dir."""
    pytest.importorskip("paddle")
    svtr = [f"train.models.svtr.{k}" for k in (
        "init=scratch", "freeze_backbone=false", "train_last_blocks=0", "input.width=64", "steps=4", "val_every=2",
        "val_images=8", "batch_size=8", "threads=1")]
    cfg = tiny_cfg(*svtr, "grid.model=svtr", "grid.batch_size=[8]", "grid.lr=[0.001,0.003]", "grid.epochs=[0.05]",
                   "grid.threads=1")
    root = tmp_path / "train"
    load_stage("train").train_one(cfg, "svtr", synth_data, root / "svtr", root / "ckpt", root / "plots")
    init = init_with_val_accuracy(root / "svtr", tmp_path, -1.0)  # any run beats it
    out = tmp_path / "best"
    load_stage("grid").run(cfg, {"init": init, "data": synth_data},
                           {"out": out, "report": tmp_path / "grid.json", "plots": tmp_path / "plots"})
    rep = json.loads((tmp_path / "grid.json").read_text())
    assert [r["params"]["lr"] for r in rep["runs"]] == [0.001, 0.003] and rep["best"]["source"] == "grid"
    assert all(r["total_steps"] == 2 for r in rep["runs"])  # 0.05 of 300 images in batches of 8
    meta = ModelMeta.load(out)
    assert meta.framework == "paddle" and meta.section("train")["engine"] == "torch"
    assert meta.section("train")["init"] == str(init.resolve()) and meta.section("train")["init_loaded"] == "all"
    assert (out / "best.pdparams").is_file() and (out / "inference" / "inference.yml").is_file()
    assert recognizer.load(out).meta.name == "svtr"
