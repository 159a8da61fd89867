"""Clusters of particles (qinfer's ``qinfer.clustering``): DBSCAN over the particle locations, with NumPy only.

qinfer runs scikit-learn's DBSCAN; this is the same algorithm (Ester et al. 1996, as scikit-learn
numbers its clusters: in the order their first core point appears, a border point going to the
first cluster that reaches it). Distances are computed in blocks; the neighbour lists are kept,
so memory grows with the number of neighbours within ``eps``. Also importable as
``mpi_qinfer.clustering``.
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from ._warnings import ResamplerWarning

__all__ = ["NOISE", "particle_clusters", "dbscan", "weighted_pairwise_distances"]

#: The label of the particles in no cluster.
NOISE = -1

#: Largest number of pairwise distances held at once.
_BLOCK_ENTRIES = 1 << 22


def _distances(points: np.ndarray, rows: slice) -> np.ndarray:
    """Euclidean distances from ``points[rows]`` to every point."""
    block = points[rows]
    squared = np.sum(block**2, axis=1)[:, np.newaxis] - 2 * block @ points.T + np.sum(points**2, axis=1)
    return np.sqrt(np.clip(squared, 0, None))


def weighted_pairwise_distances(X, w, metric="euclidean", w_pow=0.5):
    r"""qinfer's weighted distances :math:`d(p, q) / (w_p w_q N^2)^{w\_pow}`: heavy particles are nearer each other.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    w : numpy.ndarray, shape (n,)
    metric : {"euclidean"}, optional
    w_pow : float, optional

    Returns
    -------
    numpy.ndarray, shape (n, n)
    """
    _check_metric(metric)
    X = np.asarray(X, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    return _distances(X, slice(None)) / (np.outer(w, w) * w.shape[0] ** 2) ** w_pow


def _check_metric(metric) -> None:
    if metric != "euclidean":
        raise ValueError(f"only the euclidean metric is available here (qinfer's default), got {metric!r}")


def dbscan(points, eps=0.5, min_samples=5, weights=None, w_pow=0.5) -> np.ndarray:
    """DBSCAN cluster labels of points (``NOISE`` for noise), as scikit-learn's ``DBSCAN(...).fit_predict``.

    A point with at least ``min_samples`` points (itself included) within
    ``eps`` is a core point; clusters are the core points connected through
    such neighbourhoods, with the non-core points within ``eps`` of them.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, d)
    eps : float, optional
    min_samples : int, optional
    weights : numpy.ndarray or None, optional
        With weights, the distances are :func:`weighted_pairwise_distances`'s.
    w_pow : float, optional

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    scale = None
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        scale = (weights * n) ** w_pow  # d / (w_p w_q n^2)^w_pow = d / (scale_p scale_q)
    neighbours = []
    rows_per_block = max(1, _BLOCK_ENTRIES // max(1, n))
    for start in range(0, n, rows_per_block):
        rows = slice(start, min(n, start + rows_per_block))
        distances = _distances(points, rows)
        if scale is not None:
            with np.errstate(divide="ignore"):
                distances = distances / (scale[rows, np.newaxis] * scale[np.newaxis, :])
        neighbours.extend(np.flatnonzero(row <= eps) for row in distances)
    core = np.array([len(found) >= min_samples for found in neighbours], dtype=bool)
    labels = np.full(n, NOISE, dtype=np.int64)
    cluster = 0
    for seed in range(n):
        if labels[seed] != NOISE or not core[seed]:
            continue
        labels[seed] = cluster
        queue = deque([seed])
        while queue:
            point = queue.popleft()
            for other in neighbours[point]:
                if labels[other] == NOISE:
                    labels[other] = cluster
                    if core[other]:
                        queue.append(other)
        cluster += 1
    return labels


def particle_clusters(particle_locations, particle_weights=None, eps=0.5, min_particles=5, metric="euclidean",
                      weighted=False, w_pow=0.5, quiet=True):
    """The clusters of a particle cloud, as qinfer's ``particle_clusters``: ``(label, members)`` pairs.

    Parameters
    ----------
    particle_locations : numpy.ndarray, shape (n_particles, n_modelparams)
    particle_weights : numpy.ndarray, shape (n_particles,), optional
        Needed with ``weighted=True`` (and for the noise warning).
    eps : float, optional
        Neighbourhood radius (default 0.5).
    min_particles : int, optional
        Particles a neighbourhood needs to make a core (default 5).
    metric : {"euclidean"}, optional
    weighted : bool, optional
        Cluster on :func:`weighted_pairwise_distances`.
    w_pow : float, optional
    quiet : bool, optional
        False prints how many clusters were found.

    Yields
    ------
    label : int
        ``NOISE`` first, if there is noise, then 0, 1, ...
    members : numpy.ndarray of bool, shape (n_particles,)

    Warns
    -----
    ResamplerWarning
        When at least a tenth of the particles are noise.
    """
    if weighted and particle_weights is None:
        raise ValueError("Weights must be specified for weighted clustering.")
    _check_metric(metric)
    labels = dbscan(particle_locations, eps, min_particles, particle_weights if weighted else None, w_pow)
    n_noise = int(np.sum(labels == NOISE))
    n_clusters = int(labels.max()) + 1
    if n_noise / labels.size >= 0.1:
        warnings.warn("More than 10% of the particles were classified as NOISE. Consider increasing the "
                      "neighborhood size ``eps``.", ResamplerWarning, stacklevel=2)
    if not quiet:
        print(f"[Clustering] DBSCAN identified {n_clusters} cluster{'s' if n_clusters > 1 else ''}. "
              f"{n_noise} particles identified as NOISE.")
    for label in range(NOISE if n_noise else 0, n_clusters):
        yield label, labels == label
