"""DistributedSMCUpdater: an SMC updater whose particles stay sharded on the ranks that compute them.

Every rank holds a share of the particle locations and weights for the whole
run. An update broadcasts the outcome and the experiment (a few bytes); each
rank multiplies its own weights by its own likelihoods and one small
all-gather of per-rank sums (the normalisation, the sum of squared weights
for the effective sample size, the mean) finishes the update on every rank.
Estimates are sums over particles: per-rank partial sums, combined once.
Resampling draws offspring where the weights live and rebalances the cloud
with one ``MPI_Alltoallv`` (see :mod:`mpi_qinfer.distributed.resampling`).

Root and workers run the same code for every command
(:mod:`mpi_qinfer.distributed.loop`), so they cannot disagree on the
sequence of collectives.
Sums that steer the control flow are formed by an ``MPI_Allgather`` of the
per-rank terms, added on every rank in rank order: every rank gets the same
bits, whatever the MPI library's reduction order.
"""

from __future__ import annotations

import enum
import warnings
from typing import NamedTuple

import numpy as np

from ..engine.partition import check_count, displacements, even_counts, weighted_counts
from ..engine.validation import _fields_match, as_array
from ..errors import EngineClosedError, ModelMismatchError
from ..smc._shared import _canonicalize, _correlation, _one_outcome, _prior_sample, _reset_count, _zero_weights_error
from ..smc.particles import UpdaterEstimates
from ..smc.posterior import check_marginal_arguments, marginal
from ..smc.resampler import (
    _TINY_N_ESS,
    LiuWestResampler,
    _check_finite_covariance,
    _chosen_resampler,
    _covariance_factor,
    _tiny_n_ess_warning,
)
from ..smc.updater import ApproximationWarning, ResamplerWarning, SMCUpdater, UpdaterRecord
from . import resampling, sums
from .loop import CLOSE, CommandLoop, new_message
from .region import credible_mask

__all__ = ["DistributedSMCUpdater"]

#: Experiments per block of a risk or information-gain computation, times the local particles.
_DESIGN_BLOCK_ELEMENTS = 4_000_000


class _Op(enum.IntEnum):
    CLOSE = CLOSE
    UPDATE = 1
    RESAMPLE = 2
    MOMENTS = 3
    ENTROPY = 4
    DESIGN = 5
    PICK = 6
    GATHER = 7
    CREDIBLE = 8
    RESTORE = 9
    BATCH = 10
    RESET = 11
    HYPOTHETICAL = 12


#: ``stacklevel`` of a step's warnings: from inside the step up to the root's caller (own loop).
_USER = 7


class _Shard(NamedTuple):
    """One rank's part of the updater's state. A step computes a new one aside and commits it whole."""

    weights: np.ndarray
    locations: np.ndarray
    shift: np.ndarray
    n_ess: float
    just_resampled: bool
    resample_count: int
    counts: np.ndarray
    n_particles: int


class _Rules(NamedTuple):
    """The root's settings that steer a step; sent with it, so that every rank follows the same ones."""

    resample_thresh: float | None  # None: no resampling check
    interval: int | None  # check for resampling after every this many data
    policy: str
    zero_weight_thresh: float


def _as_experiments(expparams, model) -> np.ndarray:
    """The experiments as a non-empty 1-d array with the model's fields (checked on the root, before sending)."""
    array = as_array(expparams, (1,))
    want = np.dtype(model.expparams_dtype)
    if array is None or not _fields_match(array.dtype, want):
        raise TypeError(f"expparams must be a 1-d array of the model's expparams_dtype {want}, got {expparams!r}")
    if array.size < 1:
        raise ValueError("expparams must hold at least one experiment, got an empty array")
    return array


def _signature(model) -> tuple:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}", int(model.n_modelparams)


def _check_arguments(n_particles, resample_thresh, resampler, draws, debug_resampling,
                     track_resampling_divergence) -> None:
    if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
        raise ValueError(f"n_particles must be a positive integer, got {n_particles!r}")
    if not 0 <= float(resample_thresh) <= 1:
        raise ValueError(f"resample_thresh must be between 0 and 1, got {resample_thresh!r}")
    if resampler is not None and not isinstance(resampler, LiuWestResampler):
        raise TypeError(
            "resampler must be None or a LiuWestResampler (a serial resampler cannot work on a sharded cloud), "
            f"got {type(resampler).__name__}"
        )
    if resampler is not None and (resampler.kernel is not None or resampler.default_n_particles is not None):
        raise ValueError("a LiuWestResampler with a kernel or default_n_particles cannot resample a sharded cloud "
                         "(every rank draws its own normals, and keeps n_particles); leave both None")
    if draws not in resampling.DRAWS:
        raise ValueError(f"draws must be one of {resampling.DRAWS}, got {draws!r}")
    # Both need the whole cloud, before and after every resampling, on one rank: what this updater avoids.
    for name, value in (("debug_resampling", debug_resampling),
                        ("track_resampling_divergence", track_resampling_divergence)):
        if value:
            raise ValueError(f"{name}=True is not available on a sharded cloud (it needs the whole cloud before "
                             "and after every resampling on one rank); use SMCUpdater for it")


def _target_counts(balance, n_particles: int, size: int) -> np.ndarray:
    """Particles per rank under ``balance`` ("even" or one weight per rank)."""
    if balance is None or (isinstance(balance, str) and balance == "even"):
        return even_counts(n_particles, size)
    if isinstance(balance, str):
        raise ValueError(f"balance must be 'even' or one weight per rank, got {balance!r} "
                         "(an adaptive split would make the draws depend on timings)")
    weights = np.asarray(balance, dtype=np.float64)
    if weights.shape != (size,):
        raise ValueError(f"balance weights must have one entry per rank ({size}), got shape {weights.shape}")
    return weighted_counts(n_particles, weights)


