"""Residual streams held in int8: a QDQ-graph pass run after NNCF (quantize.pretrained.nncf.<name>.int8_residuals).

NNCF quantizes the inputs of the operators it can run in int8 and leaves the rest float: in a residual block
`x -> dw conv -> 1x1 -> GELU -> 1x1 -> (+ x)` the convs read a quantized copy of x, but the skip Add reads x itself
and the last 1x1's output, both float32. A device running the graph then holds the residual stream in float32,
4 bytes per value, for the whole block (ppocrv6_small at 3x48x320: three (96, 12, 80) float tensors, 1.1 MB, are
live at once; int8 would be a quarter). NNCF's `transformer` model type, which the imported SVTR-family models
need (docs/POSTTRAINING.md), deliberately keeps Adds float, and it has no switch for "quantize this Add".

This pass makes every 4-D residual Add read int8 values and its result be read as int8:
- an Add input that already has a QuantizeLinear (NNCF's, for another consumer) is read through that quantizer's
  DequantizeLinear: the same calibrated scale and zero point, no new parameter;
- an Add input or output without one gets a new QuantizeLinear/DequantizeLinear pair; its range is the min and max
  over the calibration images (what NNCF's MinMax estimator does for activations), widened to hold 0, asymmetric
  with NNCF's activation dtype (int8 or uint8), and every float consumer reads the dequantized copy.
The result is a different model (it rounds where the original did not), so it goes through the quantize stage's
accuracy gate like any INT8 model; the compile stage then holds only int8 between its integer kernels.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from wordrec.errors import DataError

QDQ = ("QuantizeLinear", "DequantizeLinear")


# readers that a compiler fuses into the producer's loop (the tensor is not stored for them)
ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Erf", "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Pow",
               "Sqrt", "Clip")


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    vi = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in vi
            if v.type.tensor_type.HasField("shape")}


def _users(model) -> dict[str, list]:
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def residual_tensors(model: onnx.ModelProto) -> list[str]:
    """The float feature maps (N, C, H, W with H, W > 1) a device would hold across more than one operator, in
    graph order: the inputs and output of every residual Add (both inputs activations), and a map read by two or
    more nodes one of which is neither elementwise nor a QuantizeLinear (an SE block's input: its pooling branch
    runs before the Mul that applies it). A GELU's input (read twice, elementwise: fused, never stored) is not
    listed, nor a map that already is a DequantizeLinear's output (int8 underneath). The sequences after the
    backbone (H = 1) are small and left as NNCF made them."""
    inits = {t.name for t in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in model.graph.node for o in n.output}
    users = _users(model)
    shapes = _shapes(model)
    out: list[str] = []

    def spatial(t: str) -> bool:
        s = shapes.get(t)
        return s is not None and len(s) == 4 and s[2] > 1 and s[3] > 1

    def hold(t: str):
        p = producer.get(t)
        if p is not None and p.op_type not in QDQ and spatial(t) and t not in out:
            out.append(t)

    for n in model.graph.node:
        if n.op_type == "Add" and len(n.input) == 2 and not any(i in inits or i in consts for i in n.input):
            for t in (*n.input, n.output[0]):
                hold(t)
        for t in n.output:
            readers = users.get(t, [])
            if len(readers) > 1 and any(r.op_type not in ELEMENTWISE + ("QuantizeLinear",) for r in readers):
                hold(t)
    return sorted(out, key=lambda t: list(producer).index(t))


def _existing_quantizer(model, t: str, users) -> onnx.NodeProto | None:
    """The DequantizeLinear of a QuantizeLinear that reads `t` and feeds only that DequantizeLinear."""
    for q in users.get(t, []):
        if q.op_type != "QuantizeLinear":
            continue
        dqs = users.get(q.output[0], [])
        if len(dqs) == 1 and dqs[0].op_type == "DequantizeLinear":
            return dqs[0]
    return None


def activation_dtype(model: onnx.ModelProto) -> int:
    """The element type of NNCF's activation quantizers (zero points of QuantizeLinear with a scalar scale)."""
    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits \
                and numpy_helper.to_array(inits[n.input[1]]).size == 1:
            return inits[n.input[2]].data_type
    raise DataError("int8_residuals: the model has no per-tensor activation QuantizeLinear (is it a QDQ ONNX?)")


