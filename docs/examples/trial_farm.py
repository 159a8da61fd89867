"""Performance testing over MPI ranks: perf_test_multiple's trials, farmed out by TrialFarm.

    mpiexec -n 2 python trial_farm.py
"""
import os
import shutil
import tempfile

import numpy as np
from mpi4py import MPI

from mpi_qinfer import ExpSparseHeuristic, TrialFarm, UniformDistribution, load_perf_trials, perf_test_multiple
from mpi_qinfer.models import SimplePrecessionModel

world = MPI.COMM_WORLD
# One folder for every rank: the root's temporary one here (in a batch job, a shared file system).
folder = world.bcast(tempfile.mkdtemp() if world.Get_rank() == 0 else None, root=0)
path = os.path.join(folder, "trials.npy")

# [farm-start]
farm = TrialFarm(world, group_size=1)  # a cheap model: whole trials in parallel
perf = farm.perf_test_multiple(
    20, SimplePrecessionModel(), 1000, UniformDistribution([0, 1]), 50, ExpSparseHeuristic,
    seed=2024, trial_file=path,
)
if farm.is_root:  # the results come back on rank 0; None elsewhere
    print(f"{len(perf)} trials on {world.Get_size()} rank(s), median final loss {np.median(perf['loss'][:, -1]):.1e}")
# [farm-end]

# [check-start]
if farm.is_root:
    serial = perf_test_multiple(20, SimplePrecessionModel(), 1000, UniformDistribution([0, 1]), 50,
                                ExpSparseHeuristic, seed=2024)
    same = all(np.array_equal(perf[name], serial[name]) for name in perf.dtype.names if name != "elapsed_time")
    print("bitwise the serial trials:", same)
    print("finished trials in the file:", int(load_perf_trials(path).finished.sum()))
    shutil.rmtree(folder)
# [check-end]
