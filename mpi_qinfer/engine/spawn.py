"""Workers started from a running Python (a notebook's kernel, IPython, a plain script) with ``MPI_Comm_spawn``.

:func:`spawn_engine` gives an :class:`~mpi_qinfer.engine.core.Engine` whose
workers this process started itself, without ``mpiexec``; the proxy's
:meth:`~mpi_qinfer.MPIParallelizedModel.spawn` is the call users make. The
steps, with the time-out covering 1 to 3:

1. ``MPI.COMM_SELF.Spawn`` starts ``n_workers`` Pythons (a short bootstrap that
   initialises MPI first, so that a worker that cannot import this package
   says so instead of leaving the spawn waiting), in a helper thread so that
   a spawn the MPI library never completes ends in :class:`~mpi_qinfer.errors.SpawnError`.
2. A handshake on the intercommunicator: the root sends the options (working
   directory, ``sys.path`` additions, environment, its own process id), every
   worker answers with its process id and host, or with the traceback of what
   failed.
3. The intercommunicator is merged (the root is rank 0), every rank builds a
   :class:`SpawnedEngine` on the merged communicator, and the workers serve.

The serial model reaches the workers once, pickled (:meth:`SpawnedEngine.register`),
as qinfer's ipyparallel proxy sent it: the workers get the root's model in the
root's state, and its class must be importable by them (from a module, not
from a notebook cell). Other collective objects that every rank builds
together (a :class:`~mpi_qinfer.DistributedSMCUpdater`) are built on the workers
at the root's request (:meth:`SpawnedEngine.build_on_workers`).

Leaving (:meth:`SpawnedEngine.shutdown`, at interpreter exit too) follows
mpi4py.futures: the merged communicator is freed and the intercommunicator
disconnected (``Disconnect`` of the merged one hangs on Open MPI), then the
root waits until the worker processes on its host have gone. Each worker
also watches the root's process and leaves when it disappears (a kernel
killed by its manager), so none is left behind.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
import weakref
from pathlib import Path

from mpi4py import MPI

from ..errors import SpawnError
from . import idle as idle_wait
from .core import Engine

__all__ = ["SpawnedEngine", "spawn_engine", "SPMD_ALTERNATIVE", "WORKER_MARK", "spawn_timeout"]

#: The way that needs no spawn, named in every :class:`~mpi_qinfer.errors.SpawnError`.
SPMD_ALTERNATIVE = (
    "without spawn, start the script on every rank (`mpiexec -n N python script.py`, or `srun` under Slurm) "
    "and build MPIParallelizedModel(model) there; from a notebook, ipyparallel's MPI engines run that form "
    "(see the notebook guide)"
)
#: Seconds that starting the workers may take (spawn and handshake), unless told otherwise.
DEFAULT_TIMEOUT = 60.0
ENV_TIMEOUT = "MPI_QINFER_SPAWN_TIMEOUT"
#: Seconds the root waits for the workers to leave at shutdown before it ends them.
RELEASE_TIMEOUT = 10.0
#: An argument of every worker's command line, so that a person (or a test) can find them with ``ps``.
WORKER_MARK = "mpi_qinfer-spawned-worker"
#: Open MPI refuses to start processes as root unless both are set.
OPEN_MPI_ROOT_VARIABLES = ("PRTE_ALLOW_RUN_AS_ROOT", "PRTE_ALLOW_RUN_AS_ROOT_CONFIRM")
HELLO_TAG = 91

#: The workers' command line after the Python options: it initialises MPI before anything else and runs
#: :data:`BOOTSTRAP`, which the root broadcasts. An MPI library waits in ``MPI_Comm_spawn`` for every
#: child's ``MPI_Init``, so a child that failed earlier (unable to import this package) would leave the
#: root waiting; and MPICH's process manager takes no line breaks in arguments.
#: A token naming the spawn follows: ``<root's pid>-<spawn number>``.
WORKER_ARGV = ("-c", "from mpi4py import MPI;exec(MPI.Comm.Get_parent().bcast(None,0))", WORKER_MARK)

#: What a worker runs first (in its ``__main__``): the root's options, the root's ``sys.path``, then
#: :func:`mpi_qinfer.engine.worker.main`; a failure to import it is reported to the root.
BOOTSTRAP = """\
import os, socket, sys, traceback
_parent = MPI.Comm.Get_parent()
_options = _parent.bcast(None, 0)
_path = [p for p in _options["sys_path"] if p not in sys.path]
sys.path[:0] = _path if _options["same_python"] else []
sys.path.extend([] if _options["same_python"] else _path)
try:
    from mpi_qinfer.engine.worker import main
