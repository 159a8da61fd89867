"""Load balancing: split arithmetic (serial) and shares that track rank speeds (MPI)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_parallel
from fault_models import SlowRankModel

from mpi_qinfer.engine.partition import even_counts, weighted_counts
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.parallel.balance import AdaptiveBalance, WeightedBalance, make_balance


def test_even_and_weighted_counts():
    assert even_counts(7, 3).tolist() == [3, 2, 2]
    assert even_counts(2, 3).tolist() == [1, 1, 0]
    assert weighted_counts(10, [1, 3]).tolist() == [3, 7]
    assert weighted_counts(0, [1, 1]).tolist() == [0, 0]
    for n in range(50):
        assert weighted_counts(n, [0.2, 0.5, 0.3]).sum() == n
    with pytest.raises(ValueError, match="weights"):
        weighted_counts(5, [0, 0])
    with pytest.raises(ValueError, match="weights"):
        weighted_counts(5, [1, np.nan])


def test_counts_beyond_32_bits_are_refused_clearly():
    from mpi_qinfer.engine.partition import MAX_COUNT, check_count

    assert check_count(MAX_COUNT, "rows") == MAX_COUNT
    with pytest.raises(OverflowError, match="rows of modelparams is 2147483648"):
        check_count(MAX_COUNT + 1, "rows of modelparams")
    # A share of 3e9 rows of 2 parameters is 6e9 elements but only 3e9 row-type items:
    # counting in rows keeps a 1e9-particle cloud per rank within one call.
    assert even_counts(3 * 10**9, 2).max() < MAX_COUNT


def test_weighted_balance_checks_its_weights():
    assert WeightedBalance([1, 3], 2).counts(8).tolist() == [2, 6]
    with pytest.raises(ValueError, match="one entry per rank"):
        make_balance([1, 2, 3], 2)
    with pytest.raises(ValueError, match="balance"):
        make_balance("fastest", 2)


def test_adaptive_balance_follows_rates_and_ignores_noise():
    balance = AdaptiveBalance(2, tolerance=0.02)
    counts = np.array([500, 500])
    balance.record(counts, 1, np.array([0.01, 0.03]))  # rank 1 three times slower
    assert np.allclose(balance.shares, [0.75, 0.25])
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(50):  # the same speeds, 1% noise: the split must stay put
        counts = balance.counts(1000)
        seconds = counts * np.array([1e-5, 3e-5]) * rng.normal(1, 0.01, 2)
        balance.record(counts, 1, seconds)
        shares.append(balance.shares)
    assert len({tuple(s) for s in shares}) <= 2
    balance.record(np.array([500, 500]), 1, np.array([1e-6, 1e-6]))  # too short to time: ignored
    assert np.allclose(balance.shares, shares[-1])


@pytest.mark.mpi(min_size=2)
def test_adaptive_split_tracks_a_slow_rank(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(2)
        for _ in range(12):
            modelparams = rng.uniform(0, 1, (1200, 1))
            expparams = np.array([1.0])
            got = proxy.likelihood(np.arange(2), modelparams, expparams)
            assert np.array_equal(got, SimplePrecessionModel().likelihood(np.arange(2), modelparams, expparams))
        # Rank 1 is three times slower, so its share should be a third of the others'. The shares
        # come from timings on a shared machine: ask for the right side of one half and of twice.
        shares = np.asarray(proxy.balance.shares)
        ratio = shares[1] / np.delete(shares, 1).mean()
        assert 1 / 6 < ratio < 2 / 3, shares

    run_parallel(comm, SlowRankModel(slow_rank=1, factor=3.0), check, serial_threshold=0, balance="adaptive")


@pytest.mark.mpi(min_size=2)
def test_fixed_weights_split_and_stay_exact(comm):
    size = comm.Get_size()

    def check(proxy, serial):
        modelparams = np.linspace(0, 1, 101)[:, None]
        got = proxy.likelihood(np.arange(2), modelparams, np.array([0.5, 2.0]))
        assert np.array_equal(got, serial.likelihood(np.arange(2), modelparams, np.array([0.5, 2.0])))
        assert proxy.engine.last_counts.tolist() == weighted_counts(101, np.arange(1, size + 1)).tolist()

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0, balance=list(range(1, size + 1)))


def _teach_speeds(balance, counts, speeds, evaluations_per_row):
    """Feed ``balance`` compute times as ranks of these relative speeds would report them (none measured)."""
    rates = 1e5 * np.asarray(speeds, dtype=float)  # evaluations per second: every time well above min_seconds
    for _ in range(30):  # enough smoothed steps to settle on these rates whatever was measured before
        balance.record(counts, evaluations_per_row, counts * evaluations_per_row / rates)


def _rows_follow_learned_shares(proxy, serial, size):
    """A call shape run first evenly, then after the balance learned uneven shares: its rows move."""
    modelparams, expparams, outcomes = np.linspace(0, 1, 120)[:, None], np.array([0.5, 2.0]), np.arange(2)
    want = serial.likelihood(outcomes, modelparams, expparams)
    assert np.array_equal(proxy.likelihood(outcomes, modelparams, expparams), want)
    even = even_counts(120, size).tolist()
    assert proxy.engine.last_counts.tolist() == even  # nothing learned yet: the even split
    speeds = np.ones(size)
    speeds[0] = 3.0
    _teach_speeds(proxy.balance, np.asarray(proxy.engine.last_counts), speeds, len(expparams))
    for _ in range(2):  # the shape already seen, then once more on the plan that call made
        planned = proxy.balance.counts(120)
        assert planned is not None and planned.tolist() != even
        assert np.array_equal(proxy.likelihood(outcomes, modelparams, expparams), want)
        assert proxy.engine.last_counts.tolist() == planned.tolist()


@pytest.mark.mpi(min_size=2)
def test_learned_shares_move_the_rows_of_a_shape_already_seen(comm):
    size = comm.Get_size()
    run_parallel(comm, SimplePrecessionModel(), lambda proxy, serial: _rows_follow_learned_shares(proxy, serial, size),
                 serial_threshold=0, balance="adaptive")


@pytest.mark.parametrize("size", [2, 3])
def test_learned_shares_move_the_rows_of_a_shape_already_seen_on_loopback_ranks(size):
    from loopback import run_ranks

    from mpi_qinfer import MPIParallelizedModel

    def target(comm):
        with MPIParallelizedModel(SimplePrecessionModel(), comm=comm, serial_threshold=0, balance="adaptive",
                                  idle="spin") as proxy:
            if proxy.is_root:
                _rows_follow_learned_shares(proxy, SimplePrecessionModel(), size)

    run_ranks(size, target)


def test_a_plan_made_for_the_even_split_is_not_used_for_explicit_counts():
    from mpi_qinfer.engine.plans import PlanCache
    from mpi_qinfer.engine.protocol import CallSpec, Command, DtypeTable

    plans = PlanCache(DtypeTable(), 3, 0, 0)
    try:
        even = CallSpec(int(Command.LIKELIHOOD), n_models=12, n_modelparams=1, n_expparams=2, n_outcomes=2,
                        modelparams_dtype=0, expparams_dtype=0, outcomes_dtype=1, answer_dtype=0)
        counted = even._replace(explicit_counts=1)
        assert plans.get(even).even_counts.tolist() == [4, 4, 4]
        plan = plans.get(counted)
        assert plan.even_counts is None and "counts" in [name for name, *_ in plan.broadcast]
        assert plans.get(even) is not plan and len(plans) == 2
    finally:
        plans.free()
