"""The thin `main` every stage shares: parse paths + overrides, load params, call `run`, report errors.

    python stages/<name>.py --params params.yaml --<input> PATH ... --<output> PATH ... [key=value ...]

Paths come from dvc.yaml; parameters come from params.yaml (the composition of conf/), with optional
`key=value` overrides for ad-hoc runs. Errors in user input print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Mapping

from wordrec.pipeline.config import load_params
from wordrec.errors import WordrecError, one_line
from wordrec.io import out_of_space


def stage_main(
    run: Callable,
    *,
    doc: str | None,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    argv: list[str] | None = None,
) -> int:
    ap = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml", help="composed config (default: params.yaml)")
    for name, help_ in {**inputs, **outputs}.items():  # an input whose help starts "(optional)" may be left out
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, required=not help_.startswith("(optional)"),
                        help=help_)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args(argv)
    try:
        cfg = load_params(args.params, args.overrides)
        metrics = run(cfg, {k: getattr(args, k) for k in inputs}, {k: getattr(args, k) for k in outputs})
    except WordrecError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - only the machine's write failures are reported; the rest re-raised
        if not out_of_space(e):
            raise
        outs = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)}" for k in outputs)
        print(f"error: writing outputs ({outs}) failed: no space left (disk full, quota or file-size limit): "
              f"{one_line(e)}; nothing half-written was kept: free space and rerun", file=sys.stderr)
        return 2
    if metrics is not None:
        print(json.dumps(metrics, indent=2, sort_keys=True, default=str))
    return 0
