"""The ``bench`` sub-command: the proxy against the serial model, the communication floor and a pickle map.

Run it under the launcher, e.g. ``mpiexec -n 2 python -m mpi_qinfer bench --quick``
(or ``python -m mpi_qinfer.bench``). One run measures, on the same data and
in the SMC update's call shape (one outcome, a float64 particle cloud, random
experiment times):

``serial``
    the serial model on the root alone: the cost the proxy must beat;
``proxy``
    :class:`~mpi_qinfer.MPIParallelizedModel` with ``serial_threshold=0``
    (every call in parallel);
``auto``
    the proxy with the default ``serial_threshold="auto"``, which must never
    be slower than ``serial`` (it may run small calls serially);
``floor``
    the same Bcast / Scatterv / Gatherv sequence written directly against
    mpi4py's buffer interface in this module (:class:`FloorLoop`): no
    validation, no header protocol, no derived datatypes, no status gather.
    What is left when everything the proxy adds is taken away;
``pickle``
    a pickle-based map (:class:`PickleMapLoop`): lowercase ``bcast`` /
    ``scatter`` of ``np.array_split`` chunks / ``gather`` / ``np.concatenate``,
    what users write without this package.

Then, in separate sections: an end-to-end SMC run of the costly model (serial
versus proxy, final particles compared bitwise), the cost of the two idle-wait
modes (per-call latency, and the CPU an idle worker burns per wall second,
read with :class:`ProcessTimeProbe`), and load balancing with one rank made
three times slower (:class:`UnevenIsingModel`, ``balance="even"`` versus
``"adaptive"``).

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

Every call is timed with :func:`time_calls`: warm-up calls are discarded,
then calls are repeated until enough time or repeats have accumulated; the
median, minimum and maximum per call are kept.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .distributions import UniformDistribution
from .engine import Engine
from .heuristics import PGH
from .models import IsingChainModel, SimplePrecessionModel
from .parallel import MPIParallelizedModel
from .protocol import Command
from .smc import SMCUpdater

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
    "bench_idle",
    "bench_balance",
    "run",
    "format_report",
    "plot_cases",
    "add_arguments",
    "main",
]

#: The methods of the per-case table, in the order they are measured.
METHODS = ("serial", "proxy", "auto", "floor", "pickle")
#: The outcomes of every call: one, as in an SMC update.
OUTCOMES = np.array([0], dtype=np.int64)
#: Largest fraction of the node's memory a case may need before it is skipped.
MEMORY_FRACTION = 0.25
#: The experiments, where the costly model is the 3-qubit Ising chain.
MODELS = {
    "cheap": ("SimplePrecessionModel()", SimplePrecessionModel),
    "costly": ("IsingChainModel(n_qubits=3)", lambda: IsingChainModel(n_qubits=3)),
}


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ====================================================================== timing
@dataclass
class Timing:
    """Per-call wall times of one method on one case.

    Attributes
    ----------
    times : list of float
        Seconds of every timed call (warm-up calls not included).
    warmup : int
        Calls made and discarded before timing (over all rounds).
    """

    times: list
    warmup: int

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return float(np.median(self.times))

    @property
    def min(self) -> float:
        """Fastest call, in seconds."""
        return float(min(self.times))

    @property
    def max(self) -> float:
        """Slowest call, in seconds."""
        return float(max(self.times))

    @classmethod
    def merge(cls, timings) -> "Timing":
        """One timing from the samples of several rounds."""
        timings = list(timings)
        return cls([t for timing in timings for t in timing.times], sum(t.warmup for t in timings))

    def as_dict(self, method: str) -> dict:
        """The JSON fields ``<method>_median_s``, ``_min_s``, ``_max_s`` and ``_repeats``."""
        return {
            f"{method}_median_s": self.median,
            f"{method}_min_s": self.min,
            f"{method}_max_s": self.max,
            f"{method}_repeats": len(self.times),
        }


def time_calls(call, *, warmup: int = 2, min_seconds: float = 0.3, min_repeats: int = 5,
               max_repeats: int = 50, max_seconds: float = 5.0, check=None) -> Timing:
    """Time ``call()``: discard ``warmup`` calls, then repeat it and keep every call's time.

    Repeats stop once at least ``min_repeats`` calls took ``min_seconds`` in
    all, or after ``max_repeats`` calls, or -- for slow calls -- once three or
    more took ``max_seconds``.

    Parameters
    ----------
    call : callable
        Takes no argument; its result is dropped at once (only the first is
        looked at, by ``check``).
    warmup : int
        Calls made before timing (at least one: the first result goes to ``check``).
    min_seconds, min_repeats, max_repeats, max_seconds
        The stopping rule above.
    check : callable, optional
        Given the first warm-up call's result (e.g. to compare it bitwise).

    Returns
    -------
    Timing
    """
    for index in range(max(warmup, 1)):
        result = call()
        if index == 0 and check is not None:
            check(result)
        del result
    times = []
    total = 0.0
    while True:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        total += times[-1]
        if len(times) >= max_repeats:
            break
        if len(times) >= min_repeats and total >= min_seconds:
            break
        if len(times) >= 3 and total >= max_seconds:
            break
    return Timing(times, max(warmup, 1))


#: A case whose first serial call takes longer than this runs in one round.
SLOW_CALL_SECONDS = 0.25


@dataclass
class Settings:
    """How long and how big: from the command line, the same on every rank.

    The timing budget of a case (``min_seconds``, 5 to 50 repeats,
    ``max_seconds`` for slow calls) is shared between ``rounds`` rounds; in
    each round every method is measured once, in a rotated order, so that a
    machine whose load drifts affects all methods alike.
    """

    quick: bool = False
    seed: int = 1234
    rounds: int = 3
    min_seconds: float = 0.3
    max_seconds: float = 5.0
    idle_seconds: float = 1.0
    smc_particles: int = 2000
    smc_experiments: int = 40
    smc_repeats: int = 3
    balance_particles: int = 20_000

    @classmethod
    def from_args(cls, args) -> "Settings":
        """Defaults for ``--quick`` or the full run, overridden by explicit options."""
        s = cls(quick=bool(args.quick), seed=args.seed, idle_seconds=args.idle_seconds)
        if s.quick:
            s.max_seconds, s.smc_particles, s.smc_experiments, s.smc_repeats = 1.0, 1000, 20, 2
            s.balance_particles = 10_000
        for name in ("rounds", "smc_particles", "smc_experiments"):
            if getattr(args, name, None) is not None:
                setattr(s, name, getattr(args, name))
        return s

    def timing(self, rounds: int = 1, **overrides) -> dict:
        """Keyword arguments of :func:`time_calls` for one of ``rounds`` rounds."""
        return {
            "min_seconds": self.min_seconds / rounds,
            "min_repeats": math.ceil(5 / rounds),
            "max_repeats": max(50 // rounds, 1),
            "max_seconds": self.max_seconds / rounds,
            **overrides,
        }


# ====================================================================== cases
@dataclass
class Case:
    """One likelihood call shape: a model and a cloud of ``n_particles`` times ``n_exp`` experiments."""

    model: str
    n_particles: int
    n_exp: int
    skip: str | None = None

    @property
    def name(self) -> str:
        """E.g. ``cheap-1e4x100``."""
        return f"{self.model}-{_sci(self.n_particles)}x{self.n_exp}"

    def make_model(self):
        """A fresh serial model of this case's kind."""
        return MODELS[self.model][1]()

    def data(self, seed: int):
        """The call's ``(outcomes, modelparams, expparams)``, from a seeded generator."""
        model = self.make_model()
        rng = np.random.default_rng([seed, self.n_particles, self.n_exp, len(self.model)])
        modelparams = rng.uniform(0.0, 1.0, (self.n_particles, model.n_modelparams))
        expparams = np.empty(self.n_exp, dtype=model.expparams_dtype)
        expparams[:] = rng.uniform(0.0, 20.0, self.n_exp)
        return OUTCOMES.copy(), modelparams, expparams

    def memory_bytes(self) -> int:
        """A generous estimate of the node's peak memory while this case runs.

        Six results' worth (the serial reference, the answer, the model's
        temporaries, and the pickle map's pickled and unpickled copies) plus
        three copies of the particles.
        """
        n_mp = 1 if self.model == "cheap" else 2
        result = 8 * self.n_particles * self.n_exp * len(OUTCOMES)
        return 6 * result + 3 * 8 * self.n_particles * n_mp


