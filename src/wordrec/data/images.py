"""Image files given on a command line: listing files and folders, and reading one file as RGB.

Shared by every CLI that reads images (`wordrec-predict`, `wordrec-ocr`), so a folder run treats bad items the
same way everywhere: each problem is one line naming the item, and the good files are still processed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wordrec.data.lmdb_io import decode_image
from wordrec.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def image_files(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files and folders (read non-recursively, in name order) -> (image paths, one-line problems for items that
    are neither an existing file nor a folder with images)."""
    paths, problems = [], []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{item}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            problems.append(f"{item}: no such image file or folder")
    return paths, problems


def load_image(path: str | Path) -> np.ndarray:
    """Image file -> RGB uint8 array; DataError naming the file when it is unreadable, empty or undecodable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise DataError(f"{path}: empty file, expected an image")
    return decode_image(data, f"{path} (expected PNG/JPEG/BMP/TIFF/WebP)")
