"""Outcome domains: the sets a model's outcomes come from (qinfer's ``qinfer.domains``).

Every model answers ``model.domain(expparams)`` with a list of domains, one per
experiment (or, for ``expparams=None`` and a model whose outcomes do not depend
on the experiment, the one domain). A domain says whether it is finite, how many
members it has, their dtype, and (for finite ones) every member, which is what
experiment design sums over.

* :class:`RealDomain`: an interval of the real line (``float64`` outcomes);
* :class:`IntegerDomain`: consecutive integers, either end possibly infinite
  (``int64`` outcomes);
* :class:`MultinomialDomain`: tuples of ``n_elements`` counts summing to
  ``n_meas`` (records with one field ``'k'``);
* :class:`ProductDomain`: the cartesian product of other domains (records with
  one field per factor).

Membership tests (:meth:`Domain.in_domain`) answer False, never raise, for
points of another kind (complex, strings, records where numbers are expected).
"""

from __future__ import annotations

import abc
import itertools
import math

import numpy as np

__all__ = ["Domain", "RealDomain", "IntegerDomain", "MultinomialDomain", "ProductDomain"]

#: dtype kinds that hold numbers a numeric domain can compare (booleans count as 0 and 1).
_NUMBER_KINDS = frozenset("biuf")


def _as_numbers(points) -> np.ndarray | None:
    """``points`` as a real numeric array, or None when they are not real numbers at all.

    Complex points with zero imaginary parts count as real (qinfer's ``np.isreal`` test).
    """
    try:
        points = np.asarray(points)
    except (TypeError, ValueError):  # ragged or otherwise not an array
        return None
    kind = points.dtype.kind
    if kind == "c":
        if np.any(points.imag != 0):
            return None
        return points.real
    if kind not in _NUMBER_KINDS:
        return None  # records, strings, dates, Python objects
    return points


def _is_infinite(bound) -> bool:
    return isinstance(bound, float) and math.isinf(bound)


