"""Multiply-accumulates per inference (conv1d/conv2d/conv2d_transpose, matmul), batch 1, read off the Relax
module the ONNX frontend imports at the compiled input shape.

ONNX's own shape inference cannot be used: PaddleOCR's exported graphs compute their reshape targets at run time
(Shape -> Slice -> Concat -> Reshape), so every tensor after the first such reshape (the SVTR neck, the attention
matmuls, the head) has unknown dims there; Relax's importer folds those shape computations at a fixed input shape.
"""

from __future__ import annotations

import numpy as np
import onnx

from wordrec.errors import DataError
from wordrec.device.compile.frontend import freeze_reshapes, graph_input


def _shape(expr, where: str) -> list[int]:
    try:
        return [int(d) for d in expr.ty.shape]
    except (AttributeError, TypeError, ValueError) as e:
        raise DataError(f"MACs: {where} has no static shape ({e})") from e


def count_macs(model: onnx.ModelProto, shape: list[int]) -> int:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    name = graph_input(model)
    mod = from_onnx(freeze_reshapes(model, shape), shape_dict={name: list(shape)}, dtype_dict={name: "float32"})
    total = 0
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            call = b.value
            if not (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op)):
                continue
            op = call.op.name
            if op in ("relax.nn.conv1d", "relax.nn.conv2d"):
                # each output element: Cin/groups * prod(kernel) MACs (OIHW weights, as the ONNX importer emits)
                w = _shape(call.args[1], f"{op} weight")
                total += int(np.prod(_shape(b.var, op))) * int(np.prod(w[1:]))
            elif op in ("relax.nn.conv1d_transpose", "relax.nn.conv2d_transpose"):
                # each input element: Cout/groups * prod(kernel) MACs (IOHW weights)
                w = _shape(call.args[1], f"{op} weight")
                total += int(np.prod(_shape(call.args[0], op))) * int(np.prod(w[1:]))
            elif op == "relax.matmul":
                a = _shape(call.args[0], op)
                total += int(np.prod(_shape(b.var, op))) * (a[-1] if a else 1)
    return int(total)
