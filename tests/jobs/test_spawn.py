"""Workers started from a running Python with MPIParallelizedModel.spawn: as a script and a notebook use it.

Every job runs in its own process (tests/support/spawn_job.py) under a time-out, in its own session so that
whatever the MPI library ends on the way out stays inside the job; the worker processes are checked
to be gone afterwards. Where this MPI library cannot spawn here, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import mpiexec_command

TESTS = Path(__file__).resolve().parents[1]
JOB = TESTS / "support" / "spawn_job.py"
NOTEBOOK = TESTS.parent / "docs" / "examples" / "spawn_notebook.ipynb"
MARK = "mpi_qinfer-spawned-worker"


def job_env(**extra) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        [str(TESTS.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if (Path(sys.executable).parent / "ompi_info").exists():
        # Open MPI starts nothing as root unless told to (spawn() says so itself when not: see below).
        env.update(PRTE_ALLOW_RUN_AS_ROOT="1", PRTE_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.update(extra)
    return env


def run_job(mode: str, timeout: float = 180, env=None, workers: int = 2):
    """Run ``spawn_job.py MODE``; (its RESULT as a dict or None, the CompletedProcess)."""
    try:
        done = subprocess.run([sys.executable, str(JOB), mode], capture_output=True, text=True, timeout=timeout,
                              env=job_env(SPAWN_JOB_WORKERS=str(workers)) if env is None else env,
                              start_new_session=True)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the spawn job {mode!r} hung for {timeout} s:\n{expired.stdout}\n{expired.stderr}")
    return result_of(done.stdout), done


def result_of(stdout: str):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def leftovers(root: int) -> list[str]:
    """Processes a spawn from ``root`` started that still run: its workers, MPICH's and Open MPI's helpers."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv if word]
        if MARK in words and any(word.startswith(f"{root}-") for word in words) or any(
                f"singleton.{os.uname().nodename}.{root}." in word for word in words):
            found.append(f"{entry}: {' '.join(words)[:160]}")
    return found


def wait_gone(pids, root: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids) and not leftovers(root):
            return
        time.sleep(0.1)
    pytest.fail(f"worker processes outlived their root: {[p for p in pids if alive(p)]} {leftovers(root)}")


_WHY_NOT = {}


def why_spawn_fails() -> str | None:
    """None if this MPI library spawns here (one probe per session), else the reason."""
    if "reason" not in _WHY_NOT:
        result, done = run_job("exit", timeout=180)
        if result is None:
            _WHY_NOT["reason"] = f"spawn does not work with this MPI library here: {done.stderr.strip()[-400:]}"
        else:
            _WHY_NOT["reason"] = None
            wait_gone(result["pids"], result["root"])
    return _WHY_NOT["reason"]


@pytest.fixture
def can_spawn():
    reason = why_spawn_fails()
    if reason is not None:
        pytest.skip(reason)


# ----------------------------------------------------------------- the contract
@pytest.mark.parametrize("n_workers", [1, 2])
def test_spawned_proxy_keeps_the_whole_contract_and_matches_an_mpiexec_run(can_spawn, n_workers):
    """Root + spawned workers against as many mpiexec ranks: same answers, draws, estimates; serial checks inside."""
    spawned, done = run_job("spawn", workers=n_workers)
    assert spawned is not None, done.stderr
    argv, env = mpiexec_command(n_workers + 1)
    env = job_env(**{key: env[key] for key in env if key.startswith(("OMPI_", "MPIEXEC"))})
    spmd = subprocess.run(argv + [sys.executable, str(JOB), "spmd"], capture_output=True, text=True, timeout=180,
                          env=env)
    assert spmd.returncode == 0, spmd.stderr
    expected = result_of(spmd.stdout)
    assert expected is not None, spmd.stderr
    for key in ("simulate", "updater", "n_engines", "exception", "synced"):
        assert spawned[key] == expected[key], (key, spawned, expected)
    assert spawned["exception"] == "ZeroDivisionError/remote"  # the model's own exception, a RemoteError cause
    assert spawned["n_engines"] == n_workers + 1
    assert len(spawned["pids"]) == 3 * n_workers  # three spawns in a row in one process
    assert done.returncode == 0, done.stderr
    wait_gone(spawned["pids"], spawned["root"])


def test_interpreter_exit_stops_the_workers(can_spawn):
    result, done = run_job("exit")
    assert result is not None and done.returncode == 0, done.stderr
    wait_gone(result["pids"], result["root"])


def test_a_proxy_dropped_without_shutdown_stops_its_workers(can_spawn):
    result, done = run_job("drop")
    assert result is not None and done.returncode == 0, done.stderr
    assert result["gone"] is True
    wait_gone(result["pids"], result["root"])


