"""The benchmark harness runs and reports what it promises (no timing assertions).

One test runs the smallest configuration in-process on ``COMM_SELF`` (one
rank, so it is safe under any launcher); another, where the MPICH launcher
is next to the interpreter, runs it under ``mpiexec -n 2`` in a subprocess
with a hard timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpi_qinfer.cli import bench

TINY_CASES = ["cheap-1e3x1", "cheap-1e3x1-o2", "cheap-1e2x1000-o2-exps"]
TINY = ["--quick", "--cases", ",".join(TINY_CASES + ["smc", "idle", "balance"]), "--idle-seconds", "0.05",
        "--smc-particles", "200", "--smc-experiments", "5", "--rounds", "1"]
CASE_KEYS = {"name", "model", "n_particles", "n_exp", "n_outcomes", "split", "evaluations", "outcomes_dtype",
             "bitwise_equal", "proxy_over_floor", "proxy_minus_floor_us", "proxy_over_serial", "auto_over_serial",
             "pickle_over_proxy", "speedup", "proxy_over_floor_min", "auto_over_serial_min"}


def check_result(result: dict, ranks: int) -> None:
    for key in ("ranks", "mpi_library", "host", "date", "cases", "smc", "idle", "balance", "targets"):
        assert key in result, key
    assert result["ranks"] == ranks
    assert [case["name"] for case in result["cases"]] == TINY_CASES
    shapes = [(case["n_outcomes"], case["split"]) for case in result["cases"]]
    assert shapes == [(1, "models"), (2, "models"), (2, "experiments")]
    for case in result["cases"]:
        assert CASE_KEYS <= set(case)
        for method in bench.METHODS:
            for stat in ("median", "min", "max"):
                assert case[f"{method}_{stat}_s"] > 0, (method, stat)
            if method != "serial":
                assert case[f"{method}_equal"] is True, method
        assert case["bitwise_equal"] is True
    assert result["smc"]["bitwise_equal"] is True
    assert result["balance"]["bitwise_equal"] is True
    assert {"spin", "backoff"} <= set(result["idle"])
    assert len(result["idle"]["spin"]["cpu_per_wall_by_rank"]) == ranks
    assert result["all_bitwise_equal"] is True


def test_bench_in_process_on_one_rank(tmp_path, capsys):
    from mpi4py import MPI

    out = tmp_path / "bench.json"
    args = bench.build_parser().parse_args(TINY + ["--json", str(out)])
    assert bench.main(args, comm=MPI.COMM_SELF) == 0
    result = json.loads(out.read_text())
    check_result(result, ranks=1)
    assert "1 rank" in result["note"]
    printed = capsys.readouterr().out
    assert all(name in printed for name in TINY_CASES)
    assert "all answers bitwise equal to the serial model: yes" in printed


def test_case_filter_and_plan():
    cases = bench.plan_cases(quick=False, total_memory=2**40)
    names = [case.name for case in cases]
    assert len(names) == len(set(names))
    assert "cheap-1e6x100" in names and "costly-1e5x1" in names
    # The sweep: every outcome count at every particle count, 1 and 100 experiments, split by particles ...
    for n_exp in (1, 100):
        for n in ("1e3", "1e4", "1e5", "1e6"):
            for suffix in ("", "-o2", "-o3", "-o6"):
                assert f"cheap-{n}x{n_exp}{suffix}" in names
    # ... and shapes with more experiments than particles, split by experiments.
    exps = [case for case in cases if case.split == "experiments"]
    assert {case.n_outcomes for case in exps} == set(bench.OUTCOME_COUNTS)
    assert all(case.n_exp > case.n_particles and case.name.endswith("-exps") for case in exps)
    quick_cases = bench.plan_cases(quick=True, total_memory=2**40)
    quick = [case.name for case in quick_cases]
    assert "cheap-1e6x100" not in quick and "costly-1e5x1" not in quick and "cheap-1e6x1" not in quick
    assert {case.n_outcomes for case in quick_cases} == set(bench.OUTCOME_COUNTS)
    assert any(case.split == "experiments" for case in quick_cases)
    assert all(case.n_particles * case.n_exp * case.n_outcomes <= 10**7 for case in quick_cases)
    small = bench.plan_cases(quick=False, total_memory=2**30)
    assert any(case.skip for case in small if case.name == "cheap-1e6x100")
    assert not any(case.skip for case in small if case.name == "cheap-1e3x1-o6")
    assert bench.select(names, ["cheap-1e3x1"]) == {"cheap-1e3x1"}
    assert bench.select(names, ["costly"]) == {"costly-1e3x1", "costly-1e4x1", "costly-1e5x1"}
    assert bench.select(names, ["-o6-exps"]) == {"cheap-1e2x1000-o6-exps", "cheap-1e3x10000-o6-exps"}


def test_the_record_outcome_case_is_measured():
    record = [case for case in bench.plan_cases(quick=True, total_memory=2**40) if case.model == "record"]
    assert [case.name for case in record] == ["record-1e4x1-o2"]
    assert record[0].skip is None


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.mark.skipif(_mpiexec() is None, reason="no mpiexec next to the interpreter or on PATH")
def test_bench_under_mpiexec_two_ranks(tmp_path):
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() > 1:
        pytest.skip("already running under a launcher; a nested mpiexec is not attempted")
    if not MPI.Get_library_version().startswith("MPICH"):
        pytest.skip("the subprocess launch is only set up for the MPICH launcher")
    out = tmp_path / "bench.json"
    env = dict(os.environ, MPIEXEC_TIMEOUT="240")
    command = [_mpiexec(), "-n", "2", sys.executable, "-m", "mpi_qinfer.cli.bench", *TINY, "--json", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    check_result(json.loads(out.read_text()), ranks=2)