except BaseException:
    _parent.send(("error", os.getpid(), socket.gethostname(), traceback.format_exc()), dest=0, tag=%d)
    _parent.bcast(None, 0)
    _parent.Disconnect()
    sys.exit(1)
sys.exit(main(_parent, _options))
""" % HELLO_TAG

_spawns_started = itertools.count()
#: Every spawned engine still open, held until it shuts down: one that was garbage-collected open
#: would leave its workers waiting, and the MPI library waiting for them in MPI_Finalize.
_open_spawns: "set[SpawnedEngine]" = set()
_stuck: list[str] = []  # MPI calls that never returned in their helper thread (see _leave_at_exit)


def spawn_timeout(timeout=None) -> float:
    """The start-up time-out in seconds: ``timeout``, else ``MPI_QINFER_SPAWN_TIMEOUT``, else 60."""
    value = timeout if timeout is not None else os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, got {value!r}") from None
    if not value > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {value!r}")
    return value


# ------------------------------------------------------------------ the engine
class SpawnedEngine(Engine):
    """An :class:`~mpi_qinfer.engine.core.Engine` on workers this process spawned (see the module's description).

    Built by :func:`spawn_engine` on the root and by the worker entry point
    (:mod:`mpi_qinfer.engine.worker`) on the workers, collectively, on the
    merged communicator. Its workers serve from the start, so collective
    construction that other engines leave to the user's code on every rank
    (registering a model, building a distributed updater) happens at the
    root's request from their loop.

    Parameters
    ----------
    merged : mpi4py.MPI.Intracomm
        The merged communicator (root: rank 0); the engine frees it.
    intercomm : mpi4py.MPI.Intercomm
        The spawn's intercommunicator; the engine disconnects it.
    workers : list of (int, str) or None
        The workers' process ids and hosts (root), None on the workers.
    idle, backoff_max
        As for :class:`~mpi_qinfer.engine.core.Engine`.
    """

    def __init__(self, merged, intercomm, workers, *, idle: str | None = None, backoff_max: float | None = None):
        with warnings.catch_warnings():
            # The root of a spawn is a world of one by design, also inside a batch job of many tasks.
            warnings.filterwarnings("ignore", message=".*this MPI world has 1 process", category=RuntimeWarning)
            super().__init__(merged, 0, idle=idle, backoff_max=backoff_max)
        self._merged, self._intercomm = merged, intercomm
        self._workers = list(workers or [])
        self._released = False
        self._pending = None  # root: what the hook in flight works on
        self._kept: list = []  # workers: what was built at the root's request
        self._owners = 0  # root: objects whose collection would leave the workers unused (see stop_with)
        # Registered in the same order on every rank, before anything else can register.
        self._register_hook = self.register_collective(SpawnedEngine._register_everywhere)
        self._build_hook = self.register_collective(SpawnedEngine._build_everywhere)
        if self.is_root:
            _open_spawns.add(self)

    def stop_with(self, owner) -> None:
        """Shut down once ``owner`` and every other owner are garbage-collected (root).

        The owners are the proxy and what was built on it (a distributed
        updater): a notebook cell that builds them run a second time drops
        the first ones, and their workers stop.
        """
        self._owners += 1
        weakref.finalize(owner, SpawnedEngine._owner_gone, self)

    def _owner_gone(self) -> None:
        self._owners -= 1
        if self._owners <= 0:
            self.shutdown()

    @property
    def workers(self) -> list[tuple[int, str]]:
        """The spawned workers' process ids and hosts, in rank order (root)."""
        return list(self._workers)

    # ------------------------------------------------ collective construction
    def register(self, model) -> int:
        """Register the root's ``model`` on every rank; the workers get it pickled, once (root).

        Raises
        ------
        SpawnError
            If the model cannot be pickled, or a worker cannot unpickle it
            (its class defined in ``__main__``, a notebook cell): the message
            says which and how to fix it.
        """
        if not self.is_root:
            return super().register(model)
        blob = _pickled(model, "the serial model")
        self._pending = model
        try:
            return self.run_collective(self._register_hook, blob)
        finally:
            self._pending = None

    def build_on_workers(self, factory, model, options: dict, owner=None) -> None:
        """Have every worker call ``factory(its_model, engine=engine, **options)`` (root).

        For a collective object whose construction every rank runs together:
        the root calls this, then runs its own construction. ``model`` stands
        for the worker's copy of a registered model (matched by identity), or
        is sent pickled. ``factory`` and ``options`` are pickled once. The
        engine stays up while ``owner`` (the root's object) lives.
        """
        self._check_open()
        if owner is not None:
            self.stop_with(owner)
        model_id = next((index for index, known in enumerate(self._models) if known is model), None)
        payload = (factory, model if model_id is None else model_id, model_id is not None, options)
        blob = _pickled(payload, f"the arguments of {getattr(factory, '__name__', factory)}")
        self.run_collective(self._build_hook, blob)

    def _register_everywhere(self, blob):
        if self.is_root:
            model, problem = self._pending, None
        else:
            model, problem = _unpickled(blob)
        if not self._agree(problem, "the serial model"):
            return None  # a worker: the root raised
        if self.is_root:
            return Engine.register(self, model)
        try:
            Engine.register(self, model)
        except Exception:  # noqa: BLE001 - raised alike on the root, which reports it
            pass
        return None

    def _build_everywhere(self, blob):
        payload, problem = (None, None) if self.is_root else _unpickled(blob)
        if not self._agree(problem, "the arguments of a collective construction") or self.is_root:
            return None  # the root builds its own part when this returns
        factory, model, registered, options = payload
        try:
            self._kept.append(factory(self._models[model] if registered else model, engine=self, **options))
        except Exception:  # noqa: BLE001 - the construction fails alike on the root, which raises it
            pass
        return None

    def _agree(self, problem: str | None, what: str) -> bool:
        """Whether every rank unpickled its part; if not, the root raises (the workers go on serving).

        The hooks never raise on a worker: the engine's loop would end the job.
        """
        problems = self._comm.allgather(problem)
        failed = {rank: text for rank, text in enumerate(problems) if text}
        if failed and self.is_root:
            text = next(iter(failed.values()))
            raise SpawnError(f"{what} could not be rebuilt on the worker(s) {sorted(failed)}:\n{text.rstrip()}\n"
                             f"{_UNPICKLE_ADVICE}")
        return not failed

    # ------------------------------------------------------------ lifecycle
    def shutdown(self) -> None:
        """Release the workers, free the communicators, and see the worker processes gone (root; idempotent)."""
        if not self.is_root or self._released:
            return
        try:
            super().shutdown()
        finally:
            self._release()

    def _release(self) -> None:
        self._released = True
        _open_spawns.discard(self)
        if MPI.Is_finalized():
            return
        self._merged.Free()
        if not _within(RELEASE_TIMEOUT, self._intercomm.Disconnect, "MPI_Comm_disconnect"):
            warnings.warn(f"the spawned workers did not disconnect within {RELEASE_TIMEOUT:g} s",
                          RuntimeWarning, stacklevel=3)
        _reap(self._workers, RELEASE_TIMEOUT)

    def serve(self) -> None:
        """Serve the root's calls until it shuts down (workers), then leave the spawn."""
        try:
            super().serve()
        finally:
            if not MPI.Is_finalized():
                self._merged.Free()
                self._intercomm.Disconnect()


_UNPICKLE_ADVICE = (
    "The workers rebuild it with pickle, so its class (and everything it refers to) must be importable by them: "
    "a class defined in a notebook cell or in __main__ is not. Put it in a module (a .py file beside the "
    "notebook: the workers start in this process's working directory, with its sys.path)."
)


def _pickled(value, what: str) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - pickle raises many kinds
        raise SpawnError(f"{what} cannot be pickled ({type(error).__name__}: {error}), and spawned workers get it "
                         f"pickled; {SPMD_ALTERNATIVE}.") from error


def _unpickled(blob):
    try:
        return pickle.loads(blob), None
    except BaseException:  # noqa: BLE001 - reported to the root
        return None, traceback.format_exc()


# ------------------------------------------------------------------ spawning
def spawn_engine(n_workers: int | None = None, *, timeout: float | None = None, python_exe: str | None = None,
                 python_args=None, mpi_info=None, path=None, wdir: str | None = None, env: dict | None = None,
                 idle: str | None = None, backoff_max: float | None = None) -> SpawnedEngine:
    """Start ``n_workers`` worker processes with ``MPI_Comm_spawn`` and return the engine on them.

    The options follow :class:`mpi4py.futures.MPIPoolExecutor`'s.

    Parameters
    ----------
    n_workers : int, optional
        Processes to start besides this one (which computes too). Default:
        the cores this process may use, minus one, at least one.
    timeout : float, optional
        Seconds that starting may take before :class:`~mpi_qinfer.errors.SpawnError`
        (default ``MPI_QINFER_SPAWN_TIMEOUT``, else 60).
    python_exe : str, optional
        The workers' Python (default ``sys.executable``).
    python_args : sequence of str, optional
        Options for the workers' Python, before ``-c``.
    mpi_info : mapping, optional
        ``MPI_Info`` keys for the spawn (``{"host": "node2"}``, ...).
    path : sequence of str, optional
        Entries added to the workers' ``sys.path`` (this process's
        ``sys.path`` is added always).
    wdir : str, optional
        The workers' working directory (default this process's).
    env : mapping, optional
        Variables set in the workers' ``os.environ``.
    idle, backoff_max
        How idle workers wait; see :class:`~mpi_qinfer.engine.core.Engine`.

    Returns
    -------
    SpawnedEngine
        The root's engine (rank 0); ``shutdown()`` stops every worker.

    Raises
    ------
    SpawnError
        If the workers cannot be started, or do not answer within ``timeout``.
    ValueError
        For a bad argument, before anything starts.
    """
    n_workers = _checked_workers(n_workers)
    seconds = spawn_timeout(timeout)
    idle_wait.resolve_idle_mode(idle, False)  # bad values fail here, before any process starts
    idle_wait.resolve_backoff_max(backoff_max)
    python_exe = _checked_python(python_exe, seconds)
    python_args = [str(arg) for arg in (python_args or [])]
    here = os.getcwd()
    options = {
        "sys_path": [entry or here for entry in sys.path],
        "same_python": os.path.realpath(python_exe) == os.path.realpath(sys.executable),
        "path": [str(entry) for entry in (path or [])],
        "wdir": str(wdir) if wdir is not None else here,
        "env": {str(key): str(value) for key, value in dict(env or {}).items()},
        "parent": _process_identity(os.getpid()),
    }
    _check_spawn_possible()
    deadline = time.monotonic() + seconds
    token = f"{os.getpid()}-{next(_spawns_started)}"
    argv = [*python_args, *WORKER_ARGV, token]
    # Workers that never reach MPI_Init, or never answer, are left alone: they belong to the MPI
    # library's launcher, and MPICH's ends this process too when one of them is killed.
    intercomm = _spawn(python_exe, argv, n_workers, mpi_info, seconds)
    workers = _handshake(intercomm, options, n_workers, deadline, seconds, python_exe)
    merged = intercomm.Merge(False)
    try:
        return SpawnedEngine(merged, intercomm, workers, idle=idle, backoff_max=backoff_max)
    except BaseException:  # the workers failed alike and are leaving the spawn (mpi_qinfer.engine.worker)
        merged.Free()
        _within(RELEASE_TIMEOUT, intercomm.Disconnect, "MPI_Comm_disconnect")
        _reap(workers, RELEASE_TIMEOUT)
        raise


def _checked_workers(n_workers) -> int:
    if n_workers is None:
        return max(1, len(idle_wait.usable_cores()) - 1)
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) and not hasattr(n_workers, "__index__"):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    count = int(n_workers.__index__())
    if count < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    return count


