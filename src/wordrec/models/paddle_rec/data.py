"""`paddle.io.Dataset` over the word-image LMDBs: shared preprocessing, optional BDA, padded CTC labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle

from wordrec.data.augment import build_bda
from wordrec.data.charset import Charset
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.data.preprocess import prepare


def ctc_min_steps(label: str) -> int:
    """Frames CTC needs for a label: one per character plus a blank between each repeated pair."""
    return len(label) + sum(a == b for a, b in zip(label, label[1:]))


class RecDataset(paddle.io.Dataset):
    """Items: (x float32 CxHxW, label int32 [max_len] zero-padded, length int64).

    Labels are mapped into the charset with `Charset.filter`; samples whose label ends up empty or cannot be
    aligned in `steps` CTC frames are skipped (counted in `.skipped`) because they would give an infinite loss.
    Augmentation is seeded per (seed, epoch, index), so a resumed run sees the same images as an uninterrupted one.
    """

    def __init__(self, path: str | Path, charset: Charset, inp, steps: int, bda_cfg=None, seed: int = 0):
        self.lmdb = LmdbDataset(path)
        self.charset, self.inp, self.steps, self.seed = charset, inp, steps, seed
        self.items: list[tuple[int, str]] = []
        for i, raw in enumerate(self.lmdb.labels()):
            label = charset.filter(raw)
            if label and ctc_min_steps(label) <= steps:
                self.items.append((i, label))
        self.skipped = len(self.lmdb) - len(self.items)
        self.bda = build_bda(bda_cfg) if bda_cfg is not None else None
        self.epoch = 0

    def close(self) -> None:
        # Drop our reference only: wordrec.data.lmdb_io shares one read-only environment per process and path
        # (py-lmdb refuses a second open), so closing it here would break every other reader of that LMDB.
        self.lmdb._env = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        i, label = self.items[k]
        img, _ = self.lmdb[i]
        if self.bda is not None:
            self.bda.set_random_seed(hash((self.seed, self.epoch, k)) & 0x7FFFFFFF)
            img = self.bda(image=img)["image"]
        x = prepare(img, self.inp)
        enc = np.zeros(self.steps, np.int32)
        ids = self.charset.encode(label)
        enc[: len(ids)] = ids
        return x, enc, np.int64(len(ids))
