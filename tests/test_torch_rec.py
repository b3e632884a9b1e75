"""CRNN models, CTC decoding, metrics, resumable training, evaluation and the recognizer loader."""

from __future__ import annotations

import importlib
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from conftest import smoke_cfg
from wordrec.data.byod import convert
from wordrec.data.charset import Charset
from wordrec.infer import recognizer
from wordrec.infer.decode import decode
from wordrec.models.meta import ModelMeta
from wordrec.errors import ConfigError, DataError
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.pipeline.metrics import alnum_ci, ned, score
from wordrec.models.torch_rec import train as trainer
from wordrec.models.torch_rec.models import InferenceWrapper, build_model


def load_stage(name):
    return importlib.import_module(f"stages.{name}")


def tiny_cfg(*overrides):
    # 1 thread and a few steps: the box is shared.
    return smoke_cfg("train.threads=1", "evaluate.threads=1", "train.models.crnn.val_every=4",
                     "train.models.crnn.epochs=0.8", "train.models.crnn.val_max=20", *overrides)


@pytest.fixture(scope="module")
def tiny_model(synth_data, tmp_path_factory):
    torch.set_num_threads(1)
    cfg = tiny_cfg()
    root = tmp_path_factory.mktemp("tiny")
    load_stage("train").train_one(cfg, "crnn", synth_data, root / "crnn", root / "ckpt", root / "plots")
    return root / "crnn"


@pytest.mark.parametrize("kind", ["crnn", "crnn_lite"])
@pytest.mark.parametrize("width,steps", [(100, 26), (160, 41), (320, 81)])
def test_forward_shapes_and_probabilities(kind, width, steps):
    torch.manual_seed(0)
    arch = {"type": kind, "channels": [8, 8, 16, 16, 16, 16, 16]}
    arch.update({"hidden": 8} if kind == "crnn" else {"head_channels": 8})
    model = build_model(arch, 37, 1).eval()
    x = torch.randn(3, 1, 32, width)
    logits = model(x)
    assert logits.shape == (3, steps, 37)
    p = InferenceWrapper(model)(x)
    assert torch.allclose(p.sum(2), torch.ones(3, steps), atol=1e-5)


def test_classic_crnn_is_the_paper_size_and_lite_has_no_recurrence():
    crnn = build_model({"type": "crnn"}, 37, 1)
    assert 8.5e6 < sum(p.numel() for p in crnn.parameters()) < 9e6  # 7 convs 64..512 + 2 BiLSTM 256
    lite = build_model({"type": "crnn_lite"}, 37, 1)
    assert not any(isinstance(m, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)) for m in lite.modules())
    with pytest.raises(ConfigError, match="arch.type"):
        build_model({"type": "vit"}, 37, 1)
    with pytest.raises(ConfigError, match="height"):
        build_model({"type": "crnn"}, 37, 1, height=40)


def _onehot(path, k, p=0.9):
    probs = np.full((len(path), k), (1 - p) / (k - 1), np.float32)
    probs[np.arange(len(path)), path] = p
    return probs


def test_decode_collapses_repeats_drops_blanks_and_scores_emitted_frames():
    cs = Charset.from_spec("alnum_lower")
    i = {c: cs.chars.index(c) + 1 for c in cs.chars}
    path = [0, i["h"], i["h"], 0, i["e"], i["l"], i["l"], 0, i["l"], i["o"], 0, 0]
    probs = _onehot(path, cs.num_classes)
    probs[1, i["h"]], probs[1, 0] = 0.6, 0.3  # an emitting frame counts in the confidence; the repeat at t=2 not
    (text, conf), (blank, blank_conf) = decode(np.stack([probs, _onehot([0, 0, 0] + [0] * 9, cs.num_classes)]), cs)
    assert text == "hello"
    assert conf == pytest.approx((0.6 + 0.9 * 4) / 5)  # PaddleOCR's rule: mean over the emitted frames
    assert blank == "" and blank_conf == 0.0  # an empty read has confidence 0, on every backend


