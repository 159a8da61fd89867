"""The serial-or-parallel policy: fixed thresholds, and what "auto" learns from timings."""

from __future__ import annotations

import pytest

from mpi_qinfer.engine.protocol import Command, Split
from mpi_qinfer.parallel.threshold import SIMULATE_AUTO_THRESHOLD, ThresholdPolicy, outcome_class

LIKELIHOOD = int(Command.LIKELIHOOD)
SIMULATE, TIMESTEP = int(Command.SIMULATE), int(Command.UPDATE_TIMESTEP)
SPLIT_EXPERIMENTS = int(Split.EXPERIMENTS)


def drive(policy, work, serial_s, parallel_s, estimate_s, calls, n_outcomes=1, split=0):
    """Make ``calls`` calls of ``work`` evaluations; return the paths taken (True: parallel)."""
    shape = {"n_outcomes": n_outcomes, "split": split}
    paths = []
    for _ in range(calls):
        if policy.settled_serial(LIKELIHOOD, work, n_outcomes, split):
            paths.append("fast")
            continue
        parallel = policy.use_parallel(LIKELIHOOD, work, **shape)
        paths.append(parallel)
        policy.record(LIKELIHOOD, work, parallel, parallel_s if parallel else serial_s, estimate_s, **shape)
    return paths


def test_fixed_thresholds():
    policy = ThresholdPolicy(100)
    assert not policy.use_parallel(LIKELIHOOD, 99) and policy.use_parallel(LIKELIHOOD, 100)
    assert policy.settled_serial(LIKELIHOOD, 99) and not policy.settled_serial(LIKELIHOOD, 100)
    assert ThresholdPolicy(0).use_parallel(LIKELIHOOD, 1)
    for bad in (-1, 1.5, True, "fast"):
        with pytest.raises(ValueError, match="serial_threshold"):
            ThresholdPolicy(bad)


def test_a_settled_serial_class_hands_out_its_countdown_one_call_at_a_time():
    policy = ThresholdPolicy()
    drive(policy, 1000, serial_s=15e-6, parallel_s=30e-6, estimate_s=20e-6, calls=10)
    size = policy.size_class(LIKELIHOOD, 1000)
    left, counted = size.fast_left, policy.decisions[LIKELIHOOD, False]
    assert left > 0
    for taken in range(1, left + 1):
        assert size.take_settled_serial()
        assert size.fast_left == left - taken and policy.decisions[LIKELIHOOD, False] == counted + taken
    assert not size.take_settled_serial() and size.fast_left == 0  # spent: the next call is the policy's
    assert policy.decisions[LIKELIHOOD, False] == counted + left
    assert not policy.size_class(LIKELIHOOD, 5000).take_settled_serial()  # a new class starts in parallel


def test_random_calls_follow_a_fixed_rule_whatever_the_timings():
    auto = ThresholdPolicy()
    assert not auto.random_parallel(SIMULATE, SIMULATE_AUTO_THRESHOLD - 1)
    assert auto.random_parallel(SIMULATE, SIMULATE_AUTO_THRESHOLD)
    assert not auto.random_parallel(TIMESTEP, 10 * SIMULATE_AUTO_THRESHOLD)  # on the root in auto mode
    fixed = ThresholdPolicy(50)
    for command in (SIMULATE, TIMESTEP):
        assert not fixed.random_parallel(command, 49) and fixed.random_parallel(command, 50)
    assert ThresholdPolicy(0).random_parallel(TIMESTEP, 1)
    assert not auto.decisions and not fixed.decisions  # nothing learned, nothing counted


def test_cheap_calls_settle_on_the_serial_fast_path_and_are_rechecked_rarely():
    policy = ThresholdPolicy()
    paths = drive(policy, 1000, serial_s=15e-6, parallel_s=30e-6, estimate_s=20e-6, calls=400)
    # Three parallel calls to learn (the first discarded), one serial, then the fast path.
    assert paths[:4] == [True, True, True, False]
    assert paths[4:8] == ["fast"] * 4
    probes = [i for i, path in enumerate(paths) if path is True][3:]
    assert probes and all(b - a > 30 for a, b in zip(probes, probes[1:]))  # a clear loser: re-checked rarely
    assert probes[0] > 3 + 32  # ... from the first comparison on
    assert paths.count("fast") > 380
    assert policy.choice(LIKELIHOOD, 1000) == "serial"
    assert policy.decisions[LIKELIHOOD, False] + policy.decisions[LIKELIHOOD, True] == 400


