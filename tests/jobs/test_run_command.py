"""Tests of ``python -m mpi_qinfer run``: a failure on any rank must end the whole job, quickly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import mpiexec_command, needs_mpiexec

TIMEOUT = 60  # seconds per subprocess; a hang fails the test well before the 30 s budget matters
ABORT_BUDGET = 30  # seconds a failing job may take to end


def run_spmd(tmp_path, source, *extra, n_ranks=2, module=False):
    """Write ``source`` to tmp_path and run it under ``mpiexec -n n_ranks python -m mpi_qinfer run``."""
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(source))
    target = ["-m", "job"] if module else [str(path)]
    launcher, env = mpiexec_command(n_ranks, timeout=TIMEOUT - 10)
    command = [*launcher, sys.executable, "-m", "mpi_qinfer", "run", *target, *extra]
    if module:
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    result.seconds = time.monotonic() - start
    return result


def assert_aborted(result, rank, message):
    assert result.returncode != 0, result.stdout + result.stderr
    assert result.seconds < ABORT_BUDGET
    assert f"[rank {rank}] Traceback (most recent call last):" in result.stderr
    assert f"[rank {rank}] {message}" in result.stderr


@needs_mpiexec
def test_normal_exit_passes_arguments(tmp_path):
    result = run_spmd(tmp_path, """
        import sys
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        comm.Barrier()
        print(f"rank {comm.Get_rank()} argv {sys.argv[1:]} name {__name__}")
    """, "--flag", "1")
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        assert f"rank {rank} argv ['--flag', '1'] name __main__" in result.stdout


@needs_mpiexec
def test_module_form(tmp_path):
    result = run_spmd(tmp_path, """
        import sys
        from mpi4py import MPI
        print(f"module rank {MPI.COMM_WORLD.Get_rank()} argv {sys.argv[1:]}")
    """, "x", module=True)
    assert result.returncode == 0, result.stderr
    assert "module rank 1 argv ['x']" in result.stdout


@needs_mpiexec
def test_exception_on_root_aborts_the_job(tmp_path):
    result = run_spmd(tmp_path, """
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        if comm.Get_rank() == 0:
            raise RuntimeError("boom on the root")
        comm.Barrier()  # the workers would wait here forever
    """)
    assert_aborted(result, 0, "RuntimeError: boom on the root")


@needs_mpiexec
def test_exception_on_worker_aborts_the_job(tmp_path):
    result = run_spmd(tmp_path, """
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        if comm.Get_rank() == 1:
            raise ValueError("boom on rank 1")
        comm.Barrier()  # the root would wait here forever
    """)
    assert_aborted(result, 1, "ValueError: boom on rank 1")
    assert "[rank 0]" not in result.stderr


@needs_mpiexec
def test_model_error_on_worker_reaches_root_and_aborts(tmp_path):
    result = run_spmd(tmp_path, """
        import numpy as np
        from mpi4py import MPI
        from mpi_qinfer import MPIParallelizedModel
        from mpi_qinfer.models.builtin import SimplePrecessionModel

        class Fragile(SimplePrecessionModel):
            def likelihood(self, outcomes, modelparams, expparams):
                if MPI.COMM_WORLD.Get_rank() == 1:
                    raise ZeroDivisionError("model failed on rank 1")
                return super().likelihood(outcomes, modelparams, expparams)

        with MPIParallelizedModel(Fragile(), serial_threshold=0) as model:
            if model.is_root:
                model.likelihood(np.array([0]), np.full((10, 1), 0.5), np.array([1.0]))
        MPI.COMM_WORLD.Barrier()
    """)
    assert_aborted(result, 0, "mpi_qinfer.errors.RemoteError")
    assert "model failed on rank 1" in result.stderr


@needs_mpiexec
def test_sys_exit_nonzero_on_all_ranks_fails_the_job(tmp_path):
    result = run_spmd(tmp_path, """
        import sys
        sys.exit(3)
    """)
    assert result.returncode != 0
    assert result.seconds < ABORT_BUDGET
    assert "exited with status 3" in result.stderr


@needs_mpiexec
def test_sys_exit_zero_is_a_normal_exit(tmp_path):
    result = run_spmd(tmp_path, """
        import sys
        print("before exit")
        sys.exit(0)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("before exit") == 2


