"""Example: a real qinfer SMC estimation whose likelihood calls run on every MPI rank.

Needs qinfer 1.0 (build an environment with ``scripts/make_qinfer_venv.sh``)::

    timeout 300 .venv-qinfer/bin/mpiexec -n 4 .venv-qinfer/bin/python scripts/qinfer_interop.py

Every rank runs this whole script (SPMD). Rank 0 runs qinfer's updater; the
other ranks wait inside the ``with`` block and evaluate their share of each
likelihood call until rank 0 leaves it.
"""

import numpy as np
import qinfer
from mpi4py import MPI

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models.interop import register_with_qinfer

N_PARTICLES = 20_000
N_EXPERIMENTS = 50
TRUE_OMEGA = 0.7

# Let qinfer's isinstance(model, qinfer.Model) checks accept the proxy.
register_with_qinfer()

# Every rank builds its own serial model; the proxy construction is collective.
with MPIParallelizedModel(qinfer.SimplePrecessionModel(), comm=MPI.COMM_WORLD) as model:
    if model.is_root:  # the workers skip this: they have already served and returned
        np.random.seed(1234)  # qinfer draws everything from NumPy's global generator
        prior = qinfer.UniformDistribution([0, 1])
        updater = qinfer.SMCUpdater(model, N_PARTICLES, prior)  # the proxy in place of the serial model
        heuristic = qinfer.ExpSparseHeuristic(updater)
        true_model = np.array([[TRUE_OMEGA]])

        for _ in range(N_EXPERIMENTS):
            experiment = heuristic()
            outcome = model.simulate_experiment(true_model, experiment)  # one draw: made on the root
            updater.update(outcome, experiment)  # likelihood of 20,000 particles: spread over all ranks

        mean = updater.est_mean()[0]
        std = float(np.sqrt(updater.est_covariance_mtx()[0, 0]))
        print(f"on {model.n_engines} rank(s): omega = {mean:.5f} +/- {std:.5f} (true {TRUE_OMEGA}), "
              f"{updater.resample_count} resamplings")
