"""The ``demo`` sub-command: learn an Ising chain's couplings (or a precession frequency) with SMC over MPI.

Every rank builds the serial model and the parallel proxy; the root simulates
data from a "true" model of its own, seeded from ``--seed``, and runs
sequential Monte Carlo on the proxy while the other ranks evaluate their
share of each likelihood call. The likelihood is bitwise the same on any
number of ranks, so for a given seed the estimate printed is too.

To show what the parallel engine is for, the demo by default first times the
same run serially on the root (the workers idle meanwhile), then in
parallel, and prints the speed-up and whether the two estimates are
bitwise equal. The default model is the costly Ising chain, whose
likelihood dominates the run; the cheap precession model mostly runs its
small calls serially (``serial_threshold="auto"``) and gains little.

The pieces, for extension: :func:`add_arguments` (the options),
:func:`check_size` (refuses runs that cannot fit in memory, before any
communication), :func:`run_demo` (the collective run: proxy, optional serial
timing, estimation), :func:`_estimate` (one estimation loop on the root, one
experiment per iteration), :func:`print_header` and :func:`report` (output).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time

import numpy as np

from ..engine.protocol import Command
from ..models.base import DerivedModel
from ..models.builtin import IsingChainModel, SimplePrecessionModel
from ..models.distributions import UniformDistribution
from ..runtime import termination
from ..runtime.launcher import print_on_rank_0, warn_if_misslaunched
from ..runtime.mpi_library import load_mpi
from ..runtime.progress import Progress
from ..smc.checkpoint import Checkpointer, CheckpointError, load_checkpoint, parse_every, read_metadata
from ..smc.heuristics import PGH, BestCandidateHeuristic, ExpSparseHeuristic
from ..smc.updater import SMCUpdater

__all__ = ["MODELS", "HEURISTICS", "DEFAULT_MODEL", "add_arguments", "check_size", "main", "memory_estimate",
           "print_header", "run_demo", "report", "plot_results"]

MODELS = ("precession", "ising")
#: The model the demo runs unless told otherwise: the costly one, where parallelism pays.
DEFAULT_MODEL = "ising"
HEURISTICS = ("expsparse", "pgh", "risk", "infogain")
#: The heuristic that converges on each model (checked on many seeds).
DEFAULT_HEURISTIC = {"precession": "expsparse", "ising": "pgh"}


# ------------------------------------------------------------------ the problem
def make_model(name: str, qubits: int = 3):
    """A fresh serial model for the demo problem ``name``.

    Parameters
    ----------
    name : {"precession", "ising"}
    qubits : int
        Chain length of the Ising model.

    Returns
    -------
    Model
    """
    if name == "precession":
        return SimplePrecessionModel()
    if name == "ising":
        return IsingChainModel(n_qubits=qubits)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def make_prior(name: str) -> UniformDistribution:
    """The prior of the demo problem ``name``: uniform on [0, 1] per parameter.

    The Ising likelihood cannot tell ``J`` from ``-J`` (nor ``omega`` from
    ``-omega``), so the prior keeps both non-negative.

    Parameters
    ----------
    name : {"precession", "ising"}

    Returns
    -------
    UniformDistribution
    """
    n_params = {"precession": 1, "ising": 2}[name]
    return UniformDistribution([[0.0, 1.0]] * n_params)


def make_heuristic(name: str, updater):
    """The experiment-design heuristic ``name`` for ``updater``.

    Parameters
    ----------
    name : {"expsparse", "pgh", "risk", "infogain"}
        ``risk`` and ``infogain`` pick the best of 20 candidate times each
        step (:class:`~mpi_qinfer.smc.heuristics.BestCandidateHeuristic`).
    updater : SMCUpdater

    Returns
    -------
    Heuristic
    """
    if name == "expsparse":
        return ExpSparseHeuristic(updater)
    if name == "pgh":
        return PGH(updater, inv_field=None)
    if name in ("risk", "infogain"):
        return BestCandidateHeuristic(updater, criterion=name)
    raise ValueError(f"heuristic must be one of {HEURISTICS}, got {name!r}")


def parameter_names(model) -> list[str]:
    """Plain-text names of the model's parameters (LaTeX backslashes dropped)."""
    return [name.replace("\\", "") for name in model.modelparam_names]


