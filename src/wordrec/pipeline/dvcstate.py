"""Heal what a killed `dvc repro` leaves in DVC's own state, so the next `make repro` just resumes.

DVC rewrites `.dvc/tmp/rwlock` (which outputs each running DVC process holds) in place, not atomically; a
SIGKILL during that write leaves it empty or cut, and every later `dvc repro` stops with "Unable to read
RWLock-file ... JSON structure is corrupted" (found by tests/test_kill_rerun.py). The file only coordinates
concurrent DVC processes, so when none runs in this repository a corrupt one is removed (DVC recreates it).
Stale entries of dead processes in a valid file DVC removes by itself.

    python -m wordrec.pipeline.dvcstate [REPO]     # `make repro` runs it before `dvc repro`
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def dvc_running_in(repo: Path) -> list[int]:
    """PIDs of other processes running DVC with `repo` as their working directory."""
    import psutil

    repo = repo.resolve()
    pids = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd, cwd = p.info["cmdline"] or [], p.info["cwd"]
        except (psutil.Error, KeyError):
            continue
        if p.info["pid"] != os.getpid() and cwd and Path(cwd).resolve() == repo and any(
                Path(c).name == "dvc" or c.endswith("dvc/__main__.py") or c == "dvc" for c in cmd):
            pids.append(p.info["pid"])
    return pids


def heal_rwlock(repo: Path) -> str | None:
    """Remove a corrupt .dvc/tmp/rwlock when no DVC process runs here; returns what was done, or None."""
    lock = repo / ".dvc" / "tmp" / "rwlock"
    if not lock.is_file():
        return None
    try:
        json.loads(lock.read_text(encoding="utf-8"))
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    running = dvc_running_in(repo)
    if running:
        return f"{lock}: corrupt, but DVC processes {running} run here: left alone"
    lock.unlink()
    return f"{lock}: corrupt (a DVC process was killed while writing it); removed, DVC recreates it"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    msg = heal_rwlock(Path(argv[0] if argv else "."))
    if msg:
        print(f"note: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