def _checked_python(python_exe, seconds: float) -> str:
    """The workers' Python, checked to exist and import mpi4py (MPICH aborts the caller on a missing program)."""
    if python_exe is None:
        return sys.executable
    found = shutil.which(str(python_exe))
    if found is None:
        raise SpawnError(f"python_exe {python_exe!r} is not an executable program; {SPMD_ALTERNATIVE}")
    if os.path.realpath(found) != os.path.realpath(sys.executable):
        # A worker whose Python cannot import mpi4py never reaches MPI_Init, and the spawn would wait for it.
        try:
            subprocess.run([found, "-c", "import mpi4py"], check=True, capture_output=True, timeout=seconds)
        except (subprocess.SubprocessError, OSError) as error:
            detail = (getattr(error, "stderr", None) or b"").decode(errors="replace").strip()[-300:] or str(error)
            raise SpawnError(f"python_exe {found!r} cannot import mpi4py ({detail}); {SPMD_ALTERNATIVE}") from None
    return found


def _check_spawn_possible() -> None:
    """The failures known in advance, each with its fix, before anything is started."""
    library = MPI.Get_library_version()
    if library.startswith("Open MPI") and hasattr(os, "geteuid") and os.geteuid() == 0 and not all(
            os.environ.get(name) for name in OPEN_MPI_ROOT_VARIABLES):
        raise SpawnError(
            "Open MPI starts no processes as root unless told to: set "
            + " and ".join(f"{name}=1" for name in OPEN_MPI_ROOT_VARIABLES)
            + " in this process's environment (os.environ) before spawning, or run as another user; "
            + SPMD_ALTERNATIVE
        )


