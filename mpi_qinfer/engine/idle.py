"""How an idle worker waits for the root's next message: spinning or backing off.

``spin`` blocks in ``MPI_Bcast``: the lowest latency, but MPI libraries poll
inside blocking calls, so a waiting worker burns a whole core. ``backoff``
posts an ``MPI_Ibcast`` and tests it with a capped, doubling sleep (as
``mpi4py.futures`` does), which frees the core for the root when ranks
outnumber cores, at the price of up to the cap in wake-up latency. The root
uses the matching call (a blocking and a non-blocking broadcast never match).
"""

from __future__ import annotations

import os
import time

from mpi4py import MPI

from ..runtime import termination

__all__ = ["IDLE_MODES", "resolve_idle_mode", "broadcast_message", "node_is_oversubscribed"]

IDLE_MODES = ("auto", "spin", "backoff")
ENV_IDLE = "MPI_QINFER_IDLE"
ENV_BACKOFF_MAX = "MPI_QINFER_BACKOFF_MAX"
DEFAULT_BACKOFF_MAX = 1e-3
_FIRST_SLEEP = 1e-6


def usable_cores() -> set[int]:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return set(range(os.cpu_count() or 1))


def node_is_oversubscribed(comm: MPI.Intracomm) -> bool:
    """Whether more ranks of ``comm`` share this node than its ranks may use cores (collective).

    The cores counted are the union of the node's ranks' affinity masks, so
    a launcher that binds each rank to its own core (``srun --cpu-bind=cores``)
    is not mistaken for oversubscription.
    """
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        cores = set().union(*node.allgather(usable_cores()))
        return node.Get_size() > len(cores)
    finally:
        node.Free()


def resolve_idle_mode(requested: str | None, oversubscribed: bool) -> str:
    """Turn a requested mode (or the environment's, or ``auto``) into ``spin``/``backoff``."""
    mode = requested or os.environ.get(ENV_IDLE) or "auto"
    if mode not in IDLE_MODES:
        raise ValueError(f"idle must be one of {IDLE_MODES}, got {mode!r}")
    if mode == "auto":
        mode = "backoff" if oversubscribed else "spin"
    return mode


def resolve_backoff_max(requested: float | None) -> float:
    """The longest sleep of a backing-off worker, in seconds."""
    value = requested if requested is not None else os.environ.get(ENV_BACKOFF_MAX, DEFAULT_BACKOFF_MAX)
    value = float(value)
    if not value > 0:
        raise ValueError(f"backoff_max must be > 0 seconds, got {value}")
    return value


def broadcast_message(comm: MPI.Intracomm, buf, root: int, mode: str, backoff_max: float) -> None:
    """Broadcast the fixed-size message from the root, waiting as ``mode`` says."""
    if termination.watching():  # termination hook: a wait in which signals reach Python (runtime.termination)
        return termination.broadcast_message(comm, buf, root, mode, backoff_max)
    if mode == "spin":
        comm.Bcast(buf, root)
        return
    request = comm.Ibcast(buf, root)
    if comm.Get_rank() == root:
        request.Wait()
        return
    delay = _FIRST_SLEEP
    while not request.Test():
        time.sleep(delay)
        delay = min(2 * delay, backoff_max)
