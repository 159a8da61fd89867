"""The engine core without mpiexec: the protocol, plans, datatypes and the whole call sequence on COMM_SELF.

``Engine(MPI.COMM_SELF)`` runs every step of a call (broadcasts, Scatterv,
compute, status Gather, Gatherv, failure report) in one process, so a change
to the header, a plan or a datatype is caught by a plain ``pytest``. Every
answer is compared with the serial model's, bitwise.
"""

from __future__ import annotations

import pickle
import re
import threading

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")

from mpi_qinfer import Engine, MPIParallelizedModel, RemoteError  # noqa: E402
from mpi_qinfer.engine.datatypes import RowTypes  # noqa: E402
from mpi_qinfer.engine.operations import OPERATIONS  # noqa: E402
from mpi_qinfer.engine.protocol import (  # noqa: E402
    INLINE_BYTES,
    SCALAR_OUTCOMES,
    CallSpec,
    Command,
    DtypeTable,
    Split,
    pack_spec,
    payload_layout,
    unpack_spec,
)
from mpi_qinfer.engine.validation import as_array, transportable  # noqa: E402
from mpi_qinfer.models.base import FiniteOutcomeModel  # noqa: E402
from mpi_qinfer.models.builtin import BinomialModel, RamseyModel, SimplePrecessionModel  # noqa: E402


# ------------------------------------------------------------------ protocol
def test_call_spec_round_trips_through_the_header():
    rng = np.random.default_rng(5)
    for _ in range(20):
        values = [int(v) for v in rng.integers(-2**62, 2**62, len(CallSpec._fields))]
        spec = CallSpec(*values)
        message = bytearray(1024)
        pack_spec(spec, message)
        assert unpack_spec(message) == spec


def test_shape_key_is_everything_before_the_payload_size():
    spec = CallSpec(1, 2, 1, 10, 3, 7, 2, 0, 1, 1, 0, -1, 0, 0, 1, 999, 12345)
    assert spec.shape_key == (1, 2, 1, 10, 3, 7, 2, 0, 1, 1, 0, -1, 0, 0, 1)
    assert spec._replace(payload_bytes=5, seed=6).shape_key == spec.shape_key
    assert spec.rows == 7 and spec._replace(split=Split.MODELS).rows == 10
    assert spec._replace(n_outcomes=SCALAR_OUTCOMES).outcome_rows == 1


def test_dtype_table_presets_and_additions_agree_in_order():
    one, two = DtypeTable(), DtypeTable()
    assert one.id_of(np.dtype(np.float64)) == 0 and one.id_of(np.dtype(bool)) == 2
    record = np.dtype([("k", np.int64, (6,))])
    big = np.dtype(">f8")
    assert one.id_of(record) is None and one.id_of(big) is None
    ids = [one.add(record), one.add(big), one.add(record)]
    assert ids[0] == ids[2] != ids[1]
    assert [two.add(record), two.add(big)] == ids[:2]
    assert one[ids[0]] == record and one[ids[1]] == big and len(one) == len(two)


def test_payload_layout_aligns_every_array():
    offsets, total = payload_layout([((3,), np.int8), ((2, 2), np.float64), ((0,), np.float64), ((1,), np.int16)])
    assert offsets == [0, 16, 48, 48]
    assert total == 50
    assert all(offset % 16 == 0 for offset in offsets)


# ---------------------------------------------------------------- operations
def test_operation_outputs_follow_the_spec():
    spec = CallSpec(int(Command.SCORE), n_models=5, n_modelparams=2, n_expparams=3, n_outcomes=4,
                    return_likelihood=1, split=Split.EXPERIMENTS)
    score, likelihood = OPERATIONS[Command.SCORE].outputs(spec)
    assert score.shape == (2, 4, 5, 3) and score.axis == 3
    assert likelihood.shape == (4, 5, 3) and likelihood.axis == 2
    assert len(OPERATIONS[Command.SCORE].outputs(spec._replace(return_likelihood=0))) == 1
    assert OPERATIONS[Command.UPDATE_TIMESTEP].outputs(spec._replace(split=Split.MODELS))[0].shape == (5, 2, 3)
    assert OPERATIONS[Command.FISHER_INFORMATION].outputs(spec)[0].shape == (2, 2, 5, 3)
    assert OPERATIONS[Command.ARE_MODELS_VALID].outputs(spec)[0].shape == (5,)
    assert OPERATIONS[Command.SIMULATE].outputs(spec._replace(repeat=6))[0].shape == (6, 5, 3)
    assert OPERATIONS[Command.LIKELIHOOD].outputs(spec._replace(n_outcomes=SCALAR_OUTCOMES))[0].shape == (1, 5, 3)
    assert OPERATIONS[Command.PING].outputs(spec) == [] and OPERATIONS[Command.CLEAR_CACHE].outputs(spec) == []


