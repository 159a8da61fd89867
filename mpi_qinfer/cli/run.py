"""The ``run`` sub-command: run a user's script or module on every rank, aborting the job on failure.

Like ``python -m mpi4py``: the code runs with ``runpy`` as ``__main__`` and
``sys.argv`` set to the target and its arguments. If an exception escapes on
any rank, that rank prints its traceback with every line prefixed
``[rank N]`` and calls ``MPI.COMM_WORLD.Abort``, so the whole job ends
instead of leaving the other ranks waiting in a collective until the batch
allocation runs out. Choosing ``run`` is the user's opt-in to this global
behaviour; the library itself never aborts.

Before anything runs, every rank checks that the target exists; if it is
missing on any rank, rank 0 prints one line and every rank exits with
status 2 (no traceback, no abort). Usage errors are likewise printed by
rank 0 only.

``run`` also installs :mod:`mpi_qinfer.runtime.termination` on every rank first:
``SIGTERM``, ``SIGINT`` or ``SIGUSR1`` stops the run at its next safe point, the
target's ``with`` blocks release the workers, and the job ends with
status ``128 + signum`` (a second signal aborts at once).

A target that ends on one rank (returns, or ``sys.exit(0)``) while other
ranks still run it: that rank waits for the others before it leaves, and a
rank that needs it in an engine or a distributed updater (building one, or
at a safe point of the root) raises
:class:`~mpi_qinfer.runtime.termination.RankExited`, which aborts the job as any
exception does, instead of waiting for it forever.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import runpy
import signal
import sys
import time
import traceback

from ..errors import MPIUnavailableError
from ..runtime import termination
from ..runtime.launcher import print_on_rank_0, warn_if_misslaunched
from ..runtime.mpi_library import load_mpi

__all__ = ["add_arguments", "main", "run_target", "exit_status", "missing_target"]

#: How every message of this command starts.
_PROG = "python -m mpi_qinfer run"


def add_arguments(parser) -> None:
    """Add ``run``'s arguments to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.usage = "%(prog)s (SCRIPT | -m MODULE) [ARG ...]"
    parser.epilog = (
        "Everything after SCRIPT or MODULE is passed to it in sys.argv. "
        "Example: `mpiexec -n 4 python -m mpi_qinfer run estimate.py --particles 20000`."
    )
    parser.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE [ARG ...]",
                        help="run a library module as a script, like `python -m`")
    parser.add_argument("script", nargs="?", help="path of the Python script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")


def main(args) -> int:
    """Run the target of ``args`` on this rank; abort the whole job if it fails.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built with :func:`add_arguments`.

    Returns
    -------
    int
        0 when the target finished (or exited with status 0), 2 for a bad
        command line or a target missing on some rank, 1 without an MPI
        library, ``128 + signum`` when a signal stopped the run (143 for
        ``SIGTERM``, 130 for ``SIGINT``, 138 for ``SIGUSR1``; see
        :mod:`mpi_qinfer.runtime.termination`),
        on the ranks that got it or learned of it. A failing target never
        returns: the job is aborted.
    """
    if args.module is not None:
        if not args.module or args.script is not None:
            return _usage_error("-m needs exactly one MODULE (then its arguments)")
        target, argv, is_module = args.module[0], list(args.module), True
    elif args.script is not None:
        target, argv, is_module = args.script, [args.script, *args.args], False
    else:
        return _usage_error("give a SCRIPT or -m MODULE to run")
    status = _preflight(target, is_module)
    if status is not None:
        return status
    termination.install()  # on every rank, before the target builds any proxy
    termination.watch_exits(load_mpi().COMM_WORLD)  # a rank that ends early is not waited for forever
    status = None
    # What the target built stays alive until _finish: a root engine it never shut down must be found
    # there to release its workers (its globals, or the frames of the exception that ended it).
    kept = None
    try:
        kept = run_target(target, argv, is_module)
    except SystemExit as exc:
        kept = exc.__traceback__
        status = exit_status(exc.code)
        stopped_by = termination.stopped_by()
        if status and stopped_by is not None and status == termination.exit_status(stopped_by):
            pass  # the target stopped for the signal itself (`run -m mpi_qinfer demo --checkpoint ...`)
        elif status:
            if not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
            _abort(status, f"exited with status {status}")
        else:
            status = None
    except termination.TerminationRequested as exc:
        # The target unwound (its `with` blocks released the workers): end this rank, no abort.
        kept = exc.__traceback__
        termination.report(exc)
        status = exc.exit_status
    except KeyboardInterrupt as exc:
        _abort(128 + signal.SIGINT, _user_traceback(exc))
    except BaseException as exc:  # noqa: BLE001 - whatever escapes the user's code ends the job
        _abort(1, _user_traceback(exc))
    if status is None:
        stopped_by = termination.stopped_by()
        status = 0 if stopped_by is None else termination.exit_status(stopped_by)
    status = _finish(status)
    del kept
    return status


