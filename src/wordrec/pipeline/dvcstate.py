"""Heal what a killed `dvc repro` leaves in DVC's own state, so the next `make repro` just resumes.

DVC rewrites `.dvc/tmp/rwlock` (which outputs each running DVC process holds) in place, not atomically; a
SIGKILL during that write leaves it empty or cut, and every later `dvc repro` stops with "Unable to read
RWLock-file ... JSON structure is corrupted" (found by tests/test_kill_rerun.py). The file only coordinates
concurrent DVC processes, so when none runs in this repository a corrupt one is removed (DVC recreates it).
Stale entries of dead processes in a valid file DVC removes by itself. `dvc.lock` is rewritten in place too: a
SIGKILL in that write leaves it cut (again found by the kill test: "dvc.lock validation failed ... expected a
dictionary"; or, cut on a line boundary, a file that still reads but lacks the stages after the cut), and then
every `dvc repro` stops or reruns stages that were done. Each run of this module copies a whole dvc.lock to
.dvc/tmp/dvc.lock.whole; a cut file keeps its whole entries, and the entry the write was in and the ones after it
come back from that copy. That is sound however old the copy is: DVC trusts a lock entry only while every dep,
param and out still hashes to what the entry records, i.e. to a run that really completed; an outdated entry just
makes DVC rerun the stage.

    python -m wordrec.pipeline.dvcstate [REPO]     # `make repro` runs it before `dvc repro`
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from wordrec.io import atomic_file

WHOLE_COPY = Path(".dvc") / "tmp" / "dvc.lock.whole"  # .dvc/tmp is DVC's own untracked scratch


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


def _stage_keys(repo: Path) -> set[str]:
    """Stage names dvc.yaml declares (a foreach stage `train` covers lock entries `train@<item>`)."""
    import yaml

    try:
        return set((yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages") or {})
    except (OSError, yaml.YAMLError):
        return set()


def _lock_schema():
    from dvc.schema import COMPILED_LOCK_FILE_STAGE_SCHEMA, COMPILED_LOCKFILE_SCHEMA

    return COMPILED_LOCKFILE_SCHEMA, COMPILED_LOCK_FILE_STAGE_SCHEMA


def _read_lock(path: Path) -> tuple[str, dict | None]:
    """(text, the parsed lock if DVC's schema accepts it, else None)."""
    import yaml

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = yaml.safe_load(text)
        _lock_schema()[0](data)
        return text, data
    except Exception:  # a YAML error or a voluptuous Invalid
        return text, None


def _whole_prefix(text: str) -> dict:
    """The stage entries of a cut lock text that are whole, in file order, minus the one the cut fell in."""
    import yaml

    lines, data = text.splitlines(keepends=True), None
    while lines:  # the longest prefix that still parses
        try:
            data = yaml.safe_load("".join(lines))
            break
        except yaml.YAMLError:
            lines.pop()
    stages = data.get("stages") if isinstance(data, dict) else None
    whole = {}
    for name, entry in (stages or {}).items():
        try:
            _lock_schema()[1](entry)
        except Exception:
            break  # the entry the write was cut in; DVC writes stages in order, so nothing after it is whole
        whole[name] = entry
    else:
        if whole:  # every parsed entry reads, so the cut is in the last one (a shortened list, a cut hash)
            whole.pop(next(reversed(whole)))
    return whole


def heal_lockfile(repo: Path) -> str | None:
    """Mend a cut dvc.lock from its whole entries and the last whole copy (module doc) when no DVC process runs
    here; returns what was done, or None (no file, or a whole one)."""
    import yaml

    path, copy = repo / "dvc.lock", repo / WHOLE_COPY
    if not path.is_file():
        return None
    text, data = _read_lock(path)
    saved = (_read_lock(copy)[1] or {}).get("stages") or {} if copy.is_file() else {}
    keys = _stage_keys(repo)
    saved = {k: v for k, v in saved.items() if k.split("@")[0] in keys}  # not stages dvc.yaml has dropped since
    if data is not None:
        missing = set(saved) - set(data.get("stages") or {})
        if text.endswith("\n") and not missing:
            return None  # whole (a stage dvc.yaml gained is simply not in the lock yet)
    running = dvc_running_in(repo)
    if running:
        return f"{path}: cut, but DVC processes {running} run here: left alone"
    whole = _whole_prefix(text)
    back = [k for k in saved if k not in whole]
    healed = {"schema": "2.0", "stages": {**whole, **{k: saved[k] for k in back}}}
    with atomic_file(path) as f:
        f.write(yaml.safe_dump(healed, sort_keys=False))
    return (f"{path}: cut (a DVC process was killed while writing it); kept {len(whole)} whole stage entries, "
            f"{len(back)} from the last whole copy; DVC reruns any stage whose files no longer match its entry")


def save_whole_lock(repo: Path) -> None:
    """Copy a whole dvc.lock to WHOLE_COPY (atomically), the source heal_lockfile mends a cut one from."""
    path = repo / "dvc.lock"
    if not path.is_file():
        return
    text, data = _read_lock(path)
    if data is not None:
        with atomic_file(repo / WHOLE_COPY) as f:
            f.write(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(argv[0] if argv else ".")
    for msg in (heal_rwlock(repo), heal_lockfile(repo)):
        if msg:
            print(f"note: {msg}", file=sys.stderr)
    if not dvc_running_in(repo):
        save_whole_lock(repo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
