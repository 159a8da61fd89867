"""DistributedSMCUpdater: the posterior against SMCUpdater, resampling, atomicity, reproducibility, bad input.

Every collective test runs twice: serially (a one-rank world, plain pytest)
and under mpiexec at any number of ranks (``scripts/mpi-pytest.sh VENV N
tests/spmd/test_distributed.py``), through the ``ranks`` fixture. The helpers'
pure functions are tested on their own.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_collectively, verdict_of

from mpi_qinfer import DistributedSMCUpdater, Engine, MPIParallelizedModel, RemoteError, SMCUpdater
from mpi_qinfer.distributed.resampling import exchange_plan, locate, offspring_counts
from mpi_qinfer.distributed.sums import (
    information_gain_from_sums,
    local_design_sums,
    local_moments,
    moments_from_sums,
    outcome_blocks,
    risk_from_sums,
)
from mpi_qinfer.engine.partition import weighted_counts
from mpi_qinfer.models.builtin import BinomialModel, RamseyModel, SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc.heuristics import PGH
from mpi_qinfer.smc.updater import ApproximationWarning

RAMSEY_PRIOR = UniformDistribution([[0.0, 1.0], [1.0, 10.0]])
RAMSEY_TRUTH = np.array([[0.55, 4.0]])


@pytest.fixture(params=[pytest.param("serial"), pytest.param("mpi", marks=pytest.mark.mpi)])
def world(request):
    """COMM_WORLD: one rank in a plain pytest run, every rank under mpiexec."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def ramsey_data(n: int = 30, seed: int = 11, n_meas: int = 20):
    """Fixed outcomes and experiments of ``BinomialModel(RamseyModel())`` (the same on every rank)."""
    rng = np.random.default_rng(seed)
    expparams = np.zeros(n, dtype=BinomialModel(RamseyModel()).expparams_dtype)
    expparams["t"] = np.linspace(0.5, 8, n)
    expparams["n_meas"] = n_meas
    single = np.zeros(n, dtype=RamseyModel().expparams_dtype)
    single["t"] = expparams["t"]
    pr1 = RamseyModel().likelihood(np.array([1]), RAMSEY_TRUTH, single)[0, 0]
    return rng.binomial(n_meas, pr1).astype(np.int64), expparams


def on_root(comm, updater_args, check, **kwargs):
    """Build an updater on every rank, run ``check(updater)`` on the root, and agree on the verdict."""
    verdict = None
    with DistributedSMCUpdater(*updater_args, comm=comm, **kwargs) as updater:
        if updater.is_root:
            verdict = verdict_of(check, updater)
    assert_collectively(comm, verdict)
    return updater


