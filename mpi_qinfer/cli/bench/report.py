"""What the run tells: progress messages, the ratios, the targets' verdicts, the printed report, the plot, JSON."""

from __future__ import annotations

import sys

import numpy as np

from .cases import METHODS, MODELS

__all__ = ["check_targets", "format_report", "plot_cases", "log", "ratios", "all_equal", "jsonable"]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ratios(row: dict) -> None:
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
    # The same from the fastest calls: steadier than the medians on a loaded machine (JSON only).
    for a, b in (("proxy", "floor"), ("auto", "serial"), ("proxy", "serial")):
        low_a, low_b = row.get(f"{a}_min_s"), row.get(f"{b}_min_s")
        row[f"{a}_over_{b}_min"] = None if low_a is None or low_b is None else low_a / low_b


def all_equal(result: dict) -> bool:
    parts = list(result["cases"]) + [result[name] for name in ("smc", "smc-design", "balance", "trials")
                                      if result.get(name)]
    return all(part.get("bitwise_equal", True) for part in parts)


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
        evaluations = row.get("evaluations", row["n_particles"] * row["n_exp"])
        if evaluations >= 10**4 and row.get("proxy_over_floor") is not None:
            add("proxy/floor <= 1.10 at >= 1e4 evaluations", name, row["proxy_over_floor"], 1.10,
                row["proxy_over_floor"] <= 1.10)
        # The fixed cost per call, where it is what the difference measures: a costly call
        # (milliseconds) moves by more than the limit from one run to the next.
        if evaluations == 10**3 and row["model"] != "costly" and row.get("proxy_minus_floor_us") is not None:
            add("proxy-floor <= 15 us at 1e3 x 1", name, row["proxy_minus_floor_us"], 15.0,
                row["proxy_minus_floor_us"] <= 15.0)
        if row.get("auto_over_serial") is not None:
            add("auto/serial <= 1.05 on every shape", name, row["auto_over_serial"], 1.05,
                row["auto_over_serial"] <= 1.05)
            floor, serial = row.get("floor_median_s"), row.get("serial_median_s")
            if floor is not None and serial is not None and floor < serial:
                add("auto < serial where the floor is", name, row["auto_over_serial"], 1.0,
                    row["auto_over_serial"] < 1.0)
        if row["model"] == "costly" and row["n_particles"] >= 10**4:
            add("costly >= 1e4: serial/proxy >= 1.9", name, row["speedup"], 1.9, row["speedup"] >= 1.9)
    smc = result.get("smc")
    if smc:
        add("end-to-end SMC (costly): serial/proxy >= 1.8", "smc", smc["speedup"], 1.8, smc["speedup"] >= 1.8)
    designed = result.get("smc-design")
    if designed:
        add("SMC with information-gain design: serial/proxy >= 1.8", "smc-design", designed["speedup"], 1.8,
            designed["speedup"] >= 1.8)
    checks.extend(_distributed_targets(result.get("distributed"), at_two))
    checks.extend(_trial_targets(result.get("trials"), at_two))
    return checks


def _distributed_targets(section: dict | None, at_two: bool) -> list[dict]:
    """The targets of the ``distributed`` section (see :mod:`~mpi_qinfer.cli.bench.distributed`)."""
    if not section:
        return []
    checks = []

    def add(target, case, value, limit, met):
        checks.append({"target": target, "case": case, "value": value, "limit": limit,
                       "met": bool(met) if at_two and value is not None else None})

    for row in section["rows"]:
        case = f"dist-{row['model']}-{row['n_particles']:.0e}".replace("+0", "")
        if row["model"] == "cheap":
            add("cheap SMC: distributed/serial <= 0.60", case, row["distributed_over_serial"], 0.60,
                row["distributed_over_serial"] <= 0.60)
            add("cheap SMC: distributed/proxy < 1", case, row["distributed_over_proxy"], 1.0,
                row["distributed_over_proxy"] < 1.0)
        else:
            add("costly SMC: serial/distributed >= 1.9", case, row["speedup"], 1.9, row["speedup"] >= 1.9)
    memory = section.get("memory")
    if memory:
        add("root peak memory: distributed/serial <= 0.6", f"dist-mem-{memory['n_particles']:.0e}".replace("+0", ""),
            memory["distributed_over_serial"], 0.6, memory["distributed_over_serial"] <= 0.6)
    return checks


