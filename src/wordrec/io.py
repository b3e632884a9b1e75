"""Atomic outputs: a stage either writes a complete file/directory or leaves nothing behind.

Temporaries are siblings named `.<name>.<pid>.<random>.tmp`: a process killed mid-write (SIGKILL, OOM, power)
cannot clean up, so the next writer of the same path removes those whose process is gone. Write failures that
are the machine's, not the code's (disk full, quota, `ulimit -f`), become one clear OutputError.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from wordrec.errors import DataError, OutputError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(path: Path) -> list[Path]:
    """Remove temporaries of `path` left by writers that no longer run; returns what was removed."""
    pat = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp$")
    gone = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            m = pat.match(p.name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                _remove(p)
                gone.append(p)
    return gone


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path`, on error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove(path)
    os.replace(tmp, path)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary sibling file for writing; it is renamed over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
    except BaseException:
        os.unlink(tmp)
        raise
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_figure(fig, path: str | Path, **savefig_kw) -> None:
    """A matplotlib figure as PNG, atomically (savefig straight to the path leaves a truncated PNG on a full
    disk), then closed."""
    import matplotlib.pyplot as plt

    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", **savefig_kw)
    plt.close(fig)


def write_png(path: str | Path, image_bgr) -> None:
    """An OpenCV BGR image as PNG, atomically (cv2.imwrite reports a failed write only as False)."""
    import cv2

    ok, buf = cv2.imencode(".png", image_bgr)
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode the image as PNG")
    with atomic_file(path, "wb") as f:
        f.write(buf.tobytes())


# errno values of a machine that cannot take more bytes: disk full, quota, `ulimit -f` (Python ignores SIGXFSZ,
# so the write returns EFBIG instead of the process being killed)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# how libraries that do not raise OSError word the same failures (torch's zip writer, LMDB's commit)
_NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "File too large", "file write failed",
                  "mdb_txn_commit: Input/output error")


def out_of_space(e: BaseException) -> bool:
    """True when `e` (or what it was raised from) is a write the file system refused for lack of room."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            return True
        if any(t in str(e) for t in _NO_SPACE_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


def write_json(path: str | Path, obj) -> None:
    with atomic_file(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def read_json(path: str | Path):
    """A JSON file written by a stage; DataError naming it when it is missing or not JSON."""

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a stage's JSON report)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
