"""The ``distributed`` section: DistributedSMCUpdater against SMCUpdater, serially and over the proxy.

Three measurements, all collective:

``cheap``
    The precession model at 1e5 and 1e6 particles (1e5 with ``--quick``):
    the same fixed data (``n_updates`` updates, resampling as it falls due)
    through :class:`~mpi_qinfer.smc.updater.SMCUpdater` on the serial model (the
    root alone), :class:`~mpi_qinfer.smc.updater.SMCUpdater` over the proxy
    (``serial_threshold=0``) and :class:`~mpi_qinfer.DistributedSMCUpdater`;
    the ways interleaved in rounds, the median wall time kept.
``costly``
    The same for the 3-qubit Ising chain at 1e4 particles.
``memory``
    The root's peak resident memory while each updater is built, updated
    and resampled at 1e7 particles (1e6 with ``--quick``): ``VmHWM`` after
    resetting it (``/proc/self/clear_refs``) minus ``VmRSS`` before.

Run it with one BLAS thread per rank (``OMP_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1``, as for any MPI run): a threaded BLAS makes the
serial baseline's matrix products compete with the ranks for the cores.

The posterior means of the ways are reported side by side: they agree within
Monte Carlo error, not bitwise (the distributed updater draws its prior and
resampling from per-rank streams).
"""

from __future__ import annotations

import gc
import time
import warnings

import numpy as np

from ...distributed.updater import DistributedSMCUpdater
from ...engine import idle as idle_wait
from ...models.builtin import IsingChainModel, SimplePrecessionModel
from ...models.distributions import UniformDistribution
from ...parallel.proxy import MPIParallelizedModel
from ...smc.updater import SMCUpdater
from .report import log

__all__ = ["bench_distributed", "root_memory", "WAYS", "read_status_kib", "reset_peak"]

#: The ways compared, in their first round's order.
WAYS = ("serial", "proxy", "distributed")
_TRUTH = {"cheap": np.array([[0.43]]), "costly": np.array([[0.43, 0.21]])}


def _make(kind: str):
    return SimplePrecessionModel() if kind == "cheap" else IsingChainModel(n_qubits=3)


def _prior(kind: str):
    return UniformDistribution([0, 1]) if kind == "cheap" else UniformDistribution([[0.0, 1.0], [0.0, 1.0]])


def _data(kind: str, n_updates: int, seed: int):
    """Fixed experiments (slowly growing times) and outcomes simulated from the truth."""
    rng = np.random.default_rng([seed, n_updates, len(kind)])
    times = 1.03 ** np.arange(n_updates) * (2.0 if kind == "cheap" else 1.0)
    pr0 = _make(kind).likelihood(np.array([0]), _TRUTH[kind], times)[0, 0]
    return (rng.random(n_updates) > pr0).astype(np.int64), times


def _run(updater, data) -> tuple[float, np.ndarray, int]:
    outcomes, times = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        for outcome, t in zip(outcomes, times):
            updater.update(int(outcome), np.array([t]))
        mean = updater.est_mean()
        seconds = time.perf_counter() - start
    return seconds, mean, updater.resample_count


def _root_alone(comm, work):
    """The root runs ``work()`` while the workers wait without burning a core; the root's result."""
    message = np.zeros(1, dtype=np.uint8)
    result = work() if comm.Get_rank() == 0 else None
    idle_wait.broadcast_message(comm, message, 0, "backoff", 1e-3)
    return result


def _one_way(comm, way: str, kind: str, n_particles: int, data, seed: int):
    """One run of ``way`` (collective); (seconds, mean, resamplings) on the root, None elsewhere."""
    model = _make(kind)
    prior = _prior(kind)
    if way == "serial":
        return _root_alone(comm, lambda: _run(SMCUpdater(model, n_particles, prior, rng=seed), data))
    if way == "proxy":
        with MPIParallelizedModel(model, comm, serial_threshold=0) as proxy:
            if proxy.is_root:
                return _run(SMCUpdater(proxy, n_particles, prior, rng=seed), data)
        return None
    with DistributedSMCUpdater(model, n_particles, prior, rng=seed, comm=comm) as updater:
        if updater.is_root:
            return _run(updater, data)
    return None


