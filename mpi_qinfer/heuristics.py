"""Experiment design heuristics: qinfer's exponentially sparse times and particle guess heuristic."""

from __future__ import annotations

import numpy as np

__all__ = ["Heuristic", "ExpSparseHeuristic", "PGH", "identity"]


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
