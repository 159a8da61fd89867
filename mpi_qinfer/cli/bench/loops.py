"""The hand-written reference loops: the communication floor and a pickle-based map, each a root-driven worker loop."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

__all__ = ["FloorLoop", "PickleMapLoop", "SHORT_BLOCK_BYTES"]


class _WorkerLoop:
    """A root-driven command loop on its own duplicate of ``comm`` (construction is collective).

    Used like the proxy: ``with Loop(comm, model) as loop:`` -- workers serve
    inside ``__enter__`` and skip the body with ``if loop.is_root:``; leaving
    the block on the root releases them and frees the communicator.
    """

    def __init__(self, comm, model, root: int = 0):
        self.comm = comm.Dup()
        self.model = model
        self.root = root
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._closed = False

    @property
    def is_root(self) -> bool:
        """Whether this rank drives the loop."""
        return self.rank == self.root

    def serve(self) -> None:
        """Workers: answer the root's calls until it closes the loop, then free the communicator."""
        try:
            while self._serve_one():
                pass
        finally:
            self._free()

    def close(self) -> None:
        """Root: end the workers' loop and free the communicator (idempotent)."""
        if self.is_root and not self._closed:
            try:
                self._send_stop()
            finally:
                self._free()

    def _free(self) -> None:
        if not self._closed:
            self._closed = True
            self.comm.Free()

    def __enter__(self):
        if not self.is_root:
            self.serve()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def _serve_one(self) -> bool:
        raise NotImplementedError

    def _send_stop(self) -> None:
        raise NotImplementedError


#: Below this many bytes per block, the floor gathers through a staging buffer (see :class:`FloorLoop`).
SHORT_BLOCK_BYTES = 1024
_ANSWER_TAG = 23


