"""Which memory layout and which collectives move a likelihood answer fastest: a stand-alone mpi4py probe.

Run under the launcher, e.g.::

    MPIEXEC_TIMEOUT=900 mpiexec -n 2 python scripts/layout_probe.py --quick
    mpiexec -n 3 python scripts/layout_probe.py --check     # correctness only, uneven splits

Each rank holds its share of an answer of shape ``(n_outcomes, n_models, n_exp)``
(float64), split between the ranks along the models axis (each share
``(n_outcomes, rows, n_exp)``) or along the experiments axis (each share
``(n_outcomes, n_models, cols)``), and the root must end up with the whole
answer, bitwise, in the serial layout (or a documented view of it). Both splits
are one pattern: the answer seen as ``(pre, N, post)`` split along ``N``, with
``pre = n_outcomes`` and ``post = n_exp`` for the models split and
``pre = n_outcomes * n_models``, ``post = 1`` for the experiments split.

The ways of gathering compared (every one checked bitwise against the answer
on every shape, the root's own share included):

``strided``
    one ``Gatherv`` with a resized ``hvector`` *row* type on both sides: every
    row of every outcome is its own ``post * 8``-byte block (how the engine
    gathers today).
``staging`` / ``istaging``
    every worker sends its contiguous share as bytes; one ``Gatherv`` into a
    reused contiguous staging buffer (the root sends nothing); then one
    ``np.copyto`` per rank into its slice of the answer, the root's straight
    from its own share.
``slabs`` / ``islabs``
    one ``Gatherv`` (or ``Igatherv``, then one ``Waitall``) per outcome, each
    of contiguous rows straight into the answer (models split only: the
    experiments split would need ``n_outcomes * n_models`` of them).
``subarray``
    point to point: the root posts one ``Irecv`` per worker with a
    ``Create_subarray`` type that places the worker's whole share (``pre``
    blocks of ``rows * post * 8`` bytes) in the answer, copies its own share
    with ``np.copyto``, then waits; workers ``Send`` their contiguous share.
``vector``
    as ``subarray`` with an ``hvector`` type that depends on the rows only (the
    start is a byte offset into the answer): one type per count, not per
    (count, start), for partitions that change every call.
``blocks``
    one ``Gatherv`` whose type is a block of ``g`` rows of every outcome,
    ``g`` the greatest common divisor of the counts: one block per rank and
    outcome when the counts are equal, the ``strided`` case when they are
    coprime.
``transposed`` / ``transposed+copy``
    the workers transpose their share to ``(rows, pre, post)``; one contiguous
    ``Gatherv`` into ``(N, pre, post)``; the answer is a transposed view of it
    (its strides differ from the serial answer's). ``+copy`` adds the
    ``np.ascontiguousarray`` a caller needing C order would pay.
``sendtype``
    as ``transposed``, but the workers' transpose is a send datatype (MPI
    packs), not a NumPy copy.
``memcpy``
    not a gather: one ``np.copyto`` of a whole answer on the root, the memory
    bandwidth bound every way above pays at least once.

Then the scatter side (``Scatterv`` of particle rows and of experiments, a
contiguous row type against plain counts of doubles or bytes) and the fixed
costs of a call (``Bcast`` of the 1 KiB message, the status ``Gather``).

Every time is the root's, from a 64-byte ``Bcast`` that starts each rep (as
the engine's message starts a call, so a worker's wake-up is included as in a
real call) to the end of the gather; each
way is measured in several rounds in rotated order (a drifting load affects all
alike), after warm-up calls; min and median of all samples are reported, and
per shape every way's median relative to the best median.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
from mpi4py import MPI

F8 = 8


def even_counts(n: int, size: int) -> np.ndarray:
    counts = np.full(size, n // size, dtype=np.int64)
    counts[: n % size] += 1
    return counts


def starts_of(counts: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)


class Shape:
    """An answer ``(n_out, n_models, n_exp)`` split along the models (axis 1) or experiments (axis 2)."""

    def __init__(self, n_out: int, n_models: int, n_exp: int, split: str, size: int, rank: int):
        self.n_out, self.n_models, self.n_exp, self.split = n_out, n_models, n_exp, split
        if split == "models":
            self.pre, self.n, self.post = n_out, n_models, n_exp
        else:
            self.pre, self.n, self.post = n_out * n_models, n_exp, 1
        self.counts = even_counts(self.n, size)
        self.starts = starts_of(self.counts)
        self.rank = rank
        self.rows = int(self.counts[rank])
        self.start = int(self.starts[rank])

    @property
    def full(self) -> tuple:
        return (self.n_out, self.n_models, self.n_exp)

    @property
    def nbytes(self) -> int:
        return self.pre * self.n * self.post * F8

    @property
    def name(self) -> str:
        split = "models" if self.split == "models" else "exps"
        return f"{split:6} out={self.n_out} models={self.n_models:<6} exp={self.n_exp:<4}"

    def local(self) -> np.ndarray:
        """This rank's share, ``(pre, rows, post)``: the global element index as a float (exact below 2**53)."""
        p = np.arange(self.pre, dtype=np.float64)[:, None, None]
        i = np.arange(self.start, self.start + self.rows, dtype=np.float64)[None, :, None]
        e = np.arange(self.post, dtype=np.float64)[None, None, :]
        return (p * self.n + i) * self.post + e + 0.5

    def expected(self) -> np.ndarray:
        """The whole answer in the serial layout ``(n_out, n_models, n_exp)``."""
        return (np.arange(self.pre * self.n * self.post, dtype=np.float64) + 0.5).reshape(self.full)


