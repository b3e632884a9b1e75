"""Paddle inference model (jit.save + PaddleOCR `inference.yml`), its dictionary check, and its ONNX conversion."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from wordrec.data.charset import Charset
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
            # the channel order the model was trained on: ours RGB, PaddleOCR's pretrained weights BGR
            {"DecodeImage": {"channel_first": False,
                             "img_mode": str(inp.get("channel_order", "rgb") if hasattr(inp, "get")
                                             else getattr(inp, "channel_order", "rgb")).upper()}},
            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": {"image_shape": [int(inp.channels), int(inp.height), int(inp.width)]}},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
        ]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars},
    }
    (out / "inference.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")


def check_dictionary(yml: Path, meta) -> None:
    """inference.yml's character_dict (what PaddleOCR decodes with) must be meta.json's charset."""
    if not yml.is_file():
        raise DataError(f"{yml}: not found (PaddleOCR needs it beside inference.json)")
    try:
        chars = "".join(yaml.safe_load(yml.read_text(encoding="utf-8"))["PostProcess"]["character_dict"])
    except (yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise DataError(f"{yml}: not a PaddleOCR inference.yml with PostProcess.character_dict ({e})") from None
    if chars + " " != meta.charset.chars and chars != meta.charset.chars:
        raise DataError(f"{yml}: character_dict ({len(chars)} chars) disagrees with the charset in its meta.json "
                        f"({len(meta.charset.chars)} chars)")


def to_onnx(model_dir: Path, meta, onnx_path: Path) -> None:
    """paddle2onnx -> fixed width, dynamic batch -> onnxsim -> Constant nodes as initializers -> checker.
    Parity with the Paddle predictor is the export stage's gate (wordrec.post.export_onnx), as for torch."""
    import onnx
    import onnxoptimizer
    import paddle2onnx
    from onnxsim import simplify

    from wordrec.io import atomic_file

    inf = Path(model_dir) / "inference"
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
    for d, v in zip(dims[1:], meta.input.shape(1)[1:]):
        d.dim_value = int(v)
    m, ok = simplify(m)
    if not ok:
        raise DataError(f"{onnx_path}: onnxsim could not validate the simplified model")
    # paddle2onnx emits weights/biases as Constant nodes; quantizers (NNCF's bias correction) and TVM expect
    # initializers, so move them with onnxoptimizer's single pass for exactly that.
    m = onnxoptimizer.optimize(m, ["extract_constant_to_initializer"])
    onnx.checker.check_model(m, full_check=True)
    with atomic_file(onnx_path, "wb") as f:
        f.write(m.SerializeToString())
