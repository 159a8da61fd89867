"""Both sides of the engine in one process: root and workers as loopback ranks (no mpiexec).

The MPI suites run the same behaviours on a real MPI library; these run in a
plain ``pytest`` in seconds, so a change to the worker loop, the status
exchange or the failure report is caught without launching a job. Every
answer is compared with the serial model's, bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpi4py.MPI")

from loopback import LoopbackAborted, run_ranks  # noqa: E402

from mpi_qinfer import Engine, MPIParallelizedModel, RemoteError  # noqa: E402
from mpi_qinfer.models.builtin import RamseyModel, SimplePrecessionModel  # noqa: E402

MODELPARAMS = np.linspace(0.01, 1, 61)[:, None]
TIMES = np.linspace(0.1, 3, 7)


def on_ranks(size, make_model, check, **proxy_kwargs):
    """Build a proxy on ``size`` loopback ranks; run ``check(proxy)`` on the root; return its result."""
    def target(comm):
        with MPIParallelizedModel(make_model(comm.Get_rank()), comm=comm, idle="spin",
                                  **{"serial_threshold": 0, **proxy_kwargs}) as proxy:
            if proxy.is_root:
                return check(proxy)
        return None

    return run_ranks(size, target)[0]


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
    # C order as the serial model's: sums over an answer follow its memory layout.
    assert got.flags.c_contiguous or not want.flags.c_contiguous


class RankFailing(SimplePrecessionModel):
    """Fails with a chosen exception on one rank when a time is negative."""

    def __init__(self, fails, error):
        super().__init__()
        self.fails, self.error = fails, error

    def likelihood(self, outcomes, modelparams, expparams):
        if self.fails and np.any(expparams < 0):
            raise self.error
        return super().likelihood(outcomes, modelparams, expparams)


class OtherDtypeOnOneRank(SimplePrecessionModel):
    def __init__(self, odd, dtype):
        super().__init__()
        self.odd, self.dtype = odd, dtype

    def likelihood(self, outcomes, modelparams, expparams):
        result = super().likelihood(outcomes, modelparams, expparams)
        return result.astype(self.dtype) if self.odd else result


class RecordAnswers(SimplePrecessionModel):
    """Answers in a record dtype that no rank's table knows beforehand."""

    ANSWER = np.dtype([("p", np.float64)])

    def likelihood(self, outcomes, modelparams, expparams):
        result = super().likelihood(outcomes, modelparams, expparams)
        out = np.empty(result.shape, self.ANSWER)
        out["p"] = result
        return out


class Unrebuildable(ValueError):
    def __init__(self, a, b):
        super().__init__(a)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("split", ["models", "experiments"])
@pytest.mark.parametrize("n_outcomes", [1, 2, 6])
def test_likelihood_matches_serial(size, split, n_outcomes):
    outcomes = np.arange(n_outcomes) % 2
    want = SimplePrecessionModel().likelihood(outcomes, MODELPARAMS, TIMES)
    got = on_ranks(size, lambda rank: SimplePrecessionModel(),
                   lambda proxy: proxy.likelihood(outcomes, MODELPARAMS, TIMES), split=split)
    assert_same(got, want)


@pytest.mark.parametrize("size", [2, 3])
def test_record_expparams_and_uneven_balance(size):
    model = RamseyModel()
    expparams = np.ones(5, dtype=[("phase", ">f8"), ("t", np.int16)])
    modelparams = np.linspace(0.1, 1, 40).reshape(20, 2)
    want = model.likelihood(np.arange(2), modelparams, expparams)
    got = on_ranks(size, lambda rank: RamseyModel(), lambda proxy: proxy.likelihood(np.arange(2), modelparams,
                                                                                     expparams),
                   balance=[1.0] + [3.0] * (size - 1))
    assert_same(got, want)