def test_costly_calls_go_parallel_without_ever_running_serially():
    policy = ThresholdPolicy()
    # The root's share says a serial call would take 2 ms; parallel takes 1 ms.
    paths = drive(policy, 1000, serial_s=2e-3, parallel_s=1e-3, estimate_s=2e-3, calls=10)
    assert paths[:3] == [True] * 3 and paths[3] is True
    assert "fast" not in paths and policy.choice(LIKELIHOOD, 1000) == "parallel"


def test_a_close_call_is_measured_both_ways_and_follows_a_change():
    policy = ThresholdPolicy(reprobe=8)
    drive(policy, 5000, serial_s=100e-6, parallel_s=90e-6, estimate_s=120e-6, calls=30)
    assert policy.choice(LIKELIHOOD, 5000) == "parallel"
    # The machine gets busy: parallel calls now take much longer; the re-checks notice.
    drive(policy, 5000, serial_s=100e-6, parallel_s=300e-6, estimate_s=120e-6, calls=60)
    assert policy.choice(LIKELIHOOD, 5000) == "serial"


def test_size_classes_are_separate():
    policy = ThresholdPolicy()
    drive(policy, 1000, serial_s=15e-6, parallel_s=30e-6, estimate_s=20e-6, calls=20)
    assert policy.choice(LIKELIHOOD, 1023) == "serial"
    assert policy.choice(LIKELIHOOD, 1024) == "undecided"
    assert not policy.settled_serial(LIKELIHOOD, 4096)


def test_outcome_classes():
    assert [outcome_class(n) for n in (1, 2, 3, 4, 5, 6, 8, 9)] == [0, 1, 2, 2, 3, 3, 3, 4]


def test_outcome_counts_and_splits_learn_separately():
    # One outcome settles on serial; six outcomes of the same size, parallel
    # clearly winning there, must not inherit that decision, nor the other split.
    policy = ThresholdPolicy()
    drive(policy, 1000, serial_s=15e-6, parallel_s=30e-6, estimate_s=20e-6, calls=20)
    assert policy.choice(LIKELIHOOD, 1000) == "serial"
    assert policy.choice(LIKELIHOOD, 1000, n_outcomes=6) == "undecided"
    assert not policy.settled_serial(LIKELIHOOD, 1000, 6)
    assert not policy.settled_serial(LIKELIHOOD, 1000, 1, SPLIT_EXPERIMENTS)
    paths = drive(policy, 1000, serial_s=2e-3, parallel_s=1e-3, estimate_s=2e-3, calls=10, n_outcomes=6)
    assert "fast" not in paths and policy.choice(LIKELIHOOD, 1000, n_outcomes=6) == "parallel"
    assert policy.choice(LIKELIHOOD, 1000) == "serial"  # the one-outcome class kept its own decision
    assert policy.settled_serial(LIKELIHOOD, 1000)
    # 5 and 6 outcomes share a class; 3 does not.
    assert policy.choice(LIKELIHOOD, 1000, n_outcomes=5) == "parallel"
    assert policy.choice(LIKELIHOOD, 1000, n_outcomes=3) == "undecided"
    drive(policy, 1000, serial_s=15e-6, parallel_s=30e-6, estimate_s=20e-6, calls=20, split=SPLIT_EXPERIMENTS)
    assert policy.choice(LIKELIHOOD, 1000, split=SPLIT_EXPERIMENTS) == "serial"
    assert set(policy.summary()) == {(LIKELIHOOD, 10, 0, 0), (LIKELIHOOD, 10, 3, 0),
                                     (LIKELIHOOD, 10, 0, SPLIT_EXPERIMENTS)}
    assert sum(policy.decisions.values()) == 51  # 50 driven calls and the settled_serial above


def test_fixed_thresholds_ignore_outcomes_and_split():
    policy = ThresholdPolicy(100)
    assert policy.use_parallel(LIKELIHOOD, 100, n_outcomes=6, split=SPLIT_EXPERIMENTS)
    assert policy.settled_serial(LIKELIHOOD, 99, 6, SPLIT_EXPERIMENTS)
    assert policy.choice(LIKELIHOOD, 99, n_outcomes=3) == "serial"


