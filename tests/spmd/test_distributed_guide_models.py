"""qinfer's guide and test-suite models in DistributedSMCUpdater, against SMCUpdater on the same cloud.

Each test runs serially (a one-rank world, plain pytest) and under mpiexec
(``scripts/mpi-pytest.sh VENV N tests/spmd/test_distributed_guide_models.py``).
After updates on simulated data, the gathered weights, the mean, the
normalisation record and the experiment-design quantities (which sum over each
model's outcome domains: integers, multinomial records) agree with a serial
:class:`~mpi_qinfer.smc.updater.SMCUpdater` that holds the same cloud and sees
the same data, to rounding (the sums run in another order over the ranks).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
from conftest import assert_collectively, verdict_of

from mpi_qinfer import DistributedSMCUpdater, SMCUpdater
from mpi_qinfer.models.builtin import (
    BinomialModel,
    CoinModel,
    NDieModel,
    NoisyCoinModel,
    SimpleInversionModel,
    SimplePrecessionModel,
    UnknownT2Model,
)
from mpi_qinfer.models.derived import (
    GaussianHyperparameterizedModel,
    GaussianRandomWalkModel,
    MLEModel,
    MultinomialModel,
    PoisonedModel,
    RandomWalkModel,
)
from mpi_qinfer.models.distributions import NormalDistribution, ProductDistribution, UniformDistribution
from mpi_qinfer.models.rb import RandomizedBenchmarkingModel

N_PARTICLES, N_DATA = 701, 6


@pytest.fixture(params=[pytest.param("serial"), pytest.param("mpi", marks=pytest.mark.mpi)])
def world(request):
    """COMM_WORLD: one rank in a plain pytest run, every rank under mpiexec."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


class _Dirichlet:
    """Uniform weights of a ``k``-sided die, then ``extra`` parameters uniform on [lo, hi]."""

    def __init__(self, k, extra=0, lo=0.0, hi=0.1):
        self.k, self.extra, self.lo, self.hi = k, extra, lo, hi

    @property
    def n_rvs(self):
        return self.k + self.extra

    def sample(self, n=1, rng=None):
        rng = np.random.default_rng(rng)
        weights = rng.dirichlet(np.ones(self.k), n)
        return np.column_stack([weights, rng.uniform(self.lo, self.hi, (n, self.extra))])


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable  # () -> model, on every rank
    prior: Callable  # () -> prior
    truth: np.ndarray  # the model that simulates the data, (1, n_modelparams)
    experiment: Callable  # (model, index) -> one experiment, shape (1,)
    random_step: bool = False  # update_timestep draws: the ranks' steps are their own
    normalised: bool = True  # sums to one over the domain's values (not MLEModel's power, nor a real density)


def _record(model, **fields):
    experiment = np.zeros(1, dtype=model.expparams_dtype)
    for name, value in fields.items():
        experiment[name] = value
    return experiment


CASES = [
    Case("inversion", SimpleInversionModel, lambda: UniformDistribution([0.1, 2]), np.array([[0.8]]),
         lambda m, i: _record(m, t=1 + i, w_=0.1 * i)),
    Case("unknown-t2", UnknownT2Model, lambda: UniformDistribution([[0.1, 2], [0, 0.5]]), np.array([[0.8, 0.1]]),
         lambda m, i: _record(m, t=1 + i)),
    Case("coin", CoinModel, lambda: UniformDistribution([0, 1]), np.array([[0.3]]),
         lambda m, i: np.ones(1, dtype=int)),
    Case("noisy-coin", NoisyCoinModel, lambda: UniformDistribution([0, 1]), np.array([[0.3]]),
         lambda m, i: _record(m, alpha=0.9, beta=0.1)),
    Case("die", lambda: NDieModel(n=4), lambda: _Dirichlet(4), np.array([[0.1, 0.2, 0.3, 0.4]]),
         lambda m, i: _record(m, exp_num=i)),
    Case("binomial-coin", lambda: BinomialModel(CoinModel()), lambda: UniformDistribution([0, 1]),
         np.array([[0.3]]), lambda m, i: _record(m, n_meas=5 + i)),
    Case("multinomial-die", lambda: MultinomialModel(NDieModel(n=3)), lambda: _Dirichlet(3),
         np.array([[0.2, 0.3, 0.5]]), lambda m, i: _record(m, exp_num=i, n_meas=1 + i % 3)),
    Case("binomial-rb", lambda: BinomialModel(RandomizedBenchmarkingModel()),
         lambda: UniformDistribution([[0.8, 1], [0.2, 0.5], [0, 0.4]]), np.array([[0.95, 0.4, 0.3]]),
         lambda m, i: _record(m, m=1 + 5 * i, n_meas=30)),
    Case("rb-interleaved", lambda: RandomizedBenchmarkingModel(interleaved=True),
         lambda: UniformDistribution([[0.8, 1], [0.8, 1], [0.2, 0.5], [0, 0.4]]), np.array([[0.97, 0.95, 0.4, 0.3]]),
         lambda m, i: _record(m, m=1 + 3 * i, reference=i % 2 == 0)),
    Case("mle", lambda: MLEModel(SimplePrecessionModel(), likelihood_power=2), lambda: UniformDistribution([0, 2]),
         np.array([[0.8]]), lambda m, i: np.array([1.0 + i]), normalised=False),
    # tol = 0: the poison is exactly zero, so the weights can be compared; the draws still happen.
    Case("poisoned", lambda: PoisonedModel(SimplePrecessionModel(), tol=0.0), lambda: UniformDistribution([0, 2]),
         np.array([[0.8]]), lambda m, i: np.array([1.0 + i])),
    Case("gaussian-hyper", lambda: GaussianHyperparameterizedModel(CoinModel()),
         lambda: ProductDistribution(UniformDistribution([[0, 1], [-1, 0], [0, 1], [0.1, 1], [0.1, 1]])),
         np.array([[0.3, -0.5, 0.5, 0.2, 0.3]]), lambda m, i: np.ones(1, dtype=int), normalised=False),
    Case("random-walk", lambda: RandomWalkModel(SimplePrecessionModel(), NormalDistribution(0, 1e-4)),
         lambda: UniformDistribution([0, 2]), np.array([[0.8]]), lambda m, i: np.array([1.0 + i]), True),
    Case("gaussian-walk", lambda: GaussianRandomWalkModel(BinomialModel(CoinModel())),
         lambda: ProductDistribution(UniformDistribution([0.2, 0.8]), UniformDistribution([0, 0.01])),
         np.array([[0.3, 0.005]]), lambda m, i: _record(m, n_meas=5 + i), True),
]


