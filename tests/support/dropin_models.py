"""Small serial models with the dtypes and interfaces that real qinfer models use.

Each one exercises one thing the proxy must pass through unchanged: an empty
experiment dtype, record outcomes, a castable record field, an answer dtype
other than float64, a big-endian field, a sub-array field, an extra method, a
failure of the model's own. Every likelihood computes each model row on its
own with elementwise arithmetic, so any split between ranks gives bitwise the
serial answer.
"""

from __future__ import annotations

import math

import numpy as np

from mpi_qinfer.models.base import FiniteOutcomeModel, IntegerDomain, Model
from mpi_qinfer.models.builtin import SimplePrecessionModel

#: Six counts per outcome, one per face of a die (the shape of qinfer's multinomial outcomes).
COUNTS_DTYPE = np.dtype([("k", np.int64, (6,))])


def _times(expparams, field="t") -> np.ndarray:
    return np.asarray(expparams[field], dtype=np.float64)


class CoinModel(FiniteOutcomeModel):
    """A biased coin: no experiment parameters at all (an empty record dtype).

    Only the number of experiments counts; like qinfer's ``CoinModel``, any
    1-d array of that length works as ``expparams``.
    """

    @property
    def n_modelparams(self) -> int:
        return 1

    @property
    def expparams_dtype(self):
        return []

    @property
    def is_n_outcomes_constant(self) -> bool:
        return True

    def n_outcomes(self, expparams) -> int:
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        return np.all((modelparams >= 0) & (modelparams <= 1), axis=1)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        super().likelihood(outcomes, modelparams, expparams)
        pr0 = np.repeat(modelparams[:, :1], expparams.shape[0], axis=1)
        return self.pr0_to_likelihood_array(outcomes, pr0)


class CountsDomain:
    """Every way to share ``n_meas`` throws among six faces: records of dtype :data:`COUNTS_DTYPE`."""

    def __init__(self, n_meas: int):
        self.n_meas = int(n_meas)

    @property
    def dtype(self) -> np.dtype:
        return COUNTS_DTYPE

    @property
    def n_members(self) -> int:
        return math.comb(self.n_meas + 5, 5)

    @property
    def values(self) -> np.ndarray:
        rows = [counts for counts in np.ndindex(*(self.n_meas + 1,) * 6) if sum(counts) == self.n_meas]
        out = np.zeros(len(rows), dtype=COUNTS_DTYPE)
        out["k"] = np.array(rows, dtype=np.int64).reshape(len(rows), 6)
        return out

    def in_domain(self, points) -> bool:
        counts = np.asarray(points)["k"]
        return bool(np.all(counts >= 0) and np.all(counts.sum(axis=-1) == self.n_meas))


class DieCountsModel(Model):
    """``n_meas`` throws of a six-sided die; each outcome is a record of six counts.

    The model parameters are the six face probabilities; the experiment the
    number of throws. Outcomes have dtype ``[('k', int, (6,))]`` as in
    qinfer's ``MultinomialModel``.
    """

    @property
    def n_modelparams(self) -> int:
        return 6

    @property
    def expparams_dtype(self):
        return [("n_meas", np.int64)]

    @property
    def is_n_outcomes_constant(self) -> bool:
        return False

    def n_outcomes(self, expparams) -> np.ndarray:
        return np.array([math.comb(int(n) + 5, 5) for n in expparams["n_meas"]])

    def domain(self, expparams):
        return [CountsDomain(n) for n in expparams["n_meas"]]

    def are_models_valid(self, modelparams) -> np.ndarray:
        return np.all(modelparams >= 0, axis=1) & (np.abs(modelparams.sum(axis=1) - 1) < 1e-9)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        super().likelihood(outcomes, modelparams, expparams)
        counts = np.asarray(outcomes)["k"].reshape(-1, 6)  # (n_outcomes, 6)
        totals = counts.sum(axis=1)
        log_coefficient = np.array(
            [math.lgamma(n + 1) - sum(math.lgamma(k + 1) for k in row) for n, row in zip(totals, counts)]
        )
        powers = np.prod(modelparams[np.newaxis, :, :] ** counts[:, np.newaxis, :], axis=2)  # (n_out, n_models)
        possible = totals[:, np.newaxis] == np.asarray(expparams["n_meas"])[np.newaxis, :]  # (n_out, n_exp)
        return np.exp(log_coefficient)[:, None, None] * powers[:, :, None] * possible[:, None, :]

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        super().simulate_experiment(modelparams, expparams, repeat)
        out = np.zeros((repeat, modelparams.shape[0], expparams.shape[0]), dtype=COUNTS_DTYPE)
        probabilities = modelparams / modelparams.sum(axis=1, keepdims=True)
        for index, n_meas in enumerate(expparams["n_meas"]):
            for row, pvals in enumerate(probabilities):
                out["k"][:, row, index] = self.rng.multinomial(int(n_meas), pvals, size=repeat)
        return out[0, 0, 0] if out.size == 1 else out


