"""Tests of the prior distributions in mpi_qinfer.models.distributions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mpi_qinfer.models.distributions import (
    Distribution,
    MultivariateNormalDistribution,
    NormalDistribution,
    ProductDistribution,
    UniformDistribution,
)

N = 40000


def test_distribution_is_abstract():
    with pytest.raises(TypeError):
        Distribution()


def test_uniform_one_range():
    d = UniformDistribution([2, 5])
    assert d.n_rvs == 1
    x = d.sample(N, rng=np.random.default_rng(0))
    assert x.shape == (N, 1) and x.dtype == np.float64
    assert x.min() >= 2 and x.max() < 5
    assert x.mean() == pytest.approx(3.5, abs=0.03)
    assert x.var() == pytest.approx(9 / 12, rel=0.03)


def test_uniform_several_ranges():
    d = UniformDistribution([[0, 1], [0, 2], [-3, -1]])
    assert d.n_rvs == 3
    x = d.sample(N, rng=np.random.default_rng(1))
    assert x.shape == (N, 3)
    np.testing.assert_allclose(x.mean(axis=0), [0.5, 1.0, -2.0], atol=0.03)
    assert np.all(x >= [0, 0, -3]) and np.all(x < [1, 2, -1])


def test_uniform_rejects_bad_ranges():
    with pytest.raises(ValueError):
        UniformDistribution([[0, 1, 2]])


def test_default_sample_size_and_default_rng():
    prior = UniformDistribution([[2, 3], [-1, 0]])
    x = prior.sample()
    assert x.shape == (1, 2)
    assert 2 <= x[0, 0] < 3 and -1 <= x[0, 1] < 0
    # Without rng, a fresh generator: two draws differ (and the global stream is untouched).
    state = np.random.get_state()[1].copy()
    many = [prior.sample(3) for _ in range(2)]
    assert not np.array_equal(many[0], many[1])
    assert np.array_equal(np.random.get_state()[1], state)
    # An int rng is a seed: reproducible.
    assert np.array_equal(prior.sample(4, rng=7), prior.sample(4, rng=7))


def test_normal():
    d = NormalDistribution(1.5, 4.0)
    assert d.n_rvs == 1
    x = d.sample(N, rng=np.random.default_rng(2))
    assert x.shape == (N, 1)
    assert x.mean() == pytest.approx(1.5, abs=0.05)
    assert x.var() == pytest.approx(4.0, rel=0.03)


def test_multivariate_normal():
    mean = [1.0, -2.0]
    cov = [[2.0, 0.6], [0.6, 0.5]]
    d = MultivariateNormalDistribution(mean, cov)
    assert d.n_rvs == 2
    x = d.sample(N, rng=np.random.default_rng(3))
    assert x.shape == (N, 2)
    # Six standard errors of N draws: sqrt(var / N) for the mean, sqrt((s_ii s_jj + s_ij^2) / N)
    # for each covariance entry.
    var = np.diag(cov)
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=6 * np.sqrt(var.max() / N))
    cov_se = np.sqrt((np.outer(var, var) + np.square(cov)) / N)
    assert np.all(np.abs(np.cov(x.T) - cov) < 6 * cov_se), (np.cov(x.T), cov_se)
    with pytest.raises(ValueError):
        MultivariateNormalDistribution([0.0, 0.0], np.eye(3))


def test_product_concatenates_factors_in_order():
    d = ProductDistribution(UniformDistribution([10, 11]), NormalDistribution(0, 1),
                            UniformDistribution([[0, 1], [5, 6]]))
    assert d.n_rvs == 4
    x = d.sample(1000, rng=np.random.default_rng(4))
    assert x.shape == (1000, 4)
    assert np.all((x[:, 0] >= 10) & (x[:, 0] < 11))
    assert np.all((x[:, 3] >= 5) & (x[:, 3] < 6))
    assert ProductDistribution([NormalDistribution(0, 1), NormalDistribution(0, 1)]).n_rvs == 2
    with pytest.raises(ValueError):
        ProductDistribution()


@pytest.mark.parametrize(
    "dist",
    [
        UniformDistribution([[0, 1], [0, 2]]),
        NormalDistribution(0, 2),
        MultivariateNormalDistribution([0, 1], [[1, 0], [0, 2]]),
        ProductDistribution(UniformDistribution([0, 1]), NormalDistribution(3, 1)),
    ],
)
def test_same_seed_same_samples_and_pickle(dist):
    a = dist.sample(50, rng=np.random.default_rng(7))
    b = pickle.loads(pickle.dumps(dist)).sample(50, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dist.sample(50, rng=np.random.default_rng(8)))


# ------------------------------------------------------------- qinfer's other distributions
# Moments are checked to six standard errors of the sample mean and variance (for N draws of a
# distribution with variance s2 and fourth central moment m4: sqrt(s2 / N) and sqrt((m4 - s2**2) / N)),
# so a correct sampler fails one check with a probability of about 2e-9.
from mpi_qinfer.models.distributions import (  # noqa: E402 - grouped with the tests that use them
    BetaBinomialDistribution,
    BetaDistribution,
    ConstantDistribution,
    ConstrainedSumDistribution,
    DirichletDistribution,
    DiscreteUniformDistribution,
    GammaDistribution,
    GinibreUniform,
    HaarUniform,
    InterpolatedUnivariateDistribution,
    LogNormalDistribution,
    MixtureDistribution,
    MVUniformDistribution,
    PostselectedDistribution,
    SingleSampleMixin,
    SlantedNormalDistribution,
    draw,
)


def _assert_moments(x, mean, var, m4=None):
    """Sample mean and variance of the columns of ``x`` within six standard errors of the given ones."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = x.shape[0]
    mean, var = np.broadcast_to(mean, x.shape[1:]), np.broadcast_to(var, x.shape[1:])
    m4 = 3 * var**2 if m4 is None else np.broadcast_to(m4, x.shape[1:])  # normal's, unless given
    assert np.all(np.abs(x.mean(axis=0) - mean) < 6 * np.sqrt(var / n)), (x.mean(axis=0), mean)
    assert np.all(np.abs(x.var(axis=0) - var) < 6 * np.sqrt((m4 - var**2) / n) + 1e-12), (x.var(axis=0), var)


