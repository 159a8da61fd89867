"""Graceful termination: a signalled job stops within seconds, with its checkpoint written and nothing lost.

The job tests launch their own ``mpiexec`` (they are serial tests), send
SIGTERM to ``mpiexec``, to the root or to one worker, during a long parallel
call or while the workers are idle, at 2 and 3 ranks, and check that the job
ends within 10 s with status 143 and a checkpoint holding every completed
update.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from conftest import MPIEXEC, mpiexec_command, needs_mpiexec

from mpi_qinfer.runtime import termination
from mpi_qinfer.runtime.termination import TerminationRequested
from mpi_qinfer.smc.checkpoint import read_metadata

#: Under Open MPI (its mpirun next to this Python) or MPICH.
OPEN_MPI = (MPIEXEC.parent / "ompi_info").exists()
#: What stops a job when sent to the launcher: MPICH's mpiexec passes SIGTERM on; Open MPI's mpirun kills
#: the ranks a fraction of a second after passing it on, but passes SIGUSR1 on and waits (LAUNCHER_GAPS).
LAUNCHER_STOP = signal.SIGUSR1 if OPEN_MPI else signal.SIGTERM


# ------------------------------------------------------------------ in this process
@pytest.fixture
def installed():
    termination.install()
    yield
    termination.uninstall()


def test_termination_requested_is_not_an_exception():
    error = TerminationRequested(signal.SIGTERM, 1)
    assert isinstance(error, BaseException) and not isinstance(error, Exception)
    assert error.exit_status == 143 and error.rank == 1 and "SIGTERM on rank 1" in str(error)
    assert TerminationRequested(signal.SIGINT).exit_status == 130


def test_rank_exited_names_the_ranks_their_status_and_what_waited():
    from mpi_qinfer.runtime.termination import RankExited

    one = RankExited({1: 0}, 0, "builds an Engine")
    assert isinstance(one, RuntimeError) and one.ended == {1: 0}
    assert str(one) == ("rank 1 of this communicator has ended (exit status 0) while rank 0 builds an Engine; "
                        "the ranks still running would wait for it forever")
    assert "ranks 1, 2 of this communicator have ended (exit status 0, exit status 3)" in str(
        RankExited({2: 3, 1: 0}, 0, "builds an Engine"))


def test_without_run_joining_and_finishing_communicate_nothing():
    from mpi4py import MPI

    assert termination._state.exit_comm is None
    termination.join(MPI.COMM_WORLD, "builds an Engine")  # no barrier: the other ranks would not match it
    termination.finish(0)


def test_check_does_nothing_when_not_installed():
    assert not termination.watching()
    termination.check()


def test_a_signal_only_sets_a_flag_and_check_raises(installed):
    termination.check()  # nothing yet
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100):  # the handler runs between bytecodes
        if termination.requested() is not None:
            break
        time.sleep(0.001)
    assert termination.requested() == signal.SIGTERM
    with pytest.raises(TerminationRequested) as raised:
        termination.check()
    assert raised.value.signum == signal.SIGTERM
    with pytest.raises(TerminationRequested):  # the request stands until the run has stopped
        termination.check()
    assert termination.stopped_by() == signal.SIGTERM


def test_a_repeat_within_the_grace_period_is_the_same_request(installed, monkeypatch):
    aborted = []
    monkeypatch.setattr(termination, "_abort_now", aborted.append)
    termination._handle(signal.SIGTERM, None)
    termination._handle(signal.SIGTERM, None)  # srun and the step daemon both deliver it
    assert aborted == [] and termination._state.repeats == 1
    termination._state.first_at -= termination.REPEAT_GRACE_SECONDS
    termination._handle(signal.SIGINT, None)
    assert aborted == [signal.SIGINT]


def test_uninstall_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    termination.install()
    assert signal.getsignal(signal.SIGTERM) is termination._handle
    termination.install()  # idempotent
    termination.uninstall()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert not termination.watching() and termination.requested() is None


def test_a_second_install_adds_the_signals_not_caught_yet():
    kept = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)}
    try:
        termination.install()  # as `run` does: SIGTERM, SIGINT and SIGUSR1
        assert termination._state.signals == (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
        termination.install((signal.SIGUSR2, signal.SIGTERM))  # as a script under `run` may add one
        assert all(signal.getsignal(s) is termination._handle for s in kept)
        _signal_self(signal.SIGUSR2)
        assert termination.requested() == signal.SIGUSR2
        with pytest.raises(TerminationRequested, match="SIGUSR2") as raised:
            termination.check()
        assert raised.value.exit_status == 140
    finally:
        termination.uninstall()
    assert {s: signal.getsignal(s) for s in kept} == kept


def test_install_initialises_mpi_before_it_takes_the_signals(monkeypatch):
    order = []
    monkeypatch.setattr(termination, "_initialize_mpi", lambda: order.append("MPI_Init"))
    monkeypatch.setattr(termination.signal, "signal", lambda signum, handler: order.append(signum))
    termination.install((signal.SIGHUP,))
    assert order == ["MPI_Init", signal.SIGHUP]  # MPI_Init would replace a handler set before it
    termination._state = termination._State()


@pytest.mark.parametrize("environ, signals, named", [
    ({"HYDI_CONTROL_FD": "7"}, (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1), None),
    ({"HYDI_CONTROL_FD": "7"}, (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2),
     ("SIGHUP, SIGUSR2 sent to MPICH's mpiexec (Hydra)", "ends the job at once", "Send SIGTERM, SIGINT or SIGUSR1")),
    ({"PRTE_LAUNCHED": "1"}, (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1),
     ("SIGTERM, SIGINT sent to Open MPI's mpirun", "kills the ranks", "Send SIGUSR1 or SIGUSR2")),
    ({"PRTE_LAUNCHED": "1"}, (signal.SIGUSR1, signal.SIGUSR2), None),
    ({"SLURM_PROCID": "0"}, (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2), None),  # srun signals every task
    ({}, (signal.SIGHUP,), None),
])
def test_the_launcher_warning_names_the_signals_it_does_not_pass_on(environ, signals, named):
    warning = termination.launcher_warning(signals, environ)
    if named is None:
        assert warning is None
    else:
        assert all(part in warning for part in named), warning
        assert "signal the ranks themselves" in warning


def test_install_warns_on_rank_0_only(monkeypatch):
    monkeypatch.setattr(termination, "_initialize_mpi", lambda: None)
    for name in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PRTE_LAUNCHED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HYDI_CONTROL_FD", "7")
    try:
        monkeypatch.setenv("PMI_RANK", "0")
        with pytest.warns(RuntimeWarning, match="SIGUSR2 sent to MPICH's mpiexec"):
            termination.install((signal.SIGUSR2,))
        termination.uninstall()
        monkeypatch.setenv("PMI_RANK", "1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            termination.install((signal.SIGUSR2,))
    finally:
        termination.uninstall()


def _signal_self(signum):
    os.kill(os.getpid(), signum)
    for _ in range(100):  # the handler runs between bytecodes
        if termination.requested() is not None:
            return
        time.sleep(0.001)


def test_a_stop_waits_for_the_resampling_that_ends_an_update(installed):
    from mpi4py import MPI

    from mpi_qinfer import DistributedSMCUpdater, UniformDistribution
    from mpi_qinfer.models import SimplePrecessionModel

    class SignalledInUpdate(SimplePrecessionModel):
        signal_now = False

        def likelihood(self, outcomes, modelparams, expparams):
            if self.signal_now:
                _signal_self(signal.SIGTERM)
            return super().likelihood(outcomes, modelparams, expparams)

    model = SignalledInUpdate()
    # resample_thresh=1: every update that changes the weights is followed by a resampling.
    with DistributedSMCUpdater(model, 200, UniformDistribution([0, 1]), resample_thresh=1.0, rng=3,
                               comm=MPI.COMM_SELF) as updater:
        updater.update(0, np.array([2.0]))
        assert updater.resample_count == 1
        model.signal_now = True
        updater.update(1, np.array([3.0]))  # the signal comes during the update, before its resampling
        assert termination.requested() == signal.SIGTERM
        assert (len(updater.data_record), updater.resample_count) == (2, 2)  # the update is whole
        with pytest.raises(TerminationRequested):  # the next operation is the safe point
            updater.update(0, np.array([4.0]))
        assert len(updater.data_record) == 2
    assert updater.closed  # closing is never stopped


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as in a plain script; restored afterwards."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    termination.uninstall()
    yield
    signal.signal(signal.SIGINT, before)
    termination.uninstall()


def test_a_ctrl_c_inside_a_sharded_update_is_held_until_the_next_operation(python_sigint):
    from mpi4py import MPI

    from mpi_qinfer import DistributedSMCUpdater, UniformDistribution
    from mpi_qinfer.models import SimplePrecessionModel

    class InterruptedInUpdate(SimplePrecessionModel):
        interrupt = False

        def likelihood(self, outcomes, modelparams, expparams):
            if self.interrupt:
                self.interrupt = False
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)  # the handler runs in here
            return super().likelihood(outcomes, modelparams, expparams)

    model = InterruptedInUpdate()
    with DistributedSMCUpdater(model, 100, UniformDistribution([0, 1]), rng=3, comm=MPI.COMM_SELF) as updater:
        updater.update(0, np.array([2.0]))  # its first safe point places the handler
        model.interrupt = True
        updater.update(1, np.array([3.0]))  # interrupted inside, finished all the same
        assert len(updater.data_record) == 2
        with pytest.raises(KeyboardInterrupt):  # at the next operation, before it sends anything
            updater.update(0, np.array([4.0]))
        assert len(updater.data_record) == 2
        updater.update(0, np.array([4.0]))  # raised once
        with pytest.raises(KeyboardInterrupt):  # outside an operation, Python's own behaviour
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert updater.closed


def test_a_second_ctrl_c_is_raised_at_once(python_sigint):
    termination._state.held = signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        termination._hold_interrupt(signal.SIGINT, sys._getframe())
    termination.check()  # the held one went with it


def test_only_the_roots_collective_methods_hold_a_ctrl_c():
    from mpi_qinfer.distributed.loop import CommandLoop

    class Loop(CommandLoop):
        def operation(self):
            return termination._inside_collective(sys._getframe())

        def serve(self):
            return self.operation()  # a worker serving: an interrupt there ends the job as before

    assert Loop().operation() is True
    assert Loop().serve() is False
    assert termination._inside_collective(sys._getframe()) is False


# ------------------------------------------------------------------ whole jobs
JOB = """
import os, sys, time
import numpy as np
from mpi4py import MPI
from mpi_qinfer import MPIParallelizedModel, SMCUpdater, UniformDistribution
from mpi_qinfer.runtime import termination
from mpi_qinfer.smc.checkpoint import Checkpointer
from mpi_qinfer.models.builtin import SimplePrecessionModel

