"""The trial farm: independent estimation trials spread over the ranks of a communicator.

:class:`TrialFarm` runs :func:`~mpi_qinfer.smc.perf_testing.perf_test_multiple`'s
trials on groups of ``group_size`` ranks. With ``group_size=1`` (for cheap
models) every rank runs whole trials on its own serial model; with
``group_size=k`` (for costly ones) each group of ``k`` ranks runs its trials on
an :class:`~mpi_qinfer.parallel.proxy.MPIParallelizedModel` over the group's
sub-communicator, so that trials and particles are both spread.

.. rubric:: How the work is shared

The lowest rank of each group, its *leader*, runs the trials; the others
serve its proxy. Leader ``g`` starts with the ``g``-th trial to do; from then
on the trials are handed out one at a time, in index order, to whichever
leader finishes first (a work queue kept by rank 0). Rank 0 runs trials
too: it answers the other leaders between the experiments of its own
trials, and where the MPI library provides ``MPI_THREAD_MULTIPLE`` a thread
of it answers them meanwhile, so a leader gets its next trial within a few
milliseconds whatever rank 0's own trial is doing (without that thread, a
leader may wait up to one of rank 0's updates).

Every trial is seeded from its index alone (see
:mod:`mpi_qinfer.smc.perf_testing`), and a proxy returns bitwise the serial
model's answers, so trial ``i``'s results are bitwise those of the serial
``perf_test_multiple`` with the same seed, whatever the number of ranks, the
group size and the order the trials ran in (``elapsed_time`` excepted, a
measurement).

.. rubric:: Failures

Bad arguments raise on every rank before anything is communicated. A trial
that raises is reported to rank 0: with ``allow_failures=False`` no new trial
starts, the trials running elsewhere finish (and are kept), and then every rank
raises the failing trial's own exception, with a
:class:`~mpi_qinfer.errors.RemoteError` (the rank and its traceback) as its
cause; with ``allow_failures=True`` its row is masked and the run goes on. A
failure of the farm itself (a trial file that cannot be written) stops the
run the same way. A failure in the messages between leaders cannot be put
right and ends the job with ``MPI_Abort``, never a hang.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

import numpy as np
from mpi4py import MPI

from ..engine.command_loop import duplicate
from ..engine.failures import describe_failure, pickled_exception, raise_failure
from ..runtime import termination
from ..smc.perf_testing import (
    TrialStore,
    _add_note,
    _child,
    _count,
    _model_name,
    _new_results,
    _ProgressReport,
    _seed_sequence,
    _Trial,
    _TrialCall,
)
from .proxy import MPIParallelizedModel

__all__ = ["TrialFarm"]

#: Point-to-point tags of the farm's messages (on its own duplicate communicator).
_REPORT, _ASSIGN = 0x7431, 0x7432
#: Kinds of report a leader sends rank 0 after each trial.
_DONE, _FAILED, _FATAL = "done", "failed", "fatal"
#: Shortest and longest sleep of rank 0's answering thread between two probes for reports (seconds).
_MIN_SLEEP, _MAX_SLEEP = 1e-5, 1e-3
#: Whether rank 0 answers from a thread where the MPI library allows it (False: between experiments).
_ANSWER_IN_THREAD = True
#: Options of the group proxies that the farm sets itself.
_FARM_OWNS = ("comm", "root", "engine")


class TrialFarm:
    """Runs independent trials on groups of ranks of a communicator, balanced dynamically.

    Construction only checks the layout (nothing is communicated);
    :meth:`perf_test_multiple` is collective: every rank of ``comm`` calls it
    with the same arguments (its own copy of the model), as it would the
    serial function.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The ranks to use (duplicated for each run, never used directly).
        Default ``MPI.COMM_WORLD``. Rank 0 of ``comm`` keeps the work queue
        and gets the results.
    group_size : int, optional
        Ranks per trial (default 1). Must divide the size of ``comm``. With
        ``k > 1`` each group of ``k`` consecutive ranks runs its trials on an
        :class:`~mpi_qinfer.parallel.proxy.MPIParallelizedModel` over its own
        sub-communicator.
    proxy_options : dict, optional
        Keyword arguments of the group proxies (``serial_threshold``,
        ``split``, ``balance``, ``idle``, ...; not ``comm``, ``root`` or
        ``engine``, which the farm sets).

    Raises
    ------
    ValueError
        When ``group_size`` is not a positive integer dividing the number of
        ranks, or ``proxy_options`` names an option the farm sets.

    Examples
    --------
    Every rank runs the same script (``mpiexec -n 4 python trials.py``)::

        farm = TrialFarm(MPI.COMM_WORLD, group_size=1)
        perf = farm.perf_test_multiple(100, SimplePrecessionModel(), 1000, UniformDistribution([0, 1]),
                                       50, ExpSparseHeuristic, seed=2024, trial_file="trials.npy")
        if farm.is_root:
            print(perf["loss"][:, -1].mean())
    """

    def __init__(self, comm=None, group_size: int = 1, *, proxy_options: dict | None = None):
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"comm must be an mpi4py intracommunicator, got {comm!r}")
        size = comm.Get_size()
        group_size = _count("group_size", group_size, 1)
        if size % group_size:
            raise ValueError(f"group_size={group_size} does not divide the {size} ranks of comm: every group "
                             f"needs {group_size} ranks (run on a multiple of {group_size} ranks, or choose a "
                             f"divisor of {size})")
        options = dict(proxy_options or {})
        owned = sorted(set(options).intersection(_FARM_OWNS))
        if owned:
            raise ValueError(f"proxy_options must not set {owned}: the farm builds each group's proxy on the "
                             "group's communicator")
        self._comm = comm
        self._rank = comm.Get_rank()
        self._size = size
        self._group_size = group_size
        self._proxy_options = options

    @property
    def group_size(self) -> int:
        """int : Ranks per trial."""
        return self._group_size

    @property
    def n_groups(self) -> int:
        """int : Number of groups, i.e. of trials running at once."""
        return self._size // self._group_size

    @property
    def group(self) -> int:
        """int : The index of this rank's group."""
        return self._rank // self._group_size

    @property
    def is_leader(self) -> bool:
        """bool : Whether this rank runs trials (the lowest rank of its group)."""
        return self._rank % self._group_size == 0

    @property
    def is_root(self) -> bool:
        """bool : Whether this rank (rank 0 of ``comm``) gets the results."""
        return self._rank == 0

    def perf_test_multiple(self, n_trials, model, n_particles, prior, n_exp, heuristic_class, true_model=None,
                           true_prior=None, true_mps=None, allow_failures=False, extra_updater_args=None,
                           progressbar=None, *, seed=None, trial_file=None, resume=False):
        """Run ``n_trials`` trials over the farm's ranks (collective).

        The arguments are those of
        :func:`~mpi_qinfer.smc.perf_testing.perf_test_multiple` (without
        ``apply``: the farm is how the trials are handed out), given on every
        rank, each with its own copy of the serial ``model`` (never a proxy:
        the farm builds the group proxies). ``progressbar`` is drawn on rank 0.
        With ``trial_file``, each trial is written by the leader that ran it
        as soon as it finishes, so the file must be on a file system every
        leader sees; a run killed at its wall time keeps the finished trials
        there, and ``resume=True`` with the same seed runs only the others.

        Returns
        -------
        numpy.ndarray, numpy.ma.MaskedArray or None
            On rank 0, the ``(n_trials, n_exp)`` results, bitwise those of the
            serial function with the same seed (``elapsed_time`` excepted);
            None on the other ranks.

        Raises
        ------
        ValueError, TypeError
            On every rank, for bad arguments (``n_trials <= 0``, a proxy given
            as the model, ...), or when the ranks were given different
            arguments.
        Exception
            On every rank, the first failing trial's own exception (with a
            :class:`~mpi_qinfer.errors.RemoteError` as its cause), when
            ``allow_failures`` is False, after the trials already running
            have finished.
        """
        n_trials = _count("n_trials", n_trials, 1)
        if isinstance(model, MPIParallelizedModel):
            raise TypeError("model must be the serial model (every rank's own copy), not an MPIParallelizedModel: "
                            "the farm builds a proxy per group of group_size ranks itself")
        trial = _Trial(model, n_particles, prior, n_exp, heuristic_class, true_model, true_prior, true_mps,
                       extra_updater_args)
        if trial_file is not None:
            trial_file = os.path.abspath(os.fspath(trial_file))
        facts = (n_trials, trial.n_particles, trial.n_exp, str(trial.dtype), self._group_size,
                 trial_file, bool(resume), bool(allow_failures))
        run = _Run(self, trial, n_trials, facts, allow_failures)
        return run.go(seed, trial_file, resume, progressbar)


