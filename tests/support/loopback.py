"""A loopback communicator: several "ranks" as threads of one process, for tests without mpiexec.

It implements the part of mpi4py's ``Intracomm`` that the engine uses — the
buffer collectives with the engine's derived datatypes (through
``Datatype.Pack``/``Unpack`` on ``COMM_SELF``), object collectives and
point-to-point messages — so that both sides of the engine (the root's and
the workers') run in a plain ``pytest``. It is a test double: correctness of
the MPI library itself is the MPI suites' business.
"""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
from mpi4py import MPI

__all__ = ["LoopbackAborted", "LoopbackComm", "run_ranks"]

#: Seconds a loopback rank waits before calling it a hang (short under mutation testing).
_TIMEOUT = float(os.environ.get("LOOPBACK_TIMEOUT", 60.0))


class LoopbackAborted(Exception):
    """A rank called ``Abort``: every rank's pending operation raises this."""


class _World:
    def __init__(self, size: int):
        self.size = size
        self.lock = threading.Condition()
        self.deposits: dict = {}  # (context, sequence) -> {rank: value}
        self.messages: dict = {}  # (context, source, dest, tag) -> list of payloads
        self.contexts = 0
        self.aborted: int | None = None

    def wait(self, predicate):
        if not self.lock.wait_for(lambda: predicate() or self.aborted is not None, timeout=_TIMEOUT):
            raise TimeoutError("a loopback rank waited too long (a hang in the code under test)")
        if not predicate():
            raise LoopbackAborted(f"rank {self.aborted} called Abort")


