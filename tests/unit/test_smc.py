"""Tests of the SMC updater and the Liu-West resampler in mpi_qinfer.smc.updater."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from stats import posterior_checks

from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc.heuristics import ExpSparseHeuristic
from mpi_qinfer.smc.updater import ApproximationWarning, LiuWestResampler, ResamplerWarning, SMCUpdater

TRUE_OMEGA = 0.7


def _run_precession(seed: int, n_particles: int = 2000, n_exp: int = 100) -> SMCUpdater:
    model = SimplePrecessionModel()
    model.rng = np.random.default_rng(seed + 1000)
    up = SMCUpdater(model, n_particles, UniformDistribution([0, 1]), rng=seed)
    heuristic = ExpSparseHeuristic(up)
    true = np.array([[TRUE_OMEGA]])
    for _ in range(n_exp):
        eps = heuristic()
        up.update(model.simulate_experiment(true, eps), eps)
    return up


class FlakyPrecession(SimplePrecessionModel):
    """Precession whose likelihood raises on demand and records its arguments."""

    def __init__(self):
        super().__init__()
        self.fail = False
        self.seen_outcomes = []

    def likelihood(self, outcomes, modelparams, expparams):
        self.seen_outcomes.append(outcomes)
        if self.fail:
            raise RuntimeError("remote failure")
        return super().likelihood(outcomes, modelparams, expparams)


class DuckModel:
    """Only what the updater may rely on: n_modelparams, likelihood, are_models_valid, Q."""

    n_modelparams = 1
    Q = np.ones(1)

    def likelihood(self, outcomes, modelparams, expparams):
        pr0 = np.cos(modelparams[:, 0:1] * np.asarray(expparams, float)[None, :] / 2) ** 2
        return np.where(np.asarray(outcomes)[:, None, None] == 0, pr0, 1 - pr0)

    def are_models_valid(self, modelparams):
        return modelparams[:, 0] >= 0


def _state(up: SMCUpdater):
    return (
        up.particle_weights.copy(),
        up.particle_locations.copy(),
        list(up.data_record),
        list(up.normalization_record),
        up.resample_count,
        up.just_resampled,
        up.rng.bit_generator.state,
    )


# -- convergence and reproducibility -------------------------------------------------


def test_converges_on_simple_precession():
    # Over 300 seeds: width above 0.289 / 10 in 3 % of runs (aliased posteriors), truth outside
    # 3 widths in 0.7 %, at least 11 resamplings in every run: nine seeds fail with p < 1e-5.
    runs = []
    for seed in range(2024, 2033):
        up = _run_precession(seed=seed)
        assert up.resample_count > 0
        runs.append((up.est_mean()[0], np.sqrt(up.est_covariance_mtx()[0, 0]), TRUE_OMEGA))
    posterior_checks(runs, prior_sd=1 / np.sqrt(12), shrink=10)
    assert len(up.data_record) == 100


def test_same_seed_gives_identical_particles():
    a = _run_precession(seed=7, n_particles=500, n_exp=40)
    b = _run_precession(seed=7, n_particles=500, n_exp=40)
    c = _run_precession(seed=8, n_particles=500, n_exp=40)
    assert a.resample_count > 0
    np.testing.assert_array_equal(a.particle_locations, b.particle_locations)
    np.testing.assert_array_equal(a.particle_weights, b.particle_weights)
    assert not np.array_equal(a.particle_locations, c.particle_locations)


def test_initial_state():
    up = SMCUpdater(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), rng=0)
    assert up.particle_locations.shape == (100, 1)
    np.testing.assert_array_equal(up.particle_weights, np.full(100, 0.01))
    assert up.n_ess == pytest.approx(100)
    assert up.data_record == [] and up.normalization_record == []
    assert up.resample_count == 0 and not up.just_resampled
    assert up.n_rvs == 1
    assert isinstance(up.resampler, LiuWestResampler) and up.resampler.a == 0.98
    rng = np.random.default_rng(3)
    assert SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), rng=rng).rng is rng


# -- updating ------------------------------------------------------------------------------


def test_update_is_bayes_rule():
    model = SimplePrecessionModel()
    up = SMCUpdater(model, 50, UniformDistribution([0, 2]), rng=1)
    w0, x = up.particle_weights.copy(), up.particle_locations.copy()
    eps = np.array([1.3])
    up.update(1, eps, check_for_resample=False)
    lik = model.likelihood(np.array([1]), x, eps)[0, :, 0]
    np.testing.assert_allclose(up.particle_weights, w0 * lik / np.sum(w0 * lik), rtol=1e-12)
    assert up.normalization_record == [pytest.approx(np.sum(w0 * lik))]
    assert up.log_total_likelihood == pytest.approx(np.log(np.sum(w0 * lik)))
    assert up.n_ess == pytest.approx(1 / np.sum(up.particle_weights**2))
    assert up.data_record == [1]


def test_likelihood_gets_a_one_element_int_array():
    model = FlakyPrecession()
    up = SMCUpdater(model, 20, UniformDistribution([0, 1]), rng=0)
    up.update(1, np.array([0.5]))
    outcomes = model.seen_outcomes[-1]
    assert isinstance(outcomes, np.ndarray) and outcomes.shape == (1,)
    assert outcomes.dtype.kind == "i" and outcomes[0] == 1


def test_hypothetical_update_shapes_and_leaves_state():
    up = SMCUpdater(SimplePrecessionModel(), 30, UniformDistribution([0, 1]), rng=0)
    before = _state(up)
    w, L, norm = up.hypothetical_update(np.array([0, 1]), np.array([0.3, 2.0, 4.0]),
                                        return_likelihood=True, return_normalization=True)
    assert w.shape == (2, 3, 30) and L.shape == (2, 3, 30) and norm.shape == (2, 3, 1)
    np.testing.assert_allclose(w.sum(axis=2), 1.0)
    np.testing.assert_allclose(norm[0] + norm[1], 1.0)
    assert up.hypothetical_update(0, np.array([0.3])).shape == (1, 1, 30)
    w2, L2 = up.hypothetical_update(0, np.array([0.3]), return_likelihood=True)
    assert L2.shape == (1, 1, 30)
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)


def test_update_is_atomic_when_likelihood_raises():
    model = FlakyPrecession()
    up = SMCUpdater(model, 200, UniformDistribution([0, 1]), rng=4)
    for t in (1.0, 2.0, 4.0, 8.0):
        up.update(0, np.array([t]))
    before = _state(up)
    model.fail = True
    with pytest.raises(RuntimeError, match="remote failure"):
        up.update(1, np.array([16.0]))
    after = _state(up)
    for old, new in zip(before, after):
        np.testing.assert_equal(new, old)
    # And it carries on normally once the model recovers.
    model.fail = False
    up.update(1, np.array([16.0]))
    assert len(up.data_record) == 5


def test_impossible_outcome_warns_and_keeps_zero_weights_under_policy_warn():
    # omega = 0 everywhere: outcome 1 has probability zero for every particle.
    up = SMCUpdater(SimplePrecessionModel(), 20, UniformDistribution([0, 0]), rng=0, zero_weight_policy="warn")
    with pytest.warns(ApproximationWarning, match="zero"):
        up.update(1, np.array([1.0]), check_for_resample=False)
    assert not np.any(np.isnan(up.particle_weights))
    assert np.all(up.particle_weights == 0)


def test_batch_update_matches_single_updates():
    eps = np.array([0.5, 1.0, 2.0, 3.0, 5.0])
    outcomes = np.array([0, 1, 0, 0, 1])
    a = SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=9)
    b = SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=9)
    a.batch_update(outcomes, eps, resample_interval=100)
    for o, e in zip(outcomes, eps):
        b.update(o, np.array([e]), check_for_resample=False)
    np.testing.assert_array_equal(a.particle_weights, b.particle_weights)
    assert list(map(int, a.data_record)) == outcomes.tolist()
    with pytest.raises(ValueError):
        a.batch_update(outcomes[:2], eps)


def test_works_with_duck_typed_model():
    # Over 400 seeds the width stays above 0.289 / 10 in 2 % of runs and the truth lies outside
    # 3 widths in 0.25 %: nine seeds fail a correct updater with probability < 1e-6.
    runs = []
    for seed in range(9):
        up = SMCUpdater(DuckModel(), 1000, UniformDistribution([0, 1]), rng=11 + seed)
        sim = SimplePrecessionModel()
        sim.rng = np.random.default_rng(100 + seed)
        for k in range(40):
            eps = np.array([(9 / 8) ** k])
            up.update(sim.simulate_experiment(np.array([[TRUE_OMEGA]]), eps), eps)
        assert up.resample_count > 0  # 40 informative data always drive the ESS below half
        runs.append((up.est_mean()[0], np.sqrt(up.est_covariance_mtx()[0, 0]), TRUE_OMEGA))
    posterior_checks(runs, prior_sd=1 / np.sqrt(12), shrink=10)


def test_resample_warns_when_repeated_and_pickles():
    up = SMCUpdater(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), rng=0)
    up.update(0, np.array([1.0]), check_for_resample=False)
    up.resample()
    assert up.just_resampled and up.resample_count == 1
    np.testing.assert_array_equal(up.particle_weights, np.full(100, 0.01))
    with pytest.warns(ResamplerWarning, match="without additional data"):
        up.resample()
    clone = pickle.loads(pickle.dumps(up))
    np.testing.assert_array_equal(clone.particle_locations, up.particle_locations)
    assert clone.sample(5).tolist() == up.sample(5).tolist()


# -- Liu-West resampler ---------------------------------------------------------------------


def test_liu_west_preserves_moments():
    rng = np.random.default_rng(0)
    n = 20000
    locs = rng.normal([1.0, -1.0], [0.5, 0.2], size=(n, 2))
    weights = rng.random(n)
    weights /= weights.sum()
    mean = weights @ locs
    cov = np.cov(locs.T, aweights=weights, bias=True)

    class Free(DuckModel):
        n_modelparams = 2

        def are_models_valid(self, modelparams):
            return np.ones(modelparams.shape[0], dtype=bool)

    new_w, new_x = LiuWestResampler(a=0.9)(Free(), weights, locs, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(new_w, np.full(n, 1 / n))
    assert new_x.shape == locs.shape
    # Moments of n offspring of a weighted cloud: the Monte-Carlo error of the weighted moments
    # (effective size 1 / sum w^2) plus that of the n draws; allow six standard errors.
    spread = np.sum(weights**2) + 1 / n  # 1 / ESS + 1 / n
    var = np.diag(cov)
    np.testing.assert_allclose(new_x.mean(axis=0), mean, atol=6 * np.sqrt(var.max() * spread))
    cov_se = np.sqrt((np.outer(var, var) + cov**2) * spread)
    assert np.all(np.abs(np.cov(new_x.T) - cov) < 6 * cov_se), (np.cov(new_x.T), cov, cov_se)


def test_liu_west_respects_validity_and_canonicalizes():
    class HalfLine(SimplePrecessionModel):
        canonical_calls = 0

        def canonicalize(self, modelparams):
            HalfLine.canonical_calls += 1
            return modelparams

    model = HalfLine()
    locs = np.linspace(0, 0.05, 400)[:, None]  # hugging the omega >= 0 boundary
    w = np.full(400, 1 / 400)
    _, new = LiuWestResampler(a=0.5)(model, w, locs, rng=np.random.default_rng(2))
    assert np.all(new >= 0)
    assert HalfLine.canonical_calls == 1


def test_liu_west_warns_when_it_cannot_find_valid_models():
    class Nothing(DuckModel):
        def are_models_valid(self, modelparams):
            return np.zeros(modelparams.shape[0], dtype=bool)

    with pytest.warns(ResamplerWarning, match="failed to find valid models"):
        LiuWestResampler(maxiter=3)(Nothing(), np.full(5, 0.2), np.ones((5, 1)) * np.arange(5)[:, None],
                                    rng=np.random.default_rng(0))


def test_liu_west_zero_covariance_and_singular_covariance():
    model = DuckModel()
    with pytest.warns(ResamplerWarning, match="zero norm"):
        _, new = LiuWestResampler()(model, np.eye(10)[0], np.full((10, 1), 0.5),
                                    rng=np.random.default_rng(0))
    assert np.all(np.abs(new - 0.5) < 1e-3)

    class Free2(DuckModel):
        n_modelparams = 2

        def are_models_valid(self, modelparams):
            return np.ones(modelparams.shape[0], dtype=bool)

    # Second parameter fixed: the covariance is singular but not zero.
    locs = np.column_stack([np.linspace(0, 1, 50), np.full(50, 3.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, new = LiuWestResampler()(Free2(), np.full(50, 0.02), locs, rng=np.random.default_rng(0))
    assert np.all(np.isfinite(new))
    np.testing.assert_allclose(new[:, 1], 3.0)


def test_liu_west_same_rng_same_result():
    locs = np.random.default_rng(0).random((100, 1))
    w = np.full(100, 0.01)
    r = LiuWestResampler()
    a = r(DuckModel(), w, locs, rng=np.random.default_rng(5))[1]
    b = r(DuckModel(), w, locs, rng=np.random.default_rng(5))[1]
    np.testing.assert_array_equal(a, b)
    assert r.h == pytest.approx(np.sqrt(1 - 0.98**2))
    assert LiuWestResampler(h=0.3).h == 0.3


# -- zero-weight policy ----------------------------------------------------------------------


def _impossible_updater(policy, **kwargs):
    """An updater on which outcome 1 at any time is impossible (every omega is 0)."""
    up = SMCUpdater(SimplePrecessionModel(), 20, UniformDistribution([0, 0]), rng=0,
                    zero_weight_policy=policy, **kwargs)
    up.update(0, np.array([1.0]), check_for_resample=False)
    return up


def test_zero_weight_policy_error_is_the_default_and_changes_nothing():
    up = SMCUpdater(SimplePrecessionModel(), 20, UniformDistribution([0, 0]), rng=0)
    assert up.zero_weight_policy == "error"
    up.update(0, np.array([1.0]))
    before = _state(up)
    with pytest.raises(RuntimeError, match="zero"):
        up.update(1, np.array([2.0]))
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)
    # Still alive: a possible outcome updates as usual.
    up.update(0, np.array([2.0]))
    assert len(up.data_record) == 2 and np.isclose(up.particle_weights.sum(), 1.0)


def test_zero_weight_policy_skip_drops_the_datum():
    up = _impossible_updater("skip")
    before = _state(up)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping is silent, as in qinfer
        up.update(1, np.array([2.0]))
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)


def test_zero_weight_policy_reset_restarts_from_the_prior():
    up = SMCUpdater(SimplePrecessionModel(), 50, UniformDistribution([0, 1]), rng=5, zero_weight_policy="reset")

    class Impossible(SimplePrecessionModel):
        def likelihood(self, outcomes, modelparams, expparams):
            return np.zeros((len(outcomes), len(modelparams), len(expparams)))

    up.update(0, np.array([3.0]), check_for_resample=False)
    old_locations = up.particle_locations.copy()
    up.model = Impossible()
    with pytest.warns(ApproximationWarning, match="Resetting"):
        up.update(1, np.array([4.0]))
    np.testing.assert_array_equal(up.particle_weights, np.full(50, 1 / 50))
    assert not np.array_equal(up.particle_locations, old_locations)
    assert np.all((up.particle_locations >= 0) & (up.particle_locations <= 1))
    assert up.data_record == [0, 1] and up.normalization_record[-1] == 0.0
    assert up.resample_count == 0


def test_zero_weight_policy_warn_and_ignore_apply_the_update():
    with pytest.warns(ApproximationWarning, match="zero"):
        _impossible_updater("warn").update(1, np.array([2.0]))
    up = _impossible_updater("ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        up.update(1, np.array([2.0]))
    assert np.all(up.particle_weights == 0) and up.data_record == [0, 1]


def test_nan_likelihood_counts_as_zero_weights():
    class NanPrecession(SimplePrecessionModel):
        def likelihood(self, outcomes, modelparams, expparams):
            return np.full((len(outcomes), len(modelparams), len(expparams)), np.nan)

    up = SMCUpdater(NanPrecession(), 20, UniformDistribution([0, 1]), rng=0)
    with pytest.raises(RuntimeError, match="NaN"):
        up.update(0, np.array([1.0]))
    assert up.data_record == [] and np.all(up.particle_weights == 1 / 20)


def test_zero_weight_policy_and_threshold_are_checked_and_kept():
    with pytest.raises(ValueError, match="zero_weight_policy"):
        SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), zero_weight_policy="panic")
    up = SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), zero_weight_thresh=0.5)
    assert up.zero_weight_thresh == 0.5 and SMCUpdater.zero_weight_thresh == 1e-10
    clone = pickle.loads(pickle.dumps(up))
    assert clone.zero_weight_policy == "error" and clone.zero_weight_thresh == 0.5
    up.zero_weight_policy = "skip"
    assert up.zero_weight_policy == "skip"
    with pytest.raises(ValueError, match="zero_weight_policy"):
        up.zero_weight_policy = "never"
    assert up.zero_weight_policy == "skip"


# -- atomic updates: failures inside resampling ----------------------------------------------


class BrittleValidity(SimplePrecessionModel):
    """Precession whose ``are_models_valid`` (called by the resampler) raises while ``broken``."""

    def __init__(self):
        super().__init__()
        self.broken = False

    def are_models_valid(self, modelparams):
        if self.broken:
            raise OSError("validity service unavailable")
        return super().are_models_valid(modelparams)


def _resampling_run(model, fail_at=None, n_exp=30, seed=21):
    """A seeded run whose update ``fail_at`` first fails inside resampling, then is retried."""
    up = SMCUpdater(model, 300, UniformDistribution([0, 1]), rng=seed)
    sim = SimplePrecessionModel()
    sim.rng = np.random.default_rng(seed)
    failures = 0
    for k in range(n_exp):
        eps = np.array([(9 / 8) ** k])
        outcome = sim.simulate_experiment(np.array([[TRUE_OMEGA]]), eps)
        if k == fail_at:
            # Find the first update of the run that resamples from here on: break validity just for it.
            probe = pickle.loads(pickle.dumps(up))
            probe.update(outcome, eps)
            if probe.resample_count > up.resample_count:
                before = _state(up)
                model.broken = True
                with pytest.raises(OSError, match="validity"):
                    up.update(outcome, eps)
                model.broken = False
                failures += 1
                for old, new in zip(before, _state(up)):
                    np.testing.assert_equal(new, old)
            else:
                fail_at += 1
        up.update(outcome, eps)
    return up, failures


def test_failure_inside_resampling_changes_nothing_and_a_retry_counts_once():
    reference, _ = _resampling_run(BrittleValidity())
    retried, failures = _resampling_run(BrittleValidity(), fail_at=3)
    assert failures == 1 and reference.resample_count > 0
    # The retry drew the same random numbers: the whole run is bitwise the one without the failure.
    for old, new in zip(_state(reference), _state(retried)):
        np.testing.assert_equal(new, old)
    assert len(retried.data_record) == len(retried.normalization_record) == 30


def test_failed_resample_call_restores_the_generator():
    model = BrittleValidity()
    up = SMCUpdater(model, 100, UniformDistribution([0, 1]), rng=2)
    up.update(1, np.array([5.0]), check_for_resample=False)
    before = _state(up)
    model.broken = True
    with pytest.raises(OSError):
        up.resample()
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)


def test_interrupt_inside_the_resampler_changes_nothing():
    class Interrupting(LiuWestResampler):
        armed = True

        def __call__(self, model, weights, locations, rng=None):
            rng.random(10)  # consume randomness before failing
            if self.armed:
                raise KeyboardInterrupt
            return super().__call__(model, weights, locations, rng=rng)

    resampler = Interrupting()
    up = SMCUpdater(SimplePrecessionModel(), 200, UniformDistribution([0, 1]), resampler=resampler,
                    resample_thresh=1.0, rng=3)
    before = _state(up)
    with pytest.raises(KeyboardInterrupt):
        up.update(0, np.array([2.0]))
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)
    resampler.armed = False
    up.update(0, np.array([2.0]))
    assert up.resample_count == 1 and up.data_record == [0]


# -- batch updates -----------------------------------------------------------------------------


def test_batch_update_checks_for_resampling_every_interval():
    rng = np.random.default_rng(4)
    eps = (9 / 8) ** np.arange(24)
    sim = SimplePrecessionModel()
    sim.rng = rng
    outcomes = np.array([sim.simulate_experiment(np.array([[TRUE_OMEGA]]), np.array([t])) for t in eps]).ravel()

    batched = SMCUpdater(SimplePrecessionModel(), 400, UniformDistribution([0, 1]), rng=6)
    batched.batch_update(outcomes, eps, resample_interval=3)

    by_hand = SMCUpdater(SimplePrecessionModel(), 400, UniformDistribution([0, 1]), rng=6)
    checks = 0
    for idx, (outcome, t) in enumerate(zip(outcomes, eps)):
        by_hand.update(outcome, np.array([t]), check_for_resample=False)
        if (idx + 1) % 3 == 0:
            checks += 1
            if by_hand.n_ess < 0.5 * by_hand.n_particles:
                by_hand.resample()
    assert by_hand.resample_count >= 2  # the data do force resampling at the checks
    assert batched.resample_count == by_hand.resample_count
    for old, new in zip(_state(by_hand), _state(batched)):
        np.testing.assert_equal(new, old)


def test_batch_update_is_atomic():
    model = FlakyPrecession()
    up = SMCUpdater(model, 100, UniformDistribution([0, 1]), rng=8)
    up.update(0, np.array([1.0]))
    before = _state(up)

    calls = {"n": 0}
    real_likelihood = model.likelihood

    def fail_on_third(outcomes, modelparams, expparams):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("third datum lost")
        return real_likelihood(outcomes, modelparams, expparams)

    model.likelihood = fail_on_third
    with pytest.raises(RuntimeError, match="third"):
        up.batch_update(np.array([0, 1, 0, 1]), np.array([2.0, 3.0, 4.0, 5.0]), resample_interval=1)
    for old, new in zip(before, _state(up)):
        np.testing.assert_equal(new, old)


# -- reset ---------------------------------------------------------------------------------------


def test_reset_draws_afresh_and_can_resize_or_keep_parameters():
    up = SMCUpdater(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), rng=1)
    up.update(0, np.array([4.0]), check_for_resample=False)
    up.reset(n_particles=40)
    assert up.particle_locations.shape == (40, 1) and up.n_particles == 40
    np.testing.assert_array_equal(up.particle_weights, np.full(40, 1 / 40))
    assert up.data_record == [0]
    up.update(1, np.array([1.0]), check_for_resample=False)
    kept = up.particle_weights.copy()
    up.reset(reset_weights=False)
    np.testing.assert_array_equal(up.particle_weights, kept)
    with pytest.raises(ValueError, match="not both"):
        up.reset(n_particles=10, only_params=slice(0, 1))


class _TwoParameterCoin(SimplePrecessionModel):
    """Declares two parameters but reads only the first (like qinfer's mock models)."""

    _checks_modelparam_count = False

    @property
    def n_modelparams(self):
        return 2


def test_a_prior_of_another_dimension_warns_with_what_to_do_and_is_used_as_qinfer_does():
    from mpi_qinfer.smc.updater import PriorDimensionWarning

    with pytest.warns(PriorDimensionWarning, match=r"draws 1 parameter\(s\).*n_modelparams = 2.*dimension 2"):
        updater = SMCUpdater(_TwoParameterCoin(), 100, UniformDistribution([0, 1]), rng=0)
    assert updater.particle_locations.shape == (100, 1)
    updater.update(np.array([0]), np.array([1.0]))
    assert updater.est_mean().shape == (1,)
    # A prior that is right draws no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SMCUpdater(_TwoParameterCoin(), 10, UniformDistribution([[0, 1], [0, 1]]), rng=0)