def _spawn(python_exe: str, argv: list, n_workers: int, mpi_info, seconds: float):
    """``MPI.COMM_SELF.Spawn`` in a helper thread, given ``seconds``; the intercommunicator."""
    info = MPI.Info.Create()
    try:
        if mpi_info:
            info.update(dict(mpi_info))
        result: dict = {}

        def spawn():
            try:
                with _launcher_on_path():
                    result["comm"] = MPI.COMM_SELF.Spawn(python_exe, argv, n_workers, info)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = error

        if MPI.Query_thread() < MPI.THREAD_SERIALIZED:  # no helper thread may call MPI: no time-out either
            spawn()
        elif not _within(seconds, spawn, "MPI_Comm_spawn", run_errors=False):
            raise SpawnError(
                f"MPI_Comm_spawn of {n_workers} worker(s) did not complete within {seconds:g} s. The MPI library "
                "here may not support spawning (a batch step that fills its allocation, a launcher without "
                "spawn support, a worker that cannot start); this process should be restarted before MPI is "
                f"used again; {SPMD_ALTERNATIVE}."
            )
    finally:
        info.Free()
    if "error" in result:
        error = result["error"]
        raise SpawnError(f"MPI_Comm_spawn of {n_workers} worker(s) failed: {str(error).strip()}"
                         f"{_library_hint()}; {SPMD_ALTERNATIVE}.") from error
    return result["comm"]