# ---------------------------------------------------------------- validation
def test_transportable_keeps_the_callers_dtype_and_values():
    model = RamseyModel()
    modelparams = np.asfortranarray(np.ones((4, 2)))
    expparams = np.ones(3, dtype=[("phase", ">f8"), ("t", np.int32)])
    outcomes = np.array([(1,)], dtype=[("k", np.int64)])
    got = transportable(model, modelparams, expparams, outcomes)
    assert got is not None
    assert got[0].flags.c_contiguous and np.array_equal(got[0], modelparams)
    assert got[1] is expparams and got[2] is outcomes


@pytest.mark.parametrize("modelparams, expparams, outcomes, repeat", [
    (np.ones(4), np.ones(2), None, None),  # modelparams 1-d
    (np.ones((4, 3)), np.ones(2), None, None),  # wrong n_modelparams
    (np.ones((4, 1), dtype=complex), np.ones(2), None, None),  # not real
    (np.ones((4, 1), dtype=object), np.ones(2), None, None),  # Python objects
    ([[1.0], [1.0, 2.0]], np.ones(2), None, None),  # ragged
    (np.ones((4, 1)), np.ones((2, 2)), None, None),  # expparams 2-d
    (np.ones((4, 1)), np.zeros(2, dtype=[("t", float)]), None, None),  # record for a plain model
    (np.ones((4, 1)), np.ones(2), np.array(["0"]), None),  # string outcomes
    (np.ones((4, 1)), np.ones(2), np.zeros((2, 2)), None),  # outcomes 2-d
    (np.ones((4, 1)), np.ones(2), None, 0),  # repeat 0
    (np.ones((4, 1)), np.ones(2), None, 1.5),  # repeat not an int
    (np.ones((4, 1)), np.ones(2), None, True),  # repeat a bool
])
def test_calls_that_cannot_travel_are_left_to_the_serial_model(modelparams, expparams, outcomes, repeat):
    assert transportable(SimplePrecessionModel(), modelparams, expparams, outcomes, repeat) is None


def test_inputs_that_are_not_plain_arrays_are_left_to_the_serial_model():
    model, modelparams, times = SimplePrecessionModel(), np.ones((4, 1)), np.ones(2)
    for arguments in [(modelparams.tolist(), times, None), (modelparams, tuple(times), None),
                      (modelparams, times, [0, 1]), (np.ma.masked_array(modelparams), times, None),
                      (modelparams, np.ma.masked_array(times), None)]:
        assert transportable(model, *arguments) is None
    for outcome in (1, 1.0, True, np.int64(1), np.array(1)):  # scalar outcomes travel, as 0-d arrays
        assert transportable(model, modelparams, times, outcome)[2].ndim == 0


def test_as_array_accepts_scalars_and_lists():
    assert as_array(3, (0, 1)).ndim == 0
    assert as_array([1, 2], (1,)).dtype == np.int_
    assert as_array(np.zeros((2, 2))[:, 0], (1,)).flags.c_contiguous


# ---------------------------------------------------------------- datatypes
def test_row_types_move_whole_rows_and_are_freed():
    types = RowTypes()
    comm = MPI.COMM_SELF
    source = np.arange(3 * 4, dtype=np.float64).reshape(3, 4)
    whole = np.zeros((5, 4))
    row_type = types.row(4 * 8)
    comm.Gatherv([source, 3, row_type], [whole, [3], [1], row_type], 0)
    assert np.array_equal(whole[1:4], source) and not whole[0].any() and not whole[4].any()
    assert types.row(32) is row_type and len(types) == 1
    types.free()
    assert len(types) == 0


