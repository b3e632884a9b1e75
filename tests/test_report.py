"""report stage: aggregation into reports/mcu.json + summary.md, and its input errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_M = yaml.safe_load((ROOT / "params.yaml").read_text())["mcu"]
# read by name from params: the imports' float runs and their int8-kernel runs (<name>_int8)
IMPORTED = list(_M["imported"]) + [f"{n}_int8" for n in _M.get("imported_int8") or {}]
EV = {"crnn": {"synth_test": {"accuracy": 0.9, "accuracy_alnum_ci": 0.95, "ned": 0.02, "n": 10}}}
MCU = {"board": "b", "images": 2, "text_agreement": 1.0, "max_abs_diff": 1e-7, "insns_per_inference": 5e6,
       "macs": 1e6, "macs_per_insn": 0.2, "arena_bytes": 4096, "arena_region": "dtcm", "weight_bytes": 8192,
       "weights_region": "sram", "device_kernels": "float"}


def _inputs(tmp: Path, with_samples=True) -> list[str]:
    docs = {
        "synth": {"train": 10, "val": 2, "test": 2, "fonts": 3, "words": 5},
        "pretrained": {"ppocrv3": {"arch": "ch_PP-OCRv3_rec", "params": 2208992, "source_classes": 6625,
                                   "origin": "w.whl :: m.onnx", "licence": "Apache-2.0"}},
        "eval": EV,
        "grid": {"model": "crnn", "launcher": "basic", "best": {"params": {"lr": 1e-4}, "accuracy": 0.5},
                 "runs": [{}]},
        "export": {"crnn": {"max_abs_diff": 1e-7, "text_agreement": 1.0, "nodes": 3, "onnx_bytes": 2048}},
        "quantize": {"crnn": {"openvino": {"accuracy_fp32": 0.90, "accuracy_int8": 0.898, "bytes": 1024,  # fractions
                                           "accuracy_alnum_ci": {"accuracy_fp32": 0.95, "accuracy_int8": 0.94, "sets":
                                                                 {"synth_test": {"fp32": 0.95, "int8": 0.94}}}}},
                     "svtr": {"openvino": {"accuracy_fp32": 0.8, "accuracy_int8": 0.79, "bytes": 1024}},
                     "ppocrv3": {"inc": {"skipped": "torch only"},
                                 "onnx_qdq": {"accuracy_fp32": 0.905, "accuracy_int8": 0.9, "bytes": 2048,
                                              "set": "iiit5k_test_dev", "metric": "accuracy_alnum_ci"}}},
        "bench": {"crnn": {"openvino-int8": {"accuracy_alnum_ci": 0.95, "latency_ms_b1": 1.0,
                                             "throughput_fps": 900.0, "throughput_vs_onnxruntime_fp32": 4.2}}},
        "board": {"model": "tiny", "chosen_by": "auto: most accurate within budgets", "dev_set": "synth_test",
                  "budgets": {"flash_bytes": 4194304, "arena_bytes": None}},
        "pages": {"pages": {"documents": 1, "photos": 1}, "lines": {"documents": 5, "photos": 2}, "iou": 0.5,
                  "targets": {"det_f1": 0.95, "line_cer": 0.03},
                  "readers": {"ours": {"family": "ours", "all": {"precision": 1.0, "recall": 0.5, "f1": 0.667,
                                                                   "cer": 0.02, "wer": 0.1, "pages_per_s": 1.5},
                                       "documents": {"pages": 1, "cer": 0.01}, "photos": {"pages": 1, "cer": 0.04}},
                              "ours-int8-openvino": {"available": False, "reason": "no models/quant/x"}}},
    }
    args = []
    for k, v in docs.items():
        (tmp / f"{k}.json").write_text(json.dumps(v))
        args += [f"--{k}", str(tmp / f"{k}.json")]
    (tmp / "mcu").mkdir()
    for name in ["tiny", *IMPORTED]:
        (tmp / "mcu" / f"{name}.json").write_text(json.dumps({name: MCU}))
        if with_samples:
            (tmp / "mcu" / name).mkdir()
            (tmp / "mcu" / name / "samples.csv").write_text(
                "label,host,device,host_conf,device_conf,max_abs_diff\nhello,hello,hello,0.9,0.9,0\nab,,,0.5,0.5,0\n")
    return args + ["--mcu", str(tmp / "mcu" / "tiny.json"), "--mcu-imported", str(tmp / "mcu"),
                   "--mcu-out", str(tmp / "out" / "mcu.json"), "--summary", str(tmp / "out" / "summary.md")]


def _run(args):
    return subprocess.run([sys.executable, str(ROOT / "stages/report.py"), "--params", str(ROOT / "params.yaml"),
                           *args], capture_output=True, text=True, cwd=ROOT)


def test_report_aggregates_device_runs(tmp_path):
    r = _run(_inputs(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out/mcu.json").read_text()) == {"tiny": MCU, **{n: MCU for n in IMPORTED}}
    md = (tmp_path / "out/summary.md").read_text()
    assert "| `crnn` | from scratch (synthetic words only) | 90.0 / 95.0 / 0.020 |" in md
    assert "| `ppocrv3` | ch_PP-OCRv3_rec | 2,208,992 | 6,625 | w.whl :: m.onnx | Apache-2.0 |" in md
    assert "| `tiny` | `hello` | `hello` 0.9000 | `hello` 0.9000 |" in md
    assert "(empty) 0.5000" in md
    assert "| `crnn` | openvino | synth_test | accuracy | 90.0 | 89.8 | -0.2 | 1 KiB | 95.0 / 94.0 |" in md
    assert "| `svtr` | openvino | synth_test | accuracy | 80.0 | 79.0 | -1.0 | 1 KiB | – |" in md  # older report
    assert "| `ppocrv3` | onnx_qdq | iiit5k_test_dev | accuracy_alnum_ci | 90.5 | 90.0 | -0.5 | 2 KiB | 90.5 / 90.0 |" \
        in md
    assert "| `ppocrv3` | onnx_qdq | iiit5k_test_dev | accuracy_alnum_ci | 90.5 | 90.0 | -0.5 |" in md
    assert "| `ppocrv3` | inc | — | — | — | — | — | skipped: torch only |" in md
    assert "the board ships **`tiny`** (auto: most accurate within budgets; budgets flash_bytes ≤ 4,194,304)" in md
    assert "| `crnn` | fp32 | 95.0 | – | – |  |" in md
    assert "| `ours` | ours | 1.000 / 0.500 / 0.667 | 2.0 | 10.0 | 1.0 | 4.0 | 1.50 |  |" in md
    assert "not available: no models/quant/x" in md
    assert "| `tiny` | M55 (float kernels, float32 weights) | – | – | 5 M | yes |" in md


def test_report_missing_samples_is_a_clear_error(tmp_path):
    r = _run(_inputs(tmp_path, with_samples=False))
    assert r.returncode == 2
    assert "samples.csv: device samples missing" in r.stderr
    assert not (tmp_path / "out" / "summary.md").exists()