def _compare(comm, kind: str, n_particles: int, n_updates: int, rounds: int, seed: int) -> dict | None:
    data = _data(kind, n_updates, seed)
    runs = {way: [] for way in WAYS}
    for round_ in range(rounds):
        order = WAYS[round_ % 3:] + WAYS[: round_ % 3]
        for way in order:
            gc.collect()
            runs[way].append(_one_way(comm, way, kind, n_particles, data, seed + round_))
    if comm.Get_rank() != 0:
        return None
    row = {"model": kind, "n_particles": n_particles, "n_updates": n_updates, "rounds": rounds}
    for way, done in runs.items():
        row[f"{way}_median_s"] = float(np.median([r[0] for r in done]))
        row[f"{way}_min_s"] = float(min(r[0] for r in done))
        row[f"{way}_mean"] = done[0][1].tolist()
        row[f"{way}_resamples"] = done[0][2]
    row["distributed_over_serial"] = row["distributed_median_s"] / row["serial_median_s"]
    row["distributed_over_proxy"] = row["distributed_median_s"] / row["proxy_median_s"]
    row["proxy_over_serial"] = row["proxy_median_s"] / row["serial_median_s"]
    row["speedup"] = row["serial_median_s"] / row["distributed_median_s"]
    return row


def read_status_kib(field: str) -> int:
    """A ``Vm*`` field of this process's ``/proc/self/status``, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def reset_peak() -> bool:
    """Reset this process's ``VmHWM`` to its current ``VmRSS``; False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _memory_of(comm, way: str, n_particles: int, seed: int):
    """The root's peak increment (KiB) over building, 3 updates, a resampling and the mean (collective)."""
    data = _data("cheap", 3, seed)
    model, prior = _make("cheap"), _prior("cheap")
    gc.collect()
    resets = reset_peak()
    before = read_status_kib("VmRSS")

    def exercise(updater):
        _run(updater, data)
        updater.resample()
        updater.est_mean()
        return read_status_kib("VmHWM") - before, resets

    if way == "serial":
        return _root_alone(comm, lambda: exercise(SMCUpdater(model, n_particles, prior, rng=seed)))
    with DistributedSMCUpdater(model, n_particles, prior, rng=seed, comm=comm) as updater:
        if updater.is_root:
            return exercise(updater)
    return None


def root_memory(comm, n_particles: int, seed: int = 1234) -> dict | None:
    """The root's peak memory with DistributedSMCUpdater and with SMCUpdater (collective).

    Each is built at ``n_particles`` on the cheap model, updated three times,
    resampled, and asked for its mean; the peak is ``VmHWM`` after a reset
    (``/proc/self/clear_refs``) minus ``VmRSS`` before.

    Returns
    -------
    dict or None
        On the root: both peaks in KiB, their ratio, the cloud's size in all
        and per rank, and whether the peak could be reset; None elsewhere.
    """
    peaks = {way: _memory_of(comm, way, n_particles, seed) for way in ("distributed", "serial")}
    if comm.Get_rank() != 0:
        return None
    resets = all(p[1] for p in peaks.values())
    cloud_kib = n_particles * 2 * 8 / 1024  # locations (one parameter) and weights, float64
    result = {"n_particles": n_particles, "peak_reset": resets,
              "serial_peak_kib": peaks["serial"][0], "distributed_peak_kib": peaks["distributed"][0],
              "cloud_kib": cloud_kib, "per_rank_cloud_kib": cloud_kib / comm.Get_size()}
    result["distributed_over_serial"] = result["distributed_peak_kib"] / max(result["serial_peak_kib"], 1)
    return result


def bench_distributed(comm, settings) -> dict | None:
    """The ``distributed`` section (collective over ``comm``).

    Returns
    -------
    dict or None
        On the root: one row per (model, particles) with the median wall
        time of each way, the ratios and posterior means, and the memory
        comparison; None elsewhere.
    """
    quick = settings.quick
    rounds = 1 if quick else 2
    cheap_sizes = (10**5,) if quick else (10**5, 10**6)
    n_updates = 50 if quick else 200
    rows = []
    for n_particles in cheap_sizes:
        if comm.Get_rank() == 0:
            log(f"distributed: cheap {n_particles} particles x {n_updates} updates ...")
        rows.append(_compare(comm, "cheap", n_particles, n_updates, rounds, settings.seed))
    if comm.Get_rank() == 0:
        log("distributed: costly 1e4 particles ...")
    rows.append(_compare(comm, "costly", 10**4, 10 if quick else 20, rounds, settings.seed))
    memory_particles = 10**6 if quick else 10**7
    if comm.Get_rank() == 0:
        log(f"distributed: root memory at {memory_particles} particles ...")
    memory = root_memory(comm, memory_particles, settings.seed)
    if comm.Get_rank() != 0:
        return None
    return {"ranks": comm.Get_size(), "rows": rows, "memory": memory}
