"""Shared test helpers: collective verdicts for tests that run on several MPI ranks."""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from pathlib import Path

import pytest


def verdict_of(check, *args, **kwargs):
    """Run ``check``; return None if it passed, else the formatted failure."""
    try:
        check(*args, **kwargs)
    except BaseException:  # noqa: BLE001 - the failure becomes every rank's verdict
        return traceback.format_exc()
    return None


def assert_collectively(comm, verdict, root=0):
    """Make the root's verdict every rank's, so all ranks pass or fail a test together."""
    verdict = comm.bcast(verdict, root=root)
    assert verdict is None, verdict


def run_parallel(comm, serial_model, check, **proxy_kwargs):
    """Build a proxy on every rank, run ``check(proxy, serial_model)`` on the root, agree on the result.

    Returns the proxy (shut down) so callers can inspect counters afterwards.
    """
    from mpi_qinfer import MPIParallelizedModel

    verdict = None
    with MPIParallelizedModel(serial_model, comm=comm, **proxy_kwargs) as proxy:
        if proxy.is_root:
            verdict = verdict_of(check, proxy, serial_model)
    assert_collectively(comm, verdict)
    return proxy


@pytest.fixture
def comm():
    """The world communicator (only touched by tests marked ``mpi``)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _why_not_launch():
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() > 1:
        return "starts mpiexec itself, so not while pytest runs under mpiexec"
    if not MPIEXEC.exists():
        return f"no mpiexec next to the Python executable (looked for {MPIEXEC})"
    return None


#: Marks a serial test that launches its own MPI job.
needs_mpiexec = pytest.mark.skipif(_why_not_launch() is not None, reason=str(_why_not_launch()))


def mpiexec_command(n_ranks, timeout=120):
    """The launcher next to this Python, with the flags its MPI needs here, and its environment.

    Returns ``(argv_prefix, env)``; skips the test when no ``mpiexec`` is installed.
    """
    reason = _why_not_launch()
    if reason is not None:
        pytest.skip(reason)
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPIEXEC_TIMEOUT=str(timeout))
    # MPI_LAUNCHER_ARGS: launcher options for every job, e.g. the hosts and launch agent of the
    # emulated nodes that `make test-multinode` runs the jobs across.
    argv = [str(MPIEXEC), "-n", str(n_ranks), *shlex.split(os.environ.get("MPI_LAUNCHER_ARGS", ""))]
    if (MPIEXEC.parent / "ompi_info").exists():
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        argv.append("--oversubscribe")
    return argv, env


def run_mpi_script(tmp_path, source, n_ranks=2, timeout=90, args=(), module_args=None):
    """Write ``source`` to a file and run it under mpiexec; return (CompletedProcess, seconds).

    A job that outlives ``timeout`` fails the test instead of hanging the suite.
    """
    import subprocess
    import textwrap
    import time

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    argv, env = mpiexec_command(n_ranks)
    program = [sys.executable, *(module_args or []), str(script), *args]
    start = time.monotonic()
    try:
        done = subprocess.run(argv + program, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the MPI job hung for {timeout} s:\n{expired.stdout}\n{expired.stderr}")
    return done, time.monotonic() - start


def same_behaviour(serial_call, proxy_call):
    """Assert that two calls return bitwise-equal answers, or raise the same exception type and message.

    Returns the proxy's exception (or None), for further checks.
    """
    import numpy as np

    def outcome(call):
        try:
            return call(), None
        except Exception as error:  # noqa: BLE001 - compared below
            return None, error

    want, want_error = outcome(serial_call)
    got, got_error = outcome(proxy_call)
    if want_error is not None or got_error is not None:
        assert type(got_error) is type(want_error), f"serial raised {want_error!r}, the proxy {got_error!r}"
        assert str(got_error) == str(want_error)
        return got_error
    want, got = np.asarray(want), np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), "answers differ"
    # C order as the serial model's: NumPy's sums follow the memory layout, so a
    # transposed answer would change a posterior in its last bits.
    assert got.flags.c_contiguous or not want.flags.c_contiguous, "the answer is not in C order"
    return None
