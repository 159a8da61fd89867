"""The qinfer-style model layer: base classes, the built-in models, priors and the bridge to qinfer.

No MPI here: everything in this layer works in a Python without an MPI library. The names of
:mod:`~mpi_qinfer.models.base`, :mod:`~mpi_qinfer.models.domains` and :mod:`~mpi_qinfer.models.builtin`
are re-exported, so
``from mpi_qinfer.models import SimplePrecessionModel, FiniteOutcomeModel`` works.
"""

from .base import DerivedModel, DifferentiableModel, FiniteOutcomeModel, Model, Simulatable
from .builtin import BinomialModel, IsingChainModel, RamseyModel, SimplePrecessionModel
from .domains import Domain, IntegerDomain, MultinomialDomain, ProductDomain, RealDomain

__all__ = [
    "Simulatable", "Model", "FiniteOutcomeModel", "DifferentiableModel", "DerivedModel", "IntegerDomain",
    "SimplePrecessionModel", "RamseyModel", "IsingChainModel", "BinomialModel",
    "Domain", "RealDomain", "MultinomialDomain", "ProductDomain",
]
