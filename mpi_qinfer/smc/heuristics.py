"""Experiment design heuristics: qinfer's exponentially sparse times and particle guess heuristic,
and the best of several candidate experiments by Bayes risk or expected information gain."""

from __future__ import annotations

import numpy as np

__all__ = ["Heuristic", "ExpSparseHeuristic", "PGH", "BestCandidateHeuristic", "CRITERIA", "identity"]

#: The scores :class:`BestCandidateHeuristic` can rank candidates by.
CRITERIA = ("infogain", "risk")


def identity(arg):
    """Return ``arg`` unchanged (the default transform of :class:`PGH`).

    Parameters
    ----------
    arg : object

    Returns
    -------
    object
    """
    return arg


class Heuristic:
    """Chooses the next experiment from an updater's state, without optimisation.

    Parameters
    ----------
    updater : SMCUpdater
        The updater whose posterior guides the design.
    """

    def __init__(self, updater):
        self._updater = updater

    @property
    def updater(self):
        """SMCUpdater : The updater this heuristic designs for."""
        return self._updater

    def __call__(self) -> np.ndarray:
        """Design the next experiment.

        Returns
        -------
        numpy.ndarray, shape (1,), of the model's ``expparams_dtype``
        """
        raise NotImplementedError


class ExpSparseHeuristic(Heuristic):
    """Exponentially sparse times ``t_k = scale * base**k`` (k = number of data so far).

    Parameters
    ----------
    updater : SMCUpdater
    scale : float, optional
        The time scale ``A`` (default 1).
    base : float, optional
        The growth factor ``b`` (default 9/8).
    t_field : str or None, optional
        The record field holding the time; None for a scalar ``expparams_dtype``.
    other_fields : dict or None, optional
        Fixed values of the remaining record fields.
    """

    def __init__(self, updater, scale: float = 1, base: float = 9 / 8,
                 t_field: str | None = None, other_fields: dict | None = None):
        super().__init__(updater)
        self.scale = scale
        self.base = base
        self.t_field = t_field
        self.other_fields = dict(other_fields or {})

    def __call__(self) -> np.ndarray:
        """The next experiment (see :meth:`Heuristic.__call__`)."""
        t = self.scale * self.base ** len(self._updater.data_record)
        dtype = self._updater.model.expparams_dtype
        if self.t_field is None:
            return np.array([t], dtype=dtype)
        eps = np.zeros((1,), dtype=dtype)
        for field, value in self.other_fields.items():
            eps[field] = value
        eps[self.t_field] = t
        return eps


class PGH(Heuristic):
    """The particle guess heuristic: ``t = 1 / ||x - x'||`` for two posterior draws.

    Two distinct particles are drawn from the updater's posterior; the time is
    the inverse of their distance (the model's ``distance`` if it has one,
    else the ``Q``-weighted 1-norm) and ``x`` is the inversion hypothesis.

    Parameters
    ----------
    updater : SMCUpdater
    inv_field : str or None, optional
        Record field receiving ``inv_func(x)``; skipped when the
        ``expparams_dtype`` has no such field (e.g. a scalar dtype).
    t_field : str or None, optional
        Record field receiving the time; None for a scalar ``expparams_dtype``.
    inv_func, t_func : callable, optional
        Transforms of ``x`` (shape ``(1, n_modelparams)``) and of the time.
    maxiters : int, optional
        Draws of a pair before giving up with ``RuntimeError`` (default 10).
    other_fields : dict or None, optional
        Fixed values of the remaining record fields.
    rng : numpy.random.Generator, int or None, optional
        Source of the draws; None uses the updater's generator.
    """

    def __init__(self, updater, inv_field: str | None = "x_", t_field: str | None = None,
                 inv_func=identity, t_func=identity, maxiters: int = 10,
                 other_fields: dict | None = None, rng=None):
        super().__init__(updater)
        self.inv_field = inv_field
        self.t_field = t_field
        self.inv_func = inv_func
        self.t_func = t_func
        self.maxiters = int(maxiters)
        self.other_fields = dict(other_fields or {})
        self.rng = None if rng is None else np.random.default_rng(rng)

    def _distance(self, x: np.ndarray, xp: np.ndarray) -> float:
        model = self._updater.model
        distance = getattr(model, "distance", None)
        if distance is not None:
            return float(np.ravel(distance(x, xp))[0])
        q = getattr(model, "Q", np.ones(x.shape[1]))
        return float(np.sum(np.abs(q * (x - xp))))

    def _draw_pair(self) -> tuple[np.ndarray, np.ndarray]:
        up = self._updater
        rng = up.rng if self.rng is None else self.rng
        pick = getattr(up, "particles_at", None)
        if pick is not None:  # a sharded cloud (DistributedSMCUpdater): fetch the two particles by global index
            locs = pick(rng.random(2))
            return locs[0:1], locs[1:2]
        cumsum = np.cumsum(up.particle_weights)
        idx = np.minimum(cumsum.searchsorted(rng.random(2), side="right"), cumsum.size - 1)
        locs = up.particle_locations[idx]
        return locs[0:1], locs[1:2]

    def __call__(self) -> np.ndarray:
        """The next experiment (see :meth:`Heuristic.__call__`)."""
        for _ in range(self.maxiters):
            x, xp = self._draw_pair()
            dist = self._distance(x, xp)
            if dist > 0:
                break
        else:
            raise RuntimeError(
                f"PGH did not find distinct particles in {self.maxiters} iterations."
            )

        t = self.t_func(1 / dist)
        dtype = np.dtype(self._updater.model.expparams_dtype)
        if self.t_field is None:
            return np.array([t], dtype=dtype)
        eps = np.zeros((1,), dtype=dtype)
        if self.inv_field is not None and self.inv_field in dtype.names:
            eps[self.inv_field] = self.inv_func(x)
        eps[self.t_field] = t
        for field, value in self.other_fields.items():
            eps[field] = value
        return eps


