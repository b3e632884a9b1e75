"""evaluate's worst-mistakes gallery: labels and predictions are arbitrary text, never markup."""
from __future__ import annotations

import cv2
import numpy as np

from wordrec.data.lmdb_io import write_lmdb
from wordrec.pipeline.evaluation import worst_mistakes_png


def test_worst_mistakes_png_takes_dollar_signs_and_backslashes(tmp_path):
    # what crashed the default run: a line prediction with two '$' (matplotlib read it as mathtext)
    rng = np.random.default_rng(0)
    labels = ["US$ 5", "a\\b"]
    write_lmdb(tmp_path / "crops", [(cv2.imencode(".png", rng.integers(0, 255, (16, 48, 3), np.uint8))[1].tobytes(), t)
                                    for t in labels])
    records = [{"index": 0, "label": labels[0], "pred": "tWrpu !?Q{q0$7\\] $3 GUIB", "conf": 0.5, "ned": 0.9,
                "ok_alnum_ci": False},
               {"index": 1, "label": labels[1], "pred": "$\\frac{a}{", "conf": 0.1, "ned": 0.5, "ok_alnum_ci": False}]
    out = tmp_path / "worst.png"
    worst_mistakes_png([("crops", tmp_path / "crops", records)], out, per_dataset=2, title="worst $x$ mistakes")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
