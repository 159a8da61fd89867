"""The root's per-call work that grows with the number of ranks, measured on one process.

    python scripts/root_costs.py [--ranks 2,4,8,16,64]

What the root does per worker and per call in the receive step does not depend on where the
workers run, so it is timed here with the engine's own plans for N ranks, in one process (no
launcher, no waiting on other processes, no oversubscription noise):

* ``receives``: working out every worker's receive for a partition (``Plan.receives``):
  under the even split once per plan; under explicit counts (a balance) once per change of
  counts; timed both on a hit (the steady state) and when built;
* ``post``: posting one receive per worker for an answer of several long blocks, the way the
  engine does (``Irecv`` into the whole answer with a datatype that starts at the worker's
  offset), matched by sends from this process on ``COMM_SELF``;
* ``staged``: placing the staged shares of short blocks (``place_staged``), one copy per run
  of equal counts.

Each is the minimum over repeats, in microseconds, for each N; the last column fits the
per-worker slope over the rank counts given. docs/performance.rst states the model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

from mpi_qinfer.engine.partition import displacements, even_counts
from mpi_qinfer.engine.plans import PlanCache, place_staged
from mpi_qinfer.engine.protocol import CallSpec, Command, DtypeTable, Split


def _best(function, repeats=200) -> float:
    """Minimum seconds of ``function()`` over ``repeats`` calls (after one warm-up)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _spec(n_models, n_outcomes, explicit):
    return CallSpec(int(Command.LIKELIHOOD), split=int(Split.MODELS), n_models=n_models, n_modelparams=1,
                    n_expparams=1, n_outcomes=n_outcomes, modelparams_dtype=0, expparams_dtype=0, outcomes_dtype=1,
                    answer_dtype=0, explicit_counts=int(explicit))


def receives_terms(size):
    """(hit, build) seconds of the root's receives under explicit counts, six outcomes of long blocks."""
    plans = PlanCache(DtypeTable(), size=size, rank=0, root=0)
    plan = plans.get(_spec(1000 * size, 6, True))
    counts = even_counts(1000 * size, size)
    counts[0] += 1
    counts[-1] -= 1  # uneven: explicit counts
    displs = displacements(counts)
    hit = _best(lambda: plan.receives(counts, displs, 0))

    def build():
        plan.uneven_receives = None  # (its datatypes are freed with the plan below)
        plan.receives(counts, displs, 0)

    built = _best(build, repeats=50)
    plans.free()
    return hit, built


def post_term(size, comm):
    """Seconds to post the per-worker receives of a six-outcome answer of 1000 rows per rank."""
    plans = PlanCache(DtypeTable(), size=size, rank=0, root=0)
    plan = plans.get(_spec(1000 * size, 6, False))
    receives = plan.receives(plan.even_counts, plan.even_displs, 0)
    (answer,) = plan.answers
    placed = receives.placed[0]
    whole = np.empty(answer.shape)
    raw = whole.reshape(-1).view(np.uint8)
    share = np.zeros(6 * 1000)
    best = float("inf")
    for _ in range(50):
        start = time.perf_counter()
        requests = [comm.Irecv([raw, 1, datatype], 0, 80) for _, datatype in placed]
        best = min(best, time.perf_counter() - start)
        # The sends that match them (the workers' part), untimed.
        sends = [comm.Isend([share, share.nbytes, MPI.BYTE], 0, 80) for _ in placed]
        MPI.Request.Waitall(requests + sends)
    plans.free()
    return best


def staged_term(size):
    """Seconds to place the staged shares of a six-outcome answer of 20 rows per rank (short blocks)."""
    plans = PlanCache(DtypeTable(), size=size, rank=0, root=0)
    plan = plans.get(_spec(20 * size + 1, 6, False))  # one rank more: two runs of counts
    receives = plan.receives(plan.even_counts, plan.even_displs, 0)
    (answer,) = plan.answers
    base, _, _, runs = receives.staged[0]
    staging = np.zeros(receives.staging_bytes, dtype=np.uint8)
    whole = np.empty(answer.shape)
    seconds = _best(lambda: place_staged(answer, staging[base:], runs, whole))
    plans.free()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="2,4,8,16,64", help="rank counts to model (default 2,4,8,16,64)")
    args = parser.parse_args(argv)
    sizes = [int(word) for word in args.ranks.split(",")]
    comm = MPI.COMM_SELF.Dup()
    rows = {}
    for size in sizes:
        hit, built = receives_terms(size)
        rows[size] = (hit, built, post_term(size, comm), staged_term(size))
    comm.Free()
    names = ("receives (hit)", "receives (built)", "post", "staged")
    print("root's receive step, microseconds per call (minimum of repeats)")
    print(f"{'term':<17}" + "".join(f"{f'N={size}':>9}" for size in sizes) + f"{'per worker':>12}")
    for column, name in enumerate(names):
        values = [rows[size][column] * 1e6 for size in sizes]
        slope = np.polyfit(np.array(sizes) - 1, values, 1)[0] if len(sizes) > 1 else float("nan")
        print(f"{name:<17}" + "".join(f"{value:9.2f}" for value in values) + f"{slope:12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
