"""The few special functions the distributions and region estimates need, with NumPy and :mod:`math` only.

mpi_qinfer does not depend on SciPy; these are accurate to a few units in
the last place for the arguments the package gives them (the tests compare
them with SciPy where it is installed).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gammaln", "norm_cdf", "norm_sf", "norm_ppf", "regularized_gamma_p", "chi2_ppf"]

def _lgamma_or_inf(x: float) -> float:
    try:
        return math.lgamma(x)
    except ValueError:  # a pole (0, -1, -2, ...): Gamma is infinite there
        return math.inf


_lgamma = np.frompyfunc(_lgamma_or_inf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def gammaln(x) -> np.ndarray:
    """``log |Gamma(x)|``, elementwise (as ``scipy.special.gammaln``).

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    numpy.ndarray of float64, the shape of ``x`` (a 0-d array for a scalar)
    """
    return np.asarray(_lgamma(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def norm_cdf(x) -> np.ndarray:
    """The standard normal distribution function, elementwise."""
    return 0.5 * np.asarray(_erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2)), dtype=np.float64)


def norm_sf(x) -> np.ndarray:
    """The standard normal survival function ``1 - cdf(x)``, accurate in the upper tail."""
    return 0.5 * np.asarray(_erfc(np.asarray(x, dtype=np.float64) / math.sqrt(2)), dtype=np.float64)


# Coefficients of P. J. Acklam's rational approximation of the normal quantile (relative error 1.2e-9),
# refined below by Halley steps on the exact distribution function.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _polynomial(coefficients, x):
    value = np.zeros_like(x)
    for c in coefficients:
        value = value * x + c
    return value


def norm_ppf(p) -> np.ndarray:
    """The standard normal quantile function, elementwise; ``-inf``/``inf`` at 0/1, NaN outside [0, 1]."""
    p = np.asarray(p, dtype=np.float64)
    x = np.full(p.shape, np.nan)
    low, high = p < 0.02425, p > 1 - 0.02425
    mid = ~low & ~high & (p > 0) & (p < 1)
    q = p[mid] - 0.5
    r = q * q
    x[mid] = q * _polynomial(_A, r) / (_polynomial(_B, r) * r + 1)
    for mask, sign, tail in ((low & (p > 0), 1.0, p), (high & (p < 1), -1.0, 1 - p)):
        t = np.sqrt(-2 * np.log(tail[mask]))
        x[mask] = sign * _polynomial(_C, t) / (_polynomial(_D, t) * t + 1)
    x[p == 0], x[p == 1] = -np.inf, np.inf
    finite = np.isfinite(x)
    lower = finite & (p <= 0.5)
    for _ in range(2):  # Halley's method on the cdf (or, in the upper half, the survival function)
        xf = x[finite]
        error = np.where(lower[finite], norm_cdf(xf) - p[finite], (1 - p[finite]) - norm_sf(xf))
        u = error * math.sqrt(2 * math.pi) * np.exp(xf * xf / 2)
        x[finite] = xf - u / (1 + xf * u / 2)
    return x


def _gamma_series(a: float, x: float, log_prefactor: float) -> float:
    """``P(a, x)`` by its power series (converges fast below ``x = a + 1``)."""
    term = total = 1.0 / a
    n = a
    while abs(term) > abs(total) * 1e-17:
        n += 1
        term *= x / n
        total += term
    return min(1.0, total * math.exp(log_prefactor))


def _gamma_continued_fraction(a: float, x: float, log_prefactor: float) -> float:
    """``Q(a, x) = 1 - P(a, x)`` by its continued fraction, by the modified Lentz method (above ``x = a + 1``)."""
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def regularized_gamma_p(a: float, x: float, upper: bool = False) -> float:
    """The regularised lower incomplete gamma function ``P(a, x)`` for ``a > 0``, ``x >= 0``.

    With ``upper=True`` the upper one, ``Q(a, x) = 1 - P(a, x)``, computed
    without cancellation where it is small. A power series below
    ``x = a + 1``, a continued fraction above, as in the standard treatments.
    """
    if x <= 0:
        return 1.0 if upper else 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        p = _gamma_series(a, x, log_prefactor)
        return 1.0 - p if upper else p
    q = _gamma_continued_fraction(a, x, log_prefactor)
    return q if upper else 1.0 - q


def chi2_ppf(q: float, k: float) -> float:
    """The ``q`` quantile of the chi-squared distribution with ``k`` degrees of freedom.

    The root of ``P(k/2, x/2) = q`` (of ``Q(k/2, x/2) = 1 - q`` in the upper
    half, where ``P`` is too close to one to resolve ``x``), bracketed and
    then bisected down to neighbouring floats.

    Raises
    ------
    ValueError
        For ``q`` outside [0, 1] or ``k <= 0``.
    """
    q, k = float(q), float(k)
    if not 0 <= q <= 1:
        raise ValueError(f"the level must be in [0, 1], got {q!r}")
    if not k > 0:
        raise ValueError(f"the degrees of freedom must be positive, got {k!r}")
    if q == 0:
        return 0.0
    if q == 1:
        return math.inf
    a = k / 2
    if q <= 0.5:
        def below(x):  # is x below the quantile?
            return regularized_gamma_p(a, x / 2) < q
    else:
        tail = 1.0 - q

        def below(x):
            return regularized_gamma_p(a, x / 2, upper=True) > tail
    lo, hi = 0.0, max(1.0, k)
    while below(hi):
        lo, hi = hi, 2 * hi
    for _ in range(2000):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if below(mid):
            lo = mid
        else:
            hi = mid
    return hi
