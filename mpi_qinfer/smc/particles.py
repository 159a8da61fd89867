"""Weighted particle clouds: qinfer's ``ParticleDistribution`` and the estimates every particle cloud offers.

:class:`ParticleEstimates` holds the estimates that need only the cloud and
the class's own mean, covariance and credible region (qinfer's
``est_meanfn``, ``est_kl_divergence``, ``est_cluster_moments``, ``est_cluster_covs``,
``est_cluster_metric``, ``region_est_hull``, ``region_est_ellipsoid``,
``in_credible_region``); it is shared by
:class:`ParticleDistribution`, :class:`~mpi_qinfer.smc.updater.SMCUpdater`
and :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater`, so the
three answer alike. :class:`UpdaterEstimates` adds what needs an updater's
model (``risk``) and qinfer's two-parameter posterior mesh and plots.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..models.distributions import Distribution
from ..models.utils import particle_covariance_mtx, random_source
from .posterior import credible_region, entropy
from .regions import ellipsoid_region, hull_region, in_region

__all__ = ["ParticleEstimates", "UpdaterEstimates", "ParticleDistribution", "kl_divergence", "mesh_density"]

#: Largest number of (row, particle) pairs a divergence or a mesh holds at once.
_CHUNK_ENTRIES = 1 << 22


def _standard_normal_pdf(x):
    return np.exp(-(x**2) / 2.0) / math.sqrt(2 * math.pi)


def _draw_indices(weights: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` indices drawn with probabilities ``weights`` (which sum to one), by inverting their cumulative sum."""
    cumsum = np.cumsum(weights)
    # Rounding can leave cumsum[-1] a hair below one; never index past the end.
    return np.minimum(cumsum.searchsorted(rng.random(n), side="right"), weights.size - 1)


