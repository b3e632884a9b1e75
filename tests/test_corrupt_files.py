"""Property test: random truncations and random bytes fed to every reader of a file the pipeline consumes (LMDB,
meta.json, torch checkpoint, ONNX, OpenVINO IR, Paddle inference files, JSON reports, params YAML, images, wheels).

Each reader must either read the file or raise the project's one-line error (ConfigError/DataError): never another
exception, and never a signal. Readers run in a subprocess, so a crash inside a C library shows as a failed test
instead of killing pytest. Variants are seeded: the same bytes on every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from wordrec.data.charset import Charset
from wordrec.data.lmdb_io import encode_image, write_lmdb
from wordrec.models.meta import InputSpec, ModelMeta

pytestmark = pytest.mark.slow

FRACTIONS = (0.0, 0.003, 0.05, 0.2, 0.5, 0.8, 0.97)  # of the good file's size
N_RANDOM = 4  # random-byte variants per file: two plain, two behind the good file's first 64 bytes (its magic)

# How each kind is read: the reader a stage or CLI uses, on a variant at `p` (a folder holding the variant file).
DRIVER = r'''
import sys
from pathlib import Path
from wordrec.errors import WordrecError

def read(kind, p):
    if kind == "lmdb":
        from wordrec.data.lmdb_io import LmdbDataset
        ds = LmdbDataset(p)
        for i in range(len(ds)):
            ds[i]
    elif kind == "meta":
        from wordrec.models.meta import ModelMeta
        ModelMeta.load(p)
    elif kind == "torch":
        from wordrec.infer.recognizer import load
        load(p)
    elif kind == "onnx":
        from wordrec.infer.runners import OrtRunner
        from wordrec.models.meta import ModelMeta
        from wordrec.post.export_onnx import check_onnx
        check_onnx(p / "model.onnx", ModelMeta.load(p))
        OrtRunner(p / "model.onnx")
    elif kind in ("ir_xml", "ir_bin"):
        from wordrec.infer.runners import OvRunner
        OvRunner(p / "model.xml")
    elif kind in ("paddle_json", "paddle_params"):
        from wordrec.infer.recognizer import load
        load(p)
    elif kind == "json":
        from wordrec.io import read_json
        read_json(p / "report.json")
    elif kind == "params":
        from wordrec.pipeline.config import load_params
        load_params(p / "params.yaml")
    elif kind == "image":
        from wordrec.data.images import load_image
        load_image(p / "img.png")
    elif kind == "wheel":
        from wordrec.models.imported import read_member
        read_member(p / "w.whl", "pkg/models/rec.onnx", None)
    else:
        raise SystemExit(f"unknown kind {kind}")

kind = sys.argv[1]
for arg in sys.argv[2:]:
    try:
        read(kind, Path(arg))
        print("read", arg)
    except WordrecError as e:
        print("error", arg, str(e).splitlines()[0][:160])
'''


def _lmdb(root: Path) -> Path:
    rng = np.random.default_rng(0)
    d = root / "lmdb"
    write_lmdb(d, [(encode_image(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8), ".png"), f"w{i}")
                   for i in range(200)])
    return d


def _meta() -> ModelMeta:
    return ModelMeta("m", "torch", {"type": "crnn_lite", "channels": [8, 8, 8, 8, 8, 8, 8], "head_channels": 8},
                     Charset.from_spec("alnum_lower"), InputSpec(1, 32, 64, False))


def _torch_dir(root: Path) -> Path:
    import torch

    from wordrec.models.torch_rec.models import build_model

    meta = _meta()
    d = root / "torch"
    d.mkdir()
    meta.save(d)
    model = build_model(meta.arch, meta.num_classes, 1, 32)
    torch.save({"state_dict": model.state_dict(), "meta": {"name": "m", "charset": meta.charset.chars}},
               d / "best.pt")
    return d


def _onnx_dir(root: Path, torch_dir: Path) -> Path:
    from wordrec.infer.runners import TorchRunner
    from wordrec.post.export_onnx import export_torch

    meta = ModelMeta.load(torch_dir)
    d = root / "onnx"
    d.mkdir()
    meta.save(d)
    export_torch(TorchRunner.from_dir(torch_dir, meta).module, meta, d / "model.onnx", 17)
    return d


def _ir_dir(root: Path, onnx_dir: Path) -> Path:
    import openvino as ov

    d = root / "ir"
    d.mkdir()
    ModelMeta.load(onnx_dir).save(d)
    ov.save_model(ov.convert_model(str(onnx_dir / "model.onnx")), str(d / "model.xml"))
    return d


def _paddle_dir(root: Path) -> Path:
    import paddle
    from omegaconf import OmegaConf

    from wordrec.models.paddle_rec.export import save_inference
    from wordrec.models.paddle_rec.model import RecModel

    charset = Charset.from_spec("en")
    d = root / "paddle"
    d.mkdir()
    paddle.seed(0)
    model = RecModel(charset.num_classes)
    save_inference(model, d / "inference", charset, OmegaConf.create({"channels": 3, "height": 32, "width": 64}))
    ModelMeta("p", "paddle", "ppocrv3_mv1e_ctc", charset, InputSpec(3, 32, 64, True)).save(d)
    return d


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """kind -> (a folder holding a good instance, the name of the file inside it that the variants replace)."""
    import cv2

    root = tmp_path_factory.mktemp("good")
    torch_dir = _torch_dir(root)
    onnx_dir = _onnx_dir(root, torch_dir)
    ir_dir = _ir_dir(root, onnx_dir)
    paddle_dir = _paddle_dir(root)
    misc = root / "misc"
    misc.mkdir()
    (misc / "report.json").write_text(json.dumps({"crnn": {"synth_test": {"accuracy": 0.7, "n": 10}}}, indent=2))
    shutil.copy(REPO / "params.yaml", misc / "params.yaml")
    cv2.imwrite(str(misc / "img.png"), np.random.default_rng(1).integers(0, 255, (32, 100, 3), dtype=np.uint8))
    with zipfile.ZipFile(misc / "w.whl", "w") as z:
        z.writestr("pkg/models/rec.onnx", (onnx_dir / "model.onnx").read_bytes())
    return {"lmdb": (_lmdb(root), "data.mdb"), "meta": (torch_dir, "meta.json"), "torch": (torch_dir, "best.pt"),
            "onnx": (onnx_dir, "model.onnx"), "ir_xml": (ir_dir, "model.xml"), "ir_bin": (ir_dir, "model.bin"),
            "paddle_json": (paddle_dir, "inference/inference.json"),
            "paddle_params": (paddle_dir, "inference/inference.pdiparams"),
            "json": (misc, "report.json"), "params": (misc, "params.yaml"), "image": (misc, "img.png"),
            "wheel": (misc, "w.whl")}


def variants(folder: Path, name: str, out: Path, seed: int) -> list[Path]:
    """Copies of `folder` with `name` truncated at each of FRACTIONS or replaced by random bytes."""
    data = (folder / name).read_bytes()
    rng = np.random.default_rng(seed)
    blobs = [data[: int(len(data) * f)] for f in FRACTIONS]
    blobs += [rng.bytes(int(rng.integers(1, 2 * len(data) + 2))) for _ in range(N_RANDOM // 2)]
    blobs += [data[:64] + rng.bytes(int(rng.integers(1, len(data) + 1))) for _ in range(N_RANDOM - N_RANDOM // 2)]
    paths = []
    for i, blob in enumerate(blobs):
        d = out / f"v{i}"
        shutil.copytree(folder, d)
        (d / name).write_bytes(blob)
        paths.append(d)
    return paths


@pytest.mark.parametrize("kind", ["lmdb", "meta", "torch", "onnx", "ir_xml", "ir_bin", "paddle_json",
                                  "paddle_params", "json", "params", "image", "wheel"])
def test_random_truncations_and_bytes_give_a_clear_error_or_a_good_read(kind, good, tmp_path):
    folder, name = good[kind]
    paths = variants(folder, name, tmp_path, seed=sum(map(ord, kind)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "3"}
    p = subprocess.run([sys.executable, "-c", DRIVER, kind, *map(str, paths)], capture_output=True, text=True,
                       errors="replace", env=env, timeout=600, cwd=REPO)  # C libraries log raw bytes to stderr
    assert p.returncode == 0, f"{kind}: reader died (status {p.returncode}):\n{p.stderr[-2000:]}"
    lines = p.stdout.splitlines()
    assert len(lines) == len(paths), p.stderr[-2000:]
    outcomes = [line.split(" ", 2) for line in lines]
    # the empty file can never be read: it must be a clear error naming the file
    status, path, *msg = outcomes[0]
    assert status == "error" and msg and (path in msg[0] or Path(name).name in msg[0]), (kind, status, msg)
    if kind != "params":  # a prefix of a YAML file is often YAML: load_params reads it, stages then reject it
        assert sum(o[0] == "error" for o in outcomes) >= len(paths) - 2, outcomes
