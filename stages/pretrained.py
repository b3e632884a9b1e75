"""pretrained: import PaddleOCR's pretrained recognizers from the sha256-pinned wheels as model dirs.

Reads WHEELS (build/wheels: fetched and hash-checked at set-up time by scripts/fetch_wheels.sh; nothing downloads
here) and params `pretrained`; writes OUT/<name>/{model.onnx, meta.json} for each of `pretrained.models` (the
classifier cut to `pretrained.charset`, framework onnx: every later stage loads it like a trained model) and
REPORT (reports/pretrained.json: {name: {arch, params, source_classes, origin, licence}}).
"""

from pathlib import Path

from wordrec.io import atomic_dir, write_json
from wordrec.models.imported import import_model, source
from wordrec.pipeline.config import section
from wordrec.pipeline.stage import stage_main


def run(cfg, inputs, outputs):
    c = section(cfg, "pretrained")
    for name in c.models:
        source(name)  # an unknown name fails before any work
    report = {}
    with atomic_dir(outputs["out"]) as tmp:
        for name in c.models:
            meta = import_model(name, Path(inputs["wheels"]), tmp / name, c.charset)
            s = meta.section("source")
            report[name] = {"arch": meta.arch, "charset_size": len(meta.charset.chars), **s}
            print(f"pretrained {name}: {report[name]}")
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"wheels": "folder of the pinned wheels (build/wheels)"},
        outputs={"out": "model dirs (models/pretrained)", "report": "metrics JSON"},
    ))
