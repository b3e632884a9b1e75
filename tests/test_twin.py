"""The torch twin of the Paddle recognizer (issue #16 item 3): weights go across exactly, probabilities agree
within 1e-5 on real crops (synthetic ones on a clone without ../shared), the training attributes carry over, and
the torch engine takes the same optimizer steps as Paddle's and writes a Paddle model dir that reads as it did."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError
from wordrec.models.meta import ModelMeta

pytest.importorskip("paddle")
torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "iiit5k_test_dev"
MODEL_CFG = OmegaConf.load(REPO / "conf/train/models/svtr.yaml")


def paddle_model(neck: str, seed: int = 0):
    import paddle

    from wordrec.models.paddle_rec.model import RecModel

    paddle.seed(seed)
    return RecModel(96, height=48, mid_channels=96 if neck == "reshape" else None, neck=neck)


def crops(synth_data, n: int = 16) -> np.ndarray:
    """A batch of real word crops (synthetic ones without ../shared) in the svtr input layout."""
    import cv2

    from wordrec.data.lmdb_io import LmdbDataset
    from wordrec.data.preprocess import prepare_batch
    from wordrec.models.meta import InputSpec

    if (REAL / "labels.txt").is_file():
        rows = [line.split("\t")[0] for line in (REAL / "labels.txt").read_text(encoding="utf-8").splitlines()[:n]]
        imgs = [cv2.cvtColor(cv2.imread(str(REAL / p)), cv2.COLOR_BGR2RGB) for p in rows]
    else:
        ds = LmdbDataset(synth_data / "test")
        imgs = [ds[i][0] for i in range(n)]
    return prepare_batch(imgs, InputSpec(3, 48, 160, True, "bgr"))


def twin_of(pm):
    from wordrec.models.paddle_rec import twin

    return twin.from_paddle(pm)


def perturb_bn(pm, seed: int = 1) -> None:
    """Non-trivial BatchNorm statistics (a fresh model's are 0 / 1, which would hide a swapped mapping)."""
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 2.0, v.shape) if k.endswith("_variance") else
                 rng.normal(0, 0.1, v.shape) if k.endswith("_mean") else v.numpy()).astype("float32")
             for k, v in pm.state_dict().items()}
    pm.set_state_dict(state)


@pytest.mark.parametrize("neck", ["reshape", "svtr"])
def test_probabilities_match_paddle(neck, synth_data):
    import paddle

    pm = paddle_model(neck)
    perturb_bn(pm)
    pm.eval()
    tm = twin_of(pm).eval()
    x = crops(synth_data)
    with paddle.no_grad():
        want = pm(paddle.to_tensor(x)).numpy()
    with torch.no_grad():
        got = torch.softmax(tm(torch.from_numpy(x)), 2).numpy()
    assert got.shape == want.shape == (16, 20, 96)
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("neck", ["reshape", "svtr"])
def test_round_trip_is_exact(neck):
    from wordrec.models.paddle_rec import twin

    src = paddle_model(neck, seed=3)
    perturb_bn(src)
    dst = paddle_model(neck, seed=4)
    twin.to_paddle(twin_of(src), dst)
    a, b = src.state_dict(), dst.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)


def test_wrong_shape_names_the_tensor():
    from wordrec.models.paddle_rec import twin

    pm = paddle_model("reshape")
    state = {k: v.numpy() for k, v in pm.state_dict().items()}
    state["head.fc1.weight"] = np.zeros((512, 64), np.float32)
    with pytest.raises(DataError, match=r"'head\.fc1\.weight'.*\[512, 64\].*\[512, 96\]"):
        twin.to_torch(twin.RecModel(**pm.config), state)
    del state["backbone.blocks.3.pw.bn._variance"]
    with pytest.raises(DataError, match=r"backbone\.blocks\.3\.pw\.bn\._variance.*missing"):
        twin.to_torch(twin.RecModel(**pm.config), state)


