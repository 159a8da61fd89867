"""mpi_qinfer's versions of qinfer's names against the real qinfer 1.0: the same answers.

Skipped where qinfer does not import (build an environment where it does with
``scripts/make_qinfer_venv.sh``). Samplers whose algorithm is qinfer's are
given a ``RandomState`` seeded as qinfer's NumPy global state is, and must
return the same bits; deterministic functions must agree to 1e-12
(relative). Where the algorithm differs on purpose, the test says so and
what it compares instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

qinfer = pytest.importorskip("qinfer")

import mpi_qinfer.models.distributions as ours  # noqa: E402 - after the skip
from mpi_qinfer.models import utils as our_utils  # noqa: E402

pytestmark = pytest.mark.qinfer
scipy_stats = pytest.importorskip("scipy.stats")


def _qinfer_sample(dist, n, seed):
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return dist.sample(n)


class _PositiveFirst:
    def are_models_valid(self, x):
        return x[:, 0] > 0.3


def _pairs():
    """(name, qinfer's distribution, ours): the same parameters, the same algorithm."""
    q, weights = qinfer, np.array([0.2, 0.3, 0.5])
    args = np.array([[1.0, 0.5], [2.0, 0.2], [3.0, 0.8]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [
            ("uniform", q.UniformDistribution([[0, 1], [2, 5]]), ours.UniformDistribution([[0, 1], [2, 5]])),
            ("normal", q.NormalDistribution(1, 4), ours.NormalDistribution(1, 4)),
            ("beta", q.BetaDistribution(2, 5), ours.BetaDistribution(2, 5)),
            ("beta from moments", q.BetaDistribution(mean=0.3, var=0.01), ours.BetaDistribution(mean=0.3, var=0.01)),
            ("gamma", q.GammaDistribution(3, 2), ours.GammaDistribution(3, 2)),
            ("gamma from moments", q.GammaDistribution(mean=3, var=2), ours.GammaDistribution(mean=3, var=2)),
            ("lognormal", q.LogNormalDistribution(3, 2), ours.LogNormalDistribution(3, 2)),
            ("beta-binomial", q.BetaBinomialDistribution(10, 2, 3), ours.BetaBinomialDistribution(10, 2, 3)),
            ("beta-binomial from moments", q.BetaBinomialDistribution(10, mean=4, var=3),
             ours.BetaBinomialDistribution(10, mean=4, var=3)),
            ("constant", q.ConstantDistribution([1, 2.5]), ours.ConstantDistribution([1, 2.5])),
            ("simplex", q.MVUniformDistribution(4), ours.MVUniformDistribution(4)),
            ("slanted normal", q.SlantedNormalDistribution([[0, 1], [2, 3]], 2),
             ours.SlantedNormalDistribution([[0, 1], [2, 3]], 2)),
            ("ginibre", q.GinibreUniform(k=3), ours.GinibreUniform(k=3)),
            ("postselected", q.PostselectedDistribution(q.NormalDistribution(0, 1), _PositiveFirst()),
             ours.PostselectedDistribution(ours.NormalDistribution(0, 1), _PositiveFirst())),
            ("constrained sum", q.ConstrainedSumDistribution(q.UniformDistribution([[0, 1], [0, 2]]), 3),
             ours.ConstrainedSumDistribution(ours.UniformDistribution([[0, 1], [0, 2]]), 3)),
            ("mixture of a list", q.MixtureDistribution(weights, [q.NormalDistribution(*a) for a in args]),
             ours.MixtureDistribution(weights, [ours.NormalDistribution(*a) for a in args])),
            ("mixture of a class", q.MixtureDistribution(weights, q.NormalDistribution, dist_args=args),
             ours.MixtureDistribution(weights, ours.NormalDistribution, dist_args=args)),
            ("mixture unshuffled", q.MixtureDistribution(weights, q.NormalDistribution, dist_args=args, shuffle=False),
             ours.MixtureDistribution(weights, ours.NormalDistribution, dist_args=args, shuffle=False)),
            ("product", q.ProductDistribution(q.NormalDistribution(0, 1), q.UniformDistribution([0, 1])),
             ours.ProductDistribution(ours.NormalDistribution(0, 1), ours.UniformDistribution([0, 1]))),
        ]


@pytest.mark.parametrize("name, theirs, mine", _pairs(), ids=[p[0] for p in _pairs()])
def test_samples_are_qinfers_bit_for_bit_with_the_same_seed(name, theirs, mine):
    for seed in (0, 7):
        expected = _qinfer_sample(theirs, 400, seed)
        got = mine.sample(400, rng=np.random.RandomState(seed))
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected)
        assert mine.n_rvs == theirs.n_rvs


def test_moment_parameters_are_qinfers():
    for cls in ("BetaDistribution", "GammaDistribution"):
        a, b = getattr(qinfer, cls)(mean=0.3, var=0.01), getattr(ours, cls)(mean=0.3, var=0.01)
        assert (b.alpha, b.beta) == pytest.approx((a.alpha, a.beta), rel=1e-12)
    a, b = qinfer.BetaBinomialDistribution(10, mean=4, var=3), ours.BetaBinomialDistribution(10, mean=4, var=3)
    assert (b.alpha, b.beta) == pytest.approx((a.alpha, a.beta), rel=1e-12)


def test_discrete_uniform_draws_qinfers_integers_as_a_column():
    # qinfer returns shape (n,); ours keeps the (n, n_rvs) shape every prior has.
    expected = _qinfer_sample(qinfer.DiscreteUniformDistribution(5), 300, 3)
    got = ours.DiscreteUniformDistribution(5).sample(300, rng=np.random.RandomState(3))
    np.testing.assert_array_equal(got[:, 0], expected)


def test_multivariate_normal_is_qinfers_to_rounding():
    # The same draws through the symmetric square root of the covariance (ours from eigh, qinfer's sqrtm).
    mean, cov = np.array([2.0, 3, 5, 7]), np.array([[1, 0, 0, 0.5], [0, 1, 0.2, 0], [0, 0.2, 2, 0], [0.5, 0, 0, 1]])
    expected = _qinfer_sample(qinfer.MultivariateNormalDistribution(mean, cov), 5000, 3)
    got = ours.MultivariateNormalDistribution(mean, cov).sample(5000, rng=np.random.RandomState(3))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_haar_states_are_qinfers_to_rounding():
    # The same draws and the same QR; ours contracts with the Pauli matrices in one einsum.
    expected = _qinfer_sample(qinfer.HaarUniform(), 300, 4)
    got = ours.HaarUniform().sample(300, rng=np.random.RandomState(4))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_truncated_normal_is_qinfers_to_rounding():
    # Both invert the distribution function on the same uniforms (SciPy's truncnorm, our own quantile).
    for mean, var, trunc in ((1, 2, (0.5, 3)), (0, 1, (-4, -1)), (2, 0.5, (2.5, 4))):
        expected = _qinfer_sample(qinfer.NormalDistribution(mean, var, trunc=trunc), 2000, 5)
        got = ours.NormalDistribution(mean, var, trunc=trunc).sample(2000, rng=np.random.RandomState(5))
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_interpolated_distribution_is_qinfers_to_rounding():
    # The grid and the trapezoidal CDF are qinfer's; the inverse CDF's slope (about 1/pdf) magnifies rounding
    # in the CDF's last bits, hence an absolute bound of 1e-12 at unit scale beside the relative one.
    expected = _qinfer_sample(qinfer.InterpolatedUnivariateDistribution(scipy_stats.norm.pdf, 1, 1500), 3000, 6)
    mine = ours.InterpolatedUnivariateDistribution(scipy_stats.norm.pdf, 1, 1500)
    got = mine.sample(3000, rng=np.random.RandomState(6))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_dirichlet_is_scipys_bit_for_bit():
    # qinfer 1.0 has no DirichletDistribution; its source samples scipy.stats.dirichlet.
    np.random.seed(8)
    expected = scipy_stats.dirichlet(alpha=[1, 2, 3]).rvs(size=50)
    np.testing.assert_array_equal(ours.DirichletDistribution([1, 2, 3]).sample(50, rng=np.random.RandomState(8)),
                                  expected)


# ------------------------------------------------------------------ qinfer.utils
qutils = qinfer.utils


def test_probability_functions_are_qinfers():
    n = np.arange(0, 21)
    for p in (0.0, 0.13, 0.5, 1.0):
        np.testing.assert_allclose(our_utils.binomial_pdf(20, n, p), qutils.binomial_pdf(20, n, p), rtol=1e-12,
                                   atol=1e-300)
    counts = np.array([[2, 0, 5], [1, 3, 0], [0, 1, 1]])
    probs = np.array([[0.5, 0.2, 0.6], [0.3, 0.3, 0.0], [0.2, 0.5, 0.4]])
    np.testing.assert_allclose(our_utils.multinomial_pdf(counts, probs), qutils.multinomial_pdf(counts, probs),
                               rtol=1e-12)
    np.testing.assert_allclose(our_utils.multinomial_pdf(counts, probs[:2]), qutils.multinomial_pdf(counts, probs[:2]),
                               rtol=1e-12)


@pytest.mark.parametrize("size", [None, 3])  # qinfer fails on a tuple (its axes do not match)
def test_sample_multinomial_is_qinfers_bit_for_bit(size):
    p = np.array([[[0.2, 0.5], [0.1, 0.3]], [[0.8, 0.5], [0.9, 0.7]]])  # two sides, a 2 x 2 array of dice
    np.random.seed(9)
    expected = qutils.sample_multinomial(6, p, size=size)
    got = our_utils.sample_multinomial(6, p, size=size, rng=np.random.RandomState(9))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_ellipsoid_functions_are_qinfers():
    rng = np.random.default_rng(10)
    points = rng.standard_normal((60, 3)) @ np.array([[1, 0.3, 0], [0, 2, 0.1], [0, 0, 0.5]])
    for tol in (1e-2, 1e-3):
        (a1, c1), (a2, c2) = our_utils.mvee(points, tol), qutils.mvee(points, tol)
        np.testing.assert_allclose(a1, a2, rtol=1e-12)
        np.testing.assert_allclose(c1, c2, rtol=1e-12)
    A, c = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([0.5, -1.0])
    x = rng.standard_normal((500, 2)) * 1.5 + c
    np.testing.assert_array_equal(our_utils.in_ellipsoid(x, A, c), qutils.in_ellipsoid(x, A, c))
    assert our_utils.in_ellipsoid(x[0], A, c) == qutils.in_ellipsoid(x[0], A, c)
    assert our_utils.ellipsoid_volume(A=A) == pytest.approx(qutils.ellipsoid_volume(A=A), rel=1e-12)


def test_small_helpers_are_qinfers():
    for secs in (0.5, 59.9, 61, 3599, 3601, 86401.5, 200000):
        assert our_utils.pretty_time(secs) == qutils.pretty_time(secs)
    for value, err in ((1.2345, 0.01), (123456.0, 10.0), (0.000123, 0.0000021), (5.0, 0), (-3.25, 0.5)):
        assert our_utils.format_uncertainty(value, err) == qutils.format_uncertainty(value, err)
    np.testing.assert_allclose(our_utils.compactspace(2, 101), qutils.compactspace(2, 101), rtol=1e-15, atol=1e-15)
    assert our_utils.uniquify([3, 1, 3, 2]) == qutils.uniquify([3, 1, 3, 2])
    assert our_utils.binom_est_p(3, 10, 0.5) == qutils.binom_est_p(3, 10, 0.5)
    assert our_utils.binom_est_error(0.3, 10, 0.5) == qutils.binom_est_error(0.3, 10, 0.5)
    v = np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(our_utils.outer_product(v), qutils.outer_product(v))
    assert our_utils.safe_shape(np.zeros((2, 3)), 5) == qutils.safe_shape(np.zeros((2, 3)), 5)


def test_particle_moments_are_qinfers():
    rng = np.random.default_rng(11)
    w = rng.random(200)
    w /= w.sum()
    x = rng.standard_normal((200, 3)) + [0.5, 2.0, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        np.testing.assert_allclose(our_utils.particle_meanfn(w, x), qutils.particle_meanfn(w, x), rtol=1e-12)
        theirs = qutils.particle_covariance_mtx(w, x)
    # qinfer subtracts mu mu^T from E[x x^T]; ours sums about the mean (never negative on the diagonal).
    # They differ by rounding of the size eps * E[x x^T].
    mine = our_utils.particle_covariance_mtx(w, x)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-13 * np.max(np.abs(x)) ** 2)


# ------------------------------------------------------------------ the updater's estimates
from mpi_qinfer.models.builtin import SimplePrecessionModel  # noqa: E402
from mpi_qinfer.models.distributions import UniformDistribution  # noqa: E402
from mpi_qinfer.smc.particles import ParticleDistribution  # noqa: E402
from mpi_qinfer.smc.updater import LiuWestResampler, SMCUpdater  # noqa: E402


def _same_cloud(n_mps=4, n=1500, seed=12):
    """A qinfer updater and ours holding one cloud: normal locations, distinct (random) weights."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1, 0, 0, 0.5], [0, 1, 0.2, 0], [0, 0.2, 2, 0], [0.5, 0, 0, 1]])[:n_mps, :n_mps]
    locations = rng.standard_normal((n, n_mps)) @ np.linalg.cholesky(cov).T + np.arange(1, n_mps + 1)
    weights = rng.random(n)
    weights /= weights.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.SMCUpdater(qinfer.SimplePrecessionModel(), n, qinfer.UniformDistribution([0, 1]))
    mine = SMCUpdater(SimplePrecessionModel(), n, UniformDistribution([0, 1]), rng=0)
    for updater in (theirs, mine):
        updater.particle_locations, updater.particle_weights = locations.copy(), weights.copy()
    return theirs, mine


def test_region_estimates_are_qinfers():
    theirs, mine = _same_cloud()
    for level in (0.95, 0.5):
        (f1, v1), (f2, v2) = mine.region_est_hull(level), theirs.region_est_hull(level)
        assert {tuple(v) for v in v1} == {tuple(v) for v in v2} and len(v1) == len(v2)
        assert {frozenset(map(tuple, f)) for f in f1} == {frozenset(map(tuple, f)) for f in f2}
    # The same vertices in the same order (increasing index): the same Khachiyan iterations.
    (a1, c1), (a2, c2) = mine.region_est_ellipsoid(0.5), theirs.region_est_ellipsoid(0.5)
    np.testing.assert_allclose(a1, a2, rtol=1e-12)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)
    probe = np.random.default_rng(13).standard_normal((2000, 4)) * 1.3 + np.arange(1, 5)
    for method in ("hpd-hull", "hpd-mvee"):
        for level in (0.9, 0.5):
            np.testing.assert_array_equal(mine.in_credible_region(probe, level, method=method),
                                          theirs.in_credible_region(probe, level, method=method))
    # "pce" scales the posterior's covariance (ours is computed about the mean) by chi2.ppf (ours is our own):
    # the same verdicts except, possibly, within rounding of the ellipsoid's surface.
    for level in (0.9, 0.5):
        same = mine.in_credible_region(probe, level, method="pce") == theirs.in_credible_region(probe, level,
                                                                                                method="pce")
        assert same.mean() >= 1 - 1 / len(probe)
    sliced = np.s_[1:3]
    np.testing.assert_array_equal(mine.in_credible_region(probe[:, sliced], 0.9, sliced, method="hpd-hull"),
                                  theirs.in_credible_region(probe[:, sliced], 0.9, sliced, method="hpd-hull"))


def test_mean_function_divergence_and_correlation_are_qinfers():
    theirs, mine = _same_cloud(n_mps=1, n=800)
    np.testing.assert_allclose(mine.est_meanfn(lambda x: np.cos(x)), theirs.est_meanfn(lambda x: np.cos(x)),
                               rtol=1e-12)
    other_theirs, other_mine = _same_cloud(n_mps=1, n=600, seed=14)
    assert mine.est_kl_divergence(other_mine) == pytest.approx(theirs.est_kl_divergence(other_theirs), rel=1e-12)
    theirs4, mine4 = _same_cloud()
    np.testing.assert_allclose(mine4.est_covariance_mtx(corr=True), theirs4.est_covariance_mtx(corr=True),
                               rtol=1e-10, atol=1e-12)


def test_posterior_mesh_is_qinfers_transposed():
    # qinfer reshapes its grid in the other order: for res1 == res2 its density is the transpose of the grid's.
    theirs, mine = _same_cloud(n_mps=2, n=400)
    p1, p2, density = mine.posterior_mesh(0, 1, 25, 25, 0.2)
    q1, q2, q_density = theirs.posterior_mesh(0, 1, 25, 25, 0.2)
    np.testing.assert_array_equal(p1, q1)
    np.testing.assert_array_equal(p2, q2)
    np.testing.assert_allclose(density, q_density.T, rtol=1e-12)


def test_risk_is_qinfers():
    rng = np.random.default_rng(15)
    locations = rng.random((500, 1))
    weights = rng.random(500)
    weights /= weights.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.SMCUpdater(qinfer.SimplePrecessionModel(), 500, qinfer.UniformDistribution([0, 1]))
    mine = SMCUpdater(SimplePrecessionModel(), 500, UniformDistribution([0, 1]), rng=0)
    for updater in (theirs, mine):
        updater.particle_locations, updater.particle_weights = locations.copy(), weights.copy()
    for t in (0.5, 2.0, 9.0):
        np.testing.assert_allclose(mine.risk(t), theirs.risk(t).reshape(-1), rtol=1e-12)


class _Decimation(qinfer.FiniteOutcomeModel):
    """qinfer's test model: outcome 0 keeps the first alpha of the particles."""

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
        return qinfer.FiniteOutcomeModel.pr0_to_likelihood_array(outcomes, pr0)


def test_min_n_ess_and_the_tiny_sample_warning_are_qinfers():
    n = 4**5
    theirs = qinfer.SMCUpdater(_Decimation(), n, qinfer.UniformDistribution([0, 1]), resample_thresh=0.0)
    mine = SMCUpdater(_Decimation(), n, UniformDistribution([0, 1]), resample_thresh=0.0, rng=0)
    for k in range(1, 6):
        experiment = np.array([(4.0**-k,)], dtype=_Decimation.expparams_dtype)
        with warnings.catch_warnings(record=True) as caught_theirs:
            warnings.simplefilter("always")
            theirs.update(np.array([0]), experiment)
        with warnings.catch_warnings(record=True) as caught_mine:
            warnings.simplefilter("always")
            mine.update(np.array([0]), experiment)
        assert mine.min_n_ess == theirs.min_n_ess
        assert [str(w.message) for w in caught_mine] == [str(w.message) for w in caught_theirs]


def test_liu_west_takes_qinfers_particle_distribution():
    w = np.random.default_rng(16).random(100)
    x = np.random.default_rng(17).random((100, 1)) + 1  # valid precession frequencies
    cloud = ParticleDistribution(particle_locations=x, particle_weights=w)
    new = LiuWestResampler()(SimplePrecessionModel(), cloud, rng=1)
    assert isinstance(new, ParticleDistribution) and new.particle_locations.shape == (100, 1)


def test_bcrb_information_matrices_are_qinfers():
    from mpi_qinfer.models.interop import register_with_qinfer
    from mpi_qinfer.smc.bcrb import SMCUpdaterBCRB

    # qinfer 1.0's own SimplePrecessionModel.fisher_information fails on plain float experiments; its
    # updater is given ours (a qinfer DifferentiableModel once registered), so only the averaging differs.
    assert register_with_qinfer()

    rng = np.random.default_rng(18)
    locations = 2 + 0.2 * rng.standard_normal((400, 1))
    weights = rng.random(400)
    weights /= weights.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.SMCUpdaterBCRB(SimplePrecessionModel(), 400, qinfer.NormalDistribution(2, 0.04),
                                       adaptive=True)
    mine = SMCUpdaterBCRB(SimplePrecessionModel(), 400, ours.NormalDistribution(2, 0.04), rng=0, adaptive=True)
    # The prior's information from the same particles (qinfer computes it from its own draw at construction).
    for updater in (theirs, mine):
        updater.particle_locations, updater.particle_weights = locations.copy(), weights.copy()
    gradients = qinfer.NormalDistribution(2, 0.04).grad_log_pdf(locations)
    expected_initial = np.sum(gradients[:, :, None] * gradients[:, None, :], axis=0) / 400
    again = SMCUpdaterBCRB(SimplePrecessionModel(), 400, _Fixed(locations, ours.NormalDistribution(2, 0.04)), rng=0)
    np.testing.assert_allclose(again.current_bim, expected_initial, rtol=1e-12)
    experiments = np.array([0.5, 3.0, 7.0])
    np.testing.assert_allclose(mine.posterior_bayes_information(experiments),
                               theirs.posterior_bayes_information(experiments), rtol=1e-12)


class _Fixed(ours.Distribution):
    """A prior whose sample is given particles, with the gradient of another distribution's log density."""

    def __init__(self, locations, like):
        self._locations, self._like = locations, like

    @property
    def n_rvs(self):
        return self._locations.shape[1]

    def sample(self, n=1, rng=None):
        return self._locations[:n].copy()

    def grad_log_pdf(self, x):
        return self._like.grad_log_pdf(x)
