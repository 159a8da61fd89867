"""A worker lost mid-run (SIGKILL: a node gone, an OOM kill) does not lose the run.

The MPI libraries this package installs with have no usable fault tolerance by default (ULFM's
failure notice reaches the survivors only in Open MPI with ``--with-ft ulfm``, and not for every
way a rank can end), so the run is kept by the other way: the launcher ends the whole job as soon
as a rank is killed, the checkpoint on disk is the last complete one (written atomically), and the
same command started again resumes from it by itself (``Checkpointer(..., resume="auto")``), on
the same number of ranks bitwise, on fewer (the ranks left) validly. Each test launches its jobs
under ``python -m mpi_qinfer run`` and a timeout.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from conftest import needs_mpiexec, run_mpi_script

from mpi_qinfer.smc.checkpoint import read_metadata

N_DATA, EVERY, KILL_AT = 40, 5, 23

JOB = f"""
import json, os, signal, sys, time
import numpy as np
from mpi4py import MPI
from mpi_qinfer import Checkpointer, DistributedSMCUpdater
from mpi_qinfer.models.builtin import BinomialModel, RamseyModel
from mpi_qinfer.models.distributions import UniformDistribution

path, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
pids = MPI.COMM_WORLD.allgather(os.getpid())
model = BinomialModel(RamseyModel())
rng = np.random.default_rng(3)  # fixed data, the same in every job
expparams = np.zeros({N_DATA}, dtype=model.expparams_dtype)
expparams["t"] = np.linspace(0.5, 8, {N_DATA})
expparams["n_meas"] = 10
outcomes = rng.integers(0, 11, {N_DATA})
with DistributedSMCUpdater(model, 1000, UniformDistribution([[0.0, 1.0], [1.0, 10.0]]), rng=8) as updater:
    if updater.is_root:
        with Checkpointer(path, updater, every_updates={EVERY}, resume="auto") as checkpoints:
            start = len(updater.data_record)
            print(f"started at {{start}} on {{MPI.COMM_WORLD.Get_size()}} ranks", flush=True)
            while len(updater.data_record) < {N_DATA}:
                k = len(updater.data_record)
                if k == kill_at and checkpoints.resumed is None:
                    print(f"killing rank 1 at {{time.time()!r}}", flush=True)
                    os.kill(pids[1], signal.SIGKILL)  # as the kernel's OOM killer would
                updater.update(outcomes[k], expparams[k:k + 1])
                checkpoints.step()
        weights, locations = updater.gather()
        with open(out, "w") as file:
            json.dump({{"start": start, "data": [int(x) for x in updater.data_record],
                       "mean": updater.est_mean().tolist(), "cov": updater.est_covariance_mtx().tolist(),
                       "weights": weights.tolist(), "locations": locations.tolist()}}, file)
"""


def _run(tmp_path, name, n_ranks, path, kill_at=-1):
    out = tmp_path / f"{name}.json"
    work = tmp_path / name
    work.mkdir()
    done, seconds = run_mpi_script(work, JOB, n_ranks=n_ranks, timeout=120, args=(str(path), str(out), str(kill_at)),
                                   module_args=["-m", "mpi_qinfer", "run"])
    return done, seconds, (json.loads(out.read_text()) if out.exists() else None)


@needs_mpiexec
def test_a_worker_killed_mid_run_ends_the_job_and_the_rerun_resumes_from_the_checkpoint(tmp_path):
    import time

    whole_done, _, whole = _run(tmp_path, "whole", 3, tmp_path / "whole.npz")
    assert whole_done.returncode == 0, whole_done.stderr
    path = tmp_path / "run.npz"
    killed, _, result = _run(tmp_path, "killed", 3, path, kill_at=KILL_AT)
    ended = time.time()
    # The job ended, promptly, without its result; the checkpoint holds the last complete multiple of EVERY.
    assert killed.returncode != 0 and result is None, killed.stdout + killed.stderr
    (line,) = [line for line in killed.stdout.splitlines() if line.startswith("killing rank 1 at ")]
    assert ended - float(line.split()[-1]) < 30, "the job outlived its killed worker by 30 s"
    meta = read_metadata(path)
    assert meta["n_updates"] == KILL_AT - KILL_AT % EVERY and meta["distributed"]["n_ranks"] == 3
    shutil.copy(path, tmp_path / "left.npz")

    # The same command again: it resumes by itself and finishes as if never stopped (bitwise, same ranks).
    again_done, _, again = _run(tmp_path, "again", 3, path)
    assert again_done.returncode == 0, again_done.stderr
    assert again["start"] == meta["n_updates"]
    assert again["data"] == whole["data"] and len(again["data"]) == N_DATA  # every datum, once
    assert again["weights"] == whole["weights"] and again["locations"] == whole["locations"]

    # On the ranks left (2): re-sharded, valid, not bitwise. Two particle estimates of one posterior
    # differ by Monte Carlo error, about sd / sqrt(effective sample size), far inside one posterior sd.
    left_done, _, left = _run(tmp_path, "left", 2, tmp_path / "left.npz")
    assert left_done.returncode == 0, left_done.stderr
    assert left["start"] == meta["n_updates"] and left["data"] == whole["data"]
    assert abs(sum(left["weights"]) - 1) < 1e-9
    sd = np.sqrt(np.diag(whole["cov"]))
    assert np.all(np.abs(np.array(left["mean"]) - whole["mean"]) < sd), (left["mean"], whole["mean"], sd)
