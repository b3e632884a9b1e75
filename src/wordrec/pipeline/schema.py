"""The one config schema: every stage section of params.yaml as a typed dataclass, with range checks.

`wordrec.pipeline.config.section(cfg, "bench")` merges params.yaml:bench onto `Bench` (OmegaConf structured
configs reject unknown keys and values of the wrong type) and runs each class's `check()` (ranges), so each stage
validates its own section in one call and a typo or a bad value fails with `params.yaml:<key>: ...` before any
work. Defaults live in conf/ (Hydra), not here: fields without a default must be given by the composition.
Framework-specific model sections (train.models.<name>) are checked by `model_section`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from omegaconf import MISSING

from wordrec.threads import valid as threads_valid


class RangeError(ValueError):
    """A value of the right type outside its range; `key` is relative to the section."""

    def __init__(self, key: str, msg: str):
        super().__init__(msg)
        self.key = key


def _positive(obj, *names: str, zero_ok: bool = False) -> None:
    for n in names:
        v = getattr(obj, n)
        if v is not None and (v < 0 if zero_ok else v <= 0):
            raise RangeError(n, f"{v}: expected {'>= 0' if zero_ok else '> 0'}")


def _strips(obj) -> None:
    if obj.stem_strips == 1 or obj.stem_strips < 0:
        raise RangeError("stem_strips", f"{obj.stem_strips}: expected 0 (whole) or >= 2")


def _fraction(obj, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not 0 <= v <= 1:
            raise RangeError(n, f"{v}: expected a fraction in [0, 1]")


def _threads(obj, *names: str, none_ok: bool = False) -> None:
    for n in names:
        v = getattr(obj, n)
        if not (v is None and none_ok) and not threads_valid(v):
            raise RangeError(n, f"{v!r}: expected 'auto' (the cores available to the process) or an integer > 0")


def _one_of(obj, name: str, allowed) -> None:
    v = getattr(obj, name)
    if v not in allowed:
        raise RangeError(name, f"{v!r}: expected one of {sorted(allowed)}")


# --- synth -------------------------------------------------------------------------------------------------
@dataclass
class Fonts:
    dirs: list[str] = MISSING
    min_fonts: int = MISSING

    def check(self):
        if not self.dirs:
            raise RangeError("dirs", "empty: expected at least one font folder")
        _positive(self, "min_fonts")


@dataclass
class Text:
    word_lists: list[str] = MISSING
    english_words: bool = MISSING
    max_len: int = MISSING
    upper_p: float = MISSING
    title_p: float = MISSING
    length_prior: dict[int, float] = MISSING
    mix: dict[str, float] = MISSING

    def check(self):
        _positive(self, "max_len")
        _fraction(self, "upper_p", "title_p")
        if not self.word_lists and not self.english_words:
            raise RangeError("word_lists", "empty and english_words is false: no words to render")


@dataclass
class Render:
    height: int = MISSING
    max_width: int = MISSING
    font_size: list[int] = MISSING
    char_spacing: list[float] = MISSING
    pad: list[float] = MISSING
    stroke_p: float = MISSING
    shadow_p: float = MISSING
    context_p: float = MISSING
    min_contrast: int = MISSING
    rotate: float = MISSING
    shear: float = MISSING
    perspective: float = MISSING
    crop: float = MISSING

    def check(self):
        _positive(self, "height", "max_width")
        _fraction(self, "stroke_p", "shadow_p", "context_p")
        if len(self.font_size) != 2 or not 0 < self.font_size[0] <= self.font_size[1]:
            raise RangeError("font_size", f"{list(self.font_size)}: expected [min, max] pixels, 0 < min <= max")


@dataclass
class Bda:
    blur: float = MISSING
    contrast: float = MISSING
    color: float = MISSING
    downscale: float = MISSING
    noise: float = MISSING
    jpeg: float = MISSING
    invert: float = MISSING
    gray: float = MISSING

    def check(self):
        _fraction(self, *(f.name for f in fields(self)))


@dataclass
class Lines:
    n_train: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    words: list[int] = MISSING
    max_width: int = MISSING

    def check(self):
        _positive(self, "n_train", "n_val", zero_ok=True)
        _positive(self, "n_test", "max_width")  # evaluate reads lines_test
        if len(self.words) != 2 or not 1 <= self.words[0] <= self.words[1]:
            raise RangeError("words", f"{list(self.words)}: expected [min, max] words per line, 1 <= min <= max")


@dataclass
class Synth:
    seed: int = MISSING
    charset: str = MISSING
    n_train: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    workers: int = MISSING
    jpeg_quality: int = MISSING
    fonts: Fonts = MISSING
    text: Text = MISSING
    lines: Lines = MISSING
    render: Render = MISSING
    bda: Bda = MISSING

    def check(self):
        _positive(self, "n_train", "n_val", "n_test", "workers")
        if not 1 <= self.jpeg_quality <= 100:
            raise RangeError("jpeg_quality", f"{self.jpeg_quality}: expected 1..100")


# --- pretrained ----------------------------------------------------------------------------------------------
@dataclass
class Pretrained:
    models: list[str] = MISSING  # names are checked against wordrec.models.imported.SOURCES by the stage
    charset: str = MISSING
    detectors: list[str] = MISSING  # wordrec.models.imported.DETECTORS, written to models/detect/<name>
    paddle: list[str] = MISSING  # of `models`, also written as Paddle weights (models/pretrained_paddle/<name>)


# --- train -------------------------------------------------------------------------------------------------
@dataclass
class InputCfg:
    channels: int = MISSING
    height: int = MISSING
    width: int = MISSING
    keep_ratio: bool = MISSING
    channel_order: str = "rgb"  # bgr: PaddleOCR's pretrained weights saw cv2's BGR decode (fine-tuning keeps it)

    def check(self):
        _one_of(self, "channels", {1, 3})
        _one_of(self, "channel_order", {"rgb", "bgr"})
        _positive(self, "height", "width")


@dataclass
class Augment:
    enabled: bool = MISSING
    affine_p: float = MISSING
    rotate: float = MISSING
    shear: float = MISSING
    crop_p: float = MISSING
    crop: float = MISSING
    bda: Bda = MISSING

    def check(self):
        _fraction(self, "affine_p", "crop_p")


@dataclass
class TorchModel:
    framework: str = MISSING
    arch: dict[str, Any] = MISSING
    charset: str = MISSING
    input: InputCfg = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    epochs: float = MISSING
    warmup: float = MISSING
    decay: float = MISSING
    clip: float = MISSING
    amp: Optional[str] = MISSING
    val_every: int = MISSING
    val_max: int = MISSING
    augment: Augment = MISSING

    def check(self):
        _positive(self, "batch_size", "lr", "epochs", "clip", "val_every", "val_max")
        _fraction(self, "warmup", "decay")
        _one_of(self, "amp", {None, "bf16"})
        if self.input.height % 16:
            raise RangeError("input.height", f"{self.input.height}: the CRNN trunk needs a multiple of 16")
        if self.input.width < 16:
            raise RangeError("input.width", f"{self.input.width}: too small for the CRNN trunk's stride (>= 16)")


@dataclass
class PaddleArch:
    scale: float = MISSING
    last_conv_stride: list[int] = MISSING
    last_pool_type: str = MISSING
    mid_channels: Optional[int] = MISSING  # null: one fc from the neck to the classes (PP-OCRv3's head)
    fc_decay: float = MISSING
    act: str = MISSING
    neck: str = "reshape"  # reshape (Arm's Cortex-M flow) | svtr (PP-OCRv3's EncoderWithSVTR)

    def check(self):
        _one_of(self, "last_pool_type", {"avg", "max"})
        _one_of(self, "act", {"hardswish", "relu"})
        _one_of(self, "neck", {"reshape", "svtr"})


@dataclass
class Distill:
    """Knowledge distillation (engine torch): the student also matches a teacher's per-frame distributions."""

    teacher: Optional[str] = None  # null: none | ppocrv3 (models/pretrained_paddle/ppocrv3) | a Paddle model dir
    # of PP-OCRv3's layout (e.g. a trained svtr3); it reads the student's own input, frame for frame
    weight: float = 1.0  # the KL term's weight beside the CTC loss
    temperature: float = 1.0  # softens both distributions (the KL term is scaled by T^2, as Hinton et al.)

    def check(self):
        _positive(self, "weight", zero_ok=True)
        _positive(self, "temperature")


