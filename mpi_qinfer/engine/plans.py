"""Call plans: everything about a call that follows from its spec's shape, built once and cached.

A plan says which arrays every rank gets whole (and where they sit in the
payload), which input is split by rows and with which MPI datatype, and how
each answer moves back (its row datatypes, for the even split precomputed).
The spec carries the dtype of every array, so a plan depends on nothing but
the spec, the number of ranks and this rank: never on a model's
``expparams_dtype``, which ``sync_model`` may change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .datatypes import RowTypes
from .operations import OPERATIONS, Operation
from .partition import check_count, displacements, even_counts
from .protocol import INLINE_BYTES, SCALAR_OUTCOMES, SHAPE_FIELDS, CallSpec, Command, DtypeTable, Split, payload_layout

__all__ = ["Answer", "Plan", "PlanCache", "Receives", "receives_for", "place_staged", "array_at",
           "SHORT_BLOCK_BYTES"]

_BY_MODELS = int(Split.MODELS)


#: A share whose blocks are shorter than this (bytes) is gathered through a staging
#: buffer: many tiny blocks cost more in a datatype than one copy on the root.
SHORT_BLOCK_BYTES = 1024


@dataclass
class Answer:
    """How one answer array moves back to the root, in the serial model's C order.

    An answer of shape ``(*pre, N, *post)`` split along ``N`` is, for a share
    of ``rows`` rows, ``n_blocks = prod(pre)`` blocks of ``rows *
    post_bytes`` bytes. With one block (one outcome, split by models) the
    shares are contiguous rows, and one ``Igatherv`` places them. Otherwise
    each worker sends its share as one message that the root receives with a
    vector datatype placing every block at once, or, when blocks are short,
    an ``Igatherv`` into a staging buffer and one copy per worker (see
    :meth:`staged` and :class:`Receives`).
    """

    shape: tuple
    axis: int  # the axis split between ranks
    dtype: np.dtype
    n_blocks: int  # prod(shape[:axis])
    n_rows: int  # shape[axis]
    post_bytes: int  # prod(shape[axis + 1:]) * itemsize: one row within one block
    row_type: MPI.Datatype | None  # a contiguous row (post_bytes): what a one-block gather counts in
    even_shape: tuple | None  # this rank's share under the even split
    even_staged: bool  # staged(even counts)

    @property
    def moves(self) -> bool:
        """Whether the answer has any bytes to gather."""
        return bool(self.n_blocks and self.post_bytes and self.n_rows)

    def local_shape(self, rows: int) -> tuple:
        """The shape of a share of ``rows`` rows, as the serial model returns it."""
        return self.shape[: self.axis] + (rows,) + self.shape[self.axis + 1 :]

    def staged(self, counts) -> bool:
        """Whether shares of ``counts`` rows go through a staging buffer (short blocks)."""
        if self.n_blocks == 1:
            return False
        shortest = min((int(c) for c in counts if c > 0), default=0)
        return shortest * self.post_bytes < SHORT_BLOCK_BYTES


@dataclass
class Plan:
    """Everything about a call that follows from its spec's shape alone."""

    operation: Operation
    broadcast: list  # (name, shape, dtype, offset): the arrays every rank gets whole
    payload_bytes: int
    inline: bool  # the payload fits in the message
    split_input: str | None  # "modelparams" or "expparams", or None (nothing is split)
    split_dtype: np.dtype | None
    split_row_shape: tuple
    row_bytes: int
    row_type: MPI.Datatype | None  # None when a row has no bytes
    answers: list  # Answer
    answer_ids: tuple  # the dtype ids the answers are expected in
    even_staged: tuple  # Answer.even_staged of every answer
    even_counts: np.ndarray | None  # None when the root gives explicit counts
    even_displs: np.ndarray | None
    types: RowTypes  # owns the datatypes above; freed with the plan
    inline_views: list | None = None  # (name, typed view into the message) when the payload is inline
    even_receives: "Receives | None" = None  # the root's receives under the even split, made on first use
    # The last explicit counts seen (a balance keeps them call after call once it has settled):
    # (counts as bytes, Receives, their datatypes) on the root, (counts as bytes, staged) on workers.
    uneven_receives: tuple | None = None
    uneven_staged: tuple | None = None

    def receives(self, counts, displs, root: int) -> "Receives":
        """The root's :class:`Receives` for ``counts``: built once per partition, not per call.

        The even split's are kept for the plan's life; explicit counts' until
        other counts come (their datatypes are then freed).
        """
        if counts is self.even_counts:
            if self.even_receives is None:
                self.even_receives = receives_for(self.answers, counts, displs, root, self.types)
            return self.even_receives
        key = counts.tobytes()
        if self.uneven_receives is None or self.uneven_receives[0] != key:
            self._free_uneven()
            types = RowTypes()
            self.uneven_receives = (key, receives_for(self.answers, counts, displs, root, types), types)
        return self.uneven_receives[1]

    def staged(self, counts) -> tuple:
        """:meth:`Answer.staged` of every answer for ``counts`` (a worker's half of :meth:`receives`)."""
        if counts is self.even_counts:
            return self.even_staged
        key = counts.tobytes()
        if self.uneven_staged is None or self.uneven_staged[0] != key:
            self.uneven_staged = (key, tuple(answer.staged(counts) for answer in self.answers))
        return self.uneven_staged[1]

    def _free_uneven(self) -> None:
        if self.uneven_receives is not None:
            self.uneven_receives[2].free()
            self.uneven_receives = None

    def free(self) -> None:
        """Free every datatype of the plan (local)."""
        self._free_uneven()
        self.types.free()


