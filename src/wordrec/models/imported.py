"""Pretrained PaddleOCR recognizers imported from pinned registry wheels as ONNX model dirs.

The wheels (RapidOCR on PyPI) are fetched and hash-checked at set-up time by `scripts/fetch_wheels.sh` into
`build/wheels/`; nothing here downloads. A wheel is a zip file: the rec ONNX is read as a member, never installed.
The import cuts the 6,625 / 18,710-class classifier down to our charset (class 0 = CTC blank, class i =
charset.chars[i-1], softmax probabilities out), so the result plugs into the pipeline like a trained model.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir
from wordrec.models.meta import DetectorMeta, InputSpec, ModelMeta


@dataclass(frozen=True)
class Source:
    """One importable recognizer: where its ONNX sits and how its inputs were prepared in training."""

    name: str
    arch: str
    wheel: str
    wheel_sha256: str
    member: str
    licence: str
    origin: str
    channels: int = 3
    height: int = 48
    width: int = 320  # PP-OCR rec's default inference width (rec_image_shape 3,48,320)
    channel_order: str = "bgr"  # trained on images as cv2 decodes them
    normalisation: str = "(x/255-0.5)/0.5"  # = wordrec.data.preprocess.prepare's


_V1X = "Apache-2.0 (License field of the wheel's METADATA; weights by PaddleOCR, Apache-2.0)"
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("ppocrv3", "ch_PP-OCRv3_rec", "rapidocr_onnxruntime-1.2.3-py3-none-any.whl",
           "c707d3a6eb72d13119afe9602d3cc36d8b2a4a4d74e9575cf1b0e67ed6a27819",
           "rapidocr_onnxruntime/models/ch_PP-OCRv3_rec_infer.onnx", _V1X,
           "PyPI rapidocr-onnxruntime 1.2.3 (RapidAI/RapidOCR), PaddleOCR PP-OCRv3 ch rec converted to ONNX"),
    Source("ppocrv4", "ch_PP-OCRv4_rec", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
           "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
           "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", _V1X,
           "PyPI rapidocr-onnxruntime 1.4.4 (RapidAI/RapidOCR), PaddleOCR PP-OCRv4 ch rec converted to ONNX"),
    Source("ppocrv6_small", "PP-OCRv6_rec_small", "rapidocr-3.10.0-py3-none-any.whl",
           "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
           "rapidocr/models/PP-OCRv6_rec_small.onnx",
           "Apache-2.0 (rapidocr-3.10.0.dist-info/licenses/MODEL_LICENSES.md: weights by Baidu/PaddleOCR)",
           "PyPI rapidocr 3.10.0 (RapidAI/RapidOCR), PaddlePaddle/PP-OCRv6_small_rec_onnx"),
)}


@dataclass(frozen=True)
class DetSource:
    """One importable text detector: kept byte for byte as the wheel ships it (no head to cut)."""

    name: str
    arch: str
    wheel: str
    wheel_sha256: str
    member: str
    licence: str
    origin: str


DETECTORS: dict[str, DetSource] = {s.name: s for s in (
    DetSource("ppocrv4", "ch_PP-OCRv4_det", SOURCES["ppocrv4"].wheel, SOURCES["ppocrv4"].wheel_sha256,
              "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", _V1X,
              "PyPI rapidocr-onnxruntime 1.4.4 (RapidAI/RapidOCR), PaddleOCR PP-OCRv4 ch det (DB) converted to ONNX"),
)}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise ConfigError(f"imported model {name!r}: expected one of {sorted(SOURCES)}")
    return SOURCES[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_member(wheel: Path, member: str, sha256: str | None) -> bytes:
    """Read one file out of a wheel (a zip), after checking the wheel's sha256 when one is given."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise DataError(f"{wheel}: wheel not found (run scripts/fetch_wheels.sh)")
    if sha256 is not None and (got := sha256_file(wheel)) != sha256:
        raise DataError(f"{wheel}: sha256 {got} does not match the pin {sha256}")
    try:
        with zipfile.ZipFile(wheel) as z:
            return z.read(member)
    except KeyError:
        raise DataError(f"{wheel}: no member {member!r} in the wheel") from None
    except zipfile.BadZipFile as e:
        raise DataError(f"{wheel}: not a zip file ({e})") from None


def load_source(src: Source, wheel_dir: Path) -> onnx.ModelProto:
    """Read and parse `src`'s ONNX from `wheel_dir/src.wheel`, hash-checked against the pin."""
    return onnx.load_from_string(read_member(Path(wheel_dir) / src.wheel, src.member, src.wheel_sha256))


