"""pretrained: import PaddleOCR's pretrained recognizers and text detector from the sha256-pinned wheels.

Reads WHEELS (build/wheels: fetched and hash-checked at set-up time by scripts/fetch_wheels.sh; nothing downloads
here) and params `pretrained`; writes OUT/<name>/{model.onnx, meta.json} for each of `pretrained.models` (the
classifier cut to `pretrained.charset`, framework onnx: every later stage loads it like a trained model),
DET_OUT/<name>/{model.onnx, meta.json} for each of `pretrained.detectors` (the detector as the wheel ships it;
meta.json kind "detector" with origin, licence and sha256s: `wordrec.ocr.detect.Detector` and the `pages` stage
read it), PADDLE_OUT/<name>/{best.pdparams, meta.json} for each of `pretrained.paddle` (the same weights in our
Paddle `svtr` architecture, neck svtr, head cut to `pretrained.charset`: what `train` fine-tunes from with
`init: <name>`; framework paddle, meta.json `source` with origin and licence) and REPORT
(reports/pretrained.json: {recognizer name: {arch, params, source_classes, origin, licence}};
the detectors' facts are in their meta.json, so every entry of the report stays a recognizer).
"""

from pathlib import Path

from wordrec.errors import ConfigError
from wordrec.io import atomic_dir, write_json
from wordrec.models.imported import detector_source, import_detector, import_model, source
from wordrec.models.paddle_rec.ppocr_import import IMPORTABLE
from wordrec.pipeline.config import section
from wordrec.pipeline.stage import stage_main


def run(cfg, inputs, outputs):
    c = section(cfg, "pretrained")
    for name in c.models:
        source(name)  # an unknown name fails before any work
    for name in c.detectors:
        detector_source(name)
    for name in c.paddle:
        if name not in c.models:
            raise ConfigError(f"params pretrained.paddle: {name!r} is not in pretrained.models {list(c.models)}")
        if name not in IMPORTABLE:
            raise ConfigError(f"params pretrained.paddle: {name!r}: only {list(IMPORTABLE)} have our Paddle "
                              "architecture")
    report = {}
    with atomic_dir(outputs["out"]) as tmp, atomic_dir(outputs["det_out"]) as det_tmp, \
            atomic_dir(outputs["paddle_out"]) as paddle_tmp:
        for name in c.models:
            meta = import_model(name, Path(inputs["wheels"]), tmp / name, c.charset)
            s = meta.section("source")
            report[name] = {"arch": meta.arch, "charset_size": len(meta.charset.chars), **s}
            print(f"pretrained {name}: {report[name]}")
        for name in c.detectors:
            det = import_detector(name, Path(inputs["wheels"]), det_tmp / name)
            print(f"pretrained detector {name}: {det['source']}")
        if c.paddle:
            from wordrec.models.paddle_rec.ppocr_import import write_pretrained
        for name in c.paddle:
            pmeta = write_pretrained(name, Path(inputs["wheels"]), paddle_tmp / name, c.charset)
            print(f"pretrained paddle {name}: {pmeta.arch}, {pmeta.section('source')['tensors']} tensors")
    write_json(outputs["report"], report)
    return report


if __name__ == "__main__":
    raise SystemExit(stage_main(
        run, doc=__doc__,
        inputs={"wheels": "folder of the pinned wheels (build/wheels)"},
        outputs={"out": "recognizer model dirs (models/pretrained)", "det_out": "detector dirs (models/detect)",
                 "paddle_out": "Paddle weight dirs (models/pretrained_paddle)",
                 "report": "metrics JSON"},
    ))