# ------------------------------------------------------- the call on COMM_SELF
class RecordOutcomeModel(FiniteOutcomeModel):
    """Outcomes are records of six counts; the likelihood a product of per-count factors."""

    @property
    def n_modelparams(self):
        return 2

    @property
    def expparams_dtype(self):
        return [("n", np.uint64), ("w", ">f8")]

    @property
    def is_n_outcomes_constant(self):
        return True

    def n_outcomes(self, expparams):
        return 3

    def are_models_valid(self, modelparams):
        return np.ones(len(modelparams), dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        counts = outcomes["k"].sum(axis=-1).astype(float)
        scale = expparams["n"].astype(float) * expparams["w"]
        return (counts[:, None, None] * modelparams[None, :, :1] + scale[None, None, :]) * modelparams[None, :, 1:]


class CoinModel(FiniteOutcomeModel):
    """A coin with no experiment parameters at all (a dtype without fields)."""

    @property
    def n_modelparams(self):
        return 1

    @property
    def expparams_dtype(self):
        return []

    @property
    def is_n_outcomes_constant(self):
        return True

    def n_outcomes(self, expparams):
        return 2

    def likelihood(self, outcomes, modelparams, expparams):
        p = modelparams[:, 0][None, :, None] * np.ones((1, 1, len(expparams)))
        return np.where(np.asarray(outcomes).reshape(-1, 1, 1) == 1, p, 1 - p)

    def are_models_valid(self, modelparams):
        return ((modelparams[:, 0] >= 0) & (modelparams[:, 0] <= 1)).astype(np.int64)


class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(a)


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no")


class FailingOnRoot(SimplePrecessionModel):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def likelihood(self, outcomes, modelparams, expparams):
        raise self.error


def engine_proxy(model, **kwargs):
    """A proxy whose every call takes the full parallel path on COMM_SELF (one rank)."""
    proxy = MPIParallelizedModel(model, comm=MPI.COMM_SELF, serial_threshold=0, **kwargs)
    proxy._alone = False
    return proxy


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
    # C order as the serial model's: sums over an answer follow its memory layout.
    assert got.flags.c_contiguous or not want.flags.c_contiguous


@pytest.mark.parametrize("n_outcomes", [1, 2, 3, 6])
@pytest.mark.parametrize("n_exp", [1, 100])
@pytest.mark.parametrize("split", ["models", "experiments"])
def test_likelihood_on_comm_self_is_the_serial_answer(n_outcomes, n_exp, split):
    model = SimplePrecessionModel()
    modelparams = np.linspace(0.01, 1, 50)[:, None]
    expparams = np.linspace(0.1, 10, n_exp)
    outcomes = np.arange(n_outcomes) % 2
    with engine_proxy(SimplePrecessionModel(), split=split) as proxy:
        assert_same(proxy.likelihood(outcomes, modelparams, expparams), model.likelihood(outcomes, modelparams,
                                                                                         expparams))
        assert proxy.engine.calls == 1


def test_every_command_on_comm_self():
    model = SimplePrecessionModel()
    modelparams = np.linspace(0.01, 1, 30)[:, None]
    expparams = np.linspace(0.1, 3, 4)
    with engine_proxy(SimplePrecessionModel()) as proxy:
        assert_same(proxy.likelihood(1, modelparams, expparams), model.likelihood(1, modelparams, expparams))
        assert_same(proxy.score(np.arange(2), modelparams, expparams), model.score(np.arange(2), modelparams,
                                                                                   expparams))
        score, likelihood = proxy.score(np.arange(2), modelparams, expparams, return_L=True)
        want_score, want_likelihood = model.score(np.arange(2), modelparams, expparams, return_L=True)
        assert_same(score, want_score)
        assert_same(likelihood, want_likelihood)
        assert_same(proxy.fisher_information(modelparams, expparams), model.fisher_information(modelparams,
                                                                                              expparams))
        assert_same(proxy.are_models_valid(modelparams), model.are_models_valid(modelparams))
        proxy.clear_cache()
        draws = proxy.simulate_experiment(modelparams, expparams, repeat=3)
        assert draws.shape == (3, 30, 4) and draws.dtype == model.domain(expparams[:1])[0].dtype
        assert np.ndim(proxy.simulate_experiment(modelparams[:1], expparams[:1])) == 0
        assert proxy.engine.calls == 8


def test_record_outcomes_castable_fields_and_big_endian_expparams():
    model = RecordOutcomeModel()
    outcomes = np.zeros(3, dtype=[("k", np.int64, (6,))])
    outcomes["k"] = np.arange(18).reshape(3, 6)
    modelparams = np.linspace(0.1, 1, 40).reshape(20, 2)
    expparams = np.zeros(70, dtype=[("n", np.int64), ("w", ">f8")])  # int64 given for a uint64 field
    expparams["n"] = np.arange(70)
    expparams["w"] = np.linspace(0, 1, 70)
    for split in ("models", "experiments"):
        with engine_proxy(RecordOutcomeModel(), split=split) as proxy:
            assert_same(proxy.likelihood(outcomes, modelparams, expparams),
                        model.likelihood(outcomes, modelparams, expparams))
            assert_same(proxy.likelihood(outcomes, modelparams, expparams[:2]),  # inline payload
                        model.likelihood(outcomes, modelparams, expparams[:2]))


def test_expparams_without_fields_and_int_answers():
    model = CoinModel()
    modelparams = np.linspace(-0.5, 1.5, 21)[:, None]
    expparams = np.empty(5, dtype=[])
    with engine_proxy(CoinModel(), split="experiments") as proxy:
        assert_same(proxy.likelihood(np.arange(2), modelparams, expparams),
                    model.likelihood(np.arange(2), modelparams, expparams))
        calls = proxy.engine.calls
        assert_same(proxy.are_models_valid(modelparams), model.are_models_valid(modelparams))
        assert proxy.engine.calls == calls + 2  # learned the int answer, then repeated the call in it
        assert_same(proxy.are_models_valid(modelparams), model.are_models_valid(modelparams))
        assert proxy.engine.calls == calls + 3


def test_large_payload_goes_in_a_second_broadcast():
    model = SimplePrecessionModel()
    expparams = np.linspace(0.1, 3, INLINE_BYTES // 8 + 10)
    modelparams = np.linspace(0.01, 1, 2000)[:, None]
    with engine_proxy(SimplePrecessionModel(), split="models") as proxy:
        assert_same(proxy.likelihood(np.arange(2), modelparams, expparams),
                    model.likelihood(np.arange(2), modelparams, expparams))


def test_explicit_counts_and_bad_counts():
    model = SimplePrecessionModel()
    modelparams = np.linspace(0.01, 1, 10)[:, None]
    with engine_proxy(SimplePrecessionModel(), balance=[1.0]) as proxy:
        assert_same(proxy.likelihood(0, modelparams, np.ones(2)), model.likelihood(0, modelparams, np.ones(2)))
        engine = proxy.engine
        spec = engine.describe(int(Command.LIKELIHOOD), 0, outcomes=np.arange(1), modelparams=modelparams,
                               expparams=np.ones(2), explicit_counts=True)
        with pytest.raises(ValueError, match="counts"):
            engine.call(spec, {"outcomes": np.arange(1), "modelparams": modelparams, "expparams": np.ones(2),
                               "counts": np.array([3])})


@pytest.mark.parametrize("error, raised", [
    (ZeroDivisionError("boom"), ZeroDivisionError),
    (Unpicklable(1, 2), Unpicklable),  # the root's own exception needs no pickling
    (KeyboardInterrupt(), KeyboardInterrupt),  # the root's own BaseException propagates as itself
])
def test_failures_raise_the_models_exception_with_the_remote_cause(error, raised):
    with engine_proxy(FailingOnRoot(error)) as proxy:
        with pytest.raises(raised) as caught:
            proxy.likelihood(0, np.ones((3, 1)), np.ones(2))
        assert isinstance(caught.value.__cause__, RemoteError) and caught.value.__cause__.ranks == [0]
        proxy._underlying_model.error = None
        proxy._underlying_model.likelihood = SimplePrecessionModel().likelihood
        assert_same(proxy.likelihood(0, np.ones((3, 1)), np.ones(2)),
                    SimplePrecessionModel().likelihood(0, np.ones((3, 1)), np.ones(2)))


def test_an_exception_that_cannot_be_formatted_is_still_reported(monkeypatch):
    import mpi_qinfer.engine.failures

    def broken(error):
        raise RuntimeError("the formatter failed")

    with engine_proxy(FailingOnRoot(Unprintable())) as proxy:
        monkeypatch.setattr(mpi_qinfer.engine.failures.traceback, "format_exception", broken)
        with pytest.raises(Unprintable) as caught:
            proxy.likelihood(0, np.ones((3, 1)), np.ones(2))
        monkeypatch.undo()
        assert "Unprintable (its message could not be formatted)" in caught.value.__cause__.tracebacks[0]
        proxy._underlying_model.likelihood = SimplePrecessionModel().likelihood
        assert proxy.likelihood(0, np.ones((3, 1)), np.ones(2)).shape == (1, 3, 2)  # nothing stale


def test_sync_model_forgets_what_it_learned_and_new_layouts_work():
    model = RamseyModel()
    modelparams = np.linspace(0.1, 1, 20).reshape(10, 2)
    expparams = np.ones(3, dtype=model.expparams_dtype)
    with engine_proxy(RamseyModel()) as proxy:
        assert_same(proxy.likelihood(0, modelparams, expparams), model.likelihood(0, modelparams, expparams))
        proxy.sync_model()
        reordered = np.ones(3, dtype=[(name, float) for name in reversed(np.dtype(model.expparams_dtype).names)])
        assert_same(proxy.likelihood(0, modelparams, reordered), model.likelihood(0, modelparams, reordered))


def test_sync_model_of_an_unpicklable_model_fails_before_communicating():
    class Local(SimplePrecessionModel):  # a local class cannot be pickled
        pass

    with engine_proxy(Local()) as proxy:
        calls = proxy.engine.calls
        with pytest.raises((AttributeError, pickle.PicklingError)):
            proxy.sync_model()
        assert proxy.engine.calls == calls
        assert proxy.likelihood(0, np.ones((2, 1)), np.ones(1)).shape == (1, 2, 1)


def test_collectives_registered_on_the_engine_run_on_request():
    engine = Engine(MPI.COMM_SELF)
    seen = []
    function_id = engine.register_collective(lambda eng, argument: seen.append(argument) or eng.comm.allreduce(3))
    assert engine.run_collective(function_id, "hello") == 3
    assert seen == ["hello"] and engine.calls == 1
    engine.shutdown()
    engine.shutdown()  # idempotent
    assert engine.closed


def test_threads_on_the_root_are_serialised():
    model = SimplePrecessionModel()
    modelparams = np.linspace(0.01, 1, 500)[:, None]
    results, errors = {}, []
    with engine_proxy(SimplePrecessionModel()) as proxy:
        def worker(index):
            try:
                for _ in range(30):
                    results[index] = proxy.likelihood(np.arange(2), modelparams, np.array([0.1 * (index + 1)]))
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    for index in range(4):
        assert_same(results[index], model.likelihood(np.arange(2), modelparams, np.array([0.1 * (index + 1)])))


def test_engine_rejects_bad_construction_arguments():
    with pytest.raises(TypeError, match="comm"):
        Engine("COMM_WORLD")
    with pytest.raises(ValueError, match=r"^root must be a rank of comm \(0\.\.0\), got 1$"):
        Engine(MPI.COMM_SELF, root=1)
    for root in (True, None, 0.0, "0", -1):
        with pytest.raises(ValueError, match=rf"^root must be a rank of comm \(0\.\.0\), got {re.escape(repr(root))}$"):
            Engine(MPI.COMM_SELF, root=root)
    with pytest.raises(ValueError, match="idle"):
        Engine(MPI.COMM_SELF, idle="nap")


def test_worker_only_and_root_only_calls_are_refused_clearly():
    engine = Engine(MPI.COMM_SELF)
    with pytest.raises(RuntimeError, match="serve"):
        engine.serve()
    engine.shutdown()
    with pytest.raises(Exception, match="shut down"):
        engine.call(CallSpec(int(Command.PING)), {"counts": None})


def test_a_proxy_of_a_proxy_and_pickles():
    with engine_proxy(BinomialModel(SimplePrecessionModel())) as proxy:
        copy = pickle.loads(pickle.dumps(proxy))
        assert copy.engine is None and copy.is_root
        expparams = np.zeros(2, dtype=proxy.expparams_dtype)
        expparams["x"], expparams["n_meas"] = [1.0, 2.0], [5, 7]
        assert_same(copy.likelihood(np.arange(3), np.ones((4, 1)), expparams),
                    proxy.likelihood(np.arange(3), np.ones((4, 1)), expparams))


# ------------------------------------------------------------ the proxy alone
def test_seed_means_the_same_on_one_rank_as_on_many():
    from mpi_qinfer.engine.operations import rank_seed_sequence, seeded

    modelparams = np.linspace(0.1, 1, 50)[:, None]
    times = np.linspace(0.5, 5, 4)
    draws = []
    for seed in (5, 5, 6):
        with MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF, seed=seed) as proxy:
            draws.append(proxy.simulate_experiment(modelparams, times, repeat=3))
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])
    # One rank draws what rank 0 of a parallel call with the same seed draws.
    model = SimplePrecessionModel()
    with seeded(model, rank_seed_sequence(int(np.random.default_rng(5).integers(0, 2**63 - 1)), 0)):
        assert np.array_equal(draws[0], model.simulate_experiment(modelparams, times, repeat=3))


