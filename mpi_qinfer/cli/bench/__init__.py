"""The ``bench`` sub-command: the proxy against the serial model, the communication floor and a pickle map.

Run it under the launcher, e.g. ``mpiexec -n 2 python -m mpi_qinfer bench --quick``
(or ``python -m mpi_qinfer.cli.bench``). One run measures, on the same data, every
call shape of the sweep (:func:`~mpi_qinfer.cli.bench.cases.plan_cases`: 1, 2, 3
and 6 outcomes, 1 and 100 experiments, 1e3 to 1e5 particles -- 1e6 in the full
run --, split by particles or by experiments, float64 particle clouds, random
experiment times) with:

``serial``
    the serial model on the root alone: the cost the proxy must beat;
``proxy``
    :class:`~mpi_qinfer.MPIParallelizedModel` with ``serial_threshold=0``
    (every call in parallel);
``auto``
    the proxy with the default ``serial_threshold="auto"``, which must never
    be slower than ``serial`` (it may run small calls serially);
``floor``
    the fastest hand-written mpi4py code for the shape that returns the serial
    layout (:class:`~mpi_qinfer.cli.bench.loops.FloorLoop`): Bcast, Scatterv, and a
    gather whose layout ``scripts/layout_probe.py`` measured best; no
    validation, no header protocol, no status gather. What is left when
    everything the proxy adds is taken away;
``pickle``
    a pickle-based map (:class:`~mpi_qinfer.cli.bench.loops.PickleMapLoop`): lowercase ``bcast`` /
    ``scatter`` of ``np.array_split`` chunks of the split axis / ``gather`` /
    ``np.concatenate``,
    what users write without this package.

Then, in separate sections: an end-to-end SMC run of the costly model (serial
versus proxy, final particles compared bitwise), the same with experiments
designed by information gain (the best of 20 candidates each step), the cost of the two idle-wait
modes (per-call latency, and the CPU an idle worker burns per wall second,
read with :class:`~mpi_qinfer.cli.bench.probes.ProcessTimeProbe`), and load balancing with one rank made
three times slower (:class:`~mpi_qinfer.cli.bench.probes.UnevenIsingModel`, ``balance="even"`` versus
``"adaptive"``), the distributed updater (:mod:`~mpi_qinfer.cli.bench.distributed`), and
``perf_test_multiple`` serially against the trial farm (:mod:`~mpi_qinfer.cli.bench.trials`).

Why ratios: the machines this runs on are shared and noisy, and absolute
latencies depend on the MPI library, the interconnect and the CPU. The
ratios between methods measured in the same run, seconds apart and on the
same data, are what carry over: ``proxy/floor`` is the price of the proxy's
logic, ``proxy - floor`` the same in microseconds (what matters for small
calls), ``proxy/serial`` and ``auto/serial`` whether going parallel pays,
``pickle/proxy`` what the buffer interface saves, ``speedup`` is
``serial/proxy``. Every method's answer is checked against the serial answer
with :func:`numpy.array_equal` once per case; a mismatch is reported loudly
and makes the exit status 1.

Every call is timed with :func:`~mpi_qinfer.cli.bench.timing.time_calls`: warm-up calls are discarded,
then calls are repeated until enough time or repeats have accumulated; the
median, minimum and maximum per call are kept.

The package, one job per module: :mod:`~mpi_qinfer.cli.bench.timing` (timing a
call), :mod:`~mpi_qinfer.cli.bench.cases` (settings, methods, cases),
:mod:`~mpi_qinfer.cli.bench.loops` (the hand-written floor and pickle map),
:mod:`~mpi_qinfer.cli.bench.probes` (the sections' probe models),
:mod:`~mpi_qinfer.cli.bench.measure` (one case's row of the table),
:mod:`~mpi_qinfer.cli.bench.sections` (SMC, designed SMC, idle, balance),
:mod:`~mpi_qinfer.cli.bench.trials` (serial trials against the trial farm),
:mod:`~mpi_qinfer.cli.bench.report` (ratios, targets, report, plot) and
:mod:`~mpi_qinfer.cli.bench.command` (the run and the command line). The public
names are re-exported here.
"""

from __future__ import annotations

from .cases import (
    MEMORY_FRACTION,
    METHODS,
    MODELS,
    OUTCOME_COUNTS,
    OUTCOMES,
    SPLITS,
    Case,
    Settings,
    outcomes_for,
    plan_cases,
    select,
)
from .command import add_arguments, build_parser, main, run
from .distributed import bench_distributed
from .loops import FloorLoop, PickleMapLoop
from .measure import CASE_SECTIONS, SLOW_CALL_SECONDS, bench_case
from .probes import ProcessTimeProbe, UnevenIsingModel
from .report import check_targets, format_report, plot_cases
from .sections import bench_balance, bench_design, bench_idle, bench_smc
from .timing import Timing, time_calls
from .trials import bench_trials

__all__ = [
    "METHODS",
    "Case",
    "Timing",
    "time_calls",
    "FloorLoop",
    "PickleMapLoop",
    "ProcessTimeProbe",
    "UnevenIsingModel",
    "plan_cases",
    "bench_case",
    "bench_smc",
    "bench_design",
    "bench_idle",
    "bench_balance",
    "bench_distributed",
    "bench_trials",
    "run",
    "format_report",
    "plot_cases",
    "add_arguments",
    "main",
    # Also public, as in the single-module version (not in its __all__):
    "OUTCOMES",
    "MEMORY_FRACTION",
    "MODELS",
    "SLOW_CALL_SECONDS",
    "CASE_SECTIONS",
    "Settings",
    "select",
    "check_targets",
    "build_parser",
    "OUTCOME_COUNTS",
    "SPLITS",
    "outcomes_for",
]
