"""Bring your own data: a folder of word crops + a PaddleOCR-style label file -> LMDB (same layout as synth).

    wordrec-byod DATA_DIR OUT_LMDB [--labels labels.txt] [--charset en]

The label file holds `relative/path<TAB>label` lines, paths relative to DATA_DIR (PaddleOCR's rec format).
Everything is validated before anything is written, so a bad file never leaves a half-written LMDB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from wordrec.data.charset import Charset
from wordrec.errors import DataError, WordrecError, one_line
from wordrec.data.lmdb_io import decode_image, write_lmdb


def read_label_file(data_dir: Path, labels: Path) -> list[tuple[Path, str]]:
    if not labels.is_file():
        raise DataError(f"{labels}: label file not found")
    items = []
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{labels}:{n}: expected 'relative/path<TAB>label', got {line[:60]!r}")
        rel, label = line.split("\t", 1)
        if not label:
            raise DataError(f"{labels}:{n}: empty label for {rel}")
        items.append((data_dir / rel, label))
    if not items:
        raise DataError(f"{labels}: no samples")
    return items


def convert(data_dir, out, labels=None, charset: Charset | None = None) -> int:
    data_dir = Path(data_dir)
    labels = Path(labels) if labels else data_dir / "labels.txt"
    items = read_label_file(data_dir, labels)
    samples = []
    for path, label in tqdm(items, desc=f"byod {data_dir.name}", unit="img", mininterval=1.0):
        if charset is not None and charset.missing(label):
            raise DataError(f"{labels}: label {label!r} of {path.name} has characters "
                            f"{sorted(charset.missing(label))} outside the charset")
        if not path.is_file():
            raise DataError(f"{labels}: image {path} not found")
        data = path.read_bytes()
        decode_image(data, str(path))  # fail now, not in training
        samples.append((data, label))
    return write_lmdb(out, samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("out", help="output LMDB directory")
    ap.add_argument("--labels", help="label file (default DATA_DIR/labels.txt)")
    ap.add_argument("--charset", help="reject labels with chars outside it: alnum_lower | alnum | en | file:<path>")
    a = ap.parse_args(argv)
    try:
        cs = Charset.from_spec(a.charset) if a.charset else None
        n = convert(a.data_dir, a.out, a.labels, cs)
    except WordrecError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {n} samples to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
