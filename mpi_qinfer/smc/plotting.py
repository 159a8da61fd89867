"""Plots of an updater's posterior with matplotlib, which is imported only when a plot is drawn.

matplotlib is the optional ``plot`` extra (``pip install 'mpi_qinfer[plot]'``);
without it these functions raise :class:`ImportError` saying so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_posterior_marginal"]


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
