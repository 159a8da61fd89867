"""The bench's trials section (perf_test_multiple serially against the trial farm) reports what it promises
(no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import mpiexec_command

from mpi_qinfer.cli import bench
from mpi_qinfer.cli.bench import trials as trials_section

TINY = {"cheap": (3, 100, 4), "costly": (2, 100, 2)}


def check_rows(section: dict, ranks: int) -> None:
    kinds = [(row["model"], row["group_size"]) for row in section["rows"]]
    assert kinds == ([("cheap", 1), ("costly", 1)] if ranks == 1 else [("cheap", 1), ("costly", 1),
                                                                        ("costly", ranks)])
    for row in section["rows"]:
        assert row["serial_median_s"] > 0 and row["farm_median_s"] > 0
        assert row["speedup"] == row["serial_median_s"] / row["farm_median_s"]
        assert row["bitwise_equal"] is True
    assert section["bitwise_equal"] is True


def test_trials_section_in_process_on_one_rank(tmp_path, capsys, monkeypatch):
    from mpi4py import MPI

    monkeypatch.setattr(trials_section, "WORKLOADS", {kind: {"full": w, "quick": w} for kind, w in TINY.items()})
    out = tmp_path / "bench.json"
    args = bench.build_parser().parse_args(["--quick", "--cases", "trials", "--rounds", "1", "--json", str(out)])
    assert bench.main(args, comm=MPI.COMM_SELF) == 0
    result = json.loads(out.read_text())
    check_rows(result["trials"], ranks=1)
    assert result["cases"] == [] and result["smc"] is None and result["all_bitwise_equal"] is True
    assert [check["case"] for check in result["targets"]] == ["trials-cheap-k1"]
    assert result["targets"][0]["met"] is None  # stated for 2 ranks
    printed = capsys.readouterr().out
    assert "perf_test_multiple: serial on the root against the trial farm" in printed


def test_trials_section_under_mpiexec_two_ranks(tmp_path):
    script = tmp_path / "trials_bench.py"
    script.write_text(textwrap.dedent(f"""
        import json
        from mpi4py import MPI
        from mpi_qinfer.cli.bench import Settings, bench_trials
        from mpi_qinfer.cli.bench.report import check_targets

        section = bench_trials(MPI.COMM_WORLD, Settings(quick=True, rounds=2), workloads={TINY!r})
        if MPI.COMM_WORLD.Get_rank() == 0:
            targets = check_targets({{"ranks": 2, "cases": [], "trials": section}})
            print(json.dumps({{"section": section, "targets": targets}}))
    """))
    argv, env = mpiexec_command(2, timeout=240)
    done = subprocess.run(argv + [sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    check_rows(result["section"], ranks=2)
    assert [check["case"] for check in result["targets"]] == ["trials-cheap-k1", "trials-costly-k2"]
    assert all(check["met"] in (True, False) for check in result["targets"])
