"""Residual streams held in int8 (post/quant/int8_residuals.py): on a QDQ graph as NNCF's transformer mode leaves
it, every residual Add reads and writes int8, an SE block's input too, each dequantized copy has one reader, and
the model still computes nearly the same function."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from test_int8_float_out import G  # the tiny QDQ graph builder
from wordrec.errors import DataError
from wordrec.post.quant.int8_residuals import int8_residuals, residual_tensors

SHAPE = [1, 8, 6, 10]


def _block_model(rng):
    """x -> 1x1 -> a (float; NNCF's quantizer feeds the next conv) -> 1x1 -> b (float) -> r = a + b (float) -> Q ->
    3x3 depthwise -> d (float) -> SE: mean(d) -> 1x1 -> sigmoid -> d * se -> Q -> 1x1 -> c; y = c + a * erf(a)
    (a residual add of two activations again); e = erf(e0) * e0 of a conv output e0 read only elementwise (a GELU's
    input: fused by a compiler, never stored, so not held)."""
    g = G()

    def conv(x, co, ci, k=1, **attrs):
        w = rng.integers(-127, 128, (co, ci, k, k)).astype(np.int8)
        return g.node("Conv", [x, g.wdq(w, rng.uniform(0.002, 0.01, co).astype(np.float32)),
                               g.const(rng.uniform(-0.5, 0.5, co).astype(np.float32))], kernel_shape=[k, k], **attrs)

    a = conv(g.qdq("x", np.float32(0.04), -3), 8, 8)
    b = conv(g.qdq(a, np.float32(0.03), 5), 8, 8)
    r = g.node("Add", [a, b])
    d = conv(g.qdq(r, np.float32(0.05), 0), 8, 1, 3, group=8, pads=[1, 1, 1, 1])
    se = g.node("Sigmoid", [g.node("Conv", [g.node("ReduceMean", [d], axes=[2, 3], keepdims=1),
                                            g.const(rng.uniform(-1, 1, (8, 8, 1, 1)).astype(np.float32))])])
    m = g.node("Mul", [d, se])
    gelu = g.node("Mul", [a, g.node("Erf", [a])])
    c = conv(g.qdq(m, np.float32(0.05), 0), 8, 8)
    y = g.node("Add", [c, gelu])
    e0 = conv(g.qdq(y, np.float32(0.05), 0), 8, 8)
    e = g.node("Mul", [e0, g.node("Erf", [e0])])
    model = g.model(e, SHAPE, SHAPE)
    return model, dict(a=a, b=b, r=r, d=d, c=c, gelu=gelu, y=y, e0=e0)


def _run(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.stack([s.run(None, {"x": xi})[0] for xi in x])


def test_residual_and_se_maps_are_held_in_int8():
    rng = np.random.default_rng(11)  # this file's own: the graph does not depend on which tests ran before
    model, t = _block_model(rng)
    # a, b: Add inputs (a with NNCF's quantizer); r: Add output; d: read by ReduceMean and Mul; c, gelu, y: the
    # second Add's; e0 (GELU input) is not listed
    assert residual_tensors(model) == [t[k] for k in ("a", "b", "r", "d", "gelu", "c", "y")]  # graph order
    calib = rng.uniform(-2, 2, (8, *SHAPE[1:])).astype(np.float32)  # images, as NNCF takes them
    held, info = int8_residuals(model, calib)
    assert (info["reused"], info["added"]) == (3, 4)  # a, r and y had NNCF's quantizers; b, d, c, gelu get new ones
    producer = {o: n for n in held.graph.node for o in n.output}
    readers: dict = {}
    for n in held.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for n in held.graph.node:
        if n.op_type == "Add" and all(i in producer for i in n.input):
            assert all(producer[i].op_type == "DequantizeLinear" for i in n.input), n.name
        if n.op_type == "DequantizeLinear" and producer.get(n.input[0], n).op_type == "QuantizeLinear":
            assert len(readers.get(n.output[0], [])) <= 1, n.name  # one dequantized copy per reader
    for k in ("a", "b", "r", "d", "c", "gelu", "y"):  # nothing reads the float map but quantizers
        assert {n.op_type for n in readers[t[k]]} == {"QuantizeLinear"}, k
    assert {n.op_type for n in readers[t["e0"]]} == {"Mul", "Erf"}
    x = rng.uniform(-2, 2, (4, *SHAPE)).astype(np.float32)
    ref, got = _run(model, x), _run(held, x)
    # a few quantization steps here and there, not a different model
    assert np.sqrt(np.mean((got - ref) ** 2)) < 0.1 * np.sqrt(np.mean(ref ** 2))
    again, info2 = int8_residuals(held, calib)  # idempotent: nothing float is left to hold
    assert info2["added"] == 0


def test_a_graph_without_quantizers_is_refused():
    g = G()
    y = g.node("Add", [g.node("Relu", ["x"]), g.node("Sigmoid", ["x"])])
    with pytest.raises(DataError, match="no per-tensor activation QuantizeLinear"):
        int8_residuals(g.model(y, SHAPE, SHAPE), np.random.default_rng(0).uniform(-1, 1, (2, *SHAPE[1:])).astype(np.float32))
