"""Checking and normalising a call's arrays on the root, before any communication.

The proxy promises the serial model's answer, bit for bit. The workers can
only compute it if the arrays they read hold exactly the values the serial
model would have seen, so the rules here are numpy's own assignment rules,
with two kinds of refusal:

* what cannot cross between processes at all: Python objects (an ``object``
  dtype, or a record with an ``object`` field), whose bytes are pointers;
* what numpy's cast would change: a value the model's experiment dtype cannot
  hold exactly (``-1`` for a ``uint64`` field, ``2.5`` for an integer field), a
  sub-array numpy would pad or cut, a field the model reads but the array
  lacks, fields read from a plain array. The serial model would have seen the
  original values (or failed); the workers would read others.

Each refusal is a ``TypeError`` or ``ValueError`` naming the argument and
saying why; where numpy itself would fail in the serial model (a missing
field, fields of a plain array), the error is also of numpy's type, so code
that catches the serial model's error catches the proxy's.

What comes out (the contract with the transport)
------------------------------------------------
* :func:`as_expparams`: a 1-d, C-contiguous array whose dtype is exactly
  :func:`wire_dtype` of the model's ``expparams_dtype`` (that dtype with every
  field in native byte order), holding numpy's cast of the input, fields taken
  by name. The workers read the bytes with that same dtype.
* :func:`as_outcomes`: a 1-d, C-contiguous, native-endian array of the
  caller's own dtype (numeric, or a record without objects).
* :func:`as_modelparams`: a C-contiguous, native-endian ``(n_models,
  n_modelparams)`` array of the caller's own numeric dtype.

The common case (arrays already in that form) costs a few attribute reads.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

__all__ = [
    "as_outcomes",
    "as_modelparams",
    "as_expparams",
    "as_repeat",
    "wire_dtype",
    "UnsendableDtypeError",
    "InexactCastError",
    "MissingFieldError",
    "NotARecordError",
]

_NUMERIC_KINDS = "biufc"
_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


class UnsendableDtypeError(TypeError):
    """The array holds Python objects (pointers), which cannot be sent to other processes."""


class InexactCastError(TypeError):
    """numpy's cast to the model's dtype would change a value: the workers would not read what the serial model sees."""


class MissingFieldError(TypeError, ValueError):
    """A field of the model's experiment dtype is missing (numpy raises ``ValueError`` for ``array['name']``)."""


class NotARecordError(TypeError, IndexError):
    """A plain array where the model reads record fields (numpy raises ``IndexError`` for ``array['name']``)."""


def wire_dtype(expparams_dtype) -> np.dtype:
    """The dtype experiment parameters travel in: the model's, every field in native byte order.

    Workers must read the bytes :func:`as_expparams` produced with exactly
    this dtype.

    Parameters
    ----------
    expparams_dtype : numpy.dtype or anything ``numpy.dtype`` accepts
        The model's ``expparams_dtype`` (a list of fields, as qinfer models
        give, works too).

    Raises
    ------
    UnsendableDtypeError
        If the dtype holds Python objects.
    """
    return _wire_dtype(np.dtype(expparams_dtype))


@functools.lru_cache(maxsize=256)
def _wire_dtype(want: np.dtype) -> np.dtype:
    if want.hasobject:
        raise UnsendableDtypeError(
            f"the model's expparams_dtype {want} has Python-object fields, which cannot be sent between processes; "
            "use numeric or fixed-size string fields"
        )
    return want.newbyteorder("=")


def _native_contiguous(array: np.ndarray) -> np.ndarray:
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def as_outcomes(outcomes) -> np.ndarray:
    """Outcomes as a 1-d array of their own dtype, native-endian and C-contiguous.

    A scalar (also a single record, ``numpy.void``) becomes one element, as in
    qinfer. Numbers and records (such as a multinomial model's
    ``[('k', int, (6,))]``) are taken as they are.

    Raises
    ------
    ValueError
        If ``outcomes`` has more than one dimension.
    UnsendableDtypeError
        If ``outcomes`` holds Python objects.
    """
    if type(outcomes) is np.ndarray and outcomes.dtype is _INT64 and outcomes.ndim == 1 \
            and outcomes.flags.c_contiguous:
        return outcomes  # the common case, checked in a few attribute reads
    array = np.asarray(outcomes)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"outcomes must be a scalar or a 1-d array, got shape {array.shape}")
    if array.dtype.hasobject:
        raise UnsendableDtypeError(
            f"outcomes of dtype {array.dtype} hold Python objects, which cannot be sent between processes; "
            "pass numbers or records"
        )
    return _native_contiguous(array)


