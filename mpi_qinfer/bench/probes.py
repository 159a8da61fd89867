"""The probe models of the sections: a rank's CPU clock as a likelihood, and an Ising chain made slower."""

from __future__ import annotations

import time

import numpy as np

from ..models import IsingChainModel, SimplePrecessionModel

__all__ = ["ProcessTimeProbe", "UnevenIsingModel"]


class ProcessTimeProbe(SimplePrecessionModel):
    """A model whose likelihood is the CPU time (``time.process_time()``) of the rank computing it.

    Through a proxy with one particle row per rank, row ``r`` of the answer
    is rank ``r``'s CPU time: how the root reads every rank's clock.
    """

    def likelihood(self, outcomes, modelparams, expparams):
        """Every entry is this process's CPU seconds so far."""
        shape = (len(outcomes), len(modelparams), len(expparams))
        return np.full(shape, time.process_time(), dtype=np.float64)


class UnevenIsingModel(IsingChainModel):
    """The Ising chain, computed ``slowdown`` times per call: a rank ``slowdown`` times slower.

    The last computation is returned, so the answer stays bitwise that of
    :class:`~mpi_qinfer.models.IsingChainModel`.

    Parameters
    ----------
    n_qubits : int
    slowdown : int
        How many times each call computes the likelihood.
    """

    def __init__(self, n_qubits: int = 3, slowdown: int = 1):
        super().__init__(n_qubits)
        self.slowdown = int(slowdown)

    def likelihood(self, outcomes, modelparams, expparams):
        """The Ising likelihood, computed :attr:`slowdown` times."""
        for _ in range(self.slowdown):
            answer = super().likelihood(outcomes, modelparams, expparams)
        return answer
