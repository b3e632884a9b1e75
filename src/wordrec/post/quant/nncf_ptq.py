"""NNCF post-training quantization: ONNX -> INT8 OpenVINO IR, and ONNX -> INT8 QDQ ONNX.

OpenVINO's POT is gone upstream and cannot share this environment; NNCF is its successor and the only path seen
here that can also quantize the LSTM (shared/NOTES.md). On the trained CRNN that costs the accuracy (69 % -> 0.2 %
with the performance preset, -> 66 % with mixed), so `ignored_types` keeps LSTMSequence in FP32 by default.

`float_first_conv` keeps the first convolution out of INT8 too: on the trained CRNN it is where nearly all of the
drop comes from (synth test, 300 calibration images: 71.15 % FP32, 70.20 % INT8, 71.20 % with it kept float), and
with one input channel it is ~1 % of the time.

QDQ ONNX below opset 13 can only hold per-tensor scales (QuantizeLinear's `axis` came in opset 13), and NNCF then
quantizes every weight per tensor: on the imported PP-OCRv3 (opset 12, depthwise convs with BatchNorm folded in)
that read 0 % of iiit5k_test_dev (FP32 90.5 %). `to_onnx_qdq` therefore converts such graphs to opset 13 first
(`onnx.version_converter`), and the result is checked like any other INT8 model by the quantize gate.

Transformer-ish graphs (the imported SVTR necks: LayerNorm, attention MatMuls, GELU) take `model_type="transformer"`
(NNCF's transformer patterns, `mixed` preset unless one is given, and SmoothQuant on MatMuls with
`smooth_quant_matmul` as alpha; a negative alpha turns SmoothQuant off) and `ignored_types` for ops kept in float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


MIN_QDQ_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute)


def _settings(preset: str, fast_bias_correction: bool, n: int, ignored_types=(), ignored_names=(),
              model_type: str | None = None, smooth_quant_matmul: float | None = None) -> dict:
    import nncf

    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    out = {"preset": presets[preset], "subset_size": n, "fast_bias_correction": fast_bias_correction}
    if model_type is not None:
        if model_type != "transformer":
            raise ValueError(f"model_type {model_type!r}: NNCF knows only 'transformer'")
        out["model_type"] = nncf.ModelType.TRANSFORMER
    if smooth_quant_matmul is not None:
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                           AdvancedSmoothQuantParameters)

        out["advanced_parameters"] = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=float(smooth_quant_matmul)))
    if ignored_types or ignored_names:
        # validate=False: a model without such ops (the conv-only ones) is quantized whole
        out["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types), names=list(ignored_names),
                                                 validate=False)
    return out


def first_conv(names_and_types, conv_types: tuple[str, ...]) -> list[str]:
    """[name of the first convolution in graph order], or [] when the model has none."""
    return next(([name] for name, kind in names_and_types if kind in conv_types), [])


def to_openvino_int8(onnx_path: Path, xml_path: Path, calib: np.ndarray, preset: str = "performance",
                     fast_bias_correction: bool = True, ignored_types=(), float_first_conv: bool = False,
                     model_type: str | None = None, smooth_quant_matmul: float | None = None) -> Path:
    """Calibrate on `calib` (N x C x H x W, one image per NNCF sample) and save the INT8 IR (.xml + .bin)."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    dataset = nncf.Dataset([x[None] for x in calib])
    names = first_conv(((op.get_friendly_name(), op.get_type_name()) for op in model.get_ordered_ops()),
                       ("Convolution", "GroupConvolution")) if float_first_conv else []
    q = nncf.quantize(model, dataset, **_settings(preset, fast_bias_correction, len(calib), ignored_types, names,
                                                  model_type, smooth_quant_matmul))
    ov.save_model(q, str(xml_path), compress_to_fp16=False)
    return xml_path


def at_least_opset(model, opset: int = MIN_QDQ_OPSET):
    """`model` converted to the default-domain `opset` when it is below it (checked), else unchanged."""
    import onnx
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    model = version_converter.convert_version(model, opset)
    onnx.checker.check_model(model)
    # the converter drops intermediate shapes; NNCF's statistics want them back
    return onnx.shape_inference.infer_shapes(model)


def fold_constant_nodes(model):
    """`model` with every node whose inputs are all initializers replaced by its computed output (an initializer
    of the same name), repeated until none is left; initializers nothing reads any more are dropped.

    NNCF 3.4 on ONNX needs it for the imported PP-OCRv4, whose simplification keeps constant arithmetic (onnxsim's
    constant folding breaks its neck reshape; docs/imported_models.md): its conv weights are `Mul(w, scale)` of two
    initializers, which NNCF's graph builder cannot trace to a weight (AttributeError on `data_type`), and Casts of
    initializers fail its `eliminate_nop_cast` pass (a TensorProto has no `.type`). Only initializers are folded
    (no `Shape` of an activation), evaluated by onnx's reference implementation, so the outputs stay the same."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    opsets = list(model.opset_import)
    while True:
        inits = {t.name: t for t in model.graph.initializer}
        const = [n for n in model.graph.node
                 if n.input and all(i in inits for i in n.input if i) and n.domain in ("", "ai.onnx")]
        if not const:
            break
        for node in const:
            g = helper.make_graph([node], "fold", [], [helper.make_empty_tensor_value_info(o) for o in node.output],
                                  [inits[i] for i in dict.fromkeys(i for i in node.input if i)])
            values = ReferenceEvaluator(helper.make_model(g, opset_imports=opsets)).run(None, {})
            for name, value in zip(node.output, values):
                model.graph.initializer.append(numpy_helper.from_array(value, name))
        done = {id(n) for n in const}
        keep = [n for n in model.graph.node if id(n) not in done]
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for t in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(t)
    return model


def to_onnx_qdq(onnx_path: Path, out_path: Path, calib: np.ndarray, preset: str = "performance",
                fast_bias_correction: bool = True, float_first_conv: bool = False, ignored_types=(),
                model_type: str | None = None, smooth_quant_matmul: float | None = None,
                int8_residuals: bool = False) -> Path:
    """INT8 QuantizeLinear/DequantizeLinear ONNX: runs in onnxruntime and OpenVINO, and feeds the MCU path.
    Graphs below opset 13 are converted first (per-channel weight scales need it; see the module doc), and
    constant nodes folded (`fold_constant_nodes`). int8_residuals: then hold the residual streams in int8
    (wordrec.post.quant.int8_residuals, calibrated on the same images)."""
    import nncf
    import onnx

    model = fold_constant_nodes(at_least_opset(onnx.load(str(onnx_path))))
    name = model.graph.input[0].name
    dataset = nncf.Dataset([x[None] for x in calib], lambda x: {name: x})
    # ONNX graphs are stored in topological order, so the first Conv node is the input layer
    names = first_conv(((n.name, n.op_type) for n in model.graph.node), ("Conv",)) if float_first_conv else []
    q = nncf.quantize(model, dataset, **_settings(preset, fast_bias_correction, len(calib), ignored_types, names,
                                                  model_type, smooth_quant_matmul))
    if int8_residuals:
        from wordrec.post.quant.int8_residuals import int8_residuals as hold_int8

        q, _ = hold_int8(q, calib)
    onnx.save(q, str(out_path))
    return out_path


def ir_bytes(xml_path: Path) -> int:
    return xml_path.stat().st_size + xml_path.with_suffix(".bin").stat().st_size
