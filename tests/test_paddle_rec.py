"""Paddle SVTR/PP-OCRv3 recognizer: shapes, train/resume, PaddleOCR round trip, ONNX parity, dictionary checks."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
from omegaconf import OmegaConf

from wordrec.data.lmdb_io import LmdbDataset
from wordrec.errors import ConfigError, DataError
from wordrec.models.meta import ModelMeta

pytest.importorskip("paddle")

MODEL_CFG = OmegaConf.load(__import__("pathlib").Path(__file__).parents[1] / "conf/train/models/svtr.yaml")


def mcfg(**over):
    # from scratch: these are wiring tests (train/resume/export), and tests have no models/pretrained_paddle
    cfg = OmegaConf.merge(MODEL_CFG, OmegaConf.create({"batch_size": 8, "steps": 4, "val_every": 2,
                                                        "val_images": 8, "warmup_steps": 1, "lr": 2e-3,
                                                        "input": {"height": 32, "width": 320}, "init": "scratch",
                                                        "freeze_backbone": False, "engine": "paddle"}))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in over.items()]))


TCFG = OmegaConf.create({"threads": 1, "seed": 0})


def run_fit(root, data, **over):
    from wordrec.models.paddle_rec.train import fit

    return fit("svtr", mcfg(**over), TCFG, data, root / "model", root / "ckpt", root / "plots")


@pytest.fixture(scope="module")
def trained(synth_data, tmp_path_factory):
    """A smoke-trained model dir at the seed's 3x32x320 input (a few steps: wiring, not accuracy)."""
    root = tmp_path_factory.mktemp("svtr")
    metrics = run_fit(root, synth_data)
    return root / "model", metrics


@pytest.fixture(scope="module")
def test_images(synth_data):
    ds = LmdbDataset(synth_data / "test")
    return [ds[i][0] for i in range(24)]


def test_freeze_backbone_can_leave_its_last_blocks_training():
    import paddle

    from wordrec.models.paddle_rec.model import RecModel

    paddle.seed(0)
    model = RecModel(96, height=48)
    model.freeze_backbone(train_last=2, lr_scale=0.1)
    model.train()
    blocks = list(model.backbone.blocks)
    moving = {id(p) for b in blocks[-2:] for p in b.parameters()}
    for name, p in model.backbone.named_parameters():
        stats = name.endswith(("_mean", "_variance"))  # BatchNorm statistics: never trained
        assert p.stop_gradient == (id(p) not in moving or stats), name
        if not p.stop_gradient:
            assert p.optimize_attr["learning_rate"] == 0.1
    assert not any(b.training for b in blocks)  # every BatchNorm keeps the pretrained statistics
    assert all(not p.stop_gradient for p in model.head.parameters())
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    opt = paddle.optimizer.Adam(learning_rate=1e-2, parameters=trainable)
    model(paddle.randn([2, 3, 48, 64])).mean().backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not np.array_equal(before[n], p.numpy())}
    assert any(n.startswith("backbone.blocks.12.") for n in changed)
    assert not any(n.startswith(("backbone.blocks.10.", "backbone.conv1.")) or n.endswith(("_mean", "_variance"))
                   for n in changed)
    with pytest.raises(ConfigError, match="train_last_blocks: expected 0..13, got 14"):
        RecModel(96).freeze_backbone(train_last=14)


def test_forward_shapes():
    import paddle

    from wordrec.models.paddle_rec.model import RecModel, time_steps

    model = RecModel(96)
    x = paddle.randn([2, 3, 32, 320])
    model.train()
    assert model(x).shape == [2, 40, 96] and time_steps(320) == 40
    model.eval()
    p = model(paddle.randn([1, 3, 32, 128]))
    assert p.shape == [1, time_steps(128), 96]
    np.testing.assert_allclose(p.sum(axis=2).numpy(), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="one row"):
        RecModel(96, height=64)  # two feature rows: neither neck reads them
    with pytest.raises(ConfigError, match="arch.neck"):
        RecModel(96, neck="lstm")
    # PP-OCRv3's layout: 48 px rows, SVTR neck, one-fc head
    v3 = RecModel(96, height=48, mid_channels=None, neck="svtr")
    v3.eval()
    p = v3(paddle.randn([1, 3, 48, 320]))
    assert p.shape == [1, 40, 96]
    np.testing.assert_allclose(p.sum(axis=2).numpy(), 1.0, rtol=1e-5)


