"""Where one parallel likelihood call spends its time, rank by rank, against the hand-written floor.

Run under the launcher, e.g.::

    mpiexec -n 2 python scripts/call_timeline.py --particles 10000 --outcomes 2

Every rank wraps its communicator so that each MPI call of the engine (and of
the benchmark's floor loop) is stamped with ``time.perf_counter_ns`` on entry
and exit. The ranks of one node share that clock, so each stamp can be placed
on the root's timeline: microseconds since the root entered the call. The
output gives, per rank, the median of each stamp over the timed calls (``<``
entry, ``>`` exit, ``#k`` the k-th call of that name within one model call),
for the proxy (``serial_threshold=0``) and for the floor, followed by the
median call times of the proxy, the engine alone (the proxy's spec and
arrays handed to :meth:`Engine.call <mpi_qinfer.engine.core.Engine.call>`) and
the floor.

Reading it: a worker stamp after the root's shows whom the root waited for;
the gap between a rank's ``Scatterv>`` and its next stamp is its compute and
the Python around it. Stamps cost about 0.3 µs each, so the absolute times are
a little above the benchmark's.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
from mpi4py import MPI

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.cli.bench.cases import outcomes_for
from mpi_qinfer.cli.bench.loops import FloorLoop
from mpi_qinfer.models.builtin import SimplePrecessionModel

_clock = time.perf_counter_ns


class StampedComm:
    """A communicator whose upper-case (buffer) calls leave entry and exit stamps in ``log``."""

    def __init__(self, comm, log: list):
        self._comm, self._log = comm, log

    def __getattr__(self, name):
        attribute = getattr(self._comm, name)
        if not (name[:1].isupper() and callable(attribute)):
            return attribute
        log = self._log

        def stamped(*args, **kwargs):
            log.append((name + "<", _clock()))
            try:
                return attribute(*args, **kwargs)
            finally:
                log.append((name + ">", _clock()))

        return stamped

    def __eq__(self, other):
        return self._comm == other

    __hash__ = None


def timeline(world, log: list, starts: list, skip: int) -> dict:
    """This rank's stamps as medians of microseconds after the root's call entries (collective)."""
    starts = np.asarray(world.bcast(starts if world.Get_rank() == 0 else None, 0))
    offsets = collections.defaultdict(list)
    calls = np.searchsorted(starts, [stamp for _, stamp in log], side="right") - 1
    seen = collections.Counter()
    for (name, stamp), call in zip(log, calls):
        if skip <= call < len(starts) - 1:  # the last call's stamps may belong to the shutdown
            seen[call, name] += 1
            offsets[f"{name}#{seen[call, name]}"].append((stamp - starts[call]) / 1e3)
    enough = (len(starts) - 1 - skip) // 2
    return {key: float(np.median(values)) for key, values in offsets.items() if len(values) >= enough}


def time_root_calls(call, n_calls: int, starts: list, log: list) -> float:
    """Run ``call`` ``n_calls`` times on the root, stamping each entry; return the median seconds."""
    seconds = []
    for _ in range(n_calls):
        start = _clock()
        starts.append(start)
        call()
        seconds.append((_clock() - start) / 1e9)
        log.append(("END", _clock()))
    return float(np.median(seconds))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--outcomes", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per method (default: 2000)")
    args = parser.parse_args(argv)
    world = MPI.COMM_WORLD
    if world.Get_size() < 2:
        parser.error("run it under mpiexec with at least 2 ranks")
    rng = np.random.default_rng(1)
    model = SimplePrecessionModel()
    modelparams = rng.uniform(0, 1, (args.particles, 1))
    expparams = np.full(1, 3.0, dtype=model.expparams_dtype)
    outcomes = outcomes_for(args.outcomes)
    skip = max(args.calls // 10, 1)
    report, medians = {}, {}

    log, starts = [], []
    proxy = MPIParallelizedModel(model, serial_threshold=0)
    stamped = StampedComm(proxy.engine._comm, log)
    proxy.engine._comm = proxy.engine._exchange._comm = stamped  # the message, and steps 2-7
    if proxy.is_root:
        medians["proxy"] = time_root_calls(lambda: proxy.likelihood(outcomes, modelparams, expparams),
                                           args.calls, starts, log)
        engine = proxy.engine
        spec = engine.describe(1, 0, 0, outcomes=outcomes, modelparams=modelparams, expparams=expparams)
        arrays = {"outcomes": outcomes, "modelparams": modelparams, "expparams": expparams, "counts": None}
        medians["engine"] = time_root_calls(lambda: engine.call(spec, arrays), args.calls, [], [])
        proxy.shutdown()
    else:
        proxy.serve()
    report["proxy"] = timeline(world, log, starts, skip)

    log, starts = [], []
    floor = FloorLoop(world, model, outcomes_dtype=outcomes.dtype)
    floor.comm = StampedComm(floor.comm, log)
    with floor:
        if floor.is_root:
            medians["floor"] = time_root_calls(lambda: floor.likelihood(outcomes, modelparams, expparams),
                                               args.calls, starts, log)
    report["floor"] = timeline(world, log, starts, skip)

    reports = world.gather(report, 0)
    if world.Get_rank() == 0:
        print(f"{args.particles} particles x 1 experiment, {args.outcomes} outcome(s), {world.Get_size()} ranks: "
              "median microseconds after the root entered the call")
        for method in ("proxy", "floor"):
            for rank, rank_report in enumerate(reports):
                stamps = sorted(rank_report[method].items(), key=lambda item: item[1])
                print(f"  {method:5s} rank {rank}: " + "  ".join(f"{key}={value:.1f}" for key, value in stamps))
        print("median per call: " + ", ".join(f"{name} {seconds * 1e6:.1f} us" for name, seconds in medians.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
