"""List qinfer's public names from a checkout of its source, as the data file docs/_ext/qinfer_names.txt holds them.

    python scripts/list_qinfer_names.py CHECKOUT            # print the list
    python scripts/list_qinfer_names.py CHECKOUT --write    # rewrite docs/_ext/qinfer_names.txt

CHECKOUT is a directory holding qinfer's ``src/qinfer`` (its source repository, which is not on
PyPI; e.g. ``git --git-dir=.../python-qinfer/.git archive HEAD | tar -x -C CHECKOUT``). Nothing is
fetched and nothing of qinfer is imported: the modules are parsed.

A name is public where a module's ``__all__`` lists it. A module without ``__all__`` (``utils``,
``score``, ``tomography.models``, ``tomography.expdesign``) counts its top-level functions and
classes not starting with ``_``. Each name is written once, with the module users reach it by:
the package that star-imports its module (``qinfer`` for most, ``qinfer.tomography`` for the
tomography modules), otherwise the module itself (``qinfer.utils``, ``qinfer.ale``). Private
modules (a name starting with ``_``) count only where a package star-imports them.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "docs" / "_ext" / "qinfer_names.txt"
SKIPPED = {"tests", "_lib"}  # qinfer's test suite and its vendored enum backport


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _public_names(tree: ast.Module):
    """The module's ``__all__``, or (without one) its public top-level functions and classes; and whether it had one."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value)), True
    names = [node.name for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")]
    return names, False


def _star_imports(tree: ast.Module, package: str) -> list[str]:
    """The modules ``from X import *`` brings into ``package`` (absolute or relative)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            module = node.module or ""
            found.append(f"{package}.{module}" if node.level else module)
    return found


def definitions(checkout: Path) -> list[tuple[str, str, str]]:
    """``(module defining it, module users reach it by, name)`` for every public name, in module order."""
    root = checkout / "src" / "qinfer"
    if not (root / "__init__.py").is_file():
        raise SystemExit(f"list_qinfer_names: {root / '__init__.py'} not found; give a checkout of qinfer's source")
    trees, packages = {}, []
    for path in sorted(root.rglob("*.py")):
        if SKIPPED & set(path.relative_to(root).parts):
            continue
        module = _module_name(path, root)
        trees[module] = ast.parse(path.read_text())
        if path.name == "__init__.py":
            packages.append(module)
    # A module a package star-imports is reached through that package (and so on up: qinfer.tomography).
    reached_by = {}
    for package in sorted(packages, key=lambda name: name.count(".")):
        for module in _star_imports(trees[package], package):
            reached_by[module] = reached_by.get(package, package)
    rows = []
    for module, tree in trees.items():
        if module.rpartition(".")[2].startswith("_") and module not in reached_by:
            continue  # private (_due); _exceptions counts: qinfer star-imports it
        names, _ = _public_names(tree)
        rows.extend((module, reached_by.get(module, module), name) for name in names)
    return rows


def collect(checkout: Path) -> list[tuple[str, str]]:
    """``(module users reach it by, name)`` for every public name, once each, in module order."""
    rows, seen = [], set()
    for _, where, name in definitions(checkout):
        if (where, name) not in seen:
            seen.add((where, name))
            rows.append((where, name))
    return rows


def _commit(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "(not a git work tree; see the header above)"


def render(rows, source: str) -> str:
    header = [
        "# qinfer's public names, one per line: the module users reach it by, then the name.",
        "# Made by scripts/list_qinfer_names.py from qinfer's source (github.com/QInfer/python-qinfer,",
        f"# src/qinfer; commit {source}): every module's __all__, and for a module without one",
        "# (utils, score, tomography.models, tomography.expdesign) its public top-level functions and",
        "# classes. docs/_ext/qinfer_names.py tables which of them mpi_qinfer has.",
    ]
    return "\n".join(header + [f"{module} {name}" for module, name in rows]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--commit", default=None, help="the checkout's commit, for the header (default: git's)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {DATA}")
    args = parser.parse_args(argv)
    text = render(collect(args.checkout), args.commit or _commit(args.checkout))
    if args.write:
        DATA.write_text(text)
        print(f"wrote {DATA}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
