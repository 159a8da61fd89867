"""Long-run memory check of the proxy (run by hand, not a test).

Usage (every rank runs this script)::

    timeout 1200 mpiexec -n 2 python scripts/memory_check.py [--calls 100000] [--particles 1000]
    timeout 1200 mpiexec -n 2 python scripts/memory_check.py --peak
    timeout 1200 mpiexec -n 2 python scripts/memory_check.py --distributed [--particles 10000000]

Growth (default)
    100,000 likelihood calls of the cheap model (1e3 particles x 1
    experiment by default, a few different clouds cycled) through an
    ``MPIParallelizedModel`` with ``serial_threshold=0``, so every call runs
    the whole collective sequence. The resident memory (``VmRSS`` from
    ``/proc/self/status``) of *every* rank is read after a warm-up of 1,000
    calls, at a few points in between and at the end: a probe model,
    registered on the same engine, returns each rank's ``VmRSS`` as its
    likelihood (one particle row per rank), so the workers report through the
    same loop that serves the calls. The per-rank growth from the warm-up
    point to the end is printed in KiB; the check fails (exit status 1) if
    any rank grew by more than 2 MiB.

Peak (``--peak``)
    The root's peak memory for one 1e6-particle call through the proxy
    versus the serial model. Method: before each measured call the kernel's
    high-water mark is reset by writing ``5`` to ``/proc/self/clear_refs``
    (Linux >= 4.0), so that ``VmHWM`` restarts at the current ``VmRSS``; the
    call's peak increment is ``VmHWM`` after the call minus ``VmRSS`` before
    it. The particles are allocated (and touched) before either measurement,
    so only what the call itself allocates counts. Each path gets one warm-up
    call first. Where the reset is not allowed, the serial model is measured
    first and the proxy second without a reset: the proxy's increment is then
    an upper bound only if it exceeds the serial one, and the script says so.
    The ratio proxy/serial of the increments is printed against the 1.5
    target (exit status 1 above it). The workers' peak increments are printed
    too, for information.

Distributed (``--distributed``)
    The root's peak memory while a ``DistributedSMCUpdater`` and an
    ``SMCUpdater`` of ``--particles`` particles (default 1e7) are each built,
    updated three times, resampled and asked for their mean (the same peak
    reset as above; see :func:`mpi_qinfer.cli.bench.distributed.root_memory`).
    The ratio distributed/serial is printed against the 0.6 target at two
    ranks (exit status 1 above it); the cloud each rank holds scales as
    1/ranks.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from mpi4py import MPI

from mpi_qinfer import Engine, MPIParallelizedModel
from mpi_qinfer.cli.bench.distributed import read_status_kib, reset_peak
from mpi_qinfer.models.builtin import SimplePrecessionModel

GROWTH_BOUND_KIB = 2048
PEAK_RATIO_TARGET = 1.5
DISTRIBUTED_RATIO_TARGET = 0.6


class MemoryProbe(SimplePrecessionModel):
    """A model whose likelihood is a ``/proc/self/status`` field of the rank computing it.

    With one particle row per rank, row ``r`` of the answer belongs to rank ``r``.
    The first model parameter chooses the field: 0 for ``VmRSS``, 1 for ``VmHWM``,
    2 to reset the peak (answering 1 if it worked).
    """

    FIELDS = ("VmRSS", "VmHWM")

    def likelihood(self, outcomes, modelparams, expparams):
        """Every entry is the asked-for value of this process."""
        what = int(modelparams[0, 0]) if len(modelparams) else 0
        value = float(reset_peak()) if what == 2 else float(read_status_kib(self.FIELDS[what]))
        return np.full((len(outcomes), len(modelparams), len(expparams)), value)


def ask_every_rank(probe, size: int, what: int) -> np.ndarray:
    """One probe call: ``what`` (see :class:`MemoryProbe`) from every rank, root first."""
    return probe.likelihood(np.array([0]), np.full((size, 1), float(what)), np.zeros(1))[0, :, 0]


def growth_check(comm, calls: int, particles: int, warmup: int, points: int) -> int:
    """The long-run check (collective); returns the exit status on the root, 0 elsewhere."""
    size = comm.Get_size()
    engine = Engine(comm)
    proxy = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0, engine=engine)
    probe = MPIParallelizedModel(MemoryProbe(), serial_threshold=0, engine=engine)
    status = 0
    with engine:
        if not engine.is_root:
            return 0
        rng = np.random.default_rng(2024)
        clouds = [rng.uniform(0, 1, (particles, 1)) for _ in range(4)]
        times = [rng.uniform(0, 20, 1) for _ in range(7)]
        outcomes = np.array([0])

        def one(i):
            proxy.likelihood(outcomes, clouds[i % len(clouds)], times[i % len(times)])

        for i in range(warmup):
            one(i)
        checkpoints = sorted({round(calls * k / points) for k in range(1, points + 1)})
        readings = [(0, ask_every_rank(probe, size, 0))]
        start = time.perf_counter()
        done = 0
        for checkpoint in checkpoints:
            for i in range(done, checkpoint):
                one(i)
            done = checkpoint
            readings.append((done, ask_every_rank(probe, size, 0)))
        wall = time.perf_counter() - start

    print(f"memory growth: {calls} likelihood calls ({particles} particles x 1 experiment, serial_threshold=0) "
          f"on {size} rank(s) after {warmup} warm-up calls; {wall:.1f} s, {1e6 * wall / calls:.1f} us per call")
    print("  VmRSS in KiB per rank (root first):")
    for done, rss in readings:
        print(f"    after {done:>7} calls: " + "  ".join(f"{int(v):>9}" for v in rss))
    growth = readings[-1][1] - readings[0][1]
    print("  growth in KiB per rank: " + "  ".join(f"{int(g):+d}" for g in growth))
    worst = int(np.max(growth))
    if worst > GROWTH_BOUND_KIB:
        print(f"  FAIL: a rank grew by {worst} KiB, more than the bound of {GROWTH_BOUND_KIB} KiB")
        status = 1
    else:
        print(f"  PASS: no rank grew by more than {GROWTH_BOUND_KIB} KiB (worst {worst:+d} KiB)")
    return status


def peak_check(comm, particles: int, n_exp: int) -> int:
    """The root's peak memory of one big call, proxy versus serial (collective)."""
    size = comm.Get_size()
    serial = SimplePrecessionModel()
    engine = Engine(comm)
    proxy = MPIParallelizedModel(serial, serial_threshold=0, engine=engine)
    probe = MPIParallelizedModel(MemoryProbe(), serial_threshold=0, engine=engine)
    with engine:
        if not engine.is_root:
            return 0
        rng = np.random.default_rng(7)
        modelparams = rng.uniform(0, 1, (particles, 1))
        expparams = rng.uniform(0, 20, n_exp)
        outcomes = np.array([0])
        serial.likelihood(outcomes, modelparams, expparams)  # warm-up
        proxy.likelihood(outcomes, modelparams, expparams)

        increments = {}
        resets = True
        for name, model in (("serial", serial), ("proxy", proxy)):
            resets &= reset_peak()
            before = read_status_kib("VmRSS")
            if name == "proxy":
                resets &= bool(np.all(ask_every_rank(probe, size, 2)))
                workers_before = ask_every_rank(probe, size, 0)
            answer = model.likelihood(outcomes, modelparams, expparams)
            increments[name] = read_status_kib("VmHWM") - before
            if name == "proxy":
                workers_peak = ask_every_rank(probe, size, 1) - workers_before
            del answer

    result_kib = particles * n_exp * 8 / 1024
    ratio = increments["proxy"] / max(increments["serial"], 1)
    print(f"peak memory of one call: {particles} particles x {n_exp} experiment(s) on {size} rank(s); "
          f"the answer is {result_kib:.0f} KiB")
    print(f"  peak-reset via /proc/self/clear_refs: {'yes' if resets else 'NO (see the docstring)'}")
    print(f"  root peak increment: serial {increments['serial']} KiB, proxy {increments['proxy']} KiB")
    if size > 1:
        print("  workers' peak increment during the proxy call (KiB): "
              + "  ".join(f"{int(v)}" for v in workers_peak[1:]))
    verdict = "PASS" if ratio <= PEAK_RATIO_TARGET else "FAIL"
    note = "" if resets else " (no peak reset: proxy figure is only meaningful if larger than serial)"
    print(f"  {verdict}: proxy/serial = {ratio:.2f} (target <= {PEAK_RATIO_TARGET}){note}")
    return 0 if ratio <= PEAK_RATIO_TARGET else 1