path, phase = sys.argv[1], sys.argv[2]
rank = MPI.COMM_WORLD.Get_rank()
CALL_SECONDS = {"call": 2.0, "long": 60.0}.get(phase, 0.0)


class Slow(SimplePrecessionModel):
    def likelihood(self, outcomes, modelparams, expparams):
        if CALL_SECONDS and len(modelparams) > 1:
            print(f"rank {rank} in call", flush=True)
            time.sleep(CALL_SECONDS)
        return super().likelihood(outcomes, modelparams, expparams)


with open(f"{path}.pid{rank}", "w") as file:
    file.write(str(os.getpid()))
with MPIParallelizedModel(Slow(), serial_threshold=0) as proxy:
    if proxy.is_root:
        updater = SMCUpdater(proxy, 300, UniformDistribution([0, 1]), rng=5)
        truth, data = np.array([[0.4]]), np.random.default_rng(6)
        simulator = SimplePrecessionModel()
        simulator.rng = data
        with Checkpointer(path, updater, proxy=proxy, generators={"data": data}, every_updates=1000) as saved:
            for k in range(10_000):
                termination.check()
                if phase == "idle":
                    time.sleep(0.2)  # the root is busy on its own: the workers wait
                expparams = np.array([1.1 ** (k % 40)])
                updater.update(simulator.simulate_experiment(truth, expparams), expparams)
                saved.step()
                print(f"completed {len(updater.data_record)}", flush=True)
