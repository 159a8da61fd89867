"""Which calls can travel, checked on the root before any communication.

The proxy never converts what the caller passes: arrays cross the wire as raw
bytes in their own dtype (byte order, record fields, sub-arrays and all), so
every rank's serial model sees exactly the dtype and values that the serial
model would have seen. The only change is a C-contiguous copy of a strided
array, which holds the same values.

So the only question asked here is whether a call *can* travel. One that
cannot — strings or Python objects, shapes that cannot be split by rows, a
parameter count or record fields the model does not have, a repeat count that
is not a positive integer — runs on the root's serial model instead, which
accepts or rejects it exactly as it would without the proxy.

Nor is anything turned into an array on the way: a list, a tuple or an
ndarray subclass (a masked array, a matrix) would reach the workers' models
as a plain ndarray while the serial model sees the caller's object, which it
may treat differently or reject. Such a call runs on the root's serial model
too, so the same input meets the same outcome on every call, whichever path
the threshold picks. The one exception is a scalar outcome (a Python or NumPy
number, a record scalar), which every rank's model gets as a 0-d array of its
dtype: NumPy treats the two alike.

Answers come back the same way, as raw bytes of the dtype the model returned
(strings and dates included: fixed-size bytes). The one kind that cannot is
an answer holding Python objects: its bytes are pointers into the memory of
the rank that made it. Every rank checks its own answer with
:func:`answer_travels` right after the serial model returns, and a rank whose
answer cannot travel fails the call with :func:`untravelable_answer`'s
``TypeError`` instead of sending it, so the ranks stay in step and the root
raises that error.
"""

from __future__ import annotations

import numpy as np

__all__ = ["transportable", "as_array", "answer_travels", "untravelable_answer"]

_NDARRAY = np.ndarray
#: Kinds of data that travel: numbers and records (bytes of the caller's own
#: dtype). Strings, dates and Python objects are left to the serial model.
_TRAVELS = frozenset("biufcV")
#: Model parameters travel when they are real numbers (anything else is the serial model's to reject).
_REAL = frozenset("biuf")
#: Outcomes that travel without being an ndarray: scalars, which arrive as 0-d arrays of their dtype.
_SCALARS = (int, float, complex, np.generic)


def as_array(value, ndims: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as an array of one of ``ndims`` that can travel as raw bytes, or None.

    The array is ``value`` itself when it already is a C-contiguous ndarray
    (the common case costs a few attribute reads), else a C-contiguous copy of
    the same dtype and values. None for anything holding Python objects, of
    another number of dimensions, or that NumPy cannot turn into an array.
    """
    if type(value) is not _NDARRAY:
        try:
            value = np.asarray(value)
        except Exception:  # noqa: BLE001 - ragged or otherwise not an array: the serial model decides
            return None
    dtype = value.dtype
    if value.ndim not in ndims or dtype.kind not in _TRAVELS or dtype.hasobject:
        return None
    if not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    return value


def _fields_match(have: np.dtype, want: np.dtype) -> bool:
    """Whether an expparams dtype has the model's fields (any order, any field dtypes).

    A model without experiment parameters (``expparams_dtype`` ``[]``, qinfer's
    coin) needs no field: any 1-d array of the right length will do.
    """
    if have == want or want.names == ():
        return True
    if want.names is None or have.names is None:
        return want.names is None and have.names is None
    return set(have.names) == set(want.names)


def transportable(model, modelparams, expparams=None, outcomes=None, repeat=None):
    """The call's arrays, ready to travel, or None when the call must run on the root.

    Parameters
    ----------
    model : Model
        The serial model (for ``n_modelparams`` and ``expparams_dtype``).
    modelparams : numpy.ndarray
        Must be 2-d real numbers with ``model.n_modelparams`` columns.
    expparams : numpy.ndarray or None
        1-d, with the model's record fields (in any order, of any dtypes that
        the caller chose), or None for a call without experiments.
    outcomes : numpy.ndarray, scalar or None
        A scalar or a 1-d array of numbers or records.
    repeat : int or None
        None for a call that has none, else it must be a positive integer.

    Returns
    -------
    tuple of (modelparams, expparams, outcomes) or None
    """
    if type(modelparams) is not _NDARRAY or (expparams is not None and type(expparams) is not _NDARRAY) or (
            outcomes is not None and type(outcomes) is not _NDARRAY and not isinstance(outcomes, _SCALARS)):
        return None  # a list, a tuple, an ndarray subclass: only the serial model knows what it means
    modelparams = as_array(modelparams, (2,))
    if modelparams is None or modelparams.shape[1] != model.n_modelparams or modelparams.dtype.kind not in _REAL:
        return None
    if expparams is not None:
        expparams = as_array(expparams, (1,))
        if expparams is None or not _fields_match(expparams.dtype, np.dtype(model.expparams_dtype)):
            return None
    if outcomes is not None:
        outcomes = as_array(outcomes, (0, 1))
        if outcomes is None:
            return None
    if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1):
        return None
    return modelparams, expparams, outcomes


def answer_travels(dtype: np.dtype) -> bool:
    """Whether answers of ``dtype`` can be moved between ranks: anything but Python objects.

    Object arrays (and records with object fields) hold pointers, which mean
    nothing on another rank; every other dtype is fixed-size bytes.
    """
    return not dtype.hasobject


def untravelable_answer(name: str, dtype: np.dtype) -> TypeError:
    """The error of a call whose serial model answered in ``dtype``, which cannot travel."""
    return TypeError(
        f"the serial model's {name} returned an array of dtype {dtype}, which holds Python objects; "
        "they cannot be moved between MPI ranks, so the call cannot run in parallel. The serial model "
        "alone (on the root) returns that array unchanged: return numbers or records of numbers to use "
        "the ranks, or run these calls serially (a serial_threshold above their n_models * n_expparams)"
    )