def test_trained_model_dir(trained):
    model_dir, metrics = trained
    meta = ModelMeta.load(model_dir)
    assert meta.framework == "paddle" and meta.input.to_dict() == {"channels": 3, "height": 32, "width": 320,
                                                                   "keep_ratio": True, "channel_order": "bgr"}
    assert len(meta.charset.chars) == 95 and meta.num_classes == 96
    # the same train keys and curve columns as the torch trainer (grid, report and dvc plots read both)
    from wordrec.models.meta import TRAIN_KEYS
    from wordrec.models.training import CURVE_FIELDS

    assert set(TRAIN_KEYS) <= set(meta.section("train"))
    assert (model_dir / "curves.csv").read_text().splitlines()[0].split(",") == CURVE_FIELDS
    for f in ("best.pdparams", "curves.csv", "curves.png", "inference/inference.json",
              "inference/inference.pdiparams", "inference/inference.yml"):
        assert (model_dir / f).is_file(), f
    assert metrics["total_steps"] == 4 and 0.0 <= metrics["val_accuracy"] <= 1.0
    assert len((model_dir / "curves.csv").read_text().splitlines()) == 3  # header + 2 validations


@pytest.mark.parametrize("engine", ["paddle", "torch"])
def test_resume_equals_uninterrupted(engine, synth_data, tmp_path, monkeypatch, capsys):
    import paddle
    import torch

    from wordrec.models.paddle_rec import data as data_mod

    # one thread: at two, a resumed torch run has matched the uninterrupted one only to 1 ulp (6e-8 in the stem
    # conv, Dec 1; two uninterrupted runs are byte-identical at two threads, so is a load + step in isolation)
    small = {"input.width": 64, "engine": engine, "threads": 1}
    run_fit(tmp_path / "a", synth_data, **small)

    calls = {"n": 0}
    orig = data_mod.RecDataset.__getitem__

    def interrupting(self, k):
        if self.bda is not None:  # the training set
            calls["n"] += 1
            if calls["n"] > 20:  # inside step 3, after the step-2 checkpoint
                raise KeyboardInterrupt
        return orig(self, k)

    monkeypatch.setattr(data_mod.RecDataset, "__getitem__", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_fit(tmp_path / "b", synth_data, **small)
    assert not (tmp_path / "b" / "model").exists()  # nothing half-written
    monkeypatch.setattr(data_mod.RecDataset, "__getitem__", orig)
    capsys.readouterr()
    run_fit(tmp_path / "b", synth_data, **small)
    assert "at step 2" in capsys.readouterr().out

    meta_a = ModelMeta.load(tmp_path / "a/model").section("train")
    meta_b = ModelMeta.load(tmp_path / "b/model").section("train")
    timing = ("train_seconds", "images_per_second")
    assert {k: v for k, v in meta_a.items() if k not in timing} == {k: v for k, v in meta_b.items() if k not in timing}
    if engine == "paddle":
        sa = paddle.load(str(tmp_path / "a/ckpt/current/model.pdparams"))
        sb = paddle.load(str(tmp_path / "b/ckpt/current/model.pdparams"))
    else:  # the torch twin's own checkpoint
        sa = torch.load(tmp_path / "a/ckpt/current/model.pt")
        sb = torch.load(tmp_path / "b/ckpt/current/model.pt")
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k].numpy(), sb[k].numpy(), err_msg=k)
    assert (tmp_path / "a/model/best.pdparams").read_bytes() == (tmp_path / "b/model/best.pdparams").read_bytes()
    state_a = json.loads((tmp_path / "a/ckpt/current/state.json").read_text())
    state_b = json.loads((tmp_path / "b/ckpt/current/state.json").read_text())
    strip = lambda h: [{k: v for k, v in e.items() if k != "images_per_second"} for e in h]  # noqa: E731
    assert strip(state_a["history"]) == strip(state_b["history"])

    # A changed config must not resume the old state.
    capsys.readouterr()
    run_fit(tmp_path / "b", synth_data, **small, lr=1e-3)
    assert "resuming" not in capsys.readouterr().out


def scrambled_model(src, dst, images):
    """The trained model dir with fresh random weights, a wider random head and BN statistics estimated on
    `images`, so predictions are varied strings over much of the charset (a smoke-trained model emits one
    constant string, which would make string agreement trivial). Export and decoding are what is tested here."""
    import paddle
    from omegaconf import OmegaConf

    from wordrec.data.charset import Charset
    from wordrec.models.paddle_rec.export import save_inference
    from wordrec.models.paddle_rec.model import build
    from wordrec.data.preprocess import prepare_batch

    meta = ModelMeta.load(src)
    model = build(mcfg(), meta.num_classes)
    w = model.head.fc2.weight
    w.set_value(np.random.default_rng(0).normal(0, 1.0, w.shape).astype("float32"))
    x = paddle.to_tensor(prepare_batch(images, meta.input))
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer._momentum = 0.0  # running statistics := this batch's
    model.train()
    with paddle.no_grad():
        model(x)
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "inference")
    save_inference(model, dst / "inference", meta.charset, meta.input)
    return dst