def _integer_bound(value, name: str):
    """An integer bound as a Python int, or ``±inf`` kept as a float."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"IntegerDomain: {name} must be an integer or ±inf, got {value!r}") from None
    if math.isnan(as_float):
        raise ValueError(f"IntegerDomain: {name} must be an integer or ±inf, got nan")
    if math.isinf(as_float):
        return as_float
    return int(value)


class Domain(abc.ABC):
    """The set of values an outcome can take (qinfer's ``Domain``).

    Subclasses provide :attr:`is_continuous`, :attr:`is_finite`,
    :attr:`dtype`, :attr:`n_members`, :attr:`example_point`, :attr:`values`
    and :meth:`in_domain`.
    """

    @property
    @abc.abstractmethod
    def is_continuous(self) -> bool:
        """bool : Whether the domain has uncountably many members."""

    @property
    @abc.abstractmethod
    def is_finite(self) -> bool:
        """bool : Whether the domain has finitely many members."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype:
        """numpy.dtype : The dtype of one member."""

    @property
    @abc.abstractmethod
    def n_members(self):
        """int or float : How many members the domain has; ``numpy.inf`` if infinitely many."""

    @property
    @abc.abstractmethod
    def example_point(self) -> np.ndarray:
        """numpy.ndarray : One member, as an array of one element of :attr:`dtype`."""

    @property
    @abc.abstractmethod
    def values(self) -> np.ndarray:
        """numpy.ndarray : Every member once, if the domain is finite; else some members."""

    @property
    def is_discrete(self) -> bool:
        """bool : Whether the domain has countably many members (not :attr:`is_continuous`)."""
        return not self.is_continuous

    @abc.abstractmethod
    def in_domain(self, points) -> bool:
        """Whether every one of ``points`` is a member of the domain.

        Parameters
        ----------
        points : array_like
            Values to test; points of another kind (strings, records where
            numbers are expected, complex numbers) are not members.

        Returns
        -------
        bool
        """


class RealDomain(Domain):
    """The real numbers from ``min`` to ``max``, both included (either may be infinite).

    Parameters
    ----------
    min, max : float, optional
        The ends of the interval (default the whole real line).
    """

    def __init__(self, min: float = -np.inf, max: float = np.inf):
        self._min = min
        self._max = max

    @property
    def min(self):
        """float : The smallest member (``-inf`` if unbounded below)."""
        return self._min

    @property
    def max(self):
        """float : The largest member (``inf`` if unbounded above)."""
        return self._max

    @property
    def is_continuous(self) -> bool:
        """bool : Always True."""
        return True

    @property
    def is_finite(self) -> bool:
        """bool : Always False."""
        return False

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype : ``float64``."""
        return np.dtype(np.float64)

    @property
    def n_members(self) -> float:
        """float : ``numpy.inf``."""
        return np.inf

    @property
    def example_point(self) -> np.ndarray:
        """numpy.ndarray : ``[min]`` if finite, else ``[max]`` if finite, else ``[0.0]``."""
        for bound in (self._min, self._max):
            if not np.isinf(bound):
                return np.array([bound], dtype=self.dtype)
        return np.array([0], dtype=self.dtype)

    @property
    def values(self) -> np.ndarray:
        """numpy.ndarray : The :attr:`example_point` (a continuum cannot be listed)."""
        return self.example_point

    def in_domain(self, points) -> bool:
        """Whether every one of ``points`` is a real number in ``[min, max]`` (see :meth:`Domain.in_domain`)."""
        points = _as_numbers(points)
        if points is None:
            return False
        return bool(np.all(points >= self._min) and np.all(points <= self._max))

    def __eq__(self, other) -> bool:
        if not isinstance(other, RealDomain):
            return NotImplemented
        return (self._min, self._max) == (other._min, other._max)

    def __hash__(self) -> int:
        return hash((RealDomain, self._min, self._max))

    def __repr__(self) -> str:
        return f"RealDomain(min={self._min}, max={self._max})"


class IntegerDomain(Domain):
    """The integers ``min, min + 1, ..., max``; either end may be infinite.

    Parameters
    ----------
    min : int or float, optional
        Smallest member, or ``-numpy.inf`` (default 0).
    max : int or float, optional
        Largest member, or ``numpy.inf`` (default ``numpy.inf``, as in
        qinfer). Note that ``max`` is included.

    Raises
    ------
    TypeError, ValueError
        A bound that is neither a number nor ``±inf`` (NaN included).
    """

    def __init__(self, min=0, max=np.inf):
        self._min = _integer_bound(min, "min")
        self._max = _integer_bound(max, "max")

    @property
    def min(self):
        """int or float : The smallest member, or ``-inf``."""
        return self._min

    @property
    def max(self):
        """int or float : The largest member, or ``inf``."""
        return self._max

    @property
    def is_continuous(self) -> bool:
        """bool : Always False."""
        return False

    @property
    def is_finite(self) -> bool:
        """bool : Whether both ends are finite."""
        return not (_is_infinite(self._min) or _is_infinite(self._max))

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype : ``int64``."""
        return np.dtype(np.int64)

    @property
    def n_members(self):
        """int or float : ``max - min + 1`` (at least 0), or ``numpy.inf`` if an end is infinite."""
        if not self.is_finite:
            return np.inf
        return int(self._max - self._min + 1) if self._max >= self._min else 0

    @property
    def example_point(self) -> np.ndarray:
        """numpy.ndarray : ``[min]`` if finite, else ``[max]`` if finite, else ``[0]``."""
        for bound in (self._min, self._max):
            if not _is_infinite(bound):
                return np.array([bound], dtype=self.dtype)
        return np.array([0], dtype=self.dtype)

    @property
    def values(self) -> np.ndarray:
        """numpy.ndarray : Every member in increasing order if finite, else the :attr:`example_point`."""
        if not self.is_finite:
            return self.example_point
        return np.arange(self._min, self._max + 1, dtype=self.dtype)

    def in_domain(self, points) -> bool:
        """Whether every one of ``points`` is an integer in ``[min, max]`` (see :meth:`Domain.in_domain`).

        Integer-valued floats (``3.0``) count as integers.
        """
        points = _as_numbers(points)
        if points is None:
            return False
        with np.errstate(invalid="ignore"):  # mod of inf or nan: nan, which is not 0
            integers = np.all(np.mod(points, 1) == 0)
        return bool(integers and np.all(points >= self._min) and np.all(points <= self._max))

    def __eq__(self, other) -> bool:
        if not isinstance(other, IntegerDomain):
            return NotImplemented
        return (self._min, self._max) == (other._min, other._max)

    def __hash__(self) -> int:
        return hash((IntegerDomain, self._min, self._max))

    def __repr__(self) -> str:
        return f"IntegerDomain(min={self._min}, max={self._max})"


class MultinomialDomain(Domain):
    """Tuples of ``n_elements`` non-negative integers that sum to ``n_meas``.

    A member is a record with one field ``'k'``, an ``int64`` sub-array of
    ``n_elements`` counts: how many of ``n_meas`` throws of an
    ``n_elements``-sided die landed on each side.

    Parameters
    ----------
    n_meas : int
        The sum of every tuple.
    n_elements : int, optional
        The length of a tuple (default 2).
    """

    def __init__(self, n_meas, n_elements: int = 2):
        self._n_meas = int(n_meas)
        self._n_elements = int(n_elements)
        if self._n_meas < 0 or self._n_elements < 1:
            raise ValueError(
                f"MultinomialDomain needs n_meas >= 0 and n_elements >= 1, got n_meas={n_meas!r}, "
                f"n_elements={n_elements!r}"
            )

    @property
    def n_meas(self) -> int:
        """int : The sum of every tuple."""
        return self._n_meas

    @property
    def n_elements(self) -> int:
        """int : The length of a tuple."""
        return self._n_elements

    @property
    def is_continuous(self) -> bool:
        """bool : Always False."""
        return False

    @property
    def is_finite(self) -> bool:
        """bool : Always True."""
        return True

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype : ``[('k', int64, (n_elements,))]``."""
        return np.dtype([("k", np.int64, (self._n_elements,))])

    @property
    def n_members(self) -> int:
        """int : ``C(n_meas + n_elements - 1, n_elements - 1)``, the number of such tuples."""
        return math.comb(self._n_meas + self._n_elements - 1, self._n_elements - 1)

    @property
    def example_point(self) -> np.ndarray:
        """numpy.ndarray : ``[(n_meas, 0, ..., 0)]``."""
        counts = np.zeros((1, self._n_elements), dtype=np.int64)
        counts[0, 0] = self._n_meas
        return self.from_regular_array(counts)

    @property
    def values(self) -> np.ndarray:
        """numpy.ndarray : Every tuple once, ``(n_meas, 0, ...)`` first, in qinfer's order."""
        # Each way to pick n_meas sides with repetition, in lexicographic order, counted per side.
        counts = np.zeros((self.n_members, self._n_elements), dtype=np.int64)
        picks = itertools.combinations_with_replacement(range(self._n_elements), self._n_meas)
        for row, pick in enumerate(picks):
            counts[row] = np.bincount(np.array(pick, dtype=np.intp), minlength=self._n_elements)
        return self.from_regular_array(counts)

    def to_regular_array(self, A) -> np.ndarray:
        """The counts of records ``A`` as an ``int64`` array with one more axis, of length ``n_elements``.

        Parameters
        ----------
        A : numpy.ndarray
            Records with one sub-array field (of any name).

        Returns
        -------
        numpy.ndarray of int64, shape ``A.shape + (n_elements,)``
        """
        A = np.asarray(A)
        names = A.dtype.names
        if names is None or len(names) != 1:
            raise TypeError(f"expected records with one field of counts, got dtype {A.dtype}")
        return np.asarray(A[names[0]], dtype=np.int64).reshape(A.shape + (-1,))

    def from_regular_array(self, A) -> np.ndarray:
        """Records of :attr:`dtype` from integer counts ``A`` whose last axis has length ``n_elements``.

        Parameters
        ----------
        A : array_like of int, shape ``(..., n_elements)``

        Returns
        -------
        numpy.ndarray of :attr:`dtype`, shape ``A.shape[:-1]``
        """
        A = np.asarray(A)
        if A.ndim == 0 or A.shape[-1] != self._n_elements:
            raise ValueError(f"expected counts whose last axis has length {self._n_elements}, got shape {A.shape}")
        records = np.empty(A.shape[:-1], dtype=self.dtype)
        records["k"] = A
        return records

    def in_domain(self, points) -> bool:
        """Whether every record of ``points`` holds ``n_elements`` non-negative integers summing to ``n_meas``.

        ``points`` must be records with one sub-array field (of any name); any
        other array is not in the domain (see :meth:`Domain.in_domain`).
        """
        try:
            points = np.asarray(points)
        except (TypeError, ValueError):
            return False
        names = points.dtype.names
        if names is None or len(names) != 1:
            return False
        counts = _as_numbers(points[names[0]])
        if counts is None:
            return False
        counts = counts.reshape(points.shape + (-1,))
        if counts.shape[-1] != self._n_elements:
            return False
        with np.errstate(invalid="ignore"):
            integers = np.all(np.mod(counts, 1) == 0)
        return bool(integers and np.all(counts >= 0) and np.all(counts.sum(axis=-1) == self._n_meas))

    def __eq__(self, other) -> bool:
        if not isinstance(other, MultinomialDomain):
            return NotImplemented
        return (self._n_meas, self._n_elements) == (other._n_meas, other._n_elements)

    def __hash__(self) -> int:
        return hash((MultinomialDomain, self._n_meas, self._n_elements))

    def __repr__(self) -> str:
        return f"MultinomialDomain(n_meas={self._n_meas}, n_elements={self._n_elements})"


def _field_specs(dtype: np.dtype, used: set) -> list[tuple]:
    """The record fields a factor of this dtype contributes to a product: its own, or one unnamed field."""
    if dtype.names is None:
        return [("", dtype)]
    specs = []
    for name in dtype.names:
        field = dtype.fields[name][0]
        # A name taken by an earlier factor (two multinomial factors both say 'k') becomes f<i>.
        specs.append(("" if name in used else name, field))
        used.add(name)
    return specs


class ProductDomain(Domain):
    """The cartesian product of other domains: a member is a record with each factor's value in turn.

    A factor with plain values (an :class:`IntegerDomain`) adds one field,
    unnamed (numpy calls it ``f<i>``, by its position); a factor with record
    values (a :class:`MultinomialDomain`) adds its own fields. Membership
    reads the fields by position, whatever their names.

    Parameters
    ----------
    *domains : Domain
        The factors, as separate arguments or as one sequence.
    """

    def __init__(self, *domains):
        if len(domains) == 1 and not isinstance(domains[0], Domain):
            domains = tuple(domains[0])
        if not domains or not all(isinstance(domain, Domain) for domain in domains):
            raise TypeError(f"ProductDomain needs one or more Domain instances, got {domains!r}")
        self._domains = tuple(domains)
        used: set = set()
        specs, self._spans = [], []
        for domain in self._domains:
            own = _field_specs(np.dtype(domain.dtype), used)
            self._spans.append((len(specs), len(specs) + len(own)))
            specs.extend(own)
        self._dtype = np.dtype(specs)

    @property
    def domains(self) -> tuple:
        """tuple of Domain : The factors, in order."""
        return self._domains

    @property
    def is_continuous(self) -> bool:
        """bool : Whether any factor is continuous."""
        return any(domain.is_continuous for domain in self._domains)

    @property
    def is_finite(self) -> bool:
        """bool : Whether every factor is finite."""
        return all(domain.is_finite for domain in self._domains)

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype : Records with the factors' fields in turn."""
        return self._dtype

    @property
    def n_members(self):
        """int or float : The product of the factors' counts, or ``numpy.inf``."""
        if not self.is_finite:
            return np.inf
        return math.prod(int(domain.n_members) for domain in self._domains)

    @property
    def example_point(self) -> np.ndarray:
        """numpy.ndarray : The factors' example points joined into one record."""
        return self.from_regular_arrays([np.asarray(domain.example_point)[:1] for domain in self._domains])

    @property
    def values(self) -> np.ndarray:
        """numpy.ndarray : Every combination of the factors' values, the first factor varying slowest."""
        factor_values = [np.asarray(domain.values).reshape(-1) for domain in self._domains]
        grids = np.meshgrid(*[np.arange(values.size) for values in factor_values], indexing="ij")
        return self.from_regular_arrays(
            [values[grid.reshape(-1)] for values, grid in zip(factor_values, grids)]
        )

    def to_regular_arrays(self, array) -> list[np.ndarray]:
        """Split records of this domain into one array per factor, each of the factor's dtype.

        Parameters
        ----------
        array : numpy.ndarray
            Records with as many fields as :attr:`dtype` (read by position).

        Returns
        -------
        list of numpy.ndarray
        """
        array = np.asarray(array)
        names = array.dtype.names
        if names is None or len(names) != len(self._dtype.names):
            raise TypeError(f"expected records with {len(self._dtype.names)} fields, got dtype {array.dtype}")
        parts = []
        for domain, (start, stop) in zip(self._domains, self._spans):
            factor_dtype = np.dtype(domain.dtype)
            if factor_dtype.names is None:
                parts.append(np.asarray(array[names[start]]).astype(factor_dtype))
                continue
            part = np.empty(array.shape, dtype=factor_dtype)
            for name, source in zip(factor_dtype.names, names[start:stop]):
                part[name] = array[source]
            parts.append(part)
        return parts

    def from_regular_arrays(self, arrays) -> np.ndarray:
        """Join one array per factor (all of one shape) into records of :attr:`dtype`.

        Parameters
        ----------
        arrays : sequence of numpy.ndarray
            One per factor, plain values or the factor's records.

        Returns
        -------
        numpy.ndarray of :attr:`dtype`
        """
        arrays = [np.asarray(array) for array in arrays]
        if len(arrays) != len(self._domains):
            raise ValueError(f"expected {len(self._domains)} arrays, one per factor, got {len(arrays)}")
        joined = np.empty(arrays[0].shape, dtype=self._dtype)
        names = self._dtype.names
        for array, (start, stop) in zip(arrays, self._spans):
            sources = (None,) if array.dtype.names is None else array.dtype.names
            for target, source in zip(names[start:stop], sources):
                joined[target] = array if source is None else array[source]
        return joined

    def in_domain(self, points) -> bool:
        """Whether each record's fields, by position, are members of the factors (see :meth:`Domain.in_domain`)."""
        try:
            points = np.asarray(points)
        except (TypeError, ValueError):
            return False
        names = points.dtype.names
        if names is None or len(names) != len(self._dtype.names):
            return False
        for domain, (start, stop) in zip(self._domains, self._spans):
            if np.dtype(domain.dtype).names is None:
                part = points[names[start]]
            else:
                # The factor's fields as records of their own, with the caller's field dtypes and names.
                fields = names[start:stop]
                part = np.empty(points.shape, dtype=[(name, points.dtype.fields[name][0]) for name in fields])
                for name in fields:
                    part[name] = points[name]
            if not domain.in_domain(part):
                return False
        return True

    def __eq__(self, other) -> bool:
        if not isinstance(other, ProductDomain):
            return NotImplemented
        return self._domains == other._domains

    def __hash__(self) -> int:
        return hash((ProductDomain, self._domains))

    def __repr__(self) -> str:
        return f"ProductDomain({', '.join(map(repr, self._domains))})"
