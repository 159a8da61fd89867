"""Performance testing of an estimation: qinfer's ``perf_test`` and ``perf_test_multiple``.

A *trial* draws true model parameters, runs an SMC estimation of ``n_exp``
experiments against data simulated from them, and records after every
experiment the loss of the estimate, the time the update took, the resampling
count, the datum, the experiment and both parameter vectors (see
:func:`performance_dtype`). :func:`perf_test` runs one trial,
:func:`perf_test_multiple` many, serially or through an ``apply`` callable
(qinfer's way of handing trials to ipyparallel); the MPI trial farm,
:class:`~mpi_qinfer.parallel.trials.TrialFarm`, runs the same trials over the
ranks of a communicator.

.. rubric:: Randomness

Every random draw of a trial comes from streams derived from the trial's
:class:`numpy.random.SeedSequence`: the true parameters' draw, the updater
(prior sample, resampling, and heuristics that use the updater's generator),
the ``rng`` of the true model and of the estimation model (where they have one), and NumPy's global
generator (which qinfer's models, priors and heuristics draw from), seeded for
the duration of the trial and restored afterwards. They are the children
``0, 1, ...`` of the trial's sequence, in this order: true parameters,
updater, true model, estimation model (when it is another object), global
generator (``PCG64`` generators, and ``MT19937`` for the global one). Trial ``i`` of
``perf_test_multiple(..., seed=s)`` uses
``SeedSequence(s).spawn(n_trials)[i]``, so its result depends on ``s`` and
``i`` only: not on the order the trials run in, nor on which process runs
them. ``perf_test(..., seed=ss)`` with that same sequence gives the same
trial (up to the ``elapsed_time`` field, a measurement).

.. rubric:: The trial file

``perf_test_multiple(..., trial_file=path)`` writes every trial as it
finishes, so a run stopped at its wall time keeps what it finished. The file
is a ``.npy`` array of ``n_trials`` records (``numpy.load`` reads it, as does
:func:`load_perf_trials`) with the fields

``status`` (int8)
    0 not finished (or never started), 1 finished, 2 failed;
``seed`` (uint32, 4)
    a fingerprint of the trial's seed sequence (``generate_state(4)``), which
    lets ``resume=True`` refuse a file made with another seed;
``performance`` (:func:`performance_dtype`, ``n_exp``)
    the trial's results (zeros until it has finished).

A trial's results are written before its status, so a record whose status
says finished is complete.
"""

from __future__ import annotations

import inspect
import os
import time
from collections import namedtuple
from contextlib import contextmanager

import numpy as np
import numpy.ma as ma

from .updater import SMCUpdater

__all__ = [
    "Timer", "timing", "performance_dtype", "trial_seed", "perf_test", "perf_test_multiple", "apply_serial",
    "PerfTrials", "load_perf_trials", "trial_record_dtype", "TrialStore", "TRIAL_PENDING", "TRIAL_FINISHED",
    "TRIAL_FAILED",
]

#: ``status`` of a trial in a trial file: not finished, finished, failed.
TRIAL_PENDING, TRIAL_FINISHED, TRIAL_FAILED = 0, 1, 2

#: The fields of every result record before the parameters and the experiment (qinfer's order and types).
_SCALAR_FIELDS = [("loss", np.float64), ("resample_count", np.int64), ("elapsed_time", np.float64),
                  ("outcome", np.int64)]

#: Words of a trial seed's fingerprint in a trial file.
_SEED_WORDS = 4


# ---------------------------------------------------------------------- timing
class Timer:
    """The duration of a block, as :func:`timing` measures it (qinfer's ``Timer``).

    Attributes
    ----------
    delta_t : float
        Seconds from the start to :meth:`stop`, or to now while running.
    """

    def __init__(self):
        self._tic = time.perf_counter()
        self._toc = None

    def stop(self) -> None:
        """Stop the clock; :attr:`delta_t` stays fixed from now on."""
        self._toc = time.perf_counter()

    @property
    def delta_t(self) -> float:
        """float : Seconds elapsed (until :meth:`stop`, if it was called)."""
        return (self._toc if self._toc is not None else time.perf_counter()) - self._tic

    def __repr__(self) -> str:
        return f"<Timer: {self.delta_t:.6g} s elapsed>"