def ranges(model: onnx.ModelProto, tensors: list[str], calib: np.ndarray) -> dict[str, tuple[float, float]]:
    """(min, max) of each tensor over the calibration images, one image per run (as NNCF feeds them)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors if t not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for x in calib:
        for t, v in zip(tensors, sess.run(tensors, {name: x[None]})):
            lo[t], hi[t] = min(lo[t], float(v.min())), max(hi[t], float(v.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


def qparams(lo: float, hi: float, dtype: int) -> tuple[np.float32, np.ndarray]:
    """Asymmetric 8-bit scale and zero point covering [lo, hi] and 0 (0 must be exact: padding, ReLU)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmin, qmax = (-128, 127) if dtype == onnx.TensorProto.INT8 else (0, 255)
    scale = np.float32((hi - lo) / (qmax - qmin)) if hi > lo else np.float32(1.0)
    zp = int(np.clip(np.round(qmin - lo / float(scale)), qmin, qmax))
    return scale, np.array(zp, dtype=np.int8 if dtype == onnx.TensorProto.INT8 else np.uint8)


def int8_residuals(model: onnx.ModelProto, calib: np.ndarray) -> tuple[onnx.ModelProto, dict]:
    """A copy of the QDQ `model` whose 4-D residual Adds read and write int8 (module doc). Returns it and what was
    done: {"reused": n, "added": n, "tensors": [...]}."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    tensors = residual_tensors(out)
    if not tensors:
        return out, {"reused": 0, "added": 0, "tensors": []}
    users = _users(out)
    dtype = activation_dtype(out)
    reuse = {t: dq for t in tensors if (dq := _existing_quantizer(out, t, users)) is not None}
    fresh = [t for t in tensors if t not in reuse]
    span = ranges(out, fresh, calib) if fresh else {}
    dq_of: dict[str, str] = {t: dq.output[0] for t, dq in reuse.items()}
    new_nodes: dict[str, list] = {}
    for t in fresh:
        scale, zp = qparams(*span[t], dtype)
        s, z, q, d = (f"{t}__res_{k}" for k in ("scale", "zp", "q", "dq"))
        out.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), s),
                                      numpy_helper.from_array(zp, z)])
        new_nodes[t] = [helper.make_node("QuantizeLinear", [t, s, z], [q], name=q),
                        helper.make_node("DequantizeLinear", [q, s, z], [d], name=d)]
        dq_of[t] = d
    # every float reader of a held tensor reads a dequantized copy of its own: a DequantizeLinear with two readers
    # would be computed once and stored in float (a compiler materializes a shared value), one per reader is fused
    # into that reader's loop
    dq_node = dict(reuse)  # the DequantizeLinear each copy repeats (its axis too, when per channel)
    dq_node.update({t: new_nodes[t][1] for t in fresh})
    # (by output: node names may be empty)
    own = {n.output[0] for nodes in new_nodes.values() for n in nodes} | {dq.output[0] for dq in reuse.values()}
    readers: dict[str, list] = {}
    for n in out.graph.node:
        if n.op_type == "QuantizeLinear" or n.output[0] in own:
            continue
        for k, i in enumerate(n.input):
            if i in dq_node:
                readers.setdefault(i, []).append((n, k))
    extra: dict[str, list] = {}  # tensor -> DequantizeLinear copies for its second, third, ... reader
    for t, rs in readers.items():
        for r, (n, k) in enumerate(rs):
            if r == 0 and t not in reuse:  # a reused DequantizeLinear has its reader already
                n.input[k] = dq_of[t]
                continue
            copy = onnx.NodeProto()
            copy.CopyFrom(dq_node[t])
            copy.name = copy.output[0] = f"{dq_of[t]}__{r}"
            extra.setdefault(t, []).append(copy)
            n.input[k] = copy.output[0]
    for t, nodes in extra.items():  # (a reused tensor has no new nodes but its copies)
        new_nodes[t] = new_nodes.get(t, []) + nodes
    # insert the new nodes right after their tensor's producer (a reused quantizer's: after its DequantizeLinear),
    # so the graph stays topologically sorted
    at_of = {o: k for k, n in enumerate(out.graph.node) for o in n.output}
    anchor = {t: at_of[reuse[t].output[0]] if t in reuse else at_of.get(t, -1) for t in new_nodes}
    nodes = list(out.graph.node)
    for t in sorted(new_nodes, key=lambda t: -anchor[t]):
        nodes[anchor[t] + 1:anchor[t] + 1] = new_nodes[t]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    onnx.checker.check_model(out)
    return out, {"reused": len(reuse), "added": len(fresh), "tensors": tensors}
