"""Multiply-accumulates per inference from the ONNX graph (Conv, ConvTranspose, Gemm, MatMul), batch 1."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import shape_inference

from wordrec.errors import DataError
from wordrec.device.compile.frontend import graph_input


def _fixed(model: onnx.ModelProto, shape: list[int]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    name = graph_input(m)
    for inp in m.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            del dims[:]
            for d in shape:
                dims.add().dim_value = int(d)
    return shape_inference.infer_shapes(m, data_prop=True)


def count_macs(model: onnx.ModelProto, shape: list[int]) -> int:
    m = _fixed(model, shape)
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)

    def known(name, node):
        s = shapes.get(name)
        if s is None or any(d is None for d in s):
            raise DataError(f"MACs: shape of {name!r} ({node.op_type} {node.name!r}) not inferable at input {shape}")
        return s

    total = 0
    for node in m.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = known(node.input[1], node)
            out = known(node.output[0], node)
            # each output (or, transposed, each input) element: Cin/groups * prod(kernel) MACs
            per = int(np.prod(w[1:]))
            total += per * int(np.prod(out)) if node.op_type == "Conv" else \
                int(np.prod(known(node.input[0], node))) * w[1] * int(np.prod(w[2:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = known(node.input[0], node)
            out = known(node.output[0], node)
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
            total += int(np.prod(out)) * k
    return int(total)
