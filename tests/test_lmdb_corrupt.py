"""Corrupt LMDBs are caught at open with a clear error, never a bus error (SIGBUS) or a traceback."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from wordrec.data.lmdb_io import LmdbDataset, encode_image, write_lmdb
from wordrec.errors import DataError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 100, 3), dtype=np.uint8) for _ in range(400)]
    path = tmp_path_factory.mktemp("lmdb") / "good"
    write_lmdb(path, ((encode_image(im, ".png"), f"w{i}") for i, im in enumerate(images)))
    return path


def _variant(good, tmp_path, edit):
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    edit(bad / "data.mdb")
    return bad


def _truncate(f, frac=0.5):
    with open(f, "r+b") as fh:
        fh.truncate(int(os.path.getsize(f) * frac))


@pytest.mark.parametrize("edit, message", [
    (lambda f: _truncate(f), r"data.mdb: truncated LMDB"),
    (lambda f: _truncate(f, 0.9), r"data.mdb: truncated LMDB"),
    (lambda f: f.write_bytes(os.urandom(20000)), r"data.mdb: corrupt LMDB"),
    (lambda f: f.write_bytes(b""), r"data.mdb: corrupt LMDB"),
])
def test_damaged_file_is_a_clear_error(good, tmp_path, edit, message):
    with pytest.raises(DataError, match=message):
        LmdbDataset(_variant(good, tmp_path, edit))


def test_num_samples_must_match_the_keys(tmp_path):
    import lmdb

    path = tmp_path / "odd"
    write_lmdb(path, [(b"x", "a"), (b"y", "b")])
    env = lmdb.open(str(path), lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"num-samples", b"3")
    env.close()
    (path / "lock.mdb").unlink(missing_ok=True)
    with pytest.raises(DataError, match=r"num-samples says 3 but the LMDB holds 5 keys"):
        LmdbDataset(path)


def test_wordrec_check_reports_a_truncated_lmdb_instead_of_dying(good, tmp_path):
    """The reported crash: `wordrec-check` on a cut-short data.mdb died with SIGBUS (exit 135)."""
    bad = _variant(good, tmp_path, _truncate)
    p = subprocess.run([sys.executable, "-m", "wordrec.data.datacheck", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2, (p.returncode, p.stderr[-500:])
    assert p.stderr.strip().splitlines() == [f"error: {bad}/data.mdb: truncated LMDB"
                                             f" ({os.path.getsize(bad / 'data.mdb'):,} bytes; its last page ends at "
                                             f"byte {os.path.getsize(good / 'data.mdb'):,}): copy or re-create the "
                                             "dataset"]
