"""The warnings of the SMC layer, in a module of their own so that every module of the layer can raise them.

They belong to :mod:`mpi_qinfer.smc.updater`, which re-exports them; their ``__module__`` says so, so
that they are documented and pickled there, as they always were.
"""

from __future__ import annotations

__all__ = ["ApproximationWarning", "ResamplerWarning"]


class ApproximationWarning(RuntimeWarning):
    """The particle approximation has degenerated (negative or all-zero weights)."""


class ResamplerWarning(RuntimeWarning):
    """Resampling may not have done what was intended."""


for _cls in (ApproximationWarning, ResamplerWarning):
    _cls.__module__ = "mpi_qinfer.smc.updater"
del _cls
