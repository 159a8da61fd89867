"""The command loop under :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater`: one command, every rank alike.

The root sends a command (an operation code and its pickled arguments) and
then runs its own part of it; every worker runs the same part, so root and
workers cannot disagree on the sequence of collectives. A command travels in
one of two ways:

own loop
    A fixed-size message (int64 code and length, small arguments inline) is
    broadcast on the loop's own duplicated communicator, the workers waiting
    for it as :mod:`mpi_qinfer.engine.idle` says (spinning or backing off); larger
    arguments follow in a second broadcast. Workers serve inside ``with``.
shared engine
    The command is the argument of
    :meth:`Engine.run_collective <mpi_qinfer.engine.core.Engine.run_collective>`,
    so the engine's worker loop serves it between model calls.

A subclass lists its commands in ``_OPERATIONS``, a table from operation
code to method. The workers' loop, the checks of construction and the end of
a worker that fails between commands are the engine's
(:mod:`mpi_qinfer.engine.command_loop`).

A failure inside a command never desynchronises the ranks: each rank catches
its own, the failure travels with the command's sums (:meth:`_allsum`), and
the root raises the model's exception with a
:class:`~mpi_qinfer.errors.RemoteError` as its cause. A worker that fails
outside a command ends the job (``MPI_Abort``) rather than leave the root
waiting.
"""

from __future__ import annotations

import atexit
import pickle
import sys
import weakref

import numpy as np

from ..engine.command_loop import CommandLoopBase, agreed_root, duplicate
from ..engine.failures import describe_failure, pickled_exception, raise_failure
from ..errors import EngineClosedError
from ..runtime import termination

__all__ = ["CommandLoop", "CLOSE"]

#: The operation code that ends the loop on every rank.
CLOSE = 0
_OPERATION = -1  # in _COMMANDS: every other code, its message the code and the pickled arguments
_MESSAGE_BYTES = 1024
_HEADER_BYTES = 16  # int64 operation, int64 payload length
_INLINE_BYTES = _MESSAGE_BYTES - _HEADER_BYTES
_open_roots: "weakref.WeakSet[CommandLoop]" = weakref.WeakSet()


class _Failed(Exception):
    """On a worker: the command failed somewhere and was abandoned on every rank."""


@atexit.register
def _release_workers_at_exit():
    # A root that never closed would leave its workers waiting forever.
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or mpi.Is_finalized():
        return
    for loop in list(_open_roots):
        try:
            loop.close()
        except BaseException:  # noqa: BLE001 - best effort at interpreter exit (a held Ctrl-C included)
            pass