print(f"rank {rank} left the with block", flush=True)
"""


class Job:
    """A job under ``mpiexec ... python -m mpi_qinfer run`` (or plain ``python``), read line by line."""

    def __init__(self, tmp_path, n_ranks, phase, idle="backoff", source=JOB, run=True):
        script = tmp_path / "job.py"
        script.write_text(textwrap.dedent(source))
        self.checkpoint = tmp_path / "run.npz"
        argv, env = mpiexec_command(n_ranks, timeout=60)
        env["MPI_QINFER_IDLE"] = idle  # backoff by default: two cores for up to three ranks
        python = [sys.executable, "-m", "mpi_qinfer", "run"] if run else [sys.executable]
        self.process = subprocess.Popen(
            argv + python + [str(script), str(self.checkpoint), phase],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.n_ranks = n_ranks
        self.lines = []

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if text in line:
                return
        self.kill()
        pytest.fail(f"the job never printed {text!r}:\n" + "\n".join(self.lines) + self.process.stderr.read())

    def finish(self, timeout):
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            pytest.fail(f"the job did not end within {timeout} s of the signal:\n{out}\n{err}")
        self.lines += out.splitlines()
        return err

    def pid(self, rank) -> int:
        return int((self.checkpoint.parent / f"{self.checkpoint.name}.pid{rank}").read_text())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()

    @property
    def completed(self) -> int:
        done = [int(line.split()[1]) for line in self.lines if line.startswith("completed ")]
        return done[-1] if done else 0


def _target_pid(job, target, n_ranks):
    if target == "mpiexec":
        return job.process.pid
    return job.pid(0 if target == "root" else n_ranks - 1)


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("phase", ["call", "idle"])
@pytest.mark.parametrize("target", ["mpiexec", "root", "worker"])
def test_sigterm_ends_the_job_within_seconds_with_a_checkpoint(tmp_path, n_ranks, phase, target):
    if target == "mpiexec" and OPEN_MPI:
        pytest.skip("Open MPI's mpirun kills the ranks soon after it passes SIGTERM on (install warns); "
                    "test_sigusr1_stops_a_run_as_sigterm_does sends it SIGUSR1")
    job = Job(tmp_path, n_ranks, phase)
    try:
        job.wait_for("completed 3")
        if phase == "call":
            job.wait_for(f"rank {n_ranks - 1} in call")  # every rank is inside a 2-second call
        sent = time.monotonic()
        os.kill(_target_pid(job, target, n_ranks), signal.SIGTERM)
        err = job.finish(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode == 143, err
    assert "SIGTERM" in err, err
    saved = read_metadata(job.checkpoint)
    assert saved["n_updates"] == job.completed >= 3  # every completed update is in the checkpoint
    # The workers were released by the root's `with`, not killed.
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


@needs_mpiexec
@pytest.mark.parametrize("target", ["root", "worker"])
def test_spinning_workers_see_signals_too(tmp_path, target):
    # A spinning worker would sit in MPI_Bcast, where no Python signal handler runs; watched, it tests an Ibcast.
    job = Job(tmp_path, 2, "idle", idle="spin")
    try:
        job.wait_for("completed 3")
        sent = time.monotonic()
        os.kill(_target_pid(job, target, 2), signal.SIGTERM)
        err = job.finish(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode == 143, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_ctrl_c_on_the_root_inside_a_call_under_plain_mpiexec_saves_and_ends(tmp_path, n_ranks):
    job = Job(tmp_path, n_ranks, "call", run=False)  # no termination.install(): Python's own SIGINT
    try:
        job.wait_for("completed 3")
        job.wait_for(f"rank {n_ranks - 1} in call")
        sent = time.monotonic()
        os.kill(job.pid(0), signal.SIGINT)
        err = job.finish(timeout=40)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode != 0 and "KeyboardInterrupt" in err, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed >= 3
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("target", ["mpiexec", "every rank"])
def test_sigusr1_stops_a_run_as_sigterm_does(tmp_path, n_ranks, target):
    # Slurm's --signal=USR1@120 signals every task; a user may signal the launcher. Both libraries pass USR1 on.
    job = Job(tmp_path, n_ranks, "idle")
    try:
        job.wait_for("completed 3")
        sent = time.monotonic()
        pids = [job.process.pid] if target == "mpiexec" else [job.pid(rank) for rank in range(n_ranks)]
        for pid in pids:
            os.kill(pid, signal.SIGUSR1)
        err = job.finish(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode == 138, err
    assert "SIGUSR1" in err, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed >= 3
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


# The job, with termination installed by the script itself before MPI starts (no `run`).
EARLY_INSTALL_JOB = """
import signal
from mpi_qinfer.runtime import termination
termination.install((signal.SIGTERM, signal.SIGHUP))  # MPI_Init comes later in a plain script
""" + JOB


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_sighup_reaches_a_handler_installed_before_mpi_starts(tmp_path, n_ranks):
    # MPICH and Open MPI put their own handler on SIGHUP in MPI_Init: installed before it, ours was lost.
    job = Job(tmp_path, n_ranks, "idle", source=EARLY_INSTALL_JOB, run=False)
    try:
        job.wait_for("completed 3")
        sent = time.monotonic()
        for rank in range(n_ranks):  # as scancel --signal=HUP signals every task
            os.kill(job.pid(rank), signal.SIGHUP)
        err = job.finish(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode != 0 and "TerminationRequested: the run was asked to stop by SIGHUP" in err, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed >= 3
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


@needs_mpiexec
def test_run_says_once_which_signals_its_launcher_does_not_pass_on(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import signal\nfrom mpi_qinfer.runtime import termination\n"
                      "termination.install((signal.SIGHUP, signal.SIGUSR2))\n")
    argv, env = mpiexec_command(3, timeout=60)
    done = subprocess.run(argv + [sys.executable, "-m", "mpi_qinfer", "run", str(script)],
                          capture_output=True, text=True, env=env, timeout=90)
    assert done.returncode == 0, done.stderr
    if OPEN_MPI:
        expected = ["SIGTERM, SIGINT sent to Open MPI's mpirun", "SIGHUP sent to Open MPI's mpirun"]
    else:
        expected = ["SIGHUP, SIGUSR2 sent to MPICH's mpiexec (Hydra)"]
    for text in expected:
        assert done.stderr.count(text) == 1, done.stderr  # from rank 0 only
    assert done.stderr.count("RuntimeWarning") == len(expected), done.stderr


@needs_mpiexec
def test_a_repeated_signal_is_one_request(tmp_path):
    job = Job(tmp_path, 2, "call")
    try:
        job.wait_for("completed 2")
        job.wait_for("rank 1 in call")
        os.kill(job.pid(0), signal.SIGTERM)
        os.kill(job.pid(0), signal.SIGTERM)  # as srun and slurmstepd both deliver a cancellation
        err = job.finish(timeout=30)
    finally:
        job.kill()
    assert job.process.returncode == 143, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed


@needs_mpiexec
def test_a_second_signal_aborts_at_once(tmp_path):
    job = Job(tmp_path, 2, "long")  # 60-second calls: only an abort ends one early
    try:
        job.wait_for("rank 1 in call")
        os.kill(job.pid(0), signal.SIGTERM)
        time.sleep(termination.REPEAT_GRACE_SECONDS + 0.5)
        sent = time.monotonic()
        os.kill(job.pid(0), signal.SIGTERM)
        err = job.finish(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        job.kill()
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode != 0
    assert "second SIGTERM: aborting the job now (status 143)" in err, err


# ------------------------------------------------------------------ a sharded updater
SHARDED_JOB = """
import os, sys, time
import numpy as np
from mpi4py import MPI
from mpi_qinfer import DistributedSMCUpdater, UniformDistribution
from mpi_qinfer.smc.checkpoint import Checkpointer
from mpi_qinfer.engine import Engine
from mpi_qinfer.models import SimplePrecessionModel

