"""Input geometry by measurement (issue #16): the imported recognizers read at other input heights and widths.

PaddleOCR's recognizers were trained at 3 x 48 x 320; a device model wants fewer pixels (the seed's 32 high, a
width under 320), and a narrow width caps the word length (W/8 CTC frames, and longer crops get squeezed).
`evaluate.geometry` scores each named import at every H x W of its config on real dev sets, with the project's one
preprocess (resize to H keeping the aspect ratio, squeezed only when wider than W, right-padded), decoder and
`score`: the numbers a geometry is chosen by.

    {"<model>": {"<set>": {"<H>x<W>": {accuracy, accuracy_alnum_ci, ned, n, frames, squeezed, too_long}}}}

`frames`: CTC frames the model emits at that width; `squeezed`: share of crops wider than W once resized to H
(their aspect ratio is lost); `too_long`: share of labels that need more frames than that (a CTC path needs one
per character plus a blank between repeated characters). Shares are fractions like the accuracies.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from wordrec.data.lmdb_io import LmdbDataset
from wordrec.errors import ConfigError, DataError, one_line
from wordrec.infer.recognizer import Recognizer
from wordrec.infer.runners import OrtRunner
from wordrec.io import save_figure
from wordrec.models.imported import at_geometry
from wordrec.models.meta import ModelMeta
from wordrec.pipeline.evaluation import evaluate_lmdb

KEY = "geometry"  # evaluate's report key for these results, beside the model names (so no model may take it)
PROBE_BATCH = 3  # odd: a shape constant folded at the import width merges or splits batch rows, caught below
PROBE_TOL = 1e-4  # max abs difference of probabilities, batched vs one by one (float32 noise is ~1e-6)


def recognizer_at(model_dir: Path, meta: ModelMeta, height: int, width: int, threads: int = 1) -> Recognizer:
    """A Recognizer of an imported ONNX model dir at input `height` x `width`: the meta's input spec replaced
    (channels, keep_ratio and channel order stay), the graph's input re-declared in memory. The graph must
    compute each image on its own at that size, as it does at its import geometry; a graph whose import folded
    the geometry into shape constants (PP-OCRv3's reshape to 40 frames) fails here, never with a wrong score."""
    if meta.framework != "onnx":
        raise ConfigError(f"{model_dir}: framework {meta.framework!r}; input geometry is measured on imported "
                          "ONNX models (models/pretrained/<name>) only")
    where = f"{model_dir} at {height}x{width}"
    spec = meta.with_input(height=int(height), width=int(width))
    rec = Recognizer(spec, OrtRunner(at_geometry(Path(model_dir) / "model.onnx", height, width), threads, where),
                     where)
    x = np.random.default_rng(0).uniform(-1, 1, spec.input.shape(PROBE_BATCH)).astype(np.float32)
    try:
        batched = rec.probs(x)
        single = np.concatenate([rec.probs(x[i:i + 1]) for i in range(PROBE_BATCH)])
    except DataError:
        raise
    except Exception as e:  # onnxruntime's own error types (a reshape to the import's frame count, ...)
        raise DataError(f"{where}: the graph does not run at this input size (its import fixed "
                        f"{meta.input.height}x{meta.input.width}; {one_line(e)})") from None
    if batched.shape != single.shape or np.abs(batched - single).max() > PROBE_TOL:
        raise DataError(f"{where}: images in a batch change each other's output (the graph's import fixed "
                        f"{meta.input.height}x{meta.input.width} into its shape constants)")
    return rec


def frames_needed(label: str) -> int:
    """CTC frames a label needs: one per character and one blank between two equal neighbours."""
    return len(label) + sum(a == b for a, b in zip(label, label[1:]))


def _aspects(path: Path, n: int) -> np.ndarray:
    """Width / height of the first n crops (read once per set, shared by every geometry)."""
    ds = LmdbDataset(path)
    return np.array([im.shape[1] / im.shape[0] for im, _ in (ds[i] for i in range(n))], np.float64)


def check_inputs(g, pretrained: Path, sets: dict[str, Path]) -> None:
    """Every model of `g.models` imported under `pretrained` and every set of `g.sets` among `sets`."""
    missing = [s for s in g.sets if s not in sets] if g.models else []
    if missing:
        raise ConfigError(f"params.yaml:evaluate.geometry.sets: {missing} not among the test sets {sorted(sets)}")
    for name in g.models:
        model_dir = Path(pretrained) / name
        if not model_dir.is_dir():  # a dir without a readable meta is ModelMeta.load's error, in evaluate's loop
            raise ConfigError(f"params.yaml:evaluate.geometry.models: {name!r}: no imported model at {model_dir} "
                              "(params.yaml:pretrained.models names what the pretrained stage imports)")


def evaluate_geometry(g, pretrained: Path, sets: dict[str, Path], batch_size: int, threads: int = 1,
                      log=print) -> dict:
    """Scores of `g.models` (dirs under `pretrained`) on `g.sets` (names in `sets`) at every `g.heights` x
    `g.widths` (params.yaml:evaluate.geometry, typed by schema.Geometry); `{}` when g.models is empty."""
    check_inputs(g, pretrained, sets)
    out = {}
    for name in g.models:
        model_dir = Path(pretrained) / name
        meta = ModelMeta.load(model_dir)
        out[name] = {s: {} for s in g.sets}
        for s in g.sets:
            n = len(LmdbDataset(sets[s])) if g.limit is None else min(int(g.limit), len(LmdbDataset(sets[s])))
            aspects = _aspects(sets[s], n)
            for h in g.heights:
                for w in g.widths:
                    rec = recognizer_at(model_dir, meta, h, w, threads)
                    t0 = time.perf_counter()
                    metrics, records = evaluate_lmdb(rec, sets[s], batch_size, n)
                    seconds = time.perf_counter() - t0
                    frames = int(rec.probs(np.zeros(rec.meta.input.shape(1), np.float32)).shape[1])
                    labels = [rec.charset.filter(r["label"]) for r in records]
                    metrics.update(
                        frames=frames,
                        squeezed=round(float(np.mean([math.ceil(a * h) > w for a in aspects])), 6) if n else 0.0,
                        too_long=round(sum(frames_needed(t) > frames for t in labels) / n, 6) if n else 0.0)
                    out[name][s][f"{h}x{w}"] = metrics
                    log(f"evaluate geometry {name} {s} {h}x{w}: {metrics} ({seconds:.1f} s)")
    return out


def geometry_png(result: dict, path: Path) -> None:
    """Grouped bars per test set: alnum-ci accuracy of each model at each H x W (geometries in config order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(s for per in result.values() for s in per))
    fig, axes = plt.subplots(len(sets), 1, figsize=(8, 3.2 * len(sets)), squeeze=False)
    for ax, s in zip(axes[:, 0], sets):
        geoms = list(dict.fromkeys(k for per in result.values() for k in per.get(s, {})))
        width = 0.8 / len(result)
        for i, (model, per) in enumerate(result.items()):
            acc = [100 * per.get(s, {}).get(k, {}).get("accuracy_alnum_ci", float("nan")) for k in geoms]
            bars = ax.bar(np.arange(len(geoms)) + (i - (len(result) - 1) / 2) * width, acc, width, label=model)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(np.arange(len(geoms)), [k.replace("x", " x ") for k in geoms])
        ax.set_xlabel("input height x width (pixels)")
        ax.set_ylabel("accuracy, alnum-ci (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"{s}: imported recognizers by input geometry", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=90, metadata={"Software": None})