def row_type(n_blocks: int, block_bytes: int, n_rows: int) -> MPI.Datatype:
    """The engine's row type: ``n_blocks`` blocks ``n_rows * block_bytes`` apart, extent one block."""
    if n_blocks == 1:
        dtype = MPI.BYTE.Create_contiguous(block_bytes)
    else:
        vector = MPI.BYTE.Create_hvector(n_blocks, block_bytes, n_rows * block_bytes)
        dtype = vector.Create_resized(0, block_bytes)
        vector.Free()
    return dtype.Commit()


class Way:
    """One way of gathering: set up per shape (``prepare``), called per rep, freed after."""

    name = ""
    models_only = False

    def __init__(self, comm, shape: Shape):
        self.comm, self.shape = comm, shape
        self.root = comm.Get_rank() == 0
        self.types = []

    def committed(self, dtype):
        dtype.Commit()
        self.types.append(dtype)
        return dtype

    def __call__(self, local):
        raise NotImplementedError

    def free(self):
        for dtype in self.types:
            dtype.Free()
        self.types.clear()


class Strided(Way):
    name = "strided"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        self.send = row_type(s.pre, s.post * F8, s.rows)
        self.recv = row_type(s.pre, s.post * F8, s.n)
        self.types += [self.send, self.recv]

    def __call__(self, local):
        s = self.shape
        if self.root:
            answer = np.empty(s.full)
            self.comm.Gatherv([local, s.rows, self.send], [answer, s.counts, s.starts, self.recv], 0)
            return answer
        self.comm.Gatherv([local, s.rows, self.send], None, 0)


class Staging(Way):
    name = "staging"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        self.block = s.pre * s.post * F8  # bytes per row
        self.recv_counts = s.counts * self.block
        self.recv_counts[0] = 0  # the root copies its own share
        self.recv_starts = starts_of(self.recv_counts)
        self.staging = np.empty(int(self.recv_counts.sum()), dtype=np.uint8) if self.root else None

    def __call__(self, local):
        s = self.shape
        if not self.root:
            self.comm.Gatherv([local, local.nbytes, MPI.BYTE], None, 0)
            return None
        self.comm.Gatherv([local, 0, MPI.BYTE], [self.staging, self.recv_counts, self.recv_starts, MPI.BYTE], 0)
        answer = np.empty(s.full)
        view = answer.reshape(s.pre, s.n, s.post)
        np.copyto(view[:, : s.rows], local)
        for r in range(1, len(s.counts)):
            start, rows = int(s.starts[r]), int(s.counts[r])
            part = self.staging[self.recv_starts[r] : self.recv_starts[r] + self.recv_counts[r]]
            np.copyto(view[:, start : start + rows], part.view(np.float64).reshape(s.pre, rows, s.post))
        return answer


