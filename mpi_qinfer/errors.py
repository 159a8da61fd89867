"""The public exceptions of mpi_qinfer."""

from __future__ import annotations

__all__ = [
    "MPIQinferError",
    "RemoteError",
    "ModelMismatchError",
    "EngineClosedError",
    "MPIUnavailableError",
    "SpawnError",
]


class MPIQinferError(Exception):
    """Base class of every exception mpi_qinfer raises itself."""


class RemoteError(MPIQinferError):
    """The serial model failed on one or more ranks during a parallel call.

    Raised on the root after every rank has finished the call's collectives, so
    the engine stays in step and the next call works.

    Parameters
    ----------
    command : str
        The name of the call that failed (``"likelihood"``, ...).
    tracebacks : dict of int to str
        The formatted traceback of the failure, keyed by the failing rank.

    Attributes
    ----------
    ranks : list of int
        The failing ranks, in increasing order.
    tracebacks : dict of int to str
        The remote traceback text of each failing rank.
    """

    def __init__(self, command: str, tracebacks: dict[int, str]):
        self.command = command
        self.tracebacks = dict(sorted(tracebacks.items()))
        self.ranks = list(self.tracebacks)
        super().__init__(self._message())

    def _message(self) -> str:
        where = ", ".join(map(str, self.ranks))
        plural = "s" if len(self.ranks) > 1 else ""
        parts = [f"{self.command} failed on rank{plural} {where}"]
        for rank, text in self.tracebacks.items():
            parts.append(f"\n--- rank {rank} ---\n{text.rstrip()}")
        return "".join(parts)

    def __reduce__(self):
        return (type(self), (self.command, self.tracebacks))


class ModelMismatchError(MPIQinferError):
    """Ranks brought serial models of different kinds to a collective construction."""


class EngineClosedError(MPIQinferError):
    """A call was made on an engine (or proxy) that has been shut down or was unpickled."""


class MPIUnavailableError(MPIQinferError, ImportError):
    """No MPI library could be loaded, so nothing parallel can run.

    Raised when a name that needs MPI (the proxy, the engine) is first used
    in a Python whose mpi4py finds no MPI library. The serial models, SMC,
    priors and heuristics work without one. The message says how to get one.
    """


class SpawnError(MPIQinferError, RuntimeError):
    """Workers could not be started with ``MPI_Comm_spawn`` (or did not answer in time).

    Raised by :meth:`MPIParallelizedModel.spawn <mpi_qinfer.MPIParallelizedModel.spawn>`
    on the process that asked, within the time-out it was given, never by a hang. The
    message says what failed and names the alternative that needs no spawn: launching
    the script on every rank (``mpiexec -n N python script.py``, ``srun``).
    """
