"""PaddleOCR's pretrained PP-OCRv3 recognizer (the wheel's ONNX) as weights of our Paddle `RecModel` (neck svtr).

The ONNX, as rapidocr ships it, keeps every layer unfused: Conv (no bias) + BatchNormalization (scale, bias, mean,
var) in the backbone and neck, SE convs with a bias added through a Reshape, LayerNorm as ReduceMean/Sub/Pow/Sqrt/
Div/Mul/Add with its weight and bias Reshape'd, MatMul + Add for every fc. Walking the graph in node order gives the
weight tensors in the same order as our model's `state_dict()` (its layers are declared in forward order), so the
import zips the two lists and checks, pair by pair, that the roles (conv weight, BN mean, LayerNorm bias, ...) and
shapes agree. Anything else is an error naming the tensor: a left-over ONNX weight, a Paddle parameter with no
ONNX tensor, a role or shape mismatch, or a graph with folded BN (a conv bias where a BN is expected).
The head's fc keeps the blank and the target charset's columns of the 6,625-class classifier, exactly as
`wordrec.models.imported.cut_head` does for the imported ONNX, so both give the same probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from omegaconf import OmegaConf
from onnx import numpy_helper

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir
from wordrec.models.imported import _kept_columns, constants_to_initializers, load_source, source, source_charset
from wordrec.models.meta import InputSpec, ModelMeta

# Our RecModel config that reproduces PP-OCRv3 rec (ch_PP-OCRv3_rec_infer.onnx): checked tensor by tensor on import.
PPOCRV3_ARCH = {"scale": 0.5, "last_conv_stride": [1, 2], "last_pool_type": "avg", "mid_channels": None,
                "fc_decay": 2.0e-5, "act": "hardswish", "neck": "svtr"}
IMPORTABLE = ("ppocrv3",)  # the wheel sources whose graph is this architecture (v4/v6 have other backbones)
WEIGHTS = "best.pdparams"  # the file name of every Paddle model dir, so `train.load_params` reads it as any other
MAX_CONST = 8  # an initializer this small that no layer consumes is a graph constant (eps, shape, scale)

_BN = ("weight", "bias", "mean", "var")


def _role_of_reshaped(graph_consumers, producers, out: str) -> str | None:
    """A weight that reaches its op through a Reshape: a conv bias (Add after a Conv) or a LayerNorm weight (Mul) /
    bias (Add after that Mul)."""
    for node in graph_consumers.get(out, []):
        other = [i for i in node.input if i != out]
        src = producers.get(other[0]) if other else None
        if node.op_type == "Add" and src is not None and src.op_type == "Conv":
            return "conv.bias"
        if node.op_type == "Mul":
            return "ln.weight"
        if node.op_type == "Add" and src is not None and src.op_type == "Mul":
            return "ln.bias"
    return None


def onnx_weights(model: onnx.ModelProto) -> list[tuple[str, str, np.ndarray]]:
    """(initializer name, role, array) for every weight tensor, in first-use order. `model` must hold its weights
    as initializers (`constants_to_initializers`). A float initializer with more than MAX_CONST elements that no
    layer consumes as a weight is an error naming it."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    seen, out = set(), []

    def add(name, role):
        if name in inits and name not in seen:
            seen.add(name)
            out.append((name, role, numpy_helper.to_array(inits[name])))

    for n in graph.node:
        if n.op_type == "Conv":
            add(n.input[1], "conv.weight")
            if len(n.input) > 2:
                add(n.input[2], "conv.bias")
        elif n.op_type == "BatchNormalization":
            for i, r in zip(n.input[1:5], _BN):
                add(i, f"bn.{r}")
        elif n.op_type == "MatMul" and n.input[1] in inits:
            add(n.input[1], "linear.weight")
        elif n.op_type == "Add":
            srcs = [producers.get(i) for i in n.input if i not in inits]
            if len(srcs) == 1 and srcs[0] is not None and srcs[0].op_type == "MatMul":
                for i in n.input:
                    if i in inits:
                        add(i, "linear.bias")
        elif n.op_type == "Reshape" and n.input[0] in inits:
            role = _role_of_reshaped(consumers, producers, n.output[0])
            if role is not None:
                add(n.input[0], role)
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    for t in graph.initializer:
        if t.name not in seen and t.data_type in floats and int(np.prod(t.dims)) > MAX_CONST:
            raise DataError(f"ONNX initializer {t.name!r} {list(t.dims)}: a weight no layer of our model takes "
                            "(unknown graph pattern)")
    return out


def paddle_slots(model) -> list[tuple[str, str, list[int]]]:
    """(state_dict key, role, shape) of our model, in state_dict order (parameters before buffers per layer)."""
    import paddle.nn as nn

    kinds = {nn.Conv2D: "conv", nn.BatchNorm2D: "bn", nn.Linear: "linear", nn.LayerNorm: "ln"}
    layer_kind = {name: next((k for t, k in kinds.items() if isinstance(layer, t)), None)
                  for name, layer in model.named_sublayers()}
    attr = {"_mean": "mean", "_variance": "var"}
    out = []
    for key, value in model.state_dict().items():
        layer, _, a = key.rpartition(".")
        kind = layer_kind.get(layer)
        if kind is None:
            raise DataError(f"paddle model: state_dict key {key!r} belongs to no conv/BN/fc/LayerNorm layer")
        out.append((key, f"{kind}.{attr.get(a, a)}", list(value.shape)))
    return out