@contextmanager
def timing():
    """Time a block (qinfer's ``timing``).

    Yields
    ------
    Timer
        Stopped when the block ends; read its ``delta_t``.

    Examples
    --------
    >>> with timing() as t:
    ...     _ = sum(range(1000))
    >>> t.delta_t >= 0
    True
    """
    timer = Timer()
    try:
        yield timer
    finally:
        timer.stop()


# ------------------------------------------------------------------ the dtype
def _experiment_fields(model) -> tuple[list, bool]:
    """The experiment's fields of a result record, and whether the experiment is a scalar."""
    dtype = np.dtype(model.expparams_dtype)
    if dtype.names is None:
        return [("experiment", dtype)], True
    return [(name, dtype.fields[name][0]) for name in dtype.names], False


def performance_dtype(model, true_model=None) -> np.dtype:
    """The record dtype of :func:`perf_test`'s results (qinfer's ``actual_dtype``).

    Parameters
    ----------
    model : Model
        The estimation model.
    true_model : Model, optional
        The model that simulates the data; default ``model``.

    Returns
    -------
    numpy.dtype
        Fields ``loss`` (float), ``resample_count`` (int), ``elapsed_time``
        (float, seconds of the update), ``outcome`` (int), ``true`` (float,
        ``(true_model.n_modelparams,)``), ``est`` (float,
        ``(model.n_modelparams,)``), then the experiment: one field
        ``experiment`` when ``model.expparams_dtype`` is a scalar type, else
        the fields of ``expparams_dtype``. ``true`` and ``est`` keep their
        parameter axis even for a one-parameter model.

    Raises
    ------
    ValueError
        When a field of the experiment has the name of a result field.
    """
    true_model = model if true_model is None else true_model
    fields = list(_SCALAR_FIELDS) + [
        ("true", np.float64, (int(true_model.n_modelparams),)),
        ("est", np.float64, (int(model.n_modelparams),)),
    ]
    taken = {name for name, *_ in fields}
    experiment, _ = _experiment_fields(model)
    clash = sorted(taken.intersection(name for name, _ in experiment))
    if clash:
        raise ValueError(f"the model's expparams_dtype has fields {clash} with the names of result fields "
                         f"({sorted(taken)}); rename them to run a performance test")
    return np.dtype(fields + experiment)


