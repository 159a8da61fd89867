"""The probe models: a rank's CPU clock as a likelihood, an Ising chain made slower, outcomes of a record dtype."""

from __future__ import annotations

import time

import numpy as np

from ...models.builtin import IsingChainModel, SimplePrecessionModel

__all__ = ["ProcessTimeProbe", "UnevenIsingModel", "RecordOutcomeModel", "RECORD_OUTCOME_DTYPE"]

#: The outcome dtype of :class:`RecordOutcomeModel`: a record whose field ``k`` is the outcome.
RECORD_OUTCOME_DTYPE = np.dtype([("k", "<i8"), ("shots", "<i8")])


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
    :class:`~mpi_qinfer.models.builtin.IsingChainModel`.

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


class RecordOutcomeModel(SimplePrecessionModel):
    """:class:`~mpi_qinfer.models.builtin.SimplePrecessionModel` whose outcomes are records of
    :data:`RECORD_OUTCOME_DTYPE`.

    Outcomes with named fields, as qinfer's multinomial-style models use: the
    likelihood is the precession model's for the field ``k`` (the bench
    calls only :meth:`likelihood`).
    """

    def likelihood(self, outcomes, modelparams, expparams):
        """The precession likelihood of ``outcomes["k"]``."""
        return super().likelihood(np.asarray(outcomes)["k"], modelparams, expparams)