def _format_distributed(section: dict, out) -> None:
    out("")
    out("distributed SMC: wall seconds of the same updates (median over rounds), SMCUpdater on the serial model, "
        "SMCUpdater over the proxy, DistributedSMCUpdater")
    out(f"  {'model':<7}{'particles':>10}{'updates':>8}{'serial':>11}{'proxy':>11}{'distrib':>11}"
        f"{'dist/ser':>9}{'dist/prx':>9}{'prx/ser':>9}   resamplings s/p/d   posterior means s/p/d")
    for row in section["rows"]:
        ways = ("serial", "proxy", "distributed")
        means = " / ".join(", ".join(f"{v:.4f}" for v in row[f"{way}_mean"]) for way in ways)
        resamples = "/".join(str(row[f"{way}_resamples"]) for way in ways)
        out(f"  {row['model']:<7}{row['n_particles']:>10}{row['n_updates']:>8}{_seconds(row['serial_median_s']):>11}"
            f"{_seconds(row['proxy_median_s']):>11}{_seconds(row['distributed_median_s']):>11}"
            f"{row['distributed_over_serial']:>9.2f}{row['distributed_over_proxy']:>9.2f}"
            f"{row['proxy_over_serial']:>9.2f}   {resamples:<19} {means}")
    memory = section.get("memory")
    if memory:
        out(f"  root peak memory at {memory['n_particles']} particles (build, 3 updates, resample, mean): "
            f"serial {memory['serial_peak_kib'] / 1024:.0f} MiB, "
            f"distributed {memory['distributed_peak_kib'] / 1024:.0f} MiB, "
            f"ratio {memory['distributed_over_serial']:.2f}; cloud per rank "
            f"{memory['per_rank_cloud_kib'] / 1024:.0f} MiB of {memory['cloud_kib'] / 1024:.0f} MiB"
            + ("" if memory["peak_reset"] else " (peak not reset: figures are upper bounds)"))


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


def _trial_targets(section: dict | None, at_two: bool) -> list[dict]:
    """The targets of the ``trials`` section: serial/farm >= 1.8 for the cheap model in groups of one
    rank, and for the costly one in groups of two ranks (at 2 ranks)."""
    if not section:
        return []
    checks = []
    for row in section["rows"]:
        wanted = (row["model"] == "cheap" and row["group_size"] == 1) or (
            row["model"] == "costly" and row["group_size"] == 2)
        if wanted:
            checks.append({"target": f"perf_test_multiple ({row['model']}, k={row['group_size']}): "
                                     "serial/farm >= 1.8",
                           "case": f"trials-{row['model']}-k{row['group_size']}", "value": row["speedup"],
                           "limit": 1.8, "met": bool(row["speedup"] >= 1.8) if at_two else None})
    return checks


def _format_trials(section: dict, out) -> None:
    """Print the section's rows with ``out`` (one call per line)."""
    out("")
    out("perf_test_multiple: serial on the root against the trial farm (TrialFarm), median wall seconds")
    out(f"  {'model':<8}{'trials':>7}{'particles':>10}{'exp':>5}{'k':>4}{'serial':>11}{'farm':>11}"
        f"{'speedup':>9}{'bitwise':>9}")
    for row in section["rows"]:
        out(f"  {row['model']:<8}{row['n_trials']:>7}{row['n_particles']:>10}{row['n_exp']:>5}{row['group_size']:>4}"
            f"{row['serial_median_s']:>10.3f}s{row['farm_median_s']:>10.3f}s{row['speedup']:>9.2f}"
            f"{'ok' if row['bitwise_equal'] else 'MISMATCH':>9}")


