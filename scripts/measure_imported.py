"""Word accuracy and batch-1 latency of the imported PaddleOCR recognizers (wordrec.models.imported), one thread.

Reads build/wheels/ (scripts/fetch_wheels.sh) and labelled crop folders (`labels.txt`: `images/x.png<TAB>word`);
prints one JSON line per (model, charset, folder): the pipeline's own Recognizer and accuracy rule
(wordrec.pipeline.metrics.score, fractions). Not part of the DAG: a side measurement for docs/imported_models.md.
Usage: python scripts/measure_imported.py ppocrv3 ../shared/data/iiit5k_test_dev ../shared/data/iiit5k_train
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

from wordrec.infer.recognizer import load
from wordrec.models import imported
from wordrec.pipeline.metrics import score

WHEELS = Path(__file__).resolve().parents[1] / "build" / "wheels"


def load_folder(folder: Path) -> tuple[list, list[str]]:
    """RGB crops (the Recognizer reverses them for BGR-trained weights) and their labels."""
    pairs = [line.split("\t", 1) for line in (folder / "labels.txt").read_text().splitlines() if line.strip()]
    return [cv2.cvtColor(cv2.imread(str(folder / p)), cv2.COLOR_BGR2RGB) for p, _ in pairs], [w for _, w in pairs]


def latency_ms(rec, images, n: int = 50) -> float:
    """Median wall time of one image (batch 1) over n runs after a warm-up."""
    rec.predict(images[:1])
    times = []
    for i in range(n):
        t = time.perf_counter()
        rec.predict([images[i % len(images)]])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(name: str, folders: list[str]) -> None:
    data = {f: load_folder(Path(f)) for f in folders}
    for spec in ("alnum_lower", "en"):
        with tempfile.TemporaryDirectory() as tmp:
            meta = imported.import_model(name, WHEELS, Path(tmp) / name, spec)
            rec = load(Path(tmp) / name, threads=1)
            for folder, (images, labels) in data.items():
                m = score([t for t, _ in rec.predict(images, 32)], labels, rec.charset)
                print(json.dumps({"model": name, "charset": spec, "data": Path(folder).name, "n": m["n"],
                                  "accuracy_alnum_ci": m["accuracy_alnum_ci"],
                                  "params": meta.section("source")["params"],
                                  "latency_ms": round(latency_ms(rec, images), 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
