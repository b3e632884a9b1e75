"""Parallel, deterministic generation of word-image splits into LMDB."""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from wordrec.data.augment import build_bda
from wordrec.data.lmdb_io import encode_image, write_lmdb
from wordrec.data.synth.render import render_text
from wordrec.data.synth.text import TextSampler

SPLIT_CODE = {"train": 1, "val": 2, "test": 3, "lines_train": 4, "lines_val": 5, "lines_test": 6}
LINE_SPLITS = {"lines_train": "n_train", "lines_val": "n_val", "lines_test": "n_test"}  # split -> synth.lines key


@dataclass
class Generator:
    cfg: DictConfig
    fonts: tuple[str, ...]
    words: list[str]
    charset: str

    def __post_init__(self):
        self.sampler = TextSampler(self.words, self.cfg.text, self.charset)
        self.bda = build_bda(self.cfg.bda)
        # Lines are rendered like words, only wider before squeezing.
        self.line_render = OmegaConf.merge(self.cfg.render, {"max_width": int(self.cfg.lines.max_width)})

    def _line(self, rng) -> str:
        lo, hi = (int(v) for v in self.cfg.lines.words)
        return " ".join(self.sampler.sample(rng) for _ in range(rng.integers(lo, hi + 1)))

    def sample(self, split: str, idx: int) -> tuple[bytes, str]:
        # One independent stream per (seed, split, index): results do not depend on worker count or order.
        rng = np.random.default_rng([self.cfg.seed, SPLIT_CODE[split], idx])
        line = split in LINE_SPLITS
        text = self._line(rng) if line else self.sampler.sample(rng)
        font = self.fonts[rng.integers(len(self.fonts))]
        context = ()
        if rng.random() < self.cfg.render.context_p:
            context = tuple(" ".join(self.sampler.sample(rng) for _ in range(3)) for _ in range(2))
        img = render_text(text, font, rng, self.line_render if line else self.cfg.render, context)
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


def _progress(results, total: int, desc: str):
    with tqdm(total=total, desc=desc, unit="img", mininterval=1.0) as bar:
        for r in results:
            bar.update()
            yield r


def generate_splits(gen: Generator, sizes: dict[str, int], out_root, workers: int) -> dict[str, int]:
    """Write one LMDB per split under `out_root`; one process pool serves all splits (start-up is seconds)."""
    if workers <= 1:
        return {s: write_lmdb(out_root / s, _progress((gen.sample(s, i) for i in range(n)), n, f"synth {s}"))
                for s, n in sizes.items()}
    # forkserver, not fork: forking a parent that already runs library threads can deadlock the children.
    ctx = mp.get_context("forkserver")
    init = (OmegaConf.to_container(gen.cfg), gen.fonts, gen.words, gen.charset)
    with ctx.Pool(workers, initializer=_init, initargs=init) as pool:
        return {
            s: write_lmdb(out_root / s, _progress(pool.imap(_work, ((s, i) for i in range(n)), chunksize=64), n, f"synth {s}"))
            for s, n in sizes.items()
        }