def _sci(n: int) -> str:
    exponent = int(round(math.log10(n))) if n > 0 else 0
    return f"1e{exponent}" if n == 10**exponent else str(n)


def _total_memory() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def plan_cases(quick: bool, total_memory: int | None = None) -> list[Case]:
    """The per-case table's rows, with a ``skip`` reason for any too big for this node.

    Parameters
    ----------
    quick : bool
        Leave out the biggest cases (cheap 1e6 x 100, costly 1e5).
    total_memory : int, optional
        Bytes of memory of the node; default read from ``/proc/meminfo``.

    Returns
    -------
    list of Case
    """
    cases = []
    for n_exp in (1, 100):
        for n in (10**3, 10**4, 10**5, 10**6):
            if quick and n * n_exp > 10**7:
                continue
            cases.append(Case("cheap", n, n_exp))
    for n in (10**3, 10**4, 10**5):
        if quick and n > 10**4:
            continue
        cases.append(Case("costly", n, 1))
    total = _total_memory() if total_memory is None else total_memory
    if total:
        for case in cases:
            need = case.memory_bytes()
            if need > MEMORY_FRACTION * total:
                case.skip = (f"needs about {need / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} "
                             f"of this node's {total / 2**30:.1f} GiB")
    return cases


def select(names, patterns) -> set:
    """The names chosen by ``--cases``: each pattern picks the name equal to it, else every name containing it.

    Parameters
    ----------
    names : iterable of str
    patterns : list of str or None
        None chooses everything.

    Returns
    -------
    set of str
    """
    names = list(names)
    if not patterns:
        return set(names)
    chosen = set()
    for pattern in patterns:
        if pattern in names:
            chosen.add(pattern)
        else:
            chosen.update(name for name in names if pattern in name)
    return chosen


# ====================================================================== models used by sections
class ProcessTimeProbe(SimplePrecessionModel):
    """A model whose likelihood is the CPU time (``time.process_time()``) of the rank computing it.

    Through a proxy with one particle row per rank, row ``r`` of the answer
    is rank ``r``'s CPU time: how the root reads every rank's clock.
    """

    def likelihood(self, outcomes, modelparams, expparams):
        """Every entry is this process's CPU seconds so far."""
        shape = (len(outcomes), len(modelparams), len(expparams))
        return np.full(shape, time.process_time(), dtype=np.float64)


class UnevenIsingModel(IsingChainModel):
    """The Ising chain, computed ``slowdown`` times per call: a rank ``slowdown`` times slower.

    The last computation is returned, so the answer stays bitwise that of
    :class:`~mpi_qinfer.models.IsingChainModel`.

    Parameters
    ----------
    n_qubits : int
    slowdown : int
        How many times each call computes the likelihood.
    """

    def __init__(self, n_qubits: int = 3, slowdown: int = 1):
        super().__init__(n_qubits)
        self.slowdown = int(slowdown)

    def likelihood(self, outcomes, modelparams, expparams):
        """The Ising likelihood, computed :attr:`slowdown` times."""
        for _ in range(self.slowdown):
            answer = super().likelihood(outcomes, modelparams, expparams)
        return answer


