"""The workers' answers on their way to the root, in one process (loopback ranks, 2 and 3).

What a worker's serial model returns is checked before it travels: answers in
Fortran order or as strided views arrive as their values; answers holding
Python objects are refused by every rank that made one, and the engine goes on
serving; a model that returns too many or too few arrays, or an array of the
wrong shape, fails the call with a message that says so. Every answer is
compared with the serial model's, bitwise.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("mpi4py.MPI")

from loopback import run_ranks  # noqa: E402

from mpi_qinfer import Engine, MPIParallelizedModel, RemoteError  # noqa: E402
from mpi_qinfer.models.builtin import SimplePrecessionModel  # noqa: E402

#: (n_models, n_expparams): one-block gathers (split by models), and the two multi-block ways of
#: placing shares (short blocks staged, long blocks placed by a datatype).
SHAPES = [(41, 9), (3, 400), (400, 3)]
SIZES = [2, 3]


class Reordered(SimplePrecessionModel):
    """The precession model's likelihood as a Fortran-ordered copy, or a strided view of a wider array."""

    def __init__(self, layout):
        super().__init__()
        self.layout = layout

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        if self.layout == "fortran":
            return np.asfortranarray(answer)
        wide = np.zeros(answer.shape + (2,))
        wide[..., 0] = answer
        return wide[..., 0]


class ObjectAnswersOn(SimplePrecessionModel):
    """Answers held in an object array on the ranks in ``ranks`` (of the communicator it is told)."""

    def __init__(self, ranks):
        super().__init__()
        self.ranks, self.rank = set(ranks), 0

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        return answer.astype(object) if self.rank in self.ranks else answer


class WrongShapeOn(SimplePrecessionModel):
    """One experiment column too many on the ranks in ``ranks``."""

    def __init__(self, ranks):
        super().__init__()
        self.ranks, self.rank = set(ranks), 0

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        if self.rank in self.ranks:
            return np.concatenate([answer, answer[..., :1]], axis=-1)
        return answer


def run_proxy(size, model, check, **proxy_kwargs):
    """Build ``MPIParallelizedModel(model)`` on ``size`` loopback ranks; ``check(proxy)`` on the root."""

    def target(comm):
        if hasattr(model, "rank"):  # the ranks share one process: each gets a copy told its rank
            model_here = type(model).__new__(type(model))
            model_here.__dict__.update(model.__dict__)
            model_here.rank = comm.Get_rank()
        else:
            model_here = model
        engine = Engine(comm, idle="spin")
        proxy = MPIParallelizedModel(model_here, engine=engine, serial_threshold=0, **proxy_kwargs)
        with engine:
            if engine.is_root:
                return check(proxy)
        return None

    return run_ranks(size, target)[0]


def assert_bitwise(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    assert got.flags.c_contiguous


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", ["fortran", "strided"])
@pytest.mark.parametrize("n_outcomes", [1, 2])
@pytest.mark.parametrize("n_models, n_exp", SHAPES)
def test_answers_in_any_memory_order_arrive_as_their_values(size, layout, n_outcomes, n_models, n_exp):
    modelparams, expparams = np.linspace(0.01, 1, n_models)[:, None], np.linspace(0.1, 3, n_exp)
    outcomes = np.arange(n_outcomes)
    serial = Reordered(layout)
    want = serial.likelihood(outcomes, modelparams, expparams)
    assert not want.flags.c_contiguous

    def check(proxy):
        return [proxy.likelihood(outcomes, modelparams, expparams) for _ in range(2)]

    for got in run_proxy(size, Reordered(layout), check):
        assert_bitwise(got, want)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n_models, n_exp", SHAPES)
def test_object_answers_are_refused_by_the_ranks_that_made_them_and_the_engine_goes_on(size, n_models, n_exp):
    modelparams, expparams = np.linspace(0.01, 1, n_models)[:, None], np.linspace(0.1, 3, n_exp)
    pattern = "returned an array of dtype object.*cannot be moved between MPI ranks"

    for ranks in (range(size), [1]):
        def check(proxy):
            causes = []
            for _ in range(2):  # the same refusal each time, the ranks in step after it
                with pytest.raises(TypeError, match=pattern) as caught:
                    proxy.likelihood(np.arange(2), modelparams, expparams)
                causes.append(caught.value.__cause__)
            return causes, proxy.are_models_valid(modelparams)

        causes, valid = run_proxy(size, ObjectAnswersOn(ranks), check)
        assert all(isinstance(cause, RemoteError) and cause.ranks == list(ranks) for cause in causes)
        assert np.array_equal(valid, SimplePrecessionModel().are_models_valid(modelparams))


@pytest.mark.parametrize("size", SIZES)
def test_a_worker_answer_of_the_wrong_shape_fails_the_call_naming_the_shapes(size):
    modelparams, expparams = np.linspace(0.01, 1, 40)[:, None], np.linspace(0.1, 3, 9)
    rows = 40 // size
    expected = f"the serial model returned shape (1, {rows}, 10), expected (1, {rows}, 9)"

    def check(proxy):
        with pytest.raises(ValueError, match=re.escape(expected)) as caught:
            proxy.likelihood(np.arange(1), modelparams, expparams)
        return caught.value.__cause__, proxy.are_models_valid(modelparams)

    cause, valid = run_proxy(size, WrongShapeOn([size - 1]), check)
    assert isinstance(cause, RemoteError) and cause.ranks == [size - 1]
    assert np.array_equal(valid, SimplePrecessionModel().are_models_valid(modelparams))  # the engine goes on
