"""compile: TVM-compile an exported ONNX recognizer for the host and for the Cortex-M55.

Reads MODEL/model.onnx + MODEL/meta.json (export stage), DATA (test LMDB, for the int8-weight gate) and params
`compile`; writes
OUT/device/ (TVM `c` kernels, weights as const arrays, the generated static-arena runner `wordrec_run` and
wordrec_model.h), OUT/host/model.so (host llvm Relax executable, used by `mcu` and `bench`), OUT/meta.json
(export meta + compile facts) and REPORT (reports/compile/<name>.json). Fails when the host module differs from
onnxruntime beyond compile.parity_tol, when int8 weight storage changes the decoded text on more than
compile.int8_check allows, or when the graph has ops TVM cannot import (e.g. LSTM).
"""

import shutil
from pathlib import Path

from wordrec.data.evalsets import load_split
from wordrec.data.preprocess import prepare_batch
from wordrec.device.compile.compiler import KERNELS, QdqCheck, WeightCheck, compile_onnx, compile_qdq
from wordrec.errors import ConfigError
from wordrec.io import atomic_dir, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import section
from wordrec.pipeline.stage import stage_main


def int8_check_set(c, inputs) -> tuple[list, list, str]:
    """(images, labels, name) for the int8-kernel gates: compile.int8_kernels.set under REAL when it exists, else
    DATA (synth test: a fresh clone has no real sets, and the pipeline must run without them)."""
    k = c.int8_kernels
    real = Path(inputs["real"]) / str(k.set) if inputs.get("real") else None
    path = real if real is not None and real.exists() else Path(inputs["data"])
    images, labels = load_split(path, int(k.images), "compile.int8_kernels.images")
    return images, labels, str(path)


def run(cfg, inputs, outputs):
    c = section(cfg, "compile")
    if str(c.kernels) not in KERNELS:
        raise ConfigError(f"compile.kernels: {c.kernels!r}, expected one of {list(KERNELS)}")
    if c.kernels == "int8":
        return run_int8(c, inputs, outputs)
    model_dir = Path(inputs["model"])
    meta = ModelMeta.load(model_dir)
    meta = meta.with_input(width=int(c.width) or meta.input.width)
    shape = list(meta.input.shape(1))
    check = None
    if inputs.get("data") and c.weights != "float32":
        images, _ = load_split(inputs["data"], int(c.int8_check.images), "compile.int8_check.images")
        check = WeightCheck(prepare_batch(images, meta.input), meta.charset, float(c.int8_check.min_text_agreement))

    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:
        facts = compile_onnx(model_dir / "model.onnx", shape, tmp, threads=int(c.threads),
                             parity_tol=float(c.parity_tol), parity_inputs=int(c.parity_inputs), seed=int(c.seed),
                             pad_in_arena=c.pad_in_arena, arena_target=int(c.targets.arena_bytes),
                             weights=str(c.weights), weight_target=int(c.targets.weight_bytes), check=check)
        _finish(c, meta, facts, model_dir, tmp)
    metrics = {"name": meta.name, **facts}
    write_json(outputs["report"], metrics)
    return metrics


WALL_CLOCK = ("seconds", "compile_seconds")


def model_facts(facts: dict) -> dict:
    """The compile facts that go into OUT/meta.json: all but the wall-clock times (those go to the report only;
    in the compiled directory they made every rerun a new output, so mcu and bench reran on identical builds)."""
    return {k: v for k, v in facts.items() if k not in WALL_CLOCK}


def _finish(c, meta, facts: dict, model_dir: Path, tmp: Path) -> None:
    """Both build kinds: the targets verdict into facts, OUT/meta.json, and the ONNX the build came from (the
    parity reference travels along)."""
    facts["within_targets"] = bool(facts["arena_bytes"] <= c.targets.arena_bytes
                                   and facts["weight_bytes"] <= c.targets.weight_bytes)
    meta.with_section("compile", model_facts(facts)).save(tmp)
    shutil.copyfile(model_dir / "model.onnx", tmp / "model.onnx")


def run_int8(c, inputs, outputs):
    """QDQ ONNX (MODEL = models/quant/<name>/onnx_qdq) with its quantized convs on the wrnn int8 kernels."""
    model_dir = Path(inputs["model"])
    meta = ModelMeta.load(model_dir)
    meta = meta.with_input(width=int(c.width) or meta.input.width)
    images, labels, where = int8_check_set(c, inputs)
    fp32 = Path(inputs["fp32"]) / "model.onnx" if inputs.get("fp32") else None
    check = QdqCheck(prepare_batch(images, meta.input), labels, meta.charset,
                     float(c.int8_kernels.min_text_agreement), fp32)
    out = Path(outputs["out"])
    with atomic_dir(out) as tmp:
        facts = compile_qdq(model_dir / "model.onnx", list(meta.input.shape(1)), tmp, threads=int(c.threads),
                            check=check, stem_strips=int(c.int8_kernels.stem_strips))
        facts["check_set"] = where
        _finish(c, meta, facts, model_dir, tmp)
    metrics = {"name": meta.name, **facts}
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(stage_main(run, doc=__doc__,
                                inputs={"model": "export dir (model.onnx + meta.json)",
                                        "data": "test LMDB (data/synth/test) for the int8-weight gate",
                                        "real": "(optional) kernels=int8: dir of real LMDBs (DATA when absent)",
                                        "fp32": "(optional) kernels=int8: the float export dir, for its accuracy "
                                                "beside the int8 one"},
                                outputs={"out": "compile dir", "report": "metrics JSON"}))