@dataclass
class PaddleModel:
    framework: str = MISSING
    charset: str = MISSING
    arch: PaddleArch = MISSING
    input: InputCfg = MISSING
    threads: Any = MISSING  # null (= train.threads), 'auto' or an int
    batch_size: int = MISSING
    steps: int = MISSING
    val_every: int = MISSING
    val_images: int = MISSING
    lr: float = MISSING
    warmup_steps: int = MISSING
    l2_decay: float = MISSING
    grad_clip: float = MISSING
    augment: Bda = MISSING
    init: str = "scratch"  # scratch | ppocrv3 (models/pretrained_paddle/ppocrv3) | a Paddle model dir
    engine: str = "paddle"  # what trains it: paddle | torch (the torch twin, weights copied back; 3.5-6x faster on CPU)
    distill: Distill = field(default_factory=Distill)
    freeze_backbone: bool = False  # fine-tuning: backbone weights fixed, its BN in eval mode
    train_last_blocks: int = 0  # with freeze_backbone: the backbone's last N blocks (of 13) train all the same
    backbone_lr_scale: float = 1.0  # their learning rate, as a multiple of lr (pretrained weights move gently)
    select_on: Optional[str] = None  # LMDB that picks the kept weights (a real dev set, never trained on); null or
    # absent: DATA/val
    select_metric: str = "accuracy"  # the score() key compared at each validation: accuracy | accuracy_alnum_ci
    select_min_gain: float = 0.0  # with an init: a checkpoint replaces the untouched weights only when it beats them
    # on validation by at least this fraction (a one-image win on a few hundred images is noise)
    lines_fraction: float = 0.0  # share of every batch drawn from DATA/lines_train (synth's multi-word lines, issue
    # #14); > 0: each validation also scores DATA/lines_val and ranks by the mean of words and lines
    select_max_word_drop: Optional[float] = None  # with an init: a checkpoint whose word score (select_on) is more
    # than this fraction below the init's is never kept (null: no limit)

    def check(self):
        _positive(self, "batch_size", "steps", "val_every", "val_images", "lr")
        _fraction(self, "lines_fraction")
        if self.lines_fraction >= 1:
            raise RangeError("lines_fraction", f"{self.lines_fraction}: expected < 1 (every batch keeps word crops)")
        if self.select_max_word_drop is not None:
            _fraction(self, "select_max_word_drop")
        _threads(self, "threads", none_ok=True)
        _positive(self, "warmup_steps", zero_ok=True)
        _one_of(self, "select_metric", {"accuracy", "accuracy_alnum_ci"})
        _one_of(self, "engine", {"paddle", "torch"})
        if self.distill.teacher and self.engine != "torch":
            raise RangeError("distill.teacher", f"{self.distill.teacher}: distillation trains with engine: torch")
        _positive(self, "train_last_blocks", zero_ok=True)
        _fraction(self, "select_min_gain")
        _positive(self, "backbone_lr_scale")
        if self.train_last_blocks and not self.freeze_backbone:
            raise RangeError("train_last_blocks", f"{self.train_last_blocks}: applies with freeze_backbone: true "
                             "(without it the whole backbone trains)")
        if self.input.width < 8:
            raise RangeError("input.width", f"{self.input.width}: too small for the backbone's stride 8")


