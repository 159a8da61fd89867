"""perf_test and perf_test_multiple with the real qinfer: qinfer's models, priors and heuristics, and
qinfer's own perf_test_multiple on the same truth; the trial farm on a qinfer model at several ranks.

Skipped where qinfer does not import (``scripts/make_qinfer_venv.sh`` builds an environment where it
does). The MPI test runs as::

    timeout 300 mpiexec -n 2 python -m mpi4py -m pytest --with-mpi -m mpi tests/with_qinfer/test_qinfer_perf_testing.py
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

qinfer = pytest.importorskip("qinfer")

from mpi_qinfer import perf_test_multiple  # noqa: E402 - after the skip
from mpi_qinfer.smc.perf_testing import performance_dtype  # noqa: E402

pytestmark = pytest.mark.qinfer


def qinfer_dtype(model) -> np.dtype:
    from qinfer.perf_testing import actual_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # NumPy on qinfer's (type, 1) field spelling
        return np.dtype(actual_dtype(model)[0])


def same_trials(a, b) -> bool:
    return all(np.array_equal(a[name], b[name]) for name in a.dtype.names if name != "elapsed_time")


@pytest.mark.parametrize("make", [qinfer.SimplePrecessionModel, qinfer.RandomizedBenchmarkingModel,
                                  lambda: qinfer.BinomialModel(qinfer.SimplePrecessionModel())],
                         ids=["precession", "benchmarking", "binomial"])
def test_the_record_is_qinfers(make):
    model = make()
    ours, theirs = performance_dtype(model), qinfer_dtype(model)
    assert ours.names == theirs.names
    for name in ours.names:
        assert ours[name].base == theirs[name].base, name
        if name in ("true", "est") and model.n_modelparams == 1:
            assert (ours[name].shape, theirs[name].shape) == ((1,), ())  # the parameter axis is kept
        else:
            assert ours[name].shape == theirs[name].shape, name


def test_qinfers_model_prior_and_heuristic_give_reproducible_trials():
    model, prior = qinfer.SimplePrecessionModel(), qinfer.UniformDistribution([0, 1])
    np.random.seed(1)
    first = perf_test_multiple(3, model, 300, prior, 15, qinfer.ExpSparseHeuristic, seed=5)
    np.random.seed(2)  # qinfer's objects draw from the global generator, which each trial seeds
    second = perf_test_multiple(3, model, 300, prior, 15, qinfer.ExpSparseHeuristic, seed=5)
    assert same_trials(first, second)
    assert len(set(first["true"][:, 0, 0])) == 3


def test_against_qinfers_perf_test_multiple_on_the_same_truth():
    """Not the same draws (qinfer's updater uses the global generator): the same experiments, truths and
    records, and estimates that converge alike."""
    model, prior = qinfer.SimplePrecessionModel(), qinfer.UniformDistribution([0, 1])
    truth = np.array([0.37])
    ours = perf_test_multiple(8, model, 500, prior, 40, qinfer.ExpSparseHeuristic, true_mps=truth, seed=3)
    np.random.seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = qinfer.perf_test_multiple(8, model, 500, prior, 40, qinfer.ExpSparseHeuristic, true_mps=truth)
    assert ours.shape == theirs.shape == (8, 40)
    assert np.array_equal(ours["experiment"], theirs["experiment"])  # exponentially sparse: no randomness
    assert np.all(ours["true"][..., 0] == 0.37) and np.all(theirs["true"] == 0.37)
    assert set(np.unique(ours["outcome"])) <= {0, 1} and set(np.unique(theirs["outcome"])) <= {0, 1}
    # After 40 experiments up to t = (9/8)**39, about 100, the posterior is narrow for both.
    for perf in (ours, theirs):
        assert np.median(perf["loss"][:, -1]) < 1e-3
        assert np.all(perf["resample_count"][:, -1] > 0)
        assert np.all(np.diff(perf["resample_count"], axis=1) >= 0)


@pytest.mark.mpi(min_size=2)
def test_the_farm_runs_qinfer_models_to_the_serial_trials():
    from conftest import assert_collectively, verdict_of
    from mpi4py import MPI

    from mpi_qinfer import TrialFarm

    comm = MPI.COMM_WORLD
    model, prior = qinfer.SimplePrecessionModel(), qinfer.UniformDistribution([0, 1])
    np.random.seed(comm.Get_rank())
    got = TrialFarm(comm).perf_test_multiple(5, model, 300, prior, 12, qinfer.ExpSparseHeuristic, seed=4)

    def check():
        want = perf_test_multiple(5, qinfer.SimplePrecessionModel(), 300, prior, 12, qinfer.ExpSparseHeuristic,
                                  seed=4)
        assert same_trials(got, want)

    assert_collectively(comm, verdict_of(check) if comm.Get_rank() == 0 else None)