# ------------------------------------------------------------------ the posterior
def test_posterior_agrees_with_smc_updater_within_five_standard_errors(world):
    outcomes, expparams = ramsey_data()
    # Six entries (mean and covariance) compared by Welch's statistic over 16 seeds a side (about 30
    # degrees of freedom): a correct updater exceeds 5 standard errors in one of them with p ~ 1e-4.
    seeds = range(16)
    model = BinomialModel(RamseyModel())
    estimates = {"distributed": [], "serial": []}
    for seed in seeds:
        def run(updater):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for outcome, experiment in zip(outcomes, expparams):
                    updater.update(outcome, experiment[np.newaxis])
            estimates["distributed"].append((updater.est_mean(), updater.est_covariance_mtx()))
            assert updater.resample_count > 0

        on_root(world, (model, 2000, RAMSEY_PRIOR), run, rng=seed)
        if world.Get_rank() == 0:
            serial = SMCUpdater(model, 2000, RAMSEY_PRIOR, rng=1000 + seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for outcome, experiment in zip(outcomes, expparams):
                    serial.update(outcome, experiment[np.newaxis])
            estimates["serial"].append((serial.est_mean(), serial.est_covariance_mtx()))

    def compare():
        for index in (0, 1):  # mean, covariance
            d = np.array([e[index] for e in estimates["distributed"]])
            s = np.array([e[index] for e in estimates["serial"]])
            error = np.sqrt(d.var(axis=0, ddof=1) / len(d) + s.var(axis=0, ddof=1) / len(s))
            gap = np.abs(d.mean(axis=0) - s.mean(axis=0))
            assert np.all(gap <= 5 * error + 1e-12), (index, gap, error)
        # And both found the truth (the data are fixed, so this is a property of their exact posterior).
        mean = np.array([e[0] for e in estimates["distributed"]]).mean(axis=0)
        assert abs(mean[0] - RAMSEY_TRUTH[0, 0]) < 0.05

    assert_collectively(world, verdict_of(compare) if world.Get_rank() == 0 else None)


def test_estimates_equal_the_serial_formulas_on_the_gathered_cloud(world):
    outcomes, expparams = ramsey_data(12, n_meas=1)
    model = RamseyModel()
    expparams = expparams[["t", "phase"]].astype(model.expparams_dtype)

    def check(updater):
        for outcome, experiment in zip(outcomes, expparams):
            updater.update(outcome, experiment[np.newaxis])
        weights, locations = updater.gather()
        assert weights.shape == (1500,) and locations.shape == (1500, 2)
        reference = SMCUpdater(model, 10, RAMSEY_PRIOR, rng=0)
        reference.particle_weights, reference.particle_locations = weights, locations
        np.testing.assert_allclose(updater.est_mean(), reference.est_mean(), rtol=1e-12)
        np.testing.assert_allclose(updater.est_covariance_mtx(), reference.est_covariance_mtx(), rtol=1e-9)
        assert updater.n_ess == pytest.approx(1 / np.sum(weights**2), rel=1e-12)
        nonzero = weights[weights > 0]
        assert updater.est_entropy() == pytest.approx(-np.sum(nonzero * np.log(nonzero)), rel=1e-12)
        candidates = np.zeros(7, dtype=model.expparams_dtype)
        candidates["t"] = np.linspace(1, 20, 7)
        risk, gain = qinfer_risk_and_gain(model, weights, locations, candidates)
        np.testing.assert_allclose(updater.bayes_risk(candidates), risk, rtol=1e-8)
        np.testing.assert_allclose(updater.expected_information_gain(candidates), gain, rtol=1e-8, atol=1e-14)
        for level in (0.5, 0.9, 0.99):
            inside, outside = updater.est_credible_region(level, return_outside=True)
            expected_in, expected_out = qinfer_credible_region(weights, locations, level)
            assert inside.shape == expected_in.shape and outside.shape == expected_out.shape
            np.testing.assert_array_equal(np.sort(inside, axis=0), np.sort(expected_in, axis=0))
        sliced = updater.est_credible_region(0.9, modelparam_slice=slice(1, 2))
        assert sliced.shape[1] == 1
        points = np.random.default_rng(3).random(20)
        index = np.minimum(np.cumsum(weights).searchsorted(points, side="right"), weights.size - 1)
        np.testing.assert_array_equal(updater.particles_at(points), locations[index])

    on_root(world, (model, 1500, RAMSEY_PRIOR), check, rng=4)


def qinfer_risk_and_gain(model, weights, locations, expparams):
    """qinfer's bayes_risk and expected_information_gain, written out on a whole cloud."""
    outcomes = np.asarray(model.domain(expparams[:1])[0].values)
    likelihood = model.likelihood(outcomes[:-1], locations, expparams).transpose([0, 2, 1])
    hyp = weights * likelihood
    norm = hyp.sum(axis=2)
    last = (1 - likelihood.sum(axis=0)) * weights
    norm = np.concatenate([norm, last.sum(axis=1)[np.newaxis]])
    w_hyp = np.concatenate([hyp / norm[:-1, :, np.newaxis], (last / norm[-1][:, np.newaxis])[np.newaxis]])
    mu = w_hyp @ locations
    var = np.sum(w_hyp * np.sum(model.Q * (locations[np.newaxis, np.newaxis] - mu[:, :, np.newaxis]) ** 2, axis=3),
                 axis=2)
    kld = np.sum(w_hyp * np.log(w_hyp / weights), axis=2)
    return np.sum(norm * var, axis=0), np.sum(norm * kld, axis=0)


def qinfer_credible_region(weights, locations, level):
    """qinfer's est_credible_region (inside, outside) on a whole cloud."""
    order = np.argsort(weights)[::-1]
    cumulative = np.cumsum(weights[order])
    inside = cumulative <= level
    inside[np.sum(inside)] = True
    return locations[order][inside], locations[order][~inside]


def test_pgh_draws_particles_by_global_index(world):
    model = SimplePrecessionModel()

    def check(updater):
        updater.update(0, np.array([2.0]))
        weights, locations = updater.gather()
        state = np.random.default_rng(9)
        points = state.random(2)
        heuristic = PGH(updater, inv_field=None, rng=9)
        time = heuristic()[0]
        index = np.minimum(np.cumsum(weights).searchsorted(points, side="right"), weights.size - 1)
        x, xp = locations[index]
        assert time == pytest.approx(1 / np.abs(x - xp).sum(), rel=1e-12)

    on_root(world, (model, 800, UniformDistribution([0, 1])), check, rng=2)


# ------------------------------------------------------------------ resampling
@pytest.mark.parametrize("draws", ["multinomial", "systematic"])
def test_resampling_conserves_the_count_and_respects_balance_weights(world, draws):
    size = world.Get_size()
    balance = np.arange(1, size + 1, dtype=float)
    target = weighted_counts(1001, balance)

    def check(updater):
        for t in (1.0, 3.0, 7.0):
            updater.update(0, np.array([t]), check_for_resample=False)
        before = updater.est_mean()
        sd = np.sqrt(updater.est_covariance_mtx()[0, 0])
        updater.resample()
        assert updater.resample_count == 1 and updater.just_resampled
        np.testing.assert_array_equal(updater.shard_counts, target)
        weights, locations = updater.gather()
        assert weights.shape == (1001,) and np.all(weights == 1 / 1001)
        assert updater.n_ess == pytest.approx(1001)
        assert np.all(locations >= 0)  # Liu-West redrew every invalid particle
        # Resampling keeps the mean in expectation; drawing 1001 offspring and Liu-West's jitter
        # (variance h^2 < 1 of the posterior's) move it by about sd * sqrt(2 / 1001): allow six.
        assert abs(updater.est_mean()[0] - before[0]) < 6 * sd * np.sqrt(2 / 1001)

    updater = on_root(world, (SimplePrecessionModel(), 1001, UniformDistribution([0, 1])), check, rng=6,
                      balance=balance, draws=draws)
    assert len(updater.local_weights) == target[world.Get_rank()]
    assert updater.local_locations.shape == (target[world.Get_rank()], 1)


class _RankPrior:
    """Rank r samples the frequency from [r, r + 1) / size: each rank's particles are its own."""

    def __init__(self, rank, size):
        self.low, self.high = rank / size, (rank + 1) / size

    def sample(self, n=1, rng=None):
        return np.random.default_rng(rng).uniform(self.low, self.high, (n, 1))


def test_resampling_moves_offspring_to_the_ranks_that_lost_their_weight(world):
    rank, size = world.Get_rank(), world.Get_size()
    truth = 0.1  # inside rank 0's range only
    times = np.linspace(1, 40, 25)
    data = (np.random.default_rng(1).random(times.size) > np.cos(truth * times / 2) ** 2).astype(np.int64)

    # The exact posterior of these data under the whole prior (uniform on [0, 1)), on a fine grid.
    grid = np.linspace(0, 1, 200_001)
    density = np.ones_like(grid)
    for outcome, t in zip(data, times):
        pr0 = np.cos(grid * t / 2) ** 2
        density *= pr0 if outcome == 0 else 1 - pr0
    density /= density.sum()
    exact_mean = density @ grid
    exact_sd = np.sqrt(density @ (grid - exact_mean) ** 2)

    def check(updater):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for outcome, t in zip(data, times):
                updater.update(outcome, np.array([t]), check_for_resample=False)
            ess = updater.n_ess
            updater.resample()
        # The particle mean's Monte-Carlo error: sd / sqrt(ESS) from the weights, sd * sqrt(2 / n)
        # from the resampling; allow six of it.
        assert abs(updater.est_mean()[0] - exact_mean) < 6 * exact_sd * np.sqrt(1 / ess + 2 / 900)

    updater = on_root(world, (SimplePrecessionModel(), 900, _RankPrior(rank, size)), check, rng=3)
    # Every rank now holds its even share, all of it descended from rank 0's particles near the truth.
    assert len(updater.local_weights) == 900 // size + (rank < 900 % size)
    assert np.all(np.abs(updater.local_locations[:, 0] - truth) < 0.1)


def test_same_seed_and_ranks_reproduce_bitwise_and_another_seed_does_not(world):
    clouds = []
    for seed in (5, 5, 6):
        def run(updater):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for k in range(25):
                    updater.update(k % 2, np.array([1.3**k]))
            assert updater.resample_count > 1
            clouds.append(updater.gather())

        on_root(world, (SimplePrecessionModel(), 700, UniformDistribution([0, 1])), run, rng=seed,
                draws="systematic" if world.Get_size() > 2 else "multinomial")

    def compare():
        (w1, x1), (w2, x2), (w3, x3) = clouds
        assert np.array_equal(w1, w2) and np.array_equal(x1, x2)
        assert not np.array_equal(x1, x3)

    assert_collectively(world, verdict_of(compare) if world.Get_rank() == 0 else None)


def test_batch_update_is_updates_with_a_resampling_check_every_interval(world):
    times = 1.2 ** np.arange(12)
    outcomes = np.arange(12) % 2
    clouds = []

    def batch(updater):
        updater.batch_update(outcomes, times, resample_interval=3)
        clouds.append((updater.gather(), updater.resample_count, list(updater.data_record)))

    def by_hand(updater):
        for index, (outcome, t) in enumerate(zip(outcomes, times)):
            updater.update(outcome, np.array([t]), check_for_resample=False)
            if (index + 1) % 3 == 0 and updater.n_ess < 0.5 * updater.n_particles:
                updater.resample()
        clouds.append((updater.gather(), updater.resample_count, list(updater.data_record)))

    for check in (batch, by_hand):
        on_root(world, (SimplePrecessionModel(), 400, UniformDistribution([0, 1])), check, rng=8)

    def compare():
        ((w1, x1), count1, record1), ((w2, x2), count2, record2) = clouds
        assert count1 == count2 > 0 and record1 == record2
        assert np.array_equal(w1, w2) and np.array_equal(x1, x2)

    assert_collectively(world, verdict_of(compare) if world.Get_rank() == 0 else None)


# --------------------------------------------------------------------- failures
class _FlakyPrecession(SimplePrecessionModel):
    """On a failing rank: the likelihood fails for times above 5, and are_models_valid from the third update on.

    Every rank counts its likelihood calls (one per update, the same on every
    rank), so the failures come at the same step everywhere without a command.
    """

    def __init__(self, failing: bool):
        super().__init__()
        self.failing = failing
        self.calls = 0

    def likelihood(self, outcomes, modelparams, expparams):
        self.calls += 1
        if self.failing and float(np.ravel(expparams)[0]) > 5:
            raise ZeroDivisionError("the likelihood failed")
        return super().likelihood(outcomes, modelparams, expparams)

    def are_models_valid(self, modelparams):
        if self.failing and self.calls >= 3:
            raise FloatingPointError("the validity check failed")
        return super().are_models_valid(modelparams)


def test_a_model_failure_changes_no_shard_and_the_root_raises(world):
    last = world.Get_size() - 1
    model = _FlakyPrecession(failing=world.Get_rank() == last)

    def check(updater):
        updater.update(1, np.array([2.0]), check_for_resample=False)
        before = updater.gather()
        state = (updater.n_ess, list(updater.data_record), updater.resample_count)
        with pytest.raises(ZeroDivisionError, match="the likelihood failed") as raised:
            updater.update(0, np.array([6.0]), check_for_resample=False)
        assert isinstance(raised.value.__cause__, RemoteError)  # as the proxy: the model's exception, ranks' tracebacks
        assert raised.value.__cause__.ranks == [last]
        after = updater.gather()
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
        assert (updater.n_ess, list(updater.data_record), updater.resample_count) == state
        # A resampling that fails (in the validity check, after the exchange) changes nothing either.
        updater.update(1, np.array([3.0]), check_for_resample=False)
        before = updater.gather()
        with pytest.raises(FloatingPointError, match="the validity check failed"):
            updater.resample()
        after = updater.gather()
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
        assert updater.resample_count == 0 and not updater.just_resampled
        updater.update(0, np.array([4.0]), check_for_resample=False)  # the updater still works
        assert len(updater.data_record) == 3

    on_root(world, (model, 600, UniformDistribution([0, 1])), check, rng=1)


class _FailsOnce(SimplePrecessionModel):
    """On a failing rank, ``are_models_valid`` raises once: at its first call after ``after`` likelihood calls.

    Every rank makes one likelihood call per update, so the failure falls in
    the first resampling after update ``after`` on every rank count, and a
    retry of the same step succeeds.
    """

    def __init__(self, failing: bool, after: int):
        super().__init__()
        self.failing, self.after = failing, after
        self.calls = 0

    def likelihood(self, outcomes, modelparams, expparams):
        self.calls += 1
        return super().likelihood(outcomes, modelparams, expparams)

    def are_models_valid(self, modelparams):
        if self.failing and self.calls >= self.after:
            self.failing = False
            raise FloatingPointError("the validity check failed once")
        return super().are_models_valid(modelparams)


def _full_state(updater):
    """Everything a step may change, on the root, for either updater."""
    return (updater.particle_weights.copy(), updater.particle_locations.copy(), list(updater.data_record),
            list(updater.normalization_record), updater.resample_count, updater.just_resampled, updater.n_ess,
            updater.rng.bit_generator.state)


def _assert_same_state(got, want):
    for new, old in zip(got, want):
        np.testing.assert_equal(new, old)


PRECESSION_DATA = [(k % 2, np.array([1.3**k])) for k in range(25)]


def _updates_retrying_failures(updater, data=PRECESSION_DATA):
    """Feed ``data``; a step that raises must have changed nothing, and is then retried. Returns the failures."""
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for outcome, experiment in data:
            before = _full_state(updater)
            try:
                updater.update(outcome, experiment)
            except FloatingPointError as error:
                failures.append(error)
                _assert_same_state(_full_state(updater), before)
                updater.update(outcome, experiment)
    return failures, _full_state(updater)


def test_an_update_whose_resampling_fails_changes_nothing_and_its_retry_is_the_run_that_never_failed(world):
    rank, last = world.Get_rank(), world.Get_size() - 1
    runs = {}
    for failing in (False, True):
        model = _FailsOnce(failing and rank == last, after=8)

        def run(updater, failing=failing):
            runs[failing] = _updates_retrying_failures(updater)

        on_root(world, (model, 700, UniformDistribution([0, 1])), run, rng=8)
    serial = {failing: _updates_retrying_failures(SMCUpdater(_FailsOnce(failing, after=8), 700,
                                                             UniformDistribution([0, 1]), rng=8))
              for failing in (False, True)} if rank == 0 else None

    def compare():
        for results, ranks in ((runs, [last]), (serial, [0])):  # the same verdicts from both updaters
            (none, clean), (failures, retried) = results[False], results[True]
            assert none == [] and len(failures) == 1 and clean[4] > 1  # one failure, inside a resampling
            if results is runs:
                assert isinstance(failures[0].__cause__, RemoteError) and failures[0].__cause__.ranks == ranks
            _assert_same_state(retried, clean)  # bitwise: the datum counted once, the same random numbers
            assert len(retried[2]) == len(PRECESSION_DATA)

    assert_collectively(world, verdict_of(compare) if rank == 0 else None)


def test_a_failed_resample_restores_the_generator_and_its_retry_is_the_resample_that_never_failed(world):
    rank, last = world.Get_rank(), world.Get_size() - 1
    results, serial_verdicts = [], []
    for failing in (False, True):
        def run(updater, failing=failing):
            updater.update(1, np.array([5.0]), check_for_resample=False)
            before = _full_state(updater)
            if failing:
                with pytest.raises(FloatingPointError, match="failed once"):
                    updater.resample()
                _assert_same_state(_full_state(updater), before)  # the root's generator too
            updater.resample()
            results.append(_full_state(updater))

        on_root(world, (_FailsOnce(failing and rank == last, after=0), 500, UniformDistribution([0, 1])), run,
                rng=4)
        if rank == 0:  # the serial updater, on the same model
            serial_verdicts.append(
                verdict_of(run, SMCUpdater(_FailsOnce(failing, after=0), 500, UniformDistribution([0, 1]), rng=4)))

    def compare():
        assert serial_verdicts == [None, None], serial_verdicts
        distributed_clean, serial_clean, distributed_retried, serial_retried = results
        _assert_same_state(distributed_retried, distributed_clean)
        _assert_same_state(serial_retried, serial_clean)
        assert distributed_retried[4] == serial_retried[4] == 1

    assert_collectively(world, verdict_of(compare) if rank == 0 else None)


def test_a_batch_update_is_atomic_on_every_shard(world):
    rank, last = world.Get_rank(), world.Get_size() - 1
    times = 1.3 ** np.arange(15)
    outcomes = np.arange(15) % 2
    results = []
    for failing in (False, True):
        def run(updater, failing=failing):
            updater.update(0, np.array([0.5]))
            before = _full_state(updater)
            if failing:
                with pytest.raises(FloatingPointError, match="failed once"):  # in a resampling inside the batch
                    updater.batch_update(outcomes, times, resample_interval=3)
                _assert_same_state(_full_state(updater), before)
            updater.batch_update(outcomes, times, resample_interval=3)
            results.append(_full_state(updater))

        on_root(world, (_FailsOnce(failing and rank == last, after=6), 400, UniformDistribution([0, 1])), run,
                rng=6)

    def compare():
        clean, retried = results
        assert clean[4] > 0 and len(clean[2]) == 16
        _assert_same_state(retried, clean)

    assert_collectively(world, verdict_of(compare) if rank == 0 else None)


def test_bad_input_errors_on_the_root_before_any_communication(world):
    model = SimplePrecessionModel()

    def check(updater):
        sent = []
        original = updater._send
        updater._send = lambda *args: sent.append(args)
        try:
            with pytest.raises(TypeError, match="expparams"):
                updater.update(0, np.array(["a"]))
            with pytest.raises(ValueError, match="outcome"):
                updater.update([0, 1], np.array([1.0]))
            with pytest.raises(TypeError, match="outcome"):
                updater.update("a", np.array([1.0]))
            with pytest.raises(ValueError, match="expparams"):
                updater.update(0, np.zeros(0))
            with pytest.raises(ValueError, match="level"):
                updater.est_credible_region(1.5)
            with pytest.raises(ValueError, match="n must be"):
                updater.sample(-1)
            with pytest.raises(ValueError, match="points"):
                updater.particles_at([np.nan])
            with pytest.raises(ValueError, match="expparams"):
                updater.bayes_risk(np.zeros(0))
        finally:
            updater._send = original
        assert sent == []
        updater.update(0, np.array([1.0]))  # still in step with the workers

    on_root(world, (model, 100, UniformDistribution([0, 1])), check, rng=0)


@pytest.mark.parametrize("kwargs, error", [
    ({"n_particles": 0}, ValueError),
    ({"resample_thresh": 2.0}, ValueError),
    ({"draws": "stratified"}, ValueError),
    ({"resampler": object()}, TypeError),
])
def test_bad_constructor_arguments_raise_on_every_rank_without_communicating(world, kwargs, error):
    arguments = {"n_particles": 10, **kwargs}
    n_particles = arguments.pop("n_particles")
    with pytest.raises(error):
        DistributedSMCUpdater(SimplePrecessionModel(), n_particles, UniformDistribution([0, 1]), comm=world,
                              **arguments)


def test_a_bool_root_or_ranks_passing_different_roots_fail_on_every_rank(world):
    prior = UniformDistribution([0, 1])
    with pytest.raises(ValueError, match="root must be a rank of comm"):
        DistributedSMCUpdater(SimplePrecessionModel(), 10, prior, comm=world, root=True)
    if world.Get_size() > 1:
        with pytest.raises(ValueError, match="same root"):
            DistributedSMCUpdater(SimplePrecessionModel(), 10, prior, comm=world, root=world.Get_rank())
    on_root(world, (SimplePrecessionModel(), 10, prior), lambda updater: updater.update(0, np.array([1.0])))


class _FailingPrior:
    """A prior whose sampling fails on the last rank only."""

    def __init__(self, failing):
        self.failing = failing

    def sample(self, n=1, rng=None):
        if self.failing:
            raise OSError("the prior failed")
        return np.random.default_rng(rng).random((n, 1))


def test_a_failing_prior_raises_its_exception_on_every_rank(world):
    last = world.Get_size() - 1
    with pytest.raises(OSError, match="the prior failed") as raised:
        DistributedSMCUpdater(SimplePrecessionModel(), 50, _FailingPrior(world.Get_rank() == last), comm=world)
    assert isinstance(raised.value.__cause__, RemoteError) and raised.value.__cause__.ranks == [last]


def test_bad_balance_raises_on_every_rank(world):
    with pytest.raises(ValueError, match="balance"):
        DistributedSMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), comm=world,
                              balance=[1.0] * (world.Get_size() + 1))