def _beta_m4(a, b):
    """Fourth central moment of Beta(a, b)."""
    mean = a / (a + b)
    raw = [1.0]
    for k in range(1, 5):
        raw.append(raw[-1] * (a + k - 1) / (a + b + k - 1))
    return raw[4] - 4 * mean * raw[3] + 6 * mean**2 * raw[2] - 3 * mean**4


@pytest.mark.parametrize("kwargs", [dict(alpha=3, beta=7), dict(mean=0.3, var=0.3 * 0.7 / 11)])
def test_beta_takes_shapes_or_moments(kwargs):
    d = BetaDistribution(**kwargs)
    assert (d.alpha, d.beta) == pytest.approx((3, 7)) and d.mean == pytest.approx(0.3)
    x = d.sample(N, rng=5)
    assert x.shape == (N, 1) and np.all((x >= 0) & (x <= 1))
    _assert_moments(x, 0.3, 0.3 * 0.7 / 11, _beta_m4(3, 7))
    with pytest.raises(ValueError, match="alpha and beta"):
        BetaDistribution(alpha=3)


def test_gamma_has_shape_and_rate():
    d = GammaDistribution(alpha=4, beta=2)
    assert (d.mean, d.var) == (2, 1)
    x = d.sample(N, rng=6)
    assert x.shape == (N, 1) and x.min() > 0
    _assert_moments(x, 2, 1, m4=(3 * 4 * (4 + 2)) / 2**4)  # 3 a (a + 2) / beta**4
    assert (GammaDistribution(mean=2, var=1).alpha, GammaDistribution(mean=2, var=1).beta) == (4, 2)
    with pytest.raises(ValueError):
        GammaDistribution(mean=2)


