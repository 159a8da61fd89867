"""The outcome domains of mpi_qinfer.models.domains, against qinfer's documented semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mpi_qinfer
from mpi_qinfer.models import base
from mpi_qinfer.models.domains import Domain, IntegerDomain, MultinomialDomain, ProductDomain, RealDomain

#: A record that no numeric domain holds (qinfer's tests call theirs WEIRDO).
RECORD = np.array([(1, 2.0, b"jump")], dtype=[("foo", "i4"), ("bar", "f4"), ("baz", "S10")])


def _consistent(domain):
    """The properties every domain must satisfy, whatever it is."""
    assert isinstance(domain, Domain)
    assert domain.is_discrete is (not domain.is_continuous)
    if domain.is_finite:
        assert domain.is_discrete
        assert domain.values.size == domain.n_members
    else:
        assert domain.n_members == np.inf
    point = domain.example_point
    assert point.shape == (1,) and point.dtype == domain.dtype
    assert domain.in_domain(point) and domain.in_domain(domain.values)


# -- IntegerDomain ---------------------------------------------------------------------
@pytest.mark.parametrize("low, high", [(-np.inf, np.inf), (0, np.inf), (-np.inf, 0), (-2, 8)])
def test_integer_domain_with_infinite_ends(low, high):
    domain = IntegerDomain(min=low, max=high)
    _consistent(domain)
    finite = not (np.isinf(low) or np.isinf(high))
    assert domain.is_finite is finite
    assert domain.n_members == (high - low + 1 if finite else np.inf)
    # An infinite end stays a float inf; a finite one is a Python int.
    assert domain.min == low and domain.max == high
    assert all(isinstance(end, int) or np.isinf(end) for end in (domain.min, domain.max))
    expected_point = low if not np.isinf(low) else (high if not np.isinf(high) else 0)
    np.testing.assert_array_equal(domain.example_point, [expected_point])


def test_integer_domain_membership():
    whole = IntegerDomain(-np.inf, np.inf)
    assert whole.in_domain(np.array([54.0])) and whole.in_domain(np.array([-32, 2, 2]))
    assert not whole.in_domain(np.array([0.5])) and not whole.in_domain(np.array([np.pi, 1]))
    assert not whole.in_domain(np.array([np.inf])) and not whole.in_domain(np.array([np.nan]))
    natural = IntegerDomain(0, np.inf)
    assert natural.in_domain(3) and natural.in_domain(np.array([0, 32, 1, 2]))
    assert not natural.in_domain(np.array([-1, 1]))
    finite = IntegerDomain(-2, 8)
    assert finite.in_domain(np.array([8.0])) and not finite.in_domain(np.array([-5, 1]))
    np.testing.assert_array_equal(finite.values, np.arange(-2, 9))
    assert finite.values.dtype == np.int64
    # A complex number with a zero imaginary part is a real one; any other complex is not.
    assert finite.in_domain(np.array([3 + 0j])) and not finite.in_domain(1j)


@pytest.mark.parametrize("domain", [IntegerDomain(0, 5), IntegerDomain(), RealDomain(), RealDomain(0, 1)],
                         ids=repr)
@pytest.mark.parametrize("points", [RECORD, np.array(["a"]), np.array([object()]), [[1], [2, 3]]],
                         ids=["record", "string", "object", "ragged"])
def test_numeric_domains_answer_false_for_points_that_are_not_numbers(domain, points):
    assert domain.in_domain(points) is False


def test_integer_domain_refuses_bounds_that_are_not_numbers():
    with pytest.raises(ValueError, match="min"):
        IntegerDomain(np.nan, 3)
    with pytest.raises(TypeError, match="max"):
        IntegerDomain(0, "three")


def test_integer_domain_stays_importable_from_the_base_module():
    assert base.IntegerDomain is IntegerDomain is mpi_qinfer.IntegerDomain


def test_integer_domain_equality_and_hash():
    assert IntegerDomain(0, np.inf) == IntegerDomain(0.0, np.inf)
    assert IntegerDomain(0, 3) != IntegerDomain(0, np.inf)
    assert len({IntegerDomain(-np.inf, 2), IntegerDomain(-np.inf, 2)}) == 1
    assert repr(IntegerDomain(-np.inf, 2)) == "IntegerDomain(min=-inf, max=2)"


# -- RealDomain ------------------------------------------------------------------------
@pytest.mark.parametrize("low, high, inside, outside", [
    (-np.inf, np.inf, [np.pi, np.array([2]), np.array([-32.2, 2, 2.8])], [np.array([1j])]),
    (0, np.inf, [0, np.pi, np.array([32.2, 2, 2.8])], [-0.001]),
    (-np.inf, 0, [0, -np.pi, np.array([-32.2, -2, -2.8])], [0.001]),
    (np.e, np.pi, [np.pi, np.array([3]), np.array([np.e, 3.13, 2.8])], [3.15, np.nan]),
])
def test_real_domain(low, high, inside, outside):
    domain = RealDomain(min=low, max=high)
    _consistent(domain)
    assert domain.is_continuous and not domain.is_finite and domain.dtype == np.float64
    for points in inside:
        assert domain.in_domain(points) is True, points
    for points in outside:
        assert domain.in_domain(points) is False, points
    expected_point = low if not np.isinf(low) else (high if not np.isinf(high) else 0)
    np.testing.assert_array_equal(domain.values, [expected_point])


# -- MultinomialDomain -----------------------------------------------------------------
def test_multinomial_domain_lists_every_tuple_once_in_qinfers_order():
    domain = MultinomialDomain(3, n_elements=4)
    _consistent(domain)
    assert domain.dtype == np.dtype([("k", np.int64, (4,))])
    assert domain.n_members == 20 == math.comb(3 + 3, 3)
    counts = domain.to_regular_array(domain.values)
    assert counts.shape == (20, 4)
    assert len({tuple(row) for row in counts}) == 20 and np.all(counts.sum(axis=1) == 3)
    # qinfer's order: (3, 0, 0, 0) first, then decreasing in the first count, then the next ...
    np.testing.assert_array_equal(counts[:5], [[3, 0, 0, 0], [2, 1, 0, 0], [2, 0, 1, 0], [2, 0, 0, 1],
                                               [1, 2, 0, 0]])
    np.testing.assert_array_equal(counts[-1], [0, 0, 0, 3])
    np.testing.assert_array_equal(domain.example_point["k"], [[3, 0, 0, 0]])


def test_multinomial_domain_membership_reads_the_one_field_whatever_its_name():
    domain = MultinomialDomain(5, n_elements=3)
    assert domain.in_domain(np.array([([4, 0, 1],)], dtype=[("l", np.int64, 3)]))
    assert domain.in_domain(domain.from_regular_array(np.array([[1, 0, 4], [2, 3, 0]])))
    assert not domain.in_domain(np.array([([4, 1, 0, 1],)], dtype=[("l", np.int64, 4)]))  # four counts
    assert not domain.in_domain(np.array([([1, 10, 3],), ([2, 2, 1],)], dtype=domain.dtype))  # sum 14
    assert not domain.in_domain(domain.from_regular_array(np.array([[-1, 0, 6]])))  # negative count
    assert not domain.in_domain(np.array([[1, 1, 3]]))  # plain counts are not records
    assert not domain.in_domain(RECORD)


def test_multinomial_domain_array_conversion_round_trips():
    domain = MultinomialDomain(5, n_elements=3)
    records = np.array([([1, 1, 3],)], dtype=domain.dtype)
    counts = np.array([[1, 1, 3]])
    np.testing.assert_array_equal(domain.to_regular_array(records), counts)
    assert domain.from_regular_array(counts) == records
    assert domain.from_regular_array(np.zeros((2, 4, 3), dtype=int)).shape == (2, 4)
    with pytest.raises(ValueError, match="length 3"):
        domain.from_regular_array(np.zeros((2, 4)))


def test_multinomial_domain_of_no_throws_has_one_member():
    domain = MultinomialDomain(0, n_elements=3)
    assert domain.n_members == 1
    np.testing.assert_array_equal(domain.values["k"], [[0, 0, 0]])


# -- ProductDomain ---------------------------------------------------------------------
def test_product_of_two_integer_domains():
    domain = ProductDomain(IntegerDomain(0, 5), IntegerDomain(-2, 2))
    _consistent(domain)
    assert domain.is_finite and domain.is_discrete and domain.n_members == 30
    assert domain.dtype.names == ("f0", "f1")
    pair = [("", "<i8"), ("", "<i8")]
    assert domain.in_domain(np.array([(0, 0)], dtype=pair))
    assert domain.in_domain(np.array([(5, 2), (0, -2)], dtype=pair))
    assert not domain.in_domain(np.array([(0.5, 0)], dtype=[("", "f8"), ("", "<i8")]))
    assert not domain.in_domain(np.array([(6, 2), (0, -2)], dtype=pair))
    # The first factor varies slowest.
    values = domain.values
    np.testing.assert_array_equal(values["f0"][:5], [0] * 5)
    np.testing.assert_array_equal(values["f1"][:5], [-2, -1, 0, 1, 2])
    records = np.array([(5, 2), (0, -1)], dtype=pair)
    parts = domain.to_regular_arrays(records)
    np.testing.assert_array_equal(parts[0], [5, 0])
    np.testing.assert_array_equal(parts[1], [2, -1])
    assert np.array_equal(domain.from_regular_arrays(parts), records.astype(domain.dtype))


def test_product_with_infinite_factors_is_infinite_but_discrete():
    domain = ProductDomain([IntegerDomain(0, 5), IntegerDomain(-2, np.inf), IntegerDomain(-np.inf, np.inf)])
    _consistent(domain)
    assert not domain.is_finite and domain.is_discrete
    triple = [("", "<i8")] * 3
    assert domain.in_domain(np.array([(5, 2, 0), (0, -2, 10)], dtype=triple))
    assert not domain.in_domain(np.array([(6, 2, 10)], dtype=triple))


def test_product_of_an_integer_and_a_multinomial_domain():
    domain = ProductDomain(IntegerDomain(0, 5), MultinomialDomain(5, n_elements=3))
    _consistent(domain)
    assert domain.dtype.names == ("f0", "k") and domain.n_members == 6 * 21
    assert domain.in_domain(np.array([(0, [1, 2, 2])], dtype=[("", "<i8"), ("", "<i8", 3)]))
    assert not domain.in_domain(np.array([(-10, [1, 2, 2])], dtype=[("", "<i8"), ("k", "<i8", 3)]))
    assert not domain.in_domain(np.array([(5, [-1, 6, 0])], dtype=[("", "<i8"), ("k", "<i8", 3)]))
    records = np.array([(5, [1, 2, 2]), (0, [5, 0, 0])], dtype=[("", "<i8"), ("k", "<i8", 3)])
    integers, counts = domain.to_regular_arrays(records)
    np.testing.assert_array_equal(integers, [5, 0])
    assert counts.dtype == MultinomialDomain(5, 3).dtype
    np.testing.assert_array_equal(counts["k"], [[1, 2, 2], [5, 0, 0]])
    assert np.array_equal(domain.from_regular_arrays([integers, counts]), records)


def test_product_of_two_multinomial_domains_names_the_second_field_by_position():
    domain = ProductDomain(MultinomialDomain(2, 2), MultinomialDomain(1, 3))
    assert domain.dtype.names == ("k", "f1")
    _consistent(domain)


def test_product_domain_needs_domains():
    with pytest.raises(TypeError, match="Domain"):
        ProductDomain()
    with pytest.raises(TypeError, match="Domain"):
        ProductDomain(IntegerDomain(0, 1), 3)
