"""The hand-written reference loops: the communication floor and a pickle-based map, each a root-driven worker loop."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

__all__ = ["FloorLoop", "PickleMapLoop"]


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


class FloorLoop(_WorkerLoop):
    """The proxy's collectives written directly against mpi4py's buffer interface: the floor.

    One call: ``Bcast`` an ``int64[8]`` header (command, ``n_models``,
    ``n_modelparams``, ``n_exp``, ``n_outcomes`` and up to three outcomes
    inline), ``Bcast`` the raw expparams bytes, ``Scatterv`` the float64
    particle rows (counts in elements, even split, the root's share in
    place), compute the local likelihood, ``Gatherv`` the ``(n_local,
    n_outcomes, n_exp)`` float64 answers into an ``(n_models, n_outcomes,
    n_exp)`` buffer on the root, returned as a transposed view. No checks,
    no error handling: a model error on a worker kills the job.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    """

    MAX_OUTCOMES = 3

    def __init__(self, comm, model, root: int = 0):
        super().__init__(comm, model, root)
        self._header = np.zeros(8, dtype=np.int64)
        self._plans = {}

    def _plan(self, n_models: int, n_mp: int, n_exp: int):
        """Counts and displacements (in elements) of the scatter and the gather, cached by shape."""
        key = (n_models, n_mp, n_exp)
        plan = self._plans.get(key)
        if plan is None:
            rows = np.full(self.size, n_models // self.size, dtype=np.int64)
            rows[: n_models % self.size] += 1
            starts = np.concatenate(([0], np.cumsum(rows)[:-1]))
            expparams = np.empty(n_exp, dtype=self.model.expparams_dtype)
            plan = self._plans[key] = (rows, starts, expparams)
        return plan

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes`` (at most three int64), all ranks computing.

        ``modelparams`` must be a C-contiguous float64 ``(n_models,
        n_modelparams)`` array and ``expparams`` a contiguous array of the
        model's dtype.
        """
        n_out = len(outcomes)
        if n_out > self.MAX_OUTCOMES:
            raise ValueError(f"the floor carries at most {self.MAX_OUTCOMES} outcomes in its header")
        n_models, n_mp = modelparams.shape
        h = self._header
        h[:5] = (1, n_models, n_mp, len(expparams), n_out)
        h[5 : 5 + n_out] = outcomes
        self.comm.Bcast(h, self.root)
        return self._call(outcomes, modelparams, expparams)

    def _call(self, outcomes, modelparams, expparams):
        comm, root, rank = self.comm, self.root, self.rank
        h = self._header
        n_models, n_mp, n_exp, n_out = (int(v) for v in h[1:5])
        rows, starts, buffer = self._plan(n_models, n_mp, n_exp)
        if expparams is None:
            expparams = buffer
        comm.Bcast([expparams.view(np.uint8), MPI.BYTE], root)
        mine = int(rows[rank])
        if self.is_root:
            comm.Scatterv([modelparams, rows * n_mp, starts * n_mp, MPI.DOUBLE], MPI.IN_PLACE, root)
            local = modelparams[starts[rank] : starts[rank] + mine]
        else:
            outcomes = h[5 : 5 + n_out].copy()
            local = np.empty((mine, n_mp), dtype=np.float64)
            comm.Scatterv(None, [local, MPI.DOUBLE], root)
        answer = self.model.likelihood(outcomes, local, expparams)
        send = np.ascontiguousarray(answer.transpose(1, 0, 2), dtype=np.float64)
        block = n_out * n_exp
        if not self.is_root:
            comm.Gatherv([send, MPI.DOUBLE], None, root)
            return None
        gathered = np.empty((n_models, n_out, n_exp), dtype=np.float64)
        comm.Gatherv([send, MPI.DOUBLE], [gathered, rows * block, starts * block, MPI.DOUBLE], root)
        return gathered.transpose(1, 0, 2)

    def _serve_one(self) -> bool:
        self.comm.Bcast(self._header, self.root)
        if self._header[0] == 0:
            return False
        self._call(None, None, None)
        return True

    def _send_stop(self) -> None:
        self._header[:] = 0
        self.comm.Bcast(self._header, self.root)


class PickleMapLoop(_WorkerLoop):
    """A pickle-based map over the particle rows: mpi4py's lowercase collectives.

    One call: ``bcast`` of ``(outcomes, expparams)``, ``scatter`` of
    ``np.array_split(modelparams, size)``, compute, ``gather`` of the answers,
    ``np.concatenate`` along the models axis on the root. What a user writes
    without this package (and close to what ``mpi4py.futures`` or
    ipyparallel's map do per call).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    """

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes``, all ranks computing."""
        self.comm.bcast((outcomes, expparams), self.root)
        return self._call(outcomes, expparams, np.array_split(modelparams, self.size))

    def _call(self, outcomes, expparams, chunks):
        local = self.comm.scatter(chunks, self.root)
        answer = self.model.likelihood(outcomes, local, expparams)
        parts = self.comm.gather(answer, self.root)
        return None if parts is None else np.concatenate(parts, axis=1)

    def _serve_one(self) -> bool:
        message = self.comm.bcast(None, self.root)
        if message is None:
            return False
        self._call(*message, None)
        return True

    def _send_stop(self) -> None:
        self.comm.bcast(None, self.root)
