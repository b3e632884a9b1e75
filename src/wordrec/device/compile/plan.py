"""Read Relax's static memory plan out of `main`: storages (one arena), tensor views, constants, kernel calls.

After the default build pipeline's own memory passes (RewriteDataflowReshape, ToNonDataflow,
RemovePurityChecking, CallTIRRewrite, StaticPlanBlockMemory) `main` is a flat list of
`R.memory.alloc_storage(bytes)` / `R.memory.alloc_tensor(storage, offset, shape)` with constant sizes and
storages reused across non-overlapping lifetimes, followed by kernel calls with the outputs last. The graph input
and the graph output (`R.builtin.alloc_tensor`) are not planned; they become the runner's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wordrec.errors import DataError

ALIGN = 16  # bytes; MVE loads want 16-byte alignment, the C arrays use it too


@dataclass
class Tensor:
    base: str  # "arena" | "const" | "input" | "output"
    offset: int  # bytes into the arena (arena; (storage, offset) until extract() lays the arena out) or const index
    shape: tuple[int, ...]
    dtype: str
    view: bool = False  # an R.reshape of another tensor: same bytes

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass
class Plan:
    storages: list[int] = field(default_factory=list)  # bytes per planned storage
    storage_offsets: list[int] = field(default_factory=list)
    arena_bytes: int = 0
    tensors: list[Tensor] = field(default_factory=list)
    constants: list[np.ndarray] = field(default_factory=list)
    calls: list[tuple[str, list[int]]] = field(default_factory=list)  # kernel name, tensor indices
    externs: set[str] = field(default_factory=set)  # call names that are int8 kernel layers, not TIR kernels
    input: int = -1
    output: int = -1  # tensor index returned by main
    output_buffer: int = -1  # tensor index of R.builtin.alloc_tensor that holds it (or -1: copy needed)

    @property
    def weight_bytes(self) -> int:
        return int(sum(c.nbytes for c in self.constants))

    @property
    def bytes_without_reuse(self) -> int:
        """What one buffer per intermediate tensor would take (the comparison for the plan's reuse)."""
        return sum(t.nbytes for t in self.tensors if t.base == "arena" and not t.view)


def lower_memory(mod):
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential([
        relax.transform.RewriteDataflowReshape(),
        relax.transform.ToNonDataflow(),
        relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(),
        relax.transform.StaticPlanBlockMemory(),
    ])
    return seq(mod)


def _ints(shape_expr) -> tuple[int, ...]:
    return tuple(int(v) for v in shape_expr.values)


def _shape_of(var) -> tuple[int, ...]:
    return tuple(int(v) for v in var.ty.shape)


def extract(mod, externs=()) -> Plan:
    """Walk the planned `main`; anything unexpected is an error naming the binding, never silently dropped.

    externs: names of the extern (int8 kernel) functions the offload introduced; their calls are kept like TIR
    kernel calls (outputs last) and listed in `Plan.externs`."""
    from tvm import ir, relax, tirx

    main = mod["main"]
    plan = Plan()
    env: dict = {}  # relax Var -> tensor index | ("storage", i)
    const_ids: list = []
    if len(main.params) != 1:
        raise DataError(f"planned main: expected one input, got {len(main.params)}")
    x = main.params[0]
    plan.tensors.append(Tensor("input", 0, _shape_of(x), str(x.ty.dtype)))
    env[x] = plan.input = 0

    def arg(a) -> int:
        if isinstance(a, ir.GenericConst):
            for seen, idx in const_ids:  # constants shared by several kernels are emitted once
                if seen.same_as(a):
                    return idx
            data = np.array(a.value.numpy(), order="C")  # not ascontiguousarray: it turns a 0-d scalar into 1-d
            plan.constants.append(data)
            plan.tensors.append(Tensor("const", len(plan.constants) - 1, tuple(data.shape), str(data.dtype)))
            const_ids.append((a, len(plan.tensors) - 1))
            return len(plan.tensors) - 1
        if a in env and isinstance(env[a], int):
            return env[a]
        raise DataError(f"planned main: kernel argument {a} is neither a planned tensor nor a constant")

    for block in main.body.blocks:
        for b in block.bindings:
            v, val = b.var, b.value
            if isinstance(val, relax.Var):
                env[v] = env[val]
                continue
            if isinstance(val, relax.Tuple):  # an extern call's (output, scratch) pair
                env[v] = ("tuple", [arg(f) for f in val.fields])
                continue
            if isinstance(val, relax.TupleGetItem):
                env[v] = env[val.tuple_value][1][int(val.index)]
                continue
            if not isinstance(val, relax.Call):
                raise DataError(f"planned main: unsupported binding {v.name} = {type(val).__name__}")
            op = val.op
            opname = getattr(op, "name", None) if not isinstance(op, relax.GlobalVar) else None
            if opname == "relax.memory.alloc_storage":
                plan.storages.append(_ints(val.args[0])[0])
                env[v] = ("storage", len(plan.storages) - 1)
            elif opname == "relax.memory.alloc_tensor":
                sid = env[val.args[0]][1]
                off = int(val.args[1].value)
                plan.tensors.append(Tensor("arena", (sid, off), _ints(val.args[2]), str(val.args[3].value)))
                env[v] = len(plan.tensors) - 1
            elif opname == "relax.builtin.alloc_tensor":
                plan.tensors.append(Tensor("output", 0, _ints(val.args[0]), str(val.args[1].value)))
                env[v] = len(plan.tensors) - 1
            elif opname == "relax.reshape":  # a view: same bytes, new shape
                src = plan.tensors[arg(val.args[0])]
                plan.tensors.append(Tensor(src.base, src.offset, _shape_of(v), src.dtype, view=True))
                env[v] = len(plan.tensors) - 1
            elif opname in ("relax.memory.kill_storage", "relax.memory.kill_tensor"):
                continue
            elif isinstance(op, relax.GlobalVar) and isinstance(mod[op], tirx.PrimFunc):
                plan.calls.append((op.name_hint, [arg(a) for a in val.args]))
            elif isinstance(op, relax.ExternFunc) and str(op.global_symbol) in externs:
                plan.calls.append((str(op.global_symbol), [arg(a) for a in val.args]))
                plan.externs.add(str(op.global_symbol))
            else:
                raise DataError(f"planned main: unsupported call {op} in binding {v.name}; "
                                "the MCU runner only handles TIR kernel calls and planned allocations")
    ret = main.body.body
    if not (isinstance(ret, relax.Var) and ret in env):
        raise DataError(f"planned main: returns {type(ret).__name__}, expected one tensor")
    plan.output = env[ret]
    outs = [i for i, t in enumerate(plan.tensors) if t.base == "output"]
    if len(outs) > 1:
        raise DataError(f"planned main: {len(outs)} unplanned output buffers, expected one")
    plan.output_buffer = outs[0] if outs and outs[0] == plan.output else -1
    if outs and plan.output_buffer == -1:
        raise DataError("planned main: unplanned buffer is not the graph output")

    plan.storage_offsets, plan.arena_bytes = pack_storages(plan)
    for t in plan.tensors:
        if t.base == "arena":
            sid, o = t.offset
            t.offset = plan.storage_offsets[sid] + o
    return plan


def storage_lifetimes(plan: Plan) -> list[tuple[int, int] | None]:
    """(first, last) kernel-call index touching each storage (None: never used)."""
    life: list[tuple[int, int] | None] = [None] * len(plan.storages)
    for k, (_, args) in enumerate(plan.calls):
        for i in args:
            t = plan.tensors[i]
            if t.base == "arena":
                sid = t.offset[0]
                first = life[sid][0] if life[sid] else k
                life[sid] = (first, k)
    return life


def pack_storages(plan: Plan) -> tuple[list[int], int]:
    """Offsets for Relax's storages in one arena. Relax plans *within* a storage but leaves storages that are never
    live at the same time as separate allocations (its VM allocates them separately); laying them back to back wasted
    arena (crnn_lite: a 10 KB head buffer after the 410 KB first-layer one). Greedy by size, first fit, over
    lifetimes in kernel-call order (what TVM's removed USMP did); no library does this for the Relax plan."""
    life = storage_lifetimes(plan)
    sizes = [-(-size // ALIGN) * ALIGN for size in plan.storages]
    offsets = [0] * len(sizes)
    placed: list[int] = []
    for sid in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if life[sid] is None:
            continue  # never touched by a kernel: needs no bytes of its own
        clashes = sorted((offsets[j], offsets[j] + sizes[j]) for j in placed
                         if life[j][0] <= life[sid][1] and life[sid][0] <= life[j][1])
        off = 0
        for lo, hi in clashes:
            if off + sizes[sid] <= lo:
                break
            off = max(off, hi)
        offsets[sid] = off
        placed.append(sid)
    return offsets, max((offsets[j] + sizes[j] for j in placed), default=0)
