"""The wire protocol both sides share: commands, the header, and the payload layout.

Every call starts with one broadcast of a fixed-size *message*: an int64 header
followed by an inline area. Small broadcast arrays (the outcomes, a few
expparams, explicit partition counts) travel inline in that same broadcast, so
a typical SMC update costs one Bcast before the Scatterv instead of two or three.
A payload that does not fit inline follows in a second Bcast.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = [
    "Command",
    "Field",
    "Split",
    "HEADER_LEN",
    "PLAN_KEY_BYTES",
    "MESSAGE_BYTES",
    "INLINE_BYTES",
    "dtype_code",
    "code_dtype",
    "payload_layout",
]


class Command(enum.IntEnum):
    """What the root asks the workers to do."""

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


class Split(enum.IntEnum):
    """Which axis of the call is divided between the ranks."""

    MODELS = 0
    EXPERIMENTS = 1


class Field(enum.IntEnum):
    """Index of each entry of the int64 header.

    The fields before ``PAYLOAD_BYTES`` fix a call's shape: their raw bytes
    key the cache of call plans. ``PAYLOAD_BYTES`` follows from them, and the
    per-call ``SEED`` comes last.
    """

    COMMAND = 0
    MODEL_ID = 1
    SPLIT = 2
    N_MODELS = 3
    N_MODELPARAMS = 4
    N_EXPPARAMS = 5
    N_OUTCOMES = 6
    MODELPARAMS_DTYPE = 7
    OUTCOMES_DTYPE = 8
    RESULT_DTYPE = 9
    REPEAT = 10
    FLAGS = 11
    EXPLICIT_COUNTS = 12
    PAYLOAD_BYTES = 13
    SEED = 14


HEADER_LEN = 16
#: Bytes at the start of the message that fix a call's shape (the plan cache key).
PLAN_KEY_BYTES = 8 * Field.PAYLOAD_BYTES
MESSAGE_BYTES = 1024
INLINE_BYTES = MESSAGE_BYTES - 8 * HEADER_LEN

# Arrays cross the wire as raw native bytes (all ranks share one architecture);
# their dtype travels as an index into this table.
_DTYPES = tuple(
    np.dtype(name)
    for name in (
        "f8", "f4", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "?", "c16", "c8", "f2",
    )
)
_CODES = {dt: code for code, dt in enumerate(_DTYPES)}


def dtype_code(dtype) -> int:
    """The header code of a plain numeric dtype; ``KeyError`` if it has none."""
    return _CODES[np.dtype(dtype)]


def code_dtype(code: int) -> np.dtype:
    """The dtype a header code stands for."""
    return _DTYPES[code]


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
