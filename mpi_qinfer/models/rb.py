r"""Randomized benchmarking as a likelihood (qinfer's ``qinfer.rb``).

A sequence of :math:`m` random Clifford gates followed by its inverse
survives (outcome 1) with probability :math:`A p^m + B` to zeroth order,
where :math:`p` is the depolarizing strength of the twirled error and
:math:`A`, :math:`B` absorb state preparation and measurement. The
interleaved protocol adds the strength :math:`\tilde{p}` of one gate of
interest: interleaved sequences survive with :math:`A (\tilde{p} p)^m + B`.

:func:`p` and :func:`F` convert between a depolarizing strength and the
average gate fidelity.
"""

from __future__ import annotations

import numpy as np

from .base import DifferentiableModel, FiniteOutcomeModel

__all__ = ["RandomizedBenchmarkingModel", "p", "F"]


def p(F, d: int = 2):
    r"""The depolarizing strength :math:`p = (d F - 1) / (d - 1)` of a gate of average fidelity ``F``.

    Parameters
    ----------
    F : float or numpy.ndarray
        Average gate fidelity.
    d : int, optional
        Dimension of the Hilbert space the gate acts on (default 2, a qubit).
    """
    return (d * F - 1) / (d - 1)


def F(p, d: int = 2):
    r"""The average gate fidelity :math:`F = 1 - (1 - p) (d - 1) / d` of depolarizing strength ``p``.

    Parameters
    ----------
    p : float or numpy.ndarray
        Depolarizing strength of the twirled channel.
    d : int, optional
        Dimension of the Hilbert space (default 2).
    """
    return 1 - (1 - p) * (d - 1) / d


class RandomizedBenchmarkingModel(FiniteOutcomeModel, DifferentiableModel):
    r"""Zeroth-order randomized benchmarking, standard or interleaved (qinfer's model).

    The outcome is 1 when a sequence survives, with probability
    :math:`A p^m + B`; 0 otherwise. Model parameters: ``(p, A, B)``, or
    ``(p_tilde, p, A, B)`` when ``interleaved``, where the interleaved gate's
    own strength is ``p_tilde * p``. Experiments: the sequence length
    ``('m', 'uint')``, and when interleaved a flag ``('reference', bool)``
    (True for a reference sequence, which decays with ``p`` alone). Wrap the
    model in :class:`~mpi_qinfer.models.builtin.BinomialModel` for data
    batched over many sequences.

    Parameters
    ----------
    interleaved : bool, optional
        The interleaved protocol (default False).
    order : int, optional
        Order of the model; only 0 exists.

    Raises
    ------
    NotImplementedError
        ``order`` other than 0.
    """

    _checks_modelparam_count = True

    def __init__(self, interleaved: bool = False, order: int = 0):
        if order != 0:
            raise NotImplementedError("only the zeroth-order randomized benchmarking model exists (order=0)")
        super().__init__()
        self._il = bool(interleaved)

    @property
    def interleaved(self) -> bool:
        """bool : Whether the model is the interleaved protocol."""
        return self._il

    @property
    def n_modelparams(self) -> int:
        """int : 3, or 4 when interleaved."""
        return 4 if self._il else 3

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['p', 'A', 'B']``, or ``['\\\\tilde{p}', 'p', 'A', 'B']`` when interleaved."""
        return [r"\tilde{p}", "p", "A", "B"] if self._il else ["p", "A", "B"]

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('m', 'uint')]``, plus ``('reference', bool)`` when interleaved."""
        return [("m", "uint")] + ([("reference", bool)] if self._il else [])

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment."""
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff every parameter is in [0, 1] and every survival probability is at most 1.

        That is ``A + B <= 1`` and ``A p + B <= 1`` (and ``A p_tilde + B <= 1``
        when interleaved).
        """
        if self._il:
            p_tilde, p_ref, A, B = modelparams.T
            strengths = (p_tilde, p_ref)
        else:
            p_ref, A, B = modelparams.T
            strengths = (p_ref,)
        conditions = [A + B <= 1] + [A * strength + B <= 1 for strength in strengths]
        in_unit_interval = np.all((modelparams >= 0) & (modelparams <= 1), axis=1)
        return np.logical_and.reduce(conditions + [in_unit_interval])

    def _decay(self, modelparams, expparams):
        """``(strength, A, B, m)``: each experiment's decay strength (n_models, n_exp), A, B (n_models, 1), m."""
        columns = modelparams.T[:, :, np.newaxis]
        m = np.asarray(expparams["m"])[np.newaxis, :]
        if not self._il:
            p_ref, A, B = columns
            return p_ref, A, B, m
        p_tilde, p_ref, A, B = columns
        reference = np.asarray(expparams["reference"])[np.newaxis, :]
        return np.where(reference, p_ref, p_tilde * p_ref), A, B, m

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(0) = ``1 - (A p^m + B)``, Pr(1) = ``A p^m + B`` (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        strength, A, B, m = self._decay(modelparams, expparams)
        pr0 = np.empty((modelparams.shape[0], expparams.shape[0]))
        # Both operands as float64 arrays of the answer's shape: NumPy's power then takes the same
        # loop for any block of the experiments (broadcast or cast operands change its last bit), so
        # a block's answer is bitwise the block of the whole call's, as a proxy's split needs.
        pr0[:, :] = 1 - (A * np.power(np.ascontiguousarray(np.broadcast_to(strength, pr0.shape)),
                                      np.ascontiguousarray(np.broadcast_to(m, pr0.shape), dtype=np.float64)) + B)
        return self.pr0_to_likelihood_array(outcomes, pr0)

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """The gradient of log Pr over the model parameters (see :meth:`DifferentiableModel.score`).

        Returns
        -------
        q : numpy.ndarray, shape (n_modelparams, n_outcomes, n_models, n_experiments)
        L : numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            Only if ``return_L``.
        """
        outcomes = np.atleast_1d(np.asarray(outcomes))
        L = self.likelihood(outcomes, modelparams, expparams)
        n_models, n_exp = modelparams.shape[0], expparams.shape[0]
        m = np.asarray(expparams["m"], dtype=np.float64).reshape(1, n_exp)
        A = modelparams[:, -2:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            # d(A s^m)/ds = A m s^(m-1), taken as 0 at m = 0 (where qinfer's unsigned m - 1 wraps around).
            def slope(strength):
                return np.where(m == 0, 0.0, A * m * strength ** (m - 1))

            if not self._il:
                p_ref = modelparams[:, 0:1]
                gradients = [slope(p_ref), p_ref**m, np.ones((n_models, n_exp))]
            else:
                p_tilde, p_ref = modelparams[:, 0:1], modelparams[:, 1:2]
                reference = np.asarray(expparams["reference"], dtype=bool).reshape(1, n_exp)
                strength = np.where(reference, p_ref, p_tilde * p_ref)
                gradients = [
                    np.where(reference, 0.0, slope(p_tilde) * p_ref**m),
                    np.where(reference, slope(p_ref), slope(p_ref) * p_tilde**m),
                    strength**m,
                    np.ones((n_models, n_exp)),
                ]
            # Pr(1) grows with each gradient, Pr(0) falls: the sign of outcome 0 is negative.
            sign = np.where(outcomes == 0, -1.0, 1.0)[:, np.newaxis, np.newaxis]
            q = np.stack([sign * np.broadcast_to(gradient, (n_models, n_exp)) for gradient in gradients]) / L
        if return_L:
            return q, L
        return q
