"""Loading mpi4py's MPI on demand, with one actionable line when there is no MPI library.

``from mpi4py import MPI`` initialises MPI, and in a Python without an MPI
library (mpi4py's binary wheel installed without the ``mpich`` extra, or a
site MPI module not loaded) it fails with a multi-line ``RuntimeError``
listing every ``libmpi.so`` it tried. The package therefore imports MPI only
where it is needed, through :func:`load_mpi`, which turns that failure into
:class:`~mpi_qinfer.errors.MPIUnavailableError` with :data:`ADVICE`.
"""

from __future__ import annotations

import sys

from ..errors import MPIUnavailableError

__all__ = ["ADVICE", "load_mpi", "mpi_is_loaded", "unavailable_message"]

#: What to do about a missing MPI library, in one line.
ADVICE = (
    "install one with `pip install 'mpi_qinfer[mpich]'`, or load your site's MPI module "
    "and rebuild mpi4py against it: `MPICC=$(which mpicc) pip install --no-binary=mpi4py --force-reinstall mpi4py`"
)


def unavailable_message(error: BaseException) -> str:
    """The one-line explanation of an MPI import failure.

    Parameters
    ----------
    error : BaseException
        What ``from mpi4py import MPI`` raised.

    Returns
    -------
    str
        ``"mpi_qinfer: no MPI library could be loaded (<first line of error>); <ADVICE>"``.
    """
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"mpi_qinfer: no MPI library could be loaded ({first_line}); {ADVICE}"


def load_mpi():
    """``mpi4py.MPI``, imported (and so MPI initialised) now if it was not yet.

    Returns
    -------
    module
        ``mpi4py.MPI``.

    Raises
    ------
    MPIUnavailableError
        If mpi4py or its MPI library cannot be loaded; the message is
        :func:`unavailable_message`, the original error its ``__cause__``.
    """
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as error:
        raise MPIUnavailableError(unavailable_message(error)) from error
    return MPI


def mpi_is_loaded() -> bool:
    """Whether ``mpi4py.MPI`` has been imported in this process (without importing it).

    Returns
    -------
    bool
    """
    return sys.modules.get("mpi4py.MPI") is not None
