"""qinfer's names in mpi_qinfer: the re-exports, the docs' names table, the script that lists qinfer's names."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import mpi_qinfer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs" / "_ext"))
import qinfer_names as table  # noqa: E402 - docs/_ext/qinfer_names.py
from qinfer_names import read_names  # noqa: E402

sys.path.pop(0)
SCRIPT = REPO / "scripts" / "list_qinfer_names.py"


def test_every_public_name_of_the_model_and_smc_layers_is_a_name_of_the_package():
    from mpi_qinfer import models, smc

    for layer in (models, smc):
        for name in layer.__all__:
            assert getattr(mpi_qinfer, name) is getattr(layer, name), name
            assert name in mpi_qinfer.__all__, name
    for name in ("Distribution", "Heuristic", "SimplePrecessionModel", "BinomialModel", "BetaDistribution",
                 "ConstrainedSumDistribution", "ParticleDistribution", "ApproximationWarning"):
        assert name in mpi_qinfer.__all__ and hasattr(mpi_qinfer, name)
    assert len(mpi_qinfer.__all__) == len(set(mpi_qinfer.__all__))


def test_utils_imports_as_mpi_qinfer_utils_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from mpi_qinfer.utils import from_simplex, sample_multinomial, to_simplex  # noqa: F401
        module = importlib.import_module("mpi_qinfer.utils")
    assert module is importlib.import_module("mpi_qinfer.models.utils") is mpi_qinfer.utils


def test_the_data_file_says_where_it_came_from_and_lists_each_name_once():
    text = table.DATA.read_text()
    assert "github.com/QInfer/python-qinfer" in text and "commit 8170c84" in text
    rows = read_names()
    assert len(rows) == len(set(rows)) == 137
    assert ("qinfer", "SMCUpdater") in rows and ("qinfer.utils", "to_simplex") in rows
    assert ("qinfer.tomography", "pauli_basis") in rows


def test_the_table_finds_each_name_where_it_says():
    rows = table.name_rows()
    assert len(rows) == len(read_names())
    for theirs, mine, _ in rows:
        if mine is None:
            continue
        place, _, name = mine.rpartition(".")
        assert getattr(importlib.import_module(place), name) is not None
        assert name == theirs.rpartition(".")[2]
    found = {theirs: mine for theirs, mine, _ in rows}
    assert found["qinfer.BetaDistribution"] == "mpi_qinfer.BetaDistribution"
    assert found["qinfer.utils.sample_multinomial"] == "mpi_qinfer.utils.sample_multinomial"
    assert found["qinfer.DirectViewParallelizedModel"] is None
    have = sum(mine is not None for _, mine, _ in rows)
    assert table.summary(rows) == f"Of qinfer's 137 public names, mpi_qinfer has {have}; {137 - have} are missing."
    lines = table._table_lines(rows)
    assert lines[0] == table.summary(rows) and "     - **missing**" in lines


def test_looking_names_up_loads_no_mpi():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / "docs" / "_ext")!r})
        import qinfer_names
        qinfer_names.name_rows()
        print("mpi4py.MPI" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def _fake_checkout(root: Path) -> Path:
    """A tiny qinfer: star-imported modules with and without __all__, a submodule, a test directory."""
    package = root / "src" / "qinfer"
    (package / "tests").mkdir(parents=True)
    (package / "sub").mkdir()
    (package / "__init__.py").write_text("from qinfer.alpha import *\nfrom qinfer.beta import *\nimport qinfer.sub\n")
    (package / "alpha.py").write_text("__all__ = ['A', 'b']\nclass A: pass\ndef b(): pass\ndef hidden(): pass\n")
    (package / "beta.py").write_text("def c(): pass\nclass D: pass\ndef _private(): pass\nX = 1\n")
    (package / "gamma.py").write_text("__all__ = ['G']\nG = 3\n")
    (package / "_private.py").write_text("def p(): pass\n")
    (package / "sub" / "__init__.py").write_text("from .inner import *\n")
    (package / "sub" / "inner.py").write_text("__all__ = ['I']\nI = 0\n")
    (package / "tests" / "test_x.py").write_text("__all__ = ['T']\n")
    return root


def test_the_listing_script_on_a_small_checkout(tmp_path):
    script = SCRIPT
    done = subprocess.run([sys.executable, str(script), str(_fake_checkout(tmp_path)), "--commit", "abc"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    assert rows == ["qinfer A", "qinfer b", "qinfer c", "qinfer D", "qinfer.gamma G", "qinfer.sub I"]
    assert "commit abc" in done.stdout
    missing = subprocess.run([sys.executable, str(script), str(tmp_path / "nowhere")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode != 0 and "give a checkout of qinfer's source" in missing.stderr


@pytest.mark.skipif(not os.environ.get("QINFER_CHECKOUT"), reason="set QINFER_CHECKOUT to a qinfer source checkout")
def test_the_data_file_is_what_the_script_makes_from_qinfers_source():
    done = subprocess.run([sys.executable, str(SCRIPT), os.environ["QINFER_CHECKOUT"], "--commit",
                           "8170c84a0be1723f8c6b09e0d3c7a40a886f1fe3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == table.DATA.read_text()