class CommandLoop(CommandLoopBase):
    """Base of a collective object driven from the root (see the module's description).

    A subclass sets, on every rank: ``_MPI`` (the ``mpi4py.MPI`` module),
    ``_engine`` (an engine or None), then calls ``_open(comm, root)`` (its
    own duplicated communicator, ``_root``, ``_rank``, ``_size``), and, with
    an engine, sets ``_hook`` (from ``engine.register_collective(self._engine_command)``);
    without one ``_message`` (:func:`new_message`), ``_idle``,
    ``_backoff_max`` and ``_wait_for_message`` (:func:`mpi_qinfer.engine.idle.broadcast_message`).
    It calls ``_opened()`` once built, and lists its commands in ``_OPERATIONS``.
    """

    #: Operation code to the method (taking the command's arguments) that runs every rank's part of it.
    _OPERATIONS: dict = {}

    @property
    def comm(self):
        """The private duplicate of the communicator."""
        return self._comm

    @property
    def root(self) -> int:
        """Rank of the root in :attr:`comm`."""
        return self._root

    @property
    def rank(self) -> int:
        """This process's rank in :attr:`comm`."""
        return self._rank

    @property
    def size(self) -> int:
        """Number of ranks."""
        return self._size

    @property
    def is_root(self) -> bool:
        """Whether this rank drives the loop."""
        return self._rank == self._root

    @property
    def closed(self) -> bool:
        """Whether the loop has been closed (its communicator freed)."""
        return self._closed

    def __enter__(self):
        if self._engine is None and not self.is_root:
            self.serve()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def serve(self) -> None:
        """Serve the root's commands until it closes the loop (workers of a loop without an engine)."""
        if self.is_root:
            raise RuntimeError("serve() runs on the workers; the root sends the commands and calls close()")
        if self._engine is not None:
            raise RuntimeError("this loop is served by its engine's worker loop")
        self._serve_commands()

    def close(self) -> None:
        """Release the workers and free the communicator (root; idempotent)."""
        if self._closed or not self.is_root:
            return
        _open_roots.discard(self)
        if self._engine is not None and self._engine.closed:
            self._free()  # the workers left with the engine; nothing to tell them
            return
        try:
            self._send(CLOSE, None, safe_point=False)
        finally:
            self._free()
        termination.raise_held_interrupt()  # a Ctrl-C held in the last operation: every rank is free now

    def _free(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._MPI.Is_finalized():
            self._comm.Free()

    def _open(self, comm, root) -> None:
        """The first collectives of construction: set up this loop's own duplicate of ``comm``.

        Every rank of ``comm`` is there (:func:`mpi_qinfer.runtime.termination.join`),
        and passed the same root (:func:`~mpi_qinfer.engine.command_loop.agreed_root`).
        """
        termination.join(comm, f"builds a {type(self).__name__}")  # under run: a rank that has ended raises
        self._root = agreed_root(comm, root)
        self._comm = duplicate(comm)
        self._rank = self._comm.Get_rank()
        self._size = self._comm.Get_size()
        self._closed = False

    # ------------------------------------------------------------ commands
    def _streams(self, seed: int):
        """A generator in the same state on every rank, and this rank's own one, from one seed."""
        return (np.random.default_rng(np.random.SeedSequence(seed)),
                np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(self._rank,))))

    def _send(self, op: int, args, safe_point: bool = True):
        """Root: broadcast one command and run the root's part of it; return its result.

        At a safe point a stop request, a worker's notice of one, or a rank
        that has ended raises here, before anything is sent
        (:func:`mpi_qinfer.runtime.termination.check`);
        ``safe_point=False`` lets a command run after a stop was requested
        (saving the state on the way out); see :mod:`mpi_qinfer.runtime.termination`.
        """
        if self._closed:
            raise EngineClosedError(f"the {type(self).__name__} has been closed")
        if not self.is_root:
            raise RuntimeError(f"the {type(self).__name__} is driven from the root; workers serve")
        if self._engine is not None:  # the command travels as the engine's collective argument
            return self._engine.run_collective(self._hook, (int(op), args), safe_point=safe_point)
        if safe_point:  # the engine's run_collective checks the same on its own communicator
            termination.check(self._comm, self._root)
        payload = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        header = self._message[:_HEADER_BYTES].view(np.int64)
        header[0], header[1] = int(op), len(payload)
        if len(payload) <= _INLINE_BYTES:
            self._message[_HEADER_BYTES : _HEADER_BYTES + len(payload)] = np.frombuffer(payload, dtype=np.uint8)
        self._broadcast()
        if len(payload) > _INLINE_BYTES:
            self._comm.Bcast([np.frombuffer(bytearray(payload), dtype=np.uint8), self._MPI.BYTE], self._root)
        if op == CLOSE:
            return None
        return self._run(op, args)

    def _broadcast(self) -> None:
        self._wait_for_message(self._comm, self._message, self._root, self._idle, self._backoff_max)

    def _engine_command(self, engine, command):
        """Every rank, inside :meth:`~mpi_qinfer.engine.core.Engine.run_collective`: one command."""
        op, args = command
        if op == CLOSE:
            self._free()
            return None
        if self.is_root:
            return self._run(op, args)
        try:
            self._run(op, args)
        except Exception:  # noqa: BLE001 - _Failed, or an error every rank met alike: the root raises it
            pass
        return None

    def _receive_command(self) -> tuple[int, tuple | None]:
        """Worker (own loop): wait for the root's next command: ``CLOSE``, or an operation and its message."""
        self._broadcast()
        op, length = (int(v) for v in self._message[:_HEADER_BYTES].view(np.int64))
        if length <= _INLINE_BYTES:
            payload = self._message[_HEADER_BYTES : _HEADER_BYTES + length].tobytes()
        else:
            buffer = np.empty(length, dtype=np.uint8)
            self._comm.Bcast([buffer, self._MPI.BYTE], self._root)
            payload = buffer.tobytes()
        return (CLOSE, None) if op == CLOSE else (_OPERATION, (op, payload))

    def _serve_close(self, message: None) -> None:
        self._free()

    def _serve_operation(self, message: tuple[int, bytes]) -> None:
        """Worker (own loop): run this rank's part of an operation; a failure is the root's to raise."""
        op, payload = message
        try:
            self._run(op, pickle.loads(payload))
        except Exception:  # noqa: BLE001 - _Failed, or an error every rank met alike: the root raises it
            pass

    _COMMANDS = {CLOSE: _serve_close, _OPERATION: _serve_operation}

    def _run(self, op: int, args):
        """Run this rank's part of command ``op`` (every rank alike); the root's result is returned."""
        return self._OPERATIONS[op](self, *args)

    def _allsum(self, terms, error: BaseException | None, name: str, everywhere: bool = False) -> np.ndarray:
        """The sum over ranks of ``terms`` (identical bits on every rank); raises if any rank failed.

        ``terms`` must have the same length on every rank; a failed rank sends
        zeros. On failure every failing rank's exception and traceback reach
        the root, which raises the model's exception with a
        :class:`~mpi_qinfer.errors.RemoteError` as its cause; the workers
        raise ``_Failed`` (or, ``everywhere``, the model's exception too:
        during construction).
        """
        terms = np.asarray(terms, dtype=np.float64).reshape(-1)
        vector = np.zeros(terms.size + 1)
        if error is None:
            vector[1:] = terms
        else:
            vector[0] = 1.0
        gathered = np.empty((self._size, vector.size))
        self._comm.Allgather(vector, gathered)
        total = gathered.sum(axis=0)  # rank order, on every rank alike
        if total[0] > 0:
            self._report_failure(name, error, everywhere)
        return total[1:]

    def _report_failure(self, name: str, error: BaseException | None, everywhere: bool = False):
        """Raise what the model raised (as the proxy does), with every failing rank's traceback as the cause."""
        mine = None if error is None else (pickled_exception(error), describe_failure(error))
        reports = self._comm.allgather(mine) if everywhere else self._comm.gather(mine, self._root)
        if self.is_root or everywhere:
            raise_failure(name, error, {rank: report for rank, report in enumerate(reports) if report is not None})
        raise _Failed(name)


    def _opened(self) -> None:
        """Root: register for release at interpreter exit."""
        if self.is_root:
            _open_roots.add(self)


def new_message() -> np.ndarray:
    """The fixed-size message buffer of an own loop."""
    return np.zeros(_MESSAGE_BYTES, dtype=np.uint8)