# ------------------------------------------------------------------ what fits in memory
#: Bytes the SMC loop keeps per particle and model parameter (locations, resampler copies, ...) and per particle.
_BYTES_PER_PARTICLE_PARAMETER = 32
_BYTES_PER_PARTICLE = 64


def memory_estimate(model: str, particles: int, qubits: int = 3) -> int:
    """A generous estimate of the bytes one rank needs for the demo problem.

    The Ising chain keeps two dense ``2**qubits`` square matrices and
    diagonalises a block of up to :attr:`IsingChainModel.block_size`
    Hamiltonians at a time (the matrices, the eigenvectors and LAPACK's
    workspace); the SMC loop keeps a few arrays per particle.

    Parameters
    ----------
    model : {"precession", "ising"}
    particles : int
    qubits : int
        Ising chain length (ignored for ``precession``).

    Returns
    -------
    int
    """
    smc = _smc_bytes(model, particles)
    if model != "ising":
        return smc
    matrix = 8 * 4**qubits  # one dense float64 2**q x 2**q matrix
    rows = min(IsingChainModel.block_size, particles)
    return smc + matrix * (2 + 3 * rows)


def _smc_bytes(model: str, particles: int) -> int:
    n_params = {"precession": 1, "ising": 2}[model]
    return particles * (_BYTES_PER_PARTICLE + _BYTES_PER_PARTICLE_PARAMETER * n_params)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say.

    Returns
    -------
    int or None
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def format_bytes(n_bytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"``.

    Parameters
    ----------
    n_bytes : float

    Returns
    -------
    str
    """
    if n_bytes >= 1024**6:  # beyond PiB, possibly beyond a float's range (--qubits 1000)
        return f"2**{int(n_bytes).bit_length() - 1} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.3g} PiB"


def check_size(model: str, particles: int, qubits: int = 3, memory: int | None = None) -> None:
    """Refuse a demo problem that would exhaust the memory, before anything is allocated.

    Every rank reaches the same verdict on its own, so the check needs no
    communication. The limit is half the machine's memory, since several
    ranks usually share a node.

    Parameters
    ----------
    model : {"precession", "ising"}
    particles : int
    qubits : int
    memory : int, optional
        The machine's memory in bytes; default :func:`physical_memory`
        (no check where that is unknown).

    Raises
    ------
    ValueError
        Naming ``--qubits`` or ``--particles``, the memory needed and what fits.
    """
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    limit = memory // 2
    needed = memory_estimate(model, particles, qubits)
    if needed <= limit:
        return
    available = f"more than half of this machine's {format_bytes(memory)} of memory"
    smc_bytes = _smc_bytes(model, particles)
    if needed - smc_bytes > smc_bytes:  # the Ising matrices dominate
        largest = 0  # the estimate grows with the qubits: count up while it fits
        while largest + 1 < qubits and memory_estimate(model, particles, largest + 1) <= limit:
            largest += 1
        fits = f"; the largest that fits is --qubits {largest}" if largest else ""
        raise ValueError(f"--qubits {qubits} needs about {format_bytes(needed)} per rank (dense "
                         f"2**{qubits} x 2**{qubits} Hamiltonians), {available}{fits}")
    most = max(1, int(particles * limit / needed))
    raise ValueError(f"--particles {particles} needs about {format_bytes(needed)} per rank, {available}; "
                     f"use at most about {most} particles")


# ------------------------------------------------------------------ statistics
class _TimedLikelihood(DerivedModel):
    """Forwards everything to the model it wraps and times its ``likelihood`` calls."""

    def __init__(self, model):
        super().__init__(model)
        self.calls = 0
        self.seconds = 0.0

    def likelihood(self, outcomes, modelparams, expparams):
        start = time.perf_counter()
        try:
            return self.underlying_model.likelihood(outcomes, modelparams, expparams)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


# ------------------------------------------------------------------ the run
def run_demo(model: str = DEFAULT_MODEL, particles: int = 4000, experiments: int = 100, *,
             qubits: int = 3, heuristic: str | None = None, seed: int = 42,
             serial_threshold="auto", progress: bool = True, compare_serial: bool = False,
             header_file=None, comm=None, checkpoint=None, resume=None, checkpoint_every: str = "10") -> dict | None:
    """Run the demo estimation (collective over ``comm``).

    Parameters
    ----------
    model : {"ising", "precession"}
        ``ising``: frequency and coupling of an Ising chain, the costly
        two-parameter case. ``precession``: one unknown frequency, cheap.
    particles, experiments : int
        SMC particles, and experiments (updates) to run.
    qubits : int
        Ising chain length.
    heuristic : {"expsparse", "pgh", "risk", "infogain"} or None
        Experiment design; None takes the one that converges on ``model``.
    seed : int
        Seeds the truth, the simulated data and the updater.
    serial_threshold : int or "auto"
        Passed to :class:`~mpi_qinfer.MPIParallelizedModel`.
    progress : bool
        Report progress on stderr (root only): a bar on a terminal, a line
        every tenth of the run otherwise (see :class:`~mpi_qinfer.runtime.progress.Progress`).
    compare_serial : bool
        First time the same run with the serial model on the root alone,
        to report the speed-up and check that the estimates are bitwise equal.
    header_file : file-like, optional
        Where the root prints :func:`print_header` before the run starts;
        None prints nothing until the end.
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.
    checkpoint : str or os.PathLike, optional
        Write the run's state to this file every ``checkpoint_every`` and when
        a :class:`~mpi_qinfer.runtime.termination.TerminationRequested` stops it.
    resume : str or os.PathLike, optional
        Continue from this checkpoint (same model, particles, seed, heuristic).
        ``"auto"``: from ``checkpoint`` when that file exists, else from the
        start (a job that is resubmitted or requeued resumes by itself).
    checkpoint_every : str
        ``"N"`` updates or ``"Ts"`` seconds (see :func:`~mpi_qinfer.smc.checkpoint.parse_every`).

    Returns
    -------
    dict or None
        On the root, the results (see :func:`report` for the keys used);
        None on the other ranks.

    Raises
    ------
    ValueError
        On every rank, before any communication, for an unknown model or
        heuristic or a problem too large for the memory (:func:`check_size`).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    heuristic = DEFAULT_HEURISTIC[model] if heuristic is None else heuristic
    if heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
    check_size(model, particles, qubits)
    resume = _resume_from(resume, checkpoint)
    saving = {"checkpoint": checkpoint, "resume": resume, "every": parse_every(checkpoint_every)}
    if resume is not None:
        read_metadata(resume)  # a corrupt file fails on every rank, before any communication
    compare_serial = compare_serial and checkpoint is None and resume is None
    load_mpi()  # without an MPI library: one clear MPIUnavailableError
    from ..parallel.proxy import MPIParallelizedModel

    with MPIParallelizedModel(make_model(model, qubits), comm=comm, serial_threshold=serial_threshold) as proxy:
        if not proxy.is_root:
            return None
        settings = {
            "model": model, "model_repr": _model_repr(model, qubits), "n_ranks": proxy.n_engines,
            "particles": particles, "experiments": experiments, "heuristic": heuristic, "seed": seed,
            "serial_threshold": proxy.serial_threshold, "idle": proxy.engine.idle, "compare_serial": compare_serial,
        }
        if header_file is not None:
            print_header(settings, header_file)
        problem = (model, particles, experiments, qubits, heuristic, seed)
        serial = None
        if compare_serial:
            serial = _estimate(make_model(model, qubits), *problem, "serial on the root", progress)
        results = _estimate(proxy, *problem, f"SMC on {proxy.n_engines} rank(s)", progress, saving, proxy)
        parallel_calls = proxy.threshold_policy.decisions[int(Command.LIKELIHOOD), True]
        results.update(settings)
        results.update({
            "names": parameter_names(proxy),
            "likelihood_entries": proxy.call_count,
            "parallel_calls": parallel_calls,
            "serial_calls": results["likelihood_calls"] - parallel_calls,
        })
    if serial is not None:
        results["serial_wall_seconds"] = serial["wall_seconds"]
        results["serial_estimate"] = serial["estimate"]
        results["same_as_serial"] = bool(np.array_equal(serial["estimate"], results["estimate"])
                                         and np.array_equal(serial["locations"], results["locations"])
                                         and np.array_equal(serial["weights"], results["weights"]))
    return results


def _model_repr(model_name: str, qubits: int) -> str:
    return {"precession": "SimplePrecessionModel()", "ising": f"IsingChainModel(n_qubits={qubits})"}[model_name]


def _estimate(model, model_name, particles, experiments, qubits, heuristic_name, seed, label, progress,
              saving=None, proxy=None) -> dict:
    """The root's estimation loop: simulate data from a seeded truth and update ``model``'s SMC on it.

    ``model`` is the proxy or the serial model; for a given seed both give
    bitwise the same results. One iteration per experiment: design, simulate,
    update, record. ``saving`` (checkpoint, resume, every) applies to the
    proxy's run.
    """
    prior = make_prior(model_name)
    # Independent streams for the truth, the data and the updater, all from the one seed.
    truth_rng, data_rng, updater_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    truth = prior.sample(1, rng=truth_rng)
    true_model = make_model(model_name, qubits)
    true_model.rng = data_rng

    timed = _TimedLikelihood(model)
    updater = SMCUpdater(timed, particles, prior, rng=updater_rng)
    design = make_heuristic(heuristic_name, updater)
    means, sigmas = [], []
    checkpoints = _checkpoints(saving or {}, proxy, updater, design, data_rng, means, sigmas,
                               dict(model=model_name, qubits=qubits, heuristic=heuristic_name, seed=seed))
    start = time.perf_counter()
    with checkpoints, Progress(experiments, label, enabled=progress) as bar:
        if means:
            bar.update(len(means))  # resumed: the updates already done
        for _ in range(len(means), experiments):
            termination.check()  # a safe point: between two updates
            expparams = design()
            outcome = true_model.simulate_experiment(truth, expparams)
            updater.update(outcome, expparams)
            means.append(updater.est_mean())
            sigmas.append(np.sqrt(np.diag(updater.est_covariance_mtx())))
            checkpoints.step()
            bar.update()
        checkpoints.write()  # the final state: a later --resume with more --experiments continues it
    wall = time.perf_counter() - start
    return {
        "truth": truth[0],
        "estimate": updater.est_mean(),
        "sigma": np.sqrt(np.diag(updater.est_covariance_mtx())),
        "history_mean": np.array(means),
        "history_sigma": np.array(sigmas),
        "weights": updater.particle_weights.copy(),
        "locations": updater.particle_locations.copy(),
        "wall_seconds": wall,
        "likelihood_calls": timed.calls,
        "likelihood_seconds": timed.seconds,
        "resample_count": updater.resample_count,
    }


class _NoCheckpoints(contextlib.nullcontext):
    def step(self) -> bool:
        return False

    def write(self) -> None:
        return None


def _resume_from(resume, checkpoint):
    """The file to resume from: ``resume``, or for ``"auto"`` the checkpoint file if it exists (else None)."""
    if resume is None or os.fspath(resume) != "auto":
        return resume
    if checkpoint is None:
        raise ValueError("resume='auto' needs a checkpoint file to resume from (--checkpoint FILE)")
    # Every rank looks: the file is on a file system they share, and no rank writes it before the run starts.
    return checkpoint if os.path.exists(checkpoint) else None


def _checkpoints(saving, proxy, updater, design, data_rng, means, sigmas, run):
    """The demo's Checkpointer (after loading ``saving["resume"]``), or one that does nothing."""
    if saving.get("resume") is not None:
        meta = load_checkpoint(saving["resume"], updater, proxy=proxy, heuristic=design,
                               generators={"data": data_rng})
        saved = meta["user"]
        odd = {key: (saved.get(key), value) for key, value in run.items() if saved.get(key) != value}
        if odd:
            raise CheckpointError(f"the checkpoint {saving['resume']!r} is of another demo run: "
                                  + ", ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in odd.items()))
        means.extend(np.array(saved["history_mean"]))
        sigmas.extend(np.array(saved["history_sigma"]))
    if saving.get("checkpoint") is None:
        return _NoCheckpoints()
    every_updates, every_seconds = saving["every"]

    def user():
        return dict(run, history_mean=np.asarray(means).tolist(), history_sigma=np.asarray(sigmas).tolist())

    return Checkpointer(saving["checkpoint"], updater, proxy=proxy, heuristic=design, generators={"data": data_rng},
                        every_updates=every_updates, every_seconds=every_seconds, user=user)


def within_sigmas(results: dict, n_sigma: float = 3.0) -> bool:
    """Whether every true parameter lies within ``n_sigma`` posterior standard deviations.

    Parameters
    ----------
    results : dict
        From :func:`run_demo`.
    n_sigma : float

    Returns
    -------
    bool
    """
    return bool(np.all(np.abs(results["estimate"] - results["truth"]) <= n_sigma * results["sigma"]))


# ------------------------------------------------------------------ output
def print_header(settings: dict, file=None) -> None:
    """Print what the demo is about to run: the first lines of its output.

    Parameters
    ----------
    settings : dict
        The keys ``model``, ``model_repr``, ``n_ranks``, ``particles``,
        ``experiments``, ``heuristic``, ``seed``, ``serial_threshold``,
        ``idle`` (and optionally ``compare_serial``), as in :func:`run_demo`'s results.
    file : file-like, optional
        Default ``sys.stdout``.
    """
    file = sys.stdout if file is None else file
    s = settings
    lines = [
        f"mpi_qinfer demo: {s['model']} model {s['model_repr']} on {s['n_ranks']} MPI rank(s)",
        f"  {s['particles']} particles, {s['experiments']} experiments, heuristic {s['heuristic']}, "
        f"seed {s['seed']}, serial threshold {s['serial_threshold']}, idle workers {s['idle']}",
    ]
    if s.get("compare_serial"):
        lines.append(f"  timing the same run twice: serially on the root, then in parallel on {s['n_ranks']} rank(s)")
    print("\n".join(lines), file=file, flush=True)


def report(results: dict, file=None, header: bool = True) -> None:
    """Print the results of :func:`run_demo` in a human-readable form.

    The line starting ``estimate (repr):`` holds the estimate at full
    precision, to compare runs on different numbers of ranks.

    Parameters
    ----------
    results : dict
    file : file-like, optional
        Default ``sys.stdout``.
    header : bool
        Start with :func:`print_header`'s lines (leave them out when they
        were printed before the run).
    """
    file = sys.stdout if file is None else file

    def out(text=""):
        print(text, file=file)

    r = results
    if header:
        print_header(r, file)
    out()
    out(f"  {'parameter':<10} {'true':>12} {'estimate':>12} {'sigma':>10} {'|error|/sigma':>14}")
    for name, true, est, sig in zip(r["names"], r["truth"], r["estimate"], r["sigma"]):
        z = abs(est - true) / sig if sig > 0 else float("inf")
        out(f"  {name:<10} {true:>12.6f} {est:>12.6f} {sig:>10.3g} {z:>14.2f}")
    out(f"  truth within 3 sigma: {'yes' if within_sigmas(r) else 'NO'}")
    out()
    out(f"estimate (repr): {[float(x) for x in r['estimate']]!r}")
    out(f"sigma (repr):    {[float(x) for x in r['sigma']]!r}")
    out()
    calls = r["likelihood_calls"]
    mean_ms = 1e3 * r["likelihood_seconds"] / max(calls, 1)
    out(f"  wall time: {r['wall_seconds']:.3f} s")
    out(f"  likelihood: {calls} calls on the root, {mean_ms:.3f} ms per call on average "
        f"({r['likelihood_seconds']:.3f} s in all); {r['parallel_calls']} ran in parallel on "
        f"{r['n_ranks']} rank(s), {r['serial_calls']} serially on the root; "
        f"{r['likelihood_entries']} (outcome, particle, experiment) entries")
    out(f"  resamples: {r['resample_count']}")
    if "serial_wall_seconds" in r:
        out()
        for line in speedup_lines(r):
            out(line)


def speedup_lines(results: dict) -> list[str]:
    """The lines comparing the parallel run with the same run serially on the root.

    Parameters
    ----------
    results : dict
        From :func:`run_demo` with ``compare_serial=True``.

    Returns
    -------
    list of str
    """
    r = results
    serial, parallel = r["serial_wall_seconds"], r["wall_seconds"]
    speedup = serial / parallel if parallel > 0 else math.inf
    lines = [
        f"  serial on the root: {serial:.3f} s; parallel on {r['n_ranks']} rank(s): {parallel:.3f} s; "
        f"speed-up {speedup:.2f}x",
        f"  same estimate as the serial run, bitwise: {'yes' if r['same_as_serial'] else 'NO'}",
    ]
    if r["n_ranks"] == 1:
        lines.append("  (one rank has no one to share the work with: run it under `mpiexec -n 4`)")
    elif r["parallel_calls"] < r["likelihood_calls"] // 2:
        costlier = "more --particles or more --qubits" if r.get("model") == "ising" else "--model ising"
        lines.append("  (most likelihood calls were too small to pay for the communication and ran on the root: "
                     f"try {costlier})")
    return lines


def plot_results(results: dict, path) -> bool:
    """Save posterior marginals and error-versus-experiment plots to ``path``.

    Parameters
    ----------
    results : dict
        From :func:`run_demo`.
    path : str or os.PathLike

    Returns
    -------
    bool
        False (after printing why to stderr) when matplotlib is missing.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("mpi_qinfer demo: matplotlib is not installed, no plot written "
              "(pip install 'mpi_qinfer[plot]')", file=sys.stderr)
        return False
    names = results["names"]
    n = len(names)
    # A bare Figure needs no pyplot, so no global backend or GUI state is touched.
    fig = Figure(figsize=(4.5 * (n + 1), 3.8), layout="constrained")
    axes = fig.subplots(1, n + 1)
    for i, name in enumerate(names):
        ax = axes[i]
        ax.hist(results["locations"][:, i], bins=60, weights=results["weights"], color="tab:blue", alpha=0.8)
        ax.axvline(results["truth"][i], color="black", linestyle="--", label="truth")
        ax.set_xlabel(name)
        ax.set_title(f"posterior of {name}")
        ax.legend()
    ax = axes[n]
    steps = np.arange(1, results["experiments"] + 1)
    errors = np.abs(results["history_mean"] - results["truth"])
    for i, name in enumerate(names):
        line, = ax.semilogy(steps, errors[:, i], label=f"|error| {name}")
        ax.semilogy(steps, results["history_sigma"][:, i], linestyle=":", color=line.get_color(),
                    label=f"sigma {name}")
    ax.set_xlabel("experiment")
    ax.set_title("error and posterior sigma")
    ax.legend()
    fig.savefig(path, dpi=100)
    return True


# ------------------------------------------------------------------ command line
def _threshold(text: str):
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer or 'auto', got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _interval(text: str) -> str:
    try:
        parse_every(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_arguments(parser) -> None:
    """Add ``demo``'s options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.epilog = ("Example: `mpiexec -n 4 python -m mpi_qinfer demo --particles 20000`. "
                     "Progress goes to stderr: a bar on a terminal, a line every tenth of the run in a log file.")
    parser.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL,
                        help="ising: frequency and coupling of an Ising chain, costly; precession: one frequency, "
                        "cheap (default: %(default)s)")
    parser.add_argument("--particles", type=_positive_int, default=4000, help="SMC particles (default: %(default)s)")
    parser.add_argument("--experiments", type=_positive_int, default=100,
                        help="experiments to simulate and learn from (default: %(default)s)")
    parser.add_argument("--qubits", type=_positive_int, default=3,
                        help="Ising chain length; the cost grows like 8**qubits (default: %(default)s)")
    parser.add_argument("--heuristic", choices=HEURISTICS, default=None,
                        help="experiment design; risk and infogain pick the best of 20 candidates by Bayes risk "
                        "or information gain (default: expsparse for precession, pgh for ising)")
    parser.add_argument("--seed", type=int, default=42, help="seed of truth, data and updater (default: %(default)s)")
    parser.add_argument("--serial-threshold", type=_threshold, default="auto", metavar="N|auto",
                        help="calls with fewer evaluations than N run on the root alone; "
                        "auto measures both (default: %(default)s)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip timing the same run serially on the root first (no speed-up reported)")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save posterior marginals and the error per experiment (needs matplotlib)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress report")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="save the SMC state to FILE (.npz) periodically and when a signal "
                             "(SIGTERM, SIGINT, SIGUSR1) stops the run")
    parser.add_argument("--resume", metavar="FILE|auto", default=None,
                        help="continue the run saved in FILE (same model, particles, seed); auto: from the "
                        "--checkpoint file if it exists, else from the start (for jobs that are requeued)")
    parser.add_argument("--checkpoint-every", type=_interval, default="10", metavar="N|Ts",
                        help="with --checkpoint: every N updates, or every T seconds (30s, 5m) (default: %(default)s)")


