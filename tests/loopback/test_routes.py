"""The proxy's per-shape memo of likelihood calls (mpi_qinfer.parallel.routes), on loopback ranks.

A route is keyed on shapes only, so these tests change everything else a
route could wrongly carry over between calls of one shape -- dtypes, memory
layout, the model's answer dtype after sync_model, the threshold -- and
compare every answer with the serial model's, bitwise.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("mpi4py.MPI")

from loopback import run_ranks  # noqa: E402

from mpi_qinfer import MPIParallelizedModel  # noqa: E402
from mpi_qinfer.models.builtin import RamseyModel, SimplePrecessionModel  # noqa: E402
from mpi_qinfer.parallel.routes import MAX_ROUTES  # noqa: E402

PARTICLES = np.linspace(0.01, 1, 41)[:, None]
TIMES = np.linspace(0.1, 3, 9)
OUTCOMES = np.array([0, 1, 1])


class AnswersIn(SimplePrecessionModel):
    """The likelihood in a dtype of the root's choosing (changed there, then synced)."""

    def __init__(self, dtype=np.float64):
        super().__init__()
        self.dtype = dtype

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams, expparams).astype(self.dtype)


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


def on_ranks(size, model_factory, calls, **proxy_kwargs):
    """Run ``calls(proxy)`` on the root of ``size`` loopback ranks; return its result and the engine's call count."""

    def target(comm):
        with MPIParallelizedModel(model_factory(), comm=comm, idle="spin", **proxy_kwargs) as proxy:
            if not proxy.is_root:
                return None
            return calls(proxy), proxy.engine.calls, proxy

    return run_ranks(size, target)[0]


@pytest.mark.parametrize("size", [2, 3])
def test_one_shape_in_other_dtypes_and_layouts(size):
    """Every call has the same shapes; the dtypes and memory layout change from call to call."""
    record_times = np.zeros(len(TIMES), dtype=[("t", np.float64)])
    record_times["t"] = TIMES
    strided = np.repeat(PARTICLES, 2, axis=0)[::2]  # same values, not contiguous
    variants = [
        (OUTCOMES, PARTICLES, TIMES),
        (OUTCOMES.astype(np.int32), PARTICLES, TIMES),
        (OUTCOMES, PARTICLES.astype(np.float32), TIMES),
        (OUTCOMES, strided, TIMES),
        (OUTCOMES, PARTICLES, TIMES.astype(">f8")),
        (OUTCOMES, PARTICLES, TIMES),
    ]

    def calls(proxy):
        return [proxy.likelihood(*arrays) for arrays in variants]

    answers, engine_calls, _ = on_ranks(size, SimplePrecessionModel, calls, serial_threshold=0)
    serial = SimplePrecessionModel()
    for got, arrays in zip(answers, variants):
        assert_same(got, serial.likelihood(*arrays))
    assert engine_calls >= len(variants)  # every one of them went to the ranks


def test_record_experiments_with_their_fields_in_another_order():
    """A Ramsey experiment record with ('phase', 't') instead of ('t', 'phase'): same shape, other dtype."""
    particles = np.column_stack([np.linspace(0.5, 2, 23), np.linspace(1, 9, 23)])
    usual = np.zeros(5, dtype=[("t", "f8"), ("phase", "f8")])
    usual["t"], usual["phase"] = np.linspace(0.1, 2, 5), np.linspace(0, 1, 5)
    swapped = np.zeros(5, dtype=[("phase", "f8"), ("t", "f8")])
    swapped["t"], swapped["phase"] = usual["t"], usual["phase"]

    def calls(proxy):
        return [proxy.likelihood(OUTCOMES[:2], particles, experiments) for experiments in (usual, swapped, usual)]

    answers, engine_calls, _ = on_ranks(2, RamseyModel, calls, serial_threshold=0)
    for got, experiments in zip(answers, (usual, swapped, usual)):
        assert_same(got, RamseyModel().likelihood(OUTCOMES[:2], particles, experiments))
    assert engine_calls == 3