# ------------------------------------------------ the same verdicts as SMCUpdater on the same input
class _TransposedPrior:
    """A prior that returns its samples as (n_modelparams, n), the wrong way round."""

    def __init__(self):
        self.inner = RAMSEY_PRIOR

    def sample(self, n=1, rng=None):
        return self.inner.sample(n, rng=rng).T


def _raised(call, *args, **kwargs):
    """The exception ``call(*args, **kwargs)`` raises, or None."""
    try:
        call(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - compared by the caller
        return error
    return None


def test_a_prior_that_returns_rows_per_parameter_is_refused_by_both_updaters(world):
    # 101 particles: no rank holds exactly n_modelparams (2) of them, where the shapes would coincide.
    model, prior = BinomialModel(RamseyModel()), _TransposedPrior()
    serial = _raised(lambda: SMCUpdater(model, 101, prior, rng=0))
    distributed = _raised(lambda: DistributedSMCUpdater(model, 101, prior, rng=0, comm=world))
    for error in (serial, distributed):  # on every rank: construction is collective
        assert type(error) is ValueError, error
        assert "prior" in str(error) and "one row per particle" in str(error) and "(2, " in str(error)
    if world.Get_size() == 1:  # the same shard as the serial updater: the same message
        assert str(distributed) == str(serial)
    # The serial updater's reset draws through the same check.
    updater = SMCUpdater(model, 101, RAMSEY_PRIOR, rng=0)
    updater.prior = prior
    with pytest.raises(ValueError, match="one row per particle"):
        updater.reset()


def test_a_prior_of_another_dimension_is_refused_by_the_distributed_updater_with_what_to_do(world):
    # SMCUpdater accepts it with a warning, as qinfer does; the distributed sums need n_modelparams columns.
    error = _raised(lambda: DistributedSMCUpdater(BinomialModel(RamseyModel()), 60, UniformDistribution([0, 1]),
                                                  rng=0, comm=world))
    assert type(error) is ValueError, error
    assert "draws 1 parameter(s)" in str(error) and "dimension 2" in str(error)


class _Gaussian:
    """``y ~ N(mu x, 1)``: a model whose outcomes are real numbers (a plain float is one outcome)."""

    n_modelparams = 1
    expparams_dtype = np.float64

    def likelihood(self, outcomes, modelparams, expparams):
        mean = modelparams[:, 0][:, np.newaxis] * np.asarray(expparams, dtype=np.float64)[np.newaxis, :]
        y = np.asarray(outcomes, dtype=np.float64)[:, np.newaxis, np.newaxis]
        return np.exp(-0.5 * (y - mean) ** 2) / np.sqrt(2 * np.pi)

    def are_models_valid(self, modelparams):
        return np.ones(len(modelparams), dtype=bool)


def _serial_twin(updater, model, **kwargs):
    """An SMCUpdater holding the distributed updater's gathered cloud (root only)."""
    weights, locations = updater.gather()
    twin = SMCUpdater(model, weights.size, UniformDistribution([[0, 1]] * locations.shape[1]), rng=0, **kwargs)
    twin.particle_weights, twin.particle_locations = weights, locations
    return twin


BAD_OUTCOMES = [
    ([0, 1], ValueError), (np.array([0, 1]), ValueError), (np.array([[1]]), ValueError), (np.zeros(0), ValueError),
    ("a", TypeError), (None, TypeError), (np.array([object()]), TypeError),
]


def test_both_updaters_give_every_outcome_the_same_verdict(world):
    model = SimplePrecessionModel()

    def check(updater):
        twin = _serial_twin(updater, model)
        sent = []
        original = updater._send
        updater._send = lambda *args, **kwargs: sent.append(args)
        try:
            for outcome, kind in BAD_OUTCOMES:
                serial = _raised(twin.update, outcome, np.array([1.0]))
                distributed = _raised(updater.update, outcome, np.array([1.0]))
                assert type(serial) is type(distributed) is kind, (outcome, serial, distributed)
                assert str(serial) == str(distributed) and "outcome" in str(serial)
        finally:
            updater._send = original
        assert sent == []  # refused on the root, before any communication
        # Every form of one outcome is accepted, alike: the same weights as the serial updater's.
        for outcome in (1, np.int32(0), np.array(1), np.array([0]), True, 0.0, np.float64(1.0)):
            twin.update(outcome, np.array([1.7]), check_for_resample=False)
            updater.update(outcome, np.array([1.7]), check_for_resample=False)
            weights = updater.gather()[0]
            np.testing.assert_allclose(weights, twin.particle_weights, rtol=1e-12, atol=0)
        assert updater.data_record == twin.data_record
        np.testing.assert_allclose(updater.normalization_record, twin.normalization_record, rtol=1e-12)
        assert len(updater.data_record) == 7 and updater.data_record[5] == 0.0

    on_root(world, (model, 300, UniformDistribution([0, 1])), check, rng=5)


def test_a_real_valued_outcome_updates_both_updaters_alike(world):
    model = _Gaussian()
    data = [(0.8, 1.0), (2.1, 2.0), (-0.4, 0.5)]  # (outcome, experiment): plain floats

    def check(updater):
        twin = _serial_twin(updater, model)
        for y, x in data:
            twin.update(y, np.array([x]), check_for_resample=False)
            updater.update(y, np.array([x]), check_for_resample=False)
        np.testing.assert_allclose(updater.gather()[0], twin.particle_weights, rtol=1e-12, atol=0)
        np.testing.assert_allclose(updater.est_mean(), twin.est_mean(), rtol=1e-10)
        assert updater.data_record == twin.data_record == [0.8, 2.1, -0.4]

    on_root(world, (model, 400, UniformDistribution([-3, 3])), check, rng=3)


# ------------------------------------------------------- every member of SMCUpdater, with its defaults
def _members_table():
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_ext"))
    try:
        return importlib.import_module("updater_members")
    finally:
        sys.path.pop(0)


def _parameters(callable_):
    import inspect

    return [(p.name, p.kind, p.default) for p in inspect.signature(callable_).parameters.values()]


def test_every_public_member_of_an_smc_updater_is_on_a_live_distributed_one_with_the_same_defaults(world):
    serial = SMCUpdater(SimplePrecessionModel(), 50, UniformDistribution([0, 1]), rng=0)
    wanted = {name for name in dir(serial) if not name.startswith("_")}

    def check(updater):
        missing = wanted - {name for name in dir(updater) if not name.startswith("_")}
        assert missing == set(), f"DistributedSMCUpdater lacks {sorted(missing)}"
        for name in sorted(wanted):
            mine, theirs = getattr(type(serial), name, None), getattr(type(updater), name, None)
            if callable(mine) and not isinstance(mine, type):
                assert _parameters(theirs) == _parameters(mine), name
        n_serial = len(_parameters(SMCUpdater))
        assert _parameters(DistributedSMCUpdater)[:n_serial] == _parameters(SMCUpdater)  # the constructor, positionally
        assert updater.zero_weight_policy == serial.zero_weight_policy == "error"
        assert updater.zero_weight_thresh == serial.zero_weight_thresh

    on_root(world, (SimplePrecessionModel(), 50, UniformDistribution([0, 1])), check, rng=0)
    # The table in the docs is made from the same classes: nothing missing, nothing that differs.
    table = _members_table()
    verdicts = {row[0]: row[4] for row in table.member_rows()}
    assert {name for name in wanted} <= set(verdicts)
    odd = {name: verdict for name, verdict in verdicts.items()
           if verdict not in (table.SAME, table.ONLY_DISTRIBUTED, table.READ_ONLY, table.LIMITED)}
    assert odd == {}
    # The documented exceptions, each with its reason, and only those.
    assert {name for name, verdict in verdicts.items() if verdict == table.LIMITED} == set(table.EXCEPTIONS)
    assert {name for name, verdict in verdicts.items() if verdict == table.READ_ONLY} == \
        {"particle_weights", "particle_locations"}


def _impossible_cloud(world, policy=None, check=None, **kwargs):
    """A cloud on which outcome 1 at t = 1 is impossible (every omega is 0), updated once with outcome 0."""
    def run(updater):
        updater.update(0, np.array([1.0]), check_for_resample=False)
        check(updater)

    extra = {} if policy is None else {"zero_weight_policy": policy}
    return on_root(world, (SimplePrecessionModel(), 60, UniformDistribution([0, 0])), run, rng=0, **extra, **kwargs)


def _twin_policy(updater, policy):
    twin = _serial_twin(updater, SimplePrecessionModel(), zero_weight_policy=policy)
    twin.update(0, np.array([1.0]), check_for_resample=False)  # the same records
    twin.particle_weights, twin.particle_locations = updater.gather()
    return twin


def test_an_impossible_datum_raises_by_default_as_in_smc_updater_and_changes_nothing(world):
    def check(updater):
        assert updater.zero_weight_policy == "error"
        twin = _twin_policy(updater, "error")
        before = _full_state(updater)
        serial, distributed = _raised(lambda: twin.update(1, np.array([1.0]))), \
            _raised(lambda: updater.update(1, np.array([1.0])))
        assert type(serial) is type(distributed) is RuntimeError and str(distributed) == str(serial)
        assert "zero" in str(distributed)
        _assert_same_state(_full_state(updater), before)
        updater.update(0, np.array([2.0]))  # still alive
        assert updater.data_record == [0, 0]

    _impossible_cloud(world, check=check)


@pytest.mark.parametrize("policy", ["skip", "warn", "ignore"])
def test_the_zero_weight_policies_skip_warn_and_ignore_act_as_in_smc_updater(world, policy):
    def check(updater):
        twin = _twin_policy(updater, policy)
        with warnings.catch_warnings(record=True) as serial_warnings:
            warnings.simplefilter("always")
            twin.update(1, np.array([1.0]))
        with warnings.catch_warnings(record=True) as distributed_warnings:
            warnings.simplefilter("always")
            updater.update(1, np.array([1.0]))
        assert [str(w.message) for w in distributed_warnings] == [str(w.message) for w in serial_warnings]
        assert [w.category for w in distributed_warnings] == [w.category for w in serial_warnings]
        assert updater.data_record == twin.data_record
        # The first datum's norm is a sum over particles, added shard by shard: equal up to rounding.
        assert updater.normalization_record == pytest.approx(twin.normalization_record, rel=1e-14, abs=1e-300)
        np.testing.assert_array_equal(updater.gather()[0], twin.particle_weights)
        with np.errstate(divide="ignore"):  # all weights zero: n_ess is inf for both
            assert updater.n_ess == pytest.approx(twin.n_ess, rel=1e-12)

    _impossible_cloud(world, policy, check)


def test_the_zero_weight_policy_reset_redraws_the_prior_as_in_smc_updater(world):
    def check(updater):
        twin = _twin_policy(updater, "reset")
        with pytest.warns(ApproximationWarning, match="Resetting"):
            twin.update(1, np.array([1.0]))
        with pytest.warns(ApproximationWarning, match="Resetting"):
            updater.update(1, np.array([1.0]))
        assert updater.data_record == twin.data_record == [0, 1]
        assert updater.normalization_record[-1] == twin.normalization_record[-1] == 0.0
        weights, locations = updater.gather()
        np.testing.assert_array_equal(weights, np.full(60, 1 / 60))
        assert np.all(locations == 0) and updater.resample_count == twin.resample_count == 0

    _impossible_cloud(world, "reset", check)


class _NonFinite(SimplePrecessionModel):
    """The likelihood is ``value`` for the particles in ``rows``, at time 2 only."""

    def __init__(self, value, rows):
        super().__init__()
        self.value, self.rows = value, rows

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        if float(np.ravel(expparams)[0]) == 2.0:
            answer[:, self.rows, :] = self.value
        return answer


def _non_finite_on_the_last_rank(world, value, policy, check):
    """``check(updater, twin)``: the likelihood is ``value`` for the first particle of the last rank's shard
    (``twin``: an SMCUpdater on the gathered cloud, the same particle in global order)."""
    last = world.Get_size() - 1
    model = _NonFinite(value, slice(0, 1) if world.Get_rank() == last else slice(0, 0))

    def run(updater):
        updater.update(0, np.array([1.0]), check_for_resample=False)
        first = int(updater.shard_counts[:-1].sum())
        check(updater, _serial_twin(updater, _NonFinite(value, slice(first, first + 1)), zero_weight_policy=policy))

    on_root(world, (model, 300, UniformDistribution([0, 1])), run, rng=2, zero_weight_policy=policy)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_likelihood_on_one_rank_raises_as_in_smc_updater_and_changes_no_shard(world, value):
    def check(updater, twin):
        before = _full_state(updater)
        serial, distributed = _raised(lambda: twin.update(1, np.array([2.0]))), \
            _raised(lambda: updater.update(1, np.array([2.0])))
        assert type(serial) is type(distributed) is RuntimeError and str(distributed) == str(serial)
        assert "NaN" in str(distributed) and "infinite" in str(distributed)
        _assert_same_state(_full_state(updater), before)  # every shard, the records, the generator
        updater.update(1, np.array([3.0]))  # a finite datum goes on as usual
        assert np.all(np.isfinite(updater.gather()[0])) and updater.data_record == [0, 1]

    _non_finite_on_the_last_rank(world, value, "error", check)


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_a_non_finite_likelihood_follows_the_zero_weight_policy_as_in_smc_updater(world, policy):
    def check(updater, twin):
        with warnings.catch_warnings(record=True) as serial_warnings:
            warnings.simplefilter("always")
            twin.update(1, np.array([2.0]), check_for_resample=False)
        with warnings.catch_warnings(record=True) as distributed_warnings:
            warnings.simplefilter("always")
            updater.update(1, np.array([2.0]), check_for_resample=False)
        assert [str(w.message) for w in distributed_warnings] == [str(w.message) for w in serial_warnings]
        np.testing.assert_array_equal(updater.gather()[0], twin.particle_weights)  # NaN where the serial has NaN
        assert len(updater.data_record) == 1 + len(twin.data_record)  # the twin was built after the first datum

    _non_finite_on_the_last_rank(world, np.nan, policy, check)


def test_zero_weight_policy_and_threshold_are_checked_on_every_rank_and_kept(world):
    with pytest.raises(ValueError, match="zero_weight_policy"):
        DistributedSMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), comm=world,
                              zero_weight_policy="panic")

    def check(updater):
        assert updater.zero_weight_thresh == 0.5 and DistributedSMCUpdater.zero_weight_thresh == 1e-10
        updater.zero_weight_policy = "skip"
        with pytest.raises(ValueError, match="zero_weight_policy"):
            updater.zero_weight_policy = "never"
        assert updater.zero_weight_policy == "skip"
        # The root's policy and threshold apply on every rank: total weight 1 is not above 1.5, so skipped.
        updater.zero_weight_thresh = 1.5
        updater.update(0, np.array([1.0]))
        assert updater.data_record == [] and np.all(updater.gather()[0] == 1 / 10)

    on_root(world, (SimplePrecessionModel(), 10, UniformDistribution([0, 1])), check, rng=1, zero_weight_thresh=0.5)


