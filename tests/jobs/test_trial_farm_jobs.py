"""Whole trial-farm jobs stopped mid-run keep the trials they finished.

Each test launches its own ``mpiexec`` (so it is a serial test), stops the job
once its trial file shows some finished trials, and reads the file: every
trial marked finished is bitwise the serial trial of its seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import mpiexec_command

from mpi_qinfer import ExpSparseHeuristic, UniformDistribution, load_perf_trials, perf_test
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.smc.perf_testing import trial_seed

N_TRIALS, N_PARTICLES, N_EXP, SEED = 40, 200, 6, 77

JOB = f"""
import sys, time
from mpi4py import MPI
from mpi_qinfer import ExpSparseHeuristic, TrialFarm, UniformDistribution
from mpi_qinfer.models.builtin import SimplePrecessionModel


class SlowHeuristic(ExpSparseHeuristic):
    def __call__(self):
        time.sleep(0.05)  # a trial of {N_EXP} experiments takes about 0.3 s
        return super().__call__()


farm = TrialFarm(MPI.COMM_WORLD, group_size=int(sys.argv[2]))
farm.perf_test_multiple({N_TRIALS}, SimplePrecessionModel(), {N_PARTICLES}, UniformDistribution([0, 1]), {N_EXP},
                        SlowHeuristic, seed={SEED}, trial_file=sys.argv[1])
print("the run should have been stopped", flush=True)
"""


def start_job(tmp_path, n_ranks, group_size, under_run=False):
    script = tmp_path / "farm_job.py"
    script.write_text(textwrap.dedent(JOB))
    path = tmp_path / "trials.npy"
    argv, env = mpiexec_command(n_ranks, timeout=120)
    program = [sys.executable, *(["-m", "mpi_qinfer", "run"] if under_run else []), str(script), str(path),
               str(group_size)]
    # A session of its own, so that the whole job (launcher and ranks) can be signalled at once.
    job = subprocess.Popen(argv + program, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           start_new_session=True)
    return job, path


def wait_for_finished_trials(job, path, at_least, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.poll() is not None:
            pytest.fail(f"the job ended by itself:\n{job.stdout.read()}\n{job.stderr.read()}")
        if path.exists():
            try:
                if load_perf_trials(path).finished.sum() >= at_least:
                    return
            except (ValueError, OSError, EOFError):  # the file is being created
                pass
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    pytest.fail(f"no {at_least} finished trials within {timeout} s")


def end(job, timeout=60):
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail(f"the job did not end within {timeout} s of being stopped:\n{out}\n{err}")
    return job.returncode, out, err


def assert_finished_trials_are_the_serial_ones(path):
    trials = load_perf_trials(path)
    finished = np.flatnonzero(trials.finished)
    assert 3 <= len(finished) < N_TRIALS, "the job was stopped mid-run"
    assert not trials.failed.any()
    for index in finished:
        want = perf_test(SimplePrecessionModel(), N_PARTICLES, UniformDistribution([0, 1]), N_EXP,
                         ExpSparseHeuristic, seed=trial_seed(SEED, index))
        got = trials.performance[index].data
        for name in want.dtype.names:
            if name != "elapsed_time":
                assert np.array_equal(got[name], want[name]), (index, name)
    unfinished = trials.performance[~trials.finished]
    assert np.ma.getmaskarray(unfinished["loss"]).all()
    return finished


@pytest.mark.parametrize("n_ranks, group_size", [(2, 1), (3, 1), (2, 2)])
def test_a_job_killed_mid_run_keeps_its_finished_trials(tmp_path, n_ranks, group_size):
    job, path = start_job(tmp_path, n_ranks, group_size)
    wait_for_finished_trials(job, path, at_least=3)
    os.killpg(job.pid, signal.SIGKILL)  # the wall time, without a grace period
    end(job)
    assert_finished_trials_are_the_serial_ones(path)


def test_sigterm_under_run_stops_the_job_promptly_and_keeps_its_finished_trials(tmp_path):
    job, path = start_job(tmp_path, 2, 1, under_run=True)
    wait_for_finished_trials(job, path, at_least=3)
    os.killpg(job.pid, signal.SIGTERM)  # as Slurm signals every task at the wall time
    status, out, err = end(job, timeout=30)
    assert status != 0 and "should have been stopped" not in out, (status, out, err)
    assert_finished_trials_are_the_serial_ones(path)
