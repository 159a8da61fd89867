#!/usr/bin/env bash
# Strong scaling of mpi_qinfer: `python -m mpi_qinfer bench --quick` on 1, 2, 4, ... ranks.
#
# Usage:  scripts/scaling.sh MAX_RANKS OUTPUT_DIR
#
# Runs the benchmark at N = 1, 2, 4, 8, ... up to MAX_RANKS (and at MAX_RANKS
# itself when it is not a power of two), writing OUTPUT_DIR/bench-nN.json (and
# the benchmark's printed report to OUTPUT_DIR/bench-nN.log), then prints a table of speed-up (serial time / proxy time) and parallel
# efficiency (speed-up / N) per benchmark case.
#
# Environment (all optional):
#   LAUNCHER  command that starts N ranks, followed by N: default "mpiexec -n";
#             inside a Slurm job e.g. LAUNCHER="srun --ntasks" (EDIT as your site needs)
#   PYTHON    the Python with mpi_qinfer installed: default "python"
#   TIMEOUT   seconds allowed per run: default 900 (a run that hangs is killed)
#   BENCH_ARGS extra arguments for `bench`, e.g. "--model ising" (see bench --help)
#
# Example, in a Slurm allocation of 64 cores:
#   LAUNCHER="srun --ntasks" scripts/scaling.sh 64 results/
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 MAX_RANKS OUTPUT_DIR" >&2
    exit 2
fi
max_ranks=$1
out_dir=$2
case "$max_ranks" in
    '' | *[!0-9]* | 0) echo "$0: MAX_RANKS must be a positive integer, got '$max_ranks'" >&2; exit 2 ;;
esac

launcher=${LAUNCHER:-mpiexec -n}
python=${PYTHON:-python}
limit=${TIMEOUT:-900}
bench_args=${BENCH_ARGS:-}
# MPICH's mpiexec (hydra) also enforces a limit itself, and cleans up all ranks when it fires.
export MPIEXEC_TIMEOUT=${MPIEXEC_TIMEOUT:-$limit}
# One thread per rank, so that N ranks use N cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} \
    MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

mkdir -p "$out_dir"

rank_counts=()
n=1
last=0
while [ "$n" -le "$max_ranks" ]; do
    rank_counts+=("$n")
    last=$n
    n=$((n * 2))
done
if [ "$last" -ne "$max_ranks" ]; then
    rank_counts+=("$max_ranks")
fi

failed=0
for n in "${rank_counts[@]}"; do
    json="$out_dir/bench-n$n.json"
    log="$out_dir/bench-n$n.log"
    echo "== $n rank(s) -> $json (report in $log)" >&2
    # shellcheck disable=SC2086  # LAUNCHER and BENCH_ARGS are word lists
    if ! timeout "$limit" $launcher "$n" $python -m mpi_qinfer bench --quick --json "$json" $bench_args >"$log"; then
        echo "$0: the run on $n rank(s) failed or timed out after ${limit}s (see $log); continuing" >&2
        failed=1
    fi
done

# Tabulate. The JSON schema of `bench --json` is not final: this reads only the
# keys "ranks" (int) and "cases" (a list of objects with "name",
# "serial_median_s" and "proxy_median_s"), and skips files without them.
"$python" - "$out_dir" "${rank_counts[@]}" <<'PY'
import json
import os
import sys

out_dir, counts = sys.argv[1], [int(n) for n in sys.argv[2:]]
rows = {}  # case name -> {ranks: (serial s, proxy s)}
for n in counts:
    path = os.path.join(out_dir, f"bench-n{n}.json")
    try:
        with open(path) as handle:
            data = json.load(handle)
        ranks = int(data["ranks"])
        for case in data["cases"]:
            rows.setdefault(case["name"], {})[ranks] = (float(case["serial_median_s"]),
                                                         float(case["proxy_median_s"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"skipping {path}: {type(error).__name__}: {error}", file=sys.stderr)

if not rows:
    sys.exit("no benchmark results to tabulate")
print(f"{'case':<32} {'ranks':>5} {'serial s':>11} {'proxy s':>11} {'speed-up':>9} {'efficiency':>10}")
for name, by_ranks in rows.items():
    for ranks in sorted(by_ranks):
        serial, proxy = by_ranks[ranks]
        speedup = serial / proxy if proxy > 0 else float("nan")
        print(f"{name:<32} {ranks:>5} {serial:>11.4g} {proxy:>11.4g} {speedup:>9.2f} {speedup / ranks:>10.1%}")
PY

exit "$failed"
