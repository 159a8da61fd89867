"""Several proxies on one engine, and independent groups of ranks with comm.Split.

Run with:  mpiexec -n 4 python several_models.py   (any number of ranks works)
"""
import numpy as np
from mpi4py import MPI

from mpi_qinfer import Engine, MPIParallelizedModel
from mpi_qinfer.models import RamseyModel, SimplePrecessionModel

world = MPI.COMM_WORLD
particles = np.random.default_rng(1).uniform(0.1, 1, size=(5_000, 2))

# [engine-start]
# One engine (one worker loop), two models. Every registration is collective,
# so build all the proxies before anyone starts serving.
engine = Engine(world)
precession = MPIParallelizedModel(SimplePrecessionModel(), engine=engine, serial_threshold=0)
ramsey = MPIParallelizedModel(RamseyModel(), engine=engine, serial_threshold=0)
with engine:  # workers serve both proxies in here; the root runs the body
    if engine.is_root:
        L1 = precession.likelihood(np.array([0]), particles[:, :1], np.array([1.0, 2.0]))
        experiments = np.array([(1.0, 0.0), (2.0, 0.5)], dtype=RamseyModel().expparams_dtype)
        L2 = ramsey.likelihood(np.array([0, 1]), particles, experiments)
        print("shared engine:", L1.shape, L2.shape, flush=True)
# Leaving the block shut the engine down for both proxies.
# [engine-end]

# [split-start]
# Two independent inferences side by side: even and odd world ranks form two
# groups, each with its own root (its rank 0) and its own workers.
color = world.Get_rank() % 2
group = world.Split(color, key=world.Get_rank())
line = None
with MPIParallelizedModel(SimplePrecessionModel(), comm=group, serial_threshold=0) as model:
    if model.is_root:
        omega = 0.3 if color == 0 else 0.6
        L = model.likelihood(np.array([0]), np.array([[omega]] * 1_000), np.array([1.0]))
        line = f"group {color}: {model.n_engines} rank(s), Pr(0) = {L[0, 0, 0]:.4f}"
group.Free()  # the proxy freed only its own duplicate; the group is yours to free
lines = world.gather(line, root=0)  # the world's root prints every group's result, in order
if world.Get_rank() == 0:
    print("\n".join(line for line in lines if line is not None), flush=True)
# [split-end]
