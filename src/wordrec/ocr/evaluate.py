"""End-to-end OCR metrics on pages with known line boxes and text. Reads and writes nothing.

- Detection: a predicted line matches a ground-truth line when their quadrilaterals overlap with IoU >= 0.5;
  matching is one-to-one, greedy by IoU (highest first). precision = matches / predicted lines, recall = matches /
  ground-truth lines, F1 their harmonic mean.
- CER: (sum over matched lines of edit_distance(predicted text, true text) + total length of unmatched true lines)
  / total length of all true lines. False-positive lines cost detection precision, not CER.
- WER: the same over whitespace-separated words.
- pages/s: pages divided by the wall time of the reader alone (rendering and scoring excluded).
"""

from __future__ import annotations

import re
import time

import cv2
import numpy as np

from wordrec.pipeline.metrics import edit_distance

_NON_ALNUM_SPACE = re.compile(r"[^a-z0-9 ]")


def norm_ci(text: str) -> str:
    """Case-insensitive alphanumeric comparison for whole lines: lowercase, keep [a-z0-9] and single spaces."""
    return " ".join(_NON_ALNUM_SPACE.sub("", text.lower()).split())


def norm_raw(text: str) -> str:
    """Exact comparison, except that runs of whitespace count as one space."""
    return " ".join(text.split())


def quad_iou(a, b) -> float:
    """IoU of two convex quadrilaterals (4x2), by exact polygon intersection."""
    a = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 2))
    b = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 2))
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return float(inter / union) if union > 0 else 0.0


def match(pred_boxes, true_boxes, iou: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one greedy matching by IoU (highest first) among pairs with IoU >= `iou`: [(pred_i, true_j)]."""
    pairs = []
    for i, p in enumerate(pred_boxes):
        for j, t in enumerate(true_boxes):
            v = quad_iou(p, t)
            if v >= iou:
                pairs.append((v, i, j))
    used_p, used_t, out = set(), set(), []
    for _, i, j in sorted(pairs, key=lambda x: -x[0]):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


def page_counts(pred: list[dict], truth: list[tuple], iou: float = 0.5, norm=norm_raw) -> dict:
    """Counts for one page. `pred` is read_image's output (a line without "text" reads as ""); `truth` is
    [(box, text)] as PageRenderer returns."""
    pairs = match([p["box"] for p in pred], [b for b, _ in truth], iou)
    texts = [norm(t) for _, t in truth]
    matched = {j: norm(pred[i].get("text") or "") for i, j in pairs}
    c = {"pred": len(pred), "true": len(truth), "tp": len(pairs), "char_err": 0, "chars": 0, "word_err": 0,
         "words": 0}
    for j, t in enumerate(texts):
        p = matched.get(j)
        c["chars"] += len(t)
        c["words"] += len(t.split())
        c["char_err"] += len(t) if p is None else edit_distance(p, t)
        c["word_err"] += len(t.split()) if p is None else edit_distance(p.split(), t.split())
    return c


def summarize(counts: list[dict], seconds: float | None = None) -> dict:
    """Sum page counts into {"pages", "precision", "recall", "f1", "cer", "wer", "pages_per_s", ...}."""
    tot = {k: sum(c[k] for c in counts) for k in ("pred", "true", "tp", "char_err", "chars", "word_err", "words")}
    p = tot["tp"] / tot["pred"] if tot["pred"] else 0.0
    r = tot["tp"] / tot["true"] if tot["true"] else 0.0
    out = {"pages": len(counts), "lines_true": tot["true"], "lines_pred": tot["pred"], "matched": tot["tp"],
           "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
           "cer": tot["char_err"] / tot["chars"] if tot["chars"] else 0.0,
           "wer": tot["word_err"] / tot["words"] if tot["words"] else 0.0}
    if seconds is not None:
        out["pages_per_s"] = len(counts) / seconds if seconds > 0 else float("inf")
    return out


def run_and_score(reader, pages, iou: float = 0.5, norm=norm_raw, progress: bool = False) -> dict:
    """Time `reader(rgb) -> [{"box", "text", ...}]` over `pages` ([(rgb, truth)]) and score it (see module doc)."""
    from tqdm import tqdm

    counts, seconds = [], 0.0
    for rgb, truth in tqdm(pages, desc="pages", disable=not progress):
        t0 = time.perf_counter()
        pred = reader(rgb)
        seconds += time.perf_counter() - t0
        counts.append(page_counts(pred, truth, iou, norm))
    return summarize(counts, seconds)