# --------------------------------------------------------------------- seeds
def _seed_sequence(seed) -> np.random.SeedSequence:
    """``seed`` as a SeedSequence (None: fresh entropy from the operating system)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator, np.random.RandomState)):
        raise TypeError("seed must be an int, a sequence of ints, a numpy.random.SeedSequence or None, not a "
                        f"generator ({type(seed).__name__}): each trial derives its own streams from the seed")
    return np.random.SeedSequence(seed)


def _child(sequence: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """The ``index``-th child of ``sequence``, as ``sequence.spawn`` gives it, without changing ``sequence``."""
    return np.random.SeedSequence(sequence.entropy, spawn_key=tuple(sequence.spawn_key) + (int(index),),
                                  pool_size=sequence.pool_size)


def trial_seed(seed, index: int) -> np.random.SeedSequence:
    """The seed sequence of trial ``index`` of ``perf_test_multiple(..., seed=seed)``.

    Parameters
    ----------
    seed : int, sequence of int or numpy.random.SeedSequence
    index : int

    Returns
    -------
    numpy.random.SeedSequence
        ``SeedSequence(seed).spawn(index + 1)[index]``; ``perf_test(...,
        seed=trial_seed(seed, index))`` repeats that trial.
    """
    return _child(_seed_sequence(seed), index)


def _seed_fingerprint(sequence: np.random.SeedSequence) -> np.ndarray:
    return sequence.generate_state(_SEED_WORDS, np.uint32)


@contextmanager
def _seeded_streams(models: list, sequences: list, legacy: np.random.SeedSequence):
    """Give each model in ``models`` (those with an ``rng``) a generator, and seed NumPy's global state.

    Everything is put back afterwards: the models' own generators and the
    global state, so that the caller's streams continue where they were.
    """
    pairs = [(model, sequence) for model, sequence in zip(models, sequences)
             if model is not None and hasattr(model, "rng")]
    # Read every old generator before setting any: a derived model sets its underlying model's too.
    saved = [(model, model.rng) for model, _ in pairs]
    for model, sequence in pairs:
        model.rng = np.random.Generator(np.random.PCG64(sequence))
    global_state = np.random.get_state()
    np.random.set_state(np.random.RandomState(np.random.MT19937(legacy)).get_state())
    try:
        yield
    finally:
        np.random.set_state(global_state)
        for model, rng in reversed(saved):
            model.rng = rng


# ----------------------------------------------------------------- validation
def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return int(value)


def _check_updater_args(extra_updater_args) -> dict:
    if extra_updater_args is None:
        return {}
    if not isinstance(extra_updater_args, dict):
        raise TypeError(f"extra_updater_args must be a dict of SMCUpdater keyword arguments, got "
                        f"{type(extra_updater_args).__name__}")
    if "rng" in extra_updater_args:
        raise ValueError("extra_updater_args must not hold 'rng': each trial's updater draws from a stream "
                         "derived from seed= (pass seed= to make the trials reproducible)")
    return dict(extra_updater_args)


def _sample_true(prior, rng) -> np.ndarray:
    """One draw of the true parameters, with ``rng`` if the prior takes one (qinfer's priors do not)."""
    sample = prior.sample
    try:
        takes_rng = "rng" in inspect.signature(sample).parameters
    except (TypeError, ValueError):  # a builtin or C callable
        takes_rng = False
    return sample(n=1, rng=rng) if takes_rng else sample(n=1)


def _loss(est: np.ndarray, true: np.ndarray, weights: np.ndarray, n_common: int) -> float:
    """Quadratic loss of the estimate, the two vectors aligned at the right (qinfer's convention)."""
    delta = est[-n_common:] - true[-n_common:]
    return float(np.dot(delta**2, weights[-n_common:]))


# -------------------------------------------------------------------- a trial
class _Trial:
    """Everything one trial needs but its seed; picklable (for ``apply=``) when its parts are.

    Built once per run, with the arguments checked; :meth:`run` runs the
    trial of one seed sequence.
    """

    def __init__(self, model, n_particles, prior, n_exp, heuristic_class, true_model=None, true_prior=None,
                 true_mps=None, extra_updater_args=None):
        self.model = model
        self.n_particles = _count("n_particles", n_particles, 1)
        self.prior = prior
        self.n_exp = _count("n_exp", n_exp, 0)
        if not callable(heuristic_class):
            raise TypeError(f"heuristic_class must be callable (heuristic_class(updater) gives a heuristic), "
                            f"got {heuristic_class!r}")
        self.heuristic_class = heuristic_class
        self.true_model = model if true_model is None else true_model
        self.true_prior = prior if true_prior is None else true_prior
        self.true_mps = None if true_mps is None else self._checked_true_mps(true_mps)
        self.extra_updater_args = _check_updater_args(extra_updater_args)
        self.dtype = performance_dtype(self.model, self.true_model)
        _, self.scalar_experiment = _experiment_fields(self.model)

    def _checked_true_mps(self, true_mps) -> np.ndarray:
        values = np.array(true_mps, dtype=np.float64)
        n = int(self.true_model.n_modelparams)
        if values.ndim > 2 or values.size != n or (values.ndim == 2 and values.shape[0] != 1):
            raise ValueError(f"true_mps must be one parameter vector, shape ({n},), got shape {values.shape}")
        return values.reshape(1, n)

    def run(self, sequence: np.random.SeedSequence, after_experiment=None) -> np.ndarray:
        """The results of the trial seeded by ``sequence``, shape ``(n_exp,)`` of :attr:`dtype`.

        ``after_experiment()``, if given, is called after each experiment's
        record is complete (the trial farm's root serves the other ranks there).
        """
        streams = [_child(sequence, j) for j in range(5)]
        estimation_model = self.model if self.model is not self.true_model else None
        # The true model's generator is set last: where the estimation model derives from it (a proxy of
        # it, say), the data still come from the true model's own stream, as when both are one model.
        with _seeded_streams([estimation_model, self.true_model], [streams[3], streams[2]], streams[4]):
            return self._run(np.random.default_rng(streams[0]), np.random.default_rng(streams[1]),
                             after_experiment)

    def _run(self, true_rng, updater_rng, after_experiment) -> np.ndarray:
        model, true_model = self.model, self.true_model
        if self.true_mps is None:
            true_mps = self._checked_true_mps(_sample_true(self.true_prior, true_rng))
        else:
            true_mps = self.true_mps.copy()
        weights = np.asarray(model.Q, dtype=np.float64)
        n_common = min(int(model.n_modelparams), int(true_model.n_modelparams))
        names = [name for name, _ in _experiment_fields(model)[0]]

        performance = np.zeros(self.n_exp, dtype=self.dtype)
        updater = SMCUpdater(model, self.n_particles, self.prior, rng=updater_rng, **self.extra_updater_args)
        heuristic = self.heuristic_class(updater)
        for idx in range(self.n_exp):
            record = performance[idx : idx + 1]
            # The true parameters of this experiment, before a time-dependent model moves them.
            record["true"] = true_mps[0]
            expparams = heuristic()
            datum = true_model.simulate_experiment(true_mps, expparams)
            with timing() as timer:
                updater.update(datum, expparams)
            true_mps = np.asarray(true_model.update_timestep(true_mps, expparams))[:, :, 0]
            est = np.asarray(updater.est_mean(), dtype=np.float64)
            record["loss"] = _loss(est, true_mps[0], weights, n_common)
            record["elapsed_time"] = timer.delta_t
            record["resample_count"] = updater.resample_count
            record["outcome"] = np.asarray(datum).reshape(-1)[0]
            record["est"] = est
            if self.scalar_experiment:
                record["experiment"] = np.asarray(expparams).reshape(-1)[0]
            else:
                for name in names:
                    record[name] = expparams[name][0]
            if after_experiment is not None:
                after_experiment()
        return performance


class _TrialCall:
    """One trial of a run, as a call without arguments: what ``apply`` is given.

    Trials run under ``numpy.errstate(divide="raise")``, as in qinfer, so that
    a division by zero fails the trial (and ``allow_failures`` masks it).
    """

    def __init__(self, trial: _Trial, sequence: np.random.SeedSequence, after_experiment=None):
        self.trial = trial
        self.sequence = sequence
        self.after_experiment = after_experiment

    def __call__(self) -> np.ndarray:
        with np.errstate(divide="raise"):
            return self.trial.run(self.sequence, self.after_experiment)


def perf_test(model, n_particles, prior, n_exp, heuristic_class, true_model=None, true_prior=None,
              true_mps=None, extra_updater_args=None, *, seed=None):
    """Run one estimation trial and record how well it does (qinfer's ``perf_test``).

    True parameters are drawn from ``true_prior`` (unless ``true_mps`` is
    given); then ``n_exp`` times: the heuristic designs an experiment, the
    true model simulates its outcome, the updater learns from it, and the
    estimate is scored.

    Parameters
    ----------
    model : Model
        The model whose parameters are estimated (this package's, a qinfer
        model, or a parallel proxy).
    n_particles : int
        Particles of the :class:`~mpi_qinfer.smc.updater.SMCUpdater`.
    prior : Distribution
        The updater's prior.
    n_exp : int
        Number of experiments.
    heuristic_class : callable
        ``heuristic_class(updater)`` gives the experiment-design heuristic
        (e.g. :class:`~mpi_qinfer.smc.heuristics.ExpSparseHeuristic`, or a
        ``functools.partial`` of one).
    true_model : Model, optional
        Simulates the data (and moves the true parameters with its
        ``update_timestep``); default ``model``. When it has another number of
        parameters than ``model``, the loss compares the two vectors aligned
        at the right.
    true_prior : Distribution, optional
        Draws the true parameters; default ``prior``.
    true_mps : array_like, shape (n_modelparams,), optional
        The true parameters, instead of a draw from ``true_prior``.
    extra_updater_args : dict, optional
        More keyword arguments of the updater (``resample_thresh``,
        ``resampler``, ``zero_weight_policy``, ...); not ``rng``.
    seed : int, sequence of int or numpy.random.SeedSequence, optional
        Seeds every random draw of the trial (see the module notes); None
        uses fresh entropy.

    Returns
    -------
    numpy.ndarray, shape (n_exp,), dtype :func:`performance_dtype`
        Record ``k`` describes the state after experiment ``k``: its
        ``loss`` is ``sum(Q * (est - true)**2)`` with the true parameters
        after the model's time step, ``true`` the parameters the experiment
        was simulated with.

    Raises
    ------
    ValueError, TypeError
        For bad counts, a ``true_mps`` of the wrong size, a ``seed`` that is
        a generator, or ``extra_updater_args`` holding ``rng``.

    Examples
    --------
    >>> from mpi_qinfer.models import SimplePrecessionModel
    >>> from mpi_qinfer import UniformDistribution, ExpSparseHeuristic
    >>> perf = perf_test(SimplePrecessionModel(), 200, UniformDistribution([0, 1]), 10,
    ...                  ExpSparseHeuristic, seed=1)
    >>> perf.shape, perf["est"].shape
    ((10,), (10, 1))
    """
    trial = _Trial(model, n_particles, prior, n_exp, heuristic_class, true_model, true_prior, true_mps,
                   extra_updater_args)
    return trial.run(_seed_sequence(seed))


# ------------------------------------------------------------- many trials
class apply_serial:
    """Run a call when its result is asked for (qinfer's ``apply_serial``): the default ``apply``.

    Parameters
    ----------
    fn : callable
    *args, **kwargs
        Passed to ``fn``.
    """

    def __init__(self, fn, *args, **kwargs):
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._done = False
        self._value = None

    def get(self):
        """The call's result (the call runs the first time)."""
        if not self._done:
            self._value = self._fn(*self._args, **self._kwargs)
            self._done = True
        return self._value

    def ready(self) -> bool:
        """Whether the call has run."""
        return self._done


def _result_of(handle):
    """The value behind what ``apply`` returned: ``get()`` (qinfer, ipyparallel, multiprocessing) or
    ``result()`` (``concurrent.futures`` and ``mpi4py.futures``)."""
    for name in ("get", "result"):
        method = getattr(handle, name, None)
        if callable(method):
            return method()
    raise TypeError(f"apply must return an object with get() or result() (an AsyncResult or a Future), got "
                    f"{type(handle).__name__}")


def _is_ready(handle) -> bool:
    for name in ("ready", "done"):
        method = getattr(handle, name, None)
        if callable(method):
            try:
                return bool(method())
            except Exception:  # noqa: BLE001 - a handle that cannot tell is not ready
                return False
    return False


def _model_name(model) -> str:
    try:
        return type(model).__name__
    except Exception:  # noqa: BLE001 - only for a progress description
        return "unknown model"


class _ProgressReport:
    """Counts finished trials on a progress bar: qinfer's QuTiP-style classes, or True for ours.

    A QuTiP-style ``progressbar`` is a class whose instance has ``start(n)``,
    ``update(n)`` and ``finished()`` (and optionally ``description``); it is
    told the number of trials finished so far.
    """

    def __init__(self, progressbar, n_trials: int, name: str):
        self.n_trials, self.name = n_trials, name
        self.count = 0
        self.bar = None
        self.ours = None
        if progressbar is None or progressbar is False:
            return
        if progressbar is True:
            from ..runtime.progress import Progress

            self.ours = Progress(n_trials, f"Performance testing {name}", unit="trial")
            return
        if not callable(progressbar):
            raise TypeError(f"progressbar must be None, True or a progress bar class, got {progressbar!r}")
        self.bar = progressbar()
        self.bar.start(n_trials)
        self._describe()

    def _describe(self) -> None:
        if self.bar is not None and hasattr(self.bar, "description"):
            self.bar.description = f"Performance testing {self.name} ({self.count} / {self.n_trials})..."

    def finished_one(self) -> None:
        self.count += 1
        if self.ours is not None:
            self.ours.update()
        elif self.bar is not None:
            self.bar.update(self.count)
            self._describe()

    def close(self) -> None:
        if self.ours is not None:
            self.ours.close()
        elif self.bar is not None:
            self.bar.finished()


def _new_results(n_trials: int, n_exp: int, dtype: np.dtype, allow_failures: bool):
    if allow_failures:
        return ma.zeros((n_trials, n_exp), dtype=dtype)  # a full mask, so rows can be masked one by one
    return np.zeros((n_trials, n_exp), dtype=dtype)


def perf_test_multiple(n_trials, model, n_particles, prior, n_exp, heuristic_class, true_model=None,
                       true_prior=None, true_mps=None, apply=apply_serial, allow_failures=False,
                       extra_updater_args=None, progressbar=None, *, seed=None, trial_file=None,
                       resume=False):
    """Run many independent estimation trials (qinfer's ``perf_test_multiple``).

    Takes :func:`perf_test`'s arguments, and:

    Parameters
    ----------
    n_trials : int
        Number of trials (positive).
    apply : callable, optional
        ``apply(call)`` hands over one trial, a call without arguments, and
        returns an object whose ``get()`` (ipyparallel's
        ``LoadBalancedView.apply``, ``multiprocessing.Pool.apply_async``) or
        ``result()`` (``concurrent.futures.Executor.submit``) gives its
        result. Every trial is handed over first, then the results are
        collected in order. Default: :class:`apply_serial` (each trial runs
        here, as its result is collected). For MPI ranks use
        :class:`~mpi_qinfer.parallel.trials.TrialFarm`.
    allow_failures : bool, optional
        False (default): an exception of a trial propagates (after the
        trials that already finished are collected and written). True: the
        failed trial's row is masked in the result, a
        :class:`numpy.ma.MaskedArray`.
    progressbar : class, True or None, optional
        A QuTiP-style progress bar class (``start(n)``, ``update(k)``,
        ``finished()``, qinfer's convention; told the number of trials
        finished), or True for :class:`~mpi_qinfer.runtime.progress.Progress`
        (a bar on a terminal or in a notebook, lines in a batch log).
    seed : int, sequence of int or numpy.random.SeedSequence, optional
        Trial ``i`` is seeded by ``SeedSequence(seed).spawn(n_trials)[i]``
        (:func:`trial_seed`); None uses fresh entropy.
    trial_file : str or os.PathLike, optional
        A ``.npy`` file that receives each trial as it finishes (see the
        module notes; read it with :func:`load_perf_trials`). An existing
        file is refused unless ``resume`` is True.
    resume : bool, optional
        With ``trial_file``: keep the trials an earlier run of the same
        arguments and seed finished there and run only the others. The
        file's shape, dtype and seeds must match.

    Returns
    -------
    numpy.ndarray or numpy.ma.MaskedArray, shape (n_trials, n_exp)
        Row ``i`` is trial ``i``'s :func:`perf_test` result.

    Raises
    ------
    ValueError, TypeError
        For bad arguments (``n_trials <= 0``, ...), before any trial runs.
    FileExistsError
        When ``trial_file`` exists and ``resume`` is False.
    Exception
        The first failing trial's own exception, when ``allow_failures`` is
        False.

    Notes
    -----
    Each trial runs under ``numpy.errstate(divide="raise")``, as in qinfer:
    a division by zero fails the trial.

    Examples
    --------
    >>> from mpi_qinfer.models import SimplePrecessionModel
    >>> from mpi_qinfer import UniformDistribution, ExpSparseHeuristic
    >>> perf = perf_test_multiple(3, SimplePrecessionModel(), 200, UniformDistribution([0, 1]), 10,
    ...                           ExpSparseHeuristic, seed=1)
    >>> perf.shape
    (3, 10)
    """
    n_trials = _count("n_trials", n_trials, 1)
    trial = _Trial(model, n_particles, prior, n_exp, heuristic_class, true_model, true_prior, true_mps,
                   extra_updater_args)
    if not callable(apply):
        raise TypeError(f"apply must be callable (apply(call) returns an AsyncResult or a Future), got {apply!r}")
    sequence = _seed_sequence(seed)
    seeds = [_child(sequence, i) for i in range(n_trials)]
    performance = _new_results(n_trials, trial.n_exp, trial.dtype, allow_failures)
    todo = list(range(n_trials))
    store = None
    if trial_file is not None:
        store, done = TrialStore.open_for_run(trial_file, trial.dtype, trial.n_exp, seeds, resume)
        for index, row in done.items():
            performance[index] = row
        todo = [i for i in todo if i not in done]

    progress = _ProgressReport(progressbar, n_trials, _model_name(model))
    try:
        for _ in range(n_trials - len(todo)):
            progress.finished_one()
        handles = [(index, apply(_TrialCall(trial, seeds[index]))) for index in todo]
        _collect(handles, performance, store, progress, allow_failures)
    finally:
        progress.close()
        if store is not None:
            store.close()
    return performance


def _collect(handles: list, performance, store, progress, allow_failures: bool) -> None:
    """Collect the trials' results in order, writing each; on a failure, also those already done."""
    for position, (index, handle) in enumerate(handles):
        try:
            row = _result_of(handle)
        except Exception as error:
            if store is not None:
                store.write_failure(index)
            if not allow_failures:
                _collect_ready(handles[position + 1 :], performance, store)
                _add_note(error, f"raised by trial {index} of perf_test_multiple")
                raise
            performance[index] = ma.masked
            continue
        performance[index] = row
        if store is not None:
            store.write(index, row)
        progress.finished_one()


def _collect_ready(handles: list, performance, store) -> None:
    """After a failure: keep the trials that have already finished elsewhere (never wait, never run one)."""
    for index, handle in handles:
        if not _is_ready(handle):
            continue
        try:
            row = _result_of(handle)
        except Exception:  # noqa: BLE001 - another failure; the first one is raised
            if store is not None:
                store.write_failure(index)
            continue
        performance[index] = row
        if store is not None:
            store.write(index, row)


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(note)


# ----------------------------------------------------------- the trial file
def trial_record_dtype(dtype: np.dtype, n_exp: int) -> np.dtype:
    """The record of one trial in a trial file (see the module notes).

    Parameters
    ----------
    dtype : numpy.dtype
        The trial's result dtype (:func:`performance_dtype`).
    n_exp : int

    Returns
    -------
    numpy.dtype
    """
    return np.dtype([("status", np.int8), ("seed", np.uint32, (_SEED_WORDS,)), ("performance", dtype, (n_exp,))])


class TrialStore:
    """Writes finished trials into a trial file, one record each, in place.

    Several processes may hold a store on the same file and write different
    trials (the MPI trial farm does): each writes only its own records, with
    ``os.pwrite``, so no write touches another trial's bytes.

    Parameters
    ----------
    path : str or os.PathLike
        An existing trial file (made by :meth:`create`).
    dtype : numpy.dtype
        The trial's result dtype.
    n_exp : int
    """

    def __init__(self, path, dtype: np.dtype, n_exp: int):
        self.path = os.fspath(path)
        self.record = trial_record_dtype(dtype, n_exp)
        self.offset = _data_offset(self.path)
        self._status_at = self.record.fields["status"][1]
        self._performance_at = self.record.fields["performance"][1]
        self._fd = os.open(self.path, os.O_WRONLY)

    @staticmethod
    def create(path, dtype: np.dtype, n_exp: int, seeds: list) -> None:
        """Make a trial file for ``len(seeds)`` trials, every one not finished.

        Raises
        ------
        FileExistsError
            When ``path`` exists.
        ValueError
            When the result dtype holds Python objects (which cannot be written as bytes).
        """
        path = os.fspath(path)
        record = trial_record_dtype(dtype, n_exp)
        if record.hasobject:
            raise ValueError(f"trial_file: the results' dtype holds Python objects, which a trial file cannot "
                             f"store: {dtype}")
        # Claim the name first, so that two runs never share a file.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        table = np.lib.format.open_memmap(path, mode="w+", dtype=record, shape=(len(seeds),))
        table["seed"] = [_seed_fingerprint(seed) for seed in seeds]
        table.flush()
        del table

    @classmethod
    def open_for_run(cls, path, dtype: np.dtype, n_exp: int, seeds: list, resume: bool):
        """Create the file, or with ``resume`` check it, and open a store on it.

        Returns
        -------
        store : TrialStore
        done : dict of int to numpy.ndarray
            The trials the file already holds as finished (empty unless resuming).
        """
        path = os.fspath(path)
        done = {}
        if resume and os.path.exists(path):
            done = _finished_in(path, dtype, n_exp, seeds)
        elif os.path.exists(path):
            raise FileExistsError(f"trial_file {path!r} exists; pass resume=True to keep its finished trials "
                                  f"and run the others, or remove it")
        else:
            cls.create(path, dtype, n_exp, seeds)
        return cls(path, dtype, n_exp), done

    def _at(self, index: int, field_offset: int) -> int:
        return self.offset + int(index) * self.record.itemsize + field_offset

    def write(self, index: int, performance: np.ndarray) -> None:
        """Write a finished trial: its results, then its status, then make them durable."""
        data = np.ascontiguousarray(performance, dtype=self.record.fields["performance"][0].base)
        _pwrite_all(self._fd, data.tobytes(), self._at(index, self._performance_at))
        self._set_status(index, TRIAL_FINISHED)

    def write_failure(self, index: int) -> None:
        """Mark a trial failed."""
        self._set_status(index, TRIAL_FAILED)

    def _set_status(self, index: int, status: int) -> None:
        _pwrite_all(self._fd, bytes([status]), self._at(index, self._status_at))
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _data_offset(path: str) -> int:
    """Where the records of a ``.npy`` file start."""
    table = np.load(path, mmap_mode="r")
    try:
        return int(table.offset)
    finally:
        del table


def _finished_in(path: str, dtype: np.dtype, n_exp: int, seeds: list) -> dict:
    """The finished trials of an existing trial file, after checking it belongs to this run."""
    record = trial_record_dtype(dtype, n_exp)
    try:
        table = np.load(path, mmap_mode="r")
    except Exception as error:
        raise ValueError(f"trial_file {path!r} is not a trial file ({error})") from error
    if table.dtype != record or table.shape != (len(seeds),):
        raise ValueError(f"trial_file {path!r} holds {table.shape} records of {table.dtype}, but this run writes "
                         f"{(len(seeds),)} records of {record}: another run's file (other n_trials, n_exp or "
                         "model)")
    want = np.array([_seed_fingerprint(seed) for seed in seeds], dtype=np.uint32).reshape(-1, _SEED_WORDS)
    if not np.array_equal(np.asarray(table["seed"]), want):
        raise ValueError(f"trial_file {path!r} was written with another seed; resume needs the seed of the run "
                         "that made it")
    finished = np.flatnonzero(np.asarray(table["status"]) == TRIAL_FINISHED)
    return {int(i): np.array(table["performance"][i]) for i in finished}


#: What :func:`load_perf_trials` returns.
PerfTrials = namedtuple("PerfTrials", ["performance", "finished", "failed"])
PerfTrials.__doc__ = """The trials of a trial file.

Attributes
----------
performance : numpy.ma.MaskedArray, shape (n_trials, n_exp)
    The results; rows of trials not finished are masked.
finished : numpy.ndarray of bool, shape (n_trials,)
failed : numpy.ndarray of bool, shape (n_trials,)
"""


def load_perf_trials(path) -> PerfTrials:
    """Read a trial file written by ``perf_test_multiple`` or a trial farm, finished or not.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    PerfTrials
        ``(performance, finished, failed)``; ``performance[finished]`` are
        the complete trials, in the order of their indices.

    Examples
    --------
    ::

        trials = load_perf_trials("trials.npy")
        print(trials.finished.sum(), "trials done; mean final loss",
              trials.performance["loss"][:, -1].mean())
    """
    table = np.load(os.fspath(path))
    status = np.asarray(table["status"])
    finished = status == TRIAL_FINISHED
    performance = ma.masked_array(table["performance"])
    performance[~finished] = ma.masked
    return PerfTrials(performance, finished, status == TRIAL_FAILED)
