"""The arena layout (compile/plan.py): tensors of any dtype share bytes when their lifetimes are disjoint, and no
two tensors live in the same call ever do."""

from __future__ import annotations

import pytest

from wordrec.device.compile import plan
from wordrec.device.compile.plan import Plan, Tensor, check_arena, pack_tensors
from wordrec.errors import DataError

N = 1024


def _planned_chain():
    """int8 -> float32 -> int8 -> float32 -> relu -> add -> int8 -> out. Relax keeps one int8 storage alive from
    the first call to the last by reusing it (its reuse is per dtype), so its 1 KB never shares with the float
    storages; by lifetime the first int8 tensors are dead before the relu output exists."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, N), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q1 = bb.emit(relax.op.astype(x, "int8"))
            a = bb.emit(relax.op.astype(q1, "float32"))
            q2 = bb.emit(relax.op.astype(a, "int8"))
            b = bb.emit(relax.op.astype(q2, "float32"))
            c = bb.emit(relax.op.nn.relu(b))
            d = bb.emit(relax.op.add(c, b))
            q3 = bb.emit(relax.op.astype(d, "int8"))
            o = bb.emit_output(relax.op.astype(q3, "float32"))
        bb.emit_func_output(o)
    return plan.extract(plan.lower_memory(relax.transform.LegalizeOps()(bb.get())))


def _span(p: Plan, i: int) -> tuple[int, int]:
    return p.tensors[i].offset, p.tensors[i].offset + p.tensors[i].nbytes


def test_int8_and_float_tensors_with_disjoint_lifetimes_share_bytes():
    p = _planned_chain()
    assert sorted(p.storages) == [N, 4 * N, 4 * N, 4 * N]  # Relax: one int8 storage beside three float32 ones
    life = plan.buffer_lifetimes(p)
    assert p.arena_bytes == 3 * 4 * N < sum(p.storages)  # b, relu(b) and their sum are live together; no more
    arena = [i for i in life]
    shared = [(i, j) for i in arena for j in arena
              if p.tensors[i].dtype == "int8" and p.tensors[j].dtype == "float32"
              and max(_span(p, i)[0], _span(p, j)[0]) < min(_span(p, i)[1], _span(p, j)[1])]
    assert shared  # some int8 tensor now sits on bytes a float32 tensor uses at another time
    for i, j in shared:
        assert life[i][1] < life[j][0] or life[j][1] < life[i][0]
    check_arena(p)


def test_check_arena_rejects_live_tensors_that_overlap():
    p = _planned_chain()
    life = plan.buffer_lifetimes(p)
    i, j = next((i, j) for i in life for j in life if i < j and life[i][1] >= life[j][0])  # live in one call
    p.tensors[j].offset = p.tensors[i].offset
    with pytest.raises(DataError, match="overlap while both are live"):
        check_arena(p)


def test_buffers_with_disjoint_lifetimes_share_arena_bytes():
    p = Plan()
    sizes = [400, 100, 16, 32]
    p.tensors = [Tensor("input", 0, (1,), "float32")] + [Tensor("arena", 0, (n // 4,), "float32") for n in sizes]
    # calls: in -> t1; t1 -> t2; t2 -> t3; t3 -> t4 (t1 is dead once t2 is written)
    p.calls = [("k0", [0, 1]), ("k1", [1, 2]), ("k2", [2, 3]), ("k3", [3, 4])]
    offsets, total = pack_tensors(p)
    assert total == 400 + 112  # t1 and t2 overlap in time (t2 aligned to 112); t3 and t4 fit inside t1's bytes
    assert (offsets[1], offsets[2], offsets[4], offsets[3]) == (0, 400, 0, 32)


def test_a_view_shares_its_tensors_bytes_and_lifetime():
    p = Plan()
    p.tensors = [Tensor("input", 0, (1,), "float32"), Tensor("arena", 0, (64,), "float32"),
                 Tensor("arena", 0, (8, 8), "float32", view=True, root=1), Tensor("arena", 0, (64,), "float32"),
                 Tensor("arena", 0, (64,), "float32")]
    # t1 written by k0, read through its view t2 by k2: neither t3 (k1) nor t4 (k2) may land on it
    p.calls = [("k0", [0, 1]), ("k1", [0, 3]), ("k2", [2, 4])]
    offsets, total = pack_tensors(p)
    assert plan.buffer_lifetimes(p)[1] == (0, 2) and 2 not in offsets
    assert total == 2 * 256 and offsets[3] != offsets[1] != offsets[4]  # t3 and t4 are never live together


def test_packing_keeps_the_smallest_of_its_orders():
    """A chain of alternating sizes, as a residual backbone's int8 maps: largest-first places both 64-byte tensors at
    0 and pushes the 32-byte one above the 48-byte one (144 B); first-used-first packs to the 112 B live at the
    peak, and pack_tensors keeps that."""
    p = Plan()
    sizes = [64, 32, 48, 64]
    p.tensors = [Tensor("input", 0, (1,), "float32")] + [Tensor("arena", 0, (n // 4,), "float32") for n in sizes]
    p.calls = [("k0", [0, 1]), ("k1", [1, 2]), ("k2", [2, 3]), ("k3", [3, 4])]
    life = plan.buffer_lifetimes(p)
    size = {b: p.tensors[b].nbytes for b in life}
    assert plan._first_fit(sorted(life, key=lambda i: (-size[i], life[i][0])), size, life)[1] == 144
    offsets, total = pack_tensors(p)
    assert total == 112 == max(size[1] + size[2], size[2] + size[3], size[3] + size[4])
    for i, t in enumerate(p.tensors):
        if i in offsets:
            t.offset = offsets[i]
    p.arena_bytes = total
    check_arena(p)
