"""What happens when the model fails on a worker, or the ranks disagree on the model.

Run with:  mpiexec -n 2 python errors.py
"""
import numpy as np
from mpi4py import MPI

from mpi_qinfer import EngineClosedError, ModelMismatchError, MPIParallelizedModel, RemoteError
from mpi_qinfer.models import RamseyModel, SimplePrecessionModel


class FragileModel(SimplePrecessionModel):
    """Fails on the last rank whenever it sees a negative frequency."""

    def likelihood(self, outcomes, modelparams, expparams):
        if MPI.COMM_WORLD.Get_rank() == MPI.COMM_WORLD.Get_size() - 1 and np.any(modelparams < 0):
            raise FloatingPointError("negative frequency")
        return super().likelihood(outcomes, modelparams, expparams)


# [remote-start]
particles = np.linspace(-1, 1, 1_000).reshape(-1, 1)  # the last rank's share is all positive...
with MPIParallelizedModel(FragileModel(), serial_threshold=0) as model:
    if model.is_root:
        try:
            model.likelihood(np.array([0]), particles[::-1], np.array([1.0]))  # ...until reversed
        except FloatingPointError as error:  # the model's own exception, as without the proxy
            remote = error.__cause__  # a RemoteError: which ranks failed, and their tracebacks
            assert isinstance(remote, RemoteError)
            print("FloatingPointError:", error, "| failed on ranks", remote.ranks, "in", remote.command)
        # Every rank finished the call's collectives: the proxy still works.
        assert model.likelihood(np.array([0]), particles, np.array([1.0])).shape == (1, 1_000, 1)
        # A bad argument never reaches the workers: the root's serial model rejects it, before any communication.
        try:
            model.likelihood(np.array([0]), particles.ravel(), np.array([1.0]))
        except ValueError as error:
            print("ValueError:", error)
# [remote-end]

# [closed-start]
if model.is_root:
    try:
        model.likelihood(np.array([0]), particles, np.array([1.0]))
    except EngineClosedError as error:
        print("EngineClosedError:", error, flush=True)
# [closed-end]

# [mismatch-start]
# Rank 0 brings a precession model, the others a Ramsey model: every rank raises.
serial_model = SimplePrecessionModel() if MPI.COMM_WORLD.Get_rank() == 0 else RamseyModel()
try:
    MPIParallelizedModel(serial_model)
except ModelMismatchError as error:
    if MPI.COMM_WORLD.Get_rank() == 0:
        print("ModelMismatchError:", error, flush=True)
# [mismatch-end]