# ====================================================================== hand-written loops
class _WorkerLoop:
    """A root-driven command loop on its own duplicate of ``comm`` (construction is collective).

    Used like the proxy: ``with Loop(comm, model) as loop:`` -- workers serve
    inside ``__enter__`` and skip the body with ``if loop.is_root:``; leaving
    the block on the root releases them and frees the communicator.
    """

    def __init__(self, comm, model, root: int = 0):
        self.comm = comm.Dup()
        self.model = model
        self.root = root
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._closed = False

    @property
    def is_root(self) -> bool:
        """Whether this rank drives the loop."""
        return self.rank == self.root

    def serve(self) -> None:
        """Workers: answer the root's calls until it closes the loop, then free the communicator."""
        try:
            while self._serve_one():
                pass
        finally:
            self._free()

    def close(self) -> None:
        """Root: end the workers' loop and free the communicator (idempotent)."""
        if self.is_root and not self._closed:
            try:
                self._send_stop()
            finally:
                self._free()

    def _free(self) -> None:
        if not self._closed:
            self._closed = True
            self.comm.Free()

    def __enter__(self):
        if not self.is_root:
            self.serve()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def _serve_one(self) -> bool:
        raise NotImplementedError

    def _send_stop(self) -> None:
        raise NotImplementedError


