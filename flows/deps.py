"""The code each DVC stage runs, found from its imports: ``python -m flows deps [--check]``.

A stage's command is ``exec python -m flows <stage>``. Its code is ``flows/__main__.py``, the flow
module that holds the stage's flow, the stage's module ``augment/stages/<stage>.py`` (the flow
imports it by name when it runs), and every module of this repository that any of those imports,
transitively. Imports are read from the source (``ast``), those inside functions included, so a
module counts with everything it could import; importing a submodule also runs its packages'
``__init__.py``, which count too.

``dvc.yaml`` lists these files as each stage's code deps; ``--check`` (and a test) fails when
the two differ, so a code change that can alter an output always reruns its stage.
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import cache
from pathlib import Path

from augment.stages import STAGES
from flows import FLOW_MODULES

ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    """The repository file of module ``name`` (``pkg/__init__.py`` for a package), or None."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text())


def _is_package(name: str) -> bool:
    return module_file(name).name == "__init__.py"


def imported(node: ast.AST, module: str) -> set[str]:
    """Repository modules imported anywhere inside ``node`` of ``module``."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            candidates = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parent = package.split(".")[: len(package.split(".")) - n.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            candidates = [base, *(f"{base}.{a.name}" for a in n.names)]  # a name may be a module
        else:
            continue
        found |= {c for c in candidates if c and module_file(c) is not None}
    return found


def with_packages(name: str) -> set[str]:
    """``a.b.c`` → {a, a.b, a.b.c}: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def closure(modules: set[str]) -> set[str]:
    """``modules`` and every repository module they import, transitively."""
    seen: set[str] = set()
    todo = [p for m in modules for p in with_packages(m)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [p for m in imported(_tree(name), name) for p in with_packages(m)]
    return seen


def stage_code(stage: str) -> list[str]:
    """Repository-relative paths of the code ``python -m flows <stage>`` runs."""
    modules = closure({"flows.__main__", FLOW_MODULES[stage], f"augment.stages.{stage}"})
    return sorted(str(module_file(m).relative_to(ROOT)) for m in modules)


def declared_code(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    """The ``.py`` deps of each stage in ``dvc.yaml``."""
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {s: sorted(d for d in stages[s].get("deps", []) if str(d).endswith(".py"))
            for s in STAGES}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows deps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when dvc.yaml's code deps differ from the imports")
    parser.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml", help="(default: %(default)s)")
    args = parser.parse_args(argv)
    declared, stale = declared_code(args.dvc_yaml), 0
    for stage in STAGES:
        code = stage_code(stage)
        missing = sorted(set(code) - set(declared[stage]))
        extra = sorted(set(declared[stage]) - set(code))
        print(f"{stage}:\n" + "".join(f"  - {path}\n" for path in code), end="")
        if missing or extra:
            stale += 1
            print(f"  # dvc.yaml: missing {missing or 'none'}, not imported {extra or 'none'}")
    if args.check and stale:
        print(f"{args.dvc_yaml}: {stale} stage(s) whose code deps differ from what they import; "
              "copy the lists above into it", file=sys.stderr)
        return 1
    return 0
