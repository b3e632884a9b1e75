"""export: every trained model -> models/export/<name>/{model.onnx, meta.json}, simplified, checked, parity-gated.

Reads params `export`, the trained model dirs MODELS (comma-separated; the name comes from each meta.json) and
DATA/test (parity images); writes OUT/<name>/ and REPORT (reports/export.json:
{name: {max_abs_diff, text_agreement, onnx_bytes, nodes}}). The stage fails when a model's ONNX output differs
from the framework's beyond `parity.max_abs_diff` or its decoded texts agree on fewer than `min_text_agreement`.
"""

import shutil
from pathlib import Path

from wordrec.data.evalsets import load_split
from wordrec.data.preprocess import prepare_batch
from wordrec.errors import ConfigError
from wordrec.infer.runners import OrtRunner, PaddleRunner, TorchRunner
from wordrec.io import atomic_dir, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import section
from wordrec.pipeline.stage import stage_main
from wordrec.pipeline.gates import parity_gate
from wordrec.post.export_onnx import check_onnx, export_torch, model_dirs, node_count, parity, probs


def export_one(c, model_dir: Path, dest: Path, images) -> tuple[str, dict]:
    meta = ModelMeta.load(model_dir)
    x = prepare_batch(images, meta.input)
    onnx_path = dest / "model.onnx"
    if meta.framework == "torch":
        ref = TorchRunner.from_dir(model_dir, meta, c.threads)
        export_torch(ref.module, meta, onnx_path, int(c.opset))
    elif meta.framework == "paddle":
        from wordrec.models.paddle_rec.export import to_onnx  # Paddle is heavy: only when a Paddle model exports

        ref = PaddleRunner(model_dir, meta, c.threads)
        to_onnx(model_dir, meta, onnx_path)
    else:
        raise ConfigError(f"{model_dir}: framework {meta.framework!r} has nothing to export (already ONNX)")
    model = check_onnx(onnx_path, meta)
    facts = parity(probs(ref, x, c.parity.batch), probs(OrtRunner(onnx_path, c.threads), x, c.parity.batch),
                   meta.charset)
    parity_gate(facts, model_dir, c.parity.max_abs_diff, c.parity.min_text_agreement)
    facts.update(onnx_bytes=onnx_path.stat().st_size, nodes=node_count(model))
    meta.with_section("export", {"source": str(model_dir), "opset": int(c.opset), "parity_images": len(x),
                                 **facts}).save(dest)
    print(f"export {meta.name}: {facts}")
    return meta.name, facts


def run(cfg, inputs, outputs):
    c = section(cfg, "export")
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
