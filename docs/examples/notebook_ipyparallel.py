"""Where spawn does not work: the SPMD script on ipyparallel's MPI engines, driven from a notebook.

Each block below is a notebook cell (needs ``pip install ipyparallel``); as a file it runs with
plain ``python notebook_ipyparallel.py``.
"""
# --- cell 1: 2 engines started by mpiexec (one MPI job), and a view on all of them
import ipyparallel as ipp

cluster = ipp.Cluster(engines="mpi", n=2)
client = cluster.start_and_connect_sync()
view = client[:]

# --- cell 2: every engine builds the proxy (a %%px cell does the same: view.execute runs it everywhere)
view.execute("""
from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models import SimplePrecessionModel
model = MPIParallelizedModel(SimplePrecessionModel())
""", block=True)

# --- cell 3: the workers serve (in the background); the root engine takes cells one by one
ranks = view.apply_sync(lambda: __import__("mpi4py.MPI").MPI.COMM_WORLD.Get_rank())
root = client[ranks.index(0)]
view.execute("if not model.is_root: model.serve()", block=False)
root.execute("""
import numpy as np
from mpi_qinfer import ExpSparseHeuristic, SMCUpdater, UniformDistribution
updater = SMCUpdater(model, 20_000, UniformDistribution([0, 1]), rng=1)
heuristic = ExpSparseHeuristic(updater)
lab = SimplePrecessionModel()
lab.rng = np.random.default_rng(2)
for _ in range(50):
    experiment = heuristic()
    updater.update(lab.simulate_experiment(np.array([[0.7]]), experiment), experiment)
estimate = updater.est_mean()[0]
""", block=True)
print("omega =", root.pull("estimate", block=True), "on", len(ranks), "ranks")

# --- cell 4: release the workers, stop the engines
root.execute("model.shutdown()", block=True)
cluster.stop_cluster_sync()
