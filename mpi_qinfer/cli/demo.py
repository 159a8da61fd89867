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
:func:`~mpi_qinfer.cli.memory_probe.check_size` (refuses runs that cannot fit
in memory, before any communication), :func:`run_demo` (the collective run:
proxy, optional serial timing, estimation), :func:`_estimate` (one estimation
loop on the root, one experiment per iteration),
:func:`~mpi_qinfer.cli.demo_report.print_header` and
:func:`~mpi_qinfer.cli.demo_report.report` (output). The output is
:mod:`mpi_qinfer.cli.demo_report`'s, the memory check
:mod:`mpi_qinfer.cli.memory_probe`'s; this module re-exports their names.
"""

from __future__ import annotations

import argparse
import contextlib
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

# The output and the memory check are names of this module as well (re-exported, hence noqa).
from .demo_report import plot_results, print_header, report, speedup_lines, within_sigmas  # noqa: F401
from .memory_probe import check_size, format_bytes, memory_estimate, physical_memory  # noqa: F401

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
        Where the root prints :func:`~mpi_qinfer.cli.demo_report.print_header` before the run starts;
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
        On the root, the results (see :func:`~mpi_qinfer.cli.demo_report.report` for the keys used);
        None on the other ranks.

    Raises
    ------
    ValueError
        On every rank, before any communication, for an unknown model or
        heuristic or a problem too large for the memory (:func:`~mpi_qinfer.cli.memory_probe.check_size`).
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
