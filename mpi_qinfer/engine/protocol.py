"""The wire protocol both sides share: commands, the call description, dtypes, the payload layout.

Every call starts with one broadcast of a fixed-size *message*: the call's
:class:`CallSpec` packed as int64 values, followed by an inline area. Small
broadcast arrays (the outcomes, a few expparams, explicit partition counts)
travel inline in that same broadcast, so a typical SMC update costs one Bcast
before the Scatterv instead of two or three. A payload that does not fit
inline follows in a second Bcast.

Arrays cross the wire as raw bytes in the caller's own dtype (every rank runs
on the same architecture), so a worker's serial model sees exactly the dtype,
byte order and values that the serial model would have seen on the root. A
dtype travels as an index into a :class:`DtypeTable` that every rank keeps in
step: the common dtypes are there from the start, and the root announces any
other one once, before the first call that uses it.

This module has no MPI in it: everything here is plain data, unit-tested
without ``mpiexec``.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

import numpy as np

__all__ = [
    "Command",
    "Split",
    "CallSpec",
    "SHAPE_FIELDS",
    "HEADER_LEN",
    "MESSAGE_BYTES",
    "INLINE_BYTES",
    "SCALAR_OUTCOMES",
    "DtypeTable",
    "payload_layout",
    "pack_spec",
    "unpack_spec",
]


class Command(enum.IntEnum):
    """What the root asks every rank to do."""

    SHUTDOWN = 0
    LIKELIHOOD = 1
    SIMULATE = 2
    SCORE = 3
    FISHER_INFORMATION = 4
    UPDATE_TIMESTEP = 5
    ARE_MODELS_VALID = 6
    CLEAR_CACHE = 7
    SYNC_MODEL = 8
    PING = 9
    DEFINE_DTYPE = 10
    COLLECTIVE = 11


class Split(enum.IntEnum):
    """Which axis of the call is divided between the ranks."""

    MODELS = 0
    EXPERIMENTS = 1


#: ``CallSpec.n_outcomes`` of a call whose outcomes are one scalar (qinfer
#: accepts ``likelihood(0, ...)``): the workers pass a 0-d array on, as the
#: caller did, and the answer has one outcome row.
SCALAR_OUTCOMES = -1


class CallSpec(NamedTuple):
    """One call, as the root describes it to every rank.

    A tuple of ints, so it packs into the message header in one ``struct``
    call and unpacks in another. The fields before ``payload_bytes`` fix the
    call's shape; they key the cache of call plans on every rank.

    Dtype fields are ids in the engine's :class:`DtypeTable`; ``-1`` where the
    call has no such array. ``answer_dtypes`` are the dtypes the root expects
    the serial model to return (learned from earlier calls): a rank whose
    answer has another dtype says so, and the root repeats the call with the
    dtype the model really returns, so the answer is never cast.
    """

    command: int
    model_id: int = 0
    split: int = Split.MODELS
    n_models: int = 0
    n_modelparams: int = 0
    n_expparams: int = 0
    n_outcomes: int = 0
    modelparams_dtype: int = -1
    expparams_dtype: int = -1
    outcomes_dtype: int = -1
    answer_dtype: int = -1
    second_answer_dtype: int = -1
    repeat: int = 0
    return_likelihood: int = 0
    explicit_counts: int = 0
    payload_bytes: int = 0
    seed: int = 0

    @property
    def shape_key(self) -> tuple:
        """The fields that fix the call's plan (everything before ``payload_bytes``)."""
        return self[:SHAPE_FIELDS]

    @property
    def rows(self) -> int:
        """Rows of the split axis: models, or experiments."""
        return self.n_models if self.split == Split.MODELS else self.n_expparams

    @property
    def outcome_rows(self) -> int:
        """Outcome rows of a likelihood-like answer (one for a scalar outcome)."""
        return 1 if self.n_outcomes == SCALAR_OUTCOMES else self.n_outcomes


#: How many leading fields of a :class:`CallSpec` key its plan.
SHAPE_FIELDS = CallSpec._fields.index("payload_bytes")
#: int64 slots reserved for the header (room to grow without moving the inline area).
HEADER_LEN = 20
MESSAGE_BYTES = 1024
INLINE_BYTES = MESSAGE_BYTES - 8 * HEADER_LEN

_SPEC = struct.Struct(f"={len(CallSpec._fields)}q")
assert len(CallSpec._fields) <= HEADER_LEN


def pack_spec(spec: CallSpec, message) -> None:
    """Write ``spec`` into the header at the start of ``message`` (a writable byte buffer)."""
    _SPEC.pack_into(message, 0, *spec)


def unpack_spec(message) -> CallSpec:
    """The :class:`CallSpec` in the header of ``message``."""
    return CallSpec._make(_SPEC.unpack_from(message))


#: Dtypes every rank knows from the start, so the usual calls never announce one.
_PRESET_DTYPES = tuple(
    np.dtype(name)
    for name in ("f8", "i8", "?", "f4", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "c16", "c8", "f2")
)


class DtypeTable:
    """Dtypes by id, the same on every rank of an engine.

    The root looks each array's dtype up with :meth:`id_of`; a dtype it does
    not have yet is added on every rank, in the same order, by the engine's
    ``DEFINE_DTYPE`` command, so ids always agree.
    """

    def __init__(self):
        self._dtypes: list[np.dtype] = list(_PRESET_DTYPES)
        self._ids: dict[np.dtype, int] = {dtype: index for index, dtype in enumerate(self._dtypes)}

    def id_of(self, dtype: np.dtype) -> int | None:
        """The id of ``dtype``, or None if the table does not have it yet."""
        return self._ids.get(dtype)

    def add(self, dtype) -> int:
        """Add ``dtype`` (if new) and return its id."""
        dtype = np.dtype(dtype)
        index = self._ids.get(dtype)
        if index is None:
            index = len(self._dtypes)
            self._dtypes.append(dtype)
            self._ids[dtype] = index
        return index

    def __getitem__(self, index: int) -> np.dtype:
        return self._dtypes[index]

    def __len__(self) -> int:
        return len(self._dtypes)


def _align(offset: int, alignment: int = 16) -> int:
    return -(-offset // alignment) * alignment


def payload_layout(specs):
    """Byte offsets of arrays packed one after another, each 16-byte aligned.

    Parameters
    ----------
    specs : sequence of (shape, dtype)
        The arrays, in payload order.

    Returns
    -------
    offsets : list of int
    total : int
        The payload size in bytes.
    """
    offsets, end = [], 0
    for shape, dtype in specs:
        start = _align(end)
        offsets.append(start)
        end = start + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return offsets, end
