"""A corrupt DVC rwlock (DVC killed mid-write) is removed when no DVC runs; a valid one is kept."""

import subprocess
import sys

from wordrec.pipeline.dvcstate import heal_rwlock


def test_corrupt_rwlock_is_removed_valid_one_kept(tmp_path):
    lock = tmp_path / ".dvc" / "tmp" / "rwlock"
    assert heal_rwlock(tmp_path) is None  # nothing there
    lock.parent.mkdir(parents=True)
    lock.write_text('{"read": {}, "write": {}}')
    assert heal_rwlock(tmp_path) is None and lock.exists()
    lock.write_text("")  # what a SIGKILL during DVC's in-place rewrite leaves
    assert "removed" in heal_rwlock(tmp_path) and not lock.exists()
    lock.write_text('{"read": {"da')
    out = subprocess.run([sys.executable, "-m", "wordrec.pipeline.dvcstate", str(tmp_path)], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "corrupt" in out.stderr and not lock.exists()


def test_a_cut_dvc_lock_keeps_its_whole_entries(tmp_path):
    """dvc.lock cut at any point (DVC rewrites it in place; SIGKILL mid-write): healed to the stage entries that are
    whole, each equal to the original's, in a file DVC's own schema accepts; a whole file is left alone."""
    import random
    from pathlib import Path

    import yaml
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA

    from wordrec.pipeline.dvcstate import heal_lockfile

    text = (Path(__file__).parents[1] / "dvc.lock").read_text()
    full = yaml.safe_load(text)["stages"]
    lock = tmp_path / "dvc.lock"
    lock.write_text(text)
    assert heal_lockfile(tmp_path) is None and lock.read_text() == text
    rng = random.Random(0)
    for cut in [10, len(text) // 2, len(text) - 40] + [rng.randrange(len(text)) for _ in range(8)]:
        lock.write_text(text[:cut])
        msg = heal_lockfile(tmp_path)
        healed = yaml.safe_load(lock.read_text())
        COMPILED_LOCKFILE_SCHEMA(healed)  # DVC can read it either way
        if msg is None:  # a cut that still reads (e.g. inside a hash): left to DVC, which sees a changed stage
            assert lock.read_text() == text[:cut]
            continue
        assert "cut" in msg
        kept = healed["stages"]
        assert list(kept) == list(full)[:len(kept)] and all(kept[k] == full[k] for k in kept), cut
        assert len(kept) < len(full)


def test_a_cut_dvc_lock_is_mended_from_the_last_whole_copy(tmp_path):
    """With the copy `python -m wordrec.pipeline.dvcstate` saves before each run, a lock cut anywhere (mid-line or on
    a line boundary, where the rest still reads) gets back every entry; whole entries of the cut file win over the
    copy's (they are newer); stages dvc.yaml no longer declares are not brought back."""
    import random
    import shutil
    from pathlib import Path

    import yaml

    from wordrec.pipeline.dvcstate import WHOLE_COPY, heal_lockfile, main

    root = Path(__file__).parents[1]
    text = (root / "dvc.lock").read_text()
    full = yaml.safe_load(text)["stages"]
    shutil.copyfile(root / "dvc.yaml", tmp_path / "dvc.yaml")
    lock = tmp_path / "dvc.lock"
    lock.write_text(text)
    assert main([str(tmp_path)]) == 0 and (tmp_path / WHOLE_COPY).read_text() == text  # the copy is saved
    rng = random.Random(1)
    line_ends = [i + 1 for i, c in enumerate(text) if c == "\n"]
    for cut in [10, len(text) // 2] + [rng.randrange(len(text)) for _ in range(6)] + rng.sample(line_ends, 6):
        lock.write_text(text[:cut])
        msg = heal_lockfile(tmp_path)
        healed = yaml.safe_load(lock.read_text())["stages"]
        if msg is None:  # a line-boundary cut inside the last entry: every stage is there, DVC reruns that one
            assert list(healed) == list(full) and text[:cut].endswith("\n"), cut
            continue
        assert healed == full, cut
    # newer whole entries win over the copy's; the copy's entries of stages dvc.yaml dropped stay dropped
    old = {k: dict(v) for k, v in full.items()}
    first, last = list(full)[0], list(full)[-1]
    old[first] = {**old[first], "cmd": "an older command"}
    old["gone@x"] = old[last]
    (tmp_path / WHOLE_COPY).write_text(yaml.safe_dump({"schema": "2.0", "stages": old}, sort_keys=False))
    lock.write_text(text[:len(text) // 2])
    assert "cut" in heal_lockfile(tmp_path)
    healed = yaml.safe_load(lock.read_text())["stages"]
    assert healed[first] == full[first] and "gone@x" not in healed and set(healed) == set(full)