def test_one_stalled_call_does_not_flip_a_settled_decision():
    policy = ThresholdPolicy(reprobe=8)
    drive(policy, 5000, serial_s=100e-6, parallel_s=70e-6, estimate_s=120e-6, calls=40)
    assert policy.choice(LIKELIHOOD, 5000) == "parallel"
    policy.record(LIKELIHOOD, 5000, True, 50 * 70e-6)  # one call descheduled for 3.5 ms
    assert policy.choice(LIKELIHOOD, 5000) == "parallel"
    serial, parallel = policy.summary()[LIKELIHOOD, 13, 0, 0]
    assert parallel <= 1.3 * 70e-6 / 5000 * 1.0001


def test_a_close_first_comparison_is_rechecked_soon():
    policy = ThresholdPolicy()
    paths = drive(policy, 1000, serial_s=15e-6, parallel_s=16e-6, estimate_s=20e-6, calls=12)
    assert paths[:4] == [True, True, True, False]
    # Not clear: the first re-check after 4 calls, timing the serial call first (the fast path
    # never does), then the parallel one.
    assert paths[4:8] == ["fast"] * 4 and paths[8:10] == [False, True]


def test_a_near_tie_stays_on_the_serial_path():
    # Parallel 2% faster: within timing noise, so the root keeps the work; 6% faster: parallel.
    near = ThresholdPolicy()
    paths = drive(near, 10_000, serial_s=100e-6, parallel_s=98e-6, estimate_s=100e-6, calls=40)
    assert near.choice(LIKELIHOOD, 10_000) == "serial" and paths.count("fast") >= 30  # all but 4 + 3 re-checks
    clear = ThresholdPolicy()
    drive(clear, 10_000, serial_s=100e-6, parallel_s=94e-6, estimate_s=100e-6, calls=40)
    assert clear.choice(LIKELIHOOD, 10_000) == "parallel"


def test_calls_that_skip_the_fast_path_still_follow_the_countdown():
    # A settled serial class asked only through use_parallel (the proxy's general path, e.g. for
    # lists): serial, with a re-check now and then, exactly as through the fast path.
    policy = ThresholdPolicy()
    paths = []
    for _ in range(300):
        parallel = policy.use_parallel(LIKELIHOOD, 1000)
        paths.append(parallel)
        policy.record(LIKELIHOOD, 1000, parallel, 30e-6 if parallel else 15e-6, 20e-6)
    assert paths[:4] == [True, True, True, False]
    assert sum(paths[4:]) <= 3  # re-checks only, after 32 and 256 calls
    assert policy.decisions[LIKELIHOOD, False] + policy.decisions[LIKELIHOOD, True] == 300


# ------------------------------------------------------------------ costs that change under a settled class
CHEAP = {"serial_s": 15e-6, "parallel_s": 30e-6, "estimate_s": 20e-6}
COSTLY = {"serial_s": 10e-3, "parallel_s": 7e-3, "estimate_s": 10e-3}  # parallel clearly ahead now


def rechecks(paths):
    """Indices where a settled serial class's re-check starts: a timed serial call, then a parallel one."""
    return [i for i in range(len(paths) - 1) if paths[i] is False and paths[i + 1] is True]


def test_a_settled_serial_class_follows_a_model_that_gets_costlier():
    policy = ThresholdPolicy()
    before = drive(policy, 1000, calls=3000, **CHEAP)
    assert policy.choice(LIKELIHOOD, 1000) == "serial" and before.count("fast") > 2980
    left = policy.size_class(LIKELIHOOD, 1000).fast_left  # settled calls to go before the next re-check
    assert 0 < left <= 1024
    after = drive(policy, 1000, calls=left + 60, **COSTLY)
    # The countdown runs out; the re-check times both sides, finds both far above their estimates
    # and comes back after 4 calls; the second re-check confirms the change: parallel from then on.
    assert after[:left] == ["fast"] * left
    assert after[left:left + 8] == [False, True, "fast", "fast", "fast", "fast", False, True]
    tail = after[left + 8:]
    assert "fast" not in tail and tail.count(False) <= 3  # the serial side re-checked now and then only
    assert policy.choice(LIKELIHOOD, 1000) == "parallel"
    serial, parallel = policy.summary()[LIKELIHOOD, 10, 0, 0]
    assert serial == pytest.approx(10e-3 / 1000, rel=0.3) and parallel == pytest.approx(7e-3 / 1000, rel=0.3)


