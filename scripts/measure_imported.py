"""Word accuracy and latency of the imported PaddleOCR recognizers (wordrec.imported), one thread, onnxruntime.

Reads build/wheels/ (scripts/fetch_wheels.sh) and labelled crop folders (`labels.txt`: `images/x.png<TAB>word`);
prints one JSON line per (model, charset, folder). Accuracy compares lowercase alphanumerics only.
Usage: python scripts/measure_imported.py ppocrv3 /work/shared/data/iiit5k_test_dev /work/shared/data/iiit5k_train
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from wordrec import imported
from wordrec.charset import Charset, ctc_greedy_decode
from wordrec.preprocess import prepare_batch

WHEELS = Path(__file__).resolve().parents[1] / "build" / "wheels"


def alnum(text: str) -> str:
    return re.sub("[^a-z0-9]", "", text.lower())


def load_folder(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """BGR crops as cv2 decodes them (what the weights were trained on) and their labels."""
    pairs = [line.split("\t", 1) for line in (folder / "labels.txt").read_text().splitlines() if line.strip()]
    return [cv2.imread(str(folder / p)) for p, _ in pairs], [w for _, w in pairs]


def session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def latency_ms(sess, x: np.ndarray, n: int = 50) -> float:
    """Median wall time of one image (batch 1) over n runs after a warm-up."""
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:1]})
    times = []
    for i in range(n):
        t = time.perf_counter()
        sess.run(None, {name: x[i % len(x)][None]})
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main(name: str, folders: list[str]) -> None:
    src = imported.SOURCES[name]
    data = {f: load_folder(Path(f)) for f in folders}
    for spec in ("alnum_lower", "en"):
        charset = Charset.from_spec(spec)
        model, meta = imported.build_model(src, WHEELS, charset)
        sess = session(model)
        for folder, (images, labels) in data.items():
            x = prepare_batch(images, src.channels, src.height, src.width, keep_ratio=True)
            probs = np.concatenate([sess.run(None, {"x": x[i:i + 32]})[0] for i in range(0, len(x), 32)])
            texts = [ctc_greedy_decode(p.argmax(-1), charset) for p in probs]
            correct = sum(alnum(t) == alnum(w) for t, w in zip(texts, labels))
            print(json.dumps({"model": name, "charset": spec, "data": Path(folder).name, "n": len(labels),
                              "accuracy": round(100 * correct / len(labels), 2), "params": meta["params"],
                              "latency_ms": round(latency_ms(sess, x), 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
