"""mpi_qinfer: qinfer-style Bayesian likelihood models, evaluated in parallel over MPI.

The public API, re-exported; see :mod:`mpi_qinfer.parallel` for the proxy.

MPI is imported only when a name that needs it is first used
(:class:`MPIParallelizedModel`, :class:`DifferentiableMPIParallelizedModel`,
:class:`Engine`, :func:`register_with_qinfer`): the model layer, SMC, priors,
heuristics and the command line's ``--help`` work in a Python without an MPI
library, and importing the package does not initialise MPI.
"""

import importlib as _importlib
import sys as _sys

from .distributed import DistributedSMCUpdater
from .distributions import (
    MultivariateNormalDistribution,
    NormalDistribution,
    ProductDistribution,
    UniformDistribution,
)
from .errors import EngineClosedError, ModelMismatchError, MPIQinferError, MPIUnavailableError, RemoteError
from .heuristics import PGH, BestCandidateHeuristic, ExpSparseHeuristic
from .interop import register_with_qinfer
from .model import DerivedModel, DifferentiableModel, FiniteOutcomeModel, IntegerDomain, Model, Simulatable
from .progress import Progress
from .smc import LiuWestResampler, SMCUpdater

__version__ = "0.1.0"

#: The public names whose modules import mpi4py.MPI, and those modules.
_NEEDS_MPI = {
    "MPIParallelizedModel": "parallel",
    "DifferentiableMPIParallelizedModel": "parallel",
    "Engine": "engine",
}


def __getattr__(name):
    """Import the MPI-dependent names on first use (PEP 562)."""
    module_name = _NEEDS_MPI.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .mpi_library import load_mpi

    load_mpi()  # a missing MPI library is one clear MPIUnavailableError, not mpi4py's traceback
    value = getattr(_importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_NEEDS_MPI))


if "qinfer" in _sys.modules:  # never import qinfer ourselves: it is slow and noisy
    # The user works with qinfer: make our models pass its isinstance checks now (no MPI needed).
    register_with_qinfer()

__all__ = [
    "MPIParallelizedModel",
    "DifferentiableMPIParallelizedModel",
    "register_with_qinfer",
    "Engine",
    "RemoteError",
    "ModelMismatchError",
    "EngineClosedError",
    "MPIQinferError",
    "MPIUnavailableError",
    "Simulatable",
    "Model",
    "FiniteOutcomeModel",
    "DifferentiableModel",
    "DerivedModel",
    "IntegerDomain",
    "SMCUpdater",
    "DistributedSMCUpdater",
    "LiuWestResampler",
    "UniformDistribution",
    "NormalDistribution",
    "MultivariateNormalDistribution",
    "ProductDistribution",
    "ExpSparseHeuristic",
    "PGH",
    "BestCandidateHeuristic",
    "Progress",
    "__version__",
]
