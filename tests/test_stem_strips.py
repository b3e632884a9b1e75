"""The input stem run in vertical strips (compile/strips.py): the same outputs bit for bit, a smaller arena, and a
refusal when the strips would not be exact."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from test_int8_float_out import RNG, G, _build, _w  # noqa: F401  (the tiny QDQ graph builder)
from wordrec.device.compile import strips
from wordrec.errors import ConfigError, DataError

SHAPE = [1, 3, 16, 64]


def _stem_model():
    """ppocrv6_small's stem in small: 3x3/2 conv -> {2x2 SAME conv -> 2x2 SAME conv, 2x2 SAME max pool} -> concat ->
    3x3/2 conv (the cut: 4x narrower) -> a 1x1 conv and a float head."""
    s, z = np.float32(0.02), -4
    g = G()
    xd = g.qdq("x", s, z)

    def conv(x, co, ci, k, **attrs):
        ws = RNG.uniform(0.004, 0.02, co).astype(np.float32)
        b = g.const(RNG.uniform(-0.5, 0.5, co).astype(np.float32))
        return g.node("Relu", [g.node("Conv", [x, g.wdq(_w(co, ci, k, k), ws), b], kernel_shape=[k, k], **attrs)])

    q = np.float32(0.05)
    r0 = g.qdq(conv(xd, 16, 3, 3, strides=[2, 2], pads=[1, 1, 1, 1]), q, -128)
    r1 = g.qdq(conv(r0, 8, 16, 2, auto_pad="SAME_UPPER"), q, -128)
    r2 = g.qdq(conv(r1, 16, 8, 2, auto_pad="SAME_UPPER"), q, -128)
    pool = g.node("MaxPool", [r0], kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER")
    cat = g.node("Concat", [pool, r2], axis=1)
    r3 = g.qdq(conv(cat, 8, 32, 3, strides=[2, 2], pads=[1, 1, 1, 1]), q, -128)
    y = g.node("Conv", [g.qdq(conv(r3, 12, 8, 1), q, -128), g.wdq(_w(5, 12, 1, 1),
                                                                   RNG.uniform(0.004, 0.02, 5).astype(np.float32))],
               kernel_shape=[1, 1])
    return g.model(y, SHAPE, [1, 5, 4, 16])


def test_strips_compute_the_same_outputs_in_a_smaller_arena(tmp_path):
    model = _stem_model()
    tiled = strips.tile_stem(model, SHAPE, 4)
    convs = [n for n in tiled.graph.node if n.op_type == "Conv"]
    assert len(convs) == 4 * 4 + 2  # the four stem convs once per strip, the two after the cut once
    x = RNG.uniform(-1, 1, (3, *SHAPE)).astype(np.float32)
    sess = {k: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            for k, m in (("whole", model), ("tiled", tiled))}
    ref = [sess["whole"].run(None, {"x": xi})[0] for xi in x]
    assert all(np.array_equal(r, sess["tiled"].run(None, {"x": xi})[0]) for r, xi in zip(ref, x))
    # compiled: the int8 kernels give the same bits either way, and the stem's maps no longer coexist
    _, whole_plan, whole = _build(model, SHAPE, tmp_path / "whole")
    _, tiled_plan, tiled_run = _build(tiled, SHAPE, tmp_path / "tiled")
    assert np.array_equal(whole.probs(x).view(np.uint32), tiled_run.probs(x).view(np.uint32))
    # (the quantized input, 3 KB, stays live through all strips: they slice it)
    assert tiled_plan.arena_bytes < 0.7 * whole_plan.arena_bytes


def test_the_receptive_field_is_what_the_windows_add_up_to():
    model = _stem_model()
    start, end, region = strips.find_stem(model, 4, strips._shape_map(model, SHAPE))
    # 3x3/2 pad 1: [2c - 1, 2c + 1]; 2x2 SAME twice on one branch: + 2 columns right at stride 2; 3x3/2: x2 again
    assert strips._field(region, start, end) == strips.Field(4, 3, 7)
    assert [n.op_type for n in region][-1] == "QuantizeLinear"


def test_a_too_small_overlap_is_caught_by_the_bit_exact_check(monkeypatch):
    """With one column less of overlap on each side, a strip's border columns read its zero padding instead of its
    neighbour's pixels: the check against the untiled graph must refuse the tiling."""
    real = strips._field
    monkeypatch.setattr(strips, "_field", lambda *a: (lambda f: strips.Field(f.stride, f.left - 2, f.right - 2))(
        real(*a)))
    with pytest.raises(DataError, match="differs from the original"):
        strips.tile_stem(_stem_model(), SHAPE, 4)


def test_bad_strip_counts_and_graphs_without_a_stem_are_refused():
    with pytest.raises(ConfigError, match="stem_strips"):
        strips.tile_stem(_stem_model(), SHAPE, 1)
    with pytest.raises(ConfigError, match="strips of a 16-column"):
        strips.tile_stem(_stem_model(), SHAPE, 17)
    g = G()  # a global reduction right after the input: nothing to tile
    y = g.node("ReduceMean", [g.qdq("x", np.float32(0.02), 0)], axes=[2, 3])
    with pytest.raises(DataError, match="no single int8 tensor"):
        strips.tile_stem(g.model(y, SHAPE, [1, 3, 1, 1]), SHAPE, 4)
