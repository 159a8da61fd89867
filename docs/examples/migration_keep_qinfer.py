"""AFTER, keeping qinfer's own model and updater (in an environment where qinfer still imports).

Run with:  mpiexec -n 4 python migration_keep_qinfer.py
"""
import numpy as np
import qinfer as qi

from mpi_qinfer import MPIParallelizedModel

serial_model = qi.SimplePrecessionModel()
with MPIParallelizedModel(serial_model, serial_threshold=1_000) as model:
    if model.is_root:
        np.random.seed(5)  # qinfer's updater, prior and models draw from NumPy's global generator
        updater = qi.SMCUpdater(model, 20_000, qi.UniformDistribution([0, 1]))
        heuristic = qi.ExpSparseHeuristic(updater)
        true_omega = np.array([[0.7]])
        for _ in range(50):
            experiment = heuristic()
            outcome = serial_model.simulate_experiment(true_omega, experiment)
            updater.update(outcome, experiment)
        print("omega =", updater.est_mean()[0], "on", model.n_engines, "ranks")
