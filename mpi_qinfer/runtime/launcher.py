"""What the launcher (``mpiexec``, ``srun``) says about this job, read before or without MPI.

Two jobs, both without initialising MPI unless asked to:

- :func:`launcher_rank` reads the rank that the launcher put in the
  environment, so that a command-line error can be printed by rank 0 alone
  before MPI is even imported (``srun -n 64`` must not print it 64 times);
- :func:`check_launcher` detects the classic cluster failure in which
  mpi4py's MPI does not match the launcher and every process silently
  starts as a singleton world of size 1.
"""

from __future__ import annotations

import os
import sys
import time

from .mpi_library import load_mpi

__all__ = [
    "LAUNCHER_RANK_VARIABLES",
    "LAUNCHER_SIZE_VARIABLES",
    "check_launcher",
    "launcher_rank",
    "library_line",
    "print_on_rank_0",
    "warn_if_misslaunched",
]

#: Environment variables in which launchers announce the number of processes.
LAUNCHER_SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")

#: Environment variables in which launchers announce this process's rank, most specific first
#: (Open MPI, PMIx, MPICH's Hydra and other PMI launchers, Slurm's srun).
LAUNCHER_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")


def launcher_rank(environ=None) -> int | None:
    """This process's rank as the launcher announced it, without touching MPI.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; default ``os.environ``.

    Returns
    -------
    int or None
        The first of :data:`LAUNCHER_RANK_VARIABLES` that holds an integer,
        or None when no launcher said (a plain ``python`` process).
    """
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_RANK_VARIABLES:
        rank = _as_int(environ.get(name))
        if rank is not None:
            return rank
    return None


#: How long the ranks that print nothing wait before their error exit (see print_on_rank_0).
_SILENT_RANK_GRACE_SECONDS = 0.3


def print_on_rank_0(message: str, file=None, environ=None) -> bool:
    """Print ``message`` unless the launcher says this process is not rank 0.

    Meant for errors found before MPI is initialised: every rank finds the
    same error, and one copy is enough. A process that no launcher numbered
    prints, so the message is never lost.

    Parameters
    ----------
    message : str
        Printed as is (add the newline yourself).
    file : file-like, optional
        Default ``sys.stderr``.
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    bool
        Whether it was printed.
    """
    if launcher_rank(environ) not in (None, 0):
        # The caller exits with an error next. A launcher that sees one rank fail
        # may end the others at once (Open MPI's does), so the silent ranks wait a
        # moment: rank 0's message gets out before the job is torn down.
        time.sleep(_SILENT_RANK_GRACE_SECONDS)
        return False
    file = sys.stderr if file is None else file
    file.write(message)
    file.flush()
    return True


def check_launcher(comm=None, environ=None) -> str | None:
    """A warning if the world has one process while the launcher started several.

    That combination means the MPI library mpi4py was built against is not
    the one the launcher speaks (e.g. the ``mpich`` wheel under Open MPI's
    ``mpirun``, or ``srun`` without PMI support): N independent singletons
    are running, each doing all the work alone.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The world to check; default ``MPI.COMM_WORLD`` (importing MPI, see
        :func:`~mpi_qinfer.runtime.mpi_library.load_mpi`). Only
        ``Get_size`` is used.
    environ : mapping, optional
        The environment to read; default ``os.environ``.

    Returns
    -------
    str or None
        The warning text, naming the fixes, or None when nothing looks wrong.
    """
    if comm is None:
        comm = load_mpi().COMM_WORLD
    environ = os.environ if environ is None else environ
    if comm.Get_size() != 1:
        return None
    for name in LAUNCHER_SIZE_VARIABLES:
        wanted = _as_int(environ.get(name))
        if wanted is not None and wanted > 1:
            return (
                f"WARNING: this MPI world has 1 process, but {name}={wanted} says the launcher "
                f"started {wanted}. mpi4py's MPI library ({library_line()}) does not match the "
                "launcher, so every process runs alone as a singleton. Fixes: launch with that "
                "library's own mpiexec; under Slurm with the mpich wheel, use `srun --mpi=pmi2` "
                "(`srun --mpi=list` shows the plugins your Slurm has); or rebuild mpi4py against "
                "the MPI of your launcher (`module load` it, then "
                "`pip install --no-binary=mpi4py --force-reinstall mpi4py`)."
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


def library_line() -> str:
    """The first line of the MPI library's version string (imports MPI).

    Returns
    -------
    str
    """
    return load_mpi().Get_library_version().strip().splitlines()[0].strip()


def _as_int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
