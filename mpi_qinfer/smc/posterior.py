"""Summaries of a weighted particle cloud: entropy, credible regions and marginal densities.

Plain functions of ``(weights, locations)``, so that they serve
:class:`~mpi_qinfer.smc.updater.SMCUpdater` and any other particle approximation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["entropy", "credible_region", "marginal", "check_marginal_arguments", "gaussian_smooth"]


def entropy(weights) -> float:
    r"""The entropy :math:`-\sum_i w_i \log w_i` of particle weights, zero weights omitted.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_particles,)

    Returns
    -------
    float
    """
    weights = np.asarray(weights, dtype=np.float64)
    nonzero = weights[weights > 0]
    return float(-np.sum(np.log(nonzero) * nonzero))


def credible_region(weights, locations, level: float = 0.95, *, return_outside: bool = False,
                    modelparam_slice=None):
    """The particles of a credible region of at least ``level``: the heaviest first.

    Particles are taken in order of decreasing weight (ties in index order)
    until their total weight first reaches ``level``; that last particle is
    included, so the region's probability is at least ``level`` (qinfer's
    ``est_credible_region``, which also takes the next particle when the
    total equals ``level`` exactly; ``level=1`` takes every particle).

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_particles,)
    locations : numpy.ndarray, shape (n_particles, n_modelparams)
    level : float, optional
        Credibility, in (0, 1] (default 0.95).
    return_outside : bool, optional
        Also return the particles outside the region.
    modelparam_slice : slice or None, optional
        Which parameters (columns) to return; None returns all.

    Returns
    -------
    inside : numpy.ndarray, shape (n_credible, n_selected_params)
        Heaviest first.
    outside : numpy.ndarray, shape (n_particles - n_credible, n_selected_params)
        Only with ``return_outside=True``.
    """
    level = float(level)
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    weights = np.asarray(weights, dtype=np.float64)
    locations = np.asarray(locations)
    params = locations[:, slice(None) if modelparam_slice is None else modelparam_slice]
    order = np.argsort(-weights, kind="stable")
    reached = np.cumsum(weights[order]) >= level
    # The first particle at which the level is reached closes the region; rounding may leave a
    # total just under 1, in which case every particle is inside.
    n_inside = int(np.argmax(reached)) + 1 if reached.any() else order.size
    inside = params[order[:n_inside]]
    if return_outside:
        return inside, params[order[n_inside:]]
    return inside


def gaussian_smooth(values, sigma: float) -> np.ndarray:
    """Convolve equally spaced ``values`` with a Gaussian of ``sigma`` samples, reflecting at the ends.

    The kernel is cut at four standard deviations and normalised, with the
    edges mirrored half a sample out (``d c b a | a b c d | d c b a``), as
    :func:`scipy.ndimage.gaussian_filter1d` does by default.

    Parameters
    ----------
    values : numpy.ndarray, shape (n,)
    sigma : float
        Standard deviation in samples; 0 returns a copy.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma!r}")
    if sigma == 0 or values.size == 0:
        return values.copy()
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    # Reflect as often as needed: the kernel may be wider than the data.
    padded = values
    while padded.size - values.size < 2 * radius:
        padded = np.concatenate([padded[::-1], padded, padded[::-1]])
    start = (padded.size - values.size) // 2 - radius
    padded = padded[start:start + values.size + 2 * radius]
    return np.convolve(padded, kernel, mode="valid")


def check_marginal_arguments(n_params: int, idx_param: int, res: int, smoothing: float) -> int:
    """Check the arguments of :func:`marginal` that do not depend on the particles; return ``res`` as an int.

    Raises
    ------
    ValueError
        For fewer than two grid points, a negative ``smoothing`` or an
        ``idx_param`` that indexes none of the ``n_params`` parameters.
    """
    res = int(res)
    if res < 2:
        raise ValueError(f"res must be at least 2, got {res}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be non-negative, got {smoothing!r}")
    if not -n_params <= idx_param < n_params:
        raise ValueError(f"idx_param must index one of the {n_params} model parameters, got {idx_param}")
    return res


def marginal(weights, locations, idx_param: int = 0, res: int = 100, *, smoothing: float = 0,
             range_min: float | None = None, range_max: float | None = None):
    """The marginal density of one parameter: the derivative of its interpolated CDF.

    The particles' cumulative weight along parameter ``idx_param`` is
    interpolated linearly on a grid of ``res`` points (zero left of the
    smallest particle, reaching one half a range right of the largest) and
    differentiated with :func:`numpy.gradient`; ``smoothing`` then convolves
    the density with a Gaussian of that standard deviation, in the
    parameter's units (qinfer's ``posterior_marginal``).

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_particles,)
    locations : numpy.ndarray, shape (n_particles, n_modelparams)
    idx_param : int, optional
        Which parameter (default 0).
    res : int, optional
        Grid points, at least 2 (default 100).
    smoothing : float, optional
        Standard deviation of the Gaussian smoothing, in parameter units
        (default 0: none).
    range_min, range_max : float or None, optional
        Grid ends; None takes the smallest and largest particle.

    Returns
    -------
    grid : numpy.ndarray, shape (res,)
    density : numpy.ndarray, shape (res,)
    """
    weights = np.asarray(weights, dtype=np.float64)
    locations = np.asarray(locations, dtype=np.float64)
    res = check_marginal_arguments(locations.shape[1], idx_param, res, smoothing)
    order = np.argsort(locations[:, idx_param])
    values = locations[order, idx_param]
    lo = values[0] if range_min is None else float(range_min)
    hi = values[-1] if range_max is None else float(range_max)
    if not hi > lo:
        raise ValueError(f"the grid range is empty ({lo} to {hi}); give range_min < range_max")
    grid = np.linspace(lo, hi, res)
    knots = np.append(values, hi + abs(hi - lo))
    cdf = np.append(np.cumsum(weights[order]), 1.0)
    density = np.gradient(np.interp(grid, knots, cdf, left=0.0, right=0.0), grid[1] - grid[0])
    if smoothing > 0:
        density = gaussian_smooth(density, res * smoothing / abs(hi - lo))
    return grid, density
