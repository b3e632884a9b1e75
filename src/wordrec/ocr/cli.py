"""Read every text line of pages and photos: boxes + text + confidence per image.

    wordrec-ocr IMAGE|DIR... --model MODEL [--det ONNX|DIR] [--json] [--viz DIR] [--threads N]
                             [--max-side PX] [--resize]

MODEL is anything `wordrec.infer.recognizer.load` understands (trained model dir, exported `.onnx` with meta.json, ...);
models that compute on any width (the imported PP-OCRv4 / v6 recognizers) read each line at its own width
(wordrec.ocr.lines). --det defaults to models/detect/ppocrv4 (the pretrained stage's copy of the PP-OCRv4 detector)
or, without it, the same file inside the installed rapidocr_onnxruntime wheel. Images with a side over --max-side
(default 4000) are refused, or with --resize scaled down to it (a 4032x3024 phone photo; boxes are still given in
the original's pixels), unless the scaled short side would be under 32 px (an absurd strip). Folders are read
non-recursively, in name order. Output (stdout): with --json one object per image and line of output,
{"file", "lines": [{"box", "text", "confidence", "det_score"}]}; otherwise TSV rows
file, x1,y1,x2,y2,x3,y3,x4,y4, text, confidence. --viz DIR writes DIR/<image stem>.png (<stem>_ocr.png where that
is the input itself): the image with its boxes next to a white panel with each line's text in its box. A file that
cannot be read is named on stderr with the reason, the others are still processed, and the exit status is 2 at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from wordrec.errors import DataError, WordrecError, one_line
from wordrec.infer.predict import positive_ints



def _load_recognizer(path: str, threads: int):
    # Imported here: loading a recognizer may pull in torch or Paddle.
    from wordrec.ocr.lines import load_line_reader

    return load_line_reader(path, threads)


def draw(rgb: np.ndarray, lines: list[dict]) -> np.ndarray:
    """Side-by-side visualisation: image with boxes | white panel with each line's text drawn in its box."""
    from PIL import Image, ImageDraw, ImageFont

    left = np.ascontiguousarray(rgb.copy())
    panel = Image.new("RGB", (rgb.shape[1], rgb.shape[0]), "white")
    pd = ImageDraw.Draw(panel)
    for ln in lines:
        pts = np.round(np.array(ln["box"])).astype(np.int32)
        cv2.polylines(left, [pts], True, (0, 200, 0), 2)
        pd.polygon([tuple(p) for p in pts.tolist()], outline=(0, 160, 0))
        h = max(8, int(np.linalg.norm(pts[3] - pts[0]) * 0.7))
        pd.text(tuple(pts[0] + [2, 1]), ln.get("text", ""), fill=(0, 0, 0), font=ImageFont.load_default(size=h))
    return np.hstack([left, np.asarray(panel)])


def main(argv: list[str] | None = None, recognizer_factory: Callable[[str], object] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="image files and/or folders")
    ap.add_argument("--model", required=True, help="recognizer: model dir or model file (.onnx, ...)")
    ap.add_argument("--det", help="detector ONNX or dir (default: models/detect/ppocrv4, else PP-OCRv4 det from the "
                                  "rapidocr_onnxruntime wheel)")
    ap.add_argument("--json", action="store_true", help="one JSON object per image instead of TSV rows")
    ap.add_argument("--viz", type=Path, help="write an annotated PNG per image into this folder")
    ap.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    ap.add_argument("--max-side", type=int, default=4000, help="longest image side accepted, px (default 4000)")
    ap.add_argument("--resize", action="store_true",
                    help="scale images over --max-side down to it instead of refusing them")
    a = ap.parse_args(argv)
    bad = positive_ints(a, "threads", "max_side")
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))

    from tqdm import tqdm

    from wordrec.data.images import image_files, load_image
    from wordrec.ocr.detect import Detector
    from wordrec.ocr.pipeline import read_image

    try:
        detector = Detector(a.det, threads=a.threads, max_side=a.max_side, resize=a.resize)
        rec = recognizer_factory(a.model) if recognizer_factory else _load_recognizer(a.model, a.threads)
    except WordrecError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    paths, problems = image_files(a.images)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if a.viz:
        a.viz.mkdir(parents=True, exist_ok=True)
    failed = bool(problems)
    viz_names: set[str] = set()
    for path in tqdm(paths, desc="images", disable=len(paths) < 10 or not sys.stderr.isatty()):
        try:
            rgb = load_image(path)
            lines = read_image(detector, rec, rgb, str(path))
        except DataError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            failed = True
            continue
        if a.json:
            print(json.dumps({"file": str(path), "lines": lines}), flush=True)
        else:
            for ln in lines:
                box = ",".join(f"{v:g}" for pt in ln["box"] for v in pt)
                print(f"{path}\t{box}\t{ln['text']}\t{ln['confidence']:.4f}", flush=True)
        if a.viz:
            name = path.stem
            # same stem from two folders: keep both; never overwrite the input itself (--viz into its own folder)
            while name in viz_names or (a.viz / f"{name}.png").resolve() == path.resolve():
                name += "_" if name in viz_names else "_ocr"
            viz_names.add(name)
            cv2.imwrite(str(a.viz / f"{name}.png"), cv2.cvtColor(draw(rgb, lines), cv2.COLOR_RGB2BGR))
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