class BestCandidateHeuristic(Heuristic):
    """Each step, the best of several candidate experiments by information gain or Bayes risk.

    One line designs adaptive experiments::

        design = BestCandidateHeuristic(updater, criterion="infogain")

    Each call gathers the candidates, scores all of them with one
    :meth:`~mpi_qinfer.smc.updater.SMCUpdater.expected_information_gain` (highest
    wins) or :meth:`~mpi_qinfer.smc.updater.SMCUpdater.bayes_risk` (lowest wins)
    call, and returns the winner (the first, on a tie). The scoring evaluates
    the likelihood once over all outcomes, particles and candidates, so with a
    parallel proxy as the model all of it is shared out across the ranks
    (split over the candidates when they outnumber the particles).

    Parameters
    ----------
    updater : SMCUpdater
    candidates : callable, numpy.ndarray or None, optional
        Where the candidates come from:

        * None (default): ``n_candidates`` evolution times ``c / width`` with
          ``c`` spaced geometrically from 0.1 to 3 and ``width`` the
          posterior's ``sqrt(sum(Q * variance))``; only for a scalar
          ``expparams_dtype`` (a time). They follow the posterior as it
          narrows, and stop short of the long times whose many-peaked
          posteriors a Liu-West resampler cannot represent;
        * a callable with no arguments, such as another heuristic
          (e.g. :class:`PGH`), returning experiments of the model's
          ``expparams_dtype`` (shape ``(k,)``): called ``n_candidates`` times
          per step and the results joined;
        * an array of experiments, shape ``(n,)``: the same set every step
          (``n_candidates`` must then be None).
    criterion : {"infogain", "risk"}, optional
        Maximise the expected information gain (default) or minimise the
        Bayes risk.
    n_candidates : int or None, optional
        How many candidates (or calls of a callable) per step; None means 20.

    Attributes
    ----------
    last_candidates : numpy.ndarray or None
        The candidates of the latest call.
    last_scores : numpy.ndarray or None
        Their scores (information gain or risk).

    Notes
    -----
    The heuristic keeps no state between steps beyond ``last_candidates`` and
    ``last_scores``; its only randomness is that of a callable ``candidates``
    (:class:`PGH` draws from the updater's generator, so a seeded run
    repeats exactly).
    """

    #: The default candidates' times, in units of 1 / (the posterior's width).
    time_span = (0.1, 3.0)

    def __init__(self, updater, candidates=None, criterion: str = "infogain", n_candidates: int | None = None):
        super().__init__(updater)
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.criterion = criterion
        self._fixed = None
        self._candidates = candidates
        self.last_candidates = None
        self.last_scores = None
        if candidates is None or callable(candidates):
            self.n_candidates = 20 if n_candidates is None else int(n_candidates)
            if self.n_candidates < 1:
                raise ValueError(f"n_candidates must be a positive integer, got {n_candidates!r}")
            if candidates is None:
                dtype = np.dtype(updater.model.expparams_dtype)
                if dtype.names is not None:
                    raise ValueError(
                        f"candidates is required for a model whose expparams_dtype is a record ({dtype}): "
                        "give a heuristic (e.g. PGH(updater, t_field=...)) or an array of experiments"
                    )
            return
        if n_candidates is not None:
            raise ValueError("n_candidates applies to generated candidates, not to a fixed array")
        fixed = np.asarray(candidates)
        if fixed.ndim != 1 or fixed.size == 0:
            raise ValueError(f"candidates must be a non-empty 1-d array of experiments, got shape {fixed.shape}")
        self.n_candidates = fixed.size
        self._fixed = fixed

    def _width_scaled_times(self) -> np.ndarray:
        up = self._updater
        q = np.asarray(getattr(up.model, "Q", np.ones(up.n_rvs)), dtype=np.float64)
        width = float(np.sqrt(np.sum(q * np.diag(up.est_covariance_mtx()))))
        if not 0 < width < np.inf:
            raise RuntimeError(f"the posterior's width is {width}: no time scale to design experiments on")
        times = np.geomspace(*self.time_span, self.n_candidates) / width
        return times.astype(np.dtype(up.model.expparams_dtype))

    def _gather(self) -> np.ndarray:
        if self._fixed is not None:
            return self._fixed
        if self._candidates is None:
            return self._width_scaled_times()
        return np.concatenate([np.atleast_1d(self._candidates()) for _ in range(self.n_candidates)])

    def __call__(self) -> np.ndarray:
        """The best candidate, shape ``(1,)`` (see :meth:`Heuristic.__call__`)."""
        candidates = self._gather()
        if self.criterion == "infogain":
            scores = self._updater.expected_information_gain(candidates)
            best = int(np.argmax(scores))
        else:
            scores = self._updater.bayes_risk(candidates)
            best = int(np.argmin(scores))
        self.last_candidates, self.last_scores = candidates, scores
        return candidates[best:best + 1].copy()
