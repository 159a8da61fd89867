"""DBSCAN and qinfer's cluster estimates (mpi_qinfer.smc.clustering and ParticleEstimates.est_cluster_*)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mpi_qinfer.smc.clustering import NOISE, dbscan, particle_clusters, weighted_pairwise_distances
from mpi_qinfer.smc.particles import ParticleDistribution
from mpi_qinfer.smc.updater import ResamplerWarning


def _blobs(seed=0, n=200):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.standard_normal((n, 2)) * 0.3 + [10, 10], rng.standard_normal((n, 2)) * 0.3 - [10, 10]])


def test_two_blobs_and_a_stray_point():
    points = np.vstack([_blobs(), [[50.0, 50.0]]])
    labels = dbscan(points, eps=0.5, min_samples=5)
    assert labels[-1] == NOISE
    assert set(labels[:200]) == {0} and set(labels[200:400]) == {1}  # numbered in order of their first point


def _brute_force(points, eps, min_samples, d=None):
    """DBSCAN by its definition: connected components of core points, borders to the first cluster."""
    d = np.linalg.norm(points[:, None] - points[None], axis=-1) if d is None else d
    near = d <= eps
    core = near.sum(axis=1) >= min_samples
    labels = np.full(len(points), NOISE)
    cluster = 0
    for seed in range(len(points)):
        if labels[seed] != NOISE or not core[seed]:
            continue
        members, frontier = {seed}, [seed]
        while frontier:
            p = frontier.pop()
            for q in np.flatnonzero(near[p] & core):
                if q not in members:
                    members.add(q)
                    frontier.append(q)
        for p in sorted(members):
            labels[p] = cluster
        for b in np.flatnonzero(near[sorted(members)].any(axis=0) & ~core & (labels == NOISE)):
            labels[b] = cluster
        cluster += 1
    return labels


@pytest.mark.parametrize("seed", range(5))
def test_labels_match_the_definition(seed):
    points = np.random.default_rng(seed).random((120, 2)) * 4
    np.testing.assert_array_equal(dbscan(points, eps=0.35, min_samples=4), _brute_force(points, 0.35, 4))


def test_a_border_point_goes_to_the_first_cluster_that_reaches_it():
    left = np.array([[0.0, 0], [0.1, 0], [0, 0.1], [-0.1, 0]])
    right = left + [1.0, 0]
    border = np.array([[0.5, 0.0]])
    points = np.vstack([left, right, border])
    labels = dbscan(points, eps=0.45, min_samples=4)
    assert labels[-1] == 0 and set(labels[:4]) == {0} and set(labels[4:8]) == {1}


def test_weighted_distances_and_clustering():
    x = np.array([[0.0], [1.0], [3.0]])
    w = np.array([0.5, 0.25, 0.25])
    d = weighted_pairwise_distances(x, w)
    assert d[0, 1] == pytest.approx(1 / np.sqrt(0.5 * 0.25 * 9))
    np.testing.assert_allclose(d, d.T)
    points = np.random.default_rng(4).random((80, 2))
    weights = np.random.default_rng(5).random(80)
    weights /= weights.sum()
    expected = _brute_force(points, 0.1, 3, d=weighted_pairwise_distances(points, weights))
    np.testing.assert_array_equal(dbscan(points, eps=0.1, min_samples=3, weights=weights), expected)
    assert len(set(expected)) > 2  # a case with clusters and noise
    with pytest.raises(ValueError, match="euclidean"):
        weighted_pairwise_distances(x, w, metric="cosine")


def test_particle_clusters_yields_noise_first_and_warns_about_much_noise():
    points = np.vstack([_blobs(n=20), np.random.default_rng(1).random((10, 2)) * 100 + 200])
    weights = np.full(len(points), 1 / len(points))
    with pytest.warns(ResamplerWarning, match="NOISE"):
        found = list(particle_clusters(points, weights))
    assert [label for label, _ in found] == [NOISE, 0, 1]
    assert sum(members.sum() for _, members in found) == len(points)
    with pytest.raises(ValueError, match="Weights"):
        list(particle_clusters(points, weighted=True))


def test_cluster_moments_add_up_to_the_cloud():
    points = _blobs(2)
    rng = np.random.default_rng(3)
    cloud = ParticleDistribution(particle_locations=points, particle_weights=rng.random(len(points)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moments = list(cloud.est_cluster_moments())
    assert [m[0] for m in moments] == [0, 1]
    assert sum(m[1] for m in moments) == pytest.approx(1)
    np.testing.assert_allclose(moments[0][2], [10, 10], atol=0.2)
    within, between, total = cloud.est_cluster_covs()
    np.testing.assert_allclose(total, cloud.est_covariance_mtx(), rtol=1e-10)  # the law of total variance
    metric = cloud.est_cluster_metric()
    assert np.all(metric > 0.99) and np.all(metric <= 1)
