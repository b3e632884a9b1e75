"""INT8 weight storage for the device: per-channel symmetric int8 constants, cast to float inside the kernels.

Two steps, because Relax has no int8-weight float-activation op and its FuseOps never fuses an elementwise
producer *into* a conv/matmul (a separate `dequantize(w)` kernel would write a float copy of every weight into
the arena):
1. `scale_out` (Relax ops, before legalization): conv2d(x, W) -> conv2d(x, Q) * s and matmul(x, W) ->
   matmul(x, Q) * s, with W ~= Q * s per output channel and Q integer-valued float32. The per-channel scale
   moves out of the MAC loop into the kernel's epilogue, where FuseOps fuses it with bias and activation.
2. `store_int8` (after FuseOps, before FuseTIR): every integer-valued float constant becomes int8 plus an
   `astype` at the top of its fused function; FuseTIR merges it and `frontend.localize` inlines it into the
   MAC loop. Flash holds int8, no float copy of a weight exists anywhere, and the device still runs float
   kernels. Step 2 is lossless on its own, which is why it needs no bookkeeping from step 1.
"""

from __future__ import annotations

import numpy as np

MIN_ELEMS = 1024  # smaller constants (biases, BN vectors, scales) stay float: their bytes do not matter


def quantize(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-slice int8 along `axis` (conv OIHW: per output channel): w ~= q * s, |q| <= 127."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red, keepdims=True)
    s = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
    return q, s


def _cast_primfunc(shape: list[int]):
    """The legalized TIR of `astype(q: int8, float32)` for this shape (one elementwise kernel)."""
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    q = relax.Var("q", relax.TensorType(shape, "int8"))
    with bb.function("main", [q]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.astype(q, "float32"))
        bb.emit_func_output(out)
    mod = tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FuseOps(), relax.transform.FuseTIR()])(bb.get())
    funcs = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert len(funcs) == 1, "astype legalizes to one kernel"
    return funcs[0]


def scale_out(mod, min_elems: int = MIN_ELEMS):
    """Step 1 on the imported Relax module (see the module docstring)."""
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

    x, w = wildcard(), is_const()

    def rewrite(call, m):
        weight = m[w].value.numpy()
        if weight.dtype != np.float32 or weight.size < min_elems or weight.ndim < 2 or _integral(weight):
            return call  # (rewrite_call repeats until nothing changes: an already-integral weight is done)
        if call.op.name == "relax.nn.conv2d":
            if call.attrs.kernel_layout != "OIHW" or call.attrs.out_layout != "NCHW":
                return call
            axis, s_shape = 0, (1, -1, 1, 1)
        else:
            axis, s_shape = weight.ndim - 1, (-1,)
        q, s = quantize(weight, axis)
        out = relax.Call(call.op, [m[x], relax.const(q.astype(np.float32))], call.attrs, call.ty_args)
        return relax.op.multiply(out, relax.const(s.reshape(s_shape)))

    pattern = is_op("relax.nn.conv2d")(x, w) | is_op("relax.matmul")(x, w)
    mod["main"] = rewrite_call(pattern, rewrite, mod["main"])
    return mod


def _integral(v: np.ndarray) -> bool:
    return v.ndim >= 2 and v.size >= MIN_ELEMS and np.all(np.abs(v) <= 127) and np.all(v == np.rint(v))


def store_int8(mod):
    """Step 2 (see the module docstring). Returns (module, {"int8": n constants, "float": n left float})."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    bb = relax.BlockBuilder(mod)
    kernels: dict = {}
    counts = {"int8": 0, "float": 0}

    def candidate(a) -> bool:
        return isinstance(a, tvm.ir.GenericConst) and str(a.value.dtype) == "float32" and _integral(a.value.numpy())

    @mutator
    class Rewrite(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            func = mod[call.op] if isinstance(call.op, tvm.ir.GlobalVar) else None
            hits = [i for i, a in enumerate(call.args) if candidate(a)]
            blocks = list(func.body.blocks) if isinstance(func, relax.Function) else []
            if hits and not (blocks and isinstance(blocks[0], relax.DataflowBlock)):
                counts["float"] += len(hits)  # a bare call_tir: no fused function to put the cast in
                return call
            if not hits:
                return call
            params, args, pre = [], [], []
            for i, (p, a) in enumerate(zip(func.params, call.args)):
                if i not in hits:
                    params.append(p)
                    args.append(a)
                    continue
                q = a.value.numpy().astype(np.int8)
                if q.shape not in kernels:
                    kernels[q.shape] = bb.add_func(_cast_primfunc(list(q.shape)), "cast_int8")
                pq = relax.Var(p.name + "_q", relax.TensorType(list(q.shape), "int8"))
                params.append(pq)
                args.append(relax.const(q))
                # the old parameter becomes the cast's output, so the fused body is reused unchanged
                pre.append(relax.VarBinding(p, relax.call_tir(kernels[q.shape], [pq], p.ty)))
                counts["int8"] += 1
            blocks[0] = relax.DataflowBlock(pre + list(blocks[0].bindings))
            new = relax.Function(params, relax.SeqExpr(blocks, func.body.body), func.ret_ty, func.is_pure,
                                 func.attrs)
            return relax.Call(bb.add_func(new, call.op.name_hint + "_w8"), args, call.attrs, call.ty_args)

    main = Rewrite(bb.get()).visit_expr(mod["main"])
    out = bb.get()
    out["main"] = main
    return relax.transform.DeadCodeElimination()(out), counts