def test_a_settled_serial_class_is_rechecked_ever_less_often_while_its_costs_hold():
    policy = ThresholdPolicy()
    paths = drive(policy, 1000, calls=6000, **CHEAP)
    starts = rechecks(paths)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert starts and all(b >= a for a, b in zip(gaps, gaps[1:]))  # exponential back-off ...
    assert max(gaps) <= 16 * 64 + 2  # ... up to its cap
    assert len(starts) <= 8 and paths.count("fast") >= 6000 - 4 - 2 * len(starts)


def test_a_settled_parallel_class_follows_a_model_that_gets_cheaper():
    policy = ThresholdPolicy()
    drive(policy, 1000, calls=200, serial_s=2e-3, parallel_s=1e-3, estimate_s=2e-3)
    assert policy.choice(LIKELIHOOD, 1000) == "parallel"
    size = policy.size_class(LIKELIHOOD, 1000)
    paths = drive(policy, 1000, calls=size.until_probe + 60, **CHEAP)
    assert policy.choice(LIKELIHOOD, 1000) == "serial"
    assert paths[-30:].count("fast") >= 26 and len(rechecks(paths[-30:])) <= 2  # settled, re-checked less often


def test_one_stalled_recheck_does_not_unsettle_a_serial_class():
    policy = ThresholdPolicy()
    drive(policy, 1000, calls=500, **CHEAP)
    size = policy.size_class(LIKELIHOOD, 1000)
    left, interval = size.fast_left, size.interval
    assert drive(policy, 1000, calls=left, **CHEAP) == ["fast"] * left
    stalled = dict(CHEAP, serial_s=50 * CHEAP["serial_s"])  # the re-check's serial call is descheduled
    assert drive(policy, 1000, calls=1, **stalled) == [False]
    paths = drive(policy, 1000, calls=interval + 100, **CHEAP)
    # The far-off sample brings the next re-check close; that one agrees with the old costs, so it
    # was a stall: the back-off goes on with the interval it had reached.
    assert paths[:5] == [True, "fast", "fast", "fast", "fast"]
    assert rechecks(paths)[:2] == [5, 5 + 2 + interval]
    assert policy.choice(LIKELIHOOD, 1000) == "serial" and paths.count("fast") == len(paths) - 5


@pytest.mark.mpi(min_size=2)
def test_the_proxy_follows_a_model_that_gets_costlier_through_its_hot_path(comm):
    """The proxy's own calls (settled fast path, re-checks, parallel), with the costs the policy sees injected.

    The policy is handed modelled seconds in place of its timings, so its path through the change is
    exactly the one a policy driven alone takes; every answer stays bitwise the serial model's.
    """
    import numpy as np
    from conftest import run_parallel

    from mpi_qinfer.models.builtin import SimplePrecessionModel

    modelparams, times, outcomes = np.linspace(0.01, 1, 1000)[:, None], np.array([0.7]), np.arange(2)

    def check(proxy, serial):
        policy = proxy.threshold_policy
        costs = dict(CHEAP)
        record = policy.record_class

        def modelled(size, work, parallel, seconds, serial_estimate=None):
            record(size, work, parallel, costs["parallel_s" if parallel else "serial_s"],
                   costs["estimate_s"] if parallel else None)

        policy.record_class = modelled
        want = serial.likelihood(outcomes, modelparams, times)

        def calls(n):
            paths = []
            for _ in range(n):
                before = proxy.engine.calls
                assert np.array_equal(proxy.likelihood(outcomes, modelparams, times), want)
                paths.append(proxy.engine.calls > before)
            return paths

        alone = ThresholdPolicy()  # the same schedule, driven without the proxy
        expected = drive(alone, 1000, calls=600, n_outcomes=2, **CHEAP)
        assert calls(600) == [path is True for path in expected]
        left = policy.size_class(LIKELIHOOD, 1000, 2).fast_left
        assert left == alone.size_class(LIKELIHOOD, 1000, 2).fast_left > 0
        costs.update(COSTLY)
        expected = drive(alone, 1000, calls=left + 40, n_outcomes=2, **COSTLY)
        got = calls(left + 40)
        assert got == [path is True for path in expected]
        assert sum(got[left + 8:]) >= 29 and policy.choice(LIKELIHOOD, 1000, n_outcomes=2) == "parallel"

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold="auto")
