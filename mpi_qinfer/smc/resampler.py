"""The resamplers of the SMC layer: qinfer's ``Resampler`` and ``LiuWestResampler``, and the checks around resampling.

Both updaters (:mod:`mpi_qinfer.smc.updater`, which re-exports the classes, and
:mod:`mpi_qinfer.distributed.updater`) take their resampler, the square root of
the cloud's covariance and qinfer's refusals and warnings about resampling
from here. A resampler draws from the generator it is given.
"""

from __future__ import annotations

import abc
import logging
import warnings

import numpy as np

from ._shared import _canonicalize, _weighted_covariance, _weighted_mean
from ._warnings import ApproximationWarning, ResamplerError, ResamplerWarning
from .particles import ParticleDistribution, _draw_indices

# The updater's logger: turning on DEBUG for it shows the resampler's rounds too, as it always did.
logger = logging.getLogger("mpi_qinfer.smc.updater")

__all__ = ["Resampler", "LiuWestResampler"]


def _covariance_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix ``S`` with ``S @ S.T == cov``, for a symmetric PSD ``cov``."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        # Singular (e.g. one parameter collapsed): use the PSD square root instead.
        values, vectors = np.linalg.eigh(cov)
        return vectors * np.sqrt(np.clip(values, 0, None))


def _chosen_resampler(resampler, resample_a):
    """The resampler an updater is given, from its ``resampler`` and qinfer's older ``resample_a``."""
    if isinstance(resampler, (int, float, np.number)) and not isinstance(resampler, bool):
        raise TypeError(f"resampler must be a resampler, got the number {resampler!r}; the fourth parameter of "
                        "SMCUpdater is resampler here (qinfer's resample_a goes by keyword: resample_a=0.98)")
    if resample_a is not None:
        warnings.warn("The 'resample_a' keyword argument is deprecated; use 'resampler=LiuWestResampler(a)' "
                      "instead.", DeprecationWarning, stacklevel=3)
        if resampler is not None:
            raise ValueError("Both a resample_a and an explicit resampler were provided; please provide only one.")
        return LiuWestResampler(a=resample_a)
    return LiuWestResampler(a=0.98) if resampler is None else resampler


def _check_finite_covariance(cov: np.ndarray) -> None:
    """qinfer's refusal to resample from a cloud whose covariance is not finite (NaN or infinite weights)."""
    if not np.all(np.isfinite(cov)):
        raise ResamplerError("Infinite error in computing the square root of the covariance matrix. "
                             "Check that n_ess is not too small.")


def _warn_if_tiny(n_ess: float, stacklevel: int) -> None:
    """qinfer's warning before a resampling check on a cloud of (almost) no effective particles."""
    if n_ess <= _TINY_N_ESS:
        warnings.warn(_tiny_n_ess_warning(n_ess), ApproximationWarning, stacklevel=stacklevel)


#: qinfer's warning of an effective sample size too small for resampling to work, at or below this size.
_TINY_N_ESS = 10


def _tiny_n_ess_warning(n_ess: float) -> str:
    return (f"Extremely small n_ess encountered ({n_ess}). Resampling is likely to fail. Consider adding "
            "particles, or resampling more often.")


class Resampler(abc.ABC):
    """qinfer's abstract resampler: ``resampler(model, particle_dist)`` returns the resampled cloud.

    A subclass gives ``__call__(model, particle_dist, n_particles=None,
    precomputed_mean=None, precomputed_cov=None)`` returning a
    :class:`~mpi_qinfer.smc.particles.ParticleDistribution`; an
    :class:`~mpi_qinfer.smc.updater.SMCUpdater` calls it so (and then canonicalises the particles).
    """

    @abc.abstractmethod
    def __call__(self, model, particle_dist, n_particles=None, precomputed_mean=None, precomputed_cov=None):
        """The resampled cloud (see the class notes)."""


