"""The warnings (and qinfer's resampler error) of the SMC layer, in a module every module of the layer can import.

They belong to :mod:`mpi_qinfer.smc.updater`, which re-exports them; their ``__module__`` says so, so
that they are documented and pickled there, as the warnings always were.
"""

from __future__ import annotations

__all__ = ["ApproximationWarning", "ResamplerWarning", "ResamplerError", "PriorDimensionWarning"]


class ApproximationWarning(RuntimeWarning):
    """The particle approximation has degenerated (negative or all-zero weights)."""


class ResamplerWarning(RuntimeWarning):
    """Resampling may not have done what was intended."""


class ResamplerError(RuntimeError):
    """A resampler failed beyond repair (qinfer's): e.g. the cloud's covariance is not finite.

    Parameters
    ----------
    msg : str
    cause : BaseException or None, optional
        Named in the message, as in qinfer.
    """

    def __init__(self, msg, cause=None):
        super().__init__(f"{msg}, caused by exception: {cause}" if cause is not None else msg)
        self._cause = cause


class PriorDimensionWarning(UserWarning):
    """A prior draws another number of parameters per particle than the model's ``n_modelparams``."""


for _cls in (ApproximationWarning, ResamplerWarning, ResamplerError, PriorDimensionWarning):
    _cls.__module__ = "mpi_qinfer.smc.updater"
del _cls
