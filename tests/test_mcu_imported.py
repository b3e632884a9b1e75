"""compile and mcu on imported PaddleOCR recognizers (models/pretrained/<name>, wordrec.models.imported).

The wheel tests need build/wheels/ (scripts/fetch_wheels.sh) and the Debian toolchain; they use ppocrv3, the smoke
profile's import, at its one width (the imported graphs reshape to T = 40 after the head: 48x320 only; ~20 s to
compile). The memory-placement, MAC and config tests run everywhere.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO, smoke_cfg
from wordrec.errors import ConfigError
from wordrec.models import imported
from wordrec.pipeline.config import compose, section

WHEELS = REPO / "build" / "wheels"
HAVE_WHEELS = all((WHEELS / s.wheel).is_file() for s in imported.SOURCES.values())
HAVE_TOOLS = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
needs_wheels = pytest.mark.skipif(not HAVE_WHEELS, reason=f"no RapidOCR wheels in {WHEELS}: run scripts/fetch_wheels.sh")
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="needs the Debian toolchain from scripts/setup.sh")
WIDTH = 320  # px: the imported graph fixes T = 40 = WIDTH / 8


def _stage(name):
    return importlib.import_module(f"stages.{name}")


def _ort(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    return onnxruntime.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]


@pytest.fixture(scope="module")
def ppocrv3(tmp_path_factory) -> Path:
    if not HAVE_WHEELS:
        pytest.skip(f"no RapidOCR wheels in {WHEELS}: run scripts/fetch_wheels.sh")
    d = tmp_path_factory.mktemp("pretrained") / "ppocrv3"
    imported.import_model("ppocrv3", WHEELS, d, "en")
    return d


@pytest.fixture(scope="module")
def ppocrv3_compiled(ppocrv3, tmp_path_factory) -> Path:
    """The compile stage on the imported dir, float weights (the smoke profile's mcu.imported entry)."""
    root = tmp_path_factory.mktemp("compile")
    metrics = _stage("compile").run(smoke_cfg("compile.weights=float32"),
                                    {"model": ppocrv3}, {"out": root / "ppocrv3", "report": root / "c.json"})
    assert metrics["host_vs_onnxruntime_max_abs_diff"] <= 1e-4  # the stage's own gate, checked again here
    return root / "ppocrv3"


@needs_wheels
@pytest.mark.slow
def test_imported_ppocrv3_compiles_and_its_runner_matches_onnxruntime(ppocrv3_compiled, tmp_path):
    """Host parity (the stage gate) and the generated C runner + kernels, built by the host gcc, against
    onnxruntime on the imported graph: SE blocks, hardswish, LayerNorm (ReduceMean/Pow/Sqrt), attention
    (MatMul + Softmax), run-time reshapes, and scalar constants passed to kernels (ndim 0)."""
    facts = json.loads((ppocrv3_compiled / "meta.json").read_text())["compile"]
    assert facts["input_shape"] == [1, 3, 48, WIDTH] and facts["output_shape"] == [1, WIDTH // 8, 96]
    assert facts["weights"] == "float32" and facts["device_kernels"] == "float"
    assert facts["macs"] > 100_000_000  # counted through the neck's run-time reshapes (ONNX inference loses them)
    dev = ppocrv3_compiled / "device"
    assert "TVMBackendAllocWorkspace" not in (dev / "kernels.c").read_text()
    lib = tmp_path / "librunner.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib), *map(str, dev.glob("*.c")), "-lm"],
                   check=True, capture_output=True)
    run = ctypes.CDLL(str(lib)).wordrec_run
    x = np.random.default_rng(0).uniform(-1, 1, [1, 3, 48, WIDTH]).astype(np.float32)
    y = np.zeros(facts["output_shape"], np.float32)
    assert run(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p)) == 0
    np.testing.assert_allclose(y, _ort(ppocrv3_compiled / "model.onnx", x), atol=1e-5)


@needs_wheels
@needs_tools
@pytest.mark.slow
def test_imported_ppocrv3_on_qemu(ppocrv3_compiled, synth_data, tmp_path):
    """The mcu stage on the imported model: device text equals host text; the regions are reported."""
    out = {"out": tmp_path / "elf", "report": tmp_path / "mcu.json", "plots": tmp_path / "plots"}
    rep = _stage("mcu").run(smoke_cfg("mcu.images=2"), {"compiled": ppocrv3_compiled, "data": synth_data / "test"},
                            out)["ppocrv3"]
    assert rep["images"] == 2 and rep["text_agreement"] == 1.0 and rep["max_abs_diff"] <= 1e-3
    assert rep["weights_region"] == "ddr"  # 8.8 MB of float weights: more than SRAM or ISRAM holds
    assert rep["insns_per_inference"] > rep["macs"] > 0


@needs_wheels
def test_imported_ppocrv4_imports_once_its_reshapes_are_frozen(tmp_path):
    """PP-OCRv4's neck reshapes to shapes computed at run time through Casts (onnxsim could not fold them, see
    docs/imported_models.md), which Relax's importer rejects (`Reshape requires the input new shape to be Shape`);
    `freeze_reshapes` evaluates the targets at the compiled shape and the import goes through."""
    from tvm.relax.frontend.onnx import from_onnx

    from wordrec.device.compile.frontend import freeze_reshapes, import_relax
    from wordrec.device.compile.macs import count_macs

    imported.import_model("ppocrv4", WHEELS, tmp_path / "v4", "en")
    model = onnx.load(str(tmp_path / "v4" / "model.onnx"))
    with pytest.raises(Exception, match="Reshape requires the input new shape to be Shape"):
        from_onnx(model, shape_dict={"x": [1, 3, 48, 320]}, dtype_dict={"x": "float32"})
    frozen = freeze_reshapes(model, [1, 3, 48, 320])
    assert len(frozen.graph.initializer) == len(model.graph.initializer) + 6  # its six run-time reshape targets
    import_relax(model, [1, 3, 48, 320], "ppocrv4")
    assert count_macs(model, [1, 3, 48, 320]) == 671_130_240


