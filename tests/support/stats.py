"""Acceptance rules for tests about stochastic runs, taken from the statistics, not from one run.

One run's trajectory depends on the machine (NumPy's SIMD kernels and the BLAS change the last bits,
and SMC amplifies them), so a bound tuned on one trajectory fails on another machine. A test about
what an estimator *does* runs it over several independent seeds and asks for what most runs must
show; the number of runs and the allowed misses are chosen so that a correct estimator fails the
test with a probability below about 1e-4 (:func:`binomial_tail`, with per-run rates measured over
hundreds of seeds and written beside each test).
"""

from __future__ import annotations

from math import comb

import numpy as np


def binomial_tail(n: int, k: int, p: float) -> float:
    """Probability of at least ``k`` events in ``n`` independent trials of probability ``p``."""
    return sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def posterior_checks(runs, prior_sd, *, shrink=100.0, n_sigma=3.0, max_misses=3):
    """Assert that runs of an estimator learned their truths; return (sigmas, misses).

    Parameters
    ----------
    runs : iterable of (estimate, sigma, truth)
        One triple per independent seed (one parameter).
    prior_sd : float
        The prior's standard deviation: "learned" means the median posterior width fell below
        ``prior_sd / shrink``.
    n_sigma, max_misses : float, int
        At most ``max_misses`` runs may have the truth outside ``n_sigma`` posterior widths (a
        particle posterior's coverage is not exactly Gaussian, and adaptive designs over-shrink
        now and then).
    """
    runs = [(float(e), float(s), float(t)) for e, s, t in runs]
    sigmas = np.array([s for _, s, _ in runs])
    misses = sum(abs(e - t) > n_sigma * s for e, s, t in runs)
    assert np.median(sigmas) < prior_sd / shrink, (sigmas, prior_sd / shrink)
    assert misses <= max_misses, runs
    return sigmas, misses
