"""The drop-in contract with the real qinfer 1.0 models that use unusual dtypes, at 2 and 3 ranks.

qinfer's ``BinomialModel`` has a ``uint`` field ``n_meas`` that users fill
with plain ints, ``CoinModel`` has no experiment parameters at all,
``MultinomialModel`` has record outcomes ``[('k', int, (6,))]`` and public
attributes of its own, ``SimplePrecessionModel`` is a ``DifferentiableModel``.
Each answer of the proxy is compared bitwise with the serial model's, with
the proxy always parallel, deciding by itself, and always serial. Skipped
where qinfer does not import (see ``scripts/make_qinfer_venv.sh``)::

    scripts/mpi-pytest.sh .venv-qinfer 2 tests/with_qinfer/test_qinfer_dropin.py
"""

from __future__ import annotations

import numpy as np
import pytest

qinfer = pytest.importorskip("qinfer")
MPI = pytest.importorskip("mpi4py.MPI")

from conftest import run_parallel, same_behaviour  # noqa: E402 - after the skips
from dropin_checks import THRESHOLDS, check_simulation, reseed_global, same_on_both  # noqa: E402

pytestmark = [pytest.mark.qinfer, pytest.mark.mpi(min_size=2)]


@pytest.fixture(params=list(THRESHOLDS.values()), ids=list(THRESHOLDS))
def threshold(request):
    return request.param


def binomial_expparams(n, integer_type="i8"):
    """Times and numbers of measurements, ``n_meas`` as plain ints (as qinfer's own tests build them)."""
    expparams = np.zeros(n, dtype=[("x", "f8"), ("n_meas", integer_type)])
    expparams["x"] = np.linspace(0.5, 5, n)
    expparams["n_meas"] = np.arange(10, 10 + n)
    return expparams


def test_binomial_model_given_int_n_meas(comm, threshold):
    def check(proxy, serial):
        np.random.seed(1)
        modelparams = np.random.uniform(5, 8, (30, 1))
        outcomes = np.arange(8)
        for expparams in (binomial_expparams(10), binomial_expparams(10).astype(serial.expparams_dtype)):
            same_on_both(proxy, serial, "likelihood", outcomes, modelparams, expparams)
            same_on_both(proxy, serial, "update_timestep", modelparams, expparams)
            check_simulation(proxy, serial, modelparams, expparams, repeat=2, reseed=reseed_global)
        assert proxy.decorated_model is serial.decorated_model  # an attribute the proxy does not define

    run_parallel(comm, qinfer.BinomialModel(qinfer.SimplePrecessionModel()), check, serial_threshold=threshold)


def test_coin_model_without_expparams(comm, threshold):
    def check(proxy, serial):
        np.random.seed(2)
        modelparams = np.random.uniform(0, 1, (40, 1))
        for expparams in (np.ones(10, dtype=int), np.zeros(10, dtype=serial.expparams_dtype)):
            same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, expparams)
            same_on_both(proxy, serial, "update_timestep", modelparams, expparams)
            check_simulation(proxy, serial, modelparams, expparams, repeat=3, reseed=reseed_global)
            check_simulation(proxy, serial, modelparams[:1], expparams[:1], reseed=reseed_global)

    run_parallel(comm, qinfer.CoinModel(), check, serial_threshold=threshold)


def test_binomial_coin_given_int_n_meas(comm, threshold):
    def check(proxy, serial):
        np.random.seed(3)
        modelparams = np.random.uniform(0, 1, (25, 1))
        expparams = np.arange(100, 108).astype([("n_meas", "i8")])
        same_on_both(proxy, serial, "likelihood", np.arange(0, 120, 7), modelparams, expparams)
        check_simulation(proxy, serial, modelparams, expparams, repeat=2, reseed=reseed_global)

    run_parallel(comm, qinfer.BinomialModel(qinfer.CoinModel()), check, serial_threshold=threshold)


def test_multinomial_model_record_outcomes(comm, threshold):
    # simulate_experiment is left out: qinfer 1.0's MultinomialModel passes an uninitialised
    # row of np.empty to np.random.multinomial, so even serially it fails or not by chance.
    def check(proxy, serial):
        np.random.seed(4)
        modelparams = np.random.dirichlet([1, 2, 3, 10, 1, 3], 20)
        expparams = np.array([(0, 3), (1, 3), (2, 2)], dtype=serial.expparams_dtype)
        outcomes = serial.domain(expparams[:1])[0].values
        assert outcomes.dtype.names == ("k",)
        same_on_both(proxy, serial, "likelihood", outcomes, modelparams, expparams)
        assert proxy.n_sides == serial.n_sides == 6  # attributes of the serial model's own
        assert proxy.underlying_domain is serial.underlying_domain

    run_parallel(comm, qinfer.MultinomialModel(qinfer.NDieModel(n=6)), check, serial_threshold=threshold)


def test_differentiable_qinfer_model_gives_a_differentiable_proxy(comm, threshold):
    def check(proxy, serial):
        assert isinstance(proxy, qinfer.DifferentiableModel)
        assert isinstance(proxy, qinfer.Model)
        np.random.seed(5)
        modelparams = np.random.uniform(0.1, 2, (30, 1))
        expparams = np.linspace(0.5, 5, 6)
        # qinfer 1.0's SimplePrecessionModel.score and fisher_information raise a TypeError
        # (they wrap the structured expparams twice): the proxy must raise the same, on every path.
        for method, args, kwargs in (("score", (np.array([0, 1]), modelparams, expparams), {"return_L": True}),
                                     ("fisher_information", (modelparams, expparams), {})):
            same_behaviour(lambda m=method, a=args, k=kwargs: getattr(serial, m)(*a, **k),
                           lambda m=method, a=args, k=kwargs: getattr(proxy, m)(*a, **k))

    run_parallel(comm, qinfer.SimplePrecessionModel(), check, serial_threshold=threshold)


def test_random_walk_model(comm, threshold):
    def check(proxy, serial):
        assert not isinstance(proxy, qinfer.DifferentiableModel)
        np.random.seed(6)
        modelparams = np.random.uniform(5, 8, (30, 1))
        expparams = np.linspace(1, 3, 4)
        same_on_both(proxy, serial, "likelihood", np.array([0, 1]), modelparams, expparams)
        if proxy.serial_threshold != 0:  # a random step, drawn on the root: the serial draws exactly
            reseed_global(serial)
            got = proxy.update_timestep(modelparams, expparams)
            reseed_global(serial)
            want = serial.update_timestep(modelparams, expparams)
            assert got.dtype == want.dtype and np.array_equal(got, want)

    walk = qinfer.RandomWalkModel(qinfer.SimplePrecessionModel(), qinfer.NormalDistribution(0, 0.01))
    run_parallel(comm, walk, check, serial_threshold=threshold)