MODEL_SCHEMAS = {"torch": TorchModel, "paddle": PaddleModel}


@dataclass
class Sweep:
    model: str = MISSING
    data: str = MISSING


@dataclass
class Train:
    seed: int = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    workers: int = MISSING
    lr: Optional[float] = MISSING
    batch_size: Optional[int] = MISSING
    epochs: Optional[float] = MISSING
    init: Optional[str] = MISSING
    sweep: Sweep = MISSING
    models: dict[str, Any] = MISSING  # each checked against MODEL_SCHEMAS by its framework (model_section)
    device: str = "cpu"  # Paddle trainer: cpu | gpu | auto (gpu when Paddle has a CUDA device, else cpu)

    def check(self):
        _positive(self, "lr", "batch_size", "epochs")
        _one_of(self, "device", {"cpu", "gpu", "auto"})
        _threads(self, "threads")
        _positive(self, "workers", zero_ok=True)


# --- the other stages ---------------------------------------------------------------------------------------
GEOMETRY_STEP = 8  # pixels: the imported recognizers downsample by 8 along W (one CTC frame per 8 columns)


@dataclass
class Geometry:
    """evaluate.geometry: imported recognizers scored at every height x width (wordrec.pipeline.geometry)."""
    models: list[str] = MISSING  # dirs under models/pretrained; empty = not measured
    heights: list[int] = MISSING
    widths: list[int] = MISSING
    sets: list[str] = MISSING  # test set names as evaluate reports them (synth_test, iiit5k_test_dev, ...)
    limit: Optional[int] = MISSING

    def check(self):
        _positive(self, "limit")
        if not self.models:
            return
        for key in ("heights", "widths"):
            values = list(getattr(self, key))
            if not values or len(set(values)) != len(values) or any(v < 16 or v % GEOMETRY_STEP for v in values):
                raise RangeError(key, f"{values}: expected distinct multiples of {GEOMETRY_STEP} >= 16, at least one")
        if not self.sets:
            raise RangeError("sets", "empty: expected at least one test set to score the geometries on")
        if len(set(self.models)) != len(self.models):
            raise RangeError("models", f"{list(self.models)}: a model named twice")


