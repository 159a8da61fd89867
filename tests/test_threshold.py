"""The serial-or-parallel policy: fixed thresholds, and what "auto" learns from timings."""

from __future__ import annotations

import pytest

from mpi_qinfer.threshold import ThresholdPolicy

LIKELIHOOD = 1


def drive(policy, work, serial_s, parallel_s, estimate_s, calls):
    """Make ``calls`` calls of ``work`` evaluations; return the paths taken (True: parallel)."""
    paths = []
    for _ in range(calls):
        if policy.settled_serial(LIKELIHOOD, work):
            paths.append("fast")
            continue
        parallel = policy.use_parallel(LIKELIHOOD, work)
        paths.append(parallel)
        policy.record(LIKELIHOOD, work, parallel, parallel_s if parallel else serial_s, estimate_s)
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
