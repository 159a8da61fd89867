"""The engine: a duplicated communicator, the call both sides run, and the worker loop.

One call, identical on every rank (root and workers run the same code, so they
cannot disagree on the sequence of collectives)::

    Bcast   message: int64 header + small payload inline
    Bcast   payload, only when it did not fit inline
    Scatterv the split rows (particles, or experiments)
    compute the local share (any exception is caught and kept)
    Gatherv each answer straight into its final strided layout on the root
    Gather  one int32 status per rank; failed ranks then send their traceback

The root raises :class:`~mpi_qinfer.errors.RemoteError` only after the whole
sequence, so every rank is ready for the next call.
"""

from __future__ import annotations

import atexit
import math
import pickle
import struct
import time
import traceback
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from . import idle as idle_wait
from . import termination
from .datatypes import RowTypes
from .errors import EngineClosedError, ModelMismatchError, RemoteError
from .info import check_launcher
from .operations import OPERATIONS, Output
from .partition import check_count, displacements
from .partition import even_counts as even_counts_of
from .protocol import (
    HEADER_LEN,
    INLINE_BYTES,
    MESSAGE_BYTES,
    PLAN_KEY_BYTES,
    Command,
    Field,
    Split,
    code_dtype,
    payload_layout,
)

__all__ = ["Engine"]

_TRACEBACK_TAG = 77
_NOT_A_MODEL = "<not a model>"
_HEADER = struct.Struct(f"={HEADER_LEN}q")
# Plain ints for the hot path: attribute access on an Enum class is slow in Python 3.11.
_COMMAND, _PAYLOAD_BYTES = int(Field.COMMAND), int(Field.PAYLOAD_BYTES)
_SHUTDOWN, _SYNC_MODEL = int(Command.SHUTDOWN), int(Command.SYNC_MODEL)
_PLAN_CACHE_SIZE = 32
_open_roots: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@atexit.register
def _release_workers_at_exit():
    # A root that never shut down would leave its workers waiting forever.
    # mpi4py registered its finalizer before this module was imported, so this
    # hook runs first (atexit is last-in, first-out) while MPI is still usable.
    if MPI.Is_finalized():
        return
    for engine in list(_open_roots):
        try:
            engine.shutdown()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


@dataclass
class _Output:
    """How one answer array moves: the spec and its row datatypes."""

    spec: Output
    n_blocks: int
    block_bytes: int
    recv_type: MPI.Datatype | None  # root only
    even_send_type: MPI.Datatype | None  # this rank's share under the even split
    even_shape: tuple | None  # ... and its shape


@dataclass
class _Plan:
    """Everything about a call that follows from its shape alone; cached per shape."""

    operation: object
    model_id: int
    broadcast: list  # (name, shape, dtype, offset)
    payload_bytes: int
    inline_views: list  # (name, view into the message) for workers, when the payload is inline
    split_input: str | None
    split_dtype: np.dtype | None
    split_row_shape: tuple
    row_bytes: int
    row_type: MPI.Datatype | None
    outputs: list  # _Output
    even_counts: np.ndarray | None
    even_displs: np.ndarray | None
    types: RowTypes  # owns the datatypes above; freed with the plan


def _model_signature(model) -> tuple:
    kind = type(model)
    return (
        f"{kind.__module__}.{kind.__qualname__}",
        int(model.n_modelparams),
        str(np.dtype(model.expparams_dtype)),
    )