def test_metrics_exact_alnum_case_insensitive_and_ned():
    assert alnum_ci("Hello, World-2!") == "helloworld2"
    m = score(["hello", "WORLD", "abc"], ["hello", "world!", "abd"])
    assert m["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["accuracy_alnum_ci"] == pytest.approx(2 / 3, abs=1e-6)
    # with a charset the label is mapped into it first (case-insensitive sets lower-case it)
    assert score(["world"], ["WORLD"], Charset.from_spec("alnum_lower"))["accuracy"] == 1.0
    assert ned("abc", "abd") == pytest.approx(1 - 1 / 3)
    assert ned("", "") == 1.0 and ned("", "ab") == 0.0
    assert m["ned"] == pytest.approx((1 + ned("WORLD", "world!") + 2 / 3) / 3, abs=1e-6)


class Killed(Exception):
    pass


def test_train_kill_then_resume_equals_uninterrupted_run(synth_data, tmp_path, monkeypatch):
    train = load_stage("train")
    cfg = tiny_cfg("train.models.crnn.epochs=1")  # 18 steps, checkpoints every 4
    torch.set_num_threads(1)
    a = tmp_path / "a"
    train.train_one(cfg, "crnn", synth_data, a / "m", a / "ck", a / "p")

    def kill(step):
        if step == 8:
            raise Killed

    b = tmp_path / "b"
    monkeypatch.setattr(trainer, "on_checkpoint", kill)
    with pytest.raises(Killed):
        train.train_one(cfg, "crnn", synth_data, b / "m", b / "ck", b / "p")
    assert not (b / "m").exists()  # the model dir is written atomically at the end only
    monkeypatch.setattr(trainer, "on_checkpoint", lambda step: None)
    train.train_one(cfg, "crnn", synth_data, b / "m", b / "ck", b / "p")

    for f in ("best.pt", "last.pt"):
        sa = torch.load(a / "m" / f, weights_only=True)["state_dict"]
        sb = torch.load(b / "m" / f, weights_only=True)["state_dict"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f
    ma, mb = (ModelMeta.load(d / "m").section("train") for d in (a, b))
    assert ma["best_step"] == mb["best_step"] and ma["val_accuracy"] == mb["val_accuracy"]
    ca, cb = ((d / "m" / "curves.csv").read_text().splitlines() for d in (a, b))
    drop = lambda rows: [r.rsplit(",", 1)[0] for r in rows]  # noqa: E731  (images/s differs)
    assert drop(ca) == drop(cb) and len(ca) == 1 + 5


def test_lr_schedule_warms_up_holds_then_decays():
    f = trainer.lr_factor(100, warmup=0.1, decay=0.4)
    assert f(0) == pytest.approx(0.04) and f(10) == 1.0 and f(60) == 1.0
    assert 0.001 <= f(99) < f(80) < 1.0
    with pytest.raises(ConfigError, match="warmup"):
        trainer.lr_factor(100, warmup=0.7, decay=0.4)


def test_resume_ignores_a_checkpoint_from_another_config(synth_data, tmp_path, capsys):
    train = load_stage("train")
    torch.set_num_threads(1)
    cfg = tiny_cfg("train.models.crnn.epochs=0.25")
    train.train_one(cfg, "crnn", synth_data, tmp_path / "m", tmp_path / "ck", tmp_path / "p")
    train.train_one(tiny_cfg("train.models.crnn.epochs=0.25", "train.models.crnn.lr=0.01"), "crnn", synth_data,
                    tmp_path / "m", tmp_path / "ck", tmp_path / "p")
    assert "another config" in capsys.readouterr().out


def test_unknown_model_key_and_framework_are_config_errors(synth_data, tmp_path):
    train = load_stage("train")
    with pytest.raises(ConfigError, match="no model 'nope'"):
        train.train_one(tiny_cfg(), "nope", synth_data, tmp_path / "m", tmp_path / "c", tmp_path / "p")
    cfg = tiny_cfg()
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    cfg.train.models.crnn.lrr = 1
    with pytest.raises(ConfigError, match=r"params.yaml:train.models.crnn.lrr"):
        train.train_one(cfg, "crnn", synth_data, tmp_path / "m", tmp_path / "c", tmp_path / "p")


def _png_folder(src_lmdb, dst, n):
    ds = LmdbDataset(src_lmdb)
    dst.mkdir()
    lines = []
    for i in range(n):
        img, label = ds[i]
        cv2.imwrite(str(dst / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        lines.append(f"{i}.png\t{label}")
    (dst / "labels.txt").write_text("\n".join(lines) + "\n")
    return dst


def test_evaluate_scores_synth_test_and_a_byod_lmdb(tiny_model, synth_data, tmp_path):
    folder = _png_folder(synth_data / "test", tmp_path / "crops", 12)
    convert(folder, tmp_path / "real" / "mycrops")
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "crnn")
    cfg = tiny_cfg("evaluate.models=[crnn]")
    out = load_stage("evaluate").run(
        cfg, {"models": models, "grid": tiny_model, "pretrained": tmp_path / "none", "data": synth_data,
              "real": tmp_path / "real"},
        {"report": tmp_path / "eval.json", "plots": tmp_path / "plots"})
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert rep == out and set(rep["crnn"]) == {"synth_test", "synth_lines_test", "mycrops"}
    assert rep["crnn_grid"] == rep["crnn"]  # the grid's best (here: the same model) is scored as <name>_grid
    assert rep["crnn"]["mycrops"]["n"] == 12 and rep["crnn"]["synth_test"]["n"] == 60
    assert rep["crnn"]["synth_lines_test"]["n"] == 20  # synth made lines (smoke: 20 test lines): scored too
    assert set(rep["crnn"]["mycrops"]) == {"accuracy", "accuracy_alnum_ci", "ned", "n"}
    # the same images, so the same predictions on the first 12
    rec = recognizer.load(models / "crnn")
    assert (tmp_path / "plots" / "crnn_mistakes.png").stat().st_size > 1000
    assert rec.meta.framework == "torch"


def test_recognizer_predicts_text_and_confidence(tiny_model, synth_data):
    rec = recognizer.load(tiny_model)
    imgs = [LmdbDataset(synth_data / "test")[i][0] for i in range(5)]
    out = rec.predict(imgs, batch_size=2)
    assert len(out) == 5 and all(isinstance(t, str) and 0.0 <= c <= 1.0 for t, c in out)
    p = rec.probs(rec.prepare(imgs))
    assert p.shape == (5, rec.meta.section("train")["seq_len"], rec.charset.num_classes)
    assert np.allclose(p.sum(2), 1, atol=1e-5)


def test_checkpoint_charset_mismatch_is_a_clear_data_error(tiny_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["charset"] = "0123456789"
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="charset"):
        recognizer.load(bad)
    # a truncated checkpoint is a clear error naming the file, not a traceback
    shutil.copytree(tiny_model, tmp_path / "cut")
    ck = tmp_path / "cut" / "best.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"best.pt: corrupt model file"):
        recognizer.load(tmp_path / "cut")
    with pytest.raises(DataError, match="meta.json"):
        recognizer.load(tmp_path)
