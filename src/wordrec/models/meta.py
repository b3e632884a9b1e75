"""The one model-meta schema: the only reader and writer of a model's `meta.json`.

Every model dir (trained, grid, exported, quantized, compiled) carries one `meta.json`; stages load it once with
`ModelMeta.load(path)`, pass the object down, and write it back with `.save(dir)` after adding their own facts
under a section named after the stage (`train`, `grid`, `export`, `quantize`, `compile`). Validation happens here,
once, so code below a stage never re-reads or re-checks the file.

    {"name": "crnn", "framework": "torch", "arch": {...}, "charset": "0123...z",
     "input": {"channels": 1, "height": 32, "width": 100, "keep_ratio": false, "channel_order": "rgb"},
     "train": {"val_accuracy": 0.72, "images_per_second": 80.1, ...}, "export": {...}, ...}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wordrec.data.charset import Charset
from wordrec.errors import DataError
from wordrec.io import write_json

FRAMEWORKS = ("torch", "paddle", "onnx")  # onnx: an imported model that exists only as a graph
CHANNEL_ORDERS = ("rgb", "bgr")  # bgr: PaddleOCR's pretrained weights were trained on cv2's BGR decode
SECTIONS = ("train", "grid", "export", "quantize", "compile", "source")  # stage facts, each a JSON object
# Keys every trainer writes into `train` (torch and Paddle alike), so grid/report/plots read any framework.
TRAIN_KEYS = ("val_accuracy", "val_ned", "best_step", "total_steps", "seq_len", "params", "batch_size", "lr",
              "epochs", "train_images", "train_seconds", "images_per_second", "threads", "init", "config_hash")


@dataclass(frozen=True)
class InputSpec:
    channels: int
    height: int
    width: int
    keep_ratio: bool
    channel_order: str = "rgb"

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        return {"channels": self.channels, "height": self.height, "width": self.width,
                "keep_ratio": self.keep_ratio, "channel_order": self.channel_order}


@dataclass
class ModelMeta:
    name: str
    framework: str
    arch: Any
    charset: Charset
    input: InputSpec
    sections: dict[str, dict] = field(default_factory=dict)
    path: Path | None = None  # the meta.json it was read from (for error messages)

    @property
    def num_classes(self) -> int:
        return self.charset.num_classes

    def section(self, name: str) -> dict:
        return self.sections.get(name, {})

    def with_section(self, name: str, facts: dict) -> "ModelMeta":
        if name not in SECTIONS:
            raise ValueError(f"meta section {name!r}: expected one of {SECTIONS}")
        return replace(self, sections={**self.sections, name: dict(facts)})

    def with_input(self, **changes) -> "ModelMeta":
        return replace(self, input=replace(self.input, **changes))

    def to_dict(self) -> dict:
        return {"name": self.name, "framework": self.framework, "arch": self.arch, "charset": self.charset.chars,
                "input": self.input.to_dict(), **self.sections}

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / "meta.json"
        write_json(path, self.to_dict())  # the project's one JSON writer: atomic, indent 2, sorted keys
        return path

    @classmethod
    def from_dict(cls, d: dict, where: str = "meta.json") -> "ModelMeta":
        if not isinstance(d, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(d).__name__}")
        missing = [k for k in ("name", "framework", "arch", "charset", "input") if k not in d]
        inp = d.get("input")
        if isinstance(inp, dict):
            missing += [f"input.{k}" for k in ("channels", "height", "width", "keep_ratio") if k not in inp]
        elif "input" in d:
            missing.append("input (an object)")
        if missing:
            raise DataError(f"{where}: missing key(s) {missing}")
        unknown = sorted(set(d) - {"name", "framework", "arch", "charset", "input", *SECTIONS})
        if unknown:
            raise DataError(f"{where}: unknown key(s) {unknown}; stage facts go under one of {list(SECTIONS)}")
        if d["framework"] not in FRAMEWORKS:
            raise DataError(f"{where}: framework {d['framework']!r}, expected one of {list(FRAMEWORKS)}")
        bad = [k for k in SECTIONS if k in d and not isinstance(d[k], dict)]
        if bad:
            raise DataError(f"{where}: section(s) {bad} must be JSON objects")
        try:
            spec = InputSpec(int(inp["channels"]), int(inp["height"]), int(inp["width"]), bool(inp["keep_ratio"]),
                             str(inp.get("channel_order", "rgb")))
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: input {inp}: expected integer channels/height/width ({e})") from None
        if spec.channels not in (1, 3) or spec.height < 1 or spec.width < 1:
            raise DataError(f"{where}: input {spec.to_dict()}: expected 1 or 3 channels and a positive size")
        if spec.channel_order not in CHANNEL_ORDERS:
            raise DataError(f"{where}: input.channel_order {spec.channel_order!r}, expected one of {CHANNEL_ORDERS}")
        if not isinstance(d["charset"], str) or not d["charset"]:
            raise DataError(f"{where}: charset must be a non-empty string of characters")
        try:
            charset = Charset.from_chars(d["charset"])  # always the literal characters, never a spec name
        except ValueError as e:
            raise DataError(f"{where}: charset: {e}") from None
        return cls(str(d["name"]), d["framework"], d["arch"], charset, spec,
                   {k: dict(d[k]) for k in SECTIONS if k in d})

    @classmethod
    def load(cls, path: str | Path) -> "ModelMeta":
        """`path`: a model dir, its meta.json, or a model file with meta.json beside it."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: model not found (expected a model dir or a model file with meta.json beside it)")
        f = path if path.name == "meta.json" else (path / "meta.json" if path.is_dir() else path.parent / "meta.json")
        if not f.is_file():
            raise DataError(f"{f}: model metadata not found (expected meta.json beside the model)")
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{f}: not valid JSON ({e})") from None
        meta = cls.from_dict(d, str(f))
        meta.path = f
        return meta


