"""No wrong answer, no silent hang: byte order, sub-arrays, stale plans, threads, roots, int answers.

Each test is one way the proxy could once disagree with the serial model (or
wait forever), run at 2 and 3 ranks against the serial model's answer.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import assert_collectively, run_parallel, same_behaviour, verdict_of

from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models.base import FiniteOutcomeModel
from mpi_qinfer.models.builtin import RamseyModel, SimplePrecessionModel

pytestmark = pytest.mark.mpi(min_size=2)


class VectorFieldModel(FiniteOutcomeModel):
    """Its experiments carry a sub-array field ``v`` of three values."""

    @property
    def n_modelparams(self):
        return 1

    @property
    def expparams_dtype(self):
        return [("t", float), ("v", float, (3,))]

    @property
    def is_n_outcomes_constant(self):
        return True

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.ones(len(modelparams), dtype=np.int64)  # 0/1 ints, as some models answer

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        weights = np.asarray(expparams["v"], dtype=float).reshape(len(expparams), -1)
        phase = modelparams[:, :1] * (expparams["t"] * weights.sum(axis=1))[None, :]
        p1 = np.cos(phase) ** 2
        return np.where(np.asarray(outcomes).reshape(-1, 1, 1) == 1, p1[None], 1 - p1[None])


class BigEndianRamsey(RamseyModel):
    """A Ramsey model whose expparams dtype is big-endian, as data read from some files is."""

    @property
    def expparams_dtype(self):
        return [("t", ">f8"), ("phase", ">f8")]


@pytest.mark.parametrize("make_model", [RamseyModel, BigEndianRamsey])
@pytest.mark.parametrize("split", ["models", "experiments"])
@pytest.mark.parametrize("n_exp", [3, 400])  # inline payload, and a payload broadcast on its own
def test_big_endian_expparams_give_the_serial_answer(comm, make_model, split, n_exp):
    model = make_model()
    modelparams = np.linspace(0.1, 1, 4).reshape(2, 2)
    for order in (">f8", "<f8"):
        expparams = np.zeros(n_exp, dtype=[("t", order), ("phase", order)])
        expparams["t"], expparams["phase"] = np.linspace(0.1, 5, n_exp), np.linspace(0, 1, n_exp)

        def check(proxy, serial, expparams=expparams):
            same_behaviour(lambda: model.likelihood(np.arange(2), modelparams, expparams),
                           lambda: proxy.likelihood(np.arange(2), modelparams, expparams))

        run_parallel(comm, make_model(), check, serial_threshold=0, split=split)


@pytest.mark.parametrize("split", ["models", "experiments"])
def test_a_scalar_given_for_a_sub_array_field_is_seen_as_the_serial_model_sees_it(comm, split):
    model = VectorFieldModel()
    expparams = np.zeros(5, dtype=[("t", float), ("v", np.int64)])  # v as one int, the model wants 3 floats
    expparams["t"], expparams["v"] = np.linspace(0.1, 1, 5), [1, 2, 3, 4, 5]
    modelparams = np.linspace(0.1, 1, 12)[:, None]

    def check(proxy, serial):
        same_behaviour(lambda: model.likelihood(np.arange(2), modelparams, expparams),
                       lambda: proxy.likelihood(np.arange(2), modelparams, expparams))

    run_parallel(comm, VectorFieldModel(), check, serial_threshold=0, split=split)


class ReorderableRamsey(RamseyModel):
    """A Ramsey model whose expparams fields can be put in another order (say, after a file load)."""

    def __init__(self):
        super().__init__()
        self.order = ("t", "phase")

    @property
    def expparams_dtype(self):
        return [(name, float) for name in self.order]


def test_sync_model_after_a_layout_change_uses_the_new_layout(comm):
    def check(proxy, serial):
        modelparams = np.linspace(0.1, 1, 40).reshape(20, 2)
        first = np.zeros(30, dtype=proxy.expparams_dtype)
        first["t"], first["phase"] = np.linspace(0.1, 3, 30), 0.25
        reference = RamseyModel()
        assert np.array_equal(proxy.likelihood(np.arange(2), modelparams, first),
                              reference.likelihood(np.arange(2), modelparams, first))
        proxy.serial_model.order = ("phase", "t")
        proxy.sync_model()
        second = np.zeros(30, dtype=proxy.expparams_dtype)
        second["t"], second["phase"] = np.linspace(0.1, 3, 30), 0.25
        assert second.dtype.names == ("phase", "t")
        assert np.array_equal(proxy.likelihood(np.arange(2), modelparams, second),
                              reference.likelihood(np.arange(2), modelparams, second))

    run_parallel(comm, ReorderableRamsey(), check, serial_threshold=0, split="experiments")


def test_two_threads_on_the_root_are_served_one_call_at_a_time(comm):
    model = SimplePrecessionModel()
    modelparams = np.linspace(0.01, 1, 300)[:, None]

    def check(proxy, serial):
        results, errors = {}, []

        def caller(index):
            try:
                times = np.array([0.5 * (index + 1)])
                for _ in range(40):
                    results[index] = proxy.likelihood(np.arange(2), modelparams, times)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=caller, args=(index,)) for index in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a thread hung"
        assert not errors, errors
        for index in range(3):
            want = model.likelihood(np.arange(2), modelparams, np.array([0.5 * (index + 1)]))
            assert np.array_equal(results[index], want)

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


class RootInterrupted(SimplePrecessionModel):
    """Raises KeyboardInterrupt on the root only (a Ctrl-C that lands inside the model)."""

    def likelihood(self, outcomes, modelparams, expparams):
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0 and np.any(expparams < 0):
            raise KeyboardInterrupt
        return super().likelihood(outcomes, modelparams, expparams)


def test_the_roots_own_keyboard_interrupt_arrives_as_itself(comm):
    def check(proxy, serial):
        with pytest.raises(KeyboardInterrupt):
            proxy.likelihood(np.arange(2), np.ones((10, 1)), np.array([-1.0]))
        # Every rank finished the call: the next one works.
        assert np.array_equal(proxy.likelihood(np.arange(2), np.ones((10, 1)), np.array([1.0])),
                              SimplePrecessionModel().likelihood(np.arange(2), np.ones((10, 1)), np.array([1.0])))

    run_parallel(comm, RootInterrupted(), check, serial_threshold=0)


def test_object_fields_never_reach_the_workers(comm):
    expparams = np.zeros(6, dtype=[("t", float), ("tag", object)])
    expparams["t"] = np.linspace(0.1, 1, 6)

    def check(proxy, serial):
        calls = proxy.engine.calls
        same_behaviour(lambda: serial.likelihood(np.arange(2), np.ones((4, 1)), expparams),
                       lambda: proxy.likelihood(np.arange(2), np.ones((4, 1)), expparams))
        assert proxy.engine.calls == calls

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0, split="experiments")


def test_ranks_passing_different_roots_fail_at_construction(comm):
    with pytest.raises(ValueError, match="same root"):
        MPIParallelizedModel(SimplePrecessionModel(), comm=comm, root=comm.Get_rank())
    run_parallel(comm, SimplePrecessionModel(), lambda proxy, serial: None)  # still in step


@pytest.mark.parametrize("threshold", [0, "auto", 10**9])
def test_int_answers_of_are_models_valid_on_every_path(comm, threshold):
    model = VectorFieldModel()
    modelparams = np.linspace(-1, 1, 50)[:, None]

    def check(proxy, serial):
        for _ in range(12):  # auto explores, then settles
            same_behaviour(lambda: model.are_models_valid(modelparams), lambda: proxy.are_models_valid(modelparams))

    run_parallel(comm, VectorFieldModel(), check, serial_threshold=threshold)


def test_a_worker_calling_the_model_gets_the_guard_message_even_on_the_fast_path(comm):
    proxy = MPIParallelizedModel(SimplePrecessionModel(), comm=comm, serial_threshold=10**9)
    verdict = None
    if proxy.is_root:
        verdict = verdict_of(lambda: proxy.likelihood(np.arange(2), np.ones((2, 1)), np.ones(1)))
        proxy.shutdown()
    else:
        with pytest.raises(RuntimeError, match=r"if model\.is_root:"):
            proxy.likelihood(np.arange(2), np.ones((2, 1)), np.ones(1))
        proxy.serve()
    assert_collectively(comm, verdict)


class FailsEverywhere(SimplePrecessionModel):
    def likelihood(self, outcomes, modelparams, expparams):
        if np.any(expparams < 0):
            raise ArithmeticError("negative time on every rank")
        return super().likelihood(outcomes, modelparams, expparams)


@pytest.mark.parametrize("n_models, n_exp", [(41, 9), (3, 400), (400, 3)])
def test_every_rank_failing_keeps_every_gather_path_in_step(comm, n_models, n_exp):
    """The root chooses how answers move from the counts all ranks know, not from the failed ranks' zeros."""
    modelparams = np.linspace(0.01, 1, n_models)[:, None]
    times = np.linspace(0.1, 3, n_exp)

    def check(proxy, serial):
        for _ in range(3):
            with pytest.raises(ArithmeticError):
                proxy.likelihood(np.arange(2), modelparams, -times)
            same_behaviour(lambda: serial.likelihood(np.arange(2), modelparams, times),
                           lambda: proxy.likelihood(np.arange(2), modelparams, times))

    run_parallel(comm, FailsEverywhere(), check, serial_threshold=0)
