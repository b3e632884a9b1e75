"""Heal what a killed `dvc repro` leaves in DVC's own state, so the next `make repro` just resumes.

DVC rewrites `.dvc/tmp/rwlock` (which outputs each running DVC process holds) in place, not atomically; a
SIGKILL during that write leaves it empty or cut, and every later `dvc repro` stops with "Unable to read
RWLock-file ... JSON structure is corrupted" (found by tests/test_kill_rerun.py). The file only coordinates
concurrent DVC processes, so when none runs in this repository a corrupt one is removed (DVC recreates it).
Stale entries of dead processes in a valid file DVC removes by itself. `dvc.lock` is rewritten in place too: a
SIGKILL in that write leaves it cut (again found by the kill test: "dvc.lock validation failed ... expected a
dictionary"), and then every `dvc repro` stops. The cut file keeps the lock entries that are whole; the entry the
write was in (and any after it) is dropped, so DVC reruns those stages instead of trusting half an entry.

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


def heal_lockfile(repo: Path) -> str | None:
    """Keep the whole stage entries of a cut dvc.lock when no DVC process runs here (module doc); returns what was
    done, or None (no file, or one DVC's own schema accepts)."""
    import yaml
    from dvc.schema import COMPILED_LOCK_FILE_STAGE_SCHEMA, COMPILED_LOCKFILE_SCHEMA

    path = repo / "dvc.lock"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        COMPILED_LOCKFILE_SCHEMA(yaml.safe_load(text))
        return None
    except Exception:  # a YAML error or a voluptuous Invalid: either way the file is cut
        pass
    running = dvc_running_in(repo)
    if running:
        return f"{path}: invalid, but DVC processes {running} run here: left alone"
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
            COMPILED_LOCK_FILE_STAGE_SCHEMA(entry)
        except Exception:
            break  # the entry the write was cut in; DVC writes stages in order, so nothing after it is whole
        whole[name] = entry
    else:
        if whole:  # every parsed entry reads, so the cut is in the last one (a shortened list, a cut hash)
            whole.pop(next(reversed(whole)))
    healed = {"schema": data.get("schema", "2.0") if isinstance(data, dict) else "2.0", "stages": whole}
    tmp = path.with_name(path.name + ".heal")
    tmp.write_text(yaml.safe_dump(healed, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return (f"{path}: cut (a DVC process was killed while writing it); kept {len(whole)} whole stage entries of "
            f"{len(stages or {})}, DVC reruns the rest")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(argv[0] if argv else ".")
    for msg in (heal_rwlock(repo), heal_lockfile(repo)):
        if msg:
            print(f"note: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