path, loop = sys.argv[1], sys.argv[2]
rank = MPI.COMM_WORLD.Get_rank()


class Slow(SimplePrecessionModel):
    # Every rank spends a while inside each update, so that a signal finds the ranks inside one.
    def likelihood(self, outcomes, modelparams, expparams):
        if rank == 0:
            print("root inside an update", flush=True)
        time.sleep(0.3)
        return super().likelihood(outcomes, modelparams, expparams)


def estimate(updater):
    data = SimplePrecessionModel()
    data.rng = np.random.default_rng(6)
    with Checkpointer(path, updater, every_updates=1000) as saved:
        for k in range(10_000):
            expparams = np.array([1.1 ** (k % 40)])
            updater.update(data.simulate_experiment(np.array([[0.4]]), expparams), expparams)
            saved.step()
            print(f"completed {len(updater.data_record)}", flush=True)


with open(f"{path}.pid{rank}", "w") as file:
    file.write(str(os.getpid()))
arguments = (Slow(), 300, UniformDistribution([0, 1]))
if loop == "own":  # the updater's own command loop
    with DistributedSMCUpdater(*arguments, rng=5) as updater:
        if updater.is_root:
            estimate(updater)
else:  # the commands travel through an engine's worker loop
    engine = Engine()
    updater = DistributedSMCUpdater(*arguments, rng=5, engine=engine)
    with engine:
        if engine.is_root:
            with updater:
                estimate(updater)