class IStaging(Staging):
    name = "istaging"

    def __call__(self, local):
        s = self.shape
        if not self.root:  # a nonblocking collective matches only nonblocking ones
            self.comm.Igatherv([local, local.nbytes, MPI.BYTE], None, 0).Wait()
            return None
        request = self.comm.Igatherv([local, 0, MPI.BYTE],
                                     [self.staging, self.recv_counts, self.recv_starts, MPI.BYTE], 0)
        answer = np.empty(s.full)
        view = answer.reshape(s.pre, s.n, s.post)
        np.copyto(view[:, : s.rows], local)  # the root's own share while the workers' arrive
        request.Wait()
        for r in range(1, len(s.counts)):
            start, rows = int(s.starts[r]), int(s.counts[r])
            part = self.staging[self.recv_starts[r] : self.recv_starts[r] + self.recv_counts[r]]
            np.copyto(view[:, start : start + rows], part.view(np.float64).reshape(s.pre, rows, s.post))
        return answer


class Slabs(Way):
    name = "slabs"
    models_only = True

    def __call__(self, local):
        s = self.shape
        counts, starts = s.counts * s.post, s.starts * s.post
        if not self.root:
            for p in range(s.pre):
                self.comm.Gatherv([local[p], MPI.DOUBLE], None, 0)
            return None
        answer = np.empty(s.full)
        view = answer.reshape(s.pre, s.n * s.post)
        for p in range(s.pre):
            self.comm.Gatherv([local[p], MPI.DOUBLE], [view[p], counts, starts, MPI.DOUBLE], 0)
        return answer


class ISlabs(Way):
    name = "islabs"
    models_only = True

    def __call__(self, local):
        s = self.shape
        counts, starts = s.counts * s.post, s.starts * s.post
        if not self.root:
            MPI.Request.Waitall([self.comm.Igatherv([local[p], MPI.DOUBLE], None, 0) for p in range(s.pre)])
            return None
        answer = np.empty(s.full)
        view = answer.reshape(s.pre, s.n * s.post)
        requests = [self.comm.Igatherv([local[p], MPI.DOUBLE], [view[p], counts, starts, MPI.DOUBLE], 0)
                    for p in range(s.pre)]
        MPI.Request.Waitall(requests)
        return answer


class Subarray(Way):
    name = "subarray"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        self.recv = [None]
        if self.root:
            for r in range(1, len(s.counts)):
                block = s.post * F8
                self.recv.append(self.committed(MPI.BYTE.Create_subarray(
                    [s.pre, s.n * block], [s.pre, int(s.counts[r]) * block], [0, int(s.starts[r]) * block])))

    def __call__(self, local):
        s = self.shape
        if not self.root:
            self.comm.Send([local, local.nbytes, MPI.BYTE], 0, tag=11)
            return None
        answer = np.empty(s.full)
        requests = [self.comm.Irecv([answer, 1, self.recv[r]], r, tag=11) for r in range(1, len(s.counts))]
        np.copyto(answer.reshape(s.pre, s.n, s.post)[:, : s.rows], local)
        MPI.Request.Waitall(requests)
        return answer


class Vector(Way):
    """As ``subarray``, with a type that depends on the rows only: the start is the buffer's byte offset."""

    name = "vector"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        self.recv = [None]
        if self.root:
            block = s.post * F8
            for r in range(1, len(s.counts)):
                rows = int(s.counts[r])
                self.recv.append(self.committed(MPI.BYTE.Create_hvector(s.pre, rows * block, s.n * block)))

    def __call__(self, local):
        s = self.shape
        if not self.root:
            self.comm.Send([local, local.nbytes, MPI.BYTE], 0, tag=12)
            return None
        answer = np.empty(s.full)
        raw = answer.reshape(-1).view(np.uint8)
        block = s.post * F8
        requests = [self.comm.Irecv([raw[int(s.starts[r]) * block :], 1, self.recv[r]], r, tag=12)
                    for r in range(1, len(s.counts))]
        np.copyto(answer.reshape(s.pre, s.n, s.post)[:, : s.rows], local)
        MPI.Request.Waitall(requests)
        return answer


