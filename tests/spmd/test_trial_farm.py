"""The trial farm at several ranks: every farmed trial is bitwise the serial trial of its seed,
whatever the group size; failures and bad input end the run on every rank, never hang it.

Run with ``scripts/mpi-pytest.sh .venv 2 tests/spmd/test_trial_farm.py`` (and 3).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.ma as ma
import pytest
from conftest import assert_collectively, verdict_of
from mpi4py import MPI

from mpi_qinfer import (
    ExpSparseHeuristic,
    MPIParallelizedModel,
    TrialFarm,
    UniformDistribution,
    load_perf_trials,
    perf_test_multiple,
)
from mpi_qinfer.models.builtin import SimplePrecessionModel
from mpi_qinfer.smc.perf_testing import TRIAL_FAILED, TRIAL_PENDING

pytestmark = pytest.mark.mpi(min_size=2)

PRIOR = UniformDistribution([0, 1])
ARGS = dict(n_particles=200, prior=PRIOR, n_exp=8, heuristic_class=ExpSparseHeuristic)


class FailsAboveHalf(SimplePrecessionModel):
    """Simulating data for a true omega above 0.5 fails: some trials of a run fail, others do not."""

    def simulate_experiment(self, modelparams, expparams, repeat=1):
        if np.max(modelparams) > 0.5:
            raise ArithmeticError(f"no data for omega = {np.max(modelparams):.3f}")
        return super().simulate_experiment(modelparams, expparams, repeat)


class GlobalStreamPrior:
    """A prior in qinfer's style: no rng argument, draws from NumPy's global generator."""

    n_rvs = 1

    def sample(self, n=1):
        return np.random.uniform(0, 1, size=(n, 1))


def serial(n_trials, model=None, seed=1, **kwargs):
    args = dict(ARGS, **kwargs)
    model = SimplePrecessionModel() if model is None else model
    return perf_test_multiple(n_trials, model, args.pop("n_particles"), args.pop("prior"), args.pop("n_exp"),
                              args.pop("heuristic_class"), seed=seed, **args)


def farmed(farm, n_trials, model=None, seed=1, **kwargs):
    args = dict(ARGS, **kwargs)
    model = SimplePrecessionModel() if model is None else model
    return farm.perf_test_multiple(n_trials, model, args.pop("n_particles"), args.pop("prior"), args.pop("n_exp"),
                                   args.pop("heuristic_class"), seed=seed, **args)


def assert_same_trials(got, want):
    assert got is not None
    assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
    for name in want.dtype.names:
        if name != "elapsed_time":  # a measurement
            assert np.array_equal(np.asarray(got[name]), np.asarray(want[name])), name
    if isinstance(want, ma.MaskedArray):
        assert np.array_equal(ma.getmaskarray(got), ma.getmaskarray(want))


def everywhere(comm, check):
    """Run ``check`` on every rank; all ranks fail if any does (with the first failure's traceback)."""
    failures = [verdict for verdict in comm.allgather(verdict_of(check)) if verdict is not None]
    assert not failures, failures[0]


def check_on_root(comm, got, want_call):
    """The root compares the farm's result with the serial run; the others must have got None."""
    def check():
        if comm.Get_rank() == 0:
            assert_same_trials(got, want_call())
        else:
            assert got is None

    everywhere(comm, check)


def shared_dir(comm, tmp_path):
    """One directory for every rank (the root's; the ranks of these tests share a node)."""
    return comm.bcast(str(tmp_path) if comm.Get_rank() == 0 else None, root=0)


# ------------------------------------------------------------- the results
def test_farmed_trials_are_the_serial_trials_of_the_seed(comm):
    got = farmed(TrialFarm(comm), 7, seed=2024)
    check_on_root(comm, got, lambda: serial(7, seed=2024))


def test_groups_of_two_ranks_run_the_serial_trials_or_are_refused(comm):
    if comm.Get_size() % 2:
        with pytest.raises(ValueError, match=f"group_size=2 does not divide the {comm.Get_size()} ranks"):
            TrialFarm(comm, group_size=2)
        return
    farm = TrialFarm(comm, group_size=2, proxy_options={"serial_threshold": 0})  # every call in parallel
    assert farm.n_groups == comm.Get_size() // 2
    got = farmed(farm, 5, seed=9)
    check_on_root(comm, got, lambda: serial(5, seed=9))


def test_one_group_of_every_rank_runs_the_serial_trials(comm):
    farm = TrialFarm(comm, group_size=comm.Get_size(), proxy_options={"serial_threshold": 0})
    got = farmed(farm, 3, seed=4)
    check_on_root(comm, got, lambda: serial(3, seed=4))


def test_more_groups_than_trials(comm):
    got = farmed(TrialFarm(comm), 1, seed=6)
    check_on_root(comm, got, lambda: serial(1, seed=6))


def test_a_prior_drawing_from_the_global_generator_gives_the_serial_trials(comm):
    np.random.seed(comm.Get_rank())  # each rank's own global state: it must not matter
    got = farmed(TrialFarm(comm), 5, prior=GlobalStreamPrior(), seed=3)
    check_on_root(comm, got, lambda: serial(5, prior=GlobalStreamPrior(), seed=3))


def test_a_farm_can_run_again_on_the_same_communicator(comm):
    farm = TrialFarm(comm)
    first = farmed(farm, 3, seed=1)
    second = farmed(farm, 3, seed=1)
    check_on_root(comm, second, lambda: first)


def test_without_an_answering_thread_rank_0_answers_between_experiments(comm, monkeypatch):
    """The way of MPI libraries without MPI_THREAD_MULTIPLE: the same trials, failures included."""
    import mpi_qinfer.parallel.trials as trials

    monkeypatch.setattr(trials, "_ANSWER_IN_THREAD", False)
    got = farmed(TrialFarm(comm), 9, seed=15)
    check_on_root(comm, got, lambda: serial(9, seed=15))
    got = farmed(TrialFarm(comm), 8, model=FailsAboveHalf(), seed=4, n_exp=3, allow_failures=True)
    check_on_root(comm, got, lambda: serial(8, model=FailsAboveHalf(), seed=4, n_exp=3, allow_failures=True))

    def check():
        with pytest.raises(ArithmeticError):
            farmed(TrialFarm(comm), 8, model=FailsAboveHalf(), seed=4, n_exp=3)

    everywhere(comm, check)


def test_perf_test_multiple_with_the_proxy_as_the_model_gives_the_serial_trials(comm):
    """qinfer's other way: the likelihood spread over the ranks, the trials on the root."""
    verdict = None
    serial_model = SimplePrecessionModel()
    with MPIParallelizedModel(serial_model, comm=comm, serial_threshold=0) as proxy:  # every call in parallel
        if proxy.is_root:
            # The data from the serial model: a proxy with an int threshold simulates in parallel, from its
            # own streams (see the user guide), a proxy in "auto" mode one datum at a time on the root.
            verdict = verdict_of(lambda: assert_same_trials(serial(4, model=proxy, true_model=serial_model, seed=8),
                                                            serial(4, seed=8)))
    assert_collectively(comm, verdict)
    with MPIParallelizedModel(SimplePrecessionModel(), comm=comm) as proxy:
        if proxy.is_root:
            verdict = verdict_of(lambda: assert_same_trials(serial(4, model=proxy, seed=8), serial(4, seed=8)))
    assert_collectively(comm, verdict)


# ------------------------------------------------------------ the balance
def test_trials_go_to_whichever_leader_is_free(comm):
    """Rank 0's first trial is slow: the other ranks take nearly all of the rest."""
    ran_here = []

    def heuristic(updater):
        ran_here.append(1)
        if comm.Get_rank() == 0 and len(ran_here) == 1:
            time.sleep(1.5)
        return ExpSparseHeuristic(updater)

    n_trials = 20
    farmed(TrialFarm(comm), n_trials, n_particles=50, n_exp=3, heuristic_class=heuristic)
    counts = comm.allgather(len(ran_here))
    assert sum(counts) == n_trials
    # A static split would give rank 0 its n_trials / size; the queue gives it few beyond the slow one.
    assert counts[0] < n_trials / comm.Get_size(), counts


# ------------------------------------------------------------- failures
def failing_trials(seed, n_trials):
    perf = serial(n_trials, model=FailsAboveHalf(), seed=seed, allow_failures=True, n_exp=3)
    return list(np.flatnonzero(ma.getmaskarray(perf["loss"]).all(axis=1)))


@pytest.mark.parametrize("group_size", [1, 2])
def test_a_failing_trial_raises_its_own_exception_on_every_rank_and_keeps_the_finished_ones(
        comm, tmp_path, group_size):
    if comm.Get_size() % group_size:
        pytest.skip("the group size does not divide the ranks")
    failing = failing_trials(seed=4, n_trials=8)
    assert 0 < len(failing) < 8
    path = f"{shared_dir(comm, tmp_path)}/trials-{group_size}.npy"
    farm = TrialFarm(comm, group_size=group_size)

    def check():
        with pytest.raises(ArithmeticError, match="no data for omega") as raised:
            farmed(farm, 8, model=FailsAboveHalf(), seed=4, n_exp=3, trial_file=path)
        assert raised.value.__cause__ is not None  # the RemoteError: where it failed, and its traceback

    everywhere(comm, check)

    def check_file():
        trials = load_perf_trials(path)
        want = serial(8, model=FailsAboveHalf(), seed=4, allow_failures=True, n_exp=3)
        assert set(np.flatnonzero(trials.failed)) <= set(failing) and trials.failed.any()
        assert not (trials.finished & trials.failed).any()
        for i in np.flatnonzero(trials.finished):  # every finished trial is kept, and is the serial one
            assert i not in failing
            got = trials.performance[i].data
            assert all(np.array_equal(got[name], want[i].data[name]) for name in ("loss", "est", "outcome"))

    assert_collectively(comm, verdict_of(check_file) if comm.Get_rank() == 0 else None)


def test_allow_failures_masks_the_serial_runs_failed_trials(comm):
    got = farmed(TrialFarm(comm), 8, model=FailsAboveHalf(), seed=4, n_exp=3, allow_failures=True)
    check_on_root(comm, got, lambda: serial(8, model=FailsAboveHalf(), seed=4, n_exp=3, allow_failures=True))


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("n_trials", [0, -2])
def test_n_trials_of_zero_or_less_is_refused_on_every_rank_and_the_ranks_stay_in_step(comm, n_trials):
    farm = TrialFarm(comm)

    def check():
        with pytest.raises(ValueError, match="n_trials must be a positive integer"):
            farmed(farm, n_trials)

    everywhere(comm, check)
    got = farmed(farm, 2)
    check_on_root(comm, got, lambda: serial(2))


def test_a_proxy_given_as_the_model_is_refused_on_every_rank(comm):
    verdict = None
    with MPIParallelizedModel(SimplePrecessionModel(), comm=comm) as proxy:
        if proxy.is_root:
            def check():
                with pytest.raises(TypeError, match="serial model"):
                    farmed(TrialFarm(MPI.COMM_SELF), 2, model=proxy)
            verdict = verdict_of(check)
    assert_collectively(comm, verdict)


def test_ranks_given_different_arguments_all_raise(comm):
    n_exp = 5 if comm.Get_rank() == comm.Get_size() - 1 else 4

    def check():
        with pytest.raises(ValueError, match="other arguments than rank 0"):
            farmed(TrialFarm(comm), 3, n_exp=n_exp)

    everywhere(comm, check)


def test_proxy_options_the_farm_sets_are_refused():
    with pytest.raises(ValueError, match="comm"):
        TrialFarm(MPI.COMM_WORLD, proxy_options={"comm": MPI.COMM_SELF})


# ------------------------------------------------------------ the file
def test_the_farm_writes_every_trial_and_refuses_an_existing_file_on_every_rank(comm, tmp_path):
    path = f"{shared_dir(comm, tmp_path)}/trials.npy"
    farm = TrialFarm(comm)
    got = farmed(farm, 6, seed=12, trial_file=path)
    check_on_root(comm, got, lambda: serial(6, seed=12))
    if comm.Get_rank() == 0:
        trials = load_perf_trials(path)
        assert trials.finished.all()
        assert_same_trials(trials.performance.data, got)

    def check():
        with pytest.raises(FileExistsError, match="resume=True"):
            farmed(farm, 6, seed=12, trial_file=path)

    everywhere(comm, check)


def test_resume_runs_the_unfinished_trials_only(comm, tmp_path):
    path = f"{shared_dir(comm, tmp_path)}/trials.npy"
    farm = TrialFarm(comm)
    farmed(farm, 6, seed=13, trial_file=path)
    if comm.Get_rank() == 0:
        table = np.lib.format.open_memmap(path, mode="r+")
        table["status"][[0, 4, 5]] = [TRIAL_PENDING, TRIAL_FAILED, TRIAL_PENDING]
        table.flush()
        del table
    comm.Barrier()
    ran_here = []

    def heuristic(updater):
        ran_here.append(1)
        return ExpSparseHeuristic(updater)

    got = farmed(farm, 6, seed=13, trial_file=path, resume=True, heuristic_class=heuristic)
    assert comm.allreduce(len(ran_here)) == 3
    check_on_root(comm, got, lambda: serial(6, seed=13))
    again = farmed(farm, 6, seed=13, trial_file=path, resume=True, heuristic_class=heuristic)  # nothing left to do
    assert comm.allreduce(len(ran_here)) == 3  # no trial ran again
    check_on_root(comm, again, lambda: serial(6, seed=13))


def test_a_leader_that_cannot_open_the_file_stops_the_run_before_any_trial(comm, tmp_path, monkeypatch):
    import mpi_qinfer.parallel.trials as trials

    class Unreachable(trials.TrialStore):
        def __init__(self, path, *args):
            raise FileNotFoundError(f"{path}: not on this node's file system")

    if comm.Get_rank() == comm.Get_size() - 1:
        monkeypatch.setattr(trials, "TrialStore", Unreachable)
    path = f"{shared_dir(comm, tmp_path)}/trials.npy"
    ran_here = []

    def heuristic(updater):
        ran_here.append(1)
        return ExpSparseHeuristic(updater)

    def check():
        with pytest.raises(FileNotFoundError, match="not on this node"):
            farmed(TrialFarm(comm), 4, trial_file=path, heuristic_class=heuristic)

    everywhere(comm, check)
    assert comm.allreduce(len(ran_here)) == 0


def test_a_trial_that_cannot_be_written_stops_the_run_on_every_rank(comm, tmp_path, monkeypatch):
    import mpi_qinfer.parallel.trials as trials

    def full_disk(self, index, performance):
        raise OSError(28, "No space left on device")

    if comm.Get_rank() == comm.Get_size() - 1:
        monkeypatch.setattr(trials.TrialStore, "write", full_disk)
    path = f"{shared_dir(comm, tmp_path)}/trials.npy"

    def check():  # allow_failures does not cover it: the farm could not keep the trial
        with pytest.raises(OSError, match="No space left"):
            farmed(TrialFarm(comm), 6, trial_file=path, allow_failures=True)

    everywhere(comm, check)


def test_a_progress_bar_is_drawn_on_rank_0_only(comm):
    made = []

    class Bar:
        def __init__(self):
            made.append(self)
            self.updates = []

        def start(self, n):
            self.n = n

        def update(self, k):
            self.updates.append(k)

        def finished(self):
            self.done = True

    farmed(TrialFarm(comm), 4, progressbar=Bar)

    def check():
        if comm.Get_rank() == 0:
            (bar,) = made
            assert bar.n == 4 and bar.updates == [1, 2, 3, 4] and bar.done
        else:
            assert made == []

    everywhere(comm, check)
