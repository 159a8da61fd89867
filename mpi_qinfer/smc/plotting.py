"""Plots of an updater's posterior with matplotlib, which is imported only when a plot is drawn.

matplotlib is the optional ``plot`` extra (``pip install 'mpi_qinfer[plot]'``);
without it these functions raise :class:`ImportError` saying so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_posterior_marginal", "plot_contour", "plot_hinton"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install 'mpi_qinfer[plot]'"
        ) from exc
    return plt


def plot_posterior_marginal(updater, idx_param: int = 0, res: int = 100, smoothing: float = 0,
                            range_min: float | None = None, range_max: float | None = None, *,
                            label_xaxis: bool = True, other_plot_args: dict | None = None,
                            true_model=None, ax=None):
    """Plot the marginal density of one parameter of ``updater``'s posterior.

    Parameters
    ----------
    updater : SMCUpdater
    idx_param, res, smoothing, range_min, range_max
        As for :meth:`~mpi_qinfer.smc.updater.SMCUpdater.posterior_marginal`.
    label_xaxis : bool, optional
        Label the x axis with the model's ``modelparam_names`` entry (as
        LaTeX), when the model has names.
    other_plot_args : dict or None, optional
        Keyword arguments of matplotlib's ``Axes.plot``.
    true_model : numpy.ndarray or None, optional
        A parameter vector, shape ``(n_modelparams,)`` or ``(1, n_modelparams)``,
        whose entry ``idx_param`` is marked with a dashed vertical line.
    ax : matplotlib.axes.Axes or None, optional
        Where to draw; None uses ``matplotlib.pyplot.gca()``.

    Returns
    -------
    list of matplotlib.lines.Line2D
        The marginal's line.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    grid, density = updater.posterior_marginal(idx_param, res, smoothing, range_min, range_max)
    if ax is None:
        ax = _pyplot().gca()
    lines = ax.plot(grid, density, **(other_plot_args or {}))
    names = getattr(updater.model, "modelparam_names", None)
    if label_xaxis and names:
        ax.set_xlabel(f"${names[idx_param]}$")
    if true_model is not None:
        true_model = np.asarray(true_model)
        value = true_model[0, idx_param] if true_model.ndim == 2 else true_model[idx_param]
        bottom, top = ax.get_ylim()
        ax.vlines(value, bottom, top, colors="k", linestyles="--")
        ax.set_ylim(bottom, top)
    return lines


def plot_contour(mesh, ax=None):
    """Contour lines of a density on a grid (as :meth:`~mpi_qinfer.smc.updater.SMCUpdater.posterior_mesh` gives).

    Parameters
    ----------
    mesh : (p1s, p2s, density)
        Three arrays of the same shape.
    ax : matplotlib.axes.Axes or None, optional
        Where to draw; None uses ``matplotlib.pyplot.gca()``.

    Returns
    -------
    matplotlib.contour.QuadContourSet

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    if ax is None:
        ax = _pyplot().gca()
    return ax.contour(*mesh)


def plot_hinton(matrix, tick_labels, tick_params=None, ax=None):
    """A Hinton diagram: a square per entry, its area the entry's magnitude, white if positive, black if negative.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (n, n)
    tick_labels : list of str
        One label per row (and column), drawn on the top and left axes.
    tick_params : dict or None, optional
        Keyword arguments of matplotlib's ``set_xticks``/``set_yticks`` label text.
    ax : matplotlib.axes.Axes or None, optional
        Where to draw; None uses ``matplotlib.pyplot.gca()``.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    if ax is None:
        ax = _pyplot().gca()
    from matplotlib.patches import Rectangle

    matrix = np.asarray(matrix, dtype=np.float64)
    largest = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    ax.set_facecolor("gray")
    ax.set_aspect("equal", "box")
    for (row, column), value in np.ndenumerate(matrix):
        side = np.sqrt(abs(value) / largest) if largest > 0 else 0.0
        ax.add_patch(Rectangle((column - side / 2, row - side / 2), side, side,
                               facecolor="white" if value > 0 else "black", edgecolor="none"))
    n = matrix.shape[0]
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)  # row 0 at the top, as the matrix is written
    positions = list(range(n))
    ax.set_xticks(positions, list(tick_labels), **(tick_params or {}))
    ax.set_yticks(positions, list(tick_labels), **(tick_params or {}))
    ax.xaxis.tick_top()
    return ax
