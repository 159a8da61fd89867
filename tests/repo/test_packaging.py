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

ROOT = Path(__file__).resolve().parents[2]
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


def make_test_parts():
    """The parts ``make test`` runs (its ``TEST_PARTS`` default)."""
    (line,) = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("TEST_PARTS ?=")]
    return line.split("?=", 1)[1].split()


def test_make_test_runs_every_part_through_the_part_runner():
    _, recipe = makefile_rule("test")
    assert any("scripts/test-parts.sh $(TEST_PARTS)" in line for line in recipe)
    parts = make_test_parts()
    for part in parts:
        makefile_rule(part)  # each is a rule
    assert {"test-serial", "test-mpich-mpi", "test-simd", "test-oldest", "test-newest", "test-wheel",
            "test-openmpi", "test-qinfer", "test-slurm", "test-many-ranks", "test-multinode", "docs"} <= set(parts)
    _, recipe = makefile_rule("test-multinode")
    assert any("scripts/multinode-tests.sh" in line for line in recipe)
    _, recipe = makefile_rule("test-many-ranks")
    assert any("scripts/mpi-pytest.sh" in line for line in recipe)
    (line,) = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("MANY_RANKS ?=")]
    assert [int(n) for n in line.split("?=")[1].split()] == [4, 6, 8]


def test_the_part_runner_goes_on_after_a_failure_and_sums_up(tmp_path):
    import subprocess

    (tmp_path / "Makefile").write_text(
        "good:\n\t@echo '3 passed, 1 skipped in 0.1s'\n"
        "bad:\n\t@echo '1 failed, 2 passed in 0.2s'; exit 1\n"
        "also:\n\t@echo '== 4 passed in 0.3s =='\n")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "test-parts.sh"), "good", "bad", "also"],
                          env={"PATH": "/usr/bin:/bin", "MAKE": f"make -C {tmp_path}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = done.stdout.split("######## summary")[1].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in summary[2:5]}
    assert rows["good"][:4] == ["passed", "3", "0", "1"]
    assert rows["bad"][:4] == ["FAILED(2)", "2", "1", "0"]
    assert rows["also"][:4] == ["passed", "4", "0", "0"]
    assert "1 of 3 parts FAILED" in done.stdout


def test_ci_builds_and_tries_the_wheel():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "test-wheel" in make_test_parts()
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