@pytest.mark.parametrize("error, raised", [
    (ZeroDivisionError("worker"), ZeroDivisionError),  # the model's own type, pickled across
    (Unrebuildable(1, 2), ValueError),  # cannot be rebuilt on the root: its built-in base travels
    (KeyboardInterrupt(), RemoteError),  # a worker's interrupt is not the model's failure
])
def test_a_worker_failure_reaches_the_root(error, raised):
    def check(proxy):
        with pytest.raises(raised) as caught:
            proxy.likelihood(0, MODELPARAMS, -TIMES)
        remote = caught.value if raised is RemoteError else caught.value.__cause__
        assert type(caught.value) is raised
        assert remote.ranks == [1] and type(error).__name__ in remote.tracebacks[1]
        assert_same(proxy.likelihood(0, MODELPARAMS, TIMES), SimplePrecessionModel().likelihood(0, MODELPARAMS,
                                                                                               TIMES))
        return True

    assert on_ranks(2, lambda rank: RankFailing(rank == 1, error), check)


def test_several_failing_ranks_raise_the_lowest():
    def check(proxy):
        with pytest.raises(ValueError, match="rank 1") as caught:
            proxy.likelihood(0, MODELPARAMS, -TIMES)
        assert caught.value.__cause__.ranks == [1, 2]
        return True

    assert on_ranks(3, lambda rank: RankFailing(rank > 0, ValueError(f"rank {rank}")), check)


def test_answers_in_another_dtype_are_learned_and_kept():
    model = OtherDtypeOnOneRank(True, np.float32)
    want = model.likelihood(0, MODELPARAMS, TIMES)

    def check(proxy):
        got = proxy.likelihood(0, MODELPARAMS, TIMES)
        calls = proxy.engine.calls
        again = proxy.likelihood(0, MODELPARAMS, TIMES)
        return got, again, proxy.engine.calls - calls

    got, again, calls = on_ranks(3, lambda rank: OtherDtypeOnOneRank(True, np.float32), check)
    assert_same(got, want)
    assert_same(again, want)
    assert calls == 1  # learned once, then one call each


def test_answers_in_a_dtype_no_rank_knew():
    want = RecordAnswers().likelihood(0, MODELPARAMS, TIMES)
    got = on_ranks(2, lambda rank: RecordAnswers(), lambda proxy: proxy.likelihood(0, MODELPARAMS, TIMES))
    assert_same(got, want)


def test_ranks_answering_in_different_dtypes_is_a_clear_error():
    def check(proxy):
        with pytest.raises(TypeError, match="different dtypes"):
            proxy.likelihood(0, MODELPARAMS, TIMES)
        return True

    assert on_ranks(3, lambda rank: OtherDtypeOnOneRank(rank == 2, np.float32), check)


def test_simulate_and_update_timestep_are_reproducible_per_seed():
    def check(proxy):
        first = proxy.simulate_experiment(MODELPARAMS, TIMES, repeat=3)
        proxy.reseed(7)
        second = proxy.simulate_experiment(MODELPARAMS, TIMES, repeat=3)
        proxy.reseed(7)
        third = proxy.simulate_experiment(MODELPARAMS, TIMES, repeat=3)
        steps = proxy.update_timestep(MODELPARAMS, TIMES)
        return first, second, third, steps

    first, second, third, steps = on_ranks(2, lambda rank: SimplePrecessionModel(), check, seed=7)
    assert_same(first, second)
    assert_same(second, third)
    assert_same(steps, SimplePrecessionModel().update_timestep(MODELPARAMS, TIMES))


class Scaled(SimplePrecessionModel):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams * self.scale, expparams)


class Unrestorable(Scaled):
    def __setstate__(self, state):
        raise ValueError("cannot restore this model")


def test_sync_model_reaches_every_worker():
    def check(proxy):
        proxy.serial_model.scale = 0.5
        proxy.sync_model()
        return proxy.likelihood(0, MODELPARAMS, TIMES)

    got = on_ranks(3, lambda rank: Scaled(), check)
    assert_same(got, Scaled(0.5).likelihood(0, MODELPARAMS, TIMES))


