"""`threads: auto` and the OpenMP wait policy (issue #15)."""

import os
import subprocess
import sys

import pytest

from wordrec.errors import ConfigError
from wordrec.pipeline.config import compose, model_section, section
from wordrec.threads import _cgroup_quota, available_cores, resolve, valid


def test_auto_is_the_affinity_set():
    assert resolve("auto") == available_cores() == min(len(os.sched_getaffinity(0)),
                                                       _cgroup_quota() or 10**6)
    assert resolve(3) == 3


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "two", None, "4"])
def test_invalid_thread_counts(value):
    assert not valid(value)
    with pytest.raises(ValueError):
        resolve(value)


def test_a_process_pinned_to_one_core_resolves_auto_to_one():
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from wordrec.pipeline.config import compose, section; print(section(compose([]), 'train').threads)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("text, cores", [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1),
                                         ("400000 100000", 4), ("garbage", None), ("", None)])
def test_cgroup_quota(tmp_path, text, cores):
    f = tmp_path / "cpu.max"
    f.write_text(text)
    assert _cgroup_quota(f) == cores
    assert _cgroup_quota(tmp_path / "missing") is None


def test_sections_resolve_auto_once_to_an_int():
    cfg = compose(["train.threads=auto", "evaluate.threads=auto", "train.models.svtr.threads=auto"])
    n = available_cores()
    assert section(cfg, "train").threads == n and section(cfg, "evaluate").threads == n
    assert model_section(cfg, "svtr").threads == n
    assert section(compose(["train.threads=1"]), "train").threads == 1
    with pytest.raises(ConfigError, match=r"params.yaml:train.models.svtr.threads: 0: expected"):
        model_section(compose(["train.models.svtr.threads=0"]), "svtr")


@pytest.mark.parametrize("env, want", [({}, "PASSIVE"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")])
def test_wordrec_asks_openmp_to_sleep_unless_the_user_chose(env, want):
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, wordrec; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**base, **env})
    assert out.stdout.strip() == want