def test_lognormal_is_a_shifted_scaled_exponential_of_a_normal():
    # qinfer's parametrisation: mu + sigma exp(Z).
    d = LogNormalDistribution(mu=3, sigma=2)
    x = d.sample(N, rng=7)
    assert x.shape == (N, 1) and x.min() > 3
    _assert_moments(np.log((x - 3) / 2), 0, 1)


def test_beta_binomial_counts():
    d = BetaBinomialDistribution(10, alpha=2, beta=3)
    assert d.mean == pytest.approx(4) and d.var == pytest.approx(10 * 6 * 15 / (25 * 6))
    x = d.sample(N, rng=8)
    assert x.shape == (N, 1) and x.dtype.kind == "i" and x.min() >= 0 and x.max() <= 10
    assert abs(x.mean() - 4) < 6 * np.sqrt(d.var / N)
    back = BetaBinomialDistribution(10, mean=d.mean, var=d.var)
    assert (back.alpha, back.beta) == pytest.approx((2, 3))


def test_dirichlet_points_lie_on_the_simplex_with_the_right_means():
    alpha = np.array([1.0, 2, 3, 4])
    d = DirichletDistribution(alpha)
    assert d.n_rvs == 4 and np.array_equal(d.alpha, alpha)
    x = d.sample(N, rng=9)
    np.testing.assert_allclose(x.sum(axis=1), 1, rtol=1e-12)
    a0 = alpha.sum()
    mean = alpha / a0
    var = alpha * (a0 - alpha) / (a0**2 * (a0 + 1))
    assert np.all(np.abs(x.mean(axis=0) - mean) < 6 * np.sqrt(var / N))
    with pytest.raises(ValueError, match="1D"):
        DirichletDistribution([[1, 2]])


def test_mv_uniform_is_the_flat_dirichlet():
    x = MVUniformDistribution(dim=5).sample(N, rng=10)
    assert x.shape == (N, 5)
    np.testing.assert_allclose(x.sum(axis=1), 1, rtol=1e-12)
    _assert_moments(x[:, 2], 1 / 5, 4 / (25 * 6), _beta_m4(1, 4))  # one coordinate is Beta(1, 4)


def test_discrete_uniform_integers():
    d = DiscreteUniformDistribution(4)
    x = d.sample(N, rng=11)
    assert x.shape == (N, 1) and x.dtype.kind == "i"
    assert set(np.unique(x)) == set(range(16))
    assert abs(x.mean() - 7.5) < 6 * np.sqrt((16**2 - 1) / 12 / N)


def test_constant_repeats_its_values_with_their_dtype():
    d = ConstantDistribution([1, 2, 3])
    x = d.sample(4)
    assert x.shape == (4, 3) and np.array_equal(x, [[1, 2, 3]] * 4) and x.dtype.kind == "i"
    assert ConstantDistribution(0.5).n_rvs == 1
    assert ConstantDistribution([0.5]).sample(2).dtype == np.float64


def test_slanted_normal_is_a_box_plus_noise():
    d = SlantedNormalDistribution(ranges=[[0, 1], [2, 4]], weight=0.5)
    x = d.sample(N, rng=12)
    width = np.array([1.0, 2.0])
    var = width**2 / 12 + 0.25
    assert np.all(np.abs(x.mean(axis=0) - [0.5, 3]) < 6 * np.sqrt(var / N))
    np.testing.assert_allclose(x.var(axis=0), var, rtol=0.05)


