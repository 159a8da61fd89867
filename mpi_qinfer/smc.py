"""Sequential Monte Carlo Bayesian updating: qinfer's SMCUpdater and LiuWestResampler.

The updater touches its model only through ``n_modelparams``, ``likelihood``,
``are_models_valid`` and, when present, ``canonicalize``, ``update_timestep``
and ``clear_cache``, so it runs unchanged on our models, on real qinfer models
and on a parallel proxy model. All of its randomness comes from its own
:class:`numpy.random.Generator`.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

__all__ = ["LiuWestResampler", "SMCUpdater", "ApproximationWarning", "ResamplerWarning"]


class ApproximationWarning(RuntimeWarning):
    """The particle approximation has degenerated (negative or all-zero weights)."""


class ResamplerWarning(RuntimeWarning):
    """Resampling may not have done what was intended."""


def _canonicalize(model, locations: np.ndarray) -> np.ndarray:
    canonicalize = getattr(model, "canonicalize", None)
    return locations if canonicalize is None else canonicalize(locations)


def _weighted_mean(weights: np.ndarray, locations: np.ndarray) -> np.ndarray:
    return weights @ locations


def _weighted_covariance(weights: np.ndarray, locations: np.ndarray) -> np.ndarray:
    centred = locations - _weighted_mean(weights, locations)
    cov = np.einsum("i,im,in->mn", weights, centred, centred)
    return (cov + cov.T) / 2


def _draw_indices(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn with probabilities ``weights`` (which sum to one)."""
    cumsum = np.cumsum(weights)
    # Rounding can leave cumsum[-1] a hair below one; never index past the end.
    return np.minimum(cumsum.searchsorted(rng.random(n), side="right"), weights.size - 1)


def _covariance_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix ``S`` with ``S @ S.T == cov``, for a symmetric PSD ``cov``."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        # Singular (e.g. one parameter collapsed): use the PSD square root instead.
        values, vectors = np.linalg.eigh(cov)
        return vectors * np.sqrt(np.clip(values, 0, None))


class LiuWestResampler:
    """The resampler of Liu and West (2000), as in qinfer.

    Each new particle is ``a x_j + (1 - a) mu + h S z`` with ``j`` drawn from
    the weights, ``mu`` and ``S S^T`` the weighted mean and covariance, and
    ``z`` standard normal. Particles that the model declares invalid get a new
    ``z`` (same ``j``), up to ``maxiter`` rounds.

    Parameters
    ----------
    a : float, optional
        Contraction towards the mean (default 0.98).
    h : float or None, optional
        Kernel width; None gives ``sqrt(1 - a**2)``, which keeps the first two
        moments.
    maxiter : int, optional
        Rounds of redrawing invalid particles before giving up with a warning.
    zero_cov_comp : float, optional
        Variance used on every parameter when the covariance is exactly zero.
    """

    def __init__(self, a: float = 0.98, h: float | None = None, maxiter: int = 1000,
                 zero_cov_comp: float = 1e-10):
        self.a = float(a)
        self.h = float(np.sqrt(1 - self.a**2)) if h is None else float(h)
        self.maxiter = int(maxiter)
        self.zero_cov_comp = float(zero_cov_comp)

    def __repr__(self) -> str:
        return f"LiuWestResampler(a={self.a}, h={self.h}, maxiter={self.maxiter})"

    def __call__(self, model, particle_weights, particle_locations,
                 rng: np.random.Generator | None = None):
        """Resample a particle approximation.

        Parameters
        ----------
        model : Model
            Judges validity (``are_models_valid``) and canonicalises the result.
        particle_weights : numpy.ndarray, shape (n_particles,)
        particle_locations : numpy.ndarray, shape (n_particles, n_modelparams)
        rng : numpy.random.Generator or None, optional
            Source of randomness; None uses a fresh ``numpy.random.default_rng()``.

        Returns
        -------
        new_weights : numpy.ndarray, shape (n_particles,)
            Uniform weights.
        new_locations : numpy.ndarray, shape (n_particles, n_modelparams)
        """
        rng = np.random.default_rng(rng)
        w = np.asarray(particle_weights, dtype=np.float64)
        x = np.asarray(particle_locations, dtype=np.float64)
        n_particles, n_mp = x.shape

        mean = _weighted_mean(w, x)
        cov = _weighted_covariance(w, x)
        if np.linalg.norm(cov, "fro") == 0:
            warnings.warn(
                "Covariance has zero norm; adding in small covariance in resampler. "
                "Consider increasing n_particles to improve covariance estimates.",
                ResamplerWarning,
                stacklevel=2,
            )
            cov = self.zero_cov_comp * np.eye(n_mp)
        scale = self.h * _covariance_factor(cov)

        js = _draw_indices(w, n_particles, rng)
        mus = self.a * x[js] + (1 - self.a) * mean
        new_locs = np.empty_like(x)
        todo = np.arange(n_particles)
        for _ in range(self.maxiter):
            new_locs[todo] = mus[todo] + rng.standard_normal((todo.size, n_mp)) @ scale.T
            valid = np.asarray(model.are_models_valid(new_locs[todo]), dtype=bool).reshape(-1)
            todo = todo[~valid]
            if todo.size == 0:
                break
        if todo.size:
            warnings.warn(
                f"Liu-West resampling failed to find valid models for {todo.size} "
                f"particles within {self.maxiter} iterations.",
                ResamplerWarning,
                stacklevel=2,
            )

        new_weights = np.full(n_particles, 1.0 / n_particles)
        return new_weights, _canonicalize(model, new_locs)


