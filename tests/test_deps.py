"""DVC deps cannot go stale: every stage's import closure inside src/wordrec is covered by its dvc.yaml deps,
and the check fires on a dvc.yaml with a dep removed."""

import shutil
import subprocess
import sys

import yaml

from conftest import REPO
from wordrec.pipeline.deps import closure, uncovered


def test_every_stage_lists_what_it_imports():
    assert uncovered(REPO) == {}


def _copy_with(tmp_path, edit):
    """A minimal DVC project: this repo's dvc.yaml (edited), params.yaml, stages/ and src/ (for the closure)."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    for name in ("params.yaml",):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "stages", root / "stages")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    text = (REPO / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(edit(text))
    return root


def test_the_check_fires_on_a_removed_dep(tmp_path):
    # quantize gates with wordrec.pipeline.metrics: drop that dep, as the old hand-kept list did
    root = _copy_with(tmp_path, lambda t: _drop_in_stage(t, "quantize", "src/wordrec/pipeline/metrics.py"))
    missing = uncovered(root)
    assert missing == {"quantize": ["src/wordrec/pipeline/metrics.py"]}
    # and the command-line check exits non-zero, naming it
    p = subprocess.run([sys.executable, "-m", "wordrec.pipeline.deps", str(root)], capture_output=True, text=True)
    assert p.returncode == 1 and "quantize: imports 1 file(s) not in its deps: src/wordrec/pipeline/metrics.py" \
        in p.stdout


def test_lazy_and_string_imports_are_in_the_closure():
    files = {str(f.relative_to(REPO)) for f in closure(REPO / "stages" / "train.py", REPO / "src")}
    # train.py picks its trainer by framework from a string table: both are in the closure
    assert {"src/wordrec/models/torch_rec/train.py", "src/wordrec/models/paddle_rec/train.py"} <= files
    # function-level imports count too (export imports paddle's converter lazily)
    assert "src/wordrec/models/paddle_rec/export.py" in {
        str(f.relative_to(REPO)) for f in closure(REPO / "stages" / "export.py", REPO / "src")}


def _drop_in_stage(text: str, stage: str, dep: str) -> str:
    """dvc.yaml text with `dep` removed from `stage`'s deps only."""
    doc = yaml.safe_load(text)
    body = doc["stages"][stage]
    assert dep in body["deps"]
    body["deps"] = [d for d in body["deps"] if d != dep]
    return yaml.safe_dump(doc, sort_keys=False)
