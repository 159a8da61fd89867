"""mpi_qinfer: qinfer-style Bayesian likelihood models, evaluated in parallel over MPI.

The public API, re-exported; see :mod:`mpi_qinfer.parallel` for the proxy.
"""

import sys as _sys

from .distributed import DistributedSMCUpdater as DistributedSMCUpdater
from .distributions import (
    MultivariateNormalDistribution,
    NormalDistribution,
    ProductDistribution,
    UniformDistribution,
)
from .engine import Engine
from .errors import EngineClosedError, ModelMismatchError, MPIQinferError, RemoteError
from .heuristics import PGH, ExpSparseHeuristic
from .interop import register_with_qinfer
from .model import DerivedModel, DifferentiableModel, FiniteOutcomeModel, IntegerDomain, Model, Simulatable
from .parallel import DifferentiableMPIParallelizedModel, MPIParallelizedModel
from .smc import LiuWestResampler, SMCUpdater

__version__ = "0.1.0"

if "qinfer" in _sys.modules:  # never import qinfer ourselves: it is slow and noisy
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
    "Simulatable",
    "Model",
    "FiniteOutcomeModel",
    "DifferentiableModel",
    "DerivedModel",
    "IntegerDomain",
    "SMCUpdater",
    "LiuWestResampler",
    "UniformDistribution",
    "NormalDistribution",
    "MultivariateNormalDistribution",
    "ProductDistribution",
    "ExpSparseHeuristic",
    "PGH",
    "__version__",
]
