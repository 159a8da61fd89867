"""The drop-in contract, at 2 and 3 ranks: wrapping a model changes its speed and nothing else.

For every input the serial model accepts, the proxy returns bitwise the same
answer (type, dtype, shape, values; scalars squeezed alike); for an input the
serial model rejects, and for a failure inside the model, the proxy raises the
serial model's exception type, whichever path the call took. Each test runs
with the proxy always parallel (``serial_threshold=0``), deciding by itself
(``"auto"``) and always serial (a threshold no call reaches), against the
serial model called directly with the very same arguments.

    scripts/mpi-pytest.sh .venv 2 tests/spmd/test_dropin.py
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_parallel
from dropin_checks import THRESHOLDS, check_simulation, same_on_both
from dropin_models import (
    COUNTS_DTYPE,
    POISON_TIME,
    BigEndianModel,
    CoinModel,
    CountsDomain,
    DieCountsModel,
    FailingModel,
    IntValidityModel,
    ModelBlewUp,
    SinglePrecisionModel,
    SubArrayModel,
    UnsignedBinomialModel,
    WalkingPrecessionModel,
)

from mpi_qinfer.errors import RemoteError
from mpi_qinfer.models.base import DifferentiableModel
from mpi_qinfer.models.builtin import SimplePrecessionModel

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture(params=list(THRESHOLDS.values()), ids=list(THRESHOLDS))
def threshold(request):
    return request.param

# ------------------------------------------------------- experiment dtypes
def test_empty_expparams_dtype(comm, threshold):
    """A coin has no experiment parameters: any 1-d array of the right length is accepted, as serially."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(1).uniform(0, 1, (40, 1))
        for expparams in (np.zeros(10, dtype=serial.expparams_dtype), np.ones(10, dtype=int)):
            same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, expparams)
            same_on_both(proxy, serial, "update_timestep", modelparams, expparams)
            check_simulation(proxy, serial, modelparams, expparams, repeat=3)
            check_simulation(proxy, serial, modelparams[:1], expparams[:1])  # one draw: a scalar
        same_on_both(proxy, serial, "are_models_valid", modelparams)

    run_parallel(comm, CoinModel(), check, serial_threshold=threshold)


def test_castable_record_field(comm, threshold):
    """int64 values for a uint64 field, as numpy assignment takes them; fields by name, in any order."""

    def check(proxy, serial):
        rng = np.random.default_rng(2)
        modelparams = rng.uniform(0, 2, (30, 1))
        outcomes = np.arange(4)
        for layout in ([("t", "f8"), ("n_meas", "i8")], [("n_meas", "i8"), ("t", "f8")],
                       [("t", "f4"), ("n_meas", "i4"), ("note", "f8")]):
            expparams = np.zeros(12, dtype=layout)
            expparams["t"] = np.linspace(0.5, 6, 12)
            expparams["n_meas"] = np.arange(3, 15)
            same_on_both(proxy, serial, "likelihood", outcomes, modelparams, expparams)
            same_on_both(proxy, serial, "update_timestep", modelparams, expparams)
            check_simulation(proxy, serial, modelparams, expparams, repeat=2)

    run_parallel(comm, UnsignedBinomialModel(), check, serial_threshold=threshold)


@pytest.mark.parametrize("split", ["models", "experiments"])
def test_big_endian_expparams_field(comm, threshold, split):
    """A big-endian experiment dtype: 2 x 400 experiments, given big- or little-endian."""

    def check(proxy, serial):
        modelparams = np.array([[0.3], [1.7]])
        big = np.zeros(400, dtype=serial.expparams_dtype)
        big["t"] = np.linspace(0, 20, 400)
        big["phase"] = np.arange(400) % 7
        little = big.astype([("t", "<f8"), ("phase", "<i4")])
        for expparams in (big, little):
            same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, expparams)
            same_on_both(proxy, serial, "likelihood", np.array([1]), modelparams[:1], expparams[:1])

    run_parallel(comm, BigEndianModel(), check, serial_threshold=threshold, split=split)


def test_scalar_given_for_a_sub_array_field(comm, threshold):
    """A scalar ``v`` for a three-vector field: each experiment's vector holds its own value, as numpy casts."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(3).uniform(0, 2, (25, 1))
        for values in ([1, 2, 3], [1, 2, 3, 4, 5]):
            expparams = np.array([(v,) for v in values], dtype=[("v", "i8")])
            same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, expparams)

    run_parallel(comm, SubArrayModel(), check, serial_threshold=threshold)


# ------------------------------------------------------- outcome and answer dtypes
def test_record_outcomes(comm, threshold):
    """Outcomes are records ``[('k', int, (6,))]``: taken by likelihood, returned by simulate_experiment."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(4).dirichlet(np.ones(6), 30)
        expparams = np.array([(3,), (3,), (2,)], dtype=serial.expparams_dtype)
        outcomes = CountsDomain(3).values
        same_on_both(proxy, serial, "likelihood", outcomes, modelparams, expparams)
        same_on_both(proxy, serial, "likelihood", outcomes[:1], modelparams, expparams)
        drawn = check_simulation(proxy, serial, modelparams, expparams, repeat=2)
        assert drawn.dtype == COUNTS_DTYPE
        assert np.array_equal(drawn["k"].sum(axis=-1), np.broadcast_to(expparams["n_meas"], drawn.shape))
        one = check_simulation(proxy, serial, modelparams[:1], expparams[:1])
        assert isinstance(one, np.void) and one["k"].sum() == 3

    run_parallel(comm, DieCountsModel(), check, serial_threshold=threshold)


