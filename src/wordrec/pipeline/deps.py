"""DVC deps that cannot go stale: each stage script's import closure inside src/wordrec must be covered by the
stage's `deps` in dvc.yaml.

DVC reruns a stage only when a listed dep changes; a library module a stage imports but does not list lets
`dvc repro` call stale results fresh. The closure is computed statically (ast): every `import wordrec...` /
`from wordrec... import ...` anywhere in a module (function-level lazy imports included), plus string
references such as "wordrec.models.torch_rec.train" (lazy loaders), and the package `__init__.py` files Python
runs on the way. Stages come from DVC's own parser (foreach/matrix expanded), so the check sees exactly what
`dvc repro` sees.

    python -m wordrec.pipeline.deps          # exit 1 and list every uncovered module per stage
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

_MODULE_STR = re.compile(r"^(wordrec(?:\.\w+)+)(?::\w+)?$")
_SCRIPT = re.compile(r"\bpython\s+(\S+\.py)\b")


def module_file(name: str, src: Path) -> Path | None:
    """src/wordrec/a/b.py or src/wordrec/a/b/__init__.py for `wordrec.a.b` (None if neither exists)."""
    base = src.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _referenced(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _MODULE_STR.match(node.value)):
            names.add(m.group(1))
    return {n for n in names if n == "wordrec" or n.startswith("wordrec.")}


def closure(script: Path, src: Path) -> set[Path]:
    """Files under `src` (the folder holding the `wordrec` package) that running `script` may execute."""
    seen: set[Path] = set()
    todo = [Path(script)]
    while todo:
        f = todo.pop()
        for name in _referenced(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the packages Python imports on the way, then the module
                mf = module_file(".".join(parts[:i]), src)
                if mf is not None and mf not in seen:
                    seen.add(mf)
                    todo.append(mf)
    return seen


def stage_deps(root: Path) -> dict[str, tuple[str, list[str]]]:
    """{stage name: (cmd, [dep paths relative to root])} as DVC itself expands dvc.yaml."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        out = {}
        for st in repo.index.stages:
            cmd = st.cmd if isinstance(st.cmd, str) else " ".join(st.cmd)
            out[st.name] = (cmd, [str(Path(d.def_path)) for d in st.deps])
        return out


def uncovered(root: Path) -> dict[str, list[str]]:
    """{stage: [imported src files its deps do not cover]} (empty when every stage is covered)."""
    root = Path(root).resolve()
    src = root / "src"
    missing = {}
    for name, (cmd, deps) in stage_deps(root).items():
        m = _SCRIPT.search(cmd)
        if not m:
            continue
        script = root / m.group(1)
        need = {script.relative_to(root)} | {f.relative_to(root) for f in closure(script, src)}
        covered = [Path(d) for d in deps]
        lacking = sorted(str(f) for f in need if not any(f == d or d in f.parents for d in covered))
        if lacking:
            missing[name] = lacking
    return missing


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path.cwd()
    missing = uncovered(root)
    for stage, files in missing.items():
        print(f"{stage}: imports {len(files)} file(s) not in its deps: {', '.join(files)}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
