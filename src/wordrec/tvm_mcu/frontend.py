"""ONNX -> Relax with a fixed input shape, lowered to fused TIR kernels whose intermediates stay local.

Unscheduled fused TIR kernels ask for their unfused intermediates through `TVMBackendAllocWorkspace`, which a
static arena cannot see (NOTES: TVM and the Cortex-M55). `localize` inlines or computes every non-output block
at its consumer, so each intermediate shrinks to a few scalars (stack) and the Relax plan covers all memory.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx

from wordrec.errors import ConfigError, DataError

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def load_onnx(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ONNX model not found")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf raises several unrelated types
        raise DataError(f"{path}: not a readable ONNX model ({e})") from e


def graph_input(model: onnx.ModelProto) -> str:
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise DataError(f"ONNX graph: expected exactly one data input, found {names}")
    return names[0]


def check_ops(model: onnx.ModelProto, where: str) -> None:
    """Name the ops Relax's ONNX frontend cannot import (LSTM, GRU, QLinearConv, ...) before trying."""
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = set(_get_convert_map())
    bad = sorted({n.op_type for n in model.graph.node} - known)
    if bad:
        raise ConfigError(
            f"{where}: op(s) {bad} not supported by TVM Relax's ONNX frontend; the MCU path needs a conv-only "
            "model (e.g. crnn_lite or svtr, no LSTM/GRU)")


def is_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def import_relax(model: onnx.ModelProto, shape: list[int], where: str):
    """Relax module after the 'zero' pipeline (legalized + fused TIR), with every kernel localized."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    check_ops(model, where)
    name = graph_input(model)
    try:
        mod = from_onnx(model, shape_dict={name: list(shape)}, dtype_dict={name: "float32"})
    except Exception as e:  # the frontend raises bare Exception/ValueError/AssertionError
        raise DataError(f"{where}: TVM Relax could not import the graph at input shape {shape}: {e}") from e
    kinds = compute_dtypes(mod)
    mod = relax.get_pipeline("zero")(mod)
    mod = mod.with_attr("wordrec_compute_dtypes", sorted(kinds))
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tvm.tirx.PrimFunc):
            mod[gv] = localize(func, gv.name_hint)
    return mod


MAC_OPS = ("R.nn.conv1d(", "R.nn.conv2d(", "R.nn.conv2d_transpose(", "R.matmul(", "R.linear(")


def compute_dtypes(mod) -> set[str]:
    """Result dtypes of the MAC-heavy ops as imported (before legalization). Relax imports QDQ ONNX as
    quantize/dequantize around float ops, so a QDQ model still yields {'float32'}: the device kernels are float."""
    kinds = set()
    for line in mod["main"].script().splitlines():
        if "=" in line and any(op in line.split("=", 1)[1] for op in MAC_OPS):
            m = re.search(r'dtype="(\w+)"', line.split(") =", 1)[0])
            if m:
                kinds.add(m.group(1))
    return kinds


def localize(func, name: str):
    """Inline (or compute-at-consumer) every non-output block so no workspace buffer remains."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = {sch.get(b).name_hint for b in sch.get_output_blocks(root)}
    for block in reversed(sch.get_child_blocks(root)):
        blk = sch.get(block)
        if blk.name_hint in outputs:
            continue
        try:
            sch.compute_inline(block)
            continue
        except s_tir.schedule.ScheduleError:
            pass  # reductions (conv, pool, matmul, softmax max/sum) cannot be inlined
        consumers = sch.get_consumers(block)
        if not consumers:
            continue
        loops = sch.get_loops(consumers[0])
        # Attach at the consumer loop matching the block's output rank: the intermediate shrinks to one
        # element per output point without recomputation (deeper would recompute, shallower would grow it).
        rank = len(blk.writes[0].region)
        for depth in range(min(rank, len(loops)) - 1, -1, -1):
            try:
                sch.compute_at(block, loops[depth], preserve_unit_loops=True)
                break
            except s_tir.schedule.ScheduleError:
                continue
    _hoist_inits(sch, root)
    return sch.mod["main"].with_attr("global_symbol", name)


def _hoist_inits(sch, root) -> None:
    """Move each reduction's init out of its reduction loops, so the innermost (MAC) loop has no init branch."""
    from tvm import s_tir

    for block in sch.get_child_blocks(root):
        blk = sch.get(block)
        if blk.init is None:
            continue
        n_red = sum(1 for iv in blk.iter_vars if int(iv.iter_type) == 2)  # IterVar.CommReduce
        loops = sch.get_loops(block)
        if 0 < n_red <= len(loops):
            try:
                sch.decompose_reduction(block, loops[-n_red])  # legalized reductions keep their loops innermost
            except s_tir.schedule.ScheduleError:
                pass  # leave the init inline: correct, just a branch per iteration


def random_input(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)