def main(args) -> int:
    """Run the demo with the options in ``args``; the root prints the header first, then the report.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built with :func:`add_arguments`.

    Returns
    -------
    int
        0 on success; 2 (after one message, from rank 0) for a problem too
        large for the memory, refused before anything is allocated.
    """
    try:
        check_size(args.model, args.particles, args.qubits)
        _resume_from(args.resume, args.checkpoint)
    except ValueError as error:
        print_on_rank_0(f"python -m mpi_qinfer demo: error: {error}\n")
        return 2
    warn_if_misslaunched()
    if args.checkpoint is not None:
        termination.install()  # every rank parses the same command line
    try:
        results = run_demo(
            args.model, args.particles, args.experiments, qubits=args.qubits, heuristic=args.heuristic,
            seed=args.seed, serial_threshold=args.serial_threshold, progress=args.progress,
            compare_serial=args.compare, header_file=sys.stdout,
            checkpoint=args.checkpoint, resume=args.resume, checkpoint_every=args.checkpoint_every,
        )
    except CheckpointError as error:  # every rank found it; rank 0 says so
        print_on_rank_0(f"mpi_qinfer demo: error: --resume {args.resume}: {error}\n")
        return 2
    except termination.TerminationRequested as stop:
        print(f"mpi_qinfer demo: {stop}; the state is in {args.checkpoint} "
              f"(continue with --resume {args.checkpoint})", file=sys.stderr, flush=True)
        return stop.exit_status
    if results is None:
        stopped_by = termination.stopped_by()
        return 0 if stopped_by is None else termination.exit_status(stopped_by)
    report(results, header=False)
    if args.plot is not None and plot_results(results, args.plot):
        print(f"  plot written to {args.plot}")
    return 0