def test_hypothetical_update_is_smc_updaters_on_the_gathered_cloud_and_changes_nothing(world):
    model = RamseyModel()
    experiments = np.zeros(3, dtype=model.expparams_dtype)
    experiments["t"] = [0.5, 2.0, 6.0]

    def check(updater):
        updater.update(1, experiments[:1], check_for_resample=False)
        twin = _serial_twin(updater, model)
        before = _full_state(updater)
        got = updater.hypothetical_update(np.array([0, 1]), experiments, return_likelihood=True,
                                          return_normalization=True)
        want = twin.hypothetical_update(np.array([0, 1]), experiments, return_likelihood=True,
                                        return_normalization=True)
        for mine, theirs in zip(got, want):
            assert mine.shape == theirs.shape and mine.flags.c_contiguous
            if world.Get_size() == 1:  # one shard: the serial sums, bitwise
                np.testing.assert_array_equal(mine, theirs)
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-300)
        assert updater.hypothetical_update(0, experiments[:1]).shape == (1, 1, 700)
        _assert_same_state(_full_state(updater), before)
        with pytest.raises(TypeError, match="expparams"):
            updater.hypothetical_update(0, np.array([1.0]))

    on_root(world, (model, 700, RAMSEY_PRIOR), check, rng=2)


def test_posterior_marginal_and_its_plot_are_smc_updaters_on_the_gathered_cloud(world):
    def check(updater):
        updater.update(1, np.array([(3.0, 0.0)], dtype=RamseyModel().expparams_dtype), check_for_resample=False)
        twin = _serial_twin(updater, RamseyModel())
        for args, kwargs in (((), {}), ((1, 40), {"smoothing": 0.3}), ((-1,), {"range_min": 2.0, "range_max": 9.0})):
            mine, theirs = updater.posterior_marginal(*args, **kwargs), twin.posterior_marginal(*args, **kwargs)
            for got, want in zip(mine, theirs):
                np.testing.assert_array_equal(got, want)  # the same function on the same numbers
        sent = []
        original = updater._send
        updater._send = lambda *args, **kwargs: sent.append(args)
        try:
            for bad in ({"idx_param": 2}, {"res": 1}, {"smoothing": -1.0}):
                assert str(_raised(updater.posterior_marginal, **bad)) == str(_raised(twin.posterior_marginal, **bad))
        finally:
            updater._send = original
        assert sent == []
        try:  # (not importorskip: a Skipped raised inside a collective check would become its verdict)
            import matplotlib
        except ImportError:  # the plot needs the [plot] extra; the marginal itself is checked above
            return
        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        ax = Figure().subplots()
        lines = updater.plot_posterior_marginal(1, res=30, ax=ax, true_model=np.array([0.5, 4.0]))
        np.testing.assert_array_equal(lines[0].get_ydata(), twin.posterior_marginal(1, 30)[1])

    on_root(world, (RamseyModel(), 500, RAMSEY_PRIOR), check, rng=3)


