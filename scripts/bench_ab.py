"""Two versions of mpi_qinfer in one benchmark run: every call shape's time, before against after.

Run from the repository root, with the launcher of the MPI library that the
installed mpi4py uses on PATH::

    python scripts/bench_ab.py --before 02d8d67 --after . --pairs 4 -- --quick

``--before`` and ``--after`` are each a source tree (a directory holding
``mpi_qinfer/``) or a git revision of this repository (unpacked with
``git archive`` into a temporary directory). The benchmark
(``python -m mpi_qinfer bench --json``, with the arguments after ``--``) runs
``2 * pairs`` times under ``mpiexec -n RANKS``, in the order before, after,
after, before, before, after, ... so that a load drifting over the run weighs on
both alike. For every case and section the table gives each version's median
time with the median of the per-pair ratios after/before (a pair is two
neighbouring runs, one of each version, so the ratio cancels a drift slower
than one pair), and each version's fastest call with the ratio of the two
(the most stable number where other work shares the cores).

Nothing here asserts a time: on a shared machine the ranges say how far to
trust each ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

#: The repository this script belongs to: where a git revision is looked up.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The times compared, per case of the per-case table; each case's proxy/floor ratio is compared
#: too (the floor is hand-written MPI measured in the same run, so the ratio cancels a drift slower
#: than one case).
CASE_METRICS = ("proxy_median_s", "auto_median_s", "floor_median_s", "proxy_min_s", "auto_min_s", "floor_min_s")
#: The times compared in the end-to-end sections.
SECTION_METRICS = {"smc": ("proxy_median_s", "auto_median_s", "proxy_min_s", "auto_min_s"),
                   "smc-design": ("proxy_median_s", "auto_median_s", "proxy_min_s", "auto_min_s")}


def source_tree(spec: str, workdir: str) -> str:
    """A directory holding ``mpi_qinfer/`` for ``spec``: the directory itself, or a git revision unpacked."""
    if os.path.isdir(os.path.join(spec, "mpi_qinfer")):
        return os.path.abspath(spec)
    target = os.path.join(workdir, spec.replace("/", "_"))
    os.makedirs(target)
    archive = subprocess.run(["git", "archive", spec], check=True, capture_output=True, cwd=REPOSITORY).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return target


def run_bench(tree: str, ranks: int, bench_args: list[str], json_path: str, launcher: str) -> dict:
    """One benchmark run of the tree at ``tree``; its JSON result."""
    env = dict(os.environ, PYTHONPATH=tree)
    command = [launcher, "-n", str(ranks), sys.executable, "-m", "mpi_qinfer", "bench",
               "--json", json_path, *bench_args]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench in {tree} failed (status {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    with open(json_path) as stream:
        result = json.load(stream)
    if not result.get("all_bitwise_equal", False):
        sys.exit(f"bench in {tree}: an answer differed from the serial model's")
    return result


def times(result: dict) -> dict[str, float]:
    """Every compared time of one run, by ``shape:metric``."""
    found = {}
    for case in result.get("cases", []):
        for metric in CASE_METRICS:
            if metric in case:
                found[f"{case['name']}:{metric[:-2]}"] = case[metric]
        if "proxy_median_s" in case and case.get("floor_median_s"):
            found[f"{case['name']}:proxy/floor"] = case["proxy_median_s"] / case["floor_median_s"]
    for section, metrics in SECTION_METRICS.items():
        for metric in metrics:
            if metric in (result.get(section) or {}):
                found[f"{section}:{metric[:-2]}"] = result[section][metric]
    return found


def order(pairs: int) -> list[str]:
    """before, after, after, before, ...: each pair's first run alternates."""
    runs = []
    for index in range(pairs):
        runs += ["before", "after"] if index % 2 == 0 else ["after", "before"]
    return runs


def table(runs: list[tuple[str, dict[str, float]]]) -> tuple[list[str], float]:
    """The report's lines, and the largest after/before ratio of the fastest calls (the ``_min`` rows).

    A ``_median`` row (and proxy/floor) compares the versions by the median
    of the pair ratios; a ``_min`` row by the fastest call either version made
    in any run (what a call costs when nothing else runs, the most stable
    number on a shared machine).
    """
    names = [name for name in runs[0][1] if all(name in found for _, found in runs)]
    lines = [f"{'shape:time':36s} {'before':>10s} {'after':>10s} {'after/before':>12s} {'pair range':>13s}",
             "(microseconds, proxy/floor a ratio; _median: median of the pairs' ratios, _min: ratio of the minima)"]
    worst = 0.0
    for name in names:
        before = [found[name] for version, found in runs if version == "before"]
        after = [found[name] for version, found in runs if version == "after"]
        pair_ratios = []
        for index in range(0, len(runs), 2):
            first, second = runs[index], runs[index + 1]
            by_version = {first[0]: first[1][name], second[0]: second[1][name]}
            pair_ratios.append(by_version["after"] / by_version["before"])
        if name.endswith("_min"):
            shown_before, shown_after = min(before), min(after)
            ratio = shown_after / shown_before
            worst = max(worst, ratio)
        else:
            shown_before, shown_after = statistics.median(before), statistics.median(after)
            ratio = statistics.median(pair_ratios)
        scale = 1.0 if name.endswith("/floor") else 1e6
        lines.append(f"{name:36s} {shown_before * scale:10.2f} {shown_after * scale:10.2f} "
                     f"{ratio:12.3f} {min(pair_ratios):6.3f}-{max(pair_ratios):.3f}")
    return lines, worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a source tree or a git revision")
    parser.add_argument("--after", default=".", help="a source tree or a git revision (default: .)")
    parser.add_argument("--pairs", type=int, default=4, help="pairs of runs, one of each version (default: 4)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of each run (default: 2)")
    parser.add_argument("--launcher", default="mpiexec", help="the MPI launcher (default: mpiexec)")
    parser.add_argument("--json", metavar="FILE", help="write every run's times to FILE")
    parser.add_argument("bench_args", nargs="*", help="arguments of the bench, after --")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as workdir:
        trees = {"before": source_tree(args.before, workdir), "after": source_tree(args.after, workdir)}
        runs = []
        for index, version in enumerate(order(args.pairs)):
            print(f"run {index + 1}/{2 * args.pairs}: {version} ({trees[version]})", flush=True)
            result = run_bench(trees[version], args.ranks, args.bench_args,
                               os.path.join(workdir, f"run{index}.json"), args.launcher)
            runs.append((version, times(result)))
    lines, worst = table(runs)
    print("\n".join(lines))
    print(f"largest after/before of the fastest calls: {worst:.3f}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"before": args.before, "after": args.after, "runs": runs}, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
