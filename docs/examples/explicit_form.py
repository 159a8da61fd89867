"""The explicit form: serve() on the workers, shutdown() on the root.

Use it in library code that lives inside a larger MPI program, where a
``with`` block around the whole inference is awkward.

Run with:  mpiexec -n 2 python explicit_form.py
"""
import numpy as np
from mpi4py import MPI

from mpi_qinfer import MPIParallelizedModel, SMCUpdater, UniformDistribution
from mpi_qinfer.models import SimplePrecessionModel


def run_inference(model):
    """Ordinary serial-looking code: it only ever sees a qinfer-style model."""
    updater = SMCUpdater(model, 5_000, UniformDistribution([0, 1]), rng=7)
    for t in np.linspace(1, 30, 30):
        experiment = np.array([t])
        updater.update(int(t) % 2, experiment)  # stand-in data
    return updater.est_mean()


# [explicit-start]
comm = MPI.COMM_WORLD  # or any intracommunicator: the proxy duplicates it
model = MPIParallelizedModel(SimplePrecessionModel(), comm=comm, root=0)  # collective
if model.is_root:
    try:
        estimate = run_inference(model)
    finally:
        model.shutdown()  # releases the workers, also when run_inference raised
    print("estimate:", estimate, flush=True)
else:
    model.serve()  # returns when the root calls shutdown()
# [explicit-end]

# Every rank gets here; the communicator is usable again for your own code.
finished = comm.gather(comm.Get_rank(), root=0)
if comm.Get_rank() == 0:  # one report, from the root, not one interleaved line per rank
    print("ranks done:", finished, flush=True)
