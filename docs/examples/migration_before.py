"""BEFORE: qinfer with ipyparallel (for comparison; needs qinfer, ipyparallel and old NumPy).

Start a cluster first, in another shell:   ipcluster start -n 4
Then run:                                  python migration_before.py
"""
import ipyparallel as ipp
import numpy as np
import qinfer as qi

client = ipp.Client()  # connects to the ipcluster controller
dview = client[:]  # a DirectView on every engine
serial_model = qi.SimplePrecessionModel()
model = qi.DirectViewParallelizedModel(serial_model, dview, purge_client=True, serial_threshold=1_000)

updater = qi.SMCUpdater(model, 20_000, qi.UniformDistribution([0, 1]))
heuristic = qi.ExpSparseHeuristic(updater)
true_omega = np.array([[0.7]])
for _ in range(50):
    experiment = heuristic()
    outcome = serial_model.simulate_experiment(true_omega, experiment)
    updater.update(outcome, experiment)
print("omega =", updater.est_mean()[0], "on", model.n_engines, "engines")