@dataclass
class Evaluate:
    models: list[str] = MISSING
    extra: list[str] = MISSING
    batch_size: int = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    limit: Optional[int] = MISSING
    worst_per_dataset: int = MISSING
    geometry: Geometry = MISSING

    def check(self):
        _positive(self, "batch_size", "limit")
        _threads(self, "threads")
        _positive(self, "worst_per_dataset", zero_ok=True)


@dataclass
class Grid:
    model: str = MISSING
    batch_size: list[int] = MISSING
    lr: list[float] = MISSING
    epochs: list[float] = MISSING
    keep_init: bool = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    launcher: str = MISSING
    launcher_params: dict[str, Any] = MISSING

    def check(self):
        _one_of(self, "launcher", {"basic", "joblib", "submitit_local", "submitit_slurm"})
        _threads(self, "threads")
        for key in ("batch_size", "lr", "epochs"):
            values = getattr(self, key)
            if not values or any(v <= 0 for v in values):
                raise RangeError(key, f"{list(values)}: expected a non-empty list of positive values")


@dataclass
class Parity:
    n_images: int = MISSING
    batch: int = MISSING
    max_abs_diff: float = MISSING
    min_text_agreement: float = MISSING

    def check(self):
        _positive(self, "n_images", "batch", "max_abs_diff")
        _fraction(self, "min_text_agreement")


@dataclass
class Export:
    opset: int = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    parity: Parity = MISSING

    def check(self):
        _threads(self, "threads")
        if not 13 <= self.opset <= 17:
            raise RangeError("opset", f"{self.opset}: expected 13..17 (the classic torch exporter)")


@dataclass
class Calibration:
    n_images: int = MISSING
    mode: str = MISSING

    def check(self):
        _positive(self, "n_images")
        _one_of(self, "mode", {"val", "constant"})


