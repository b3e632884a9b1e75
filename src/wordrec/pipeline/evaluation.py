"""Score a Recognizer on an LMDB dataset and draw its worst mistakes."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from wordrec.data.lmdb_io import LmdbDataset
from wordrec.io import save_figure
from wordrec.pipeline.metrics import alnum_ci, ned, score


def evaluate_lmdb(rec, path: Path, batch_size: int, limit: int | None = None) -> tuple[dict, list[dict]]:
    """wordrec.pipeline.metrics.score of a Recognizer on an LMDB (fractions) + per-sample records for the
    mistakes plot."""
    ds = LmdbDataset(path)
    n = len(ds) if limit is None else min(limit, len(ds))
    preds, gts, records = [], [], []
    for s in tqdm(range(0, n, batch_size), desc=f"eval {rec.meta.name} {Path(path).name}", unit="batch",
                  mininterval=2.0):
        items = [ds[i] for i in range(s, min(n, s + batch_size))]
        out = rec.predict([im for im, _ in items], batch_size)
        for j, ((im, lab), (text, conf)) in enumerate(zip(items, out)):
            preds.append(text)
            gts.append(lab)
            records.append({"index": s + j, "label": lab, "pred": text, "conf": conf})
    for r in records:
        r["ned"] = ned(r["pred"], rec.charset.filter(r["label"]))
        r["ok_alnum_ci"] = alnum_ci(r["pred"]) == alnum_ci(r["label"])
    return score(preds, gts, rec.charset), records


def worst_mistakes_png(rows: list[tuple[str, Path, list[dict]]], path: Path, per_dataset: int, title: str) -> None:
    """One panel per wrong sample (alnum/ci), lowest NED first, `per_dataset` per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = []
    for ds_name, ds_path, records in rows:
        wrong = sorted((r for r in records if not r["ok_alnum_ci"]), key=lambda r: (r["ned"], r["index"]))
        ds = LmdbDataset(ds_path)
        picks += [(ds_name, ds[r["index"]][0], r) for r in wrong[:per_dataset]]
    cols = 4
    nrows = max(1, -(-len(picks) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 1.1 * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (ds_name, img, r) in zip(axes.flat, picks):
        ax.imshow(img)
        # parse_math off: labels and predictions are arbitrary text, and two '$' would start mathtext (a crash)
        ax.set_title(f"{ds_name}: {r['label']!r}\n-> {r['pred']!r} ({r['conf']:.2f})", fontsize=7, parse_math=False)
    if not picks:
        axes[0, 0].text(0, 0.5, "no mistakes", fontsize=10)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90, metadata={"Software": None})


