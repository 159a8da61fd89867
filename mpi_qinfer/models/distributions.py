"""Probability distributions (priors over model parameters): qinfer's distributions, sampled from an explicit source.

Every ``sample(n, rng=None)`` returns an array of shape ``(n, n_rvs)`` and
draws from ``rng``: a :class:`numpy.random.Generator`, a legacy
:class:`numpy.random.RandomState`, or a seed (None: fresh entropy); see
:func:`~mpi_qinfer.models.utils.random_source`. Where qinfer's algorithm is
the same, a ``RandomState`` seeded as NumPy's global state was gives
exactly qinfer's samples. Distributions written for qinfer (``sample(n)``,
no ``rng``) work wherever these are accepted: the composite distributions
pass ``rng`` on only to a part whose ``sample`` takes it.

The particle distribution of qinfer (``ParticleDistribution``) is in
:mod:`mpi_qinfer.smc.particles`, with the other particle approximations.
"""

from __future__ import annotations

import abc
import inspect
import math

import numpy as np

from ._special import norm_cdf, norm_ppf
from .utils import compactspace, random_integers, random_source

__all__ = [
    "Distribution",
    "SingleSampleMixin",
    "draw",
    "MixtureDistribution",
    "ProductDistribution",
    "UniformDistribution",
    "DiscreteUniformDistribution",
    "MVUniformDistribution",
    "ConstantDistribution",
    "NormalDistribution",
    "MultivariateNormalDistribution",
    "SlantedNormalDistribution",
    "LogNormalDistribution",
    "BetaDistribution",
    "DirichletDistribution",
    "BetaBinomialDistribution",
    "GammaDistribution",
    "GinibreUniform",
    "HaarUniform",
    "PostselectedDistribution",
    "ConstrainedSumDistribution",
    "InterpolatedUnivariateDistribution",
]


def _takes_rng(method) -> bool:
    try:
        return "rng" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def draw(distribution, n: int, rng=None) -> np.ndarray:
    """``distribution.sample(n)``, given ``rng`` when its ``sample`` takes an ``rng`` keyword.

    How the composite distributions sample their parts, so that a part
    written for qinfer (``sample(self, n=1)``) still works; such a part draws
    from NumPy's global state.

    Parameters
    ----------
    distribution : Distribution or any object with ``sample(n)``
    n : int
    rng : Generator, RandomState, int or None, optional

    Returns
    -------
    numpy.ndarray
        Whatever the part returns.
    """
    if _takes_rng(distribution.sample):
        return distribution.sample(n, rng=rng)
    return distribution.sample(n)


