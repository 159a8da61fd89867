"""Derived MPI datatypes that move whole rows of C-ordered NumPy arrays.

Counting in rows instead of elements keeps every MPI count small (no 32-bit
overflow for big clouds): a row is one particle, one experiment, or
everything an answer holds for one of them, always a contiguous run of bytes
(answers are laid out with the split axis first; see :mod:`mpi_qinfer.plans`).
"""

from __future__ import annotations

from mpi4py import MPI

__all__ = ["RowTypes"]


class RowTypes:
    """Committed contiguous row datatypes by size in bytes, all freed by :meth:`free`.

    A call plan owns one of these, so its datatypes live exactly as long as
    the plan (nothing is allocated per call, nothing leaks when plans are
    evicted).
    """

    def __init__(self):
        self._types: dict[int, MPI.Datatype] = {}

    def row(self, row_bytes: int) -> MPI.Datatype:
        """The type of one row of ``row_bytes`` contiguous bytes."""
        dtype = self._types.get(row_bytes)
        if dtype is None:
            dtype = MPI.BYTE.Create_contiguous(row_bytes)
            dtype.Commit()
            self._types[row_bytes] = dtype
        return dtype

    def free(self) -> None:
        """Free every type (local, not collective)."""
        while self._types:
            _, dtype = self._types.popitem()
            dtype.Free()

    def __len__(self) -> int:
        return len(self._types)
