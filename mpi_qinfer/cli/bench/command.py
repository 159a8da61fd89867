"""The command: run every selected case and section, print the report, write the JSON and the plot."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import sys
import traceback

import numpy as np
from mpi4py import MPI

from .cases import Settings, plan_cases, select
from .distributed import bench_distributed
from .measure import bench_case
from .report import all_equal, check_targets, format_report, jsonable, log, plot_cases
from .sections import bench_balance, bench_design, bench_idle, bench_smc
from .trials import bench_trials

__all__ = ["run", "add_arguments", "main", "build_parser"]


def _environment(comm) -> dict:
    import mpi4py

    from ..._version import __version__

    hosts = comm.gather(socket.gethostname(), 0)
    return {
        "ranks": comm.Get_size(),
        "mpi_library": MPI.Get_library_version().strip().splitlines()[0].strip(),
        "mpi_version": "%d.%d" % MPI.Get_version(),
        "host": socket.gethostname(),
        "hosts": sorted(set(hosts)) if hosts else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mpi4py": mpi4py.__version__,
        "mpi_qinfer": __version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def run(settings: Settings, patterns=None, comm=None) -> dict | None:
    """Run the benchmark (collective over ``comm``).

    Parameters
    ----------
    settings : Settings
    patterns : list of str, optional
        ``--cases``: which cases and sections to run (see :func:`~mpi_qinfer.cli.bench.cases.select`).
        Sections are named ``smc``, ``smc-design``, ``idle``, ``balance``, ``distributed`` and ``trials``.
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``; duplicated for the benchmark's own messages.

    Returns
    -------
    dict or None
        The whole result (what ``--json`` writes) on the root; None elsewhere.
    """
    world = MPI.COMM_WORLD if comm is None else comm
    comm = world.Dup()
    try:
        is_root = comm.Get_rank() == 0
        environment = _environment(comm)
        cases = plan_cases(settings.quick) if is_root else None
        cases = comm.bcast(cases, 0)
        chosen = select([c.name for c in cases] + ["smc", "smc-design", "idle", "balance", "distributed", "trials"],
                        patterns)
        result = None
        if is_root:
            result = {**environment, "quick": settings.quick, "seed": settings.seed,
                      "cases": [], "skipped": [], "smc": None, "smc-design": None, "idle": None, "balance": None,
                      "distributed": None, "trials": None}
            if comm.Get_size() == 1:
                result["note"] = ("1 rank: the proxy and auto run the serial model on the root (the engine has "
                                  "no workers), floor and pickle run their collectives on one rank; the ratios "
                                  "show overhead only, no speedup is possible")
        for case in cases:
            if case.name not in chosen:
                continue
            if case.skip:
                if is_root:
                    log(f"skipping {case.name}: {case.skip}")
                    result["skipped"].append({"name": case.name, "reason": case.skip})
                continue
            if is_root:
                log(f"{case.name} ...")
            row = bench_case(comm, case, settings)
            if is_root:
                result["cases"].append(row)
        for name, section in (("smc", bench_smc), ("smc-design", bench_design), ("idle", bench_idle),
                              ("balance", bench_balance), ("distributed", bench_distributed),
                              ("trials", bench_trials)):
            if name in chosen:
                if is_root:
                    log(f"{name} ...")
                result_part = section(comm, settings)
                if is_root:
                    result[name] = result_part
        if is_root:
            result["all_bitwise_equal"] = all_equal(result)
            result["targets"] = check_targets(result)
        return result
    finally:
        comm.Free()


def _case_patterns(text: str) -> list[str]:
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError("give at least one case name or substring")
    return patterns


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return parse


def add_arguments(parser) -> None:
    """Add ``bench``'s options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.epilog = ("Example: `mpiexec -n 2 python -m mpi_qinfer bench --quick --json bench.json --plot bench.png`. "
                     "Cases are named like cheap-1e4x100 (one outcome, split by particles), cheap-1e4x1-o6 (six "
                     "outcomes), cheap-1e2x1000-o2-exps (split by experiments) and costly-1e3x1; the sections are "
                     "smc, smc-design, idle, balance, distributed and trials.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller cases and shorter runs (no 1e6 particles, no call over 1e7 likelihood values, "
                        "no costly-1e5x1)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write every number to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="plot latency versus particles (needs matplotlib)")
    parser.add_argument("--cases", type=_case_patterns, default=None, metavar="LIST",
                        help="comma-separated case or section names, or substrings of them "
                        "(e.g. 'cheap-1e3x1,costly,smc'); default: everything")
    parser.add_argument("--seed", type=int, default=1234, help="seed of all data (default: %(default)s)")
    parser.add_argument("--rounds", type=_positive(int), default=None,
                        help="rounds per case, each measuring every method once in a rotated order "
                        "(default: 3; cases whose serial call takes over 0.25 s use 1)")
    parser.add_argument("--idle-seconds", type=_positive(float), default=1.0,
                        help="how long the root sleeps while idle workers' CPU is measured (default: %(default)s)")
    parser.add_argument("--smc-particles", type=_positive(int), default=None,
                        help="particles of the end-to-end SMC run (default: 2000, --quick 1000)")
    parser.add_argument("--smc-experiments", type=_positive(int), default=None,
                        help="experiments of the end-to-end SMC run (default: 40, --quick 20)")
    parser.add_argument("--design-particles", type=_positive(int), default=None,
                        help="particles of the SMC run with information-gain design (default: 10000)")
    parser.add_argument("--design-experiments", type=_positive(int), default=None,
                        help="experiments of the SMC run with information-gain design (default: 6, --quick 3)")


def main(args, comm=None) -> int:
    """Run the benchmark with the options in ``args``; print the report on the root.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser built with :func:`add_arguments`.
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    int
        0, or 1 when any answer differed from the serial model's (the same on every rank).
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    settings = Settings.from_args(args)
    try:
        result = run(settings, args.cases, comm)
    except BaseException:
        if comm.Get_size() > 1:
            # The other ranks may be waiting in a collective the root will never reach.
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise
    status = 0
    if result is not None:
        print(format_report(result), flush=True)
        if args.json is not None:
            with open(args.json, "w") as out:
                json.dump(result, out, indent=1, default=jsonable)
            print(f"JSON written to {args.json}")
        if args.plot is not None and plot_cases(result, args.plot):
            print(f"plot written to {args.plot}")
        status = 0 if result["all_bitwise_equal"] else 1
    return int(comm.bcast(status, 0))


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m mpi_qinfer.cli.bench``."""
    # Described by the first line of the package's docstring (the package is imported before this runs).
    description = sys.modules[__package__].__doc__.strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m mpi_qinfer.cli.bench", description=description)
    add_arguments(parser)
    return parser