class Distribution(abc.ABC):
    """A probability distribution over ``n_rvs`` random variables (qinfer's ``Distribution``).

    A subclass gives :attr:`n_rvs` and :meth:`sample`. One written for
    qinfer, with ``sample(self, n=1)`` and NumPy's global state, works
    wherever mpi_qinfer takes a prior; taking ``rng`` makes its draws
    follow the updater's generator, and so reproducible.
    """

    @property
    @abc.abstractmethod
    def n_rvs(self) -> int:
        """int : Number of random variables in one sample."""

    @abc.abstractmethod
    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples.

        Parameters
        ----------
        n : int, optional
            Number of samples (default 1).
        rng : numpy.random.Generator, numpy.random.RandomState, int or None, optional
            Source of randomness (see :func:`~mpi_qinfer.models.utils.random_source`);
            None uses a fresh ``numpy.random.default_rng()``.

        Returns
        -------
        numpy.ndarray, shape (n, n_rvs)
        """


class SingleSampleMixin(abc.ABC):
    """Gives a distribution :meth:`sample` from a method ``_sample`` that draws one sample (qinfer's mixin).

    Put it first among the bases: ``class D(SingleSampleMixin, Distribution)``.
    ``_sample()`` returns one sample, shape ``(n_rvs,)`` (or ``(1, n_rvs)``);
    it is given ``rng=`` when it takes that keyword.
    """

    @abc.abstractmethod
    def _sample(self):
        """One sample, shape ``(n_rvs,)``."""

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples, one ``_sample()`` call each (see :meth:`Distribution.sample`)."""
        kwargs = {"rng": random_source(rng)} if _takes_rng(self._sample) else {}
        samples = np.zeros((n, self.n_rvs))
        for idx in range(n):
            samples[idx, :] = self._sample(**kwargs)
        return samples


class MixtureDistribution(Distribution):
    r"""A weighted mixture: each sample comes from distribution ``k`` with probability ``weights[k]``.

    Parameters
    ----------
    weights : array_like, shape (n_dist,)
        Probabilities summing to one.
    dist : sequence of Distribution, or a Distribution class
        The ``n_dist`` components (all with the same ``n_rvs``), or a class
        to build them from ``dist_args`` and ``dist_kw_args``.
    dist_args : numpy.ndarray, shape (n_dist, ...), optional
        With a class: row ``k`` holds the positional arguments of component
        ``k``; None for none.
    dist_kw_args : dict of numpy.ndarray, optional
        With a class: ``dist_kw_args[key][k]`` is the keyword argument
        ``key`` of component ``k``; None for none.
    shuffle : bool, optional
        Shuffle the samples (default True); otherwise they come grouped by
        component, in component order.
    """

    def __init__(self, weights, dist, dist_args=None, dist_kw_args=None, shuffle=True):
        super().__init__()
        self._weights = np.asarray(weights, dtype=np.float64)
        self._n_dist = len(self._weights)
        self._shuffle = bool(shuffle)
        self._is_dist_list = not (isinstance(dist, type) or (callable(dist) and not hasattr(dist, "__len__")))
        if self._is_dist_list:
            self._dist_list = list(dist)
            if len(self._dist_list) != self._n_dist:
                raise ValueError(f"MixtureDistribution: {self._n_dist} weights but {len(self._dist_list)} "
                                 "distributions")
            self._example_dist = self._dist_list[0]
        else:
            self._dist = dist
            self._dist_args = dist_args
            self._dist_kw_args = dist_kw_args
            if dist_args is not None and np.shape(dist_args)[0] != self._n_dist:
                raise ValueError(f"MixtureDistribution: {self._n_dist} weights but dist_args has "
                                 f"{np.shape(dist_args)[0]} rows")
            self._example_dist = self._component(0)

    def _component(self, k: int):
        """Component ``k``: from the list, or built from the class and row ``k`` of the arguments."""
        if self._is_dist_list:
            return self._dist_list[k]
        args = [] if self._dist_args is None else self._dist_args[k]
        kwargs = {} if self._dist_kw_args is None else {key: value[k] for key, value in self._dist_kw_args.items()}
        return self._dist(*args, **kwargs)

    @property
    def n_rvs(self) -> int:
        """int : The components' number of random variables."""
        return self._example_dist.n_rvs

    @property
    def n_dist(self) -> int:
        """int : Number of components."""
        return self._n_dist

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples: a multinomial split over the components, then each component's share.

        See :meth:`Distribution.sample`.
        """
        rng = random_source(rng)
        counts = rng.multinomial(n, self._weights)
        parts = [draw(self._component(k), int(counts[k]), rng) for k in np.flatnonzero(counts)]
        samples = np.concatenate(parts) if parts else np.zeros((0, self.n_rvs))
        if self._shuffle:
            rng.shuffle(samples)
        return samples


class ProductDistribution(Distribution):
    """Independent factors side by side: a sample is their samples concatenated.

    Parameters
    ----------
    *factors : Distribution
        The factors, in order; a single iterable of factors is also accepted.
    """

    def __init__(self, *factors):
        if len(factors) == 1 and not hasattr(factors[0], "sample"):
            factors = tuple(factors[0])
        if not factors:
            raise ValueError("ProductDistribution needs at least one factor")
        self.factors = tuple(factors)

    @property
    def n_rvs(self) -> int:
        """int : Sum of the factors' ``n_rvs``."""
        return sum(factor.n_rvs for factor in self.factors)

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples, factor by factor from one generator (see :meth:`Distribution.sample`)."""
        rng = random_source(rng)
        return np.concatenate([draw(factor, n, rng) for factor in self.factors], axis=1)


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

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        rng = random_source(rng)
        lo, hi = self.ranges[:, 0], self.ranges[:, 1]
        return lo + (hi - lo) * rng.random((n, self.n_rvs))

    def grad_log_pdf(self, var):
        """qinfer's stand-in for the gradient of the log density (for Bayesian Cramér--Rao bounds).

        The density of a box is flat, with edges; qinfer returns
        ``12 / (hi - lo)**2`` (the inverse variance) for a single point and
        zeros otherwise, and so does this.
        """
        var = np.asarray(var)
        if var.shape[0] == 1:
            return 12 / (self.ranges[:, 1] - self.ranges[:, 0]) ** 2
        return np.zeros(var.shape)


class DiscreteUniformDistribution(Distribution):
    """The integers ``0, 1, ..., 2**num_bits - 1``, each equally likely.

    Parameters
    ----------
    num_bits : int
        Non-negative.

    Notes
    -----
    qinfer returns shape ``(n,)``; this returns ``(n, 1)``, the shape every
    distribution promises (and an updater requires of a prior).
    """

    def __init__(self, num_bits):
        self._num_bits = int(num_bits)

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` integers, shape ``(n, 1)`` (see :meth:`Distribution.sample`)."""
        return random_integers(random_source(rng), 2**self._num_bits, n)[:, np.newaxis]


class MVUniformDistribution(Distribution):
    """The uniform distribution on the probability simplex: ``dim`` non-negative numbers summing to one.

    Parameters
    ----------
    dim : int, optional
        Number of variables (default 6).
    """

    def __init__(self, dim=6):
        self._dim = int(dim)

    @property
    def n_rvs(self) -> int:
        """int : ``dim``."""
        return self._dim

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` points of the simplex (a flat Dirichlet; see :meth:`Distribution.sample`)."""
        return random_source(rng).dirichlet(np.ones(self._dim), n)


class ConstantDistribution(Distribution):
    r"""A point mass: every sample is ``values`` (:math:`\Pr(X) = \delta(X - X_0)`).

    Parameters
    ----------
    values : array_like, shape (n_rvs,)
        The point; a scalar is one value. Samples keep its dtype, as in qinfer.
    """

    def __init__(self, values):
        self._values = np.atleast_1d(np.array(values))[np.newaxis, :]
        if self._values.ndim != 2:
            raise ValueError(f"values must be one value per variable (1-d), got shape {np.shape(values)}")

    @property
    def n_rvs(self) -> int:
        """int : Number of values."""
        return self._values.shape[1]

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """``n`` copies of the point, shape ``(n, n_rvs)``; ``rng`` is not used."""
        return np.repeat(self._values, n, axis=0)


class NormalDistribution(Distribution):
    """A univariate normal distribution, possibly truncated.

    Parameters
    ----------
    mean : float
    var : float
        Variance (not standard deviation).
    trunc : (float, float) or None, optional
        ``(low, high)``: the density is cut to that interval and
        renormalised. None (default): not truncated.
    """

    def __init__(self, mean: float, var: float, trunc=None):
        self.mean = float(mean)
        self.var = float(var)
        self.trunc = None if trunc is None else tuple(float(t) for t in trunc)
        if self.trunc is not None and (len(self.trunc) != 2 or not self.trunc[0] < self.trunc[1]):
            raise ValueError(f"trunc must be (low, high) with low < high, got {trunc!r}")

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`).

        Untruncated, ``mean + sqrt(var) * z`` with ``z`` standard normal (as
        qinfer). Truncated, by inverting the distribution function on the
        interval.
        """
        rng = random_source(rng)
        sigma = np.sqrt(self.var)
        if self.trunc is None:
            return self.mean + sigma * rng.standard_normal((n, 1))
        a, b = ((t - self.mean) / sigma for t in self.trunc)
        return self.mean + sigma * _truncated_standard_normal(a, b, rng.random((n, 1)))

    def grad_log_pdf(self, x):
        """The gradient of the log density, ``-(x - mean) / var``."""
        return -(np.asarray(x) - self.mean) / self.var


def _truncated_standard_normal(a: float, b: float, u: np.ndarray) -> np.ndarray:
    """The standard normal cut to ``[a, b]`` at the uniforms ``u``, by its inverse distribution function.

    An interval right of zero is mirrored to the left, where the distribution
    function is small and keeps its precision (``u`` maps to the same point:
    the quantile ``u`` on ``[a, b]`` is minus the quantile ``1 - u`` on ``[-b, -a]``).
    """
    if a > 0:
        return -_truncated_standard_normal(-b, -a, 1 - u)
    lo, hi = norm_cdf(a), norm_cdf(b)
    return np.clip(norm_ppf(lo + u * (hi - lo)), a, b)


class MultivariateNormalDistribution(Distribution):
    """A multivariate normal distribution.

    Parameters
    ----------
    mean : array_like, shape (n_rvs,)
    cov : array_like, shape (n_rvs, n_rvs)
        Symmetric positive-semidefinite covariance matrix.

    Raises
    ------
    numpy.linalg.LinAlgError
        When ``cov`` has a negative eigenvalue.
    """

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.cov = np.asarray(cov, dtype=np.float64)
        if self.cov.shape != (self.mean.size, self.mean.size):
            raise ValueError(
                f"cov must have shape {(self.mean.size,) * 2}, got {self.cov.shape}"
            )
        values, vectors = np.linalg.eigh(self.cov)
        if not np.all(np.isfinite(values)) or values.min() < -1e-12 * max(1.0, abs(values).max()):
            raise np.linalg.LinAlgError("cov must be symmetric positive semidefinite")
        # The symmetric square root, as qinfer's (scipy.linalg.sqrtm): its samples are qinfer's to rounding.
        self._root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    @property
    def n_rvs(self) -> int:
        """int : Dimension of ``mean``."""
        return self.mean.size

    @property
    def invcov(self) -> np.ndarray:
        """numpy.ndarray : The inverse of ``cov``."""
        return np.linalg.inv(self.cov)

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples, ``S z + mean`` with ``S`` the symmetric square root of ``cov``.

        See :meth:`Distribution.sample`.
        """
        z = random_source(rng).standard_normal((n, self.n_rvs))
        return np.einsum("ij,nj->ni", self._root, z) + self.mean

    def grad_log_pdf(self, x):
        """The gradient of the log density, ``-cov^{-1} (x - mean)``, one row per point of ``x``."""
        return -(np.asarray(x) - self.mean) @ self.invcov.T


