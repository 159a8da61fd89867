"""Checking and normalising a call's arrays on the root, before any communication.

Every check raises a ``ValueError`` or ``TypeError`` that names the argument;
every accepted array comes out native-endian and C-contiguous, with the values
the serial model would have seen.
"""

from __future__ import annotations

import numpy as np

from .protocol import dtype_code

__all__ = ["as_outcomes", "as_modelparams", "as_expparams", "as_repeat"]

_NUMERIC_KINDS = "biuf"
_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


def _native_contiguous(array: np.ndarray) -> np.ndarray:
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _plain_numeric(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.names is not None:
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    array = _native_contiguous(array)
    try:
        dtype_code(array.dtype)
    except KeyError:
        raise TypeError(f"{name} has dtype {array.dtype}, which mpi_qinfer cannot send; use float64") from None
    return array


def as_outcomes(outcomes) -> np.ndarray:
    """Outcomes as a 1-d numeric array (a scalar becomes one element, as in qinfer)."""
    if type(outcomes) is np.ndarray and outcomes.dtype is _INT64 and outcomes.ndim == 1 \
            and outcomes.flags.c_contiguous:
        return outcomes  # the common case, checked in a few attribute reads
    array = np.asarray(outcomes)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"outcomes must be a scalar or a 1-d array, got shape {array.shape}")
    return _plain_numeric(array, "outcomes")


def as_modelparams(modelparams, n_modelparams: int) -> np.ndarray:
    """Model parameters as a C-contiguous ``(n_models, n_modelparams)`` array."""
    if type(modelparams) is np.ndarray and modelparams.dtype is _FLOAT64 and modelparams.ndim == 2 \
            and modelparams.shape[1] == n_modelparams and modelparams.flags.c_contiguous:
        return modelparams
    array = np.asarray(modelparams)
    if array.ndim != 2 or array.shape[1] != n_modelparams:
        raise ValueError(
            f"modelparams must be a 2-d array of shape (n_models, {n_modelparams}), got shape {array.shape}"
        )
    return _plain_numeric(array, "modelparams")


def as_expparams(expparams, expparams_dtype) -> np.ndarray:
    """Experiment parameters as a C-contiguous 1-d array of the model's ``expparams_dtype``.

    A structured array with the model's fields in another order, or with
    fields of a type that casts safely, is converted; missing or unexpected
    fields, or unsafe casts, are refused.
    """
    if type(expparams) is np.ndarray and expparams.dtype == expparams_dtype and expparams.ndim == 1 \
            and expparams.flags.c_contiguous and expparams.dtype.isnative:
        return expparams
    want = np.dtype(expparams_dtype)
    array = np.asarray(expparams)
    if array.ndim != 1:
        raise ValueError(f"expparams must be a 1-d array of dtype {want}, got shape {array.shape}")
    if array.dtype == want:
        return _native_contiguous(array)
    have = array.dtype
    if want.names is None:
        if have.names is not None or have.kind not in _NUMERIC_KINDS or not np.can_cast(have, want, "safe"):
            raise TypeError(f"expparams must have the model's dtype {want}, got {have}")
        return np.ascontiguousarray(array.astype(want))
    if have.names is None:
        raise TypeError(f"expparams must be a record array with fields {list(want.names)}, got dtype {have}")
    missing = [name for name in want.names if name not in have.names]
    extra = [name for name in have.names if name not in want.names]
    if missing or extra:
        raise TypeError(
            f"expparams must have the model's fields {list(want.names)}; missing {missing}, unexpected {extra}"
        )
    for name in want.names:
        if not np.can_cast(have[name], want[name], "safe"):
            raise TypeError(
                f"expparams field {name!r} has dtype {have[name]}, which does not cast safely to {want[name]}"
            )
    converted = np.empty(array.shape, dtype=want)
    for name in want.names:
        converted[name] = array[name]
    return converted


def as_repeat(repeat) -> int:
    """The number of simulated repetitions, a positive integer."""
    if isinstance(repeat, (bool, np.bool_)) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"repeat must be a positive integer, got {repeat!r}")
    return int(repeat)
