"""AFTER: the same estimation with mpi_qinfer.

Run with:  mpiexec -n 4 python migration_after.py     (or: srun python migration_after.py)
"""
import numpy as np

import mpi_qinfer as qi  # same class names as qinfer for the parts used here
from mpi_qinfer.models import SimplePrecessionModel

serial_model = SimplePrecessionModel()  # built on every rank: never pickled
with qi.MPIParallelizedModel(serial_model, serial_threshold=1_000) as model:
    if model.is_root:
        updater = qi.SMCUpdater(model, 20_000, qi.UniformDistribution([0, 1]))
        heuristic = qi.ExpSparseHeuristic(updater)
        true_omega = np.array([[0.7]])
        for _ in range(50):
            experiment = heuristic()
            outcome = serial_model.simulate_experiment(true_omega, experiment)
            updater.update(outcome, experiment)
        print("omega =", updater.est_mean()[0], "on", model.n_engines, "ranks")