def import_state(onnx_model: onnx.ModelProto, model, charset: Charset,
                 head: str = "head.fc2") -> dict[str, np.ndarray]:
    """Every weight of `onnx_model` (initializers) mapped onto exactly one entry of `model.state_dict()`, shapes
    checked; the head's class columns cut to [blank] + charset. Returns {state_dict key: array}."""
    if charset.case_insensitive:
        # one fc column per class cannot sum two cases' probabilities (the ONNX cut adds a MatMul for that)
        raise ConfigError(f"ppocrv3 import: charset {charset.chars!r} is case-insensitive; a Paddle head needs a "
                          "case-sensitive charset such as `en`")
    src = onnx_weights(onnx_model)
    dst = paddle_slots(model)
    kept, _ = _kept_columns(source_charset(onnx_model), charset.chars, False)
    n_source = len(source_charset(onnx_model)) + 1
    state = {}
    for k in range(max(len(src), len(dst))):
        if k >= len(src):
            raise DataError(f"ppocrv3 import: paddle parameter {dst[k][0]!r} {dst[k][2]} has no ONNX tensor "
                            f"({len(src)} ONNX weights for {len(dst)} paddle tensors)")
        name, role, arr = src[k]
        if k >= len(dst):
            raise DataError(f"ppocrv3 import: ONNX tensor {name!r} {list(arr.shape)} ({role}) is left over "
                            f"({len(src)} ONNX weights for {len(dst)} paddle tensors)")
        key, want_role, shape = dst[k]
        if role != want_role:
            raise DataError(f"ppocrv3 import: ONNX tensor {name!r} is a {role}, paddle {key!r} a {want_role} "
                            "(a different architecture, or BN folded into the convs)")
        if key.startswith(head + "."):
            if arr.shape[-1] != n_source:
                raise DataError(f"ppocrv3 import: ONNX head tensor {name!r} has {arr.shape[-1]} classes, the "
                                f"dictionary {n_source}")
            arr = arr[..., kept]
        if list(arr.shape) != shape:
            raise DataError(f"ppocrv3 import: ONNX tensor {name!r} has shape {list(arr.shape)}, paddle {key!r} "
                            f"expects {shape}")
        state[key] = np.ascontiguousarray(arr, dtype=np.float32)
    return state


def model_cfg(name: str, charset_spec: str):
    """The `train.models.<name>`-like section that builds the imported architecture at the source's input."""
    src = source(name)
    return OmegaConf.create({"arch": PPOCRV3_ARCH, "charset": charset_spec,
                             "input": {"channels": src.channels, "height": src.height, "width": src.width,
                                       "keep_ratio": True, "channel_order": src.channel_order}})


def build_pretrained(name: str, wheel_dir: str | Path, charset_spec: str):
    """(eval-mode RecModel with the imported weights, its ModelMeta) for SOURCES[name] read from `wheel_dir`."""
    import paddle

    from wordrec.models.paddle_rec.model import arch_name, build

    if name not in IMPORTABLE:
        raise ConfigError(f"pretrained.paddle: {name!r} cannot be imported into the Paddle model; expected one of "
                          f"{list(IMPORTABLE)}")
    src = source(name)
    charset = Charset.from_spec(charset_spec)
    onnx_model = constants_to_initializers(load_source(src, Path(wheel_dir)))
    mcfg = model_cfg(name, charset_spec)
    # best.pdparams also stores each tensor's generated name (linear_46.b_0 ...): a fresh name scope makes them,
    # and so the file's bytes, the same on every import, whatever ran before in the process
    with paddle.utils.unique_name.guard():
        model = build(mcfg, charset.num_classes)
    state = import_state(onnx_model, model, charset)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    meta = ModelMeta(name, "paddle", arch_name(mcfg), charset,
                     InputSpec(src.channels, src.height, src.width, True, src.channel_order),
                     {"source": {"kind": "imported", "origin": f"{src.wheel} :: {src.member}",
                                 "wheel_sha256": src.wheel_sha256, "licence": src.licence,
                                 "authors": "PaddlePaddle/PaddleOCR", "tensors": len(state),
                                 "params": int(sum(v.size for v in state.values())),
                                 "arch_config": PPOCRV3_ARCH,
                                 "source_classes": len(source_charset(onnx_model)) + 1}})
    return model, meta


def write_pretrained(name: str, wheel_dir: str | Path, out_dir: str | Path, charset_spec: str) -> ModelMeta:
    """`out_dir/best.pdparams` + `out_dir/meta.json` (atomically): a Paddle model dir that `train` fine-tunes from
    (`init: ppocrv3`) or loads as any trained dir."""
    import paddle

    model, meta = build_pretrained(name, wheel_dir, charset_spec)
    with atomic_dir(out_dir) as tmp:
        paddle.save(model.state_dict(), str(tmp / WEIGHTS))
        meta.save(tmp)
    return meta
