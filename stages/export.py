"""export: every trained model -> models/export/<name>/{model.onnx, meta.json}, simplified, checked, parity-gated.

Reads params `export`, the trained model dirs MODELS (comma-separated; the name comes from each meta.json) and
DATA/test (parity images); writes OUT/<name>/ and REPORT (reports/export.json:
{name: {max_abs_diff, text_agreement, onnx_bytes, nodes}}). The stage fails when a model's ONNX output differs
from the framework's beyond `parity.max_abs_diff` or its decoded texts agree on fewer than `min_text_agreement`.
"""

import shutil
from pathlib import Path

from wordrec.config import check_keys
from wordrec.errors import ConfigError, DataError
from wordrec.evalsets import load_split, tensors
from wordrec.export_onnx import (check_onnx, export_paddle, export_torch, framework_of, node_count, parity,
                                 simplify)
from wordrec.io import atomic_dir, write_json
from wordrec.runtimes import OrtRunner, TorchRunner, charset_of, load_torch, read_meta
from wordrec.stage import stage_main

KEYS = {"opset", "threads", "parity"}
PARITY_KEYS = {"n_images", "batch", "max_abs_diff", "min_text_agreement"}


def model_dirs(spec: str) -> list[Path]:
    dirs = [Path(p) for p in str(spec).split(",") if p.strip()]
    if not dirs:
        raise ConfigError("--models: expected a comma-separated list of trained model dirs")
    return dirs


def _probs(runner, x, batch):
    import numpy as np

    return np.concatenate([runner.probs(x[i:i + batch]) for i in range(0, len(x), batch)])


def export_one(c, model_dir: Path, dest: Path, images) -> tuple[str, dict]:
    meta = read_meta(model_dir)
    x = tensors(images, meta)
    onnx_path = dest / "model.onnx"
    if framework_of(model_dir) == "torch":
        export_torch(model_dir, onnx_path, int(c.opset))
        simplify(onnx_path)
        check_onnx(onnx_path, meta)
        ref = _probs(TorchRunner(load_torch(model_dir)[0], c.threads), x, c.parity.batch)
        facts = parity(ref, _probs(OrtRunner(onnx_path, c.threads), x, c.parity.batch), charset_of(meta))
    else:
        # to_onnx preprocesses RGB crops itself and runs its own parity gate against the Paddle predictor.
        got = export_paddle(model_dir, onnx_path, images, float(c.parity.max_abs_diff))
        check_onnx(onnx_path, meta)
        facts = {k: float(got[k]) for k in ("max_abs_diff", "text_agreement")}
    name = meta["name"]
    if facts["max_abs_diff"] > c.parity.max_abs_diff:
        raise DataError(f"{model_dir}: ONNX parity failed: max |diff| {facts['max_abs_diff']:.3g} > "
                        f"export.parity.max_abs_diff {c.parity.max_abs_diff}")
    if facts["text_agreement"] < c.parity.min_text_agreement:
        raise DataError(f"{model_dir}: ONNX parity failed: decoded texts agree on {facts['text_agreement']:.3f} "
                        f"< export.parity.min_text_agreement {c.parity.min_text_agreement}")
    facts.update(onnx_bytes=onnx_path.stat().st_size, nodes=node_count(onnx_path))
    meta["export"] = {"source": str(model_dir), "opset": int(c.opset), "parity_images": len(x), **facts}
    write_json(dest / "meta.json", meta)
    print(f"export {name}: {facts}")
    return name, facts


def run(cfg, inputs, outputs):
    c = cfg.export
    check_keys(c, KEYS, "params export")
    check_keys(c.parity, PARITY_KEYS, "params export.parity")
    images, _ = load_split(Path(inputs["data"]) / "test", c.parity.n_images)
    report = {}
    with atomic_dir(outputs["out"]) as tmp:
        for model_dir in model_dirs(inputs["models"]):
            staging = tmp / f".{model_dir.name}"
            staging.mkdir()
            name, facts = export_one(c, model_dir, staging, images)
            if name in report:
                raise ConfigError(f"--models: two model dirs are named {name!r} in their meta.json")
            shutil.move(staging, tmp / name)
            report[name] = facts
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"models": "comma-separated trained model dirs", "data": "synth dataset dir (uses test/)"},
        outputs={"out": "export dir (models/export)", "report": "metrics JSON"},
    ))