@pytest.mark.parametrize("size", [2, 3])
def test_a_new_answer_dtype_after_sync_model_reaches_the_next_call_of_the_shape(size):
    def calls(proxy):
        out = [proxy.likelihood(OUTCOMES, PARTICLES, TIMES) for _ in range(2)]
        proxy.serial_model.dtype = np.float32
        proxy.sync_model()
        out += [proxy.likelihood(OUTCOMES, PARTICLES, TIMES) for _ in range(2)]
        proxy.serial_model.dtype = np.float64
        proxy.sync_model()
        out.append(proxy.likelihood(OUTCOMES, PARTICLES, TIMES))
        return out

    answers, _, _ = on_ranks(size, AnswersIn, calls, serial_threshold=0)
    for got, dtype in zip(answers, [np.float64] * 2 + [np.float32] * 2 + [np.float64]):
        assert_same(got, AnswersIn(dtype).likelihood(OUTCOMES, PARTICLES, TIMES))


def test_a_learned_answer_dtype_costs_one_extra_call_once():
    def calls(proxy):
        counts = []
        for _ in range(3):
            before = proxy.engine.calls
            proxy.likelihood(OUTCOMES, PARTICLES, TIMES)
            counts.append(proxy.engine.calls - before)
        return counts

    counts, _, _ = on_ranks(2, lambda: AnswersIn(np.float32), calls, serial_threshold=0)
    assert counts == [2, 1, 1]  # learned on the first call; the route's spec follows


def test_many_shapes_keep_the_memo_bounded_and_right():
    n_shapes = MAX_ROUTES + 7

    def calls(proxy):
        answers = [proxy.likelihood(OUTCOMES, PARTICLES[: 2 + n % 30], TIMES[: 1 + n % 7]) for n in range(n_shapes)]
        answers.append(proxy.likelihood(OUTCOMES, PARTICLES[:2], TIMES[:1]))  # a shape seen before the memo restarted
        copy = pickle.loads(pickle.dumps(proxy))
        return answers, len(proxy._routes), proxy.call_count, copy.call_count

    (answers, remembered, counted, copied), _, _ = on_ranks(2, SimplePrecessionModel, calls, serial_threshold=0)
    serial = SimplePrecessionModel()
    shapes = [(2 + n % 30, 1 + n % 7) for n in range(n_shapes)] + [(2, 1)]
    for (n_models, n_exp), got in zip(shapes, answers):
        assert_same(got, serial.likelihood(OUTCOMES, PARTICLES[:n_models], TIMES[:n_exp]))
    assert 0 < remembered <= MAX_ROUTES
    # Every evaluation is counted, through routes that were dropped too, and in a copy.
    assert counted == copied == sum(len(OUTCOMES) * n_models * n_exp for n_models, n_exp in shapes)


def test_a_fixed_threshold_keeps_small_shapes_on_the_root():
    def calls(proxy):
        small = proxy.likelihood(OUTCOMES, PARTICLES[:4], TIMES[:2])  # 8 evaluations: serial
        before = proxy.engine.calls
        for _ in range(3):
            proxy.likelihood(OUTCOMES, PARTICLES[:4], TIMES[:2])
        after_small = proxy.engine.calls - before
        big = proxy.likelihood(OUTCOMES, PARTICLES, TIMES)  # 369 evaluations: parallel
        return small, after_small, big, proxy.engine.calls - before

    (small, after_small, big, total), _, proxy = on_ranks(3, SimplePrecessionModel, calls, serial_threshold=100)
    serial = SimplePrecessionModel()
    assert_same(small, serial.likelihood(OUTCOMES, PARTICLES[:4], TIMES[:2]))
    assert_same(big, serial.likelihood(OUTCOMES, PARTICLES, TIMES))
    assert (after_small, total) == (0, 1)
    decisions = proxy.threshold_policy.decisions
    assert decisions[1, False] == 4 and decisions[1, True] == 1


def outcome_of(call):
    """What a call gives: its answer, or the type and text of its exception."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - compared between the proxy and the serial model
        return type(error), str(error)


def test_arrays_that_cannot_travel_are_the_serial_models_to_judge():
    words = np.array(["0", "1"])  # strings never travel: the root's serial model decides what they mean

    def calls(proxy):
        return [outcome_of(lambda: proxy.likelihood(words, PARTICLES, TIMES)) for _ in range(2)]

    results, engine_calls, _ = on_ranks(2, SimplePrecessionModel, calls, serial_threshold=0)
    want = outcome_of(lambda: SimplePrecessionModel().likelihood(words, PARTICLES, TIMES))
    for got in results:
        if isinstance(want, tuple):
            assert got == want
        else:
            assert_same(got, want)
    assert engine_calls == 0