def test_reset_draws_afresh_from_the_prior_as_smc_updaters_reset(world):
    size = world.Get_size()
    balance = np.arange(1, size + 1, dtype=float)
    clouds = []

    def check(updater):
        updater.update(1, np.array([(3.0, 0.0)], dtype=RamseyModel().expparams_dtype), check_for_resample=False)
        kept_weights = updater.gather()[0]
        updater.reset(reset_weights=False)  # new locations, the same weights
        np.testing.assert_array_equal(updater.gather()[0], kept_weights)
        before = updater.gather()[1]
        updater.reset(only_params=1)  # omega kept, T2 redrawn
        weights, locations = updater.gather()
        np.testing.assert_array_equal(locations[:, 0], before[:, 0])
        assert not np.array_equal(locations[:, 1], before[:, 1]) and np.all(weights == 1 / 3000)
        updater.reset(n_particles=3001)
        weights, locations = updater.gather()
        assert updater.n_particles == 3001 and weights.shape == (3001,) and np.all(weights == 1 / 3001)
        np.testing.assert_array_equal(updater.shard_counts, weighted_counts(3001, balance))
        assert updater.n_ess == 3001 and updater.data_record == [1] and updater.resample_count == 0
        # Within Monte Carlo error of the prior's mean: (0.5, 5.5), standard deviations (1, 9) / sqrt(12).
        error = np.array([1.0, 9.0]) / np.sqrt(12 * 3001)
        assert np.all(np.abs(locations.mean(axis=0) - [0.5, 5.5]) < 4 * error)
        updater.update(0, np.array([(1.0, 0.0)], dtype=RamseyModel().expparams_dtype))  # works on the new cloud
        updater.resample()
        assert updater.gather()[0].shape == (3001,)
        clouds.append(locations)
        serial = SMCUpdater(RamseyModel(), 20, RAMSEY_PRIOR, rng=0)
        sent = []
        original = updater._send
        updater._send = lambda *args, **kwargs: sent.append(args)
        try:
            for bad in ({"n_particles": 5, "only_params": 0}, {"n_particles": 0},
                        {"n_particles": 7, "reset_weights": False}):
                mine, theirs = _raised(updater.reset, **bad), _raised(serial.reset, **bad)
                assert type(mine) is type(theirs) is ValueError and str(mine) == str(theirs)
            assert type(_raised(updater.reset, only_params=5)) is IndexError
        finally:
            updater._send = original
        assert sent == []

    for _ in range(2):
        on_root(world, (RamseyModel(), 3000, RAMSEY_PRIOR), check, rng=7, balance=balance)
    if world.Get_rank() == 0:
        np.testing.assert_array_equal(clouds[0], clouds[1])  # the same seed, the same draws