def test_paddleocr_round_trip_offline(trained, test_images, tmp_path, monkeypatch):
    import cv2

    from wordrec.infer.recognizer import load

    attempts = []

    def no_network(self, address, *a, **k):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model_dir = scrambled_model(trained[0], tmp_path / "scrambled", test_images)
    ours = load(model_dir).predict(test_images, batch_size=8)
    assert len({t for t, _ in ours}) >= len(ours) // 2 and max(len(t) for t, _ in ours) >= 5  # not collapsed

    from paddleocr import TextRecognition

    rec = TextRecognition(model_dir=str(model_dir / "inference"), model_name="PP-OCRv3_mobile_rec", device="cpu")
    # PaddleOCR widens the canvas for images wider than 320 px at height 32; ours squeezes (none are wider).
    theirs = [(r["rec_text"], r["rec_score"])
              for r in rec.predict([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in test_images], batch_size=1)]
    assert [t for t, _ in theirs] == [t for t, _ in ours]
    np.testing.assert_allclose([s for _, s in theirs], [s for _, s in ours], atol=1e-4)
    assert attempts == []


def test_onnx_parity(trained, test_images, tmp_path):
    import onnx

    from wordrec.data.preprocess import prepare_batch
    from wordrec.infer.runners import OrtRunner, PaddleRunner
    from wordrec.models.paddle_rec.export import to_onnx
    from wordrec.post.export_onnx import parity

    meta = ModelMeta.load(trained[0])
    to_onnx(trained[0], meta, tmp_path / "model.onnx")
    x = prepare_batch(test_images, meta.input)
    out = parity(PaddleRunner(trained[0], meta).probs(x), OrtRunner(tmp_path / "model.onnx").probs(x), meta.charset)
    assert out["max_abs_diff"] <= 1e-4 and out["text_agreement"] == 1.0
    m = onnx.load(str(tmp_path / "model.onnx"))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 320]
    assert not {n.op_type for n in m.graph.node} & {"LSTM", "GRU", "Loop", "If", "Constant"}  # weights are initializers
    # Downstream (compile stage) imports it into TVM Relax: every op must be one its ONNX frontend knows.
    from tvm.relax.frontend.onnx import from_onnx

    from_onnx(m, shape_dict={"x": [1, 3, 32, 320]}, keep_params_in_input=False)


def test_export_stage_gates_paddle_parity(trained, synth_data, tmp_path, monkeypatch):
    """The export stage checks Paddle exports against Paddle Inference like torch ones; a drifted reference
    fails the stage and leaves nothing behind."""
    from conftest import smoke_cfg
    from stages import export as export_stage
    from wordrec.infer.runners import PaddleRunner

    class Drifted(PaddleRunner):
        def probs(self, x):
            return super().probs(x) + 1e-3  # a reference that drifted, as a broken converter would look

    io = ({"models": str(trained[0]), "data": synth_data}, {"out": tmp_path / "e", "report": tmp_path / "e.json"})
    report = export_stage.run(smoke_cfg(), *io)
    assert report["svtr"]["max_abs_diff"] <= 1e-4 and report["svtr"]["text_agreement"] == 1.0
    monkeypatch.setattr(export_stage, "PaddleRunner", Drifted)
    import shutil as sh

    sh.rmtree(tmp_path / "e")
    (tmp_path / "e.json").unlink()
    with pytest.raises(DataError, match="parity failed"):
        export_stage.run(smoke_cfg(), *io)
    assert not (tmp_path / "e").exists() and not (tmp_path / "e.json").exists()


def test_dictionary_checkpoint_mismatch(trained, test_images, tmp_path):
    from wordrec.infer.recognizer import load

    bad = tmp_path / "bad"
    shutil.copytree(trained[0], bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["charset"] = meta["charset"][:-1]  # drop the space: 95 classes in the dictionary, 96 in the head
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"model outputs \(2, 40, 96\), expected 2 x T x 95"):
        load(bad).predict(test_images[:2])

    meta["charset"] = "0123456789"
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="character_dict"):
        load(bad)


