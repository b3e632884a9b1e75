"""The one CTC decoder: greedy best path, repeats collapsed, blanks (class 0) dropped.

Confidence follows PaddleOCR's CTCLabelDecode: the mean of the winning probability over the frames that emitted a
character (0.0 for an empty read), so every backend, the device samples and `wordrec-predict` report the same
number for the same probabilities.
"""

from __future__ import annotations

import numpy as np

from wordrec.data.charset import Charset


def decode(probs: np.ndarray, charset: Charset) -> list[tuple[str, float]]:
    """probs float[N, T, K] (softmax; class 0 = blank) -> [(text, confidence)] per row."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"decode: expected probabilities N x T x K, got shape {probs.shape}")
    best, conf = probs.argmax(-1), probs.max(-1)
    out = []
    for path, p in zip(best, conf):
        prev = np.concatenate([[0], path[:-1]])
        emit = (path != 0) & (path != prev)
        out.append((charset.decode(path[emit].tolist()), float(p[emit].mean()) if emit.any() else 0.0))
    return out


def texts(probs: np.ndarray, charset: Charset) -> list[str]:
    return [t for t, _ in decode(probs, charset)]
