"""SMCUpdater's members from qinfer beyond the basic loop: region estimates, min_n_ess, divergences, risk, mesh,
constructor keywords; and qinfer's forms of LiuWestResampler."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from mpi_qinfer.models.base import FiniteOutcomeModel
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.models.distributions import MultivariateNormalDistribution, UniformDistribution
from mpi_qinfer.smc.particles import ParticleDistribution, kl_divergence, mesh_density
from mpi_qinfer.smc.updater import ApproximationWarning, LiuWestResampler, SMCUpdater


class Decimate(FiniteOutcomeModel):
    """Outcome 0 keeps the first ``ceil(alpha * n)`` particles (likelihood 1/2) and drops the rest."""

    n_modelparams = 1
    expparams_dtype = [("alpha", float)]
    is_n_outcomes_constant = True

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.ones(modelparams.shape[0], dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        pr0 = np.full((modelparams.shape[0], expparams.shape[0]), 0.5)
        pr0[int(np.ceil(expparams["alpha"][0] * modelparams.shape[0])):, :] = 0
        return FiniteOutcomeModel.pr0_to_likelihood_array(outcomes, pr0)


def _decimate(updater, alpha, **kwargs):
    updater.update(np.array([0]), np.array([(alpha,)], dtype=Decimate.expparams_dtype), **kwargs)


def test_min_n_ess_is_the_smallest_effective_size_before_resampling():
    n = 4**5
    updater = SMCUpdater(Decimate(), n, UniformDistribution([0, 1]), resample_thresh=0.0, rng=0)
    assert updater.min_n_ess == n
    for k in range(1, 5):
        _decimate(updater, 4.0**-k)
        assert updater.min_n_ess == pytest.approx(4 ** (5 - k))
    updater.resample()
    assert updater.min_n_ess == pytest.approx(4)  # a resampling does not raise it
    refreshed = SMCUpdater(Decimate(), 100, UniformDistribution([0, 1]), resample_thresh=0.5, rng=0)
    _decimate(refreshed, 0.3)  # resampled straight after: the update's own n_ess counts
    assert refreshed.resample_count == 1 and refreshed.min_n_ess == pytest.approx(30)


def test_batch_update_tracks_min_n_ess_and_a_failed_batch_leaves_it():
    updater = SMCUpdater(Decimate(), 1000, UniformDistribution([0, 1]), resample_thresh=0.0, rng=0)
    experiments = np.array([(0.5,), (0.25,)], dtype=Decimate.expparams_dtype)  # keeps 500, then 250
    updater.batch_update(np.array([0, 0]), experiments)
    assert updater.min_n_ess == pytest.approx(250)
    with pytest.raises(ValueError):  # the model fails on the second datum (int(nan)): the first is undone too
        updater.batch_update(np.array([0, 0]), np.array([(0.1,), (np.nan,)], dtype=Decimate.expparams_dtype))
    assert updater.min_n_ess == pytest.approx(250)


def test_a_tiny_effective_sample_size_warns_before_resampling():
    updater = SMCUpdater(Decimate(), 1000, UniformDistribution([0, 1]), resample_thresh=0.0, rng=0)
    with pytest.warns(ApproximationWarning, match="Extremely small n_ess"):
        _decimate(updater, 2 / 1000)
    quiet = SMCUpdater(Decimate(), 1000, UniformDistribution([0, 1]), resample_thresh=0.0, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _decimate(quiet, 2 / 1000, check_for_resample=False)  # no check, no warning (as qinfer)


def test_resample_a_is_qinfers_deprecated_spelling_of_a_resampler():
    with pytest.warns(DeprecationWarning, match="resample_a"):
        updater = SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), resample_a=0.9)
    assert isinstance(updater.resampler, LiuWestResampler) and updater.resampler.a == 0.9
    with pytest.raises(ValueError, match="only one"), pytest.warns(DeprecationWarning):
        SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), resampler=LiuWestResampler(),
                   resample_a=0.9)
    with pytest.raises(TypeError, match="resample_a=0.98"):
        SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1]), 0.98)  # qinfer's positional order


class Clamp(SimplePrecessionModel):
    """Canonical parameters are clipped to [0, 0.5]."""

    def canonicalize(self, modelparams):
        return np.clip(modelparams, 0, 0.5)


def test_canonicalize_false_keeps_the_raw_draws():
    prior = UniformDistribution([0, 1])
    raw = SMCUpdater(Clamp(), 200, prior, rng=1, canonicalize=False)
    canonical = SMCUpdater(Clamp(), 200, prior, rng=1)
    assert raw.particle_locations.max() > 0.5 and canonical.particle_locations.max() == 0.5
    np.testing.assert_array_equal(np.clip(raw.particle_locations, 0, 0.5), canonical.particle_locations)
    raw.resample()
    canonical.resample()
    assert raw.particle_locations.max() > 0.5 and canonical.particle_locations.max() <= 0.5


def test_track_resampling_divergence_records_one_divergence_per_resampling():
    updater = SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=2,
                         track_resampling_divergence=True)
    assert updater.resampling_divergences == []
    before = updater.particle_weights, updater.particle_locations
    updater.resample()
    updater.update(1, np.array([3.0]))
    updater.resample()
    assert len(updater.resampling_divergences) == updater.resample_count == 2
    assert np.all(np.isfinite(updater.resampling_divergences))
    # The first is the divergence of the resampled cloud from the prior's, as kl_divergence computes it.
    again = SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=2)
    again.resample()
    expected = kl_divergence(again.particle_weights, again.particle_locations, *before)
    assert updater.resampling_divergences[0] == pytest.approx(expected, rel=1e-12)
    assert SMCUpdater(SimplePrecessionModel(), 10, UniformDistribution([0, 1])).resampling_divergences is None


def test_debug_resampling_logs_the_change_of_the_moments(caplog):
    updater = SMCUpdater(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), rng=3, debug_resampling=True)
    with caplog.at_level(logging.DEBUG, logger="mpi_qinfer.smc.updater"):
        updater.resample()
    assert any("Resampling changed mean" in record.getMessage() for record in caplog.records)


def _normal_updater(n=4000, seed=4):
    mean = np.array([2.0, 3, 5, 7])
    cov = np.array([[1, 0, 0, 0.5], [0, 1, 0.2, 0], [0, 0.2, 2, 0], [0.5, 0, 0, 1]])

    class Four(Decimate):
        n_modelparams = 4

    updater = SMCUpdater(Four(), n, MultivariateNormalDistribution(mean, cov), rng=seed)
    return updater, mean, cov


def test_region_estimates_of_an_updater_are_those_of_its_particle_distribution():
    updater, mean, cov = _normal_updater()
    rng = np.random.default_rng(5)
    updater.particle_weights = rng.random(updater.n_particles)
    updater.particle_weights /= updater.particle_weights.sum()
    cloud = ParticleDistribution(particle_locations=updater.particle_locations,
                                 particle_weights=updater.particle_weights)
    faces, vertices = updater.region_est_hull(level=0.9)
    twin_faces, twin_vertices = cloud.region_est_hull(level=0.9)
    np.testing.assert_array_equal(vertices, twin_vertices)
    A, c = updater.region_est_ellipsoid(level=0.5, modelparam_slice=np.s_[:2])
    assert A.shape == (2, 2) and c.shape == (2,)
    probe = MultivariateNormalDistribution(mean, cov).sample(1000, rng=6)
    for method in ("pce", "hpd-hull", "hpd-mvee"):
        np.testing.assert_array_equal(updater.in_credible_region(probe, level=0.8, method=method),
                                      cloud.in_credible_region(probe, level=0.8, method=method))


def test_pce_region_covers_its_level():
    updater, mean, cov = _normal_updater(n=20000)
    probe = MultivariateNormalDistribution(mean, cov).sample(20000, rng=7)
    for level in (0.5, 0.9):
        inside = updater.in_credible_region(probe, level=level, method="pce")
        # The posterior's ellipsoid estimates the law's; both errors are a few per mille at these sizes.
        assert abs(inside.mean() - level) < 0.02
    hull = updater.in_credible_region(probe, level=0.9, method="hpd-hull")
    mvee = updater.in_credible_region(probe, level=0.9, method="hpd-mvee")
    assert np.all(mvee[hull]) and hull.mean() > 0.9 * 0.95


def test_est_meanfn_and_correlation():
    updater, mean, cov = _normal_updater()
    w, x = updater.particle_weights, updater.particle_locations
    np.testing.assert_allclose(updater.est_meanfn(lambda v: v[:, :2] ** 2), w @ x[:, :2] ** 2, rtol=1e-12)
    corr = updater.est_covariance_mtx(corr=True)
    np.testing.assert_allclose(np.diag(corr), 1, rtol=1e-12)
    sd = np.sqrt(np.diag(updater.est_covariance_mtx()))
    np.testing.assert_allclose(corr * np.outer(sd, sd), updater.est_covariance_mtx(), rtol=1e-12)


def test_kl_divergence_of_an_updater_uses_the_models_scale():
    class Scaled(SimplePrecessionModel):
        Q = np.array([4.0])

    a = SMCUpdater(Scaled(), 200, UniformDistribution([0, 1]), rng=8)
    b = SMCUpdater(Scaled(), 200, UniformDistribution([0, 1]), rng=9)
    expected = kl_divergence(a.particle_weights, a.particle_locations, b.particle_weights, b.particle_locations,
                             scale=np.array([4.0]))
    assert a.est_kl_divergence(b) == pytest.approx(expected, rel=1e-12)


def test_risk_is_the_bayes_risk_of_one_experiment():
    updater = SMCUpdater(SimplePrecessionModel(), 500, UniformDistribution([0, 1]), rng=10)
    np.testing.assert_array_equal(updater.risk(2.5), updater.bayes_risk(np.array([2.5])))


def test_posterior_mesh_is_the_density_of_the_cloud():
    updater, _, _ = _normal_updater(n=500)
    p1s, p2s, density = updater.posterior_mesh(1, 3, res1=30, res2=20, smoothing=0.2)
    ref = mesh_density(updater.particle_weights, updater.particle_locations, 1, 3, 30, 20, 0.2)
    for mine, theirs in zip((p1s, p2s, density), ref):
        np.testing.assert_array_equal(mine, theirs)
    assert density.shape == (20, 30) and p1s[0, 0] == updater.particle_locations[:, 1].min()


def test_plots_of_the_covariance_and_the_contours():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    updater, _, _ = _normal_updater(n=300)
    fig, ax = plt.subplots()
    try:
        assert updater.plot_covariance(ax=ax) is ax
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"$x_{{{i}}}$" for i in range(4)]  # the model's names
        assert len(ax.patches) == 16
        updater.plot_covariance(corr=True, param_slice=np.s_[:2], tick_labels=["a", "b"], ax=ax)
        contours = updater.plot_posterior_contour(0, 1, res1=20, res2=20, smoothing=0.5, ax=ax)
        assert len(contours.levels) > 1
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ LiuWestResampler in qinfer's forms
class Free:
    n_modelparams = 2

    def are_models_valid(self, modelparams):
        return np.ones(modelparams.shape[0], dtype=bool)


def _cloud(n=500, seed=11):
    rng = np.random.default_rng(seed)
    w = rng.random(n)
    return w / w.sum(), rng.standard_normal((n, 2))


def test_liu_west_takes_a_particle_distribution_and_returns_one():
    w, x = _cloud()
    new = LiuWestResampler(a=0.9)(Free(), ParticleDistribution(particle_locations=x, particle_weights=w),
                                  rng=np.random.default_rng(1))
    assert isinstance(new, ParticleDistribution) and new.n_particles == 500
    old_w, old_x = LiuWestResampler(a=0.9)(Free(), w, x, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(new.particle_locations, old_x)  # the same draws in either form
    np.testing.assert_allclose(new.particle_weights, old_w, rtol=1e-12)


def test_liu_west_parameters_of_qinfer():
    w, x = _cloud()
    fewer = LiuWestResampler(default_n_particles=100)(Free(), w, x, rng=0)[1]
    assert fewer.shape == (100, 2)
    more = LiuWestResampler()(Free(), ParticleDistribution(particle_locations=x, particle_weights=w), 800, rng=0)
    assert more.n_particles == 800
    zeros = LiuWestResampler(kernel=lambda n_mp, n: np.zeros((n_mp, n)))(Free(), w, x, rng=0)[1]
    # With a zero kernel every new particle is a x_j + (1 - a) mu exactly.
    mu = w @ x
    candidates = 0.98 * x + 0.02 * mu
    assert all(np.any(np.all(np.isclose(row, candidates, rtol=0, atol=1e-12), axis=1)) for row in zeros[:20])
    given = LiuWestResampler()(Free(), w, x, precomputed_mean=np.zeros(2), precomputed_cov=np.eye(2), rng=0)[1]
    assert given.shape == x.shape

    class Never(Free):
        def are_models_valid(self, modelparams):
            return np.zeros(modelparams.shape[0], dtype=bool)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LiuWestResampler(postselect=False)(Never(), w, x, rng=0)  # no validity check, no warning


def test_liu_west_h_follows_a_unless_given():
    r = LiuWestResampler(a=0.9)
    assert r.h == pytest.approx(np.sqrt(1 - 0.81))
    r.a = 0.5
    assert r.h == pytest.approx(np.sqrt(0.75))
    fixed = LiuWestResampler(a=0.9, h=0.1)
    fixed.a = 0.5
    assert fixed.h == 0.1


def test_liu_west_debug_logs_and_an_old_positional_zero_cov_comp_still_works(caplog):
    w, x = _cloud()
    with caplog.at_level(logging.DEBUG, logger="mpi_qinfer.smc.updater"):
        LiuWestResampler(debug=True)(Free(), w, x, rng=0)
    assert any("completed in" in record.getMessage() for record in caplog.records)
    with pytest.warns(DeprecationWarning, match="zero_cov_comp"):
        old = LiuWestResampler(0.98, None, 1000, 1e-6)
    assert old.zero_cov_comp == 1e-6 and old.debug is False


# ------------------------------------------------------------------ SMCUpdaterBCRB
from mpi_qinfer.models.distributions import NormalDistribution  # noqa: E402
from mpi_qinfer.smc.bcrb import SMCUpdaterBCRB  # noqa: E402


def _precession_fisher(omegas, ts):
    """SimplePrecessionModel's Fisher information by hand: t**2 (two outcomes, cos^2(omega t / 2))."""
    return np.broadcast_to(np.asarray(ts, dtype=float) ** 2, (len(omegas), len(ts)))


