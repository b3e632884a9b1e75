"""Trained model -> simplified, checked ONNX (N x C x H x W float32 -> N x T x K softmax), and the parity gate.

Torch uses the classic TorchScript exporter (`dynamo=False`): the dynamo exporter in torch 2.13 writes side
`.onnx.data` files, ignores opsets below 18 and fixed the batch/width of an LSTM model (shared/NOTES.md).
Paddle goes through paddle2onnx (wordrec.models.paddle_rec.export.to_onnx). Both are then checked against the
framework's own runner on the same tensors by `parity` + `parity_gate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError, one_line
from wordrec.infer.decode import texts
from wordrec.models.meta import ModelMeta

INPUT_NAME, OUTPUT_NAME = "x", "probs"


def export_torch(module, meta: ModelMeta, onnx_path: Path, opset: int) -> None:
    import torch

    if not 13 <= opset <= 17:
        raise ConfigError(f"params export.opset={opset}: expected 13..17 (classic exporter)")
    example = torch.zeros(meta.input.shape(2))
    torch.onnx.export(module, (example,), str(onnx_path), dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    simplify(onnx_path)


def simplify(onnx_path: Path) -> None:
    import onnx
    from onnxsim import simplify as onnxsim_simplify

    model, ok = onnxsim_simplify(onnx.load(str(onnx_path)))
    if not ok:
        raise DataError(f"{onnx_path}: onnxsim could not validate the simplified model")
    onnx.save(model, str(onnx_path))


def check_onnx(path: str | Path, meta: ModelMeta):
    """Load + onnx.checker + input contract (float32 [N, C, H, W] with the meta's C, H, W) -> ModelProto."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError, ValidationError, ...: all mean an unusable file
        raise DataError(f"{path}: corrupt model file (not a valid ONNX model: {one_line(e)[:200]})") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise DataError(f"{path}: expected exactly one graph input, found {[i.name for i in inputs]}")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    want = list(meta.input.shape(0))[1:]
    # A symbolic dim (None) accepts any size, e.g. a dynamic width from paddle2onnx.
    fits = len(dims) == 4 and all(d is None or d == w for d, w in zip(dims[1:], want))
    if t.elem_type != onnx.TensorProto.FLOAT or not fits:
        dtype = onnx.TensorProto.DataType.Name(t.elem_type)
        raise DataError(f"{path}: input {inputs[0].name!r} has shape {dims} ({dtype}); "
                        f"meta.json expects float32 [N, {', '.join(map(str, want))}]")
    return model


def probs(runner, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([runner.probs(x[i:i + batch]) for i in range(0, len(x), batch)])


def parity(ref: np.ndarray, got: np.ndarray, charset) -> dict:
    """Max |ref - got| over the probabilities and the share of images whose greedy decodes agree."""
    if ref.shape != got.shape:
        raise DataError(f"parity: output shapes differ: framework {ref.shape} vs ONNX {got.shape}")
    agree = np.mean([a == b for a, b in zip(texts(ref, charset), texts(got, charset))])
    return {"max_abs_diff": float(np.abs(ref - got).max()), "text_agreement": float(agree)}


def node_count(model) -> int:
    return len(model.graph.node)


def model_dirs(spec: str, what: str = "--models") -> list[Path]:
    """A comma-separated list of model dirs (dvc.yaml passes them as one argument)."""
    dirs = [Path(p.strip()) for p in str(spec).split(",") if p.strip()]
    if not dirs:
        raise ConfigError(f"{what}: expected a comma-separated list of model dirs")
    return dirs


def pretrained_dirs(root) -> list[Path]:
    """The imported model dirs under `root` (models/pretrained), sorted; [] when no root was given."""
    if not root:
        return []
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of imported models (run the pretrained stage)")
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    for d in dirs:
        if not (d / "model.onnx").is_file() or not (d / "meta.json").is_file():
            raise DataError(f"{d}: model.onnx and meta.json expected (the pretrained stage's output)")
    return dirs
