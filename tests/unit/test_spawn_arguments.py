"""``MPIParallelizedModel.spawn``'s arguments, checked before any worker starts."""

from __future__ import annotations

import pytest


def test_bad_arguments_fail_before_anything_starts():
    from mpi_qinfer import MPIParallelizedModel
    from mpi_qinfer.models import SimplePrecessionModel

    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_workers"):
            MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=bad)
    with pytest.raises(ValueError, match="timeout"):
        MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=1, timeout=0)
    with pytest.raises(ValueError, match="idle"):
        MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=1, idle="sometimes")
    with pytest.raises(TypeError, match="comm"):
        MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=1, comm=None)
