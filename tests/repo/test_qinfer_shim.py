"""The stand-in qinfer package and the runner of scripts/qinfer_on_numpy2 (on a small made-up checkout)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# The stand-in is qinfer for NumPy 2 (where qinfer itself cannot run): its verdicts on NumPy's removed
# names and its generator handling are NumPy 2's.
pytestmark = pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="the qinfer stand-in is for NumPy 2")

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "scripts" / "qinfer_on_numpy2"


def _load_runner():
    spec = importlib.util.spec_from_file_location("qinfer_on_numpy2_run", SHIM / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout(root: Path) -> Path:
    """A made-up qinfer: two public modules, a tests package with a base_test and one test file of each kind."""
    package = root / "src" / "qinfer"
    tests = package / "tests"
    tests.mkdir(parents=True)
    (package / "__init__.py").write_text("from qinfer.distributions import *\nfrom qinfer.smc import *\n")
    (package / "distributions.py").write_text(
        "__all__ = ['UniformDistribution', 'BetaDistribution', 'WobblyDistribution']\n")
    (package / "smc.py").write_text("__all__ = ['SMCUpdater']\n")
    (package / "utils.py").write_text("def to_simplex(y): pass\ndef not_in_mpi_qinfer(): pass\n")
    (tests / "__init__.py").write_text("from qinfer.tests import test_broken\n")  # replaced by the runner
    (tests / "base_test.py").write_text(textwrap.dedent("""
        import unittest
        import numpy as np

        class DerandomizedTestCase(unittest.TestCase):
            def setUp(self):
                np.random.seed(0)
    """))
    (tests / "test_kinds.py").write_text(textwrap.dedent("""
        import numpy as np
        from qinfer import UniformDistribution, BetaDistribution, WobblyDistribution
        from qinfer.utils import to_simplex, not_in_mpi_qinfer
        from qinfer.tests.base_test import DerandomizedTestCase

        class TestKinds(DerandomizedTestCase):
            def test_passes(self):
                assert UniformDistribution([0, 1]).sample(5).shape == (5, 1)
                assert np.allclose(to_simplex(np.zeros(3)).sum(), 1)

            def test_derandomized(self):
                first = BetaDistribution(2, 3).sample(4)
                np.random.seed(0)
                assert np.array_equal(first, BetaDistribution(2, 3).sample(4))

            def test_missing_class(self):
                WobblyDistribution()

            def test_missing_function(self):
                not_in_mpi_qinfer()

            def test_numpy2(self):
                np.zeros(2, dtype=np.float)

            def test_behaviour(self):
                assert UniformDistribution([0, 1]).n_rvs == 2

            def test_skipped(self):
                self.skipTest("not here")
    """))
    (tests / "test_broken.py").write_text("import numpy as np\nX = np.int(3)\n\ndef test_never():\n    pass\n")
    return root


def test_the_runner_reports_every_kind_of_verdict(tmp_path):
    checkout = _checkout(tmp_path / "checkout")
    report = tmp_path / "report.md"
    done = subprocess.run([sys.executable, str(SHIM / "run.py"), str(checkout), "--files", "test_kinds",
                           "test_broken", "--workdir", str(tmp_path / "work"), "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    assert "| test_kinds | 7 | 2 | 4 | 1 | 2 | 1 | 1 |" in text, text
    assert "| test_broken | 1 | 0 | 1 | 0 | 0 | 1 | 0 |" in text, text
    assert "missing, 1 test(s): qinfer.WobblyDistribution" in text
    assert "missing, 1 test(s): qinfer.utils.not_in_mpi_qinfer" in text
    assert "numpy2, 1 test(s): np.float" in text and "numpy2, 1 test(s): np.int" in text
    assert "behaviour, 1 test(s): AssertionError" in text and "(TestKinds::test_behaviour)" in text
    names = json.loads((tmp_path / "work" / "qinfer" / "_names.json").read_text())
    assert names["defined"]["qinfer.distributions"] == ["UniformDistribution", "BetaDistribution",
                                                        "WobblyDistribution"]
    assert (tmp_path / "work" / "qinfer" / "tests" / "__init__.py").read_text() == ""


def test_numpy_aliases_turn_qinfers_numpy2_failures_into_runs(tmp_path):
    checkout = _checkout(tmp_path / "checkout")
    report = tmp_path / "report.md"
    done = subprocess.run([sys.executable, str(SHIM / "run.py"), str(checkout), "--files", "test_kinds", "test_broken",
                           "--numpy-aliases", "--workdir", str(tmp_path / "work"), "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    assert "aliases" in text.splitlines()[0]
    assert "| test_kinds | 7 | 3 | 3 | 1 | 2 | 0 | 1 |" in text, text
    assert "| test_broken | 1 | 1 | 0 | 0 | 0 | 0 | 0 |" in text, text


def test_a_checkout_without_tests_is_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SHIM / "run.py"), str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "give a checkout of qinfer's source" in done.stderr


@pytest.fixture
def shim(tmp_path, monkeypatch):
    """The stand-in package, importable as ``qinfer`` in this process (for the made-up checkout)."""
    runner = _load_runner()
    runner.prepare(_checkout(tmp_path / "checkout"), tmp_path / "work")
    monkeypatch.syspath_prepend(str(tmp_path / "work"))
    for name in [n for n in sys.modules if n == "qinfer" or n.startswith("qinfer.")]:
        monkeypatch.delitem(sys.modules, name)
    import qinfer

    yield qinfer
    for name in [n for n in sys.modules if n == "qinfer" or n.startswith("qinfer.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_ShimModuleFinder"]


def test_forwarded_names_are_mpi_qinfers_drawing_from_numpys_global_state(shim):
    import mpi_qinfer

    assert issubclass(shim.UniformDistribution, mpi_qinfer.UniformDistribution)
    assert shim.distributions.BetaDistribution is shim.BetaDistribution
    np.random.seed(3)
    first = shim.BetaDistribution(2, 3).sample(5)
    np.testing.assert_array_equal(first[:, 0], np.random.RandomState(3).beta(2, 3, 5))
    assert shim.BetaDistribution(2, 3).sample(5, rng=1).shape == (5, 1)  # an explicit rng still counts


def test_placeholders_fail_when_used_and_only_then(shim):
    wobbly = shim.WobblyDistribution  # importing it is fine
    with pytest.raises(shim.MissingName, match="qinfer.WobblyDistribution"):
        wobbly()
    with pytest.raises(shim.MissingName):
        isinstance(object(), wobbly)

    class Mine(wobbly):  # subclassing is fine too
        pass

    with pytest.raises(shim.MissingName):
        Mine()
    with pytest.raises(AttributeError):
        shim.pytest_plugins  # noqa: B018 - probes of names qinfer does not have are plain misses


def test_the_stand_in_updater_takes_qinfers_positional_order(shim):
    from mpi_qinfer.models.builtin import SimplePrecessionModel

    # qinfer's order: model, n_particles, prior, resample_a, resampler, resample_thresh, ...
    updater = shim.SMCUpdater(SimplePrecessionModel(), 100, shim.UniformDistribution([0, 1]), None, None, 0.3)
    assert updater.resample_thresh == 0.3
    np.random.seed(5)
    a = shim.SMCUpdater(SimplePrecessionModel(), 50, shim.UniformDistribution([0, 1])).particle_locations
    np.random.seed(5)
    b = shim.SMCUpdater(SimplePrecessionModel(), 50, shim.UniformDistribution([0, 1])).particle_locations
    np.testing.assert_array_equal(a, b)  # seeded through NumPy's global state, as qinfer's tests expect


@pytest.mark.skipif(not os.environ.get("QINFER_CHECKOUT"), reason="set QINFER_CHECKOUT to a qinfer source checkout")
def test_qinfers_own_utility_tests_pass(tmp_path):
    pytest.importorskip("scipy")  # qinfer's test code imports SciPy and future
    pytest.importorskip("future")
    done = subprocess.run([sys.executable, str(SHIM / "run.py"), os.environ["QINFER_CHECKOUT"], "--files", "test_utils",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "| test_utils | 6 | 6 | 0 | 0 |" in done.stdout, done.stdout + done.stderr
