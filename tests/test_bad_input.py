"""Bad-input matrix: every command-line entry point (the `wordrec-*` CLIs and every stage script, run as DVC runs
it) x the classes of bad input real life produces: missing, empty, truncated and garbage files, malformed JSON and
YAML, values of the wrong type or range, unknown keys, inconsistent model dirs.

Each case asserts: exit status 2, exactly one stderr line `error: ...` that names the file or key, no traceback
and no signal, and no output created. Stage scripts run as subprocesses (what `dvc repro` does), so this is slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from wordrec.data.charset import Charset
from wordrec.data.lmdb_io import encode_image, write_lmdb
from wordrec.models.meta import InputSpec, ModelMeta

pytestmark = pytest.mark.slow


@dataclass
class Case:
    entry: str  # "stage:<name>" or "cli:<module>"
    argv: list[str]
    expect: str  # a substring the one error line must contain (the file or key, and what was expected)
    outputs: list[str] = field(default_factory=list)  # paths (relative to the case dir) that must not appear


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """One folder of good and bad inputs shared by every case."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 100, 3), dtype=np.uint8) for _ in range(30)]
    samples = [(encode_image(im, ".png"), "word") for im in images]
    for split in ("train", "val", "test"):
        write_lmdb(root / "synth" / split, samples)
    write_lmdb(root / "trunc", samples)
    mdb = root / "trunc" / "data.mdb"
    with open(mdb, "r+b") as f:
        f.truncate(mdb.stat().st_size // 2)
    (root / "garbage_lmdb").mkdir()
    (root / "garbage_lmdb" / "data.mdb").write_bytes(os.urandom(9000))
    write_lmdb(root / "real_trunc" / "cut", samples)
    cut = root / "real_trunc" / "cut" / "data.mdb"
    with open(cut, "r+b") as f:
        f.truncate(cut.stat().st_size // 3)

    meta = ModelMeta("crnn", "torch", {"type": "crnn"}, Charset.from_spec("alnum_lower"),
                     InputSpec(1, 32, 100, False), {"train": {"val_accuracy": 0.5, "val_ned": 0.5, "batch_size": 8,
                                                              "lr": 1e-3, "epochs": 1}})
    for name, ckpt in (("cut_ckpt", os.urandom(3000)), ("no_ckpt", None)):
        d = root / "models" / name
        d.mkdir(parents=True)
        meta.save(d)
        if ckpt is not None:
            (d / "best.pt").write_bytes(ckpt)
    (root / "models" / "no_meta").mkdir()
    (root / "models" / "bad_json").mkdir()
    (root / "models" / "bad_json" / "meta.json").write_text('{"name": "crnn", ')
    (root / "models" / "half_meta").mkdir()
    (root / "models" / "half_meta" / "meta.json").write_text(json.dumps({"name": "crnn", "framework": "torch"}))
    onnx_dir = root / "models" / "garbage_onnx"
    onnx_dir.mkdir()
    meta.save(onnx_dir)
    (onnx_dir / "model.onnx").write_bytes(os.urandom(5000))
    (root / "models" / "train").mkdir()  # an empty models/train: evaluate finds no crnn there

    (root / "wheels_garbage").mkdir()
    for whl in ("rapidocr_onnxruntime-1.2.3-py3-none-any.whl", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                "rapidocr-3.10.0-py3-none-any.whl"):
        (root / "wheels_garbage" / whl).write_bytes(b"PK not really a wheel")

    (root / "bad.yaml").write_text("synth: [unclosed\n  - : :\n")
    (root / "list.yaml").write_text("- just\n- a list\n")
    (root / "empty.json").write_text("")
    (root / "garbage.json").write_text("{not json")
    subprocess.run([sys.executable, "-m", "wordrec.pipeline.config", "profile=smoke", "--out",
                    str(root / "params.yaml")], cwd=REPO, check=True, capture_output=True)

    (root / "crops").mkdir()
    import cv2

    cv2.imwrite(str(root / "crops" / "ok.png"), images[0])
    (root / "crops" / "labels.txt").write_text("ok.png\tword\n")
    (root / "crops_bad_line").mkdir()
    cv2.imwrite(str(root / "crops_bad_line" / "ok.png"), images[0])
    (root / "crops_bad_line" / "labels.txt").write_text("ok.png word without a tab\n")
    (root / "crops_missing").mkdir()
    (root / "crops_missing" / "labels.txt").write_text("gone.png\tword\n")
    (root / "crops_undecodable").mkdir()
    (root / "crops_undecodable" / "x.png").write_bytes(b"\x89PNG garbage")
    (root / "crops_undecodable" / "labels.txt").write_text("x.png\tword\n")
    (root / "crops_charset").mkdir()
    cv2.imwrite(str(root / "crops_charset" / "ok.png"), images[0])
    (root / "crops_charset" / "labels.txt").write_text("ok.png\twörd\n")
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.png").write_bytes(os.urandom(300))
    (root / "no_images").mkdir()
    return root


# --- stage scripts: argv as dvc.yaml gives it (paths relative to the `bad` folder, outputs under out/) ----------
S = {
    "synth": ["--out", "out/synth", "--report", "out/synth.json", "--plots", "out/synth_plots"],
    "pretrained": ["--wheels", "wheels_garbage", "--out", "out/pre", "--det-out", "out/det",
                   "--paddle-out", "out/pdl", "--report", "out/pre.json"],
    "train": ["--model", "crnn", "--data", "synth", "--out", "out/m", "--ckpt", "out/ck", "--plots", "out/p"],
    "evaluate": ["--models", "models/train", "--grid", "models/no_ckpt", "--pretrained", "no_images", "--data", "synth",
                 "--real", "none", "--report", "out/eval.json", "--plots", "out/ev"],
    "grid": ["--init", "models/no_ckpt", "--data", "synth", "--out", "out/grid", "--report", "out/grid.json",
             "--plots", "out/gp"],
    "export": ["--models", "models/cut_ckpt", "--data", "synth", "--out", "out/export", "--report", "out/export.json"],
    "quantize": ["--models", "models/cut_ckpt", "--export", "none", "--data", "synth", "--real", "none",
                 "--pretrained", "no_images", "--out", "out/quant", "--report", "out/quantize.json"],
    "bench": ["--models", "models/cut_ckpt", "--export", "none", "--quant", "none", "--compiled", "none",
              "--pretrained", "no_images", "--data", "synth", "--report", "out/bench.json", "--plots", "out/bench"],
    "compile": ["--model", "models/garbage_onnx", "--data", "synth/test", "--out", "out/c", "--report",
                "out/c.json"],
    "mcu": ["--compiled", "models/no_ckpt", "--data", "synth/test", "--out", "out/elf", "--report", "out/mcu.json",
            "--plots", "out/mp"],
    "board": ["--eval", "empty.json", "--quantize", "empty.json", "--bench", "empty.json", "--mcu", "empty.json",
              "--mcu-imported", "none", "--elfs", "none", "--elfs-int8", "none", "--out", "out/board", "--report", "out/board.json", "--zoo", "out/zoo.png"],
    "pages": ["--pretrained", "models", "--export", "none", "--detect", "none", "--quant", "none", "--report",
              "out/pages.json", "--plots", "out/pg"],
    "report": ["--synth", "empty.json", "--pretrained", "empty.json", "--eval", "empty.json", "--grid", "empty.json",
               "--export", "empty.json", "--quantize", "empty.json", "--bench", "empty.json", "--board", "empty.json", "--pages", "empty.json",
               "--mcu", "empty.json", "--mcu-imported", "none",
               "--mcu-out", "out/mcu.json", "--summary", "out/summary.md"],
}
# a section key of each stage's that takes a positive integer (wrong-type and range cases)
INT_KEY = {"synth": "synth.n_train", "train": "train.threads", "evaluate": "evaluate.batch_size",
           "grid": "grid.threads", "export": "export.parity.n_images", "quantize": "quantize.batch",
           "bench": "bench.batch", "compile": "compile.threads", "mcu": "mcu.images", "board": "board.budgets.flash_bytes",
           "pages": "pages.batch_size", "report": "report.samples"}


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def _outputs(argv: list[str]) -> list[str]:
    return [v for v in argv if v.startswith("out/")]


def stage_cases() -> list[Case]:
    cases = []
    for st, argv in S.items():
        outs = _outputs(argv)
        sec = "pretrained" if st == "pretrained" else INT_KEY[st].split(".")[0]
        cases += [
            Case(f"stage:{st}", ["--params", "nope.yaml", *argv], "nope.yaml: params file not found", outs),
            Case(f"stage:{st}", ["--params", "bad.yaml", *argv], "bad.yaml: not a valid params file", outs),
            Case(f"stage:{st}", ["--params", "list.yaml", *argv], "list.yaml: not a valid params file", outs),
            Case(f"stage:{st}", ["--params", "params.yaml", *argv, f"{sec}.bogus_key=1"],
                 f"unknown config key '{sec}.bogus_key'", outs),
            Case(f"stage:{st}", ["--params", "params.yaml", *argv, "no_equals_sign"], "expected key=value", outs),
        ]
        if st in INT_KEY:
            k = INT_KEY[st]
            cases += [
                Case(f"stage:{st}", ["--params", "params.yaml", *argv, f"{k}=abc"], f"params.yaml:{k}: ", outs),
                Case(f"stage:{st}", ["--params", "params.yaml", *argv, f"{k}=-5"], f"params.yaml:{k}: -5", outs),
                Case(f"stage:{st}", ["--params", "params.yaml", *argv, f"{k}=1.5"], f"params.yaml:{k}: ", outs),
            ]
    p = ["--params", "params.yaml"]
    more = [
        ("synth", p + S["synth"] + ["synth.fonts.dirs=[/nonexistent/fonts]"], "/nonexistent/fonts"),
        ("synth", p + S["synth"] + ["synth.fonts.dirs=[]"], "params.yaml:synth.fonts.dirs: empty"),
        ("synth", p + S["synth"] + ["synth.charset=file:/nonexistent/chars.txt"], "/nonexistent/chars.txt"),
        ("synth", p + S["synth"] + ["synth.text.word_lists=[/nonexistent/words]"], "/nonexistent/words"),
        ("synth", p + S["synth"] + ["synth.jpeg_quality=500"], "params.yaml:synth.jpeg_quality: 500"),
        ("pretrained", p + S["pretrained"], "sha256"),
        ("pretrained", p + _with(S["pretrained"], "--wheels", "nowheels"), "wheel not found"),
        ("pretrained", p + S["pretrained"] + ["pretrained.models=[ppocrv9]"], "imported model 'ppocrv9'"),
        ("train", p + _with(S["train"], "--data", "nodata"), "nodata/train: training data missing"),
        ("train", p + _with(S["train"], "--data", "trunc_synth"), "trunc_synth"),
        ("train", p + _with(S["train"], "--model", "nope"), "no model 'nope'"),
        ("train", p + S["train"] + ["train.models.crnn.input.height=40"], "train.models.crnn.input.height: 40"),
        ("train", p + S["train"] + ["train.models.crnn.input.width=4"], "train.models.crnn.input.width: 4"),
        ("train", p + S["train"] + ["train.models.crnn.batch_size=0"], "train.models.crnn.batch_size: 0"),
        ("train", p + S["train"] + ["train.init=models/cut_ckpt"], "best.pt: corrupt model file"),
        ("evaluate", p + S["evaluate"], "models/train/crnn: model not found"),
        ("evaluate", p + _with(S["evaluate"], "--grid", "models/no_meta"), "no_meta/meta.json: model metadata"),
        ("evaluate", p + _with(S["evaluate"], "--grid", "models/bad_json"), "bad_json/meta.json: not valid JSON"),
        ("evaluate", p + _with(S["evaluate"], "--grid", "models/half_meta"), "half_meta/meta.json: missing key"),
        ("evaluate", p + S["evaluate"] + ["evaluate.extra=[garbage_lmdb]"], "garbage_lmdb"),
        ("evaluate", p + _with(S["evaluate"], "--real", "real_trunc"), "real_trunc/cut/data.mdb: truncated LMDB"),
        ("grid", p + _with(S["grid"], "--init", "models/no_meta"), "no_meta/meta.json: model metadata"),
        ("grid", p + _with(S["grid"], "--init", "models/bad_json"), "bad_json/meta.json: not valid JSON"),
        ("grid", p + _with(S["grid"], "--data", "nodata"), "nodata"),
        ("grid", p + S["grid"] + ["grid.launcher=mpi"], "params.yaml:grid.launcher: 'mpi'"),
        ("grid", p + S["grid"] + ["grid.lr=[]"], "params.yaml:grid.lr"),
        ("export", p + S["export"], "cut_ckpt/best.pt: corrupt model file"),
        ("export", p + _with(S["export"], "--models", "models/no_ckpt"), "no_ckpt/best.pt: checkpoint not found"),
        ("export", p + _with(S["export"], "--models", "models/half_meta"), "half_meta/meta.json: missing key"),
        ("export", p + _with(S["export"], "--models", ","), "--models: expected a comma-separated list"),
        ("export", p + _with(S["export"], "--data", "garbage_synth"), "garbage_synth/test"),
        ("export", p + S["export"] + ["export.opset=11"], "params.yaml:export.opset: 11"),
        ("quantize", p + S["quantize"], "none/crnn/model.onnx: not found"),
        ("quantize", p + _with(S["quantize"], "--data", "trunc_synth"), "trunc_synth"),
        ("quantize", p + S["quantize"] + ["quantize.backends=[tflite]"], "params.yaml:quantize.backends"),
        ("quantize", p + S["quantize"] + ["quantize.max_accuracy_drop=50"], "quantize.max_accuracy_drop: 50"),
        ("bench", p + S["bench"], "none/crnn/model.onnx: not found"),
        ("bench", p + S["bench"] + ["bench.runtimes=[tensorrt]"], "params.yaml:bench.runtimes: unknown"),
        ("bench", p + _with(S["bench"], "--data", "nodata"), "nodata/test"),
        ("compile", p + S["compile"], "garbage_onnx/model.onnx"),
        ("compile", p + _with(S["compile"], "--model", "models/no_meta"), "no_meta/meta.json: model metadata"),
        ("compile", p + S["compile"] + ["compile.weights=int4"], "params.yaml:compile.weights: 'int4'"),
        ("mcu", p + S["mcu"], "no compile section"),
        ("mcu", p + _with(S["mcu"], "--compiled", "models/bad_json"), "bad_json/meta.json: not valid JSON"),
        ("mcu", p + S["mcu"] + ["mcu.runner=fpga"], "params.yaml:mcu.runner: 'fpga'"),
        ("board", p + S["board"], "empty.json: not valid JSON"),
        ("board", p + _with(S["board"], "--eval", "nope.json"), "nope.json: not found"),
        ("board", p + S["board"] + ["board.model="], "params.yaml:board.model: Incompatible value 'None'"),
        ("board", p + S["board"] + ["board.budgets.arena_bytes=-1"], "params.yaml:board.budgets.arena_bytes: -1"),
        ("pages", p + S["pages"] + ["pages.models=[nope]"],
         "pages.models: 'nope': expected an imported model dir or an exported model of ours, found neither "
         "models/nope nor none/nope/model.onnx"),
        ("pages", p + S["pages"] + ["pages.models=[no_meta]"], "no_meta/meta.json: model metadata not found"),
        ("pages", p + S["pages"] + ["pages.models=[garbage_onnx]", "pages.int8=[openvino]"],
         "none/garbage_onnx/openvino/model.xml: params.yaml:pages.int8 names openvino"),
        ("pages", p + S["pages"] + ["pages.models=[garbage_onnx]"], "none/meta.json: detector not found"),
        ("pages", p + S["pages"] + ["pages.int8=[tflite]"], "params.yaml:pages.int8: ['tflite']"),
        ("pages", p + S["pages"] + ["pages.n_documents=0", "pages.n_photos=0"], "params.yaml:pages.n_documents"),
        ("report", p + S["report"], "empty.json: not valid JSON"),
        ("report", p + _with(S["report"], "--eval", "garbage.json"), "empty.json: not valid JSON"),
        ("report", p + _with(S["report"], "--synth", "nope.json"), "nope.json: not found"),
    ]
    cases += [Case(f"stage:{st}", argv, expect, _outputs(argv)) for st, argv, expect in more]
    return cases


def cli_cases() -> list[Case]:
    pr, ocr, byod, chk = ("cli:wordrec.infer.predict", "cli:wordrec.ocr.cli", "cli:wordrec.data.byod",
                          "cli:wordrec.data.datacheck")
    return [
        Case(pr, ["models/nope", "crops/ok.png"], "models/nope: model not found"),
        Case(pr, ["models/no_meta", "crops/ok.png"], "no_meta/meta.json: model metadata not found"),
        Case(pr, ["models/bad_json", "crops/ok.png"], "bad_json/meta.json: not valid JSON"),
        Case(pr, ["models/half_meta", "crops/ok.png"], "half_meta/meta.json: missing key"),
        Case(pr, ["models/cut_ckpt", "crops/ok.png"], "cut_ckpt/best.pt: corrupt model file"),
        Case(pr, ["models/no_ckpt", "crops/ok.png"], "no_ckpt/best.pt: checkpoint not found"),
        Case(pr, ["models/garbage_onnx/model.onnx", "crops/ok.png"], "model.onnx: onnxruntime cannot load"),
        Case(pr, ["crops/labels.txt", "crops/ok.png"], "labels.txt: not a model dir"),
        Case(pr, ["models/cut_ckpt", "crops/ok.png", "--batch-size", "0"], "--batch-size: 0"),
        Case(pr, ["models/cut_ckpt", "crops/ok.png", "--threads", "-2"], "--threads: -2"),
        Case(ocr, ["crops/ok.png", "--model", "models/nope"], "models/nope: model not found"),
        Case(ocr, ["crops/ok.png", "--model", "models/cut_ckpt"], "cut_ckpt/best.pt: corrupt model file"),
        Case(ocr, ["crops/ok.png", "--model", "models/bad_json"], "bad_json/meta.json: not valid JSON"),
        Case(ocr, ["crops/ok.png", "--model", "models/no_meta"], "no_meta/meta.json: model metadata not found"),
        Case(ocr, ["crops/ok.png", "--model", "models/no_ckpt", "--det", "garbage.png"], "garbage.png"),
        Case(ocr, ["crops/ok.png", "--model", "models/no_ckpt", "--threads", "0"], "--threads: 0"),
        Case(byod, ["nope_dir", "out/lmdb"], "nope_dir", ["out/lmdb"]),
        Case(byod, ["no_images", "out/lmdb"], "no_images/labels.txt", ["out/lmdb"]),
        Case(byod, ["crops_bad_line", "out/lmdb"], "crops_bad_line/labels.txt:1", ["out/lmdb"]),
        Case(byod, ["crops_missing", "out/lmdb"], "gone.png", ["out/lmdb"]),
        Case(byod, ["crops_undecodable", "out/lmdb"], "x.png", ["out/lmdb"]),
        Case(byod, ["crops_charset", "out/lmdb", "--charset", "alnum"], "'ö'", ["out/lmdb"]),
        Case(byod, ["crops", "out/lmdb", "--charset", "file:/nonexistent.txt"], "/nonexistent.txt", ["out/lmdb"]),
        Case(byod, ["crops", "out/lmdb", "--charset", "aab"], "duplicate characters", ["out/lmdb"]),
        Case(chk, ["nope_dir"], "nope_dir: not an LMDB dataset"),
        Case(chk, ["crops"], "crops: not an LMDB dataset"),
        Case(chk, ["trunc"], "trunc/data.mdb: truncated LMDB"),
        Case(chk, ["garbage_lmdb"], "garbage_lmdb/data.mdb: corrupt LMDB"),
        Case(chk, ["synth/train", "--charset", "file:/nonexistent.txt"], "/nonexistent.txt"),
        Case(chk, ["synth/train", "--out", "out/check", "--charset", "aab"], "duplicate characters", ["out/check"]),
        Case("cli:wordrec.pipeline.config", ["nosuchgroup=x", "--out", "out/params.yaml"], "nosuchgroup",
             ["out/params.yaml"]),
        Case("cli:wordrec.pipeline.config", ["synth.n_trian=3", "--out", "out/params.yaml"], "n_trian",
             ["out/params.yaml"]),
        Case("cli:wordrec.pipeline.config", ["profile=gigantic", "--out", "out/params.yaml"], "gigantic",
             ["out/params.yaml"]),
    ]


CASES = stage_cases() + cli_cases()
ENTRY_POINTS = sorted({c.entry for c in CASES})


def test_the_matrix_is_the_size_the_readme_states():
    assert len(ENTRY_POINTS) >= 12 and len(CASES) >= 150, (len(ENTRY_POINTS), len(CASES))


@pytest.fixture(scope="module")
def prepared(bad):
    # inputs some cases need beside the shared ones: a synth folder whose train split is truncated / garbage
    import shutil

    for name, src in (("trunc_synth", "trunc"), ("garbage_synth", "garbage_lmdb")):
        d = bad / name
        if not d.exists():
            shutil.copytree(bad / "synth", d)
            for split in ("train", "test"):
                shutil.rmtree(d / split)
                shutil.copytree(bad / src, d / split)
    return bad


@pytest.mark.parametrize("case", CASES, ids=[f"{c.entry}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_clear_line_and_writes_nothing(case, prepared, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    for p in prepared.iterdir():  # each case gets its own view of the inputs (outputs land under work/out)
        (work / p.name).symlink_to(p)
    kind, name = case.entry.split(":")
    # src first: the checkout under test, not whichever checkout the venv has installed editable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "stages" / f"{name}.py")] if kind == "stage" else [sys.executable, "-m", name]
    p = subprocess.run([*cmd, *case.argv], cwd=work, capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not _noise(ln)]
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    assert "Traceback" not in p.stderr, p.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-1500:]
    assert case.expect in lines[0], lines[0]
    for out in case.outputs:
        assert not (work / out).exists(), f"{out} was written"


def _noise(line: str) -> bool:
    """Library chatter on stderr that is not the program's message (progress bars, import-time warnings)."""
    return any(s in line for s in ("warnings.warn", "UserWarning", "ccache", "%|", "it/s]", "img/s]"))