@dataclass
class Receives:
    """How the root receives every answer under one partition (the workers send to match).

    For answer ``i``, exactly one of these is set when it has bytes to move:

    * ``gathered[i]``: ``(counts, displs)`` in rows, for one ``Igatherv`` of
      contiguous rows straight into the answer (one block);
    * ``placed[i]``: ``[(rank, datatype)]``, one message per worker placed by
      a vector datatype that starts at the share's byte offset in the answer
      (so that the receive needs no view of its own);
    * ``staged[i]``: ``(base, sizes, offsets, runs)``, one ``Igatherv`` of
      bytes into the staging buffer at ``base``, then one copy into place
      per run of consecutive workers with equal counts, ``(offset, nbytes,
      ranks, rows, first row)`` (see :func:`place_staged`): under the even
      split two runs at most, whatever the number of ranks.
    """

    gathered: list
    placed: list
    staged: list
    staging_bytes: int


def receives_for(answers: list, counts, displs, root: int, types: RowTypes) -> Receives:
    """The root's :class:`Receives` for ``counts`` rows per rank (datatypes made in ``types``)."""
    counts_list, displs_list = counts.tolist(), displs.tolist()
    gathered, placed, staged, used = [], [], [], 0
    for answer in answers:
        to_gather = to_place = to_stage = None
        if answer.moves and answer.n_blocks == 1:
            to_gather = (counts, displs)
        elif answer.moves and answer.staged(counts):
            sizes = counts * (answer.n_blocks * answer.post_bytes)
            sizes[root] = 0  # the root copies its own share
            offsets = displacements(sizes)
            to_stage = (used, sizes, offsets, _staged_runs(counts_list, displs_list, offsets.tolist(),
                                                           sizes.tolist(), root))
            used += int(sizes.sum())
        elif answer.moves:
            stride = answer.n_rows * answer.post_bytes
            to_place = [(rank, types.blocks(answer.n_blocks, count * answer.post_bytes, stride,
                                            offset=first * answer.post_bytes))
                        for rank, (count, first) in enumerate(zip(counts_list, displs_list)) if count and rank != root]
        gathered.append(to_gather)
        placed.append(to_place)
        staged.append(to_stage)
    return Receives(gathered, placed, staged, used)


