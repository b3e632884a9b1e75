"""Read words from images: text + confidence per file.

    wordrec-predict MODEL IMAGE_OR_FOLDER [...] [--batch-size 64] [--threads 2] [--json]

MODEL is a trained or imported model dir (models/train/crnn, models/grid/best, models/pretrained/ppocrv6_small) or
an exported `.onnx` / INT8 `.xml` IR with its meta.json beside it (wordrec.infer.recognizer.load).
Folders are read non-recursively (png/jpg/jpeg/bmp/tif/tiff/webp), in name order. A file that cannot be read is
reported on stderr by name and the rest are still read; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wordrec.data.images import image_files, load_image
from wordrec.errors import DataError, WordrecError, one_line


def positive_ints(args, *names: str) -> str | None:
    """The first of `names` (argparse dests) that is not a positive integer, as an error line; None when all are."""
    for n in names:
        v = getattr(args, n)
        if v < 1:
            return f"--{n.replace('_', '-')}: {v}: expected a positive integer"
    return None


def predict_files(rec, paths: list[Path], batch_size: int = 64) -> tuple[list[dict], list[str]]:
    """Rows {file, text, confidence} for the readable images, and one-line problems for the others (named by
    file): one bad crop does not cost the rest of a folder."""
    rows, problems = [], []
    for s in range(0, len(paths), batch_size):
        good = []
        for p in paths[s:s + batch_size]:
            try:
                good.append((p, load_image(p)))
            except DataError as e:
                problems.append(str(e))
        if good:
            rows += [{"file": str(p), "text": t, "confidence": round(c, 4)}
                     for (p, _), (t, c) in zip(good, rec.predict([im for _, im in good], batch_size))]
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model dir or model file (.onnx, .xml, .so)")
    ap.add_argument("images", nargs="+", help="image files and/or folders")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of TSV")
    a = ap.parse_args(argv)
    bad = positive_ints(a, "batch_size", "threads")
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    from wordrec.infer import recognizer  # loads torch/Paddle/OpenVINO as the model needs

    try:
        rec = recognizer.load(a.model, a.threads)
    except WordrecError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    paths, problems = image_files(a.images)
    rows, bad = predict_files(rec, paths, a.batch_size)
    for r in rows:
        print(json.dumps(r) if a.json else f"{r['file']}\t{r['text']}\t{r['confidence']:.4f}")
    for p in problems + bad:
        print(f"error: {p}", file=sys.stderr)
    return 2 if problems or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
