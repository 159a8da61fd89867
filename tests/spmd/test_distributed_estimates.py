"""DistributedSMCUpdater's members from qinfer beyond the basic loop, against SMCUpdater holding the same cloud.

Every test runs serially (a one-rank world) and under mpiexec at any number of
ranks (``scripts/mpi-pytest.sh VENV N tests/spmd/test_distributed_estimates.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_collectively, verdict_of

from mpi_qinfer import DistributedSMCUpdater, SMCUpdater
from mpi_qinfer.models.base import FiniteOutcomeModel
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.models.distributions import MultivariateNormalDistribution, UniformDistribution
from mpi_qinfer.smc.updater import ApproximationWarning, LiuWestResampler, ResamplerWarning


@pytest.fixture(params=[pytest.param("serial"), pytest.param("mpi", marks=pytest.mark.mpi)])
def world(request):
    """COMM_WORLD: one rank in a plain pytest run, every rank under mpiexec."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def on_root(comm, updater_args, check, **kwargs):
    """Build an updater on every rank, run ``check(updater)`` on the root, and agree on the verdict."""
    verdict = None
    with DistributedSMCUpdater(*updater_args, comm=comm, **kwargs) as updater:
        if updater.is_root:
            verdict = verdict_of(check, updater)
    assert_collectively(comm, verdict)


def _twin(updater, model, **kwargs):
    """An SMCUpdater holding the distributed updater's gathered cloud (root only)."""
    weights, locations = updater.gather()
    twin = SMCUpdater(model, weights.size, UniformDistribution([[0, 1]] * locations.shape[1]), rng=0, **kwargs)
    twin.particle_weights, twin.particle_locations = weights, locations
    return twin


