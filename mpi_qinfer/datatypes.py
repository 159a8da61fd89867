"""Derived MPI datatypes that move whole rows of C-ordered NumPy arrays.

Counting in rows instead of elements keeps every MPI count small (no 32-bit
overflow for big clouds) and lets a Gatherv write each rank's share straight
into its strided place in the final ``(n_outcomes, n_models, n_exp)`` answer.
"""

from __future__ import annotations

from collections import OrderedDict

from mpi4py import MPI

__all__ = ["RowTypes"]


class RowTypes:
    """A bounded cache of committed row datatypes, all freed by :meth:`free`.

    A *row* of an array with shape ``(*pre, n_rows, *post)`` split along the
    ``n_rows`` axis is ``prod(pre)`` blocks of ``block_bytes = prod(post) *
    itemsize`` bytes, ``n_rows * block_bytes`` apart. Its type has extent
    ``block_bytes``, so consecutive rows interleave and a displacement counts rows.

    Parameters
    ----------
    capacity : int or None
        Types kept before the least recently used one is freed; bounds memory
        when the shapes keep changing (adaptive partitions). None: no bound
        (for a set of types owned by one cached call plan).
    """

    def __init__(self, capacity: int | None = 64):
        self._capacity = capacity
        self._types: OrderedDict[tuple[int, int, int], MPI.Datatype] = OrderedDict()

    def row(self, n_blocks: int, block_bytes: int, n_rows: int) -> MPI.Datatype:
        """The type of one row of a ``(n_blocks, n_rows, block_bytes)`` byte array."""
        if n_blocks == 1:
            n_rows = 0  # contiguous rows: the stride is irrelevant, share one type
        key = (n_blocks, block_bytes, n_rows)
        dtype = self._types.get(key)
        if dtype is not None:
            self._types.move_to_end(key)
            return dtype
        if n_blocks == 1:
            dtype = MPI.BYTE.Create_contiguous(block_bytes)
        else:
            vector = MPI.BYTE.Create_hvector(n_blocks, block_bytes, n_rows * block_bytes)
            dtype = vector.Create_resized(0, block_bytes)
            vector.Free()
        dtype.Commit()
        self._types[key] = dtype
        if self._capacity is not None and len(self._types) > self._capacity:
            _, oldest = self._types.popitem(last=False)
            oldest.Free()
        return dtype

    def free(self) -> None:
        """Free every cached type (local, not collective)."""
        while self._types:
            _, dtype = self._types.popitem()
            dtype.Free()

    def __len__(self) -> int:
        return len(self._types)