def test_a_distributed_updater_keeps_its_spawned_engine_alive(can_spawn):
    """DistributedSMCUpdater(MPIParallelizedModel.spawn(...), ...): the proxy is gone, the updater works on."""
    result, done = run_job("updater-only", workers=2)
    assert result is not None and done.returncode == 0, done.stderr
    assert isinstance(result["updater"], str)


def test_a_killed_root_leaves_no_worker_behind(can_spawn):
    """SIGKILL (a kernel its manager killed): the workers leave without a word from the root."""
    process = subprocess.Popen([sys.executable, str(JOB), "kill"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=job_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and not line.startswith("RESULT "):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        result = result_of(line)
        assert result is not None, process.stderr.read() if process.poll() is not None else "no answer"
        assert all(alive(pid) for pid in result["pids"])
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    wait_gone(result["pids"], result["root"])


# ----------------------------------------------------------------- failures
def test_a_model_class_from_main_is_a_clear_error(can_spawn):
    result, done = run_job("main-class")
    assert result is not None, done.stderr
    assert result["kind"] == "SpawnError"
    assert "LocalModel" in result["error"] and "notebook cell" in result["error"] and "module" in result["error"]
    assert result["seconds"] < 60
    wait_gone([], result["root"])


def test_a_missing_python_is_a_clear_error_at_once():
    result, done = run_job("bad-python", timeout=60)
    assert result is not None, done.stderr
    assert result["kind"] == "SpawnError" and "/nonexistent/python3" in result["error"]
    assert "mpiexec -n N" in result["error"]  # the SPMD alternative, named
    assert result["seconds"] < 5


def test_workers_that_never_start_give_a_clear_error_within_the_timeout(can_spawn):
    """A worker command that never reaches MPI_Init: SpawnError after the time-out, then the process exits."""
    began = time.monotonic()
    result, done = run_job("hang", timeout=90, env=job_env(SPAWN_JOB_TIMEOUT="6"))
    assert result is not None, done.stderr
    assert result["kind"] == "SpawnError" and "did not complete within 6 s" in result["error"]
    assert "mpiexec -n N" in result["error"]
    assert 5 < result["seconds"] < 20
    assert time.monotonic() - began < 60  # and the interpreter left (without MPI_Finalize) instead of hanging
    _end_sleepers(result["root"])


def _end_sleepers(root: int) -> None:
    """The never-started workers belong to the MPI launcher, which may leave them; end them after the test."""
    for line in leftovers(root):
        try:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(not (Path(sys.executable).parent / "ompi_info").exists() or os.geteuid() != 0,
                    reason="Open MPI as root only")
def test_open_mpi_as_root_without_its_permission_is_a_clear_error():
    env = job_env()
    for name in ("PRTE_ALLOW_RUN_AS_ROOT", "PRTE_ALLOW_RUN_AS_ROOT_CONFIRM"):
        env.pop(name, None)
    result, done = run_job("bad-root", timeout=60, env=env)
    assert result is not None, done.stderr
    assert result["kind"] == "SpawnError" and "PRTE_ALLOW_RUN_AS_ROOT=1" in result["error"]
    assert result["seconds"] < 5


# ----------------------------------------------------------------- the notebook
def test_the_notebook_spawns_checks_and_leaves_nothing_after_a_kernel_restart(can_spawn, tmp_path, monkeypatch):
    """docs/examples/spawn_notebook.ipynb in a real Jupyter kernel of this Python, then a restart."""
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra (pip install 'mpi_qinfer[notebook]')")
    pytest.importorskip("nbclient", reason="needs the notebook extra (pip install 'mpi_qinfer[notebook]')")
    pytest.importorskip("ipykernel", reason="needs the notebook extra (pip install 'mpi_qinfer[notebook]')")
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    pids_file = tmp_path / "pids.json"
    # The kernel is this Python, with the environment a Jupyter server would give it (no venv bin on PATH).
    env = job_env(SPAWN_NOTEBOOK_PIDS=str(pids_file), PATH="/usr/bin:/bin")
    # A kernel spec of this Python alone, whatever other kernels this machine has.
    spec = tmp_path / "jupyter" / "kernels" / "mpiq-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mpi_qinfer test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    manager = KernelManager(kernel_name="mpiq-test")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = NotebookClient(notebook, km=manager, timeout=240, kernel_name="mpiq-test")
    try:
        with client.setup_kernel(cwd=str(tmp_path)):
            client.execute()  # raises CellExecutionError if any cell fails
            smc_cell = next(cell for cell in notebook.cells if "Progress(" in cell.source)
            shown = "".join(output.get("text", "") for output in smc_cell.outputs)
            assert "/30 [" in shown and "|" in shown, shown  # a tqdm bar in the notebook, not the batch log's lines
            first = json.loads(pids_file.read_text())
            assert first["equal"] is True
            assert all(alive(pid) for pid in first["live"])  # the proxy still open when the cells ended
            kernel_pid = first["root"]
            manager.restart_kernel(now=False)
            wait_gone(first["live"] + first["closed"], kernel_pid)
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
