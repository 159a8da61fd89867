"""The proxy's contract: the serial model's answers, and its exceptions, whichever path a call takes.

Run with:  mpiexec -n 2 python contract.py
"""
import numpy as np

from mpi_qinfer import MPIParallelizedModel, RemoteError
from mpi_qinfer.models import BinomialModel, SimplePrecessionModel


class FragileModel(SimplePrecessionModel):
    """Fails, with an exception type of its own choosing, for a negative evolution time."""

    def likelihood(self, outcomes, modelparams, expparams):
        if np.any(np.asarray(expparams) < 0):
            raise ZeroDivisionError("negative evolution time")
        return super().likelihood(outcomes, modelparams, expparams)


particles = np.random.default_rng(1).uniform(0, 1, (1_000, 1))

# [answers-start]
serial = BinomialModel(SimplePrecessionModel())  # its n_meas field is a uint64
with MPIParallelizedModel(serial, serial_threshold=0) as model:
    if model.is_root:
        experiments = np.zeros(3, dtype=[("x", float), ("n_meas", int)])  # plain ints, as numpy assigns them
        experiments["x"], experiments["n_meas"] = [0.5, 1.0, 2.0], [4, 8, 16]
        got = model.likelihood(np.arange(5), particles, experiments)
        want = serial.likelihood(np.arange(5), particles, experiments)
        print("bitwise the serial answer:", got.dtype == want.dtype and got.tobytes() == want.tobytes())
# [answers-end]

# [errors-start]
with MPIParallelizedModel(FragileModel(), serial_threshold=0) as model:
    if model.is_root:
        try:
            model.likelihood(np.arange(2), particles, np.array([1.0, -1.0]))
        except ZeroDivisionError as error:  # what the model raises, serially or not
            remote = error.__cause__  # the details of a call that ran in parallel
            if isinstance(remote, RemoteError):
                print(f"{type(error).__name__} on ranks {remote.ranks}")
                print(remote.tracebacks[remote.ranks[0]].splitlines()[-1])
# [errors-end]
