"""The batch scripts in scripts/ under a real one-node Slurm cluster.

Run by ``make test-slurm``, which brings the cluster up with
``scripts/slurm_cluster.sh`` (installing Slurm where it can) and passes its
configuration in ``MPI_QINFER_SLURM_CONF``; without that variable every test
here is skipped. The jobs are fitted to the node through the scripts' own
parameters (``sbatch`` options before the script, ``VENV``/``SRUN_MPI`` in
``--export``, arguments after it), never by editing the scripts.

Every answer is compared with the serial model's: the demo's estimate with
an in-process serial run, the resumed job's posterior with an uninterrupted
serial run of the same estimation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mpi4py import MPI

from mpi_qinfer.smc.checkpoint import read_metadata

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
VENV = Path(sys.executable).parent.parent
N_RANKS = 2

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.Get_size() > 1, reason="submits its own jobs; serial session only")


@pytest.fixture(scope="module")
def slurm():
    """The environment for Slurm's client commands, or a skip when no test cluster is up."""
    conf = os.environ.get("MPI_QINFER_SLURM_CONF")
    if not conf:
        pytest.skip("no Slurm test cluster: `make test-slurm` brings one up (scripts/slurm_cluster.sh)")
    env = dict(os.environ, SLURM_CONF=conf)
    done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, f"the Slurm test cluster does not answer:\n{done.stdout}{done.stderr}"
    return env


def _export(**extra) -> str:
    variables = {"VENV": str(VENV), "SRUN_MPI": "pmi2", **extra}
    return "--export=ALL," + ",".join(f"{key}={value}" for key, value in variables.items())


def sbatch(slurm, tmp_path, script, args=(), options=(), wait=True, timeout=300):
    """Submit ``scripts/<script>`` (fitted to this node by options only); return (job id, status or None)."""
    argv = ["sbatch", "--parsable", f"--ntasks-per-node={N_RANKS}", "--nodes=1", f"--chdir={tmp_path}",
            f"--output={tmp_path}/%x-%j.out", _export(), *options]
    if wait:
        argv.append("--wait")
    argv += [str(SCRIPTS / script), *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, env=slurm, timeout=timeout)
    job = done.stdout.strip().split(";")[0].splitlines()[0] if done.stdout.strip() else None
    assert job, f"sbatch failed ({done.returncode}):\n{done.stderr}"
    return job, (done.returncode if wait else None)


def job_info(slurm, job) -> dict:
    done = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, env=slurm,
                          timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout))


def output_of(tmp_path, job) -> str:
    files = list(Path(tmp_path).glob(f"*-{job}.out"))
    return files[0].read_text() if files else ""


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def job_ended(slurm, job):
    state = job_info(slurm, job).get("JobState", "")
    return state if state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "") else None


# ------------------------------------------------------------------ the demo script
def test_the_demo_batch_script_runs_on_every_rank(slurm, tmp_path):
    from mpi_qinfer.cli.demo import run_demo

    job, status = sbatch(slurm, tmp_path, "slurm_demo.sbatch",
                         args=["--model", "precession", "--particles", "1000", "--experiments", "30",
                               "--no-progress"],
                         options=["--time=00:05:00"])
    out = output_of(tmp_path, job)
    assert status == 0, out
    assert re.findall(r"^ranks\s+(\d+)$", out, re.M) == [str(N_RANKS)], out  # once: no singletons
    assert f"on {N_RANKS} MPI rank(s)" in out
    serial = run_demo("precession", 1000, 30, progress=False)
    assert f"estimate (repr): {[float(x) for x in serial['estimate']]!r}" in out
    assert "WARNING" not in out


