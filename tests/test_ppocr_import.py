"""PP-OCRv3 rec weights (the rapidocr wheel's ONNX) imported into our Paddle model (neck svtr): every tensor mapped,
shape errors named, parity with the imported ONNX on real crops, init vs scratch in a smoke train, PaddleOCR reads
the export; the Arm-flow model (reshape neck) starting from the backbone alone.

Needs build/wheels (scripts/fetch_wheels.sh); the parity and PaddleOCR tests also need real crops beside the repo
(../shared/data/iiit5k_test_dev). Each skips without them; the backbone-only tests need neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError
from wordrec.models import imported
from wordrec.models.meta import ModelMeta

pytest.importorskip("paddle")

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "build" / "wheels"
SRC = imported.SOURCES["ppocrv3"]
REAL = REPO.parent / "shared" / "data" / "iiit5k_test_dev"
needs_wheel = pytest.mark.skipif(not (WHEELS / SRC.wheel).is_file(), reason=f"no {SRC.wheel} in {WHEELS}")
needs_real = pytest.mark.skipif(not (REAL / "labels.txt").is_file(), reason=f"no real crops in {REAL}")


@pytest.fixture(scope="module")
def source_onnx():
    return imported.constants_to_initializers(imported.load_source(SRC, WHEELS))


def fresh_model():
    from wordrec.models.paddle_rec.model import build
    from wordrec.models.paddle_rec.ppocr_import import model_cfg

    return build(model_cfg("ppocrv3", "en"), Charset.from_spec("en").num_classes)


def real_crops(n: int) -> tuple[list[np.ndarray], list[str]]:
    import cv2

    rows = [line.split("\t") for line in (REAL / "labels.txt").read_text(encoding="utf-8").splitlines()[:n]]
    imgs = [cv2.cvtColor(cv2.imread(str(REAL / p)), cv2.COLOR_BGR2RGB) for p, _ in rows]  # ours: RGB uint8
    return imgs, [label for _, label in rows]


@needs_wheel
def test_import_maps_every_tensor(source_onnx):
    from wordrec.models.paddle_rec.ppocr_import import import_state, onnx_weights

    model = fresh_model()
    weights = onnx_weights(source_onnx)
    state = import_state(source_onnx, model, Charset.from_spec("en"))
    own = model.state_dict()
    # one ONNX weight per Paddle tensor, BN running mean/var included (the wheel's ONNX keeps BN unfolded)
    assert len(weights) == len(state) == len(own) == 196
    assert set(state) == set(own)
    assert len({name for name, _, _ in weights}) == len(weights)
    assert sum(key.endswith("._mean") or key.endswith("._variance") for key in state) == 2 * 32
    for key, arr in state.items():
        assert list(arr.shape) == list(own[key].shape), key
    # the head keeps the blank and the 95 `en` columns, in charset order
    head_w = next(a for n, _, a in weights if n == "linear_21.w_0")
    chars = imported.source_charset(source_onnx)
    cols = [0] + [chars.index(c) + 1 for c in Charset.from_spec("en").chars]
    np.testing.assert_array_equal(state["head.fc2.weight"], head_w[:, cols])


@needs_wheel
def test_wrong_shape_names_the_tensor(source_onnx):
    import onnx
    from onnx import numpy_helper

    from wordrec.models.paddle_rec.ppocr_import import import_state

    bad = onnx.ModelProto.FromString(source_onnx.SerializeToString())
    t = next(t for t in bad.graph.initializer if t.name == "conv2d_69.w_0")  # the neck's 1x1 conv 64 -> 120
    t.CopyFrom(numpy_helper.from_array(np.zeros((120, 64, 3, 3), np.float32), t.name))
    with pytest.raises(DataError, match=r"conv2d_69\.w_0.*\[120, 64, 3, 3\].*neck\.conv2\.conv\.weight"):
        import_state(bad, fresh_model(), Charset.from_spec("en"))


@needs_wheel
def test_other_architecture_fails_naming_the_tensor(source_onnx):
    from wordrec.models.paddle_rec.model import RecModel
    from wordrec.models.paddle_rec.ppocr_import import import_state

    # the Arm-flow model (reshape neck, two-fc head): the first neck tensor meets the head's fc1
    arm = RecModel(96, height=48, mid_channels=96, neck="reshape")
    with pytest.raises(DataError, match=r"conv2d_68\.w_0.*head\.fc1\.weight"):
        import_state(source_onnx, arm, Charset.from_spec("en"))
    with pytest.raises(ConfigError, match="case-insensitive"):
        import_state(source_onnx, fresh_model(), Charset.from_spec("alnum_lower"))


@needs_wheel
@needs_real
def test_parity_with_imported_onnx_on_real_crops(tmp_path):
    """The imported Paddle model's probabilities = the pretrained stage's cut ONNX's (same 96 columns), <= 1e-4."""
    import paddle

    from wordrec.data.preprocess import prepare_batch
    from wordrec.infer.runners import OrtRunner
    from wordrec.models.paddle_rec.ppocr_import import build_pretrained

    model, meta = build_pretrained("ppocrv3", WHEELS, "en")
    onnx_model, onnx_meta = imported.build_model(SRC, WHEELS, Charset.from_spec("en"))
    import onnx

    onnx.save(onnx_model, str(tmp_path / "model.onnx"))
    assert meta.input == onnx_meta.input and meta.charset == onnx_meta.charset
    imgs, _ = real_crops(16)
    x = prepare_batch(imgs, meta.input)
    want = OrtRunner(tmp_path / "model.onnx").probs(x)
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    assert got.shape == want.shape == (16, 40, 96)
    assert np.abs(got - want).max() <= 1e-4


