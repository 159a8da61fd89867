"""The ``python -m mpi_qinfer`` command line: one argparse parser with the sub-commands.

Each sub-command lives in its own module, which exposes
``add_arguments(parser)`` and ``main(args) -> int``; this module only wires
them together. None of them imports MPI at import time, so ``--help`` works
in a Python without an MPI library. ``bench`` (which does import MPI) is
imported only when it is the command given, or when the whole parser is
built; if its module cannot be imported, it is replaced by a stub that
explains why.

Under a launcher every rank parses the same command line, so usage errors
and help texts are printed by rank 0 only (read from the launcher's
environment, see :func:`~mpi_qinfer.runtime.launcher.launcher_rank`): one copy, not
one per rank. Every rank still exits with status 2.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys

from .._version import __version__
from ..errors import MPIUnavailableError
from ..runtime.launcher import print_on_rank_0
from . import demo, info
from . import run as runner

__all__ = ["RootOnlyArgumentParser", "build_parser", "main"]

_SUBCOMMANDS = (
    ("demo", demo, "estimate Ising couplings (or a precession frequency) with SMC, serially and in parallel, "
                   "and show the speed-up"),
    ("info", info, "show the MPI library, versions, idle mode, and where every rank runs with its CPUs and threads"),
    ("run", runner, "run a Python script or module on every rank; abort the job if any rank fails"),
)
_BENCH_HELP = "measure the proxy against the serial model, the communication floor and a pickle map"


class RootOnlyArgumentParser(argparse.ArgumentParser):
    """An argument parser whose messages (errors, help, version) only rank 0 prints.

    The sub-command parsers are of the same class (argparse's default).
    """

    def _print_message(self, message, file=None):
        if message:
            print_on_rank_0(message, file if file is not None else sys.stderr)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``python -m mpi_qinfer``.

    Parameters
    ----------
    command : str, optional
        The sub-command about to be parsed, if known: any other than
        ``bench`` leaves the bench module (and so MPI) unimported. Default:
        the whole parser.

    Returns
    -------
    argparse.ArgumentParser
        Parsing gives a namespace whose ``func`` is the chosen sub-command's
        ``main``.
    """
    parser = RootOnlyArgumentParser(
        prog="python -m mpi_qinfer",
        description="MPI-parallel, qinfer-compatible Bayesian inference. "
        "Run under a launcher, e.g. `mpiexec -n 4 python -m mpi_qinfer demo`.",
    )
    parser.add_argument("--version", action="version", version=f"mpi_qinfer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in _SUBCOMMANDS:
        _add_subcommand(subparsers, name, module, help_text)
    if command in (None, "bench"):
        _add_bench(subparsers)
    else:  # listed in the help, never chosen in this parse
        subparsers.add_parser("bench", help=_BENCH_HELP)
    return parser


def _add_subcommand(subparsers, name: str, module, help_text: str) -> argparse.ArgumentParser:
    sub = subparsers.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    module.add_arguments(sub)
    sub.set_defaults(func=module.main)
    return sub


def _add_bench(subparsers) -> None:
    try:
        bench = importlib.import_module(f"{__package__}.bench")
    except Exception as error:  # noqa: BLE001 - a broken optional sub-command must not break the others
        # No option prefix at all, so that whatever follows `bench` (even -h) reaches the stub.
        sub = subparsers.add_parser("bench", help=f"{_BENCH_HELP} (unavailable)", add_help=False,
                                    prefix_chars="\0")
        sub.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sub.set_defaults(func=functools.partial(_bench_unavailable, error))
        return
    _add_subcommand(subparsers, "bench", bench, _BENCH_HELP)


def _bench_unavailable(error: BaseException, args=None) -> int:
    from ..runtime.mpi_library import unavailable_message

    if isinstance(error, RuntimeError) and "MPI" in str(error):  # mpi4py found no MPI library
        print_on_rank_0(f"{unavailable_message(error)}\n")
        return 1
    print_on_rank_0(f"mpi_qinfer: error: the bench sub-command is unavailable: "
                    f"importing mpi_qinfer.cli.bench failed with {type(error).__name__}: {error}\n")
    return 2


def _command_of(argv: list[str]) -> str:
    """The sub-command named in ``argv`` (its first word not starting with ``-``), or ``""``."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m mpi_qinfer`` with ``argv``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status of the sub-command (argparse exits with 2 itself on a
        bad command line); 1, after one line saying how to get one, when the
        sub-command needs an MPI library and there is none.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MPIUnavailableError as error:
        print_on_rank_0(f"{error}\n")
        return 1
