"""Thread counts that fit the machine the process actually runs on (`threads: auto`, issue #15).

`auto` = the cores this process may use: its CPU affinity set (taskset, `docker --cpuset-cpus`, Slurm) capped by
a cgroup v2 CPU quota (`docker --cpus`, Kubernetes limits), not the host's core count, which oversubscribes a
container and makes every OpenMP barrier wait on a descheduled thread. Explicit integers are kept as given.
The OpenMP wait policy that goes with it is set in `wordrec/__init__.py` (it must precede loading libgomp).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

AUTO = "auto"


def _cgroup_quota(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """Cores allowed by a cgroup v2 quota (`<quota> <period>` in microseconds; `max` = unlimited)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """Cores this process may run on: its affinity set, capped by a cgroup quota when there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, quota) if quota else n)


def valid(value) -> bool:
    """`auto` or a positive integer (booleans are not thread counts)."""
    if value == AUTO:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def resolve(value) -> int:
    """The thread count to use for a `threads` parameter: `auto` -> available_cores(), else the integer."""
    if value == AUTO:
        return available_cores()
    if not valid(value):
        raise ValueError(f"{value!r}: expected 'auto' or a positive integer")
    return int(value)