class FloorLoop(_WorkerLoop):
    """The proxy's collectives written directly against mpi4py's buffer interface: the floor.

    One call: ``Bcast`` an ``int64[8]`` header (command, ``n_models``,
    ``n_modelparams``, ``n_exp``, ``n_outcomes`` and up to three outcomes
    inline), ``Bcast`` the raw expparams bytes, ``Scatterv`` the float64
    particle rows (counts in elements, even split, the root's share in
    place), compute the local likelihood, ``Gatherv`` the ``(n_local,
    n_outcomes, n_exp)`` float64 answers into an ``(n_models, n_outcomes,
    n_exp)`` buffer on the root, returned as a transposed view. No checks,
    no error handling: a model error on a worker kills the job.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    """

    MAX_OUTCOMES = 3

    def __init__(self, comm, model, root: int = 0):
        super().__init__(comm, model, root)
        self._header = np.zeros(8, dtype=np.int64)
        self._plans = {}

    def _plan(self, n_models: int, n_mp: int, n_exp: int):
        """Counts and displacements (in elements) of the scatter and the gather, cached by shape."""
        key = (n_models, n_mp, n_exp)
        plan = self._plans.get(key)
        if plan is None:
            rows = np.full(self.size, n_models // self.size, dtype=np.int64)
            rows[: n_models % self.size] += 1
            starts = np.concatenate(([0], np.cumsum(rows)[:-1]))
            expparams = np.empty(n_exp, dtype=self.model.expparams_dtype)
            plan = self._plans[key] = (rows, starts, expparams)
        return plan

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes`` (at most three int64), all ranks computing.

        ``modelparams`` must be a C-contiguous float64 ``(n_models,
        n_modelparams)`` array and ``expparams`` a contiguous array of the
        model's dtype.
        """
        n_out = len(outcomes)
        if n_out > self.MAX_OUTCOMES:
            raise ValueError(f"the floor carries at most {self.MAX_OUTCOMES} outcomes in its header")
        n_models, n_mp = modelparams.shape
        h = self._header
        h[:5] = (1, n_models, n_mp, len(expparams), n_out)
        h[5 : 5 + n_out] = outcomes
        self.comm.Bcast(h, self.root)
        return self._call(outcomes, modelparams, expparams)

    def _call(self, outcomes, modelparams, expparams):
        comm, root, rank = self.comm, self.root, self.rank
        h = self._header
        n_models, n_mp, n_exp, n_out = (int(v) for v in h[1:5])
        rows, starts, buffer = self._plan(n_models, n_mp, n_exp)
        if expparams is None:
            expparams = buffer
        comm.Bcast([expparams.view(np.uint8), MPI.BYTE], root)
        mine = int(rows[rank])
        if self.is_root:
            comm.Scatterv([modelparams, rows * n_mp, starts * n_mp, MPI.DOUBLE], MPI.IN_PLACE, root)
            local = modelparams[starts[rank] : starts[rank] + mine]
        else:
            outcomes = h[5 : 5 + n_out].copy()
            local = np.empty((mine, n_mp), dtype=np.float64)
            comm.Scatterv(None, [local, MPI.DOUBLE], root)
        answer = self.model.likelihood(outcomes, local, expparams)
        send = np.ascontiguousarray(answer.transpose(1, 0, 2), dtype=np.float64)
        block = n_out * n_exp
        if not self.is_root:
            comm.Gatherv([send, MPI.DOUBLE], None, root)
            return None
        gathered = np.empty((n_models, n_out, n_exp), dtype=np.float64)
        comm.Gatherv([send, MPI.DOUBLE], [gathered, rows * block, starts * block, MPI.DOUBLE], root)
        return gathered.transpose(1, 0, 2)

    def _serve_one(self) -> bool:
        self.comm.Bcast(self._header, self.root)
        if self._header[0] == 0:
            return False
        self._call(None, None, None)
        return True

    def _send_stop(self) -> None:
        self._header[:] = 0
        self.comm.Bcast(self._header, self.root)


class PickleMapLoop(_WorkerLoop):
    """A pickle-based map over the particle rows: mpi4py's lowercase collectives.

    One call: ``bcast`` of ``(outcomes, expparams)``, ``scatter`` of
    ``np.array_split(modelparams, size)``, compute, ``gather`` of the answers,
    ``np.concatenate`` along the models axis on the root. What a user writes
    without this package (and close to what ``mpi4py.futures`` or
    ipyparallel's map do per call).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Duplicated; the duplicate is freed by :meth:`close` / :meth:`serve`.
    model : Model
        This rank's serial model.
    root : int
    """

    def likelihood(self, outcomes, modelparams, expparams):
        """Root: the likelihood of ``outcomes``, all ranks computing."""
        self.comm.bcast((outcomes, expparams), self.root)
        return self._call(outcomes, expparams, np.array_split(modelparams, self.size))

    def _call(self, outcomes, expparams, chunks):
        local = self.comm.scatter(chunks, self.root)
        answer = self.model.likelihood(outcomes, local, expparams)
        parts = self.comm.gather(answer, self.root)
        return None if parts is None else np.concatenate(parts, axis=1)

    def _serve_one(self) -> bool:
        message = self.comm.bcast(None, self.root)
        if message is None:
            return False
        self._call(*message, None)
        return True

    def _send_stop(self) -> None:
        self.comm.bcast(None, self.root)


# ====================================================================== sections
def _compare(results: dict, method: str, reference):
    """A ``check`` for :func:`time_calls`: record whether ``method`` matched ``reference`` bitwise."""

    def check(answer):
        equal = bool(np.array_equal(np.asarray(answer), reference))
        results[f"{method}_equal"] = equal
        if not equal:
            _log(f"!!! BITWISE MISMATCH: {method} differs from the serial model on {results['name']} !!!")

    return check


def _auto_choice(proxy, work: int) -> str:
    """Which path the ``auto`` proxy settled on for calls of ``work`` evaluations."""
    if proxy.n_engines == 1:
        return "serial (1 rank)"
    return proxy.threshold_policy.choice(int(Command.LIKELIHOOD), work)


def _ratios(row: dict) -> None:
    """Add the ratios of the medians to a case's row (where both methods were measured)."""

    def med(method):
        return row.get(f"{method}_median_s")

    def ratio(a, b):
        return None if med(a) is None or med(b) is None else med(a) / med(b)

    row["proxy_over_floor"] = ratio("proxy", "floor")
    row["proxy_minus_floor_us"] = None if med("floor") is None else 1e6 * (med("proxy") - med("floor"))
    row["proxy_over_serial"] = ratio("proxy", "serial")
    row["auto_over_serial"] = ratio("auto", "serial")
    row["pickle_over_proxy"] = ratio("pickle", "proxy")
    row["speedup"] = ratio("serial", "proxy")


def _measure_serial(comm, model, data, row, reference, timing) -> dict:
    """The serial model on the root alone (the workers do nothing)."""
    if comm.Get_rank() != 0:
        return {}
    outcomes, modelparams, expparams = data
    return {"serial": time_calls(lambda: model.likelihood(outcomes, modelparams, expparams), **timing)}


def _measure_proxies(comm, model, data, row, reference, timing) -> dict:
    """The always-parallel proxy and the auto proxy, sharing one engine (one worker loop serves both)."""
    engine = Engine(comm)
    proxies = {"proxy": MPIParallelizedModel(model, serial_threshold=0, engine=engine),
               "auto": MPIParallelizedModel(model, engine=engine)}
    timings = {}
    with engine:
        if engine.is_root:
            outcomes, modelparams, expparams = data
            for method, proxy in proxies.items():
                check = _compare(row, method, reference) if reference is not None else None
                timings[method] = time_calls(lambda proxy=proxy: proxy.likelihood(outcomes, modelparams, expparams),
                                             check=check, **timing)
            row["auto_choice"] = _auto_choice(proxies["auto"], len(modelparams) * len(expparams))
            row["idle"] = engine.idle
    return timings


def _measure_loop(loop_class, method):
    """A section measuring one of the hand-written loops (:class:`FloorLoop`, :class:`PickleMapLoop`)."""

    def measure(comm, model, data, row, reference, timing) -> dict:
        with loop_class(comm, model) as loop:
            if not loop.is_root:
                return {}
            outcomes, modelparams, expparams = data
            check = _compare(row, method, reference) if reference is not None else None
            return {method: time_calls(lambda: loop.likelihood(outcomes, modelparams, expparams),
                                       check=check, **timing)}

    return measure


#: The sections of one case's round, in their first round's order (later rounds rotate it).
CASE_SECTIONS = (_measure_serial, _measure_proxies, _measure_loop(FloorLoop, "floor"),
                 _measure_loop(PickleMapLoop, "pickle"))


def bench_case(comm, case: Case, settings: Settings) -> dict | None:
    """Time every method on one case (collective over ``comm``).

    The methods are measured in ``settings.rounds`` rounds (one for a slow
    case), each in a rotated order; every method's first answer is compared
    with the serial model's bitwise.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    case : Case
    settings : Settings

    Returns
    -------
    dict or None
        The case's row on the root (timings, ratios, bitwise checks); None elsewhere.
    """
    is_root = comm.Get_rank() == 0
    model = case.make_model()
    row = data = reference = rounds = None
    if is_root:
        row = {"name": case.name, "model": case.model, "model_class": MODELS[case.model][0],
               "n_particles": case.n_particles, "n_exp": case.n_exp, "n_outcomes": len(OUTCOMES)}
        data = case.data(settings.seed)
        start = time.perf_counter()
        reference = model.likelihood(*data)
        rounds = settings.rounds if time.perf_counter() - start < SLOW_CALL_SECONDS else 1
    rounds = comm.bcast(rounds, 0)
    timing = settings.timing(rounds)
    samples = {method: [] for method in METHODS}
    for round_ in range(rounds):
        order = CASE_SECTIONS[round_ % len(CASE_SECTIONS):] + CASE_SECTIONS[: round_ % len(CASE_SECTIONS)]
        for section in order:
            measured = section(comm, model, data, row, reference if round_ == 0 else None, timing)
            for method, timing_ in measured.items():
                samples[method].append(timing_)
    if not is_root:
        return None
    del reference
    row["rounds"] = rounds
    for method, timings in samples.items():
        row.update(Timing.merge(timings).as_dict(method))
    row["bitwise_equal"] = all(row[f"{m}_equal"] for m in METHODS if f"{m}_equal" in row)
    _ratios(row)
    return row


def _smc_run(model, settings: Settings) -> dict:
    """One SMC estimation of the Ising couplings on ``model`` (root only); seeded, so repeatable.

    The data are simulated by a serial Ising model from the fixed seed, the
    experiments chosen by the particle guess heuristic from the updater's
    own seeded generator.
    """
    prior = UniformDistribution([[0.0, 1.0], [0.0, 1.0]])
    truth_seed, data_seed, updater_seed = np.random.SeedSequence(settings.seed).spawn(3)
    truth = prior.sample(1, rng=np.random.default_rng(truth_seed))
    true_model = IsingChainModel(n_qubits=3)
    true_model.rng = np.random.default_rng(data_seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        updater = SMCUpdater(model, settings.smc_particles, prior, rng=np.random.default_rng(updater_seed))
        design = PGH(updater, inv_field=None)
        for _ in range(settings.smc_experiments):
            expparams = design()
            outcome = true_model.simulate_experiment(truth, expparams)
            updater.update(outcome, expparams)
        wall = time.perf_counter() - start
    return {"seconds": wall, "locations": updater.particle_locations.copy(),
            "weights": updater.particle_weights.copy(), "warnings": len(caught),
            "estimate": updater.est_mean().tolist(), "truth": truth[0].tolist()}


def bench_smc(comm, settings: Settings) -> dict | None:
    """End-to-end SMC on the costly model: serial versus proxy versus auto (collective).

    Each way runs ``settings.smc_repeats`` times from the same seeds, the
    ways interleaved; the final particle locations and weights of the proxy
    and auto runs must equal the serial run's bitwise.

    Returns
    -------
    dict or None
        On the root: per way the median and minimum wall seconds, the
        speedups and the bitwise verdict; None elsewhere.
    """
    is_root = comm.Get_rank() == 0
    serial_model = IsingChainModel(n_qubits=3)
    engine = Engine(comm)
    proxy = MPIParallelizedModel(serial_model, serial_threshold=0, engine=engine)
    auto = MPIParallelizedModel(serial_model, engine=engine)
    with engine:
        if not is_root:
            return None
        ways = {"serial": serial_model, "proxy": proxy, "auto": auto}
        runs = {name: [] for name in ways}
        for _ in range(settings.smc_repeats):
            for name, model in ways.items():
                runs[name].append(_smc_run(model, settings))
    reference = runs["serial"][0]
    result = {"model": MODELS["costly"][0], "n_particles": settings.smc_particles,
              "n_experiments": settings.smc_experiments, "heuristic": "PGH", "seed": settings.seed,
              "repeats": settings.smc_repeats, "estimate": reference["estimate"], "truth": reference["truth"],
              "warnings": reference["warnings"]}
    equal = True
    for name, done in runs.items():
        seconds = [run_["seconds"] for run_ in done]
        result[f"{name}_median_s"] = float(np.median(seconds))
        result[f"{name}_min_s"] = float(min(seconds))
        same = all(np.array_equal(r["locations"], reference["locations"])
                   and np.array_equal(r["weights"], reference["weights"]) for r in done)
        result[f"{name}_equal"] = same
        equal &= same
        if not same:
            _log(f"!!! BITWISE MISMATCH: the SMC run through {name} ended on different particles !!!")
    result["bitwise_equal"] = equal
    result["speedup"] = result["serial_median_s"] / result["proxy_median_s"]
    result["auto_speedup"] = result["serial_median_s"] / result["auto_median_s"]
    return result


def _idle_burn(probe, size: int, seconds: float) -> list[float]:
    """CPU seconds each rank burns per wall second while the root sleeps ``seconds`` (root)."""
    modelparams = np.zeros((size, 1))
    expparams = np.zeros(1)
    start = time.perf_counter()
    before = probe.likelihood(OUTCOMES, modelparams, expparams)[0, :, 0]
    time.sleep(seconds)
    after = probe.likelihood(OUTCOMES, modelparams, expparams)[0, :, 0]
    wall = time.perf_counter() - start
    return ((after - before) / wall).tolist()


def bench_idle(comm, settings: Settings) -> dict | None:
    """The two idle-wait modes: latency of a small call, and the CPU an idle worker burns (collective).

    The latency is measured in ``settings.rounds`` rounds alternating the
    modes; the CPU burn once per mode.

    Returns
    -------
    dict or None
        On the root: per mode the median/min/max latency of a cheap 1e3 x 1
        call through the proxy and the CPU seconds per wall second of every
        rank while the root sleeps; None elsewhere.
    """
    is_root = comm.Get_rank() == 0
    size = comm.Get_size()
    case = Case("cheap", 1000, 1)
    data = case.data(settings.seed) if is_root else None
    modes = ("spin", "backoff")
    latencies = {mode: [] for mode in modes}
    burns = {}
    for round_ in range(settings.rounds):
        for mode in modes if round_ % 2 == 0 else modes[::-1]:
            engine = Engine(comm, idle=mode)
            proxy = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0, engine=engine)
            probe = MPIParallelizedModel(ProcessTimeProbe(), serial_threshold=0, engine=engine)
            with engine:
                if is_root:
                    latencies[mode].append(time_calls(lambda proxy=proxy: proxy.likelihood(*data),
                                                      **settings.timing(settings.rounds)))
                    if mode not in burns:
                        burns[mode] = _idle_burn(probe, size, settings.idle_seconds)
    if not is_root:
        return None
    result = {"case": case.name, "sleep_s": settings.idle_seconds}
    for mode in modes:
        workers = [value for rank, value in enumerate(burns[mode]) if rank != 0]
        result[mode] = {
            **Timing.merge(latencies[mode]).as_dict("latency"),
            "cpu_per_wall_by_rank": burns[mode],
            "worker_cpu_per_wall": float(np.mean(workers)) if workers else None,
        }
    if size > 1:
        result["backoff_over_spin_latency"] = result["backoff"]["latency_median_s"] / result["spin"]["latency_median_s"]
    return result


def bench_balance(comm, settings: Settings) -> dict | None:
    """Load balancing with rank 1 three times slower: ``balance="even"`` versus ``"adaptive"`` (collective).

    Every rank runs :class:`UnevenIsingModel`, with ``slowdown=3`` on rank 1
    and 1 elsewhere; after warm-up calls (which let the adaptive policy
    measure the ranks) both proxies are timed on the same costly call.

    Returns
    -------
    dict or None
        On the root: medians, the gain ``even/adaptive``, the adaptive
        shares and the bitwise verdict; None elsewhere.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    is_root = rank == 0
    case = Case("costly", settings.balance_particles, 1)
    result = None
    if is_root:
        result = {"case": case.name, "slow_rank": 1 if size > 1 else None, "slowdown": 3,
                  "n_particles": case.n_particles}
        outcomes, modelparams, expparams = case.data(settings.seed)
        reference = IsingChainModel(n_qubits=3).likelihood(outcomes, modelparams, expparams)
    for balance in ("even", "adaptive"):
        model = UnevenIsingModel(3, slowdown=3 if rank == 1 else 1)
        with MPIParallelizedModel(model, comm, serial_threshold=0, balance=balance) as proxy:
            if is_root:
                result["name"] = case.name
                measured = time_calls(lambda proxy=proxy: proxy.likelihood(outcomes, modelparams, expparams),
                                      warmup=6, check=_compare(result, balance, reference), **settings.timing())
                result.update(measured.as_dict(balance))
                shares = proxy.balance.shares
                result[f"{balance}_shares"] = None if shares is None else shares.tolist()
    if not is_root:
        return None
    result["bitwise_equal"] = result["even_equal"] and result["adaptive_equal"]
    result["gain"] = result["even_median_s"] / result["adaptive_median_s"]
    # With rank 1 slowed by s: even takes the slow rank's time, adaptive the balanced one.
    result["ideal_gain"] = _ideal_balance_gain(size, 3)
    return result


def _ideal_balance_gain(size: int, slowdown: float) -> float:
    if size < 2:
        return 1.0
    speeds = np.ones(size)
    speeds[1] = 1.0 / slowdown
    even = (1.0 / size) / speeds.min()
    balanced = 1.0 / speeds.sum()
    return float(even / balanced)


# ====================================================================== the run
def _environment(comm) -> dict:
    import mpi4py

    from . import __version__

    hosts = comm.gather(socket.gethostname(), 0)
    return {
        "ranks": comm.Get_size(),
        "mpi_library": MPI.Get_library_version().strip().splitlines()[0].strip(),
        "mpi_version": "%d.%d" % MPI.Get_version(),
        "host": socket.gethostname(),
        "hosts": sorted(set(hosts)) if hosts else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mpi4py": mpi4py.__version__,
        "mpi_qinfer": __version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def run(settings: Settings, patterns=None, comm=None) -> dict | None:
    """Run the benchmark (collective over ``comm``).

    Parameters
    ----------
    settings : Settings
    patterns : list of str, optional
        ``--cases``: which cases and sections to run (see :func:`select`).
        Sections are named ``smc``, ``idle`` and ``balance``.
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``; duplicated for the benchmark's own messages.

    Returns
    -------
    dict or None
        The whole result (what ``--json`` writes) on the root; None elsewhere.
    """
    world = MPI.COMM_WORLD if comm is None else comm
    comm = world.Dup()
    try:
        is_root = comm.Get_rank() == 0
        environment = _environment(comm)
        cases = plan_cases(settings.quick) if is_root else None
        cases = comm.bcast(cases, 0)
        chosen = select([c.name for c in cases] + ["smc", "idle", "balance"], patterns)
        result = None
        if is_root:
            result = {**environment, "quick": settings.quick, "seed": settings.seed,
                      "cases": [], "skipped": [], "smc": None, "idle": None, "balance": None}
            if comm.Get_size() == 1:
                result["note"] = ("1 rank: the proxy and auto run the serial model on the root (the engine has "
                                  "no workers), floor and pickle run their collectives on one rank; the ratios "
                                  "show overhead only, no speedup is possible")
        for case in cases:
            if case.name not in chosen:
                continue
            if case.skip:
                if is_root:
                    _log(f"skipping {case.name}: {case.skip}")
                    result["skipped"].append({"name": case.name, "reason": case.skip})
                continue
            if is_root:
                _log(f"{case.name} ...")
            row = bench_case(comm, case, settings)
            if is_root:
                result["cases"].append(row)
        for name, section in (("smc", bench_smc), ("idle", bench_idle), ("balance", bench_balance)):
            if name in chosen:
                if is_root:
                    _log(f"{name} ...")
                result_part = section(comm, settings)
                if is_root:
                    result[name] = result_part
        if is_root:
            result["all_bitwise_equal"] = _all_equal(result)
            result["targets"] = check_targets(result)
        return result
    finally:
        comm.Free()


def _all_equal(result: dict) -> bool:
    parts = list(result["cases"]) + [result[name] for name in ("smc", "balance") if result.get(name)]
    return all(part.get("bitwise_equal", True) for part in parts)


# ====================================================================== targets and report
def check_targets(result: dict) -> list[dict]:
    """The project's performance targets, each with the measured value and a verdict.

    The targets are stated for 2 ranks; on any other count the verdict is ``None``.

    Returns
    -------
    list of dict
        ``{"target", "case", "value", "limit", "met"}`` per checked case.
    """
    at_two = result["ranks"] == 2
    checks = []

    def add(target, case, value, limit, met):
        checks.append({"target": target, "case": case, "value": value, "limit": limit,
                       "met": bool(met) if at_two and value is not None else None})

    for row in result["cases"]:
        name = row["name"]
        if row["n_particles"] >= 10**4 and row.get("proxy_over_floor") is not None:
            add("proxy/floor <= 1.10 at >= 1e4 particles", name, row["proxy_over_floor"], 1.10,
                row["proxy_over_floor"] <= 1.10)
        if row["n_particles"] == 10**3 and row.get("proxy_minus_floor_us") is not None:
            add("proxy-floor <= 15 us at 1e3 particles", name, row["proxy_minus_floor_us"], 15.0,
                row["proxy_minus_floor_us"] <= 15.0)
        if row.get("auto_over_serial") is not None:
            add("auto/serial <= 1.05 at every size", name, row["auto_over_serial"], 1.05,
                row["auto_over_serial"] <= 1.05)
        if row["model"] == "costly" and row["n_particles"] >= 10**4:
            add("costly >= 1e4: serial/proxy >= 1.9", name, row["speedup"], 1.9, row["speedup"] >= 1.9)
    smc = result.get("smc")
    if smc:
        add("end-to-end SMC (costly): serial/proxy >= 1.8", "smc", smc["speedup"], 1.8, smc["speedup"] >= 1.8)
    return checks


def _seconds(value) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} us"
    if value < 1.0:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.3f} s"


def _number(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(result: dict) -> str:
    """The human-readable report: the per-case table, then the sections and the targets.

    Parameters
    ----------
    result : dict
        From :func:`run`.

    Returns
    -------
    str
    """
    lines = []
    out = lines.append
    out(f"mpi_qinfer bench: {result['ranks']} rank(s), {result['mpi_library']}")
    out(f"  host {result['host']}, {result['date']}, python {result['python']}, numpy {result['numpy']}, "
        f"mpi4py {result['mpi4py']}{', --quick' if result['quick'] else ''}")
    if result.get("note"):
        out(f"  NOTE: {result['note']}")
    out("  median seconds per likelihood call (1 outcome), methods interleaved in rounds; ratios of medians; "
        "speedup = serial/proxy")
    out("")
    columns = [("case", 15, "<"), *[(m, 10, ">") for m in METHODS], ("prx/floor", 9, ">"), ("prx-flr us", 10, ">"),
               ("prx/ser", 8, ">"), ("auto/ser", 8, ">"), ("pkl/prx", 8, ">"), ("speedup", 8, ">"),
               ("auto", 8, ">"), ("bitwise", 8, ">")]
    out("  ".join(f"{title:{align}{width}}" for title, width, align in columns))
    for row in result["cases"]:
        cells = [row["name"], *[_seconds(row.get(f"{m}_median_s")) for m in METHODS],
                 _number(row["proxy_over_floor"]), _number(row["proxy_minus_floor_us"], ".1f"),
                 _number(row["proxy_over_serial"]), _number(row["auto_over_serial"]),
                 _number(row["pickle_over_proxy"]), _number(row["speedup"]),
                 row.get("auto_choice", "-").split(" ")[0], "ok" if row["bitwise_equal"] else "MISMATCH"]
        out("  ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, columns)))
    for skipped in result["skipped"]:
        out(f"{skipped['name']:<15}  skipped: {skipped['reason']}")

    smc = result.get("smc")
    if smc:
        out("")
        out(f"end-to-end SMC: {smc['model']}, {smc['n_particles']} particles x {smc['n_experiments']} experiments, "
            f"{smc['heuristic']}, seed {smc['seed']}, median of {smc['repeats']} run(s)")
        out(f"  serial {_seconds(smc['serial_median_s'])}   proxy {_seconds(smc['proxy_median_s'])}   "
            f"auto {_seconds(smc['auto_median_s'])}   speedup serial/proxy {smc['speedup']:.2f}   "
            f"serial/auto {smc['auto_speedup']:.2f}   final particles bitwise equal: "
            f"{'yes' if smc['bitwise_equal'] else 'NO -- MISMATCH'}")
    idle = result.get("idle")
    if idle:
        out("")
        out(f"idle workers: latency of {idle['case']} through the proxy; CPU seconds per wall second "
            f"while the root sleeps {idle['sleep_s']} s (per rank, root first)")
        for mode in ("spin", "backoff"):
            m = idle[mode]
            burn = ", ".join(f"{v:.2f}" for v in m["cpu_per_wall_by_rank"])
            out(f"  {mode:<8} latency median {_seconds(m['latency_median_s'])} (min {_seconds(m['latency_min_s'])}, "
                f"max {_seconds(m['latency_max_s'])})   CPU/wall [{burn}]")
        if "backoff_over_spin_latency" in idle:
            out(f"  backoff/spin latency {idle['backoff_over_spin_latency']:.2f}")
    balance = result.get("balance")
    if balance:
        out("")
        shares = balance["adaptive_shares"]
        shares_text = "-" if shares is None else "[" + ", ".join(f"{s:.3f}" for s in shares) + "]"
        out(f"load balancing: {balance['case']}, rank {balance['slow_rank']} {balance['slowdown']}x slower")
        out(f"  even {_seconds(balance['even_median_s'])}   adaptive {_seconds(balance['adaptive_median_s'])}   "
            f"gain even/adaptive {balance['gain']:.2f} (ideal {balance['ideal_gain']:.2f})   adaptive shares "
            f"{shares_text}   bitwise: {'ok' if balance['bitwise_equal'] else 'MISMATCH'}")
    if result.get("targets"):
        out("")
        out("targets (stated for 2 ranks):")
        for check in result["targets"]:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
            out(f"  {verdict:<6} {check['target']:<46} {check['case']:<15} {_number(check['value'])}")
    out("")
    out("all answers bitwise equal to the serial model: "
        + ("yes" if result["all_bitwise_equal"] else "NO -- SEE MISMATCHES ABOVE"))
    return "\n".join(lines)


def plot_cases(result: dict, path) -> bool:
    """Save latency versus particles (log-log), one panel per model and ``n_exp``, one line per method.

    Parameters
    ----------
    result : dict
        From :func:`run`.
    path : str or os.PathLike

    Returns
    -------
    bool
        False (after printing why) when matplotlib is missing or there is nothing to plot.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("mpi_qinfer bench: matplotlib is not installed, no plot written (pip install 'mpi_qinfer[plot]')")
        return False
    panels = sorted({(row["model"], row["n_exp"]) for row in result["cases"]})
    if not panels:
        print("mpi_qinfer bench: no case measured, no plot written")
        return False
    # A bare Figure needs no pyplot: no global backend or GUI state is touched.
    fig = Figure(figsize=(5 * len(panels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (model, n_exp) in zip(axes, panels):
        rows = sorted((r for r in result["cases"] if (r["model"], r["n_exp"]) == (model, n_exp)),
                      key=lambda r: r["n_particles"])
        x = np.array([r["n_particles"] for r in rows], dtype=float)
        for method in METHODS:
            med = np.array([r.get(f"{method}_median_s", np.nan) for r in rows], dtype=float)
            low = med - np.array([r.get(f"{method}_min_s", np.nan) for r in rows], dtype=float)
            high = np.array([r.get(f"{method}_max_s", np.nan) for r in rows], dtype=float) - med
            ax.errorbar(x, med, yerr=[low, high], marker="o", markersize=4, capsize=2, label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("particles")
        ax.set_ylabel("seconds per call (median, min-max)")
        ax.set_title(f"{MODELS[model][0]}, {n_exp} experiment(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"mpi_qinfer bench, {result['ranks']} rank(s), {result['host']}")
    fig.savefig(path, dpi=100)
    return True


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ====================================================================== command line
def _case_patterns(text: str) -> list[str]:
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError("give at least one case name or substring")
    return patterns


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return parse


def add_arguments(parser) -> None:
    """Add ``bench``'s options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.epilog = ("Example: `mpiexec -n 2 python -m mpi_qinfer bench --quick --json bench.json --plot bench.png`. "
                     "Cases are named like cheap-1e4x100 and costly-1e3x1; the sections are smc, idle and balance.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller cases and shorter runs (no cheap-1e6x100, no costly-1e5x1)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write every number to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="plot latency versus particles (needs matplotlib)")
    parser.add_argument("--cases", type=_case_patterns, default=None, metavar="LIST",
                        help="comma-separated case or section names, or substrings of them "
                        "(e.g. 'cheap-1e3x1,costly,smc'); default: everything")
    parser.add_argument("--seed", type=int, default=1234, help="seed of all data (default: %(default)s)")
    parser.add_argument("--rounds", type=_positive(int), default=None,
                        help="rounds per case, each measuring every method once in a rotated order "
                        "(default: 3; cases whose serial call takes over 0.25 s use 1)")
    parser.add_argument("--idle-seconds", type=_positive(float), default=1.0,
                        help="how long the root sleeps while idle workers' CPU is measured (default: %(default)s)")
    parser.add_argument("--smc-particles", type=_positive(int), default=None,
                        help="particles of the end-to-end SMC run (default: 2000, --quick 1000)")
    parser.add_argument("--smc-experiments", type=_positive(int), default=None,
                        help="experiments of the end-to-end SMC run (default: 40, --quick 20)")


def main(args, comm=None) -> int:
    """Run the benchmark with the options in ``args``; print the report on the root.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser built with :func:`add_arguments`.
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    int
        0, or 1 when any answer differed from the serial model's (the same on every rank).
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    settings = Settings.from_args(args)
    try:
        result = run(settings, args.cases, comm)
    except BaseException:
        if comm.Get_size() > 1:
            # The other ranks may be waiting in a collective the root will never reach.
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise
    status = 0
    if result is not None:
        print(format_report(result), flush=True)
        if args.json is not None:
            with open(args.json, "w") as out:
                json.dump(result, out, indent=1, default=_jsonable)
            print(f"JSON written to {args.json}")
        if args.plot is not None and plot_cases(result, args.plot):
            print(f"plot written to {args.plot}")
        status = 0 if result["all_bitwise_equal"] else 1
    return int(comm.bcast(status, 0))


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m mpi_qinfer.bench``."""
    parser = argparse.ArgumentParser(prog="python -m mpi_qinfer.bench", description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(main(build_parser().parse_args()))