def distributed_check(comm, particles: int) -> int:
    """The root's peak memory, DistributedSMCUpdater versus SMCUpdater (collective)."""
    from mpi_qinfer.cli.bench.distributed import root_memory

    result = root_memory(comm, particles)
    if result is None:
        return 0
    ratio = result["distributed_over_serial"]
    print(f"root peak memory, {particles} particles on {comm.Get_size()} rank(s) (build, 3 updates, resample, mean):")
    print(f"  peak-reset via /proc/self/clear_refs: {'yes' if result['peak_reset'] else 'NO (upper bounds)'}")
    print(f"  SMCUpdater {result['serial_peak_kib']} KiB, DistributedSMCUpdater {result['distributed_peak_kib']} KiB; "
          f"cloud {result['cloud_kib']:.0f} KiB in all, {result['per_rank_cloud_kib']:.0f} KiB per rank")
    verdict = "PASS" if ratio <= DISTRIBUTED_RATIO_TARGET else "FAIL"
    print(f"  {verdict}: distributed/serial = {ratio:.2f} (target <= {DISTRIBUTED_RATIO_TARGET} at 2 ranks)")
    return 0 if ratio <= DISTRIBUTED_RATIO_TARGET else 1


def main(argv=None) -> int:
    """Parse the command line and run one of the checks on every rank."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="likelihood calls (default: %(default)s)")
    parser.add_argument("--particles", type=int, default=None,
                        help="particles per call (default: 1000; with --peak 1000000)")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="calls before the first reading (default: %(default)s)")
    parser.add_argument("--points", type=int, default=4, help="readings after the warm-up (default: %(default)s)")
    parser.add_argument("--peak", action="store_true", help="measure the root's peak memory of one big call instead")
    parser.add_argument("--experiments", type=int, default=1, help="experiments of the --peak call (default: 1)")
    parser.add_argument("--distributed", action="store_true",
                        help="the root's peak memory of DistributedSMCUpdater versus SMCUpdater instead")
    args = parser.parse_args(argv)
    comm = MPI.COMM_WORLD
    if args.distributed:
        status = distributed_check(comm, args.particles or 10_000_000)
    elif args.peak:
        status = peak_check(comm, args.particles or 1_000_000, args.experiments)
    else:
        status = growth_check(comm, args.calls, args.particles or 1000, args.warmup, max(args.points, 1))
    return int(comm.bcast(status, 0))


if __name__ == "__main__":
    sys.exit(main())
