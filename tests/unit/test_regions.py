"""The convex hull, the region estimates and qinfer's ParticleDistribution (mpi_qinfer.smc.regions, .particles)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mpi_qinfer.models.distributions import MultivariateNormalDistribution
from mpi_qinfer.smc.particles import ParticleDistribution, kl_divergence, mesh_density
from mpi_qinfer.smc.regions import ConvexHull, ellipsoid_region, hull_region, in_region


# ------------------------------------------------------------------ the hull itself
def _brute_force_facets(points, tol=1e-9):
    """Every d-subset of points whose hyperplane has all points on one side: the facets (general position)."""
    n, d = points.shape
    facets = set()
    for subset in itertools.combinations(range(n), d):
        corners = points[list(subset)]
        normal = np.linalg.svd(corners[1:] - corners[0])[2][-1]
        heights = (points - corners[0]) @ normal
        if np.all(heights <= tol) or np.all(heights >= -tol):
            facets.add(subset)
    return facets


@pytest.mark.parametrize("d, n", [(2, 12), (3, 14), (4, 11)])
def test_hull_facets_are_those_of_the_brute_force_definition(d, n):
    points = np.random.default_rng(d).standard_normal((n, d))
    hull = ConvexHull(points)
    assert {tuple(sorted(f)) for f in hull.simplices} == _brute_force_facets(points)
    assert set(hull.vertices) == {int(v) for f in hull.simplices for v in f}
    # Every facet's plane has the points on its inner side, and its normal is a unit vector.
    heights = points @ hull.equations[:, :-1].T + hull.equations[:, -1]
    assert np.all(heights <= 1e-12)
    np.testing.assert_allclose(np.linalg.norm(hull.equations[:, :-1], axis=1), 1, rtol=1e-12)


def test_hull_of_a_cube_with_inner_points():
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    inner = np.random.default_rng(1).random((200, 3)) * 0.8 + 0.1
    hull = ConvexHull(np.vstack([inner, corners]))
    assert sorted(hull.vertices) == list(range(200, 208))
    assert hull.simplices.shape[1] == 3 and len(hull.simplices) == 12  # six squares, two triangles each
    probe = np.array([[0.5, 0.5, 0.5], [1.2, 0.5, 0.5], [0, 0, 0], [0.99, 0.01, 0.5]])
    np.testing.assert_array_equal(hull.contains(probe), [True, False, True, True])


def test_hull_in_two_dimensions_lists_its_vertices_counterclockwise():
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = np.vstack([np.zeros((1, 2)), ring[::-1]])  # a centre and a ring listed clockwise
    hull = ConvexHull(points)
    ordered = points[hull.vertices]
    a, b = np.roll(ordered, -1, axis=0) - ordered, np.roll(ordered, -2, axis=0) - ordered
    turns = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    assert len(hull.vertices) == 8 and np.all(turns > 0)


def test_hull_in_one_dimension_and_degenerate_inputs():
    hull = ConvexHull(np.array([[3.0], [-1.0], [2.0]]))
    assert sorted(hull.vertices) == [0, 1]
    np.testing.assert_array_equal(hull.contains(np.array([[0.0], [3.5]])), [True, False])
    with pytest.raises(ValueError, match="no volume"):
        ConvexHull(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))  # a line in the plane
    with pytest.raises(ValueError, match="no volume"):
        ConvexHull(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        ConvexHull(np.array([[0.0, np.nan], [1, 0], [0, 1]]))


def test_points_on_a_facet_count_as_inside_and_repeated_points_do_no_harm():
    square = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    hull = ConvexHull(np.vstack([square, square, [[0.5, 0.0], [0.5, 0.5]]]))
    assert len(hull.simplices) == 4
    assert hull.contains(np.array([[0.5, 0.0], [1.0, 1.0], [0.5, 1.0 + 1e-6]])).tolist() == [True, True, False]


# ------------------------------------------------------------------ region functions
def _gaussian_cloud(n=4000, seed=2):
    mean = np.array([2.0, 3, 5])
    cov = np.array([[1, 0.3, 0], [0.3, 2, 0.2], [0, 0.2, 0.5]])
    return mean, cov, MultivariateNormalDistribution(mean, cov).sample(n, rng=seed)


def test_hull_region_faces_and_vertices():
    _, _, points = _gaussian_cloud(500)
    faces, vertices = hull_region(points)
    assert faces.shape[1:] == (3, 3) and vertices.shape[1] == 3
    assert {tuple(v) for v in faces.reshape(-1, 3)} == {tuple(v) for v in vertices}
    assert len(vertices) == len({tuple(v) for v in vertices})


def test_ellipsoid_region_encloses_the_hull():
    _, _, points = _gaussian_cloud(800)
    A, c = ellipsoid_region(points, tol=1e-3)
    d = points - c
    assert np.max(np.einsum("ij,jk,ik->i", d, A, d)) <= 1.02


def test_in_region_methods_agree_with_their_shapes():
    mean, cov, points = _gaussian_cloud(2000)
    probe = MultivariateNormalDistribution(mean, cov).sample(3000, rng=3)
    hull = in_region(probe, method="hpd-hull", credible=lambda: points)
    np.testing.assert_array_equal(hull, ConvexHull(points).contains(probe))
    mvee = in_region(probe, method="hpd-mvee", credible=lambda: points)
    assert np.all(mvee[hull])  # the enclosing ellipsoid holds the hull
    pce = in_region(probe, method="pce", credible=None, mean=lambda: mean, cov=lambda: cov, level=0.9)
    # 3000 draws, each inside the 90% ellipsoid of their own law with probability 0.9: within six sigma.
    assert abs(pce.mean() - 0.9) < 6 * np.sqrt(0.09 / 3000)
    with pytest.raises(ValueError, match="method"):
        in_region(probe, method="hull", credible=lambda: points)


# ------------------------------------------------------------------ ParticleDistribution
def test_particle_distribution_construction():
    origin = ParticleDistribution(n_mps=3)
    assert origin.n_particles == 1 and origin.n_rvs == 3 and origin.n_ess == 1
    np.testing.assert_array_equal(origin.sample(4, rng=0), np.zeros((4, 3)))
    cloud = ParticleDistribution(particle_locations=np.arange(10.0).reshape(5, 2),
                                 particle_weights=np.array([1, -1, 2, 0, 4.0]))
    np.testing.assert_allclose(cloud.particle_weights, [0.125, 0.125, 0.25, 0, 0.5])  # made non-negative, normalised
    with pytest.raises(ValueError):
        ParticleDistribution()
    with pytest.raises(ValueError):
        ParticleDistribution(2, np.zeros((1, 2)), np.ones(1))
    with pytest.warns(RuntimeWarning, match="3 weights for 4 particles"):
        ParticleDistribution(particle_locations=np.zeros((4, 1)), particle_weights=np.ones(3))


def test_particle_distribution_estimates():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 2)) * [1, 3] + [1, -2]
    w = rng.random(3000)
    cloud = ParticleDistribution(particle_locations=x, particle_weights=w)
    w = w / w.sum()
    np.testing.assert_allclose(cloud.est_mean(), w @ x, rtol=1e-12)
    np.testing.assert_allclose(cloud.est_meanfn(lambda v: v**2), w @ x**2, rtol=1e-12)
    cov = cloud.est_covariance_mtx()
    np.testing.assert_allclose(cov, ((x - w @ x).T * w) @ (x - w @ x), rtol=1e-10)
    corr = cloud.est_covariance_mtx(corr=True)
    np.testing.assert_allclose(np.diag(corr), 1, rtol=1e-12)
    assert cloud.est_entropy() == pytest.approx(-np.sum(w * np.log(w)), rel=1e-12)
    assert 1 < cloud.n_ess < 3000
    inside = cloud.est_credible_region(0.5)
    assert w[np.isin(x[:, 0], inside[:, 0])].sum() >= 0.5
    draws = cloud.sample(20000, rng=5)
    assert np.all(np.abs(draws.mean(axis=0) - w @ x) < 6 * np.sqrt(np.diag(cov) / 20000))


def test_region_estimates_of_a_particle_distribution():
    mean, cov, points = _gaussian_cloud(4000)
    # Weighted by their density: the credible regions are the cores of the cloud.
    offsets = points - mean
    density = np.exp(-0.5 * np.einsum("ij,jk,ik->i", offsets, np.linalg.inv(cov), offsets))
    cloud = ParticleDistribution(particle_locations=points, particle_weights=density)
    faces, vertices = cloud.region_est_hull(level=0.95)
    small_faces, small_vertices = cloud.region_est_hull(level=0.2)
    assert np.all(np.var(small_vertices, axis=0) < np.var(vertices, axis=0))
    A, c = cloud.region_est_ellipsoid(level=0.5)
    assert np.all(np.abs(c - mean) < 0.5)
    probe = MultivariateNormalDistribution(mean, cov).sample(2000, rng=6)
    for method in ("pce", "hpd-hull", "hpd-mvee"):
        inside = cloud.in_credible_region(probe, level=0.9, method=method)
        assert inside.shape == (2000,) and inside.dtype == bool
        assert isinstance(cloud.in_credible_region(probe[0], level=0.9, method=method), np.bool_)
    sliced = cloud.in_credible_region(probe[:100, :2], level=0.9, modelparam_slice=np.s_[:2], method="pce")
    assert sliced.shape == (100,)


def test_kl_divergence_of_a_cloud_from_itself_and_from_a_shifted_one():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 2))
    w = np.full(300, 1 / 300)
    near, far = kl_divergence(w, x, w, x), kl_divergence(w, x, w, x + 0.05)
    assert far > near
    cloud = ParticleDistribution(particle_locations=x, particle_weights=w)
    shifted = ParticleDistribution(particle_locations=x + 0.05, particle_weights=w)
    assert cloud.est_kl_divergence(shifted) == pytest.approx(far, rel=1e-12)
    assert cloud.est_kl_divergence(x + 0.05) == pytest.approx(far, rel=1e-12)  # bare locations: equal weights


def test_mesh_density_integrates_to_one_and_is_indexed_like_the_grid():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 2)) * [0.5, 2] + [3, 0]
    w = np.full(400, 1 / 400)
    p1s, p2s, density = mesh_density(w, x, res1=60, res2=40, smoothing=0.3)
    assert p1s.shape == p2s.shape == density.shape == (40, 60)
    cell = (p1s[0, 1] - p1s[0, 0]) * (p2s[1, 0] - p2s[0, 0])
    assert density.sum() * cell == pytest.approx(1, abs=0.1)  # the grid spans the particles, not the tails
    i, j = 7, 33
    squared = (x[:, 0] - p1s[i, j]) ** 2 + (x[:, 1] - p2s[i, j]) ** 2
    at = np.sum(w * np.exp(-squared / (2 * 0.09)) / (2 * np.pi * 0.09))
    assert density[i, j] == pytest.approx(at, rel=1e-12)