def test_qinfer_spellings_are_accepted_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="serial_threshold=None"):
        proxy = MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF, serial_threshold=None)
    assert proxy.serial_threshold == "auto"
    proxy.shutdown()
    with pytest.warns(DeprecationWarning, match="purge_client"):
        MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF, purge_client=True).shutdown()


def test_the_proxy_is_what_its_model_is():
    from mpi_qinfer import DifferentiableModel, DifferentiableMPIParallelizedModel

    class WithExtras(RamseyModel):
        step_scale = 0.25

        def est_update_covariance(self, modelparams):
            return np.eye(self.n_modelparams) * self.step_scale

    with MPIParallelizedModel(SimplePrecessionModel(), comm=MPI.COMM_SELF) as proxy:
        assert isinstance(proxy, DifferentiableMPIParallelizedModel) and isinstance(proxy, DifferentiableModel)
    with MPIParallelizedModel(WithExtras(), comm=MPI.COMM_SELF) as proxy:
        assert not isinstance(proxy, DifferentiableModel)
        assert proxy.step_scale == 0.25
        assert np.array_equal(proxy.est_update_covariance(np.ones((1, 2))), 0.25 * np.eye(2))
        with pytest.raises(AttributeError, match="no_such_thing"):
            proxy.no_such_thing  # noqa: B018 - the attribute access is the test
    with pytest.raises(TypeError, match="no score"):
        DifferentiableMPIParallelizedModel(RamseyModel(), comm=MPI.COMM_SELF)


