"""The bench's SMC run with information-gain design reports what it promises (no timing assertions)."""

from __future__ import annotations

import json

from mpi_qinfer.cli import bench

TINY = ["--quick", "--cases", "smc-design", "--design-particles", "300", "--design-experiments", "2"]


def test_design_section_in_process_on_one_rank(tmp_path, capsys):
    from mpi4py import MPI

    out = tmp_path / "bench.json"
    args = bench.build_parser().parse_args(TINY + ["--json", str(out)])
    assert bench.main(args, comm=MPI.COMM_SELF) == 0
    result = json.loads(out.read_text())
    designed = result["smc-design"]
    assert (designed["n_particles"], designed["n_experiments"], designed["n_candidates"]) == (300, 2, 20)
    assert designed["criterion"] == "infogain" and designed["repeats"] == 1
    for way in ("serial", "proxy", "auto"):
        assert designed[f"{way}_median_s"] > 0 and designed[f"{way}_equal"] is True
    assert designed["bitwise_equal"] is True and result["all_bitwise_equal"] is True
    assert result["cases"] == [] and result["smc"] is None  # "smc-design" picks only itself
    assert any(check["case"] == "smc-design" for check in result["targets"])
    printed = capsys.readouterr().out
    assert "SMC with information-gain design" in printed and "bitwise equal: yes" in printed


def test_smc_pattern_still_picks_only_the_pgh_run():
    names = ["cheap-1e3x1", "smc", "smc-design", "idle", "balance"]
    assert bench.select(names, ["smc"]) == {"smc"}
    assert bench.select(names, ["design"]) == {"smc-design"}