def source_charset(model: onnx.ModelProto) -> list[str]:
    """Characters of classes 1..K-1 from the ONNX metadata key `character` (one per line), space appended.

    PaddleOCR's CTC label decoder puts the blank first and, with use_space_char, a space last; the metadata holds
    only the dictionary in between. Checked on all three sources: 6,623 lines for a 6,625-wide output (v3, v4),
    18,708 for 18,710 (v6 small); `cut_head` re-checks the count against the classifier's width.
    """
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise DataError(f"ONNX model {model.graph.name!r}: no metadata key 'character' (the class dictionary)")
    return meta["character"].split("\n") + [" "]


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move `Constant` node tensors into graph initializers (NNCF's bias correction and TVM look for those)."""
    import onnxoptimizer

    return onnxoptimizer.optimize(model, ["extract_constant_to_initializer"])


# --- head cut --------------------------------------------------------------------------------------------------


CASE_SUM = "case_sum"  # name of the 0/1 [kept classes, 1 + target chars] matrix that merges upper and lower case


@dataclass
class _Head:
    softmax: onnx.NodeProto
    linear: onnx.NodeProto  # MatMul or Gemm
    bias_add: onnx.NodeProto | None
    weight: onnx.TensorProto  # [D, K] (Gemm transB: [K, D])
    bias: onnx.TensorProto | None
    trans_b: bool


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def _skip_identity(name: str, producers) -> onnx.NodeProto | None:
    node = producers.get(name)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    return node


def _find_head(graph: onnx.GraphProto) -> _Head:
    """Walk back from the single graph output: Softmax <- [Add(bias)] <- MatMul/Gemm with an initializer weight."""
    if len(graph.output) != 1:
        raise DataError(f"head cut: expected one graph output, found {len(graph.output)}")
    prod = _producers(graph)
    inits = {t.name: t for t in graph.initializer}
    softmax = _skip_identity(graph.output[0].name, prod)
    if softmax is None or softmax.op_type != "Softmax":
        what = softmax.op_type if softmax is not None else "a graph input"
        raise DataError(f"head cut: graph output {graph.output[0].name!r} comes from {what}, expected Softmax")
    axis = next((a.i for a in softmax.attribute if a.name == "axis"), None)
    if axis not in (-1, 2):  # opset < 13 defaults to axis 1, which would normalise over time × classes
        raise DataError(f"head cut: Softmax {softmax.name!r} has axis {axis}, expected the class axis (2 or -1)")
    node = _skip_identity(softmax.input[0], prod)
    bias_add, bias = None, None
    if node is not None and node.op_type == "Add":
        bias_add = node
        consts = [i for i in node.input if i in inits]
        if len(consts) != 1:
            raise DataError(f"head cut: Add {node.name!r} before Softmax has no initializer bias")
        bias = inits[consts[0]]
        other = next(i for i in node.input if i not in inits)
        node = _skip_identity(other, prod)
    if node is None or node.op_type not in ("MatMul", "Gemm"):
        what = node.op_type if node is not None else "a graph input"
        raise DataError(f"head cut: Softmax {softmax.name!r} is fed by {what}, expected MatMul/Gemm (+ Add)")
    if len(node.input) < 2 or node.input[1] not in inits:
        raise DataError(f"head cut: {node.op_type} {node.name!r} has no initializer weight "
                        "(run constants_to_initializers first)")
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    if node.op_type == "Gemm" and len(node.input) > 2:
        if bias_add is not None or node.input[2] not in inits:
            raise DataError(f"head cut: Gemm {node.name!r}: expected one initializer bias")
        bias = inits[node.input[2]]
    return _Head(softmax, node, bias_add, inits[node.input[1]], bias, trans_b)


def _kept_columns(source_chars: list[str], target_chars: str,
                  case_insensitive: bool) -> tuple[list[int], np.ndarray | None]:
    """Source class indices to keep (blank first) and, when case-insensitive, the 0/1 [kept, 1+T] summing matrix."""
    index = {c: i + 1 for i, c in enumerate(source_chars)}
    missing = [c for c in target_chars if c not in index]
    if missing:
        raise DataError(f"head cut: target characters {''.join(missing)!r} are not in the source dictionary")
    if not case_insensitive:
        return [0] + [index[c] for c in target_chars], None
    kept, groups = [0], [[0]]
    for c in target_chars:
        variants = [v for v in dict.fromkeys((c, c.upper(), c.lower())) if v in index]
        groups.append(list(range(len(kept), len(kept) + len(variants))))
        kept += [index[v] for v in variants]
    merge = np.zeros((len(kept), len(groups)), np.float32)
    for j, rows in enumerate(groups):
        merge[rows, j] = 1.0
    return kept, merge


def _set_dims(value: onnx.ValueInfoProto, dims: list) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        else:
            dim.dim_param = d


def cut_head(model: onnx.ModelProto, source_chars: list[str], target_chars: str,
             case_insensitive: bool) -> onnx.ModelProto:
    """A copy of `model` whose classifier keeps only the blank and `target_chars` (in that order).

    The weight/bias columns are sliced, so Softmax over the kept logits equals the original probabilities
    renormalised over the kept classes. With `case_insensitive`, both cases are kept and a constant 0/1 MatMul
    after the Softmax sums them into each target class (exact: each output is a sum of one or two probabilities).
    The model's weights must be initializers (see `constants_to_initializers`).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    head = _find_head(graph)
    weight = numpy_helper.to_array(head.weight)
    n_classes = weight.shape[0] if head.trans_b else weight.shape[-1]
    if n_classes != len(source_chars) + 1:
        raise DataError(f"head cut: {head.linear.op_type} {head.linear.name!r} has {n_classes} classes, the "
                        f"dictionary {len(source_chars)} characters + blank")
    kept, merge = _kept_columns(source_chars, target_chars, case_insensitive)
    _replace_init(head.weight, weight[kept] if head.trans_b else weight[..., kept], graph)
    if head.bias is not None:
        bias = numpy_helper.to_array(head.bias)
        if bias.shape[-1] != n_classes:
            raise DataError(f"head cut: bias {head.bias.name!r} has shape {bias.shape}, expected (..., {n_classes})")
        _replace_init(head.bias, bias[..., kept], graph)
    if merge is not None:
        _append_merge(graph, merge)
    # v3 declares its output as [-1, -1, 6625]: name the dims instead (batch as `fix_input` names it)
    _set_dims(graph.output[0], ["N", "T", len(target_chars) + 1])
    del graph.value_info[:]  # stale class dims on the head's intermediates; onnxsim re-infers
    return model


def _replace_init(tensor: onnx.TensorProto, array: np.ndarray, graph: onnx.GraphProto) -> None:
    users = sum(i == tensor.name for n in graph.node for i in n.input)
    if users != 1:
        raise DataError(f"head cut: initializer {tensor.name!r} is shared by {users} nodes, expected 1")
    tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), tensor.name))


def _append_merge(graph: onnx.GraphProto, merge: np.ndarray) -> None:
    """Rename the output so the Softmax feeds a MatMul with the 0/1 case-summing matrix, which writes the output."""
    out_name = graph.output[0].name
    producer = _producers(graph)[out_name]
    probs = out_name + "_cased"
    producer.output[:] = [probs if o == out_name else o for o in producer.output]
    graph.initializer.append(numpy_helper.from_array(merge, CASE_SUM))
    graph.node.append(helper.make_node("MatMul", [probs, CASE_SUM], [out_name], name=CASE_SUM + "_matmul"))


# --- whole import ----------------------------------------------------------------------------------------------


def fix_input(model: onnx.ModelProto, src: Source) -> None:
    """Symbolic batch, fixed C×H×W = the source geometry (v3/v4 ship H and W dynamic, v6 W only)."""
    if len(model.graph.input) != 1:
        raise DataError(f"{src.member}: expected one graph input, found {len(model.graph.input)}")
    _set_dims(model.graph.input[0], ["N", src.channels, src.height, src.width])


def at_geometry(model_file: str | Path, height: int, width: int) -> bytes:
    """An imported model.onnx with its input re-declared N x C x `height` x `width`, serialized for onnxruntime
    (the file is not touched): what `evaluate.geometry` measures the model at. The import fixed H and W
    (`fix_input`) and onnxsim may have folded shape arithmetic at that geometry, so a graph can compute nonsense
    at another one: callers check its output (wordrec.pipeline.geometry)."""
    model = onnx.load(str(model_file))
    if len(model.graph.input) != 1:
        raise DataError(f"{model_file}: expected one graph input, found {len(model.graph.input)}")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise DataError(f"{model_file}: input of rank {len(dims)}, expected N x C x H x W")
    _set_dims(model.graph.input[0], ["N", dims[1].dim_value or dims[1].dim_param, int(height), int(width)])
    del model.graph.value_info[:]  # shapes onnxsim inferred at the import geometry: onnxruntime would hold us to them
    for out in model.graph.output:  # the frame count follows the width: leave it to onnxruntime
        _set_dims(out, [f"out{i}" for i in range(len(out.type.tensor_type.shape.dim))])
    return model.SerializeToString()


def param_count(model: onnx.ModelProto) -> int:
    """Elements of the floating-point initializers: the weights. Integer shape constants and the fixed 0/1
    case-summing matrix are not parameters."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer
                   if t.data_type in floats and t.name != CASE_SUM))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def simplify(model: onnx.ModelProto, what: str, src: Source) -> onnx.ModelProto:
    """onnxsim, checked: same outputs as `model` on a random batch of 2 (onnxruntime), then onnx.checker.

    onnxsim 0.8.1's constant folding turns a reshape target in PP-OCRv4's neck (a Shape -> Slice of the width) into
    39 where the graph computes 40, and the result fails to load. When that happens the model is simplified
    without constant folding (BatchNorm still fused; the shape arithmetic stays as Shape/Slice/Concat nodes).
    """
    import onnxsim

    x = np.random.default_rng(0).uniform(-1, 1, (2, src.channels, src.height, src.width)).astype(np.float32)
    want = _run(model, x)
    for kwargs in ({}, {"skip_constant_folding": True}):
        simplified, _ = onnxsim.simplify(model, **kwargs)
        try:
            got = _run(simplified, x)
        except Exception:  # onnxruntime raises its own Fail/InvalidGraph types
            continue
        if got.shape == want.shape and np.abs(got - want).max() <= 1e-4:
            onnx.checker.check_model(simplified, full_check=True)
            return simplified
    raise DataError(f"{what}: onnxsim's output differs from the unsimplified model's on a random batch")