def as_modelparams(modelparams, n_modelparams: int) -> np.ndarray:
    """Model parameters as a C-contiguous, native-endian ``(n_models, n_modelparams)`` numeric array.

    The dtype is the caller's (any real or complex number type, as the serial
    model would have seen it).

    Raises
    ------
    ValueError
        If the shape is not ``(n_models, n_modelparams)``.
    TypeError
        If the values are not numbers (:class:`UnsendableDtypeError` for objects).
    """
    if type(modelparams) is np.ndarray and modelparams.dtype is _FLOAT64 and modelparams.ndim == 2 \
            and modelparams.shape[1] == n_modelparams and modelparams.flags.c_contiguous:
        return modelparams
    array = np.asarray(modelparams)
    if array.ndim != 2 or array.shape[1] != n_modelparams:
        raise ValueError(
            f"modelparams must be a 2-d array of shape (n_models, {n_modelparams}), got shape {array.shape}"
        )
    if array.dtype.hasobject:
        raise UnsendableDtypeError(
            f"modelparams of dtype {array.dtype} hold Python objects, which cannot be sent between processes"
        )
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.names is not None:
        raise TypeError(f"modelparams must be numbers (model parameters are real), got dtype {array.dtype}")
    return _native_contiguous(array)


def as_expparams(expparams, expparams_dtype) -> np.ndarray:
    """Experiment parameters as the 1-d array of :func:`wire_dtype` the workers read.

    Follows numpy's assignment rules, so the values are those the serial model
    would have seen:

    * record fields are taken by name, in any order; fields the model does not
      have are left out (the model never reads them);
    * each field is cast as numpy casts it (``int64`` values into a ``uint64``
      field, a scalar into every element of a sub-array field), but only when
      every value survives the cast unchanged;
    * big-endian (or any non-native) data arrive native-endian, same values;
    * a model without experiment parameters (an empty record dtype, as a
      coin's) takes any 1-d array: only its length counts.

    Parameters
    ----------
    expparams : array_like, 1-d
    expparams_dtype : numpy.dtype
        The model's ``expparams_dtype``.

    Returns
    -------
    numpy.ndarray
        1-d, C-contiguous, of dtype ``wire_dtype(expparams_dtype)``; the input
        itself when it already is exactly that.

    Raises
    ------
    ValueError
        If ``expparams`` is not 1-d.
    MissingFieldError
        If a field of the model's dtype is missing (also a ``ValueError``, as
        numpy's ``array['name']``).
    NotARecordError
        If a plain array is given where the model has record fields (also an
        ``IndexError``, as numpy's ``array['name']`` on a plain array).
    InexactCastError
        If numpy's cast would change a value, or pad or cut a sub-array.
    UnsendableDtypeError
        If the model's dtype holds Python objects.
    TypeError
        If a record is given where the model takes plain values, or a field's
        kind (number, string, date) cannot become the model's.
    """
    if type(expparams) is np.ndarray:
        dtype = expparams.dtype
        if dtype == expparams_dtype and expparams.ndim == 1 and dtype.isnative and not dtype.hasobject \
                and expparams.flags.c_contiguous:
            return expparams  # the common case, checked in a few attribute reads
    want = np.dtype(expparams_dtype)
    wire = _wire_dtype(want)
    if want.subdtype is not None:
        raise TypeError(f"the model's expparams_dtype {want} is a sub-array dtype; put the sub-array in a record field")
    array = np.asarray(expparams)
    if array.ndim != 1:
        raise ValueError(f"expparams must be a 1-d array of dtype {want}, got shape {array.shape}")
    if array.dtype == wire:
        return np.ascontiguousarray(array)
    if array.dtype == want:  # the model's own, non-native dtype: same values, native bytes
        return np.ascontiguousarray(array.astype(wire))
    if want.names is not None and len(want.names) == 0:
        return np.zeros(len(array), dtype=wire)  # nothing to carry but the number of experiments
    if want.names is None:
        if array.dtype.names is not None:
            raise TypeError(f"expparams must be plain values of dtype {want}, got records of dtype {array.dtype}")
        return np.ascontiguousarray(_exact_cast(array, wire, "expparams"))
    if array.dtype.names is None:
        raise NotARecordError(
            f"expparams must be a record array with fields {list(want.names)}, got plain dtype {array.dtype} "
            "(the serial model's expparams[field] would fail)"
        )
    missing = [name for name in want.names if name not in array.dtype.names]
    if missing:
        raise MissingFieldError(
            f"expparams must have the model's fields {list(want.names)}; missing {missing} "
            f"(it has {list(array.dtype.names)})"
        )
    converted = np.empty(len(array), dtype=wire)
    for name in want.names:
        _fill_field(converted, array, name)
    return converted