class _Run:
    """One collective run of a farm: set-up, the trials, the verdict; frees what it made."""

    def __init__(self, farm: TrialFarm, trial: _Trial, n_trials: int, facts: tuple, allow_failures: bool):
        self.farm = farm
        self.trial = trial
        self.serial_model = trial.model
        self.n_trials = n_trials
        self.facts = facts
        self.allow_failures = allow_failures
        self.comm = None
        self.group_comm = None
        self.proxy = None
        self.store = None
        self.own_errors: dict[int, BaseException] = {}
        self.comm_rank = 0

    # ----------------------------------------------------------- the whole run
    def go(self, seed, trial_file, resume, progressbar):
        self.comm = duplicate(self.farm._comm)
        self.comm_rank = self.comm.Get_rank()
        try:
            sequence = self._agree(seed)
            seeds = [_child(sequence, i) for i in range(self.n_trials)]
            todo, done = self._prepare_file(trial_file, resume, seeds)
            self._form_groups(trial_file)
            result = self._work(todo, done, seeds, progressbar)
            verdict = self.comm.bcast(result[1] if self.comm.Get_rank() == 0 else None, root=0)
        finally:
            self._free()
        if verdict is not None:
            self._raise(verdict)
        return result[0]

    def _free(self) -> None:
        if self.store is not None:
            self.store.close()
        if not MPI.Is_finalized():
            for comm in (self.group_comm, self.comm):
                if comm is not None:
                    comm.Free()

    def _raise(self, verdict) -> None:
        index, rank, data, text = verdict
        own = self.own_errors.get(index) if rank == self.comm_rank else None
        try:
            raise_failure(f"trial {index}", own, {rank: (data, text)})
        except Exception as error:
            _add_note(error, f"raised by trial {index} of TrialFarm.perf_test_multiple, on rank {rank}")
            raise

    # --------------------------------------------------------------- set-up
    def _all_or_none(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed a set-up step (each rank gives its own failure or None)."""
        mine = None if error is None else (pickled_exception(error), describe_failure(error))
        everyone = self.comm.allgather(mine)
        failures = {rank: failure for rank, failure in enumerate(everyone) if failure is not None}
        if failures:
            raise_failure("TrialFarm set-up", error, failures)

    def _agree(self, seed) -> np.random.SeedSequence:
        """Check that every rank was given the same run; rank 0's seed (fresh if None) becomes everyone's.

        One ``allgather``: every rank sees every rank's arguments, so all of them raise together.
        """
        error, key = None, None
        try:
            key = None if seed is None else _seed_key(_seed_sequence(seed))
        except Exception as exc:  # noqa: BLE001 - every rank hears of it
            error = exc
        if self.comm_rank == 0 and seed is None:
            key = _seed_key(np.random.SeedSequence())
        mine = (self.facts, seed is None, key, None if error is None else (pickled_exception(error),
                                                                            describe_failure(error)))
        everyone = self.comm.allgather(mine)
        failures = {rank: theirs[3] for rank, theirs in enumerate(everyone) if theirs[3] is not None}
        root_facts, root_unseeded, root_key, _ = everyone[0]
        for rank, (facts, unseeded, their_key, _) in enumerate(everyone):
            if rank not in failures and (facts != root_facts or unseeded != root_unseeded
                                         or (not unseeded and their_key != root_key)):
                mismatch = ValueError(f"rank {rank} was given other arguments than rank 0 (n_trials, n_particles, "
                                      "n_exp, the model's dtype, group_size, trial_file, resume, allow_failures or "
                                      "seed): every rank must make the same call")
                failures[rank] = (pickled_exception(mismatch), describe_failure(mismatch))
                if rank == self.comm_rank:
                    error = mismatch
        if failures:
            raise_failure("TrialFarm set-up", error, failures)
        entropy, spawn_key, pool_size = root_key
        return np.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size)

    def _prepare_file(self, trial_file, resume, seeds) -> tuple[list, dict]:
        """Rank 0 creates the trial file (or reads what it finished); every rank learns what is to do."""
        todo, done, error = list(range(self.n_trials)), {}, None
        if trial_file is None:
            return todo, done  # nothing can fail, nothing to tell
        if self.comm_rank == 0:
            try:
                store, done = TrialStore.open_for_run(trial_file, self.trial.dtype, self.trial.n_exp, seeds, resume)
                store.close()
                todo = [i for i in todo if i not in done]
            except Exception as exc:  # noqa: BLE001 - every rank hears of it
                error = exc
        self._all_or_none(error)
        todo = self.comm.bcast(todo, root=0)
        return todo, done

    def _form_groups(self, trial_file) -> None:
        """Split into groups, build each group's proxy, open the file on the leaders; all or none succeed."""
        farm = self.farm
        if farm.group_size == 1 and trial_file is None:
            return  # every rank is its own group, and nothing can fail here
        error = None
        try:
            if farm.group_size > 1:
                self.group_comm = self.comm.Split(color=farm.group, key=self.comm_rank)
                self.proxy = MPIParallelizedModel(self.serial_model, comm=self.group_comm, **farm._proxy_options)
            if farm.is_leader and trial_file is not None:
                self.store = TrialStore(trial_file, self.trial.dtype, self.trial.n_exp)
        except Exception as exc:  # noqa: BLE001 - every rank hears of it
            error = exc
        try:
            self._all_or_none(error)
        except BaseException:
            if self.proxy is not None and self.proxy.engine is not None:
                self.proxy.engine.close_collectively()  # every rank of the group is here: nobody serves yet
            raise
        if self.proxy is not None:
            trial = self.trial
            # The data still come from the serial model on the leader, so that they are the serial run's.
            self.trial = _Trial(self.proxy, trial.n_particles, trial.prior, trial.n_exp, trial.heuristic_class,
                                trial.true_model, trial.true_prior, trial.true_mps, trial.extra_updater_args)

    # ---------------------------------------------------------------- the work
    def _work(self, todo: list, done: dict, seeds: list, progressbar):
        """Run this rank's part; returns (results or None, verdict or None) (the verdict matters on rank 0)."""
        farm = self.farm
        if not farm.is_leader:
            self.proxy.serve()  # until the leader shuts the proxy down
            return None, None
        firsts = {g * farm.group_size: todo[g] for g in range(min(farm.n_groups, len(todo)))}
        try:
            if self.comm_rank == 0:
                dispatcher = _Dispatcher(self, todo[len(firsts):], set(firsts) - {0}, seeds, progressbar)
                return dispatcher.run(firsts.get(0), done)
            self._lead(firsts.get(self.comm_rank), seeds)
            return None, None
        finally:
            if self.proxy is not None:
                self.proxy.shutdown()

    def run_trial(self, index: int, seeds: list, after_experiment) -> tuple:
        """Run trial ``index`` here and write it; the report for rank 0: (kind, index, payload)."""
        try:
            row = _TrialCall(self.trial, seeds[index], after_experiment)()
        except Exception as error:  # noqa: BLE001 - the trial's failure is reported, not raised here
            self.own_errors[index] = error
            report = (_FAILED, index, (pickled_exception(error), describe_failure(error)))
            row = None
        else:
            report = (_DONE, index, row)
        if self.store is not None:
            try:
                if row is None:
                    self.store.write_failure(index)
                else:
                    self.store.write(index, row)
            except Exception as error:  # noqa: BLE001 - the farm cannot keep its promise: stop the run
                self.own_errors[index] = error
                report = (_FATAL, index, (pickled_exception(error), describe_failure(error)))
        return report

    def _lead(self, index, seeds) -> None:
        """A leader other than rank 0: run a trial, report it, take the next, until told to stop."""
        comm = self.comm
        try:
            while index is not None:
                report = self.run_trial(index, seeds, termination.check)
                comm.send(report, dest=0, tag=_REPORT)
                index = comm.recv(source=0, tag=_ASSIGN)
        except Exception as error:  # noqa: BLE001 - out of step with rank 0: end the job, never hang it
            _abort(comm, error)


class _Dispatcher:
    """Rank 0's side: the queue of trials, its own trials, the other leaders' reports.

    Rank 0 answers the other leaders between the experiments of its own
    trials. Where the MPI library is thread-multiple, a thread answers them
    too while rank 0's own trial runs (it sleeps between probes, at most
    :data:`_MAX_SLEEP`, so it costs next to no CPU), so that a leader gets
    its next trial within a few milliseconds whatever rank 0 is doing.
    """

    def __init__(self, run: _Run, queue: list, active: set, seeds: list, progressbar):
        self.run_ = run
        self.comm = run.comm
        self.queue = deque(queue)
        self.active = set(active)  # leaders running a trial, whose report is awaited
        self.seeds = seeds
        self.stopping = False
        self.failures: dict[int, tuple] = {}  # index -> (rank, pickled exception, traceback), stopping ones
        self.lock = threading.Lock()  # the queue, the results and the progress bar: both threads use them
        self.answering = threading.Lock()  # held by the thread that probes for and answers reports
        self.abandoned = False  # rank 0's own thread is unwinding (a stop request): the answering thread ends
        trial = run.trial
        self.performance = _new_results(run.n_trials, trial.n_exp, trial.dtype, run.allow_failures)
        self.progress = _ProgressReport(progressbar, run.n_trials, _model_name(run.serial_model))

    def run(self, first, done: dict):
        for index, row in done.items():
            self.performance[index] = row
            self.progress.finished_one()
        answering = None
        if self.active and _ANSWER_IN_THREAD and MPI.Query_thread() == MPI.THREAD_MULTIPLE:
            answering = threading.Thread(target=self._answer_in_background, name="mpi_qinfer-trial-farm",
                                         daemon=True)
            answering.start()
        try:
            index = first
            while index is not None:
                report = self.run_.run_trial(index, self.seeds, self.poll)
                with self.lock:
                    self._record(report, 0)
                    index = self._next()
                if answering is None:
                    self.poll()
            if answering is not None:
                answering.join()
            else:
                while self.active:
                    self.poll(block=True)
        except BaseException:
            self.abandoned = True
            raise
        finally:
            if answering is not None:
                answering.join()
            self.progress.close()
        return self.performance, self._verdict()

    def _next(self):
        if self.stopping or not self.queue:
            return None
        return self.queue.popleft()

    def poll(self, block: bool = False) -> None:
        """Answer every leader whose report has arrived (``block``: wait for one first).

        Also called between the experiments of rank 0's own trials (with an
        answering thread too: a cheap model's leaders are then answered
        sooner than the thread wakes up), where a failure must not pass for
        the trial's: one ends the job instead.
        """
        termination.check()  # a stop request (a BaseException) ends the run here
        if not self.answering.acquire(blocking=block):
            return  # the other thread is answering
        try:
            while self.active and (block or self.comm.Iprobe(MPI.ANY_SOURCE, _REPORT)):
                self._answer_one()
                block = False
        except Exception as error:  # noqa: BLE001 - out of step with the leaders: end the job, never hang it
            _abort(self.comm, error)
        finally:
            self.answering.release()

    def _answer_in_background(self) -> None:
        sleep = _MIN_SLEEP
        try:
            while self.active and not self.abandoned:
                answered = False
                if self.answering.acquire(blocking=False):
                    try:
                        while self.active and self.comm.Iprobe(MPI.ANY_SOURCE, _REPORT):
                            self._answer_one()
                            answered = True
                    finally:
                        self.answering.release()
                sleep = _MIN_SLEEP if answered else min(2 * sleep, _MAX_SLEEP)
                time.sleep(sleep)
        except BaseException as error:  # noqa: BLE001 - out of step with the leaders: end the job, never hang it
            _abort(self.comm, error)

    def _answer_one(self) -> None:
        """Receive one report, record it, send that leader its next trial (or None: stop).

        Called with :attr:`answering` held, so a probed report is received by the thread that probed it.
        """
        status = MPI.Status()
        report = self.comm.recv(source=MPI.ANY_SOURCE, tag=_REPORT, status=status)
        leader = status.Get_source()
        with self.lock:
            self._record(report, leader)
            index = self._next()
        self.comm.send(index, dest=leader, tag=_ASSIGN)
        if index is None:
            self.active.discard(leader)

    def _record(self, report: tuple, rank: int) -> None:
        kind, index, payload = report
        if kind == _DONE:
            self.performance[index] = payload
            self.progress.finished_one()
            return
        if kind == _FAILED and self.run_.allow_failures:
            self.performance[index] = np.ma.masked
            return
        self.failures[index] = (rank, *payload)
        self.stopping = True

    def _verdict(self):
        if not self.failures:
            return None
        index = min(self.failures)
        return (index, *self.failures[index])


def _seed_key(sequence: np.random.SeedSequence) -> tuple:
    return (sequence.entropy, tuple(sequence.spawn_key), sequence.pool_size)


def _abort(comm, error: BaseException) -> None:
    """End the job: a leader that cannot follow the farm's messages would leave the others waiting."""
    sys.stderr.write(f"mpi_qinfer: the trial farm on rank {comm.Get_rank()} failed outside a trial and cannot "
                     f"stay in step with the other ranks; ending the job.\n{describe_failure(error)}")
    sys.stderr.flush()
    time.sleep(0.2)  # let the launcher forward the report first
    comm.Abort(1)
