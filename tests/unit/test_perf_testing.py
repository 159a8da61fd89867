"""perf_test and perf_test_multiple (qinfer's performance testing), serially: the records, the seeds,
apply=, failures, progress bars and the trial file."""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import time

import numpy as np
import numpy.ma as ma
import pytest

from mpi_qinfer import ExpSparseHeuristic, UniformDistribution, load_perf_trials, perf_test, perf_test_multiple
from mpi_qinfer.models.base import FiniteOutcomeModel
from mpi_qinfer.models.builtin import BinomialModel, SimplePrecessionModel
from mpi_qinfer.smc.heuristics import PGH
from mpi_qinfer.smc.perf_testing import (
    TRIAL_FAILED,
    TRIAL_FINISHED,
    TRIAL_PENDING,
    apply_serial,
    performance_dtype,
    timing,
    trial_seed,
)
from mpi_qinfer.smc.updater import SMCUpdater

PRIOR = UniformDistribution([0, 1])


def measured_fields(perf):
    """Every field but elapsed_time (a measurement, never the same twice)."""
    return [name for name in perf.dtype.names if name != "elapsed_time"]


def assert_same_trials(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    for name in measured_fields(want):
        assert np.array_equal(np.asarray(got[name]), np.asarray(want[name])), name


class Drifting(SimplePrecessionModel):
    """Precession whose frequency grows by STEP after every experiment (a time-dependent true model)."""

    STEP = 0.01

    def update_timestep(self, modelparams, expparams):
        moved = modelparams[:, :, np.newaxis] + self.STEP
        return np.repeat(moved, expparams.shape[0], axis=2)


class PrecessionWithNuisance(FiniteOutcomeModel):
    """Two parameters, (nuisance, omega): the data depend on omega, the last one, alone."""

    def __init__(self):
        super().__init__()
        self._under = SimplePrecessionModel()

    @property
    def n_modelparams(self):
        return 2

    @property
    def expparams_dtype(self):
        return "float"

    @property
    def is_n_outcomes_constant(self):
        return True

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.ones(len(modelparams), dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        return self._under.likelihood(outcomes, modelparams[:, 1:], expparams)


class FailsAboveHalf(SimplePrecessionModel):
    """Simulating data for a true omega above 0.5 fails: some trials of a run fail, others do not."""

    def simulate_experiment(self, modelparams, expparams, repeat=1):
        if np.max(modelparams) > 0.5:
            raise ArithmeticError(f"no data for omega = {np.max(modelparams):.3f}")
        return super().simulate_experiment(modelparams, expparams, repeat)


class DividesByZero(SimplePrecessionModel):
    def likelihood(self, outcomes, modelparams, expparams):
        np.float64(1.0) / np.zeros(1)  # a warning normally; an error in a performance test, as in qinfer
        return super().likelihood(outcomes, modelparams, expparams)


class GlobalStreamPrior:
    """A prior in qinfer's style: no rng argument, draws from NumPy's global generator."""

    n_rvs = 1

    def sample(self, n=1):
        return np.random.uniform(0, 1, size=(n, 1))


def run_one(seed=1, **kwargs):
    args = dict(n_particles=300, prior=PRIOR, n_exp=12, heuristic_class=ExpSparseHeuristic)
    args.update(kwargs)
    model = args.pop("model", SimplePrecessionModel())
    return perf_test(model, args.pop("n_particles"), args.pop("prior"), args.pop("n_exp"),
                     args.pop("heuristic_class"), seed=seed, **args)


def run_many(n_trials=4, seed=1, **kwargs):
    args = dict(n_particles=300, prior=PRIOR, n_exp=12, heuristic_class=ExpSparseHeuristic)
    args.update(kwargs)
    model = args.pop("model", SimplePrecessionModel())
    return perf_test_multiple(n_trials, model, args.pop("n_particles"), args.pop("prior"), args.pop("n_exp"),
                              args.pop("heuristic_class"), seed=seed, **args)


# ------------------------------------------------------------------ the dtype
def test_the_record_has_qinfers_fields_in_qinfers_order():
    dtype = performance_dtype(SimplePrecessionModel())
    assert dtype.names == ("loss", "resample_count", "elapsed_time", "outcome", "true", "est", "experiment")
    assert dtype["loss"] == np.float64 and dtype["resample_count"] == np.int64 and dtype["outcome"] == np.int64
    assert dtype["true"].shape == (1,) and dtype["est"].shape == (1,)
    assert dtype["experiment"] == np.dtype(float)


def test_record_experiments_bring_their_fields_and_models_of_other_sizes_their_own_vectors():
    binomial = BinomialModel(SimplePrecessionModel())
    dtype = performance_dtype(binomial, true_model=PrecessionWithNuisance())
    assert dtype.names[-2:] == ("x", "n_meas") and dtype["n_meas"] == np.dtype("uint")
    assert dtype["true"].shape == (2,) and dtype["est"].shape == (1,)


def test_an_experiment_field_named_like_a_result_field_is_refused():
    class Clashing(SimplePrecessionModel):
        @property
        def expparams_dtype(self):
            return [("t", "f8"), ("loss", "f8")]

    with pytest.raises(ValueError, match="loss"):
        performance_dtype(Clashing())


# ------------------------------------------------------- what a trial records
def test_a_trial_is_the_documented_loop_with_the_documented_streams():
    """Rebuild one trial by hand from the module's description, and compare bitwise."""
    seed = np.random.SeedSequence(77)
    got = run_one(seed=seed, n_exp=15)

    def stream(j):
        return np.random.SeedSequence(77, spawn_key=(j,))

    model = SimplePrecessionModel()
    model.rng = np.random.Generator(np.random.PCG64(stream(2)))
    true = PRIOR.sample(1, rng=np.random.default_rng(stream(0)))
    updater = SMCUpdater(model, 300, PRIOR, rng=np.random.default_rng(stream(1)))
    heuristic = ExpSparseHeuristic(updater)
    for k in range(15):
        expparams = heuristic()
        assert got["experiment"][k] == (9 / 8) ** k  # exponentially sparse times
        datum = model.simulate_experiment(true, expparams)
        updater.update(datum, expparams)
        est = updater.est_mean()
        assert got["outcome"][k] == datum
        assert np.array_equal(got["true"][k], true[0])
        assert np.array_equal(got["est"][k], est)
        assert got["loss"][k] == (est[0] - true[0, 0]) ** 2  # Q = [1]
        assert got["resample_count"][k] == updater.resample_count
    assert np.all(got["elapsed_time"] > 0)


def test_true_mps_fixes_the_true_parameters():
    perf = run_one(true_mps=[0.25])
    assert np.all(perf["true"] == 0.25)
    assert np.all(perf["loss"] == (perf["est"][:, 0] - 0.25) ** 2)


def test_a_time_dependent_true_model_records_the_parameters_it_simulated_with_and_scores_the_moved_ones():
    perf = run_one(true_model=Drifting(), true_mps=np.array([0.3]), n_exp=8)
    true = perf["true"][:, 0]
    assert np.allclose(true, 0.3 + Drifting.STEP * np.arange(8), rtol=0, atol=1e-15)
    after = true + Drifting.STEP  # the loss compares with the parameters after the time step
    assert np.allclose(perf["loss"], (perf["est"][:, 0] - after) ** 2, rtol=1e-12, atol=0)


def test_parameter_vectors_of_different_lengths_are_aligned_at_the_right():
    perf = run_one(true_model=PrecessionWithNuisance(), true_prior=UniformDistribution([[5, 6], [0, 1]]))
    assert perf["true"].shape == (12, 2) and perf["est"].shape == (12, 1)
    assert np.all((perf["true"][:, 0] >= 5) & (perf["true"][:, 0] < 6))
    assert np.array_equal(perf["loss"], (perf["est"][:, 0] - perf["true"][:, 1]) ** 2)


def test_record_experiments_are_stored_field_by_field():
    model = BinomialModel(SimplePrecessionModel())
    heuristic = functools.partial(PGH, inv_field="x", t_field="x", other_fields={"n_meas": 25})
    perf = run_one(model=model, heuristic_class=heuristic, n_exp=10)
    assert np.all(perf["n_meas"] == 25) and np.all(perf["x"] > 0)
    assert np.all((perf["outcome"] >= 0) & (perf["outcome"] <= 25))


def test_extra_updater_args_reach_the_updater():
    never = run_one(extra_updater_args={"resample_thresh": 0.0}, n_exp=30)
    assert np.all(never["resample_count"] == 0)
    assert run_one(n_exp=30)["resample_count"][-1] > 0


def test_the_estimate_converges_on_the_true_frequency():
    """Statistics, not one run's numbers: after 60 exponentially sparse experiments the loss is small."""
    perf = run_many(n_trials=6, n_exp=60, n_particles=1000)
    final = perf["loss"][:, -1]
    assert np.median(final) < 1e-4, final


# ------------------------------------------------------------------- seeds
def test_the_same_seed_gives_the_same_trials_and_another_seed_others():
    assert_same_trials(run_many(seed=3), run_many(seed=3))
    assert not np.array_equal(run_many(seed=3)["est"], run_many(seed=4)["est"])


def test_trial_i_of_a_run_is_perf_test_with_the_ith_child_seed():
    many = run_many(n_trials=3, seed=11)
    for i in range(3):
        assert_same_trials(many[i], run_one(seed=trial_seed(11, i)))
    children = np.random.SeedSequence(11).spawn(3)
    assert_same_trials(many[2], run_one(seed=children[2]))


def test_the_callers_streams_are_left_where_they_were():
    model = SimplePrecessionModel()
    model.rng = np.random.default_rng(5)
    expected_model_draw = np.random.default_rng(5).random()
    np.random.seed(123)
    expected_global_draw = np.random.RandomState(123).random_sample()
    run_many(model=model, n_trials=2)
    assert model.rng.random() == expected_model_draw
    assert np.random.random_sample() == expected_global_draw


def test_a_prior_drawing_from_the_global_generator_is_seeded_by_the_trial():
    np.random.seed(1)
    first = run_many(prior=GlobalStreamPrior(), n_trials=2, seed=8)
    np.random.seed(2)  # the caller's global state does not matter
    second = run_many(prior=GlobalStreamPrior(), n_trials=2, seed=8)
    assert_same_trials(first, second)
    assert first["true"][0, 0, 0] != first["true"][1, 0, 0]


def test_a_seed_must_not_be_a_generator():
    with pytest.raises(TypeError, match="seed"):
        run_one(seed=np.random.default_rng(1))


# ------------------------------------------------------------------- apply=
class Deferred:
    """An apply whose handles run every trial handed over, the last first, when a first result is asked for."""

    def __init__(self):
        self.calls = []

    def __call__(self, call):
        future = concurrent.futures.Future()
        self.calls.append((call, future))
        return Handle(self, future)

    def run_all(self):
        for call, future in reversed(self.calls):
            future.set_result(call())
        self.calls = []


class Handle:
    def __init__(self, pool, future):
        self.pool, self.future = pool, future

    def result(self):
        if not self.future.done():
            self.pool.run_all()
        return self.future.result()


def test_trials_run_in_another_order_through_apply_are_the_same_trials():
    assert_same_trials(run_many(apply=Deferred(), seed=21), run_many(seed=21))


def test_apply_serial_runs_a_call_once_when_asked():
    calls = []
    handle = apply_serial(lambda x: calls.append(x) or len(calls), 7)
    assert not handle.ready() and calls == []
    assert handle.get() == 1 and handle.get() == 1 and calls == [7]


def test_trials_in_worker_processes_are_the_serial_trials():
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold MPI
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        farmed = run_many(n_trials=3, seed=31, apply=pool.submit)
    assert_same_trials(farmed, run_many(n_trials=3, seed=31))


def test_apply_must_return_a_result_handle():
    with pytest.raises(TypeError, match="get\\(\\) or result\\(\\)"):
        run_many(apply=lambda call: call())


# ---------------------------------------------------------------- failures
def failing_trials(seed, n_trials):
    """Which trials of a run fail, found one trial at a time with perf_test."""
    failing = []
    for i in range(n_trials):
        try:
            run_one(model=FailsAboveHalf(), seed=trial_seed(seed, i), n_exp=4)
        except ArithmeticError:
            failing.append(i)
    return failing


def test_allow_failures_masks_the_failed_trials_and_keeps_the_others():
    failing = failing_trials(seed=4, n_trials=8)
    assert 0 < len(failing) < 8  # the seed was chosen for a mixed run
    perf = run_many(model=FailsAboveHalf(), n_trials=8, seed=4, n_exp=4, allow_failures=True)
    assert isinstance(perf, ma.MaskedArray)
    masked_rows = np.flatnonzero(np.asarray(perf.mask["loss"]).all(axis=1))
    assert list(masked_rows) == failing
    for i in set(range(8)) - set(failing):
        assert_same_trials(perf[i].data, run_one(model=FailsAboveHalf(), seed=trial_seed(4, i), n_exp=4))


def test_without_allow_failures_the_trials_exception_propagates_and_the_finished_trials_stay_in_the_file(tmp_path):
    failing = failing_trials(seed=4, n_trials=8)
    path = tmp_path / "trials.npy"
    with pytest.raises(ArithmeticError, match="no data for omega") as raised:
        run_many(model=FailsAboveHalf(), n_trials=8, seed=4, n_exp=4, trial_file=path)
    if hasattr(raised.value, "__notes__"):
        assert f"trial {failing[0]}" in raised.value.__notes__[0]
    trials = load_perf_trials(path)
    assert list(np.flatnonzero(trials.finished)) == list(range(failing[0]))
    assert list(np.flatnonzero(trials.failed)) == [failing[0]]


def test_a_division_by_zero_fails_the_trial_as_in_qinfer():
    with pytest.raises(FloatingPointError):
        run_many(model=DividesByZero(), n_trials=2, n_exp=2)
    perf = run_many(model=DividesByZero(), n_trials=2, n_exp=2, allow_failures=True)
    assert np.asarray(perf.mask["loss"]).all()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("n_trials", [0, -3, 2.5, True, "4"])
def test_n_trials_must_be_a_positive_integer(n_trials):
    with pytest.raises(ValueError, match="n_trials must be a positive integer"):
        run_many(n_trials=n_trials)


@pytest.mark.parametrize("argument, value, error, match", [
    ("n_particles", 0, ValueError, "n_particles"),
    ("n_exp", -1, ValueError, "n_exp"),
    ("heuristic_class", 3, TypeError, "heuristic_class"),
    ("extra_updater_args", {"rng": 1}, ValueError, "rng"),
    ("extra_updater_args", [("resample_thresh", 1)], TypeError, "extra_updater_args"),
    ("true_mps", [0.1, 0.2], ValueError, "true_mps"),
    ("apply", 5, TypeError, "apply"),
    ("progressbar", "yes", TypeError, "progressbar"),
])
def test_bad_arguments_are_refused_before_any_trial_runs(argument, value, error, match):
    model = SimplePrecessionModel()
    with pytest.raises(error, match=match):
        run_many(model=model, **{argument: value})
    assert model.call_count == 0


# ---------------------------------------------------------- progress bars
class QutipStyleBar:
    """What qinfer's perf_test_multiple expects of progressbar: a class with start, update, finished."""

    made = []

    def __init__(self):
        self.events = []
        self.description = ""
        QutipStyleBar.made.append(self)

    def start(self, n):
        self.events.append(("start", n))

    def update(self, n):
        self.events.append(("update", n, self.description))

    def finished(self):
        self.events.append(("finished",))


def test_a_qutip_style_progress_bar_counts_the_finished_trials():
    QutipStyleBar.made.clear()
    run_many(n_trials=3, progressbar=QutipStyleBar)
    (bar,) = QutipStyleBar.made
    assert bar.events[0] == ("start", 3) and bar.events[-1] == ("finished",)
    assert [event[1] for event in bar.events[1:-1]] == [1, 2, 3]
    assert bar.description == "Performance testing SimplePrecessionModel (3 / 3)..."


def test_progressbar_true_reports_in_lines_in_a_batch_log(capsys):
    run_many(n_trials=2, progressbar=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines and "2/2 trial" in lines[-1] and "done" in lines[-1]


def test_timing_measures_a_block():
    with timing() as timer:
        time.sleep(0.01)
    assert timer.delta_t >= 0.009
    assert timer.delta_t == timer.delta_t  # stopped: fixed


# ---------------------------------------------------------------- trial file
def test_the_trial_file_holds_every_trial_and_numpy_reads_it(tmp_path):
    path = tmp_path / "trials.npy"
    perf = run_many(n_trials=3, trial_file=path)
    raw = np.load(path)
    assert raw.shape == (3,) and list(raw["status"]) == [TRIAL_FINISHED] * 3
    trials = load_perf_trials(path)
    assert trials.finished.all() and not trials.failed.any()
    assert_same_trials(trials.performance.data, perf)
    for i in range(3):
        assert np.array_equal(raw["seed"][i], trial_seed(1, i).generate_state(4, np.uint32))


def test_an_existing_trial_file_is_refused_unless_resuming(tmp_path):
    path = tmp_path / "trials.npy"
    run_many(n_trials=2, trial_file=path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        run_many(n_trials=2, trial_file=path)
    assert path.read_bytes() == before


def test_resume_runs_only_the_unfinished_trials_and_gives_the_whole_run(tmp_path):
    path = tmp_path / "trials.npy"
    whole = run_many(n_trials=4, seed=9, trial_file=path)
    table = np.lib.format.open_memmap(path, mode="r+")
    table["status"][[1, 3]] = TRIAL_PENDING  # as if the run had been stopped before these finished
    table["performance"][[1, 3]] = np.zeros(1, dtype=table.dtype["performance"].base)
    table.flush()
    del table

    model = SimplePrecessionModel()
    resumed = run_many(model=model, n_trials=4, seed=9, trial_file=path, resume=True)
    assert_same_trials(resumed, whole)
    per_trial = model.call_count
    assert per_trial > 0
    one = SimplePrecessionModel()
    run_many(model=one, n_trials=1, seed=9)
    assert model.call_count == 2 * one.call_count  # two trials ran, not four
    assert load_perf_trials(path).finished.all()


@pytest.mark.parametrize("change, match", [({"seed": 10}, "another seed"), ({"n_exp": 5}, "another run")])
def test_resume_refuses_another_runs_file(tmp_path, change, match):
    path = tmp_path / "trials.npy"
    run_many(n_trials=2, seed=9, trial_file=path)
    args = dict(n_trials=2, seed=9, trial_file=path, resume=True)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        run_many(**args)


def test_resume_without_a_file_starts_one(tmp_path):
    path = tmp_path / "fresh.npy"
    perf = run_many(n_trials=2, trial_file=path, resume=True)
    assert_same_trials(load_perf_trials(path).performance.data, perf)


def test_a_failed_trial_is_marked_in_the_file_and_rerun_on_resume(tmp_path):
    path = tmp_path / "trials.npy"
    failing = failing_trials(seed=4, n_trials=8)
    run_many(model=FailsAboveHalf(), n_trials=8, seed=4, n_exp=4, trial_file=path, allow_failures=True)
    raw = np.load(path)
    assert list(np.flatnonzero(raw["status"] == TRIAL_FAILED)) == failing
    assert np.all(raw["performance"][failing]["loss"] == 0)


def test_resuming_a_finished_file_runs_nothing(tmp_path):
    path = tmp_path / "trials.npy"
    whole = run_many(n_trials=3, seed=2, trial_file=path)
    model = SimplePrecessionModel()
    again = run_many(model=model, n_trials=3, seed=2, trial_file=path, resume=True)
    assert model.call_count == 0
    assert_same_trials(again, whole)