@needs_wheel
def test_pretrained_stage_writes_paddle_dir(tmp_path):
    from wordrec.models.paddle_rec.ppocr_import import write_pretrained

    meta = write_pretrained("ppocrv3", WHEELS, tmp_path / "ppocrv3", "en")
    again = ModelMeta.load(tmp_path / "ppocrv3")
    assert again.framework == "paddle" and again.arch == meta.arch == "ppocrv3_mv1e_svtr_ctc"
    assert again.input.to_dict() == {"channels": 3, "height": 48, "width": 320, "keep_ratio": True,
                                     "channel_order": "bgr"}
    src = again.section("source")
    assert src["licence"].startswith("Apache-2.0") and SRC.wheel in src["origin"] and src["tensors"] == 196
    # idempotent: the same bytes on a second import
    write_pretrained("ppocrv3", WHEELS, tmp_path / "again", "en")
    for f in ("best.pdparams", "meta.json"):
        assert (tmp_path / "ppocrv3" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def svtr3_cfg(init, **over):
    base = OmegaConf.load(REPO / "conf/train/models/svtr3.yaml")
    cfg = OmegaConf.merge(base, OmegaConf.create({"batch_size": 8, "steps": 2, "val_every": 1, "val_images": 16,
                                                  "warmup_steps": 0, "init": str(init)}))
    return OmegaConf.merge(cfg, OmegaConf.create(over))


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    from wordrec.models.paddle_rec.ppocr_import import write_pretrained

    if not (WHEELS / SRC.wheel).is_file():
        pytest.skip(f"no {SRC.wheel} in {WHEELS}")
    d = tmp_path_factory.mktemp("pp") / "ppocrv3"
    write_pretrained("ppocrv3", WHEELS, d, "en")
    return d


@pytest.fixture(scope="module")
def finetuned(init_dir, synth_data, tmp_path_factory):
    from wordrec.models.paddle_rec.train import fit

    root = tmp_path_factory.mktemp("svtr3")
    tcfg = OmegaConf.create({"threads": 1, "seed": 0})
    metrics = fit("svtr3", svtr3_cfg(init_dir), tcfg, synth_data, root / "model", root / "ckpt", root / "plots")
    return root / "model", metrics


@needs_wheel
def test_init_beats_scratch_in_a_smoke_train(finetuned, synth_data, tmp_path):
    from wordrec.models.paddle_rec.train import fit

    model_dir, init_metrics = finetuned
    tcfg = OmegaConf.create({"threads": 1, "seed": 0})
    scratch = fit("svtr3", svtr3_cfg("scratch", freeze_backbone=False), tcfg, synth_data, tmp_path / "model",
                  tmp_path / "ckpt", tmp_path / "plots")
    assert scratch["val_accuracy"] == 0.0  # two steps from random weights read nothing
    assert init_metrics["val_accuracy"] >= 0.5  # the pretrained model reads the synthetic words
    meta = ModelMeta.load(model_dir)
    train = meta.section("train")
    assert train["init"].endswith("ppocrv3") and train["trainable_params"] < train["params"]
    assert meta.section("source")["licence"].startswith("Apache-2.0")  # the weights' origin carries over
    assert meta.input.channel_order == "bgr"
    with pytest.raises(ConfigError, match="freeze_backbone"):
        fit("svtr3", svtr3_cfg("scratch"), tcfg, synth_data, tmp_path / "m2", tmp_path / "c2", tmp_path / "p2")


@needs_wheel
def test_select_min_gain_keeps_the_init_unless_beaten_by_the_margin(init_dir, synth_data, tmp_path):
    from wordrec.models.paddle_rec.train import fit

    tcfg = OmegaConf.create({"threads": 1, "seed": 0})
    # lr 0: every checkpoint reads (nearly) what the init reads, a tie on accuracy; validation loss decides. Words
    # only: the neck's train-mode BatchNorm statistics still move at lr 0, and with lines in the batches the 2-step
    # run beat the init by more than the margin on the mixed score (measured Dec 1)
    words = {"lr": 0.0, "lines_fraction": 0.0}
    free = fit("svtr3", svtr3_cfg(init_dir, select_min_gain=0.0, **words), tcfg, synth_data, tmp_path / "a",
               tmp_path / "ca", tmp_path / "pa")
    kept = fit("svtr3", svtr3_cfg(init_dir, select_min_gain=0.01, **words), tcfg, synth_data, tmp_path / "b",
               tmp_path / "cb", tmp_path / "pb")
    assert kept["best_step"] == 0  # an equal score is no gain of 0.01
    assert free["val_accuracy"] == kept["val_accuracy"]
    with pytest.raises(ConfigError, match="select_min_gain"):
        from wordrec.pipeline.config import validated
        from wordrec.pipeline.schema import PaddleModel

        validated(svtr3_cfg(init_dir, select_min_gain=2.0), PaddleModel, "train.models.svtr3")


@needs_wheel
@needs_real
def test_textrecognition_reads_real_crops(finetuned, tmp_path, monkeypatch):
    """PaddleOCR 3.x TextRecognition serves the fine-tuned export (BGR, 48x320) and reads real crops as we do."""
    import cv2
    from paddleocr import TextRecognition

    from wordrec.infer.recognizer import load

    model_dir, _ = finetuned
    imgs, labels = real_crops(8)
    ours = [t for t, _ in load(model_dir).predict(imgs, batch_size=8)]
    assert sum(t.lower() == y.lower() for t, y in zip(ours, labels)) >= 6  # the pretrained model reads them
    rec = TextRecognition(model_dir=str(model_dir / "inference"), model_name="PP-OCRv3_mobile_rec", device="cpu")
    theirs = [r["rec_text"] for r in rec.predict([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in imgs],
                                                 batch_size=1)]
    assert theirs == ours


# --- backbone-only init: the Arm-flow `svtr` (reshape neck, 3x48x160) from a PP-OCRv3-architecture dir -----------
# A randomly initialised svtr-neck model saved like the `pretrained` stage's dir stands in for the import (no wheel
# needed): load_params only sees arch, charset and tensors.

def svtr_neck_dir(root: Path, mutate=None) -> tuple[Path, dict]:
    import paddle

    from wordrec.models.meta import InputSpec
    from wordrec.models.paddle_rec.model import arch_name
    from wordrec.models.paddle_rec.ppocr_import import WEIGHTS

    paddle.seed(1)
    model = fresh_model()
    mcfg = OmegaConf.load(REPO / "conf/train/models/svtr3.yaml")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    if mutate is not None:
        mutate(state)
    root.mkdir(parents=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(root / WEIGHTS))
    ModelMeta("ppocrv3", "paddle", arch_name(mcfg), Charset.from_spec("en"), InputSpec(3, 48, 320, True, "bgr"),
              {"source": {"kind": "imported", "licence": "Apache-2.0 (test stand-in)"}}).save(root)
    return root, state


def arm_model():
    from wordrec.models.paddle_rec.model import build

    return build(OmegaConf.load(REPO / "conf/train/models/svtr.yaml"), Charset.from_spec("en").num_classes)


def test_backbone_only_init_for_the_reshape_neck(tmp_path):
    from wordrec.models.paddle_rec.model import arch_name
    from wordrec.models.paddle_rec.train import load_params

    src, state = svtr_neck_dir(tmp_path / "ppocrv3")
    model = arm_model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    meta, part = load_params(model, src, Charset.from_spec("en"),
                             arch_name(OmegaConf.load(REPO / "conf/train/models/svtr.yaml")))
    assert part == "backbone" and meta.arch == "ppocrv3_mv1e_svtr_ctc"
    after = {k: v.numpy() for k, v in model.state_dict().items()}
    backbone = [k for k in after if k.startswith("backbone.")]
    # conv1 + 13 blocks x (dw, pw) ConvBNs at 5 tensors (BN running stats included) + 2 SE x 4
    assert len(backbone) == 143
    for k in backbone:
        np.testing.assert_array_equal(after[k], state[k], err_msg=k)
    rest = [k for k in after if not k.startswith("backbone.")]
    assert rest and all(k.startswith("head.") for k in rest)  # the reshape neck has no weights
    for k in rest:  # the two-fc head keeps its initialisation: nothing of the source's neck or head lands in it
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_backbone_only_init_names_a_wrong_or_missing_tensor(tmp_path):
    from wordrec.models.paddle_rec.train import load_params

    def widen(state):  # a backbone of another width (scale) at one tensor
        state["backbone.blocks.3.pw.conv.weight"] = np.zeros((256, 64, 1, 1), np.float32)

    src, _ = svtr_neck_dir(tmp_path / "wide", widen)
    with pytest.raises(DataError, match=r"backbone\.blocks\.3\.pw\.conv\.weight.*\[256, 64, 1, 1\].*\[128, 64, 1, 1\]"):
        load_params(arm_model(), src, Charset.from_spec("en"), "ppocrv3_mv1e_ctc")
    src, _ = svtr_neck_dir(tmp_path / "gone", lambda s: s.pop("backbone.blocks.12.se.conv2.bias"))
    with pytest.raises(DataError, match=r"backbone\.blocks\.12\.se\.conv2\.bias.*missing"):
        load_params(arm_model(), src, Charset.from_spec("en"), "ppocrv3_mv1e_ctc")


def test_reshape_neck_fine_tunes_from_the_svtr_neck_init(synth_data, tmp_path):
    from wordrec.models.paddle_rec.train import fit

    src, _ = svtr_neck_dir(tmp_path / "ppocrv3")
    cfg = OmegaConf.merge(OmegaConf.load(REPO / "conf/train/models/svtr.yaml"),
                          OmegaConf.create({"batch_size": 8, "steps": 2, "val_every": 1, "val_images": 8,
                                            "warmup_steps": 0, "init": str(src), "freeze_backbone": True}))
    fit("svtr", cfg, OmegaConf.create({"threads": 1, "seed": 0}), synth_data, tmp_path / "model",
        tmp_path / "ckpt", tmp_path / "plots")
    meta = ModelMeta.load(tmp_path / "model")
    train = meta.section("train")
    assert train["init_loaded"] == "backbone" and meta.arch == "ppocrv3_mv1e_ctc"
    # the CTC head (fc 512->96->96) and, per conf, the backbone's last two blocks (BatchNorm statistics excluded)
    assert cfg.train_last_blocks == 2
    assert train["trainable_params"] == 512 * 96 + 96 + 96 * 96 + 96 + 580_800
    assert meta.section("source")["licence"].startswith("Apache-2.0")  # the backbone's origin carries over
