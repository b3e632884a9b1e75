"""quantize: INT8 post-training quantization of every exported model, gated on the FP32 -> INT8 accuracy drop.

Reads params `quantize`, trained dirs MODELS (comma-separated; torch ones feed INC), EXPORT/<name>/model.onnx,
DATA/val (calibration) and DATA/test + REAL/*/ (test sets, as in `evaluate`), and optionally PRETRAINED/<name>/
(the `pretrained` stage's imports: their model.onnx is the FP32 ONNX; params `quantize.pretrained` say which
backends, test sets, metric and gate apply to them, and why a backend is skipped). Writes OUT/<name>/<backend>/
(inc: model.pt2, openvino: model.xml/.bin, onnx_qdq: model.onnx; each with meta.json) and REPORT
(reports/quantize.json: {name: {backend: {accuracy_fp32, accuracy_int8, set, metric, bytes, sets}}} or
{backend: {skipped: reason}}), accuracies as fractions (`set`: synth test for trained models, the first of
`quantize.pretrained.sets` for imported ones; `sets` has every measured set). Where `metric` is not
accuracy_alnum_ci (trained models: `accuracy`, in their charset), the entry also has accuracy_alnum_ci:
{accuracy_fp32, accuracy_int8, sets}, the same figures in that metric (not gated). Fails when any backend loses more
than `max_accuracy_drop` (a fraction of words) on a `gate_sets` test set (imported models: `quantize.pretrained`'s
bound and sets).
"""

import time
from pathlib import Path

from tqdm import tqdm

from wordrec.data.evalsets import calibration_images, load_split, test_sets
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
from wordrec.post.export_onnx import model_dirs, pretrained_dirs
from wordrec.post.quant import inc_ptq, nncf_ptq


ALNUM_CI = "accuracy_alnum_ci"


def nncf_settings(c, name: str | None = None, imported: bool = False) -> dict:
    """NNCF keyword arguments: quantize.nncf and float_first_conv, then the model's own overrides: an imported
    model's in quantize.pretrained.nncf.<name>, a trained one's in quantize.model_nncf.<name>."""
    nn = {"preset": c.nncf.preset, "fast_bias_correction": bool(c.nncf.fast_bias_correction),
          "float_first_conv": bool(c.float_first_conv)}
    if name is not None:
        nn.update((c.pretrained.nncf if imported else c.get("model_nncf") or {}).get(name) or {})
    return {k: (list(v) if k == "ignored_types" else v) for k, v in nn.items()}


def _quantize(backend, c, model_dir, meta: ModelMeta, onnx_path, calib, dest: Path, nn: dict):
    """-> (fp32 runner, int8 runner, int8 artefact path, bytes)."""
    dest.mkdir()
    if backend == "inc":
        module = TorchRunner.from_dir(model_dir, meta).module
        q = inc_ptq.quantize(module, calib, c.inc.batch, bool(c.float_first_conv))
        path = inc_ptq.save(q, calib[:2], dest / "model.pt2")
        return TorchRunner(module, c.threads), TorchRunner(q, c.threads), path, path.stat().st_size
    if backend == "openvino":
        ov_nn = {**nn, "ignored_types": list(c.nncf.openvino_ignored_types) + nn.get("ignored_types", [])}
        ov_nn.pop("int8_residuals", None)  # a QDQ-graph pass for the MCU path (nncf_ptq.to_onnx_qdq)
        path = nncf_ptq.to_openvino_int8(onnx_path, dest / "model.xml", calib, **ov_nn)
        return (OvRunner(onnx_path, c.threads, precision="f32"),
                OvRunner(path, c.threads, precision=c.openvino_precision), path, nncf_ptq.ir_bytes(path))
    path = nncf_ptq.to_onnx_qdq(onnx_path, dest / "model.onnx", calib, **nn)
    return OrtRunner(onnx_path, c.threads), OrtRunner(path, c.threads), path, path.stat().st_size


