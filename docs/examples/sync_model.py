"""sync_model(): when the root changes its serial model's state on purpose.

Run with:  mpiexec -n 2 python sync_model.py
"""
import numpy as np

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models import SimplePrecessionModel


class DetunedPrecessionModel(SimplePrecessionModel):
    """Precession at omega + detuning; the detuning is a calibration, not a model parameter."""

    def __init__(self, detuning=0.0):
        super().__init__()
        self.detuning = detuning

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams + self.detuning, expparams)


outcomes = np.array([0])
particles = np.linspace(0, 1, 10_000).reshape(-1, 1)
times = np.array([3.0])

# [sync-start]
with MPIParallelizedModel(DetunedPrecessionModel(), serial_threshold=0) as model:
    if model.is_root:
        model.serial_model.detuning = 0.05  # a new calibration, on the root only
        stale = model.likelihood(outcomes, particles, times)  # workers still use 0.0
        model.sync_model()  # pickle the root's model once, replace every worker's copy
        fresh = model.likelihood(outcomes, particles, times)
        assert np.array_equal(fresh, DetunedPrecessionModel(0.05).likelihood(outcomes, particles, times))
        print("rows that were stale before sync_model():", int(np.sum(stale != fresh)))
# [sync-end]