def _staged_runs(counts: list, displs: list, offsets: list, sizes: list, root: int) -> list:
    """Runs of consecutive workers with equal counts: ``(offset, nbytes, ranks, rows, first row)``.

    Their bytes follow each other in the staging buffer and their rows in the
    answer, so one copy places a whole run.
    """
    runs: list = []
    previous = None  # the last rank added to the last run
    for rank, (count, first) in enumerate(zip(counts, displs)):
        if not count or rank == root:
            continue
        if runs and previous == rank - 1 and runs[-1][3] == count:
            offset, nbytes, ranks, rows, start = runs[-1]
            runs[-1] = (offset, nbytes + sizes[rank], ranks + 1, rows, start)
        else:
            runs.append((offsets[rank], sizes[rank], 1, count, first))
        previous = rank
    return runs


def place_staged(answer: Answer, staging: np.ndarray, runs: list, whole: np.ndarray) -> None:
    """Copy the staged shares of :func:`_staged_runs`' ``runs`` from ``staging`` into ``whole``.

    A run of ``k`` workers with ``r`` rows each arrived as ``k`` shares of
    ``n_blocks`` blocks of ``r`` rows; in the answer the same bytes are
    ``n_blocks`` blocks of ``k * r`` rows: one transposed copy.
    """
    blocks = whole.reshape(answer.n_blocks, answer.n_rows, -1)
    for offset, nbytes, ranks, rows, first in runs:
        part = staging[offset : offset + nbytes].view(answer.dtype).reshape(ranks, answer.n_blocks, rows, -1)
        # Splitting one axis of a slice is always a view, so the copy lands in the answer.
        target = blocks[:, first : first + ranks * rows].reshape(answer.n_blocks, ranks, rows, -1)
        np.copyto(target, part.transpose(1, 0, 2, 3))


