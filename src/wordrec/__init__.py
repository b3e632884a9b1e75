"""wordrec: word-image recognizers from synthetic data to a Cortex-M55 (shared library for the DVC stages)."""

import os

__version__ = "0.1.0"

# OpenMP runtimes (torch's libgomp, Paddle's) read their wait policy once, when they load, so it is set here,
# before any of them can: a thread that finished its share sleeps at the barrier instead of spinning ~3 ms on a
# core another job needs. Measured on the 2-core box (scripts/bench_threads.py, README): with one core busy,
# crnn training kept a fraction of its unloaded speed that spinning destroyed. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
