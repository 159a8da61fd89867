"""Resuming: a Checkpointer that resumes by itself, and a sharded checkpoint on another number of ranks.

A ``Checkpointer(..., resume="auto")`` loads its file when it exists, so the same script started
again goes on from its last checkpoint: what a requeued batch job needs.

A DistributedSMCUpdater checkpoint can be resumed on another number of ranks than it was written on.

The cloud in a checkpoint is whole and in global order, so any split of it over the ranks is the
same particle approximation: a run resumed on another rank count goes on validly, though not
bitwise as it would have on the count it was written on (each rank draws its share of every
resampling from its own stream). Each test launches its own jobs: one writes at 3 ranks and goes
on uninterrupted, others resume the same checkpoints at 2 and 4 ranks; over 16 seeds the resumed
posteriors must agree with the uninterrupted ones within Monte Carlo error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_collectively, needs_mpiexec, run_mpi_script, verdict_of

from mpi_qinfer import Checkpointer, DistributedSMCUpdater, SMCUpdater
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.models.distributions import UniformDistribution
from mpi_qinfer.smc.checkpoint import CheckpointError

N_SEEDS, N_PARTICLES, N_DATA, SPLIT = 16, 1000, 24, 12

JOB = f"""
import json, sys, warnings
import numpy as np
from mpi4py import MPI
from mpi_qinfer import DistributedSMCUpdater, load_checkpoint, save_checkpoint
from mpi_qinfer.models.builtin import BinomialModel, RamseyModel
from mpi_qinfer.models.distributions import UniformDistribution

mode, directory = sys.argv[1], sys.argv[2]
model = BinomialModel(RamseyModel())
prior = UniformDistribution([[0.0, 1.0], [1.0, 10.0]])
# Fixed data, the same in every job: Ramsey fringes of a qubit at omega 0.55, T2 4, 20 shots each.
rng = np.random.default_rng(11)
expparams = np.zeros({N_DATA}, dtype=model.expparams_dtype)
expparams["t"] = np.linspace(0.5, 8, {N_DATA})
expparams["n_meas"] = 20
single = np.zeros({N_DATA}, dtype=RamseyModel().expparams_dtype)
single["t"] = expparams["t"]
pr1 = RamseyModel().likelihood(np.array([1]), np.array([[0.55, 4.0]]), single)[0, 0]
outcomes = rng.binomial(20, pr1).astype(np.int64)

def run(updater, start, stop):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(start, stop):
            updater.update(outcomes[k], expparams[k:k + 1])

results = []
for seed in range({N_SEEDS}):
    with DistributedSMCUpdater(model, {N_PARTICLES}, prior, rng=seed) as updater:
        if updater.is_root:
            path = f"{{directory}}/seed{{seed}}.npz"
            if mode == "write":
                run(updater, 0, {SPLIT})
                save_checkpoint(path, updater)
                first = updater.resample_count
            else:
                meta = load_checkpoint(path, updater)
                assert meta["distributed"]["n_ranks"] == 3
                first = updater.resample_count
                # Re-sharding moves particles between ranks, nothing else: the whole cloud is the saved one.
                with np.load(path) as saved:
                    weights, locations = updater.gather()
                    assert np.array_equal(weights, saved["particle_weights"])
                    assert np.array_equal(locations, saved["particle_locations"])
            run(updater, {SPLIT}, {N_DATA})
            weights, _ = updater.gather()
            results.append({{
                "mean": updater.est_mean().tolist(), "cov": updater.est_covariance_mtx().tolist(),
                "data": [int(x) for x in updater.data_record], "counts": updater.shard_counts.tolist(),
                "resampled_before": first, "resampled_after": updater.resample_count - first,
                "weight_sum": float(weights.sum())}})
if MPI.COMM_WORLD.Get_rank() == 0:
    with open(f"{{directory}}/{{mode}}-{{MPI.COMM_WORLD.Get_size()}}.json", "w") as file:
        json.dump(results, file)
