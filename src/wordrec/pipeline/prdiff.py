"""What a CI job posts on a pull request: DVC metric and param diffs against a base ref, as Markdown.

    wordrec-prdiff origin/main > pr-comment.md

Uses DVC's own `metrics diff --md` and `params diff --md` (nothing is recomputed: committed metrics files are
compared, which is why reports/*.json are committed with `cache: false`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def _dvc(args: list[str], cwd: str | None) -> str:
    p = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout.strip()


def render(base: str, target: str | None = None, cwd: str | None = None) -> str:
    rev = [base] + ([target] if target else [])
    metrics = _dvc(["metrics", "diff", "--md", "--all", *rev], cwd)
    params = _dvc(["params", "diff", "--md", *rev], cwd)
    against = f"`{base}`" + (f" → `{target}`" if target else " → workspace")
    return "\n".join([
        f"## Pipeline metrics ({against})", "", metrics or "_No metric changes._", "",
        "## Parameters", "", params or "_No parameter changes._", "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print DVC metrics/params diffs against BASE as Markdown.")
    ap.add_argument("base", help="git ref to compare against, e.g. origin/main")
    ap.add_argument("target", nargs="?", help="git ref to compare (default: the workspace)")
    a = ap.parse_args(argv)
    try:
        print(render(a.base, a.target))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
