"""Tests of qinfer's utility functions in mpi_qinfer.models.utils and of the special functions behind them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpi_qinfer.models import _special
from mpi_qinfer.models import utils as u


# ------------------------------------------------------------------ special functions
def test_normal_quantile_inverts_the_distribution_function():
    p = np.concatenate([[1e-300, 1e-12, 1e-3], np.linspace(0.01, 0.99, 99), [1 - 1e-9]])
    x = _special.norm_ppf(p)
    lower = p <= 0.5
    np.testing.assert_allclose(_special.norm_cdf(x[lower]), p[lower], rtol=1e-13)
    np.testing.assert_allclose(_special.norm_sf(x[~lower]), 1 - p[~lower], rtol=1e-9)
    assert _special.norm_ppf(0.5) == 0 and np.isneginf(_special.norm_ppf(0.0)) and np.isnan(_special.norm_ppf(1.5))
    assert _special.norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-14)


@pytest.mark.parametrize("k, q, expected", [
    (1, 0.95, 3.841458820694124), (2, 0.5, 2 * math.log(2)), (4, 0.9, 7.779440339734858),
    (2, 0.99, -2 * math.log(0.01)),
])
def test_chi_squared_quantiles(k, q, expected):
    # Two degrees of freedom are the exponential law of mean 2: x = -2 log(1 - q).
    assert _special.chi2_ppf(q, k) == pytest.approx(expected, rel=1e-13)
    with pytest.raises(ValueError, match="level"):
        _special.chi2_ppf(1.5, k)


def test_incomplete_gamma_of_integer_order_is_a_poisson_tail():
    for a in (1, 3, 7):
        for x in (0.2, 2.0, 9.0, 30.0):
            tail = math.exp(-x) * sum(x**j / math.factorial(j) for j in range(a))  # Q(a, x) for integer a
            assert _special.regularized_gamma_p(a, x, upper=True) == pytest.approx(tail, rel=1e-13)
            assert _special.regularized_gamma_p(a, x) == pytest.approx(1 - tail, abs=1e-15)  # 1 - tail cancels


def test_log_gamma():
    np.testing.assert_allclose(_special.gammaln([1, 2, 5, 0.5]), [0, 0, math.log(24), math.log(math.sqrt(math.pi))],
                               atol=1e-15)


# ------------------------------------------------------------------ multinomial and binomial
def test_binomial_pdf_sums_to_one_and_vanishes_outside():
    n = np.arange(11)
    pmf = u.binomial_pdf(10, n, 0.3)
    assert pmf.sum() == pytest.approx(1, rel=1e-13)
    assert pmf[3] == pytest.approx(math.comb(10, 3) * 0.3**3 * 0.7**7, rel=1e-12)
    assert u.binomial_pdf(10, 11, 0.3) == 0 and u.binomial_pdf(10, 2.5, 0.3) == 0
    assert u.binomial_pdf(4, 0, 0.0) == 1 and u.binomial_pdf(4, 4, 1.0) == 1


def test_multinomial_pdf_with_and_without_the_last_probability():
    n = np.array([[2, 0], [1, 3], [0, 0]])  # three sides, two experiments of 3 rolls
    p = np.array([[0.5, 0.2], [0.3, 0.3], [0.2, 0.5]])
    expected = [3 * 0.5**2 * 0.3, 0.3**3]
    np.testing.assert_allclose(u.multinomial_pdf(n, p), expected, rtol=1e-12)
    np.testing.assert_allclose(u.multinomial_pdf(n, p[:2]), expected, rtol=1e-12)
    impossible = u.multinomial_pdf(np.array([[1], [0]]), np.array([[0.0], [1.0]]))
    assert impossible[0] == 0


def test_sample_multinomial_shapes_and_counts():
    p = np.array([[0.2, 0.5], [0.8, 0.5]])  # two dice of two sides
    one = u.sample_multinomial(7, p, rng=1)
    assert one.shape == (2, 2) and np.all(one.sum(axis=0) == 7)
    many = u.sample_multinomial(7, p, size=(3, 4), rng=1)
    assert many.shape == (2, 2, 3, 4) and np.all(many.sum(axis=0) == 7)
    big = u.sample_multinomial(100, p, size=2000, rng=2)
    means = big.mean(axis=-1)  # (sides, dice)
    assert np.all(np.abs(means - 100 * p) < 6 * np.sqrt(100 * p * (1 - p) / 2000))
    np.testing.assert_array_equal(u.sample_multinomial(5, p, size=3, rng=9), u.sample_multinomial(5, p, size=3, rng=9))


# ------------------------------------------------------------------ simplex maps
def test_simplex_maps_are_inverse_and_centre_at_zero():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((20, 10, 6))
    y[..., -1] = 0
    x = u.to_simplex(y)
    np.testing.assert_allclose(x.sum(axis=-1), 1, rtol=1e-12)
    assert np.all(x >= 0)
    np.testing.assert_allclose(u.from_simplex(x), y, atol=1e-10)
    np.testing.assert_allclose(u.to_simplex(np.zeros(4)), np.full(4, 0.25), rtol=1e-15)
    assert np.all(u.from_simplex(np.full(5, 0.2)) == pytest.approx(0, abs=1e-15))


# ------------------------------------------------------------------ ellipsoids
def test_in_ellipsoid_on_axes_and_for_one_point():
    A, c = np.diag([4.0, 1.0]), np.array([0.0, 1.0])
    x = np.array([[1.9, 1], [2.1, 1], [0, 1.99], [0, 2.01]])
    np.testing.assert_array_equal(u.in_ellipsoid(x, A, c), [True, False, True, False])
    assert u.in_ellipsoid(c, A, c)


def test_mvee_of_a_square_is_its_circumcircle():
    square = np.array([[1.0, 1], [1, -1], [-1, 1], [-1, -1]])
    A, c = u.mvee(square, tol=1e-10)  # four symmetric points: the first step is already the optimum
    np.testing.assert_allclose(c, 0, atol=1e-9)
    np.testing.assert_allclose(A, np.eye(2) / 2, atol=1e-8)  # x^T A x <= 1 is the circle of radius sqrt(2)
    assert u.ellipsoid_volume(A=A) == pytest.approx(2 * np.pi, rel=1e-7)
    assert u.ellipsoid_volume(invA=np.linalg.inv(A)) == pytest.approx(2 * np.pi, rel=1e-7)
    with pytest.raises(ValueError):
        u.ellipsoid_volume()


def test_mvee_encloses_its_points():
    points = np.random.default_rng(4).standard_normal((200, 3)) @ np.diag([1, 2, 0.5])
    A, c = u.mvee(points, tol=1e-3)
    d = points - c
    # Khachiyan's iteration stops short of the optimum: the points lie within a few tenths of a percent.
    assert np.max(np.einsum("ij,jk,ik->i", d, A, d)) <= 1.02


# ------------------------------------------------------------------ small helpers
def test_sqrtm_psd_of_singular_and_indefinite_matrices():
    x = np.random.default_rng(5).random((4, 4))
    y = np.zeros((5, 5))
    y[:4, :4] = x @ x.T
    root, error = u.sqrtm_psd(y)
    np.testing.assert_allclose(root @ root, y, atol=1e-12)
    assert error < 1e-12
    clipped = u.sqrtm_psd(np.diag([4.0, -1.0]), est_error=False)
    np.testing.assert_allclose(clipped, np.diag([2.0, 0.0]))
    with pytest.raises(ValueError):
        u.sqrtm_psd(np.array([[np.nan]]))


def test_assert_sigfigs_equal():
    u.assert_sigfigs_equal(np.array([3.141592]), np.array([3.141593]), 6)
    with pytest.raises(AssertionError):
        u.assert_sigfigs_equal(np.array([1729.0]), np.array([1728.0]), 4)


def test_struct_arrays_join_and_separate():
    a = np.array([1.5, 2.5], dtype=[("x", float)])
    b = np.array([3, 4], dtype=[("n", np.int32)])
    joint = u.join_struct_arrays([a, b])
    assert joint.dtype.names == ("x", "n") and joint["n"].tolist() == [3, 4]
    back = u.separate_struct_array(joint, [a.dtype, b.dtype])
    assert back[0]["x"].tolist() == [1.5, 2.5] and back[1]["n"].tolist() == [3, 4]
    halves = u.separate_struct_array(np.arange(4.0), np.float64)
    assert [h.tolist() for h in halves] == [[0.0, 1.0, 2.0, 3.0]]


def test_text_helpers():
    assert u.pretty_time(3.14159) == "3.14 seconds"
    assert u.pretty_time(125) == "2:05"
    assert u.pretty_time(3725) == "1:02:05"
    assert u.pretty_time(2 * 86400 + 3725).startswith("2 days, 1:02:05")
    assert u.format_uncertainty(1.2345, 0.01) == r"1.23 \pm 0.01"
    assert u.format_uncertainty(2.0, 0) == "2.000000"
    assert "10^" in u.format_uncertainty(123456.0, 10.0)


def test_little_functions():
    assert u.uniquify([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert u.safe_shape(np.zeros((2, 3)), 1) == 3 and u.safe_shape(5.0) == 1
    np.testing.assert_array_equal(u.outer_product(np.array([1, 2])), [[1, 2], [2, 4]])
    assert u.binom_est_p(3, 10, hedge=0.5) == pytest.approx(3.5 / 11)
    assert u.binom_est_error(0.5, 10) == pytest.approx(np.sqrt(0.25 / 11))
    xs = u.compactspace(2, 9)
    assert xs.size == 9 and xs[4] == 0 and np.all(np.diff(xs) > 0) and xs[0] == pytest.approx(-xs[-1], rel=1e-15)
    w, x = np.array([0.25, 0.75]), np.array([[0.0, 1.0], [4.0, 1.0]])
    np.testing.assert_allclose(u.particle_meanfn(w, x), [3, 1])
    np.testing.assert_allclose(u.particle_meanfn(w, x, lambda v: v**2), [12, 1])
    np.testing.assert_allclose(u.particle_covariance_mtx(w, x), [[3, 0], [0, 0]])

    calls = []

    @u.decorate_init(lambda init: lambda self, *a: (calls.append(a), init(self, *a))[1])
    class Thing:
        def __init__(self, value):
            self.value = value

    assert Thing(4).value == 4 and calls == [(4,)]


def test_qutip_check_without_qutip(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_qutip(name, *args):
        if name == "qutip":
            raise ImportError("no qutip here")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_qutip)
    assert u.check_qutip_version("3.2") is False and u.get_qutip_module() is None


def test_random_source_passes_generators_and_random_states_through():
    g, r = np.random.default_rng(0), np.random.RandomState(0)
    assert u.random_source(g) is g and u.random_source(r) is r
    assert isinstance(u.random_source(3), np.random.Generator)
