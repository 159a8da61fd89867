"""Tests of ``python -m mpi_qinfer run``'s pieces in this process: exit statuses and a missing target."""

from __future__ import annotations

import pytest

from mpi_qinfer.cli import run as runner


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (3, 3), ("message", 1)])
def test_exit_status(code, status):
    assert runner.exit_status(code) == status


class FakeComm:
    """allgather over the answers every rank would give."""

    def __init__(self, answers):
        self.answers = answers

    def allgather(self, value):
        return self.answers


def test_target_missing_on_some_ranks_names_them():
    problem = runner._agree_on_target(FakeComm([None, "no such file: 'a.py'", None, "no such file: 'a.py'"]),
                                      "a.py", False)
    assert problem == "no such file: 'a.py' on rank(s) 1, 3"
    assert runner._agree_on_target(FakeComm([None, None]), "a.py", False) is None


def test_missing_target(tmp_path, monkeypatch):
    script = tmp_path / "job.py"
    script.write_text("pass\n")
    assert runner.missing_target(str(script)) is None
    assert runner.missing_target(str(tmp_path / "nope.py")) == f"no such file: {str(tmp_path / 'nope.py')!r}"
    assert runner.missing_target("json.tool", is_module=True) is None
    assert runner.missing_target("json.no_such_module", is_module=True) == "no module named 'json.no_such_module'"
    assert runner.missing_target("no_such_package.mod", is_module=True) is not None
    assert runner.missing_target(".relative", is_module=True) is not None
