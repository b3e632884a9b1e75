"""Offload the quantized blocks of a QDQ ONNX to the project's int8 kernels (wordrec/device/kernels/wrnn.h).

Relax imports a QDQ graph as float fake-quant: `quantize`/`dequantize` around float conv2d. Here, inside Relax,
dataflow-pattern rewrites (tvm.relax.dpl) replace each block

    quantize(relu?(conv2d(dequantize(x), dequantize(W)) + bias), s_out, zp_out)

by a `call_dps_packed` of an extern function named `wrnn_<layer>` that takes the int8 input in NHWC, the OHWI
int8 weights, the int32 bias, per-channel Q31 multipliers and shifts as constants and returns the int8 output in
NHWC (plus a scratch tensor, so Relax's static plan also places the kernels' im2col buffers). Everything else
stays float Relax -> TIR as before. After CallTIRRewrite the extern calls appear in `main` beside the TIR calls;
`plan.extract` records them and `emit` writes a direct wrnn_* call with the layer's `Layer` spec.

Layout: the wrnn kernels want NHWC activations and OHWI weights, Relax's ONNX import is NCHW. Weights are
repacked once at compile time (they are constants). Activations get a permute_dims NCHW->NHWC before and
NHWC->NCHW after each integer op, and adjacent inverse pairs are then cancelled, so a chain of integer ops runs
NHWC end to end with one transpose at each boundary to float (relax.transform.ConvertLayout does not know the
extern calls or quantize/dequantize axes, and would move the float parts too).

Max pooling between quantized convs (DQ -> MaxPool -> conv, what onnxruntime's quantizer writes) is moved before
the dequantize: max commutes with a dequantize whose scale is positive, so an int8 max_pool2d (NHWC, TIR) gives
exactly the values the float graph sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np
import onnx
from onnx import numpy_helper

from wordrec.device import int8_ref
from wordrec.errors import DataError

NCHW_TO_NHWC = [0, 2, 3, 1]
NHWC_TO_NCHW = [0, 3, 1, 2]


@dataclass
class Layer:
    """One offloaded call: everything `emit` needs besides the tensors (input, weights, bias, mult, shift, out,
    scratch in that order)."""
    name: str
    op: str  # "conv" (wrnn_conv_s8) | "conv1x1" (wrnn_conv1x1_s8)
    geom: dict  # wrnn_geom fields
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    macs: int
    scratch_bytes: int = 0
    onnx_name: str = ""
    extra: dict = field(default_factory=dict)


def int8_activations(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every uint8 Q/DQ zero point z becomes int8 z - 128 (and Q/DQ outputs int8).

    onnxruntime's quantizer writes uint8 activations; the wrnn kernels are int8-only. q_u8 = clamp(round(x/s) + z,
    0, 255) and q_s8 = clamp(round(x/s) + z - 128, -128, 127) are the same numbers shifted by 128, and
    dequantize gives the same real value for both, so the rewritten graph computes exactly the same function."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    used = {n.input[2] for n in out.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and len(n.input) > 2}
    for init in out.graph.initializer:
        if init.name in used and init.data_type == onnx.TensorProto.UINT8:
            z = numpy_helper.to_array(init).astype(np.int16) - 128
            init.CopyFrom(numpy_helper.from_array(z.astype(np.int8), init.name))
    for node in out.graph.node:  # zero points given as Constant nodes
        if node.op_type == "Constant" and node.output[0] in used:
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == onnx.TensorProto.UINT8:
                    z = numpy_helper.to_array(a.t).astype(np.int16) - 128
                    a.t.CopyFrom(numpy_helper.from_array(z.astype(np.int8), a.t.name))
    return out


def explicit_same_pads(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where each stride-1, dilation-1 Conv with auto_pad SAME_UPPER/SAME_LOWER gets the equivalent explicit
    `pads` (total k - 1 per axis, the odd one at the end for SAME_UPPER). Relax's ONNX import lowers auto_pad to a
    separate float pad before the conv, which hides the conv from the int8 pattern (PP-OCRv6's 2x2 stem convs);
    with explicit pads the kernels pad with the input zero point, which dequantizes to the same 0."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for n in out.graph.node:
        if n.op_type != "Conv":
            continue
        att = {a.name: a for a in n.attribute}
        auto = att["auto_pad"].s.decode() if "auto_pad" in att else "NOTSET"
        if auto not in ("SAME_UPPER", "SAME_LOWER") or "kernel_shape" not in att:
            continue
        ks = list(att["kernel_shape"].ints)
        if any(v != 1 for v in (att["strides"].ints if "strides" in att else [])) \
                or any(v != 1 for v in (att["dilations"].ints if "dilations" in att else [])):
            continue
        total = [k - 1 for k in ks]
        small = [t // 2 for t in total]
        begin = small if auto == "SAME_UPPER" else [t - s for t, s in zip(total, small)]
        end = [t - b for t, b in zip(total, begin)]
        n.attribute.remove(att["auto_pad"])
        if "pads" in att:
            n.attribute.remove(att["pads"])
        n.attribute.append(onnx.helper.make_attribute("pads", begin + end))
    return out


def _const(expr) -> np.ndarray | None:
    from tvm import ir

    if isinstance(expr, ir.GenericConst):
        return expr.value.numpy()
    return None


def _bias_values(expr, channels: int) -> np.ndarray | None:
    """Bias as float per output channel (the pattern matched the constant inside its reshape)."""
    v = _const(expr)
    if v is None or v.size != channels or v.dtype != np.float32:
        return None
    return v.reshape(channels).astype(np.float64)


def _dataflow(func):
    """(var -> bound value, var -> the vars of the bindings that use it, val: an expression's bound value when it
    is a var) over the function's dataflow blocks: what the fusing passes look up."""
    from tvm import relax
    from tvm.relax.analysis import get_var2val, udchain

    v2v = get_var2val(func)
    users: dict = {}
    for block in func.body.blocks:
        if isinstance(block, relax.DataflowBlock):
            for var, uses in udchain(block).items():
                users[var] = list(uses)

    def val(e):
        return v2v.get(e, e) if isinstance(e, relax.Var) else e

    return v2v, users, val


def tvm_c_float(v) -> np.float32:
    """The float32 a TVM-generated C loop computes with for float32 constant v: TVM's C codegen prints it as a
    literal with "%.6e" (7 significant digits; checked on this TVM: 0.0124393096 -> 1.243931e-02f, 1.0000001 ->
    1.000000e+00f) and the C compiler rounds that decimal to the nearest float32, ties to even. Rounded here from
    the exact decimal (decimal -> double -> float could round twice)."""
    exact = Fraction(Decimal(f"{float(np.float32(v)):.6e}"))
    c = np.float32(float(exact))
    near = [np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))]
    return min(near, key=lambda f: (abs(Fraction(float(f)) - exact), int(np.asarray(f).view(np.uint32)) & 1))


def _scalar(expr) -> float | None:
    v = _const(expr)
    return None if v is None or v.size != 1 else float(v.reshape(()))


def _dq_operands(m, p, *, per_channel_x: bool = False):
    """The constants of conv/matmul(DQ(x, sx, zx), DQ(w, sw, zw)) as matched: (w, sw, zw, sx, zx), None where not a
    constant. sx/zx as floats (per tensor) or, for per_channel_x (depthwise), arrays whose size the caller checks."""
    act = _const if per_channel_x else _scalar
    return _const(m[p["w"]]), _const(m[p["sw"]]), _const(m[p["zw"]]), act(m[p["sx"]]), act(m[p["zx"]])


def _weight_reason(wq, ws, wz, what: str = "constant int8", shape_ok=None) -> str | None:
    """Why the DQ'd weights cannot go to the kernels (constant int8, symmetric), or None; shape_ok(wq) is only
    called on a constant int8 wq."""
    if wq is None or ws is None or wz is None or wq.dtype != np.int8 or (shape_ok is not None and not shape_ok(wq)):
        return f"weights are not {what}"
    if np.any(wz != 0):
        return "weights are not symmetric (zero point != 0)"
    return None


