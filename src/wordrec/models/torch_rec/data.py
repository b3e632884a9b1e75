"""Torch-side data: LMDB word images -> (model input, CTC target), with deterministic on-the-fly augmentation.

Every sample's augmentation is seeded from (seed, epoch, index), so a resumed run sees exactly the batches an
uninterrupted one would, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wordrec.data.augment import build_bda
from wordrec.data.charset import Charset
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.data.preprocess import prepare


def geometric(img: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """Light shear/rotation/crop jitter on top of what the generator rendered (real crops are loosely cut)."""
    h, w = img.shape[:2]
    if rng.random() < cfg.affine_p:
        ang = math.radians(rng.uniform(-cfg.rotate, cfg.rotate))
        sh = rng.uniform(-cfg.shear, cfg.shear)
        a = np.array([[math.cos(ang), -math.sin(ang) + sh, 0], [math.sin(ang), math.cos(ang), 0]], np.float32)
        a[:, 2] = np.array([w / 2, h / 2]) - a[:, :2] @ np.array([w / 2, h / 2])
        img = cv2.warpAffine(img, a, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < cfg.crop_p:
        m = cfg.crop  # fraction of height cut (negative margins pad instead, by replication)
        t, b, l, r = (int(round(rng.uniform(-m, m) * h)) for _ in range(4))
        img = cv2.copyMakeBorder(img, max(0, -t), max(0, -b), max(0, -l), max(0, -r), cv2.BORDER_REPLICATE)
        hh, ww = img.shape[:2]
        img = img[max(0, t): hh - max(0, b), max(0, l): ww - max(0, r)]
        if img.shape[0] < 4 or img.shape[1] < 4:
            return None
    return img


class WordDataset(Dataset):
    """Indexed by (epoch, i): the epoch only seeds augmentation. Labels are mapped into `charset`
    (`Charset.filter`); samples whose label is empty after that, or too long for `max_len` CTC steps, are
    dropped up front (`keep` lists the LMDB indices kept)."""

    def __init__(self, path, charset: Charset, inp, max_len: int, augment=None, seed: int = 0):
        self.lmdb = LmdbDataset(path)
        self.charset, self.inp, self.augment, self.seed = charset, inp, augment, seed
        self.labels, self.keep = [], []
        for i, lab in enumerate(self.lmdb.labels()):
            t = charset.filter(lab)
            # CTC needs a blank between repeated characters: len + repeats <= T.
            if t and len(t) + sum(a == b for a, b in zip(t, t[1:])) <= max_len:
                self.keep.append(i)
                self.labels.append(t)
        self.bda = build_bda(augment.bda) if augment is not None and augment.enabled else None

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, key):
        epoch, j = key if isinstance(key, tuple) else (0, key)
        img, _ = self.lmdb[self.keep[j]]
        if self.bda is not None:
            rng = np.random.default_rng([self.seed, epoch, j])
            aug = geometric(img, rng, self.augment)
            img = aug if aug is not None else img
            self.bda.set_random_seed(int(rng.integers(2**31)))
            img = self.bda(image=img)["image"]
        x = prepare(img, self.inp)
        return torch.from_numpy(x), self.labels[j]


def collate(charset: Charset):
    def fn(batch):
        xs, texts = zip(*batch)
        targets = [torch.tensor(charset.encode(t), dtype=torch.long) for t in texts]
        return (torch.stack(xs), torch.cat(targets), torch.tensor([len(t) for t in targets]), list(texts))
    return fn


class EpochBatches:
    """Batch sampler for one epoch from step `start`: a seeded permutation, last partial batch dropped."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0):
        self.perm = np.random.default_rng([seed, epoch, 7]).permutation(n)
        self.bs, self.epoch, self.start = batch_size, epoch, start

    def __len__(self) -> int:
        return len(self.perm) // self.bs - self.start

    def __iter__(self):
        for b in range(self.start, len(self.perm) // self.bs):
            yield [(self.epoch, int(i)) for i in self.perm[b * self.bs:(b + 1) * self.bs]]
