"""The engine at its edges, in one process (loopback ranks): a root that is not rank 0, failures on
every gather path, counters kept in step, learned dtypes forgotten, and the exact messages users read.

Each answer is compared with the serial model's, bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpi4py.MPI")

from loopback import run_ranks  # noqa: E402

from mpi_qinfer import Engine, MPIParallelizedModel, RemoteError  # noqa: E402
from mpi_qinfer.engine.datatypes import RowTypes  # noqa: E402
from mpi_qinfer.errors import EngineClosedError, ModelMismatchError  # noqa: E402
from mpi_qinfer.models.builtin import RamseyModel, SimplePrecessionModel  # noqa: E402

MODELPARAMS = np.linspace(0.01, 1, 41)[:, None]
TIMES = np.linspace(0.1, 3, 9)


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
    assert got.flags.c_contiguous or not want.flags.c_contiguous


class Scaled(SimplePrecessionModel):
    def __init__(self, scale=1.0, answer_dtype=np.float64):
        super().__init__()
        self.scale, self.answer_dtype = scale, answer_dtype

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams * self.scale, expparams).astype(self.answer_dtype)


class FailsOn(SimplePrecessionModel):
    """Raises ValueError on the chosen ranks when a time is negative."""

    def __init__(self, failing):
        super().__init__()
        self.failing = failing

    def likelihood(self, outcomes, modelparams, expparams):
        if self.failing and np.any(expparams < 0):
            raise ValueError("negative time")
        return super().likelihood(outcomes, modelparams, expparams)


class WritesItsInput(SimplePrecessionModel):
    def likelihood(self, outcomes, modelparams, expparams):
        modelparams[0, 0] = 0.5  # the split rows are read-only on every rank
        return super().likelihood(outcomes, modelparams, expparams)


@pytest.mark.parametrize("size", [2, 3])
def test_a_root_that_is_not_rank_0(size):
    """Every rooted collective follows the root: answers, dtypes announced, sync, collectives, failures."""
    root = size - 1
    record = np.dtype([("p", np.float32)])

    def target(comm):
        rank = comm.Get_rank()
        engine = Engine(comm, root=root, idle="spin")
        seen = []
        function_id = engine.register_collective(lambda eng, argument: seen.append(argument) or eng.rank)
        proxy = MPIParallelizedModel(Scaled(), engine=engine, serial_threshold=0)
        failing = MPIParallelizedModel(FailsOn(rank == 0), engine=engine, serial_threshold=0)
        with engine:
            if not engine.is_root:
                return engine.calls, seen
            out = {"likelihood": proxy.likelihood(np.arange(3) % 2, MODELPARAMS, TIMES),
                   "experiments": proxy.likelihood(np.arange(2), MODELPARAMS[:3], TIMES)}
            outcomes = np.zeros(2, dtype=[("k", np.int64)])
            try:
                proxy.likelihood(outcomes, MODELPARAMS, TIMES)  # a dtype every rank learns first
            except Exception as error:  # noqa: BLE001 - the serial model cannot use record outcomes
                out["record"] = type(error)
            proxy.serial_model.scale, proxy.serial_model.answer_dtype = 0.5, np.float32
            proxy.sync_model()
            out["synced"] = proxy.likelihood(np.arange(2), MODELPARAMS, TIMES)
            out["collective"] = engine.run_collective(function_id, "argument")
            with pytest.raises(ValueError, match="negative time") as caught:
                failing.likelihood(0, MODELPARAMS, -TIMES)
            out["failed"] = caught.value.__cause__.ranks
            out["calls"] = engine.calls
            out["record_dtype_known"] = engine.dtypes.id_of(record) is None
            return out

    results = run_ranks(size, target)
    out = results[root]
    serial = Scaled()
    assert_same(out["likelihood"], serial.likelihood(np.arange(3) % 2, MODELPARAMS, TIMES))
    assert_same(out["experiments"], serial.likelihood(np.arange(2), MODELPARAMS[:3], TIMES))
    assert_same(out["synced"], Scaled(0.5, np.float32).likelihood(np.arange(2), MODELPARAMS, TIMES))
    assert out["collective"] == root and out["failed"] == [0]
    for rank, result in enumerate(results):
        if rank != root:
            calls, seen = result
            assert calls == out["calls"], "every rank counts the same calls"
            assert seen == ["argument"]


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("n_outcomes, modelparams, split", [
    (1, MODELPARAMS, "models"),  # one block: rows straight into the answer
    (3, MODELPARAMS, "models"),  # several long blocks: one message per worker
    (3, MODELPARAMS, "experiments"),  # several short blocks: through a staging buffer
])
def test_a_failing_worker_on_every_gather_path(size, n_outcomes, modelparams, split):
    outcomes = np.arange(n_outcomes) % 2

    def check(comm):
        failing = comm.Get_rank() == 1
        with MPIParallelizedModel(FailsOn(failing), comm=comm, idle="spin", serial_threshold=0,
                                  split=split) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(ValueError, match="negative time") as caught:
                proxy.likelihood(outcomes, modelparams, -TIMES)
            assert caught.value.__cause__.ranks == [1]
            good = proxy.likelihood(outcomes, modelparams, TIMES)
            return good, proxy.engine.last_counts.copy()

    good, counts = run_ranks(size, check)[0]
    assert counts.sum() in (len(modelparams), len(TIMES))
    assert_same(good, SimplePrecessionModel().likelihood(outcomes, modelparams, TIMES))


def test_staged_and_block_gathers_with_uneven_and_empty_shares():
    """Balance weights give the root no rows, and the workers uneven ones."""
    outcomes = np.arange(6) % 2

    def check(comm):
        with MPIParallelizedModel(SimplePrecessionModel(), comm=comm, idle="spin", serial_threshold=0,
                                  balance=[0.0, 1.0, 3.0]) as proxy:
            if not proxy.is_root:
                return None
            out = [proxy.likelihood(outcomes, MODELPARAMS, TIMES)]
            proxy._split = 1  # by experiments: short blocks, staged
            out.append(proxy.likelihood(outcomes, MODELPARAMS, TIMES))
            return out, proxy.engine.last_counts.copy()

    (by_models, by_experiments), counts = run_ranks(3, check)[0]
    assert counts[0] == 0
    want = SimplePrecessionModel().likelihood(outcomes, MODELPARAMS, TIMES)
    assert_same(by_models, want)
    assert_same(by_experiments, want)


def test_split_rows_are_read_only_on_every_rank():
    def check(comm):
        with MPIParallelizedModel(WritesItsInput(), comm=comm, idle="spin", serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(ValueError, match="read-only") as caught:
                proxy.likelihood(0, MODELPARAMS.copy(), TIMES)
            return caught.value.__cause__.ranks

    assert run_ranks(3, check)[0] == [0, 1, 2]


def test_sync_model_forgets_the_learned_answer_dtype():
    """After sync_model the root expects float64 again: a float32 model is learned anew (one extra call)."""

    def check(comm):
        with MPIParallelizedModel(Scaled(answer_dtype=np.float32), comm=comm, idle="spin",
                                  serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            calls = []
            for _ in range(2):
                before = proxy.engine.calls
                first = proxy.likelihood(0, MODELPARAMS, TIMES)
                calls.append(proxy.engine.calls - before)
                before = proxy.engine.calls
                proxy.likelihood(0, MODELPARAMS, TIMES)
                calls.append(proxy.engine.calls - before)
                proxy.sync_model()
            return first, calls

    first, calls = run_ranks(2, check)[0]
    assert_same(first, Scaled(answer_dtype=np.float32).likelihood(0, MODELPARAMS, TIMES))
    assert calls == [2, 1, 2, 1]


def test_ranks_disagreeing_on_the_answer_dtype_are_named():
    def check(comm):
        rank = comm.Get_rank()
        with MPIParallelizedModel(Scaled(answer_dtype=np.float32 if rank == 2 else np.float64), comm=comm,
                                  idle="spin", serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(TypeError) as caught:
                proxy.likelihood(0, MODELPARAMS, TIMES)
            return str(caught.value)

    message = run_ranks(3, check)[0]
    assert message == ("the serial model's likelihood answered in different dtypes on different ranks; "
                       "it must return one dtype for a given call")


def test_models_that_differ_between_ranks_are_named():
    def check(comm):
        rank = comm.Get_rank()
        model = RamseyModel() if rank == 1 else SimplePrecessionModel()
        with pytest.raises(ModelMismatchError) as caught:
            MPIParallelizedModel(model, comm=comm)
        with pytest.raises(TypeError) as not_a_model:
            MPIParallelizedModel(object() if rank == 0 else SimplePrecessionModel(), comm=comm)
        return str(caught.value), str(not_a_model.value)

    mismatch, not_a_model = run_ranks(3, check)[2]
    assert mismatch.startswith("every rank must bring the same kind of serial model (type, n_modelparams, "
                               "expparams_dtype); the root (rank 0) has "
                               "('mpi_qinfer.models.builtin.SimplePrecessionModel', "
                               "1, 'float64'), but\n  rank 1: ('mpi_qinfer.models.builtin.RamseyModel', 2, ")
    assert "\n  rank 2" not in mismatch
    assert not_a_model.startswith("serial_model must be a qinfer-style model with n_modelparams and "
                                  "expparams_dtype; on the root: AttributeError(")


def test_messages_users_read():
    def check(comm):
        engine = Engine(comm, idle="spin")
        if engine.is_root:
            with pytest.raises(RuntimeError) as on_root:
                engine.serve()
            engine.shutdown()
            with pytest.raises(EngineClosedError) as closed:
                engine.run_collective(0)
            return str(on_root.value), str(closed.value)
        engine.shutdown()  # a no-op on a worker: it never sends anything
        with pytest.raises(RuntimeError) as guard:
            engine.run_collective(0)
        engine.serve()
        return str(guard.value)

    (on_root, closed), guard = run_ranks(2, check)
    assert on_root == "serve() runs on the workers; the root calls the model and shutdown()"
    assert closed == "the engine has been shut down; build a new MPIParallelizedModel"
    assert guard == ("rank 1 is not the root: parallel calls are made on the root (rank 0) while the other "
                     "ranks serve; guard the inference code with `if model.is_root:`")


def test_bad_counts_are_refused_before_any_communication():
    def check(comm):
        engine = Engine(comm, idle="spin")
        with engine:
            if not engine.is_root:
                return None
            modelparams = np.ones((4, 1))
            spec = engine.describe(1, 0, outcomes=np.arange(1), modelparams=modelparams, expparams=np.ones(2),
                                   explicit_counts=True)
            messages = []
            for counts in ([4, 0, 1], [-1, 5], [1, 2]):
                with pytest.raises(ValueError) as caught:
                    engine.call(spec, {"outcomes": np.arange(1), "modelparams": modelparams,
                                       "expparams": np.ones(2), "counts": counts})
                messages.append(str(caught.value))
            return messages, engine.calls

    messages, calls = run_ranks(2, check)[0]
    assert calls == 0
    assert messages[1] == ("counts must give each of the 2 ranks a non-negative number of rows summing to 4, "
                           "got [-1, 5]")


def test_exceptions_in_a_with_block_propagate():
    def check(comm):
        engine = Engine(comm, idle="spin")
        try:
            with engine:
                if engine.is_root:
                    raise KeyError("the root's own error")
        except KeyError:
            return "raised", engine.closed
        return "left", engine.closed

    assert run_ranks(2, check) == [("raised", True), ("left", True)]


def test_row_types_evict_the_least_recently_used():
    types = RowTypes(capacity=2)
    first, second = types.row(8), types.blocks(3, 8, 24)
    assert types.row(8) is first  # touched: now the most recent
    types.blocks(2, 16, 64)  # evicts the least recently used: the vector type
    assert len(types) == 2 and types.row(8) is first
    assert types.blocks(3, 8, 24) is not second
    assert types.blocks(1, 8, 999) is first  # one block is a contiguous row whatever the stride
    types.free()


def test_remote_error_alone_when_nothing_can_be_rebuilt():
    class NotPicklable(Exception):
        def __reduce__(self):
            raise TypeError("no")

    class Model(SimplePrecessionModel):
        def __init__(self, fail):
            super().__init__()
            self.fail = fail

        def likelihood(self, outcomes, modelparams, expparams):
            if self.fail:
                raise NotPicklable("cannot travel")
            return super().likelihood(outcomes, modelparams, expparams)

    def check(comm):
        with MPIParallelizedModel(Model(comm.Get_rank() == 1), comm=comm, idle="spin", serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(Exception) as caught:
                proxy.likelihood(0, MODELPARAMS, TIMES)
            return type(caught.value), caught.value

    kind, error = run_ranks(2, check)[0]
    assert kind in (RemoteError, Exception)
    assert "cannot travel" in str(error) or "cannot travel" in str(error.__cause__)


def test_answer_layouts_in_a_plan():
    from mpi_qinfer.engine.plans import SHORT_BLOCK_BYTES, PlanCache, receives_for
    from mpi_qinfer.engine.protocol import CallSpec, Command, DtypeTable, Split

    table = DtypeTable()
    spec = CallSpec(int(Command.LIKELIHOOD), 0, int(Split.MODELS), 10, 1, 4, 3, 0, 0, 1, 0, -1)
    plans = PlanCache(table, size=3, rank=1, root=0)
    plan = plans.get(spec)
    assert plans.get(spec._replace(seed=9, payload_bytes=5)) is plan and len(plans) == 1
    (answer,) = plan.answers
    assert (answer.n_blocks, answer.n_rows, answer.post_bytes) == (3, 10, 32)
    assert answer.even_shape == (3, 3, 4)  # rank 1 of 10 rows on 3 ranks
    assert plan.even_counts.tolist() == [4, 3, 3] and plan.inline and plan.split_input == "modelparams"
    # Short blocks (rows * 32 bytes) under the threshold go through the staging buffer.
    assert answer.staged([4, 3, 3]) and plan.answers[0].even_staged
    rows = SHORT_BLOCK_BYTES // answer.post_bytes
    assert not answer.staged([rows, rows + 1, 0]) and answer.staged([rows - 1, rows, rows])
    one = plans.get(spec._replace(n_outcomes=1))
    assert one.answers[0].n_blocks == 1
    assert not one.answers[0].staged([1, 1, 1])  # one block is never staged
    # How the root (rank 0) receives each worker's share under the even split.
    counts, displs = plan.even_counts, plan.even_displs
    staged = receives_for(plan.answers, counts, displs, 0, plan.types)
    assert staged.gathered == [None] and staged.placed == [None] and staged.staging_bytes == (3 + 3) * 3 * 32
    base, sizes, offsets, runs = staged.staged[0]
    assert base == 0 and sizes.tolist() == [0, 288, 288] and offsets.tolist() == [0, 0, 288]
    # Both workers have 3 rows: one run, one copy (staging offset, bytes, ranks, rows each, first row).
    assert runs == [(0, 576, 2, 3, 4)]
    gathered = receives_for(one.answers, counts, displs, 0, one.types)
    assert gathered.staged == [None] and gathered.placed == [None] and gathered.staging_bytes == 0
    assert [part.tolist() for part in gathered.gathered[0]] == [[4, 3, 3], [0, 4, 7]]
    long_blocks = plans.get(spec._replace(n_models=1000))
    placed = receives_for(long_blocks.answers, long_blocks.even_counts, long_blocks.even_displs, 0, long_blocks.types)
    assert placed.gathered == [None] and placed.staged == [None]
    # Each worker's datatype starts at its share's byte offset in the answer.
    assert [(rank, datatype.Get_extent()[0]) for rank, datatype in placed.placed[0]] == [(1, 334 * 32),
                                                                                        (2, 667 * 32)]
    assert [datatype.Get_size() for _, datatype in placed.placed[0]] == [3 * 333 * 32, 3 * 333 * 32]
    by_experiments = plans.get(spec._replace(split=int(Split.EXPERIMENTS), explicit_counts=1))
    assert by_experiments.split_input == "expparams" and by_experiments.even_counts is None
    assert by_experiments.answers[0].even_shape is None and not by_experiments.answers[0].even_staged
    assert [name for name, *_ in by_experiments.broadcast] == ["counts", "outcomes", "modelparams"]
    plans.free()
    assert len(plans) == 0


def test_staged_runs_place_every_share_whatever_the_counts():
    """One copy per run of equal counts, the root's rows and empty shares skipped, bitwise in place."""
    from mpi_qinfer.engine.partition import displacements
    from mpi_qinfer.engine.plans import Answer, _staged_runs, place_staged

    rng = np.random.default_rng(3)
    for counts, root in [([5, 5, 5, 4, 4, 4], 0), ([3, 1, 1, 2, 2, 0, 0], 0), ([2, 2, 2, 2], 2), ([0, 3, 3], 1),
                         ([1, 4, 4, 1, 4], 4)]:
        n_blocks, post, n_rows = 3, 2, sum(counts)
        want = rng.normal(size=(n_blocks, n_rows, post))
        displs = displacements(np.array(counts)).tolist()
        sizes = [0 if rank == root else count * n_blocks * post * 8 for rank, count in enumerate(counts)]
        offsets = displacements(np.array(sizes)).tolist()
        staging = np.concatenate([np.ascontiguousarray(want[:, first : first + count]).reshape(-1).view(np.uint8)
                                  for rank, (count, first) in enumerate(zip(counts, displs)) if rank != root]
                                 + [np.zeros(0, np.uint8)])
        runs = _staged_runs(counts, displs, offsets, sizes, root)
        workers = [rank for rank, count in enumerate(counts) if count and rank != root]
        assert sum(run[2] for run in runs) == len(workers)
        assert len(runs) == 1 + sum(1 for a, b in zip(workers, workers[1:]) if b != a + 1 or counts[a] != counts[b])
        answer = Answer((n_blocks, n_rows, post), 1, np.dtype(np.float64), n_blocks, n_rows, post * 8, None, None,
                        False)
        got = np.full_like(want, np.nan)
        place_staged(answer, staging, runs, got)
        start = displs[root]
        got[:, start : start + counts[root]] = want[:, start : start + counts[root]]  # the root's own share
        assert np.array_equal(got, want), (counts, root)


