"""The package's public imports: the layer subpackages' re-exports, and the old flat module names."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import mpi_qinfer

#: Old flat module -> its new place (what the package promises to keep importable for now).
OLD_NAMES = dict(mpi_qinfer._MOVED)


def test_every_old_flat_name_is_its_new_module_with_a_deprecation_warning():
    for old, new in OLD_NAMES.items():
        sys.modules.pop(f"mpi_qinfer.{old}", None)
        with pytest.warns(DeprecationWarning, match=f"mpi_qinfer.{old} is now mpi_qinfer.{new}"):
            module = importlib.import_module(f"mpi_qinfer.{old}")
        assert module is importlib.import_module(f"mpi_qinfer.{new}")


def test_the_new_places_exist_and_the_old_files_are_gone():
    package = mpi_qinfer.__file__.rpartition("/")[0]
    import os

    top_level = sorted(name for name in os.listdir(package) if name.endswith(".py"))
    assert top_level == ["__init__.py", "__main__.py", "_version.py", "errors.py"]
    for new in OLD_NAMES.values():
        importlib.import_module(f"mpi_qinfer.{new}")


def test_public_imports_of_the_subpackages():
    from mpi_qinfer.distributed import DistributedSMCUpdater
    from mpi_qinfer.models import BinomialModel, FiniteOutcomeModel, SimplePrecessionModel
    from mpi_qinfer.smc import LiuWestResampler, SMCUpdater

    assert SMCUpdater is mpi_qinfer.SMCUpdater and LiuWestResampler is mpi_qinfer.LiuWestResampler
    assert DistributedSMCUpdater is mpi_qinfer.DistributedSMCUpdater
    assert FiniteOutcomeModel is mpi_qinfer.FiniteOutcomeModel
    assert BinomialModel.__module__ == SimplePrecessionModel.__module__ == "mpi_qinfer.models.builtin"
    assert mpi_qinfer.termination.__name__ == "mpi_qinfer.runtime.termination"


def test_the_mpi_layers_load_mpi_only_when_their_names_are_used():
    code = textwrap.dedent("""
        import sys
        import mpi_qinfer.engine, mpi_qinfer.parallel, mpi_qinfer.engine.protocol, mpi_qinfer.parallel.threshold
        assert "mpi4py.MPI" not in sys.modules, "importing the layers loaded MPI"
        from mpi_qinfer.parallel import MPIParallelizedModel
        from mpi_qinfer.engine import Engine
        assert "mpi4py.MPI" in sys.modules
        assert MPIParallelizedModel is __import__("mpi_qinfer").MPIParallelizedModel
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
