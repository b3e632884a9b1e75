"""Training throughput alone and beside a busy core, before and after `threads: auto` + passive OpenMP waiting.

    python scripts/bench_threads.py [--data data/synth] [--steps 48] [--out reports/threads.json]

A benchmark, not a test (timings belong to the machine): runs the real `train` stage (default `crnn`, bf16,
batch 32) for --steps steps on data/synth in a temporary directory, once per setting x load, one at a time, and
reads images/s from the trainer's own curve (validation excluded). The busy core is one spinning Python
process, what a second job on a shared 2-core build box looks like.

Settings:
- before: `train.threads=2` (the old default) and libgomp's default wait (GOMP_SPINCOUNT=300000, ~3 ms of
  spinning at every barrier before sleeping; set explicitly because wordrec now asks for the passive policy);
- after: `train.threads=auto` and OMP_WAIT_POLICY=PASSIVE, the defaults `wordrec` sets;
- one_thread: `train.threads=1`, for reference (what a user who knows the box is shared would set).
`auto` counts the cores the process may use (affinity, cgroup quota), not the idle ones: a count that followed
the load would change the arithmetic (and the bytes) of a training run, and a resumed run would not resume.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "before": {"threads": "2", "env": {"GOMP_SPINCOUNT": "300000"}},
    "after": {"threads": "auto", "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "one_thread": {"threads": "1", "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
}


def train_rate(data: Path, steps: int, setting: dict, batch: int = 32) -> float:
    """Images/s of `steps` steps of the train stage (the last curve row), in a throwaway directory."""
    from wordrec.data.lmdb_io import LmdbDataset

    n_train = len(LmdbDataset(data / "train"))
    with tempfile.TemporaryDirectory(prefix="wordrec-threads-") as tmp:
        t = Path(tmp)
        epochs = steps * batch / n_train
        cmd = [sys.executable, str(ROOT / "stages/train.py"), "--params", str(ROOT / "params.yaml"),
               "--model", "crnn", "--data", str(data), "--out", str(t / "out"), "--ckpt", str(t / "ckpt"),
               "--plots", str(t / "plots"), f"train.threads={setting['threads']}",
               f"train.models.crnn.batch_size={batch}", f"train.models.crnn.epochs={epochs}",
               f"train.models.crnn.val_every={steps}", "train.models.crnn.val_max=32"]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(setting["env"])
        subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        curve = json.loads((t / "out" / "meta.json").read_text())["train"]
        return float(curve["images_per_second"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data/synth")
    ap.add_argument("--steps", type=int, default=96)  # 96 x 32 images: ~25 s unloaded, noise ~3 %
    ap.add_argument("--out", type=Path, default=ROOT / "reports/threads.json")
    a = ap.parse_args(argv)
    if not (a.data / "train" / "data.mdb").is_file():
        print(f"error: {a.data / 'train'}: no training LMDB (run `make repro` first)", file=sys.stderr)
        return 2
    from wordrec.threads import available_cores

    res = {"cores_available": available_cores(), "steps": a.steps, "model": "crnn (default profile)"}
    runs = [(s, load) for s in SETTINGS for load in ("idle", "one_core_busy")]
    for name, load in tqdm(runs, desc="bench threads", unit="run"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            time.sleep(0.5 if busy else 0)
            res.setdefault(name, {})[load] = round(train_rate(a.data, a.steps, SETTINGS[name]), 1)
        finally:
            if busy:
                busy.kill()
                busy.wait()
    for name in SETTINGS:
        r = res[name]
        r["busy_over_idle"] = round(r["one_core_busy"] / r["idle"], 3)
        r["busy_over_before_idle"] = round(r["one_core_busy"] / res["before"]["idle"], 3)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
