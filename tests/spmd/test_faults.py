"""Faults and bad input under MPI: the serial model's own errors on the root, every rank still in step."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_collectively, run_parallel, same_behaviour, verdict_of
from fault_models import POISON, FailingModel, MisshapenModel, NanModel

from mpi_qinfer import (
    EngineClosedError,
    ModelMismatchError,
    MPIParallelizedModel,
    RemoteError,
    SMCUpdater,
    UniformDistribution,
)
from mpi_qinfer.models.builtin import BinomialModel, RamseyModel, SimplePrecessionModel

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
def test_model_error_reraises_the_models_own_exception(comm, which):
    rank_sets = failing_ranks(comm)
    if which >= len(rank_sets):
        pytest.skip("needs 3 ranks")
    fail_on = rank_sets[which]

    def check(proxy, serial):
        reference = SimplePrecessionModel()
        # Mid-run: a good call, a failing one, then good calls again.
        for times in (GOOD_TIMES, POISONED_TIMES, GOOD_TIMES, POISONED_TIMES, GOOD_TIMES):
            if times is POISONED_TIMES:
                with pytest.raises(ZeroDivisionError) as caught:
                    proxy.likelihood(np.arange(2), particles(), times)
                remote = caught.value.__cause__
                assert isinstance(remote, RemoteError)
                assert remote.ranks == sorted(fail_on)
                assert remote.command == "likelihood"
                # The exception raised is the lowest failing rank's.
                assert f"injected failure on rank {min(fail_on)}" in str(caught.value)
                for rank in fail_on:
                    assert f"injected failure on rank {rank}" in remote.tracebacks[rank]
                    assert "ZeroDivisionError" in remote.tracebacks[rank]
                assert f"rank{'s' if len(fail_on) > 1 else ''} {', '.join(map(str, sorted(fail_on)))}" in str(remote)
            else:
                got = proxy.likelihood(np.arange(2), particles(), times)
                assert np.array_equal(got, reference.likelihood(np.arange(2), particles(), times))

    proxy = run_parallel(comm, FailingModel(fail_on=fail_on), check, serial_threshold=0)
    assert len(set(comm.allgather(proxy.engine.calls))) == 1


@pytest.mark.parametrize("threshold", [0, "auto", 10**9])
def test_the_exception_type_does_not_depend_on_the_path(comm, threshold):
    """Serial, parallel or auto: a failing model raises its own exception type on the root."""

    def check(proxy, serial):
        for _ in range(12):  # enough calls for auto to settle on a path
            with pytest.raises(ZeroDivisionError):
                proxy.likelihood(np.arange(2), particles(), POISONED_TIMES)
            proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)

    run_parallel(comm, FailingModel(fail_on=tuple(range(comm.Get_size()))), check, serial_threshold=threshold)


def test_first_call_failure_leaves_the_proxy_usable(comm):
    def check(proxy, serial):
        with pytest.raises(ZeroDivisionError):
            proxy.likelihood(np.arange(2), particles(), POISONED_TIMES)
        assert np.array_equal(proxy.likelihood(np.arange(2), particles(), GOOD_TIMES),
                              SimplePrecessionModel().likelihood(np.arange(2), particles(), GOOD_TIMES))

    run_parallel(comm, FailingModel(fail_on=(1,)), check, serial_threshold=0)


def test_failure_then_sync_model_stays_in_step(comm):
    """A failed call leaves no status behind: the next command (sync_model) runs normally."""

    def check(proxy, serial):
        with pytest.raises(ZeroDivisionError):
            proxy.likelihood(np.arange(2), particles(), POISONED_TIMES)
        proxy.sync_model()
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
        with pytest.raises(ZeroDivisionError):
            updater.update(1, np.array([POISON]))
        assert np.array_equal(updater.particle_locations, state[0])
        assert np.array_equal(updater.particle_weights, state[1])
        assert updater.data_record == state[2] and updater.normalization_record == state[3]
        updater.update(1, np.array([3.0]))
        assert len(updater.data_record) == 4

    run_parallel(comm, FailingModel(fail_on=(1,)), check, serial_threshold=0)


@pytest.mark.parametrize("fault, error, message", [("shape", ValueError, "shape"),
                                                   ("dtype", TypeError, "different dtypes")])
def test_wrong_shape_or_dtype_on_one_rank_is_a_clear_error(comm, fault, error, message):
    def check(proxy, serial):
        with pytest.raises(error, match=message) as caught:
            proxy.likelihood(np.arange(2), particles(), GOOD_TIMES)
        if fault == "shape":
            assert caught.value.__cause__.ranks == [1]
        with pytest.raises(error, match=message):  # still in step: the same error again
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
    ("modelparams 1-d", lambda m: m.likelihood(np.arange(2), np.ones(5), GOOD_TIMES)),
    ("modelparams 3-d", lambda m: m.likelihood(np.arange(2), np.ones((5, 1, 1)), GOOD_TIMES)),
    ("wrong n_modelparams", lambda m: m.likelihood(np.arange(2), np.ones((5, 3)), GOOD_TIMES)),
    ("object modelparams", lambda m: m.likelihood(np.arange(2), np.ones((5, 1), dtype=object), GOOD_TIMES)),
    ("complex modelparams", lambda m: m.likelihood(np.arange(2), np.ones((5, 1), dtype=complex), GOOD_TIMES)),
    ("string modelparams", lambda m: m.likelihood(np.arange(2), np.array([["a"]]), GOOD_TIMES)),
    ("ragged modelparams", lambda m: m.likelihood(np.arange(2), [[1.0], [1.0, 2.0]], GOOD_TIMES)),
    ("outcomes 2-d", lambda m: m.likelihood(np.zeros((2, 2), int), particles(), GOOD_TIMES)),
    ("string outcomes", lambda m: m.likelihood(np.array(["0"]), particles(), GOOD_TIMES)),
    ("expparams 2-d", lambda m: m.likelihood(np.arange(2), particles(), np.ones((2, 2)))),
    ("expparams record for a float model",
     lambda m: m.likelihood(np.arange(2), particles(), np.zeros(2, dtype=[("t", float)]))),
    ("repeat 0", lambda m: m.simulate_experiment(particles(), GOOD_TIMES, repeat=0)),
    ("repeat float", lambda m: m.simulate_experiment(particles(), GOOD_TIMES, repeat=1.5)),
]


def test_bad_input_is_the_serial_models_business_and_never_communicates(comm):
    """Input that cannot travel runs on the root's serial model: same answer or same error, no communication."""

    def check(proxy, serial):
        for label, call in BAD_CALLS:
            calls = proxy.engine.calls
            same_behaviour(lambda call=call: call(serial), lambda call=call: call(proxy))
            assert proxy.engine.calls == calls, f"{label} reached the workers"
        assert np.array_equal(proxy.likelihood(np.arange(2), particles(), GOOD_TIMES),
                              serial.likelihood(np.arange(2), particles(), GOOD_TIMES))

    proxy = run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)
    assert comm.allgather(proxy.engine.calls) == [1] * comm.Get_size()


