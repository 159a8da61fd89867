"""Models that decorate other models (qinfer's ``derived_models``), besides :class:`BinomialModel`.

* :class:`PoisonedModel`: the underlying likelihood with random noise added, to
  test how an inference copes with an imperfectly known likelihood;
* :class:`MLEModel`: the underlying likelihood raised to a power;
* :class:`MultinomialModel`: ``n_meas`` independent rolls of a model with a fixed,
  finite set of outcomes, summarised by the count of each outcome;
* :class:`RandomWalkModel`: the parameters take a random step, drawn from a
  given distribution, after every experiment;
* :class:`GaussianRandomWalkModel`: the parameters (or some of them) take a
  Gaussian step of known covariance, or of a covariance learned along with
  them as extra model parameters;
* :class:`ALEApproximateModel`: the likelihood of a simulator, estimated by
  simulating it until the estimate is good enough;
* :class:`GaussianHyperparameterizedModel`: a two-outcome model whose outcome
  is seen through Gaussian noise of unknown means and variances.

Every random draw (the poison, the steps, the simulations) comes from the
model's :attr:`~mpi_qinfer.models.base.Simulatable.rng`, which a decorator
shares with the model it decorates.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .base import DerivedModel, FiniteOutcomeModel
from .builtin import _expparams_with_n_meas
from .domains import MultinomialDomain, RealDomain

__all__ = ["PoisonedModel", "MLEModel", "MultinomialModel", "RandomWalkModel", "GaussianRandomWalkModel",
           "ALEApproximateModel", "GaussianHyperparameterizedModel"]


def _draw(distribution, n: int, rng) -> np.ndarray:
    """``n`` samples of ``distribution``, from ``rng`` when its ``sample`` takes one (qinfer's do not)."""
    if "rng" in inspect.signature(distribution.sample).parameters:
        return np.asarray(distribution.sample(n=n, rng=rng))
    return np.asarray(distribution.sample(n=n))


class PoisonedModel(DerivedModel):
    r"""The underlying model's likelihood with normal noise added, clipped to [0, 1] (qinfer's ``PoisonedModel``).

    It mimics a likelihood that is estimated from samples rather than known:
    with ``tol``, the noise has the constant standard deviation ``tol`` (as an
    adaptive likelihood estimation that samples until that tolerance); with
    ``n_samples``, the standard deviation of a binomial estimate from that
    many samples, ``sqrt(L (1 - L) / (n_samples + 2 hedge + 1))``.

    Each likelihood call draws fresh noise from :attr:`rng`, so two calls with
    the same arguments differ. :meth:`simulate_experiment` is the underlying
    model's, unpoisoned: the data and the likelihood disagree on purpose.
    Through :class:`~mpi_qinfer.parallel.proxy.MPIParallelizedModel`, the
    likelihood of a poisoned model runs on the root, so that the proxy's
    answer is the serial model's draw.

    Parameters
    ----------
    underlying_model : Model
        The model whose likelihood is poisoned.
    tol : float, optional
        Standard deviation of the noise (adaptive estimation).
    n_samples : int, optional
        Number of samples of a binomial estimate (maximum-likelihood estimation).
    hedge : float, optional
        Hedging of the binomial estimate (default 0); only with ``n_samples``.

    Raises
    ------
    ValueError
        Unless exactly one of ``tol`` and ``n_samples`` is given.
    """

    _checks_modelparam_count = True
    #: Read by the parallel proxy: this likelihood draws random numbers, so it runs on the root.
    _random_likelihood = True

    def __init__(self, underlying_model, tol=None, n_samples=None, hedge=None):
        super().__init__(underlying_model)
        if (tol is None) == (n_samples is None):
            raise ValueError("PoisonedModel needs exactly one of tol (adaptive estimation) and n_samples "
                             f"(maximum-likelihood estimation); got tol={tol!r}, n_samples={n_samples!r}")
        self._tol = tol
        self._n_samples = n_samples
        self._hedge = 0.0 if hedge is None else hedge

    def _noise_scale(self, likelihood: np.ndarray):
        if self._tol is not None:
            return self._tol
        return np.sqrt(likelihood * (1 - likelihood) / (self._n_samples + 2 * self._hedge + 1))

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The underlying likelihood plus noise, clipped to [0, 1] (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        L = np.array(self.underlying_model.likelihood(outcomes, modelparams, expparams), dtype=np.float64)
        noise = self.rng.normal(size=L.shape)
        noise *= self._noise_scale(L)
        return np.clip(L + noise, 0, 1)

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """The underlying model's simulation, without poison (see :meth:`Simulatable.simulate_experiment`)."""
        super().simulate_experiment(modelparams, expparams, repeat)
        return self.underlying_model.simulate_experiment(modelparams, expparams, repeat)


class MLEModel(DerivedModel):
    r"""The underlying likelihood raised to the power ``likelihood_power`` (qinfer's ``MLEModel``).

    An SMC posterior of this model concentrates on the maximum-likelihood
    estimate as the power grows (the method of Johansen, Doucet and Davy), at
    the cost of numerical stability.

    Parameters
    ----------
    underlying_model : Model
    likelihood_power : float
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model, likelihood_power):
        super().__init__(underlying_model)
        self._pow = likelihood_power

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The underlying likelihood to the power ``likelihood_power`` (see :meth:`Model.likelihood`)."""
        super().likelihood(outcomes, modelparams, expparams)
        return self.underlying_model.likelihood(outcomes, modelparams, expparams) ** self._pow

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """The underlying model's simulation (see :meth:`Simulatable.simulate_experiment`)."""
        super().simulate_experiment(modelparams, expparams, repeat)
        return self.underlying_model.simulate_experiment(modelparams, expparams, repeat)


def _log_factorials(counts: np.ndarray) -> np.ndarray:
    """``log(k!)`` of every entry of an integer array (each distinct value computed once)."""
    values, inverse = np.unique(counts, return_inverse=True)
    logs = np.array([math.lgamma(int(k) + 1) for k in values.tolist()], dtype=np.float64)
    return logs[inverse].reshape(counts.shape)


class MultinomialModel(DerivedModel):
    r"""``n_meas`` independent repetitions of a model with a fixed, finite set of outcomes.

    The outcome is how often each of the underlying model's ``n_sides``
    outcomes occurred: a record ``('k', int64, (n_sides,))`` of a
    :class:`~mpi_qinfer.models.domains.MultinomialDomain`. The experiment
    gains a field ``('n_meas', 'uint')``; a scalar underlying experiment moves
    into a field ``'x'`` (as in :class:`~mpi_qinfer.models.builtin.BinomialModel`).

    The likelihood is the multinomial probability of the counts, with the
    underlying model's probabilities of its first ``n_sides - 1`` outcomes and
    one minus their sum for the last. As in qinfer, the number of throws is
    read from each outcome's counts; an outcome whose counts do not sum to an
    experiment's ``n_meas`` is not in that experiment's domain.

    Parameters
    ----------
    underlying_model : FiniteOutcomeModel
        A model whose number of outcomes does not depend on the experiment.

    Raises
    ------
    ValueError
        An underlying model whose number of outcomes varies.
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model):
        super().__init__(underlying_model)
        if not underlying_model.is_n_outcomes_constant:
            raise ValueError(
                f"MultinomialModel needs an underlying model with a fixed set of outcomes; "
                f"{type(underlying_model).__name__}.is_n_outcomes_constant is False"
            )
        self._expparams_scalar, self._expparams_dtype = _expparams_with_n_meas(underlying_model)
        self._underlying_domain = underlying_model.domain(None)
        self._n_sides = int(self._underlying_domain.n_members)

    @property
    def decorated_model(self):
        """Model : The underlying model (qinfer's older name)."""
        return self.underlying_model

    @property
    def expparams_dtype(self) -> list:
        """list : The underlying fields (or ``'x'``) plus ``('n_meas', 'uint')``."""
        return self._expparams_dtype

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always False: the number of outcomes grows with ``n_meas``."""
        return False

    @property
    def n_sides(self) -> int:
        """int : The number of outcomes of the underlying model."""
        return self._n_sides

    @property
    def underlying_domain(self):
        """Domain : The underlying model's outcome domain."""
        return self._underlying_domain

    def _underlying_expparams(self, expparams):
        return expparams["x"] if self._expparams_scalar else expparams

    def n_outcomes(self, expparams) -> np.ndarray:
        """``C(n_meas + n_sides - 1, n_sides - 1)`` for each experiment: how many count tuples there are.

        Returns
        -------
        numpy.ndarray of int64 (qinfer returns the same numbers as floats)
        """
        return np.array([math.comb(int(n) + self._n_sides - 1, self._n_sides - 1)
                         for n in np.atleast_1d(expparams["n_meas"])], dtype=np.int64)

    def domain(self, expparams):
        """``MultinomialDomain(n_meas, n_sides)``, one per experiment.

        Returns
        -------
        list of MultinomialDomain
        """
        return [MultinomialDomain(int(n), self._n_sides) for n in np.atleast_1d(expparams["n_meas"])]

    def are_expparam_dtypes_consistent(self, expparams) -> bool:
        """Always True: every outcome is a record of ``n_sides`` counts."""
        return True

    def _counts_of(self, outcomes) -> np.ndarray:
        """The counts of outcome records, shape (n_outcomes, n_sides) (any one field name, as in qinfer)."""
        outcomes = np.atleast_1d(np.asarray(outcomes))
        names = outcomes.dtype.names
        if names is None or len(names) != 1 or outcomes.dtype.fields[names[0]][0].shape != (self._n_sides,):
            raise TypeError(f"MultinomialModel outcomes must be records of {self._n_sides} counts, dtype "
                            f"{MultinomialDomain(0, self._n_sides).dtype}; got dtype {outcomes.dtype}")
        return np.asarray(outcomes[names[0]], dtype=np.int64).reshape(-1, self._n_sides)

    def _side_probabilities(self, modelparams, expparams) -> np.ndarray:
        """Pr(side) for every side, shape (n_sides, n_models, n_experiments); the last is one minus the rest."""
        first = self.underlying_model.likelihood(
            self._underlying_domain.values[:-1], modelparams, self._underlying_expparams(expparams))
        last = np.maximum(1 - np.sum(first, axis=0), 0)  # rounding may leave it a hair below zero
        return np.concatenate([np.asarray(first, dtype=np.float64), last[np.newaxis]], axis=0)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The multinomial probability of each outcome's counts (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        counts = self._counts_of(outcomes)  # (n_outcomes, n_sides)
        probabilities = self._side_probabilities(modelparams, expparams)  # (n_sides, n_models, n_exp)
        log_factorials = _log_factorials(counts)
        log_denominator = np.zeros(counts.shape[0])
        log_powers = np.zeros((counts.shape[0],) + probabilities.shape[1:])
        impossible = np.zeros(log_powers.shape, dtype=bool)
        # Side by side, in order: every sum below adds its terms in one fixed order, whatever the shapes.
        for side in range(self._n_sides):
            log_denominator += log_factorials[:, side]
            k = counts[:, side, np.newaxis, np.newaxis].astype(np.float64)
            p = probabilities[side][np.newaxis]
            # k log p, with 0 log 0 = 0; a side of probability 0 that occurred makes the outcome impossible.
            log_powers += np.where(p != 0, k * np.log(np.where(p != 0, p, 1)), 0.0)
            impossible |= (p == 0) & (k != 0)
        # log( N! / prod k_i! ), one number per outcome, then times the powers.
        log_coefficient = _log_factorials(counts.sum(axis=1)) - log_denominator
        likelihood = np.exp(log_coefficient[:, np.newaxis, np.newaxis] + log_powers)
        likelihood[impossible] = 0.0
        return likelihood

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """Counts drawn with ``rng.multinomial`` (see :meth:`Simulatable.simulate_experiment`).

        Returns
        -------
        numpy.ndarray of records, shape (repeat, n_models, n_experiments), or one record
        """
        super().simulate_experiment(modelparams, expparams, repeat)
        probabilities = self._side_probabilities(modelparams, expparams)  # (sides, n_m, n_e)
        n_models, n_exp = probabilities.shape[1:]
        counts = np.empty((repeat, n_models, n_exp, self._n_sides), dtype=np.int64)
        for index, n_meas in enumerate(np.atleast_1d(expparams["n_meas"]).tolist()):
            pvals = probabilities[:, :, index].T  # (n_models, sides)
            counts[:, :, index, :] = self.rng.multinomial(int(n_meas), pvals, size=(repeat, n_models))
        outcomes = MultinomialDomain(0, self._n_sides).from_regular_array(counts)
        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """Forwarded to the underlying model with its own experiment parameters."""
        return self.underlying_model.update_timestep(modelparams, self._underlying_expparams(expparams))


class RandomWalkModel(DerivedModel):
    r"""After each experiment every particle takes a random step drawn from ``step_distribution``.

    Parameters
    ----------
    underlying_model : Model
        The likelihood, without the walk.
    step_distribution : Distribution
        Distribution of a step: ``n_rvs`` must equal the model's
        ``n_modelparams``. Its ``sample`` is given the model's :attr:`rng`
        when it takes one (this package's distributions do).

    Raises
    ------
    TypeError
        A step distribution of another dimension (qinfer's error type).
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model, step_distribution):
        self._step_dist = step_distribution
        super().__init__(underlying_model)
        if underlying_model.n_modelparams != step_distribution.n_rvs:
            raise TypeError(
                f"the step distribution draws {step_distribution.n_rvs} parameter(s) per step, but "
                f"{type(underlying_model).__name__} has n_modelparams = {underlying_model.n_modelparams}: give a "
                "step distribution of that dimension (for example a ProductDistribution of one per parameter)"
            )

    @property
    def step_distribution(self):
        """Distribution : The distribution of one step."""
        return self._step_dist

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The underlying likelihood (see :meth:`Model.likelihood`)."""
        super().likelihood(outcomes, modelparams, expparams)
        return self.underlying_model.likelihood(outcomes, modelparams, expparams)

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """The underlying model's simulation (see :meth:`Simulatable.simulate_experiment`)."""
        super().simulate_experiment(modelparams, expparams, repeat)
        return self.underlying_model.simulate_experiment(modelparams, expparams, repeat)

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """Each particle plus one step per experiment, shape ``(n_models, n_modelparams, n_experiments)``.

        The steps are drawn as ``n_models * n_experiments`` samples, model by
        model (qinfer's order).
        """
        n_models, n_exp = modelparams.shape[0], expparams.shape[0]
        steps = _draw(self._step_dist, n_models * n_exp, self.rng)
        steps = steps.reshape((n_models, n_exp, self.n_modelparams)).transpose((0, 2, 1))
        return modelparams[:, :, np.newaxis] + steps


class GaussianRandomWalkModel(DerivedModel):
    r"""After each experiment some parameters take a zero-mean Gaussian step (qinfer's ``GaussianRandomWalkModel``).

    The step's covariance is either fixed (``fixed_covariance``) or unknown
    and learned with the other parameters: with ``diagonal=True`` the model
    gains one parameter per walking parameter, the step's standard deviation
    ``\sigma_{name}``; with ``diagonal=False`` it gains ``n (n + 1) / 2``, the
    lower triangle of the Cholesky factor of the covariance, row by row.

    Parameters
    ----------
    underlying_model : Model
        The likelihood, without the walk.
    random_walk_idxs : 'all', slice or sequence of int, optional
        Which of the underlying model's parameters walk (default all).
    fixed_covariance : numpy.ndarray, optional
        The step covariance: its diagonal (1-d) when ``diagonal``, else the
        full square matrix. None (default): learned.
    diagonal : bool, optional
        Whether the covariance is diagonal (default True).
    scale_mult : None, str or callable, optional
        A factor of the step for each experiment: None (1), the name of an
        experiment field (``'n_meas'``), or a function of ``expparams``
        returning one number per experiment.
    model_transformation : (callable, callable), optional
        ``(transform, inverse)``: the step is taken in the transformed
        coordinates of the underlying parameters (e.g. ``(from_simplex,
        to_simplex)`` for a die's weights).

    Raises
    ------
    IndexError
        No walking parameter, or indices beyond the underlying model's.
    ValueError
        A ``fixed_covariance`` of the wrong shape.
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model, random_walk_idxs="all", fixed_covariance=None, diagonal=True,
                 scale_mult=None, model_transformation=None):
        n_under = int(underlying_model.n_modelparams)
        self._n_under = n_under
        self._diagonal = bool(diagonal)
        self._rw_idxs = np.s_[:n_under] if isinstance(random_walk_idxs, str) and random_walk_idxs == "all" \
            else random_walk_idxs
        walking = np.arange(n_under)[self._rw_idxs]  # indices beyond the model raise IndexError here
        if walking.size == 0:
            raise IndexError("GaussianRandomWalkModel needs at least one parameter to take a random walk")
        names = list(underlying_model.modelparam_names)
        self._rw_names = [names[index] for index in np.atleast_1d(walking)]
        self._n_rw = len(self._rw_names)
        self._srw_names: list[str] = []
        self._has_fixed_covariance = fixed_covariance is not None
        if self._has_fixed_covariance:
            self._set_fixed_covariance(np.asarray(fixed_covariance, dtype=np.float64))
        else:
            self._set_learned_covariance()
        super().__init__(underlying_model)
        # A slice such as [:7] fits the underlying model's 6 parameters but would reach a learned one.
        if np.max(np.arange(self.n_modelparams)[self._rw_idxs]) > np.max(walking):
            raise IndexError("random_walk_idxs must index the underlying model's parameters only "
                             f"(it has {n_under})")
        if scale_mult is None:
            self._scale_mult_fcn = lambda expparams: 1
        elif isinstance(scale_mult, str):
            self._scale_mult_fcn = lambda expparams: expparams[scale_mult]
        else:
            self._scale_mult_fcn = scale_mult
        self._has_transformation = model_transformation is not None
        if self._has_transformation:
            self._transform, self._inv_transform = model_transformation

    def _set_learned_covariance(self) -> None:
        n_rw, n_under = self._n_rw, self._n_under
        if self._diagonal:
            self._srw_names = [rf"\sigma_{{{name}}}" for name in self._rw_names]
            self._srw_idxs = n_under + np.arange(n_rw)
            return
        self._srw_idxs = n_under + np.arange(n_rw * (n_rw + 1) // 2)
        self._srw_tri_idxs = np.tril_indices(n_rw)  # where each learned entry sits in the Cholesky factor
        for row, name in enumerate(self._rw_names):
            for other in self._rw_names[: row + 1]:
                self._srw_names.append(rf"\sigma_{{{name}}}" if other == name else rf"\sigma_{{{other},{name}}}")

    def _set_fixed_covariance(self, covariance: np.ndarray) -> None:
        n_rw = self._n_rw
        if self._diagonal:
            if covariance.ndim != 1 or covariance.size != n_rw:
                raise ValueError(f"a diagonal fixed_covariance must be a 1-d array of {n_rw} variances "
                                 f"(one per walking parameter), got shape {covariance.shape}")
            self._fixed_scale = np.sqrt(covariance)
            return
        if covariance.shape != (n_rw, n_rw):
            raise ValueError(f"a dense fixed_covariance must be a square {n_rw} x {n_rw} matrix, "
                             f"got shape {covariance.shape}")
        self._fixed_chol = np.linalg.cholesky(covariance)

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : The underlying names, then those of the learned covariance parameters."""
        return list(self.underlying_model.modelparam_names) + self._srw_names

    @property
    def n_modelparams(self) -> int:
        """int : The underlying parameters plus the learned covariance parameters."""
        return self._n_under + len(self._srw_names)

    def _underlying(self, modelparams) -> np.ndarray:
        return modelparams[..., : self._n_under]

    def are_models_valid(self, modelparams) -> np.ndarray:
        """The underlying validity; a learned diagonal also needs non-negative standard deviations."""
        valid = self.underlying_model.are_models_valid(self._underlying(modelparams))
        if self._has_fixed_covariance or not self._diagonal:
            return valid
        return np.logical_and(valid, np.all(modelparams[..., self._srw_idxs] >= 0, axis=-1))

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The underlying likelihood of the underlying parameters (see :meth:`Model.likelihood`)."""
        super().likelihood(outcomes, modelparams, expparams)
        return self.underlying_model.likelihood(outcomes, self._underlying(modelparams), expparams)

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """The underlying model's simulation (see :meth:`Simulatable.simulate_experiment`)."""
        super().simulate_experiment(modelparams, expparams, repeat)
        return self.underlying_model.simulate_experiment(self._underlying(modelparams), expparams, repeat)

    def _cholesky_factors(self, modelparams) -> np.ndarray:
        """Each particle's learned Cholesky factor, shape (n_models, n_rw, n_rw)."""
        chol = np.zeros((modelparams.shape[0], self._n_rw, self._n_rw))
        chol[(np.s_[:],) + self._srw_tri_idxs] = modelparams[:, self._srw_idxs]
        return chol

    def est_update_covariance(self, modelparams) -> np.ndarray:
        """The covariance of one unit step: the fixed one, or the mean over ``modelparams`` of the learned one.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)

        Returns
        -------
        numpy.ndarray, shape (n_rw, n_rw)
        """
        if self._diagonal:
            if self._has_fixed_covariance:
                return np.diag(self._fixed_scale**2)
            return np.diag(np.mean(modelparams[:, self._srw_idxs] ** 2, axis=0))
        if self._has_fixed_covariance:
            return self._fixed_chol @ self._fixed_chol.T
        chol = self._cholesky_factors(modelparams)
        return np.mean(np.einsum("ijk,ilk->ijl", chol, chol), axis=0)

    def _steps(self, modelparams, n_exp: int) -> np.ndarray:
        """One Gaussian step per particle and experiment, shape (n_models, n_rw, n_experiments)."""
        n_models, n_rw, rng = modelparams.shape[0], self._n_rw, self.rng
        if self._diagonal:
            scale = self._fixed_scale if self._has_fixed_covariance else modelparams[:, self._srw_idxs]
            return (scale * rng.normal(size=(n_exp, n_models, n_rw))).transpose((1, 2, 0))
        if self._has_fixed_covariance:
            noise = rng.normal(size=(n_rw, n_models * n_exp))
            return np.dot(self._fixed_chol, noise).reshape(n_rw, n_models, n_exp).transpose((1, 0, 2))
        noise = rng.normal(size=(n_models, n_rw, n_exp))
        return np.einsum("kij,kjl->kil", self._cholesky_factors(modelparams), noise)

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """Each particle plus one step per experiment, shape ``(n_models, n_modelparams, n_experiments)``.

        The step is scaled by ``scale_mult`` of the experiment and, with a
        ``model_transformation``, taken in the transformed coordinates.
        """
        n_models, n_exp = modelparams.shape[0], expparams.shape[0]
        steps = self._scale_mult_fcn(expparams) * self._steps(modelparams, n_exp)
        if not self._has_transformation:
            moved = np.repeat(modelparams[:, :, np.newaxis], n_exp, axis=2)
            moved[:, self._rw_idxs, :] += steps
            return moved
        n_under = self._n_under
        moved = np.repeat(modelparams[np.newaxis, :, :], n_exp, axis=0).reshape((n_exp * n_models, -1))
        moved[:, :n_under] = self._transform(moved[:, :n_under])
        moved[:, self._rw_idxs] += steps.transpose((2, 0, 1)).reshape((n_exp * n_models, -1))
        moved[:, :n_under] = self._inv_transform(moved[:, :n_under])
        return moved.reshape((n_exp, n_models, -1)).transpose((1, 2, 0))


def _hedged_estimate(successes, trials: int, hedge: float):
    """The hedged estimate ``(n + hedge) / (N + 2 hedge)`` of a binomial probability (Ferrie and Blume-Kohout)."""
    return (successes + hedge) / (trials + 2 * hedge)


class ALEApproximateModel(DerivedModel):
    r"""The likelihood of a two-outcome simulator, estimated by simulating it (adaptive likelihood estimation).

    For each model and experiment the simulator is run ``min_samp`` times,
    then ``samp_step`` more at a time, until the estimated error of every
    ``Pr(1)`` is below ``error_tol``; the likelihood is the hedged estimate
    from those samples. The cost grows like ``error_tol ** -2``. Each call
    simulates afresh (from :attr:`rng`), so two calls differ; through the
    parallel proxy the likelihood runs on the root.

    Parameters
    ----------
    simulator : Simulatable
        A model with a constant two outcomes that can simulate them.
    error_tol : float, optional
        Allowed error of the estimate, in (0, 1] (default 0.01).
    min_samp, samp_step : int, optional
        Samples to start with, and to add while the error is too large (default 10 each).
    est_hedge, adapt_hedge : float, optional
        Hedging of the reported estimate and of the error estimate (default 0.509 each).

    Raises
    ------
    TypeError
        A simulator that cannot simulate.
    ValueError
        An argument out of its range, or a simulator without exactly two outcomes.
    """

    _checks_modelparam_count = True
    _random_likelihood = True

    def __init__(self, simulator, error_tol=1e-2, min_samp=10, samp_step=10, est_hedge=0.509, adapt_hedge=0.509):
        if not callable(getattr(simulator, "simulate_experiment", None)):
            raise TypeError("ALEApproximateModel needs a simulator: a model with simulate_experiment")
        if not 0 < error_tol <= 1:
            raise ValueError(f"error_tol must be in (0, 1], got {error_tol!r}")
        if min_samp <= 0 or samp_step <= 0:
            raise ValueError(f"min_samp and samp_step must be positive, got {min_samp!r} and {samp_step!r}")
        if est_hedge < 0 or adapt_hedge < 0:
            raise ValueError(f"est_hedge and adapt_hedge must be non-negative, got {est_hedge!r} and {adapt_hedge!r}")
        if not (simulator.is_n_outcomes_constant and int(np.ravel(simulator.n_outcomes(None))[0]) == 2):
            raise ValueError("ALEApproximateModel needs a simulator with a constant two outcomes")
        super().__init__(simulator)
        self._error_tol = float(error_tol)
        self._min_samp, self._samp_step = int(min_samp), int(samp_step)
        self._est_hedge, self._adapt_hedge = float(est_hedge), float(adapt_hedge)

    @property
    def sim_count(self) -> int:
        """int : The simulator's count: the samples the estimates took, and the simulations asked for."""
        return getattr(self.underlying_model, "sim_count", 0)

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """The simulator's own simulation (see :meth:`Simulatable.simulate_experiment`)."""
        return self.underlying_model.simulate_experiment(modelparams, expparams, repeat=repeat)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The estimated likelihood (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        simulator = self.underlying_model
        ones = np.zeros((modelparams.shape[0], expparams.shape[0]))
        trials, batch = 0, self._min_samp
        while True:
            draws = np.asarray(simulator.simulate_experiment(modelparams, expparams, repeat=batch))
            ones += draws.reshape(batch, *ones.shape).sum(axis=0)
            trials += batch
            p1 = _hedged_estimate(ones, trials, self._adapt_hedge)
            error = np.sqrt(p1 * (1 - p1) / (trials + 2 * self._adapt_hedge + 1))
            if np.all(error < self._error_tol):
                break
            batch = self._samp_step
        pr0 = 1 - _hedged_estimate(ones, trials, self._est_hedge)
        return FiniteOutcomeModel.pr0_to_likelihood_array(outcomes, pr0)


class GaussianHyperparameterizedModel(DerivedModel):
    r"""A two-outcome model seen through Gaussian noise: each outcome is a real number.

    The underlying outcome :math:`u \in \{0, 1\}` is not observed; the datum
    is :math:`y \sim N(\mu_u, \sigma_u^2)`. The model gains four parameters,
    ``\mu_0, \mu_1, \sigma_0^2, \sigma_1^2``, and the likelihood is the
    density :math:`\sum_u \Pr(u | x; e)\, \phi((y - \mu_u) / \sigma_u) / \sigma_u`.
    (qinfer's later source has this model without the factor
    :math:`1 / \sigma_u`, which makes it a density of :math:`y` only for known
    variances.) Outcomes come from a :class:`~mpi_qinfer.models.domains.RealDomain`.

    Parameters
    ----------
    underlying_model : Model
        A model with a constant two outcomes.
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model):
        super().__init__(underlying_model)
        if not (underlying_model.is_n_outcomes_constant and int(np.ravel(underlying_model.n_outcomes(None))[0]) == 2):
            raise ValueError("GaussianHyperparameterizedModel needs an underlying model with a constant two outcomes")
        self._n_under = int(underlying_model.n_modelparams)

    @property
    def decorated_model(self):
        """Model : The underlying model (qinfer's older name)."""
        return self.underlying_model

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : The underlying names, then ``\\mu_0, \\mu_1, \\sigma_0^2, \\sigma_1^2``."""
        return list(self.underlying_model.modelparam_names) + [r"\mu_0", r"\mu_1", r"\sigma_0^2", r"\sigma_1^2"]

    @property
    def n_modelparams(self) -> int:
        """int : The underlying parameters plus four."""
        return self._n_under + 4

    def domain(self, expparams):
        """``RealDomain()``, one per experiment (the domain itself for ``expparams=None``)."""
        return RealDomain() if expparams is None else [RealDomain()] * len(expparams)

    def are_expparam_dtypes_consistent(self, expparams) -> bool:
        """Always True: every outcome is a float."""
        return True

    def are_models_valid(self, modelparams) -> np.ndarray:
        """The underlying validity, and both variances positive."""
        under = self.underlying_model.are_models_valid(modelparams[:, : self._n_under])
        return np.logical_and(under, np.all(modelparams[:, self._n_under + 2 :] > 0, axis=1))

    def _noise(self, modelparams):
        """``(mu, sigma)``, each of shape (2, n_models): the noise of underlying outcome 0 and 1."""
        mu = modelparams[:, self._n_under : self._n_under + 2].T
        return mu, np.sqrt(modelparams[:, self._n_under + 2 : self._n_under + 4].T)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The density of each real outcome (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        y = np.atleast_1d(np.asarray(outcomes, dtype=np.float64))[np.newaxis, :, np.newaxis, np.newaxis]
        mu, sigma = self._noise(modelparams)
        mu, sigma = mu[:, np.newaxis, :, np.newaxis], sigma[:, np.newaxis, :, np.newaxis]
        density = np.exp(-(((y - mu) / sigma) ** 2) / 2) / (np.sqrt(2 * np.pi) * sigma)  # (2, n_o, n_m, 1)
        pr_u = self.underlying_model.likelihood(np.array([0, 1]), modelparams[:, : self._n_under], expparams)
        return np.sum(pr_u[:, np.newaxis, :, :] * density, axis=0)

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """Underlying outcomes drawn by the underlying model, then Gaussian noise from :attr:`rng`.

        Returns
        -------
        numpy.ndarray of float64, shape (repeat, n_models, n_experiments), or a float
        """
        super().simulate_experiment(modelparams, expparams, repeat)
        hidden = np.asarray(self.underlying_model.simulate_experiment(
            modelparams[:, : self._n_under], expparams, repeat=repeat))
        hidden = hidden.reshape(repeat, modelparams.shape[0], expparams.shape[0]).astype(bool)
        mu, sigma = self._noise(modelparams)
        normal = self.rng.standard_normal(hidden.shape)
        outcomes = (np.where(hidden, mu[1][:, np.newaxis], mu[0][:, np.newaxis])
                    + np.where(hidden, sigma[1][:, np.newaxis], sigma[0][:, np.newaxis]) * normal)
        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes
