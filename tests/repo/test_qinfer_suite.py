"""scripts/qinfer_suite.py end to end, on a small stand-in for qinfer's concrete-model suite.

The stand-in has qinfer's layout (``src/qinfer/tests/test_concrete_models.py``)
and its pattern: unittest classes that build their model in
``instantiate_model`` and reach it through a lazy ``model`` property. One test
passes serially but not through the proxy (it checks the model's class), one
never touches its model, one class has no model: the harness must finish,
report the one difference, and exit with status 1.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import needs_mpiexec

REPO = Path(__file__).resolve().parents[2]

STAND_IN_SUITE = '''
import unittest

import numpy as np

from mpi_qinfer.models.builtin import SimplePrecessionModel


class ModelTest:
    """Like qinfer's base_test: the model is built once per test, when first used."""

    @property
    def model(self):
        try:
            return self._model
        except AttributeError:
            self._model = self.instantiate_model()
            return self._model

    def setUp(self):
        np.random.seed(0)

    def test_likelihood_shape(self):
        L = self.model.likelihood(np.arange(2), np.random.uniform(0, 1, (20, 1)), np.linspace(1, 2, 3))
        assert L.shape == (2, 20, 3)

    def test_never_touches_the_model(self):
        assert 1 + 1 == 2

    def test_is_the_serial_class(self):
        assert type(self.model).__name__ == "SimplePrecessionModel", type(self.model).__name__


class TestPrecession(ModelTest, unittest.TestCase):
    def instantiate_model(self):
        return SimplePrecessionModel()


class TestWithoutModel(unittest.TestCase):
    def test_plain(self):
        assert np.arange(3).sum() == 3


class TestDirectViewParallelizedModel(ModelTest, unittest.TestCase):
    def instantiate_model(self):
        raise RuntimeError("left out by default: never built")
'''


def _load_harness():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import qinfer_suite
    finally:
        sys.path.pop(0)
    return qinfer_suite


def _record(cls, test, verdict, message=""):
    return {"nodeid": f"x.py::{cls}::{test}", "cls": cls, "test": test, "when": "call", "verdict": verdict,
            "message": message, "text": message}


def test_compare_lists_each_difference_with_its_failure():
    harness = _load_harness()
    serial = {r["nodeid"]: r for r in (_record("TestA", "t1", "passed"), _record("TestA", "t2", "passed"),
                                       _record("TestB", "t1", "failed", "boom"))}
    proxy = {r["nodeid"]: r for r in (_record("TestA", "t1", "passed"),
                                      _record("TestA", "t2", "failed", "TypeError: refused"),
                                      _record("TestB", "t1", "failed", "boom"))}
    text, n_different = harness.compare(serial, {"proxy n=2": proxy, "proxy n=3": {}},
                                        {"proxy n=2": {"rc": 1}, "proxy n=3": {"rc": 124}})
    assert n_different == 3  # TestA::t2 at n=2; everything missing at n=3
    assert "TestA::t2: serial passed" in text and "TypeError: refused" in text
    assert "never reported (job rc=124)" in text
    rows = {line.split()[0]: line for line in text.splitlines()[2:4]}
    assert rows["TestA"].split()[-1] == "NO" and "1 fail" in rows["TestA"]


def test_remote_failures_are_shortened_to_each_ranks_exception():
    harness = _load_harness()
    message = ("mpi_qinfer.errors.RemoteError: likelihood failed on ranks 0, 1\n--- rank 0 ---\nTraceback\n  x\n"
               "ValueError: bad\n--- rank 1 ---\nTraceback\nKeyError: 'k'")
    short = harness._short(message)
    assert "rank 0: ValueError: bad" in short and "rank 1: KeyError: 'k'" in short and "Traceback" not in short


@needs_mpiexec
def test_the_harness_runs_a_stand_in_suite_serially_and_through_the_proxy(tmp_path):
    tests = tmp_path / "checkout" / "src" / "qinfer" / "tests"
    tests.mkdir(parents=True)
    (tests.parent / "__init__.py").write_text("")
    (tests / "__init__.py").write_text("")
    (tests / "test_concrete_models.py").write_text(textwrap.dedent(STAND_IN_SUITE))
    command = [sys.executable, str(REPO / "scripts" / "qinfer_suite.py"), str(tmp_path / "checkout"),
               "--ranks", "2", "--timeout", "150", "--workdir", str(tmp_path / "work")]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the harness hung:\n{expired.stdout}\n{expired.stderr}")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "TestPrecession" in out and "TestWithoutModel" in out
    assert "TestDirectViewParallelizedModel" not in out.split("serial vs MPIParallelizedModel")[-1]
    assert "1 of 2 classes give the same verdicts; 1 test(s) differ" in out, out
    assert "TestPrecession::test_is_the_serial_class: serial passed" in out
    assert "MPIParallelizedModel" in out.split("test_is_the_serial_class")[-1]
