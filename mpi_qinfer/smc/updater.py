"""Sequential Monte Carlo Bayesian updating: qinfer's SMCUpdater (and, re-exported, its resamplers).

The updater touches its model only through ``n_modelparams``, ``likelihood``,
``are_models_valid`` and, when present, ``canonicalize``, ``update_timestep``
and ``clear_cache`` (plus ``domain`` or ``n_outcomes`` and ``Q`` for the
experiment-design quantities), so it runs unchanged on our models, on real
qinfer models and on a parallel proxy model. All of its randomness comes from
its own :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import logging
import warnings
from typing import NamedTuple

import numpy as np

from ._shared import (
    _canonicalize,
    _correlation,
    _one_outcome,
    _prior_sample,
    _reset_count,
    _weighted_covariance,
    _weighted_mean,
    _zero_weights_error,
)
from ._warnings import ApproximationWarning, PriorDimensionWarning, ResamplerError, ResamplerWarning
from .particles import ParticleDistribution, UpdaterEstimates, _draw_indices, kl_divergence
from .posterior import credible_region, entropy, marginal
from .resampler import LiuWestResampler, Resampler, _chosen_resampler, _warn_if_tiny

logger = logging.getLogger(__name__)

__all__ = [
    "Resampler", "LiuWestResampler", "UpdaterRecord", "SMCUpdater", "ApproximationWarning", "ResamplerWarning",
    "ResamplerError", "ZERO_WEIGHT_POLICIES", "PriorDimensionWarning",
]

#: What :meth:`SMCUpdater.update` may do when a datum leaves every weight zero (qinfer's names).
ZERO_WEIGHT_POLICIES = ("error", "warn", "skip", "reset", "ignore")

#: Largest number of (outcome, experiment, particle, parameter) entries the Bayes risk holds at once.
_RISK_CHUNK_ENTRIES = 1 << 22


class _Step(NamedTuple):
    """The state an update or a resampling step would leave; nothing is applied until it is complete."""

    weights: np.ndarray
    locations: np.ndarray
    #: ``(outcome, normalisation)`` to append to the records, or None.
    record: tuple | None
    resampled: bool
    #: The effective sample size the update left before any resampling (for ``min_n_ess``), or None.
    n_ess: float | None = None
    #: The divergence of the resampled cloud from the one before (``track_resampling_divergence``), or None.
    divergence: float | None = None


class UpdaterRecord:
    """What an updater has recorded: the data, their normalisations, its resampling steps.

    Shared by :class:`SMCUpdater` and
    :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater` (where they are
    the root's). Read-only views of state the updater keeps in
    ``_data_record``, ``_normalization_record``, ``_resample_count`` and
    ``_just_resampled``.
    """

    @property
    def data_record(self) -> list:
        """list : The outcomes seen so far, in order."""
        return self._data_record

    @property
    def normalization_record(self) -> list[float]:
        """list of float : Pr(outcome | data so far) of each update."""
        return self._normalization_record

    @property
    def log_total_likelihood(self) -> float:
        """float : Log of the total likelihood of the data record."""
        return float(np.sum(np.log(self._normalization_record)))

    @property
    def resample_count(self) -> int:
        """int : Number of resampling steps so far."""
        return self._resample_count

    @property
    def just_resampled(self) -> bool:
        """bool : Whether the last action was a resampling step."""
        return self._just_resampled

    @property
    def min_n_ess(self) -> float:
        """float : The smallest effective sample size an update has left, before resampling (at first n_particles)."""
        return getattr(self, "_min_n_ess", float(self.n_particles))  # also for updaters pickled without one

    @property
    def resampling_divergences(self) -> list | None:
        """list of float or None : The divergence of each resampled cloud from the one before.

        Recorded with ``track_resampling_divergence=True`` (see
        :meth:`est_kl_divergence`); otherwise None.
        """
        return getattr(self, "_resampling_divergences", None)


class SMCUpdater(UpdaterEstimates, UpdaterRecord):
    """Sequential Monte Carlo approximation of a posterior (qinfer's ``SMCUpdater``).

    Parameters
    ----------
    model : Model
        Any object with ``n_modelparams``, ``likelihood`` and ``are_models_valid``
        in qinfer's conventions.
    n_particles : int
        Number of particles.
    prior : Distribution
        Sampled for the initial particles (and by :meth:`reset`); its
        ``sample`` is given the updater's generator when it accepts an ``rng``
        keyword.
    resampler : callable or None, optional
        ``resampler(model, weights, locations, rng=...)``; None gives
        ``LiuWestResampler(a=0.98)``.
    resample_thresh : float, optional
        Resample when ``n_ess < resample_thresh * n_particles`` (default 0.5).
    rng : numpy.random.Generator, int or None, optional
        Source of all the updater's randomness, or a seed for one.
    zero_weight_policy : {"error", "warn", "skip", "reset", "ignore"}, optional
        What :meth:`update` does when a datum leaves every particle weight
        zero (the datum is impossible under the current posterior), or not a
        number: ``"error"`` (default) raises ``RuntimeError`` and changes
        nothing; ``"warn"`` warns with :class:`ApproximationWarning` and
        applies the update anyway (the approximation is then dead);
        ``"ignore"`` does the same silently; ``"skip"`` leaves the updater
        unchanged and returns (the datum is not recorded); ``"reset"`` warns,
        records the datum and its normalisation, and restarts from a fresh
        sample of the prior with uniform weights.
    zero_weight_thresh : float or None, optional
        The total weight at or below which the policy applies; None uses the
        class attribute :attr:`zero_weight_thresh`.
    resample_a : float or None, optional
        qinfer's older way to say ``resampler=LiuWestResampler(a=resample_a)``
        (with a :class:`DeprecationWarning`, as in qinfer); not with ``resampler``.
    debug_resampling : bool, optional
        Log how each resampling moved the mean and covariance (``logging``,
        level DEBUG).
    track_resampling_divergence : bool, optional
        Record in :attr:`resampling_divergences` the divergence of each
        resampled cloud from the one before (costs ``n_particles**2``
        distances per resampling).
    canonicalize : bool, optional
        Map the particles to the model's canonical parameters after drawing
        them from the prior and after resampling (default True).

    Attributes
    ----------
    particle_weights : numpy.ndarray, shape (n_particles,)
    particle_locations : numpy.ndarray, shape (n_particles, n_modelparams)
    rng : numpy.random.Generator
    zero_weight_thresh : float

    Notes
    -----
    :meth:`update`, :meth:`batch_update` and :meth:`resample` are atomic: the
    new weights, locations and records are computed aside, resampling
    included, and applied only when all of it succeeded. If anything raises
    (the model, the resampler, a ``KeyboardInterrupt``) the updater is left
    exactly as it was, its generator's state included, so retrying the same
    datum counts it once and draws the same random numbers.
    """

    #: Default total weight at or below which an update is treated as leaving every weight zero.
    zero_weight_thresh = 1e-10

    def __init__(self, model, n_particles: int, prior, resampler=None,
                 resample_thresh: float = 0.5, rng=None, zero_weight_policy: str = "error",
                 zero_weight_thresh: float | None = None, resample_a: float | None = None,
                 debug_resampling: bool = False, track_resampling_divergence: bool = False,
                 canonicalize: bool = True):
        self.zero_weight_policy = zero_weight_policy  # checked by the setter, before anything else
        self.model = model
        self.n_particles = int(n_particles)
        self.prior = prior
        self.resampler = _chosen_resampler(resampler, resample_a)
        self.resample_thresh = float(resample_thresh)
        self.rng = np.random.default_rng(rng)
        if zero_weight_thresh is not None:
            self.zero_weight_thresh = float(zero_weight_thresh)
        self._debug_resampling = bool(debug_resampling)
        self._canonicalize = bool(canonicalize)

        self._data_record = []
        self._normalization_record = []
        self._resample_count = 0
        self._just_resampled = False
        self._min_n_ess = float(self.n_particles)
        self._resampling_divergences = [] if track_resampling_divergence else None

        self.particle_locations = self._sample_prior(self.n_particles)
        self.particle_weights = np.full(self.n_particles, 1.0 / self.n_particles)

    def _sample_prior(self, n: int) -> np.ndarray:
        """``n`` canonical particles from the prior, drawn with the updater's generator when it takes one."""
        return _prior_sample(self.prior, self.model, n, self.rng, canonical=getattr(self, "_canonicalize", True),
                             other_width="warn")

    def _cloud(self):
        return self.particle_weights, self.particle_locations

    @property
    def zero_weight_policy(self) -> str:
        """str : What :meth:`update` does with a datum that leaves every weight zero (see the parameters)."""
        return getattr(self, "_zero_weight_policy", "error")  # "error" also for updaters pickled without one

    @zero_weight_policy.setter
    def zero_weight_policy(self, policy: str) -> None:
        if policy not in ZERO_WEIGHT_POLICIES:
            raise ValueError(f"zero_weight_policy must be one of {ZERO_WEIGHT_POLICIES}, got {policy!r}")
        self._zero_weight_policy = policy

    # -- read-only state -------------------------------------------------------

    @property
    def n_ess(self) -> float:
        """float : Effective sample size ``1 / sum(w**2)``."""
        return float(1 / np.sum(self.particle_weights**2))

    @property
    def n_rvs(self) -> int:
        """int : Number of model parameters."""
        return self.model.n_modelparams

    # -- all or nothing ---------------------------------------------------------

    def _snapshot(self) -> tuple:
        # Updates replace the arrays instead of writing into them, so references suffice.
        divergences = self.resampling_divergences
        return (self.particle_weights, self.particle_locations, self.n_particles, len(self._data_record),
                len(self._normalization_record), self._resample_count, self._just_resampled,
                self.rng.bit_generator.state, self.min_n_ess, None if divergences is None else len(divergences))

    def _restore(self, snapshot: tuple) -> None:
        (self.particle_weights, self.particle_locations, self.n_particles, n_data, n_norms,
         self._resample_count, self._just_resampled, self.rng.bit_generator.state, self._min_n_ess,
         n_divergences) = snapshot
        del self._data_record[n_data:]
        del self._normalization_record[n_norms:]
        if n_divergences is not None:
            del self._resampling_divergences[n_divergences:]

    def _commit(self, step: _Step) -> None:
        if step.record is not None:
            outcome, norm = step.record
            self._data_record.append(outcome)
            self._normalization_record.append(norm)
        self.particle_weights = step.weights
        self.particle_locations = step.locations
        self.n_particles = step.weights.shape[0]
        self._just_resampled = step.resampled
        if step.n_ess is not None and step.n_ess <= self.min_n_ess:
            self._min_n_ess = step.n_ess
        if step.resampled:
            self._resample_count += 1
            if step.divergence is not None and self.resampling_divergences is not None:
                self._resampling_divergences.append(step.divergence)
            self._clear_model_cache()

    def _clear_model_cache(self) -> None:
        clear = getattr(self.model, "clear_cache", None)
        if clear is not None:
            try:
                clear()
            except Exception as exc:  # a cache is never worth failing an update for
                warnings.warn(f"Exception raised when clearing model cache: {exc}. Ignoring.", stacklevel=3)

    # -- updating -----------------------------------------------------------

    def hypothetical_update(self, outcomes, expparams, return_likelihood: bool = False,
                            return_normalization: bool = False):
        """Posterior weights for hypothetical outcomes, leaving the updater unchanged.

        Parameters
        ----------
        outcomes : int or numpy.ndarray of int, shape (n_outcomes,)
        expparams : numpy.ndarray, shape (n_experiments,)
        return_likelihood : bool, optional
            Also return the likelihood, shape (n_outcomes, n_experiments, n_particles).
        return_normalization : bool, optional
            Also return the normalisation, shape (n_outcomes, n_experiments, 1).

        Returns
        -------
        weights : numpy.ndarray, shape (n_outcomes, n_experiments, n_particles)
            Followed by the likelihood and/or normalisation, if asked for.
        """
        if not isinstance(outcomes, np.ndarray):
            outcomes = np.array([outcomes])
        L = self.model.likelihood(outcomes, self.particle_locations, expparams).transpose([0, 2, 1])
        # C order makes every sum over particles run along contiguous memory (numpy's pairwise
        # summation), as it does for a single experiment: so each experiment's weights are the
        # same whether it is evaluated alone or among others.
        hyp_weights = np.multiply(self.particle_weights, L, order="C")
        norm = np.sum(hyp_weights, axis=2)[..., np.newaxis]
        # An impossible outcome leaves every weight zero instead of NaN.
        safe_norm = np.where(np.abs(norm) < np.spacing(1), 1.0, norm)
        weights = hyp_weights
        weights /= safe_norm  # in place: the same values, one large array fewer

        extra = ()
        if return_likelihood:
            extra += (L,)
        if return_normalization:
            extra += (norm,)
        return (weights,) + extra if extra else weights

    def update(self, outcome, expparams, check_for_resample: bool = True) -> None:
        """Condition the posterior on one observed outcome.

        Atomic (see the class notes): if the model, the zero-weight policy or
        the resampling step raises, nothing has changed.

        Parameters
        ----------
        outcome : int, float or record
            The observed outcome: a scalar or an array of one element.
        expparams : numpy.ndarray, shape (1,)
            The experiment performed.
        check_for_resample : bool, optional
            Resample afterwards if the effective sample size is too small.

        Raises
        ------
        ValueError
            When ``outcome`` holds more than one value.
        TypeError
            When ``outcome`` is not a number or a record.
        RuntimeError
            With ``zero_weight_policy="error"``, when the outcome leaves every
            weight zero.
        """
        outcomes = _one_outcome(outcome)
        rng_state = self.rng.bit_generator.state
        try:
            step = self._updated(outcome, outcomes, expparams, check_for_resample)
        except BaseException:
            self.rng.bit_generator.state = rng_state
            raise
        if step is not None:
            self._commit(step)

    def _updated(self, outcome, outcomes, expparams, check_for_resample: bool) -> _Step | None:
        """What :meth:`update` leaves, computed without changing the updater (None: skip the datum).

        ``outcome`` is recorded as given; the likelihood is given ``outcomes``, its one-element array.
        """
        weights, norm = self.hypothetical_update(outcomes, expparams, return_normalization=True)
        weights = weights[0, 0, :]
        norm = float(norm[0, 0, 0])

        if np.any(weights < 0):
            warnings.warn(
                "Negative weights occurred in particle approximation. Smallest weight "
                f"observed == {np.min(weights)}. Clipping weights.",
                ApproximationWarning,
                stacklevel=3,
            )
            weights = np.clip(weights, 0, 1)
        # "not >" also catches NaN weights (a NaN or infinite likelihood), which no later step could recover from.
        total = np.sum(weights)
        if not total > self.zero_weight_thresh:
            policy = self.zero_weight_policy
            if policy == "error":
                raise _zero_weights_error(outcome, total)
            if policy == "skip":
                return None
            if policy == "reset":
                warnings.warn("All particle weights are zero. Resetting from initial prior.",
                              ApproximationWarning, stacklevel=3)
                locations = self._sample_prior(self.n_particles)
                return _Step(np.full(self.n_particles, 1.0 / self.n_particles), locations, (outcome, norm), False)
            if policy == "warn":
                warnings.warn("All particle weights are zero. This will very likely fail quite badly.",
                              ApproximationWarning, stacklevel=3)

        timestep = getattr(self.model, "update_timestep", None)
        locations = (
            self.particle_locations if timestep is None
            else timestep(self.particle_locations, expparams)[:, :, 0]
        )
        with np.errstate(divide="ignore"):  # all-zero weights (policy "warn"): n_ess is inf, as in qinfer
            n_ess = float(1 / np.sum(weights**2))
        step = _Step(weights, locations, (outcome, norm), False, n_ess)
        if check_for_resample:
            _warn_if_tiny(n_ess, stacklevel=4)
            if self._needs_resample(weights):
                step = self._resampled(step)
        return step

    def batch_update(self, outcomes, expparams, resample_interval: int = 5) -> None:
        """Update on several outcomes in turn, checking for resampling every few.

        Atomic as a whole: if any update fails, the updater is left as it was
        before the first.

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
        snapshot = self._snapshot()
        try:
            for idx, (outcome, experiment) in enumerate(zip(outcomes, expparams)):
                self.update(outcome, experiment, check_for_resample=False)
                if (idx + 1) % resample_interval == 0:
                    self._maybe_resample()
        except BaseException:
            self._restore(snapshot)
            raise

    def _needs_resample(self, weights: np.ndarray) -> bool:
        with np.errstate(divide="ignore"):  # all-zero weights (policy "warn"): n_ess is inf, as in qinfer
            return 1 / np.sum(weights**2) < weights.shape[0] * self.resample_thresh

    def _maybe_resample(self) -> None:
        _warn_if_tiny(self.n_ess, stacklevel=4)
        if self._needs_resample(self.particle_weights):
            self.resample()

    def resample(self) -> None:
        """Resample now, with the updater's resampler and generator (atomic, like :meth:`update`)."""
        if self._just_resampled:
            warnings.warn(
                "Resampling without additional data; this may not perform as desired.",
                ResamplerWarning,
                stacklevel=2,
            )
        rng_state = self.rng.bit_generator.state
        try:
            step = self._resampled(_Step(self.particle_weights, self.particle_locations, None, False))
        except BaseException:
            self.rng.bit_generator.state = rng_state
            raise
        self._commit(step)

    def _resampled(self, step: _Step) -> _Step:
        """``step`` followed by a resampling step, computed without changing the updater."""
        resampler = self.resampler
        if type(resampler).__call__ is LiuWestResampler.__call__:
            weights, locations = resampler._resample(self.model, step.weights, step.locations, rng=self.rng)
        elif isinstance(resampler, Resampler) and not isinstance(resampler, LiuWestResampler):
            # qinfer's form: the cloud in, the new cloud out.
            new = resampler(self.model, ParticleDistribution(particle_locations=step.locations,
                                                             particle_weights=step.weights))
            weights, locations = new.particle_weights, new.particle_locations
        else:  # any other callable (a subclass's own __call__ too) in this package's form: (model, weights, locations)
            weights, locations = resampler(self.model, step.weights, step.locations, rng=self.rng)
        weights, locations = np.asarray(weights, dtype=np.float64), np.asarray(locations, dtype=np.float64)
        if getattr(self, "_canonicalize", True):
            locations = _canonicalize(self.model, locations)
        divergence = None
        if getattr(self, "_resampling_divergences", None) is not None:
            divergence = kl_divergence(weights, locations, step.weights, step.locations,
                                       scale=self._divergence_scale())
        if getattr(self, "_debug_resampling", False):
            old_mean, old_cov = _weighted_mean(step.weights, step.locations), \
                _weighted_covariance(step.weights, step.locations)
            logger.debug("Resampling changed mean by %s. Norm change in cov: %s.",
                         old_mean - _weighted_mean(weights, locations),
                         np.linalg.norm(_weighted_covariance(weights, locations) - old_cov))
        return _Step(weights, locations, step.record, True, step.n_ess, divergence)

    def reset(self, n_particles: int | None = None, only_params=None, reset_weights: bool = True) -> None:
        """Draw the particles afresh from the prior (qinfer's ``reset``).

        The records and the resample count are kept.

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
        n = _reset_count(n_particles, only_params, reset_weights, self.n_particles)
        rng_state = self.rng.bit_generator.state
        try:
            fresh = self._sample_prior(n)
            if only_params is not None:
                locations = self.particle_locations.copy()
                locations[:, only_params] = fresh[:, only_params]
                fresh = _canonicalize(self.model, locations) if getattr(self, "_canonicalize", True) else locations
        except BaseException:
            self.rng.bit_generator.state = rng_state
            raise
        self.particle_locations = fresh
        self.n_particles = n
        if reset_weights:
            self.particle_weights = np.full(n, 1.0 / n)

    # -- experiment design --------------------------------------------------------

    def _outcome_groups(self, expparams: np.ndarray):
        """Pairs ``(outcomes, experiment indices)``: experiments that share their outcome values."""
        n_exp = expparams.shape[0]
        model = self.model
        domain = getattr(model, "domain", None)
        if domain is not None:
            constant = getattr(model, "is_n_outcomes_constant", False)
            # One experiment's domain stands for all when the outcomes do not depend on the experiment.
            domains = domain(expparams[:1] if constant else expparams)
            if not isinstance(domains, (list, tuple)):  # a model that answers one domain, not a list
                return [(np.asarray(domains.values), np.arange(n_exp))]
            if constant:
                return [(np.asarray(domains[0].values), np.arange(n_exp))]
            values = [np.asarray(d.values) for d in domains]
        elif hasattr(model, "n_outcomes"):
            counts = np.broadcast_to(np.asarray(model.n_outcomes(expparams)), (n_exp,))
            values = [np.arange(int(count)) for count in counts]
        else:
            raise TypeError(f"{type(model).__name__} has neither domain() nor n_outcomes(): "
                            "the outcomes to average over are unknown")
        groups = {}
        for idx, outcomes in enumerate(values):
            groups.setdefault((outcomes.dtype.str, outcomes.tobytes()), (outcomes, []))[1].append(idx)
        return [(outcomes, np.array(indices)) for outcomes, indices in groups.values()]

    def _design_quantity(self, expparams, per_group) -> np.ndarray:
        """``per_group(weights, norm)`` over every possible outcome of each experiment.

        One likelihood call per set of experiments that share their outcomes
        (one call in all for a model whose outcomes are fixed), over all
        outcomes, particles and experiments at once: through a parallel proxy
        it is split over the experiments when they outnumber the particles.
        """
        expparams = np.asarray(expparams)
        if expparams.ndim != 1 or expparams.shape[0] == 0:
            raise ValueError(f"expparams must be a non-empty 1-d array of experiments, got shape {expparams.shape}")
        result = np.empty(expparams.shape[0])
        for outcomes, indices in self._outcome_groups(expparams):
            chosen = expparams if indices.size == expparams.shape[0] else expparams[indices]
            weights, norm = self.hypothetical_update(outcomes, chosen, return_normalization=True)
            result[indices] = per_group(weights, norm[..., 0])
        return result

    def bayes_risk(self, expparams) -> np.ndarray:
        r"""The Bayes risk of each experiment under the quadratic loss of the model's ``Q``.

        For experiment :math:`e`, the expected posterior variance
        :math:`\sum_d \Pr(d | e) \sum_i Q_i \operatorname{Var}[x_i | d, e]`,
        the sum over every outcome :math:`d` (qinfer's definition). Lower is
        better. Leaves the updater unchanged.

        Parameters
        ----------
        expparams : numpy.ndarray, shape (n_experiments,)
            Candidate experiments, of the model's ``expparams_dtype``.

        Returns
        -------
        numpy.ndarray, shape (n_experiments,)
        """
        x = self.particle_locations
        q = np.asarray(getattr(self.model, "Q", np.ones(x.shape[1])), dtype=np.float64)

        def risk(weights, norm):
            # weights: (n_outcomes, n_exp, n_particles); centred variances, in chunks of experiments.
            n_outcomes, n_exp, n_particles = weights.shape
            chunk = max(1, _RISK_CHUNK_ENTRIES // max(1, n_outcomes * n_particles * x.shape[1]))
            variance = np.empty((n_outcomes, n_exp))
            for start in range(0, n_exp, chunk):
                w = weights[:, start:start + chunk, :]
                mean = w @ x
                spread = np.sum(q * (x - mean[:, :, np.newaxis, :]) ** 2, axis=3)
                variance[:, start:start + chunk] = np.sum(w * spread, axis=2)
            return np.sum(norm * variance, axis=0)

        return self._design_quantity(expparams, risk)

    def expected_information_gain(self, expparams) -> np.ndarray:
        r"""The expected information gain of each experiment (qinfer's definition).

        For experiment :math:`e`, :math:`\sum_d \Pr(d | e)\, \mathrm{KL}(w_{d,e} \| w)`,
        the Kullback-Leibler divergence of the hypothetical posterior weights
        from the current ones, averaged over the outcomes :math:`d` (terms
        with zero weight count as zero). Higher is better. Leaves the updater
        unchanged.

        Parameters
        ----------
        expparams : numpy.ndarray, shape (n_experiments,)
            Candidate experiments, of the model's ``expparams_dtype``.

        Returns
        -------
        numpy.ndarray, shape (n_experiments,)
        """
        prior_weights = self.particle_weights

        def gain(weights, norm):
            # w log(w / w0), and 0 where w == 0 (the ratio stays 1 there); in place, as the arrays are large.
            terms = np.divide(weights, prior_weights, out=np.ones_like(weights), where=weights > 0)
            np.log(terms, out=terms)
            terms *= weights
            return np.sum(norm * np.sum(terms, axis=2), axis=0)

        return self._design_quantity(expparams, gain)

    # -- estimates --------------------------------------------------------------

    def sample(self, n: int = 1) -> np.ndarray:
        """Draw particles from the current posterior with the updater's generator.

        Parameters
        ----------
        n : int, optional
            Number of samples.

        Returns
        -------
        numpy.ndarray, shape (n, n_modelparams)
        """
        return self.particle_locations[_draw_indices(self.particle_weights, n, self.rng)]

    def est_mean(self) -> np.ndarray:
        """The posterior mean.

        Returns
        -------
        numpy.ndarray, shape (n_modelparams,)
        """
        return _weighted_mean(self.particle_weights, self.particle_locations)

    def est_covariance_mtx(self, corr: bool = False) -> np.ndarray:
        """The posterior covariance.

        Parameters
        ----------
        corr : bool, optional
            Return the correlation matrix instead (the covariance divided by
            the outer product of the standard deviations).

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams)
        """
        return _correlation(_weighted_covariance(self.particle_weights, self.particle_locations), corr)

    def est_entropy(self) -> float:
        r"""The entropy :math:`-\sum_i w_i \log w_i` of the particle weights (zero weights omitted).

        Returns
        -------
        float
        """
        return entropy(self.particle_weights)

    def est_credible_region(self, level: float = 0.95, return_outside: bool = False, modelparam_slice=None):
        """The particles of a credible region: the heaviest first, until their weight reaches ``level``.

        See :func:`mpi_qinfer.smc.posterior.credible_region` for the details.

        Parameters
        ----------
        level : float, optional
            Credibility, in (0, 1] (default 0.95).
        return_outside : bool, optional
            Also return the particles outside the region.
        modelparam_slice : slice or None, optional
            Which parameters to return (default all).

        Returns
        -------
        inside : numpy.ndarray, shape (n_credible, n_selected_params)
        outside : numpy.ndarray, shape (n_particles - n_credible, n_selected_params)
            Only with ``return_outside=True``.
        """
        return credible_region(self.particle_weights, self.particle_locations, level,
                                         return_outside=return_outside, modelparam_slice=modelparam_slice)

    def posterior_marginal(self, idx_param: int = 0, res: int = 100, smoothing: float = 0,
                           range_min: float | None = None, range_max: float | None = None):
        """The marginal density of one parameter, from the derivative of its interpolated CDF.

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
        return marginal(self.particle_weights, self.particle_locations, idx_param, res,
                                  smoothing=smoothing, range_min=range_min, range_max=range_max)
