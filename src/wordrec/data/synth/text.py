"""Text sources: real English words (Debian `wamerican`, the `english-words` wheel) and random strings."""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

import numpy as np

from wordrec.errors import DataError

PUNCT_WRAP = [("(", ")"), ('"', '"'), ("'", "'"), ("[", "]")]
PUNCT_TAIL = list(".,:;!?'") + ["'s", "...", "-"]


@lru_cache(maxsize=4)
def _load_words(paths: tuple, use_english_words: bool, charset: str, max_len: int) -> tuple:
    return tuple(_words(paths, use_english_words, charset, max_len))


def load_words(paths, use_english_words: bool, charset: str, max_len: int) -> list[str]:
    """Unique words whose characters are all in `charset`, from word-list files and the english-words wheel."""
    return list(_load_words(tuple(str(p) for p in paths), bool(use_english_words), charset, int(max_len)))


def _words(paths, use_english_words: bool, charset: str, max_len: int) -> list[str]:
    allowed = set(charset)
    words: set[str] = set()
    for p in paths:
        path = Path(p)
        if not path.is_file():  # a listed file that is not there is a mistake, not a list to skip quietly
            raise DataError(f"params.yaml:synth.text.word_lists: {path} not found (Debian `wamerican` installs "
                            "/usr/share/dict/words)")
        words.update(w.strip() for w in path.read_text(encoding="utf-8", errors="ignore").splitlines())
    if use_english_words:
        from english_words import get_english_words_set

        words.update(get_english_words_set(["web2", "gcide"], lower=False, alpha=True))
    words = {w for w in words if 0 < len(w) <= max_len and set(w) <= allowed}
    if not words:
        raise DataError(f"synth.text.word_lists={list(paths)}: no usable words (install `wamerican`)")
    return sorted(words)


class TextSampler:
    """Draws a label per sample: dictionary word (with case variants and punctuation) or a random string."""

    def __init__(self, words: list[str], cfg, charset: str):
        self.words = words
        self.cfg = cfg
        self.charset = charset
        allowed = set(charset)
        self.punct = [c for c in string.punctuation if c in allowed]
        self.alnum = [c for c in string.digits + string.ascii_letters if c in allowed]
        self.digits = [c for c in string.digits if c in allowed]
        # Real scene words are short (IIIT5K peaks at 3-5 letters) while a dictionary peaks at 7-8, so the
        # word length is drawn from `length_prior` first and the word uniformly among words of that length.
        self.by_len: dict[int, list[str]] = {}
        for w in words:
            self.by_len.setdefault(len(w), []).append(w)
        prior = {int(k): float(v) for k, v in dict(cfg.length_prior).items() if int(k) in self.by_len}
        self.lengths = sorted(prior)
        lp = np.array([prior[k] for k in self.lengths])
        self.len_p = lp / lp.sum()
        kinds = dict(cfg.mix)
        self.kinds = list(kinds)
        p = np.array([kinds[k] for k in self.kinds], float)
        self.p = p / p.sum()

    def _case(self, w: str, rng) -> str:
        r = rng.random()
        if r < self.cfg.upper_p:
            return w.upper()
        if r < self.cfg.upper_p + self.cfg.title_p:
            return w[:1].upper() + w[1:].lower()
        return w.lower() if rng.random() < 0.7 else w

    def _word(self, rng) -> str:
        bucket = self.by_len[self.lengths[rng.choice(len(self.lengths), p=self.len_p)]]
        return bucket[rng.integers(len(bucket))]

    def _rand(self, pool, lo, hi, rng) -> str:
        return "".join(pool[i] for i in rng.integers(0, len(pool), rng.integers(lo, hi + 1)))

    def sample(self, rng) -> str:
        kind = self.kinds[rng.choice(len(self.kinds), p=self.p)]
        max_len = self.cfg.max_len
        if kind == "word":
            t = self._case(self._word(rng), rng)
        elif kind == "word_punct" and self.punct:
            t = self._case(self._word(rng), rng)
            if rng.random() < 0.3:
                a, b = PUNCT_WRAP[rng.integers(len(PUNCT_WRAP))]
                t = a + t + b
            else:
                t = t + PUNCT_TAIL[rng.integers(len(PUNCT_TAIL))]
        elif kind == "number":
            t = self._rand(self.digits, 1, 7, rng)
            r = rng.random()
            if r < 0.25 and "." in self.charset:
                t = t + "." + self._rand(self.digits, 2, 2, rng)
            elif r < 0.45:
                t = t + self._case(self._word(rng), rng)[:3].upper()
            elif r < 0.6 and "$" in self.charset:
                t = "$" + t
        elif kind == "alnum":
            t = self._rand(self.alnum, 1, 10, rng)
        else:  # "mixed": random printable characters of the charset
            t = self._rand([c for c in self.charset if c != " "], 1, 10, rng)
        t = "".join(c for c in t if c in self.charset)[:max_len]
        return t or self.words[rng.integers(len(self.words))][:max_len]
