"""bench stage on tiny models: JSON keys per runtime/precision, the plot and machine notes (no timing asserts)."""

import json

import pytest

from fixtures.quant_fixtures import load_stage, smoke
from wordrec.post.benchmark import RUNTIMES
from wordrec.errors import ConfigError
from wordrec.infer.runners import OrtRunner

PEERS = ("bench.peers.n_images=3", "bench.peers.repeats=1")


@pytest.fixture
def quantized(tiny_models_dirs, tiny_exported, tiny_task, tmp_path):
    cfg = smoke("quantize.backends=[openvino,onnx_qdq]", "quantize.calibration.n_images=16",
                "quantize.max_accuracy_drop=0.04")
    load_stage("quantize").run(cfg, {"models": tiny_models_dirs, "export": tiny_exported, "data": tiny_task,
                                     "real": tmp_path / "none"},
                               {"out": tmp_path / "quant", "report": tmp_path / "quantize.json"})
    return tmp_path / "quant"


def _bench(tmp_path, models, export, quant, data, *overrides, compiled=None):
    return load_stage("bench").run(smoke(*PEERS, *overrides),
                                   {"models": models, "export": export, "quant": quant, "data": data,
                                    "compiled": compiled or tmp_path / "no_compile"},
                                   {"report": tmp_path / "bench.json", "plots": tmp_path / "bench"})


def test_bench_writes_json_and_plot(tiny_models_dirs, tiny_exported, quantized, tiny_task, tmp_path, monkeypatch):
    # A runtime added through the hook appears like the built-in ones.
    monkeypatch.setitem(RUNTIMES, "extra", lambda a, precision, threads, batch, **_:
                        OrtRunner(a.onnx, threads) if precision == "fp32" else None)
    report = _bench(tmp_path, tiny_models_dirs, tiny_exported, quantized, tiny_task,
                    "bench.runtimes=[torch,onnxruntime,openvino,extra]")
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    want = {"torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8", "extra-fp32"}
    for name in ("tiny_crnn", "tiny_lite"):
        assert set(report[name]) == want  # no torch-int8: INC was not run for this fixture
        for variant, r in report[name].items():
            # the INT8 IR runs its non-INT8 ops at OpenVINO's CPU default, noted when that is not f32 (bf16 here)
            note = {"note"} if variant == "openvino-int8" and "note" in r else set()
            assert not note or "OpenVINO's CPU default" in r["note"]
            assert set(r) == {"latency_ms_b1", "throughput_fps", "throughput_vs_onnxruntime_fp32", "accuracy",
                              "accuracy_alnum_ci"} | note
            assert r["latency_ms_b1"] > 0 and r["throughput_fps"] > 0 and r["accuracy"] >= 0.8
        assert report[name]["onnxruntime-fp32"]["throughput_vs_onnxruntime_fp32"] == 1.0
    for peer in ("tesseract", "rapidocr_ppocrv4"):  # installed on this box; skipped elsewhere
        if peer in report:
            (r,) = report[peer].values()
            assert set(r) == {"latency_ms_b1", "throughput_fps", "accuracy", "accuracy_alnum_ci"}
    assert (tmp_path / "bench" / "accuracy_latency.png").stat().st_size > 10_000
    mach = json.loads((tmp_path / "bench" / "machine.json").read_text())
    assert mach["threads"] == 1 and mach["logical_cores"] >= 1 and "onnxruntime" in mach["versions"]


def test_unknown_runtime(tiny_models_dirs, tiny_exported, tiny_task, tmp_path):
    with pytest.raises(ConfigError, match="nosuch"):
        _bench(tmp_path, tiny_models_dirs, tiny_exported, tmp_path, tiny_task, "bench.runtimes=[nosuch]")


def test_tvm_host_joins_for_compiled_conv_only_models(tiny_models_dirs, tiny_exported, tiny_task, tmp_path):
    compiled = tmp_path / "compile"
    load_stage("compile").run(smoke(), {"model": tiny_exported / "tiny_lite"},
                              {"out": compiled / "tiny_lite", "report": tmp_path / "compile.json"})
    report = _bench(tmp_path, tiny_models_dirs, tiny_exported, tmp_path / "no_quant", tiny_task,
                    "bench.runtimes=[onnxruntime,tvm]", "bench.peers.tesseract=false", "bench.peers.rapidocr=false",
                    compiled=compiled)
    assert set(report["tiny_crnn"]) == {"onnxruntime-fp32"}  # LSTM: not compiled, so no TVM row
    assert set(report["tiny_lite"]) == {"onnxruntime-fp32", "tvm-fp32"}
    tvm, ort = report["tiny_lite"]["tvm-fp32"], report["tiny_lite"]["onnxruntime-fp32"]
    assert tvm["accuracy"] == ort["accuracy"] >= 0.8 and tvm["throughput_fps"] > 0

    # int8 weight storage: listed as tvm-int8, with a note that its kernels are float
    load_stage("compile").run(smoke("compile.weights=int8", "compile.int8_check.min_text_agreement=0.9"),
                              {"model": tiny_exported / "tiny_lite", "data": tiny_task / "test"},
                              {"out": compiled / "tiny_lite", "report": tmp_path / "compile.json"})
    report = _bench(tmp_path, tiny_models_dirs, tiny_exported, tmp_path / "no_quant", tiny_task,
                    "bench.runtimes=[tvm]", "bench.peers.tesseract=false", "bench.peers.rapidocr=false",
                    compiled=compiled)
    assert set(report["tiny_lite"]) == {"tvm-int8"}
    assert report["tiny_lite"]["tvm-int8"]["note"] == "int8 weights, float kernels"
    assert report["tiny_lite"]["tvm-int8"]["accuracy"] >= 0.8


@pytest.mark.slow
def test_bench_inc_int8_compiled(tiny_models_dirs, tiny_exported, tiny_task, tmp_path):
    """INC's INT8 graph through torch.compile (inductor compiles two static batch shapes: slow)."""
    models = tiny_models_dirs.split(",")[1]  # tiny_lite
    load_stage("quantize").run(smoke("quantize.backends=[inc]", "quantize.calibration.n_images=16",
                                     "quantize.max_accuracy_drop=0.04"),
                               {"models": models, "export": tiny_exported, "data": tiny_task, "real": tmp_path / "x"},
                               {"out": tmp_path / "quant", "report": tmp_path / "quantize.json"})
    report = _bench(tmp_path, models, tiny_exported, tmp_path / "quant", tiny_task, "bench.runtimes=[torch]",
                    "bench.peers.tesseract=false", "bench.peers.rapidocr=false")
    assert set(report["tiny_lite"]) == {"torch-fp32", "torch-int8"}
    assert report["tiny_lite"]["torch-int8"]["accuracy"] >= 0.8


def test_median_seconds_stops_a_slow_runtime_early():
    from wordrec.post.benchmark import MIN_REPEATS, median_seconds

    calls = []
    median_seconds(lambda: calls.append(__import__("time").sleep(0.02)), warmup=1, repeats=20, budget_s=0.03)
    assert len(calls) == 1 + MIN_REPEATS  # warmup + the minimum: the budget was spent after the second call
    calls.clear()
    median_seconds(lambda: calls.append(None), warmup=0, repeats=20, budget_s=10)
    assert len(calls) == 20