class _PriorFailingOnce:
    """A prior that fails once on a failing rank, at its second draw (the first is the updater's construction)."""

    def __init__(self, failing):
        self.failing, self.draws = failing, 0

    def sample(self, n=1, rng=None):
        self.draws += 1
        if self.failing and self.draws == 2:
            raise OSError("the prior failed once")
        return np.random.default_rng(rng).random((n, 1))


def test_a_failed_reset_changes_nothing_and_its_retry_is_the_reset_that_never_failed(world):
    rank, last = world.Get_rank(), world.Get_size() - 1
    results = []
    for failing in (False, True):
        def run(updater, failing=failing):
            updater.update(1, np.array([2.0]), check_for_resample=False)
            before = _full_state(updater)
            if failing:
                with pytest.raises(OSError, match="failed once"):
                    updater.reset()
                _assert_same_state(_full_state(updater), before)
            updater.reset()
            results.append(_full_state(updater))

        on_root(world, (SimplePrecessionModel(), 200, _PriorFailingOnce(failing and rank == last)), run, rng=5)

    def compare():
        _assert_same_state(results[1], results[0])

    assert_collectively(world, verdict_of(compare) if rank == 0 else None)


# ------------------------------------------------------------- sharing an Engine
def test_sharing_an_engine_serves_the_updater_and_a_proxy_from_one_loop(world):
    engine = Engine(world)
    proxy = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0, engine=engine)
    updater = DistributedSMCUpdater(SimplePrecessionModel(), 500, UniformDistribution([0, 1]), rng=2,
                                    engine=engine)
    from_proxy = DistributedSMCUpdater(proxy, 300, UniformDistribution([0, 1]), rng=3)
    verdict = None
    with engine:
        if engine.is_root:
            def check():
                with updater:
                    updater.update(0, np.array([1.0]))
                    answer = proxy.likelihood(np.array([0]), np.array([[0.25]]), np.array([1.0]))
                    assert answer[0, 0, 0] == pytest.approx(np.cos(0.125) ** 2)
                    updater.resample()
                    assert updater.gather()[0].size == 500
                assert updater.closed
                with from_proxy:
                    from_proxy.update(1, np.array([2.0]))
                    assert from_proxy.gather()[1].shape == (300, 1)
                    assert from_proxy.model is proxy.serial_model

            verdict = verdict_of(check)
    assert_collectively(world, verdict)
    assert updater.closed and from_proxy.closed


