"""Tests of the posterior summaries (entropy, credible regions, marginals) and the marginal plot."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from mpi_qinfer.models.builtin import IsingChainModel, SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc import posterior
from mpi_qinfer.smc.updater import SMCUpdater


def _updater(n=500, seed=0):
    up = SMCUpdater(IsingChainModel(n_qubits=2), n, UniformDistribution([[0, 1], [0, 1]]), rng=seed)
    for outcome, t in ((0, 1.0), (1, 3.0), (0, 5.0)):
        up.update(outcome, np.array([t]), check_for_resample=False)
    return up


def test_entropy():
    assert posterior.entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8), rel=1e-15)
    assert posterior.entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    w = np.array([0.5, 0.25, 0.25, 0.0])
    assert posterior.entropy(w) == pytest.approx(-(0.5 * np.log(0.5) + 0.5 * np.log(0.25)))
    up = _updater()
    assert up.est_entropy() == posterior.entropy(up.particle_weights) < np.log(500)


def test_credible_region_takes_the_heaviest_particles_until_the_level():
    weights = np.array([0.1, 0.4, 0.05, 0.3, 0.15])
    locations = np.arange(10.0).reshape(5, 2)
    inside, outside = posterior.credible_region(weights, locations, 0.8, return_outside=True)
    np.testing.assert_array_equal(inside, locations[[1, 3, 4]])  # 0.4 + 0.3 + 0.15 >= 0.8
    np.testing.assert_array_equal(outside, locations[[0, 2]])
    np.testing.assert_array_equal(posterior.credible_region(weights, locations, 0.7), locations[[1, 3]])
    np.testing.assert_array_equal(posterior.credible_region(weights, locations, 0.8, modelparam_slice=slice(1, 2)),
                                  locations[[1, 3, 4], 1:2])
    assert len(posterior.credible_region(weights, locations, 1.0)) == 5
    with pytest.raises(ValueError, match="level"):
        posterior.credible_region(weights, locations, 0.0)


def test_updater_credible_region_holds_its_mass():
    up = _updater()
    inside, outside = up.est_credible_region(0.9, return_outside=True)
    assert inside.shape[1] == 2 and len(inside) + len(outside) == 500
    order = np.argsort(-up.particle_weights, kind="stable")
    mass = up.particle_weights[order][:len(inside)].sum()
    assert mass >= 0.9 and mass - up.particle_weights[order][len(inside) - 1] < 0.9


def test_marginal_integrates_to_one_and_peaks_where_the_particles_are():
    rng = np.random.default_rng(1)
    locations = rng.normal([0.3, 2.0], [0.05, 0.5], size=(20000, 2))
    weights = np.full(20000, 1 / 20000)
    grid, density = posterior.marginal(weights, locations, 0, res=200, range_min=0.0, range_max=0.6)
    assert grid.shape == density.shape == (200,) and grid[0] == 0.0 and grid[-1] == 0.6
    assert np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=0.02)
    assert abs(grid[np.argmax(density)] - 0.3) < 0.03
    # Smoothing keeps the mass and lowers the noise.
    _, smooth = posterior.marginal(weights, locations, 0, res=200, range_min=0.0, range_max=0.6, smoothing=0.01)
    assert np.sum(smooth) == pytest.approx(np.sum(density), rel=1e-3)
    assert np.sum(np.abs(np.diff(smooth))) < np.sum(np.abs(np.diff(density)))


def test_marginal_defaults_and_errors():
    up = _updater()
    grid, density = up.posterior_marginal(1, res=50)
    assert grid[0] == up.particle_locations[:, 1].min() and grid[-1] == up.particle_locations[:, 1].max()
    assert np.all(np.isfinite(density))
    with pytest.raises(ValueError, match="res"):
        up.posterior_marginal(0, res=1)
    with pytest.raises(ValueError, match="idx_param"):
        up.posterior_marginal(2)
    with pytest.raises(ValueError, match="range"):
        up.posterior_marginal(0, range_min=1.0, range_max=1.0)


def test_gaussian_smooth_reflects_and_keeps_constants():
    np.testing.assert_allclose(posterior.gaussian_smooth(np.ones(7), 3.0), np.ones(7), rtol=1e-14)
    values = np.random.default_rng(2).random(30)
    np.testing.assert_array_equal(posterior.gaussian_smooth(values, 0), values)
    # Reflection about the edges: smoothing a series and its mirror image commute.
    np.testing.assert_allclose(posterior.gaussian_smooth(values[::-1], 2.5)[::-1],
                               posterior.gaussian_smooth(values, 2.5), rtol=1e-13)
    # A kernel wider than the data still works (reflected several times).
    assert np.all(np.isfinite(posterior.gaussian_smooth(values[:3], 5.0)))
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    np.testing.assert_allclose(posterior.gaussian_smooth(values, 2.5),
                               scipy_ndimage.gaussian_filter1d(values, 2.5), rtol=1e-12)


def test_plot_posterior_marginal_draws_the_marginal():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    up = _updater()
    ax = Figure().subplots()
    lines = up.plot_posterior_marginal(1, res=40, ax=ax, other_plot_args={"color": "red"},
                                       true_model=np.array([[0.2, 0.4]]))
    grid, density = up.posterior_marginal(1, res=40)
    np.testing.assert_array_equal(lines[0].get_xdata(), grid)
    np.testing.assert_array_equal(lines[0].get_ydata(), density)
    assert lines[0].get_color() == "red" and ax.get_xlabel() == "$J$"
    assert len(ax.collections) == 1  # the truth's dashed line


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    up = SMCUpdater(SimplePrecessionModel(), 50, UniformDistribution([0, 1]), rng=0)
    with pytest.raises(ImportError, match=r"mpi_qinfer\[plot\]"):
        up.plot_posterior_marginal()
