"""The ``python -m mpi_qinfer`` command line: one argparse parser with the sub-commands.

Each sub-command lives in its own module, which exposes
``add_arguments(parser)`` and ``main(args) -> int``; this module only wires
them together. ``bench`` is imported when the parser is built and, if its
module cannot be imported, is replaced by a stub that explains why.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys

from . import __version__, demo, info, runner

__all__ = ["build_parser", "main"]

_SUBCOMMANDS = (
    ("demo", demo, "estimate a precession frequency (or Ising couplings) with SMC, in parallel"),
    ("info", info, "show the MPI library, versions, and where every rank runs"),
    ("run", runner, "run a Python script or module on every rank; abort the job if any rank fails"),
)
_BENCH_HELP = "measure the proxy against the serial model, the communication floor and a pickle map"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m mpi_qinfer``.

    Returns
    -------
    argparse.ArgumentParser
        Parsing gives a namespace whose ``func`` is the chosen sub-command's
        ``main``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mpi_qinfer",
        description="MPI-parallel, qinfer-compatible Bayesian inference. "
        "Run under a launcher, e.g. `mpiexec -n 4 python -m mpi_qinfer demo`.",
    )
    parser.add_argument("--version", action="version", version=f"mpi_qinfer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in _SUBCOMMANDS:
        _add_subcommand(subparsers, name, module, help_text)
    _add_bench(subparsers)
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
    print(
        f"mpi_qinfer: error: the bench sub-command is unavailable: "
        f"importing mpi_qinfer.bench failed with {type(error).__name__}: {error}",
        file=sys.stderr,
    )
    return 2


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
        bad command line).
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