def test_truncated_normal_stays_in_its_interval_and_has_its_mean():
    d = NormalDistribution(1, 4, trunc=(0, 5))
    x = d.sample(N, rng=13)
    assert x.min() >= 0 and x.max() <= 5
    # Mean of N(1, 2**2) cut to [0, 5]: 1 + 2 (phi(a) - phi(b)) / (Phi(b) - Phi(a)), a = -0.5, b = 2.
    from math import erf, exp, pi, sqrt

    phi = lambda t: exp(-t * t / 2) / sqrt(2 * pi)  # noqa: E731
    cdf = lambda t: (1 + erf(t / sqrt(2))) / 2  # noqa: E731
    mean = 1 + 2 * (phi(-0.5) - phi(2)) / (cdf(2) - cdf(-0.5))
    assert abs(x.mean() - mean) < 6 * 2 / np.sqrt(N)
    far = NormalDistribution(0, 1, trunc=(8, 9)).sample(1000, rng=14)  # deep in the tail: no NaN, no escape
    assert np.all((far >= 8) & (far <= 9))
    with pytest.raises(ValueError, match="trunc"):
        NormalDistribution(0, 1, trunc=(2, 1))


def test_gradients_of_the_log_densities():
    assert NormalDistribution(1, 4).grad_log_pdf(np.array([3.0])) == pytest.approx([-0.5])
    mvn = MultivariateNormalDistribution([0, 0], [[2, 0], [0, 4]])
    np.testing.assert_allclose(mvn.grad_log_pdf(np.array([[2.0, 2.0]])), [[-1, -0.5]])


def test_mixture_of_a_list_and_of_a_class_agree_in_law():
    weights = np.array([0.25, 0.25, 0.5])
    means, variances = np.array([1.0, 2, 3]), np.array([0.5, 0.2, 0.8])
    listed = MixtureDistribution(weights, [NormalDistribution(m, v) for m, v in zip(means, variances)])
    built = MixtureDistribution(weights, NormalDistribution, dist_args=np.vstack([means, variances]).T)
    mean = weights @ means
    var = weights @ variances + weights @ means**2 - mean**2
    for d in (listed, built):
        assert d.n_rvs == 1 and d.n_dist == 3
        x = d.sample(N, rng=15)
        assert x.shape == (N, 1)
        assert abs(x.mean() - mean) < 6 * np.sqrt(var / N)
        assert x.var() == pytest.approx(var, rel=0.05)
    # With the same generator both forms make the same draws.
    np.testing.assert_array_equal(listed.sample(100, rng=16), built.sample(100, rng=16))
    constants = [ConstantDistribution([k]) for k in range(3)]
    grouped = MixtureDistribution(weights, constants, shuffle=False).sample(50, rng=1)
    assert np.all(np.diff(grouped[:, 0]) >= 0)  # unshuffled: component by component
    with pytest.raises(ValueError, match="3 weights"):
        MixtureDistribution(weights, [NormalDistribution(0, 1)])


def test_mixture_keyword_arguments_reach_the_components():
    d = MixtureDistribution([0.5, 0.5], NormalDistribution, dist_args=np.array([[0, 1], [10, 1]]),
                            dist_kw_args={"trunc": np.array([[-0.1, 0.1], [9.9, 10.1]])})
    x = d.sample(2000, rng=17)[:, 0]
    assert np.all((np.abs(x) <= 0.1) | (np.abs(x - 10) <= 0.1))


def test_postselection_redraws_invalid_samples_and_gives_up_clearly():
    class Positive:
        def are_models_valid(self, x):
            return x[:, 0] > 0

    d = PostselectedDistribution(NormalDistribution(0, 1), Positive())
    x = d.sample(5000, rng=18)
    assert x.shape == (5000, 1) and x.min() > 0 and d.n_rvs == 1
    assert abs(x.mean() - np.sqrt(2 / np.pi)) < 6 / np.sqrt(5000)
    np.testing.assert_array_equal(d.grad_log_pdf(np.array([1.0])), [-1.0])

    class Never:
        def are_models_valid(self, x):
            return np.zeros(len(x), dtype=bool)

    with pytest.raises(RuntimeError, match="within 7 iterations"):
        PostselectedDistribution(NormalDistribution(0, 1), Never(), 7).sample(10, rng=0)


