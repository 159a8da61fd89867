"""The parity suite's models and random inputs, shared by the MPI parity tests and the split-invariance check."""

from __future__ import annotations

import numpy as np

from mpi_qinfer import NormalDistribution
from mpi_qinfer.models.builtin import (
    BinomialModel,
    CoinModel,
    IsingChainModel,
    NDieModel,
    NoisyCoinModel,
    RamseyModel,
    SimpleInversionModel,
    SimplePrecessionModel,
    UnknownT2Model,
)
from mpi_qinfer.models.derived import GaussianRandomWalkModel, MLEModel, MultinomialModel, RandomWalkModel
from mpi_qinfer.models.rb import RandomizedBenchmarkingModel

N_MODELS = (1, 2, 3, 5, 7, 64, 1001)


def random_expparams(model, n, rng):
    expparams = np.zeros(n, dtype=model.expparams_dtype)
    if expparams.dtype.names is None:
        expparams[:] = rng.uniform(0, 10, n)
        return expparams
    for name in expparams.dtype.names:
        expparams[name] = rng.integers(1, 6, n) if name == "n_meas" else rng.uniform(0, 10, n)
    return expparams


def random_modelparams(model, n, rng):
    return rng.uniform(0.05, 1.0, (n, model.n_modelparams))


def all_outcomes(model, expparams):
    values = np.asarray(model.domain(expparams[:1])[0].values)
    if values.dtype.names is not None:  # records (multinomial counts): the first experiment's
        return values
    if model.is_n_outcomes_constant:
        return np.arange(model.n_outcomes(expparams[:1]))
    return np.arange(int(np.min(model.n_outcomes(expparams))))


SERIAL_MODELS = {
    "precession": SimplePrecessionModel,
    "ramsey": RamseyModel,
    "binomial": lambda: BinomialModel(SimplePrecessionModel()),
    "ising": lambda: IsingChainModel(n_qubits=2),
    # qinfer's guide and test-suite models.
    "inversion": SimpleInversionModel,
    "unknown-t2": UnknownT2Model,
    "coin": CoinModel,
    "noisy-coin": NoisyCoinModel,
    "die": lambda: NDieModel(n=4),
    "binomial-coin": lambda: BinomialModel(CoinModel()),
    "multinomial-die": lambda: MultinomialModel(NDieModel(n=3)),
    "rb": RandomizedBenchmarkingModel,
    "rb-interleaved": lambda: BinomialModel(RandomizedBenchmarkingModel(interleaved=True)),
    "mle": lambda: MLEModel(SimplePrecessionModel(), likelihood_power=2),
    "random-walk": lambda: RandomWalkModel(SimplePrecessionModel(), NormalDistribution(0, 0.01)),
    "gaussian-walk": lambda: GaussianRandomWalkModel(BinomialModel(CoinModel()), diagonal=False),
}