def test_unknown_key_rejected(synth_data, tmp_path):
    from conftest import smoke_cfg
    from stages import train as train_stage

    cfg = smoke_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.train.models.svtr.epochs = 3
    with pytest.raises(ConfigError, match=r"params.yaml:train.models.svtr.epochs"):
        train_stage.train_one(cfg, "svtr", synth_data, tmp_path / "m", tmp_path / "c", tmp_path / "p")


def test_train_device():
    import paddle

    from wordrec.models.paddle_rec.train import pick_device

    assert pick_device("cpu") == "cpu"
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("a CUDA device is present: only the CPU paths are tested here")
    assert pick_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="train.device: gpu"):
        pick_device("gpu")


def test_batch_order_and_lines_per_batch():
    from wordrec.models.paddle_rec.train import batch_order, lines_per_batch

    # a pass is a permutation: every item once, then a new order seeded by the epoch
    seen = np.concatenate([batch_order(s, 12, 4, seed=0)[1] for s in range(3)])
    assert sorted(seen) == list(range(12)) and batch_order(3, 12, 4, seed=0)[0] == 1
    # words keep the order every run before lines had (seed, epoch); lines draw from their own stream
    np.testing.assert_array_equal(batch_order(0, 12, 4, 0)[1], np.random.default_rng([0, 0]).permutation(12)[:4])
    assert not np.array_equal(batch_order(0, 12, 4, 0)[1], batch_order(0, 12, 4, 0, stream=1)[1])
    assert [lines_per_batch(32, f) for f in (0.0, 0.01, 0.5, 0.99)] == [0, 1, 16, 31]


def test_selection_keeps_words():
    from wordrec.models.paddle_rec.train import replaces, select_score

    assert select_score({"accuracy_alnum_ci": 0.9, "accuracy": 0.5}, None, "accuracy_alnum_ci") == 0.9
    # lines rank by exact accuracy (spaces count), words by the selection metric
    assert select_score({"accuracy_alnum_ci": 0.9}, {"accuracy": 0.5, "accuracy_alnum_ci": 0.8},
                        "accuracy_alnum_ci") == pytest.approx(0.7)
    init = {"val_acc": 0.65, "val_words": 0.97, "val_loss": 1.0}
    better_lines = {"val_acc": 0.75, "val_words": 0.965, "val_loss": 1.2}
    assert replaces(better_lines, init, 0.005, init_words=0.97, max_drop=0.01)
    worse_words = {"val_acc": 0.80, "val_words": 0.955, "val_loss": 0.9}  # best score, but 1.5 points of words lost
    assert not replaces(worse_words, init, 0.005, init_words=0.97, max_drop=0.01)
    assert replaces(worse_words, init, 0.005, init_words=None, max_drop=0.01)  # no init: nothing to keep
    assert not replaces({**init, "val_acc": 0.654}, init, 0.005, 0.97, 1.0)  # within the init's margin
    assert replaces({**init, "val_loss": 0.9}, {**init, "step": 3}, 0.0, 0.97, 1.0)  # a tie: lower loss wins


def test_lines_mix(synth_data, tmp_path, monkeypatch):
    """lines_fraction: every batch holds that share of synth's lines_train, validation scores lines_val too."""
    from wordrec.models.paddle_rec import data as data_mod

    drawn = {}
    orig = data_mod.RecDataset.__getitem__

    def counting(self, k):
        if self.bda is not None:  # the training sets
            drawn[self.lmdb.path.name] = drawn.get(self.lmdb.path.name, 0) + 1
        return orig(self, k)

    monkeypatch.setattr(data_mod.RecDataset, "__getitem__", counting)
    run_fit(tmp_path, synth_data, engine="torch", threads=1, lines_fraction=0.25)
    assert drawn == {"train": 4 * 6, "lines_train": 4 * 2}  # 4 steps of 8: 2 lines each
    train = ModelMeta.load(tmp_path / "model").section("train")
    assert train["lines_per_batch"] == 2 and train["train_lines"] > 0
    assert train["selected_on_lines"].endswith("lines_val")
    curves = (tmp_path / "model" / "curves.csv").read_text().splitlines()
    assert "val_lines_accuracy" in curves[0] and len(curves) == 3

    nolines = tmp_path / "nolines"
    shutil.copytree(synth_data, nolines, ignore=shutil.ignore_patterns("lines_*"))
    with pytest.raises(DataError, match=r"lines_train: no LMDB there .*lines_fraction"):
        run_fit(tmp_path / "b", nolines, engine="torch", threads=1, lines_fraction=0.25)
    assert not (tmp_path / "b" / "model").exists()
