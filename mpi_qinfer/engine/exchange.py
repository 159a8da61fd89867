"""The exchange of one call on every rank: broadcast, scatter, compute, gather, report (steps 2-7).

:class:`Exchange` owns the buffers a call reuses (payload, split rows,
staging, status records) and runs the collective sequence that
:class:`~mpi_qinfer.engine.core.Engine` starts with its message (step 1, the
packed spec); root and workers run the same code, so their collectives
cannot differ (see :mod:`~mpi_qinfer.engine.core` for the steps).
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .failures import describe_failure, pickled_exception, raise_failure
from .partition import displacements
from .plans import Plan, array_at, place_staged
from .protocol import CallSpec, DtypeTable
from .validation import answer_travels, untravelable_answer

__all__ = ["AnswerDtypesChanged", "Exchange"]

_REPORT_TAG = 77
_ANSWER_TAG = 80  # + the answer's index

# Status records (one int64 row per rank, step 5).
_OK, _FAILED, _OTHER_DTYPE = 0, 1, 2
_UNKNOWN_DTYPE = -2  # a dtype the rank's table does not have: it sends the dtype itself
_STATE, _NANOSECONDS, _DTYPES = 0, 1, 2  # columns; the answer dtypes fill columns 2 and 3
_STATUS_LEN = 4


class AnswerDtypesChanged(Exception):
    """Step 7 found ranks whose answers have another dtype than expected (root).

    Parameters
    ----------
    operation : str
        The operation's name.
    found : dict
        Rank to the two dtypes its answers had (``None``: the expected one).
    """

    def __init__(self, operation: str, found: dict):
        super().__init__(operation, found)
        self.operation, self.found = operation, found


class Exchange:
    """The collective sequence of one call (steps 2-7) on ``comm``, with the buffers it reuses.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The engine's communicator.
    root : int
        The root's rank in ``comm``.
    dtypes : DtypeTable
        The dtypes every rank knows by id.
    models : list
        The serial models by id (the engine's list, which it updates in place).

    A payload small enough travels in the engine's message (step 1); the
    plan then holds typed views of it (``Plan.inline_views``), and step 2
    has nothing to broadcast.
    """

    def __init__(self, comm, root: int, dtypes: DtypeTable, models: list):
        self._comm = comm
        self._root = root
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()
        self._dtypes = dtypes
        self._models = models
        self._payload = np.empty(0, dtype=np.uint8)
        self._split_buffer = np.empty(0, dtype=np.uint8)
        self._staging = np.empty(0, dtype=np.uint8)
        self._scratch = np.empty(0, dtype=np.uint8)
        self._last_counts = np.zeros(0, dtype=np.int64)
        self._any_not_ok = False  # root: whether the last status exchange found a rank not ok
        self._last_answer_dtypes: list = []
        self._statuses = np.zeros((self._size, _STATUS_LEN), dtype=np.int64)
        self._states = self._statuses[:, _STATE]
        # This rank's status record; on the root, its row of the table the workers' records fill.
        is_root = self._rank == root
        self._status = self._statuses[self._rank] if is_root else np.zeros(_STATUS_LEN, dtype=np.int64)

    @property
    def last_counts(self) -> np.ndarray:
        """Rows each rank got in the last call."""
        return self._last_counts

    def seconds_of(self, rank: int) -> float:
        """Seconds ``rank`` spent in the serial model during the last call (root)."""
        return self._statuses[rank, _NANOSECONDS] * 1e-9

    def compute_seconds(self) -> np.ndarray:
        """Seconds each rank spent in the serial model during the last call (root; -1: failed)."""
        seconds = self._statuses[:, _NANOSECONDS] * 1e-9
        seconds[self._statuses[:, _STATE] != _OK] = -1.0
        return seconds

    def payload(self, nbytes: int) -> np.ndarray:
        """The reused payload buffer, ``nbytes`` long (grown when short)."""
        return self._grow("_payload", nbytes)

    def _grow(self, name: str, nbytes: int) -> np.ndarray:
        buffer = getattr(self, name)
        if buffer.nbytes < nbytes:
            buffer = np.empty(max(nbytes, 2 * buffer.nbytes), dtype=np.uint8)
            setattr(self, name, buffer)
        return buffer[:nbytes]

    def run(self, spec: CallSpec, plan: Plan, arrays: dict | None) -> list:
        """The collective sequence of one call (steps 2-7); ``arrays`` is None on workers.

        Returns the gathered answers on the root, ``[]`` on a worker. Raises,
        on the root, what a failed rank's serial model raised, or
        :class:`AnswerDtypesChanged` when ranks answered in other dtypes than
        the spec expects (the caller learns them and calls again).
        """
        is_root = arrays is not None
        inputs = self._receive_broadcast(spec, plan, arrays)  # 2
        counts, displs = self._partition(plan, inputs)
        rows = int(counts[self._rank])
        share = self._scatter(plan, inputs, counts, displs, rows)  # 3
        if not is_root:
            # Copies, not views into the reused buffers: a model may keep its input.
            # Made after step 3, so that a worker is ready for the scatter sooner.
            inputs = {name: view.copy() for name, view in inputs.items()}
            results, error = self._compute(spec, plan, inputs, share, rows)  # 4
            self._send_results(plan, results, rows, counts)  # 5, 6
            if self._status[_STATE] != _OK:
                self._report(plan, error)  # 7
            return []
        results, error = self._compute(spec, plan, inputs, share, rows)  # 4
        answers = self._receive_results(plan, results, rows, counts, displs)  # 5, 6
        if self._any_not_ok:
            raise AnswerDtypesChanged(plan.operation.name, self._collect_reports(plan, error))  # 7
        return answers

    def _receive_broadcast(self, spec: CallSpec, plan: Plan, arrays: dict | None) -> dict:
        """Step 2: the payload beyond the message; on workers, views of the broadcast arrays in it."""
        if plan.inline_views is not None:  # the payload came in the message itself: the plan's views of it
            return arrays if arrays is not None else dict(plan.inline_views)
        source = self._grow("_payload", plan.payload_bytes)
        self._comm.Bcast([source, plan.payload_bytes, MPI.BYTE], self._root)
        if arrays is not None:
            return arrays
        return {name: array_at(source, offset, shape, dtype) for name, shape, dtype, offset in plan.broadcast}

    def _partition(self, plan: Plan, inputs: dict):
        if plan.even_counts is not None:
            counts, displs = plan.even_counts, plan.even_displs
        else:
            counts = np.array(inputs["counts"], dtype=np.int64)  # not a view into the reused message
            displs = displacements(counts)
        self._last_counts = counts
        return counts, displs

    def _scatter(self, plan: Plan, inputs: dict, counts, displs, rows: int) -> np.ndarray | None:
        """Step 3: each rank's rows of the split input, as a read-only array."""
        if plan.split_input is None:
            return None
        rank, root, comm = self._rank, self._root, self._comm
        if rank == root:
            whole = inputs[plan.split_input]
            if plan.row_type is not None:
                comm.Scatterv([whole, counts, displs, plan.row_type], MPI.IN_PLACE, root)
            start = int(displs[rank])
            share = whole[start : start + rows].view()
        elif plan.row_type is not None:
            buffer = self._grow("_split_buffer", rows * plan.row_bytes)
            comm.Scatterv(None, [buffer, rows, plan.row_type], root)
            share = buffer.view(plan.split_dtype).reshape((rows, *plan.split_row_shape))
        else:  # rows of zero bytes (a dtype without fields): nothing to move
            share = np.empty((rows, *plan.split_row_shape), plan.split_dtype)
        share.flags.writeable = False
        return share

    def _compute(self, spec: CallSpec, plan: Plan, inputs: dict, share, rows: int):
        """Step 4: the serial model on this rank's share; a failure is kept, not raised."""
        status = self._status
        status[_STATE] = _OK
        status[_NANOSECONDS] = 0
        status[_DTYPES], status[_DTYPES + 1] = plan.answer_ids
        if rows == 0 and plan.split_input is not None:
            return (), None
        modelparams, expparams = inputs.get("modelparams"), inputs.get("expparams")
        if plan.split_input == "modelparams":
            modelparams = share
        elif plan.split_input == "expparams":
            expparams = share
        started = time.perf_counter_ns()
        try:
            results = plan.operation.compute(
                self._models[spec.model_id], spec, inputs.get("outcomes"), modelparams, expparams, self._rank
            )
            results = self._checked_results(plan, results, rows)
        except BaseException as error:  # noqa: BLE001 - every rank must finish the call
            status[_STATE] = _FAILED
            return (), error
        finally:
            status[_NANOSECONDS] = time.perf_counter_ns() - started
        return results, None

    def _checked_results(self, plan: Plan, results, rows: int) -> tuple:
        """The answers as C-contiguous arrays of the expected shapes; notes other dtypes in the status."""
        answers = plan.answers
        if type(results) is tuple and len(results) == 1 == len(answers):  # the common case, in a few reads
            result, answer = results[0], answers[0]
            if (type(result) is np.ndarray and result.dtype is answer.dtype and result.flags.c_contiguous
                    and result.shape == (answer.even_shape or answer.local_shape(rows))):
                return results
        if not isinstance(results, tuple) or len(results) != len(answers):
            raise TypeError(f"expected {len(answers)} result array(s), got {type(results).__name__}")
        checked = []
        for index, (answer, result) in enumerate(zip(answers, results)):
            result = np.asarray(result)
            if not answer_travels(result.dtype):  # pointers: this rank fails the call rather than send them
                raise untravelable_answer(plan.operation.name, result.dtype)
            expected = answer.even_shape if answer.even_shape is not None else answer.local_shape(rows)
            if result.shape != expected:
                raise ValueError(f"the serial model returned shape {result.shape}, expected {expected}")
            if result.dtype != answer.dtype:
                self._last_answer_dtypes = [np.asarray(r).dtype for r in results]
                known = self._dtypes.id_of(result.dtype)
                self._status[_STATE] = _OTHER_DTYPE
                self._status[_DTYPES + index] = _UNKNOWN_DTYPE if known is None else known
            checked.append(result if result.flags.c_contiguous else np.ascontiguousarray(result))
        return tuple(checked)

    def _send_results(self, plan: Plan, results: tuple, rows: int, counts) -> None:
        """Steps 5 and 6 on a worker: the status record, and this rank's share of every answer.

        A rank without a good answer (its model failed, or answered in
        another dtype) still takes part in every gather: it sends placeholder
        bytes of the share's size to a gather, an empty message where the
        root receives point to point. The root reads the statuses before it
        keeps any answer.
        """
        comm, root = self._comm, self._root
        requests = [comm.Igather([self._status, MPI.INT64_T], None, root)]
        good = rows > 0 and bool(results) and self._status[_STATE] == _OK
        staged = plan.staged(counts)
        for index, answer in enumerate(plan.answers):
            if not answer.moves:
                continue
            share = results[index] if good else None
            if answer.n_blocks == 1:
                buffer = share if good else self._placeholder(rows * answer.post_bytes)
                requests.append(comm.Igatherv([buffer, rows, answer.row_type], None, root))
            elif staged[index]:
                nbytes = rows * answer.n_blocks * answer.post_bytes
                buffer = share if good else self._placeholder(nbytes)
                requests.append(comm.Igatherv([buffer, nbytes, MPI.BYTE], None, root))
            elif rows:
                message = [share, share.nbytes, MPI.BYTE] if good else [self._scratch[:0], 0, MPI.BYTE]
                requests.append(comm.Isend(message, root, _ANSWER_TAG + index))
        MPI.Request.Waitall(requests)

    def _placeholder(self, nbytes: int) -> np.ndarray:
        """``nbytes`` bytes sent in place of a share this rank does not have (the root discards them)."""
        return self._grow("_scratch", nbytes)

    def _receive_results(self, plan: Plan, results: tuple, rows: int, counts, displs) -> list:
        """Steps 5 and 6 on the root: every rank's status, and every answer in place.

        Everything is posted at once, right after the root's own compute: the
        statuses' ``Igather``; per answer an ``Igatherv`` of contiguous rows
        (one block), one receive per worker whose vector datatype places its
        share (several blocks), or an ``Igatherv`` into a staging buffer
        (short blocks; see :class:`~mpi_qinfer.engine.plans.Receives`). The root
        copies its own share while they progress, waits once, and then reads
        the statuses. Where each share goes is worked out once per plan for
        the even split.
        """
        comm, root = self._comm, self._root
        receives = plan.receives(counts, displs, root)
        requests = [comm.Igather(MPI.IN_PLACE, [self._statuses, MPI.INT64_T], root)]
        staging = self._grow("_staging", receives.staging_bytes)
        wholes = []
        for index, answer in enumerate(plan.answers):
            whole = np.empty(answer.shape, dtype=answer.dtype)
            wholes.append(whole)
            if receives.gathered[index] is not None:  # the root's rows are not touched (IN_PLACE)
                counts_rows, displs_rows = receives.gathered[index]
                requests.append(comm.Igatherv(MPI.IN_PLACE, [whole, counts_rows, displs_rows, answer.row_type], root))
            elif receives.staged[index] is not None:
                base, sizes, offsets, _ = receives.staged[index]
                requests.append(comm.Igatherv(MPI.IN_PLACE, [staging[base:], sizes, offsets, MPI.BYTE], root))
            elif receives.placed[index] is not None:
                raw = whole.reshape(-1).view(np.uint8)
                tag = _ANSWER_TAG + index
                for rank, datatype in receives.placed[index]:  # the datatype starts at the share's offset
                    requests.append(comm.Irecv([raw, 1, datatype], rank, tag))
        if rows and results and self._status[_STATE] == _OK:  # into bytes no receive writes
            start = int(displs[self._rank])
            for index, answer in enumerate(plan.answers):
                if answer.moves:
                    self._copy_share(answer, results[index], rows, wholes[index], start)
        MPI.Request.Waitall(requests)
        self._any_not_ok = any(self._states.tolist())  # (ndarray.any costs ten times more on a few values)
        if not self._any_not_ok:
            for index, answer in enumerate(plan.answers):
                if receives.staged[index] is not None:
                    base, _, _, runs = receives.staged[index]
                    place_staged(answer, staging[base:], runs, wholes[index])
        return wholes

    @staticmethod
    def _copy_share(answer, share, rows, whole, start) -> None:
        if rows:
            blocks = whole.reshape(answer.n_blocks, answer.n_rows, -1)
            np.copyto(blocks[:, start : start + rows], share.reshape(answer.n_blocks, rows, -1))

    def _report(self, plan: Plan, error) -> None:
        """Step 7 on a worker: a failed rank sends its exception; one with other answer dtypes, unknown ones."""
        state = int(self._status[_STATE])
        if state == _FAILED:
            self._comm.send((pickled_exception(error), describe_failure(error)), dest=self._root, tag=_REPORT_TAG)
        elif state == _OTHER_DTYPE and (self._status[_DTYPES:] == _UNKNOWN_DTYPE).any():
            self._comm.send(self._answer_dtypes_of_last(), dest=self._root, tag=_REPORT_TAG)

    def _collect_reports(self, plan: Plan, error) -> dict:
        """Step 7 on the root: raises what a failed rank raised; else each odd rank's two answer dtypes.

        A dtype is ``None`` where that answer had the expected one.
        """
        comm, root, statuses = self._comm, self._root, self._statuses
        states = statuses[:, _STATE]
        failures, other_dtypes = {}, {}
        for rank in np.flatnonzero(states).tolist():
            unknown = (statuses[rank, _DTYPES:] == _UNKNOWN_DTYPE).any()
            if states[rank] == _FAILED:
                failures[rank] = (None, describe_failure(error)) if rank == root else comm.recv(
                    source=rank, tag=_REPORT_TAG)
            elif rank == root:
                other_dtypes[rank] = self._answer_dtypes_of_last()
            elif unknown:
                other_dtypes[rank] = comm.recv(source=rank, tag=_REPORT_TAG)
            else:
                other_dtypes[rank] = tuple(
                    self._dtypes[i] if i >= 0 else None for i in statuses[rank, _DTYPES:].tolist()
                )
        if failures:
            raise_failure(plan.operation.name, error, failures)
        return other_dtypes

    def _answer_dtypes_of_last(self) -> tuple:
        """The dtypes this rank's last answers really had (for a status of ``_OTHER_DTYPE``), two entries."""
        return (tuple(self._last_answer_dtypes) + (None, None))[:2]

    def finish_without_answers(self, name: str, error: BaseException | None) -> None:
        """Steps 5 and 7 for a command that has no answers (sync_model); the root raises a failure."""
        is_root = self._rank == self._root
        self._status[:] = (_FAILED if error is not None else _OK, 0, -1, -1)
        statuses = self._statuses if is_root else None
        self._comm.Gather(MPI.IN_PLACE if is_root else self._status, statuses, self._root)
        if statuses is None:
            if error is not None:
                self._comm.send((pickled_exception(error), describe_failure(error)), dest=self._root, tag=_REPORT_TAG)
            return
        failed = np.flatnonzero(statuses[:, _STATE] == _FAILED).tolist()
        if failed:
            failures = {rank: (None, describe_failure(error)) if rank == self._root
                        else self._comm.recv(source=rank, tag=_REPORT_TAG) for rank in failed}
            raise_failure(name, error, failures)