def test_freeze_reshapes_keeps_the_outputs():
    """A Shape -> Gather -> Cast -> Concat reshape target becomes a constant; onnxruntime gives the same output."""
    from wordrec.device.compile.frontend import freeze_reshapes

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["nf"], ["ni"], to=TensorProto.INT64),
             helper.make_node("Concat", ["ni", "rest"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "idx"),
             numpy_helper.from_array(np.array([8, -1], np.int64), "rest")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    frozen = freeze_reshapes(model, [1, 2, 4, 4])
    reshape = [n for n in frozen.graph.node if n.op_type == "Reshape"][0]
    target = {i.name: numpy_helper.to_array(i) for i in frozen.graph.initializer}[reshape.input[1]]
    assert target.tolist() == [1, 8, -1]
    x = np.random.default_rng(0).normal(size=(1, 2, 4, 4)).astype(np.float32)
    import onnxruntime

    def run(m):
        return onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]

    np.testing.assert_array_equal(run(frozen), run(model))
    assert freeze_reshapes(frozen, [1, 2, 4, 4]) is frozen  # nothing left to freeze


def test_macs_through_a_run_time_reshape():
    """Conv -> Shape/Slice/Concat -> Reshape -> Transpose -> MatMul, as PaddleOCR's necks do: MACs by hand."""
    from wordrec.device.compile.macs import count_macs

    def const(name, v):
        return numpy_helper.from_array(np.asarray(v), name)

    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["y"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two"], ["nc"]),
             helper.make_node("Concat", ["nc", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["y", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["t", "w2"], ["z"])]
    inits = [const("w", np.zeros((4, 2, 3, 3), np.float32)), const("zero", np.array([0], np.int64)),
             const("two", np.array([2], np.int64)), const("minus1", np.array([-1], np.int64)),
             const("w2", np.zeros((4, 5), np.float32))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert count_macs(model, [1, 2, 4, 4]) == 4 * 4 * 4 * (2 * 9) + 16 * 5 * 4


@pytest.mark.parametrize("arena, weights, choice, want", [
    (3_147_072, 12_057_028, ("auto", "auto"), ("isram", "ddr")),     # ppocrv6_small, float weights
    (3_147_072, 3_126_676, ("auto", "auto"), ("isram", "ddr")),      # int8 weights: ISRAM cannot hold both
    (3_147_072, 3_126_676, ("ddr", "auto"), ("ddr", "isram")),       # arena off-chip: the weights take ISRAM
    (1_000_000, 2_500_000, ("auto", "auto"), ("isram", "isram")),    # both fit ISRAM together
    (4_050_176, 8_835_952, ("auto", "auto"), ("ddr", "ddr")),        # ppocrv3, float weights
    (400_000, 1_000_000, ("auto", "auto"), ("dtcm", "sram")),        # the on-chip targets
])
def test_memory_placement(arena, weights, choice, want):
    from wordrec.device.board.toolchain import place

    assert place(arena, weights, *choice) == want


def test_weights_split_over_sram_and_isram():
    """Weights that fit neither SRAM nor ISRAM beside the arena fill SRAM (first fit, 16-byte aligned) and put the
    rest in ISRAM; the linker script lists the SRAM constants and leaves the rest to .weights2."""
    from wordrec.device.board.toolchain import SPLIT, linker_script, place, split_weights

    mib = 1024 * 1024
    sizes = {f"wordrec_weights.{i}": n for i, n in enumerate([1_500_000, 700_000, 400_000, 900_000, 4])}
    first, rest = split_weights(sizes, 2 * mib)
    assert first == ["wordrec_weights.0", "wordrec_weights.2", "wordrec_weights.4"]  # .1 and .3 overflow SRAM
    assert rest == 700_000 + 900_000
    assert place(1_105_920, sizes) == ("isram", SPLIT)  # ppocrv6_small int8: 1.05 MiB arena, 3.5 MB of weights
    assert place(1_105_920, sum(sizes.values())) == ("isram", "ddr")  # without per-constant sizes: no split
    assert place(3_000_000, sizes) == ("isram", "ddr")  # ISRAM cannot hold the rest beside this arena
    assert place(400_000, {"wordrec_weights.0": mib}) == ("dtcm", "sram")  # fits: no split
    ld = linker_script("isram", SPLIT, first)
    assert "KEEP(*(wordrec_weights.0)) KEEP(*(wordrec_weights.2)) KEEP(*(wordrec_weights.4)) } > SRAM" in ld
    assert "KEEP(*(wordrec_weights wordrec_weights.*)) } > ISRAM" in ld and "@" not in ld.split("*/", 1)[1]


def test_unknown_weights_region_is_a_clear_error():
    from wordrec.device.board.toolchain import place

    with pytest.raises(ConfigError, match="mcu.weights_region: 'flash'"):
        place(1, 1, "auto", "flash")


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
def test_every_profile_runs_on_the_device_only_what_it_imports(profile):
    cfg = compose([f"profile={profile}"])
    names = set(section(cfg, "mcu").imported)
    assert names and names <= set(section(cfg, "pretrained").models)


def test_bad_imported_entry_names_the_key():
    with pytest.raises(ConfigError, match=r"mcu\.imported\.ppocrv3\.weights"):
        section(compose(["profile=smoke", "mcu.imported.ppocrv3.weights=int4"]), "mcu")
