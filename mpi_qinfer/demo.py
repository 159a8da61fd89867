"""The ``demo`` sub-command: learn a precession frequency (or Ising couplings) with SMC over MPI.

Every rank builds the serial model and the parallel proxy; the root simulates
data from a "true" model of its own, seeded from ``--seed``, and runs
sequential Monte Carlo on the proxy while the other ranks evaluate their
share of each likelihood call. The likelihood is bitwise the same on any
number of ranks, so for a given seed the estimate printed is too.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

from . import termination
from .checkpoint import Checkpointer, CheckpointError, load_checkpoint, parse_every, read_metadata
from .distributions import UniformDistribution
from .heuristics import PGH, ExpSparseHeuristic
from .model import DerivedModel
from .models import IsingChainModel, SimplePrecessionModel
from .parallel import MPIParallelizedModel
from .protocol import Command
from .smc import SMCUpdater

__all__ = ["MODELS", "HEURISTICS", "add_arguments", "main", "run_demo", "report", "plot_results"]

MODELS = ("precession", "ising")
HEURISTICS = ("expsparse", "pgh")
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
    name : {"expsparse", "pgh"}
    updater : SMCUpdater

    Returns
    -------
    Heuristic
    """
    if name == "expsparse":
        return ExpSparseHeuristic(updater)
    if name == "pgh":
        return PGH(updater, inv_field=None)
    raise ValueError(f"heuristic must be one of {HEURISTICS}, got {name!r}")


def parameter_names(model) -> list[str]:
    """Plain-text names of the model's parameters (LaTeX backslashes dropped)."""
    return [name.replace("\\", "") for name in model.modelparam_names]


# ------------------------------------------------------------------ statistics
class _TimedLikelihood(DerivedModel):
    """Forwards everything to the proxy and times its ``likelihood`` calls."""

    def __init__(self, proxy):
        super().__init__(proxy)
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
def run_demo(model: str = "precession", particles: int = 4000, experiments: int = 100, *,
             qubits: int = 3, heuristic: str | None = None, seed: int = 42,
             serial_threshold="auto", progress: bool = True, comm=None,
             checkpoint=None, resume=None, checkpoint_every: str = "10") -> dict | None:
    """Run the demo estimation (collective over ``comm``).

    Parameters
    ----------
    model : {"precession", "ising"}
        ``precession``: one unknown frequency. ``ising``: frequency and
        coupling of an Ising chain, the costly two-parameter case.
    particles, experiments : int
        SMC particles, and experiments (updates) to run.
    qubits : int
        Ising chain length.
    heuristic : {"expsparse", "pgh"} or None
        Experiment design; None takes the one that converges on ``model``.
    seed : int
        Seeds the truth, the simulated data and the updater.
    serial_threshold : int or "auto"
        Passed to :class:`~mpi_qinfer.MPIParallelizedModel`.
    progress : bool
        Show a tqdm progress bar on stderr (root only).
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.
    checkpoint : str or os.PathLike, optional
        Write the run's state to this file every ``checkpoint_every`` and when
        a :class:`~mpi_qinfer.termination.TerminationRequested` stops it.
    resume : str or os.PathLike, optional
        Continue from this checkpoint (same model, particles, seed, heuristic).
    checkpoint_every : str
        ``"N"`` updates or ``"Ts"`` seconds (see :func:`~mpi_qinfer.checkpoint.parse_every`).

    Returns
    -------
    dict or None
        On the root, the results (see :func:`report` for the keys used);
        None on the other ranks.
    """
    heuristic = DEFAULT_HEURISTIC[model] if heuristic is None else heuristic
    if heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
    saving = {"checkpoint": checkpoint, "resume": resume, "every": parse_every(checkpoint_every)}
    if resume is not None:
        read_metadata(resume)  # a corrupt file fails on every rank, before any communication
    with MPIParallelizedModel(make_model(model, qubits), comm=comm, serial_threshold=serial_threshold) as proxy:
        if not proxy.is_root:
            return None
        results = _estimate(proxy, model, particles, experiments, qubits, heuristic, seed, progress, saving)
        results["idle"] = proxy.engine.idle
    return results


