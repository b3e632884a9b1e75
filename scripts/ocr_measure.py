"""Measure whole-image OCR on rendered pages (one thread): our detector, and full pipelines end to end.

    python scripts/ocr_measure.py [--pages 20] [--seed 1] [--out reports/ocr_measure.json]

Reads fonts and word lists (wordrec.ocr.pages), the PP-OCRv4 det/rec ONNX models inside rapidocr_onnxruntime,
and Tesseract; writes a JSON of metrics (if --out) and prints a Markdown table. Rows:
  det (ours)                 detection only: P/R/F1 and pages/s of wordrec.ocr.detect.Detector
  det (ours) + PP-OCRv4 rec  wordrec.ocr.pipeline.read_image with RapidOCR's recognizer behind .predict
  rapidocr                   rapidocr_onnxruntime's full pipeline (its det, angle classifier and rec)
  tesseract                  tesseract --psm 3, lines from TSV
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


class PPOCRv4Rec:
    """RapidOCR's PP-OCRv4 recognizer behind the `.predict(list_of_rgb) -> [(text, confidence)]` interface."""

    def __init__(self, threads: int = 1):
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_rec.text_recognize import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        pkg = Path(rapidocr_onnxruntime.__file__).parent
        cfg = read_yaml(str(pkg / "config.yaml"))["Rec"]
        cfg.update(model_path=str(pkg / cfg["model_path"]), intra_op_num_threads=threads, inter_op_num_threads=1)
        self.rec = TextRecognizer(cfg)

    def predict(self, images, batch_size: int = 64):
        res, _ = self.rec([im[:, :, ::-1] for im in images])
        return [(t, float(c)) for t, c in res]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from wordrec.ocr.detect import HALF, Detector
    from wordrec.ocr.evaluate import norm_ci, norm_raw, run_and_score
    from wordrec.ocr.pages import PageRenderer
    from wordrec.ocr.peers import RapidOCRPage, TesseractPage
    from wordrec.ocr.pipeline import detect_lines, read_image

    renderer = PageRenderer()
    pages = [renderer.render(a.seed, i) for i in range(a.pages)]
    det = Detector(threads=1)
    det_half = Detector(threads=1, norm=HALF)
    rec = PPOCRv4Rec()
    readers = {
        "det (ours, ImageNet norm)": lambda rgb: detect_lines(det, rgb),
        "det (ours, 0.5/0.5 norm as rapidocr 1.4.4)": lambda rgb: detect_lines(det_half, rgb),
        "det (ours) + PP-OCRv4 rec": lambda rgb: read_image(det, rec, rgb),
        "rapidocr full pipeline": RapidOCRPage(threads=1),
        "tesseract --psm 3": TesseractPage(threads=1),
    }
    results = {}
    for name, reader in readers.items():
        m = run_and_score(reader, pages, norm=norm_raw, progress=True)
        m_ci = run_and_score(reader, pages, norm=norm_ci)
        m["cer_ci"], m["wer_ci"] = m_ci["cer"], m_ci["wer"]
        results[name] = m
    print(f"\n{a.pages} pages (seed {a.seed}), {sum(len(t) for _, t in pages)} lines, one thread\n")
    print("| reader | P | R | F1 | CER | WER | CER (ci) | WER (ci) | pages/s |\n|---|---|---|---|---|---|---|---|---|")
    for name, m in results.items():
        text = "det" not in name or "rec" in name
        cells = [f"{m[k]:.3f}" for k in ("precision", "recall", "f1")]
        cells += [f"{m[k]:.3f}" if text else "–" for k in ("cer", "wer", "cer_ci", "wer_ci")]
        print(f"| {name} | {' | '.join(cells)} | {m['pages_per_s']:.2f} |")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"pages": a.pages, "seed": a.seed, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