def format_report(result: dict) -> str:
    """The human-readable report: the per-case table, then the sections and the targets.

    Parameters
    ----------
    result : dict
        From :func:`~mpi_qinfer.cli.bench.command.run`.

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
    out("  median seconds per likelihood call, methods interleaved in rounds; ratios of medians; "
        "speedup = serial/proxy")
    out("  case = model-particles x experiments[-oN: N outcomes][-exps: split by experiments]")
    out("")
    columns = [("case", 22, "<"), *[(m, 10, ">") for m in METHODS], ("prx/floor", 9, ">"), ("prx-flr us", 10, ">"),
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
        out(f"{skipped['name']:<22}  skipped: {skipped['reason']}")

    smc = result.get("smc")
    if smc:
        out("")
        out(f"end-to-end SMC: {smc['model']}, {smc['n_particles']} particles x {smc['n_experiments']} experiments, "
            f"{smc['heuristic']}, seed {smc['seed']}, median of {smc['repeats']} run(s)")
        out(f"  serial {_seconds(smc['serial_median_s'])}   proxy {_seconds(smc['proxy_median_s'])}   "
            f"auto {_seconds(smc['auto_median_s'])}   speedup serial/proxy {smc['speedup']:.2f}   "
            f"serial/auto {smc['auto_speedup']:.2f}   final particles bitwise equal: "
            f"{'yes' if smc['bitwise_equal'] else 'NO -- MISMATCH'}")
    designed = result.get("smc-design")
    if designed:
        out("")
        out(f"SMC with information-gain design: {designed['model']}, {designed['n_particles']} particles x "
            f"{designed['n_experiments']} experiments, best of {designed['n_candidates']} candidates each, "
            f"seed {designed['seed']}, median of {designed['repeats']} run(s)")
        out(f"  serial {_seconds(designed['serial_median_s'])}   proxy {_seconds(designed['proxy_median_s'])}   "
            f"auto {_seconds(designed['auto_median_s'])}   speedup serial/proxy {designed['speedup']:.2f}   "
            f"serial/auto {designed['auto_speedup']:.2f}   designs and final particles bitwise equal: "
            f"{'yes' if designed['bitwise_equal'] else 'NO -- MISMATCH'}")
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
    if result.get("distributed"):
        _format_distributed(result["distributed"], out)
    if result.get("trials"):
        _format_trials(result["trials"], out)
    if result.get("targets"):
        out("")
        out("targets (stated for 2 ranks):")
        for check in result["targets"]:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
            out(f"  {verdict:<6} {check['target']:<46} {check['case']:<22} {_number(check['value'])}")
    out("")
    out("all answers bitwise equal to the serial model: "
        + ("yes" if result["all_bitwise_equal"] else "NO -- SEE MISMATCHES ABOVE"))
    return "\n".join(lines)


def plot_cases(result: dict, path) -> bool:
    """Save latency versus particles (log-log), one panel per call shape, one line per method.

    A shape is the model, ``n_exp``, the outcome count and the split; its
    panel has a point per particle count.

    Parameters
    ----------
    result : dict
        From :func:`~mpi_qinfer.cli.bench.command.run`.
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
    def shape(row):
        return row["model"], row["n_exp"], row.get("n_outcomes", 1), row.get("split", "models")

    panels = sorted({shape(row) for row in result["cases"]})
    if not panels:
        print("mpi_qinfer bench: no case measured, no plot written")
        return False
    # A bare Figure needs no pyplot: no global backend or GUI state is touched.
    n_cols = min(len(panels), 4)
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(5 * n_cols, 4.2 * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).reshape(-1)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (model, n_exp, n_outcomes, split) in zip(axes, panels):
        rows = sorted((r for r in result["cases"] if shape(r) == (model, n_exp, n_outcomes, split)),
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
        ax.set_title(f"{MODELS[model][0]}, {n_exp} exp., {n_outcomes} outcome(s), split by {split}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"mpi_qinfer bench, {result['ranks']} rank(s), {result['host']}")
    fig.savefig(path, dpi=100)
    return True


def jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
