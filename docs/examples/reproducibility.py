"""Which random results repeat, and which depend on the number of ranks.

Run with:  mpiexec -n 2 python reproducibility.py   (then try -n 3 and compare the checksums)
On a single process every call takes the serial path, which draws from
serial_model.rng instead: reseed() then does not repeat the draws.
"""
import hashlib

import numpy as np

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models import SimplePrecessionModel


def checksum(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


particles = np.linspace(0, 1, 2_000).reshape(-1, 1)
times = np.linspace(0.5, 50, 100)  # 2000 x 100 = 200000 draws: parallel even in "auto" mode

serial_model = SimplePrecessionModel()
# [seed-start]
# seed= starts the proxy's own generator, which draws one seed per parallel
# random call; rank r then simulates with SeedSequence(call_seed, spawn_key=(r,)).
with MPIParallelizedModel(serial_model, seed=2024) as model:
    if model.is_root:
        first = model.simulate_experiment(particles, times)
        model.reseed(2024)  # restart the per-call seeds
        again = model.simulate_experiment(particles, times)
        assert np.array_equal(first, again)  # same seed, same ranks, same split: same draws
        # [seed-end]

        # The other split of the same call uses the streams differently.
        model.reseed(2024)
        by_experiment = model.simulate_experiment(particles, times, split_by_modelparams=False)

        # The serial model draws from its own generator: other numbers again.
        serial_model.rng = np.random.default_rng(2024)
        serial = serial_model.simulate_experiment(particles, times)

        print(f"{model.n_engines} rank(s): parallel {checksum(first)}, "
              f"split by experiment {checksum(by_experiment)}, serial {checksum(serial)}")

        # Likelihoods have no randomness: bitwise the serial answer on any number of ranks.
        L = model.likelihood(np.array([0, 1]), particles, times)
        assert np.array_equal(L, serial_model.likelihood(np.array([0, 1]), particles, times))