@dataclass
class Nncf:
    preset: str = MISSING
    fast_bias_correction: bool = MISSING
    openvino_ignored_types: list[str] = MISSING

    def check(self):
        _one_of(self, "preset", {"performance", "mixed"})


@dataclass
class Inc:
    batch: int = MISSING

    def check(self):
        _positive(self, "batch")


QUANT_BACKENDS = {"inc", "openvino", "onnx_qdq"}  # what quantize (and every backends/skip list) knows

@dataclass
class QuantizePretrained:
    backends: list[str] = MISSING
    skip: dict[str, str] = MISSING
    n_calibration: int = MISSING
    sets: list[str] = MISSING
    n_test: int = MISSING
    metric: str = MISSING
    gate_sets: list[str] = MISSING
    max_accuracy_drop: float = MISSING
    nncf: dict[str, Any] = MISSING

    def check(self):
        unknown = set(self.backends) - QUANT_BACKENDS
        if unknown:
            raise RangeError("backends", f"unknown {sorted(unknown)}; expected some of inc, openvino, onnx_qdq")
        no_reason = [b for b in self.backends if b == "inc" and not self.skip.get(b)]
        if no_reason:
            raise RangeError("skip", "inc cannot quantize ONNX-only imported models: give the reason in skip.inc")
        _positive(self, "n_calibration")
        _positive(self, "n_test", zero_ok=True)
        _fraction(self, "max_accuracy_drop")
        _one_of(self, "metric", {"accuracy", "accuracy_alnum_ci"})
        missing = set(self.gate_sets) - set(self.sets)
        if missing:
            raise RangeError("gate_sets", f"{sorted(missing)} not in sets {list(self.sets)}")
        allowed = {"preset", "fast_bias_correction", "model_type", "smooth_quant_matmul", "ignored_types",
                   "float_first_conv", "int8_residuals"}
        for model, over in self.nncf.items():
            bad = set(over) - allowed
            if bad:
                raise RangeError(f"nncf.{model}", f"unknown {sorted(bad)}; expected some of {sorted(allowed)}")


@dataclass
class Quantize:
    backends: list[str] = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    batch: int = MISSING
    n_test: int = MISSING
    calibration: Calibration = MISSING
    max_accuracy_drop: float = MISSING
    gate_sets: list[str] = MISSING
    nncf: Nncf = MISSING
    inc: Inc = MISSING
    openvino_precision: str = MISSING
    float_first_conv: bool = MISSING
    pretrained: QuantizePretrained = MISSING
    model_nncf: dict[str, Any] = MISSING  # trained model name -> NNCF overrides (as pretrained.nncf)
    model_skip: dict[str, Any] = field(default_factory=dict)  # trained model name -> {backend: why it is not run}

    def check(self):
        unknown = set(self.backends) - QUANT_BACKENDS
        if unknown:
            raise RangeError("backends", f"unknown {sorted(unknown)}; expected some of inc, openvino, onnx_qdq")
        for model, skips in self.model_skip.items():
            if not isinstance(skips, dict) or not skips:
                raise RangeError(f"model_skip.{model}", f"{skips!r}: expected {{backend: reason}}")
            for backend, why in skips.items():
                if backend not in QUANT_BACKENDS or not str(why or "").strip():
                    raise RangeError(f"model_skip.{model}.{backend}",
                                     f"{why!r}: expected a backend of inc, openvino, onnx_qdq with its reason")
        _positive(self, "batch")
        _threads(self, "threads")
        _positive(self, "n_test", zero_ok=True)
        _fraction(self, "max_accuracy_drop")
        _one_of(self, "openvino_precision", {"f32", "auto"})


@dataclass
class Peers:
    tesseract: bool = MISSING
    rapidocr: bool = MISSING
    n_images: int = MISSING
    repeats: int = MISSING

    def check(self):
        _positive(self, "repeats")
        _positive(self, "n_images", zero_ok=True)