def _data(case):
    """Outcomes simulated from the truth (the same on every rank), and their experiments."""
    model = case.make()
    model.rng = np.random.default_rng(2024)
    experiments = [case.experiment(model, index) for index in range(N_DATA)]
    return [model.simulate_experiment(case.truth, experiment) for experiment in experiments], experiments


def _candidates(case, model):
    return np.concatenate([case.experiment(model, index) for index in range(N_DATA, N_DATA + 4)])


def _check_steps(model, before, after):
    """One step per particle, of the walk's standard deviation (to five standard errors of the estimate)."""
    steps = after[:, 0] - before[:, 0]
    if isinstance(model, RandomWalkModel):
        normalised = steps / 1e-2  # NormalDistribution(0, 1e-4)
    else:  # GaussianRandomWalkModel with a learned diagonal: each particle's own sigma, its last parameter
        sigma = before[:, 1]
        normalised = steps[sigma > 0] / sigma[sigma > 0]
    n = normalised.size
    assert abs(np.mean(normalised)) < 5 / np.sqrt(n)
    assert abs(np.std(normalised) - 1) < 5 / np.sqrt(2 * n)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_updates_and_design_agree_with_smc_updater_on_the_same_cloud(world, case):
    outcomes, experiments = _data(case)

    def check(updater):
        model = updater.model
        weights, locations = updater.gather()
        twin = SMCUpdater(model, N_PARTICLES, case.prior(), rng=0)
        twin.particle_weights, twin.particle_locations = weights, locations
        before = locations
        # A random step moves each rank's particles with its own stream: after it, the clouds
        # differ, so such a model is compared on its first datum and its steps' statistics.
        for outcome, experiment in zip(outcomes[:1] if case.random_step else outcomes, experiments):
            updater.update(outcome, experiment, check_for_resample=False)
            twin.update(outcome, experiment, check_for_resample=False)
        weights, locations = updater.gather()
        np.testing.assert_allclose(weights, twin.particle_weights, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(updater.normalization_record, twin.normalization_record, rtol=1e-12)
        assert np.all(np.isfinite(locations)) and locations.shape == twin.particle_locations.shape
        if case.random_step:
            _check_steps(model, before, locations)
            return
        np.testing.assert_allclose(locations, twin.particle_locations, rtol=0, atol=0)
        np.testing.assert_allclose(updater.est_mean(), twin.est_mean(), rtol=1e-12)
        if not case.normalised:
            # The distributed design sums take the last outcome's likelihood as one minus the others'
            # (qinfer's convention), SMCUpdater evaluates every outcome: alike only for a normalised model.
            return
        candidates = _candidates(case, model)
        np.testing.assert_allclose(updater.bayes_risk(candidates), twin.bayes_risk(candidates), rtol=1e-8)
        np.testing.assert_allclose(updater.expected_information_gain(candidates),
                                   twin.expected_information_gain(candidates), rtol=1e-8, atol=1e-14)

    verdict = None
    with DistributedSMCUpdater(case.make(), N_PARTICLES, case.prior(), comm=world, rng=5) as updater:
        if updater.is_root:
            verdict = verdict_of(check, updater)
    assert_collectively(world, verdict)


@pytest.mark.parametrize("case", [case for case in CASES if case.name in ("multinomial-die", "binomial-rb", "die")],
                         ids=lambda case: case.name)
def test_a_run_with_resampling_finds_the_truth(world, case):
    """Thirty data with resampling: the posterior mean comes near the truth on any number of ranks."""
    model = case.make()
    model.rng = np.random.default_rng(7)
    experiments = [case.experiment(model, index % N_DATA) for index in range(30)]
    outcomes = [model.simulate_experiment(case.truth, experiment) for experiment in experiments]

    def check(updater):
        for outcome, experiment in zip(outcomes, experiments):
            updater.update(outcome, experiment)
        mean, cov = updater.est_mean(), updater.est_covariance_mtx()
        # Within five posterior standard deviations (plus a little for the resampler's smoothing).
        assert np.all(np.abs(mean - case.truth[0]) <= 5 * np.sqrt(np.diag(cov)) + 0.02), (mean, cov)

    verdict = None
    with DistributedSMCUpdater(case.make(), 2000, case.prior(), comm=world, rng=9) as updater:
        if updater.is_root:
            verdict = verdict_of(check, updater)
    assert_collectively(world, verdict)
