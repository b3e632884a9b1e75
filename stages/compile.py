"""compile: TVM-compile an exported ONNX recognizer for the host and for the Cortex-M55.

Reads MODEL/model.onnx + MODEL/meta.json (export stage), DATA (test LMDB, for the int8-weight gate) and params
`compile`; writes
OUT/device/ (TVM `c` kernels, weights as const arrays, the generated static-arena runner `wordrec_run` and
wordrec_model.h), OUT/host/model.so (host llvm Relax executable, used by `mcu` and `bench`), OUT/meta.json
(export meta + compile facts) and REPORT (reports/compile/<name>.json). Fails when the host module differs from
onnxruntime beyond compile.parity_tol, when int8 weight storage changes the decoded text on more than
compile.int8_check allows, or when the graph has ops TVM cannot import (e.g. LSTM).
"""

import json
import shutil
from pathlib import Path

from wordrec.charset import Charset
from wordrec.config import check_keys
from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir, write_json
from wordrec.stage import stage_main
from wordrec.tvm_mcu.compiler import WeightCheck, compile_onnx
from wordrec.tvm_mcu.host import load_images

KEYS = {"width", "threads", "seed", "parity_inputs", "parity_tol", "pad_in_arena", "weights", "int8_check", "targets"}


def load_meta(model_dir: Path) -> dict:
    path = model_dir / "meta.json"
    if not path.is_file():
        raise DataError(f"{path}: not found (expected the export stage's meta.json next to model.onnx)")
    meta = json.loads(path.read_text())
    inp = meta.get("input", {})
    for key in ("channels", "height", "width", "keep_ratio"):
        if key not in inp:
            raise DataError(f"{path}: input.{key} missing")
    if "charset" not in meta:
        raise DataError(f"{path}: charset missing")
    return meta


def run(cfg, inputs, outputs):
    c = cfg.compile
    check_keys(c, KEYS, "params compile")
    model_dir = Path(inputs["model"])
    meta = load_meta(model_dir)
    if int(c.width) < 0:
        raise ConfigError(f"compile.width: {c.width}, expected a pixel count (0 = the export's input.width)")
    width = int(c.width) or int(meta["input"]["width"])
    shape = [1, int(meta["input"]["channels"]), int(meta["input"]["height"]), width]
    check = None
    if inputs.get("data") and c.weights != "float32":
        x, _ = load_images(Path(inputs["data"]), int(c.int8_check.images), {**meta["input"], "width": width},
                           "compile.int8_check.images")
        check = WeightCheck(x, Charset.from_spec(meta["charset"]), float(c.int8_check.min_text_agreement))

    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:
        facts = compile_onnx(model_dir / "model.onnx", shape, tmp, threads=int(c.threads),
                             parity_tol=float(c.parity_tol), parity_inputs=int(c.parity_inputs), seed=int(c.seed),
                             pad_in_arena=c.pad_in_arena, arena_target=int(c.targets.arena_bytes),
                             weights=str(c.weights), weight_target=int(c.targets.weight_bytes), check=check)
        facts["within_targets"] = bool(facts["arena_bytes"] <= c.targets.arena_bytes
                                       and facts["weight_bytes"] <= c.targets.weight_bytes)
        meta = {**meta, "input": {**meta["input"], "width": width}, "compile": facts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(model_dir / "model.onnx", tmp / "model.onnx")  # the parity reference travels along
    metrics = {"name": meta.get("name", model_dir.name), **facts}
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(run, doc=__doc__,
                                inputs={"model": "export dir (model.onnx + meta.json)",
                                        "data": "test LMDB (data/synth/test) for the int8-weight gate"},
                                outputs={"out": "compile dir", "report": "metrics JSON"}))
