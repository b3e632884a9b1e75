"""Run a QDQ graph's input stem in vertical strips, so its full-resolution maps never exist at once.

The first layers of a recognizer work at the input's resolution: ppocrv6_small's stem holds three (48, 24, 160)
int8 maps and their (96, 24, 160) concatenation, 737 KB live at once, while no later layer needs half of that. A
planner cannot reuse what is live; computing the stem strip by strip can (cascaded tiling). Here, on the ONNX graph
before Relax imports it, the stem -- every node between the quantized input and the first single int8 tensor that
is `stride` times narrower -- is copied once per strip: strip j slices the int8 input to the columns its outputs
need (the receptive field, so the copies' zero padding at a cut only touches columns that are cropped away), runs
the copied nodes, crops its share of the stem output, and a Concat along the width joins the strips. Every output
value is computed from the same inputs by the same operators, so the result is identical: `tile_stem` checks that
with onnxruntime (bit for bit) and refuses otherwise. The cost is the overlap, recomputed per strip.

Why by hand: Relax's planner and TVM's scheduling tile loops inside one kernel, not a chain of kernels across
their intermediates, and the int8 kernels are calls Relax cannot see into.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from wordrec.errors import ConfigError, DataError

WINDOWED = ("Conv", "MaxPool", "AveragePool")
# operators that map column c of their output to column c of their inputs (no window along the width)
POINTWISE = ("QuantizeLinear", "DequantizeLinear", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul",
             "Add", "Sub", "Div", "Erf", "Concat")


@dataclass(frozen=True)
class Field:
    """Output column c of a tensor reads input columns [stride * c - left, stride * c + right]."""
    stride: int
    left: int
    right: int


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _window(node) -> tuple[int, int, int, int]:
    """(kernel, stride, pad_left, dilation) along the width; 'SAME' padding only at stride 1 (where it does not
    depend on the input width, so every strip pads alike)."""
    a = _attrs(node)
    k, s = int(a["kernel_shape"][-1]), int(a.get("strides", [1, 1])[-1])
    d = int(a.get("dilations", [1, 1])[-1])
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if s != 1:
            raise DataError(f"{node.name}: auto_pad {auto} with stride {s}: its padding depends on the width")
        total = d * (k - 1)
        left = total // 2 if auto == "SAME_UPPER" else total - total // 2
    elif auto == "VALID":
        left = 0
    else:
        pads = a.get("pads", [0, 0, 0, 0])
        left = int(pads[len(pads) // 2 - 1])
    if a.get("ceil_mode", 0):
        raise DataError(f"{node.name}: ceil_mode pooling is not tiled")
    return k, s, left, d


def _through(node, f: Field) -> Field:
    if node.op_type in WINDOWED:
        k, s, p, d = _window(node)
        return Field(f.stride * s, f.stride * p + f.left, f.stride * (d * (k - 1) - p) + f.right)
    return f


def find_stem(model: onnx.ModelProto, stride: int, shapes: dict) -> tuple[str, str, list]:
    """(int8 input tensor, int8 stem output tensor, the nodes between in graph order): the input's QuantizeLinear
    output, and the first QuantizeLinear output after it that every later node depends on through it alone and
    whose width is the input's / `stride`."""
    g = model.graph
    inits = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    x = next(i.name for i in g.input if i.name not in inits)
    q0 = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == x]
    if len(q0) != 1 or sum(x in n.input for n in g.node) != 1:
        raise DataError("stem strips: the graph input must be read by one QuantizeLinear only")
    start, width = q0[0].output[0], shapes[x][3]
    nodes = list(g.node)
    begin = nodes.index(q0[0]) + 1
    for end in range(begin, len(nodes)):
        n = nodes[end]
        if n.op_type not in WINDOWED + POINTWISE or (n.op_type == "Concat" and _attrs(n).get("axis") not in (1, -3)):
            break  # (a concatenation along the width would move columns: only channel concatenations tile)
        if n.op_type != "QuantizeLinear" or shapes.get(n.output[0], (0,) * 4)[3] * stride != width:
            continue
        region = nodes[begin:end + 1]
        made = {o for r in region for o in r.output}
        # a cut: nothing after the region reads what the region made, except its last output
        if all(i not in made or i == n.output[0] for m in nodes[end + 1:] for i in m.input) \
                and all(o.name not in made - {n.output[0]} for o in g.output):
            return start, n.output[0], region
    raise DataError(f"stem strips: no single int8 tensor {stride}x narrower than the input ends a tileable stem "
                    "(convolutions, pooling, elementwise, Q/DQ and concatenations only)")


def _field(region, start: str, end: str) -> Field:
    field = {start: Field(1, 0, 0)}
    for n in region:
        ins = [field[i] for i in n.input if i in field]
        if not ins:
            continue
        if len({f.stride for f in ins}) != 1:
            raise DataError(f"{n.name}: inputs at different strides")
        merged = Field(ins[0].stride, max(f.left for f in ins), max(f.right for f in ins))
        for o in n.output:
            field[o] = _through(n, merged)
    return field[end]


