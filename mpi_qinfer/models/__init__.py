"""The qinfer-style model layer: base classes, the built-in models, priors and the bridge to qinfer.

No MPI here: everything in this layer works in a Python without an MPI library. The names of
:mod:`~mpi_qinfer.models.base`, :mod:`~mpi_qinfer.models.domains`, :mod:`~mpi_qinfer.models.builtin`,
:mod:`~mpi_qinfer.models.derived` and :mod:`~mpi_qinfer.models.rb` are re-exported, so
``from mpi_qinfer.models import SimplePrecessionModel, FiniteOutcomeModel`` works.
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
