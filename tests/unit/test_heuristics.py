"""Tests of the experiment design heuristics in mpi_qinfer.smc.heuristics."""

from __future__ import annotations

import numpy as np
import pytest

from mpi_qinfer.models.builtin import RamseyModel, SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc.heuristics import PGH, ExpSparseHeuristic, Heuristic
from mpi_qinfer.smc.updater import SMCUpdater


def _updater(model, ranges, n=200, seed=0):
    return SMCUpdater(model, n, UniformDistribution(ranges), rng=seed)


def test_heuristic_base():
    up = _updater(SimplePrecessionModel(), [0, 1])
    h = Heuristic(up)
    assert h.updater is up
    with pytest.raises(NotImplementedError):
        h()


def test_exp_sparse_scalar_times_grow_with_data():
    model = SimplePrecessionModel()
    up = _updater(model, [0, 1])
    h = ExpSparseHeuristic(up, scale=2.0, base=1.5)
    for k in range(4):
        eps = h()
        assert eps.shape == (1,)
        assert eps.dtype == np.dtype(model.expparams_dtype)
        assert eps[0] == pytest.approx(2.0 * 1.5**k)
        up.update(0, eps)


def test_exp_sparse_default_is_nine_eighths():
    up = _updater(SimplePrecessionModel(), [0, 1])
    up.update(1, np.array([1.0]))
    up.update(0, np.array([1.0]))
    assert ExpSparseHeuristic(up)()[0] == pytest.approx((9 / 8) ** 2)


def test_exp_sparse_record_fields():
    model = RamseyModel()
    up = _updater(model, [[0, 1], [1, 2]])
    h = ExpSparseHeuristic(up, scale=0.5, t_field="t", other_fields={"phase": 0.25})
    eps = h()
    assert eps.dtype == np.dtype(model.expparams_dtype)
    assert eps["t"][0] == pytest.approx(0.5)
    assert eps["phase"][0] == 0.25


def test_pgh_scalar_time_is_inverse_distance_of_particles():
    model = SimplePrecessionModel()
    up = _updater(model, [0, 1], n=500)
    eps = PGH(up, rng=3)()
    assert eps.shape == (1,) and eps.dtype == np.dtype(model.expparams_dtype)
    # The time is 1 / |x - x'| for two particles of the posterior.
    locs = up.particle_locations[:, 0]
    dists = np.abs(locs[:, None] - locs[None, :])
    assert np.any(np.isclose(dists, 1 / eps[0], rtol=1e-12, atol=0))
    assert eps[0] >= 1.0  # particles live in [0, 1), so distances are < 1


def test_pgh_is_reproducible_with_a_seed():
    up = _updater(SimplePrecessionModel(), [0, 1], n=500)
    assert PGH(up, rng=5)()[0] == PGH(up, rng=5)()[0]
    assert PGH(up, rng=5)()[0] != PGH(up, rng=6)()[0]


def test_pgh_uses_updater_rng_by_default():
    a = _updater(SimplePrecessionModel(), [0, 1], n=500, seed=1)
    b = _updater(SimplePrecessionModel(), [0, 1], n=500, seed=1)
    assert PGH(a)()[0] == PGH(b)()[0]


def test_pgh_record_fields_and_transforms():
    model = RamseyModel()
    up = _updater(model, [[0, 1], [1, 2]], n=300)
    h = PGH(up, inv_field="x_", t_field="t", t_func=lambda t: 2 * t,
            other_fields={"phase": 1.5}, rng=0)
    eps = h()
    assert eps.dtype.names == ("t", "phase")  # no 'x_' field: inversion skipped
    assert eps["phase"][0] == 1.5
    assert eps["t"][0] > 0


class InvertiblePrecession(SimplePrecessionModel):
    """Precession whose record expparams carry an inversion hypothesis ``x_``."""

    @property
    def expparams_dtype(self):
        return [("t", "f8"), ("x_", "f8", (1,))]


def test_pgh_fills_inversion_field_with_a_particle():
    model = InvertiblePrecession()
    up = _updater(model, [0, 1], n=300)
    eps = PGH(up, t_field="t", inv_func=lambda x: x + 10, rng=2)()
    x = eps["x_"][0, 0] - 10
    match = np.isclose(up.particle_locations[:, 0], x, rtol=0, atol=1e-12)
    assert np.any(match)
    others = np.abs(up.particle_locations[:, 0] - up.particle_locations[match][0, 0])
    assert np.any(np.isclose(others, 1 / eps["t"][0], rtol=1e-12, atol=0))


def test_pgh_raises_when_particles_coincide():
    up = _updater(SimplePrecessionModel(), [0, 1], n=50)
    up.particle_locations[:] = 0.3
    with pytest.raises(RuntimeError):
        PGH(up, maxiters=5, rng=0)()