def _handshake(intercomm, options: dict, n_workers: int, deadline: float, seconds: float,
               python_exe: str) -> list:
    """Send the bootstrap and the options, collect one answer per worker by ``deadline``; their (pid, host)."""
    intercomm.bcast(BOOTSTRAP, root=MPI.ROOT)
    intercomm.bcast(options, root=MPI.ROOT)
    answers: dict[int, tuple] = {}
    requests = {rank: intercomm.irecv(source=rank, tag=HELLO_TAG) for rank in range(n_workers)}
    while requests and time.monotonic() < deadline:
        for rank in list(requests):
            done, answer = requests[rank].test()
            if done:
                answers[rank] = answer
                del requests[rank]
        if requests:
            time.sleep(0.005)
    known = [(answer[1], answer[2]) for _, answer in sorted(answers.items())]
    if requests:  # a worker never answered: it cannot take part in leaving
        for request in requests.values():
            request.Cancel()
        intercomm.Free()
        _stuck.append("the spawn's handshake")  # MPI_Finalize would wait to disconnect from the silent worker
        raise SpawnError(f"{len(requests)} of {n_workers} spawned worker(s) did not answer within {seconds:g} s; "
                         f"{SPMD_ALTERNATIVE}.")
    failed = {rank: answer for rank, answer in answers.items() if answer[0] != "ok"}
    intercomm.bcast(not failed, root=MPI.ROOT)
    if failed:
        _within(RELEASE_TIMEOUT, intercomm.Disconnect, "MPI_Comm_disconnect")
        _reap(known, RELEASE_TIMEOUT)
        rank, answer = next(iter(sorted(failed.items())))
        raise SpawnError(f"spawned worker {rank + 1} (pid {answer[1]} on {answer[2]}) could not start:\n"
                         f"{answer[3].rstrip()}\nThe workers run {python_exe} with this process's sys.path and "
                         f"working directory; {SPMD_ALTERNATIVE}.")
    return known


