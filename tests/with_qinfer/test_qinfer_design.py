"""The updater's Bayes risk and information gain equal qinfer 1.0's, serially and through the proxy.

Skipped where qinfer does not import (build an environment where it does with
``scripts/make_qinfer_venv.sh``). The MPI tests run as::

    scripts/mpi-pytest.sh .venv-qinfer 2 tests/with_qinfer/test_qinfer_design.py

qinfer 1.0 scores one experiment per call; ours scores many at once, so each
of ours is compared with qinfer's for that experiment alone. Both updaters
hold the same particles and weights (ours, copied into qinfer's) and the same
model. Through the proxy, our values must also be bitwise the serial ones.
"""

from __future__ import annotations

import dataclasses
import traceback
import warnings
from typing import Callable

import numpy as np
import pytest

qinfer = pytest.importorskip("qinfer")
MPI = pytest.importorskip("mpi4py.MPI")

import mpi_qinfer  # noqa: E402 - after the skips
from mpi_qinfer import MPIParallelizedModel  # noqa: E402
from mpi_qinfer.models.builtin import IsingChainModel  # noqa: E402

pytestmark = pytest.mark.qinfer

#: The agreement the design quantities must reach with qinfer 1.0.
RTOL = 1e-12
SEED = 77


@dataclasses.dataclass(frozen=True)
class Case:
    """A model, a prior, data to condition on, and candidate experiments."""

    name: str
    make_model: Callable
    make_prior: Callable
    data: Callable  # expparams_dtype -> list of (outcome, expparams)
    candidates: Callable  # expparams_dtype -> array of candidates


def _times(dtype, times):
    return np.array(times, dtype=dtype)


CASES = [
    Case("precession", qinfer.SimplePrecessionModel, lambda: qinfer.UniformDistribution([0, 1]),
         lambda dt: [(k % 2, _times(dt, [1.3 ** k])) for k in range(12)],
         lambda dt: _times(dt, np.linspace(0.5, 40.0, 20))),
    Case("inversion", qinfer.SimpleInversionModel, lambda: qinfer.UniformDistribution([0, 1]),
         lambda dt: [(k % 2, np.array([(1.4 ** k, 0.2)], dtype=dt)) for k in range(8)],
         lambda dt: np.array([(t, 0.5) for t in np.linspace(0.5, 30.0, 20)], dtype=dt)),
    # Several outcomes and three parameters; the outcome count is the same for every candidate.
    Case("binomial-randomized-benchmarking", lambda: qinfer.BinomialModel(qinfer.RandomizedBenchmarkingModel()),
         lambda: qinfer.UniformDistribution([[0.8, 1.0], [0.3, 0.5], [0.3, 0.5]]),
         lambda dt: [(12, np.array([(1 + 3 * k, 20)], dtype=dt)) for k in range(6)],
         lambda dt: np.array([(1 + 2 * k, 10) for k in range(20)], dtype=dt)),
    # mpi_qinfer's own costly model, scored by qinfer's updater.
    Case("ising", lambda: IsingChainModel(n_qubits=2), lambda: qinfer.UniformDistribution([[0, 1], [0, 1]]),
         lambda dt: [(k % 2, _times(dt, [1.5 ** k])) for k in range(8)],
         lambda dt: _times(dt, np.linspace(0.5, 25.0, 20))),
]


def _our_updater(case: Case, model, n_particles: int = 400):
    """Our updater on ``model``, conditioned on the case's data (it resamples on the way)."""
    np.random.seed(SEED)  # qinfer priors draw from the global generator
    updater = mpi_qinfer.SMCUpdater(model, n_particles, case.make_prior(), rng=SEED)
    for outcome, expparams in case.data(model.expparams_dtype):
        updater.update(outcome, expparams)
    return updater