def build_model(src: Source, wheel_dir: Path, charset: Charset) -> tuple[onnx.ModelProto, ModelMeta]:
    """Source ONNX (from the wheel) → initializers → fixed input → cut head → simplified; plus its meta."""
    model = constants_to_initializers(load_source(src, wheel_dir))
    source_chars = source_charset(model)
    fix_input(model, src)
    model = cut_head(model, source_chars, charset.chars, charset.case_insensitive)
    del model.metadata_props[:]  # the 6.6k/18.7k-character dictionary no longer describes the outputs: meta.json does
    model = simplify(model, f"{src.wheel} :: {src.member}", src)
    meta = ModelMeta(src.name, "onnx", src.arch, charset,
                     InputSpec(src.channels, src.height, src.width, True, src.channel_order),
                     {"source": {"kind": "imported", "origin": f"{src.wheel} :: {src.member}",
                                 "wheel_sha256": src.wheel_sha256, "licence": src.licence,
                                 "authors": "PaddlePaddle/PaddleOCR", "params": param_count(model),
                                 "source_classes": len(source_chars) + 1}})
    return model, meta


def import_model(name: str, wheel_dir: str | Path, out_dir: str | Path, target_charset_spec: str) -> ModelMeta:
    """Write `out_dir/model.onnx` + `out_dir/meta.json` (atomically) for SOURCES[name] cut to the target charset:
    a model dir with `framework: onnx` that every recognizer, stage and CLI loads like a trained one.

    Reads `wheel_dir/<wheel>` (sha256-checked against SOURCES). Returns the meta.
    """
    src = source(name)
    model, meta = build_model(src, Path(wheel_dir), Charset.from_spec(target_charset_spec))
    with atomic_dir(out_dir) as tmp:
        onnx.save(model, str(tmp / "model.onnx"))
        meta.save(tmp)
    return meta