def _conv2d_reason(a) -> str | None:
    """Why a (non-depthwise) conv2d's attributes are outside the kernels (dense, undilated, NCHW/OIHW), or None."""
    if a.groups != 1 or any(int(d) != 1 for d in a.dilation) or a.data_layout != "NCHW" or a.kernel_layout != "OIHW":
        return f"groups {a.groups}, dilation {list(a.dilation)} not offloaded"
    return None


def _gelu_table(layer: Layer, erf_div: float, out_scale: float, out_zp: float) -> np.ndarray:
    """The GELU + Q step table of the graph's constants (int8_ref.gelu_table); its size goes to the layer's extra
    (layers.csv) and any failure names the layer."""
    try:
        table = int8_ref.gelu_table(erf_div, out_scale, int(out_zp))
    except DataError as e:
        raise DataError(f"{layer.onnx_name or layer.name}: {e}") from e
    layer.extra.update(gelu_bins=int(table[0]))
    return table


class Offloader:
    """Holds the layer specs created while rewriting one module (emit needs them by extern name)."""

    def __init__(self, fuse_gelu: bool = True, quantize: bool = True, fuse_mlp: bool = True, dq_add: bool = True):
        self.layers: dict[str, Layer] = {}
        self.skipped: list[str] = []  # quantized convs left float, with the reason
        self.fuse_gelu = fuse_gelu  # False: the unfused conv1x1_f32 + gelu calls (the fused kernel's reference)
        self.fuse_mlp = fuse_mlp  # False: the MLP pair as two calls (wrnn_mlp_s8's reference)
        self.dq_add = dq_add  # False: int8 residual adds stay TVM C (wrnn_add_dq_s8's reference)
        self.quantize = quantize  # False: per-channel quantizes stay TVM C (wrnn_quantize_f32's reference)
        self._count = 0

    def _name(self) -> str:
        """A fresh extern name (counted, not len(layers): fusing removes the conv's layer)."""
        self._count += 1
        return f"wrnn_L{self._count - 1}"

    def rewrite(self, mod):
        from tvm.relax.dpl import is_op, is_tuple, rewrite_call, wildcard

        func = mod["main"]
        # 1. maxpool(dequantize(x)) -> dequantize(maxpool_int8(x)), NHWC
        xp, sp, zp = wildcard(), wildcard(), wildcard()
        pool = is_op("relax.nn.max_pool2d")(is_op("relax.dequantize")(xp, sp, zp))
        func = rewrite_call(pool, lambda call, m: self._pool(call, m, xp, sp, zp), func)
        # 1b. concat(DQ(a), DQ(b)) with one scale and zero point -> DQ(concat(a, b)) (exact: the same affine map)
        ca, sa, za, cb, sb, zb = (wildcard() for _ in range(6))
        cat = is_op("relax.concat")(is_tuple([is_op("relax.dequantize")(ca, sa, za),
                                              is_op("relax.dequantize")(cb, sb, zb)]))
        func = rewrite_call(cat, lambda call, m: self._concat(call, m, (ca, sa, za), (cb, sb, zb)), func)
        # 2. the quantized conv blocks
        x, sx, zx = wildcard(), wildcard(), wildcard()
        w, sw, zw = wildcard(), wildcard(), wildcard()
        conv = is_op("relax.nn.conv2d")(is_op("relax.dequantize")(x, sx, zx), is_op("relax.dequantize")(w, sw, zw))
        bias = wildcard()
        biased = is_op("relax.add")(conv, is_op("relax.reshape")(bias, wildcard()) | bias)
        pre = biased | conv
        relu = is_op("relax.nn.relu")(pre)
        act = relu | pre
        so, zo = wildcard(), wildcard()
        root = is_op("relax.quantize")(act, so, zo)
        pats = dict(x=x, sx=sx, zx=zx, w=w, sw=sw, zw=zw, conv=conv, biased=biased, bias=bias, relu=relu, so=so, zo=zo)
        func = rewrite_call(root, lambda call, m: self._conv(call, m, pats), func)
        # 2b. quantized-input convs whose output stays float (NNCF's QDQ: DQ -> conv -> GELU / residual add in
        # float): conv2d(DQ(x), DQ(W)) (+ bias) -> wrnn_*_s8_f32, biased ones first (so the bias is fused)
        func = rewrite_call(biased, lambda call, m: self._conv_f32(call, m, pats), func)
        # what is still left is listed once, with the reason of this last pass (the earlier passes' reasons are
        # superseded: e.g. a per-channel output quantizer makes the requantizing pattern fail, this one take it)
        self.skipped = []
        func = rewrite_call(conv, lambda call, m: self._conv_f32(call, m, pats), func)
        # 2c. fully connected with constant quantized weights and a float output (Gemm / MatMul by a DQ'd constant
        # [K, N], + bias): matmul(DQ(x), DQ(W)) (+ b) -> wrnn_conv1x1_s8_f32 over the M rows (W transposed once)
        fx, fsx, fzx, fw, fsw, fzw, fb = (wildcard() for _ in range(7))
        mm = is_op("relax.matmul")(is_op("relax.dequantize")(fx, fsx, fzx), is_op("relax.dequantize")(fw, fsw, fzw))
        mmb = is_op("relax.add")(mm, fb)
        fp = dict(x=fx, sx=fsx, zx=fzx, w=fw, sw=fsw, zw=fzw, mm=mm, biased=mmb, bias=fb)
        before = len(self.skipped)
        func = rewrite_call(mmb, lambda call, m: self._fc_f32(call, m, fp), func)
        del self.skipped[before:]
        func = rewrite_call(mm, lambda call, m: self._fc_f32(call, m, fp), func)
        # 2c'. attention's Q.K^T: matmul(DQ(a), permute_dims(DQ(b)) swapping the last two axes), both activations,
        # float output (into softmax) -> wrnn_matmul_s8s8_f32 (B's rows are K's rows: the transpose is the layout)
        qa, qsa, qza, kb, ksb, kzb = (wildcard() for _ in range(6))
        kt = is_op("relax.permute_dims")(is_op("relax.dequantize")(kb, ksb, kzb))
        qk = is_op("relax.matmul")(is_op("relax.dequantize")(qa, qsa, qza), kt)
        ap = dict(a=qa, sa=qsa, za=qza, b=kb, sb=ksb, zb=kzb, kt=kt)
        func = rewrite_call(qk, lambda call, m: self._matmul_f32(call, m, ap), func)
        # 2d. sink the NHWC->NCHW permute_dims after each float-output kernel through the elementwise float tail
        # (GELU, bias/scale, quantize) so that it meets the NCHW->NHWC permute of the next int8 kernel and the pair
        # cancels below: the tail then runs on contiguous NHWC data with no transposes
        func = sink_permutes(func)
        # 2e. quantize(x * (erf(x / c) + 1)) (GELU, per-tensor output) -> wrnn_gelu_s8 (a step table, no erf), or, where
        # x is the output of a float-output 1x1 conv / FC used by nothing else, one wrnn_conv1x1_s8_gelu_s8 that
        # writes the int8 directly: the float tensor between them (4 bytes per element, the largest tensors of
        # ppocrv6_small's MLP blocks) leaves the arena plan
        func = self._gelu_pass(func)
        # 3. permute_dims(permute_dims(v, p), q) with q o p = identity -> v
        v = wildcard()
        inner = is_op("relax.permute_dims")(v)
        pair = is_op("relax.permute_dims")(inner)
        func = rewrite_call(pair, lambda call, m: self._cancel(call, m[inner], m[v]), func)
        # 3b. reductions that read an int8 tensor through its dequantize (an SE block's spatial mean; the average
        # pool before the neck) read it there, in the reduction's own loop, instead of through a float copy of the
        # whole map (module doc of this pass: _int8_reductions)
        func = self._int8_reductions(func)
        # 3c. a residual block's MLP pair, wrnn_conv1x1_s8_gelu_s8 -> wrnn_conv1x1_s8 with nothing else reading the
        # hidden map, -> one wrnn_mlp_s8 call in pixel bands: the hidden map (twice the block's width; with the
        # block's input and output the arena's peak) never exists whole
        if self.fuse_mlp:
            func = self._mlp_pass(func)
        # 4. quantize(a + b) / quantize(relu(a)) / quantize(a), channel last, of float tensors the plan holds anyway
        # (a kernel's float output, or a value something else reads too) -> wrnn_quantize_f32: TVM's C loops took
        # 17-23 instructions per element (a divide each), the kernel ~5; nothing new is stored
        if self.quantize:
            func = self._quantize_pass(func)
        # 4b. quantize(DQ(a) + DQ(b)) of two int8 maps (a residual add held in int8) -> wrnn_add_dq_s8, the same
        # arithmetic as TVM's loop with TVM's own constants (tvm_c_float): ~6 instructions per element against ~30
        if self.dq_add:
            func = self._dq_add_pass(func)
        mod["main"] = func
        return mod

    # -- rewrites ------------------------------------------------------------------------------------------
    def _skip(self, where: str, reasons: list[str]) -> bool:
        """Record why a matched op stays float; True when there is a reason (the rewrite returns the call)."""
        if reasons:
            self.skipped.append(f"{where}: {'; '.join(reasons)}")
        return bool(reasons)

    def _pool(self, call, m, xp, sp, zp):
        from tvm import relax

        x, a = m[xp], call.attrs
        s = _scalar(m[sp])
        if str(x.ty.dtype) != "int8" or s is None or not s > 0 or a.layout != "NCHW" or a.ceil_mode:
            return call
        nhwc = relax.op.permute_dims(x, NCHW_TO_NHWC)
        pooled = relax.op.nn.max_pool2d(nhwc, pool_size=a.pool_size, strides=a.strides, padding=a.padding,
                                        dilation=a.dilation, ceil_mode=False, layout="NHWC", out_layout="NHWC")
        back = relax.op.permute_dims(pooled, NHWC_TO_NCHW)
        return relax.op.dequantize(back, m[sp], m[zp], axis=1, out_dtype="float32")

    @staticmethod
    def _concat(call, m, pa, pb):
        from tvm import relax

        a, b = m[pa[0]], m[pb[0]]
        sa, za, sb, zb = _scalar(m[pa[1]]), _scalar(m[pa[2]]), _scalar(m[pb[1]]), _scalar(m[pb[2]])
        if None in (sa, za, sb, zb) or sa != sb or za != zb or str(a.ty.dtype) != "int8" \
                or str(b.ty.dtype) != "int8":
            return call
        cat = relax.op.concat([a, b], axis=int(call.attrs.axis))
        return relax.op.dequantize(cat, m[pa[1]], m[pa[2]], axis=1, out_dtype="float32")

    def _conv(self, call, m, p):
        from tvm import relax

        convc = m[p["conv"]]
        a = convc.attrs
        x = m[p["x"]]
        where = f"conv2d -> {str(call.ty.shape)}"
        wq, ws, wz, sx, zx = _dq_operands(m, p)
        so, zo = _scalar(m[p["so"]]), _scalar(m[p["zo"]])
        reasons = []
        if str(x.ty.dtype) != "int8" or str(call.ty.dtype) != "int8":
            reasons.append("activations are not int8")
        if why := _weight_reason(wq, ws, wz):
            reasons.append(why)
        if None in (sx, zx, so, zo):
            reasons.append("activation scale/zero point not per-tensor constants")
        if why := _conv2d_reason(a):
            reasons.append(why)
        if self._skip(where, reasons):
            return call
        co, ci, kh, kw = (int(v) for v in wq.shape)
        ws = np.broadcast_to(np.asarray(ws, np.float64).reshape(-1), (co,))
        bias = np.zeros(co)
        if p["biased"] in m:
            b = _bias_values(m[p["bias"]], co)
            if b is None:
                self.skipped.append(f"{where}: bias is not a per-channel float constant")
                return call
            bias = b
        _, _, ih, iw = (int(v) for v in x.ty.shape)
        _, _, oh, ow = (int(v) for v in call.ty.shape)
        relu = p["relu"] in m
        # int32 bias in the accumulator's scale in_scale * w_scale[c], and the requantization scale
        # in_scale * w_scale[c] / out_scale, both computed in float32 as onnxruntime does when it fuses the block
        # into QLinearConv (float bias -> int32 by a float32 division; MLAS scale = float32(float32(sx * sw) /
        # so)). A float32 scale has a 24-bit mantissa, so its Q31 multiplier is exact; with the kernels' single
        # rounding the int8 output is then onnxruntime's except where its float32 product rounding decides.
        acc_scale = np.float32(sx) * np.asarray(ws, np.float32)
        bias_q = np.round(np.asarray(bias, np.float32) / acc_scale).astype(np.float64)
        bias_q = np.clip(bias_q, -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        mult, shift = zip(*(int8_ref.quantize_multiplier(float(acc_scale[c] / np.float32(so))) for c in range(co)))
        top, left, _, _ = (int(v) for v in a.padding)
        geom = dict(in_h=ih, in_w=iw, in_c=ci, out_h=oh, out_w=ow, out_c=co, k_h=kh, k_w=kw,
                    stride_h=int(a.strides[0]), stride_w=int(a.strides[1]), pad_top=top, pad_left=left)
        one = kh == kw == 1 and geom["stride_h"] == geom["stride_w"] == 1 and top == left == 0 \
            and (oh, ow) == (ih, iw)
        name = self._name()
        layer = Layer(name, "conv1x1" if one else "conv", geom, int(zx), int(zo),
                      max(-128, int(zo)) if relu else -128, 127, macs=co * oh * ow * ci * kh * kw)
        layer.scratch_bytes = 0 if one else conv_scratch_bytes(geom)
        self.layers[name] = layer
        w_ohwi = np.ascontiguousarray(wq.transpose(0, 2, 3, 1))  # OIHW -> OHWI, once, at compile time
        consts = [relax.const(w_ohwi), relax.const(bias_q), relax.const(np.array(mult, np.int32)),
                  relax.const(np.array(shift, np.int32))]
        out_ty = [relax.TensorType((1, oh, ow, co), "int8"),
                     relax.TensorType((max(layer.scratch_bytes, 4),), "int8")]
        res = relax.call_dps_packed(relax.ExternFunc(name), [relax.op.permute_dims(x, NCHW_TO_NHWC), *consts],
                                    out_ty)
        return relax.op.permute_dims(relax.TupleGetItem(res, 0), NHWC_TO_NCHW)

    def _conv_f32(self, call, m, p):
        """conv2d(DQ(x), DQ(W)) (+ bias) with a float output -> wrnn_conv1x1_s8_f32 / wrnn_conv_s8_f32, NHWC."""
        from tvm import relax

        convc = m[p["conv"]]
        a = convc.attrs
        x = m[p["x"]]
        if a.groups != 1:
            return self._dw_f32(call, m, p)
        where = f"conv2d -> {str(call.ty.shape)} (float output)"
        wq, ws, wz, sx, zx = _dq_operands(m, p)
        reasons = []
        if str(x.ty.dtype) != "int8" or str(call.ty.dtype) != "float32":
            reasons.append("input is not int8 or output not float32")
        if why := _weight_reason(wq, ws, wz):
            reasons.append(why)
        if None in (sx, zx):
            reasons.append("activation scale/zero point not per-tensor constants")
        if why := _conv2d_reason(a):
            reasons.append(why)
        if self._skip(where, reasons):
            return call
        co, ci, kh, kw = (int(v) for v in wq.shape)
        ws = np.broadcast_to(np.asarray(ws, np.float32).reshape(-1), (co,))
        bias = None
        if p["biased"] in m and m[p["biased"]].same_as(call):
            bias = _bias_values(m[p["bias"]], co)
            if bias is None:
                return call  # e.g. a residual add: the bias-free pass below takes the conv alone
        _, _, ih, iw = (int(v) for v in x.ty.shape)
        _, _, oh, ow = (int(v) for v in call.ty.shape)
        # DQ(x) * DQ(W) in float is s_x * s_w[c] * (x - zp) * w: the scale is the float32 product, as onnxruntime
        # forms it per element (its float conv sums products of the two dequantized float32 values)
        scale = (np.float32(sx) * ws).astype(np.float32)
        top, left, _, _ = (int(v) for v in a.padding)
        geom = dict(in_h=ih, in_w=iw, in_c=ci, out_h=oh, out_w=ow, out_c=co, k_h=kh, k_w=kw,
                    stride_h=int(a.strides[0]), stride_w=int(a.strides[1]), pad_top=top, pad_left=left)
        one = kh == kw == 1 and geom["stride_h"] == geom["stride_w"] == 1 and top == left == 0 \
            and (oh, ow) == (ih, iw)
        name = self._name()
        layer = Layer(name, "conv1x1_f32" if one else "conv_f32", geom, int(zx), 0, -128, 127,
                      macs=co * oh * ow * ci * kh * kw)
        layer.scratch_bytes = 4 * co if one else conv_scratch_bytes(geom)
        layer.extra["bias"] = bias is not None
        self.layers[name] = layer
        w_ohwi = np.ascontiguousarray(wq.transpose(0, 2, 3, 1))
        consts = [relax.const(w_ohwi), relax.const(scale),
                  relax.const((bias if bias is not None else np.zeros(co)).astype(np.float32))]
        out_ty = [relax.TensorType((1, oh, ow, co), "float32"),
                  relax.TensorType((max(layer.scratch_bytes, 4),), "int8")]
        res = relax.call_dps_packed(relax.ExternFunc(name), [relax.op.permute_dims(x, NCHW_TO_NHWC), *consts],
                                    out_ty)
        return relax.op.permute_dims(relax.TupleGetItem(res, 0), NHWC_TO_NCHW)

    def _dw_f32(self, call, m, p):
        """Depthwise conv2d(DQ(x), DQ(W)) (+ bias), float output, input scale/zero point per tensor or per channel
        -> wrnn_dwconv_s8_f32 (NHWC, weights HWC)."""
        from tvm import relax

        a = m[p["conv"]].attrs
        x = m[p["x"]]
        where = f"depthwise conv2d -> {str(call.ty.shape)} (float output)"
        wq, ws, wz, sx, zx = _dq_operands(m, p, per_channel_x=True)
        c = int(x.ty.shape[1])
        reasons = []
        if str(x.ty.dtype) != "int8" or str(call.ty.dtype) != "float32":
            reasons.append("input is not int8 or output not float32")
        if why := _weight_reason(wq, ws, wz, "a constant int8 [C, 1, KH, KW]",
                                 lambda w: w.ndim == 4 and int(w.shape[0]) == c and int(w.shape[1]) == 1):
            reasons.append(why)
        if sx is None or zx is None or sx.size not in (1, c) or zx.size not in (1, c):
            reasons.append("activation scale/zero point not constants per tensor or per channel")
        if int(a.groups) != c or any(int(d) != 1 for d in a.dilation) or a.data_layout != "NCHW" \
                or a.kernel_layout != "OIHW" or int(call.ty.shape[1]) != c:
            reasons.append(f"groups {a.groups} of {c} channels, dilation {list(a.dilation)} not offloaded")
        if self._skip(where, reasons):
            return call
        bias = None
        if p["biased"] in m and m[p["biased"]].same_as(call):
            bias = _bias_values(m[p["bias"]], c)
            if bias is None:
                return call
        _, _, kh, kw = (int(v) for v in wq.shape)
        _, _, ih, iw = (int(v) for v in x.ty.shape)
        _, _, oh, ow = (int(v) for v in call.ty.shape)
        sxv = np.broadcast_to(np.asarray(sx, np.float32).reshape(-1), (c,))
        zxv = np.broadcast_to(np.asarray(zx).reshape(-1), (c,)).astype(np.int32)
        swv = np.broadcast_to(np.asarray(ws, np.float32).reshape(-1), (c,))
        scale = (sxv * swv).astype(np.float32)
        top, left, _, _ = (int(v) for v in a.padding)
        geom = dict(in_h=ih, in_w=iw, in_c=c, out_h=oh, out_w=ow, out_c=c, k_h=kh, k_w=kw,
                    stride_h=int(a.strides[0]), stride_w=int(a.strides[1]), pad_top=top, pad_left=left)
        name = self._name()
        layer = Layer(name, "dwconv_f32", geom, 0, 0, -128, 127, macs=c * oh * ow * kh * kw, scratch_bytes=0)
        layer.extra["bias"] = bias is not None
        self.layers[name] = layer
        w_hwc = np.ascontiguousarray(wq.reshape(c, kh, kw).transpose(1, 2, 0))
        consts = [relax.const(w_hwc), relax.const(np.ascontiguousarray(zxv)), relax.const(scale),
                  relax.const((bias if bias is not None else np.zeros(c)).astype(np.float32))]
        out_ty = [relax.TensorType((1, oh, ow, c), "float32"), relax.TensorType((4,), "int8")]
        res = relax.call_dps_packed(relax.ExternFunc(name), [relax.op.permute_dims(x, NCHW_TO_NHWC), *consts],
                                    out_ty)
        return relax.op.permute_dims(relax.TupleGetItem(res, 0), NHWC_TO_NCHW)

    def _gelu_pass(self, func):
        from tvm import relax
        from tvm.relax.dpl import is_op, rewrite_call, wildcard

        _, users, val = _dataflow(func)

        def op(e, name):
            e = val(e)
            return e if isinstance(e, relax.Call) and getattr(e.op, "name", "") == name else None

        s, z = wildcard(), wildcard()
        root = is_op("relax.quantize")(is_op("relax.multiply")(wildcard(), wildcard()), s, z)

        def rewrite(call, m):
            mul = op(call.args[0], "relax.multiply")
            if mul is None:
                return call
            for x, other in ((mul.args[0], mul.args[1]), (mul.args[1], mul.args[0])):
                add = op(other, "relax.add")
                if add is None:
                    continue
                add_var = other
                for e, one in ((add.args[0], add.args[1]), (add.args[1], add.args[0])):
                    erf, erf_var = op(e, "relax.erf"), e
                    div = op(erf.args[0], "relax.divide") if erf is not None else None
                    div_var = erf.args[0] if erf is not None else None
                    if div is None or not div.args[0].same_as(x) or _scalar(one) != 1.0:
                        continue
                    c, sc, zp = _scalar(div.args[1]), _scalar(m[s]), _scalar(m[z])
                    if None in (c, sc, zp) or not c > 0 or not sc > 0 or str(call.ty.dtype) != "int8" \
                            or str(x.ty.dtype) != "float32":
                        continue
                    shape = tuple(int(v) for v in call.ty.shape)
                    chain = (x, div_var, erf_var, add_var, call.args[0])
                    fused = self._conv_gelu(call, chain, users, val, c, sc, zp) if self.fuse_gelu else None
                    if fused is not None:
                        return fused
                    name = self._name()
                    n = int(np.prod(shape))
                    layer = Layer(name, "gelu", dict(n=n), 0, int(zp), -128, 127, macs=0)
                    table = _gelu_table(layer, c, sc, zp)
                    self.layers[name] = layer
                    res = relax.call_dps_packed(relax.ExternFunc(name), [x, relax.const(table)],
                                                [relax.TensorType(shape, "int8"), relax.TensorType((4,), "int8")])
                    return relax.TupleGetItem(res, 0)
            return call

        return rewrite_call(root, rewrite, func)

    def _conv_gelu(self, call, chain, users, val, c, sc, zp):
        """The GELU + Q call rewritten as wrnn_conv1x1_s8_gelu_s8 when its input x is element 0 of a conv1x1_f32
        extern call and each var of x -> x / c -> erf -> + 1 -> * x is used only by the next (x by the divide and
        the multiply): then the conv's float output dies with the rewrite. Else None (the separate GELU kernel)."""
        from tvm import relax

        x, div_var, erf_var, add_var, mul_var = chain
        if not all(isinstance(v, relax.Var) for v in chain):
            return None
        uses = lambda v: users.get(v)  # noqa: E731 (None: not a dataflow var, e.g. a function output)
        if uses(x) is None or len(uses(x)) != 2 or not any(uses(x)[0].same_as(a) and uses(x)[1].same_as(b)
                                                           for a, b in ((div_var, mul_var), (mul_var, div_var))) \
                or not all(uses(a) is not None and len(uses(a)) == 1 and uses(a)[0].same_as(b)
                           for a, b in ((div_var, erf_var), (erf_var, add_var), (add_var, mul_var))) \
                or uses(mul_var) is None or len(uses(mul_var)) != 1:
            return None
        item = val(x)
        if not isinstance(item, relax.TupleGetItem) or item.index != 0 or not isinstance(item.tuple_value, relax.Var):
            return None
        res_var = item.tuple_value
        conv = val(res_var)
        if not isinstance(conv, relax.Call) or getattr(conv.op, "name", "") != "relax.call_dps_packed" \
                or not isinstance(conv.args[0], relax.ExternFunc) or uses(res_var) is None \
                or len(uses(res_var)) != 1:
            return None
        old = self.layers.get(str(conv.args[0].global_symbol))
        if old is None or old.op != "conv1x1_f32":
            return None
        inputs = val(conv.args[1])
        if not isinstance(inputs, relax.Tuple):
            return None
        name = self._name()
        layer = Layer(name, "conv1x1_gelu", dict(old.geom), old.in_zp, int(zp), -128, 127, macs=old.macs,
                      scratch_bytes=old.scratch_bytes, onnx_name=old.onnx_name, extra=dict(old.extra))
        table = _gelu_table(layer, c, sc, zp)
        del self.layers[old.name]
        self.layers[name] = layer
        shape = tuple(int(v) for v in call.ty.shape)
        res = relax.call_dps_packed(relax.ExternFunc(name), [*inputs.fields, relax.const(table)],
                                    [relax.TensorType(shape, "int8"),
                                     relax.TensorType((max(layer.scratch_bytes, 4),), "int8")])
        return relax.TupleGetItem(res, 0)

    def _mlp_pass(self, func):
        """element 0 of a wrnn_conv1x1_s8 call whose input is element 0 of a wrnn_conv1x1_s8_gelu_s8 call, each
        result read only there -> element 0 of one wrnn_mlp_s8 call with both calls' arguments (their layers merge
        into one, MACs summed)."""
        from tvm import relax
        from tvm.relax.dpl import is_op, is_tuple_get_item, rewrite_call, wildcard

        _, users, val = _dataflow(func)

        def layer_call(e):
            c = val(e)
            if isinstance(c, relax.Call) and getattr(c.op, "name", "") == "relax.call_dps_packed" \
                    and isinstance(c.args[0], relax.ExternFunc):
                layer = self.layers.get(str(c.args[0].global_symbol))
                ins = val(c.args[1])
                if layer is not None and isinstance(ins, relax.Tuple):
                    return layer, list(ins.fields)
            return None, None

        def only_user(var) -> bool:
            return isinstance(var, relax.Var) and len(users.get(var) or []) == 1

        def rewrite(call, m):
            second, ins2 = layer_call(call.tuple_value)
            if second is None or second.op != "conv1x1" or call.index != 0 or not only_user(ins2[0]):
                return call
            item = val(ins2[0])
            if not isinstance(item, relax.TupleGetItem) or item.index != 0 or not only_user(item.tuple_value):
                return call
            first, ins1 = layer_call(item.tuple_value)
            if first is None or first.op != "conv1x1_gelu":
                return call
            g1, g2 = first.geom, second.geom
            pixels = g1["in_h"] * g1["in_w"]
            if g1["out_c"] != g2["in_c"] or pixels != g2["in_h"] * g2["in_w"]:
                return call
            name = self._name()
            scratch = mlp_scratch_bytes(pixels, g1["out_c"], g2["out_c"])
            layer = Layer(name, "mlp", {**g2, "in_c": g1["in_c"]}, first.in_zp, second.out_zp, second.act_min,
                          second.act_max, macs=first.macs + second.macs, scratch_bytes=scratch,
                          onnx_name=" + ".join(n for n in (first.onnx_name, second.onnx_name) if n),
                          extra={**first.extra, **second.extra, "hidden_c": g1["out_c"], "hidden_zp": second.in_zp})
            del self.layers[first.name], self.layers[second.name]
            self.layers[name] = layer
            shape = tuple(int(v) for v in call.ty.shape)
            res = relax.call_dps_packed(relax.ExternFunc(name), [*ins1, *ins2[1:]],
                                        [relax.TensorType(shape, "int8"), relax.TensorType((max(scratch, 4),), "int8")])
            return relax.TupleGetItem(res, 0)

        return rewrite_call(is_tuple_get_item(is_op("relax.call_dps_packed")(wildcard(), wildcard()), 0), rewrite,
                            func)

    def _fc_f32(self, call, m, p):
        """matmul(DQ(x[.., M, K]), DQ(W[K, N])) (+ b[N]), float output -> wrnn_conv1x1_s8_f32 with M pixels."""
        from tvm import relax

        x = m[p["x"]]
        where = f"matmul -> {str(call.ty.shape)} (float output)"
        wq, ws, wz, sx, zx = _dq_operands(m, p)
        reasons = []
        if str(x.ty.dtype) != "int8" or str(call.ty.dtype) != "float32":
            reasons.append("input is not int8 or output not float32")
        if why := _weight_reason(wq, ws, wz, "a constant int8 matrix", lambda w: w.ndim == 2):
            reasons.append(why)
        elif np.size(ws) not in (1, wq.shape[1]):
            reasons.append("weight scales are not per output column")
        if None in (sx, zx):
            reasons.append("activation scale/zero point not per-tensor constants")
        if self._skip(where, reasons):
            return call
        k, n = (int(v) for v in wq.shape)
        xs = [int(v) for v in x.ty.shape]
        rows = int(np.prod(xs[:-1]))
        if xs[-1] != k or rows * n != int(np.prod([int(v) for v in call.ty.shape])):
            self.skipped.append(f"{where}: shapes {xs} x {[k, n]} not a plain [M, K] x [K, N]")
            return call
        bias = None
        if p["biased"] in m and m[p["biased"]].same_as(call):
            bias = _const(m[p["bias"]])
            if bias is None or bias.dtype != np.float32 or bias.size != n or \
                    [int(v) for v in call.ty.shape][-1] != n or bias.ndim != 1:
                return call  # e.g. a residual add: the bias-free pass below takes the matmul alone
        ws = np.broadcast_to(np.asarray(ws, np.float32).reshape(-1), (n,))
        scale = (np.float32(sx) * ws).astype(np.float32)
        geom = dict(in_h=1, in_w=rows, in_c=k, out_h=1, out_w=rows, out_c=n, k_h=1, k_w=1, stride_h=1, stride_w=1,
                    pad_top=0, pad_left=0)
        name = self._name()
        layer = Layer(name, "conv1x1_f32", geom, int(zx), 0, -128, 127, macs=rows * k * n, scratch_bytes=4 * n)
        layer.extra.update(bias=bias is not None, kind="fc")
        self.layers[name] = layer
        consts = [relax.const(np.ascontiguousarray(wq.T)), relax.const(scale),
                  relax.const((bias if bias is not None else np.zeros(n)).astype(np.float32))]
        out_ty = [relax.TensorType(tuple(int(v) for v in call.ty.shape), "float32"),
                  relax.TensorType((max(layer.scratch_bytes, 4),), "int8")]
        res = relax.call_dps_packed(relax.ExternFunc(name), [x, *consts], out_ty)
        return relax.TupleGetItem(res, 0)

    def _quantize_pass(self, func):
        from tvm import relax
        from tvm.relax.dpl import is_op, rewrite_call, wildcard

        v2v, users, _ = _dataflow(func)
        params = set(func.params)
        var_of = {val: var for var, val in v2v.items()}  # DPL may hand over a bound value instead of its var

        def held(e) -> bool:
            """e is a tensor the memory plan stores whatever happens here: a kernel's output or a value that
            something else reads too (so quantizing it by a kernel adds no float tensor). The model input stays
            with TVM, whose loop fuses its quantize with the NCHW -> NHWC transpose."""
            var = e if isinstance(e, relax.Var) else var_of.get(e)
            if var is None or var in params:
                return False
            val = v2v.get(var)
            if isinstance(val, relax.TupleGetItem) and isinstance(val.tuple_value, relax.Var):
                src = v2v.get(val.tuple_value)
                if isinstance(src, relax.Call) and getattr(src.op, "name", "") == "relax.call_dps_packed":
                    return True
            return len(users.get(var) or []) >= 2

        a, b, s, z, x = (wildcard() for _ in range(5))

        def rewrite(call, m, two: bool, relu: bool = False):
            ins = [m[a], m[b]] if two else [m[x]]
            if not all(held(v) for v in ins):
                return call
            ins = [v if isinstance(v, relax.Var) else var_of[v] for v in ins]
            shape = [int(v) for v in call.ty.shape]
            if str(call.ty.dtype) != "int8" or any(str(v.ty.dtype) != "float32" or [int(d) for d in v.ty.shape]
                                                   != shape for v in ins):
                return call
            c = shape[-1]
            axis = int(call.attrs.axis)
            sc, zp = _const(m[s]), _const(m[z])
            if sc is None or zp is None or sc.size not in (1, c) or zp.size not in (1, c) \
                    or (sc.size == c != 1 and axis not in (len(shape) - 1, -1)) or not np.all(sc > 0):
                return call
            sc = np.ascontiguousarray(np.broadcast_to(sc.astype(np.float32).reshape(-1), (c,)))
            zf = np.ascontiguousarray(np.broadcast_to(zp.astype(np.float32).reshape(-1), (c,)))
            qconsts = [relax.const(sc), relax.const((np.float32(1) / sc).astype(np.float32)), relax.const(zf)]
            fused = None if two else self._fuse_quantize(call, ins[0], relu, qconsts, v2v, users, var_of)
            if fused is not None:
                return fused
            name = self._name()
            layer = Layer(name, "quantize_f32", dict(n=int(np.prod(shape[:-1])), c=c), 0, 0,
                          -128, 127, macs=0)
            layer.extra.update(inputs=len(ins), relu=relu)
            self.layers[name] = layer
            res = relax.call_dps_packed(relax.ExternFunc(name), [*ins, *qconsts],
                                        [relax.TensorType(tuple(shape), "int8"), relax.TensorType((4,), "int8")])
            return relax.TupleGetItem(res, 0)

        func = rewrite_call(is_op("relax.quantize")(is_op("relax.add")(a, b), s, z),
                            lambda call, m: rewrite(call, m, True), func)
        func = rewrite_call(is_op("relax.quantize")(is_op("relax.nn.relu")(x), s, z),
                            lambda call, m: rewrite(call, m, False, relu=True), func)
        return rewrite_call(is_op("relax.quantize")(x, s, z), lambda call, m: rewrite(call, m, False), func)

    def _dq_add_pass(self, func):
        """quantize(add(DQ(a, sa, za), DQ(b, sb, zb)), s, z): a, b int8 of the output's shape, per-tensor sa/za/sb/zb,
        the output quantizer per tensor or per channel on the last axis -> wrnn_add_dq_s8. Each constant as TVM's
        loop would hold it: scalar scales as the float32 of TVM's C literal (tvm_c_float), per-channel ones exact
        (TVM passes those as arrays), so the call computes the loop's bits."""
        from tvm import relax
        from tvm.relax.dpl import is_op, rewrite_call, wildcard

        a, sa, za, b, sb, zb, s, z = (wildcard() for _ in range(8))
        pat = is_op("relax.quantize")(is_op("relax.add")(is_op("relax.dequantize")(a, sa, za),
                                                         is_op("relax.dequantize")(b, sb, zb)), s, z)

        def rewrite(call, m):
            shape = [int(v) for v in call.ty.shape]
            if str(call.ty.dtype) != "int8" or any(str(m[v].ty.dtype) != "int8" or [int(d) for d in m[v].ty.shape]
                                                   != shape for v in (a, b)):
                return call
            c = shape[-1]
            consts = [_scalar(m[v]) for v in (sa, za, sb, zb)]
            sc, zp = _const(m[s]), _const(m[z])
            if None in consts or sc is None or zp is None or sc.size not in (1, c) or zp.size not in (1, c) \
                    or (sc.size == c != 1 and int(call.attrs.axis) not in (len(shape) - 1, -1)) or not np.all(sc > 0):
                return call
            if sc.size == 1:  # a scalar TVM prints as a literal; a per-channel array it reads as it is
                sc = tvm_c_float(sc.reshape(()))
            sc = np.ascontiguousarray(np.broadcast_to(np.asarray(sc, np.float32).reshape(-1), (c,)))
            zf = np.ascontiguousarray(np.broadcast_to(zp.astype(np.float32).reshape(-1), (c,)))
            name = self._name()
            layer = Layer(name, "add_dq", dict(n=int(np.prod(shape[:-1])), c=c), 0, 0, -128, 127, macs=0)
            layer.extra.update(a_zp=int(consts[1]), a_scale=float(tvm_c_float(consts[0])), b_zp=int(consts[3]),
                               b_scale=float(tvm_c_float(consts[2])))
            self.layers[name] = layer
            qconsts = [relax.const(sc), relax.const((np.float32(1) / sc).astype(np.float32)), relax.const(zf)]
            res = relax.call_dps_packed(relax.ExternFunc(name), [m[a], m[b], *qconsts],
                                        [relax.TensorType(tuple(shape), "int8"), relax.TensorType((4,), "int8")])
            return relax.TupleGetItem(res, 0)

        return rewrite_call(pat, rewrite, func)

    def _int8_reductions(self, func):
        """Means of a dequantized int8 map -> wrnn_mean_s8_f32, which reads the int8 map itself: an SE block's
        spatial mean (mean(DQ(x)) over H, W of an NHWC map) and an average pool over windows that tile the map
        (stride = size, no padding; avg_pool2d(permute_dims(DQ(x))) of an NHWC map, or of an NCHW one). Left to
        TVM, the dequantized map is stored in float: the SE's multiply reads the same dequantize, and an average
        pool cannot absorb its input's elementwise chain, so TVM fuses the dequantize into the producer's kernel
        (ppocrv6_small: 368 KB of float per SE block and before the neck)."""
        from tvm import relax
        from tvm.relax.dpl import is_op, rewrite_call, wildcard

        x, s, z = wildcard(), wildcard(), wildcard()
        dq = is_op("relax.dequantize")(x, s, z)

        def extern(x_nhwc, k, sc, zp, where):
            _, h, w, c = (int(d) for d in x_nhwc.ty.shape)
            geom = dict(in_h=h, in_w=w, in_c=c, out_h=h // k[0], out_w=w // k[1], out_c=c, k_h=k[0], k_w=k[1],
                        stride_h=k[0], stride_w=k[1], pad_top=0, pad_left=0)
            name = self._name()
            layer = Layer(name, "mean_f32", geom, int(zp), 0, -128, 127, macs=0, onnx_name=where)
            layer.extra["scale"] = float(np.float32(sc))
            self.layers[name] = layer
            res = relax.call_dps_packed(relax.ExternFunc(name), [x_nhwc],
                                        [relax.TensorType((1, geom["out_h"], geom["out_w"], c), "float32"),
                                         relax.TensorType((4,), "int8")])
            return relax.TupleGetItem(res, 0)

        def qparams(m):
            sc, zp = _scalar(m[s]), _scalar(m[z])
            ok = str(m[x].ty.dtype) == "int8" and len(m[x].ty.shape) == 4 and sc is not None and sc > 0 \
                and zp is not None
            return (sc, zp) if ok else None

        def mean(call, m):
            q = qparams(m)
            axes = sorted(int(a) % 4 for a in call.attrs.axis) if call.attrs.axis is not None else []
            if q is None or axes != [1, 2] or not call.attrs.keepdims or int(m[x].ty.shape[0]) != 1:
                return call
            _, h, w, _ = (int(d) for d in m[x].ty.shape)
            return extern(m[x], (h, w), *q, "mean")

        func = rewrite_call(is_op("relax.mean")(dq), mean, func)
        perm = is_op("relax.permute_dims")(dq)

        def pool(call, m):
            a, q = call.attrs, qparams(m)
            kh, kw = (int(d) for d in a.pool_size)
            n, _, h, w = (int(d) for d in call.args[0].ty.shape)
            if q is None or n != 1 or a.layout != "NCHW" or a.out_layout != "NCHW" or a.ceil_mode \
                    or any(int(p) for p in a.padding) or [int(d) for d in a.strides] != [kh, kw] \
                    or any(int(d) != 1 for d in a.dilation) or h % kh or w % kw:
                return call
            if perm in m:
                if _perm(m[perm]) != NHWC_TO_NCHW:
                    return call
                src = m[x]
            else:
                src = relax.op.permute_dims(m[x], NCHW_TO_NHWC)
            return relax.op.permute_dims(extern(src, (kh, kw), *q, "avg_pool2d"), NHWC_TO_NCHW)

        return rewrite_call(is_op("relax.nn.avg_pool2d")(perm | dq), pool, func)

    def _fuse_quantize(self, call, x, relu: bool, qconsts, v2v, users, var_of):
        """quantize(x) / quantize(relu(x)) where x is the float output of a conv1x1_f32 or dwconv_f32 call that
        nothing else reads -> one wrnn_conv1x1_s8_q8 / wrnn_dwconv_s8_q8 call writing the int8 directly (band by
        band through scratch): the float tensor (4 bytes per value; ppocrv6_small's depthwise outputs before an SE
        block, 368 KB each) leaves the arena plan. Else None (the separate quantize kernel)."""
        from tvm import relax

        item = v2v.get(x)
        if not isinstance(item, relax.TupleGetItem) or item.index != 0 \
                or not isinstance(item.tuple_value, relax.Var) or len(users.get(x) or []) != 1:
            return None
        if relu:
            r = call.args[0] if isinstance(call.args[0], relax.Var) else var_of.get(call.args[0])
            if r is None or len(users.get(r) or []) != 1:
                return None
        res_var = item.tuple_value
        conv = v2v.get(res_var)
        if not isinstance(conv, relax.Call) or getattr(conv.op, "name", "") != "relax.call_dps_packed" \
                or not isinstance(conv.args[0], relax.ExternFunc) or len(users.get(res_var) or []) != 1:
            return None
        old = self.layers.get(str(conv.args[0].global_symbol))
        inputs = v2v.get(conv.args[1], conv.args[1])
        if old is None or old.op not in ("conv1x1_f32", "dwconv_f32") or not isinstance(inputs, relax.Tuple):
            return None
        g = old.geom
        if old.op == "conv1x1_f32":
            op, scratch = "conv1x1_q8", conv1x1_q8_scratch_bytes(g["out_h"] * g["out_w"], g["out_c"])
        elif dwconv3x3_q8_ok(g, *(_const(f) for f in inputs.fields[3:5]), *(_const(q) for q in qconsts)):
            op, scratch = "dwconv3x3_q8", dwconv3x3_q8_scratch_bytes(g)
        else:
            op, scratch = "dwconv_q8", dwconv_q8_scratch_bytes(g)
        name = self._name()
        layer = Layer(name, op, dict(g), old.in_zp, 0, -128, 127, macs=old.macs, scratch_bytes=scratch,
                      onnx_name=old.onnx_name, extra={**old.extra, "relu": relu})
        del self.layers[old.name]
        self.layers[name] = layer
        shape = tuple(int(v) for v in call.ty.shape)
        res = relax.call_dps_packed(relax.ExternFunc(name), [*inputs.fields, *qconsts],
                                    [relax.TensorType(shape, "int8"), relax.TensorType((max(scratch, 4),), "int8")])
        return relax.TupleGetItem(res, 0)

    def _matmul_f32(self, call, m, p):
        """matmul(DQ(a[.., M, K]), permute_dims(DQ(b[.., N, K]), last two swapped)), both non-constant per-tensor
        int8, float output -> wrnn_matmul_s8s8_f32 over the leading (batch) dims."""
        from tvm import relax

        a, b = m[p["a"]], m[p["b"]]
        if _const(a) is not None or _const(b) is not None:
            return call  # a constant operand is a weight: the FC passes' business
        where = f"matmul -> {str(call.ty.shape)} (activation x activation)"
        sa, za, sb, zb = (_scalar(m[p[k]]) for k in ("sa", "za", "sb", "zb"))
        reasons = []
        if str(a.ty.dtype) != "int8" or str(b.ty.dtype) != "int8" or str(call.ty.dtype) != "float32":
            reasons.append("inputs are not int8 or the output not float32")
        if None in (sa, za, sb, zb) or not (sa > 0 and sb > 0):
            reasons.append("scales/zero points are not per-tensor constants")
        a_s, b_s = [int(v) for v in a.ty.shape], [int(v) for v in b.ty.shape]
        rank = len(b_s)
        axes = _perm(m[p["kt"]])
        if rank < 2 or axes != list(range(rank - 2)) + [rank - 1, rank - 2] or len(a_s) != rank \
                or a_s[:-2] != b_s[:-2] or a_s[-1] != b_s[-1] \
                or [int(v) for v in call.ty.shape] != a_s[:-1] + [b_s[-2]]:
            reasons.append(f"shapes {a_s} x permute({b_s}, {axes}) are not batched [M, K] x [N, K]^T")
        if self._skip(where, reasons):
            return call
        batch, (mm, k), n = int(np.prod(a_s[:-2])), a_s[-2:], b_s[-2]
        name = self._name()
        geom = dict(batch=batch, m=mm, k=k, n=n)
        layer = Layer(name, "matmul_f32", geom, int(za), 0, -128, 127, macs=batch * mm * k * n,
                      scratch_bytes=4 * (mm + 2 * n))
        layer.extra.update(b_zp=int(zb), scale=float(np.float32(sa) * np.float32(sb)), kind="attention")
        self.layers[name] = layer
        out_ty = [relax.TensorType(tuple(int(v) for v in call.ty.shape), "float32"),
                  relax.TensorType((layer.scratch_bytes,), "int8")]
        return relax.TupleGetItem(relax.call_dps_packed(relax.ExternFunc(name), [a, b], out_ty), 0)

    @staticmethod
    def _cancel(call, inner, v):
        p = [int(i) for i in inner.attrs.axes] if inner.attrs.axes is not None else None
        q = [int(i) for i in call.attrs.axes] if call.attrs.axes is not None else None
        if p is None or q is None or [p[i] for i in q] != list(range(len(p))):
            return call
        return v


ELEMENTWISE_UNARY = {"relax.erf", "relax.sigmoid", "relax.tanh", "relax.exp", "relax.sqrt", "relax.rsqrt",
                     "relax.nn.relu", "relax.clip", "relax.negative", "relax.abs", "relax.nn.gelu", "relax.nn.silu"}
ELEMENTWISE_BINARY = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.power",
                      "relax.maximum", "relax.minimum"}


