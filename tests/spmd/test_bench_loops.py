"""The bench's hand-written reference loops return bitwise the serial answer, for every call shape.

The floor picks its gather by shape (one message per worker placed by a
vector type, or a staging buffer for short blocks); both paths, both splits,
uneven and empty shares and record outcomes are compared with the serial model;
and ``scripts/layout_probe.py``, which chose that layout, checks all its ways.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_collectively, mpiexec_command, needs_mpiexec, verdict_of

from mpi_qinfer.cli.bench import FloorLoop, PickleMapLoop
from mpi_qinfer.cli.bench.cases import Case, outcomes_for
from mpi_qinfer.cli.bench.loops import SHORT_BLOCK_BYTES
from mpi_qinfer.cli.bench.probes import RECORD_OUTCOME_DTYPE, RecordOutcomeModel
from mpi_qinfer.models.builtin import SimplePrecessionModel

#: (n_particles, n_exp, split): vector and staged gathers, uneven splits, fewer rows than ranks,
#: broadcast inputs inline in the message and too big for it.
SHAPES = [
    (1000, 1, "models"), (1001, 3, "models"), (7, 100, "models"), (2, 5, "models"), (3, 1000, "models"),
    (100, 1000, "experiments"), (1000, 10, "experiments"), (3, 2, "experiments"), (40, 7, "experiments"),
]


def _check_loop(comm, make_loop, model, n_outcomes, record=False):
    rng = np.random.default_rng(7)
    with make_loop(comm, model) as loop:
        if not loop.is_root:
            return None
        def check():
            for n_particles, n_exp, split in SHAPES:
                loop_split = getattr(loop, "split", None)
                if loop_split is not None and loop_split != split:
                    continue
                if hasattr(loop, "by_models") and loop.by_models != (split == "models"):
                    continue
                outcomes = outcomes_for(n_outcomes, record)
                modelparams = rng.uniform(0, 1, (n_particles, 1))
                expparams = rng.uniform(0, 20, n_exp)
                expected = model.likelihood(outcomes, modelparams, expparams)
                for _ in range(2):  # the second call reuses the cached plan
                    got = loop.likelihood(outcomes, modelparams, expparams)
                    assert got.shape == expected.shape and got.flags.c_contiguous
                    assert np.array_equal(got, expected), (n_particles, n_exp, split, n_outcomes)
        return verdict_of(check)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("split", ["models", "experiments"])
@pytest.mark.parametrize("n_outcomes", [1, 2, 3, 6])
def test_floor_is_bitwise_the_serial_answer(comm, split, n_outcomes):
    def make(comm, model):
        return FloorLoop(comm, model, split=split)

    verdict = _check_loop(comm, make, SimplePrecessionModel(), n_outcomes)
    assert_collectively(comm, verdict)


@pytest.mark.mpi(min_size=2)
def test_floor_carries_record_outcomes(comm):
    def make(comm, model):
        return FloorLoop(comm, model, split="models", outcomes_dtype=RECORD_OUTCOME_DTYPE)

    verdict = _check_loop(comm, make, RecordOutcomeModel(), 6, record=True)
    assert_collectively(comm, verdict)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("split", ["models", "experiments"])
def test_pickle_map_is_bitwise_the_serial_answer(comm, split):
    def make(comm, model):
        return PickleMapLoop(comm, model, split=split)

    verdict = _check_loop(comm, make, SimplePrecessionModel(), 2)
    assert_collectively(comm, verdict)


def test_loops_on_one_rank_and_bad_split():
    from mpi4py import MPI

    for split in ("models", "experiments"):
        verdict = _check_loop(MPI.COMM_SELF, lambda comm, model, split=split: FloorLoop(comm, model, split=split),
                              SimplePrecessionModel(), 3)
        assert verdict is None, verdict
    for loop_class in (FloorLoop, PickleMapLoop):
        with pytest.raises(ValueError, match="split"):
            loop_class(MPI.COMM_SELF, SimplePrecessionModel(), split="rows")


def test_the_floor_stages_short_blocks_only():
    # Which gather the floor uses follows from the shape alone, the same on every rank.
    from mpi4py import MPI

    with FloorLoop(MPI.COMM_SELF, SimplePrecessionModel(), split="experiments") as loop:
        short = loop._plan(1000, 1, 10, 2)  # blocks of 10 doubles, 2000 of them
        long = loop._plan(10, 1, 1000, 2)  # blocks of 1000 doubles
        assert short["staged"] and 10 * 8 < SHORT_BLOCK_BYTES
        assert not long["staged"]
    with FloorLoop(MPI.COMM_SELF, SimplePrecessionModel(), split="models") as loop:
        assert not loop._plan(1000, 1, 1, 1)["staged"]  # one outcome: one contiguous block


def test_case_outcomes():
    assert outcomes_for(6).tolist() == [0, 1, 0, 1, 0, 1]
    record = outcomes_for(3, record=True)
    assert record.dtype == RECORD_OUTCOME_DTYPE and record["k"].tolist() == [0, 1, 0]
    case = Case("record", 100, 1, 2)
    outcomes, modelparams, expparams = case.data(1)
    assert outcomes.dtype == RECORD_OUTCOME_DTYPE
    assert np.array_equal(case.make_model().likelihood(outcomes, modelparams, expparams),
                          SimplePrecessionModel().likelihood(outcomes["k"], modelparams, expparams))


@needs_mpiexec
def test_layout_probe_checks_every_way_bitwise_at_three_ranks():
    # The probe behind the floor's layout: every way of gathering, on every shape up
    # to 1 MB, uneven splits included, must return the serial answer bitwise.
    argv, env = mpiexec_command(3, timeout=240)
    script = Path(__file__).resolve().parents[2] / "scripts" / "layout_probe.py"
    done = subprocess.run([*argv, sys.executable, str(script), "--check", "--only", "gather", "--max-mb", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "correctness at 3 ranks" in done.stdout and "all bitwise equal" in done.stdout
