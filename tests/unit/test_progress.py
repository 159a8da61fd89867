"""Tests of the progress report: a bar on a terminal only, plain lines with rate and ETA in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from mpi_qinfer.runtime.progress import Progress, format_seconds, is_terminal


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def run_loop(total, every=None, seconds_per_step=0.5, file=None, **kwargs):
    clock, file = FakeClock(), io.StringIO() if file is None else file
    with Progress(total, "SMC on 2 rank(s)", file=file, every=every, clock=clock, **kwargs) as progress:
        for _ in range(total):
            clock.now += seconds_per_step
            progress.update()
    return file.getvalue(), progress


def test_a_log_gets_a_line_every_tenth_and_at_the_end():
    text, progress = run_loop(100)
    lines = text.splitlines()
    assert not progress.uses_bar and "\r" not in text
    assert len(lines) == 10
    assert lines[0] == "SMC on 2 rank(s): 10/100 exp (10%), 2 exp/s, 5.0 s elapsed, ETA 45.0 s"
    assert lines[-1] == "SMC on 2 rank(s): 100/100 exp (100%), 2 exp/s, 50.0 s elapsed, done"


def test_every_n_and_an_uneven_end():
    text, _ = run_loop(7, every=3, seconds_per_step=2.0)
    counts = [line.split(":")[1].split()[0] for line in text.splitlines()]
    assert counts == ["3/7", "6/7", "7/7"]
    assert text.splitlines()[1].endswith("ETA 2.0 s")


def test_long_runs_read_in_minutes_and_hours():
    assert format_seconds(4.24) == "4.2 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(7380) == "2 h 03 min"
    assert format_seconds(float("inf")) == "?"


def test_disabled_reports_nothing():
    text, progress = run_loop(20, enabled=False)
    assert text == "" and progress.count == 20


def test_a_terminal_gets_a_tqdm_bar():
    pytest.importorskip("tqdm")
    text, progress = run_loop(5, file=FakeTerminal())
    assert "\r" in text and "SMC on 2 rank(s)" in text  # tqdm redraws in place


@pytest.mark.parametrize("stream, expected", [(io.StringIO(), False), (FakeTerminal(), True), (object(), False)])
def test_is_terminal(stream, expected):
    assert is_terminal(stream) is expected


def test_bad_arguments():
    with pytest.raises(ValueError, match="total"):
        Progress(-1, "x")
    with pytest.raises(ValueError, match="every"):
        Progress(10, "x", every=0)


def test_demo_log_has_the_header_first_and_no_carriage_returns(tmp_path):
    """The demo as a batch job runs it: stdout and stderr are files."""
    out, err = tmp_path / "job.out", tmp_path / "job.err"
    command = [sys.executable, "-m", "mpi_qinfer", "demo", "--model", "precession", "--particles", "300",
               "--experiments", "20", "--seed", "5"]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        done = subprocess.run(command, stdout=stdout, stderr=stderr, timeout=120,
                              env=dict(os.environ, MPI_QINFER_IDLE="backoff"))
    log, report = err.read_text(), out.read_text()
    assert done.returncode == 0, log
    assert "\r" not in log and "\r" not in report
    assert report.startswith("mpi_qinfer demo: precession model")
    progress = [line for line in log.splitlines() if " exp (" in line]
    # Two runs (serially on the root, then through the proxy), 10 lines each.
    assert len(progress) == 20, log
    assert progress[0].startswith("serial on the root: 2/20 exp (10%)") and "ETA" in progress[0]
    assert progress[-1].startswith("SMC on 1 rank(s): 20/20 exp (100%)") and progress[-1].endswith("done")


def test_a_jupyter_kernels_output_gets_a_bar():
    class KernelStream(io.StringIO):  # what ipykernel's OutStream looks like from here: not a terminal
        pass

    KernelStream.__module__ = "ipykernel.iostream"
    stream = KernelStream()
    with Progress(4, "SMC", file=stream) as progress:
        assert progress.uses_bar
        for _ in range(4):
            progress.update()
    assert "/4 [" in stream.getvalue() and "|" in stream.getvalue()  # tqdm's frame, not a plain line
    assert not Progress(4, "SMC", file=io.StringIO()).uses_bar  # a batch log keeps its plain lines