# ------------------------------------------------------------------ the run script
#: The estimation the jobs run: a one-parameter SMC whose model sleeps ``pace`` seconds on every rank in
#: every parallel likelihood call (a slow model, without burning CPU), checkpointed every 10 updates.
JOB = '''
import contextlib, hashlib, sys, time
import numpy as np
from mpi_qinfer import MPIParallelizedModel, SMCUpdater, UniformDistribution
from mpi_qinfer.runtime import termination
from mpi_qinfer.smc.checkpoint import Checkpointer, load_checkpoint
from mpi_qinfer.models.builtin import SimplePrecessionModel


class Paced(SimplePrecessionModel):
    pace = 0.0

    def likelihood(self, outcomes, modelparams, expparams):
        if self.pace and len(modelparams) > 1:
            time.sleep(self.pace)
        return super().likelihood(outcomes, modelparams, expparams)


def estimate(model, until, path=None, resume=False, proxy=None):
    """Updates up to ``until`` (from the checkpoint at ``path`` if ``resume``); the posterior's digest."""
    updater = SMCUpdater(model, 400, UniformDistribution([0, 1]), rng=3)
    simulator = SimplePrecessionModel()
    simulator.rng = data = np.random.default_rng(4)
    parts = dict(proxy=proxy, generators={"data": data})
    if resume:
        load_checkpoint(path, updater, **parts)
    saver = Checkpointer(path, updater, every_updates=10, **parts) if path else None
    with saver or contextlib.nullcontext():
        while len(updater.data_record) < until:
            termination.check()
            expparams = np.array([1.2 ** (len(updater.data_record) % 30)])
            updater.update(simulator.simulate_experiment(np.array([[0.37]]), expparams), expparams)
            if saver:
                saver.step()
            print(f"completed {len(updater.data_record)}", flush=True)
    digest = hashlib.sha256(updater.particle_locations.tobytes() + updater.particle_weights.tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    path, pace, until, mode = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    Paced.pace = pace
    with MPIParallelizedModel(Paced(), serial_threshold=0) as proxy:
        if proxy.is_root:
            print(f"ranks {proxy.n_engines}", flush=True)
            print(f"posterior {estimate(proxy, until, path, mode == 'resume', proxy)}", flush=True)
'''


def _job_script(tmp_path) -> Path:
    script = tmp_path / "estimate.py"
    script.write_text(textwrap.dedent(JOB))
    return script


def _serial_digest(until) -> str:
    """The same estimation, uninterrupted, on the serial model in this process."""
    namespace = {"__name__": "reference", "__file__": __file__}
    exec(compile(textwrap.dedent(JOB), "estimate.py", "exec"), namespace)  # noqa: S102 - our own source above
    return namespace["estimate"](namespace["SimplePrecessionModel"](), until)


def _completed(out) -> int:
    done = re.findall(r"^completed (\d+)$", out, re.M)
    return int(done[-1]) if done else 0


def test_the_run_batch_script_runs_a_script_on_every_rank(slurm, tmp_path):
    script = _job_script(tmp_path)
    job, status = sbatch(slurm, tmp_path, "slurm_run.sbatch", args=[script, tmp_path / "c.npz", 0, 25, "new"],
                         options=["--time=00:05:00"])
    out = output_of(tmp_path, job)
    assert status == 0, out
    assert re.findall(r"^ranks (\d+)$", out, re.M) == [str(N_RANKS)], out
    assert f"posterior {_serial_digest(25)}" in out


def test_scancel_stops_a_running_job_with_its_checkpoint(slurm, tmp_path):
    script = _job_script(tmp_path)
    path = tmp_path / "c.npz"
    job, _ = sbatch(slurm, tmp_path, "slurm_run.sbatch", args=[script, path, 0.2, 100_000, "new"],
                    options=["--time=00:05:00"], wait=False)
    wait_until(lambda: _completed(output_of(tmp_path, job)) >= 12, 120, "the job to make progress")
    cancelled = time.monotonic()
    subprocess.run(["scancel", job], check=True, env=slurm, timeout=30)
    state = wait_until(lambda: job_ended(slurm, job), 60, "the cancelled job to end")
    seconds = time.monotonic() - cancelled
    out = output_of(tmp_path, job)
    assert state == "CANCELLED", job_info(slurm, job)
    assert seconds < 10, f"{seconds:.1f} s"
    assert "SIGTERM" in out, out
    assert read_metadata(path)["n_updates"] == _completed(out)  # nothing lost


def test_a_job_at_its_time_limit_saves_and_a_second_job_resumes_it(slurm, tmp_path):
    script = _job_script(tmp_path)
    path = tmp_path / "c.npz"
    # Slurm checks limits about every 30 s: a --time=1 job ends 60 to 90 s in.
    job, status = sbatch(slurm, tmp_path, "slurm_run.sbatch", args=[script, path, 0.25, 100_000, "new"],
                         options=["--time=1"], timeout=240)
    out = output_of(tmp_path, job)
    info = job_info(slurm, job)
    assert info.get("JobState") == "TIMEOUT", info
    assert status != 0
    assert "SIGTERM" in out, out
    saved = read_metadata(path)["n_updates"]
    assert saved == _completed(out) > 0  # every completed update is in the checkpoint

    until = saved + 15
    job, status = sbatch(slurm, tmp_path, "slurm_run.sbatch", args=[script, path, 0, until, "resume"],
                         options=["--time=00:05:00"])
    out = output_of(tmp_path, job)
    assert status == 0, out
    assert f"posterior {_serial_digest(until)}" in out, out
