"""Derived MPI datatypes that move whole rows of C-ordered NumPy arrays.

Counting in rows instead of elements keeps every MPI count small (no 32-bit
overflow for big clouds). A row of an input is one particle or one
experiment, a contiguous run of bytes. An answer of shape ``(*pre, N, *post)``
split along ``N`` places a rank's share as ``prod(pre)`` blocks, one per
leading index, each ``rows * prod(post) * itemsize`` bytes long and one whole
``N`` axis apart: an ``hvector``, so the share lands in its C-ordered place in
one message.
"""

from __future__ import annotations

from collections import OrderedDict

from mpi4py import MPI

__all__ = ["RowTypes"]


class RowTypes:
    """Committed datatypes by shape, all freed by :meth:`free`.

    Parameters
    ----------
    capacity : int or None
        Types kept before the least recently used one is freed: bounds memory
        when the shapes keep changing (adaptive partitions). None: no bound
        (the types of one call plan, freed with it).
    """

    def __init__(self, capacity: int | None = None):
        self._capacity = capacity
        self._types: OrderedDict[tuple[int, int, int, int], MPI.Datatype] = OrderedDict()

    def row(self, row_bytes: int) -> MPI.Datatype:
        """The type of one contiguous row of ``row_bytes`` bytes."""
        return self.blocks(1, row_bytes, row_bytes)

    def blocks(self, count: int, block_bytes: int, stride_bytes: int, offset: int = 0) -> MPI.Datatype:
        """``count`` blocks of ``block_bytes``, ``stride_bytes`` apart (contiguous when ``count`` is 1).

        With ``offset``, the blocks start ``offset`` bytes into the buffer: a
        receive into the whole answer then needs no view of its own.
        """
        if count == 1:
            stride_bytes = block_bytes
        key = (count, block_bytes, stride_bytes, offset)
        dtype = self._types.get(key)
        if dtype is not None:
            self._types.move_to_end(key)
            return dtype
        if offset:
            # A struct of one element at the offset; MPI keeps the inner type alive as long as it needs it.
            dtype = MPI.Datatype.Create_struct([1], [offset], [self.blocks(count, block_bytes, stride_bytes)])
        elif count == 1:
            dtype = MPI.BYTE.Create_contiguous(block_bytes)
        else:
            dtype = MPI.BYTE.Create_hvector(count, block_bytes, stride_bytes)
        dtype.Commit()
        self._types[key] = dtype
        if self._capacity is not None and len(self._types) > self._capacity:
            _, oldest = self._types.popitem(last=False)
            oldest.Free()
        return dtype

    def free(self) -> None:
        """Free every type (local, not collective)."""
        while self._types:
            _, dtype = self._types.popitem()
            dtype.Free()

    def __len__(self) -> int:
        return len(self._types)