# --------------------------------------------------------------- pure helpers
def test_exchange_plan_moves_rows_in_global_order():
    have, want = np.array([5, 0, 1]), np.array([2, 2, 2])
    plans = [exchange_plan(have, want, rank) for rank in range(3)]
    sends = np.array([p[0] for p in plans])
    receives = np.array([p[1] for p in plans])
    np.testing.assert_array_equal(sends, receives.T)
    np.testing.assert_array_equal(sends.sum(axis=1), have)
    np.testing.assert_array_equal(receives.sum(axis=1), want)
    np.testing.assert_array_equal(sends[0], [2, 2, 1])


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_offspring_counts_sum_to_n_over_simulated_ranks(method):
    rng = np.random.default_rng(0)
    shards = [rng.random(k) for k in (4, 0, 7, 3)]
    totals = np.array([s.sum() for s in shards])
    starts = np.concatenate(([0], np.cumsum(totals)[:-1]))
    per_rank_seen = None
    total = 0
    for rank, weights in enumerate(shards):
        local, per_rank = offspring_counts(weights, method, 50, totals, starts, rank,
                                           np.random.default_rng(1), np.random.default_rng(10 + rank))
        assert local.sum() == per_rank[rank]
        per_rank_seen = per_rank if per_rank_seen is None else per_rank_seen
        np.testing.assert_array_equal(per_rank, per_rank_seen)  # the same on every rank
        total += local.sum()
    assert total == 50


def _simulated_shards(sizes, rng):
    shards = [rng.random(k) for k in sizes]
    totals = np.array([shard.sum() for shard in shards])
    return shards, totals, np.concatenate(([0], np.cumsum(totals)[:-1]))


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_offspring_go_to_a_shards_last_particle_when_it_holds_the_shards_weight(method):
    # Every shard's weight on its last particle: all of a rank's offspring must be that particle's.
    shards = [np.array([0.0, 0.0, 0.3]), np.array([0.5]), np.array([0.0, 0.0, 0.0, 0.2])]
    totals = np.array([shard.sum() for shard in shards])
    starts = np.concatenate(([0], np.cumsum(totals)[:-1]))
    for seed in range(20):
        for rank, weights in enumerate(shards):
            local, per_rank = offspring_counts(weights, method, 40, totals, starts, rank,
                                               np.random.default_rng(seed), np.random.default_rng(100 + rank))
            assert local[-1] == per_rank[rank] and local[:-1].sum() == 0, (seed, rank, local)


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_every_particle_of_every_shard_gets_its_expected_share_of_offspring(method):
    # Over many resamplings the mean offspring count of particle i is n w_i / sum(w), for both draws
    # (systematic draws are unbiased too). The tolerance is five standard errors of that mean, from the
    # binomial variance of one draw's count (an upper bound for systematic draws).
    rng = np.random.default_rng(7)
    shards, totals, starts = _simulated_shards((5, 1, 4, 6), rng)
    n, repeats = 30, 1500
    p = np.concatenate(shards) / totals.sum()
    counts = np.zeros((repeats, p.size))
    for repeat in range(repeats):
        # The common stream in the same state for every rank, as the updater seeds it.
        local = [offspring_counts(weights, method, n, totals, starts, rank, np.random.default_rng([repeat, 0]),
                                  np.random.default_rng([repeat, 1 + rank]))[0]
                 for rank, weights in enumerate(shards)]
        counts[repeat] = np.concatenate(local)
    standard_error = np.sqrt(n * p * (1 - p) / repeats)
    np.testing.assert_array_less(np.abs(counts.mean(axis=0) - n * p), 5 * standard_error + 1e-12)
    ends = np.cumsum([len(shard) for shard in shards]) - 1
    assert np.all(counts[:, ends].sum(axis=0) > 0)  # every shard's last particle was picked


