"""Credible regions as shapes: the convex hull of a credible set of particles, its enclosing ellipsoid, tests.

qinfer's region estimates (``region_est_hull``, ``region_est_ellipsoid``,
``in_credible_region``) as functions of a set of points, with NumPy only:
the convex hull is built here by the quickhull algorithm instead of by
Qhull. Points within a small tolerance of a facet count as on the hull's
boundary (inside).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models._special import chi2_ppf
from ..models.utils import in_ellipsoid, mvee

__all__ = ["ConvexHull", "hull_region", "ellipsoid_region", "in_region", "REGION_METHODS"]

#: The ``method`` values of :func:`in_region` (qinfer's names).
REGION_METHODS = ("pce", "hpd-hull", "hpd-mvee")


@dataclass
class _Facet:
    vertices: tuple  # d point indices
    normal: np.ndarray  # unit outward normal
    offset: float  # the facet's plane is normal . x + offset = 0; inside is negative
    outside: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class ConvexHull:
    """The convex hull of points in ``d >= 1`` dimensions (quickhull), as ``scipy.spatial.ConvexHull`` describes it.

    Parameters
    ----------
    points : array_like, shape (n_points, d)
        At least ``d + 1`` points not all in one hyperplane.

    Attributes
    ----------
    points : numpy.ndarray, shape (n_points, d)
    simplices : numpy.ndarray of int, shape (n_facets, d)
        The points of each facet (a simplex of ``d`` points).
    equations : numpy.ndarray, shape (n_facets, d + 1)
        ``[normal, offset]`` of each facet: ``normal . x + offset <= 0``
        inside, with unit outward normals.
    vertices : numpy.ndarray of int
        The points on the hull: counterclockwise in two dimensions, in
        increasing order otherwise.

    Raises
    ------
    ValueError
        When the points do not span ``d`` dimensions (too few, or all in a
        hyperplane): their hull has no volume.
    """

    def __init__(self, points):
        self.points = np.ascontiguousarray(points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[0] == 0:
            raise ValueError(f"points must be a non-empty (n_points, d) array, got shape {self.points.shape}")
        n, d = self.points.shape
        if not np.all(np.isfinite(self.points)):
            raise ValueError("points must be finite")
        extent = float(np.max(np.ptp(self.points, axis=0))) if n > 1 else 0.0
        scale = max(extent, float(np.max(np.abs(self.points))))
        self._tol = 1e3 * d * np.finfo(np.float64).eps * max(scale, np.finfo(np.float64).tiny)
        if n < d + 1 or extent <= self._tol:
            raise ValueError(f"the convex hull of {n} point(s) in {d} dimensions has no volume; "
                             f"it needs at least {d + 1} points not all in one hyperplane")
        if d == 1:
            self._one_dimensional()
        else:
            self._quickhull()

    def _one_dimensional(self) -> None:
        x = self.points[:, 0]
        lo, hi = int(np.argmin(x)), int(np.argmax(x))
        self.simplices = np.array([[lo], [hi]])
        self.equations = np.array([[-1.0, x[lo]], [1.0, -x[hi]]])
        self.vertices = np.array(sorted({lo, hi}))

    # -- quickhull --------------------------------------------------------------------------
    def _quickhull(self) -> None:
        points, n = self.points, self.points.shape[0]
        simplex = self._initial_simplex()
        self._interior = points[simplex].mean(axis=0)
        facets: dict[int, _Facet] = {}
        ridges: dict[frozenset, set] = {}
        self._next_id = 0
        new_ids = [self._add_facet(facets, ridges, tuple(v for v in simplex if v != left_out))
                   for left_out in simplex]
        candidates = np.setdiff1d(np.arange(n), simplex)
        self._assign(facets, new_ids, candidates)
        pending = [fid for fid in new_ids if facets[fid].outside.size]
        while pending:
            fid = pending.pop()
            if fid not in facets or not facets[fid].outside.size:
                continue
            facet = facets[fid]
            distances = points[facet.outside] @ facet.normal + facet.offset
            apex = int(facet.outside[np.argmax(distances)])
            visible = self._visible_from(facets, ridges, fid, points[apex])
            horizon = self._horizon(facets, ridges, visible)
            orphans = np.unique(np.concatenate([facets[v].outside for v in visible]))
            orphans = orphans[orphans != apex]
            for v in visible:
                self._remove_facet(facets, ridges, v)
            new_ids = [self._add_facet(facets, ridges, tuple(ridge) + (apex,)) for ridge in horizon]
            self._assign(facets, new_ids, orphans)
            pending.extend(i for i in new_ids if facets[i].outside.size)
        ordered = sorted(facets.values(), key=lambda f: tuple(sorted(f.vertices)))
        self.simplices = np.array([f.vertices for f in ordered], dtype=np.int64)
        self.equations = np.array([np.append(f.normal, f.offset) for f in ordered])
        self.vertices = self._vertex_order()

    def _initial_simplex(self) -> list:
        """``d + 1`` points spanning the space: extremes of the first axis, then the farthest from their span."""
        points, d = self.points, self.points.shape[1]
        chosen = [int(np.argmin(points[:, 0])), int(np.argmax(points[:, 0]))]
        if chosen[0] == chosen[1]:
            chosen[1] = int(np.argmax(np.linalg.norm(points - points[chosen[0]], axis=1)))
        while len(chosen) < d + 1:
            base = points[chosen[0]]
            span = points[chosen[1:]] - base
            q, _ = np.linalg.qr(span.T)  # an orthonormal basis of the chosen points' span
            offsets = points - base
            residual = offsets - (offsets @ q) @ q.T
            distance = np.linalg.norm(residual, axis=1)
            far = int(np.argmax(distance))
            if distance[far] <= self._tol:
                raise ValueError(f"the points span only {len(chosen) - 1} of {d} dimensions: "
                                 "their convex hull has no volume")
            chosen.append(far)
        return chosen

    def _plane(self, vertices: tuple):
        """Unit outward normal and offset of the hyperplane through ``vertices`` (outward: away from the interior)."""
        corners = self.points[list(vertices)]
        edges = corners[1:] - corners[0]
        normal = np.linalg.svd(edges)[2][-1]  # orthogonal to every edge
        offset = -float(normal @ corners[0])
        if normal @ self._interior + offset > 0:
            normal, offset = -normal, -offset
        return normal, offset

    def _add_facet(self, facets, ridges, vertices: tuple) -> int:
        fid = self._next_id
        self._next_id += 1
        normal, offset = self._plane(vertices)
        facets[fid] = _Facet(vertices, normal, offset)
        for ridge in self._ridges_of(vertices):
            ridges.setdefault(ridge, set()).add(fid)
        return fid

    def _remove_facet(self, facets, ridges, fid: int) -> None:
        for ridge in self._ridges_of(facets[fid].vertices):
            owners = ridges[ridge]
            owners.discard(fid)
            if not owners:
                del ridges[ridge]
        del facets[fid]

    @staticmethod
    def _ridges_of(vertices: tuple):
        return [frozenset(vertices[:i] + vertices[i + 1:]) for i in range(len(vertices))]

    def _assign(self, facets, fids, candidates: np.ndarray) -> None:
        """Give each candidate point to the new facet it lies farthest above (points above none are inside)."""
        if not fids:
            return
        if candidates.size == 0:
            return
        normals = np.array([facets[f].normal for f in fids])
        offsets = np.array([facets[f].offset for f in fids])
        heights = self.points[candidates] @ normals.T + offsets
        best = np.argmax(heights, axis=1)
        above = heights[np.arange(candidates.size), best] > self._tol
        for column, fid in enumerate(fids):
            facets[fid].outside = candidates[above & (best == column)]

    def _visible_from(self, facets, ridges, start: int, apex: np.ndarray) -> list:
        """The facets ``apex`` lies above, found by walking from ``start`` over shared ridges."""
        visible, stack, seen = [], [start], {start}
        while stack:
            fid = stack.pop()
            visible.append(fid)
            for ridge in self._ridges_of(facets[fid].vertices):
                for other in ridges[ridge]:
                    if other not in seen:
                        seen.add(other)
                        facet = facets[other]
                        if apex @ facet.normal + facet.offset > self._tol:
                            stack.append(other)
        return visible

    def _horizon(self, facets, ridges, visible: list) -> list:
        """The ridges between a visible facet and one that is not: the new facets' bases."""
        inside = set(visible)
        horizon = []
        for fid in visible:
            for ridge in self._ridges_of(facets[fid].vertices):
                if any(other not in inside for other in ridges[ridge]):
                    horizon.append(sorted(ridge))
        return horizon

    def _vertex_order(self) -> np.ndarray:
        vertices = np.unique(self.simplices)
        if self.points.shape[1] != 2:
            return vertices
        centred = self.points[vertices] - self._interior
        return vertices[np.argsort(np.arctan2(centred[:, 1], centred[:, 0]), kind="stable")]

    # -- queries ------------------------------------------------------------------------------
    def contains(self, x) -> np.ndarray:
        """Which points lie in the hull (on its boundary counts as in).

        Parameters
        ----------
        x : array_like, shape (n, d) or (d,)

        Returns
        -------
        numpy.ndarray of bool, shape (n,) (shape (1,) for one point)
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        heights = x @ self.equations[:, :-1].T + self.equations[:, -1]
        return np.all(heights <= self._tol, axis=1)


def hull_region(points):
    """qinfer's ``region_est_hull`` of a credible set of points: the faces and the vertices of its convex hull.

    Parameters
    ----------
    points : numpy.ndarray, shape (n_points, n_mps)

    Returns
    -------
    faces : numpy.ndarray, shape (n_faces, n_mps, n_mps)
        ``faces[f, k]`` is vertex ``k`` of face ``f``.
    vertices : numpy.ndarray, shape (n_vertices, n_mps)
        Each vertex of the hull once.
    """
    points = np.asarray(points, dtype=np.float64)
    hull = ConvexHull(points)
    return points[hull.simplices], points[hull.vertices]


def ellipsoid_region(points, tol=0.0001):
    """qinfer's ``region_est_ellipsoid``: the minimum-volume ellipsoid enclosing the hull of ``points``.

    Returns
    -------
    A : numpy.ndarray, shape (n_mps, n_mps)
        The ellipsoid is ``(x - c)^T A^{-1} (x - c) <= 1`` in qinfer's
        documentation of this method, and ``(x - c)^T A (x - c) <= 1`` in
        its code (that of :func:`~mpi_qinfer.models.utils.mvee`), which this
        follows: ``A`` is returned as qinfer returns it.
    c : numpy.ndarray, shape (n_mps,)
    """
    _, vertices = hull_region(points)
    return mvee(vertices, tol)


def in_region(points, *, method, credible, mean=None, cov=None, level=0.95, tol=0.0001) -> np.ndarray:
    """qinfer's ``in_credible_region``: which of ``points`` lie in a credible region.

    Parameters
    ----------
    points : numpy.ndarray, shape (n_points, n_mps) or (n_mps,)
    method : {"pce", "hpd-hull", "hpd-mvee"}
        ``"pce"``: the ellipsoid of the posterior covariance, scaled by the
        ``level`` quantile of the chi-squared law with ``n_mps`` degrees of
        freedom and centred on the mean. ``"hpd-hull"``: the convex hull of
        the credible particles. ``"hpd-mvee"``: the smallest ellipsoid
        enclosing that hull.
    credible : callable
        ``credible()`` returns the credible particles (for the ``hpd``
        methods).
    mean, cov : callable
        ``mean()`` and ``cov()`` return the posterior moments of the chosen
        parameters (for ``"pce"``).
    level : float
    tol : float or None
        The tolerance of the ellipsoid's iteration (None: 0.0001).

    Returns
    -------
    numpy.ndarray of bool, shape (n_points,)
        Shape (1,) for one point.
    """
    if method not in REGION_METHODS:
        raise ValueError(f"method must be one of {REGION_METHODS}, got {method!r}")
    points = np.asarray(points, dtype=np.float64)
    if method == "pce":
        c = np.atleast_1d(mean())
        A = np.atleast_2d(cov())
        return np.atleast_1d(in_ellipsoid(points, chi2_ppf(level, c.size) * A, c))
    region = np.asarray(credible(), dtype=np.float64)
    if method == "hpd-mvee":
        A, c = ellipsoid_region(region, 0.0001 if tol is None else tol)
        return np.atleast_1d(in_ellipsoid(points, np.linalg.inv(A), c))
    return ConvexHull(region).contains(points)
