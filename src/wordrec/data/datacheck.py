"""Dataset check (like PaddleX `check_dataset`): counts, charset coverage, label-length histogram, montage.

Also a command: `wordrec-check DATASET_LMDB --charset en --out reports/mydata` for bring-your-own data.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wordrec.data.charset import Charset  # noqa: E402
from wordrec.errors import WordrecError, one_line  # noqa: E402
from wordrec.io import save_figure, write_json, write_png  # noqa: E402
from wordrec.data.lmdb_io import LmdbDataset  # noqa: E402


def check(ds: LmdbDataset, charset: Charset) -> dict:
    labels = ds.labels()
    chars = Counter("".join(labels))
    lengths = Counter(len(l) for l in labels)
    outside = sorted(c for c in chars if c not in charset.chars)
    return {
        "n": len(labels),
        "charset_size": len(charset.chars),
        "chars_used": len(chars),
        "charset_coverage": round(sum(1 for c in charset.chars if c in chars) / len(charset.chars), 4),
        "chars_outside_charset": outside,
        "label_len_mean": round(float(np.mean([len(l) for l in labels])), 3) if labels else 0.0,
        "label_len_max": max(lengths) if lengths else 0,
        "length_hist": {str(k): v for k, v in sorted(lengths.items())},
    }


def length_histogram(stats: dict[str, dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, s in stats.items():
        ks = [int(k) for k in s["length_hist"]]
        vs = np.array(list(s["length_hist"].values()), float)
        ax.plot(ks, vs / max(vs.sum(), 1), marker="o", label=f"{name} (n={s['n']})")
    ax.set_xlabel("label length (characters)")
    ax.set_ylabel("fraction of samples")
    ax.set_title("Label-length distribution")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def montage(ds: LmdbDataset, path: Path, n: int = 48, cols: int = 4, height: int = 32, width: int = 160,
            chars: int = 22) -> None:
    """A grid of the first `n` samples with their labels underneath, for a quick visual check."""
    n = min(n, len(ds))
    rows = (n + cols - 1) // cols
    cell_h = height + 16
    sheet = np.full((rows * cell_h, cols * width, 3), 255, np.uint8)
    for i in range(n):
        img, label = ds[i]
        h, w = img.shape[:2]
        nw = min(width - 4, max(1, int(w * height / h)))
        img = cv2.resize(img, (nw, height), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        y, x = r * cell_h, c * width
        sheet[y : y + height, x + 2 : x + 2 + nw] = img
        cv2.putText(sheet, label[:chars], (x + 2, y + height + 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (200, 0, 0), 1, cv2.LINE_AA)
    write_png(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check an LMDB word-image dataset and write a report + PNGs.")
    ap.add_argument("lmdb", help="dataset directory (contains data.mdb)")
    ap.add_argument("--charset", default="en", help="alnum_lower | alnum | en | file:<path> | literal chars")
    ap.add_argument("--out", default=None, help="report folder (default: print JSON only)")
    a = ap.parse_args(argv)
    try:
        ds = LmdbDataset(a.lmdb)
        stats = check(ds, Charset.from_spec(a.charset))
    except WordrecError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if a.out:
        out = Path(a.out)
        write_json(out / "check.json", stats)
        length_histogram({Path(a.lmdb).name: stats}, out / "lengths.png")
        montage(ds, out / "montage.png")
    import json

    print(json.dumps({k: v for k, v in stats.items() if k != "length_hist"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
