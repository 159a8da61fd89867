"""The entry point of a worker started by :func:`~mpi_qinfer.engine.spawn.spawn_engine`.

Started with :data:`mpi_qinfer.engine.spawn.WORKER_ARGV`: the bootstrap the root
broadcasts (:data:`mpi_qinfer.engine.spawn.BOOTSTRAP`) calls :func:`main`. A
worker takes the root's options, answers the handshake, joins the merged
communicator, serves the engine until the root shuts it down, and leaves the
spawn. It ignores ``SIGINT`` (interrupting a notebook's kernel is meant for
the root, which keeps the workers in step) and leaves at once if the root's
process disappears.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback

__all__ = ["main"]

#: Seconds between two looks at the root's process.
WATCH_INTERVAL = 0.5


def main(parent, options: dict) -> int:
    """Serve the spawning root until it shuts down; the process's exit status.

    Parameters
    ----------
    parent : mpi4py.MPI.Intercomm
        ``MPI.Comm.Get_parent()``.
    options : dict
        What the root sent (see :func:`~mpi_qinfer.engine.spawn.spawn_engine`).
    """
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to change
        pass
    from . import spawn

    answer = _prepare(options)
    parent.send(answer, dest=0, tag=spawn.HELLO_TAG)
    go = parent.bcast(None, root=0)
    if not go:
        parent.Disconnect()
        return 0 if answer[0] == "ok" else 1
    _watch(options["parent"])
    merged = parent.Merge(True)
    try:
        engine = spawn.SpawnedEngine(merged, parent, None)
    except BaseException:  # noqa: BLE001 - failed alike on the root, which raises it
        merged.Free()
        parent.Disconnect()
        return 1
    engine.serve()  # leaves the spawn when the root shuts down
    return 0


def _prepare(options: dict) -> tuple:
    """Apply the root's options; ``("ok", pid, host, None)`` or ``("error", pid, host, traceback)``."""
    pid, host = os.getpid(), socket.gethostname()
    try:
        sys.path.extend(entry for entry in options["path"] if entry not in sys.path)
        os.chdir(options["wdir"])
        os.environ.update(options["env"])
        from . import core  # noqa: F401 - the engine imports here, where a failure can still be reported
    except BaseException:  # noqa: BLE001 - reported to the root
        return "error", pid, host, traceback.format_exc()
    return "ok", pid, host, None


def _watch(parent) -> None:
    """Leave at once (``os._exit``) when the root's process is gone; only where it runs on this host."""
    from .spawn import process_alive

    pid, host, start = parent
    if host != socket.gethostname():
        return

    def watch():
        while process_alive(pid, start):
            time.sleep(WATCH_INTERVAL)
        os._exit(3)

    threading.Thread(target=watch, name="mpi_qinfer root watch", daemon=True).start()