def _fill_field(converted: np.ndarray, array: np.ndarray, name: str) -> None:
    """Set field ``name`` of ``converted`` to numpy's cast of the same field of ``array``, checked exact."""
    source, target = array.dtype.fields[name][0], converted.dtype.fields[name][0]
    where = f"expparams field {name!r}"
    if target.base.names is not None or source.base.names is not None:
        # A record inside a record: numpy would match its fields by position. Take only the model's own layout.
        if source.newbyteorder("=") != target:
            raise TypeError(f"{where} has dtype {source}; this nested record must have the model's dtype {target}")
        converted[name] = array[name]
        return
    _check_kinds(source.base, target.base, where)
    if source.shape == target.shape:
        values = array[name]
        if _always_exact(source.base, target.base) or _integers_fit(values, target.base):
            converted[name] = values  # plain field assignment: every value survives
            return
    # numpy's cast of one record field (one-field views): a scalar fills a sub-array, as in array.astype(...).
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cast = array[[name]].astype(np.dtype([(name, target)]), casting="unsafe")[name]
    _check_exact(array[name], cast, where, target)
    converted[name] = cast


@functools.lru_cache(maxsize=256)
def _always_exact(source: np.dtype, target: np.dtype) -> bool:
    """Whether every value of ``source`` survives numpy's cast to ``target`` (decided from the dtypes alone).

    numpy's "safe" casts, except integers into a float too narrow for them
    (``int64`` into ``float64`` is "safe" but rounds above 2**53).
    """
    if not np.can_cast(source, target, "safe"):
        return False
    if source.kind in "iu" and target.kind in "fc":
        return 8 * source.itemsize <= np.finfo(target).nmant + 1
    return True


def _integers_fit(values: np.ndarray, target: np.dtype) -> bool:
    """Integers into another integer type: exact when they lie in its range (two reductions, no cast)."""
    if values.dtype.kind not in "iu" or target.kind not in "iu":
        return False
    if values.size == 0:
        return True
    limits = np.iinfo(target)
    return int(values.min()) >= limits.min and int(values.max()) <= limits.max


def _check_kinds(source: np.dtype, target: np.dtype, where: str) -> None:
    if source.hasobject:  # numpy converts each object as it would a Python number or string
        return
    numeric = source.kind in _NUMERIC_KINDS and target.kind in _NUMERIC_KINDS
    if not numeric and source.kind != target.kind:
        raise TypeError(f"{where} has dtype {source}, which numpy cannot turn into the model's {target} exactly")


def _exact_cast(array: np.ndarray, target: np.dtype, where: str) -> np.ndarray:
    _check_kinds(array.dtype, target, where)
    if _always_exact(array.dtype, target) or _integers_fit(array, target):
        return array.astype(target)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cast = array.astype(target, casting="unsafe")
    _check_exact(array, cast, where, target)
    return cast


def _check_exact(source: np.ndarray, cast: np.ndarray, where: str, target: np.dtype) -> None:
    """Raise InexactCastError unless ``cast`` holds every value of ``source`` unchanged.

    Both have the experiments on the first axis; a sub-array of ``source``
    must spread over ``cast``'s by broadcasting (a scalar fills a vector), as
    numpy's cast does: padding or cutting would invent or drop values.
    """
    n, source_sub, cast_sub = len(source), source.shape[1:], cast.shape[1:]
    pad = len(cast_sub) - len(source_sub)
    try:
        if pad < 0 or np.broadcast_shapes((1,) * pad + source_sub, cast_sub) != cast_sub:
            raise ValueError
    except ValueError:
        raise InexactCastError(
            f"{where} has sub-arrays of shape {source_sub}, the model's field {cast_sub}: numpy would pad or cut "
            "them, so the workers would not read what the serial model sees"
        ) from None
    expected = np.broadcast_to(source.reshape((n,) + (1,) * pad + source_sub), cast.shape)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        # Compared both ways: in the promoted type, and after casting back (catches 2**53 + 1 into a float).
        same = np.asarray(cast == expected) & np.asarray(cast.astype(source.dtype) == expected)
        if cast.dtype.kind in "fc" and expected.dtype.kind in "fc":
            same |= np.isnan(cast) & np.isnan(expected)
    if not np.all(same):
        index = tuple(int(i[0]) for i in np.nonzero(~same))
        raise InexactCastError(
            f"{where} holds {expected[index]}, which the model's dtype {target} cannot hold exactly "
            f"(numpy's cast gives {cast[index]}); the workers would read another value than the serial model sees"
        )


def as_repeat(repeat) -> int:
    """The number of simulated repetitions, a positive integer."""
    if isinstance(repeat, (bool, np.bool_)) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"repeat must be a positive integer, got {repeat!r}")
    return int(repeat)
