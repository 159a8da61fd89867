"""The serial-or-parallel policy: fixed thresholds, and what "auto" learns from timings."""

from __future__ import annotations

import pytest

from mpi_qinfer.protocol import Command, Split
from mpi_qinfer.threshold import ThresholdPolicy, outcome_class

LIKELIHOOD = int(Command.LIKELIHOOD)
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
    assert paths[4:8] == ["fast"] * 4 and paths[8] is True  # not clear: the first re-check after 4 calls


def test_a_near_tie_stays_on_the_serial_path():
    # Parallel 2% faster: within timing noise, so the root keeps the work; 6% faster: parallel.
    near = ThresholdPolicy()
    paths = drive(near, 10_000, serial_s=100e-6, parallel_s=98e-6, estimate_s=100e-6, calls=40)
    assert near.choice(LIKELIHOOD, 10_000) == "serial" and paths.count("fast") > 30
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
