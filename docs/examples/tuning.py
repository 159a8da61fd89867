"""Serial thresholds and split axes: what they change (speed) and what they do not (answers).

Run with:  mpiexec -n 2 python tuning.py
"""
import numpy as np

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models import IsingChainModel

serial_model = IsingChainModel(n_qubits=3)
rng = np.random.default_rng(0)
outcomes = np.array([0, 1])
particles = rng.uniform(0, 1, size=(4_000, 2))
times = np.linspace(0.1, 5.0, 3)
expected = serial_model.likelihood(outcomes, particles, times)

# [threshold-start]
# A fixed threshold: calls with fewer than 1000 evaluations
# (n_models * n_expparams) run on the root alone, larger ones on every rank.
with MPIParallelizedModel(serial_model, serial_threshold=1_000) as model:
    if model.is_root:
        small = model.likelihood(outcomes, particles[:100], times)  # 300 < 1000: serial
        large = model.likelihood(outcomes, particles, times)  # 12000: parallel
        assert np.array_equal(large, expected)

# "auto" (the default): the first calls of each size class time the serial
# model, then the parallel call; later calls take the faster path.
with MPIParallelizedModel(serial_model, serial_threshold="auto") as model:
    if model.is_root:
        for _ in range(5):
            assert np.array_equal(model.likelihood(outcomes, particles, times), expected)
        # {(command, log2 of evaluations, outcome class, split): (serial s/eval, parallel s/eval)}
        for size_class, (serial, parallel) in model.threshold_policy.summary().items():
            print("size class", size_class, "serial", serial, "parallel", parallel)
# [threshold-end]

# [split-start]
# Many experiments, few particles: split along the experiments instead.
few_particles = particles[:8]
many_times = np.linspace(0.1, 5.0, 2_000)
reference = serial_model.likelihood(outcomes, few_particles, many_times)
for split in ("auto", "models", "experiments"):
    with MPIParallelizedModel(serial_model, serial_threshold=0, split=split) as model:
        if model.is_root:
            L = model.likelihood(outcomes, few_particles, many_times)
            assert np.array_equal(L, reference)  # bitwise, whatever the split
            print(f"split={split!r}: shape {L.shape}, same answer")
# [split-end]