class Engine:
    """Owns a duplicated communicator and runs parallel model calls on it.

    Construction is collective over ``comm``. Most users never build one
    directly: :class:`~mpi_qinfer.MPIParallelizedModel` makes its own. Build
    one explicitly to serve several proxies from the same worker loop.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The ranks to use; duplicated, never used directly. Default ``COMM_WORLD``.
    root : int
        The rank that runs the inference loop.
    idle : {"auto", "spin", "backoff"}, optional
        How idle workers wait (see :mod:`mpi_qinfer.idle`). Default: the
        ``MPI_QINFER_IDLE`` environment variable, else ``auto`` (``backoff``
        when ranks outnumber this node's cores, else ``spin``). The root's
        choice holds on every rank.
    backoff_max : float, optional
        Longest sleep of a backing-off worker in seconds (default 1 ms, or
        ``MPI_QINFER_BACKOFF_MAX``).
    """

    def __init__(self, comm=None, root: int = 0, *, idle: str | None = None, backoff_max: float | None = None):
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"comm must be an mpi4py intracommunicator, got {comm!r}")
        if not (isinstance(root, (int, np.integer)) and 0 <= root < comm.Get_size()):
            raise ValueError(f"root must be a rank of comm (0..{comm.Get_size() - 1}), got {root!r}")
        self._comm = comm.Dup()
        self._root = int(root)
        self._rank = self._comm.Get_rank()
        self._size = self._comm.Get_size()
        self._models: list = []
        self._closed = False
        self._calls = 0
        self._last_counts = np.zeros(0, dtype=np.int64)
        self._types = RowTypes()
        self._plans: dict[bytes, _Plan] = {}  # keyed by the header bytes that fix a call's shape
        self._message = np.zeros(MESSAGE_BYTES, dtype=np.uint8)
        self._header = self._message[: 8 * HEADER_LEN].view(np.int64)
        self._inline = self._message[8 * HEADER_LEN :]
        self._payload = np.empty(0, dtype=np.uint8)
        self._split_buffer = np.empty(0, dtype=np.uint8)
        self._scratch = np.empty(0, dtype=np.uint8)
        # Per rank: seconds spent in the serial model (feeds load balancing), or -1: it failed.
        self._status = np.zeros(1, dtype=np.float64)
        self._statuses = np.zeros(self._size, dtype=np.float64)
        try:
            oversubscribed = idle_wait.node_is_oversubscribed(self._comm)
            oversubscribed = self._comm.allreduce(oversubscribed, op=MPI.LOR)
            settings = None
            if self.is_root:
                settings = self._root_settings(idle, backoff_max, oversubscribed)
            settings = self._comm.bcast(settings, self._root)
            if isinstance(settings, BaseException):
                raise settings
        except BaseException:
            self._free()
            raise
        self._idle, self._backoff_max = settings
        if self.is_root:
            _open_roots.add(self)
            misslaunched = check_launcher()
            if misslaunched:  # N silent singletons would each do all the work
                warnings.warn(misslaunched, RuntimeWarning, stacklevel=2)

    @staticmethod
    def _root_settings(idle, backoff_max, oversubscribed):
        try:
            return idle_wait.resolve_idle_mode(idle, oversubscribed), idle_wait.resolve_backoff_max(backoff_max)
        except ValueError as error:  # reaches every rank, not only the root
            return error

    # ------------------------------------------------------------------ state
    @property
    def comm(self) -> MPI.Intracomm:
        """The engine's private duplicate of the communicator it was given."""
        return self._comm

    @property
    def root(self) -> int:
        """Rank of the root in :attr:`comm`."""
        return self._root

    @property
    def rank(self) -> int:
        """This process's rank in :attr:`comm`."""
        return self._rank

    @property
    def size(self) -> int:
        """Number of ranks; all of them, the root included, compute."""
        return self._size

    @property
    def is_root(self) -> bool:
        """Whether this rank runs the inference loop."""
        return self._rank == self._root

    @property
    def idle(self) -> str:
        """How idle workers wait: ``"spin"`` or ``"backoff"``."""
        return self._idle

    @property
    def closed(self) -> bool:
        """Whether the engine has been shut down (its communicator freed)."""
        return self._closed

    @property
    def last_counts(self) -> np.ndarray:
        """Rows each rank got in the last call."""
        return self._last_counts

    @property
    def root_share(self) -> tuple[int, float]:
        """Rows the root computed in the last call, and its seconds in the serial model."""
        return int(self._last_counts[self._root]), float(self._statuses[self._root])

    @property
    def compute_seconds(self) -> np.ndarray:
        """Seconds each rank spent in the serial model during the last call (root; -1: failed)."""
        return self._statuses.copy()

    @property
    def calls(self) -> int:
        """Parallel calls this rank has taken part in (the same on every rank)."""
        return self._calls

    def model(self, model_id: int):
        """The serial model registered under ``model_id`` on this rank."""
        return self._models[model_id]

    # ------------------------------------------------------------ lifecycle
    def register(self, model) -> int:
        """Add a serial model to the engine (collective); return its id.

        Every rank brings its own copy. Raises
        :class:`~mpi_qinfer.errors.ModelMismatchError` on every rank when the
        copies differ in type, ``n_modelparams`` or ``expparams_dtype``.
        """
        self._check_open()
        try:
            signature = _model_signature(model)
        except Exception as error:  # noqa: BLE001 - reported collectively below
            signature = (_NOT_A_MODEL, repr(error))
        signatures = self._comm.allgather(signature)
        reference = signatures[self._root]
        if reference[0] == _NOT_A_MODEL:
            raise TypeError(
                "serial_model must be a qinfer-style model with n_modelparams and expparams_dtype; "
                f"on the root: {reference[1]}"
            )
        odd = [rank for rank, sig in enumerate(signatures) if sig != reference]
        if odd:
            lines = [f"  rank {rank}: {signatures[rank]}" for rank in odd]
            raise ModelMismatchError(
                "every rank must bring the same kind of serial model "
                f"(type, n_modelparams, expparams_dtype); the root (rank {self._root}) has {reference}, but\n"
                + "\n".join(lines)
            )
        self._models.append(model)
        return len(self._models) - 1

    def serve(self) -> None:
        """Run the worker loop until the root shuts the engine down (workers only)."""
        if self.is_root:
            raise RuntimeError("serve() runs on the workers; the root calls the model and shutdown()")
        self._check_open()
        try:
            while True:
                self._broadcast_message()
                if self._header[_COMMAND] == _SHUTDOWN:
                    break
                self._execute(None)
        finally:
            self._free()

    def shutdown(self) -> None:
        """Release the workers and free the communicator (root; idempotent)."""
        if self._closed or not self.is_root:
            return
        _open_roots.discard(self)
        self._header[:] = 0
        self._header[Field.COMMAND] = Command.SHUTDOWN
        try:
            self._broadcast_message()
        finally:
            self._free()

    def close_collectively(self) -> None:
        """Free the communicator on every rank without a command (collective; before serving)."""
        if not self._closed:
            _open_roots.discard(self)
            self._free()

    def _free(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._types.free()
        for plan in self._plans.values():
            plan.types.free()
        self._plans.clear()
        if not MPI.Is_finalized():
            self._comm.Free()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the engine has been shut down; build a new MPIParallelizedModel")

    def __enter__(self):
        if not self.is_root:
            self.serve()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        return False

    # ------------------------------------------------------------ one call
    def call(self, command, model_id, split=Split.MODELS, *, outcomes=None, modelparams=None,
             expparams=None, repeat=0, seed=0, flags=0, result_code=0, counts=None,
             modelparams_code=0, outcomes_code=0):
        """Run one parallel call from the root; return the list of gathered answers.

        The arrays must already be validated, native-endian and C-contiguous.
        ``counts`` (rows per rank) overrides the even split.
        """
        if not self.is_root:
            raise RuntimeError("parallel calls are made on the root; workers run serve()")
        self._check_open()
        # Termination hook: a stop request (a signal here, or a worker's notice) ends the run here, before
        # this call communicates anything; see mpi_qinfer.termination.
        termination.check(self._comm, self._root)
        n_models, n_mp = (0, 0) if modelparams is None else modelparams.shape
        explicit = counts is not None
        if explicit:
            counts = self._checked_counts(counts, split, modelparams, expparams)
        _HEADER.pack_into(
            self._message, 0, command, model_id, split, n_models, n_mp,
            0 if expparams is None else len(expparams), 0 if outcomes is None else len(outcomes),
            modelparams_code, outcomes_code, result_code, repeat, flags, explicit, 0, seed, 0,
        )
        plan = self._plan()
        self._header[_PAYLOAD_BYTES] = plan.payload_bytes
        arrays = {"outcomes": outcomes, "modelparams": modelparams, "expparams": expparams, "counts": counts}
        if plan.inline_views is not None:
            for name, view in plan.inline_views:
                view[...] = arrays[name]
        else:
            buffer = self._grow("_payload", plan.payload_bytes)
            for name, _, _, offset in plan.broadcast:
                array = arrays[name]
                buffer[offset : offset + array.nbytes] = array.reshape(-1).view(np.uint8)
        self._broadcast_message()
        return self._execute(arrays, plan)

    def _checked_counts(self, counts, split, modelparams, expparams) -> np.ndarray:
        n_rows = len(modelparams) if split == Split.MODELS else len(expparams)
        counts = np.ascontiguousarray(counts, dtype=np.int64)
        if counts.shape != (self._size,) or np.any(counts < 0) or counts.sum() != n_rows:
            raise ValueError(
                f"counts must give each of the {self._size} ranks a non-negative number of rows "
                f"summing to {n_rows}, got {counts.tolist()}"
            )
        return counts

    def _broadcast_message(self) -> None:
        """The first collective of every call: the header and the inline payload."""
        idle_wait.broadcast_message(self._comm, self._message, self._root, self._idle, self._backoff_max)

    def sync_model(self, model_id: int, model) -> None:
        """Send the root's ``model`` to every worker, replacing its copy (pickled once)."""
        self._check_open()
        termination.check(self._comm, self._root)  # termination hook, as in call()
        data = np.frombuffer(bytearray(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)), dtype=np.uint8)
        h = self._header
        h[:] = 0
        h[Field.COMMAND] = Command.SYNC_MODEL
        h[Field.MODEL_ID] = model_id
        h[Field.PAYLOAD_BYTES] = data.nbytes
        self._broadcast_message()
        self._calls += 1
        self._comm.Bcast([data, data.nbytes, MPI.BYTE], self._root)
        self._models[model_id] = model
        self._finish(Command.SYNC_MODEL.name.lower(), None)

    def _receive_model(self) -> None:
        h = self._header
        data = self._grow("_payload", int(h[Field.PAYLOAD_BYTES]))
        self._comm.Bcast([data, len(data), MPI.BYTE], self._root)
        error = None
        try:
            self._models[int(h[Field.MODEL_ID])] = pickle.loads(data)
        except BaseException as exc:  # noqa: BLE001 - reported to the root
            error = exc
        self._finish("sync_model", error)

    def _plan(self) -> _Plan:
        key = self._message[:PLAN_KEY_BYTES].tobytes()
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make_plan()
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans))).types.free()
            self._plans[key] = plan
        return plan

    def _make_plan(self) -> _Plan:
        h = self._header
        operation = OPERATIONS[Command(int(h[Field.COMMAND]))]
        model_id = int(h[Field.MODEL_ID])
        n_models, n_mp = int(h[Field.N_MODELS]), int(h[Field.N_MODELPARAMS])
        n_exp, n_out = int(h[Field.N_EXPPARAMS]), int(h[Field.N_OUTCOMES])
        specs = {
            "outcomes": ((n_out,), code_dtype(int(h[Field.OUTCOMES_DTYPE]))),
            "modelparams": ((n_models, n_mp), code_dtype(int(h[Field.MODELPARAMS_DTYPE]))),
            "expparams": ((n_exp,), np.dtype(self._models[model_id].expparams_dtype)),
            "counts": ((self._size,), np.dtype(np.int64)),
        }
        names = ["counts"] if h[Field.EXPLICIT_COUNTS] else []
        if operation.takes_outcomes:
            names.append("outcomes")
        split_input = None
        if n_models or n_exp:
            split_input = "modelparams" if h[Field.SPLIT] == Split.MODELS else "expparams"
            names += [name for name in ("modelparams", "expparams")[: 1 + operation.takes_expparams]
                      if name != split_input]
        offsets, payload_bytes = payload_layout([specs[name] for name in names])
        broadcast = [(name, *specs[name], offset) for name, offset in zip(names, offsets)]
        inline_views = None
        if payload_bytes <= INLINE_BYTES:
            inline_views = [
                (name, self._inline[offset : offset + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape))
                for name, shape, dtype, offset in broadcast
            ]

        types = RowTypes(capacity=None)
        split_dtype, row_shape, row_bytes, row_type, n_rows = None, (), 0, None, 0
        if split_input is not None:
            shape, split_dtype = specs[split_input]
            n_rows, row_shape = shape[0], shape[1:]
            row_bytes = check_count(int(np.prod(row_shape, dtype=np.int64)) * split_dtype.itemsize,
                                    f"one row of {split_input} in bytes")
            check_count(n_rows, f"the number of rows of {split_input}")
            row_type = types.row(1, row_bytes, 0)
        even_counts = even_displs = None
        rows = 0
        if not h[Field.EXPLICIT_COUNTS]:
            even_counts = even_counts_of(n_rows, self._size)
            even_displs = displacements(even_counts)
            rows = int(even_counts[self._rank])
        outputs = []
        for spec in operation.outputs(h):
            n_blocks = int(np.prod(spec.shape[: spec.axis], dtype=np.int64))
            block_bytes = check_count(
                int(np.prod(spec.shape[spec.axis + 1 :], dtype=np.int64)) * spec.dtype.itemsize,
                f"one row of the {operation.name} answer in bytes",
            )
            recv_type = types.row(n_blocks, block_bytes, spec.shape[spec.axis]) if self.is_root else None
            send_type = shape = None
            if even_counts is not None:
                send_type = types.row(n_blocks, block_bytes, rows)
                shape = spec.shape[: spec.axis] + (rows,) + spec.shape[spec.axis + 1 :]
            outputs.append(_Output(spec, n_blocks, block_bytes, recv_type, send_type, shape))
        return _Plan(operation, model_id, broadcast, payload_bytes, inline_views, split_input, split_dtype,
                     row_shape, row_bytes, row_type, outputs, even_counts, even_displs, types)

    def _grow(self, name: str, nbytes: int) -> np.ndarray:
        buffer = getattr(self, name)
        if buffer.nbytes < nbytes:
            buffer = np.empty(max(nbytes, 2 * buffer.nbytes), dtype=np.uint8)
            setattr(self, name, buffer)
        return buffer[:nbytes]

    def _execute(self, arrays, plan=None):
        """The collective sequence of one call; ``arrays`` is None on workers.

        The root passes the ``plan`` it already looked up.
        """
        self._calls += 1
        if plan is None:
            if self._header[_COMMAND] == _SYNC_MODEL:
                return self._receive_model()
            plan = self._plan()
        comm, root, rank = self._comm, self._root, self._rank
        is_root = arrays is not None

        # 1. The payload: inline in the message already, or one more Bcast.
        if plan.inline_views is None:
            payload = self._grow("_payload", plan.payload_bytes)
            comm.Bcast([payload, plan.payload_bytes, MPI.BYTE], root)
            if not is_root:
                arrays = {
                    name: np.frombuffer(payload, dtype, math.prod(shape), offset).reshape(shape).copy()
                    for name, shape, dtype, offset in plan.broadcast
                }
        elif not is_root:
            # Small copies the model may keep: not views into the next message.
            arrays = {name: view.copy() for name, view in plan.inline_views}
        outcomes, modelparams, expparams = arrays.get("outcomes"), arrays.get("modelparams"), arrays.get("expparams")

        # 2. Scatter the split rows.
        if plan.even_counts is not None:
            counts, displs = plan.even_counts, plan.even_displs
        else:
            counts = arrays["counts"]
            displs = displacements(counts)
        self._last_counts = counts
        rows = int(counts[rank])
        if plan.split_input is not None:
            if is_root:
                whole = arrays[plan.split_input]
                comm.Scatterv([whole, counts, displs, plan.row_type], MPI.IN_PLACE, root)
                start = int(displs[rank])
                share = whole[start : start + rows]
            else:
                buffer = self._grow("_split_buffer", rows * plan.row_bytes)
                comm.Scatterv(None, [buffer, rows, plan.row_type], root)
                share = buffer.view(plan.split_dtype).reshape((rows, *plan.split_row_shape))
            share = share.view()
            share.flags.writeable = False
            if plan.split_input == "modelparams":
                modelparams = share
            else:
                expparams = share

        # 3. Compute this rank's share; any failure is kept for step 5.
        error = None
        results = ()
        started = time.perf_counter()
        if rows > 0 or plan.split_input is None:
            try:
                results = plan.operation.compute(
                    self._models[plan.model_id], outcomes, modelparams, expparams, self._header, rank
                )
                results = self._check_results(plan.outputs, results, rows)
            except BaseException as exc:  # noqa: BLE001 - every rank must finish the call
                error = exc
                results = ()
        self._status[0] = time.perf_counter() - started

        # 4. Gather every answer into its final layout on the root.
        answers = []
        for index, out in enumerate(plan.outputs):
            spec = out.spec
            if index < len(results):
                sendbuf = results[index]
            else:
                sendbuf = self._grow("_scratch", out.n_blocks * rows * out.block_bytes)
            send_type = out.even_send_type or self._types.row(out.n_blocks, out.block_bytes, rows)
            if is_root:
                answer = np.empty(spec.shape, dtype=spec.dtype)
                comm.Gatherv([sendbuf, rows, send_type], [answer, counts, displs, out.recv_type], root)
                answers.append(answer)
            else:
                comm.Gatherv([sendbuf, rows, send_type], None, root)

        # 5. Every rank's status; the root raises if any failed.
        self._finish(plan.operation.name, error)
        return answers

    @staticmethod
    def _check_results(outputs: list, results, rows: int):
        if not isinstance(results, tuple) or len(results) != len(outputs):
            raise TypeError(f"expected {len(outputs)} result array(s), got {type(results).__name__}")
        checked = []
        for out, result in zip(outputs, results):
            spec = out.spec
            expected = out.even_shape or spec.shape[: spec.axis] + (rows,) + spec.shape[spec.axis + 1 :]
            result = np.asarray(result)
            if result.shape != expected:
                raise ValueError(f"the serial model returned shape {result.shape}, expected {expected}")
            if result.dtype != spec.dtype:
                if not np.can_cast(result.dtype, spec.dtype, "same_kind"):
                    raise TypeError(f"the serial model returned dtype {result.dtype}, expected {spec.dtype}")
                result = result.astype(spec.dtype)
            checked.append(result if result.flags.c_contiguous else np.ascontiguousarray(result))
        return tuple(checked)

    def _finish(self, name: str, error: BaseException | None) -> None:
        """Gather every rank's status; on the root, raise RemoteError if any failed."""
        comm, root = self._comm, self._root
        if error is not None:
            self._status[0] = -1.0
        comm.Gather(self._status, self._statuses if self.is_root else None, root)
        self._status[0] = 0.0
        text = None if error is None else "".join(traceback.format_exception(error))
        if not self.is_root:
            if error is not None:
                comm.send(text, dest=root, tag=_TRACEBACK_TAG)
            return
        if min(self._statuses.tolist()) >= 0:
            return
        failed = np.flatnonzero(self._statuses < 0)
        tracebacks = {}
        for rank in failed.tolist():
            tracebacks[rank] = text if rank == root else comm.recv(source=rank, tag=_TRACEBACK_TAG)
        raise RemoteError(name, tracebacks) from error
