"""pages: whole-image OCR on rendered documents and scene-like photos, ours beside RapidOCR and Tesseract (#14).

Reads params `pages`, the detector DETECT (models/detect/ppocrv4, from the pretrained stage), the recognizers
PRETRAINED/<name> (imported) or EXPORT/<name>/model.onnx (trained here) for each of `pages.models`, and their INT8
variants QUANT/<name>/openvino/model.xml and
QUANT/<name>/onnx_qdq/model.onnx (`pages.int8: auto` reads those present and reports the others "not available";
a list of backends requires them). Renders `n_documents` documents and `n_photos` photos
(wordrec.ocr.pages.PageRenderer with the synth fonts and word lists; deterministic per seed), reads every page with
each reader — ours: detector + recognizer, lines read at their own width (wordrec.ocr.lines); peers: RapidOCR's
PP-OCRv4 pipeline and Tesseract --psm 3 — and writes REPORT (reports/pages.json: per reader and per kind
(documents, photos, all): detection precision/recall/F1 at IoU >= `pages.iou`, line CER and WER (exact and
case-insensitive alphanumeric), pages/s of the reader alone; the issue's targets and whether ours meets them)
and PLOTS/gallery.png (a few pages: detected boxes | the text read in each box).
"""

import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wordrec.errors import ConfigError, DataError
from wordrec.io import atomic_dir, atomic_file, write_json
from wordrec.models.meta import DetectorMeta, ModelMeta
from wordrec.ocr.cli import draw
from wordrec.ocr.detect import Detector
from wordrec.ocr.evaluate import norm_ci, norm_raw, page_counts, summarize
from wordrec.ocr.lines import line_width, load_line_reader
from wordrec.ocr.pages import PageRenderer
from wordrec.ocr.peers import PAGE_PEERS
from wordrec.ocr.pipeline import read_image
from wordrec.pipeline.config import section
from wordrec.pipeline.schema import INT8_BACKENDS
from wordrec.pipeline.stage import stage_main

KINDS = ("documents", "photos")
INT8_FILES = {"openvino": "model.xml", "onnx_qdq": "model.onnx"}
PHOTO_INDEX = 1_000_000  # photos are rendered from their own page indices: no page shares a random stream


def int8_variants(c, quant: Path, name: str) -> tuple[dict[str, Path], dict[str, str]]:
    """({backend: INT8 model file}, {backend: why not available}) for recognizer `name` under QUANT."""
    found, missing = {}, {}
    wanted = INT8_BACKENDS if c.int8 == "auto" else list(c.int8)
    for backend in wanted:
        f = quant / name / backend / INT8_FILES[backend]
        if f.is_file():
            found[backend] = f
        elif c.int8 == "auto":
            missing[backend] = f"{f}: not found (no INT8 {backend} model of {name} from the quantize stage)"
        else:
            raise DataError(f"{f}: params.yaml:pages.int8 names {backend}, but the quantize stage made no INT8 "
                            f"{backend} model of {name} (set pages.int8=auto to read only what exists)")
    return found, missing


def recognizer(name: str, pretrained: Path, export: Path) -> Path:
    """The FP32 recognizer `name` of pages.models: an imported model dir PRETRAINED/<name>, or one of ours, trained
    and exported, EXPORT/<name>/model.onnx. Exactly one must exist (the names never overlap in params.yaml)."""
    found = [p for p in (pretrained / name, export / name / "model.onnx") if p.exists()]
    if len(found) != 1:
        what = "both " + " and ".join(map(str, found)) if found else f"neither {pretrained / name} nor " \
            f"{export / name / 'model.onnx'}"
        raise DataError(f"params.yaml:pages.models: {name!r}: expected an imported model dir or an exported model "
                        f"of ours, found {what}")
    return found[0]


def readers(c, inputs) -> tuple[dict, dict, dict, DetectorMeta]:
    """({reader name: callable rgb -> lines}, {reader name: facts}, {reader name: why not available}, the
    detector's meta)."""
    threads = int(c.threads)
    pretrained, export, quant = Path(inputs["pretrained"]), Path(inputs["export"]), Path(inputs["quant"])
    models = {}
    for name in c.models:  # every model dir and every named INT8 file is checked before the detector loads
        d = recognizer(name, pretrained, export)
        ModelMeta.load(d)
        models[name] = (d, *int8_variants(c, quant, name))
    det_dir = Path(inputs["detect"])
    det_meta = DetectorMeta.load(det_dir)  # names the file and the pretrained stage when it is missing
    det = Detector(det_dir / "model.onnx", threads=threads)
    out, facts, absent = {}, {}, {}

    def ours(label, path, precision):
        rec = load_line_reader(path, threads, int(c.batch_size))
        out[label] = lambda rgb, rec=rec: read_image(det, rec, rgb)
        facts[label] = {"family": "ours", "detector": det_meta.name, "recognizer": str(path),
                        "precision": precision, "line_width": line_width(rec)}

    for name, (d, int8, missing) in models.items():
        ours(name, d, "fp32 (onnxruntime)")
        for backend, f in int8.items():
            ours(f"{name}_int8_{backend}", f, f"int8 ({backend})")
        for backend, why in missing.items():
            absent[f"{name}_int8_{backend}"] = why
    for key, cls in PAGE_PEERS.items():
        if not c.peers[key]:
            continue
        try:
            peer = cls(threads=threads)
        except ConfigError as e:
            absent[cls.name] = str(e)
            continue
        out[cls.name], facts[cls.name] = peer, {"family": "peer"}
    return out, facts, absent, det_meta


