"""The collective engine: one likelihood call moved over the ranks (broadcast, scatter, compute,
gather) and the command loop the workers serve in.

Beside :mod:`~mpi_qinfer.engine.core`: the exchange of one call, the shared worker loop, the wire
format, call plans, MPI datatypes, input checks, failure reports, idle waiting and partitions;
``protocol``, ``operations``, ``partition``, ``validation``, ``failures`` and ``command_loop`` are
MPI-free.
"""

import importlib as _importlib

#: The public names of this layer, all in :mod:`~mpi_qinfer.engine.core`, which imports mpi4py.MPI:
#: loaded on first use (PEP 562), so that the MPI-free modules beside it import without MPI.
_LAZY = {'Engine': 'core'}


def __getattr__(name):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..runtime.mpi_library import load_mpi

    load_mpi()  # a missing MPI library is one clear MPIUnavailableError, not mpi4py's traceback
    value = getattr(_importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ['Engine']
