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


def freeze_reshapes(model: onnx.ModelProto, shape: list[int]) -> onnx.ModelProto:
    """A copy whose Reshape targets are constants computed at the input `shape` (the graph unchanged otherwise).

    Exported PaddleOCR graphs compute reshape targets at run time (Shape -> Slice/Gather -> Cast -> Concat);
    Relax's importer folds such chains only when every step is constant-foldable, and for PP-OCRv4's neck it is
    not (`Reshape requires the input new shape to be Shape`). At a fixed input shape the targets are constants:
    onnxruntime evaluates them once on a zero input. Returns `model` itself when every target is already constant.
    """
    import onnxruntime
    from onnx import numpy_helper

    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    targets = sorted({n.input[1] for n in model.graph.node if n.op_type == "Reshape" and n.input[1] not in consts})
    if not targets:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for t in targets:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.INT64, None))
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    try:
        sess = onnxruntime.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        values = sess.run(targets, {graph_input(model): np.zeros(shape, np.float32)})
    except Exception as e:  # onnxruntime raises its own exception types
        raise DataError(f"ONNX graph: could not evaluate its run-time reshape targets at input shape {shape}: "
                        f"{e}") from e
    out = onnx.ModelProto()
    out.CopyFrom(model)
    frozen = {}
    for t, v in zip(targets, values):
        frozen[t] = f"{t}__at_{'x'.join(map(str, shape))}"
        out.graph.initializer.append(numpy_helper.from_array(np.asarray(v, np.int64), frozen[t]))
    for n in out.graph.node:
        if n.op_type == "Reshape" and n.input[1] in frozen:
            n.input[1] = frozen[n.input[1]]
    return out


def is_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def import_relax(model: onnx.ModelProto, shape: list[int], where: str, pad_in_arena: bool = False,
                 weights: str = "float32", offloader=None):
    """Relax module after the 'zero' pipeline (legalized + fused TIR), with every kernel localized.

    weights: "float32", or "int8" to store large constants as per-channel int8 dequantized inside the kernels
    (tvm_mcu.weights; the attribute `wordrec_weight_stats` counts the constants stored as int8 / left float).

    offloader: a wordrec.device.compile.offload.Offloader: the QDQ graph's quantized blocks become calls of the
    int8 kernels (its `layers` then describe them); the rest is lowered as usual.

    pad_in_arena: give each padded conv its own `pad` kernel whose output Relax plans into the arena, and compute
    conv outputs ACC_WIDTH at a time. The conv's loads are then unguarded and gcc vectorizes the inner loop with
    MVE: measured 2.3-3.3x fewer executed instructions, identical outputs, but a larger arena (padded copies).
    """
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    check_ops(model, where)
    name = graph_input(model)
    model = freeze_reshapes(model, shape)
    if offloader is not None:
        from wordrec.device.compile.offload import explicit_same_pads, int8_activations

        model = explicit_same_pads(int8_activations(model))
    try:
        mod = from_onnx(model, shape_dict={name: list(shape)}, dtype_dict={name: "float32"})
    except Exception as e:  # the frontend raises bare Exception/ValueError/AssertionError
        raise DataError(f"{where}: TVM Relax could not import the graph at input shape {shape}: {e}") from e
    kinds = compute_dtypes(mod)
    if offloader is not None:
        mod = offloader.rewrite(mod)
    if weights not in ("float32", "int8"):
        raise ConfigError(f"compile.weights: {weights!r} reached the import unresolved, expected float32 or int8")
    if weights == "int8":
        from wordrec.device.compile import weights as w8

        mod = w8.scale_out(relax.transform.FoldConstant()(mod))
    if pad_in_arena:
        mod = split_conv_padding(mod)
    # relax.get_pipeline("zero"), with room for the int8 weight rewrite between FuseOps and FuseTIR
    mod = tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FoldConstant(), relax.transform.FuseOps()])(mod)
    stats = {"int8": 0, "float": 0}
    if weights == "int8":
        mod, stats = w8.store_int8(mod)
    mod = relax.transform.FuseTIR()(mod)
    mod = mod.with_attr("wordrec_compute_dtypes", sorted(kinds))
    mod = mod.with_attr("wordrec_weight_stats", stats)
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tvm.tirx.PrimFunc):
            mod[gv] = localize(func, gv.name_hint, ACC_WIDTH if pad_in_arena else 0)
    return mod


ACC_WIDTH = 16  # conv outputs per accumulator row: 16 floats = 4 MVE vectors; 8 and 32 measured slower


def split_conv_padding(mod):
    """conv2d(x, padding=p) -> conv2d(pad(x, p), padding=0): the pad becomes a separate, planned kernel."""
    from tvm import relax
    from tvm.relax.dpl import is_op, rewrite_call, wildcard

    x, w = wildcard(), wildcard()

    def rewrite(call, m):
        a = call.attrs
        top, left, bottom, right = (int(v) for v in a.padding)
        if not (top or left or bottom or right):
            return call
        padded = relax.op.nn.pad(m[x], [0, 0, 0, 0, top, bottom, left, right])
        return relax.op.nn.conv2d(padded, m[w], strides=a.strides, padding=[0, 0, 0, 0], dilation=a.dilation,
                                  groups=a.groups, data_layout=a.data_layout, kernel_layout=a.kernel_layout,
                                  out_layout=a.out_layout, out_dtype=a.out_dtype)

    mod["main"] = rewrite_call(is_op("relax.nn.conv2d")(x, w), rewrite, mod["main"])
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


def localize(func, name: str, acc_width: int = 0):
    """Inline (or compute-at-consumer) every non-output block so no workspace buffer remains.

    acc_width > 0: a conv/pool-like reduction (rank >= 3) is computed acc_width outputs at a time with the
    output-width loop innermost (same summation order per output, so results are unchanged)."""
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
        if acc_width:
            trial = sch.copy()  # same random variables; a failed attempt leaves `sch` untouched
            if _row_accumulate(trial, block, blk, trial.get_loops(consumers[0]), acc_width):
                sch = trial
                continue
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


def _row_accumulate(sch, block, blk, loops, width: int) -> bool:
    from tvm import s_tir

    rank = len(blk.writes[0].region)
    n_red = sum(1 for iv in blk.iter_vars if int(iv.iter_type) == 2)
    if rank < 3 or not n_red or len(loops) < rank:
        return False
    extent = int(sch.get(loops[rank - 1]).extent)
    if extent % width or extent <= width:
        return False
    try:
        outer, _ = sch.split(loops[rank - 1], [None, width])
        sch.compute_at(block, outer, preserve_unit_loops=True)
        own = sch.get_loops(block)
        sch.reorder(*own[-n_red:], own[-n_red - 1])  # reduction loops outside, the width loop innermost
        sch.decompose_reduction(block, sch.get_loops(block)[-n_red - 1])
        return True
    except s_tir.schedule.ScheduleError:
        return False  # the caller discards this schedule copy and falls back to plain compute_at


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