def _buffer(spec):
    """(array of bytes, count, datatype) of an mpi4py buffer spec."""
    if isinstance(spec, (list, tuple)):
        data = spec[0]
        count = spec[1] if len(spec) > 1 and not isinstance(spec[1], MPI.Datatype) else None
        datatype = spec[-1] if len(spec) > 1 and isinstance(spec[-1], MPI.Datatype) else MPI.BYTE
    else:
        data, count, datatype = spec, None, MPI.BYTE
    raw = memoryview(np.asarray(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data)
    raw = raw.cast("B") if raw.ndim != 1 or raw.format != "B" else raw
    if count is None:
        count = len(raw) // datatype.Get_extent()[1]
    return raw, count, datatype


def _pack(spec) -> bytes:
    raw, count, datatype = _buffer(spec)
    if count == 0:
        return b""
    extent = datatype.Get_extent()[1]
    out = bytearray(datatype.Pack_size(count, MPI.COMM_SELF))
    position = datatype.Pack(raw[: count * extent], out, 0, MPI.COMM_SELF)
    return bytes(out[:position])


def _unpack(data: bytes, raw: memoryview, offset_elements: int, count: int, datatype) -> None:
    if count == 0:
        return
    extent = datatype.Get_extent()[1]
    start = offset_elements * extent
    datatype.Unpack(data, 0, raw[start : start + count * extent], MPI.COMM_SELF)


class LoopbackComm(MPI.Intracomm):
    """One rank's view of a loopback world (see the module docstring)."""

    def __new__(cls, world=None, rank=0, context=0):
        comm = super().__new__(cls)
        comm._world, comm._rank, comm._context, comm._sequence = world, rank, context, 0
        comm._dups = 0
        return comm

    def __init__(self, *args, **kwargs):  # the state is set in __new__
        pass

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def __hash__(self):
        return id(self)

    # ----------------------------------------------------------- basics
    def Get_rank(self):
        return self._rank

    def Get_size(self):
        return self._world.size

    def Free(self):
        pass

    def Abort(self, errorcode=0):
        world = self._world
        with world.lock:
            world.aborted = self._rank
            world.lock.notify_all()
        raise LoopbackAborted(f"rank {self._rank} called Abort({errorcode})")

    def _exchange(self, value):
        """Every rank's ``value`` in rank order (the core of every collective)."""
        world = self._world
        key = (self._context, self._sequence)
        self._sequence += 1
        with world.lock:
            deposit = world.deposits.setdefault(key, ({}, set()))  # values, ranks that read them
            deposit[0][self._rank] = value
            world.lock.notify_all()
            world.wait(lambda: len(deposit[0]) == world.size)
            values = [deposit[0][rank] for rank in range(world.size)]
            deposit[1].add(self._rank)
            if len(deposit[1]) == world.size:
                del world.deposits[key]
        return values

    def Dup(self, info=None):
        self._exchange(None)  # collective, as MPI's
        # Every rank's n-th Dup of this communicator lands in the same new context.
        self._dups += 1
        return LoopbackComm(self._world, self._rank, (self._context, self._dups))

    def Split_type(self, split_type, key=0, info=None):
        return self.Dup()

    # ------------------------------------------------- object collectives
    def allgather(self, value):
        return self._exchange(pickle.loads(pickle.dumps(value)))

    def allreduce(self, value, op=None):
        values = self._exchange(value)
        if op is MPI.LOR:
            return any(values)
        return sum(values)

    def bcast(self, value, root=0):
        return pickle.loads(pickle.dumps(self._exchange(value)[root]))

    def send(self, value, dest, tag=0):
        world = self._world
        with world.lock:
            world.messages.setdefault((self._context, self._rank, dest, tag), []).append(pickle.dumps(value))
            world.lock.notify_all()

    def recv(self, buf=None, source=0, tag=0, status=None):
        world = self._world
        key = (self._context, source, self._rank, tag)
        with world.lock:
            world.wait(lambda: world.messages.get(key))
            return pickle.loads(world.messages[key].pop(0))

    def Send(self, buf, dest, tag=0):
        world = self._world
        with world.lock:
            world.messages.setdefault((self._context, self._rank, dest, tag), []).append(_pack(buf))
            world.lock.notify_all()

    def Isend(self, buf, dest, tag=0):
        """Sends at once (a loopback Send never blocks), returning a completed request."""
        self.Send(buf, dest, tag)
        return MPI.REQUEST_NULL

    def Irecv(self, buf, source=0, tag=0):
        """Receives at once (a loopback Send never blocks), returning a completed request."""
        world = self._world
        key = (self._context, source, self._rank, tag)
        with world.lock:
            world.wait(lambda: world.messages.get(key))
            data = world.messages[key].pop(0)
        if data:  # an empty message leaves the buffer as it was, as MPI does
            raw, count, datatype = _buffer(buf)
            _unpack(data, raw, 0, count, datatype)
        return MPI.REQUEST_NULL

    # ------------------------------------------------- buffer collectives
    def Bcast(self, buf, root=0):
        data = _pack(buf) if self._rank == root else None
        values = self._exchange(data)
        if self._rank != root:
            raw, count, datatype = _buffer(buf)
            _unpack(values[root], raw, 0, count, datatype)

    def Barrier(self):
        self._exchange(None)

    def Gather(self, sendbuf, recvbuf, root=0):
        in_place = sendbuf is MPI.IN_PLACE  # the root's own record is in recvbuf already
        values = self._exchange(None if in_place else _pack(sendbuf))
        if self._rank == root:
            raw = _buffer(recvbuf)[0]
            chunk = len(raw) // len(values)
            for rank, data in enumerate(values):
                if data is not None:
                    raw[rank * chunk : (rank + 1) * chunk] = data

    def Igather(self, sendbuf, recvbuf, root=0):
        """Completes at once (every rank calls it at the same point), returning a completed request."""
        self.Gather(sendbuf, recvbuf, root)
        return MPI.REQUEST_NULL

    def Igatherv(self, sendbuf, recvbuf, root=0):
        """Completes at once (every rank calls it at the same point), returning a completed request."""
        self.Gatherv(sendbuf, recvbuf, root)
        return MPI.REQUEST_NULL

    def Scatterv(self, sendbuf, recvbuf, root=0):
        if self._rank == root:
            data, counts, displs, datatype = sendbuf
            raw = _buffer([data, 0, datatype])[0]
            extent = datatype.Get_extent()[1]
            pieces = [_pack([raw[int(d) * extent:], int(c), datatype]) for c, d in zip(counts, displs)]
        else:
            pieces = None
        values = self._exchange(pieces)
        if self._rank != root:
            raw, count, datatype = _buffer(recvbuf)
            _unpack(values[root][self._rank], raw, 0, count, datatype)

    def Gatherv(self, sendbuf, recvbuf, root=0):
        in_place = sendbuf is MPI.IN_PLACE  # the root's own rows are in recvbuf already
        values = self._exchange(None if in_place else _pack(sendbuf))
        if self._rank == root:
            data, counts, displs, datatype = recvbuf
            raw = _buffer([data, 0, datatype])[0]
            for rank, piece in enumerate(values):
                if not (in_place and rank == root):
                    _unpack(piece, raw, int(displs[rank]), int(counts[rank]), datatype)


def run_ranks(size: int, target, timeout: float = _TIMEOUT):
    """Run ``target(comm)`` on ``size`` loopback ranks (threads); return every rank's result.

    An exception on any rank is re-raised here (the lowest rank's first).
    """
    world = _World(size)
    results, errors = [None] * size, [None] * size

    def body(rank):
        try:
            results[rank] = target(LoopbackComm(world, rank, 0))
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors[rank] = error
            with world.lock:
                if world.aborted is None and not isinstance(error, LoopbackAborted):
                    world.aborted = rank  # release the others instead of letting them wait
                world.lock.notify_all()

    threads = [threading.Thread(target=body, args=(rank,), daemon=True) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("a loopback rank did not finish")
    for error in errors:
        if error is not None and not isinstance(error, LoopbackAborted):
            raise error
    for error in errors:
        if error is not None:
            raise error
    return results