def test_receives_for_explicit_counts_are_kept_until_the_counts_change():
    from mpi_qinfer.engine.plans import PlanCache
    from mpi_qinfer.engine.protocol import CallSpec, Command, DtypeTable, Split

    spec = CallSpec(int(Command.LIKELIHOOD), 0, int(Split.MODELS), 2000, 1, 4, 3, 0, 0, 1, 0, -1,
                    explicit_counts=1)
    plans = PlanCache(DtypeTable(), size=4, rank=0, root=0)
    plan = plans.get(spec)
    assert plan.even_counts is None
    counts = np.array([500, 700, 400, 400])
    displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
    first = plan.receives(counts, displs, 0)
    assert plan.receives(counts.copy(), displs, 0) is first  # equal counts, another array: the same receives
    assert plan.staged(counts) is plan.staged(counts.copy())
    kept_types = plan.uneven_receives[2]
    assert len(kept_types) > 0
    other = np.array([400, 800, 400, 400])
    assert plan.receives(other, np.concatenate(([0], np.cumsum(other)[:-1])), 0) is not first
    assert len(kept_types) == 0  # the old counts' datatypes were freed
    plans.free()
    assert plan.uneven_receives is None and len(plan.types) == 0


def test_plan_cache_evicts_the_oldest_plan():
    from mpi_qinfer.engine.plans import PlanCache
    from mpi_qinfer.engine.protocol import CallSpec, Command, DtypeTable

    plans = PlanCache(DtypeTable(), size=2, rank=0, root=0, capacity=2)
    specs = [CallSpec(int(Command.LIKELIHOOD), 0, 0, n, 1, 1, 1, 0, 0, 1, 0, -1) for n in (5, 6, 7)]
    first = plans.get(specs[0])
    plans.get(specs[1])
    plans.get(specs[2])
    assert len(plans) == 2 and plans.get(specs[0]) is not first