print(f"rank {rank} left the with block", flush=True)
"""


def _stopped_sharded_job(tmp_path, n_ranks, loop, target, signum, run):
    """Start a sharded job, signal ``target`` after three updates; return the job and seconds to its end."""
    job = Job(tmp_path, n_ranks, loop, source=SHARDED_JOB, run=run)
    try:
        job.wait_for("completed 3")
        job.wait_for("root inside an update")
        sent = time.monotonic()
        os.kill(job.pid(0 if target == "root" else n_ranks - 1), signum)
        err = job.finish(timeout=40)
        return job, err, time.monotonic() - sent
    finally:
        job.kill()


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("loop", ["own", "engine"])
def test_sigterm_to_a_worker_of_a_sharded_updater_stops_the_run_with_a_checkpoint(tmp_path, n_ranks, loop):
    job, err, seconds = _stopped_sharded_job(tmp_path, n_ranks, loop, "worker", signal.SIGTERM, run=True)
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode == 143, err
    assert f"SIGTERM on rank {n_ranks - 1}" in err, err  # the worker's notice reached the root
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed >= 3
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("loop", ["own", "engine"])
def test_ctrl_c_on_the_root_inside_a_sharded_update_under_plain_mpiexec_saves_and_ends(tmp_path, n_ranks, loop):
    # No `run`, no termination.install(): the interrupt waits until the update is whole on every rank.
    job, err, seconds = _stopped_sharded_job(tmp_path, n_ranks, loop, "root", signal.SIGINT, run=False)
    assert seconds < 10, f"{seconds:.1f} s"
    assert job.process.returncode != 0, err
    assert "KeyboardInterrupt" in err, err
    assert read_metadata(job.checkpoint)["n_updates"] == job.completed >= 3
    assert all(f"rank {r} left the with block" in job.output for r in range(1, n_ranks)), job.output


# ------------------------------------------------------------------ the demo
DEMO = ["-m", "mpi_qinfer", "demo", "--model", "ising", "--particles", "2000", "--experiments", "150",
        "--no-progress", "--serial-threshold", "0"]


def _demo(extra, n_ranks=2, timeout=300, until=None):
    argv, env = mpiexec_command(n_ranks, timeout=timeout)
    env["MPI_QINFER_IDLE"] = "backoff"
    process = subprocess.Popen(argv + [sys.executable, *DEMO, *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        if until is not None:
            until(process)
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, err


def _estimate_line(out):
    return [line for line in out.splitlines() if line.startswith("estimate (repr)")]


@needs_mpiexec
def test_the_demo_killed_half_way_resumes_to_the_uninterrupted_estimate(tmp_path):
    path = tmp_path / "demo.npz"

    def stop_after_first_checkpoint(process):
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(LAUNCHER_STOP)  # to mpiexec, which forwards it to every rank

    status, _, err = _demo(["--checkpoint", str(path), "--checkpoint-every", "10"], until=stop_after_first_checkpoint)
    assert status == 128 + LAUNCHER_STOP, err
    assert f"continue with --resume {path}" in err
    stopped_at = read_metadata(path)["n_updates"]
    assert 10 <= stopped_at < 150
    status, resumed, err = _demo(["--resume", str(path)])
    assert status == 0, err
    status, whole, err = _demo([])
    assert status == 0, err
    assert _estimate_line(resumed) == _estimate_line(whole) != []


def test_the_demo_refuses_a_checkpoint_of_another_run(tmp_path):
    from mpi_qinfer.cli.demo import run_demo
    from mpi_qinfer.smc.checkpoint import CheckpointError

    path = tmp_path / "demo.npz"
    run_demo("precession", 300, 5, seed=1, progress=False, checkpoint=path)
    with pytest.raises(CheckpointError, match="seed 1 there, 2 here"):
        run_demo("precession", 300, 10, seed=2, progress=False, resume=path)
    with pytest.raises(CheckpointError, match="particles"):
        run_demo("precession", 400, 10, seed=1, progress=False, resume=path)
    whole = run_demo("precession", 300, 10, seed=1, progress=False)
    again = run_demo("precession", 300, 10, seed=1, progress=False, resume=path)
    assert np.array_equal(again["estimate"], whole["estimate"])
    assert np.array_equal(again["history_mean"], whole["history_mean"])


@needs_mpiexec
def test_the_demo_under_run_stops_with_the_signals_status_without_an_abort(tmp_path):
    path = tmp_path / "demo.npz"

    def stop_after_first_checkpoint(process):
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(LAUNCHER_STOP)

    argv, env = mpiexec_command(2, timeout=300)
    env["MPI_QINFER_IDLE"] = "backoff"
    process = subprocess.Popen(argv + [sys.executable, "-m", "mpi_qinfer", "run", *DEMO, "--checkpoint", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stop_after_first_checkpoint(process)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + LAUNCHER_STOP, err
    assert "MPI_Abort" not in err and "aborting" not in err, err
    assert read_metadata(path)["n_updates"] >= 10
