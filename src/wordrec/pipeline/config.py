"""Config composition (Hydra) and params.yaml handling shared by every stage.

`conf/` is the source of truth; `params.yaml` is its composition, written with DVC's own dumper so that
`dvc exp run` (which recomposes) and `wordrec-compose` produce the same bytes.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from wordrec.errors import ConfigError, one_line

REPO = Path(__file__).resolve().parents[3]


def conf_dir() -> Path:
    # DVC runs stages from the repo root; fall back to the source checkout for the installed package.
    here = Path.cwd() / "conf"
    return here if (here / "config.yaml").is_file() else REPO / "conf"


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose conf/ with Hydra overrides, exactly as DVC does for `dvc exp run`."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(conf_dir()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"conf/: cannot compose with overrides {list(overrides)}: {e}") from e
    OmegaConf.resolve(cfg)
    return cfg


def dump(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def write_params(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> None:
    from dvc.utils.hydra import compose_and_dump

    compose(overrides)  # validate first so a bad override leaves params.yaml untouched
    # Keep the .yaml suffix: DVC picks its dumper by suffix, and only the .yaml one writes `null` as to_yaml does.
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp{Path(path).suffix}")
    compose_and_dump(tmp, str(conf_dir()), None, "config", str(conf_dir() / ".."), list(overrides))
    tmp.replace(path)


def load_params(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Load a composed params file and apply `key=value` overrides; unknown keys are an error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run `wordrec-compose` or `dvc exp run`)")
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a valid params file (YAML: {one_line(e)})") from None
    if not isinstance(cfg, DictConfig) or not cfg:
        got = "an empty document" if isinstance(cfg, DictConfig) else f"a {type(cfg).__name__}"
        raise ConfigError(f"{path}: not a valid params file (expected a mapping of stage sections, got {got})")
    OmegaConf.set_struct(cfg, True)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key=value")
        key, value = ov.split("=", 1)
        try:
            OmegaConf.update(cfg, key.lstrip("+"), OmegaConf.from_dotlist([f"v={value}"]).v, merge=True)
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise ConfigError(f"{path}: unknown config key {key!r} in override {ov!r}") from e
    return cfg


def validated(node, schema, where: str) -> DictConfig:
    """`node` merged onto the schema dataclass: unknown keys, wrong types, missing (`???`) values and out-of-range
    values are a ConfigError naming `where.<key>`; returns the typed DictConfig the stage reads."""
    from omegaconf.errors import OmegaConfBaseException

    from wordrec.pipeline.schema import RangeError, check_tree

    if node is None:
        raise ConfigError(f"{where}: section missing (run `wordrec-compose`)")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        check_tree(OmegaConf.to_object(merged), where)
    except RangeError as e:
        raise ConfigError(f"{e.key}: {e}") from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        msg = one_line(Exception(getattr(e, "msg", e)))
        raise ConfigError(f"{where}.{key}: {msg}" if key else f"{where}: {msg}") from None
    resolve_threads(merged)
    OmegaConf.set_readonly(merged, True)  # a stage reads its parameters, it never edits them
    return merged


def resolve_threads(node: DictConfig) -> None:
    """Every `threads: auto` in a validated section becomes the cores available to this process, once, here:
    stages, checkpoint hashes and meta.json then see the count that actually ran."""
    from wordrec.threads import AUTO, available_cores

    for key in node:
        value = node[key]
        if isinstance(value, DictConfig):
            resolve_threads(value)
        elif key == "threads" and value == AUTO:
            node[key] = available_cores()


def section(cfg: DictConfig, name: str) -> DictConfig:
    """params.yaml:<name>, validated against its schema (wordrec.pipeline.schema.SECTIONS)."""
    from wordrec.pipeline.schema import SECTIONS

    return validated(cfg.get(name), SECTIONS[name], f"params.yaml:{name}")


def model_section(cfg: DictConfig, name: str) -> DictConfig:
    """params.yaml:train.models.<name>, validated against its framework's schema."""
    from wordrec.pipeline.schema import MODEL_SCHEMAS

    models = section(cfg, "train").models
    if name not in models:
        raise ConfigError(f"params.yaml:train.models: no model {name!r} (have {sorted(models)})")
    fw = models[name].get("framework")
    if fw not in MODEL_SCHEMAS:
        raise ConfigError(f"params.yaml:train.models.{name}.framework: {fw!r}, expected one of "
                          f"{sorted(MODEL_SCHEMAS)}")
    return validated(models[name], MODEL_SCHEMAS[fw], f"params.yaml:train.models.{name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compose conf/ into params.yaml (what `dvc exp run` does).")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=smoke synth.n_train=500")
    ap.add_argument("--out", default="params.yaml")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out differs from the composition")
    a = ap.parse_args(argv)
    try:
        want = dump(compose(a.overrides))
    except ConfigError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    out = Path(a.out)
    if a.check:
        have = out.read_text() if out.exists() else ""
        if have != want:
            sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), str(out), "conf/"))
            print(f"{out} is stale: run `wordrec-compose` (or `dvc exp run`)", file=sys.stderr)
            return 1
        return 0
    write_params(out, a.overrides)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