def test_ranks_answering_in_two_other_dtypes_are_named_with_them():
    def check(comm):
        rank = comm.Get_rank()
        dtype = {0: np.float64, 1: np.float32, 2: np.float16}[rank]
        with MPIParallelizedModel(Scaled(answer_dtype=dtype), comm=comm, idle="spin", serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(TypeError) as caught:
                proxy.likelihood(0, MODELPARAMS, TIMES)
            return str(caught.value)

    assert run_ranks(3, check)[0] == ("the serial model's likelihood answered in different dtypes on different "
                                      "ranks: rank 1: ['float32'], rank 2: ['float16']")


def test_a_wrong_answer_shape_is_named():
    class Short(SimplePrecessionModel):
        def __init__(self, short):
            super().__init__()
            self.short = short

        def likelihood(self, outcomes, modelparams, expparams):
            result = super().likelihood(outcomes, modelparams, expparams)
            return result[:, :-1] if self.short else result

    def check(comm):
        with MPIParallelizedModel(Short(comm.Get_rank() == 1), comm=comm, idle="spin", serial_threshold=0) as proxy:
            if not proxy.is_root:
                return None
            with pytest.raises(ValueError) as caught:
                proxy.likelihood(0, MODELPARAMS, TIMES)
            return str(caught.value), caught.value.__cause__.ranks

    message, ranks = run_ranks(2, check)[0]
    assert message == "the serial model returned shape (1, 19, 9), expected (1, 20, 9)" and ranks == [1]
