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
