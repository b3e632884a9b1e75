"""Config composition: every group option composes, params.yaml equals the default composition."""

import re
from pathlib import Path

import pytest

from conftest import REPO
from wordrec.pipeline.config import compose, dump, load_params, main as compose_main
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


# --- the one schema (wordrec.pipeline.schema): every stage validates its section through it ------------------
from wordrec.pipeline.config import model_section, section  # noqa: E402
from wordrec.pipeline.schema import SECTIONS  # noqa: E402


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
def test_every_stage_section_validates_under_every_profile(profile):
    cfg = compose([f"profile={profile}"])
    assert set(SECTIONS) == {k for k in cfg if k != "profile_name"}, "a params section without a schema"
    for name in SECTIONS:
        section(cfg, name)
    for model in cfg.train.models:
        model_section(cfg, model)


@pytest.mark.parametrize("override, message", [
    ("synth.n_train=abc", r"params.yaml:synth.n_train: Value 'abc' .* could not be converted to Integer"),
    ("synth.n_train=-5", r"params.yaml:synth.n_train: -5: expected > 0"),
    ("synth.fonts.dirs=[]", r"params.yaml:synth.fonts.dirs: empty"),
    ("++synth.n_trian=3", r"params.yaml:synth.n_trian: Key 'n_trian' not in 'Synth'"),
    ("bench.threads=0", r"params.yaml:bench.threads: 0: expected .auto. .* or an integer > 0"),
    ("train.threads=two", r"params.yaml:train.threads: .two.: expected .auto."),
    ("quantize.max_accuracy_drop=0.5", None),
    ("quantize.max_accuracy_drop=5", r"params.yaml:quantize.max_accuracy_drop: 5.0: expected a fraction"),
    ("mcu.runner=fpga", r"params.yaml:mcu.runner: 'fpga': expected one of"),
])
def test_bad_values_name_the_key(override, message):
    name = override.lstrip("+").split(".")[0]
    cfg = compose(["profile=smoke", override])
    if message is None:
        section(cfg, name)
        return
    with pytest.raises(ConfigError, match=message):
        section(cfg, name)


def test_values_every_profile_sets_are_missing_in_the_group_defaults():
    """`???` in conf/<stage>/default.yaml: a profile that forgets one fails loudly instead of inheriting a
    default nobody measured."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(REPO / "conf" / "synth" / "default.yaml")
    assert OmegaConf.is_missing(raw, "n_train")
    cfg = compose(["profile=smoke", "synth.n_train=???"])
    with pytest.raises(ConfigError, match=r"params.yaml:synth.n_train: .*missing mandatory value"):
        section(cfg, "synth")


def test_model_sections_are_checked_by_framework():
    cfg = compose(["profile=smoke", "train.models.crnn.input.height=40"])
    with pytest.raises(ConfigError, match=r"train.models.crnn.input.height: 40: the CRNN trunk needs a multiple"):
        model_section(cfg, "crnn")
    cfg = compose(["profile=smoke", "train.models.svtr.input.width=4"])
    with pytest.raises(ConfigError, match=r"train.models.svtr.input.width: 4: too small"):
        model_section(cfg, "svtr")
    with pytest.raises(ConfigError, match="no model 'nope'"):
        model_section(cfg, "nope")


@pytest.mark.parametrize("model, overrides, message", [
    ("svtr", ["freeze_backbone=false", "train_last_blocks=2"], r"train_last_blocks: 2: applies with freeze_backbone"),
    ("svtr", ["train_last_blocks=-1"], r"train_last_blocks: -1: expected >= 0"),
    ("svtr3", ["lines_fraction=1.0"], r"lines_fraction: 1.0: expected < 1"),
    ("svtr3", ["lines_fraction=-0.1"], r"lines_fraction: -0.1: expected a fraction"),
    ("svtr3", ["select_max_word_drop=2"], r"select_max_word_drop: 2.0: expected a fraction"),
])
def test_paddle_model_range_errors_name_the_key(model, overrides, message):
    cfg = compose(["profile=smoke", *(f"train.models.{model}.{o}" for o in overrides)])
    with pytest.raises(ConfigError, match=message):
        model_section(cfg, model)
