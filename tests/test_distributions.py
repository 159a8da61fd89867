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
