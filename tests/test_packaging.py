"""Tests of the packaging metadata and of the wiring of the wheel check.

The wheel itself is built and tried by ``scripts/check-wheel.sh`` (``make
test-wheel``, part of ``make test``): with exactly the minimum setuptools
declared here, then installed in fresh venvs with and without an MPI library.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The first setuptools that reads PEP 639 license expressions and ``license-files``.
PEP_639_SETUPTOOLS = (77, 0, 3)


def version_tuple(text):
    return tuple(int(part) for part in text.split("."))


def test_the_declared_minimum_setuptools_reads_the_license_expression():
    requires = PYPROJECT["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=([\d.]+)", setuptools)
    assert minimum is not None, setuptools
    assert version_tuple(minimum.group(1)) >= PEP_639_SETUPTOOLS
    assert isinstance(PYPROJECT["project"]["license"], str)  # an SPDX expression, PEP 639


def test_license_file_is_bsd_3_clause_and_declared():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "The mpi_qinfer developers" in text
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    # A license classifier next to a PEP 639 expression is an error for setuptools.
    assert not [c for c in PYPROJECT["project"]["classifiers"] if c.startswith("License ::")]


def test_typed_package():
    assert (ROOT / "mpi_qinfer" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["mpi_qinfer"]
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]


def test_urls_and_classifiers():
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(PYPROJECT["project"]["urls"])
    classifiers = PYPROJECT["project"]["classifiers"]
    assert "Topic :: System :: Distributed Computing" in classifiers
    minimum = version_tuple(PYPROJECT["project"]["requires-python"].removeprefix(">="))
    assert f"Programming Language :: Python :: {minimum[0]}.{minimum[1]}" in classifiers


def makefile_rule(target):
    """The prerequisites and recipe lines of ``target`` in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{target}:"):
            recipe = []
            for following in lines[i + 1:]:
                if not following.startswith("\t"):
                    break
                recipe.append(following.strip())
            return line.split(":", 1)[1].split(), recipe
    raise AssertionError(f"no rule for {target} in the Makefile")


def test_ci_builds_and_tries_the_wheel():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    prerequisites, _ = makefile_rule("test")
    assert "test-wheel" in prerequisites
    _, recipe = makefile_rule("test-wheel")
    assert any("scripts/check-wheel.sh" in line for line in recipe)
    script = (ROOT / "scripts" / "check-wheel.sh").read_text()
    # No editable install anywhere; the demo runs from the wheel with mpich; a venv without it checks `info`.
    assert "pip install" in script and " -e " not in script and "--editable" not in script
    assert '"$WHEEL[mpich]"' in script and "mpi_qinfer demo" in script and 'mpi-qinfer" info' in script


def test_make_demo_installs_only_what_the_demo_needs():
    prerequisites, _ = makefile_rule("demo")
    (stamp,) = prerequisites
    _, recipe = makefile_rule(stamp)
    installs = [line for line in recipe if "-e '" in line]
    assert installs == ["$(PY) $(PIP_INSTALL) -e '.[mpich]'"]
