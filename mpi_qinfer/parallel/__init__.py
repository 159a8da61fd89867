"""The model proxy, :class:`~mpi_qinfer.parallel.proxy.MPIParallelizedModel`, and its root-side
policies: the route cache, the serial threshold and the load balance (these three are MPI-free);
the trial farm, :class:`~mpi_qinfer.parallel.trials.TrialFarm`, which spreads independent
trials over groups of ranks.
"""

import importlib as _importlib

#: The public names of this layer, in :mod:`~mpi_qinfer.parallel.proxy` and
#: :mod:`~mpi_qinfer.parallel.trials`, which import mpi4py.MPI:
#: loaded on first use (PEP 562), so that the MPI-free modules beside it import without MPI.
_LAZY = {'MPIParallelizedModel': 'proxy', 'DifferentiableMPIParallelizedModel': 'proxy', 'TrialFarm': 'trials'}


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


__all__ = ['MPIParallelizedModel', 'DifferentiableMPIParallelizedModel', 'TrialFarm']