def tile_stem(model: onnx.ModelProto, shape: list[int], strips: int, stride: int = 4) -> onnx.ModelProto:
    """A copy of `model` (a QDQ graph with int8 activations, input NCHW at `shape`) whose stem runs in `strips`
    vertical strips (module doc). DataError when the graph has no such stem or the tiled graph's output is not
    bit-identical to the original's."""
    if strips < 2:
        raise ConfigError(f"compile.int8_kernels.stem_strips: {strips}, expected 0 (off) or >= 2")
    shapes = _shape_map(model, shape)
    start, end, region = find_stem(model, stride, shapes)
    f = _field(region, start, end)
    width, out_w = shape[3], shapes[end][3]
    if out_w < strips:
        raise ConfigError(f"compile.int8_kernels.stem_strips: {strips} strips of a {out_w}-column stem output")
    bounds = np.linspace(0, out_w, strips + 1).round().astype(int)
    g = model.graph
    made = [o for n in region for o in n.output]
    new_nodes, inits, pieces = [], [], []

    def const(name, values):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    for j in range(strips):
        a, b = int(bounds[j]), int(bounds[j + 1])
        # input columns the outputs [a, b) read, extended to a multiple of the stem's stride on the left so every
        # layer of the copy sees the same column grid as the original
        lo = max(0, f.stride * a - f.left) // f.stride * f.stride
        hi = min(width, f.stride * (b - 1) + f.right + 1)
        tag = f"__strip{j}"
        ren = {t: t + tag for t in made}
        ren[start] = start + tag
        new_nodes.append(helper.make_node(
            "Slice", [start, const(f"s{tag}_in_lo", [lo]), const(f"s{tag}_in_hi", [hi]), const(f"s{tag}_ax", [3])],
            [ren[start]], name=f"slice_in{tag}"))
        for n in region:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = (n.name or n.output[0]) + tag  # node names must be unique, and may be empty
            for k, i in enumerate(c.input):
                c.input[k] = ren.get(i, i)
            for k, o in enumerate(c.output):
                c.output[k] = ren[o]
            new_nodes.append(c)
        off = lo // f.stride
        piece = f"{end}{tag}_crop"
        new_nodes.append(helper.make_node(
            "Slice", [ren[end], const(f"s{tag}_out_lo", [a - off]), const(f"s{tag}_out_hi", [b - off]),
                      f"s{tag}_ax"], [piece], name=f"crop{tag}"))
        pieces.append(piece)
    new_nodes.append(helper.make_node("Concat", pieces, [end], axis=3, name="stem_strips_concat"))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = list(out.graph.node)
    first = next(k for k, n in enumerate(nodes) if n.output[0] == region[0].output[0])
    last = next(k for k, n in enumerate(nodes) if n.output[0] == region[-1].output[0])
    del out.graph.node[:]
    out.graph.node.extend(nodes[:first] + new_nodes + nodes[last + 1:])
    out.graph.initializer.extend(inits)
    out = _without_value_info(out)  # the copies' tensors have none, and the originals' may be stale
    _check_same(model, out, shape, end)
    return out


def _without_value_info(model) -> onnx.ModelProto:
    """A copy without intermediate type annotations (stale after int8_activations' uint8 -> int8)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    return m


def _shape_map(model, shape) -> dict:
    m = _without_value_info(model)
    inits = {t.name for t in m.graph.initializer}
    for i in m.graph.input:
        if i.name not in inits:
            for d, v in zip(i.type.tensor_type.shape.dim, shape):
                d.ClearField("dim_param")
                d.dim_value = int(v)
    inferred = onnx.shape_inference.infer_shapes(m)
    vi = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in vi
            if v.type.tensor_type.HasField("shape")}


def _check_same(a: onnx.ModelProto, b: onnx.ModelProto, shape, stem_out: str, seeds=(0, 1)) -> None:
    """The stem's int8 output and the graph's output of `b` (tiled) equal `a`'s bit for bit in onnxruntime on random
    inputs, else DataError."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = []
    for m in (a, b):
        m = _without_value_info(m)
        m.graph.output.append(helper.make_empty_tensor_value_info(stem_out))
        sess.append(ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"]))
    name = sess[0].get_inputs()[0].name
    for seed in seeds:
        x = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
        (ya, ta), (yb, tb) = (s.run(None, {name: x}) for s in sess)
        for what, u, v in (("stem output", ta, tb), ("output", ya, yb)):
            if not np.array_equal(u, v):
                raise DataError(f"stem strips: the tiled graph's {what} differs from the original's by "
                                f"{float(np.abs(u.astype(np.float64) - v).max()):.3g} (seed {seed}); not tiling")
