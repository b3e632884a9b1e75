"""quantize: INT8 post-training quantization of every exported model, gated on the FP32 -> INT8 accuracy drop.

Reads params `quantize`, trained dirs MODELS (comma-separated; torch ones feed INC), EXPORT/<name>/model.onnx,
DATA/val (calibration) and DATA/test + REAL/*/ (test sets, as in `evaluate`). Writes OUT/<name>/<backend>/
(inc: model.pt2, openvino: model.xml/.bin, onnx_qdq: model.onnx; each with meta.json) and REPORT
(reports/quantize.json: {name: {backend: {accuracy_fp32, accuracy_int8, bytes, sets}}}), accuracies as fractions
(synth test; `sets` has every test set). Fails when any backend loses more than `max_accuracy_drop` (a fraction
of words) on a `gate_sets` test set.
"""

from pathlib import Path

from tqdm import tqdm

from wordrec.data.evalsets import calibration_images, test_sets
from wordrec.data.preprocess import prepare_batch
from wordrec.errors import DataError
from wordrec.infer.recognizer import Recognizer
from wordrec.infer.runners import OrtRunner, OvRunner, TorchRunner
from wordrec.io import atomic_dir, write_json
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.config import section
from wordrec.pipeline.gates import quantize_gate
from wordrec.pipeline.metrics import score
from wordrec.pipeline.stage import stage_main
from wordrec.post.export_onnx import model_dirs
from wordrec.post.quant import inc_ptq, nncf_ptq


def _quantize(backend, c, model_dir, meta: ModelMeta, onnx_path, calib, dest: Path):
    """-> (fp32 runner, int8 runner, int8 artefact path, bytes)."""
    dest.mkdir()
    nn = {"preset": c.nncf.preset, "fast_bias_correction": bool(c.nncf.fast_bias_correction),
          "float_first_conv": bool(c.float_first_conv)}
    if backend == "inc":
        module = TorchRunner.from_dir(model_dir, meta).module
        q = inc_ptq.quantize(module, calib, c.inc.batch, bool(c.float_first_conv))
        path = inc_ptq.save(q, calib[:2], dest / "model.pt2")
        return TorchRunner(module, c.threads), TorchRunner(q, c.threads), path, path.stat().st_size
    if backend == "openvino":
        path = nncf_ptq.to_openvino_int8(onnx_path, dest / "model.xml", calib, **nn,
                                         ignored_types=list(c.nncf.openvino_ignored_types))
        return (OvRunner(onnx_path, c.threads, precision="f32"),
                OvRunner(path, c.threads, precision=c.openvino_precision), path, nncf_ptq.ir_bytes(path))
    path = nncf_ptq.to_onnx_qdq(onnx_path, dest / "model.onnx", calib, **nn)
    return OrtRunner(onnx_path, c.threads), OrtRunner(path, c.threads), path, path.stat().st_size


def quantize_model(c, model_dir: Path, export_dir: Path, sets, calib_images, dest: Path) -> dict:
    meta = ModelMeta.load(export_dir)
    onnx_path = export_dir / "model.onnx"
    calib = prepare_batch(calib_images, meta.input)
    xs = {name: (prepare_batch(images, meta.input), labels) for name, (images, labels) in sets.items()}
    out = {}
    for backend in c.backends:
        if backend == "inc" and meta.framework != "torch":
            continue  # INC's PT2E path is torch-only; Paddle models are covered through their ONNX
        fp32, int8, path, size = _quantize(backend, c, model_dir, meta, onnx_path, calib, dest / backend)
        q = {"backend": backend, "precision": "int8", "calibration": dict(c.calibration)}
        if backend == "openvino":  # read back (runners.ov_precision) so the IR runs as it was measured here
            q["openvino_precision"] = c.openvino_precision
        meta.with_section("quantize", q).save(path.parent)
        accs = {}
        for set_name, (x, labels) in tqdm(xs.items(), desc=f"{meta.name} {backend}", leave=False):
            accs[set_name] = {prec: score([t for t, _ in Recognizer(meta, r).predict_tensors(x, c.batch)], labels,
                                          meta.charset)["accuracy"] for prec, r in (("fp32", fp32), ("int8", int8))}
        out[backend] = {"accuracy_fp32": accs["synth_test"]["fp32"], "accuracy_int8": accs["synth_test"]["int8"],
                        "bytes": size, "sets": accs}
        print(f"quantize {meta.name} {backend}: {accs}")
    return out


def run(cfg, inputs, outputs):
    c = section(cfg, "quantize")
    sets = test_sets(inputs["data"], inputs.get("real"), c.n_test)
    calib_images = calibration_images(inputs["data"], c.calibration.n_images, c.calibration.mode)
    report = {}
    with atomic_dir(outputs["out"]) as tmp:
        for model_dir in model_dirs(inputs["models"]):
            name = ModelMeta.load(model_dir).name
            export_dir = Path(inputs["export"]) / name
            if not (export_dir / "model.onnx").is_file():
                raise DataError(f"{export_dir}/model.onnx: not found (run the export stage for {model_dir})")
            (tmp / name).mkdir()
            report[name] = quantize_model(c, model_dir, export_dir, sets, calib_images, tmp / name)
        quantize_gate(report, c.gate_sets, c.max_accuracy_drop)
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"models": "comma-separated trained model dirs", "export": "export dir (models/export)",
                "data": "synth dataset dir (val/ calibrates, test/ evaluates)", "real": "dir of real LMDBs"},
        outputs={"out": "INT8 models dir (models/quant)", "report": "metrics JSON"},
    ))