def _qinfer_scores(case: Case, serial_model, ours, candidates):
    """qinfer 1.0's risk and gain of each candidate, for our particles and weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.SMCUpdater(serial_model, ours.n_particles, case.make_prior())
    theirs.particle_locations = ours.particle_locations.copy()
    theirs.particle_weights = ours.particle_weights.copy()
    risk = np.array([theirs.bayes_risk(candidates[i:i + 1]) for i in range(len(candidates))]).ravel()
    gain = np.array([theirs.expected_information_gain(candidates[i:i + 1]) for i in range(len(candidates))]).ravel()
    return risk, gain


def _relative_difference(ours, theirs) -> float:
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


def _check_against_qinfer(case: Case, model, serial_model):
    ours = _our_updater(case, model)
    candidates = case.candidates(serial_model.expparams_dtype)
    risk, gain = ours.bayes_risk(candidates), ours.expected_information_gain(candidates)
    want_risk, want_gain = _qinfer_scores(case, serial_model, ours, candidates)
    assert ours.resample_count > 0, "the data never moved the posterior far enough to resample"
    assert _relative_difference(risk, want_risk) <= RTOL, _relative_difference(risk, want_risk)
    assert _relative_difference(gain, want_gain) <= RTOL, _relative_difference(gain, want_gain)
    return ours, risk, gain


# ------------------------------------------------------------------ serial
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_design_quantities_equal_qinfer(case):
    model = case.make_model()
    _check_against_qinfer(case, model, model)


@pytest.mark.parametrize("case", CASES[:2], ids=[case.name for case in CASES[:2]])
def test_entropy_credible_region_and_marginal_equal_qinfer(case):
    model = case.make_model()
    ours = _our_updater(case, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.SMCUpdater(model, ours.n_particles, case.make_prior())
    theirs.particle_locations = ours.particle_locations.copy()
    theirs.particle_weights = ours.particle_weights.copy()
    assert ours.est_entropy() == pytest.approx(theirs.est_entropy(), rel=1e-14)
    # Weights are distinct after updates, so the heaviest-first order is unique.
    np.testing.assert_array_equal(ours.est_credible_region(0.9), theirs.est_credible_region(0.9))
    for smoothing in (0, 0.01):
        grid, density = ours.posterior_marginal(0, res=80, smoothing=smoothing)
        want_grid, want_density = theirs.posterior_marginal(0, res=80, smoothing=smoothing)
        np.testing.assert_allclose(grid, want_grid, rtol=1e-15)
        np.testing.assert_allclose(density, want_density, rtol=1e-10, atol=1e-12 * np.max(want_density))


# ------------------------------------------------------------------ MPI
def _on_root_collectively(make_model, check, **proxy_options):
    """Build a proxy on every rank, run ``check(proxy)`` on the root; assert its verdict everywhere."""
    comm = MPI.COMM_WORLD
    verdict = None
    with MPIParallelizedModel(make_model(), comm=comm, **proxy_options) as proxy:
        if proxy.is_root:
            try:
                check(proxy)
            except BaseException:  # noqa: BLE001 - the failure becomes every rank's verdict
                verdict = traceback.format_exc()
    verdict = comm.bcast(verdict, root=0)
    assert verdict is None, verdict


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_design_quantities_through_the_proxy_equal_qinfer_and_serial(case):
    def check(proxy):
        serial_model = proxy.serial_model
        ours, risk, gain = _check_against_qinfer(case, proxy, serial_model)
        # The whole run (updates, resampling, scores) is bitwise the serial model's.
        serial = _our_updater(case, serial_model)
        candidates = case.candidates(serial_model.expparams_dtype)
        assert np.array_equal(ours.particle_locations, serial.particle_locations)
        assert np.array_equal(risk, serial.bayes_risk(candidates))
        assert np.array_equal(gain, serial.expected_information_gain(candidates))

    _on_root_collectively(case.make_model, check, serial_threshold=0)


@pytest.mark.mpi(min_size=2)
def test_many_candidates_few_particles_through_the_proxy_equal_qinfer():
    # 60 particles, 240 candidates: the proxy splits the scoring call over the candidates.
    case = CASES[0]

    def check(proxy):
        serial_model = proxy.serial_model
        ours = _our_updater(case, proxy, n_particles=60)
        candidates = np.linspace(0.1, 60.0, 240)
        gain, risk = ours.expected_information_gain(candidates), ours.bayes_risk(candidates)
        want_risk, want_gain = _qinfer_scores(case, serial_model, ours, candidates)
        assert _relative_difference(risk, want_risk) <= RTOL
        assert _relative_difference(gain, want_gain) <= RTOL
        serial = _our_updater(case, serial_model, n_particles=60)
        assert np.array_equal(gain, serial.expected_information_gain(candidates))
        assert np.array_equal(risk, serial.bayes_risk(candidates))

    _on_root_collectively(case.make_model, check, serial_threshold=0, split="auto")
