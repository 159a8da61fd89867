"""The ``trials`` section: ``perf_test_multiple`` serially against the trial farm.

The same trials (the same seed) run serially on the root, the other ranks
waiting without burning a core, and through
:class:`~mpi_qinfer.parallel.trials.TrialFarm` on every rank:

``cheap``
    the precession model, 20 trials x 1000 particles x 50 experiments
    (exponentially sparse times), groups of one rank: trials in parallel;
``costly``
    the 3-qubit Ising chain, the same workload (fewer trials and
    experiments with ``--quick``; experiments from the particle guess
    heuristic), in groups of one rank and in one group of every rank (each
    trial's particles spread by a proxy).

The ways alternate over the rounds; the median wall time is kept. The
farm's trials must equal the serial ones bitwise (``elapsed_time``
excepted, a measurement); ``speedup`` is serial over farm. The report and
the targets of the section are in :mod:`~mpi_qinfer.cli.bench.report`.
"""

from __future__ import annotations

import functools
import gc
import time

import numpy as np

from ...models.builtin import IsingChainModel, SimplePrecessionModel
from ...models.distributions import UniformDistribution
from ...parallel.trials import TrialFarm
from ...smc.heuristics import PGH, ExpSparseHeuristic
from ...smc.perf_testing import perf_test_multiple
from .distributed import _root_alone
from .report import log

__all__ = ["bench_trials", "WORKLOADS"]

#: (n_trials, n_particles, n_exp) of each model, for the full run and for ``--quick``.
WORKLOADS = {
    "cheap": {"full": (20, 1000, 50), "quick": (20, 1000, 50)},
    "costly": {"full": (20, 1000, 50), "quick": (6, 1000, 10)},
}


def _problem(kind: str):
    """(serial model, prior, heuristic class) of a workload."""
    if kind == "cheap":
        return SimplePrecessionModel(), UniformDistribution([0, 1]), ExpSparseHeuristic
    return (IsingChainModel(n_qubits=3), UniformDistribution([[0.0, 1.0], [0.0, 1.0]]),
            functools.partial(PGH, inv_field=None))


def _serial_run(comm, kind: str, workload: tuple, seed: int):
    n_trials, n_particles, n_exp = workload

    def work():
        model, prior, heuristic = _problem(kind)
        start = time.perf_counter()
        perf = perf_test_multiple(n_trials, model, n_particles, prior, n_exp, heuristic, seed=seed)
        return time.perf_counter() - start, perf

    return _root_alone(comm, work)


def _farm_run(comm, kind: str, workload: tuple, seed: int, group_size: int):
    n_trials, n_particles, n_exp = workload
    model, prior, heuristic = _problem(kind)
    farm = TrialFarm(comm, group_size=group_size)
    comm.Barrier()
    start = time.perf_counter()
    perf = farm.perf_test_multiple(n_trials, model, n_particles, prior, n_exp, heuristic, seed=seed)
    seconds = time.perf_counter() - start
    return (seconds, perf) if comm.Get_rank() == 0 else None


def _same_trials(got, want) -> bool:
    return all(np.array_equal(got[name], want[name]) for name in want.dtype.names if name != "elapsed_time")


def _compare(comm, kind: str, workload: tuple, group_sizes: list, rounds: int, seed: int) -> list | None:
    """Serial and farmed runs of one workload, interleaved over ``rounds``; one row per group size."""
    serial, farmed = [], {k: [] for k in group_sizes}
    for round_ in range(rounds):
        ways = ["serial", *group_sizes]
        ways = ways[round_ % len(ways):] + ways[: round_ % len(ways)]
        for way in ways:
            gc.collect()
            if way == "serial":
                serial.append(_serial_run(comm, kind, workload, seed))
            else:
                farmed[way].append(_farm_run(comm, kind, workload, seed, way))
    if comm.Get_rank() != 0:
        return None
    n_trials, n_particles, n_exp = workload
    serial_s = float(np.median([run[0] for run in serial]))
    rows = []
    for k, runs in farmed.items():
        farm_s = float(np.median([run[0] for run in runs]))
        rows.append({"model": kind, "group_size": k, "n_trials": n_trials, "n_particles": n_particles,
                     "n_exp": n_exp, "rounds": rounds, "serial_median_s": serial_s, "farm_median_s": farm_s,
                     "speedup": serial_s / farm_s,
                     "bitwise_equal": all(_same_trials(run[1], serial[0][1]) for run in runs)})
    return rows


def bench_trials(comm, settings, workloads: dict | None = None) -> dict | None:
    """The ``trials`` section (collective over ``comm``).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    settings : Settings
        ``quick`` picks the smaller workloads, ``rounds`` and ``seed`` are used.
    workloads : dict, optional
        ``{"cheap": (n_trials, n_particles, n_exp), "costly": ...}`` instead
        of :data:`WORKLOADS` (a model left out is not run).

    Returns
    -------
    dict or None
        On the root: one row per (model, group size) with the median wall
        times, the speedup and whether the trials were bitwise equal; None
        elsewhere.
    """
    if workloads is None:
        workloads = {kind: sizes["quick" if settings.quick else "full"] for kind, sizes in WORKLOADS.items()}
    size = comm.Get_size()
    rows = []
    for kind, workload in workloads.items():
        group_sizes = [1] if kind == "cheap" or size == 1 else [1, size]
        # The costly serial runs take long: one round in the full run is already a minute.
        rounds = settings.rounds if kind == "cheap" else 1
        if comm.Get_rank() == 0:
            log(f"trials: {kind} {workload[0]} trials x {workload[1]} particles x {workload[2]} experiments, "
                f"groups of {group_sizes} rank(s) ...")
        part = _compare(comm, kind, workload, group_sizes, rounds, settings.seed)
        if part is not None:
            rows.extend(part)
    if comm.Get_rank() != 0:
        return None
    return {"ranks": size, "rows": rows, "bitwise_equal": all(row["bitwise_equal"] for row in rows)}
