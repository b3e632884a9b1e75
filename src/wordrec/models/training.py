"""What both trainers (torch and Paddle) share: the curves CSV/PNG and the `train` section of meta.json.

Same keys and columns for every framework, so grid, evaluate, report and `dvc plots` read any model alike.
"""

from __future__ import annotations

import csv
from pathlib import Path

from wordrec.io import atomic_file, save_figure

# One row per validation. val_accuracy / val_ned: wordrec.pipeline.metrics.score on the val split (fractions).
CURVE_FIELDS = ["step", "epoch", "lr", "train_loss", "val_accuracy", "val_ned", "images_per_second"]
LINE_FIELDS = ["val_words_accuracy", "val_lines_accuracy", "val_lines_ned"]  # a model that also trains on lines


def write_curves(rows: list[dict], path: Path) -> None:
    with atomic_file(path, "w") as f:
        extra = [k for k in LINE_FIELDS if rows and k in rows[0]]
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS + extra, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(steps, [r["train_loss"] for r in rows], marker=".")
    a.set(xlabel="step", ylabel="CTC loss (train)", yscale="log", title=f"{title}: loss")
    b.plot(steps, [r["val_accuracy"] for r in rows], marker=".", label="accuracy")
    b.plot(steps, [r["val_ned"] for r in rows], marker=".", label="1 - NED")
    if rows and "val_lines_accuracy" in rows[0]:  # val_accuracy is then the mean of these two
        b.plot(steps, [r["val_words_accuracy"] for r in rows], marker=".", label="words")
        b.plot(steps, [r["val_lines_accuracy"] for r in rows], marker=".", label="lines (exact)")
    b.set(xlabel="step", ylim=(0, 1), title=f"{title}: validation")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, metadata={"Software": None})  # no version string: same run, same bytes


def write_curve_files(rows: list[dict], folder: Path, title: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_curves(rows, folder / "curves.csv")
    plot_curves(rows, folder / "curves.png", title)