@dataclass
class Bench:
    runtimes: list[str] = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    batch: int = MISSING
    warmup: int = MISSING
    repeats: int = MISSING
    n_accuracy: int = MISSING
    compile_fp32: bool = MISSING
    peers: Peers = MISSING

    def check(self):
        # runtimes are checked against wordrec.post.benchmark.RUNTIMES, a registry other code can extend
        _positive(self, "batch", "repeats")
        _threads(self, "threads")
        _positive(self, "warmup", "n_accuracy", zero_ok=True)


@dataclass
class Int8Check:
    images: int = MISSING
    min_text_agreement: float = MISSING

    def check(self):
        _positive(self, "images")
        _fraction(self, "min_text_agreement")


@dataclass
class Int8Kernels:
    """compile.int8_kernels: the gates of compile.kernels=int8 (a QDQ ONNX on the wrnn int8 kernels)."""
    set: str = MISSING
    images: int = MISSING
    min_text_agreement: float = MISSING
    stem_strips: int = MISSING  # 0 (whole) or >= 2

    def check(self):
        _positive(self, "images")
        _fraction(self, "min_text_agreement")
        _strips(self)


@dataclass
class Targets:
    arena_bytes: int = MISSING
    weight_bytes: int = MISSING

    def check(self):
        _positive(self, "arena_bytes", "weight_bytes")


@dataclass
class Compile:
    width: int = MISSING
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    seed: int = MISSING
    parity_inputs: int = MISSING
    parity_tol: float = MISSING
    pad_in_arena: Any = MISSING  # true | false | "auto"
    weights: str = MISSING
    int8_check: Int8Check = MISSING
    kernels: str = MISSING  # float | int8
    int8_kernels: Int8Kernels = MISSING
    targets: Targets = MISSING

    def check(self):
        _positive(self, "width", zero_ok=True)
        _positive(self, "parity_inputs", "parity_tol")
        _threads(self, "threads")
        _one_of(self, "weights", {"float32", "int8", "auto"})
        _one_of(self, "kernels", {"float", "int8"})
        if self.pad_in_arena not in (True, False, "auto"):
            raise RangeError("pad_in_arena", f"{self.pad_in_arena!r}: expected true, false or auto")


@dataclass
class ImportedRun:
    """mcu.imported.<name>: one imported (models/pretrained/<name>) recognizer compiled and run on the device."""
    weights: str = MISSING  # compile.weights for this model
    images: int = MISSING  # mcu.images for this model

    def check(self):
        _one_of(self, "weights", {"float32", "int8", "auto"})
        _positive(self, "images")


@dataclass
class ImportedInt8Run:
    """mcu.imported_int8.<name>: an import's QDQ ONNX (models/quant/<name>/onnx_qdq) on the wrnn int8 kernels."""
    images: int = MISSING  # mcu.images for this model
    stem_strips: int = MISSING  # compile.int8_kernels.stem_strips for this model

    def check(self):
        _positive(self, "images")
        _strips(self)


@dataclass
class Mcu:
    runner: str = MISSING
    images: int = MISSING
    imported: dict[str, ImportedRun] = MISSING
    imported_int8: dict[str, ImportedInt8Run] = MISSING
    opt: str = MISSING
    extra_cflags: list[str] = MISSING
    arena_region: str = MISSING
    weights_region: str = MISSING
    timeout_s: float = MISSING
    max_abs_diff_tol: float = MISSING
    plugin_dir: str = MISSING
    samples: int = MISSING
    profile_images: int = MISSING  # int8 builds: images run again on the per-layer profile build

    def check(self):
        _one_of(self, "runner", {"qemu", "fvp"})
        _positive(self, "profile_images", zero_ok=True)
        _one_of(self, "arena_region", {"auto", "dtcm", "isram", "ddr"})
        _one_of(self, "weights_region", {"auto", "sram", "isram", "sram+isram", "ddr"})
        _positive(self, "images", "timeout_s", "max_abs_diff_tol")
        _positive(self, "samples", zero_ok=True)
        for name, run in self.imported.items():
            try:
                run.check()
            except RangeError as e:
                raise RangeError(f"imported.{name}.{e.key}", str(e)) from None
        for name, run in self.imported_int8.items():
            try:
                run.check()
            except RangeError as e:
                raise RangeError(f"imported_int8.{name}.{e.key}", str(e)) from None


