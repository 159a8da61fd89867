"""The engine: a duplicated communicator, models and commands, and the worker loop that serves them.

One call is the same sequence of steps on every rank (root and workers run
the same code, so they cannot disagree on it); the engine sends step 1 and
its :class:`~mpi_qinfer.engine.exchange.Exchange` runs steps 2-7::

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
import warnings
import weakref

import numpy as np
from mpi4py import MPI

from ..errors import EngineClosedError, ModelMismatchError
from ..runtime import termination
from ..runtime.launcher import check_launcher
from . import idle as idle_wait
from . import recovery
from .command_loop import CommandLoopBase, agreed_root, duplicate, out_of_communicators
from .exchange import AnswerDtypesChanged, Exchange
from .operations import OPERATIONS
from .plans import Plan, PlanCache
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
from .validation import answer_travels

__all__ = ["Engine"]

_NOT_A_MODEL = "<not a model>"
_PAYLOAD_INDEX = CallSpec._fields.index("payload_bytes")

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
    fault_tolerance : {"off", "ulfm"}, optional
        ``"ulfm"``: a worker lost to a signal does not end the run; the ranks
        left shrink the communicator and the root repeats the interrupted
        call on them (Open MPI under ``mpirun --with-ft ulfm`` only; see
        :mod:`mpi_qinfer.engine.recovery`). Default: the ``MPI_QINFER_FT``
        environment variable, else ``"off"``. The root's choice holds on every rank.
    """

    def __init__(self, comm=None, root: int = 0, *, idle: str | None = None, backoff_max: float | None = None,
                 fault_tolerance: str | None = None):
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"comm must be an mpi4py intracommunicator, got {comm!r}")
        termination.join(comm, "builds an Engine")  # under run: a rank that has ended raises, not a hang
        root = agreed_root(comm, root)
        self._models: list = []
        self._collectives: list = []
        self._closed = False
        self._calls = 0
        self._lock = threading.RLock()
        self._dtypes = DtypeTable()
        self._answer_dtypes: dict[tuple[int, int], tuple[int, int]] = {}  # root: (model_id, command) -> ids
        self._answer_dtypes_version = 0  # root: changes whenever _answer_dtypes does
        self._message = np.zeros(MESSAGE_BYTES, dtype=np.uint8)
        self._header = self._message[: 8 * HEADER_LEN].view(np.int64)
        self._bind(duplicate(comm), root)
        self._recovery = None  # recovery hook: a recovery.Recovery in fault-tolerant mode
        try:
            try:
                oversubscribed = idle_wait.node_is_oversubscribed(self._comm)
            except MPI.Exception as error:
                raise out_of_communicators(error) from error
            oversubscribed = self._comm.allreduce(oversubscribed, op=MPI.LOR)
            settings = None
            if self.is_root:
                settings = self._root_settings(idle, backoff_max, oversubscribed, fault_tolerance)
            settings = self._comm.bcast(settings, self._root)
            if isinstance(settings, BaseException):
                raise settings
            # recovery hook (collective when on); its lines run only in ULFM jobs, which mutmut does not start
            self._recovery = recovery.attach(self, settings[2])  # pragma: no mutate
        except BaseException:
            self._free()
            raise
        self._idle, self._backoff_max, _ = settings
        if self.is_root:
            _open_roots.add(self)
            misslaunched = check_launcher()
            if misslaunched:  # N silent singletons would each do all the work
                warnings.warn(misslaunched, RuntimeWarning, stacklevel=2)

    @staticmethod
    def _root_settings(idle, backoff_max, oversubscribed, fault_tolerance=None):
        try:
            return (idle_wait.resolve_idle_mode(idle, oversubscribed), idle_wait.resolve_backoff_max(backoff_max),
                    recovery.resolve_mode(fault_tolerance))
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
        return self._exchange.last_counts

    @property
    def root_share(self) -> tuple[int, float]:
        """Rows the root computed in the last call, and its seconds in the serial model."""
        return int(self._exchange.last_counts[self._root]), self._exchange.seconds_of(self._root)

    @property
    def compute_seconds(self) -> np.ndarray:
        """Seconds each rank spent in the serial model during the last call (root; -1: failed)."""
        return self._exchange.compute_seconds()

    @property
    def recovery(self) -> "recovery.Recovery | None":
        """What survives a lost worker (see :mod:`mpi_qinfer.engine.recovery`); None with the mode off."""
        return self._recovery

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
        Refused (on every rank) with ``fault_tolerance="ulfm"``, which covers the model calls only.
        """
        # recovery hook: collectives cannot be repeated on fewer ranks
        if self._recovery is not None:  # pragma: no mutate
            self._recovery.refuse_collectives()  # pragma: no mutate
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

    #: What a worker that fails outside a model call says before it ends the job.
    _ABORT_CONTEXT = "failed outside the serial model and cannot stay in step with the other ranks"

    def _receive_command(self) -> tuple[int, CallSpec]:
        """Worker: wait for the root's next message; its command and spec."""
        self._broadcast_message()
        spec = unpack_spec(self._message)
        return spec.command, spec

    def _serve_one(self) -> None:
        """Worker: one command; in fault-tolerant mode a lost rank is survived here (recovery hook)."""
        if self._recovery is None:
            return super()._serve_one()
        try:
            super()._serve_one()
        except MPI.Exception as error:  # a lost rank: the ranks left shrink and go on serving
            if not self._recovery.recovered(error):  # pragma: no mutate
                raise

    def _serve_shutdown(self, spec: CallSpec) -> None:
        if self._recovery is None or self._recovery.shutdown_agreed():  # recovery hook: every worker has it
            self._free()

    def _serve_call(self, spec: CallSpec) -> None:
        """Worker: this rank's part of a model call."""
        self._calls += 1
        self._exchange.run(spec, self._plans.get(spec), None)

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
            if self._recovery is None:
                self._send_message(CallSpec(_SHUTDOWN))
            else:  # recovery hook: sent until every worker has it
                self._recovery.shutdown(lambda: self._send_message(CallSpec(_SHUTDOWN)))  # pragma: no mutate
            self._free()

    def close_collectively(self) -> None:
        """Free the communicator on every rank without a command (collective; before serving)."""
        if not self._closed:
            _open_roots.discard(self)
            self._free()

    def _bind(self, comm, root: int) -> None:
        """Take ``comm`` (a communicator this engine owns) and build what depends on it."""
        self._comm, self._root = comm, root
        self._rank, self._size = comm.Get_rank(), comm.Get_size()
        # The plans see the message's inline part: a small payload travels in the message itself.
        self._plans = PlanCache(self._dtypes, self._size, self._rank, root, inline=self._message[8 * HEADER_LEN :])
        # Steps 2-7 of every call, with the buffers they reuse; it shares the models list.
        self._exchange = Exchange(comm, root, self._dtypes, self._models)
        self._packed: CallSpec | None = None  # root: the spec the header holds now

    def _use_communicator(self, comm, root: int) -> None:
        """Rebuild what depends on the communicator for ``comm`` (after lost ranks: engine/recovery.py)."""
        self._plans.free()
        self._bind(comm, root)

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
                # recovery hook: repeated on the ranks left after a lost rank
                if self._recovery is not None:  # pragma: no mutate
                    return self._recovery.call(self._call_once, spec, arrays)  # pragma: no mutate
                return self._call_once(spec, arrays)
            except AnswerDtypesChanged as changed:
                report = changed
            # The serial model answers in another dtype than expected: now
            # known, and the call is repeated in it (a random call repeats
            # its draws, its seed being in the spec).
            spec = self._learn_answer_dtypes(spec, report)
            try:
                if self._recovery is not None:  # recovery hook, as above  # pragma: no mutate
                    return self._recovery.call(self._call_once, spec, arrays)  # pragma: no mutate
                return self._call_once(spec, arrays)
            except AnswerDtypesChanged as changed:
                report = changed
            self._learn_answer_dtypes(spec, report)
            raise TypeError(
                f"the serial model's {OPERATIONS[spec.command].name} answered in different dtypes "
                "on different ranks; it must return one dtype for a given call"
            )

    def _call_once(self, spec: CallSpec, arrays: dict) -> list:
        plan = self._plans.get(spec)
        self._pack_payload(plan, spec, arrays)
        self._broadcast_message()
        self._calls += 1
        return self._exchange.run(spec, plan, arrays)

    def _learn_answer_dtypes(self, spec: CallSpec, changed: AnswerDtypesChanged) -> CallSpec:
        """Expect the answer dtypes the ranks reported from now on; the spec in them (root).

        Raises ``TypeError`` when the ranks answered in different dtypes.
        """
        other_dtypes = changed.found
        dtypes = {tuple(found) for found in other_dtypes.values()}
        if len(dtypes) > 1:
            raise TypeError(
                f"the serial model's {changed.operation} answered in different dtypes on different ranks: "
                + ", ".join(f"rank {rank}: {[str(d) for d in found if d is not None]}"
                            for rank, found in sorted(other_dtypes.items()))
            )
        (found,) = dtypes
        ids = tuple(self.dtype_id(dtype) if dtype is not None else old
                    for dtype, old in zip(found, (spec.answer_dtype, spec.second_answer_dtype)))
        ids = (ids + (-1, -1))[:2]
        self._answer_dtypes[(spec.model_id, spec.command)] = ids
        self._answer_dtypes_version += 1
        return spec._replace(answer_dtype=ids[0], second_answer_dtype=ids[1])

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
        target = self._exchange.payload(plan.payload_bytes)
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
        # recovery hook: repeated after a loss
        if self._recovery is not None and not self._recovery.repeating:  # pragma: no mutate
            return self._recovery.command(self._announce_dtype, dtype)  # pragma: no mutate
        with self._lock:
            self._check_root()
            data = _as_bytes(pickle.dumps(np.dtype(dtype), protocol=pickle.HIGHEST_PROTOCOL))
            self._send_message(CallSpec(_DEFINE_DTYPE, payload_bytes=data.nbytes))
            self._comm.Bcast([data, data.nbytes, MPI.BYTE], self._root)
            return self._dtypes.add(dtype)

    def _receive_dtype(self, spec: CallSpec) -> None:
        data = self._exchange.payload(spec.payload_bytes)
        self._comm.Bcast([data, len(data), MPI.BYTE], self._root)
        self._dtypes.add(pickle.loads(data))

    def sync_model(self, model_id: int, model) -> None:
        """Send the root's ``model`` to every worker, replacing its copy (pickled once)."""
        # recovery hook: repeated after a loss
        if self._recovery is not None and not self._recovery.repeating:  # pragma: no mutate
            return self._recovery.command(self.sync_model, model_id, model)  # pragma: no mutate
        with self._lock:
            self._check_root()
            data = _as_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
            self._send_message(CallSpec(_SYNC_MODEL, model_id, payload_bytes=data.nbytes))
            self._calls += 1
            self._comm.Bcast([data, data.nbytes, MPI.BYTE], self._root)
            self._models[model_id] = model
            self._forget_answers(model_id)
            self._exchange.finish_without_answers("sync_model", None)

    def _receive_model(self, spec: CallSpec) -> None:
        self._calls += 1
        data = self._exchange.payload(spec.payload_bytes)
        self._comm.Bcast([data, len(data), MPI.BYTE], self._root)
        error = None
        try:
            self._models[spec.model_id] = pickle.loads(data)
        except BaseException as exc:  # noqa: BLE001 - reported to the root
            error = exc
        self._exchange.finish_without_answers("sync_model", error)

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

    #: The handler of each command on a worker, given the command's spec.
    _COMMANDS = {
        _SHUTDOWN: _serve_shutdown,
        _DEFINE_DTYPE: _receive_dtype,
        _SYNC_MODEL: _receive_model,
        _COLLECTIVE: _serve_collective,
        **dict.fromkeys(map(int, OPERATIONS), _serve_call),
    }


def _as_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytearray(data), dtype=np.uint8)