@dataclass(frozen=True)
class DetectorMeta:
    """A text detector's `meta.json` (models/detect/<name>): not a recognizer, so no charset or input geometry.

    {"kind": "detector", "name": "ppocrv4", "arch": "ch_PP-OCRv4_det", "framework": "onnx",
     "input": "<what the graph takes>", "output": "<what it gives>", "source": {origin, licence, sha256s, ...}}
    """
    name: str
    arch: str
    input: str
    output: str
    source: dict
    framework: str = "onnx"  # detectors are imported graphs only
    path: Path | None = field(default=None, compare=False)

    KEYS = ("kind", "name", "arch", "framework", "input", "output", "source")

    def to_dict(self) -> dict:
        return {"kind": "detector", "name": self.name, "arch": self.arch, "framework": self.framework,
                "input": self.input, "output": self.output, "source": dict(self.source)}

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / "meta.json"
        write_json(path, self.to_dict())  # the project's one JSON writer: atomic, indent 2, sorted keys
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> "DetectorMeta":
        f = Path(model_dir) / "meta.json"
        if not f.is_file():
            raise DataError(f"{f}: detector not found (a detector dir holds model.onnx and meta.json; run the "
                            "pretrained stage: params.yaml:pretrained.detectors)")
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{f}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise DataError(f"{f}: expected a JSON object, got {type(d).__name__}")
        if d.get("kind") != "detector":
            raise DataError(f"{f}: kind {d.get('kind')!r}, expected 'detector' (is {Path(model_dir)} a recognizer?)")
        missing = [k for k in cls.KEYS if k not in d]
        unknown = sorted(set(d) - set(cls.KEYS))
        if missing or unknown:
            raise DataError(f"{f}: missing key(s) {missing}, unknown key(s) {unknown}; expected {list(cls.KEYS)}")
        if d["framework"] != "onnx" or not isinstance(d["source"], dict):
            raise DataError(f"{f}: expected framework 'onnx' and a source object, got {d['framework']!r} / "
                            f"{type(d['source']).__name__}")
        return cls(str(d["name"]), str(d["arch"]), str(d["input"]), str(d["output"]), dict(d["source"]),
                   path=f)
