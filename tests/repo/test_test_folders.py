"""The test folders: no folder is named like a marker, and plain pytest runs the serial half of the SPMD tests.

pytest-mpi skips, without ``--with-mpi``, every test whose keywords hold
``mpi``; a test's keywords include the names of the folders above it, so a
folder called ``mpi`` would skip every test in it, the serial ones too.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def registered_markers() -> set[str]:
    """The marker names of setup.cfg's ``[tool:pytest] markers``."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["tool:pytest"]["markers"].strip().splitlines()
    return {line.split(":")[0].strip() for line in lines if line.strip()}


def test_no_test_folder_is_named_like_a_marker():
    markers = registered_markers()
    assert {"mpi", "qinfer"} <= markers
    folders = {name for _, dirs, _ in os.walk(TESTS) for name in dirs if name != "__pycache__"}
    assert not folders & markers, f"test folders named like a marker (every test in them gets it): {folders & markers}"


def test_plain_pytest_runs_the_serial_half_of_a_test_that_runs_both_ways():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/spmd/test_distributed.py::test_pgh_draws_particles_by_global_index"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "1 passed, 1 skipped" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