def test_our_models_name_the_bad_argument(comm):
    def check(proxy, serial):
        for call, error, match in [
            (lambda: proxy.likelihood(np.arange(2), np.ones(5), GOOD_TIMES), ValueError, "modelparams"),
            (lambda: proxy.likelihood(np.arange(2), np.ones((5, 3)), GOOD_TIMES), ValueError, r"\(n_models, 1\)"),
            (lambda: proxy.likelihood(np.arange(2), np.ones((5, 1), dtype=complex), GOOD_TIMES), TypeError,
             "modelparams"),
            (lambda: proxy.simulate_experiment(particles(), GOOD_TIMES, repeat=0), ValueError, "repeat"),
        ]:
            with pytest.raises(error, match=match):
                call()

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


RECORD_CALLS = [
    ("missing field", np.zeros(2, dtype=[("t", float)])),
    ("unexpected field", np.zeros(2, dtype=[("t", float), ("phase", float), ("x", float)])),
    ("int field", np.ones(2, dtype=[("t", np.int64), ("phase", float)])),
    ("fields in another order", np.ones(2, dtype=[("phase", float), ("t", float)])),
    ("big-endian fields", np.ones(2, dtype=[("t", ">f8"), ("phase", ">f8")])),
    ("plain array", np.zeros(2)),
]


def test_record_expparams_behave_as_in_the_serial_model(comm):
    def check(proxy, serial):
        modelparams = np.linspace(0.1, 0.9, 8).reshape(4, 2)
        for _label, expparams in RECORD_CALLS:
            same_behaviour(lambda e=expparams: serial.likelihood(np.arange(2), modelparams, e),
                           lambda e=expparams: proxy.likelihood(np.arange(2), modelparams, e))

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



@pytest.mark.parametrize("n_outcomes, split, n_times", [
    (1, "models", 2),  # one block: a gather of rows, the failed rank's placeholder bytes discarded
    (2, "experiments", 60),  # short blocks: a gather into the staging buffer
])
def test_a_failed_share_on_the_gather_paths_is_discarded(comm, n_outcomes, split, n_times):
    outcomes = np.arange(n_outcomes)
    good_times = np.linspace(0.5, 3.0, n_times)
    poisoned_times = np.full(n_times, POISON)  # every rank's share holds the poison

    def check(proxy, serial):
        reference = SimplePrecessionModel()
        for times in (good_times, poisoned_times, good_times):
            if times is poisoned_times:
                with pytest.raises(ZeroDivisionError) as caught:
                    proxy.likelihood(outcomes, particles(), times)
                assert caught.value.__cause__.ranks == [1]
            else:
                got = proxy.likelihood(outcomes, particles(), times)
                assert np.array_equal(got, reference.likelihood(outcomes, particles(), times))

    proxy = run_parallel(comm, FailingModel(fail_on=(1,)), check, serial_threshold=0, split=split)
    assert len(set(comm.allgather(proxy.engine.calls))) == 1
