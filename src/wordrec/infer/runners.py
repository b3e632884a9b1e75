"""Runners: one per runtime, each only maps a batch x float32[N, C, H, W] -> softmax probabilities float32[N, T, K].

Preprocessing, decoding and confidence belong to `wordrec.infer.recognizer.Recognizer`, which wraps a runner with
the model's meta; parity, accuracy and timing code is written once against this protocol for all runtimes:
torch (trained dir), onnxruntime (.onnx), OpenVINO (.xml IR or .onnx), Paddle Inference (trained Paddle dir), and
TVM's host build of the device model (.so). A runner may carry a `note` (how it ran, for reports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from wordrec.errors import ConfigError, DataError, one_line
from wordrec.models.meta import ModelMeta


class Runner(Protocol):
    note: str | None

    def probs(self, x: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """A torch module returning probabilities. `pad_to`: allowed batch sizes for a static-shape (compiled) graph;
    other batches are padded/chunked to them."""

    note = None

    def __init__(self, module, threads: int | None = None, pad_to: tuple[int, ...] = ()):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.module, self.pad_to = module, tuple(sorted(pad_to))

    @classmethod
    def from_dir(cls, model_dir: Path, meta: ModelMeta, threads: int | None = None) -> "TorchRunner":
        from wordrec.models.torch_rec.models import load_inference_module

        return cls(load_inference_module(Path(model_dir) / "best.pt", meta), threads)

    def probs(self, x: np.ndarray) -> np.ndarray:
        import torch

        n = len(x)
        if self.pad_to and n not in self.pad_to:
            top = self.pad_to[-1]
            if n > top:
                return np.concatenate([self.probs(x[i:i + top]) for i in range(0, n, top)])
            size = next(b for b in self.pad_to if b >= n)
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(x))).numpy()[:n]


class OrtRunner:
    note = None

    def __init__(self, path: str | Path | bytes, threads: int = 1, where: str | None = None):
        """`path`: an .onnx file, or a serialized model (bytes) built in memory, then `where` names it in errors."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        where = where or str(path)
        try:
            self.sess = ort.InferenceSession(path if isinstance(path, bytes) else str(path), so,
                                             providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unreadable/invalid files
            raise DataError(f"{where}: onnxruntime cannot load the model (corrupt or not ONNX? {one_line(e)})") \
                from None
        self.name = self.sess.get_inputs()[0].name

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.name: np.ascontiguousarray(x, np.float32)})[0]


class OvRunner:
    """OpenVINO on an IR (.xml) or ONNX file; one compiled model serves any batch size (dynamic batch).

    `precision` is what OpenVINO runs the ops that are not INT8 in: "f32" forces float32 (on CPUs with bf16 it
    would otherwise silently run "FP32" models in bf16); "auto" is OpenVINO's own CPU default (bf16 where the CPU
    has it). Callers holding a model's meta pass `ov_precision(meta)`, so bench, predict and the quantize gate all
    run an INT8 IR the way its accuracy was measured."""

    def __init__(self, path: str | Path, threads: int = 1, hint: str = "LATENCY", precision: str = "f32"):
        import openvino as ov

        path = Path(path)
        if precision not in ("f32", "auto"):
            raise ConfigError(f"{path}: openvino precision {precision!r}: expected 'f32' or 'auto'")
        if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise DataError(f"{path}: IR weights {path.with_suffix('.bin').name} not found beside it")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            props = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint}
            if precision == "f32":
                props["INFERENCE_PRECISION_HINT"] = "f32"
            self.compiled = core.compile_model(model, "CPU", props)
        except Exception as e:  # OpenVINO raises RuntimeError for truncated/garbage IR or weights
            raise DataError(f"{path}: OpenVINO cannot read the model (corrupt? {one_line(e)})") from None
        self.request = self.compiled.create_infer_request()
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.note = (f"ops left out of INT8 run in {self.precision} (OpenVINO's CPU default here)"
                     if precision == "auto" and self.precision != "f32" else None)

    def probs(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer([np.ascontiguousarray(x, np.float32)])[0].copy()


def ov_precision(meta: ModelMeta) -> str:
    """OvRunner's `precision` for a model: what the quantize stage recorded for an INT8 IR, else f32."""
    return meta.section("quantize").get("openvino_precision", "f32")


class PaddleRunner:
    """Paddle Inference over a trained Paddle dir's `inference/` (jit.save + PaddleOCR inference.yml)."""

    note = None

    def __init__(self, model_dir: str | Path, meta: ModelMeta, threads: int = 1):
        import paddle.inference as pi

        from wordrec.models.paddle_rec.export import check_dictionary

        inf = Path(model_dir) / "inference"
        if not (inf / "inference.json").is_file():
            raise DataError(f"{inf}: no inference.json (not a trained Paddle model dir)")
        check_dictionary(inf / "inference.yml", meta)
        config = pi.Config(str(inf / "inference.json"), str(inf / "inference.pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        try:
            self.pred = pi.create_predictor(config)
        except Exception as e:  # Paddle raises its own error types for unreadable programs/params
            raise DataError(f"{inf}: Paddle Inference cannot load the model (corrupt? {one_line(e)})") from None

    def probs(self, x: np.ndarray) -> np.ndarray:
        h = self.pred.get_input_handle(self.pred.get_input_names()[0])
        h.reshape(x.shape)
        h.copy_from_cpu(np.ascontiguousarray(x, np.float32))
        self.pred.run()
        return self.pred.get_output_handle(self.pred.get_output_names()[0]).copy_to_cpu()


class TvmHostRunner:
    """The compile stage's host (llvm) Relax executable: the device's kernels compiled for this CPU. It is built for
    batch 1 (the device's shape), so a batch runs image by image on one thread (no parallel schedule)."""

    def __init__(self, path: str | Path, note: str | None = None):
        from wordrec.device.compile.host import HostModule

        self.module = HostModule(path)
        self.note = note

    def probs(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.module(x[i:i + 1]) for i in range(len(x))])


MODEL_SUFFIXES = (".onnx", ".xml", ".so")  # the model files runner_for runs (model dirs go by meta.framework)


def runner_for(path: str | Path, meta: ModelMeta, threads: int = 1) -> Runner:
    """The runner for a model dir (by meta.framework) or a model file (by suffix)."""
    path = Path(path)
    if path.is_dir():
        if meta.framework == "torch":
            return TorchRunner.from_dir(path, meta, threads)
        if meta.framework == "paddle":
            return PaddleRunner(path, meta, threads)
        if meta.framework == "onnx":
            return OrtRunner(path / "model.onnx", threads)
    elif path.suffix == ".onnx":
        return OrtRunner(path, threads)
    elif path.suffix == ".xml":
        return OvRunner(path, threads, precision=ov_precision(meta))
    elif path.suffix == ".so":
        return TvmHostRunner(path)
    raise DataError(f"{path}: not a model dir (torch/paddle/onnx meta.json) nor a model file "
                    f"({', '.join(MODEL_SUFFIXES)})")
