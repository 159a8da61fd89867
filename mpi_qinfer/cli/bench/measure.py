"""One case's row of the table: every method timed on the same data in rotated rounds, answers checked bitwise."""

from __future__ import annotations

import time

import numpy as np

from ...engine.core import Engine
from ...engine.protocol import Command, Split
from ...parallel.proxy import MPIParallelizedModel
from .cases import METHODS, MODELS, Case, Settings
from .loops import FloorLoop, PickleMapLoop
from .report import log, ratios
from .timing import Timing, time_calls

__all__ = ["bench_case", "compare"]

#: A case whose first serial call takes longer than this runs in one round.
SLOW_CALL_SECONDS = 0.25
#: Warm-up calls of the ``auto`` proxy: its exploration of a new size class (one
#: discarded parallel call, two measured ones, one serial) is a one-time cost per
#: class, amortised over an SMC run's thousands of calls; the timed calls are the
#: steady state, re-checks of the other path included.
AUTO_WARMUP = 4


def compare(results: dict, method: str, reference):
    """A ``check`` for :func:`time_calls`: record whether ``method`` matched ``reference`` bitwise."""

    def check(answer):
        equal = bool(np.array_equal(np.asarray(answer), reference))
        results[f"{method}_equal"] = equal
        if not equal:
            log(f"!!! BITWISE MISMATCH: {method} differs from the serial model on {results['name']} !!!")

    return check


def _auto_choice(proxy, case: Case) -> str:
    """Which path the ``auto`` proxy settled on for calls of the case's shape."""
    if proxy.n_engines == 1:
        return "serial (1 rank)"
    policy = proxy.threshold_policy
    work = case.evaluations
    split = int(Split.MODELS if case.split == "models" else Split.EXPERIMENTS)
    choice = policy.choice(int(Command.LIKELIHOOD), work, n_outcomes=case.n_outcomes, split=split)
    if choice == "undecided":  # a proxy that does not pass the outcomes and split learns in the default class
        choice = policy.choice(int(Command.LIKELIHOOD), work)
    return choice


def _measure_serial(comm, case, model, data, row, reference, timing) -> dict:
    """The serial model on the root alone (the workers do nothing)."""
    if comm.Get_rank() != 0:
        return {}
    outcomes, modelparams, expparams = data
    return {"serial": time_calls(lambda: model.likelihood(outcomes, modelparams, expparams), **timing)}


def _measure_proxies(comm, case, model, data, row, reference, timing) -> dict:
    """The always-parallel proxy and the auto proxy, sharing one engine (one worker loop serves both)."""
    engine = Engine(comm)
    proxies = {"proxy": MPIParallelizedModel(model, serial_threshold=0, split=case.split, engine=engine),
               "auto": MPIParallelizedModel(model, split=case.split, engine=engine)}
    timings = {}
    with engine:
        if engine.is_root:
            outcomes, modelparams, expparams = data
            for method, proxy in proxies.items():
                check = compare(row, method, reference) if reference is not None else None
                warmup = AUTO_WARMUP if method == "auto" else 2
                timings[method] = time_calls(lambda proxy=proxy: proxy.likelihood(outcomes, modelparams, expparams),
                                             check=check, warmup=warmup, **timing)
            row["auto_choice"] = _auto_choice(proxies["auto"], case)
            row["idle"] = engine.idle
    return timings


def _floor_loop(comm, case, model):
    return FloorLoop(comm, model, split=case.split, outcomes_dtype=case.outcomes_dtype)


def _pickle_loop(comm, case, model):
    return PickleMapLoop(comm, model, split=case.split)


def _measure_loop(make_loop, method):
    """A section measuring one of the hand-written loops (:class:`FloorLoop`, :class:`PickleMapLoop`)."""

    def measure(comm, case, model, data, row, reference, timing) -> dict:
        with make_loop(comm, case, model) as loop:
            if not loop.is_root:
                return {}
            outcomes, modelparams, expparams = data
            check = compare(row, method, reference) if reference is not None else None
            return {method: time_calls(lambda: loop.likelihood(outcomes, modelparams, expparams),
                                       check=check, **timing)}

    return measure


#: The sections of one case's round, in their first round's order (later rounds rotate it).
CASE_SECTIONS = (_measure_serial, _measure_proxies, _measure_loop(_floor_loop, "floor"),
                 _measure_loop(_pickle_loop, "pickle"))


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
        data = case.data(settings.seed)
        row = {"name": case.name, "model": case.model, "model_class": MODELS[case.model][0],
               "n_particles": case.n_particles, "n_exp": case.n_exp, "n_outcomes": case.n_outcomes,
               "split": case.split, "outcomes_dtype": str(data[0].dtype), "evaluations": case.evaluations}
        start = time.perf_counter()
        reference = model.likelihood(*data)
        rounds = settings.rounds if time.perf_counter() - start < SLOW_CALL_SECONDS else 1
    rounds = comm.bcast(rounds, 0)
    timing = settings.timing(rounds)
    samples = {method: [] for method in METHODS}
    for round_ in range(rounds):
        order = CASE_SECTIONS[round_ % len(CASE_SECTIONS):] + CASE_SECTIONS[: round_ % len(CASE_SECTIONS)]
        for section in order:
            measured = section(comm, case, model, data, row, reference if round_ == 0 else None, timing)
            for method, timing_ in measured.items():
                samples[method].append(timing_)
    if not is_root:
        return None
    del reference
    row["rounds"] = rounds
    for method, timings in samples.items():
        row.update(Timing.merge(timings).as_dict(method))
    row["bitwise_equal"] = all(row[f"{m}_equal"] for m in METHODS if f"{m}_equal" in row)
    ratios(row)
    return row
