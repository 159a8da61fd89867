"""Check the package's layering: which subpackage may import which, and where mpi4py may be imported.

    python scripts/import_rules.py [PACKAGE_DIR]

The layers, bottom up (each may import itself and the layers before it, never one after it)::

    runtime  models  smc  engine  parallel  distributed  cli

``errors`` and ``_version`` sit below every layer; the package root (``__init__``) re-exports the
public names and may be imported by ``cli`` only. Two more rules:

* ``models``, ``smc`` and ``runtime`` never import mpi4py at module level (a model, a prior, an
  updater and ``--help`` work without an MPI library; runtime loads MPI on request only);
* ``engine`` never imports ``models`` or ``smc``: the engine moves arrays, it knows no inference.

Prints every broken rule and exits 1 if there is one (imports inside functions count for the
layer rules, not for the module-level mpi4py rule). Import cycles: ``scripts/import_cycles.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYERS = ["runtime", "models", "smc", "engine", "parallel", "distributed", "cli"]
BELOW_EVERY_LAYER = {"errors", "_version"}
NO_MODULE_LEVEL_MPI = {"models", "smc", "runtime"}
FORBIDDEN = {"engine": {"models", "smc"}}


def imports_of(path: Path, package: str, home: list[str]):
    """(line, imported module, at module level) for each import of ``path``."""
    tree = ast.parse(path.read_text())
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = home[: len(home) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [f"{module}.{alias.name}" for alias in node.names]
            else:
                module, names = node.module or "", []
            yield node.lineno, module, names, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, [], id(node) in top_level


def layer_of(dotted: str, package: str) -> str | None:
    """The layer (or below-every-layer module, or "root") a dotted name of the package belongs to."""
    parts = dotted.split(".")
    if parts[0] != package:
        return None
    if len(parts) == 1:
        return "root"
    return parts[1]


def broken_rules(package_dir: Path) -> list[str]:
    package = package_dir.name
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        home = parts[:-1] if parts[-1] != "__init__" else parts
        dotted = ".".join(parts if parts[-1] != "__init__" else parts[:-1])
        mine = layer_of(dotted, package)
        where = f"{path.relative_to(package_dir.parent)}"
        for line, module, names, module_level in imports_of(path, package, home):
            if module.split(".")[0] == "mpi4py":
                if mine in NO_MODULE_LEVEL_MPI and module_level:
                    found.append(f"{where}:{line}: {mine} imports {module} at module level")
                continue
            # `from . import x` names a module x: judge by it, not by the package it sits in.
            targets = [n for n in names if layer_of(n, package) in set(LAYERS) | BELOW_EVERY_LAYER] or [module]
            for target in targets:
                theirs = layer_of(target, package)
                if theirs is None or theirs == mine or theirs in BELOW_EVERY_LAYER or mine in ("root", "__main__"):
                    continue
                if theirs == "root":
                    if mine != "cli":
                        found.append(f"{where}:{line}: {mine} imports the package root ({target})")
                    continue
                if mine in BELOW_EVERY_LAYER:
                    found.append(f"{where}:{line}: {mine} sits below every layer but imports {target}")
                elif theirs in FORBIDDEN.get(mine, ()):
                    found.append(f"{where}:{line}: {mine} never imports {theirs} ({target})")
                elif theirs in LAYERS and mine in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
                    found.append(f"{where}:{line}: {mine} imports {target}, a layer above it")
                elif theirs not in LAYERS:
                    found.append(f"{where}:{line}: {target} is in no layer")
    return found


if __name__ == "__main__":
    package_dir = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "mpi_qinfer")
    found = broken_rules(package_dir)
    for rule in found:
        print("broken:", rule)
    print(f"{len(found)} broken import rule(s) in {package_dir.name}")
    sys.exit(1 if found else 0)