class Four(FiniteOutcomeModel):
    """Four parameters; a precession at the first (a cloud to estimate regions of)."""

    n_modelparams = 4
    expparams_dtype = "float"
    is_n_outcomes_constant = True
    modelparam_names = ["a", "b", "c", "d"]

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.ones(modelparams.shape[0], dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        pr0 = np.cos(modelparams[:, :1] * expparams[np.newaxis, :] / 2) ** 2
        return FiniteOutcomeModel.pr0_to_likelihood_array(outcomes, pr0)


MEAN = np.array([0.5, 3.0, 5.0, 7.0])
COV = np.array([[0.04, 0, 0, 0.05], [0, 1, 0.2, 0], [0, 0.2, 2, 0], [0.05, 0, 0, 1]])


def test_estimates_from_qinfer_agree_with_smc_updater_on_the_same_cloud(world):
    model = Four()
    probe = MultivariateNormalDistribution(MEAN, COV).sample(500, rng=1)

    def check(updater):
        updater.update(1, np.array([2.0]), check_for_resample=False)  # distinct weights: no ties in the regions
        twin = _twin(updater, model)
        np.testing.assert_allclose(updater.est_meanfn(lambda x: x**2), twin.est_meanfn(lambda x: x**2), rtol=1e-12)
        np.testing.assert_allclose(updater.est_covariance_mtx(corr=True), twin.est_covariance_mtx(corr=True),
                                   rtol=1e-10, atol=1e-12)
        assert updater.est_kl_divergence(twin) == pytest.approx(twin.est_kl_divergence(twin), rel=1e-12)
        for got, want in zip(updater.region_est_hull(0.8), twin.region_est_hull(0.8)):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(updater.region_est_ellipsoid(0.5, modelparam_slice=np.s_[1:]),
                             twin.region_est_ellipsoid(0.5, modelparam_slice=np.s_[1:])):
            np.testing.assert_array_equal(got, want)
        for method in ("pce", "hpd-hull", "hpd-mvee"):
            np.testing.assert_array_equal(updater.in_credible_region(probe, 0.8, method=method),
                                          twin.in_credible_region(probe, 0.8, method=method))
        for got, want in zip(updater.posterior_mesh(1, 2, 15, 10, 0.3), twin.posterior_mesh(1, 2, 15, 10, 0.3)):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(updater.risk(1.5), twin.risk(1.5), rtol=1e-10)
        options = {"eps": 1.5, "min_particles": 5}
        for got, want in zip(updater.est_cluster_covs(options), twin.est_cluster_covs(options)):
            np.testing.assert_array_equal(got, want)
        assert updater.resampling_divergences is None

    on_root(world, (model, 600, MultivariateNormalDistribution(MEAN, COV)), check, rng=2)


class Threshold(SimplePrecessionModel):
    """Outcome 0 at ``t`` keeps the particles below ``t`` (likelihood 1/2) and drops the others."""

    def likelihood(self, outcomes, modelparams, expparams):
        pr0 = np.where(modelparams[:, :1] < expparams[np.newaxis, :], 0.5, 0.0)
        return np.stack([pr0, 1 - pr0])[np.asarray(outcomes, dtype=int)]


def test_min_n_ess_and_the_tiny_sample_warning_follow_smc_updater(world):
    model = Threshold()

    def check(updater):
        assert updater.min_n_ess == 2000
        seen = [updater.n_ess]
        for t in (0.6, 0.3, 0.1):
            twin = _twin(updater, model, resample_thresh=0.0)
            twin._min_n_ess = updater.min_n_ess
            updater.update(0, np.array([t]))
            twin.update(0, np.array([t]))
            seen.append(updater.n_ess)
            assert updater.min_n_ess == pytest.approx(twin.min_n_ess, rel=1e-12)
        assert updater.min_n_ess == pytest.approx(min(seen), rel=1e-12)
        twin = _twin(updater, model, resample_thresh=0.0)
        # Keep exactly the five smallest particles: n_ess 5, below qinfer's warning size of 10.
        weights, locations = updater.gather()
        t = np.sort(locations[weights > 0, 0])[4] + 1e-12
        with warnings.catch_warnings(record=True) as serial:
            warnings.simplefilter("always")
            twin.update(0, np.array([t]))
        with warnings.catch_warnings(record=True) as distributed:
            warnings.simplefilter("always")
            updater.update(0, np.array([t]))
        assert updater.n_ess == pytest.approx(5)
        tiny = [str(w.message)[:30] for w in serial if w.category is ApproximationWarning]
        assert tiny and tiny == [str(w.message)[:30] for w in distributed if w.category is ApproximationWarning]
        batch = _twin(updater, model)
        assert batch.min_n_ess == 2000 and updater.min_n_ess < 11

    on_root(world, (model, 2000, UniformDistribution([0, 1])), check, rng=3, resample_thresh=0.0)


class Clamp(SimplePrecessionModel):
    def canonicalize(self, modelparams):
        return np.clip(modelparams, 0, 0.5)


@pytest.mark.parametrize("canonicalize", [True, False])
def test_canonicalize_is_honoured_in_the_prior_and_in_resampling(world, canonicalize):
    def check(updater):
        above = updater.gather()[1].max() > 0.5
        updater.resample()
        assert above == (updater.gather()[1].max() > 0.5) == (not canonicalize)

    on_root(world, (Clamp(), 400, UniformDistribution([0, 1])), check, rng=4, canonicalize=canonicalize)


def test_resample_a_and_postselect(world):
    class Never(SimplePrecessionModel):
        def are_models_valid(self, modelparams):
            return np.zeros(modelparams.shape[0], dtype=bool)

    def check(updater):
        assert updater.resampler.a == 0.9
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResamplerWarning)
            updater.resample()  # postselect=False: invalid particles are kept, without a warning

    def check_a(updater):
        assert updater.resampler.a == 0.9

    with pytest.warns(DeprecationWarning, match="resample_a"):
        on_root(world, (SimplePrecessionModel(), 100, UniformDistribution([0, 1])), check_a, rng=5, resample_a=0.9)
    on_root(world, (Never(), 100, UniformDistribution([0, 1])), check, rng=5,
            resampler=LiuWestResampler(a=0.9, postselect=False))


@pytest.mark.parametrize("kwargs, match", [
    (dict(debug_resampling=True), "debug_resampling"),
    (dict(track_resampling_divergence=True), "track_resampling_divergence"),
    (dict(resampler=LiuWestResampler(kernel=np.random.randn)), "kernel"),
    (dict(resampler=LiuWestResampler(default_n_particles=10)), "default_n_particles"),
])
def test_what_a_sharded_cloud_cannot_do_is_refused_on_every_rank_before_any_communication(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedSMCUpdater(SimplePrecessionModel(), 100, UniformDistribution([0, 1]), comm=world, **kwargs)
    world.Barrier()  # every rank got here: nobody waits in a collective


def test_a_cloud_whose_covariance_is_not_finite_raises_resampler_error_as_in_smc_updater(world):
    from mpi_qinfer.smc.updater import ResamplerError

    class NaNLikelihood(SimplePrecessionModel):
        def likelihood(self, outcomes, modelparams, expparams):
            return np.full((len(outcomes), modelparams.shape[0], expparams.shape[0]), np.nan)

    def check(updater):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            updater.update(0, np.array([1.0]), check_for_resample=False)  # policy "ignore": NaN weights kept
        with pytest.raises(ResamplerError, match="covariance"):
            updater.resample()
        assert updater.resample_count == 0

    on_root(world, (NaNLikelihood(), 60, UniformDistribution([0, 1])), check, rng=6, zero_weight_policy="ignore")
