"""The demo's output: the header printed before the run, the report of the results, the speed-up lines and the plot.

The results are the dict that :func:`~mpi_qinfer.cli.demo.run_demo` returns
on the root; nothing here communicates.
"""

from __future__ import annotations

import math
import sys

import numpy as np

__all__ = ["plot_results", "print_header", "report", "speedup_lines", "within_sigmas"]


def within_sigmas(results: dict, n_sigma: float = 3.0) -> bool:
    """Whether every true parameter lies within ``n_sigma`` posterior standard deviations.

    Parameters
    ----------
    results : dict
        From :func:`~mpi_qinfer.cli.demo.run_demo`.
    n_sigma : float

    Returns
    -------
    bool
    """
    return bool(np.all(np.abs(results["estimate"] - results["truth"]) <= n_sigma * results["sigma"]))


def print_header(settings: dict, file=None) -> None:
    """Print what the demo is about to run: the first lines of its output.

    Parameters
    ----------
    settings : dict
        The keys ``model``, ``model_repr``, ``n_ranks``, ``particles``,
        ``experiments``, ``heuristic``, ``seed``, ``serial_threshold``,
        ``idle`` (and optionally ``compare_serial``), as in the results of
        :func:`~mpi_qinfer.cli.demo.run_demo`.
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
    """Print the results of :func:`~mpi_qinfer.cli.demo.run_demo` in a human-readable form.

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
        From :func:`~mpi_qinfer.cli.demo.run_demo` with ``compare_serial=True``.

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
        From :func:`~mpi_qinfer.cli.demo.run_demo`.
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
