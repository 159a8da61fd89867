"""The worker command loop that the engine and the distributed updater share, and the checks before it.

A collective object driven from the root (:class:`~mpi_qinfer.engine.core.Engine`,
:class:`~mpi_qinfer.distributed.loop.CommandLoop`) is built the same way on
every rank, with :func:`agreed_root` and :func:`duplicate`, and its workers
serve it with :meth:`CommandLoopBase._serve_commands`: receive a command,
dispatch it through the subclass's explicit table of commands, until a
command closes the loop. The root sends each command and runs its own part of it, so both sides
run the same collectives. No MPI at import: the distributed updater imports
this module before it loads MPI.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .failures import describe_failure

__all__ = ["CommandLoopBase", "agreed_root", "duplicate", "out_of_communicators"]


def agreed_root(comm, root) -> int:
    """``root`` as an int, once every rank of ``comm`` has passed the same valid one (collective).

    A rooted collective on ranks that disagree on the root would hang, so
    the ranks compare theirs first, with one ``allgather`` (it has no root),
    and every rank raises the same way if any rank passed another root or
    something that is not a rank of ``comm`` (``True`` included).

    Raises
    ------
    ValueError
        On every rank, when a rank's ``root`` is not a rank of ``comm`` or
        the ranks passed different roots.
    """
    size = comm.Get_size()
    valid = isinstance(root, (int, np.integer)) and not isinstance(root, bool) and 0 <= root < size
    roots = comm.allgather(int(root) if valid else None)
    if not valid:
        raise ValueError(f"root must be a rank of comm (0..{size - 1}), got {root!r}")
    if len(set(roots)) != 1:
        raise ValueError(f"every rank must pass the same root; the ranks passed {roots}")
    return int(root)


def duplicate(comm):
    """``comm.Dup()``, with a hint when the MPI library has run out of communicators."""
    from mpi4py import MPI

    try:
        return comm.Dup()
    except MPI.Exception as error:
        raise out_of_communicators(error) from error


def out_of_communicators(error: Exception) -> RuntimeError:
    """The error to raise when creating a communicator failed with ``error``."""
    return RuntimeError(
        f"could not create a communicator ({str(error).strip()}); the MPI library may have run out of "
        "communicators: each MPIParallelizedModel owns one unless it shares an Engine "
        "(pass engine=Engine(comm) to several proxies)"
    )


class CommandLoopBase:
    """The workers' side of a collective object driven from the root: one command at a time.

    A subclass sets ``_comm``, ``_rank`` and ``_closed``, implements
    :meth:`_receive_command` (wait for the root's next command) and
    ``_free``, and lists its commands in :attr:`_COMMANDS`. Its public
    ``serve`` checks that this rank may serve, then calls
    :meth:`_serve_commands`.
    """

    #: Command code to the method that serves it on a worker, ``method(self, message)``, with
    #: the message :meth:`_receive_command` returned; a command that closes the loop frees it.
    _COMMANDS: dict = {}

    #: What a rank that fails between commands did, in the report before the job ends ({kind}: the class).
    _ABORT_CONTEXT = "failed outside the model while serving a {kind}"

    def _serve_commands(self) -> None:
        """Serve commands until one closes the loop; free the communicator in any case.

        A failure here, outside what the commands report to the root
        themselves, leaves this rank out of step with the others: it ends
        the whole job (:meth:`_abort_job`) rather than leave them waiting.
        """
        try:
            while not self._closed:
                self._serve_one()
        except BaseException as error:  # noqa: BLE001 - out of step with the root: end the job rather than hang it
            self._abort_job(error)
        finally:
            self._free()

    def _serve_one(self) -> None:
        """Worker: receive one command and dispatch it through :attr:`_COMMANDS`."""
        code, message = self._receive_command()
        self._COMMANDS[code](self, message)

    def _receive_command(self) -> tuple:
        """Worker: wait for the root's next command; its code in :attr:`_COMMANDS` and its message."""
        raise NotImplementedError

    def _abort_job(self, error: BaseException) -> None:
        """End the job (``MPI_Abort``) after printing ``error``'s traceback on stderr."""
        context = self._ABORT_CONTEXT.format(kind=type(self).__name__)
        sys.stderr.write(f"mpi_qinfer: rank {self._rank} {context}; ending the job.\n{describe_failure(error)}")
        sys.stderr.flush()
        time.sleep(0.2)  # let the launcher forward the report before the job is torn down
        self._comm.Abort(1)