def score_reader(reader, pages: dict, iou: float) -> tuple[dict, dict]:
    """({kind: metrics}, {kind: [predictions per page]}): metrics exact (cer, wer) and alnum/ci (cer_ci, wer_ci)."""
    result, preds = {}, {}
    every, every_ci, total_s = [], [], 0.0
    for kind, kind_pages in pages.items():
        counts, counts_ci, seconds, kind_preds = [], [], 0.0, []
        for rgb, truth in kind_pages:
            t0 = time.perf_counter()
            pred = reader(rgb)
            seconds += time.perf_counter() - t0
            kind_preds.append(pred)
            counts.append(page_counts(pred, truth, iou, norm_raw))
            counts_ci.append(page_counts(pred, truth, iou, norm_ci))
        result[kind] = _metrics(counts, counts_ci, seconds)
        preds[kind] = kind_preds
        every, every_ci, total_s = every + counts, every_ci + counts_ci, total_s + seconds
    result["all"] = _metrics(every, every_ci, total_s)
    return result, preds


def _metrics(counts, counts_ci, seconds) -> dict:
    if not counts:
        return {"pages": 0}
    m = summarize(counts, seconds)
    ci = summarize(counts_ci)
    m["cer_ci"], m["wer_ci"] = ci["cer"], ci["wer"]
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items()}


def gallery(pages: dict, preds: dict, n: int, path: Path, width: int = 1400) -> None:
    """`n` pages (half documents, half photos) as draw() shows them, stacked, scaled to `width` px."""
    picks = []
    for i in range(n):
        kind = KINDS[i % 2] if all(pages[k] for k in KINDS) else next(k for k in KINDS if pages[k])
        j = i // 2 if all(pages[k] for k in KINDS) else i
        if j < len(pages[kind]):
            picks.append((pages[kind][j][0], preds[kind][j]))
    tiles = []
    for rgb, lines in picks:
        t = draw(rgb, lines)
        scale = width / t.shape[1]
        tiles.append(cv2.resize(t, (width, max(1, round(t.shape[0] * scale))), interpolation=cv2.INTER_AREA))
    sep = np.full((6, width, 3), 128, np.uint8)
    stacked = np.vstack([x for t in tiles for x in (t, sep)][:-1])
    # A 128-colour palette: the rendered backgrounds' noise makes a true-colour PNG ~5x larger for no insight.
    with atomic_file(path, "wb") as f:
        Image.fromarray(stacked).quantize(colors=128, dither=Image.Dither.NONE).save(f, format="PNG", optimize=True)


def run(cfg, inputs, outputs):
    c = section(cfg, "pages")
    t_start = time.perf_counter()
    reads, facts, absent, det_meta = readers(c, inputs)
    if not any(f["family"] == "ours" for f in facts.values()):
        raise DataError("params.yaml:pages.models: no recognizer to read with")
    renderer = PageRenderer(list(c.font_dirs), list(c.word_lists), max_side=int(c.max_side))
    pages = {"documents": [renderer.render(c.seed, i, "document") for i in range(c.n_documents)],
             "photos": [renderer.render(c.seed, PHOTO_INDEX + i, "photo") for i in range(c.n_photos)]}
    results, first_preds = {}, None
    for name, reader in reads.items():
        print(f"pages: reading {sum(map(len, pages.values()))} pages with {name}", flush=True)
        results[name], preds = score_reader(reader, pages, float(c.iou))
        results[name].update(facts[name])
        if first_preds is None:
            first_preds = preds  # the first reader is ours FP32 (pages.models[0])
        print(f"pages: {name}: {results[name]['all']}", flush=True)
    for name, why in absent.items():
        results[name] = {"available": False, "reason": why}
    targets = {"det_f1": float(c.targets.det_f1), "line_cer": float(c.targets.line_cer), "met": {
        name: r["all"]["f1"] >= c.targets.det_f1 and r["all"]["cer"] <= c.targets.line_cer
        for name, r in results.items() if r.get("family") == "ours"}}
    report = {"pages": {k: len(v) for k, v in pages.items()},
              "lines": {k: sum(len(t) for _, t in v) for k, v in pages.items()},
              "seed": int(c.seed), "threads": int(c.threads), "iou": float(c.iou),
              "detector": {"name": det_meta.name, "arch": det_meta.arch, **det_meta.source},
              "targets": targets, "readers": results, "wall_s": None}
    with atomic_dir(outputs["plots"]) as plots:
        if c.gallery:
            gallery(pages, first_preds, int(c.gallery), plots / "gallery.png")
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"pretrained": "imported recognizer model dirs (models/pretrained)",
                "export": "our trained recognizers, exported (models/export/<model>/model.onnx)",
                "detect": "detector dir (models/detect/ppocrv4)",
                "quant": "INT8 models (models/quant/<model>/{openvino,onnx_qdq})"},
        outputs={"report": "metrics JSON (reports/pages.json)", "plots": "PNG folder (reports/pages)"}))
