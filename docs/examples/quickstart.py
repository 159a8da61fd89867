"""Estimate a qubit's precession frequency; the likelihood is spread over all ranks.

Run with:  mpiexec -n 4 python quickstart.py
"""
import numpy as np

from mpi_qinfer import ExpSparseHeuristic, MPIParallelizedModel, SMCUpdater, UniformDistribution
from mpi_qinfer.models import SimplePrecessionModel

serial_model = SimplePrecessionModel()            # every rank builds its own copy
with MPIParallelizedModel(serial_model) as model:  # workers serve in here until the root is done
    if model.is_root:                              # only the root (rank 0) runs the inference
        serial_model.rng = np.random.default_rng(2)  # seeds the simulated "lab": the same data every run
        true_omega = np.array([[0.7]])
        updater = SMCUpdater(model, 20_000, UniformDistribution([0, 1]), rng=1)
        heuristic = ExpSparseHeuristic(updater)
        for _ in range(50):
            experiment = heuristic()
            outcome = serial_model.simulate_experiment(true_omega, experiment)  # the "lab"
            updater.update(outcome, experiment)
        print(f"omega = {updater.est_mean()[0]:.6f} (true value 0.7) on {model.n_engines} rank(s)")