def test_bcrb_starts_from_the_priors_information_and_adds_each_experiments():
    prior = NormalDistribution(2.0, 0.04)
    updater = SMCUpdaterBCRB(SimplePrecessionModel(), 2000, prior, rng=1, adaptive=True)
    g = -(updater.particle_locations - 2.0) / 0.04
    np.testing.assert_allclose(updater.current_bim, (g.T @ g) / 2000, rtol=1e-12)
    np.testing.assert_array_equal(updater.adaptive_bim, updater.current_bim)
    before_current, before_adaptive = updater.current_bim, updater.adaptive_bim
    adaptive_gain = updater.particle_weights @ _precession_fisher(updater.particle_locations[:, 0], [3.0])[:, 0]
    updater.update(1, np.array([3.0]))
    # The precession model's Fisher information is t**2 whatever omega: the same for prior and posterior.
    np.testing.assert_allclose(updater.current_bim - before_current, [[9.0]], rtol=1e-10)
    np.testing.assert_allclose(updater.adaptive_bim - before_adaptive, [[adaptive_gain]], rtol=1e-10)
    assert updater.track_adaptive


def test_bcrb_without_adaptive_and_with_an_initial_bim():
    updater = SMCUpdaterBCRB(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), rng=2,
                             initial_bim=np.array([[5.0]]), resample_thresh=0.3)
    assert updater.resample_thresh == 0.3  # every SMCUpdater argument reaches it
    np.testing.assert_array_equal(updater.current_bim, [[5.0]])
    with pytest.raises(ValueError, match="adaptive"):
        updater.adaptive_bim  # noqa: B018
    info = updater.prior_bayes_information(np.array([1.0, 2.0]), n_samples=10)
    assert info.shape == (1, 1, 2)
    np.testing.assert_allclose(info[0, 0], [1.0, 4.0], rtol=1e-10)


