"""Surviving a lost worker (ULFM): detect it, shrink the engine's communicator, repeat the call on the ranks left.

Opt-in (``fault_tolerance="ulfm"`` on :class:`~mpi_qinfer.engine.core.Engine`
or :class:`~mpi_qinfer.MPIParallelizedModel`, or ``MPI_QINFER_FT=ulfm``), and
only where the MPI library reports a lost rank to the others: Open MPI 5 with
its ULFM extension switched on (``mpirun --with-ft ulfm``). The engine's
communicator then returns errors (``MPI_ERRORS_RETURN``), and an
``MPI_ERR_PROC_FAILED`` or ``MPI_ERR_REVOKED`` during a command starts the same
sequence on every rank left:

1. ``MPI_Comm_revoke``: every rank still waiting in an operation of the old
   communicator (an idle worker in its broadcast, too) gets an error and
   joins in;
2. ``MPI_Comm_agree`` (its result unused): it matches the agreement that ends a
   shutdown (below), so a worker cannot leave its loop while the others recover;
3. ``MPI_Comm_shrink``: a communicator of the ranks left, in their old order;
   the engine's rank, size, plans and status table are rebuilt on it, and the
   old one is freed; a worker whose root is gone ends the job;
4. the root broadcasts what every worker must hold as it does (its call
   counter, its dtype table: a dtype announcement may have reached only some);
5. ``MPI_Comm_agree`` on the outcome of 4: the same answer on every rank, so a
   rank lost during the recovery makes every rank shrink again.

The root then repeats the interrupted command on the ranks left: a model call
evenly split (its answer is split-invariant, so bitwise the uninterrupted
call's), a dtype announcement, a model synchronisation, a shutdown. The
shutdown ends with an agreement too (every worker received it, or every rank
recovers and the root sends it again), since a worker that left the loop could
not join a shrink.

Not covered: a rank that exits with an error status or an exception (the
launcher ends the job), the root's own loss (the workers end the job), and
collective commands of other components (a
:class:`~mpi_qinfer.DistributedSMCUpdater`, a spawned engine), which are
refused with the mode on; those keep the checkpoint and ``resume="auto"`` path.

In a process that built an engine under ``mpirun --with-ft ulfm`` (either
mode), ``MPI_Finalize`` runs at exit under a watchdog: after a lost rank, Open
MPI 5.0's ``MPI_Finalize`` can wait forever in the survivors (in its final
PMIx fence, now and then, also in a plain mpi4py program), so a process still
in it :data:`FINALIZE_GRACE_SECONDS` later is ended with ``SIGKILL``, a line on
its standard error saying so, rather than hold the job until its time limit;
a program that ended with an uncaught exception exits with status 1 at once.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
import weakref
from typing import NamedTuple

from mpi4py import MPI

__all__ = ["MODES", "ENV_FT", "FINALIZE_GRACE_SECONDS", "resolve_mode", "why_unsupported", "attach", "Recovery",
           "Loss"]

MODES = ("off", "ulfm")
ENV_FT = "MPI_QINFER_FT"
#: Seconds ``MPI_Finalize`` may take at exit under ULFM before the watchdog ends the process.
FINALIZE_GRACE_SECONDS = 30

# The classes that mean a lost rank (or a revocation because of one). ERR_IN_STATUS is a
# wait on several requests, one of which failed: the shrink then tells whether a rank was lost.
_LOSS_CLASSES = frozenset(
    getattr(MPI, name) for name in ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED") if hasattr(MPI, name)
)
_ERR_IN_STATUS = MPI.ERR_IN_STATUS


def resolve_mode(requested: str | None) -> str:
    """The fault-tolerance mode asked for: ``requested``, else ``MPI_QINFER_FT``, else ``"off"``."""
    mode = requested if requested is not None else (os.environ.get(ENV_FT) or "off")
    if mode not in MODES:
        source = "fault_tolerance" if requested is not None else ENV_FT
        raise ValueError(f"{source} must be one of {MODES}, got {mode!r}")
    return mode


def why_unsupported() -> str | None:
    """None where this process's MPI library reports lost ranks to the others; else why it cannot.

    Open MPI 5 does so only in a job started with ``mpirun --with-ft ulfm``
    (which sets the MCA parameter ``mpi_ft_enable`` in the ranks' environment).
    """
    if not hasattr(MPI.Comm, "Revoke"):
        return "this mpi4py has no Comm.Revoke/Shrink/Agree (ULFM needs mpi4py 4 or later)"
    vendor, version = MPI.get_vendor()
    library = f"{vendor} {'.'.join(map(str, version))}"
    if vendor != "Open MPI":
        return f"the MPI library is {library}, which has no usable fault tolerance (ULFM is Open MPI 5's)"
    if version < (5,):
        return f"the MPI library is {library}; ULFM needs Open MPI 5 or later"
    if os.environ.get("OMPI_MCA_mpi_ft_enable", "").lower() not in ("1", "true", "yes", "enabled"):
        return "the job was not started with `mpirun --with-ft ulfm` (Open MPI's mpi_ft_enable is not set)"
    return None


def attach(engine, mode: str) -> "Recovery | None":
    """The engine's recovery for ``mode`` (collective when on; every rank raises alike where it cannot be).

    Raises
    ------
    RuntimeError
        On every rank, when a rank's MPI library cannot report a lost rank.
    """
    reason = why_unsupported()
    if reason is None:
        _finalize_watch["armed"] = True
    if mode == "off":
        return None
    from ..runtime import termination

    comm = engine._comm
    if reason is None and termination.watching_exits():
        # Under `python -m mpi_qinfer run` ended ranks say so on a communicator of the whole job,
        # which a lost rank leaves unusable (and its final wait could never end).
        reason = ("the script runs under `python -m mpi_qinfer run`, whose exit notices need every rank of the job; "
                  "start it with `python script.py` under `mpirun --with-ft ulfm`")
    reasons = comm.allgather(reason)
    odd = {rank: reason for rank, reason in enumerate(reasons) if reason is not None}
    if odd:
        rank, reason = next(iter(odd.items()))
        raise RuntimeError(
            f"fault_tolerance='ulfm' ({ENV_FT}=ulfm) cannot be had here: on rank {rank}, {reason}. "
            f"Launch with Open MPI's `mpirun --with-ft ulfm`, or leave the mode off ({ENV_FT}=off) and keep "
            "a Checkpointer with resume='auto' (see the docs' 'A rank that dies')"
        )
    comm.Set_errhandler(MPI.ERRORS_RETURN)
    return Recovery(engine)


class Loss(NamedTuple):
    """One recovery: which ranks were lost, and what it took."""

    lost: tuple  #: the lost ranks, numbered as in the engine's first communicator
    size: int  #: ranks left
    error: str  #: the MPI error that revealed it
    detected: float  #: when this rank caught that error (``time.time()``)
    seconds: float  #: from the error to the ranks left's agreement


class _Unagreed(Exception):
    """A rank failed during a recovery's own steps: every rank shrinks again."""


class Recovery:
    """The engine's side of the recovery (see the module's description); :attr:`losses` lists what happened.

    Parameters
    ----------
    engine : Engine
        The engine whose communicator and communicator-dependent state it rebuilds.
    """

    def __init__(self, engine):
        self._engine = engine
        self._followers: list = []
        self._first_ranks = list(range(engine._size))  # each rank's rank in the engine's first communicator
        self.losses: list[Loss] = []
        self.repeating = False  # root: inside command(), the engine's method runs its body

    # ---------------------------------------------------------------- root
    def follow(self, method) -> None:
        """Call the bound ``method(survivors)`` on the root after each shrink (held weakly).

        ``survivors`` lists, for each rank of the new communicator, its rank in the old one.
        """
        self._followers.append(weakref.WeakMethod(method))

    def call(self, call_once, spec, arrays):
        """``call_once(spec, arrays)`` on the root; after lost ranks, again on the ranks left, evenly split."""
        while True:
            calls = self._engine._calls
            try:
                return call_once(spec, arrays)
            except MPI.Exception as error:
                if not _is_loss(error):
                    raise
                self._recover_root(error, calls)
                if spec.explicit_counts:  # counts were per rank of the old communicator
                    spec = spec._replace(explicit_counts=0)
                    arrays = dict(arrays, counts=None)

    def command(self, function, *args):
        """``function(*args)`` on the root (a dtype announcement, a model synchronisation), repeated after lost ranks.

        ``function`` is the engine's method that called this: :attr:`repeating`
        tells it to run its own body.
        """
        while True:
            calls = self._engine._calls
            self.repeating = True
            try:
                return function(*args)
            except MPI.Exception as error:
                if not _is_loss(error):
                    raise
                self._recover_root(error, calls)
            finally:
                self.repeating = False

    def refuse_collectives(self) -> None:
        """Raise: a collective command of another component cannot be repeated on fewer ranks."""
        raise RuntimeError(
            "fault_tolerance='ulfm' covers the model calls of MPIParallelizedModel only; collective commands "
            "(a DistributedSMCUpdater sharing the engine, a spawned engine) cannot be repeated on the ranks left. "
            f"Build this engine with the mode off ({ENV_FT}=off) and keep a Checkpointer with resume='auto'"
        )

    def shutdown(self, send) -> None:
        """``send()`` the shutdown message until every worker has it (root; agreed, see the module's description)."""
        engine = self._engine
        while True:
            started, reason = time.perf_counter(), None
            try:
                send()
            except MPI.Exception as error:
                if not _is_loss(error):
                    raise
                reason = error
            if _agree(engine._comm, reason is None):
                return
            lost = self._recover(started, reason, agreed=True)
            if not lost:
                raise RuntimeError("the workers did not all receive the shutdown, but no rank was lost")

    def _recover_root(self, error, calls: int) -> None:
        started = time.perf_counter()
        self._engine._calls = calls  # the repeated command counts once
        if not self._recover(started, error):
            raise error  # an MPI error of another kind: every rank is in step again, the caller sees it

    # ------------------------------------------------------------- workers
    def recovered(self, error) -> bool:
        """After ``error`` in the serve loop: whether it was a lost rank, now recovered from (worker)."""
        if not _is_loss(error):
            return False
        self._recover(time.perf_counter(), error)
        return True

    def shutdown_agreed(self) -> bool:
        """On a worker that received the shutdown: whether every rank did (else it recovers first)."""
        if _agree(self._engine._comm, True):
            return True
        self._recover(time.perf_counter(), None, agreed=True)
        return False

    # ---------------------------------------------------------- both sides
    def _recover(self, started: float, error, agreed: bool = False) -> tuple:
        """Revoke, agree, shrink, rebuild, resynchronise; return the lost ranks (in the first communicator)."""
        detected = time.time() - (time.perf_counter() - started)
        engine = self._engine
        size_before, root_before = engine._size, engine._root
        survivors = list(range(size_before))  # the ranks kept, numbered as before this recovery
        while True:
            comm = engine._comm
            comm.Revoke()
            if not agreed:
                _agree(comm, False)  # matches a shutdown's agreement (module description, step 2)
            new = comm.Shrink()
            new.Set_errhandler(MPI.ERRORS_RETURN)
            old_ranks, root = _translate(comm, new, engine._root)
            survivors = [survivors[rank] for rank in old_ranks]
            comm.Free()
            if root == MPI.UNDEFINED:
                engine._comm = new
                raise RuntimeError(
                    f"the root (rank {self._first_ranks[root_before]}) was lost; a worker cannot go on without it: "
                    "ending the job "
                    "(a Checkpointer with resume='auto' resumes the run)"
                )
            engine._use_communicator(new, root)
            try:
                ok = self._resynchronise(new, root)
            except MPI.Exception as failure:
                if not _is_loss(failure):
                    raise
                ok = False
            if _agree(new, ok):
                break
            agreed = True  # every rank is past the same agreement
        kept = set(survivors)
        lost = tuple(self._first_ranks[rank] for rank in range(size_before) if rank not in kept)
        self._first_ranks = [self._first_ranks[rank] for rank in survivors]
        if lost:
            self._report(lost, error, detected, time.perf_counter() - started)
        if engine.is_root:
            for follower in list(self._followers):
                method = follower()
                if method is None:
                    self._followers.remove(follower)
                else:
                    method(survivors)
        return lost

    def _resynchronise(self, comm, root: int) -> bool:
        """Step 4: what the root holds that every worker must hold alike."""
        engine = self._engine
        state = (engine._calls, list(engine._dtypes._dtypes)) if engine.is_root else None
        calls, dtypes = comm.bcast(state, root)
        if not engine.is_root:
            table = engine._dtypes  # the same object (the plans hold it), its contents the root's
            table._dtypes[:] = dtypes
            table._ids = {dtype: index for index, dtype in enumerate(dtypes)}
            engine._calls = calls
        return True

    def _report(self, lost: tuple, error, detected: float, seconds: float) -> None:
        engine = self._engine
        name = "shutdown not received by every worker" if error is None else _error_name(error)
        self.losses.append(Loss(lost, engine._size, name, detected, seconds))
        if engine.is_root:
            ranks = ", ".join(map(str, lost))
            sys.stderr.write(
                f"mpi_qinfer: rank{'s' if len(lost) > 1 else ''} {ranks} lost ({name}); going on with the "
                f"{engine._size} rank{'s' if engine._size > 1 else ''} left, after {seconds:.3f} s of recovery; "
                "the interrupted command is repeated on them\n"
            )
            sys.stderr.flush()


def _is_loss(error) -> bool:
    try:
        error_class = error.Get_error_class()
    except MPI.Exception:
        return False
    return error_class in _LOSS_CLASSES or error_class == _ERR_IN_STATUS


def _error_name(error) -> str:
    text = str(error).strip()
    return text.split(":", 1)[0] if text else f"MPI error class {error.Get_error_class()}"


def _agree(comm, flag: bool) -> bool:
    """``MPI_Comm_agree`` on ``flag``: the same answer on every rank left; False where a rank was lost."""
    try:
        return bool(comm.Agree(int(bool(flag))))
    except MPI.Exception as error:
        if error.Get_error_class() in _LOSS_CLASSES:  # raised alike on every rank (the agreement's promise)
            return False
        raise


def _translate(old, new, old_root: int):
    """The old rank of each rank of ``new``, and the old root's rank in ``new`` (``MPI.UNDEFINED``: lost)."""
    old_group, new_group = old.Get_group(), new.Get_group()
    try:
        old_ranks = MPI.Group.Translate_ranks(new_group, list(range(new.Get_size())), old_group)
        (root,) = MPI.Group.Translate_ranks(old_group, [old_root], new_group)
    finally:
        old_group.Free()
        new_group.Free()
    return list(old_ranks), root


_finalize_watch = {"armed": False}


@atexit.register
def _finalize_under_watchdog() -> None:
    # Registered when the engine is first imported, so it runs after the exit hooks registered
    # later (the engine's own release of its workers among them) and before mpi4py's MPI_Finalize,
    # which then finds MPI finalized. Only in a process that built an engine under ULFM.
    if not _finalize_watch["armed"] or MPI.Is_finalized() or not MPI.Is_initialized():
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream: nothing to flush
            pass
    if getattr(sys, "last_value", None) is not None:
        # The program ended with an uncaught exception (its traceback is printed): exit with status 1
        # now, not in an MPI_Finalize that may hang and be ended by a signal, which the launcher of a
        # fault-tolerant job does not count as a failure.
        os._exit(1)
    notice = (f"mpi_qinfer: MPI_Finalize did not return within {FINALIZE_GRACE_SECONDS} s (Open MPI after a "
              f"lost rank); ending process {os.getpid()} with SIGKILL")
    watchdog = subprocess.Popen(
        ["/bin/sh", "-c", f'sleep {FINALIZE_GRACE_SECONDS}; echo "{notice}" >&2; kill -KILL {os.getpid()}'],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        MPI.Finalize()
    finally:
        watchdog.kill()
        watchdog.wait()
