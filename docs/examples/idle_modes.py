"""Choosing how idle workers wait, and what one small call costs in each mode.

Run with:  mpiexec -n 2 python idle_modes.py
Or set it for a whole job, without touching the script:
           MPI_QINFER_IDLE=backoff MPI_QINFER_BACKOFF_MAX=0.0005 mpiexec -n 2 python idle_modes.py
"""
import time

import numpy as np

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models import SimplePrecessionModel

outcomes, particles, times = np.array([0]), np.full((64, 1), 0.5), np.array([1.0])

for idle in (None, "spin", "backoff"):  # None: the environment variable, else "auto"
    with MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0, idle=idle, backoff_max=1e-3) as model:
        if model.is_root:
            model.likelihood(outcomes, particles, times)  # warm up (plans, datatypes)
            start = time.perf_counter()
            for _ in range(200):
                model.likelihood(outcomes, particles, times)
            per_call = (time.perf_counter() - start) / 200
            print(f"idle={idle!r:10} -> {model.engine.idle:8} {1e6 * per_call:8.1f} us per call", flush=True)
