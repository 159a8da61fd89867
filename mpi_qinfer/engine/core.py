"""The engine: a duplicated communicator, the call both sides run, and the worker loop.

One call is the same sequence of steps on every rank (root and workers run
the same code, so they cannot disagree on it)::

    1. Bcast    the message: the packed CallSpec, small arrays inline
    2. Bcast    the rest of the payload, only when it did not fit inline
    3. Scatterv the split rows (particles, or experiments)
    4.          compute the local share; any exception is caught and kept
                (an answer holding Python objects, which cannot travel, too)
    5. Igather  one status record per rank: ok / failed / other answer dtype,
                compute time, the dtypes of its answers
    6. Igatherv every answer into its C-ordered place on the root: contiguous
                rows straight into the answer (one block); or one message
                per worker that a vector datatype places (several blocks);
                or (short blocks) into a staging buffer the root copies
                from. A rank without a good answer sends placeholder bytes
                (an empty message, point to point), and 5 tells the root
                why. Steps 5 and 6 are posted together after the compute and
                waited for once, the root copying its own share meanwhile.
    7. Send     failed ranks send the root their exception and traceback

The root raises only after the whole sequence, so every rank is ready for the
next call. A failure of the serial model re-raises, on the root, the model's
own exception (with a :class:`~mpi_qinfer.errors.RemoteError` as its
``__cause__``), exactly as the serial model would have raised it; a failure on
a worker *outside* the model call would leave the ranks out of step, so it
ends the job (``MPI_Abort``) with the traceback on stderr: never a silent wait.
"""

from __future__ import annotations

import atexit
import pickle
import threading
import time
import warnings
import weakref

import numpy as np
from mpi4py import MPI

from ..errors import EngineClosedError, ModelMismatchError
from ..runtime import termination
from ..runtime.launcher import check_launcher
from . import idle as idle_wait
from .command_loop import CommandLoopBase, agreed_root, duplicate, out_of_communicators
from .failures import describe_failure, pickled_exception, raise_failure
from .operations import OPERATIONS
from .partition import displacements
from .plans import Plan, PlanCache, array_at, place_staged
from .protocol import (
    HEADER_LEN,
    MESSAGE_BYTES,
    SCALAR_OUTCOMES,
    CallSpec,
    Command,
    DtypeTable,
    Split,
    pack_spec,
    unpack_spec,
)
from .validation import answer_travels, untravelable_answer

__all__ = ["Engine"]

_REPORT_TAG = 77
_ANSWER_TAG = 80  # + the answer's index
_NOT_A_MODEL = "<not a model>"
_PAYLOAD_INDEX = CallSpec._fields.index("payload_bytes")

# Status records (one int64 row per rank, step 5).
_OK, _FAILED, _OTHER_DTYPE = 0, 1, 2
_UNKNOWN_DTYPE = -2  # a dtype the rank's table does not have: it sends the dtype itself
_STATE, _NANOSECONDS, _DTYPES = 0, 1, 2  # columns; the answer dtypes fill columns 2 and 3
_STATUS_LEN = 4

# Plain ints for the hot path: attribute access on an Enum class is slow in Python 3.11.
_SHUTDOWN, _SYNC_MODEL = int(Command.SHUTDOWN), int(Command.SYNC_MODEL)
_DEFINE_DTYPE, _COLLECTIVE = int(Command.DEFINE_DTYPE), int(Command.COLLECTIVE)
_BY_MODELS = int(Split.MODELS)
_F8, _BOOL = 0, 2  # ids of float64 and bool in every DtypeTable (its preset order)

#: What the root expects each command to answer before it has seen one (ids in the table).
_DEFAULT_ANSWERS = {
    int(Command.LIKELIHOOD): (_F8, -1),
    int(Command.SCORE): (_F8, _F8),
    int(Command.FISHER_INFORMATION): (_F8, -1),
    int(Command.ARE_MODELS_VALID): (_BOOL, -1),
}

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


def _model_signature(model) -> tuple:
    kind = type(model)
    return (
        f"{kind.__module__}.{kind.__qualname__}",
        int(model.n_modelparams),
        str(np.dtype(model.expparams_dtype)),
    )


