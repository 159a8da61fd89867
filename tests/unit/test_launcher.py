"""Tests of what is read from the launcher: this process's rank, printing on rank 0 only, a singleton world."""

from __future__ import annotations

import io

import pytest

from mpi_qinfer.runtime import launcher


@pytest.mark.parametrize("environ, rank", [
    ({}, None),
    ({"PMI_RANK": "3"}, 3),
    ({"SLURM_PROCID": "5"}, 5),
    ({"OMPI_COMM_WORLD_RANK": "2", "SLURM_PROCID": "7"}, 2),  # the MPI launcher's own number wins
    ({"PMIX_RANK": "0", "SLURM_PROCID": "4"}, 0),
    ({"PMI_RANK": "garbage", "SLURM_PROCID": "1"}, 1),
    ({"PMI_RANK": ""}, None),
])
def test_launcher_rank(environ, rank):
    assert launcher.launcher_rank(environ) == rank


@pytest.mark.parametrize("environ, printed", [
    ({}, True),                    # a plain process: never lose the message
    ({"PMI_RANK": "0"}, True),
    ({"PMI_RANK": "1"}, False),
    ({"SLURM_PROCID": "63"}, False),
])
def test_print_on_rank_0(environ, printed):
    stream = io.StringIO()
    assert launcher.print_on_rank_0("error: bad\n", stream, environ) is printed
    assert stream.getvalue() == ("error: bad\n" if printed else "")


def test_print_on_rank_0_reads_os_environ(monkeypatch, capsys):
    for name in launcher.LAUNCHER_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PMI_RANK", "1")
    assert launcher.print_on_rank_0("hidden\n") is False
    monkeypatch.setenv("PMI_RANK", "0")
    assert launcher.print_on_rank_0("shown\n") is True
    assert capsys.readouterr().err == "shown\n"


def test_a_singleton_world_under_a_multi_task_launcher_warns(monkeypatch):
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() != 1:
        pytest.skip("needs a world of one process")
    monkeypatch.setenv("SLURM_NTASKS", "64")
    with pytest.warns(RuntimeWarning, match="SLURM_NTASKS=64"):
        from mpi_qinfer import MPIParallelizedModel
        from mpi_qinfer.models.builtin import SimplePrecessionModel

        with MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF):
            pass
