"""Recognition metrics, all fractions in [0, 1]: exact word accuracy, the scene-text standard (alnum,
case-insensitive) and NED. `score` is the single accuracy function of the pipeline."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^a-z0-9]")


def alnum_ci(text: str) -> str:
    """The standard scene-text comparison: lowercase, keep only [a-z0-9] (as in the CRNN/ASTER/dtrb benchmarks)."""
    return _NON_ALNUM.sub("", text.lower())


def edit_distance(a: str, b: str) -> int:
    # Plain Levenshtein DP: a few lines, and no extra dependency for the one function we need.
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ned(pred: str, gt: str) -> float:
    """Normalized edit *similarity* of one pair: 1 - ED(pred, gt) / max(len(pred), len(gt)), 1.0 for two empties.

    This is the ICDAR2019-LSVT definition that PaddleOCR reports as `norm_edit_dis` (higher is better)."""
    m = max(len(pred), len(gt))
    return 1.0 if m == 0 else 1.0 - edit_distance(pred, gt) / m


def score(preds: list[str], labels: list[str], charset=None) -> dict:
    """The one accuracy rule, as fractions: {"accuracy", "accuracy_alnum_ci", "ned", "n"} over aligned lists.

    `accuracy` and `ned` compare with the label mapped into the model's charset (`Charset.filter`: lower-cased for
    case-insensitive sets, characters it cannot express dropped) when `charset` is given, else the raw label;
    `accuracy_alnum_ci` compares lowercase alphanumerics of the raw label (the scene-text rule, fair across
    charsets and peer OCRs). evaluate, quantize, bench, mcu, grid and both trainers all use this function."""
    n = len(labels)
    if len(preds) != n:
        raise ValueError(f"{len(preds)} predictions for {n} labels")
    if n == 0:
        return {"accuracy": 0.0, "accuracy_alnum_ci": 0.0, "ned": 0.0, "n": 0}
    mapped = [charset.filter(t) for t in labels] if charset is not None else list(labels)
    return {
        "accuracy": round(sum(p == g for p, g in zip(preds, mapped)) / n, 6),
        "accuracy_alnum_ci": round(sum(alnum_ci(p) == alnum_ci(g) for p, g in zip(preds, labels)) / n, 6),
        "ned": round(sum(ned(p, g) for p, g in zip(preds, mapped)) / n, 6),
        "n": n,
    }