class UnsignedBinomialModel(Model):
    """Successes in ``n_meas`` tries of a precessing qubit; ``n_meas`` is a ``uint64`` field.

    Users build such arrays with plain ints (``int64``), as qinfer's own
    tests do; numpy assignment casts them.
    """

    @property
    def n_modelparams(self) -> int:
        return 1

    @property
    def expparams_dtype(self):
        return [("t", np.float64), ("n_meas", np.uint64)]

    @property
    def is_n_outcomes_constant(self) -> bool:
        return False

    def n_outcomes(self, expparams) -> np.ndarray:
        return np.asarray(expparams["n_meas"]).astype(np.int64) + 1

    def domain(self, expparams):
        return [IntegerDomain(0, int(n)) for n in expparams["n_meas"]]

    def are_models_valid(self, modelparams) -> np.ndarray:
        return np.all(modelparams >= 0, axis=1)

    def _pr1(self, modelparams, expparams) -> np.ndarray:
        return np.sin(modelparams[:, 0:1] * _times(expparams)[np.newaxis, :] / 2) ** 2

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        super().likelihood(outcomes, modelparams, expparams)
        k = np.atleast_1d(np.asarray(outcomes)).astype(np.int64)
        n = np.asarray(expparams["n_meas"]).astype(np.int64)
        coefficient = np.array([[math.comb(int(ni), int(ki)) for ni in n] for ki in k], dtype=np.float64)
        pr1 = self._pr1(modelparams, expparams)[np.newaxis]
        kk = k[:, np.newaxis, np.newaxis]
        rest = np.maximum(n[np.newaxis, np.newaxis, :] - kk, 0)
        return coefficient[:, np.newaxis, :] * pr1**kk * (1 - pr1) ** rest

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        super().simulate_experiment(modelparams, expparams, repeat)
        pr1 = self._pr1(modelparams, expparams)
        n = np.asarray(expparams["n_meas"]).astype(np.int64)
        outcomes = self.rng.binomial(n, pr1, size=(repeat,) + pr1.shape).astype(np.int64)
        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes


class SinglePrecisionModel(SimplePrecessionModel):
    """The precession likelihood, returned as ``float32``."""

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        return super().likelihood(outcomes, modelparams, expparams).astype(np.float32)


class IntValidityModel(SimplePrecessionModel):
    """``are_models_valid`` answers with 0/1 integers, not booleans (it works serially)."""

    def are_models_valid(self, modelparams) -> np.ndarray:
        return (modelparams[:, 0] >= 0.25).astype(np.int64)


class BigEndianModel(FiniteOutcomeModel):
    """A precessing qubit whose experiment dtype is big-endian, as data read from some files is."""

    @property
    def n_modelparams(self) -> int:
        return 1

    @property
    def expparams_dtype(self):
        return [("t", ">f8"), ("phase", ">i4")]

    @property
    def is_n_outcomes_constant(self) -> bool:
        return True

    def n_outcomes(self, expparams) -> int:
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        return np.all(modelparams >= 0, axis=1)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        super().likelihood(outcomes, modelparams, expparams)
        angle = modelparams[:, 0:1] * _times(expparams)[np.newaxis, :] + 0.1 * expparams["phase"][np.newaxis, :]
        return self.pr0_to_likelihood_array(outcomes, np.cos(angle / 2) ** 2)


class SubArrayModel(FiniteOutcomeModel):
    """Experiments with a three-vector field ``v``; the model casts what it gets to its own dtype.

    Given a scalar field ``v``, numpy's cast fills each experiment's vector
    with that experiment's value.
    """

    WEIGHTS = np.array([1.0, 0.5, 0.25])

    @property
    def n_modelparams(self) -> int:
        return 1

    @property
    def expparams_dtype(self):
        return [("v", np.float64, (3,))]

    @property
    def is_n_outcomes_constant(self) -> bool:
        return True

    def n_outcomes(self, expparams) -> int:
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        return np.all(modelparams >= 0, axis=1)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        super().likelihood(outcomes, modelparams, expparams)
        vectors = np.asarray(expparams).astype(np.dtype(self.expparams_dtype))["v"]  # (n_exp, 3)
        t = vectors @ self.WEIGHTS
        return self.pr0_to_likelihood_array(outcomes, np.cos(modelparams[:, 0:1] * t[np.newaxis, :] / 2) ** 2)


class WalkingPrecessionModel(SimplePrecessionModel):
    """A precession model with the extras of a random-walk model: an attribute and a method
    that updaters call (``est_update_covariance``) but the proxy does not define."""

    def __init__(self, step_scale: float = 0.125):
        super().__init__()
        self.step_scale = step_scale

    def est_update_covariance(self, modelparams) -> np.ndarray:
        """The covariance one time step adds to the particles."""
        return self.step_scale**2 * np.cov(np.asarray(modelparams).T, ddof=0).reshape(1, 1)


class ModelBlewUp(ArithmeticError):
    """The failure of :class:`FailingModel`: a type of the model's own, which the proxy must keep."""


#: The experiment time at which :class:`FailingModel` fails, on every rank.
POISON_TIME = -13.0


class FailingModel(SimplePrecessionModel):
    """Raises :class:`ModelBlewUp` from ``likelihood`` when an experiment time is :data:`POISON_TIME`."""

    def likelihood(self, outcomes, modelparams, expparams):
        if np.any(np.asarray(expparams) == POISON_TIME):
            raise ModelBlewUp("the model cannot run at t = POISON_TIME")
        return super().likelihood(outcomes, modelparams, expparams)
