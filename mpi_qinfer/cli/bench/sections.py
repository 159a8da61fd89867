"""The sections after the table: end-to-end SMC (with PGH, and with information-gain design), the idle-wait
modes, and load balancing with one slow rank."""

from __future__ import annotations

import time
import warnings

import numpy as np

from ...engine.core import Engine
from ...models.builtin import IsingChainModel, SimplePrecessionModel
from ...models.distributions import UniformDistribution
from ...parallel.proxy import MPIParallelizedModel
from ...smc.heuristics import PGH, BestCandidateHeuristic
from ...smc.updater import SMCUpdater
from .cases import MODELS, OUTCOMES, Case, Settings
from .measure import compare
from .probes import ProcessTimeProbe, UnevenIsingModel
from .report import log
from .timing import Timing, time_calls

__all__ = ["bench_smc", "bench_design", "bench_idle", "bench_balance"]


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


def _interleaved_runs(comm, run, repeats: int) -> dict | None:
    """``run(model)`` with the costly model serially, through the proxy and in auto mode, interleaved.

    Collective; returns ``{way: [result, ...]}`` on the root, None on the workers.
    """
    serial_model = IsingChainModel(n_qubits=3)
    engine = Engine(comm)
    proxy = MPIParallelizedModel(serial_model, serial_threshold=0, engine=engine)
    auto = MPIParallelizedModel(serial_model, engine=engine)
    with engine:
        if not engine.is_root:
            return None
        ways = {"serial": serial_model, "proxy": proxy, "auto": auto}
        runs = {name: [] for name in ways}
        for _ in range(repeats):
            for name, model in ways.items():
                runs[name].append(run(model))
    return runs


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
    runs = _interleaved_runs(comm, lambda model: _smc_run(model, settings), settings.smc_repeats)
    if runs is None:
        return None
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
            log(f"!!! BITWISE MISMATCH: the SMC run through {name} ended on different particles !!!")
    result["bitwise_equal"] = equal
    result["speedup"] = result["serial_median_s"] / result["proxy_median_s"]
    result["auto_speedup"] = result["serial_median_s"] / result["auto_median_s"]
    return result


def _design_run(model, settings: Settings) -> dict:
    """One SMC estimation of the Ising couplings whose experiments maximise the information gain (root only).

    Each step scores ``settings.design_candidates`` candidate times with one
    likelihood call over both outcomes, all particles and all candidates
    (:class:`~mpi_qinfer.smc.heuristics.BestCandidateHeuristic`), then updates on
    the chosen one; data and updater are seeded as in :func:`_smc_run`.
    """
    prior = UniformDistribution([[0.0, 1.0], [0.0, 1.0]])
    truth_seed, data_seed, updater_seed = np.random.SeedSequence(settings.seed).spawn(3)
    truth = prior.sample(1, rng=np.random.default_rng(truth_seed))
    true_model = IsingChainModel(n_qubits=3)
    true_model.rng = np.random.default_rng(data_seed)
    chosen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        updater = SMCUpdater(model, settings.design_particles, prior, rng=np.random.default_rng(updater_seed))
        design = BestCandidateHeuristic(updater, criterion="infogain", n_candidates=settings.design_candidates)
        for _ in range(settings.design_experiments):
            expparams = design()
            chosen.append(float(expparams[0]))
            updater.update(true_model.simulate_experiment(truth, expparams), expparams)
        wall = time.perf_counter() - start
    return {"seconds": wall, "locations": updater.particle_locations.copy(),
            "weights": updater.particle_weights.copy(), "warnings": len(caught), "chosen": chosen,
            "estimate": updater.est_mean().tolist(), "truth": truth[0].tolist()}


def bench_design(comm, settings: Settings) -> dict | None:
    """End-to-end SMC with information-gain experiment design: serial versus proxy versus auto (collective).

    The costly model, ``settings.design_particles`` particles and
    ``settings.design_candidates`` candidates per step (20 by default), so
    nearly all the time goes into the candidates' likelihoods. Each way runs
    ``settings.design_repeats`` times, interleaved; the chosen experiments and
    final particles of the proxy and auto runs must equal the serial run's
    bitwise.

    Returns
    -------
    dict or None
        On the root: per way the median and minimum wall seconds, the
        speedups and the bitwise verdict; None elsewhere.
    """
    runs = _interleaved_runs(comm, lambda model: _design_run(model, settings), settings.design_repeats)
    if runs is None:
        return None
    reference = runs["serial"][0]
    result = {"model": MODELS["costly"][0], "n_particles": settings.design_particles,
              "n_candidates": settings.design_candidates, "n_experiments": settings.design_experiments,
              "criterion": "infogain", "seed": settings.seed, "repeats": settings.design_repeats,
              "estimate": reference["estimate"], "truth": reference["truth"], "warnings": reference["warnings"]}
    equal = True
    for name, done in runs.items():
        seconds = [run_["seconds"] for run_ in done]
        result[f"{name}_median_s"] = float(np.median(seconds))
        result[f"{name}_min_s"] = float(min(seconds))
        same = all(r["chosen"] == reference["chosen"] and np.array_equal(r["locations"], reference["locations"])
                   and np.array_equal(r["weights"], reference["weights"]) for r in done)
        result[f"{name}_equal"] = same
        equal &= same
        if not same:
            log(f"!!! BITWISE MISMATCH: the designed SMC run through {name} chose or ended differently !!!")
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

    Every rank runs :class:`~mpi_qinfer.cli.bench.probes.UnevenIsingModel`, with ``slowdown=3`` on rank 1
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
                                      warmup=6, check=compare(result, balance, reference), **settings.timing())
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
