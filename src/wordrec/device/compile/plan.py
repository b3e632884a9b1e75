"""Read Relax's static memory plan out of `main`: storages (one arena), tensor views, constants, kernel calls.

After the default build pipeline's own memory passes (RewriteDataflowReshape, ToNonDataflow,
RemovePurityChecking, CallTIRRewrite, StaticPlanBlockMemory) `main` is a flat list of
`R.memory.alloc_storage(bytes)` / `R.memory.alloc_tensor(storage, offset, shape)` with constant sizes and
storages reused across non-overlapping lifetimes, followed by kernel calls with the outputs last. The graph input
and the graph output (`R.builtin.alloc_tensor`) are not planned; they become the runner's arguments.

Relax's storages are not the arena layout: `pack_tensors` places every planned tensor itself (see there for why).
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
    root: int = -1  # a view: index of the tensor that owns its bytes

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass
class Plan:
    storages: list[int] = field(default_factory=list)  # bytes per storage Relax planned (not the arena layout)
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

    by_content: dict = {}  # (dtype, shape, bytes) -> tensor index

    def arg(a) -> int:
        if isinstance(a, ir.GenericConst):
            for seen, idx in const_ids:  # constants shared by several kernels are emitted once
                if seen.same_as(a):
                    return idx
            data = np.array(a.value.numpy(), order="C")  # not ascontiguousarray: it turns a 0-d scalar into 1-d
            # and so are equal copies (the stem strips' layers repack the same weights once per strip)
            key = (str(data.dtype), data.shape, data.tobytes())
            if key in by_content:
                const_ids.append((a, by_content[key]))
                return by_content[key]
            plan.constants.append(data)
            plan.tensors.append(Tensor("const", len(plan.constants) - 1, tuple(data.shape), str(data.dtype)))
            const_ids.append((a, len(plan.tensors) - 1))
            by_content[key] = len(plan.tensors) - 1
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
                si = arg(val.args[0])
                src = plan.tensors[si]
                plan.tensors.append(Tensor(src.base, src.offset, _shape_of(v), src.dtype, view=True,
                                           root=src.root if src.view else si))
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

    offsets, plan.arena_bytes = pack_tensors(plan)
    for i, t in enumerate(plan.tensors):
        if t.base == "arena":
            t.offset = offsets.get(t.root if t.view else i, 0)  # a tensor no kernel touches needs no bytes
    check_arena(plan)
    return plan


def buffer_lifetimes(plan: Plan) -> dict[int, tuple[int, int]]:
    """(first, last) kernel-call index for each arena tensor that owns bytes (its views count as it). A graph
    output that is a view into the arena stays live after the last call: the runner copies it out then."""
    life: dict[int, tuple[int, int]] = {}

    def touch(i: int, k: int):
        t = plan.tensors[i]
        if t.base == "arena":
            b = t.root if t.view else i
            life[b] = (life.get(b, (k, k))[0], k)  # calls come in order, so k is the latest use so far

    for k, (_, args) in enumerate(plan.calls):
        for i in args:
            touch(i, k)
    if plan.output >= 0:
        touch(plan.output, len(plan.calls))
    return life


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def pack_tensors(plan: Plan) -> tuple[dict[int, int], int]:
    """Arena offsets for the planned tensors: first fit over lifetimes in kernel-call order, trying the tensors in
    a few orders and keeping the smallest arena (the first on a tie): largest first (TVM's removed USMP, TFLM's
    greedy planner), first used first (a linear scan: it packs a long chain of similar-size tensors, where
    largest-first leaves gaps -- ppocrv6_small's int8 build: 491,520 B largest-first, 370,176 B first-used-first,
    against 368,656 B live at the peak), and largest size x lifetime first.

    Hand-written because Relax's StaticPlanBlockMemory reuses a storage only for a tensor of the same dtype
    (TokenAllocator1D keys its free pool by (scope, dtype)) and only whole (one live tensor per storage), so an
    int8 build's float32 and int8 storages, each kept alive by a chain of reuses, never shared bytes
    (ppocrv6_small: 1.50 MB where 1.11 MB was live at once). Placing tensors, not Relax's storages, lets any two
    tensors whose lifetimes are disjoint share bytes whatever their dtypes."""
    life = buffer_lifetimes(plan)
    size = {b: _padded(plan.tensors[b].nbytes) for b in life}
    orders = (sorted(life, key=lambda i: (-size[i], life[i][0])),
              sorted(life, key=lambda i: (life[i][0], -size[i])),
              sorted(life, key=lambda i: (-size[i] * (life[i][1] - life[i][0] + 1), life[i][0])))
    best: tuple[dict[int, int], int] | None = None
    for order in orders:
        offsets, end = _first_fit(order, size, life)
        if best is None or end < best[1]:
            best = (offsets, end)
    return best if best is not None else ({}, 0)


def _first_fit(order, size: dict[int, int], life: dict[int, tuple[int, int]]) -> tuple[dict[int, int], int]:
    offsets: dict[int, int] = {}
    end = 0
    for b in order:
        clashes = sorted((offsets[j], offsets[j] + size[j]) for j in offsets
                         if life[j][0] <= life[b][1] and life[b][0] <= life[j][1])
        off = 0
        for lo, hi in clashes:
            if off + size[b] <= lo:
                break
            off = max(off, hi)
        offsets[b] = off
        end = max(end, off + size[b])
    return offsets, end


def check_arena(plan: Plan) -> None:
    """Every tensor a kernel touches lies inside the arena (a view inside its owner), and no two tensors live in
    the same call share a byte; DataError otherwise. Cheap enough to run on every plan extract() lays out."""
    life = buffer_lifetimes(plan)
    for i, t in enumerate(plan.tensors):
        if t.base == "arena" and t.view and t.root in life and t.nbytes > plan.tensors[t.root].nbytes:
            raise DataError(f"arena plan: view t{i} ({t.nbytes} B) is larger than its tensor t{t.root}")
    spans = sorted((plan.tensors[b].offset, plan.tensors[b].offset + plan.tensors[b].nbytes, b) for b in life)
    for lo, hi, b in spans:
        if lo < 0 or hi > plan.arena_bytes or lo % ALIGN:
            raise DataError(f"arena plan: t{b} at [{lo}, {hi}) is outside the {plan.arena_bytes}-byte arena "
                            f"or not {ALIGN}-byte aligned")
    for n, (lo, hi, b) in enumerate(spans):
        for lo2, hi2, b2 in spans[n + 1:]:
            if lo2 >= hi:
                break
            if life[b][0] <= life[b2][1] and life[b2][0] <= life[b][1]:
                raise DataError(f"arena plan: t{b} [{lo}, {hi}) and t{b2} [{lo2}, {hi2}) overlap while both "
                                f"are live (calls {life[b]} and {life[b2]})")