class _AnswerDtypeChanged(Exception):
    """Step 5 found ranks whose answers have another dtype than expected: call again."""


# -------------------------------------------------------------------- engine
class Engine(CommandLoopBase):
    """Owns a duplicated communicator and runs parallel model calls on it.

    Construction is collective over ``comm``. Most users never build one
    directly: :class:`~mpi_qinfer.MPIParallelizedModel` makes its own. Build
    one explicitly to serve several proxies from the same worker loop.

    Calls from several threads of the root are serialised (one at a time),
    never interleaved.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The ranks to use; duplicated, never used directly. Default ``COMM_WORLD``.
    root : int
        The rank that runs the inference loop; every rank must pass the same.
    idle : {"auto", "spin", "backoff"}, optional
        How idle workers wait (see :mod:`mpi_qinfer.engine.idle`). Default: the
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
        termination.join(comm, "builds an Engine")  # under run: a rank that has ended raises, not a hang
        root = agreed_root(comm, root)
        self._comm = duplicate(comm)
        self._root = root
        self._rank = self._comm.Get_rank()
        self._size = self._comm.Get_size()
        self._models: list = []
        self._collectives: list = []
        self._closed = False
        self._calls = 0
        self._lock = threading.RLock()
        self._dtypes = DtypeTable()
        self._answer_dtypes: dict[tuple[int, int], tuple[int, int]] = {}  # root: (model_id, command) -> ids
        self._answer_dtypes_version = 0  # root: changes whenever _answer_dtypes does
        self._last_counts = np.zeros(0, dtype=np.int64)
        self._message = np.zeros(MESSAGE_BYTES, dtype=np.uint8)
        self._header = self._message[: 8 * HEADER_LEN].view(np.int64)
        self._packed: CallSpec | None = None  # root: the spec the header holds now
        self._inline = self._message[8 * HEADER_LEN :]
        self._plans = PlanCache(self._dtypes, self._size, self._rank, self._root, inline=self._inline)
        self._payload = np.empty(0, dtype=np.uint8)
        self._split_buffer = np.empty(0, dtype=np.uint8)
        self._staging = np.empty(0, dtype=np.uint8)
        self._scratch = np.empty(0, dtype=np.uint8)
        self._any_not_ok = False  # root: whether the last status exchange found a rank not ok
        self._last_answer_dtypes: list = []
        self._statuses = np.zeros((self._size, _STATUS_LEN), dtype=np.int64)
        self._states = self._statuses[:, _STATE]
        # This rank's status record; on the root, its row of the table the workers' records fill.
        self._status = self._statuses[self._rank] if self.is_root else np.zeros(_STATUS_LEN, dtype=np.int64)
        try:
            try:
                oversubscribed = idle_wait.node_is_oversubscribed(self._comm)
            except MPI.Exception as error:
                raise out_of_communicators(error) from error
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
        return int(self._last_counts[self._root]), self._statuses[self._root, _NANOSECONDS] * 1e-9

    @property
    def compute_seconds(self) -> np.ndarray:
        """Seconds each rank spent in the serial model during the last call (root; -1: failed)."""
        seconds = self._statuses[:, _NANOSECONDS] * 1e-9
        seconds[self._statuses[:, _STATE] != _OK] = -1.0
        return seconds

    @property
    def calls(self) -> int:
        """Parallel calls this rank has taken part in (the same on every rank)."""
        return self._calls

    @property
    def dtypes(self) -> DtypeTable:
        """The dtypes every rank of this engine knows by id."""
        return self._dtypes

    @property
    def answer_dtypes_version(self) -> int:
        """A number that changes whenever the answer dtypes the root expects change (root).

        A :class:`~mpi_qinfer.engine.protocol.CallSpec` made by :meth:`describe`
        stays current while this number does not change.
        """
        return self._answer_dtypes_version

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

    def register_collective(self, function) -> int:
        """Add a function that every rank runs together on the root's request; return its id.

        Local, but every rank must register the same functions in the same
        order (as with :meth:`register`). :meth:`run_collective` then calls
        ``function(engine, argument)`` on every rank; the function may use
        :attr:`comm` for collectives of its own. This lets other components
        (a distributed updater, say) share this engine's worker loop.
        """
        self._collectives.append(function)
        return len(self._collectives) - 1

    def serve(self) -> None:
        """Run the worker loop until the root shuts the engine down (workers only).

        A failure here outside the serial model (which is reported to the
        root instead) would leave this rank out of step with the others, so
        it ends the whole job with ``MPI_Abort`` after printing the traceback.
        """
        if self.is_root:
            raise RuntimeError("serve() runs on the workers; the root calls the model and shutdown()")
        self._check_open()
        self._serve_commands()

    _ABORT_CONTEXT = "failed outside the serial model and cannot stay in step with the other ranks"

    def _receive_command(self) -> tuple[int, CallSpec]:
        """Worker: wait for the root's next message; its command and spec."""
        self._broadcast_message()
        spec = unpack_spec(self._message)
        return spec.command, spec

    def _dispatch(self, command: int, spec: CallSpec) -> None:
        """Worker: serve ``command`` through :attr:`_COMMANDS`."""
        self._COMMANDS[command](self, spec)

    def _serve_shutdown(self, spec: CallSpec) -> None:
        self._free()

    def _serve_call(self, spec: CallSpec) -> None:
        """Worker: this rank's part of a model call."""
        self._execute(spec, self._plans.get(spec), None)

    def _serve_collective(self, spec: CallSpec) -> None:
        self._calls += 1
        argument = self._comm.bcast(None, self._root)
        self._collectives[spec.model_id](self, argument)

    def shutdown(self) -> None:
        """Release the workers and free the communicator (root; idempotent)."""
        if self._closed or not self.is_root:
            return
        with self._lock:
            if self._closed:
                return
            _open_roots.discard(self)
            self._send_message(CallSpec(_SHUTDOWN))
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
        self._plans.free()
        if not MPI.Is_finalized():
            self._comm.Free()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the engine has been shut down; build a new MPIParallelizedModel")

    def _check_root(self, safe_point: bool = True) -> None:
        """Before the root sends anything: it is the root, the engine is open, no stop was asked for."""
        if self._rank != self._root:
            raise RuntimeError(
                f"rank {self._rank} is not the root: parallel calls are made on the root (rank {self._root}) "
                "while the other ranks serve; guard the inference code with `if model.is_root:`"
            )
        if self._closed:
            self._check_open()  # raises
        # A stop request (a signal here, or a worker's notice) ends the run here, before this
        # command communicates anything; see mpi_qinfer.runtime.termination.
        if safe_point:
            termination.check(self._comm, self._root)

    def __enter__(self):
        if not self.is_root:
            self.serve()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        return False

    # ----------------------------------------------------- the root's side
    def dtype_id(self, dtype: np.dtype) -> int:
        """The id of ``dtype`` in every rank's table, announcing it first if new (root)."""
        index = self._dtypes.id_of(dtype)
        if index is None:
            index = self._announce_dtype(dtype)
        return index

    def answer_dtypes(self, model_id: int, command: int, hint: np.dtype | None = None) -> tuple[int, int]:
        """The dtype ids the root expects a command's answers in (root).

        Learned from earlier calls of the same model and command; before the
        first, the command's usual dtypes, or ``hint``.
        """
        known = self._answer_dtypes.get((model_id, command))
        if known is not None:
            return known
        default = _DEFAULT_ANSWERS.get(command)
        if default is None:
            if hint is not None and not answer_travels(np.dtype(hint)):
                hint = np.float64  # never expect what cannot travel: the ranks report what they got
            default = (-1, -1) if hint is None else (self.dtype_id(hint), -1)
        return default

    def describe(self, command: int, model_id: int = 0, split: int = _BY_MODELS, *, outcomes=None,
                 modelparams=None, expparams=None, repeat: int = 0, return_likelihood: bool = False,
                 explicit_counts: bool = False, seed: int = 0, answer_hint: np.dtype | None = None) -> CallSpec:
        """The :class:`~mpi_qinfer.engine.protocol.CallSpec` of a call on these arrays (root).

        A dtype the workers do not know yet is announced to them first (a
        command of its own, once per dtype).
        """
        dtype_id = self.dtype_id
        return CallSpec(
            command, model_id, split,
            *((0, 0) if modelparams is None else modelparams.shape),
            0 if expparams is None else len(expparams),
            0 if outcomes is None else (SCALAR_OUTCOMES if outcomes.ndim == 0 else len(outcomes)),
            -1 if modelparams is None else dtype_id(modelparams.dtype),
            -1 if expparams is None else dtype_id(expparams.dtype),
            -1 if outcomes is None else dtype_id(outcomes.dtype),
            *self.answer_dtypes(model_id, command, answer_hint),
            repeat, int(return_likelihood), int(explicit_counts), 0, seed,
        )

    def call(self, spec: CallSpec, arrays: dict) -> list:
        """Run one parallel call from the root; return the list of gathered answers.

        Parameters
        ----------
        spec : CallSpec
            The call, from :meth:`describe`.
        arrays : dict
            ``outcomes``, ``modelparams``, ``expparams`` (C-contiguous, of the
            spec's shapes and dtypes; absent or None where the call has none)
            and ``counts``: rows per rank, or None for the even split.
        """
        with self._lock:
            self._check_root()
            if spec.explicit_counts:
                arrays["counts"] = self._checked_counts(arrays["counts"], spec)
            try:
                return self._call_once(spec, arrays)
            except _AnswerDtypeChanged:
                # The serial model answers in another dtype than expected: now
                # known, and the call is repeated in it (a random call repeats
                # its draws, its seed being in the spec).
                ids = self._answer_dtypes[(spec.model_id, spec.command)]
                spec = spec._replace(answer_dtype=ids[0], second_answer_dtype=ids[1])
                try:
                    return self._call_once(spec, arrays)
                except _AnswerDtypeChanged:
                    raise TypeError(
                        f"the serial model's {OPERATIONS[spec.command].name} answered in different dtypes "
                        "on different ranks; it must return one dtype for a given call"
                    ) from None

    def _call_once(self, spec: CallSpec, arrays: dict) -> list:
        plan = self._plans.get(spec)
        self._pack_payload(plan, spec, arrays)
        self._broadcast_message()
        return self._execute(spec, plan, arrays)

    def _checked_counts(self, counts, spec: CallSpec) -> np.ndarray:
        n_rows = spec.rows
        counts = np.ascontiguousarray(counts, dtype=np.int64)
        values = counts.tolist()  # (plain ints: reductions of a few values cost less in Python)
        if counts.shape != (self._size,) or min(values) < 0 or sum(values) != n_rows:
            raise ValueError(
                f"counts must give each of the {self._size} ranks a non-negative number of rows "
                f"summing to {n_rows}, got {counts.tolist()}"
            )
        return counts

    def _pack_payload(self, plan: Plan, spec: CallSpec, arrays: dict) -> None:
        """Write the header and the broadcast arrays: inline in the message, or into the payload."""
        if spec is not self._packed:  # a proxy repeats the same spec object call after call
            pack_spec(spec, self._message)
            self._header[_PAYLOAD_INDEX] = plan.payload_bytes
            self._packed = spec
        if plan.inline_views is not None:  # typed views into the message, made once per plan
            for name, view in plan.inline_views:
                view[...] = arrays[name]
            return
        target = self._grow("_payload", plan.payload_bytes)
        for name, _shape, dtype, offset in plan.broadcast:
            if dtype.itemsize:
                array = arrays[name]
                target[offset : offset + array.nbytes] = array.reshape(-1).view(np.uint8)

    def _send_message(self, spec: CallSpec) -> None:
        pack_spec(spec, self._message)
        self._packed = None
        self._broadcast_message()

    def _broadcast_message(self) -> None:
        """The first collective of every call: the header and the inline payload."""
        idle_wait.broadcast_message(self._comm, self._message, self._root, self._idle, self._backoff_max)

    def _announce_dtype(self, dtype: np.dtype) -> int:
        """Add ``dtype`` to every rank's table (collective command; root)."""
        with self._lock:
            self._check_root()
            data = _as_bytes(pickle.dumps(np.dtype(dtype), protocol=pickle.HIGHEST_PROTOCOL))
            self._send_message(CallSpec(_DEFINE_DTYPE, payload_bytes=data.nbytes))
            self._comm.Bcast([data, data.nbytes, MPI.BYTE], self._root)
            return self._dtypes.add(dtype)

    def _receive_dtype(self, spec: CallSpec) -> None:
        data = self._grow("_payload", spec.payload_bytes)
        self._comm.Bcast([data, len(data), MPI.BYTE], self._root)
        self._dtypes.add(pickle.loads(data))

    def sync_model(self, model_id: int, model) -> None:
        """Send the root's ``model`` to every worker, replacing its copy (pickled once)."""
        with self._lock:
            self._check_root()
            data = _as_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
            self._send_message(CallSpec(_SYNC_MODEL, model_id, payload_bytes=data.nbytes))
            self._calls += 1
            self._comm.Bcast([data, data.nbytes, MPI.BYTE], self._root)
            self._models[model_id] = model
            self._forget_answers(model_id)
            self._finish_without_answers("sync_model", None)

    def _receive_model(self, spec: CallSpec) -> None:
        self._calls += 1
        data = self._grow("_payload", spec.payload_bytes)
        self._comm.Bcast([data, len(data), MPI.BYTE], self._root)
        error = None
        try:
            self._models[spec.model_id] = pickle.loads(data)
        except BaseException as exc:  # noqa: BLE001 - reported to the root
            error = exc
        self._finish_without_answers("sync_model", error)

    def _forget_answers(self, model_id: int) -> None:
        for key in [key for key in self._answer_dtypes if key[0] == model_id]:
            del self._answer_dtypes[key]
        self._answer_dtypes_version += 1

    def run_collective(self, function_id: int, argument=None, *, safe_point: bool = True):
        """Run a function registered with :meth:`register_collective` on every rank (root).

        ``argument`` is pickled and broadcast; the root's return value is returned.
        ``safe_point=False`` runs it even after a stop was requested (to save
        state on the way out; see :mod:`mpi_qinfer.runtime.termination`).
        """
        with self._lock:
            self._check_root(safe_point)
            self._send_message(CallSpec(_COLLECTIVE, function_id))
            self._calls += 1
            self._comm.bcast(argument, self._root)
            return self._collectives[function_id](self, argument)

    #: The handler of each command on a worker (see :meth:`_dispatch`).
    _COMMANDS = {
        _SHUTDOWN: _serve_shutdown,
        _DEFINE_DTYPE: _receive_dtype,
        _SYNC_MODEL: _receive_model,
        _COLLECTIVE: _serve_collective,
        **dict.fromkeys(map(int, OPERATIONS), _serve_call),
    }

    # ------------------------------------------------------------ the plan
    def _grow(self, name: str, nbytes: int) -> np.ndarray:
        buffer = getattr(self, name)
        if buffer.nbytes < nbytes:
            buffer = np.empty(max(nbytes, 2 * buffer.nbytes), dtype=np.uint8)
            setattr(self, name, buffer)
        return buffer[:nbytes]

    # -------------------------------------------------------- one call, both sides
    def _execute(self, spec: CallSpec, plan: Plan, arrays: dict | None) -> list:
        """The collective sequence of one call (steps 2-7); ``arrays`` is None on workers."""
        self._calls += 1
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
                self._report(plan, spec, error, None)  # 7
            return []
        results, error = self._compute(spec, plan, inputs, share, rows)  # 4
        answers = self._receive_results(plan, results, rows, counts, displs)  # 5, 6
        if self._any_not_ok:
            self._report(plan, spec, error, self._statuses)  # 7: raises
        return answers

    def _receive_broadcast(self, spec: CallSpec, plan: Plan, arrays: dict | None) -> dict:
        """Step 2: the payload beyond the message; on workers, views of the broadcast arrays in it."""
        if plan.inline:
            source = self._inline
        else:
            source = self._grow("_payload", plan.payload_bytes)
            self._comm.Bcast([source, plan.payload_bytes, MPI.BYTE], self._root)
        if arrays is not None:
            return arrays
        if plan.inline_views is not None:
            return dict(plan.inline_views)
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

    def _report(self, plan: Plan, spec: CallSpec, error, statuses) -> None:
        """Step 7: failed ranks send their exception; ranks with other answer dtypes, unknown ones."""
        comm, root = self._comm, self._root
        state = int(self._status[_STATE])
        if statuses is None:  # a worker: send what the root will ask for
            if state == _FAILED:
                comm.send((pickled_exception(error), describe_failure(error)), dest=root, tag=_REPORT_TAG)
            elif state == _OTHER_DTYPE and (self._status[_DTYPES:] == _UNKNOWN_DTYPE).any():
                comm.send(self._answer_dtypes_of_last(plan), dest=root, tag=_REPORT_TAG)
            return
        states = statuses[:, _STATE]
        if not states.any():
            return
        failures, other_dtypes = {}, {}
        for rank in np.flatnonzero(states).tolist():
            unknown = (statuses[rank, _DTYPES:] == _UNKNOWN_DTYPE).any()
            if states[rank] == _FAILED:
                failures[rank] = (None, describe_failure(error)) if rank == root else comm.recv(
                    source=rank, tag=_REPORT_TAG)
            elif rank == root:
                other_dtypes[rank] = self._answer_dtypes_of_last(plan)
            elif unknown:
                other_dtypes[rank] = comm.recv(source=rank, tag=_REPORT_TAG)
            else:
                other_dtypes[rank] = tuple(
                    self._dtypes[i] if i >= 0 else None for i in statuses[rank, _DTYPES:].tolist()
                )
        if failures:
            raise_failure(plan.operation.name, error, failures)
        self._learn_answer_dtypes(spec, plan, other_dtypes)

    def _answer_dtypes_of_last(self, plan: Plan) -> tuple:
        """The dtypes this rank's last answers really had (for a status of ``_OTHER_DTYPE``), two entries."""
        return (tuple(self._last_answer_dtypes) + (None, None))[:2]

    def _learn_answer_dtypes(self, spec: CallSpec, plan: Plan, other_dtypes: dict) -> None:
        dtypes = {tuple(found) for found in other_dtypes.values()}
        if len(dtypes) > 1:
            raise TypeError(
                f"the serial model's {plan.operation.name} answered in different dtypes on different ranks: "
                + ", ".join(f"rank {rank}: {[str(d) for d in found if d is not None]}"
                            for rank, found in sorted(other_dtypes.items()))
            )
        (found,) = dtypes
        ids = tuple(self.dtype_id(dtype) if dtype is not None else old
                    for dtype, old in zip(found, (spec.answer_dtype, spec.second_answer_dtype)))
        self._answer_dtypes[(spec.model_id, spec.command)] = (ids + (-1, -1))[:2]
        self._answer_dtypes_version += 1
        raise _AnswerDtypeChanged

    def _finish_without_answers(self, name: str, error: BaseException | None) -> None:
        """Steps 5 and 7 for a command that has no answers (sync_model)."""
        self._status[:] = (_FAILED if error is not None else _OK, 0, -1, -1)
        statuses = self._statuses if self.is_root else None
        self._comm.Gather(MPI.IN_PLACE if self.is_root else self._status, statuses, self._root)
        if statuses is None:
            if error is not None:
                self._comm.send((pickled_exception(error), describe_failure(error)), dest=self._root, tag=_REPORT_TAG)
            return
        failed = np.flatnonzero(statuses[:, _STATE] == _FAILED).tolist()
        if failed:
            failures = {rank: (None, describe_failure(error)) if rank == self._root
                        else self._comm.recv(source=rank, tag=_REPORT_TAG) for rank in failed}
            raise_failure(name, error, failures)


def _as_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytearray(data), dtype=np.uint8)