def quantize_model(c, model_dir: Path, export_dir: Path, sets, calib_images, dest: Path, imported: bool = False,
                   ) -> dict:
    """Trained model (`imported` False: c.backends, metric `accuracy`, report set synth_test) or imported one
    (c.pretrained's backends, skips and metric; report set = the first of its sets)."""
    meta = ModelMeta.load(export_dir)
    onnx_path = export_dir / "model.onnx"
    calib = prepare_batch(calib_images, meta.input)
    xs = {name: (prepare_batch(images, meta.input), labels) for name, (images, labels) in sets.items()}
    backends, metric = (c.pretrained.backends, c.pretrained.metric) if imported else (c.backends, "accuracy")
    main_set = next(iter(sets)) if imported else "synth_test"
    nn = nncf_settings(c, meta.name, imported)
    out = {}
    skip = c.pretrained.skip if imported else (c.get("model_skip") or {}).get(meta.name) or {}
    for backend in backends:
        if backend in skip:
            out[backend] = {"skipped": skip[backend]}
            print(f"quantize {meta.name} {backend}: skipped: {skip[backend]}")
            continue
        if backend == "inc" and meta.framework != "torch":
            continue  # INC's PT2E path is torch-only; Paddle models are covered through their ONNX
        t0 = time.perf_counter()
        fp32, int8, path, size = _quantize(backend, c, model_dir, meta, onnx_path, calib, dest / backend, nn)
        seconds = time.perf_counter() - t0
        q = {"backend": backend, "precision": "int8", "calibration": {**c.calibration, "n_images": len(calib)}}
        q["nncf"] = nn
        if backend == "openvino":  # read back (runners.ov_precision) so the IR runs as it was measured here
            q["openvino_precision"] = c.openvino_precision
        meta.with_section("quantize", q).save(path.parent)
        scores = {}
        for set_name, (x, labels) in tqdm(xs.items(), desc=f"{meta.name} {backend}", leave=False):
            scores[set_name] = {prec: score([t for t, _ in Recognizer(meta, r).predict_tensors(x, c.batch)], labels,
                                            meta.charset) for prec, r in (("fp32", fp32), ("int8", int8))}
        accs = {s: {prec: v[metric] for prec, v in per.items()} for s, per in scores.items()}
        out[backend] = {"accuracy_fp32": accs[main_set]["fp32"], "accuracy_int8": accs[main_set]["int8"],
                        "set": main_set, "metric": metric, "bytes": size, "sets": accs,
                        "quantize_s": round(seconds, 1)}
        if metric != ALNUM_CI:
            # the in-charset figure is exact-case for `en` charsets (svtr3), while IIIT5K's labels are
            # case-insensitive in practice and the zoo/board compare models in alnum-ci: record that too, in the
            # imported entries' shape; the gate stays on `metric`
            ci = {s: {prec: v[ALNUM_CI] for prec, v in per.items()} for s, per in scores.items()}
            out[backend][ALNUM_CI] = {"accuracy_fp32": ci[main_set]["fp32"], "accuracy_int8": ci[main_set]["int8"],
                                      "sets": ci}
        print(f"quantize {meta.name} {backend}: {accs}")
    return out


def pretrained_sets(c, real, data) -> tuple[dict, list[str]]:
    """({set: (images, labels)}, gate sets) for imported models: quantize.pretrained.sets under REAL. The real
    sets exist only where ../shared does (developer machines, CI's default runs), and the pipeline must run
    without them: when none is there, the imports are measured and gated on the synthetic test split instead
    (each report entry names its set). Some present and some missing is a mistake and fails."""
    n = c.pretrained.n_test
    paths = {name: Path(real or "") / name for name in c.pretrained.sets}
    present = {name: p for name, p in paths.items() if (p / "data.mdb").is_file()}
    if not present:
        print(f"quantize: no real set of {list(paths)} under {real}: imported models measured on synth_test")
        return {"synth_test": load_split(Path(data) / "test", n)}, ["synth_test"]
    missing = sorted(set(paths) - set(present))
    if missing:
        raise DataError(f"{paths[missing[0]]}: quantize.pretrained.sets names {missing[0]!r}, but there is no such "
                        "LMDB (pass --real data/real)")
    return {name: load_split(p, n) for name, p in present.items()}, list(c.pretrained.gate_sets)


def run(cfg, inputs, outputs):
    c = section(cfg, "quantize")
    imported = pretrained_dirs(inputs.get("pretrained"))
    models = model_dirs(inputs["models"]) if inputs.get("models") else []
    if not models and not imported:
        raise DataError("nothing to quantize: give --models and/or --pretrained")
    sets = test_sets(inputs["data"], inputs.get("real"), c.n_test) if models else {}
    p_sets, p_gate = pretrained_sets(c, inputs.get("real"), inputs["data"]) if imported else ({}, [])
    calib_images = calibration_images(inputs["data"], c.calibration.n_images, c.calibration.mode)
    # imported models: their own count of the same synth val images (first N, same mode)
    p_calib = calibration_images(inputs["data"], c.pretrained.n_calibration, c.calibration.mode) if imported else []
    report = {}
    with atomic_dir(outputs["out"]) as tmp:
        for model_dir in models:
            name = ModelMeta.load(model_dir).name
            export_dir = Path(inputs["export"]) / name
            if not (export_dir / "model.onnx").is_file():
                raise DataError(f"{export_dir}/model.onnx: not found (run the export stage for {model_dir})")
            (tmp / name).mkdir()
            report[name] = quantize_model(c, model_dir, export_dir, sets, calib_images, tmp / name)
        trained = dict(report)
        for model_dir in imported:
            name = ModelMeta.load(model_dir).name
            if name in report:
                raise DataError(f"{model_dir}: model name {name!r} is also a trained model's")
            (tmp / name).mkdir()
            report[name] = quantize_model(c, model_dir, model_dir, p_sets, p_calib, tmp / name, imported=True)
        quantize_gate(trained, c.gate_sets, c.max_accuracy_drop)
        quantize_gate({m: r for m, r in report.items() if m not in trained}, p_gate,
                      c.pretrained.max_accuracy_drop, "quantize.pretrained.max_accuracy_drop")
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"models": "comma-separated trained model dirs", "export": "export dir (models/export)",
                "data": "synth dataset dir (val/ calibrates, test/ evaluates)", "real": "dir of real LMDBs",
                "pretrained": "imported model dirs (models/pretrained; their model.onnx is the FP32 ONNX)"},
        outputs={"out": "INT8 models dir (models/quant)", "report": "metrics JSON"},
    ))