def test_single_precision_likelihood(comm, threshold):
    """A likelihood computed in float32 comes back float32, bit for bit."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(5).uniform(0, 2, (50, 1))
        same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, np.linspace(0, 9, 7))

    run_parallel(comm, SinglePrecisionModel(), check, serial_threshold=threshold)


def test_integer_are_models_valid(comm, threshold):
    """``are_models_valid`` answering 0/1 integers: the same integers come back, on every path."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(6).uniform(0, 1, (64, 1))
        for _ in range(4):  # "auto" tries both paths before it settles
            same_on_both(proxy, serial, "are_models_valid", modelparams)

    run_parallel(comm, IntValidityModel(), check, serial_threshold=threshold)


# ------------------------------------------------------- the model's interface
def test_differentiable_model_gives_a_differentiable_proxy(comm, threshold):
    def check(proxy, serial):
        assert isinstance(proxy, DifferentiableModel), f"{type(proxy).__name__} is not a DifferentiableModel"
        modelparams = np.random.default_rng(7).uniform(0.1, 2, (40, 1))
        expparams = np.linspace(0.5, 5, 6)
        outcomes = np.array([0, 1])
        same_on_both(proxy, serial, "score", outcomes, modelparams, expparams)
        same_on_both(proxy, serial, "score", outcomes, modelparams, expparams, return_L=True)
        same_on_both(proxy, serial, "fisher_information", modelparams, expparams)

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=threshold)


def test_plain_model_gives_a_plain_proxy(comm, threshold):
    def check(proxy, serial):
        assert not isinstance(proxy, DifferentiableModel), "a coin is not differentiable, nor is its proxy"

    run_parallel(comm, CoinModel(), check, serial_threshold=threshold)


def test_attributes_and_methods_reach_the_serial_model(comm, threshold):
    """What the proxy does not define itself (a random-walk model's extras) is the serial model's."""

    def check(proxy, serial):
        assert proxy.step_scale == serial.step_scale == 0.25
        modelparams = np.random.default_rng(8).uniform(0, 2, (30, 1))
        same_on_both(proxy, serial, "est_update_covariance", modelparams)
        with pytest.raises(AttributeError):
            proxy.no_such_attribute  # noqa: B018 - the lookup is the test

    run_parallel(comm, WalkingPrecessionModel(step_scale=0.25), check, serial_threshold=threshold)


# ------------------------------------------------------- exceptions
def test_model_failure_raises_the_models_own_type(comm, threshold):
    """The model's exception type on every path; in parallel, a RemoteError with ranks and tracebacks as cause."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(9).uniform(0, 2, (12, 1))
        poisoned = np.array([1.0, POISON_TIME])
        outcomes = np.array([0, 1])
        with pytest.raises(ModelBlewUp):
            serial.likelihood(outcomes, modelparams, poisoned)
        for _ in range(6):  # "auto" explores both paths, then settles on one
            with pytest.raises(ModelBlewUp) as caught:
                proxy.likelihood(outcomes, modelparams, poisoned)
            cause = caught.value.__cause__
            if proxy.serial_threshold == 0:
                assert isinstance(cause, RemoteError), f"the cause is {cause!r}, not a RemoteError"
                assert cause.ranks and cause.ranks == sorted(cause.tracebacks)
                assert all("ModelBlewUp" in text for text in cause.tracebacks.values())
            elif cause is not None:
                assert isinstance(cause, RemoteError), f"the cause is {cause!r}"
        # The proxy is in step after the failures.
        same_on_both(proxy, serial, "likelihood", outcomes, modelparams, np.array([1.0, 2.0]))

    run_parallel(comm, FailingModel(), check, serial_threshold=threshold)


def test_rejected_input_raises_the_serial_type(comm, threshold):
    """Experiments without a field the model reads: the exception type numpy gives the serial model."""

    def check(proxy, serial):
        modelparams = np.random.default_rng(10).uniform(0, 2, (20, 1))
        lacking = np.zeros(5, dtype=[("t", "f8")])
        with pytest.raises(Exception) as serial_error:
            serial.likelihood(np.arange(3), modelparams, lacking)
        with pytest.raises(type(serial_error.value)):
            proxy.likelihood(np.arange(3), modelparams, lacking)

    run_parallel(comm, UnsignedBinomialModel(), check, serial_threshold=threshold)
