"""The pipeline's gates and rankings: each turns measured figures into pass/fail (DataError, the stage fails
and writes nothing) or a choice, so stage scripts only wire them and tests import them directly.

- `parity_gate`: ONNX vs the framework (export).
- `quantize_gate`: FP32 -> INT8 accuracy drop per backend and gated test set (quantize).
- `device_gate`: device vs host text and probabilities (mcu).
- `pick_best`: the grid's winner, the initial model competing (grid).
"""

from __future__ import annotations

from wordrec.errors import DataError


def parity_gate(facts: dict, where, max_abs_diff: float, min_text_agreement: float) -> None:
    """Fail when the ONNX output differs from the framework's beyond export.parity's bounds."""
    if not facts["max_abs_diff"] <= max_abs_diff:
        raise DataError(f"{where}: ONNX parity failed: max |diff| {facts['max_abs_diff']:.3g} > "
                        f"export.parity.max_abs_diff {max_abs_diff}")
    if not facts["text_agreement"] >= min_text_agreement:
        raise DataError(f"{where}: ONNX parity failed: decoded texts agree on {facts['text_agreement']:.3f} "
                        f"< export.parity.min_text_agreement {min_text_agreement}")


def quantize_gate(report: dict, gate_sets, max_drop: float, key: str = "quantize.max_accuracy_drop") -> None:
    """report: {model: {backend: {"sets": {set: {"fp32": acc, "int8": acc}}} or {"skipped": reason}}} with
    accuracies as fractions; fails when INT8 loses more than `max_drop` (a fraction of words, the parameter `key`)
    on any set in `gate_sets`, or when a backend that ran was not measured on a gate set (nothing to gate on)."""
    ran = {(m, b): r for m, backends in report.items() for b, r in backends.items() if "skipped" not in r}
    unmeasured = [f"{m}/{b}: {s}" for (m, b), r in ran.items() for s in gate_sets if s not in r["sets"]]
    if unmeasured:
        raise DataError(f"INT8 gate ({key}): gate set not measured: " + "; ".join(unmeasured))
    bad = [f"{m}/{b} on {s}: {a['fp32']:.4f} -> {a['int8']:.4f}" for (m, b), r in ran.items()
           for s, a in r["sets"].items() if s in gate_sets and a["fp32"] - a["int8"] > max_drop]
    if bad:
        raise DataError(f"INT8 accuracy drop > {key}={max_drop} (fraction of words): " + "; ".join(bad))


def device_gate(name: str, rows: list[dict], max_diff: float, tol: float) -> None:
    """rows: per image {"host", "device", ...}; the decoded text must agree on every image and the
    probabilities within `tol` (mcu.max_abs_diff_tol)."""
    bad = [r for r in rows if r["host"] != r["device"]]
    if bad or not max_diff <= tol:
        raise DataError(f"{name}: device disagrees with host: text on {len(bad)}/{len(rows)} images {bad[:3]}, "
                        f"max |diff| {max_diff:.3g} (mcu.max_abs_diff_tol {tol})")


def pick_best(runs: list[dict], init: dict | None) -> dict:
    """The grid's choice: the run with the highest (accuracy, ned), ties to the earliest job; with `init`
    (the trained model competing, grid.keep_init) it wins ties, since it needs no extra steps.
    runs: [{"accuracy", "ned", "job", ...}]; init: {"accuracy", "ned", ...} or None."""
    best = dict(max(runs, key=lambda r: (r["accuracy"], r["ned"], -r["job"])), source="grid")
    if init is not None and init["accuracy"] >= best["accuracy"]:
        return {**init, "source": "init"}
    return best
