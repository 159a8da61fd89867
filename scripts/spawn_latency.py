"""Call latency of a spawned engine against an mpiexec-launched one, same MPI library, same ranks.

    python scripts/spawn_latency.py [--ranks 2] [--rounds 3] [--calls 2000]

runs, in alternation, ``mpiexec -n RANKS python spawn_latency.py --job spmd`` and
``python spawn_latency.py --job spawn`` (the root and RANKS-1 spawned workers), each timing
parallel likelihood calls (``serial_threshold=0``) of SimplePrecessionModel at 1e3 x 1 and
1e4 x 1 particles x experiments, and prints the median microseconds per call of each form and
their ratio per size. Rounds alternate the two forms so that a busy machine hurts both alike;
the ratios are indicative on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = [(1_000, 1), (10_000, 1)]


def time_calls(model, calls: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    result = {}
    for n_models, n_exp in SIZES:
        modelparams, expparams, outcomes = rng.random((n_models, 1)), rng.random(n_exp) * 10, np.array([0, 1])
        for _ in range(50):  # warm-up: plans, buffers
            model.likelihood(outcomes, modelparams, expparams)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            model.likelihood(outcomes, modelparams, expparams)
            samples.append(time.perf_counter() - start)
        result[f"{n_models}x{n_exp}"] = statistics.median(samples) * 1e6
    return result


def job(form: str, ranks: int, calls: int) -> None:
    from mpi_qinfer import MPIParallelizedModel
    from mpi_qinfer.models import SimplePrecessionModel

    if form == "spawn":
        proxy = MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=ranks - 1, serial_threshold=0)
    else:
        proxy = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0)
    with proxy:
        if proxy.is_root:
            print("RESULT " + json.dumps({"form": form, "idle": proxy.engine.idle, **time_calls(proxy, calls)}),
                  flush=True)


def run(argv, env) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=["spmd", "spawn"])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if args.job:
        job(args.job, args.ranks, args.calls)
        return
    here = Path(__file__).resolve()
    bin_dir = Path(sys.executable).parent
    path = filter(None, [str(here.parents[1]), os.environ.get("PYTHONPATH")])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    mpiexec = [str(bin_dir / "mpiexec"), "-n", str(args.ranks)]
    if (bin_dir / "ompi_info").exists():
        mpiexec.append("--oversubscribe")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   PRTE_ALLOW_RUN_AS_ROOT="1", PRTE_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    common = [sys.executable, str(here), "--ranks", str(args.ranks), "--calls", str(args.calls), "--job"]
    results = {"spmd": [], "spawn": []}
    for _ in range(args.rounds):
        results["spmd"].append(run(mpiexec + common + ["spmd"], env))
        results["spawn"].append(run(common + ["spawn"], env))
    print(f"{args.ranks} ranks, idle {results['spawn'][0]['idle']}/{results['spmd'][0]['idle']} (spawn/mpiexec), "
          f"median of {args.rounds} rounds x {args.calls} calls")
    for n_models, n_exp in SIZES:
        key = f"{n_models}x{n_exp}"
        spmd = statistics.median(r[key] for r in results["spmd"])
        spawned = statistics.median(r[key] for r in results["spawn"])
        print(f"  {key:>9}: mpiexec {spmd:8.1f} us  spawn {spawned:8.1f} us  spawn/mpiexec {spawned / spmd:.3f}  "
              f"(difference {spawned - spmd:+.1f} us)")


if __name__ == "__main__":
    main()
