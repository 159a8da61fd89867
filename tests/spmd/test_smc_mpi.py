"""The updater's atomic update and the candidate heuristic through the proxy, against the serial model.

Run with ``scripts/mpi-pytest.sh .venv 2 tests/spmd/test_smc_mpi.py`` (and 3).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_parallel
from mpi4py import MPI

from mpi_qinfer import RemoteError
from mpi_qinfer.models.builtin import IsingChainModel, SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc.heuristics import BestCandidateHeuristic
from mpi_qinfer.smc.updater import SMCUpdater

pytestmark = pytest.mark.mpi(min_size=2)

TRUE_OMEGA = 0.7


class BrittleOnLastRank(SimplePrecessionModel):
    """``are_models_valid`` raises on the last rank of COMM_WORLD while ``broken``."""

    def __init__(self):
        super().__init__()
        self.broken = False

    def are_models_valid(self, modelparams):
        world = MPI.COMM_WORLD
        if self.broken and world.Get_rank() == world.Get_size() - 1:
            raise OSError(f"validity check lost on rank {world.Get_rank()}")
        return super().are_models_valid(modelparams)


def _state(up):
    return (up.particle_weights.copy(), up.particle_locations.copy(), list(up.data_record),
            list(up.normalization_record), up.resample_count, up.just_resampled, up.rng.bit_generator.state)


def _data(n_exp=25, seed=31):
    sim = SimplePrecessionModel()
    sim.rng = np.random.default_rng(seed)
    times = (9 / 8) ** np.arange(n_exp)
    return [(sim.simulate_experiment(np.array([[TRUE_OMEGA]]), np.array([t])), np.array([t])) for t in times]


def test_failure_inside_resampling_through_the_proxy_changes_nothing(comm):
    def check(proxy, serial):
        reference = SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=5)
        up = SMCUpdater(proxy, 300, UniformDistribution([0, 1]), rng=5)
        failed = False
        for outcome, eps in _data():
            reference.update(outcome, eps)
            if not failed and up.resample_count < reference.resample_count:
                # This update resamples: the workers' validity check fails inside it, once.
                before = _state(up)
                proxy.underlying_model.broken = True
                proxy.sync_model()
                with pytest.raises(OSError, match="validity check lost") as caught:
                    up.update(outcome, eps)  # the model's own exception, the ranks in its cause
                assert isinstance(caught.value.__cause__, RemoteError)
                for old, new in zip(before, _state(up)):
                    np.testing.assert_equal(new, old)
                proxy.underlying_model.broken = False
                proxy.sync_model()
                failed = True
            up.update(outcome, eps)
        assert failed and reference.resample_count > 1
        # The retried run is bitwise the serial run that never failed.
        for old, new in zip(_state(reference), _state(up)):
            np.testing.assert_equal(new, old)

    run_parallel(comm, BrittleOnLastRank(), check, serial_threshold=0)


@pytest.mark.parametrize("criterion", ["infogain", "risk"])
@pytest.mark.parametrize("n_particles", [8, 500], ids=["split-experiments", "split-models"])
def test_candidate_heuristic_through_the_proxy_is_the_serial_run(comm, criterion, n_particles):
    def run(model):
        up = SMCUpdater(model, n_particles, UniformDistribution([[0, 1], [0, 1]]), rng=9)
        design = BestCandidateHeuristic(up, criterion=criterion, n_candidates=20)
        sim = IsingChainModel(n_qubits=2)
        sim.rng = np.random.default_rng(10)
        chosen = []
        for _ in range(6):
            eps = design()
            chosen.append(eps[0])
            up.update(sim.simulate_experiment(np.array([[0.4, 0.6]]), eps), eps)
        return up, chosen, design.last_scores

    def check(proxy, serial):
        (up, chosen, scores), (want_up, want_chosen, want_scores) = run(proxy), run(IsingChainModel(n_qubits=2))
        assert chosen == want_chosen
        assert np.array_equal(scores, want_scores)
        for old, new in zip(_state(want_up), _state(up)):
            np.testing.assert_equal(new, old)

    run_parallel(comm, IsingChainModel(n_qubits=2), check, serial_threshold=0)
