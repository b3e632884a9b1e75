"""Paddle inference model (jit.save + PaddleOCR `inference.yml`) and its ONNX export with a parity gate."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

from wordrec.charset import Charset, ctc_greedy_decode
from wordrec.errors import DataError

INPUT_NAME = "x"


def save_inference(model, out: Path, charset: Charset, inp) -> None:
    """`out/inference.json|.pdiparams|.yml`: what PaddleOCR 3.x `TextRecognition(model_dir=out)` serves offline.

    The width stays dynamic, as in PaddleOCR's own rec exports: its predictor widens the canvas for long words.
    Load it with `TextRecognition(model_dir=out, model_name="PP-OCRv3_mobile_rec")`: PaddleOCR 3.7 checks the
    name against `Global.model_name` and otherwise assumes its default model (and refuses the dir).
    """
    import paddle

    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    spec = [paddle.static.InputSpec([None, int(inp.channels), int(inp.height), None], "float32", INPUT_NAME)]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), str(out / "inference"))
    # PaddleOCR's CTCLabelDecode prepends the blank and appends the space itself.
    chars = list(charset.chars[:-1] if charset.chars.endswith(" ") else charset.chars)
    cfg = {
        "Global": {"model_name": "PP-OCRv3_mobile_rec"},  # selects PaddleOCR's CTC text-recognition predictor
        "PreProcess": {"transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "RGB"}},  # we train on RGB (PaddleOCR: BGR)
            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": {"image_shape": [int(inp.channels), int(inp.height), int(inp.width)]}},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
        ]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars},
    }
    (out / "inference.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")


def paddle_predictor(model_dir: Path, threads: int = 1):
    """Paddle Inference predictor over `model_dir/inference/`: returns a callable NCHW float32 -> NTK."""
    import paddle.inference as pi

    inf = Path(model_dir) / "inference"
    if not (inf / "inference.json").is_file():
        raise DataError(f"{inf}: no inference.json (not a trained Paddle model dir)")
    config = pi.Config(str(inf / "inference.json"), str(inf / "inference.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    pred = pi.create_predictor(config)

    def run(x: np.ndarray) -> np.ndarray:
        h = pred.get_input_handle(pred.get_input_names()[0])
        h.reshape(x.shape)
        h.copy_from_cpu(np.ascontiguousarray(x, np.float32))
        pred.run()
        return pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()

    return run


def to_onnx(model_dir: Path, onnx_path: Path, images: list[np.ndarray], max_abs_diff: float) -> dict:
    """paddle2onnx -> fixed width, dynamic batch -> onnxsim -> checker -> parity gate vs the Paddle predictor.

    `images` are RGB uint8 test crops; raises DataError if the ONNX probabilities differ from Paddle's by more
    than `max_abs_diff` anywhere, or if any decoded string differs.
    """
    import onnx
    import onnxoptimizer
    import onnxruntime as ort
    import paddle2onnx
    from onnxsim import simplify

    from wordrec.io import atomic_file
    from wordrec.preprocess import prepare_batch

    model_dir, onnx_path = Path(model_dir), Path(onnx_path)
    meta = json.loads((model_dir / "meta.json").read_text())
    inp, charset = meta["input"], Charset(meta["charset"])
    inf = model_dir / "inference"
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "raw.onnx"
        # optimize_tool="None": the default optimizer pip-installs onnx_graphsurgeon at run time (NOTES.md);
        # onnxsim below does the simplification instead.
        paddle2onnx.export(str(inf / "inference.json"), str(inf / "inference.pdiparams"), str(raw),
                           opset_version=13, enable_onnx_checker=True, optimize_tool="None", verbose=False)
        m = onnx.load(str(raw))
    # Fix the width to the trained one (static shapes for quantization and TVM); the batch stays dynamic.
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "N"
    for d, v in zip(dims[1:], (inp["channels"], inp["height"], inp["width"])):
        d.dim_value = int(v)
    m, ok = simplify(m)
    if not ok:
        raise DataError(f"{onnx_path}: onnxsim could not validate the simplified model")
    # paddle2onnx emits weights/biases as Constant nodes; quantizers (NNCF's bias correction) and TVM expect
    # initializers, so move them with onnxoptimizer's single pass for exactly that.
    m = onnxoptimizer.optimize(m, ["extract_constant_to_initializer"])
    onnx.checker.check_model(m, full_check=True)

    x = prepare_batch(images, inp["channels"], inp["height"], inp["width"], keep_ratio=True)
    ref = paddle_predictor(model_dir)(x)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if got.shape != ref.shape:
        raise DataError(f"{onnx_path}: ONNX output shape {got.shape} != Paddle {ref.shape}")
    diff = float(np.abs(got - ref).max())
    texts_ref = [ctc_greedy_decode(p, charset) for p in ref.argmax(2)]
    texts_got = [ctc_greedy_decode(p, charset) for p in got.argmax(2)]
    agree = sum(a == b for a, b in zip(texts_ref, texts_got)) / max(len(texts_ref), 1)
    if diff > max_abs_diff:
        raise DataError(f"{onnx_path}: parity gate failed: ONNX vs Paddle max |diff| {diff:.3g} > {max_abs_diff:g}")
    if agree < 1.0:
        raise DataError(f"{onnx_path}: parity gate failed: decoded text agrees on only {agree:.1%} of images")
    with atomic_file(onnx_path, "wb") as f:
        f.write(m.SerializeToString())
    return {"max_abs_diff": diff, "text_agreement": agree, "onnx_bytes": onnx_path.stat().st_size,
            "nodes": len(m.graph.node)}