class FloorLoop(_WorkerLoop):
    """The proxy's communication written directly against mpi4py's buffer interface: the floor.

    The fastest hand-written code for each call shape that returns the serial
    answer's C-ordered layout, as measured by ``scripts/layout_probe.py``.
    One call:

    * ``Bcast`` of a 1 KiB message: an ``int64`` header (command,
      ``n_models``, ``n_modelparams``, ``n_exp``, ``n_outcomes``), then inline
      the raw bytes of the outcomes and of the unsplit input (the experiments
      when the particles are split, the particles otherwise) as far as they
      fit; one more ``Bcast`` for each that does not (a bigger message costs
      the same, a second ``Bcast`` about 2 us);
    * ``Scatterv`` of the split input in plain counts (doubles or bytes), even
      split, the root's share in place;
    * the local likelihood, ``(n_outcomes, rows, n_exp)`` or ``(n_outcomes,
      n_models, cols)``;
    * the gather into a fresh ``(n_outcomes, n_models, n_exp)`` answer: the
      root posts one ``Irecv`` per worker whose ``hvector`` type places the
      worker's whole share at once (``n_outcomes`` -- or ``n_outcomes *
      n_models`` -- blocks of contiguous rows) at its byte offset, copies its
      own share with ``np.copyto`` while they arrive, and waits; the workers
      ``Send`` their share's bytes. When a block is shorter than
      :data:`SHORT_BLOCK_BYTES` (many short columns, e.g. the experiments
      split of many particles), a ``Gatherv`` of the shares' bytes into a
      staging buffer and one ``np.copyto`` per rank is faster, and is used.

    No checks, no error handling: a model error on a worker kills the job.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    split : {"models", "experiments"}
        The axis the ranks divide; the same on every rank.
    outcomes_dtype : numpy.dtype
        The dtype of the outcomes (any fixed-size dtype, records included);
        the same on every rank.
    """

    _MESSAGE_BYTES = 1024
    _HEADER_LEN = 5

    def __init__(self, comm, model, root: int = 0, split: str = "models", outcomes_dtype=np.int64):
        super().__init__(comm, model, root)
        if split not in ("models", "experiments"):
            raise ValueError(f"split must be 'models' or 'experiments', got {split!r}")
        self.split = split
        self.outcomes_dtype = np.dtype(outcomes_dtype)
        self._message = np.zeros(self._MESSAGE_BYTES, dtype=np.uint8)
        self._header = self._message[: 8 * self._HEADER_LEN].view(np.int64)
        self._inline = self._message[8 * self._HEADER_LEN :]
        self._plans = {}

    def _plan(self, n_models: int, n_mp: int, n_exp: int, n_out: int) -> dict:
        """Everything that follows from the call's shape, cached: counts, buffers, gather types."""
        key = (n_models, n_mp, n_exp, n_out)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        by_models = self.split == "models"
        n_rows = n_models if by_models else n_exp
        rows = np.full(self.size, n_rows // self.size, dtype=np.int64)
        rows[: n_rows % self.size] += 1
        starts = np.concatenate(([0], np.cumsum(rows)[:-1])).astype(np.int64)
        # The answer seen as (pre, n_rows, post), split along n_rows.
        pre, post = (n_out, n_exp) if by_models else (n_out * n_models, 1)
        block = post * 8  # bytes of one row within one block
        plan = {"rows": rows, "starts": starts, "pre": pre, "post": post, "n_rows": n_rows,
                "expparams": np.empty(n_exp, dtype=self.model.expparams_dtype),
                "outcomes": np.empty(n_out, dtype=self.outcomes_dtype),
                "staged": bool(pre > 1 and int(rows.min()) * block < SHORT_BLOCK_BYTES)}
        if self.is_root:
            if plan["staged"]:
                counts = rows * pre * block
                counts[self.rank] = 0  # the root copies its own share
                plan["stage_counts"], plan["stage_starts"] = counts, np.concatenate(([0], np.cumsum(counts)[:-1]))
                plan["staging"] = np.empty(int(counts.sum()), dtype=np.uint8)
            else:
                types = []
                for r in range(self.size):
                    dtype = None
                    if r != self.rank and rows[r] > 0:
                        dtype = MPI.BYTE.Create_hvector(pre, int(rows[r]) * block, n_rows * block).Commit()
                    types.append(dtype)
                plan["types"] = types
        self._plans[key] = plan
        return plan

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes``, all ranks computing.

        ``outcomes`` must be a contiguous array of the loop's outcome dtype,
        ``modelparams`` a C-contiguous float64 ``(n_models, n_modelparams)``
        array and ``expparams`` a contiguous array of the model's dtype.
        """
        n_models, n_mp = modelparams.shape
        self._header[:] = (1, n_models, n_mp, len(expparams), len(outcomes))
        whole = expparams if self.split == "models" else modelparams
        self._broadcast((outcomes, whole))
        return self._call(outcomes, modelparams, expparams)

    def _broadcast(self, arrays) -> None:
        """The message Bcast, carrying ``arrays``' bytes inline when they fit; then a Bcast per other array.

        On the workers ``arrays`` are the buffers to fill. Both sides decide
        from the sizes alone, which the header fixes.
        """
        raws = [array.view(np.uint8).reshape(-1) for array in arrays]
        inline, end = [], 0
        for raw in raws:
            if end + raw.nbytes > self._inline.nbytes:
                break
            inline.append((raw, end))
            end += raw.nbytes
        if self.is_root:
            for raw, offset in inline:
                self._inline[offset : offset + raw.nbytes] = raw
            self.comm.Bcast([self._message, MPI.BYTE], self.root)
        else:
            for raw, offset in inline:
                raw[:] = self._inline[offset : offset + raw.nbytes]
        for raw in raws[len(inline):]:
            self.comm.Bcast([raw, MPI.BYTE], self.root)

    def _call(self, outcomes, modelparams, expparams):
        comm, root, rank = self.comm, self.root, self.rank
        n_models, n_mp, n_exp, n_out = (int(v) for v in self._header[1:5])
        plan = self._plan(n_models, n_mp, n_exp, n_out)
        by_models = self.split == "models"
        if not self.is_root:  # the message has arrived (in _serve_one); unpack what it carries
            outcomes = plan["outcomes"]
            if by_models:
                expparams = plan["expparams"]
            else:
                modelparams = plan.setdefault("modelparams", np.empty((n_models, n_mp), dtype=np.float64))
            self._broadcast((outcomes, expparams if by_models else modelparams))
        rows, starts = plan["rows"], plan["starts"]
        mine, first = int(rows[rank]), int(starts[rank])
        if by_models:
            if self.is_root:
                comm.Scatterv([modelparams, rows * n_mp, starts * n_mp, MPI.DOUBLE], MPI.IN_PLACE, root)
                modelparams = modelparams[first : first + mine]
            else:
                modelparams = np.empty((mine, n_mp), dtype=np.float64)
                comm.Scatterv(None, [modelparams, MPI.DOUBLE], root)
        else:
            size = plan["expparams"].itemsize
            if self.is_root:
                comm.Scatterv([expparams.view(np.uint8).reshape(-1), rows * size, starts * size, MPI.BYTE],
                              MPI.IN_PLACE, root)
                expparams = expparams[first : first + mine]
            else:
                expparams = np.empty(mine, dtype=plan["expparams"].dtype)
                comm.Scatterv(None, [expparams.view(np.uint8).reshape(-1), MPI.BYTE], root)
        share = np.ascontiguousarray(self.model.likelihood(outcomes, modelparams, expparams), dtype=np.float64)
        if not self.is_root:
            if plan["staged"]:
                comm.Gatherv([share, share.nbytes, MPI.BYTE], None, root)
            elif mine > 0:  # the root posts no receive for an empty share
                comm.Send([share, share.nbytes, MPI.BYTE], root, _ANSWER_TAG)
            return None
        return self._gather(plan, share, n_out, n_models, n_exp)

    def _gather(self, plan, share, n_out, n_models, n_exp):
        comm, rank = self.comm, self.rank
        pre, post, n_rows = plan["pre"], plan["post"], plan["n_rows"]
        rows, starts = plan["rows"], plan["starts"]
        answer = np.empty((n_out, n_models, n_exp), dtype=np.float64)
        blocks = answer.reshape(pre, n_rows, post)
        mine, first = int(rows[rank]), int(starts[rank])
        if plan["staged"]:
            staging, counts, offsets = plan["staging"], plan["stage_counts"], plan["stage_starts"]
            comm.Gatherv([share, 0, MPI.BYTE], [staging, counts, offsets, MPI.BYTE], self.root)
            np.copyto(blocks[:, first : first + mine], share.reshape(pre, mine, post))
            for r in range(self.size):
                if r != rank and rows[r] > 0:
                    part = staging[offsets[r] : offsets[r] + counts[r]].view(np.float64)
                    np.copyto(blocks[:, starts[r] : starts[r] + rows[r]], part.reshape(pre, int(rows[r]), post))
            return answer
        raw = answer.reshape(-1).view(np.uint8)
        requests = [comm.Irecv([raw[int(starts[r]) * post * 8 :], 1, dtype], r, _ANSWER_TAG)
                    for r, dtype in enumerate(plan["types"]) if dtype is not None]
        np.copyto(blocks[:, first : first + mine], share.reshape(pre, mine, post))
        MPI.Request.Waitall(requests)
        return answer

    def _serve_one(self) -> bool:
        self.comm.Bcast([self._message, MPI.BYTE], self.root)
        if self._header[0] == 0:
            return False
        self._call(None, None, None)
        return True

    def _send_stop(self) -> None:
        self._header[:] = 0
        self.comm.Bcast([self._message, MPI.BYTE], self.root)

    def _free(self) -> None:
        for plan in self._plans.values():
            for dtype in plan.get("types", ()):
                if dtype is not None:
                    dtype.Free()
        self._plans.clear()
        super()._free()


class PickleMapLoop(_WorkerLoop):
    """A pickle-based map over the particles or the experiments: mpi4py's lowercase collectives.

    One call: ``bcast`` of the outcomes and the unsplit input, ``scatter`` of
    ``np.array_split`` chunks of the split one, compute, ``gather`` of the
    answers, ``np.concatenate`` along the split axis on the root. What a user
    writes without this package (and close to what ``mpi4py.futures`` or
    ipyparallel's map do per call).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    split : {"models", "experiments"}
        The axis the ranks divide; the same on every rank.
    """

    def __init__(self, comm, model, root: int = 0, split: str = "models"):
        super().__init__(comm, model, root)
        if split not in ("models", "experiments"):
            raise ValueError(f"split must be 'models' or 'experiments', got {split!r}")
        self.by_models = split == "models"

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes``, all ranks computing."""
        if self.by_models:
            self.comm.bcast((outcomes, expparams), self.root)
            return self._call(outcomes, expparams, np.array_split(modelparams, self.size))
        self.comm.bcast((outcomes, modelparams), self.root)
        return self._call(outcomes, modelparams, np.array_split(expparams, self.size))

    def _call(self, outcomes, whole, chunks):
        local = self.comm.scatter(chunks, self.root)
        if self.by_models:
            answer = self.model.likelihood(outcomes, local, whole)
        else:
            answer = self.model.likelihood(outcomes, whole, local)
        parts = self.comm.gather(answer, self.root)
        return None if parts is None else np.concatenate(parts, axis=1 if self.by_models else 2)

    def _serve_one(self) -> bool:
        message = self.comm.bcast(None, self.root)
        if message is None:
            return False
        self._call(*message, None)
        return True

    def _send_stop(self) -> None:
        self.comm.bcast(None, self.root)
