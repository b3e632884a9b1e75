"""The PR diff command on a throw-away git + DVC repo with two commits."""

import json
import subprocess
import sys

import pytest

from wordrec.pipeline.prdiff import main, render


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: 'true'\n    params: [train]\n    metrics:\n      - eval.json:\n          cache: false\n"
    )

    def commit(lr, acc, msg):
        (tmp_path / "params.yaml").write_text(f"train:\n  lr: {lr}\n  epochs: 3\n")
        (tmp_path / "eval.json").write_text(json.dumps({"crnn": {"synth_test": {"accuracy": acc}}}))
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-qm", msg)

    commit(0.001, 0.81, "base")
    commit(0.0003, 0.87, "lower lr")
    return tmp_path


def test_diff_between_two_commits(repo):
    md = render("HEAD~1", "HEAD", cwd=str(repo))
    assert "| Path" in md and "crnn.synth_test.accuracy" in md
    assert "0.81" in md and "0.87" in md and "0.06" in md  # old, new, change
    assert "train.lr" in md and "0.0003" in md
    assert "epochs" not in md  # unchanged params stay out


def test_cli_bad_ref_is_a_clear_error(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    assert main(["no-such-ref"]) == 2
    assert "error:" in capsys.readouterr().err