"""


def _job(tmp_path, n_ranks, mode):
    # Under `run`: a failed check on the root ends the job at once, not at the next collective.
    done, _ = run_mpi_script(tmp_path / f"{mode}-{n_ranks}", JOB, n_ranks=n_ranks, timeout=240,
                             args=(mode, str(tmp_path)), module_args=["-m", "mpi_qinfer", "run"])
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((tmp_path / f"{mode}-{n_ranks}.json").read_text())


def _welch_within(resumed, whole, n_sigma=5.0):
    """Mean and covariance over seeds: the resumed runs' average within n_sigma standard errors of the whole runs'."""
    for key in ("mean", "cov"):
        a = np.array([run[key] for run in resumed])
        b = np.array([run[key] for run in whole])
        error = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        gap = np.abs(a.mean(axis=0) - b.mean(axis=0))
        assert np.all(gap <= n_sigma * error + 1e-12), (key, gap, error)


@needs_mpiexec
def test_a_checkpoint_written_at_3_ranks_resumes_at_2_and_4_within_monte_carlo_error(tmp_path):
    for mode, n_ranks in (("write", 3), ("resume", 2), ("resume", 4)):
        (tmp_path / f"{mode}-{n_ranks}").mkdir()
    whole = _job(tmp_path, 3, "write")
    assert len(whole) == N_SEEDS
    for n_ranks in (2, 4):
        resumed = _job(tmp_path, n_ranks, "resume")
        assert len(resumed) == N_SEEDS
        for run, reference in zip(resumed, whole):
            assert run["data"] == reference["data"] and len(run["data"]) == N_DATA  # every datum once
            assert len(run["counts"]) == n_ranks and sum(run["counts"]) == N_PARTICLES  # re-sharded
            assert run["resampled_before"] == reference["resampled_before"]  # from the checkpoint
            assert run["weight_sum"] == pytest.approx(1.0, abs=1e-9)
        # Resampling happened on both sides of the split, so the re-sharded resampler was used.
        assert sum(run["resampled_before"] > 0 for run in whole) >= N_SEEDS // 2
        assert sum(run["resampled_after"] > 0 for run in resumed) >= N_SEEDS // 2
        # Six entries (mean and covariance) by Welch's statistic over 16 seeds a side (about 30 degrees
        # of freedom): two correct samplers of one posterior exceed 5 standard errors with p ~ 1e-4.
        _welch_within(resumed, whole)


# ------------------------------------------------------------- Checkpointer(resume=...)
def _updates(updater, stop, checkpoints=None):
    while len(updater.data_record) < stop:
        k = len(updater.data_record)
        updater.update(k % 2, np.array([1.3 ** (k % 9)]))
        if checkpoints is not None:
            checkpoints.step()


def _state(updater):
    if isinstance(updater, DistributedSMCUpdater):
        weights, locations = updater.gather()
    else:
        weights, locations = updater.particle_weights, updater.particle_locations
    return weights.tobytes(), locations.tobytes(), [int(x) for x in updater.data_record], updater.resample_count


@pytest.fixture(params=[pytest.param("serial"), pytest.param("mpi", marks=pytest.mark.mpi)])
def world(request):
    """COMM_WORLD: one rank in a plain pytest run, every rank under mpiexec."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _stage(updater, path, stage, results):
    """One job of a run of 30 updates: uninterrupted, stopped after 17 (the file then holds 15), resumed."""
    if stage == "whole":
        _updates(updater, 30)
        results["whole"] = _state(updater)
        return
    with Checkpointer(path, updater, every_updates=5, resume="auto") as checkpoints:
        if stage == "first":
            assert checkpoints.resumed is None  # no file yet: from the start
            _updates(updater, 17, checkpoints)
        else:
            assert checkpoints.resumed["n_updates"] == 15 and len(updater.data_record) == 15
            _updates(updater, 30, checkpoints)
            assert _state(updater) == results["whole"]  # bitwise, every datum once


def test_resume_auto_starts_afresh_without_a_file_and_goes_on_from_it_with_one(tmp_path):
    results = {}
    for stage in ("whole", "first", "again"):
        _stage(SMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), rng=4), tmp_path / "auto.npz",
               stage, results)


def test_a_sharded_run_resumes_by_itself_the_same(world, tmp_path):
    path = world.bcast(str(tmp_path / "auto.npz") if world.Get_rank() == 0 else None)
    results = {}
    for stage in ("whole", "first", "again"):
        verdict = None
        with DistributedSMCUpdater(SimplePrecessionModel(), 300, UniformDistribution([0, 1]), comm=world,
                                   rng=4) as updater:
            if updater.is_root:
                verdict = verdict_of(_stage, updater, path, stage, results)
        assert_collectively(world, verdict)


def test_resume_true_needs_the_file_and_other_values_are_refused(tmp_path):
    updater = SMCUpdater(SimplePrecessionModel(), 50, UniformDistribution([0, 1]), rng=1)
    with pytest.raises((CheckpointError, FileNotFoundError)):
        Checkpointer(tmp_path / "missing.npz", updater, resume=True)
    with pytest.raises(ValueError, match="resume must be False, True or 'auto', got 'yes'"):
        Checkpointer(tmp_path / "x.npz", updater, resume="yes")


def test_the_demo_resumes_by_itself_with_resume_auto(tmp_path, capsys):
    from mpi_qinfer.cli import main as cli
    from mpi_qinfer.cli.demo import run_demo

    path = tmp_path / "demo.npz"
    whole = run_demo("precession", 300, 12, seed=1, progress=False)
    first = run_demo("precession", 300, 7, seed=1, progress=False, checkpoint=path, resume="auto")  # no file yet
    assert len(first["history_mean"]) == 7 and read_n_updates(path) == 7
    again = run_demo("precession", 300, 12, seed=1, progress=False, checkpoint=path, resume="auto")
    assert np.array_equal(again["estimate"], whole["estimate"])
    assert np.array_equal(again["history_mean"], whole["history_mean"])
    with pytest.raises(ValueError, match="resume='auto' needs a checkpoint file"):
        run_demo("precession", 300, 12, seed=1, progress=False, resume="auto")
    capsys.readouterr()
    assert cli.main(["demo", "--resume", "auto", "--no-progress"]) == 2  # before anything runs
    assert "needs a checkpoint file to resume from (--checkpoint FILE)" in capsys.readouterr().err


def read_n_updates(path):
    from mpi_qinfer.smc.checkpoint import read_metadata

    return read_metadata(path)["n_updates"]