class LiuWestResampler(Resampler):
    """The resampler of Liu and West (2001), as in qinfer.

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
        moments (and follows later changes of ``a``, as in qinfer).
    maxiter : int, optional
        Rounds of redrawing invalid particles before giving up with a warning.
    debug : bool, optional
        Log each resampling's number of rounds (``logging`` level DEBUG).
    postselect : bool, optional
        Redraw invalid particles (default True); False keeps them.
    zero_cov_comp : float, optional
        Variance used on every parameter when the covariance is exactly zero.
    default_n_particles : int or None, optional
        Particles to draw when a call does not say; None: as many as given.
    kernel : callable or None, optional
        ``kernel(n_modelparams, n)``: an ``(n_modelparams, n)`` array of
        draws of mean 0 and variance 1 (qinfer's default is
        ``numpy.random.randn``); None draws standard normals from the
        generator of the call.

    Notes
    -----
    The parameters are qinfer's (of its source; qinfer 1.0's ``debug``,
    ``postselect`` and ``kernel`` too), in its order. A float given in the
    place of ``debug`` is taken for ``zero_cov_comp``, the fourth parameter
    of earlier releases of this package, with a :class:`DeprecationWarning`.
    """

    def __init__(self, a: float = 0.98, h: float | None = None, maxiter: int = 1000, debug: bool = False,
                 postselect: bool = True, zero_cov_comp: float = 1e-10, default_n_particles: int | None = None,
                 kernel=None):
        if isinstance(debug, float):
            warnings.warn("LiuWestResampler's fourth parameter is now debug (as in qinfer); "
                          "give zero_cov_comp by keyword", DeprecationWarning, stacklevel=2)
            debug, zero_cov_comp = False, debug
        self._override_h = h is not None
        self.a = float(a)
        if h is not None:
            self.h = float(h)
        self.maxiter = int(maxiter)
        self.debug = bool(debug)
        self.postselect = bool(postselect)
        self.zero_cov_comp = float(zero_cov_comp)
        self.default_n_particles = None if default_n_particles is None else int(default_n_particles)
        self.kernel = kernel

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "a" and not self.__dict__.get("_override_h", False):
            super().__setattr__("h", float(np.sqrt(1 - value**2)))  # qinfer: h follows a unless it was given
        elif name == "h":
            super().__setattr__("_override_h", True)

    def __repr__(self) -> str:
        return f"LiuWestResampler(a={self.a}, h={self.h}, maxiter={self.maxiter})"

    def __call__(self, model, particle_dist, n_particles=None, precomputed_mean=None, precomputed_cov=None, *,
                 rng: np.random.Generator | None = None):
        """Resample a particle approximation.

        Two forms: qinfer's, ``resampler(model, particle_dist)``, returns a
        :class:`~mpi_qinfer.smc.particles.ParticleDistribution` (and, as
        qinfer's, leaves canonicalising to the updater); the form of qinfer
        1.0 and of earlier releases of this package,
        ``resampler(model, weights, locations)``, returns the pair
        ``(weights, locations)``, canonicalised by the model.

        Parameters
        ----------
        model : Model
            Judges validity (``are_models_valid``).
        particle_dist : ParticleDistribution or updater, or numpy.ndarray
            The cloud to resample (anything with ``particle_weights`` and
            ``particle_locations``); or its weights, shape (n_particles,),
            with the locations next.
        n_particles : int or None, optional
            Particles to draw (None: ``default_n_particles``, else as many as
            given). In the second form, the locations, shape
            (n_particles, n_modelparams), come here.
        precomputed_mean, precomputed_cov : numpy.ndarray or None, optional
            The cloud's mean and covariance, if known.
        rng : numpy.random.Generator or None, optional
            Source of randomness; None uses a fresh ``numpy.random.default_rng()``.

        Returns
        -------
        ParticleDistribution, or (new_weights, new_locations)
            Uniform weights; the new locations, shape (n_new, n_modelparams).
        """
        if hasattr(particle_dist, "particle_weights") and hasattr(particle_dist, "particle_locations"):
            weights, locations = self._resample(model, particle_dist.particle_weights, particle_dist.particle_locations,
                                                n_particles, precomputed_mean, precomputed_cov, rng)
            return ParticleDistribution(particle_locations=locations, particle_weights=weights)
        weights, locations = self._resample(model, particle_dist, n_particles, None, precomputed_mean, precomputed_cov,
                                            rng)
        return weights, _canonicalize(model, locations)

    def _resample(self, model, particle_weights, particle_locations, n_particles=None, precomputed_mean=None,
                  precomputed_cov=None, rng=None):
        """The new ``(weights, locations)``, not canonicalised (the updater does that, if asked to)."""
        rng = np.random.default_rng(rng)
        w = np.asarray(particle_weights, dtype=np.float64)
        x = np.asarray(particle_locations, dtype=np.float64)
        n_mp = x.shape[1]
        if n_particles is None:
            n_particles = x.shape[0] if self.default_n_particles is None else self.default_n_particles

        mean = _weighted_mean(w, x) if precomputed_mean is None else np.asarray(precomputed_mean, dtype=np.float64)
        cov = _weighted_covariance(w, x) if precomputed_cov is None else np.asarray(precomputed_cov, dtype=np.float64)
        if np.linalg.norm(cov, "fro") == 0:
            warnings.warn(
                "Covariance has zero norm; adding in small covariance in resampler. "
                "Consider increasing n_particles to improve covariance estimates.",
                ResamplerWarning,
                stacklevel=3,
            )
            cov = self.zero_cov_comp * np.eye(n_mp)
        _check_finite_covariance(cov)
        scale = self.h * _covariance_factor(cov)

        js = _draw_indices(w, n_particles, rng)
        mus = self.a * x[js] + (1 - self.a) * mean
        new_locs = np.empty_like(mus)
        todo = np.arange(n_particles)
        rounds = 0
        for rounds in range(1, self.maxiter + 1):  # noqa: B007 - the count is reported below
            new_locs[todo] = mus[todo] + self._noise(rng, todo.size, n_mp) @ scale.T
            if not self.postselect:
                todo = todo[:0]
                break
            valid = np.asarray(model.are_models_valid(new_locs[todo]), dtype=bool).reshape(-1)
            todo = todo[~valid]
            if todo.size == 0:
                break
        if todo.size:
            warnings.warn(
                f"Liu-West resampling failed to find valid models for {todo.size} "
                f"particles within {self.maxiter} iterations.",
                ResamplerWarning,
                stacklevel=3,
            )
        if self.debug:
            logger.debug("LW resampling completed in %d iterations.", rounds)

        new_weights = np.full(n_particles, 1.0 / n_particles)
        return new_weights, new_locs

    def _noise(self, rng, n: int, n_mp: int) -> np.ndarray:
        """``(n, n_mp)`` kernel draws: the generator's standard normals, or ``kernel(n_mp, n).T``."""
        if self.kernel is None:
            return rng.standard_normal((n, n_mp))
        return np.asarray(self.kernel(n_mp, n), dtype=np.float64).T