def test_sync_model_failing_on_the_workers_reraises_their_error():
    def check(proxy):
        with pytest.raises(ValueError, match="cannot restore") as caught:
            proxy.sync_model()
        assert caught.value.__cause__.ranks == [1, 2]
        return proxy.likelihood(0, MODELPARAMS, TIMES)  # still in step

    got = on_ranks(3, lambda rank: Unrestorable(), check)
    assert_same(got, Scaled().likelihood(0, MODELPARAMS, TIMES))


def test_a_worker_failure_outside_the_model_ends_the_job(capsys):
    """A worker that cannot take part in a call aborts the job instead of leaving the others waiting."""

    def target(comm):
        engine = Engine(comm, idle="spin")
        if engine.is_root:
            function_id = engine.register_collective(lambda eng, arg: eng.comm.allreduce(1))
            engine.run_collective(function_id, None)
        else:
            engine.register_collective(lambda eng, arg: 1 / 0)  # a bug outside any model call
            engine.serve()

    with pytest.raises(LoopbackAborted):
        run_ranks(2, target, timeout=30)
    assert "failed outside the serial model" in capsys.readouterr().err


def test_ranks_disagreeing_on_the_root_fail_on_every_rank():
    def target(comm):
        with pytest.raises(ValueError, match="same root"):
            Engine(comm, root=comm.Get_rank())
        return True

    assert run_ranks(2, target) == [True, True]


def test_a_worker_calling_the_model_is_told_about_the_guard():
    def target(comm):
        proxy = MPIParallelizedModel(SimplePrecessionModel(), comm=comm, idle="spin")
        if proxy.is_root:
            proxy.shutdown()
            return None
        with pytest.raises(RuntimeError, match=r"rank 1 .*if model.is_root:"):
            proxy.likelihood(0, MODELPARAMS, TIMES)
        proxy.serve()
        return True

    assert run_ranks(2, target)[1]


def test_collectives_share_the_worker_loop():
    def target(comm):
        engine = Engine(comm, idle="spin")
        function_id = engine.register_collective(lambda eng, arg: eng.comm.allreduce(eng.rank * arg))
        proxy = MPIParallelizedModel(SimplePrecessionModel(), engine=engine, serial_threshold=0)
        with engine:
            if engine.is_root:
                total = engine.run_collective(function_id, 10)
                return total, proxy.likelihood(0, MODELPARAMS, TIMES)
        return None

    total, got = run_ranks(3, target)[0]
    assert total == 30
    assert_same(got, SimplePrecessionModel().likelihood(0, MODELPARAMS, TIMES))


class Drifting(SimplePrecessionModel):
    """A model whose time step moves the particles (a deterministic drift)."""

    def update_timestep(self, modelparams, expparams):
        return (modelparams[:, :, None] + 0.01 * np.asarray(expparams, dtype=float)[None, None, :]).copy()


def test_a_static_time_step_stays_on_the_root_and_a_moving_one_is_shared():
    def check(proxy):
        before = proxy.engine.calls
        static = proxy.update_timestep(MODELPARAMS, TIMES)
        return static, proxy.engine.calls - before

    static, calls = on_ranks(2, lambda rank: SimplePrecessionModel(), check)
    assert_same(static, SimplePrecessionModel().update_timestep(MODELPARAMS, TIMES))
    assert calls == 0  # a copy of the particles: never sent to the other ranks

    def check_moving(proxy):
        before = proxy.engine.calls
        moved = proxy.update_timestep(MODELPARAMS, TIMES)
        return moved, proxy.engine.calls - before

    moved, calls = on_ranks(2, lambda rank: Drifting(), check_moving)
    assert_same(moved, Drifting().update_timestep(MODELPARAMS, TIMES))
    assert calls == 1
