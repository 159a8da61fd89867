"""What a user sees of the proxy before calling it: its signature, and where its warnings point."""

from __future__ import annotations

import inspect
import warnings

import pytest
from mpi4py import MPI

from mpi_qinfer import DifferentiableMPIParallelizedModel, MPIParallelizedModel
from mpi_qinfer.models import RamseyModel, SimplePrecessionModel

PARAMETERS = ["serial_model", "comm", "root", "serial_threshold", "split", "balance", "engine", "seed", "idle",
              "backoff_max", "purge_client"]


@pytest.mark.parametrize("cls", [MPIParallelizedModel, DifferentiableMPIParallelizedModel])
def test_the_signature_shows_the_real_parameters(cls):
    assert list(inspect.signature(cls).parameters) == PARAMETERS
    assert "serial_threshold='auto'" in str(inspect.signature(cls))


@pytest.mark.skipif(MPI.COMM_WORLD.Get_size() > 1, reason="builds proxies on COMM_SELF")
@pytest.mark.parametrize("keyword", [{"purge_client": False}, {"serial_threshold": None}])
def test_qinfer_keywords_warn_at_the_users_line_for_every_kind_of_model(keyword):
    for serial in (RamseyModel(), SimplePrecessionModel()):  # the second gets the differentiable proxy
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            proxy = MPIParallelizedModel(serial, comm=MPI.COMM_SELF, **keyword)  # the line the warning names
        proxy.shutdown()
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert len(deprecations) == 1, [str(w.message) for w in caught]
        assert deprecations[0].filename == __file__, deprecations[0].filename
        assert isinstance(proxy, DifferentiableMPIParallelizedModel) == hasattr(serial, "score")
