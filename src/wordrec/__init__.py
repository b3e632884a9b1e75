"""wordrec: word-image recognizers from synthetic data to a Cortex-M55 (shared library for the DVC stages)."""

import os

__version__ = "0.1.0"

# OpenMP runtimes (torch's libgomp, Paddle's) read their wait policy once, when they load, so it is set here,
# before any of them can: a thread that finished its share sleeps at the barrier instead of spinning ~3 ms on a
# core another job needs. Measured on the 2-core box (scripts/bench_threads.py, reports/threads.json): crnn
# training beside one busy core went from 43 to 60 images/s; alone it costs 12-21 % (137 -> 108-120 images/s),
# the price of waking threads. A dedicated box can set OMP_WAIT_POLICY=ACTIVE: a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
