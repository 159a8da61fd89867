"""Serial models that misbehave on purpose, for the fault and bad-input tests."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from mpi_qinfer.models.builtin import SimplePrecessionModel

#: An experiment time that makes FailingModel raise (the root controls when a call fails).
POISON = -666.0


class FailingModel(SimplePrecessionModel):
    """Raises in ``likelihood`` on the chosen ranks of COMM_WORLD when an expparam is ``POISON``."""

    def __init__(self, fail_on=(1,)):
        super().__init__()
        self.fail_on = tuple(fail_on)

    def likelihood(self, outcomes, modelparams, expparams):
        if MPI.COMM_WORLD.Get_rank() in self.fail_on and np.any(expparams == POISON):
            raise ZeroDivisionError(f"injected failure on rank {MPI.COMM_WORLD.Get_rank()}")
        return super().likelihood(outcomes, modelparams, expparams)


class MisshapenModel(SimplePrecessionModel):
    """Returns a wrong shape, a wrong dtype or NaN on the chosen rank."""

    def __init__(self, fault="shape", on_rank=1):
        super().__init__()
        self.fault = fault
        self.on_rank = on_rank

    def likelihood(self, outcomes, modelparams, expparams):
        result = super().likelihood(outcomes, modelparams, expparams)
        if MPI.COMM_WORLD.Get_rank() != self.on_rank:
            return result
        if self.fault == "shape":
            return result[:, :-1, :] if result.shape[1] > 1 else result[:, :, :0]
        if self.fault == "dtype":
            return result.astype(np.complex128)
        if self.fault == "nan":
            result = result.copy()
            result[:, 0, :] = np.nan
            return result
        raise ValueError(self.fault)


class NanModel(SimplePrecessionModel):
    """Answers NaN for negative frequencies, on whichever rank holds them."""

    def likelihood(self, outcomes, modelparams, expparams):
        result = super().likelihood(outcomes, modelparams, expparams)
        return np.where(modelparams[np.newaxis, :, :1] < 0, np.nan, result)


class CountingModel(SimplePrecessionModel):
    """Counts ``clear_cache`` calls and carries a parameter that changes the likelihood."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.cleared = 0
        self.scale = scale

    def clear_cache(self):
        self.cleared += 1

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams * self.scale, expparams)


class SlowRankModel(SimplePrecessionModel):
    """Takes ``factor`` times longer per row on ``slow_rank`` (a sleep: exact answers, no CPU)."""

    def __init__(self, slow_rank=1, factor=3.0, seconds_per_row=20e-6):
        super().__init__()
        self.slow_rank = slow_rank
        self.factor = factor
        self.seconds_per_row = seconds_per_row

    def likelihood(self, outcomes, modelparams, expparams):
        import time

        slow = MPI.COMM_WORLD.Get_rank() == self.slow_rank
        time.sleep(len(modelparams) * len(expparams) * self.seconds_per_row * (self.factor if slow else 1.0))
        return super().likelihood(outcomes, modelparams, expparams)
