"""Property test: random shapes, dtypes and layouts give bitwise the serial answer in parallel."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_parallel

from mpi_qinfer.models.builtin import BinomialModel, RamseyModel, SimplePrecessionModel

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.mpi(min_size=2)

MODELPARAMS_DTYPES = ["<f8", ">f8", "<f4", "<i8", "<u2"]
OUTCOME_DTYPES = ["<i8", "<i4", "|i1", "<u8", "<f8", "|b1"]


@st.composite
def calls(draw, model):
    n_models = draw(st.integers(1, 300))
    n_exp = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    modelparams = rng.uniform(0, 3, (n_models, model.n_modelparams))
    dtype = np.dtype(draw(st.sampled_from(MODELPARAMS_DTYPES)))
    modelparams = (modelparams * (10 if dtype.kind in "iu" else 1)).astype(dtype)
    if draw(st.booleans()):
        modelparams = np.asfortranarray(modelparams)
    if draw(st.booleans()):
        modelparams = np.repeat(modelparams, 2, axis=0)[::2]
    expparams = np.zeros(n_exp, dtype=model.expparams_dtype)
    if expparams.dtype.names is None:
        expparams[:] = rng.uniform(0, 20, n_exp)
    else:
        for name in expparams.dtype.names:
            expparams[name] = rng.integers(1, 4, n_exp) if name == "n_meas" else rng.uniform(0.1, 20, n_exp)
    # Every outcome the model has for these experiments (a binomial model has n_meas + 1),
    # in any number and order, repeats allowed.
    n_outcomes = int(np.min(model.n_outcomes(expparams)))
    outcomes = np.array(draw(st.lists(st.integers(0, n_outcomes - 1), min_size=1, max_size=6)))
    outcomes = outcomes.astype(draw(st.sampled_from(OUTCOME_DTYPES)))
    split = draw(st.sampled_from(["models", "experiments", "auto"]))
    return outcomes, modelparams, expparams, split


@pytest.mark.parametrize("make_model", [SimplePrecessionModel, RamseyModel,
                                        lambda: BinomialModel(SimplePrecessionModel())])
def test_random_calls_are_bitwise_serial(comm, make_model):
    def check(proxy, serial):
        @settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(calls(serial))
        def one_call(call):
            outcomes, modelparams, expparams, split = call
            proxy._split = {"models": 0, "experiments": 1, "auto": None}[split]
            got = proxy.likelihood(outcomes, modelparams, expparams)
            want = serial.likelihood(outcomes, np.ascontiguousarray(modelparams), expparams)
            assert got.shape == want.shape and got.dtype == want.dtype
            assert np.array_equal(got, want, equal_nan=True)

        with np.errstate(all="ignore"):
            one_call()

    run_parallel(comm, make_model(), check, serial_threshold=0)
