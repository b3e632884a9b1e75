"""Parallel, deterministic generation of word-image splits into LMDB."""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from wordrec.augment import build_bda
from wordrec.lmdb_io import encode_image, write_lmdb
from wordrec.synth.render import render_text
from wordrec.synth.text import TextSampler

SPLIT_CODE = {"train": 1, "val": 2, "test": 3}


@dataclass
class Generator:
    cfg: DictConfig
    fonts: tuple[str, ...]
    words: list[str]
    charset: str

    def __post_init__(self):
        self.sampler = TextSampler(self.words, self.cfg.text, self.charset)
        self.bda = build_bda(self.cfg.bda)

    def sample(self, split: str, idx: int) -> tuple[bytes, str]:
        # One independent stream per (seed, split, index): results do not depend on worker count or order.
        rng = np.random.default_rng([self.cfg.seed, SPLIT_CODE[split], idx])
        text = self.sampler.sample(rng)
        font = self.fonts[rng.integers(len(self.fonts))]
        img = render_text(text, font, rng, self.cfg.render)
        self.bda.set_random_seed(int(rng.integers(2**31)))
        img = self.bda(image=img)["image"]
        return encode_image(img, ".jpg", self.cfg.jpeg_quality), text


_GEN: Generator | None = None


def _init(cfg_dict, fonts, words, charset):
    global _GEN
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the process pool
    _GEN = Generator(OmegaConf.create(cfg_dict), fonts, words, charset)


def _work(job):
    split, idx = job
    return _GEN.sample(split, idx)


def generate_split(gen: Generator, split: str, n: int, out_dir, workers: int) -> int:
    jobs = ((split, i) for i in range(n))
    bar = tqdm(total=n, desc=f"synth {split}", unit="img", mininterval=1.0)

    def stream(results):
        for r in results:
            bar.update()
            yield r

    try:
        if workers <= 1:
            return write_lmdb(out_dir, stream(gen.sample(s, i) for s, i in jobs))
        # forkserver, not fork: forking a parent that already runs library threads can deadlock the children.
        ctx = mp.get_context("forkserver")
        init = (OmegaConf.to_container(gen.cfg), gen.fonts, gen.words, gen.charset)
        with ctx.Pool(workers, initializer=_init, initargs=init) as pool:
            return write_lmdb(out_dir, stream(pool.imap(_work, jobs, chunksize=64)))
    finally:
        bar.close()
