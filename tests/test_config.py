"""Config composition: every group option composes, params.yaml equals the default composition."""

import re
from pathlib import Path

import pytest

from conftest import REPO
from wordrec.config import compose, dump, load_params, main as compose_main
from wordrec.errors import ConfigError

GROUPS = sorted(d for d in (REPO / "conf").iterdir() if d.is_dir() and not d.name.startswith((".", "hydra")))
OPTIONS = [(g.name, f.stem) for g in GROUPS for f in sorted(g.glob("*.yaml"))]
PROFILES = sorted(f.stem for f in (REPO / "conf" / "profile").glob("*.yaml"))


def test_profiles_exist():
    assert {"smoke", "default", "full"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_under_every_profile(group, option, profile):
    cfg = compose([f"{group}={option}", f"profile={profile}"] if group != "profile" else [f"profile={option}"])
    assert cfg.profile_name == (option if group == "profile" else profile)
    for g, _ in OPTIONS:
        if g != "profile":
            assert g in cfg, f"group {g} missing from the composition"


def test_params_yaml_equals_the_default_composition():
    assert (REPO / "params.yaml").read_text() == dump(compose([])), "run `wordrec-compose` and commit params.yaml"
    assert compose_main(["--check"]) == 0


def test_profiles_scale_sizes():
    smoke, default = compose(["profile=smoke"]), compose([])
    assert smoke.synth.n_train < default.synth.n_train


def test_unknown_override_key_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="n_trian"):
        compose(["synth.n_trian=3"])
    p = tmp_path / "params.yaml"
    p.write_text(dump(compose([])))
    with pytest.raises(ConfigError, match=r"unknown config key 'synth.n_trian'"):
        load_params(p, ["synth.n_trian=3"])
    assert load_params(p, ["synth.n_train=3"]).synth.n_train == 3


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_compose_check_detects_a_stale_file(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    assert compose_main(["--out", str(p)]) == 0
    assert compose_main(["--out", str(p), "--check"]) == 0
    p.write_text(re.sub(r"n_train: \d+", "n_train: 5", p.read_text(), count=1))
    assert compose_main(["--out", str(p), "--check"]) == 1
    assert compose_main(["--out", str(p), "nosuchgroup=x"]) == 2
    assert "n_train: 5" in p.read_text()  # a bad override leaves the file untouched
