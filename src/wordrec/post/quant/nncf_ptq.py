"""NNCF post-training quantization: ONNX -> INT8 OpenVINO IR, and ONNX -> INT8 QDQ ONNX.

OpenVINO's POT is gone upstream and cannot share this environment; NNCF is its successor and the only path seen
here that can also quantize the LSTM (shared/NOTES.md). On the trained CRNN that costs the accuracy (69 % -> 0.2 %
with the performance preset, -> 66 % with mixed), so `ignored_types` keeps LSTMSequence in FP32 by default.

`float_first_conv` keeps the first convolution out of INT8 too: on the trained CRNN it is where nearly all of the
drop comes from (synth test, 300 calibration images: 71.15 % FP32, 70.20 % INT8, 71.20 % with it kept float), and
with one input channel it is ~1 % of the time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _settings(preset: str, fast_bias_correction: bool, n: int, ignored_types=(), ignored_names=()) -> dict:
    import nncf

    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    out = {"preset": presets[preset], "subset_size": n, "fast_bias_correction": fast_bias_correction}
    if ignored_types or ignored_names:
        # validate=False: a model without such ops (the conv-only ones) is quantized whole
        out["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types), names=list(ignored_names),
                                                 validate=False)
    return out


def first_conv(names_and_types, conv_types: tuple[str, ...]) -> list[str]:
    """[name of the first convolution in graph order], or [] when the model has none."""
    return next(([name] for name, kind in names_and_types if kind in conv_types), [])


def to_openvino_int8(onnx_path: Path, xml_path: Path, calib: np.ndarray, preset: str = "performance",
                     fast_bias_correction: bool = True, ignored_types=(), float_first_conv: bool = False) -> Path:
    """Calibrate on `calib` (N x C x H x W, one image per NNCF sample) and save the INT8 IR (.xml + .bin)."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    dataset = nncf.Dataset([x[None] for x in calib])
    names = first_conv(((op.get_friendly_name(), op.get_type_name()) for op in model.get_ordered_ops()),
                       ("Convolution", "GroupConvolution")) if float_first_conv else []
    q = nncf.quantize(model, dataset, **_settings(preset, fast_bias_correction, len(calib), ignored_types, names))
    ov.save_model(q, str(xml_path), compress_to_fp16=False)
    return xml_path


def to_onnx_qdq(onnx_path: Path, out_path: Path, calib: np.ndarray, preset: str = "performance",
                fast_bias_correction: bool = True, float_first_conv: bool = False) -> Path:
    """INT8 QuantizeLinear/DequantizeLinear ONNX: runs in onnxruntime and OpenVINO, and feeds the MCU path."""
    import nncf
    import onnx

    model = onnx.load(str(onnx_path))
    name = model.graph.input[0].name
    dataset = nncf.Dataset([x[None] for x in calib], lambda x: {name: x})
    # ONNX graphs are stored in topological order, so the first Conv node is the input layer
    names = first_conv(((n.name, n.op_type) for n in model.graph.node), ("Conv",)) if float_first_conv else []
    q = nncf.quantize(model, dataset, **_settings(preset, fast_bias_correction, len(calib), (), names))
    onnx.save(q, str(out_path))
    return out_path


def ir_bytes(xml_path: Path) -> int:
    return xml_path.stat().st_size + xml_path.with_suffix(".bin").stat().st_size