def test_training_attributes_carry_over():
    from wordrec.models.paddle_rec import twin

    pm = paddle_model("reshape")
    pm.freeze_backbone(train_last=2, lr_scale=0.1)
    tm = twin_of(pm)
    groups = twin.param_groups(tm, pm, default_decay=3e-5)
    names = {id(p): n for n, p in tm.named_parameters()}
    where = {names[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    want = {n for n, p in pm.named_parameters() if not p.stop_gradient}
    assert set(where) == want and {n for n, p in tm.named_parameters() if p.requires_grad} == want
    assert where["backbone.blocks.12.pw.conv.weight"] == (0.1, 3e-5)
    assert where["backbone.blocks.11.dw.bn.weight"] == (0.1, 0.0)  # BatchNorm scale/shift: no weight decay
    assert where["head.fc2.bias"] == (1.0, pytest.approx(2e-5))  # the head's own fc_decay
    assert not any(n.startswith(("backbone.conv1.", "backbone.blocks.10.")) for n in where)


def engine_pair(neck_frozen: bool, total: int = 6, neck: str = "reshape"):
    from wordrec.models.paddle_rec.train import PaddleEngine, TorchEngine

    cfg = OmegaConf.create({"l2_decay": 3e-5, "grad_clip": 1.0})  # a clip that binds: the order matters
    out = []
    for cls in (PaddleEngine, TorchEngine):
        pm = paddle_model(neck)
        perturb_bn(pm)
        if neck_frozen:
            pm.freeze_backbone(train_last=2, lr_scale=0.1)
        out.append(cls(pm, cfg, 3e-3, total, 2))
    return out


@pytest.mark.parametrize(("neck", "frozen"), [("reshape", True), ("reshape", False), ("svtr", True)],
                         ids=["reshape-last-2-blocks", "reshape-all", "svtr-neck-last-2-blocks"])
def test_torch_engine_takes_paddles_steps(neck, frozen, synth_data):
    """Same init, batches, schedule, Adam, clipping, L2 and BatchNorm updates: after 4 steps both engines'
    weights and statistics agree (float32 rounding apart) and so do their probabilities."""
    from wordrec.models.paddle_rec import twin
    from wordrec.models.paddle_rec.data import RecDataset
    from wordrec.models.paddle_rec.model import time_steps

    pe, te = engine_pair(frozen, neck=neck)
    inp = OmegaConf.create({"channels": 3, "height": 48, "width": 160, "keep_ratio": True, "channel_order": "bgr"})
    ds = RecDataset(synth_data / "train", Charset.from_spec("en"), inp, time_steps(160))
    losses = []
    for s in range(4):
        x, y, n = (np.stack(v) for v in zip(*(ds[k] for k in range(8 * s, 8 * s + 8))))
        losses.append((pe.step(x, y, n), te.step(x, y, n)))
    np.testing.assert_allclose(*zip(*losses), rtol=1e-4)
    assert abs(pe.lr() - te.lr()) < 1e-9
    back = paddle_model(neck, seed=9)
    twin.to_paddle(te.model, back)
    p_state, t_state = pe.model.state_dict(), back.state_dict()
    start = paddle_model(neck)
    perturb_bn(start)
    start = start.state_dict()
    moved = set()
    for k, v in p_state.items():
        # What did not move must be bit-identical; what moved must have moved the same way. Adam steps by
        # ~lr x sign(g) whatever |g|, so weights whose gradient is float noise (the frameworks' gradients agree to
        # ~2e-5 of the largest) may step apart by ~lr: the criterion is the disagreement against the step taken.
        a, b, s0 = t_state[k].numpy(), v.numpy(), start[k].numpy()
        if np.array_equal(b, s0):
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            moved.add(k)
            # the SVTR neck's last LayerNorm bias feeds conv3's BatchNorm, which (in training mode) subtracts
            # any constant again: its gradient is 0 up to rounding (3e-8 here), so Adam moves it by noise alone
            if k != "neck.norm.bias":
                assert np.linalg.norm(a - b) <= 0.1 * np.linalg.norm(b - s0), k
    assert "head.fc2.weight" in moved and ("backbone.conv1.bn._mean" in moved) != frozen
    np.testing.assert_allclose(te.probs(x), pe.probs(x), atol=1e-4)


def fit_cfg(**over):
    cfg = OmegaConf.merge(MODEL_CFG, OmegaConf.create({
        "batch_size": 8, "steps": 4, "val_every": 2, "val_images": 8, "warmup_steps": 1, "lr": 2e-3,
        "input": {"height": 48, "width": 64}, "init": "scratch", "freeze_backbone": False, "engine": "torch",
        "train_last_blocks": 0}))
    return OmegaConf.merge(cfg, OmegaConf.create(over))


def test_torch_engine_writes_the_paddle_model(synth_data, tmp_path):
    import paddle

    from wordrec.models.paddle_rec.model import build
    from wordrec.models.paddle_rec.train import fit

    tcfg = OmegaConf.create({"threads": 1, "seed": 0})
    m = fit("svtr", fit_cfg(), tcfg, synth_data, tmp_path / "model", tmp_path / "ckpt", tmp_path / "plots")
    meta = ModelMeta.load(tmp_path / "model")
    assert meta.framework == "paddle" and meta.section("train")["engine"] == "torch"
    assert m["total_steps"] == 4
    # the kept torch weights, written back, are the Paddle model dir's weights and inference model
    kept = torch.load(tmp_path / "ckpt/current/best.pt")
    tw = twin_of(build(fit_cfg(), 96))
    tw.load_state_dict(kept)
    tw.eval()
    x = crops(synth_data, 4)[..., :64]
    pm = build(fit_cfg(), 96)
    pm.set_state_dict(paddle.load(str(tmp_path / "model/best.pdparams")))
    pm.eval()
    with torch.no_grad():
        want = torch.softmax(tw(torch.from_numpy(np.ascontiguousarray(x))), 2).numpy()
    np.testing.assert_allclose(pm(paddle.to_tensor(np.ascontiguousarray(x))).numpy(), want, atol=1e-5)
    loaded = paddle.jit.load(str(tmp_path / "model/inference/inference"))
    np.testing.assert_allclose(loaded(paddle.to_tensor(np.ascontiguousarray(x))).numpy(), want, atol=1e-5)

    # same seed, same bytes; and a resumed run equals it (the checkpoint is the torch engine's)
    fit("svtr", fit_cfg(), tcfg, synth_data, tmp_path / "again", tmp_path / "ckpt2", tmp_path / "plots2")
    assert (tmp_path / "again/best.pdparams").read_bytes() == (tmp_path / "model/best.pdparams").read_bytes()
    with pytest.raises(ConfigError, match="engine"):
        fit("svtr", fit_cfg(engine="jax"), tcfg, synth_data, tmp_path / "m3", tmp_path / "c3", tmp_path / "p3")


def test_distill_loss():
    from wordrec.models.paddle_rec.train import distill_loss

    s = torch.randn(2, 20, 96, requires_grad=True)
    assert float(distill_loss(s, s.detach().clone(), 2.0)) == pytest.approx(0.0, abs=1e-6)
    t = torch.randn(2, 20, 96, requires_grad=True)
    loss = distill_loss(s, t, 1.0)
    loss.backward()
    assert float(loss) > 0 and s.grad.abs().sum() > 0 and t.grad is None  # the teacher never learns
    # KL per frame = sum_k p_t (log p_t - log p_s), averaged over frames
    p_t, logp_s = torch.softmax(t, 2), torch.log_softmax(s, 2)
    want = (p_t * (p_t.log() - logp_s)).sum(2).mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


WHEELS = REPO / "build" / "wheels"


@pytest.mark.skipif(not (WHEELS / "rapidocr_onnxruntime-1.2.3-py3-none-any.whl").is_file(),
                    reason="no PP-OCRv3 wheel in build/wheels")
def test_distillation_from_the_pretrained_teacher(synth_data, tmp_path, monkeypatch):
    from wordrec.models.paddle_rec import train as train_mod
    from wordrec.models.paddle_rec.ppocr_import import write_pretrained
    from wordrec.models.paddle_rec.train import fit

    write_pretrained("ppocrv3", WHEELS, tmp_path / "pre" / "ppocrv3", "en")
    monkeypatch.setattr(train_mod, "PRETRAINED_DIR", tmp_path / "pre")
    tcfg = OmegaConf.create({"threads": 1, "seed": 0})
    kd = {"teacher": "ppocrv3", "weight": 1.0, "temperature": 1.0}
    m = fit("svtr", fit_cfg(distill=kd), tcfg, synth_data, tmp_path / "m", tmp_path / "c", tmp_path / "p")
    plain = fit("svtr", fit_cfg(), tcfg, synth_data, tmp_path / "m0", tmp_path / "c0", tmp_path / "p0")
    assert m["total_steps"] == plain["total_steps"] == 4
    # the teacher's term changed the training
    assert (tmp_path / "m/best.pdparams").read_bytes() != (tmp_path / "m0/best.pdparams").read_bytes()
    with pytest.raises(ConfigError, match=r"distill\.teacher .*input height 48.*student's is 32"):
        fit("svtr", fit_cfg(distill=kd, input={"height": 32}), tcfg, synth_data, tmp_path / "m2", tmp_path / "c2",
            tmp_path / "p2")
    with pytest.raises(ConfigError, match=r"distill\.teacher .*arch 'ppocrv3_mv1e_ctc'"):
        fit("svtr", fit_cfg(distill={**kd, "teacher": str(tmp_path / "m0")}), tcfg, synth_data, tmp_path / "m3",
            tmp_path / "c3", tmp_path / "p3")


def test_torch_engine_device():
    from wordrec.models.paddle_rec.train import torch_device

    assert torch_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match=re.escape("expected cpu | gpu | auto, got 'tpu'")):
        torch_device("tpu")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: only the CPU paths are tested here")
    assert torch_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="train.device: gpu, but torch sees no CUDA device"):
        torch_device("gpu")