class SMCUpdater:
    """Sequential Monte Carlo approximation of a posterior (qinfer's ``SMCUpdater``).

    Parameters
    ----------
    model : Model
        Any object with ``n_modelparams``, ``likelihood`` and ``are_models_valid``
        in qinfer's conventions.
    n_particles : int
        Number of particles.
    prior : Distribution
        Sampled once for the initial particles; its ``sample`` is given the
        updater's generator when it accepts an ``rng`` keyword.
    resampler : callable or None, optional
        ``resampler(model, weights, locations, rng=...)``; None gives
        ``LiuWestResampler(a=0.98)``.
    resample_thresh : float, optional
        Resample when ``n_ess < resample_thresh * n_particles`` (default 0.5).
    rng : numpy.random.Generator, int or None, optional
        Source of all the updater's randomness, or a seed for one.

    Attributes
    ----------
    particle_weights : numpy.ndarray, shape (n_particles,)
    particle_locations : numpy.ndarray, shape (n_particles, n_modelparams)
    rng : numpy.random.Generator
    """

    #: The total weight at or below which an update warns that all weights are zero.
    zero_weight_thresh = 1e-10

    def __init__(self, model, n_particles: int, prior, resampler=None,
                 resample_thresh: float = 0.5, rng=None):
        self.model = model
        self.n_particles = int(n_particles)
        self.prior = prior
        self.resampler = LiuWestResampler(a=0.98) if resampler is None else resampler
        self.resample_thresh = float(resample_thresh)
        self.rng = np.random.default_rng(rng)

        self._data_record = []
        self._normalization_record = []
        self._resample_count = 0
        self._just_resampled = False

        if "rng" in inspect.signature(prior.sample).parameters:
            locations = prior.sample(n=self.n_particles, rng=self.rng)
        else:  # a foreign (e.g. qinfer) prior
            locations = prior.sample(n=self.n_particles)
        self.particle_locations = _canonicalize(model, np.asarray(locations, dtype=np.float64))
        self.particle_weights = np.full(self.n_particles, 1.0 / self.n_particles)

    # -- read-only state -------------------------------------------------------

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
    def n_ess(self) -> float:
        """float : Effective sample size ``1 / sum(w**2)``."""
        return float(1 / np.sum(self.particle_weights**2))

    @property
    def n_rvs(self) -> int:
        """int : Number of model parameters."""
        return self.model.n_modelparams

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
        hyp_weights = self.particle_weights * L
        norm = np.sum(hyp_weights, axis=2)[..., np.newaxis]
        # An impossible outcome leaves every weight zero instead of NaN.
        safe_norm = np.where(np.abs(norm) < np.spacing(1), 1.0, norm)
        weights = hyp_weights / safe_norm

        extra = ()
        if return_likelihood:
            extra += (L,)
        if return_normalization:
            extra += (norm,)
        return (weights,) + extra if extra else weights

    def update(self, outcome, expparams, check_for_resample: bool = True) -> None:
        """Condition the posterior on one observed outcome.

        Atomic: the model is evaluated before any state changes, so if the
        likelihood (or timestep) raises, the updater is left exactly as it was.

        Parameters
        ----------
        outcome : int
            The observed outcome.
        expparams : numpy.ndarray, shape (1,)
            The experiment performed.
        check_for_resample : bool, optional
            Resample afterwards if the effective sample size is too small.
        """
        weights, norm = self.hypothetical_update(outcome, expparams, return_normalization=True)
        weights = weights[0, 0, :]
        timestep = getattr(self.model, "update_timestep", None)
        locations = (
            self.particle_locations if timestep is None
            else timestep(self.particle_locations, expparams)[:, :, 0]
        )

        if not np.all(weights >= 0):
            warnings.warn(
                "Negative weights occurred in particle approximation. Smallest weight "
                f"observed == {np.min(weights)}. Clipping weights.",
                ApproximationWarning,
                stacklevel=2,
            )
            weights = np.clip(weights, 0, 1)
        if np.sum(weights) <= self.zero_weight_thresh:
            warnings.warn(
                "All particle weights are zero. This will very likely fail quite badly.",
                ApproximationWarning,
                stacklevel=2,
            )

        self._data_record.append(outcome)
        self._normalization_record.append(float(norm[0, 0, 0]))
        self.particle_weights = weights
        self.particle_locations = locations
        self._just_resampled = False

        if check_for_resample:
            self._maybe_resample()

    def batch_update(self, outcomes, expparams, resample_interval: int = 5) -> None:
        """Update on several outcomes in turn, checking for resampling every few.

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
        for idx, (outcome, experiment) in enumerate(zip(outcomes, expparams)):
            self.update(outcome, experiment, check_for_resample=False)
            if (idx + 1) % resample_interval == 0:
                self._maybe_resample()

    def _maybe_resample(self) -> None:
        if self.n_ess < self.n_particles * self.resample_thresh:
            self.resample()

    def resample(self) -> None:
        """Resample now, with the updater's resampler and generator."""
        if self._just_resampled:
            warnings.warn(
                "Resampling without additional data; this may not perform as desired.",
                ResamplerWarning,
                stacklevel=2,
            )
        weights, locations = self.resampler(
            self.model, self.particle_weights, self.particle_locations, rng=self.rng
        )
        self.particle_weights = np.asarray(weights, dtype=np.float64)
        self.particle_locations = np.asarray(locations, dtype=np.float64)
        self._just_resampled = True
        self._resample_count += 1

        clear = getattr(self.model, "clear_cache", None)
        if clear is not None:
            try:
                clear()
            except Exception as exc:  # a cache is never worth failing an update for
                warnings.warn(f"Exception raised when clearing model cache: {exc}. Ignoring.", stacklevel=2)

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

    def est_covariance_mtx(self) -> np.ndarray:
        """The posterior covariance.

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams)
        """
        return _weighted_covariance(self.particle_weights, self.particle_locations)