def _finish(status: int) -> int:
    """The target has ended on this rank: release the workers it left serving, and wait for every rank.

    The other ranks learn of it (:func:`mpi_qinfer.runtime.termination.finish`): one
    that still needs this rank in an engine or a distributed updater raises
    :class:`~mpi_qinfer.runtime.termination.RankExited` instead of waiting forever,
    and the job is aborted.
    """
    # What the library's exit hooks would do, done now: a root that never shut its engine down
    # releases the workers serving it, which could not reach the final wait otherwise.
    for name in ("mpi_qinfer.distributed.loop", "mpi_qinfer.engine.core"):
        module = sys.modules.get(name)
        if module is not None:
            module._release_workers_at_exit()
    termination.finish(status)
    return status


def _preflight(target: str, is_module: bool) -> int | None:
    """Everything checked before the target runs (collective): an exit status, or None to go on.

    No MPI library: one line, status 1. The target missing on any rank: one
    line from rank 0, status 2 on every rank. Then the singleton warning.
    """
    try:
        comm = load_mpi().COMM_WORLD
    except MPIUnavailableError as error:
        print_on_rank_0(f"{error}\n")
        return 1
    problem = _agree_on_target(comm, target, is_module)
    if problem is not None:
        if comm.Get_rank() == 0:
            print(f"{_PROG}: error: {problem}", file=sys.stderr, flush=True)
        return 2
    warn_if_misslaunched(comm)
    return None


def missing_target(target: str, is_module: bool = False) -> str | None:
    """Why ``target`` cannot be run from this process, or None if it can be found.

    Parameters
    ----------
    target : str
        A script's path, or a module's name.
    is_module : bool
        Whether ``target`` is a module name (``-m``).

    Returns
    -------
    str or None
        E.g. ``"no such file: 'missing.py'"`` or ``"no module named 'pkg.mod'"``.
    """
    if not is_module:
        return None if os.path.exists(target) else f"no such file: {target!r}"
    try:
        found = importlib.util.find_spec(target) is not None
    except (ImportError, ValueError):  # a missing parent package, or an empty or relative name
        found = False
    return None if found else f"no module named {target!r}"


def _agree_on_target(comm, target: str, is_module: bool) -> str | None:
    """:func:`missing_target` on every rank, agreed on (collective): the message rank 0 prints, or None."""
    problems = comm.allgather(missing_target(target, is_module))
    missing_on = [rank for rank, problem in enumerate(problems) if problem is not None]
    if not missing_on:
        return None
    problem = problems[missing_on[0]]
    if len(missing_on) < len(problems):
        problem += f" on rank(s) {', '.join(map(str, missing_on))}"
    return problem


def run_target(target: str, argv: list[str], is_module: bool = False) -> dict:
    """Run a script or module as ``__main__`` with ``sys.argv = argv`` (restored afterwards).

    Parameters
    ----------
    target : str
        The script's path, or the module's name.
    argv : list of str
        The target's ``sys.argv``; ``argv[0]`` names the target.
    is_module : bool
        Whether ``target`` is a module name (``-m``).

    Returns
    -------
    dict
        The target's globals at its end (as :func:`runpy.run_path` returns them).
    """
    saved_argv, saved_path0 = sys.argv[:], sys.path[0]
    sys.argv[:] = argv
    try:
        if is_module:
            return runpy.run_module(target, run_name="__main__", alter_sys=True)
        # As `python script.py` does: the script's own directory comes first on the path.
        sys.path[0] = os.path.realpath(os.path.dirname(target))
        return runpy.run_path(target, run_name="__main__")
    finally:
        sys.argv[:] = saved_argv
        sys.path[0] = saved_path0


def exit_status(code) -> int:
    """The process exit status Python gives ``SystemExit(code)``.

    Parameters
    ----------
    code : int, str or None

    Returns
    -------
    int
        ``code`` for an int, 0 for None, 1 for anything else (a message).
    """
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _user_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` without the frames of this module and runpy."""
    tb = exc.__traceback__
    plumbing = {__file__, runpy.__file__}
    while tb is not None and tb.tb_next is not None and (
            tb.tb_frame.f_code.co_filename in plumbing or tb.tb_frame.f_code.co_filename.startswith("<frozen runpy")):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _usage_error(message: str) -> int:
    print_on_rank_0(f"{_PROG}: error: {message}\n")
    return 2


#: Time for mpiexec/srun to forward a failing rank's report before MPI_Abort.
_FORWARD_GRACE_SECONDS = 0.2


def _abort(status: int, report: str) -> None:
    MPI = load_mpi()
    rank = MPI.COMM_WORLD.Get_rank()
    prefix = f"[rank {rank}] "
    text = "".join(prefix + line + "\n" for line in report.rstrip("\n").splitlines())
    text += f"{prefix}aborting the MPI job (MPI_Abort with status {status})\n"
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()
    # The launcher forwards our output asynchronously and may drop what it has
    # not forwarded yet when the abort tears the job down: give it a moment.
    time.sleep(_FORWARD_GRACE_SECONDS)
    MPI.COMM_WORLD.Abort(status)
