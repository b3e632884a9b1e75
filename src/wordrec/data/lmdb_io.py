"""LMDB datasets in the PaddleOCR / deep-text-recognition-benchmark layout.

Keys: `num-samples` -> ASCII count; `image-%09d` -> encoded image bytes; `label-%09d` -> UTF-8 label;
indices start at 1. Only `data.mdb` is kept (no lock file) so the directory is byte-reproducible and
can be opened read-only from DVC's cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import cv2
import lmdb
import numpy as np

from wordrec.errors import DataError
from wordrec.io import atomic_dir

_ENVS: dict = {}  # (pid, path, inode, mtime) -> open read-only environment
MAP_SIZE = 1 << 40  # virtual reservation only; the file grows with the data on Linux


def write_lmdb(path: str | Path, samples: Iterable[tuple[bytes, str]], commit_every: int = 1000) -> int:
    """Write (image_bytes, label) pairs atomically; returns the sample count."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        env = lmdb.open(str(tmp), map_size=MAP_SIZE, subdir=True, lock=False, meminit=True, sync=False)
        n = 0
        try:
            txn = env.begin(write=True)
            for image, label in samples:
                n += 1
                txn.put(b"image-%09d" % n, image)
                txn.put(b"label-%09d" % n, label.encode("utf-8"))
                if n % commit_every == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.put(b"num-samples", str(n).encode())
            txn.commit()
            env.sync(True)
        finally:
            env.close()
        (tmp / "lock.mdb").unlink(missing_ok=True)
    return n


def check_structure(env, path: Path) -> None:
    """Fast check at open that data.mdb is whole. LMDB maps the file and trusts its meta page: a file cut short
    (an interrupted copy, a full disk) opens fine and then kills the process with SIGBUS on the first read past
    its end. The meta page records the last page in use, so the size the file must have is known up front."""
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    have = (path / "data.mdb").stat().st_size
    if have < need:
        raise DataError(f"{path}/data.mdb: truncated LMDB ({have:,} bytes; its last page ends at byte {need:,}): "
                        "copy or re-create the dataset")


class LmdbDataset:
    """Random access to an LMDB word-image dataset (images decoded with OpenCV as RGB uint8)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "data.mdb").is_file():
            raise DataError(f"{self.path}: not an LMDB dataset (no data.mdb)")
        self._env = None
        env = self._open()
        check_structure(env, self.path)
        with env.begin() as txn:
            raw = txn.get(b"num-samples")
        if raw is None:
            raise DataError(f"{self.path}: LMDB has no 'num-samples' key")
        try:
            self.n = int(raw)
        except ValueError:
            raise DataError(f"{self.path}: 'num-samples' is {raw[:20]!r}, expected an integer") from None
        keys = env.stat()["entries"]
        if self.n < 0 or keys != 2 * self.n + 1:  # an image and a label per sample, plus num-samples itself
            raise DataError(f"{self.path}: num-samples says {self.n} but the LMDB holds {keys} keys "
                            f"(expected {2 * self.n + 1}): damaged or not a wordrec/PaddleOCR word LMDB")

    def _open(self):
        # Opened lazily so that a dataset object can be sent to DataLoader worker processes.
        if self._env is None:
            # py-lmdb refuses to open one environment twice in a process, so datasets share a per-process handle.
            st = (self.path / "data.mdb").stat()  # a rewritten dataset at the same path gets a new handle
            key = (os.getpid(), str(self.path.resolve()), st.st_ino, st.st_mtime_ns)
            if key not in _ENVS:
                try:
                    _ENVS[key] = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False, meminit=False)
                except lmdb.Error as e:
                    raise DataError(f"{self.path}/data.mdb: corrupt LMDB (lmdb cannot open it: {e})") from None
            self._env = _ENVS[key]
        return self._env

    def __getstate__(self):
        return {"path": self.path, "n": self.n, "_env": None}

    def __len__(self) -> int:
        return self.n

    def raw(self, i: int) -> tuple[bytes, str]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        with self._open().begin() as txn:
            image = txn.get(b"image-%09d" % (i + 1))
            label = txn.get(b"label-%09d" % (i + 1))
        if image is None or label is None:
            raise DataError(f"{self.path}: sample {i + 1} is missing its image or label")
        return image, label.decode("utf-8")

    def label(self, i: int) -> str:
        with self._open().begin() as txn:
            return txn.get(b"label-%09d" % (i + 1)).decode("utf-8")

    def labels(self) -> list[str]:
        with self._open().begin() as txn:
            return [txn.get(b"label-%09d" % (i + 1)).decode("utf-8") for i in range(self.n)]

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        image, label = self.raw(i)
        return decode_image(image, f"{self.path}[{i + 1}]"), label


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded bytes -> RGB uint8 array; raises DataError naming `where` if undecodable."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None or arr.size == 0:
        raise DataError(f"{where}: cannot decode image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def encode_image(rgb: np.ndarray, fmt: str = ".jpg", quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError("cannot encode image")
    return buf.tobytes()
