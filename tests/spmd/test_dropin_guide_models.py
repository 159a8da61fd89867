"""qinfer's guide and test-suite models through the proxy, at 2 and 3 ranks: the drop-in contract.

Every call the serial model answers, the proxy answers bitwise alike (type,
dtype, shape, bytes); every call it refuses, the proxy refuses with the same
exception type; at each serial threshold (always parallel, "auto", never).
Random calls (simulations, random-walk steps) are compared bitwise where the
root draws them and by type, dtype and shape where the ranks draw their own
streams. A poisoned model's likelihood draws random numbers: the proxy runs
it on the root, so it too is the serial model's own draw.

    scripts/mpi-pytest.sh .venv 2 tests/spmd/test_dropin_guide_models.py
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
from conftest import run_parallel
from dropin_checks import THRESHOLDS, assert_bitwise, check_simulation, reseed_model_rng, same_on_both

from mpi_qinfer.models.base import DifferentiableModel
from mpi_qinfer.models.builtin import (
    BinomialModel,
    CoinModel,
    NDieModel,
    NoisyCoinModel,
    SimpleInversionModel,
    SimplePrecessionModel,
    UnknownT2Model,
)
from mpi_qinfer.models.derived import (
    ALEApproximateModel,
    GaussianHyperparameterizedModel,
    GaussianRandomWalkModel,
    MLEModel,
    MultinomialModel,
    PoisonedModel,
    RandomWalkModel,
)
from mpi_qinfer.models.distributions import NormalDistribution
from mpi_qinfer.models.rb import RandomizedBenchmarkingModel

pytestmark = pytest.mark.mpi(min_size=2)

N_MODELS, N_EXP = 37, 9


def _times(dtype):
    return np.linspace(0.5, 5, N_EXP).astype(dtype)


def _records(dtype, **columns):
    expparams = np.zeros(N_EXP, dtype=dtype)
    for name, values in columns.items():
        expparams[name] = values
    return expparams


def _uniform(low, high, width):
    return lambda rng: rng.uniform(low, high, (N_MODELS, width))


def _simplex(width, extra=0):
    def draw(rng):
        weights = rng.dirichlet(np.ones(width), N_MODELS)
        return np.column_stack([weights, rng.uniform(0, 0.1, (N_MODELS, extra))]) if extra else weights
    return draw


def _rb(interleaved):
    def draw(rng):
        p = rng.uniform(0.8, 1, (N_MODELS, 2 if interleaved else 1))
        a = rng.uniform(0.2, 0.5, (N_MODELS, 1))
        return np.column_stack([p, a, rng.uniform(0, 0.4, (N_MODELS, 1))])
    return draw


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable  # () -> serial model, on every rank
    modelparams: Callable  # rng -> (N_MODELS, n_modelparams)
    expparams: Callable  # model -> N_EXP experiments


def _multinomial_experiments(model):
    return _records(model.expparams_dtype, exp_num=np.arange(N_EXP), n_meas=np.arange(N_EXP) % 3 + 1)


CASES = [
    Case("inversion", SimpleInversionModel, _uniform(0.1, 2, 1),
         lambda m: _records(m.expparams_dtype, t=np.linspace(0.5, 5, N_EXP), w_=np.linspace(0, 0.5, N_EXP))),
    Case("unknown-t2", UnknownT2Model, _uniform(0.1, 2, 2), lambda m: _records(m.expparams_dtype, t=_times(float))),
    Case("coin", CoinModel, _uniform(0, 1, 1), lambda m: np.ones(N_EXP, dtype=int)),
    Case("noisy-coin", NoisyCoinModel, _uniform(0, 1, 1),
         lambda m: _records(m.expparams_dtype, alpha=0.9, beta=np.linspace(0, 0.5, N_EXP))),
    Case("die", lambda: NDieModel(n=6), _simplex(6), lambda m: _records(m.expparams_dtype, exp_num=np.arange(N_EXP))),
    Case("binomial-coin", lambda: BinomialModel(CoinModel()), _uniform(0, 1, 1),
         lambda m: _records(m.expparams_dtype, n_meas=np.arange(N_EXP) + 3)),
    Case("binomial-noisy-coin", lambda: BinomialModel(NoisyCoinModel()), _uniform(0, 1, 1),
         lambda m: _records(m.expparams_dtype, alpha=0.9, beta=0.1, n_meas=np.arange(N_EXP) + 3)),
    Case("multinomial-die", lambda: MultinomialModel(NDieModel(n=4)), _simplex(4), _multinomial_experiments),
    Case("rb", RandomizedBenchmarkingModel, _rb(False), lambda m: _records(m.expparams_dtype, m=np.arange(N_EXP))),
    Case("rb-interleaved", lambda: RandomizedBenchmarkingModel(interleaved=True), _rb(True),
         lambda m: _records(m.expparams_dtype, m=np.arange(N_EXP) * 3, reference=np.arange(N_EXP) % 2 == 0)),
    Case("binomial-rb", lambda: BinomialModel(RandomizedBenchmarkingModel()), _rb(False),
         lambda m: _records(m.expparams_dtype, m=np.arange(N_EXP) * 5 + 1, n_meas=40)),
    Case("mle", lambda: MLEModel(SimplePrecessionModel(), likelihood_power=3), _uniform(0.1, 2, 1),
         lambda m: _times(float)),
    Case("random-walk", lambda: RandomWalkModel(SimplePrecessionModel(), NormalDistribution(0, 0.01)),
         _uniform(0.1, 2, 1), lambda m: _times(float)),
    Case("gaussian-walk-fixed", lambda: GaussianRandomWalkModel(
        BinomialModel(CoinModel()), fixed_covariance=np.array([0.01])), _uniform(0.3, 0.7, 1),
         lambda m: _records(m.expparams_dtype, n_meas=np.arange(N_EXP) + 3)),
    Case("gaussian-hyper", lambda: GaussianHyperparameterizedModel(CoinModel()),
         lambda rng: np.column_stack([rng.uniform(0, 1, N_MODELS), rng.normal(0, 3, (N_MODELS, 2)),
                                      rng.uniform(0.5, 2, (N_MODELS, 2))]),
         lambda m: np.ones(N_EXP, dtype=int)),
    Case("gaussian-walk-learned", lambda: GaussianRandomWalkModel(
        MultinomialModel(NDieModel(n=4)), random_walk_idxs=[0, 2], diagonal=False, scale_mult="n_meas"),
         _simplex(4, extra=3), _multinomial_experiments),
]


def _outcomes(model, expparams):
    """Every outcome of the first experiment (its domain's values)."""
    return np.asarray(model.domain(expparams[:1])[0].values)


@pytest.fixture(params=list(THRESHOLDS.values()), ids=list(THRESHOLDS))
def threshold(request):
    return request.param


def _is_random_step(model) -> bool:
    return isinstance(model, (RandomWalkModel, GaussianRandomWalkModel))


def _check_step(proxy, serial, modelparams, expparams):
    """update_timestep: bitwise where the root draws it; else the same shape and dtype."""
    reseed_model_rng(serial)
    got = proxy.update_timestep(modelparams, expparams)
    reseed_model_rng(serial)
    want = serial.update_timestep(modelparams, expparams)
    if proxy.serial_threshold != 0 or not _is_random_step(serial):
        assert_bitwise(got, want, "update_timestep")
    else:
        assert got.shape == want.shape and got.dtype == want.dtype


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_call_is_the_serial_models(comm, threshold, case):
    def check(proxy, serial):
        rng = np.random.default_rng(11)
        modelparams = case.modelparams(rng)
        expparams = case.expparams(serial)
        outcomes = _outcomes(serial, expparams)
        assert proxy.domain(expparams) == serial.domain(expparams)
        for _ in range(3):  # "auto" measures both paths before it settles
            same_on_both(proxy, serial, "likelihood", outcomes, modelparams, expparams)
        same_on_both(proxy, serial, "likelihood", outcomes[:1], modelparams[:1], expparams[:1])
        same_on_both(proxy, serial, "are_models_valid", modelparams)
        if isinstance(serial, DifferentiableModel):
            assert isinstance(proxy, DifferentiableModel)
            same_on_both(proxy, serial, "score", outcomes, modelparams, expparams)
            same_on_both(proxy, serial, "score", outcomes, modelparams, expparams, return_L=True)
            same_on_both(proxy, serial, "fisher_information", modelparams, expparams)
        _check_step(proxy, serial, modelparams, expparams)
        drawn = check_simulation(proxy, serial, modelparams, expparams, repeat=3)
        for index in range(N_EXP):
            assert serial.domain(expparams[index : index + 1])[0].in_domain(drawn[:, :, index].reshape(-1))
        check_simulation(proxy, serial, modelparams[:1], expparams[:1])  # one draw: a scalar, squeezed alike

    run_parallel(comm, case.make(), check, serial_threshold=threshold)


def _raised(call, *args):
    try:
        call(*args)
    except Exception as error:  # noqa: BLE001 - compared by the caller
        return error
    return None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_what_the_serial_model_refuses_the_proxy_refuses_alike(comm, threshold, case):
    def check(proxy, serial):
        modelparams = case.modelparams(np.random.default_rng(12))
        expparams = case.expparams(serial)
        outcomes = _outcomes(serial, expparams)
        wide = np.column_stack([modelparams, modelparams[:, :1]])  # one column too many
        no_fields = np.zeros(N_EXP, dtype=[("unrelated", float)])
        for args in ((outcomes, wide, expparams), (outcomes, modelparams[:, 0], expparams),
                     (outcomes, modelparams, no_fields)):
            want = _raised(serial.likelihood, *args)
            got = _raised(proxy.likelihood, *args)
            if want is None:  # accepted serially (a model without experiment fields): accepted alike
                assert got is None, got
            else:
                assert type(got) is type(want), (got, want)

    run_parallel(comm, case.make(), check, serial_threshold=threshold)


@pytest.mark.parametrize("make", [
    lambda: PoisonedModel(SimplePrecessionModel(), tol=1e-2),
    lambda: PoisonedModel(SimplePrecessionModel(), n_samples=20, hedge=0.5),
    lambda: BinomialModel(PoisonedModel(SimplePrecessionModel(), tol=1e-2)),
    lambda: ALEApproximateModel(SimplePrecessionModel(), error_tol=0.1),
], ids=["adaptive", "maximum-likelihood", "binomial-of-poisoned", "ale"])
def test_a_poisoned_likelihood_is_the_serial_models_own_draw(comm, threshold, make):
    def check(proxy, serial):
        modelparams = np.random.default_rng(13).uniform(0.1, 2, (200, 1))
        expparams = np.zeros(N_EXP, dtype=serial.expparams_dtype)
        if expparams.dtype.names is None:
            expparams[:] = _times(float)
        else:
            expparams["x"], expparams["n_meas"] = _times(float), 5
        outcomes = _outcomes(serial, expparams)
        calls = proxy.engine.calls
        for _ in range(3):
            reseed_model_rng(serial)
            got = proxy.likelihood(outcomes, modelparams, expparams)
            reseed_model_rng(serial)
            assert_bitwise(got, serial.likelihood(outcomes, modelparams, expparams), "likelihood")
        assert proxy.engine.calls == calls  # on the root: nothing was sent
        # Two draws differ: the noise is fresh on every call.
        assert not np.array_equal(proxy.likelihood(outcomes, modelparams, expparams),
                                  proxy.likelihood(outcomes, modelparams, expparams))
        check_simulation(proxy, serial, modelparams, expparams, repeat=2)

    run_parallel(comm, make(), check, serial_threshold=threshold)


def test_qinfers_poisoned_model_is_its_own_draw_too(comm, threshold):
    """qinfer's PoisonedModel (in the qinfer venv) draws from the global generator: its calls stay on the root."""
    qinfer = pytest.importorskip("qinfer")

    def check(proxy, serial):
        modelparams = np.random.default_rng(14).uniform(0.1, 2, (200, 1))
        calls = proxy.engine.calls
        for _ in range(3):
            np.random.seed(5)
            got = proxy.likelihood(np.array([0, 1]), modelparams, _times(float))
            np.random.seed(5)
            assert_bitwise(got, serial.likelihood(np.array([0, 1]), modelparams, _times(float)), "likelihood")
        assert proxy.engine.calls == calls

    run_parallel(comm, qinfer.PoisonedModel(qinfer.SimplePrecessionModel(), tol=1e-2), check,
                 serial_threshold=threshold)