class DistributedSMCUpdater(CommandLoop, UpdaterEstimates, UpdaterRecord):
    """Sequential Monte Carlo whose particle cloud lives sharded on the ranks that compute it.

    Construction is collective: every rank passes its own serial model and
    prior (nothing is pickled). The root then uses the updater like
    :class:`~mpi_qinfer.smc.updater.SMCUpdater`; the other ranks serve its commands,
    either inside ``with`` (their own worker loop) or inside the worker loop
    of a shared :class:`~mpi_qinfer.engine.core.Engine`.

    Per update only the outcome and experiment go out and a few numbers per
    rank come back, whatever the number of particles; the root never holds
    the cloud. Results are reproducible for a given seed and number of ranks
    (and ``balance``); across rank counts they agree with
    :class:`~mpi_qinfer.smc.updater.SMCUpdater`'s within Monte Carlo error, not
    bitwise: each rank draws its share of the prior and of every resampling
    from its own random stream, and sums are added in another order.

    Parameters
    ----------
    model : Model or MPIParallelizedModel
        This rank's serial model (``likelihood``, ``are_models_valid`` and, if
        present, ``update_timestep``, ``canonicalize``, ``clear_cache``,
        ``domain``, ``Q``). A proxy stands for its serial model and its
        engine (as if given ``engine=proxy.engine``).
    n_particles : int
        Particles in all, shared between the ranks.
    prior : Distribution
        Every rank samples its own share; its ``sample`` is given the rank's
        generator when it accepts an ``rng`` keyword (otherwise the draws use
        numpy's global state and are not reproducible).
    resampler : LiuWestResampler or None, optional
        The parameters ``a``, ``h``, ``maxiter`` and ``zero_cov_comp`` of the
        Liu--West move; None gives ``LiuWestResampler(a=0.98)``.
    resample_thresh : float, optional
        Resample when ``n_ess < resample_thresh * n_particles`` (default 0.5).
    rng : numpy.random.Generator, int or None, optional
        The root's generator, or a seed for one. It seeds every random step
        (the prior, each resampling, each :meth:`reset`) and draws
        :meth:`sample` and the particle guess heuristic's picks. Ignored on
        the workers.
    zero_weight_policy : {"error", "warn", "skip", "reset", "ignore"}, optional
        What :meth:`update` does when a datum leaves every particle weight
        zero, or not a number (a NaN or infinite likelihood on any rank), as
        :class:`~mpi_qinfer.smc.updater.SMCUpdater` does: ``"error"`` (default)
        raises ``RuntimeError`` and changes nothing. The root's policy
        applies on every rank.
    zero_weight_thresh : float or None, optional
        The total weight at or below which the policy applies; None uses the
        class attribute :attr:`zero_weight_thresh`.
    resample_a : float or None, optional
        ``resampler=LiuWestResampler(a=resample_a)``, as in
        :class:`~mpi_qinfer.smc.updater.SMCUpdater` (deprecated there too).
    debug_resampling, track_resampling_divergence : bool, optional
        Must be False (the default): both need the whole cloud on one rank
        around every resampling. Use :class:`~mpi_qinfer.smc.updater.SMCUpdater`
        for them; :attr:`resampling_divergences` is None here.
    canonicalize : bool, optional
        Map the particles to the model's canonical parameters after drawing
        them from the prior and after resampling (default True).
    comm : mpi4py.MPI.Intracomm, optional
        The ranks to use (duplicated). Default ``MPI.COMM_WORLD``. Ignored
        when ``engine`` is given.
    root : int, optional
        Rank that runs the inference. Ignored when ``engine`` is given.
    engine : Engine, optional
        Share this engine's worker loop (and ranks) instead of running one's
        own. Build the updater on every rank before entering the engine.
    balance : "even" or sequence of float, optional
        How many particles each rank holds: evenly, or in proportion to one
        weight per rank (e.g. relative core speeds). Kept after every
        resampling.
    draws : {"multinomial", "systematic"}, optional
        How resampling draws offspring: independent draws as
        :class:`~mpi_qinfer.smc.updater.SMCUpdater` (default), or systematic.
    idle, backoff_max
        How idle workers wait in their own loop; see
        :class:`~mpi_qinfer.engine.core.Engine`.

    Notes
    -----
    :meth:`update` (with the resampling it triggers), :meth:`batch_update`,
    :meth:`resample` and :meth:`reset` are atomic on every shard: every rank
    computes its new shard aside, and the step is committed only when all of
    it has succeeded on every rank. If anything fails on any rank (the
    model, the validity check, the prior, the zero-weight policy), every
    shard, the records and the root's generator are left exactly as they
    were and the root raises, so retrying the same datum counts it once and
    draws the same random numbers.

    Examples
    --------
    Every rank runs the same script::

        with DistributedSMCUpdater(SimplePrecessionModel(), 1_000_000, prior) as updater:
            if updater.is_root:
                for _ in range(200):
                    experiment = heuristic()
                    updater.update(measure(experiment), experiment)
                print(updater.est_mean())
    """

    #: Default total weight at or below which an update is treated as leaving every weight zero.
    zero_weight_thresh = SMCUpdater.zero_weight_thresh

    # SMCUpdater's own property: the same check, the same default ("error"). The root's policy applies.
    zero_weight_policy = SMCUpdater.zero_weight_policy

    def __init__(self, model, n_particles: int, prior, resampler=None, resample_thresh: float = 0.5,
                 rng=None, zero_weight_policy: str = "error", zero_weight_thresh: float | None = None,
                 resample_a: float | None = None, debug_resampling: bool = False,
                 track_resampling_divergence: bool = False, canonicalize: bool = True, *,
                 comm=None, root: int = 0, engine=None, balance="even", draws: str = "multinomial",
                 idle: str | None = None, backoff_max: float | None = None):
        # Every rank checks the same arguments, so every rank raises the same error, with no communication.
        self.zero_weight_policy = zero_weight_policy  # checked by the setter
        if zero_weight_thresh is not None:
            self.zero_weight_thresh = float(zero_weight_thresh)
        resampler = _chosen_resampler(resampler, resample_a)
        _check_arguments(n_particles, resample_thresh, resampler, draws, debug_resampling,
                         track_resampling_divergence)
        self._canonicalize = bool(canonicalize)
        from mpi4py import MPI

        from ..parallel.proxy import MPIParallelizedModel

        if isinstance(model, MPIParallelizedModel):  # share the proxy's engine; compute with its serial model
            if engine is not None and engine is not model.engine:
                raise ValueError("engine must be None or the proxy's own engine when model is an MPIParallelizedModel")
            engine, model = model.engine, model.serial_model
            if engine is None:
                raise EngineClosedError("this proxy has no MPI engine (it was unpickled or copied)")

        self._MPI = MPI
        self.model = model
        self.prior = prior
        self.n_particles = int(n_particles)
        self.resampler = resampler
        self.resample_thresh = float(resample_thresh)
        self.draws = draws
        self._engine = engine
        if engine is not None:
            if engine.closed:
                raise EngineClosedError("the engine has been shut down")
            comm, root = engine.comm, engine.root
            if engine.is_root and hasattr(engine, "build_on_workers"):
                # A spawned engine's workers serve already: they build their part from its loop, now.
                engine.build_on_workers(DistributedSMCUpdater, model, dict(
                    n_particles=n_particles, prior=prior, resampler=resampler, resample_thresh=resample_thresh,
                    zero_weight_policy=zero_weight_policy, zero_weight_thresh=zero_weight_thresh, balance=balance,
                    draws=draws), owner=self)
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"comm must be an mpi4py intracommunicator, got {comm!r}")
        self._open(comm, root)
        self._message = new_message()
        self._hook = None
        try:
            self._setup(balance, rng, idle, backoff_max)
        except BaseException:
            self._free()
            raise
        if engine is not None:
            # Every rank runs this updater's commands from the engine's loop; see Engine.register_collective.
            self._hook = engine.register_collective(self._engine_command)
        self._opened()

    def _setup(self, balance, rng, idle, backoff_max) -> None:
        """The collective part of construction: agree, sample the prior, all-or-nothing."""
        from ..engine import idle as idle_wait  # imports MPI: only once an updater is built

        comm, MPI = self._comm, self._MPI
        try:
            local = (_signature(self.model), self.n_particles, self.draws, None)
        except Exception as error:  # noqa: BLE001 - reported on every rank below
            local = ("<not a model>", repr(error), None, None)
        settings = None
        self.rng = None
        self._balance = None
        if self.is_root:
            try:
                counts = _target_counts(balance, self.n_particles, self._size)
                self._balance = balance  # the shares of a reset to another particle count
                # The root's generator (the caller's, if given) seeds every random step, the prior first.
                self.rng = np.random.default_rng(rng)
                settings = (counts, int(self.rng.integers(0, 2**63 - 1)))
            except Exception as error:  # noqa: BLE001 - raised on every rank below
                settings = error
        everyone = comm.allgather(local)
        oversubscribed = False if self._engine is not None else idle_wait.node_is_oversubscribed(comm)
        oversubscribed = comm.allreduce(oversubscribed, op=MPI.LOR)
        if self.is_root and not isinstance(settings, BaseException):
            try:
                settings = (settings[0], settings[1], idle_wait.resolve_idle_mode(idle, oversubscribed),
                            idle_wait.resolve_backoff_max(backoff_max))
            except ValueError as error:
                settings = error
        settings = comm.bcast(settings, self._root)
        if isinstance(settings, BaseException):
            raise settings
        reference = everyone[self._root]
        if reference[0] == "<not a model>":
            raise TypeError(f"model must be a qinfer-style model with n_modelparams; on the root: {reference[1]}")
        odd = [rank for rank, item in enumerate(everyone) if item != reference]
        if odd:
            lines = "\n".join(f"  rank {rank}: {everyone[rank][:3]}" for rank in odd)
            raise ModelMismatchError(
                "every rank must bring the same kind of model, n_particles and draws; "
                f"the root (rank {self._root}) has {reference[:3]}, but\n{lines}"
            )
        counts, seed, self._idle, self._backoff_max = settings
        self._wait_for_message = idle_wait.broadcast_message
        self._counts = np.asarray(counts, dtype=np.int64)
        self._n_mp = int(self.model.n_modelparams)

        n_local = int(self._counts[self._rank])
        locations, error = self._prior_shard(n_local, seed)
        mean = self._allsum(locations.sum(axis=0) / self.n_particles, error, "prior sampling", everywhere=True)
        self._locations = locations
        self._weights = np.full(n_local, 1.0 / self.n_particles)
        self._shift = mean  # a point near the cloud, the same on every rank (see distributed_sums)

        self._data_record = []
        self._normalization_record = []
        self._resample_count = 0
        self._just_resampled = False
        self._n_ess = float(self.n_particles)
        self._min_n_ess = float(self.n_particles)
        self._resampling_divergences = None  # never tracked here (see track_resampling_divergence)

    # -------------------------------------------------------------- state
    @property
    def shard_counts(self) -> np.ndarray:
        """Particles each rank holds (after the last resampling, ``balance``'s shares)."""
        return self._counts.copy()

    @property
    def local_weights(self) -> np.ndarray:
        """This rank's share of the particle weights (a read-only view)."""
        view = self._weights.view()
        view.flags.writeable = False
        return view

    @property
    def local_locations(self) -> np.ndarray:
        """This rank's share of the particle locations (a read-only view)."""
        view = self._locations.view()
        view.flags.writeable = False
        return view

    @property
    def n_ess(self) -> float:
        """float : Effective sample size ``1 / sum(w**2)``, kept up to date by every step (no communication)."""
        return self._n_ess

    @property
    def n_rvs(self) -> int:
        """int : Number of model parameters."""
        return self._n_mp

    # ------------------------------------------------------------- updating
    def update(self, outcome, expparams, check_for_resample: bool = True) -> None:
        """Condition the posterior on one observed outcome (every rank updates its shard).

        Atomic, together with the resampling it triggers (see the class
        notes): if the model fails on any rank, in the likelihood or in the
        resampling's validity check, or the zero-weight policy refuses the
        datum, nothing has changed on any rank, the root's generator
        included, and the root raises.

        Parameters
        ----------
        outcome : int, float or record
            The observed outcome: a scalar or an array of one element, checked
            as :meth:`SMCUpdater.update <mpi_qinfer.smc.updater.SMCUpdater.update>`
            checks it (its value is the model's to judge).
        expparams : numpy.ndarray, shape (1,)
            The experiment performed (of the model's ``expparams_dtype``).
        check_for_resample : bool, optional
            Resample afterwards if the effective sample size is too small.

        Raises
        ------
        ValueError
            When ``outcome`` holds more than one value.
        TypeError
            When ``outcome`` is not a number or a record, or ``expparams``
            not an array of the model's experiments.
        RuntimeError
            With ``zero_weight_policy="error"``, when the outcome leaves every
            weight zero or not a number (a NaN or infinite likelihood on any
            rank).
        """
        datum = (outcome, _one_outcome(outcome), _as_experiments(expparams, self.model))  # as SMCUpdater checks
        self._atomically(_Op.UPDATE, (datum, self._rules(1 if check_for_resample else None)))

    def batch_update(self, outcomes, expparams, resample_interval: int = 5) -> None:
        """Update on several outcomes in turn, checking for resampling every few.

        Atomic as a whole, as :meth:`SMCUpdater.batch_update
        <mpi_qinfer.smc.updater.SMCUpdater.batch_update>`: if any update fails, every
        rank is left as it was before the first. The data travel in one
        command.

        Parameters
        ----------
        outcomes : numpy.ndarray, shape (n,)
        expparams : numpy.ndarray, shape (n,)
        resample_interval : int, optional
            Check the resampling condition after every this many updates.
        """
        if expparams.shape[0] != np.shape(outcomes)[0]:
            raise ValueError("The number of outcomes and experiments must match.")
        if expparams.ndim == 1:
            expparams = expparams[:, np.newaxis]
        data = [(outcome, _one_outcome(outcome), _as_experiments(experiment, self.model))
                for outcome, experiment in zip(outcomes, expparams)]
        self._atomically(_Op.BATCH, (data, self._rules(resample_interval)))

    def resample(self) -> None:
        """Resample now: Liu--West on every shard, then each rank again holds its ``balance`` share.

        Atomic, like :meth:`update`: if it fails on any rank, nothing has
        changed, the root's generator included.
        """
        if self._just_resampled:
            warnings.warn("Resampling without additional data; this may not perform as desired.",
                          ResamplerWarning, stacklevel=2)
        self._atomically(_Op.RESAMPLE, ())

    def hypothetical_update(self, outcomes, expparams, return_likelihood: bool = False,
                            return_normalization: bool = False):
        """Posterior weights for hypothetical outcomes, leaving the updater unchanged (costly: gathers).

        As :meth:`SMCUpdater.hypothetical_update
        <mpi_qinfer.smc.updater.SMCUpdater.hypothetical_update>`: every rank weighs
        its own particles, the normalisations are summed over the ranks, and
        the weights (and likelihoods) of the whole cloud are gathered to the
        root in global order, as :meth:`gather` gathers the cloud. For
        experiment design, :meth:`bayes_risk` and
        :meth:`expected_information_gain` need no gathering.

        Parameters
        ----------
        outcomes : int or numpy.ndarray of int, shape (n_outcomes,)
        expparams : numpy.ndarray, shape (n_experiments,)
        return_likelihood : bool, optional
            Also return the likelihood, shape (n_outcomes, n_experiments, n_particles), as float64.
        return_normalization : bool, optional
            Also return the normalisation, shape (n_outcomes, n_experiments, 1).

        Returns
        -------
        weights : numpy.ndarray, shape (n_outcomes, n_experiments, n_particles)
            Followed by the likelihood and/or normalisation, if asked for.
        """
        if not isinstance(outcomes, np.ndarray):
            outcomes = np.array([outcomes])
        expparams = _as_experiments(expparams, self.model)
        weights, likelihood, norm = self._send(_Op.HYPOTHETICAL, (outcomes, expparams, bool(return_likelihood)))
        extra = ()
        if return_likelihood:
            extra += (likelihood,)
        if return_normalization:
            extra += (norm,)
        return (weights,) + extra if extra else weights

    def _op_hypothetical(self, outcomes, expparams, return_likelihood: bool):
        n_outcomes, n_experiments, n_local = np.atleast_1d(outcomes).shape[0], expparams.shape[0], self._weights.size
        want = (n_outcomes, n_local, n_experiments)
        error = None
        local_norm = np.zeros((n_outcomes, n_experiments))
        try:
            answer = np.asarray(self.model.likelihood(outcomes, self._locations, expparams))
            if answer.shape != want:
                raise ValueError(f"the model's likelihood returned shape {answer.shape}, not {want}")
            likelihood = answer.transpose([0, 2, 1])
            # C order, as SMCUpdater: every sum over particles runs along contiguous memory.
            weights = np.multiply(self._weights, likelihood, order="C")
            local_norm = np.sum(weights, axis=2)
        except Exception as exc:  # noqa: BLE001 - every rank must agree below
            error = exc
        norm = self._allsum(local_norm, error, "hypothetical_update").reshape(n_outcomes, n_experiments, 1)
        # An impossible outcome leaves every weight zero instead of NaN (as SMCUpdater).
        weights /= np.where(np.abs(norm) < np.spacing(1), 1.0, norm)
        weights = self._gather_particle_axis(weights)
        likelihood = self._gather_particle_axis(likelihood) if return_likelihood else None
        return weights, likelihood, norm

    def _gather_particle_axis(self, values: np.ndarray) -> np.ndarray | None:
        """Gather ``(a, b, n_local)`` float64 arrays to the root as ``(a, b, n_particles)``, in global order."""
        MPI = self._MPI
        a, b = values.shape[:2]
        rows = np.ascontiguousarray(np.moveaxis(values, 2, 0), dtype=np.float64)  # one row per particle
        counts = self._counts * (a * b)
        check_count(int(counts.sum()), "the hypothetical weights the root gathers")  # the same verdict on every rank
        whole = np.empty((self.n_particles, a, b)) if self.is_root else None
        self._comm.Gatherv([rows, MPI.DOUBLE], [whole, counts, displacements(counts), MPI.DOUBLE]
                           if self.is_root else None, self._root)
        return np.ascontiguousarray(np.moveaxis(whole, 0, 2)) if self.is_root else None

    def _rules(self, interval: int | None) -> _Rules:
        """The root's settings for a step (every rank follows the root's, not its own)."""
        return _Rules(None if interval is None else self.resample_thresh, interval, self.zero_weight_policy,
                      float(self.zero_weight_thresh))

    def _atomically(self, op: int, args):
        """Root: send a step; if it fails, put the root's generator back (the shards never changed)."""
        state = self.rng.bit_generator.state
        try:
            return self._send(op, args)
        except BaseException:
            self.rng.bit_generator.state = state
            raise

    def _agreed_seed(self) -> int:
        """A seed drawn from the root's generator, the same on every rank (collective)."""
        seed = int(self.rng.integers(0, 2**63 - 1)) if self.is_root else None
        return self._comm.bcast(seed, self._root)

    def _state(self) -> _Shard:
        return _Shard(self._weights, self._locations, self._shift, self._n_ess, self._just_resampled,
                      self._resample_count, self._counts, self.n_particles)

    def _commit(self, state: _Shard, records=()) -> None:
        """Make ``state`` this rank's, and on the root append ``(outcome, normalisation)`` records.

        The only place a step changes the updater; it cannot fail, so a step
        that reaches it on one rank reaches it on every rank.
        """
        (self._weights, self._locations, self._shift, self._n_ess, self._just_resampled,
         self._resample_count, self._counts, self.n_particles) = state
        if self.is_root:
            for outcome, norm in records:
                self._data_record.append(outcome)
                self._normalization_record.append(norm)

    def _op_update(self, datum, rules: _Rules) -> None:
        state, record, applied = self._updated(self._state(), datum, rules)
        lowest = state.n_ess if record is not None else self._min_n_ess
        if applied and rules.resample_thresh is not None:
            self._warn_if_tiny(state)
            if self._needs_resample(state, rules):
                state = self._resampled(state, self._agreed_seed())
        self._min_n_ess = min(self._min_n_ess, lowest)  # the step cannot fail past here (as SMCUpdater's)
        self._commit(state, [] if record is None else [record])

    def _op_batch(self, data, rules: _Rules) -> None:
        state, records, lowest = self._state(), [], self._min_n_ess
        for index, datum in enumerate(data):
            state, record, _ = self._updated(state, datum, rules)
            if record is not None:
                records.append(record)
                lowest = min(lowest, state.n_ess)
            if (index + 1) % rules.interval == 0:
                self._warn_if_tiny(state)
                if self._needs_resample(state, rules):
                    state = self._resampled(state, self._agreed_seed())
        self._min_n_ess = lowest
        self._commit(state, records)

    def _warn_if_tiny(self, state: _Shard) -> None:
        """SMCUpdater's warning before a resampling check on a cloud of (almost) no effective particles."""
        if self.is_root and state.n_ess <= _TINY_N_ESS:
            warnings.warn(_tiny_n_ess_warning(state.n_ess), ApproximationWarning, stacklevel=_USER)

    def _op_resample(self) -> None:
        self._commit(self._resampled(self._state(), self._agreed_seed()))

    @staticmethod
    def _needs_resample(state: _Shard, rules: _Rules) -> bool:
        return rules.resample_thresh is not None and state.n_ess < state.n_particles * rules.resample_thresh

    def _updated(self, state: _Shard, datum, rules: _Rules):
        """``state`` conditioned on one datum, computed aside (collective; every rank branches alike).

        Returns
        -------
        state : _Shard
        record : (outcome, normalisation) or None
            None when the zero-weight policy skips the datum.
        applied : bool
            False when the policy skipped the datum or reset the cloud; then,
            as in :class:`~mpi_qinfer.smc.updater.SMCUpdater`, no resampling follows.
        """
        outcome, outcomes, expparams = datum
        w, x = state.weights, state.locations
        error = None
        terms = np.zeros(3 + self._n_mp)
        try:
            likelihood = np.asarray(self.model.likelihood(outcomes, x, expparams))[0, :, 0]
            weighted = w * likelihood
            del likelihood  # the cloud's memory, on the root too: keep as few particle-sized arrays as possible
            timestep = getattr(self.model, "update_timestep", None)
            new_x = x if timestep is None else np.ascontiguousarray(timestep(x, expparams)[:, :, 0], dtype=np.float64)
            terms[0] = weighted.sum()
            # einsum, not matmul: a BLAS call may wake threads, costly on a loaded node for so little work.
            terms[1] = np.einsum("i,i->", weighted, weighted)
            terms[2] = np.count_nonzero(weighted < 0)
            terms[3:] = np.einsum("i,im->m", weighted, new_x)
        except Exception as exc:  # noqa: BLE001 - nothing changes anywhere; the root raises
            error = exc
        reduced = self._allsum(terms, error, "update")
        norm, sum_sq, negatives = reduced[:3]
        # An impossible outcome leaves every weight zero instead of NaN (as SMCUpdater).
        safe = 1.0 if abs(norm) < np.spacing(1) else norm
        weights = weighted
        weights /= safe  # in place: weighted is this step's own array
        smallest = None
        if negatives > 0 or norm < 0:
            smallest = float(self._comm.allreduce(weights.min(initial=np.inf), op=self._MPI.MIN))
            np.clip(weights, 0, 1, out=weights)
            sum_sq, total = self._allsum([np.einsum("i,i->", weights, weights), weights.sum()], None, "update")
        else:
            sum_sq, total = sum_sq / (safe * safe), norm / safe
        if self.is_root and smallest is not None and smallest < 0:
            warnings.warn("Negative weights occurred in particle approximation. Smallest weight "
                          f"observed == {smallest}. Clipping weights.", ApproximationWarning, stacklevel=_USER)
        record = (outcome, float(norm))
        # "not >" also catches NaN (a NaN or infinite likelihood on any rank): total has the same bits everywhere.
        if not total > rules.zero_weight_thresh:
            if rules.policy == "error":
                raise _zero_weights_error(outcome, total)
            if rules.policy == "skip":
                return state, None, False
            if rules.policy == "reset":
                if self.is_root:
                    warnings.warn("All particle weights are zero. Resetting from initial prior.",
                                  ApproximationWarning, stacklevel=_USER)
                return self._redrawn(state, self._agreed_seed(), state.counts, state.n_particles), record, False
            if rules.policy == "warn" and self.is_root:
                warnings.warn("All particle weights are zero. This will very likely fail quite badly.",
                              ApproximationWarning, stacklevel=_USER)
        with np.errstate(divide="ignore"):
            n_ess = float(np.float64(1.0) / sum_sq)
        # The new mean is the next shift (see distributed_sums).
        return state._replace(weights=weights, locations=new_x, shift=reduced[3:] / safe, n_ess=n_ess,
                              just_resampled=False), record, True

    def _resampled(self, state: _Shard, seed: int) -> _Shard:
        """``state`` resampled (Liu--West, then the ``balance`` shares), computed aside (collective)."""
        comm, rank = self._comm, self._rank
        w, x, shift = state.weights, state.locations, state.shift
        lw = self.resampler
        error = None
        moments = np.zeros(sums.moment_length(self._n_mp))
        try:
            moments = sums.local_moments(w, x, shift)
        except Exception as exc:  # noqa: BLE001
            error = exc
        mean, cov = sums.moments_from_sums(self._allsum(moments, error, "resample"), shift)
        _check_finite_covariance(cov)  # the same bits on every rank: every rank raises alike, or none
        if np.linalg.norm(cov, "fro") == 0:
            if self.is_root:
                warnings.warn("Covariance has zero norm; adding in small covariance in resampler. "
                              "Consider increasing n_particles to improve covariance estimates.",
                              ResamplerWarning, stacklevel=_USER)
            cov = lw.zero_cov_comp * np.eye(self._n_mp)
        scale = lw.h * _covariance_factor(cov)

        # Offspring: resolved where the weights live, then cut into the balance shares.
        totals, starts = resampling.segments(comm, float(w.sum()))
        draw_weights = w
        if not starts[-1] + totals[-1] > 0:  # every weight zero: resample as if uniform
            draw_weights = np.ones_like(w)
            totals, starts = resampling.segments(comm, float(w.size))
        common, own = self._streams(seed)
        offspring, per_rank = resampling.offspring_counts(draw_weights, self.draws, state.n_particles,
                                                          totals, starts, rank, common, own)
        parents = np.ascontiguousarray(np.repeat(x, offspring, axis=0))
        send, receive = resampling.exchange_plan(per_rank, state.counts, rank)
        parents = resampling.exchange_rows(comm, parents, send, receive)

        n_invalid = 0
        new_x = parents
        try:
            mus = parents
            mus *= lw.a  # in place: parents is this step's own copy
            mus += (1 - lw.a) * mean
            # The first round on whole arrays (no fancy-indexed copies of the cloud), then only the invalid rows.
            new_x = np.einsum("im,nm->in", own.standard_normal(mus.shape), scale)
            new_x += mus
            valid = np.asarray(self.model.are_models_valid(new_x), dtype=bool).reshape(-1)
            todo = np.flatnonzero(~valid)
            if not lw.postselect:
                todo = todo[:0]
            for _ in range(lw.maxiter - 1):
                if todo.size == 0:
                    break
                noise = own.standard_normal((todo.size, self._n_mp))
                new_x[todo] = mus[todo] + np.einsum("im,nm->in", noise, scale)
                valid = np.asarray(self.model.are_models_valid(new_x[todo]), dtype=bool).reshape(-1)
                todo = todo[~valid]
            n_invalid = todo.size
            if self._canonicalize:
                new_x = np.ascontiguousarray(_canonicalize(self.model, new_x), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - nothing changes anywhere; the root raises
            error = exc
        n_invalid = self._allsum([n_invalid], error, "resample")[0]

        self._clear_model_cache()  # the cloud is new (harmless should the step fail later)
        if self.is_root and n_invalid:
            warnings.warn(f"Liu-West resampling failed to find valid models for {int(n_invalid)} "
                          f"particles within {lw.maxiter} iterations.", ResamplerWarning, stacklevel=_USER)
        return state._replace(weights=np.full(new_x.shape[0], 1.0 / state.n_particles), locations=new_x,
                              shift=mean, n_ess=float(state.n_particles), just_resampled=True,
                              resample_count=state.resample_count + 1)

    def _clear_model_cache(self) -> None:
        clear = getattr(self.model, "clear_cache", None)
        if clear is not None:
            try:
                clear()
            except Exception as exc:  # noqa: BLE001 - a cache is never worth failing an update for
                warnings.warn(f"Exception raised when clearing model cache: {exc}. Ignoring.", stacklevel=_USER)

    # --------------------------------------------------------- the prior again
    def _prior_shard(self, n_local: int, seed: int):
        """This rank's ``n_local`` particles from the prior, from its own stream of ``seed`` (no communication).

        Returns ``(locations, error)``: on failure, zeros and the exception (for :meth:`_allsum`).
        """
        try:
            drawn = _prior_sample(self.prior, self.model, n_local, self._streams(seed)[1],  # as SMCUpdater checks
                                  canonical=self._canonicalize)
            return np.ascontiguousarray(drawn, dtype=np.float64), None
        except Exception as exc:  # noqa: BLE001 - every rank must agree
            return np.zeros((n_local, self._n_mp)), exc

    def _redrawn(self, state: _Shard, seed: int, counts, n_particles: int, only_params=None,
                 reset_weights: bool = True) -> _Shard:
        """``state`` with particles drawn afresh from the prior (only ``only_params`` of them), computed aside."""
        counts = np.asarray(counts, dtype=np.int64)
        fresh, error = self._prior_shard(int(counts[self._rank]), seed)
        weights = np.full(fresh.shape[0], 1.0 / n_particles) if reset_weights else state.weights
        terms = np.zeros(self._n_mp)
        if error is None:
            try:
                if only_params is not None:
                    merged = state.locations.copy()
                    merged[:, only_params] = fresh[:, only_params]
                    fresh = np.ascontiguousarray(_canonicalize(self.model, merged) if self._canonicalize else merged,
                                                 dtype=np.float64)
                terms = np.einsum("i,im->m", weights, fresh)
            except Exception as exc:  # noqa: BLE001
                error = exc
        mean = self._allsum(terms, error, "reset")
        n_ess = float(n_particles) if reset_weights else state.n_ess
        return state._replace(weights=weights, locations=fresh, shift=mean, n_ess=n_ess, counts=counts,
                              n_particles=int(n_particles))

    def reset(self, n_particles: int | None = None, only_params=None, reset_weights: bool = True) -> None:
        """Draw the particles afresh from the prior (as :meth:`~mpi_qinfer.smc.updater.SMCUpdater.reset`).

        The records and the resample count are kept. Every rank draws its
        share from its own stream, seeded from the root's generator; the
        shares follow ``balance``. Atomic, like :meth:`update`.

        Parameters
        ----------
        n_particles : int or None, optional
            New number of particles; None keeps the current one.
        only_params : slice, int or sequence of int, optional
            Redraw only these parameters (the others keep their values);
            not together with ``n_particles``.
        reset_weights : bool, optional
            Also make the weights uniform (default True).
        """
        # The serial updater's checks and messages, on the root before any communication.
        n = _reset_count(n_particles, only_params, reset_weights, self.n_particles)
        if only_params is not None:
            np.zeros((1, self._n_mp))[:, only_params]  # a bad index fails here
        counts = self._counts if n == self.n_particles else _target_counts(self._balance, n, self._size)
        self._atomically(_Op.RESET, (counts, n, only_params, bool(reset_weights)))

    def _op_reset(self, counts, n_particles: int, only_params, reset_weights: bool) -> None:
        state = self._state()
        self._commit(self._redrawn(state, self._agreed_seed(), counts, n_particles, only_params, reset_weights))

    # ------------------------------------------------------------ estimates
    def est_mean(self) -> np.ndarray:
        """The posterior mean ``sum w x`` (one reduction of ``1 + n + n**2`` numbers per rank).

        Returns
        -------
        numpy.ndarray, shape (n_modelparams,)
        """
        return self._send(_Op.MOMENTS, ())[0]

    def est_covariance_mtx(self, corr: bool = False) -> np.ndarray:
        """The posterior covariance ``sum w (x - mean)(x - mean)^T``.

        Parameters
        ----------
        corr : bool, optional
            Return the correlation matrix instead.

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams)
        """
        return _correlation(self._send(_Op.MOMENTS, ())[1], corr)

    def _op_moments(self):
        error = None
        moments = np.zeros(sums.moment_length(self._n_mp))
        try:
            moments = sums.local_moments(self._weights, self._locations, self._shift)
        except Exception as exc:  # noqa: BLE001
            error = exc
        return sums.moments_from_sums(self._allsum(moments, error, "est_mean"), self._shift)

    def est_entropy(self) -> float:
        """qinfer's entropy estimate ``-sum w log w`` over the particles of non-zero weight.

        Returns
        -------
        float
        """
        return float(self._send(_Op.ENTROPY, ()))

    def _op_entropy(self):
        return self._allsum([sums.local_entropy(self._weights)], None, "est_entropy")[0]

    def sample(self, n: int = 1) -> np.ndarray:
        """Draw particles from the current posterior with the root's generator.

        The draws are the same uniforms as :meth:`SMCUpdater.sample
        <mpi_qinfer.smc.updater.SMCUpdater.sample>`'s, resolved against the global
        cumulative weight; only the drawn particles travel.

        Parameters
        ----------
        n : int, optional
            Number of samples.

        Returns
        -------
        numpy.ndarray, shape (n, n_modelparams)
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self.particles_at(self.rng.random(int(n)))

    def particles_at(self, points) -> np.ndarray:
        """The particles at the given points of the global cumulative weight (by global index).

        Particle ``i`` (in global order: rank, then local order) covers
        ``[c_{i-1}, c_i)`` with ``c`` the cumulative sum of the weights, as
        in ``cumsum.searchsorted(points, side="right")``. The particle guess
        heuristic (:class:`~mpi_qinfer.smc.heuristics.PGH`) draws its two
        particles through this method.

        Parameters
        ----------
        points : array_like of float, shape (k,)
            Points in ``[0, 1)`` (a uniform draw gives a posterior sample).

        Returns
        -------
        numpy.ndarray, shape (k, n_modelparams)
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(points)):
            raise ValueError("points must be finite")
        return self._send(_Op.PICK, (points,))

    def _op_pick(self, points):
        w = self._weights
        totals, starts = resampling.segments(self._comm, float(w.sum()))
        mask, index = resampling.locate(w, points, totals, starts, self._counts, self._rank)
        rows = np.zeros((points.size, self._n_mp))
        rows[mask] = self._locations[index]
        picked = self._allsum(np.concatenate((rows.ravel(), mask)), None, "particles_at")
        if not np.all(picked[rows.size :] == 1):
            raise RuntimeError("a point was claimed by no rank or by several; the cloud is inconsistent")
        return picked[: rows.size].reshape(rows.shape)

    def bayes_risk(self, expparams) -> np.ndarray:
        """qinfer's Bayes risk of each hypothetical experiment (quadratic loss weighted by the model's ``Q``).

        The expected posterior variance over the outcomes, as in qinfer's
        ``SMCUpdater.bayes_risk``; every rank sums over its own particles and
        the sums are combined once.

        Parameters
        ----------
        expparams : numpy.ndarray, shape (n_experiments,)

        Returns
        -------
        numpy.ndarray, shape (n_experiments,)
        """
        return self._design("risk", expparams)

    def expected_information_gain(self, expparams) -> np.ndarray:
        """qinfer's expected information gain (expected KL divergence posterior || current) of each experiment.

        Uses ``0 log 0 = 0`` for outcomes a particle cannot produce.

        Parameters
        ----------
        expparams : numpy.ndarray, shape (n_experiments,)

        Returns
        -------
        numpy.ndarray, shape (n_experiments,)
        """
        return self._design("gain", expparams)

    def _design(self, kind: str, expparams) -> np.ndarray:
        expparams = _as_experiments(expparams, self.model)
        block_rows = _DESIGN_BLOCK_ELEMENTS // max(int(self._counts.max()), 1)
        blocks = sums.outcome_blocks(self.model, expparams, block_rows)  # on the root, before any communication
        return self._send(_Op.DESIGN, (kind, expparams, blocks))

    def _op_design(self, kind, expparams, blocks):
        error = None
        size = sum(outcomes.size * (rows.stop - rows.start) * (self._n_mp + 3) for rows, outcomes in blocks)
        terms = np.zeros(size)
        try:
            terms = sums.local_design_sums(self.model, self._weights, self._locations, self._shift, expparams, blocks)
        except Exception as exc:  # noqa: BLE001
            error = exc
        name = "bayes_risk" if kind == "risk" else "expected_information_gain"
        total = self._allsum(terms, error, name)
        finish = sums.risk_from_sums if kind == "risk" else sums.information_gain_from_sums
        return finish(self.model, total, blocks, self._n_mp)

    def est_credible_region(self, level: float = 0.95, return_outside: bool = False, modelparam_slice=None):
        """The highest-weight particles whose weight first exceeds ``level`` (qinfer's credible region).

        The weight threshold is found by bisection over the float64 weights
        (about 64 tiny reductions, see :mod:`~mpi_qinfer.distributed.region`);
        only the particles travel that the root returns. Particles of equal
        weight at the threshold are taken in global order.

        Parameters
        ----------
        level : float, optional
            Credibility level, in (0, 1].
        return_outside : bool, optional
            Also return the particles outside the region.
        modelparam_slice : slice, optional
            The model parameters to return.

        Returns
        -------
        inside : numpy.ndarray, shape (n_credible, n_selected_params)
            In decreasing order of weight.
        outside : numpy.ndarray
            Only if ``return_outside``.
        """
        level = float(level)
        if not 0 < level <= 1:
            raise ValueError(f"level must be in (0, 1], got {level!r}")
        columns = np.s_[:] if modelparam_slice is None else np.s_[modelparam_slice]
        np.zeros((0, self._n_mp))[:, columns]  # a bad slice fails here, before any communication
        return self._send(_Op.CREDIBLE, (level, columns, bool(return_outside)))

    def _op_credible(self, level, columns, return_outside):
        w = self._weights
        inside = credible_mask(self._comm, w, level, lambda terms: self._allsum(terms, None, "est_credible_region"))
        x = self._locations[:, columns]
        parts = self._comm.gather((w[inside], x[inside], w[~inside], x[~inside]), self._root)
        if not self.is_root:
            return None

        def ordered(weights, rows):
            weights, rows = np.concatenate(weights), np.concatenate(rows)
            return rows[np.argsort(-weights, kind="stable")]

        region = ordered([p[0] for p in parts], [p[1] for p in parts])
        if return_outside:
            return region, ordered([p[2] for p in parts], [p[3] for p in parts])
        return region

    def posterior_marginal(self, idx_param: int = 0, res: int = 100, smoothing: float = 0,
                           range_min: float | None = None, range_max: float | None = None):
        """The marginal density of one parameter (as :meth:`SMCUpdater.posterior_marginal
        <mpi_qinfer.smc.updater.SMCUpdater.posterior_marginal>`; gathers the weights and that parameter).

        See :func:`mpi_qinfer.smc.posterior.marginal` for the details.

        Parameters
        ----------
        idx_param : int, optional
            Which parameter (default 0).
        res : int, optional
            Number of grid points (default 100).
        smoothing : float, optional
            Standard deviation of a Gaussian smoothing kernel, in the
            parameter's units (default 0: none).
        range_min, range_max : float or None, optional
            Grid ends; None takes the smallest and largest particle.

        Returns
        -------
        grid : numpy.ndarray, shape (res,)
        density : numpy.ndarray, shape (res,)
        """
        check_marginal_arguments(self._n_mp, idx_param, res, smoothing)  # before any communication
        weights, column = self._send(_Op.GATHER, (np.s_[:, idx_param : idx_param + 1 or None],))
        return marginal(weights, column, 0, res, smoothing=smoothing, range_min=range_min, range_max=range_max)

    # --------------------------------------------------- the whole cloud (costly)
    def _cloud(self):
        """The whole cloud on the root, for the estimates that need every particle (``est_meanfn``,
        ``est_kl_divergence``, ``posterior_mesh``): they gather it, as :meth:`gather` does."""
        return self.gather()

    def gather(self) -> tuple[np.ndarray, np.ndarray]:
        """Copy the whole cloud to the root, in global order: for checks and small clouds only.

        Returns
        -------
        weights : numpy.ndarray, shape (n_particles,)
        locations : numpy.ndarray, shape (n_particles, n_modelparams)
        """
        return self._send(_Op.GATHER, ())

    # ------------------------------------------------- checkpoints (whole state)
    def checkpoint_state(self) -> dict:
        """The whole state, on the root, for :mod:`mpi_qinfer.smc.checkpoint` (collective command; costly).

        The cloud is gathered in global order with the shard counts, so that
        :meth:`restore_checkpoint_state` on the same number of ranks puts every
        particle back on the rank that held it: the run then continues bitwise.
        """
        weights, locations = self._send(_Op.GATHER, (), safe_point=False)
        return {
            "weights": weights, "locations": locations, "counts": self._counts.copy(), "shift": self._shift.copy(),
            "n_ess": self._n_ess, "just_resampled": self._just_resampled, "resample_count": self._resample_count,
            "data_record": list(self._data_record), "normalization_record": list(self._normalization_record),
        }

    def restore_checkpoint_state(self, state: dict) -> None:
        """Put back a state from :meth:`checkpoint_state` (root; collective command).

        Checked on the root before anything is sent: the counts must give each
        of this updater's ranks its shard and sum to ``n_particles``.
        """
        counts = np.asarray(state["counts"], dtype=np.int64)
        weights = np.ascontiguousarray(state["weights"], dtype=np.float64)
        locations = np.ascontiguousarray(state["locations"], dtype=np.float64)
        if counts.shape != (self._size,) or counts.min() < 0 or counts.sum() != self.n_particles:
            raise ValueError(f"the saved shards {counts.tolist()} do not fit {self._size} ranks holding "
                             f"{self.n_particles} particles")
        if weights.shape != (self.n_particles,) or locations.shape != (self.n_particles, self._n_mp):
            raise ValueError("the saved cloud does not have this updater's shape")
        shift = np.asarray(state["shift"], dtype=np.float64).reshape(self._n_mp)
        self._restoring = (weights, locations)
        try:
            self._send(_Op.RESTORE, (counts, shift, float(state["n_ess"]), bool(state["just_resampled"]),
                                     int(state["resample_count"])), safe_point=False)
        finally:
            self._restoring = None
        self._data_record = list(state["data_record"])
        self._normalization_record = [float(x) for x in state["normalization_record"]]

    def _op_restore(self, counts, shift, n_ess, just_resampled, resample_count) -> None:
        MPI, comm, root = self._MPI, self._comm, self._root
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        n_local = int(counts[self._rank])
        weights, locations = np.empty(n_local), np.empty((n_local, self._n_mp))
        whole = self._restoring if self.is_root else (None, None)
        comm.Scatterv([whole[0], counts, displs, MPI.DOUBLE] if self.is_root else None, [weights, MPI.DOUBLE], root)
        comm.Scatterv([whole[1], counts * self._n_mp, displs * self._n_mp, MPI.DOUBLE] if self.is_root else None,
                      [locations, MPI.DOUBLE], root)
        self._counts = np.asarray(counts, dtype=np.int64)
        self._weights, self._locations, self._shift = weights, locations, np.array(shift, dtype=np.float64)
        self._n_ess, self._just_resampled, self._resample_count = n_ess, just_resampled, resample_count

    @property
    def particle_weights(self) -> np.ndarray:
        """numpy.ndarray : All the weights, gathered to the root (costly; see :meth:`gather`)."""
        return self.gather()[0]

    @property
    def particle_locations(self) -> np.ndarray:
        """numpy.ndarray : All the locations, gathered to the root (costly; see :meth:`gather`)."""
        return self.gather()[1]

    def _op_gather(self, columns=np.s_[:, :]):
        MPI, comm, root = self._MPI, self._comm, self._root
        counts = self._counts
        mine = np.ascontiguousarray(self._locations[columns])  # a copy only when columns are chosen
        width = mine.shape[1]
        weights = locations = None
        if self.is_root:
            weights = np.empty(self.n_particles)
            locations = np.empty((self.n_particles, width))
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        comm.Gatherv([self._weights, MPI.DOUBLE], [weights, counts, displs, MPI.DOUBLE] if self.is_root else None,
                     root)
        row_counts = counts * width
        row_displs = displs * width
        comm.Gatherv([mine, MPI.DOUBLE],
                     [locations, row_counts, row_displs, MPI.DOUBLE] if self.is_root else None, root)
        return weights, locations

    #: Every command of the updater: its code and the method that runs each rank's part of it.
    _OPERATIONS = {
        _Op.UPDATE: _op_update,
        _Op.RESAMPLE: _op_resample,
        _Op.MOMENTS: _op_moments,
        _Op.ENTROPY: _op_entropy,
        _Op.DESIGN: _op_design,
        _Op.PICK: _op_pick,
        _Op.GATHER: _op_gather,
        _Op.CREDIBLE: _op_credible,
        _Op.RESTORE: _op_restore,
        _Op.BATCH: _op_batch,
        _Op.RESET: _op_reset,
        _Op.HYPOTHETICAL: _op_hypothetical,
    }