def test_bcrb_needs_a_differentiable_model_and_a_failed_update_changes_nothing():
    class Plain:
        n_modelparams = 1

        def likelihood(self, outcomes, modelparams, expparams):
            raise RuntimeError("no")

        def are_models_valid(self, modelparams):
            return np.ones(len(modelparams), dtype=bool)

    with pytest.raises(ValueError, match="differentiable"):
        SMCUpdaterBCRB(Plain(), 10, UniformDistribution([0, 1]), rng=0, initial_bim=np.eye(1))

    class Failing(SimplePrecessionModel):
        def likelihood(self, outcomes, modelparams, expparams):
            raise RuntimeError("the likelihood failed")

    updater = SMCUpdaterBCRB(Failing(), 50, UniformDistribution([0, 1]), rng=3, adaptive=True,
                             initial_bim=np.eye(1))
    state = updater.rng.bit_generator.state
    with pytest.raises(RuntimeError, match="likelihood failed"):
        updater.update(0, np.array([1.0]))
    np.testing.assert_array_equal(updater.current_bim, np.eye(1))
    np.testing.assert_array_equal(updater.adaptive_bim, np.eye(1))
    assert updater.rng.bit_generator.state == state and updater.data_record == []


def test_bcrb_batch_update_is_atomic_with_its_information():
    updater = SMCUpdaterBCRB(SimplePrecessionModel(), 200, UniformDistribution([0, 1]), rng=4,
                             initial_bim=np.eye(1))
    updater.batch_update(np.array([0, 1]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(updater.current_bim, [[1 + 1 + 4]], rtol=1e-10)
    with pytest.raises(RuntimeError, match="not a number"):  # a NaN time: NaN weights, refused
        updater.batch_update(np.array([0, 1]), np.array([1.0, np.nan]))
    np.testing.assert_allclose(updater.current_bim, [[6]], rtol=1e-10)


# ------------------------------------------------------------------ qinfer's Resampler and ResamplerError
from mpi_qinfer.smc.updater import Resampler, ResamplerError  # noqa: E402


def test_a_qinfer_style_resampler_gets_the_cloud_and_returns_one():
    class KeepHeaviest(Resampler):
        """Every new particle is the heaviest old one."""

        def __call__(self, model, particle_dist, n_particles=None, precomputed_mean=None, precomputed_cov=None):
            best = particle_dist.particle_locations[np.argmax(particle_dist.particle_weights)]
            n = particle_dist.n_particles
            return ParticleDistribution(particle_locations=np.tile(best, (n, 1)), particle_weights=np.ones(n))

    updater = SMCUpdater(SimplePrecessionModel(), 30, UniformDistribution([0, 1]), rng=1, resampler=KeepHeaviest())
    updater.update(1, np.array([2.0]), check_for_resample=False)
    best = updater.particle_locations[np.argmax(updater.particle_weights)]
    updater.resample()
    np.testing.assert_array_equal(updater.particle_locations, np.tile(best, (30, 1)))
    np.testing.assert_allclose(updater.particle_weights, 1 / 30)
    with pytest.raises(TypeError):
        Resampler()  # abstract


def test_resampling_a_cloud_of_nan_weights_raises_qinfers_resampler_error():
    updater = SMCUpdater(SimplePrecessionModel(), 20, UniformDistribution([0, 1]), rng=2)
    updater.particle_weights = np.full(20, np.nan)
    before = updater.particle_locations.copy()
    with pytest.raises(ResamplerError, match="covariance"):
        updater.resample()
    np.testing.assert_array_equal(updater.particle_locations, before)
    assert isinstance(ResamplerError("x"), RuntimeError) and "caused by exception: y" in str(ResamplerError("x", "y"))