class SlantedNormalDistribution(Distribution):
    """A uniform box blurred by normal noise: ``X + Y`` with ``X`` uniform on ``ranges`` and ``Y ~ N(0, weight**2)``.

    Parameters
    ----------
    ranges : array_like, shape (2,) or (n_rvs, 2), optional
        ``[lo, hi]`` per variable (default ``[[0, 1]]``).
    weight : float, optional
        Standard deviation of the noise (default 0.01).
    """

    def __init__(self, ranges=((0.0, 1.0),), weight=0.01):
        ranges = np.asarray(ranges, dtype=np.float64)
        if ranges.ndim == 1:
            ranges = ranges[np.newaxis, :]
        if ranges.ndim != 2 or ranges.shape[1] != 2:
            raise ValueError(f"ranges must have shape (2,) or (n, 2), got {ranges.shape}")
        self._ranges = ranges
        self._delta = ranges[:, 1] - ranges[:, 0]
        self._weight = float(weight)

    @property
    def n_rvs(self) -> int:
        """int : Number of rows of ``ranges``."""
        return self._ranges.shape[0]

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples: the noise first, then the box (qinfer's order; see :meth:`Distribution.sample`)."""
        rng = random_source(rng)
        noise = rng.standard_normal((n, self.n_rvs))
        box = rng.random((n, self.n_rvs))
        return self._ranges[:, 0] + self._weight * noise + box * self._delta


class LogNormalDistribution(Distribution):
    r"""qinfer's log-normal distribution: :math:`X = \mu + \sigma e^{Z}` with :math:`Z` standard normal.

    As in qinfer, ``mu`` is a location (a shift) and ``sigma`` a scale: this
    is SciPy's ``lognorm(1, loc=mu, scale=sigma)``, not the textbook
    :math:`e^{\mu + \sigma Z}`.

    Parameters
    ----------
    mu : float, optional
        Location (default 0).
    sigma : float, optional
        Scale, positive (default 1).
    """

    def __init__(self, mu=0, sigma=1):
        self.mu = mu
        self.sigma = sigma

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        z = random_source(rng).standard_normal(n)
        return (np.exp(z) * self.sigma + self.mu)[:, np.newaxis]


class BetaDistribution(Distribution):
    r"""The beta distribution on [0, 1], density proportional to :math:`x^{\alpha-1}(1-x)^{\beta-1}`.

    Give ``alpha`` and ``beta``, or ``mean`` and ``var``.

    Parameters
    ----------
    alpha, beta : float, optional
        Shape parameters.
    mean, var : float, optional
        Mean and variance (then ``alpha`` and ``beta`` follow).

    Attributes
    ----------
    alpha, beta, mean, var : float
    """

    def __init__(self, alpha=None, beta=None, mean=None, var=None):
        if alpha is not None and beta is not None:
            self.alpha, self.beta = alpha, beta
            self.mean = alpha / (alpha + beta)
            self.var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
        elif mean is not None and var is not None:
            self.mean, self.var = mean, var
            self.alpha = mean**2 * (1 - mean) / var - mean
            self.beta = (1 - mean) ** 2 * mean / var - (1 - mean)
        else:
            raise ValueError("BetaDistribution requires either (alpha and beta) or (mean and var).")

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        return random_source(rng).beta(self.alpha, self.beta, n)[:, np.newaxis]


class DirichletDistribution(Distribution):
    r"""The Dirichlet distribution, density proportional to :math:`\prod_i x_i^{\alpha_i - 1}` on the simplex.

    Parameters
    ----------
    alpha : array_like, shape (n_rvs,)
        Concentration parameters.
    """

    def __init__(self, alpha):
        self._alpha = np.array(alpha)
        if self._alpha.ndim != 1:
            raise ValueError("The input alpha must be a 1D list of concentration parameters.")

    @property
    def alpha(self) -> np.ndarray:
        """numpy.ndarray : The concentration parameters."""
        return self._alpha

    @property
    def n_rvs(self) -> int:
        """int : Number of concentration parameters."""
        return self._alpha.size

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` points of the simplex (see :meth:`Distribution.sample`)."""
        return random_source(rng).dirichlet(self._alpha, size=n)


class BetaBinomialDistribution(Distribution):
    r"""The beta-binomial distribution: binomial counts of ``n`` trials whose bias is beta-distributed.

    Its probability at :math:`k` is :math:`\binom{n}{k} B(k+\alpha, n-k+\beta) / B(\alpha, \beta)`.
    Give ``alpha`` and ``beta``, or ``mean`` and ``var``.

    Parameters
    ----------
    n : int
        Number of trials.
    alpha, beta : float, optional
        Shape parameters of the bias.
    mean, var : float, optional
        Mean and variance of the counts.
    """

    def __init__(self, n, alpha=None, beta=None, mean=None, var=None):
        self.n = n
        if alpha is not None and beta is not None:
            self.alpha, self.beta = alpha, beta
            self.mean = n * alpha / (alpha + beta)
            self.var = n * alpha * beta * (alpha + beta + n) / ((alpha + beta) ** 2 * (alpha + beta + 1))
        elif mean is not None and var is not None:
            self.mean, self.var = mean, var
            self.alpha = -mean * (var + mean**2 - n * mean) / (mean**2 + n * (var - mean))
            self.beta = (n - mean) * (var + mean**2 - n * mean) / ((n - mean) * mean - n * var)
        else:
            raise ValueError("BetaBinomialDistribution requires either (alpha and beta) or (mean and var).")

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` counts, integers of shape ``(n, 1)``: a bias each, then its count.

        See :meth:`Distribution.sample`.
        """
        rng = random_source(rng)
        bias = rng.beta(self.alpha, self.beta, n)[:, np.newaxis]
        return rng.binomial(self.n, bias)


class GammaDistribution(Distribution):
    r"""The gamma distribution of shape :math:`\alpha` and rate :math:`\beta`.

    Its density is proportional to :math:`x^{\alpha-1}e^{-\beta x}`. Give ``alpha`` and ``beta``,
    or ``mean`` and ``var``.

    Parameters
    ----------
    alpha : float, optional
        Shape.
    beta : float, optional
        Rate (the inverse scale).
    mean, var : float, optional
        Mean and variance (then ``alpha = mean**2 / var``, ``beta = mean / var``).
    """

    def __init__(self, alpha=None, beta=None, mean=None, var=None):
        if alpha is not None and beta is not None:
            self.alpha, self.beta = alpha, beta
            self.mean, self.var = alpha / beta, alpha / beta**2
        elif mean is not None and var is not None:
            self.mean, self.var = mean, var
            self.alpha, self.beta = mean**2 / var, mean / var
        else:
            raise ValueError("GammaDistribution requires either (alpha and beta) or (mean and var).")

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        return random_source(rng).standard_gamma(self.alpha, n)[:, np.newaxis] / self.beta


#: The Pauli matrices X, Y, Z: the Bloch coordinates of a qubit state rho are tr(rho P).
_PAULIS = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])


def _bloch_of_states(psi: np.ndarray) -> np.ndarray:
    """The Bloch vectors ``(x, y, z)`` of pure qubit states, one per row of ``psi`` (shape ``(n, 2)``)."""
    return np.real(np.einsum("ni,pij,nj->np", psi.conj(), _PAULIS, psi))


def _check_qubit(name: str, dim) -> None:
    if dim != 2:
        raise ValueError(f"{name} is for qubits only (dim=2), as in qinfer; got dim={dim!r}")


class HaarUniform(Distribution):
    """Pure qubit states drawn from the Haar measure, as their Bloch vectors ``(x, y, z)`` (qinfer's ``HaarUniform``).

    Each sample applies a Haar-random unitary (the QR decomposition of a
    complex Gaussian matrix, its phases fixed) to ``|0>``; the Bloch
    vectors are then uniform on the unit sphere.

    Parameters
    ----------
    dim : int, optional
        The dimension of the state space; only 2 is supported, as in qinfer.
    """

    def __init__(self, dim=2):
        _check_qubit("HaarUniform", dim)
        self.dim = dim

    @property
    def n_rvs(self) -> int:
        """int : Always 3."""
        return 3

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` Bloch vectors (see :meth:`Distribution.sample`).

        Per sample, a real then an imaginary 2 x 2 block of standard normals
        (qinfer's order of draws).
        """
        normals = random_source(rng).standard_normal((n, 2, 2, 2))
        z = (normals[:, 0] + 1j * normals[:, 1]) / np.sqrt(2.0)
        q, r = np.linalg.qr(z)
        diagonal = np.diagonal(r, axis1=1, axis2=2)
        # U = q diag(phases); U|0> is its first column, q[:, :, 0] times the first phase.
        psi = q[:, :, 0] * (diagonal[:, :1] / np.abs(diagonal[:, :1]))
        return _bloch_of_states(psi)


class GinibreUniform(Distribution):
    """Qubit density operators from the Ginibre ensemble of rank ``k``, as Bloch vectors (qinfer's ``GinibreUniform``).

    Each sample is ``rho = G G^dagger / tr(G G^dagger)`` for a ``dim x k``
    complex Gaussian ``G``; ``k = 2`` gives the Hilbert--Schmidt measure on
    the Bloch ball.

    Parameters
    ----------
    dim : int, optional
        The dimension of the state space; only 2 is supported, as in qinfer.
    k : int, optional
        Columns of ``G`` (default 2).
    """

    def __init__(self, dim=2, k=2):
        _check_qubit("GinibreUniform", dim)
        self.dim = dim
        self.k = int(k)

    @property
    def n_rvs(self) -> int:
        """int : Always 3."""
        return 3

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` Bloch vectors: per sample a real, then an imaginary ``dim x k`` block of normals.

        See :meth:`Distribution.sample`.
        """
        normals = random_source(rng).standard_normal((n, 2, self.dim, self.k))
        g = normals[:, 0] + 1j * normals[:, 1]
        rho = g @ np.conj(np.swapaxes(g, 1, 2))
        rho /= np.trace(rho, axis1=1, axis2=2)[:, np.newaxis, np.newaxis]
        return np.real(np.einsum("nij,pji->np", rho, _PAULIS))


class PostselectedDistribution(Distribution):
    """A distribution conditioned on validity under a model: invalid samples are redrawn.

    Parameters
    ----------
    distribution : Distribution
    model : Model
        Its ``are_models_valid(samples)`` decides.
    maxiters : int, optional
        Rounds of redrawing before giving up (default 100).
    """

    def __init__(self, distribution, model, maxiters=100):
        self._dist = distribution
        self._model = model
        self._maxiters = int(maxiters)

    @property
    def n_rvs(self) -> int:
        """int : The underlying distribution's."""
        return self._dist.n_rvs

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` valid samples (see :meth:`Distribution.sample`).

        Raises
        ------
        RuntimeError
            When some are still invalid after ``maxiters`` rounds.
        """
        rng = random_source(rng)
        samples = np.empty((n, self.n_rvs))
        todo = np.arange(n)
        for _ in range(self._maxiters):
            if not todo.size:
                break
            samples[todo] = draw(self._dist, todo.size, rng)
            valid = np.asarray(self._model.are_models_valid(samples[todo, :]), dtype=bool).reshape(-1)
            todo = todo[~valid]
        if todo.size:
            raise RuntimeError(f"Did not successfully postselect within {self._maxiters} iterations.")
        return samples

    def grad_log_pdf(self, x):
        """The underlying distribution's ``grad_log_pdf``."""
        return self._dist.grad_log_pdf(x)


class ConstrainedSumDistribution(Distribution):
    """Samples of an underlying distribution, each rescaled to sum to ``desired_total``.

    A sample ``x`` with sum ``t`` becomes ``desired_total * sign(t) * x / t``
    (qinfer's rule): it sums to ``desired_total``, or to ``-desired_total``
    where ``t`` is negative.

    Parameters
    ----------
    underlying_distribution : Distribution
    desired_total : float, optional
        Default 1.
    """

    def __init__(self, underlying_distribution, desired_total=1):
        super().__init__()
        self._ud = underlying_distribution
        self.desired_total = desired_total

    @property
    def underlying_distribution(self):
        """Distribution : The distribution sampled before rescaling."""
        return self._ud

    @property
    def n_rvs(self) -> int:
        """int : The underlying distribution's."""
        return self._ud.n_rvs

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`)."""
        s = draw(self._ud, n, random_source(rng))
        totals = np.sum(s, axis=1)[:, np.newaxis]
        return self.desired_total * np.sign(totals) * s / totals


def _trapezoids(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The areas of the trapezoids under ``y`` between neighbouring points of ``x``."""
    return np.diff(x) * (y[1:] + y[:-1]) / 2.0


class InterpolatedUnivariateDistribution(Distribution):
    """A univariate distribution given by its density: uniforms through the interpolated inverse CDF.

    The density is evaluated at ``n_interp_points`` points spread over the
    real line by :func:`~mpi_qinfer.models.utils.compactspace`, normalised
    and integrated (trapezoidal rule); a sample is a uniform number mapped
    through the piecewise-linear inverse of that CDF.

    Parameters
    ----------
    pdf : callable
        Vectorised: ``pdf(x)`` for an array ``x``.
    compactification_scale : float, optional
        Scale of the spread of points (default 1): about the width of the
        distribution.
    n_interp_points : int, optional
        Default 1500.
    """

    def __init__(self, pdf, compactification_scale=1, n_interp_points=1500):
        self._pdf = pdf
        self._xs = compactspace(compactification_scale, n_interp_points)
        densities = np.asarray(pdf(self._xs), dtype=np.float64)
        norm = np.sum(_trapezoids(densities, self._xs))
        self._cdfs = np.concatenate([[0.0], np.cumsum(_trapezoids(densities / norm, self._xs))])

    @property
    def n_rvs(self) -> int:
        """int : Always 1."""
        return 1

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` samples (see :meth:`Distribution.sample`); NaN for a uniform beyond the last CDF point."""
        u = random_source(rng).random(n)
        values = np.interp(u, self._cdfs, self._xs, left=math.nan, right=math.nan)
        return values[:, np.newaxis]