def array_at(buffer: np.ndarray, offset: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A view of ``shape``/``dtype`` at ``offset`` bytes into ``buffer`` (zero-size dtypes too)."""
    if dtype.itemsize == 0:
        return np.empty(shape, dtype)
    count = int(np.prod(shape, dtype=np.int64))
    return buffer[offset : offset + count * dtype.itemsize].view(dtype).reshape(shape)


class PlanCache:
    """The plans of one engine on one rank, by spec shape; a bounded cache.

    Parameters
    ----------
    dtypes : DtypeTable
        The engine's dtype table (the spec's dtype ids index it).
    size, rank, root : int
        The communicator's size, this rank and the root.
    capacity : int
        Plans kept before the oldest is freed (shapes that keep changing,
        such as adaptive partitions of varying sizes, stay bounded).
    """

    def __init__(self, dtypes: DtypeTable, size: int, rank: int, root: int, capacity: int = 32, inline=None):
        self._dtypes = dtypes
        self._inline = inline
        self._size, self._rank, self._is_root = size, rank, rank == root
        self._capacity = capacity
        self._plans: dict[tuple, Plan] = {}

    def get(self, spec: CallSpec) -> Plan:
        """The plan of ``spec``, built on first use."""
        key = spec[:SHAPE_FIELDS]
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make(spec)
            if len(self._plans) >= self._capacity:
                self._plans.pop(next(iter(self._plans))).free()
            self._plans[key] = plan
        return plan

    def free(self) -> None:
        """Free every plan's datatypes (local)."""
        for plan in self._plans.values():
            plan.free()
        self._plans.clear()

    def __len__(self) -> int:
        return len(self._plans)

    def _make(self, spec: CallSpec) -> Plan:
        operation = OPERATIONS[Command(spec.command)]
        types = RowTypes()
        broadcast, payload_bytes = self._broadcast_layout(operation, spec)
        split = self._split_layout(operation, spec, types)
        even = None
        if not spec.explicit_counts:
            counts = even_counts(spec.rows if split[0] is not None else 0, self._size)
            even = (counts, displacements(counts))
        answer_ids = (spec.answer_dtype, spec.second_answer_dtype)
        answers = self._answer_layouts(operation, spec, answer_ids, even, types)
        inline = payload_bytes <= INLINE_BYTES
        views = None
        if inline and self._inline is not None:
            # (An array of a zero-size dtype has no bytes: array_at gives it a buffer of its own.)
            views = [(name, array_at(self._inline, offset, shape, dtype)) for name, shape, dtype, offset in broadcast]
        return Plan(
            operation, broadcast, payload_bytes, inline, *split,
            answers, answer_ids, tuple(answer.even_staged for answer in answers), *(even or (None, None)), types,
            views,
        )

    def _broadcast_layout(self, operation: Operation, spec: CallSpec):
        """The arrays every rank gets whole, and their offsets in the payload."""
        dtypes = self._dtypes
        split_input = split_input_of(operation, spec)
        candidates = []
        if spec.explicit_counts:
            candidates.append(("counts", (self._size,), np.dtype(np.int64)))
        if operation.takes_outcomes:
            shape = () if spec.n_outcomes == SCALAR_OUTCOMES else (spec.n_outcomes,)
            candidates.append(("outcomes", shape, dtypes[spec.outcomes_dtype]))
        if split_input != "modelparams" and spec.modelparams_dtype >= 0:
            candidates.append(("modelparams", (spec.n_models, spec.n_modelparams), dtypes[spec.modelparams_dtype]))
        if operation.takes_expparams and split_input != "expparams":
            candidates.append(("expparams", (spec.n_expparams,), dtypes[spec.expparams_dtype]))
        offsets, payload_bytes = payload_layout([(shape, dtype) for _, shape, dtype in candidates])
        layout = [(name, shape, dtype, offset) for (name, shape, dtype), offset in zip(candidates, offsets)]
        return layout, payload_bytes

    def _split_layout(self, operation: Operation, spec: CallSpec, types: RowTypes):
        """The split input's name, dtype, row shape, row bytes and row datatype."""
        name = split_input_of(operation, spec)
        if name is None:
            return None, None, (), 0, None
        if name == "modelparams":
            dtype, n_rows, row_shape = self._dtypes[spec.modelparams_dtype], spec.n_models, (spec.n_modelparams,)
        else:
            dtype, n_rows, row_shape = self._dtypes[spec.expparams_dtype], spec.n_expparams, ()
        check_count(n_rows, f"the number of rows of {name}")
        row_bytes = check_count(int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize,
                                f"one row of {name} in bytes")
        row_type = types.row(row_bytes) if row_bytes else None
        return name, dtype, row_shape, row_bytes, row_type

    def _answer_layouts(self, operation: Operation, spec: CallSpec, answer_ids, even, types: RowTypes) -> list:
        answers = []
        rows = None if even is None else int(even[0][self._rank])
        for output, dtype_id in zip(operation.outputs(spec), answer_ids):
            dtype = self._dtypes[dtype_id]
            shape, axis = output.shape, output.axis
            n_blocks = int(np.prod(shape[:axis], dtype=np.int64))
            post_bytes = check_count(int(np.prod(shape[axis + 1 :], dtype=np.int64)) * dtype.itemsize,
                                     f"one row of the {operation.name} answer in bytes")
            row_type = types.row(post_bytes) if n_blocks == 1 and post_bytes else None
            even_shape = None if rows is None else shape[:axis] + (rows,) + shape[axis + 1 :]
            answer = Answer(shape, axis, dtype, n_blocks, shape[axis], post_bytes, row_type, even_shape, False)
            answer.even_staged = even is not None and answer.staged(even[0])
            answers.append(answer)
        return answers


def split_input_of(operation: Operation, spec: CallSpec) -> str | None:
    """Which input a call splits by rows: ``"modelparams"``, ``"expparams"``, or None."""
    if spec.n_models == 0 and spec.n_expparams == 0:
        return None
    if spec.split == _BY_MODELS or not operation.takes_expparams:
        return "modelparams"
    return "expparams"
