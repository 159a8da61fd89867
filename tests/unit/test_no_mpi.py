"""Tests of the package in a Python without an MPI library.

Each test runs a fresh interpreter in which importing ``mpi4py.MPI`` fails
exactly as it does where mpi4py's wheel finds no ``libmpi`` (a
``RuntimeError: cannot load MPI library``). The model layer, SMC, priors and
``--help`` must work; whatever needs MPI must say, in one line, how to get
it. (``scripts/check-wheel.sh`` does the same with a real MPI-less venv.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from stats import posterior_checks

TIMEOUT = 120

#: Makes ``import mpi4py.MPI`` fail the way mpi4py does without an MPI library.
NO_MPI_SITECUSTOMIZE = '''
import sys

class _NoMPILibrary:
    def find_spec(self, name, path=None, target=None):
        if name == "mpi4py.MPI":
            raise RuntimeError("cannot load MPI library\\n"
                               "libmpi.so.12: cannot open shared object file: No such file or directory")
        return None

sys.meta_path.insert(0, _NoMPILibrary())
'''


@pytest.fixture
def no_mpi(tmp_path):
    """A runner of commands in a Python whose MPI library cannot be loaded."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_MPI_SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    for name in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        env.pop(name, None)

    def run(*argv, code=None):
        command = [sys.executable, "-c", textwrap.dedent(code)] if code is not None else [sys.executable, *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)

    return run


def test_the_blocker_works(no_mpi):
    result = no_mpi(code="from mpi4py import MPI")
    assert result.returncode != 0 and "cannot load MPI library" in result.stderr


def test_import_models_smc_and_the_cli_without_initialising_mpi(no_mpi):
    result = no_mpi(code="""
        import importlib, sys
        import numpy as np
        import mpi_qinfer
        from mpi_qinfer import ExpSparseHeuristic, SMCUpdater, UniformDistribution
        from mpi_qinfer.cli import main as cli
        from mpi_qinfer.models.builtin import SimplePrecessionModel

        for name in ["cli.main", "cli.demo", "cli.info", "cli.run", "runtime.launcher", "runtime.progress",
                     "runtime.mpi_library", "runtime.termination", "smc.updater", "smc.resampler", "smc.heuristics",
                     "smc.posterior", "smc.checkpoint", "models.builtin", "models.base", "models.distributions",
                     "models.interop",
                     "parallel", "parallel.threshold", "parallel.balance", "parallel.routes", "engine",
                     "engine.validation", "engine.partition", "engine.protocol", "engine.operations",
                     "engine.failures", "distributed", "errors"]:
            importlib.import_module(f"mpi_qinfer.{name}")
        for command in ["demo", "info", "run", ""]:
            cli.build_parser(command)

        for seed in range(9):
            simulator = SimplePrecessionModel()
            simulator.rng = np.random.default_rng(1 + seed)
            updater = SMCUpdater(SimplePrecessionModel(), 2000, UniformDistribution([0, 1]), rng=100 + seed)
            heuristic = ExpSparseHeuristic(updater)
            for _ in range(40):
                expparams = heuristic()
                updater.update(simulator.simulate_experiment(np.array([[0.7]]), expparams), expparams)
            print("estimate", float(updater.est_mean()[0]), float(np.sqrt(updater.est_covariance_mtx()[0, 0])))
        print("mpi loaded", "mpi4py.MPI" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert "mpi loaded False" in result.stdout
    runs = [(float(line.split()[1]), float(line.split()[2]), 0.7)
            for line in result.stdout.splitlines() if line.startswith("estimate")]
    # Over 400 seeds: width above 0.289 / 10 in 2.3 % of runs, truth outside 3 widths in 0.25 %.
    assert len(runs) == 9
    posterior_checks(runs, prior_sd=1 / np.sqrt(12), shrink=10)


def test_performance_tests_run_without_mpi(no_mpi, tmp_path):
    result = no_mpi(code=f"""
        import sys
        from mpi_qinfer import ExpSparseHeuristic, UniformDistribution, load_perf_trials, perf_test_multiple
        from mpi_qinfer.models.builtin import SimplePrecessionModel

        perf = perf_test_multiple(2, SimplePrecessionModel(), 100, UniformDistribution([0, 1]), 5,
                                  ExpSparseHeuristic, seed=1, trial_file={str(tmp_path / "t.npy")!r})
        print("trials", perf.shape, int(load_perf_trials({str(tmp_path / "t.npy")!r}).finished.sum()))
        print("mpi loaded", "mpi4py.MPI" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert "trials (2, 5) 2" in result.stdout and "mpi loaded False" in result.stdout


@pytest.mark.parametrize("name", ["MPIParallelizedModel", "DifferentiableMPIParallelizedModel", "Engine", "TrialFarm"])
def test_mpi_names_raise_one_clear_error(no_mpi, name):
    result = no_mpi(code=f"""
        import mpi_qinfer
        assert {name!r} in dir(mpi_qinfer) and {name!r} in mpi_qinfer.__all__
        try:
            mpi_qinfer.{name}
        except ImportError as error:
            assert isinstance(error, mpi_qinfer.MPIUnavailableError)
            print(error)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert "no MPI library could be loaded" in result.stdout and "pip install 'mpi_qinfer[mpich]'" in result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["info", "--help"], ["run", "--help"],
                                  ["--version"]])
def test_help_works(no_mpi, argv):
    result = no_mpi("-m", "mpi_qinfer", *argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and not result.stderr


@pytest.mark.parametrize("argv", [["info"], ["demo"], ["run", "job.py"], ["bench", "--quick"]])
def test_commands_that_need_mpi_print_one_actionable_line_and_fail(no_mpi, argv):
    result = no_mpi("-m", "mpi_qinfer", *argv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    # Both ways out: the mpich extra, or the site's MPI module with mpi4py rebuilt against it.
    assert "pip install 'mpi_qinfer[mpich]'" in lines[0]
    assert "MPI module" in lines[0] and "--no-binary=mpi4py" in lines[0]


def test_qinfer_registration_needs_no_mpi(no_mpi):
    result = no_mpi(code="""
        import sys
        import mpi_qinfer
        registered = mpi_qinfer.register_with_qinfer() in (True, False)
        print("registered", registered, "mpi loaded", "mpi4py.MPI" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert "registered True mpi loaded False" in result.stdout