def _library_hint() -> str:
    if MPI.Get_library_version().startswith("Open MPI"):
        return " (Open MPI starts workers through its prte daemon: is it installed beside the library?)"
    return ""


class _launcher_on_path:
    """The MPI library's own ``bin`` first on ``PATH`` while spawning (restored after).

    A singleton MPICH process starts its ``mpiexec`` and Open MPI its ``prte``
    from ``PATH`` on the first spawn; a kernel started by Jupyter often does
    not have the environment's ``bin`` there.
    """

    def __enter__(self):
        self._saved = os.environ.get("PATH")
        directory = _library_bin()
        if directory is not None:
            found = shutil.which("mpiexec")
            if found is None or Path(found).resolve().parent != directory.resolve():
                os.environ["PATH"] = os.pathsep.join([str(directory), *filter(None, [self._saved])])
        return self

    def __exit__(self, *exc_info):
        if self._saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = self._saved
        return False


def _library_bin() -> Path | None:
    """The ``bin`` beside the loaded ``libmpi`` (read from ``/proc/self/maps``), if it holds ``mpiexec``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and os.path.basename(fields[5]).startswith("libmpi.so"):
            directory = Path(fields[5]).parent.parent / "bin"
            if (directory / "mpiexec").exists():
                return directory
            break
    scripts = Path(sys.executable).parent
    return scripts if (scripts / "mpiexec").exists() else None


# ------------------------------------------------------------ process helpers
def _within(seconds: float, function, name: str, run_errors: bool = True) -> bool:
    """Run ``function`` in a helper thread; whether it returned within ``seconds`` (its error is raised).

    A call still running then is remembered: MPI cannot finalise with it, so
    the interpreter leaves without finalising (see :func:`_leave_at_exit`).
    """
    outcome: dict = {}

    def run():
        try:
            function()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name=f"mpi_qinfer {name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _stuck.append(name)
        return False
    if run_errors and "error" in outcome:
        raise outcome["error"]
    return True


def _process_identity(pid: int) -> tuple[int, str, str | None]:
    """(pid, host, start time): a process told apart from a later one that reuses its pid."""
    return pid, socket.gethostname(), _start_time(pid)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie), and is the one that started at ``start`` if given."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):
        return False
    return start is None or len(fields) <= 19 or fields[19] == start


def _reap(workers, seconds: float) -> None:
    """Wait up to ``seconds`` for the workers on this host to leave; warn about any that did not.

    They are not ended here: MPICH's launcher ends the spawning process too when
    one of its processes is killed. A worker that lingers leaves when this
    process does (it watches it; see :mod:`mpi_qinfer.engine.worker`).
    """
    host = socket.gethostname()
    local = [pid for pid, where in workers if where == host]
    deadline = time.monotonic() + seconds
    while local and time.monotonic() < deadline:
        local = [pid for pid in local if process_alive(pid)]
        if local:
            time.sleep(0.02)
    if local:
        warnings.warn(f"spawned worker process(es) {local} still run {seconds:g} s after the shutdown; they leave "
                      "when this process ends", RuntimeWarning, stacklevel=4)


@atexit.register
def _leave_at_exit():
    # Registered after mpi4py's finaliser and the engine's own hook, so it runs before both:
    # every spawn still open is shut down; then, if an MPI call never returned in its helper
    # thread (a spawn that never completed), MPI_Finalize would wait for it forever, so the
    # interpreter leaves here without finalising MPI rather than hang.
    if not MPI.Is_finalized():
        for engine in list(_open_spawns):
            try:
                engine.shutdown()
            except Exception:  # noqa: BLE001 - best effort at interpreter exit
                pass
    if _stuck:
        sys.stderr.write(f"mpi_qinfer: {', '.join(sorted(set(_stuck)))} never returned; leaving without "
                         "MPI_Finalize\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)
