"""Shared test helpers: collective verdicts for tests that run on several MPI ranks."""

from __future__ import annotations

import traceback

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