def test_constrained_sum_rescales_each_sample():
    d = ConstrainedSumDistribution(UniformDistribution([[0, 1], [0, 2]]), 3)
    x = d.sample(1000, rng=19)
    np.testing.assert_allclose(x.sum(axis=1), 3, rtol=1e-12)
    assert d.n_rvs == 2 and d.underlying_distribution.n_rvs == 2 and d.desired_total == 3
    negative = ConstrainedSumDistribution(UniformDistribution([[-2, -1], [-2, -1]]), 1).sample(10, rng=0)
    np.testing.assert_allclose(negative.sum(axis=1), -1)  # qinfer's rule keeps the sign of the total


def test_interpolated_univariate_follows_its_density():
    def laplace(t):
        return np.exp(-np.abs(t)) / 2

    d = InterpolatedUnivariateDistribution(laplace, 1, 2000)
    x = d.sample(N, rng=20)
    assert x.shape == (N, 1) and np.all(np.isfinite(x))
    _assert_moments(x, 0, 2, m4=24)


def test_haar_states_are_uniform_on_the_bloch_sphere():
    x = HaarUniform().sample(N, rng=21)
    assert x.shape == (N, 3)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-12)
    _assert_moments(x, 0, 1 / 3, m4=1 / 5)  # a uniform unit vector: E[x^2] = 1/3, E[x^4] = 1/5
    with pytest.raises(ValueError, match="qubits"):
        HaarUniform(dim=3)


def test_ginibre_of_rank_two_fills_the_bloch_ball_uniformly():
    x = GinibreUniform(k=2).sample(N, rng=22)
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1 + 1e-12
    # Uniform in the ball: r**3 is uniform on [0, 1].
    _assert_moments(r**3, 0.5, 1 / 12, m4=1 / 80)
    assert np.all(np.linalg.norm(GinibreUniform(k=1).sample(10, rng=0), axis=1) == pytest.approx(1))


def test_single_sample_mixin_stacks_single_samples():
    class Walk(SingleSampleMixin, Distribution):
        @property
        def n_rvs(self):
            return 2

        def _sample(self, rng):
            return rng.standard_normal((1, 2)).cumsum(axis=1)

    x = Walk().sample(500, rng=23)
    assert x.shape == (500, 2)
    np.testing.assert_array_equal(Walk().sample(5, rng=1), Walk().sample(5, rng=1))


class _QinferStylePrior(Distribution):
    """A prior written for qinfer: ``sample(n)`` and NumPy's global state."""

    n_rvs = 1

    def sample(self, n=1):
        return np.random.random((n, 1))


def test_composites_take_parts_written_for_qinfer():
    np.random.seed(0)
    x = ProductDistribution(_QinferStylePrior(), NormalDistribution(0, 1)).sample(10, rng=1)
    assert x.shape == (10, 2)
    np.random.seed(0)
    np.testing.assert_array_equal(draw(_QinferStylePrior(), 10, rng=1), x[:, :1])


def test_a_random_state_is_used_as_given():
    a = BetaDistribution(2, 3).sample(20, rng=np.random.RandomState(4))
    np.testing.assert_array_equal(a[:, 0], np.random.RandomState(4).beta(2, 3, 20))


@pytest.mark.parametrize("dist", [
    BetaDistribution(2, 3), GammaDistribution(2, 1), LogNormalDistribution(), DirichletDistribution([1, 2]),
    BetaBinomialDistribution(5, 1, 1), MixtureDistribution([0.5, 0.5], [NormalDistribution(0, 1)] * 2),
    HaarUniform(), GinibreUniform(), SlantedNormalDistribution(), MVUniformDistribution(3),
    DiscreteUniformDistribution(3), NormalDistribution(0, 1, trunc=(-1, 2)),
])
def test_new_distributions_are_reproducible_and_pickle(dist):
    a = dist.sample(30, rng=np.random.default_rng(3))
    b = pickle.loads(pickle.dumps(dist)).sample(30, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (30, dist.n_rvs)