def kl_divergence(weights, locations, other_weights, other_locations, *, scale=1.0, kernel=None, delta=1e-2):
    r"""qinfer's estimate of the Kullback--Leibler divergence of one particle cloud from another.

    The second cloud is smoothed with ``kernel`` (standard normal by
    default) of width ``delta`` over the distances
    :math:`d_{ij} = \lVert \sqrt{Q} (x_i - y_j) \rVert`:
    :math:`-H(w) - \frac{1}{\delta} \sum_i w_i \log \sum_j v_j K(d_{ij}/\delta)`,
    with :math:`H(w)` the entropy of the first cloud's weights.

    Parameters
    ----------
    weights, locations : numpy.ndarray, shapes (n,) and (n, d)
        The first cloud.
    other_weights, other_locations : numpy.ndarray, shapes (m,) and (m, d)
        The second.
    scale : float or numpy.ndarray of shape (d,), optional
        ``Q``: the squared scale of each parameter (a model's ``Q``; 1 for
        a bare particle distribution, as in qinfer).
    kernel : callable or None, optional
        Vectorised ``kernel(distance)``.
    delta : float, optional

    Returns
    -------
    float
    """
    kernel = _standard_normal_pdf if kernel is None else kernel
    weights, locations = np.asarray(weights, dtype=np.float64), np.asarray(locations, dtype=np.float64)
    other_weights = np.asarray(other_weights, dtype=np.float64)
    other_locations = np.asarray(other_locations, dtype=np.float64)
    root_q = np.sqrt(scale)
    smoothed = np.empty(locations.shape[0])
    rows = max(1, _CHUNK_ENTRIES // max(1, other_locations.shape[0] * locations.shape[1]))
    for start in range(0, locations.shape[0], rows):  # in blocks of rows: the same sums, less memory
        offsets = root_q * (locations[start:start + rows, np.newaxis, :] - other_locations[np.newaxis, :, :])
        distances = np.sqrt(np.sum(offsets**2, axis=-1)) / delta
        smoothed[start:start + rows] = np.sum(other_weights * kernel(distances), axis=1)
    return float(-entropy(weights) - (1 / delta) * np.sum(weights * np.log(smoothed), axis=0))


def mesh_density(weights, locations, idx_param1=0, idx_param2=1, res1=100, res2=100, smoothing=0.01):
    """A kernel density estimate of two parameters on a grid spanning their particles (qinfer's ``posterior_mesh``).

    Each particle contributes a product of normal densities of standard
    deviation ``smoothing`` in the two parameters, times its weight.

    Returns
    -------
    p1s, p2s : numpy.ndarray, shape (res2, res1)
        The grid, as ``numpy.meshgrid`` makes it.
    density : numpy.ndarray, shape (res2, res1)
        ``density[i, j]`` is the estimate at ``(p1s[i, j], p2s[i, j])``.
        (qinfer's array is this one's transpose, and is scrambled when
        ``res1 != res2``: it reshapes its grid in the other order.)
    """
    weights = np.asarray(weights, dtype=np.float64)
    locations = np.asarray(locations, dtype=np.float64)[:, [idx_param1, idx_param2]]
    p1s, p2s = np.meshgrid(np.linspace(locations[:, 0].min(), locations[:, 0].max(), res1),
                           np.linspace(locations[:, 1].min(), locations[:, 1].max(), res2))
    grid = np.stack([p1s.ravel(), p2s.ravel()], axis=1)
    density = np.empty(grid.shape[0])
    rows = max(1, _CHUNK_ENTRIES // max(1, 2 * locations.shape[0]))
    for start in range(0, grid.shape[0], rows):
        z = (grid[start:start + rows, np.newaxis, :] - locations) / smoothing
        kernel = _standard_normal_pdf(z) / smoothing
        density[start:start + rows] = np.sum(np.prod(kernel, axis=-1) * weights, axis=1)
    return p1s, p2s, density.reshape(p1s.shape)


def _locations_of(other):
    """``(weights, locations)`` of a particle cloud, or of a bare locations array (uniform weights)."""
    if hasattr(other, "particle_locations"):
        return np.asarray(other.particle_weights), np.asarray(other.particle_locations)
    other = np.asarray(other, dtype=np.float64)
    return np.full(other.shape[0], 1.0 / other.shape[0]), other


class ParticleEstimates:
    """Estimates of a weighted particle cloud (see the module notes).

    A class using it provides ``_cloud()`` (the weights and locations, on
    the root for a distributed cloud), ``est_mean()``,
    ``est_covariance_mtx()`` and ``est_credible_region(level,
    return_outside, modelparam_slice)``, and optionally ``_divergence_scale``
    (the ``Q`` of the distances in :meth:`est_kl_divergence`).
    """

    def _cloud(self):
        return self.particle_weights, self.particle_locations

    def _divergence_scale(self):
        return 1.0

    def est_meanfn(self, fn):
        """The posterior mean of a function of the parameters.

        Parameters
        ----------
        fn : callable
            Vectorised over particles: ``fn(locations)`` has shape ``(n_particles, ...)``.

        Returns
        -------
        numpy.ndarray, shape ``fn(locations).shape[1:]``
        """
        weights, locations = self._cloud()
        return np.einsum("i...,i...", weights, fn(locations))

    def est_kl_divergence(self, other, kernel=None, delta=1e-2):
        """qinfer's kernel estimate of the Kullback--Leibler divergence of this cloud from ``other``.

        See :func:`kl_divergence`; the distances are scaled by the model's
        ``Q`` for an updater, as in qinfer.

        Parameters
        ----------
        other : ParticleDistribution, updater or numpy.ndarray
            Another particle cloud (its weights and locations), or bare
            locations (equal weights).
        kernel : callable or None, optional
            Vectorised smoothing kernel; None: the standard normal density.
        delta : float, optional
            Kernel width (default 0.01).

        Returns
        -------
        float
        """
        weights, locations = self._cloud()
        other_weights, other_locations = _locations_of(other)
        return kl_divergence(weights, locations, other_weights, other_locations,
                             scale=self._divergence_scale(), kernel=kernel, delta=delta)

    def est_cluster_moments(self, cluster_opts=None):
        """The clusters of the cloud and their moments (qinfer's ``est_cluster_moments``).

        The clusters are :func:`~mpi_qinfer.smc.clustering.particle_clusters`'s.
        Each cluster's mean and covariance are those of its particles with their
        weights normalised within it (qinfer leaves them unnormalised), so that
        :meth:`est_cluster_covs` adds up to the covariance of the whole cloud.

        Parameters
        ----------
        cluster_opts : dict or None, optional
            Keyword arguments of ``particle_clusters`` (``eps``, ``min_particles``, ``weighted``, ...).

        Yields
        ------
        label : int
            The cluster's label (``NOISE`` for the particles in none).
        weight : float
            The cluster's total weight.
        mean : numpy.ndarray, shape (n_modelparams,)
        cov : numpy.ndarray, shape (n_modelparams, n_modelparams)
        """
        from .clustering import particle_clusters

        weights, locations = self._cloud()
        for label, members in particle_clusters(locations, weights, **(cluster_opts or {})):
            w, x = weights[members], locations[members]
            total = float(np.sum(w))
            share = w / total if total > 0 else np.full(w.size, 1.0 / w.size)
            yield label, total, share @ x, particle_covariance_mtx(share, x)

    def est_cluster_covs(self, cluster_opts=None):
        """The covariance within clusters, between them, and their sum (qinfer's ``est_cluster_covs``).

        Returns
        -------
        within, between, total : numpy.ndarray, shape (n_modelparams, n_modelparams)
            ``within`` is the weighted sum of the clusters' covariances,
            ``between`` the covariance of their means (weighted by the clusters'
            weights), ``total = within + between``.
        """
        moments = list(self.est_cluster_moments(cluster_opts))
        weights = np.array([m[1] for m in moments])
        means = np.array([m[2] for m in moments])
        covs = np.array([m[3] for m in moments])
        within = np.sum(weights[:, np.newaxis, np.newaxis] * covs, axis=0)
        between = particle_covariance_mtx(weights, means)
        return within, between, within + between

    def est_cluster_metric(self, cluster_opts=None):
        """How much of each parameter's variance the separation between clusters explains (between / total)."""
        _, between, total = self.est_cluster_covs(cluster_opts)
        return np.diag(between) / np.diag(total)

    def region_est_hull(self, level=0.95, modelparam_slice=None):
        """The convex hull of the credible region's particles (qinfer's ``region_est_hull``).

        Parameters
        ----------
        level : float, optional
            Credibility (default 0.95), as in :meth:`est_credible_region`.
        modelparam_slice : slice or None, optional
            The parameters to take (default all).

        Returns
        -------
        faces : numpy.ndarray, shape (n_faces, n_mps, n_mps)
            The vertices of each face of the hull.
        vertices : numpy.ndarray, shape (n_vertices, n_mps)
            Every vertex once.

        Raises
        ------
        ValueError
            When the credible particles span less than every chosen
            dimension (too few of them, or all in a hyperplane).
        """
        return hull_region(self.est_credible_region(level=level, modelparam_slice=modelparam_slice))

    def region_est_ellipsoid(self, level=0.95, tol=0.0001, modelparam_slice=None):
        """The smallest ellipsoid enclosing the hull of the credible region (qinfer's ``region_est_ellipsoid``).

        Parameters
        ----------
        level : float, optional
            Credibility (default 0.95).
        tol : float, optional
            Tolerance of the ellipsoid's iteration (see
            :func:`~mpi_qinfer.models.utils.mvee`).
        modelparam_slice : slice or None, optional

        Returns
        -------
        A : numpy.ndarray, shape (n_mps, n_mps)
            The ellipsoid is ``(x - c)^T A (x - c) <= 1`` (the form
            :func:`~mpi_qinfer.models.utils.mvee` returns).
        c : numpy.ndarray, shape (n_mps,)
            Its centre.
        """
        return ellipsoid_region(self.est_credible_region(level=level, modelparam_slice=modelparam_slice), tol)

    def in_credible_region(self, points, level=0.95, modelparam_slice=None, method="hpd-hull", tol=0.0001):
        """Which of ``points`` lie in a credible region (qinfer's ``in_credible_region``).

        Parameters
        ----------
        points : numpy.ndarray, shape (n_points, n_mps) or (n_mps,)
            In the parameters chosen by ``modelparam_slice``.
        level : float, optional
            Credibility (default 0.95).
        modelparam_slice : slice or None, optional
            The parameters the region is over (the others marginalised).
        method : {"hpd-hull", "hpd-mvee", "pce"}, optional
            ``"hpd-hull"`` (default): the convex hull of the credible
            particles; ``"hpd-mvee"``: the smallest ellipsoid enclosing that
            hull; ``"pce"``: the posterior covariance ellipsoid, scaled by
            the chi-squared quantile of ``level``.
        tol : float or None, optional
            Tolerance of the ``"hpd-mvee"`` iteration.

        Returns
        -------
        numpy.ndarray of bool, shape (n_points,)
            A ``numpy.bool_`` for a single point of shape (n_mps,), as in qinfer.
        """
        columns = np.s_[:] if modelparam_slice is None else modelparam_slice
        inside = in_region(
            points, method=method, level=level, tol=tol,
            credible=lambda: self.est_credible_region(level=level, modelparam_slice=modelparam_slice),
            mean=lambda: self.est_mean()[columns], cov=lambda: self.est_covariance_mtx()[columns, columns],
        )
        return inside[0] if np.ndim(points) == 1 else inside


class UpdaterEstimates(ParticleEstimates):
    """The estimates and plots of an updater beyond :class:`ParticleEstimates` (qinfer's names).

    Shared by :class:`~mpi_qinfer.smc.updater.SMCUpdater` and
    :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater`; uses
    ``self.model``, ``bayes_risk``, ``est_covariance_mtx`` and ``posterior_marginal``.
    """

    def _divergence_scale(self):
        return np.asarray(getattr(self.model, "Q", 1.0), dtype=np.float64)

    def risk(self, x0):
        """The Bayes risk of the experiment whose single experiment parameter is ``x0``.

        Shorthand for ``bayes_risk(np.array([(x0,)], dtype=model.expparams_dtype))``
        (``np.array([x0], ...)`` for a plain dtype), for models with one
        experiment parameter.

        Returns
        -------
        numpy.ndarray, shape (1,)
        """
        dtype = np.dtype(self.model.expparams_dtype)
        experiment = np.array([(x0,)], dtype=dtype) if dtype.names else np.array([x0], dtype=dtype)
        return self.bayes_risk(experiment)

    def posterior_mesh(self, idx_param1=0, idx_param2=1, res1=100, res2=100, smoothing=0.01):
        """A kernel density estimate of two parameters on a grid, for contour plots (qinfer's ``posterior_mesh``).

        See :func:`mesh_density` (which also says how it differs from
        qinfer's array).

        Parameters
        ----------
        idx_param1, idx_param2 : int, optional
            The parameters along x and y (default 0 and 1).
        res1, res2 : int, optional
            Grid points along x and y (default 100).
        smoothing : float, optional
            Standard deviation of the Gaussian kernel, in parameter units.

        Returns
        -------
        p1s, p2s, density : numpy.ndarray, shape (res2, res1)
        """
        weights, locations = self._cloud()
        return mesh_density(weights, locations, idx_param1, idx_param2, res1, res2, smoothing)

    def plot_posterior_marginal(self, idx_param: int = 0, res: int = 100, smoothing: float = 0,
                                range_min: float | None = None, range_max: float | None = None,
                                label_xaxis: bool = True, other_plot_args: dict | None = None,
                                true_model=None, ax=None):
        """Plot :meth:`posterior_marginal` with matplotlib (the ``plot`` extra; a distributed updater's root only).

        See :func:`mpi_qinfer.smc.plotting.plot_posterior_marginal`.

        Parameters
        ----------
        idx_param, res, smoothing, range_min, range_max
            As for :meth:`posterior_marginal`.
        label_xaxis : bool, optional
            Label the x axis with the model's parameter name.
        other_plot_args : dict or None, optional
            Keyword arguments of matplotlib's ``plot``.
        true_model : numpy.ndarray or None, optional
            A parameter vector to mark with a dashed vertical line.
        ax : matplotlib.axes.Axes or None, optional
            Where to draw; None uses ``matplotlib.pyplot.gca()``.

        Returns
        -------
        list of matplotlib.lines.Line2D
        """
        from .plotting import plot_posterior_marginal

        return plot_posterior_marginal(self, idx_param, res, smoothing, range_min, range_max,
                                       label_xaxis=label_xaxis, other_plot_args=other_plot_args,
                                       true_model=true_model, ax=ax)

    def plot_posterior_contour(self, idx_param1=0, idx_param2=1, res1=100, res2=100, smoothing=0.01, ax=None):
        """Contours of :meth:`posterior_mesh` with matplotlib (the ``plot`` extra).

        Parameters
        ----------
        idx_param1, idx_param2, res1, res2, smoothing
            As for :meth:`posterior_mesh`.
        ax : matplotlib.axes.Axes or None, optional
            Where to draw; None uses ``matplotlib.pyplot.gca()``.

        Returns
        -------
        matplotlib.contour.QuadContourSet
        """
        from .plotting import plot_contour

        return plot_contour(self.posterior_mesh(idx_param1, idx_param2, res1, res2, smoothing), ax=ax)

    def plot_covariance(self, corr=False, param_slice=None, tick_labels=None, tick_params=None, ax=None):
        """The posterior covariance (or correlation) matrix as a Hinton diagram (the ``plot`` extra).

        Parameters
        ----------
        corr : bool, optional
            Plot the correlation matrix instead.
        param_slice : slice or None, optional
            The parameters to show (default all).
        tick_labels : list of str or None, optional
            Labels of the parameters; None takes the model's
            ``modelparam_names`` (as LaTeX).
        tick_params : dict or None, optional
            Keyword arguments of matplotlib's ``xticks``/``yticks``.
        ax : matplotlib.axes.Axes or None, optional

        Returns
        -------
        matplotlib.axes.Axes
        """
        from .plotting import plot_hinton

        columns = np.s_[:] if param_slice is None else param_slice
        matrix = np.asarray(self.est_covariance_mtx(corr=corr))[columns, columns]
        if tick_labels is None:
            names = list(getattr(self.model, "modelparam_names", []) or [])
            chosen = names[columns] if names else [str(i) for i in range(matrix.shape[0])]
            tick_labels = [f"${name}$" for name in chosen]
        return plot_hinton(matrix, tick_labels, tick_params=tick_params, ax=ax)


class ParticleDistribution(ParticleEstimates, Distribution):
    r"""A distribution given by weighted particles (qinfer's ``ParticleDistribution``).

    Give the dimension ``n_mps`` (one particle at the origin), or the
    particles' locations and weights (the weights are made non-negative
    and normalised, as in qinfer).

    Parameters
    ----------
    n_mps : int, optional
    particle_locations : numpy.ndarray, shape (n_particles, n_mps), optional
    particle_weights : numpy.ndarray, shape (n_particles,), optional

    Attributes
    ----------
    particle_locations : numpy.ndarray
    particle_weights : numpy.ndarray

    Raises
    ------
    ValueError
        When both ``n_mps`` and particles are given, or neither.
    """

    def __init__(self, n_mps=None, particle_locations=None, particle_weights=None):
        super().__init__()
        if particle_locations is None or particle_weights is None:
            if n_mps is None:
                raise ValueError("ParticleDistribution needs n_mps, or particle_locations and particle_weights")
            self.particle_locations = np.zeros((1, int(n_mps)))
            self.particle_weights = np.ones((1,))
        elif n_mps is None:
            self.particle_locations = np.asarray(particle_locations)
            weights = np.abs(np.asarray(particle_weights, dtype=np.float64))
            self.particle_weights = weights / np.sum(weights)
            if self.particle_weights.shape[0] != self.particle_locations.shape[0]:
                warnings.warn(f"ParticleDistribution: {self.particle_weights.shape[0]} weights for "
                              f"{self.particle_locations.shape[0]} particles", RuntimeWarning, stacklevel=2)
        else:
            raise ValueError("Either the dimension of parameter space, `n_mps`, or the particles, "
                             "`particle_locations` and `particle_weights` must be specified.")

    @property
    def n_particles(self) -> int:
        """int : Number of particles."""
        return self.particle_locations.shape[0]

    @property
    def n_ess(self) -> float:
        r"""float : The effective sample size :math:`1 / \sum_i w_i^2`."""
        return float(1 / np.sum(self.particle_weights**2))

    @property
    def n_rvs(self) -> int:
        """int : The dimension of a particle."""
        return self.particle_locations.shape[1]

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        """Draw ``n`` particles with probabilities their weights (see :meth:`Distribution.sample`)."""
        return self.particle_locations[_draw_indices(self.particle_weights, n, random_source(rng))]

    @staticmethod
    def particle_mean(weights, locations):
        """The weighted mean ``weights @ locations``, shape ``(n_mps,)``."""
        return np.dot(weights, locations)

    @classmethod
    def particle_covariance_mtx(cls, weights, locations):
        """The weighted covariance of particles (see :func:`mpi_qinfer.models.utils.particle_covariance_mtx`)."""
        return particle_covariance_mtx(weights, locations)

    def est_mean(self) -> np.ndarray:
        """The mean of the particles, shape ``(n_mps,)``."""
        return self.particle_mean(self.particle_weights, self.particle_locations)

    def est_covariance_mtx(self, corr=False) -> np.ndarray:
        """The covariance matrix of the particles, or with ``corr=True`` their correlation matrix."""
        cov = self.particle_covariance_mtx(self.particle_weights, self.particle_locations)
        if corr:
            std = np.sqrt(np.diag(cov))
            cov = cov / np.outer(std, std)
        return cov

    def est_entropy(self) -> float:
        r"""The entropy :math:`-\sum_i w_i \log w_i` of the weights (zero weights omitted)."""
        return entropy(self.particle_weights)

    def est_credible_region(self, level=0.95, return_outside=False, modelparam_slice=None):
        """The heaviest particles whose total weight first reaches ``level`` (see
        :func:`mpi_qinfer.smc.posterior.credible_region`).

        Returns
        -------
        inside : numpy.ndarray, shape (n_credible, n_selected_params)
        outside : numpy.ndarray
            Only with ``return_outside=True``.
        """
        return credible_region(self.particle_weights, self.particle_locations, level,
                               return_outside=return_outside, modelparam_slice=modelparam_slice)
