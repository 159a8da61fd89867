"""The command line under mpiexec: the demo's estimate on any number of ranks, info, errors and help once."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import mpiexec_command, needs_mpiexec

TIMEOUT = 90  # seconds per subprocess; each run takes a few
DEMO_ARGS = ["demo", "--model", "precession", "--particles", "1000", "--experiments", "30", "--no-progress",
             "--no-compare", "--seed", "7"]


# ------------------------------------------------------------------ the demo under mpiexec
def launch(n_ranks, argv):
    """Run ``python -m mpi_qinfer argv`` on ``n_ranks`` processes (0: no mpiexec); return the result."""
    command = [sys.executable, "-m", "mpi_qinfer", *argv]
    env = dict(os.environ)
    if n_ranks:
        launcher, env = mpiexec_command(n_ranks, timeout=TIMEOUT - 10)
        command = [*launcher, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def estimate_line(result):
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("estimate (repr):")]
    assert len(lines) == 1, result.stdout
    return lines[0]


@pytest.fixture(scope="module")
def serial_estimate():
    return estimate_line(launch(0, DEMO_ARGS))


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_demo_estimate_is_bitwise_the_same_on_any_number_of_ranks(n_ranks, serial_estimate):
    result = launch(n_ranks, DEMO_ARGS)
    assert f"on {n_ranks} MPI rank(s)" in result.stdout
    assert estimate_line(result) == serial_estimate
    assert result.stdout.count("estimate (repr)") == 1  # only the root reports


@needs_mpiexec
def test_info_under_mpiexec_lists_every_rank():
    result = launch(2, ["info"])
    assert result.returncode == 0, result.stderr
    ranks = re.findall(r"^\s*(\d+)\s+\S+\s+\d+\s+[\d,-]+\s+\S.*$", result.stdout, re.M)
    assert ranks == ["0", "1"]


# ------------------------------------------------------------------ argument errors, once per job
@needs_mpiexec
@pytest.mark.parametrize("argv, message", [
    (["demo", "--bad-flag"], "python -m mpi_qinfer: error: unrecognized arguments: --bad-flag"),
    (["demo", "--particles", "0"], "argument --particles: must be a positive integer, got '0'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["demo", "--qubits", "20"], "python -m mpi_qinfer demo: error: --qubits 20 needs about"),
])
def test_argument_errors_are_printed_once_under_mpiexec(argv, message):
    result = launch(2, argv)
    assert result.returncode == 2
    assert result.stderr.count(message) == 1, result.stderr
    assert result.stderr.count("error:") == 1, result.stderr


@needs_mpiexec
def test_help_is_printed_once_under_mpiexec():
    result = launch(2, ["demo", "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("usage:") == 1
