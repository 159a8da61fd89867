"""The ``info`` sub-command: which MPI this is, and where every rank runs.

Also home of :func:`check_launcher`, the check for the classic cluster
failure in which mpi4py's MPI does not match the launcher and every process
silently starts as a singleton world of size 1.
"""

from __future__ import annotations

import os
import sys

import mpi4py
import numpy as np
from mpi4py import MPI

__all__ = ["LAUNCHER_SIZE_VARIABLES", "add_arguments", "check_launcher", "main", "rank_table"]

#: Environment variables in which launchers announce the number of processes.
LAUNCHER_SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def check_launcher(comm=None, environ=None) -> str | None:
    """A warning if the world has one process while the launcher started several.

    That combination means the MPI library mpi4py was built against is not
    the one the launcher speaks (e.g. the ``mpich`` wheel under Open MPI's
    ``mpirun``, or ``srun`` without PMI support): N independent singletons
    are running, each doing all the work alone.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The world to check; default ``MPI.COMM_WORLD``. Only ``Get_size`` is used.
    environ : mapping, optional
        The environment to read; default ``os.environ``.

    Returns
    -------
    str or None
        The warning text, or None when nothing looks wrong.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    environ = os.environ if environ is None else environ
    if comm.Get_size() != 1:
        return None
    for name in LAUNCHER_SIZE_VARIABLES:
        wanted = _as_int(environ.get(name))
        if wanted is not None and wanted > 1:
            return (
                f"WARNING: this MPI world has 1 process, but {name}={wanted} says the launcher "
                f"started {wanted}. mpi4py's MPI library ({_library_line()}) does not match the "
                "launcher, so every process runs alone as a singleton. Rebuild mpi4py against the "
                "MPI of your launcher (or launch with that MPI's own mpiexec)."
                + (" Under srun, also choose a PMI plugin your MPI speaks: srun --mpi=pmi2 for MPICH "
                   "(and the mpich wheel), --mpi=pmix for Open MPI 5; srun --mpi=list lists them."
                   if name == "SLURM_NTASKS" else "")
            )
    return None


def warn_if_misslaunched(comm=None) -> None:
    """Print :func:`check_launcher`'s warning to stderr, if there is one.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``.
    """
    warning = check_launcher(comm)
    if warning is not None:
        print(f"\n{'!' * 72}\n{warning}\n{'!' * 72}\n", file=sys.stderr, flush=True)


def _as_int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _library_line() -> str:
    return MPI.Get_library_version().strip().splitlines()[0].strip()


def rank_table(comm=None) -> list[tuple[int, str, int]] | None:
    """``(rank, processor name, pid)`` of every rank, gathered to rank 0 (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    list of tuple or None
        On rank 0 one row per rank, in rank order; None elsewhere.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    row = (comm.Get_rank(), MPI.Get_processor_name(), os.getpid())
    return comm.gather(row, root=0)


def describe() -> list[tuple[str, str]]:
    """``(label, value)`` lines about the MPI library and the Python stack of this process.

    Returns
    -------
    list of tuple of str
    """
    standard = "{}.{}".format(*MPI.Get_version())
    config = mpi4py.get_config()
    return [
        ("MPI library", _library_line()),
        ("MPI standard", f"{standard} (mpi4py built for {MPI.VERSION}.{MPI.SUBVERSION})"),
        ("mpi4py", f"{mpi4py.__version__} in {os.path.dirname(mpi4py.__file__)}"),
        ("mpi4py config", ", ".join(f"{k}={v}" for k, v in config.items()) or "(defaults)"),
        ("numpy", np.__version__),
        ("python", sys.version.split()[0] + f" ({sys.executable})"),
    ]


def add_arguments(parser) -> None:
    """Add ``info``'s options (none) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.epilog = "Run it under the launcher you mean to use: `mpiexec -n 4 python -m mpi_qinfer info`."


def main(args=None) -> int:
    """Print the report on rank 0 of ``MPI.COMM_WORLD`` (collective).

    Parameters
    ----------
    args : argparse.Namespace, optional
        Unused.

    Returns
    -------
    int
        0.
    """
    comm = MPI.COMM_WORLD
    warn_if_misslaunched(comm)
    rows = rank_table(comm)
    if rows is None:
        return 0
    width = max(len(label) for label, _ in describe())
    for label, value in describe():
        print(f"{label:<{width}}  {value}")
    print(f"{'ranks':<{width}}  {comm.Get_size()}")
    print()
    host_width = max(4, *(len(host) for _, host, _ in rows))
    print(f"{'rank':>4}  {'host':<{host_width}}  pid")
    for rank, host, pid in rows:
        print(f"{rank:>4}  {host:<{host_width}}  {pid}")
    return 0