def test_describe_marks_the_arrays_a_call_does_not_have_as_absent():
    with Engine(MPI.COMM_SELF) as engine:
        spec = engine.describe(Command.LIKELIHOOD)
        float64 = engine.dtype_id(np.dtype(np.float64))
    assert spec == CallSpec(Command.LIKELIHOOD, 0, Split.MODELS, 0, 0, 0, 0, -1, -1, -1, float64, -1, 0, 0, 0, 0, 0)


def test_the_answer_dtypes_expected_before_any_call():
    with Engine(MPI.COMM_SELF) as engine:
        ids = {name: engine.dtype_id(np.dtype(name)) for name in ("float64", "float32", "bool")}
        assert engine.answer_dtypes(0, Command.LIKELIHOOD) == (ids["float64"], -1)  # each command's usual ones
        assert engine.answer_dtypes(0, Command.SCORE) == (ids["float64"], ids["float64"])
        assert engine.answer_dtypes(0, Command.ARE_MODELS_VALID) == (ids["bool"], -1)
        # A command without usual dtypes: nothing expected (any dtype is learned), the hint, or float64
        # for a hint that cannot travel.
        assert engine.answer_dtypes(0, Command.SIMULATE) == (-1, -1)
        assert engine.answer_dtypes(0, Command.SIMULATE, np.dtype(np.float32)) == (ids["float32"], -1)
        assert engine.answer_dtypes(0, Command.SIMULATE, np.dtype(object)) == (ids["float64"], -1)