def _estimate(proxy, model_name, particles, experiments, qubits, heuristic_name, seed, progress,
              saving=None) -> dict:
    """The root's part of :func:`run_demo`: simulate data and update on it."""
    from tqdm.auto import tqdm

    prior = make_prior(model_name)
    # Independent streams for the truth, the data and the updater, all from the one seed.
    truth_rng, data_rng, updater_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    truth = prior.sample(1, rng=truth_rng)
    true_model = make_model(model_name, qubits)
    true_model.rng = data_rng

    timed = _TimedLikelihood(proxy)
    updater = SMCUpdater(timed, particles, prior, rng=updater_rng)
    design = make_heuristic(heuristic_name, updater)
    means, sigmas = [], []
    checkpoints = _checkpoints(saving or {}, proxy, updater, design, data_rng, means, sigmas,
                               dict(model=model_name, qubits=qubits, heuristic=heuristic_name, seed=seed))
    start = time.perf_counter()
    with checkpoints, tqdm(total=experiments, initial=len(means), desc=f"SMC on {proxy.n_engines} rank(s)",
                           unit="exp", file=sys.stderr, disable=not progress, mininterval=0.5, leave=False) as bar:
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

    parallel = proxy.threshold_policy.decisions[int(Command.LIKELIHOOD), True]
    return {
        "model": model_name,
        "model_repr": f"{type(true_model).__name__}" + (f"(n_qubits={qubits})" if model_name == "ising" else "()"),
        "names": parameter_names(proxy),
        "n_ranks": proxy.n_engines,
        "particles": particles,
        "experiments": experiments,
        "heuristic": heuristic_name,
        "seed": seed,
        "serial_threshold": proxy.serial_threshold,
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
        "likelihood_entries": proxy.call_count,
        "parallel_calls": parallel,
        "serial_calls": timed.calls - parallel,
        "resample_count": updater.resample_count,
    }


class _NoCheckpoints(contextlib.nullcontext):
    def step(self) -> bool:
        return False

    def write(self) -> None:
        return None


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
def report(results: dict, file=None) -> None:
    """Print the results of :func:`run_demo` in a human-readable form.

    The line starting ``estimate (repr):`` holds the estimate at full
    precision, to compare runs on different numbers of ranks.

    Parameters
    ----------
    results : dict
    file : file-like, optional
        Default ``sys.stdout``.
    """
    file = sys.stdout if file is None else file

    def out(text=""):
        print(text, file=file)

    r = results
    out(f"mpi_qinfer demo: {r['model']} model {r['model_repr']} on {r['n_ranks']} MPI rank(s)")
    out(f"  {r['particles']} particles, {r['experiments']} experiments, heuristic {r['heuristic']}, "
        f"seed {r['seed']}, serial threshold {r['serial_threshold']}, idle workers {r['idle']}")
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
    parser.epilog = "Example: `mpiexec -n 4 python -m mpi_qinfer demo --model ising --particles 20000`."
    parser.add_argument("--model", choices=MODELS, default="precession",
                        help="precession: one frequency; ising: frequency and coupling of an Ising chain "
                        "(default: %(default)s)")
    parser.add_argument("--particles", type=_positive_int, default=4000, help="SMC particles (default: %(default)s)")
    parser.add_argument("--experiments", type=_positive_int, default=100,
                        help="experiments to simulate and learn from (default: %(default)s)")
    parser.add_argument("--qubits", type=_positive_int, default=3,
                        help="Ising chain length; the cost grows like 8**qubits (default: %(default)s)")
    parser.add_argument("--heuristic", choices=HEURISTICS, default=None,
                        help="experiment design (default: expsparse for precession, pgh for ising)")
    parser.add_argument("--seed", type=int, default=42, help="seed of truth, data and updater (default: %(default)s)")
    parser.add_argument("--serial-threshold", type=_threshold, default="auto", metavar="N|auto",
                        help="calls with fewer evaluations than N run on the root alone; "
                        "auto measures both (default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save posterior marginals and the error per experiment (needs matplotlib)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="save the SMC state to FILE (.npz) periodically and when SIGTERM/SIGINT stops the run")
    parser.add_argument("--resume", metavar="FILE", default=None,
                        help="continue the run saved in FILE (same model, particles, seed)")
    parser.add_argument("--checkpoint-every", type=_interval, default="10", metavar="N|Ts",
                        help="with --checkpoint: every N updates, or every T seconds (30s, 5m) (default: %(default)s)")


def main(args) -> int:
    """Run the demo with the options in ``args`` and print the report on the root.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built with :func:`add_arguments`.

    Returns
    -------
    int
        0 on success.
    """
    from .info import warn_if_misslaunched

    warn_if_misslaunched()
    if args.checkpoint is not None:
        termination.install()  # every rank parses the same command line
    try:
        results = run_demo(
            args.model, args.particles, args.experiments, qubits=args.qubits, heuristic=args.heuristic,
            seed=args.seed, serial_threshold=args.serial_threshold, progress=args.progress,
            checkpoint=args.checkpoint, resume=args.resume, checkpoint_every=args.checkpoint_every,
        )
    except CheckpointError as error:
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:  # every rank found it; one says so
            print(f"mpi_qinfer demo: error: --resume {args.resume}: {error}", file=sys.stderr, flush=True)
        return 2
    except termination.TerminationRequested as stop:
        print(f"mpi_qinfer demo: {stop}; the state is in {args.checkpoint} "
              f"(continue with --resume {args.checkpoint})", file=sys.stderr, flush=True)
        return stop.exit_status
    if results is None:
        stopped_by = termination.stopped_by()
        return 0 if stopped_by is None else termination.exit_status(stopped_by)
    report(results)
    if args.plot is not None and plot_results(results, args.plot):
        print(f"  plot written to {args.plot}")
    return 0
