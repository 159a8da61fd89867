"""The qinfer-style model layer: base classes, the built-in models, priors and the bridge to qinfer.

No MPI here: everything in this layer works in a Python without an MPI library. The names of
:mod:`~mpi_qinfer.models.base`, :mod:`~mpi_qinfer.models.domains`, :mod:`~mpi_qinfer.models.builtin`,
:mod:`~mpi_qinfer.models.derived`, :mod:`~mpi_qinfer.models.rb` and :mod:`~mpi_qinfer.models.distributions`
are re-exported, so ``from mpi_qinfer.models import SimplePrecessionModel, FiniteOutcomeModel`` works;
so is every name listed in ``__all__`` here by the package itself (``mpi_qinfer.BetaDistribution``).
qinfer's utility functions are in :mod:`~mpi_qinfer.models.utils`, also importable as ``mpi_qinfer.utils``.
"""

from .base import DerivedModel, DifferentiableModel, FiniteOutcomeModel, Model, Simulatable
from .builtin import (
    BinomialModel,
    CoinModel,
    IsingChainModel,
    NDieModel,
    NoisyCoinModel,
    RamseyModel,
    SimpleInversionModel,
    SimplePrecessionModel,
    UnknownT2Model,
)
from .derived import (
    ALEApproximateModel,
    GaussianHyperparameterizedModel,
    GaussianRandomWalkModel,
    MLEModel,
    MultinomialModel,
    PoisonedModel,
    RandomWalkModel,
)
from .domains import Domain, IntegerDomain, MultinomialDomain, ProductDomain, RealDomain
from .rb import RandomizedBenchmarkingModel

__all__ = [
    "Simulatable", "Model", "FiniteOutcomeModel", "DifferentiableModel", "DerivedModel", "IntegerDomain",
    "SimplePrecessionModel", "RamseyModel", "IsingChainModel", "BinomialModel",
    "Domain", "RealDomain", "MultinomialDomain", "ProductDomain",
    "SimpleInversionModel", "UnknownT2Model", "CoinModel", "NoisyCoinModel", "NDieModel",
    "PoisonedModel", "MLEModel", "MultinomialModel", "RandomWalkModel", "GaussianRandomWalkModel",
    "RandomizedBenchmarkingModel", "ALEApproximateModel", "GaussianHyperparameterizedModel",
]

# The distributions, re-exported as a block of their own (their module's __all__ lists them).
from . import distributions as _distributions  # noqa: E402
from .distributions import *  # noqa: E402, F401, F403

__all__ += [name for name in _distributions.__all__ if name not in __all__]