# ------------------------------------------------------------------ a rank that ends before the others
EARLY_END = """
    import sys, time
    import numpy as np
    from mpi4py import MPI
    from mpi_qinfer import DistributedSMCUpdater, MPIParallelizedModel, UniformDistribution
    from mpi_qinfer.models import SimplePrecessionModel

    rank, how = MPI.COMM_WORLD.Get_rank(), sys.argv[1]
    if rank == 1:
        if how == "exit":
            sys.exit(0)
    else:
        time.sleep(0.5)  # rank 1 is long gone when the others start building
        if how == "updater":
            with DistributedSMCUpdater(SimplePrecessionModel(), 60, UniformDistribution([0, 1]), rng=1) as u:
                pass
        else:
            with MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0) as model:
                if model.is_root:
                    print("root has", model.likelihood(np.array([0]), np.full((6, 1), 0.5), np.array([1.0])).shape)
        print(f"rank {rank} should never get here", flush=True)
"""


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("how", ["exit", "return", "updater"])
def test_a_rank_that_ends_before_the_others_build_a_proxy_ends_the_job(tmp_path, n_ranks, how):
    # "exit": sys.exit(0); "return": the script just ends on rank 1; "updater": a DistributedSMCUpdater waits for it.
    result = run_spmd(tmp_path, EARLY_END, how if how != "return" else "proxy", n_ranks=n_ranks)
    assert result.returncode != 0, result.stdout + result.stderr
    assert result.seconds < ABORT_BUDGET
    assert "should never get here" not in result.stdout
    assert "rank 1 of this communicator has ended (exit status 0) while rank 0 builds" in result.stderr, result.stderr
    assert "MPI_Abort" in result.stderr


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_workers_that_end_while_the_root_still_works_are_a_normal_end(tmp_path, n_ranks):
    result = run_spmd(tmp_path, """
        import time
        import numpy as np
        from mpi4py import MPI
        from mpi_qinfer import MPIParallelizedModel
        from mpi_qinfer.models import SimplePrecessionModel

        with MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0) as model:
            if model.is_root:
                answer = model.likelihood(np.array([0]), np.full((6, 1), 0.5), np.array([1.0]))
        if MPI.COMM_WORLD.Get_rank() == 0:
            time.sleep(1.0)  # the workers have ended long before
            with MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF) as alone:  # no other rank needed
                again = alone.likelihood(np.array([0]), np.full((6, 1), 0.5), np.array([1.0]))
            print("root done", np.array_equal(answer, again), flush=True)
    """, n_ranks=n_ranks)
    assert result.returncode == 0, result.stderr
    assert "root done True" in result.stdout


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_a_root_that_never_shuts_down_still_releases_its_workers_under_run(tmp_path, n_ranks):
    result = run_spmd(tmp_path, """
        import numpy as np
        from mpi4py import MPI
        from mpi_qinfer import MPIParallelizedModel
        from mpi_qinfer.models import SimplePrecessionModel

        model = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0)
        if model.is_root:
            print("root result", model.likelihood(np.arange(2), np.ones((10, 1)), np.array([1.0])).shape, flush=True)
        else:
            model.serve()
            print(f"worker {MPI.COMM_WORLD.Get_rank()} released", flush=True)
    """, n_ranks=n_ranks)
    assert result.returncode == 0, result.stderr
    assert "root result (2, 10, 1)" in result.stdout
    assert all(f"worker {rank} released" in result.stdout for rank in range(1, n_ranks))


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_a_worker_that_ends_without_serving_is_found_at_the_roots_next_call(tmp_path, n_ranks):
    result = run_spmd(tmp_path, """
        import time
        import numpy as np
        from mpi4py import MPI
        from mpi_qinfer import MPIParallelizedModel
        from mpi_qinfer.models import SimplePrecessionModel

        model = MPIParallelizedModel(SimplePrecessionModel(), serial_threshold=0)
        if model.is_root:  # the worker forgot to serve: its script ends here
            time.sleep(0.5)
            model.likelihood(np.arange(2), np.ones((10, 1)), np.array([1.0]))
            print("the root should never get here", flush=True)
    """, n_ranks=n_ranks)
    assert result.returncode != 0
    assert result.seconds < ABORT_BUDGET
    assert "should never get here" not in result.stdout
    assert re.search(r"ranks? [12](, 2)? of this communicator ha(s|ve) ended \(exit status 0(, exit status 0)?\) "
                     "while rank 0 was about to start a collective operation", result.stderr), result.stderr


# ------------------------------------------------------------------ a missing target and usage errors
def launch_run(tmp_path, *argv, n_ranks=2):
    """``mpiexec -n n_ranks python -m mpi_qinfer run argv`` in tmp_path."""
    launcher, env = mpiexec_command(n_ranks, timeout=TIMEOUT - 10)
    command = [*launcher, sys.executable, "-m", "mpi_qinfer", "run", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)


def program_lines(stderr: str) -> list[str]:
    """The lines the program printed, without the launcher's own notice.

    Open MPI's mpirun adds a block framed by dashed lines when a rank exits
    with a non-zero status, and its event library may add one-line warnings
    (``[warn] Epoll MOD(4) on fd 20 failed ...``) while the job winds down on a
    loaded machine, and PMIx a ``PMIX ERROR: PMIX_ERR_UNREACH`` line when a rank
    ends before its server heard from it; MPICH adds nothing.
    """
    lines, in_notice = [], False
    for line in stderr.splitlines():
        if line.startswith("-----"):
            in_notice = not in_notice
            continue
        if not in_notice and not LAUNCHER_NOISE.search(line):
            lines.append(line)
    return lines


#: One-line notices of the launcher's event library (libevent, inside Open MPI's PRRTE), of PMIx, and
#: of its ssh launcher losing the race to set the group of an agent that has already started (nodes).
LAUNCHER_NOISE = re.compile(r"^\[(warn|err)\] (Epoll|epoll|Event|event)|PMIX ERROR: PMIX_ERR_UNREACH"
                            r"|^\[[^]]+\] plm:ssh: Warning: setpgid\(")


@needs_mpiexec
@pytest.mark.parametrize("n_ranks", [2, 3])
@pytest.mark.parametrize("argv, message", [
    (["missing.py", "--flag"], "python -m mpi_qinfer run: error: no such file: 'missing.py'"),
    (["-m", "no_such_package.job"], "python -m mpi_qinfer run: error: no module named 'no_such_package.job'"),
])
def test_missing_target_is_one_line_and_status_2_on_every_rank(tmp_path, n_ranks, argv, message):
    result = launch_run(tmp_path, *argv, n_ranks=n_ranks)
    assert result.returncode == 2, result.stderr
    assert program_lines(result.stderr) == [message]  # once, from rank 0; no traceback, no abort
    assert result.stdout == ""


@needs_mpiexec
def test_usage_error_is_printed_once(tmp_path):
    result = launch_run(tmp_path)
    assert result.returncode == 2
    assert program_lines(result.stderr) == ["python -m mpi_qinfer run: error: give a SCRIPT or -m MODULE to run"]