def _float_elements(model: onnx.ModelProto) -> int:
    """Weights of a graph that keeps them in initializers or (as the v4 detector does) in Constant nodes."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node if n.op_type == "Constant"
                                                for a in n.attribute if a.name == "value"]
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in tensors if t.data_type in floats))


def detector_source(name: str) -> DetSource:
    if name not in DETECTORS:
        raise ConfigError(f"imported detector {name!r}: expected one of {sorted(DETECTORS)}")
    return DETECTORS[name]


def import_detector(name: str, wheel_dir: str | Path, out_dir: str | Path) -> dict:
    """Write `out_dir/model.onnx` (the wheel's detector, unchanged) + `out_dir/meta.json` (kind "detector": what
    it is, where it came from, its licence and sha256s), atomically; returns the meta.

    A detector dir is not a recognizer dir (no charset, no input spec): `wordrec.ocr.detect.Detector` reads it,
    `wordrec.models.meta.ModelMeta` does not. It lives apart from models/pretrained (models/detect/<name>) so the
    stages that take every models/pretrained/* dir as a recognizer never meet it."""
    src = detector_source(name)
    data = read_member(Path(wheel_dir) / src.wheel, src.member, src.wheel_sha256)
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf / checker raise their own types
        raise DataError(f"{src.wheel} :: {src.member}: not a valid ONNX model ({e})") from None
    meta = DetectorMeta(name, src.arch, "N x 3 x H x W float32: BGR, (x/255 - mean)/std, sides multiples of 32",
                        "N x 1 x H x W DB text probability map",
                        {"kind": "imported", "origin": f"{src.wheel} :: {src.member}", "wheel_sha256": src.wheel_sha256,
                         "model_sha256": hashlib.sha256(data).hexdigest(), "licence": src.licence,
                         "authors": "PaddlePaddle/PaddleOCR", "params": _float_elements(model), "bytes": len(data)})
    with atomic_dir(out_dir) as tmp:
        (tmp / "model.onnx").write_bytes(data)
        meta.save(tmp)
    return meta.to_dict()
