"""Read words from images: text + confidence per file.

    wordrec-predict MODEL IMAGE_OR_FOLDER [...] [--batch-size 64] [--threads 2] [--json]

MODEL is a trained model dir (models/train/crnn, models/grid/best), an exported `.onnx` or INT8 `.xml` IR
(with meta.json beside it) or a compiled TVM host `.so`: whatever `wordrec.infer.runners.runner_for` runs.
Folders are read non-recursively (png/jpg/jpeg/bmp/tif/tiff/webp), in name order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wordrec.errors import DataError, WordrecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def image_paths(items: list[str]) -> list[Path]:
    paths = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{item}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"{item}: no such image file or folder")
    return paths


def predict_files(model: str | Path, items: list[str], batch_size: int = 64, threads: int = 2) -> list[dict]:
    from wordrec.data.lmdb_io import decode_image
    from wordrec.infer import recognizer

    rec = recognizer.load(model, threads)
    paths = image_paths(items)
    out = []
    for s in range(0, len(paths), batch_size):
        chunk = paths[s:s + batch_size]
        images = [decode_image(p.read_bytes(), str(p)) for p in chunk]
        out += [{"file": str(p), "text": t, "confidence": round(c, 4)}
                for p, (t, c) in zip(chunk, rec.predict(images, batch_size))]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model dir or model file (.onnx, ...)")
    ap.add_argument("images", nargs="+", help="image files and/or folders")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of TSV")
    a = ap.parse_args(argv)
    try:
        rows = predict_files(a.model, a.images, a.batch_size, a.threads)
    except WordrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        print(json.dumps(r) if a.json else f"{r['file']}\t{r['text']}\t{r['confidence']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