class Blocks(Way):
    name = "blocks"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        self.g = math.gcd(*(int(c) for c in s.counts if c > 0)) or 1
        block = self.g * s.post * F8
        self.send = self.committed(self._type(s.pre, block, s.rows // self.g))
        self.recv = self.committed(self._type(s.pre, block, s.n // self.g))
        self.recv_counts, self.recv_starts = s.counts // self.g, s.starts // self.g

    @staticmethod
    def _type(n_blocks, block, n_units):
        if n_blocks == 1:
            return MPI.BYTE.Create_contiguous(block)
        vector = MPI.BYTE.Create_hvector(n_blocks, block, n_units * block)
        resized = vector.Create_resized(0, block)
        vector.Free()
        return resized

    def __call__(self, local):
        s = self.shape
        send = [local, s.rows // self.g, self.send]
        if not self.root:
            self.comm.Gatherv(send, None, 0)
            return None
        answer = np.empty(s.full)
        self.comm.Gatherv(send, [answer, self.recv_counts, self.recv_starts, self.recv], 0)
        return answer


class Transposed(Way):
    name = "transposed"

    def __init__(self, comm, shape, copy=False):
        super().__init__(comm, shape)
        self.copy = copy
        if copy:
            self.name = "transposed+copy"
        s = shape
        self.block = s.pre * s.post
        self.counts, self.starts = s.counts * self.block, s.starts * self.block

    def _view(self, gathered):
        s = self.shape
        view = gathered.transpose(1, 0, 2)  # (pre, N, post)
        if s.split == "models":
            answer = view
        else:  # (pre = n_out * n_models, N = n_exp, 1) -> (n_out, n_models, n_exp), still a view
            answer = view.reshape(s.full)
        return np.ascontiguousarray(answer) if self.copy else answer

    def _send(self, local):
        return np.ascontiguousarray(local.transpose(1, 0, 2))

    def __call__(self, local):
        s = self.shape
        if not self.root:
            self._worker(local)
            return None
        gathered = np.empty((s.n, s.pre, s.post))
        np.copyto(gathered[: s.rows], local.transpose(1, 0, 2))
        self.comm.Gatherv(MPI.IN_PLACE, [gathered, self.counts, self.starts, MPI.DOUBLE], 0)
        return self._view(gathered)

    def _worker(self, local):
        self.comm.Gatherv([self._send(local), MPI.DOUBLE], None, 0)


class SendType(Transposed):
    name = "sendtype"

    def __init__(self, comm, shape):
        super().__init__(comm, shape)
        s = shape
        if not self.root:
            # Row i of the share: pre blocks of post doubles, rows * post doubles apart.
            vector = MPI.BYTE.Create_hvector(s.pre, s.post * F8, s.rows * s.post * F8)
            self.send = self.committed(vector.Create_resized(0, s.post * F8))
            vector.Free()

    def _worker(self, local):
        self.comm.Gatherv([local, self.shape.rows, self.send], None, 0)


WAYS = {
    "strided": Strided,
    "staging": Staging,
    "istaging": IStaging,
    "slabs": Slabs,
    "islabs": ISlabs,
    "subarray": Subarray,
    "vector": Vector,
    "blocks": Blocks,
    "transposed": Transposed,
    "transposed+copy": lambda comm, shape: Transposed(comm, shape, copy=True),
    "sendtype": SendType,
}


def reps_for(nbytes: int, quick: bool) -> tuple[int, int]:
    """(warm-up, timed reps per round) for an answer of ``nbytes``."""
    if nbytes <= 1 << 16:
        reps = 150
    elif nbytes <= 1 << 20:
        reps = 60
    elif nbytes <= 1 << 24:
        reps = 20
    else:
        reps = 6
    return 2, max(3, reps // 2) if quick else reps


_START = np.zeros(64, dtype=np.uint8)


def time_way(comm, way, local, reps: int, warmup: int) -> list[float]:
    """The root's seconds per rep, each rep started as an engine call starts: a small Bcast from the root."""
    is_root = comm.Get_rank() == 0
    times = []
    for index in range(warmup + reps):
        start = time.perf_counter()
        comm.Bcast([_START, MPI.BYTE], 0)
        answer = way(local)
        elapsed = time.perf_counter() - start
        del answer
        if index >= warmup and is_root:
            times.append(elapsed)
    return times


def probe_gathers(comm, shapes, ways, rounds: int, quick: bool, check_only: bool) -> list[dict]:
    rank, size = comm.Get_rank(), comm.Get_size()
    rows_out = []
    for index, (n_out, n_models, n_exp, split) in enumerate(shapes):
        shape = Shape(n_out, n_models, n_exp, split, size, rank)
        local = shape.local()
        expected = shape.expected() if rank == 0 else None
        names = [name for name in ways if not (WAYS[name] in (Slabs, ISlabs) and split != "models")]
        built = {name: WAYS[name](comm, shape) for name in names}
        samples = {name: [] for name in names}
        equal = {}
        for name, way in built.items():  # correctness first, every way
            answer = way(local)
            if rank == 0:
                equal[name] = bool(np.array_equal(answer, expected)) and answer.shape == shape.full
            del answer
        if not check_only:
            warmup, reps = reps_for(shape.nbytes, quick)
            for round_ in range(rounds):
                order = names[round_ % len(names):] + names[: round_ % len(names)]
                for name in order:
                    samples[name] += time_way(comm, built[name], local, max(reps // rounds, 2), warmup)
            if rank == 0:  # the memory-bandwidth reference
                source = expected
                for _ in range(rounds):
                    for index_ in range(warmup + max(reps // rounds, 2)):
                        start = time.perf_counter()
                        copied = np.empty(shape.full)
                        np.copyto(copied, source)
                        elapsed = time.perf_counter() - start
                        del copied
                        if index_ >= warmup:
                            samples.setdefault("memcpy", []).append(elapsed)
        for way in built.values():
            way.free()
        if rank == 0:
            row = {"shape": shape.name, "split": split, "n_outcomes": n_out, "n_models": n_models,
                   "n_exp": n_exp, "ranks": size, "bytes": shape.nbytes, "equal": equal}
            if not check_only:
                row["min_us"] = {k: 1e6 * min(v) for k, v in samples.items()}
                row["median_us"] = {k: 1e6 * float(np.median(v)) for k, v in samples.items()}
            rows_out.append(row)
            bad = [k for k, v in equal.items() if not v]
            flag = "ok" if not bad else "MISMATCH " + ",".join(bad)
            print(f"[probe] {index + 1}/{len(shapes)} {shape.name} {flag}", file=sys.stderr, flush=True)
    return rows_out


def _scatter_calls(comm, n: int, row_bytes: int):
    """Two ways to scatter ``n`` rows of ``row_bytes`` (the root keeps its share in place), and the type to free."""
    rank, size = comm.Get_rank(), comm.Get_size()
    counts = even_counts(n, size)
    starts = starts_of(counts)
    whole = np.arange(n * row_bytes, dtype=np.uint64).astype(np.uint8) if rank == 0 else None
    mine = int(counts[rank])
    row = MPI.BYTE.Create_contiguous(row_bytes).Commit()
    buffer = np.empty(mine * row_bytes, dtype=np.uint8)
    bytes_counts, bytes_starts = counts * row_bytes, starts * row_bytes

    def by_rows(_local):
        if rank == 0:
            comm.Scatterv([whole, counts, starts, row], MPI.IN_PLACE, 0)
        else:
            comm.Scatterv(None, [buffer, mine, row], 0)

    def by_bytes(_local):
        if rank == 0:
            comm.Scatterv([whole, bytes_counts, bytes_starts, MPI.BYTE], MPI.IN_PLACE, 0)
        else:
            comm.Scatterv(None, [buffer, MPI.BYTE], 0)

    return {"row type": by_rows, "bytes": by_bytes}, row


def probe_scatters(comm, rounds: int, quick: bool) -> list[dict]:
    """Scatterv of particle rows (float64, n_mp per row) and of experiments (bytes per row)."""
    out = []
    for what, row_bytes in (("modelparams n_mp=1", 8), ("modelparams n_mp=2", 16), ("expparams 8 B", 8),
                            ("expparams 24 B", 24)):
        for n in (10**3, 10**4, 10**5):
            calls, row = _scatter_calls(comm, n, row_bytes)
            warmup, reps = reps_for(n * row_bytes, quick)
            samples = {name: [] for name in calls}
            for _ in range(rounds):
                for name, call in calls.items():
                    samples[name] += time_way(comm, call, None, max(reps // rounds, 2), warmup)
            row.Free()
            if comm.Get_rank() == 0:
                out.append({"what": what, "rows": n, "bytes": n * row_bytes,
                            "min_us": {k: 1e6 * min(v) for k, v in samples.items()},
                            "median_us": {k: 1e6 * float(np.median(v)) for k, v in samples.items()}})
    return out


def probe_fixed(comm, rounds: int) -> list[dict]:
    """The fixed collectives of a call, each after the 64 B Bcast every rep starts with ("nothing": that alone)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    out = []
    status = np.zeros(1)
    statuses = np.zeros(size) if rank == 0 else None
    messages = {nbytes: np.zeros(nbytes, np.uint8) for nbytes in (1024, 128, 64)}
    calls = {
        "Bcast 1024 B (message)": lambda: comm.Bcast([messages[1024], MPI.BYTE], 0),
        "Bcast 128 B (header)": lambda: comm.Bcast([messages[128], MPI.BYTE], 0),
        "Bcast 64 B": lambda: comm.Bcast([messages[64], MPI.BYTE], 0),
        "Gather 8 B (status)": lambda: comm.Gather(status, statuses, 0),
        # The round trip with one more Bcast: what a second Bcast (or a bigger message) adds to a call.
        "+Bcast 1024 B, Gather": lambda: (comm.Bcast([messages[1024], MPI.BYTE], 0), comm.Gather(status, statuses, 0)),
        "+Bcast 64 B, Gather": lambda: (comm.Bcast([messages[64], MPI.BYTE], 0), comm.Gather(status, statuses, 0)),
        "Barrier": lambda: comm.Barrier(),
        "nothing": lambda: None,
    }
    def make_type():
        dtype = MPI.BYTE.Create_subarray([6, 800_000], [6, 400_000], [0, 400_000]).Commit()
        dtype.Free()

    calls["Create_subarray+Commit+Free"] = make_type
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name] += time_way(comm, lambda _local, call=call: call(), None, 200, 20)
    if rank == 0:
        for name, times in samples.items():
            out.append({"what": name, "min_us": 1e6 * min(times), "median_us": 1e6 * float(np.median(times))})
    return out


def downstream_check() -> list[dict]:
    """Does a transposed-view answer change what an SMC update computes from it? (root only, no MPI)

    The update of qinfer's ``SMCUpdater.hypothetical_update``: ``weights * L.transpose(0, 2, 1)``,
    then a sum over the particles. Equal values in another memory layout can be summed in
    another order (NumPy's pairwise summation follows the layout), so the normalisation --
    and every posterior after it -- may differ in the last bits.
    """
    rng = np.random.default_rng(0)
    out = []
    for n_out, n_models, n_exp in ((1, 10_000, 1), (2, 10_000, 1), (3, 10_000, 1), (2, 1000, 20), (2, 10_000, 100)):
        answer = rng.uniform(0, 1, (n_out, n_models, n_exp))
        view = np.ascontiguousarray(answer.transpose(1, 0, 2)).transpose(1, 0, 2)
        weights = rng.uniform(0, 1, n_models)
        weights /= weights.sum()

        def update(likelihood, weights=weights):
            hypothetical = weights * likelihood.transpose(0, 2, 1)
            norm = np.sum(hypothetical, axis=2)[..., np.newaxis]
            return hypothetical / norm

        out.append({"shape": (n_out, n_models, n_exp),
                    "update_bitwise_equal": bool(np.array_equal(update(answer), update(view)))})
    return out


def gather_shapes(quick: bool, max_bytes: int) -> list[tuple]:
    shapes = []
    for n_exp in (1, 100):
        for n_models in (10**3, 10**4, 10**5):
            for n_out in (1, 2, 3, 6):
                if n_out * n_models * n_exp * F8 > max_bytes:
                    continue
                if quick and n_exp == 100 and n_models == 10**5 and n_out > 2:
                    continue
                shapes.append((n_out, n_models, n_exp, "models"))
    for n_models, n_exp in ((10, 1000), (100, 1000), (1000, 100), (1000, 1000)):
        for n_out in (1, 2, 3, 6):
            if quick and n_out in (3,):
                continue
            if n_out * n_models * n_exp * F8 <= max_bytes:
                shapes.append((n_out, n_models, n_exp, "experiments"))
    return shapes


def format_gathers(rows: list[dict], ways: list[str], stat: str = "median") -> str:
    lines = []
    names = [w for w in ways] + ["memcpy"]
    head = f"{'shape':42} {'MB':>7} " + " ".join(f"{n[:11]:>11}" for n in names) + "  best"
    lines.append(f"{stat} us per gather; [x] = {stat} / best {stat} of the ways returning the serial layout")
    lines.append(head)
    for row in rows:
        med = row[f"{stat}_us"]
        gathers = {k: v for k, v in med.items() if k not in ("memcpy", "transposed", "sendtype")}
        best_name = min(gathers, key=gathers.get)
        best = gathers[best_name]
        cells = []
        for name in names:
            value = med.get(name)
            text = "-" if value is None else f"{value:.0f}" if value >= 1000 else f"{value:.1f}"
            if value is not None:
                text += f"[{value / best:.1f}]"
            cells.append(text.rjust(11))
        bad = [k for k, v in row["equal"].items() if not v]
        lines.append(f"{row['shape']:42} {row['bytes'] / 1e6:7.3f} " + " ".join(cells) + f"  {best_name}"
                     + (f"  MISMATCH {bad}" if bad else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reps, no 1e5 x 100 x {3,6}")
    parser.add_argument("--check", action="store_true", help="correctness only (every way, every shape), no timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-mb", type=float, default=500.0, help="largest answer (MB) probed")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated ways to compare")
    parser.add_argument("--only", choices=("gather", "scatter", "fixed"), default=None)
    parser.add_argument("--json", default=None, help="write every number to this file")
    args = parser.parse_args(argv)
    world = MPI.COMM_WORLD
    comm = world.Dup()
    rank = comm.Get_rank()
    ways = [w for w in args.ways.split(",") if w]
    result = {"ranks": comm.Get_size(), "mpi": MPI.Get_library_version().splitlines()[0].strip(),
              "numpy": np.__version__}
    status = 0
    if args.only in (None, "gather"):
        rows = probe_gathers(comm, gather_shapes(args.quick, int(args.max_mb * 1e6)), ways, args.rounds,
                             args.quick, args.check)
        if rank == 0:
            result["gathers"] = rows
            status = int(any(not v for row in rows for v in row["equal"].values()))
            if args.check:
                print(f"correctness at {comm.Get_size()} ranks: {len(rows)} shapes x {len(ways)} ways: "
                      + ("all bitwise equal" if not status else "MISMATCHES"))
            else:
                print(format_gathers(rows, ways, "min"))
                print()
                print(format_gathers(rows, ways, "median"))
    if not args.check and args.only in (None, "scatter"):
        rows = probe_scatters(comm, args.rounds, args.quick)
        if rank == 0:
            result["scatters"] = rows
            print("\nScatterv (root IN_PLACE), median us [min]")
            for row in rows:
                cells = "  ".join(f"{k} {row['median_us'][k]:8.1f} [{row['min_us'][k]:7.1f}]" for k in row["median_us"])
                print(f"  {row['what']:20} rows={row['rows']:<7} {row['bytes'] / 1e6:6.3f} MB  {cells}")
    if not args.check and args.only in (None, "fixed"):
        rows = probe_fixed(comm, args.rounds)
        if rank == 0:
            result["fixed"] = rows
            print("\nfixed costs of a call, median us [min]; every rep starts with a 64 B Bcast (\"nothing\"); "
                  "the Gather rows are round trips (the root waits for the worker)")
            for row in rows:
                print(f"  {row['what']:28} {row['median_us']:7.1f} [{row['min_us']:6.1f}]")
    if rank == 0 and not args.check and args.only in (None, "gather"):
        rows = downstream_check()
        result["downstream"] = rows
        print("\nSMC update (qinfer's hypothetical_update sums) from a transposed-view answer, bitwise equal to "
              "the update from the C-ordered answer?")
        for row in rows:
            print(f"  (n_outcomes, n_models, n_exp) = {row['shape']}: {'yes' if row['update_bitwise_equal'] else 'NO'}")
    if rank == 0 and args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    comm.Free()
    return int(world.bcast(status, 0))


if __name__ == "__main__":
    sys.exit(main())