def test_locate_finds_a_shards_last_particle():
    shards = [np.array([0.1, 0.2, 0.3]), np.array([0.4, 0.5])]
    totals = np.array([shard.sum() for shard in shards])
    starts = np.array([0.0, totals[0]])
    # A point just inside each shard's last segment, and one at the very end of the cloud.
    points = np.array([0.35, 0.59, 0.6 + 0.45, 1.49, totals.sum()])
    owners, found = [], []
    for rank, weights in enumerate(shards):
        mask, index = locate(weights, points, totals, starts, np.array([3, 2]), rank)
        owners.append(mask)
        found.append(index)
    np.testing.assert_array_equal(owners[0], [True, True, False, False, False])
    np.testing.assert_array_equal(found[0], [2, 2])
    np.testing.assert_array_equal(found[1], [1, 1, 1])


def test_locate_gives_each_point_to_exactly_one_rank():
    rng = np.random.default_rng(2)
    shards = [rng.random(k) for k in (3, 0, 5)]
    totals = np.array([s.sum() for s in shards])
    starts = np.concatenate(([0], np.cumsum(totals)[:-1]))
    points = np.append(rng.random(30) * totals.sum(), totals.sum() * 1.5)
    owners = np.zeros(points.size, dtype=int)
    for rank, weights in enumerate(shards):
        mask, index = locate(weights, points, totals, starts, np.array([3, 0, 5]), rank)
        owners += mask
        assert np.all(index < max(weights.size, 1))
    np.testing.assert_array_equal(owners, 1)


def test_shifted_moments_survive_a_narrow_cloud_far_from_the_origin():
    rng = np.random.default_rng(4)
    x = 1e6 + 1e-4 * rng.standard_normal((5000, 2))
    w = rng.random(5000)
    w /= w.sum()
    mean, cov = moments_from_sums(local_moments(w, x, x[0]), x[0])
    centred = x - w @ x
    np.testing.assert_allclose(cov, np.einsum("i,im,in->mn", w, centred, centred), rtol=1e-6)
    np.testing.assert_allclose(mean, w @ x, rtol=1e-13)


def test_design_sums_split_over_shards_add_up_to_the_whole():
    model = RamseyModel()
    rng = np.random.default_rng(5)
    x = RAMSEY_PRIOR.sample(300, rng=rng)
    w = rng.random(300)
    w /= w.sum()
    eps = np.zeros(4, dtype=model.expparams_dtype)
    eps["t"] = [1, 2, 5, 9]
    blocks = outcome_blocks(model, eps, 3)
    shift = w @ x
    whole = local_design_sums(model, w, x, shift, eps, blocks)
    parts = local_design_sums(model, w[:100], x[:100], shift, eps, blocks) + \
        local_design_sums(model, w[100:], x[100:], shift, eps, blocks)
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-15)
    risk, gain = qinfer_risk_and_gain(model, w, x, eps)
    np.testing.assert_allclose(risk_from_sums(model, parts, blocks, 2), risk, rtol=1e-9)
    np.testing.assert_allclose(information_gain_from_sums(model, parts, blocks, 2), gain, rtol=1e-9)


# ------------------------------------------------------------------ checkpoints of the sharded state
def _sharded_run(world, updates, save_at=None, resume=None, path=None, engine=False):
    """25 updates of a precession problem; optionally saved after ``save_at`` of them, or resumed from ``path``."""
    from mpi_qinfer.smc.checkpoint import load_checkpoint, save_checkpoint

    result = {}

    def run(updater):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = 0
            if resume:
                meta = load_checkpoint(path, updater)
                start = meta["n_updates"]
            for k in range(start, updates):
                updater.update(k % 2, np.array([1.3**k]))
                if save_at is not None and k + 1 == save_at:
                    save_checkpoint(path, updater)
        result["cloud"] = updater.gather()
        result["records"] = (list(updater.data_record), list(updater.normalization_record))
        result["resamples"] = updater.resample_count
        result["rng"] = updater.rng.bit_generator.state

    args = (SimplePrecessionModel(), 600, UniformDistribution([0, 1]))
    if engine:
        shared = Engine(world)
        verdict = None
        updater = DistributedSMCUpdater(*args, engine=shared, rng=8)
        with shared:
            if shared.is_root:
                verdict = verdict_of(run, updater)
        assert_collectively(world, verdict)
    else:
        on_root(world, args, run, rng=8)
    return result


@pytest.mark.parametrize("engine", [False, True])
def test_a_sharded_run_resumed_from_a_checkpoint_is_bitwise_the_uninterrupted_one(world, tmp_path, engine):
    path = str(world.bcast(str(tmp_path / "sharded.npz") if world.Get_rank() == 0 else None, 0))
    whole = _sharded_run(world, 25, save_at=12, path=path, engine=engine)
    resumed = _sharded_run(world, 25, resume=True, path=path, engine=engine)

    def compare():
        assert whole["resamples"] > 1
        for got, want in zip(resumed["cloud"], whole["cloud"]):
            assert np.array_equal(got, want)
        assert resumed["records"] == whole["records"] and resumed["resamples"] == whole["resamples"]
        assert resumed["rng"] == whole["rng"]

    assert_collectively(world, verdict_of(compare) if world.Get_rank() == 0 else None)


def test_a_sharded_checkpoint_is_refused_with_other_draws_and_re_sharded_on_another_rank_count(world, tmp_path):
    from mpi_qinfer.smc.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    path = str(world.bcast(str(tmp_path / "sharded.npz") if world.Get_rank() == 0 else None, 0))
    on_root(world, (SimplePrecessionModel(), 300, UniformDistribution([0, 1])),
            lambda updater: save_checkpoint(path, updater), rng=1)

    def systematic(updater):
        with pytest.raises(CheckpointError, match="draws"):
            load_checkpoint(path, updater)

    on_root(world, (SimplePrecessionModel(), 300, UniformDistribution([0, 1])), systematic, rng=1,
            draws="systematic")
    if world.Get_size() == 1:
        return
    # Written here with this world's shards, read by an updater on one rank only: the whole cloud on it.
    if world.Get_rank() == 0:
        from mpi4py import MPI

        with DistributedSMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]),
                                   comm=MPI.COMM_SELF, rng=1) as alone:
            meta = load_checkpoint(path, alone)
            assert meta["distributed"]["n_ranks"] == world.Get_size() and alone.shard_counts.tolist() == [300]
            with np.load(path) as saved:
                assert np.array_equal(alone.gather()[0], saved["particle_weights"])
                assert np.array_equal(alone.gather()[1], saved["particle_locations"])


def test_a_checkpointer_gathers_a_sharded_cloud_only_when_it_writes(world, tmp_path):
    from mpi_qinfer.smc.checkpoint import Checkpointer, read_metadata

    path = str(world.bcast(str(tmp_path / "periodic.npz") if world.Get_rank() == 0 else None, 0))

    def run(updater):
        gathers = []
        original = updater.checkpoint_state
        updater.checkpoint_state = lambda: gathers.append(1) or original()
        with pytest.raises(KeyboardInterrupt):
            with Checkpointer(path, updater, every_updates=5) as checkpoints:
                for k in range(12):
                    updater.update(k % 2, np.array([1.1**k]))
                    checkpoints.step()
                raise KeyboardInterrupt  # a stop after 12 complete updates
        assert len(gathers) == 3  # after updates 5 and 10, and at the stop
        assert read_metadata(path)["n_updates"] == 12

    on_root(world, (SimplePrecessionModel(), 300, UniformDistribution([0, 1])), run, rng=2)
