"""Faults and bad input under MPI: clear errors on the root, every rank still in step."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_collectively, run_parallel, verdict_of
from fault_models import POISON, FailingModel, MisshapenModel, NanModel

from mpi_qinfer import (
    EngineClosedError,
    ModelMismatchError,
    MPIParallelizedModel,
    RemoteError,
    SMCUpdater,
    UniformDistribution,
)
from mpi_qinfer.models import BinomialModel, RamseyModel, SimplePrecessionModel

pytestmark = pytest.mark.mpi(min_size=2)

GOOD_TIMES = np.array([1.0, 2.5])
POISONED_TIMES = np.array([1.0, POISON])


def particles(n=40):
    return np.linspace(0.05, 1.0, n)[:, None]


def failing_ranks(comm):
    """The rank sets to inject failures on: one worker, several workers, the root, everyone."""
    size = comm.Get_size()
    sets = [(1,), (0,), tuple(range(size))]
    if size > 2:
        sets.append(tuple(range(1, size)))
    return sets


@pytest.mark.parametrize("which", range(4))
def test_model_error_reaches_the_root_as_remote_error(comm, which):
    rank_sets = failing_ranks(comm)
    if which >= len(rank_sets):
        pytest.skip("needs 3 ranks")
    fail_on = rank_sets[which]

    def check(proxy, serial):
        reference = SimplePrecessionModel()
        # Mid-run: a good call, a failing one, then good calls again.
        for times in (GOOD_TIMES, POISONED_TIMES, GOOD_TIMES, POISONED_TIMES, GOOD_TIMES):
            if times is POISONED_TIMES:
                with pytest.raises(RemoteError) as caught:
                    proxy.likelihood(np.arange(2), particles(), times)
                assert caught.value.ranks == sorted(fail_on)
                assert caught.value.command == "likelihood"
                for rank in fail_on:
                    assert f"injected failure on rank {rank}" in caught.value.tracebacks[rank]
                    assert "ZeroDivisionError" in caught.value.tracebacks[rank]
                assert f"rank{'s' if len(fail_on) > 1 else ''} {', '.join(map(str, sorted(fail_on)))}" in str(
                    caught.value)
            else:
                got = proxy.likelihood(np.arange(2), particles(), times)
                assert np.array_equal(got, reference.likelihood(np.arange(2), particles(), times))

    proxy = run_parallel(comm, FailingModel(fail_on=fail_on), check, serial_threshold=0)
    assert len(set(comm.allgather(proxy.engine.calls))) == 1


def test_first_call_failure_leaves_the_proxy_usable(comm):
    def check(proxy, serial):
        with pytest.raises(RemoteError):
            proxy.likelihood(np.arange(2), particles(), POISONED_TIMES)
        assert np.array_equal(proxy.likelihood(np.arange(2), particles(), GOOD_TIMES),
                              SimplePrecessionModel().likelihood(np.arange(2), particles(), GOOD_TIMES))

    run_parallel(comm, FailingModel(fail_on=(1,)), check, serial_threshold=0)


def test_failed_smc_update_changes_nothing(comm):
    def check(proxy, serial):
        updater = SMCUpdater(proxy, 500, UniformDistribution([0, 1]), rng=3)
        for t in (0.5, 1.0, 2.0):
            updater.update(0, np.array([t]))
        state = (updater.particle_locations.copy(), updater.particle_weights.copy(),
                 list(updater.data_record), list(updater.normalization_record))
        with pytest.raises(RemoteError):
            updater.update(1, np.array([POISON]))
        assert np.array_equal(updater.particle_locations, state[0])
        assert np.array_equal(updater.particle_weights, state[1])
        assert updater.data_record == state[2] and updater.normalization_record == state[3]
        updater.update(1, np.array([3.0]))
        assert len(updater.data_record) == 4

    run_parallel(comm, FailingModel(fail_on=(1,)), check, serial_threshold=0)


@pytest.mark.parametrize("fault, message", [("shape", "shape"), ("dtype", "dtype")])
def test_wrong_shape_or_dtype_on_one_rank_is_a_clear_error(comm, fault, message):
    def check(proxy, serial):
        with pytest.raises(RemoteError, match=message) as caught:
            proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)
        assert caught.value.ranks == [1]
        with pytest.raises(RemoteError, match=message):  # still in step: the same error again
            proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)
        # A call that leaves rank 1 without rows succeeds.
        assert proxy.likelihood(np.arange(2), particles(1), GOOD_TIMES[:1]).shape == (2, 1, 1)

    run_parallel(comm, MisshapenModel(fault=fault, on_rank=1), check, serial_threshold=0)


def test_nan_passes_through_exactly(comm):
    def check(proxy, serial):
        modelparams = np.linspace(-1, 1, 31)[:, None]
        got = proxy.likelihood(np.arange(2), modelparams, GOOD_TIMES)
        want = serial.likelihood(np.arange(2), modelparams, GOOD_TIMES)
        assert np.isnan(got).any() and np.array_equal(got, want, equal_nan=True)

    run_parallel(comm, NanModel(), check, serial_threshold=0)


def test_root_exception_inside_with_releases_every_rank(comm):
    verdict = None
    try:
        with MPIParallelizedModel(SimplePrecessionModel(), comm=comm, serial_threshold=0) as proxy:
            if proxy.is_root:
                proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)
                raise KeyError("the root's own bug")
    except KeyError as error:
        verdict = None if comm.Get_rank() == 0 and "own bug" in str(error) else f"unexpected {error!r}"
    else:
        verdict = "the root did not see its exception" if comm.Get_rank() == 0 else None
    assert proxy.engine.closed
    # Reaching this collective at all proves no rank was left behind.
    assert comm.allgather(verdict) == [None] * comm.Get_size()


def test_construction_mismatch_fails_on_every_rank(comm):
    for odd_model in (RamseyModel(), BinomialModel(SimplePrecessionModel())):
        serial = odd_model if comm.Get_rank() == 1 else SimplePrecessionModel()
        with pytest.raises(ModelMismatchError, match="rank 1"):
            MPIParallelizedModel(serial, comm=comm)
    with pytest.raises(TypeError, match="serial_model must be a qinfer-style model"):
        MPIParallelizedModel(None, comm=comm)
    # Still in step afterwards: a good construction works.
    run_parallel(comm, SimplePrecessionModel(), lambda proxy, serial: None)


def test_bad_root_argument_fails_everywhere_before_communication(comm):
    with pytest.raises(ValueError, match="root"):
        MPIParallelizedModel(SimplePrecessionModel(), comm=comm, root=comm.Get_size())
    with pytest.raises(TypeError, match="comm"):
        MPIParallelizedModel(SimplePrecessionModel(), comm="COMM_WORLD")
    with pytest.raises(ValueError, match="idle"):
        MPIParallelizedModel(SimplePrecessionModel(), comm=comm, idle="nap")


BAD_CALLS = [
    ("modelparams 1-d", lambda m: m.likelihood(np.arange(2), np.ones(5), GOOD_TIMES), ValueError, "modelparams"),
    ("modelparams 3-d", lambda m: m.likelihood(np.arange(2), np.ones((5, 1, 1)), GOOD_TIMES), ValueError,
     "modelparams"),
    ("wrong n_modelparams", lambda m: m.likelihood(np.arange(2), np.ones((5, 3)), GOOD_TIMES), ValueError,
     r"\(n_models, 1\)"),
    ("object modelparams", lambda m: m.likelihood(np.arange(2), np.ones((5, 1), dtype=object), GOOD_TIMES),
     TypeError, "modelparams"),
    ("string modelparams", lambda m: m.likelihood(np.arange(2), np.array([["a"]]), GOOD_TIMES), TypeError,
     "modelparams"),
    ("outcomes 2-d", lambda m: m.likelihood(np.zeros((2, 2), int), particles(), GOOD_TIMES), ValueError, "outcomes"),
    ("object outcomes", lambda m: m.likelihood(np.array([0, 1], dtype=object), particles(), GOOD_TIMES), TypeError,
     "outcomes"),
    ("expparams 2-d", lambda m: m.likelihood(np.arange(2), particles(), np.ones((2, 2))), ValueError, "expparams"),
    ("expparams record for a float model",
     lambda m: m.likelihood(np.arange(2), particles(), np.zeros(2, dtype=[("t", float)])), TypeError, "expparams"),
    ("expparams complex", lambda m: m.likelihood(np.arange(2), particles(), np.array([1 + 1j, 2])), TypeError,
     "expparams"),
    ("expparams strings", lambda m: m.likelihood(np.arange(2), particles(), np.array(["1", "2"])), TypeError,
     "expparams"),
    ("repeat 0", lambda m: m.simulate_experiment(particles(), GOOD_TIMES, repeat=0), ValueError, "repeat"),
    ("repeat float", lambda m: m.simulate_experiment(particles(), GOOD_TIMES, repeat=1.5), ValueError, "repeat"),
]


def test_bad_input_raises_on_the_root_before_any_communication(comm):
    def check(proxy, serial):
        for label, call, error, match in BAD_CALLS:
            calls = proxy.engine.calls
            with pytest.raises(error, match=match):
                call(proxy)
            assert proxy.engine.calls == calls, f"{label} reached the workers"
        assert np.array_equal(proxy.likelihood(np.arange(2), particles(), GOOD_TIMES),
                              serial.likelihood(np.arange(2), particles(), GOOD_TIMES))

    proxy = run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)
    assert comm.allgather(proxy.engine.calls) == [1] * comm.Get_size()


RECORD_BAD_CALLS = [
    ("missing field", np.zeros(2, dtype=[("t", float)]), "missing \\['phase'\\]"),
    ("inexact field cast", np.array([(1 + 1j, 0.0)], dtype=[("t", complex), ("phase", float)]), "field 't'"),
    ("string field", np.zeros(2, dtype=[("t", "U3"), ("phase", float)]), "field 't'"),
    ("plain array", np.zeros(2), "record array"),
]


def test_record_expparams_errors_name_the_fields(comm):
    def check(proxy, serial):
        for _label, expparams, match in RECORD_BAD_CALLS:
            with pytest.raises(TypeError, match=match):
                proxy.likelihood(np.arange(2), np.ones((4, 2)), expparams)
        assert proxy.engine.calls == 0

    run_parallel(comm, RamseyModel(), check, serial_threshold=0)


def test_calls_from_a_worker_or_after_shutdown_are_refused(comm):
    proxy = MPIParallelizedModel(SimplePrecessionModel(), comm=comm, serial_threshold=0)
    verdict = None
    if proxy.is_root:
        proxy.shutdown()
        verdict = verdict_of(lambda: pytest.raises(EngineClosedError, proxy.likelihood, np.arange(2), particles(),
                                                   GOOD_TIMES))
    else:
        with pytest.raises(RuntimeError, match="root"):
            proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)
        proxy.serve()
    assert_collectively(comm, verdict)