def test_describe_reads_the_shapes_and_dtypes_of_the_arrays_and_the_options():
    modelparams, expparams = np.ones((7, 2), dtype=np.float32), np.zeros(3, dtype=[("t", float)])
    with Engine(MPI.COMM_SELF) as engine:
        spec = engine.describe(Command.SIMULATE, 0, Split.EXPERIMENTS, outcomes=np.array(1), modelparams=modelparams,
                               expparams=expparams, repeat=4, return_likelihood=True, explicit_counts=True, seed=9)
        ids = [engine.dtype_id(array.dtype) for array in (modelparams, expparams, np.array(1))]
        answers = engine.answer_dtypes(0, Command.SIMULATE)
        vector = engine.describe(Command.LIKELIHOOD, outcomes=np.arange(5))
    assert spec == CallSpec(Command.SIMULATE, 0, Split.EXPERIMENTS, 7, 2, 3, SCALAR_OUTCOMES, *ids, *answers,
                            4, 1, 1, 0, 9)
    assert vector.n_outcomes == 5 and vector.outcomes_dtype == engine.dtype_id(np.dtype(np.int64))


def test_running_out_of_communicators_says_what_to_do():
    from mpi_qinfer.engine.command_loop import out_of_communicators

    error = out_of_communicators(MPI.Exception(MPI.ERR_OTHER))
    assert isinstance(error, RuntimeError)
    assert str(error) == (
        f"could not create a communicator ({MPI.Exception(MPI.ERR_OTHER)!s}); the MPI library may have run out of "
        "communicators: each MPIParallelizedModel owns one unless it shares an Engine "
        "(pass engine=Engine(comm) to several proxies)")