@dataclass
class Budgets:
    flash_bytes: Optional[int] = MISSING
    arena_bytes: Optional[int] = MISSING
    insns_per_inference: Optional[float] = MISSING

    def check(self):
        _positive(self, "flash_bytes", "arena_bytes", "insns_per_inference")


@dataclass
class Board:
    model: str = MISSING
    dev_set: str = MISSING
    budgets: Budgets = MISSING

    def check(self):
        if not self.model:
            raise RangeError("model", "empty: expected auto or a model the mcu stage ran")


@dataclass
class PagePeers:
    rapidocr: bool = MISSING
    tesseract: bool = MISSING


@dataclass
class PageTargets:
    det_f1: float = MISSING
    line_cer: float = MISSING

    def check(self):
        _fraction(self, "det_f1", "line_cer")


@dataclass
class Pages:
    seed: int = MISSING
    n_documents: int = MISSING
    n_photos: int = MISSING
    max_side: int = MISSING
    font_dirs: list[str] = MISSING
    word_lists: list[str] = MISSING
    models: list[str] = MISSING  # dirs under models/pretrained (or any model dir the stage's --pretrained holds)
    int8: Any = MISSING  # 'auto' (each INT8 backend present under models/quant/<model>/) or a list of backends
    threads: Any = MISSING  # 'auto' or an int (wordrec.threads)
    batch_size: int = MISSING
    iou: float = MISSING
    peers: PagePeers = MISSING
    targets: PageTargets = MISSING
    gallery: int = MISSING

    def check(self):
        _positive(self, "n_documents", "n_photos", zero_ok=True)
        if self.n_documents + self.n_photos == 0:
            raise RangeError("n_documents", "0 documents and 0 photos: nothing to read")
        _positive(self, "batch_size", "iou")
        _positive(self, "gallery", zero_ok=True)
        _threads(self, "threads")
        _fraction(self, "iou")
        if self.max_side < 640:
            raise RangeError("max_side", f"{self.max_side}: expected >= 640 (the renderer's smallest page side)")
        if not self.models:
            raise RangeError("models", "empty: expected at least one recognizer")
        if not self.font_dirs:
            raise RangeError("font_dirs", "empty: expected at least one font folder")
        if self.int8 != "auto":
            if isinstance(self.int8, str) or not all(b in INT8_BACKENDS for b in self.int8):
                raise RangeError("int8", f"{self.int8!r}: expected 'auto' or a list of {list(INT8_BACKENDS)}")


INT8_BACKENDS = ("openvino", "onnx_qdq")  # models/quant/<model>/<backend>/ that the pages stage reads lines with


@dataclass
class Report:
    samples: int = MISSING

    def check(self):
        _positive(self, "samples", zero_ok=True)


SECTIONS = {"synth": Synth, "pretrained": Pretrained, "train": Train, "evaluate": Evaluate, "grid": Grid, "export": Export,
            "quantize": Quantize, "bench": Bench, "compile": Compile, "mcu": Mcu, "board": Board, "pages": Pages,
            "report": Report}


def check_tree(obj, prefix: str) -> None:
    """Run `check()` on a typed section and every nested schema object; RangeError keys get the full path."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if is_dataclass(v):
            check_tree(v, f"{prefix}.{f.name}")
    if hasattr(obj, "check"):
        try:
            obj.check()
        except RangeError as e:
            raise RangeError(f"{prefix}.{e.key}", str(e)) from None
