"""qinfer's ``SMCUpdaterBCRB``: an SMC updater that also tracks the Bayesian information matrix (BIM).

The Bayesian Cramér--Rao bound says that the posterior covariance after some experiments is at
least the inverse of the Bayesian information matrix: the prior's own information plus, per
experiment, the Fisher information averaged over the prior (the *non-adaptive* BIM) or over the
posterior just before the experiment (the *adaptive* BIM, which an adaptive design can reach).
"""

from __future__ import annotations

import numpy as np

from ..models.distributions import draw
from .updater import SMCUpdater

__all__ = ["SMCUpdaterBCRB"]


class SMCUpdaterBCRB(SMCUpdater):
    """An :class:`~mpi_qinfer.smc.updater.SMCUpdater` that tracks the Bayesian information matrices (qinfer's).

    The model must give ``fisher_information(modelparams, expparams)``
    (a :class:`~mpi_qinfer.models.base.DifferentiableModel`), and, unless
    ``initial_bim`` is given, the prior ``grad_log_pdf(x)``.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`~mpi_qinfer.smc.updater.SMCUpdater` (all of them are
        passed on; qinfer's passed on only some).
    adaptive : bool, optional, keyword only
        Also track the adaptive BIM (default False).
    initial_bim : numpy.ndarray or None, optional, keyword only
        The BIM before any experiment; None takes the prior's, the mean of
        ``g g^T`` for ``g = prior.grad_log_pdf(x)`` over the initial
        particles (wrong for a prior that breaks the bound's regularity
        conditions, such as a uniform one: give it here then).

    Raises
    ------
    ValueError
        When the model has no ``fisher_information``.
    """

    def __init__(self, *args, adaptive: bool = False, initial_bim=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not callable(getattr(self.model, "fisher_information", None)):
            raise ValueError("Model must be differentiable (it has no fisher_information).")
        if initial_bim is None:
            gradients = np.asarray(self.prior.grad_log_pdf(self.particle_locations), dtype=np.float64)
            gradients = gradients.reshape(self.n_particles, -1)
            self._current_bim = np.einsum("mi,mj->ij", gradients, gradients) / self.n_particles
        else:
            self._current_bim = np.array(initial_bim, dtype=np.float64)
        self._track_adaptive = bool(adaptive)
        self._adaptive_bim = self._current_bim.copy() if self._track_adaptive else None

    @property
    def current_bim(self) -> np.ndarray:
        """numpy.ndarray, shape (n_modelparams, n_modelparams) : A copy of the (non-adaptive) BIM."""
        return np.copy(self._current_bim)

    @property
    def adaptive_bim(self) -> np.ndarray:
        """numpy.ndarray, shape (n_modelparams, n_modelparams) : A copy of the adaptive BIM.

        Raises
        ------
        ValueError
            When the updater was made without ``adaptive=True``.
        """
        if not self._track_adaptive:
            raise ValueError("To track the adaptive_bim, the adaptive keyword argument must be set True when "
                             "initializing class.")
        return np.copy(self._adaptive_bim)

    @property
    def track_adaptive(self) -> bool:
        """bool : Whether the adaptive BIM is tracked (the ``adaptive`` argument)."""
        return self._track_adaptive

    def _bim(self, modelparams, expparams, modelweights=None) -> np.ndarray:
        """The Fisher information averaged over ``modelparams`` (uniformly, or with ``modelweights``).

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams, n_experiments)
        """
        fisher = np.asarray(self.model.fisher_information(modelparams, expparams))
        if modelweights is None:
            return np.sum(fisher, axis=2) / modelparams.shape[0]
        return np.einsum("m,ijme->ije", modelweights, fisher)

    def prior_bayes_information(self, expparams, n_samples=None) -> np.ndarray:
        """The Fisher information of ``expparams`` averaged over fresh samples of the prior.

        Parameters
        ----------
        expparams : numpy.ndarray, shape (n_experiments,)
        n_samples : int or None, optional
            Samples of the prior (default: as many as particles), drawn with
            the updater's generator when the prior takes one.

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams, n_experiments)
        """
        n = self.particle_locations.shape[0] if n_samples is None else int(n_samples)
        return self._bim(np.asarray(draw(self.prior, n, self.rng), dtype=np.float64), expparams)

    def posterior_bayes_information(self, expparams) -> np.ndarray:
        """The Fisher information of ``expparams`` averaged over the current posterior (its weighted particles).

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams, n_experiments)
        """
        return self._bim(self.particle_locations, expparams, modelweights=self.particle_weights)

    def update(self, outcome, expparams, check_for_resample: bool = True) -> None:
        """Add the experiment's information to the BIMs, then update as :class:`SMCUpdater` does.

        Atomic: if the update fails, the BIMs (and the generator that drew the
        prior's samples) are as they were.
        """
        snapshot = self._snapshot()
        try:
            current = self._current_bim + self.prior_bayes_information(expparams)[:, :, 0]
            adaptive = None
            if self._track_adaptive:
                adaptive = self._adaptive_bim + self.posterior_bayes_information(expparams)[:, :, 0]
            super().update(outcome, expparams, check_for_resample=check_for_resample)
        except BaseException:
            self._restore(snapshot)
            raise
        self._current_bim, self._adaptive_bim = current, adaptive

    def _snapshot(self) -> tuple:
        return super()._snapshot() + (self._current_bim, self._adaptive_bim)

    def _restore(self, snapshot: tuple) -> None:
        super()._restore(snapshot[:-2])
        self._current_bim, self._adaptive_bim = snapshot[-2:]