def _perm(call) -> list[int] | None:
    axes = call.attrs.axes
    return None if axes is None else [int(i) for i in axes]


def sink_permutes(func, max_rounds: int = 64):
    """op(permute_dims(x, p), ...) -> permute_dims(op(x, ...), p) for elementwise ops, where every other operand
    is a constant (per-tensor, or broadcast with the same rank: permuted back) or permute_dims(y, p) too;
    quantize/dequantize too (a per-channel axis a becomes p[a]). Values are unchanged (a permutation commutes
    with elementwise maps; a small non-constant operand of the same rank, e.g. an SE scale, is permuted back
    instead); mean with keepdims (its axes mapped through p). Repeated until nothing moves."""
    import tvm
    from tvm import relax
    from tvm.relax.dpl import is_op, rewrite_call, wildcard

    var2val = {}

    def value(e):
        return var2val.get(e, e) if isinstance(e, relax.Var) else e

    def is_perm(e):
        e = value(e)
        return isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.permute_dims"

    pv = wildcard()
    perm = is_op("relax.permute_dims")(pv)
    pats = [is_op(name)(perm) for name in sorted(ELEMENTWISE_UNARY)]
    pats += [is_op(name)(perm, wildcard()) | is_op(name)(wildcard(), perm) for name in sorted(ELEMENTWISE_BINARY)]
    pats += [is_op("relax.mean")(perm), is_op("relax.quantize")(perm, wildcard(), wildcard()),
             is_op("relax.dequantize")(perm, wildcard(), wildcard())]
    pat = pats[0]
    for q in pats[1:]:
        pat = pat | q

    def rewrite(call, m):
        if m[perm] is None:
            return call
        p = _perm(m[perm])
        if p is None:
            return call
        inv = list(np.argsort(p))
        name = call.op.name
        rank = len(p)
        if name == "relax.mean":
            x = value(call.args[0])
            if not is_perm(x) or _perm(x) != p or not call.attrs.keepdims or call.attrs.axis is None:
                return call
            axes = [p[int(a) % rank] for a in call.attrs.axis]
            return relax.op.permute_dims(relax.op.mean(x.args[0], axes, keepdims=True), p)
        if name in ("relax.quantize", "relax.dequantize"):
            x = value(call.args[0])
            if not is_perm(x) or _perm(x) != p:
                return call
            scale, zp = _const(call.args[1]), _const(call.args[2])
            if scale is None or zp is None:
                return call
            axis = int(call.attrs.axis) % rank
            new_axis = p[axis] if scale.size > 1 or zp.size > 1 else axis
            fn = relax.op.quantize if name == "relax.quantize" else relax.op.dequantize
            inner = fn(x.args[0], call.args[1], call.args[2], axis=new_axis, out_dtype=str(call.attrs.out_dtype))
            return relax.op.permute_dims(inner, p)
        args = []
        for a in call.args:
            if is_perm(a) and _perm(value(a)) == p:
                args.append(value(a).args[0])
                continue
            if not isinstance(a, relax.Expr) or not hasattr(a, "ty") or not isinstance(a.ty, relax.TensorType):
                args.append(a)  # clip's PrimValue bounds
                continue
            c = _const(a)
            if c is None:  # a small tensor of the same rank (an SE block's channel scale): permute it instead
                shp = [int(v) for v in a.ty.shape] if a.ty.shape is not None else None
                full = int(np.prod([int(v) for v in call.ty.shape]))
                if shp is None or len(shp) != rank or int(np.prod(shp)) > min(4096, full // 2):
                    return call  # only a broadcast operand (a full-size one would just move the transpose)
                args.append(relax.op.permute_dims(a, inv))
                continue
            if c.ndim == rank:
                args.append(relax.const(np.ascontiguousarray(np.transpose(c, inv))))
            elif c.size == 1:
                args.append(a)
            else:
                return call
        if not any(is_perm(a) for a in call.args):
            return call
        inner = relax.Call(call.op, args, call.attrs, call.ty_args)
        return relax.op.permute_dims(inner, p)

    from tvm.relax.analysis import get_var2val

    for _ in range(max_rounds):
        var2val.clear()
        var2val.update(get_var2val(func))
        new = rewrite_call(pat, rewrite, func)
        try:
            tvm.ir.assert_structural_equal(new, func)
            break
        except ValueError:
            func = new
    return func


def conv_scratch_bytes(g: dict) -> int:
    """wrnn_conv_s8_scratch_bytes (wrnn.c): folded bias (4 * out_c) + im2col of `cols` pixels of K bytes
    (rounded up to 4), cols = 32 for K <= 128, 16 for K <= 512, else 8. The plan needs the size at compile time;
    the emitted runner checks it against the C function before each call, so a drift fails loudly."""
    k = g["k_h"] * g["k_w"] * g["in_c"]
    cols = 32 if k <= 128 else 16 if k <= 512 else 8
    return 4 * g["out_c"] + ((cols * k + 3) & ~3)


BAND_FLOATS = 8192  # WRNN_BAND_FLOATS (wrnn.h)


def conv1x1_q8_scratch_bytes(pixels: int, out_c: int) -> int:
    """wrnn_conv1x1_s8_q8_scratch_bytes: folded bias + one band of BAND_FLOATS // out_c pixels (at least 1, at most
    all) of float output; checked against the C function by the emitted runner, like conv_scratch_bytes."""
    return 4 * out_c + 4 * min(pixels, max(1, BAND_FLOATS // out_c)) * out_c


def dwconv_q8_scratch_bytes(g: dict) -> int:
    """wrnn_dwconv_s8_q8_scratch_bytes: one output row of float values, or the 3x3 tile path's 14 constant
    vectors and ring of 3 float rows (out_w + 2 columns x 4 channels) if that is more."""
    return max(4 * g["out_w"] * g["out_c"], dwconv3x3_q8_scratch_bytes(g))


def mlp_scratch_bytes(pixels: int, hidden_c: int, out_c: int) -> int:
    """wrnn_mlp_s8_scratch_bytes: hidden_c + out_c folded int32 terms + one band of the hidden map
    (WRNN_MLP_BAND_BYTES / hidden_c pixels, cut to whole 32-pixel GEMM chunks when that leaves one, at most
    `pixels`)."""
    band = 32768 // hidden_c
    band = band - band % 32 if band >= 32 else band
    return 4 * (hidden_c + out_c) + min(max(band, 1), pixels) * hidden_c


def dwconv3x3_q8_scratch_bytes(g: dict) -> int:
    """wrnn_dwconv3x3_s8_q8_scratch_bytes: 14 constant vectors and a ring of 3 float rows of out_w + 2 columns x 4
    channels."""
    return 16 * 14 + 48 * (g["out_w"] + 2)


def dwconv3x3_q8_ok(g: dict, scale, bias, q_scale, q_recip, q_zp) -> bool:
    """wrnn_dwconv3x3_s8_q8 takes the call (wrnn.h; else it returns an error): a 3x3 window at column stride 1, C a
    multiple of 4, out_w >= 4, one output quantizer for all channels, finite scale and bias with (2^19 max|scale| +
    max|bias|) * q_recip < 1.8e19 (its quantize needs no clamp then). Mirrors the C test; tests/test_int8_kernels
    holds the two to the same answers."""
    if (g["k_h"], g["k_w"], g["stride_w"]) != (3, 3, 1) or g["in_c"] % 4 or g["out_w"] < 4 \
            or any(v is None for v in (scale, bias, q_scale, q_recip, q_zp)):
        return False
    qs, qr, qz = (np.asarray(v, np.float32).reshape(-1) for v in (q_scale, q_recip, q_zp))
    if not (np.all(qs == qs[0]) and np.all(qr == qr[0]) and np.all(qz == qz[0])):
        return False
    sc, bs = (np.abs(np.asarray(v, np.float64).reshape(-1)) for v in (scale, bias))
    if not (np.all(sc < 1e30) and np.all(bs < 1e30)):
        return False
    return bool((sc.max() * 524288.0 + bs.max()) * float(qr[0]) < 1.8e19)


def check_layers(layers: dict[str, Layer]) -> None:
    for layer in layers.values():
        g = layer.geom
        if g["pad_top"] < 0 or g["pad_left"] < 0:
            raise DataError(f"{layer.name}: negative padding {g}")
