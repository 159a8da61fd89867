"""Prior distributions over model parameters, sampled from an explicit numpy Generator."""

from __future__ import annotations

import abc

import numpy as np

__all__ = [
    "Distribution",
    "UniformDistribution",
    "NormalDistribution",
    "MultivariateNormalDistribution",
    "ProductDistribution",
]


class Distribution(abc.ABC):
    """A probability distribution over ``n_rvs`` real random variables."""

    @property
    @abc.abstractmethod
    def n_rvs(self) -> int:
        """int : Number of random variables in one sample."""

    @abc.abstractmethod
    def sample(self, n: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples.

        Parameters
        ----------
        n : int, optional
            Number of samples (default 1).
        rng : numpy.random.Generator or None, optional
            Source of randomness; None uses a fresh ``numpy.random.default_rng()``.

        Returns
        -------
        numpy.ndarray of float64, shape (n, n_rvs)
        """


class UniformDistribution(Distribution):
    """Independent uniform distributions on boxes ``[lo, hi)``.

    Parameters
    ----------
    ranges : array_like, shape (2,) or (n_rvs, 2)
        ``[lo, hi]`` for one variable, or one such row per variable.
    """

    def __init__(self, ranges=(0.0, 1.0)):
        ranges = np.asarray(ranges, dtype=np.float64)
        if ranges.ndim == 1:
            ranges = ranges[np.newaxis, :]
        if ranges.ndim != 2 or ranges.shape[1] != 2:
            raise ValueError(f"ranges must have shape (2,) or (n, 2), got {ranges.shape}")
        self.ranges = ranges

    @property
    def n_rvs(self) -> int:
        """int : Number of variables, one per row of ``ranges``."""
        return self.ranges.shape[0]

    def sample(self, n: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        rng = np.random.default_rng(rng)
        lo, hi = self.ranges[:, 0], self.ranges[:, 1]
        return lo + (hi - lo) * rng.random((n, self.n_rvs))


class NormalDistribution(Distribution):
    """A univariate normal distribution.

    Parameters
    ----------
    mean : float
    var : float
        Variance (not standard deviation).
    """

    def __init__(self, mean: float, var: float):
        self.mean = float(mean)
        self.var = float(var)

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        rng = np.random.default_rng(rng)
        return self.mean + np.sqrt(self.var) * rng.standard_normal((n, 1))


class MultivariateNormalDistribution(Distribution):
    """A multivariate normal distribution.

    Parameters
    ----------
    mean : array_like, shape (n_rvs,)
    cov : array_like, shape (n_rvs, n_rvs)
        Symmetric positive-definite covariance matrix.
    """

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.cov = np.asarray(cov, dtype=np.float64)
        if self.cov.shape != (self.mean.size, self.mean.size):
            raise ValueError(
                f"cov must have shape {(self.mean.size,) * 2}, got {self.cov.shape}"
            )
        self._chol = np.linalg.cholesky(self.cov)

    @property
    def n_rvs(self) -> int:
        """int : Dimension of ``mean``."""
        return self.mean.size

    def sample(self, n: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        rng = np.random.default_rng(rng)
        return self.mean + rng.standard_normal((n, self.n_rvs)) @ self._chol.T


class ProductDistribution(Distribution):
    """Independent factors side by side: a sample is their samples concatenated.

    Parameters
    ----------
    *factors : Distribution
        The factors, in order; a single list or tuple of factors is also accepted.
    """

    def __init__(self, *factors):
        if len(factors) == 1 and isinstance(factors[0], (list, tuple)):
            factors = tuple(factors[0])
        if not factors:
            raise ValueError("ProductDistribution needs at least one factor")
        self.factors = tuple(factors)

    @property
    def n_rvs(self) -> int:
        """int : Sum of the factors' ``n_rvs``."""
        return sum(factor.n_rvs for factor in self.factors)

    def sample(self, n: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples, factor by factor from one generator (see :meth:`Distribution.sample`)."""
        rng = np.random.default_rng(rng)
        return np.concatenate([factor.sample(n, rng=rng) for factor in self.factors], axis=1)
