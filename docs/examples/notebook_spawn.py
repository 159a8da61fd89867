"""A notebook's parallel SMC, with workers that the notebook starts itself (no mpiexec).

Each block below is a notebook cell; as a file it runs with plain ``python notebook_spawn.py``.
"""
# --- cell 1: the model, as in qinfer's examples
import numpy as np

from mpi_qinfer import ExpSparseHeuristic, MPIParallelizedModel, Progress, SMCUpdater, UniformDistribution
from mpi_qinfer.models import BinomialModel, SimplePrecessionModel

serial_model = BinomialModel(SimplePrecessionModel())

# --- cell 2: in place of DirectViewParallelizedModel(serial_model, dview): start 3 workers
model = MPIParallelizedModel.spawn(serial_model, n_workers=3)
print("engine:", model.n_engines, "ranks")

# --- cell 3: the estimation, unchanged
prior = UniformDistribution([0, 1])
updater = SMCUpdater(model, 6000, prior, rng=1)
heuristic = ExpSparseHeuristic(updater, t_field="x", other_fields={"n_meas": 40})
true_omega = np.array([[0.7]])
lab = BinomialModel(SimplePrecessionModel())  # simulates the measurements
lab.rng = np.random.default_rng(2)
with Progress(100, "SMC") as progress:  # a bar in a notebook, plain lines in a log
    for _ in range(100):
        experiment = heuristic()
        updater.update(lab.simulate_experiment(true_omega, experiment), experiment)
        progress.update()
print("omega =", updater.est_mean()[0])

# --- cell 4: stop the workers (a kernel shutdown or restart does it too)
model.shutdown()
