"""Concrete serial models: precession and inversion, Ramsey, unknown T2, coins and dice, an Ising-chain
benchmark, and the binomial decorator.

Every likelihood here computes each particle (model row) on its own, with
purely elementwise arithmetic, so evaluating any subset of rows gives bitwise
the same numbers as evaluating all rows at once. The parallel engine relies on
this to split particles between ranks without changing any result.
"""

from __future__ import annotations

import math

import numpy as np

from .base import DerivedModel, DifferentiableModel, FiniteOutcomeModel, IntegerDomain

__all__ = [
    "SimplePrecessionModel",
    "RamseyModel",
    "IsingChainModel",
    "BinomialModel",
    "SimpleInversionModel",
    "UnknownT2Model",
    "CoinModel",
    "NoisyCoinModel",
    "NDieModel",
]


def _as_times(expparams, field: str | None = None) -> np.ndarray:
    """The float64 evolution times of ``expparams`` (a scalar or record array)."""
    expparams = np.asarray(expparams)
    if field is not None and expparams.dtype.names is not None:
        expparams = expparams[field]
    return np.asarray(expparams, dtype=np.float64).reshape(-1)


class SimplePrecessionModel(FiniteOutcomeModel, DifferentiableModel):
    r"""A qubit precessing at unknown frequency :math:`\omega`.

    ``Pr(0 | omega; t) = cos^2(omega t / 2)``; the model parameter is
    :math:`\omega \ge` ``min_freq`` and the experiment parameter the (float)
    time ``t``.

    Parameters
    ----------
    min_freq : float, optional
        The smallest valid frequency (default 0); qinfer's argument, for
        testing with deliberately broken models.
    """

    _checks_modelparam_count = True
    _min_freq = 0

    def __init__(self, min_freq: float = 0):
        super().__init__()
        self._min_freq = min_freq

    @property
    def n_modelparams(self) -> int:
        """int : One parameter, the frequency :math:`\\omega`."""
        return 1

    @property
    def expparams_dtype(self) -> str:
        """str : ``'float'``, the evolution time."""
        return "float"

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['\\\\omega']``."""
        return [r"\omega"]

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment.

        Parameters
        ----------
        expparams : numpy.ndarray or None
        """
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff :math:`\\omega \\ge` ``min_freq``.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, 1)

        Returns
        -------
        numpy.ndarray of bool, shape (n_models,)
        """
        return np.all(modelparams >= self._min_freq, axis=1)

    def _pr0(self, modelparams, expparams) -> np.ndarray:
        t = _as_times(expparams)
        return np.cos(modelparams[:, 0:1] * t[np.newaxis, :] / 2) ** 2

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | omega; t) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        return self.pr0_to_likelihood_array(outcomes, self._pr0(modelparams, expparams))

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """Analytic score d/domega log Pr (see :meth:`DifferentiableModel.score`).

        Returns
        -------
        q : numpy.ndarray, shape (1, n_outcomes, n_models, n_experiments)
        L : numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            Only if ``return_L``.
        """
        outcomes = np.atleast_1d(np.asarray(outcomes))
        t = _as_times(expparams)[np.newaxis, :]
        arg = modelparams[:, 0:1] * t / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            # d/dw log cos^2(wt/2) = -t tan(wt/2); d/dw log sin^2(wt/2) = t cot(wt/2).
            q0 = -t * np.tan(arg)
            q1 = t / np.tan(arg)
        is_zero = (outcomes == 0)[:, np.newaxis, np.newaxis]
        q = np.where(is_zero, q0, q1)[np.newaxis]
        if return_L:
            return q, self.likelihood(outcomes, modelparams, expparams)
        return q


class RamseyModel(FiniteOutcomeModel):
    r"""Ramsey interferometry with frequency :math:`\omega` and dephasing time :math:`T_2`.

    ``Pr(0) = 1/2 + 1/2 exp(-t / T2) cos(omega t + phase)``. The experiment
    parameters are a record ``('t', 'f8'), ('phase', 'f8')``.
    """

    _checks_modelparam_count = True

    @property
    def n_modelparams(self) -> int:
        """int : Two parameters, :math:`\\omega` and :math:`T_2`."""
        return 2

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('t', 'f8'), ('phase', 'f8')]``."""
        return [("t", "f8"), ("phase", "f8")]

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['\\\\omega', 'T_2']``."""
        return [r"\omega", "T_2"]

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment.

        Parameters
        ----------
        expparams : numpy.ndarray or None
        """
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff :math:`\\omega \\ge 0` and :math:`T_2 > 0`.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, 2)

        Returns
        -------
        numpy.ndarray of bool, shape (n_models,)
        """
        return (modelparams[:, 0] >= 0) & (modelparams[:, 1] > 0)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | omega, T2; t, phase) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        t = _as_times(expparams, "t")[np.newaxis, :]
        phase = _as_times(expparams, "phase")[np.newaxis, :]
        omega, t2 = modelparams[:, 0:1], modelparams[:, 1:2]
        pr0 = 0.5 + 0.5 * np.exp(-t / t2) * np.cos(omega * t + phase)
        return self.pr0_to_likelihood_array(outcomes, pr0)


def _ising_terms(n_qubits: int) -> tuple[np.ndarray, np.ndarray]:
    """The matrices ``A = sum_i Z_i / 2`` and ``B = sum_i X_i X_{i+1}`` of an open chain."""
    dim = 2**n_qubits
    # Qubit i is bit (n_qubits - 1 - i) of the basis index; Z_i = +1 on a 0 bit.
    bits = (np.arange(dim)[:, np.newaxis] >> np.arange(n_qubits)[::-1]) & 1
    a = np.diag(0.5 * np.sum(1 - 2 * bits, axis=1)).astype(np.float64)
    b = np.zeros((dim, dim))
    rows = np.arange(dim)
    for i in range(n_qubits - 1):
        flip = (1 << (n_qubits - 1 - i)) | (1 << (n_qubits - 2 - i))
        b[rows, rows ^ flip] += 1.0
    return a, b


class IsingChainModel(FiniteOutcomeModel):
    r"""Hamiltonian learning on an open transverse Ising chain: the costly benchmark model.

    The model parameters are :math:`(\omega, J)` with

    .. math:: H = \frac{\omega}{2} \sum_i Z_i + J \sum_i X_i X_{i+1},

    the experiment parameter is the evolution time ``t`` (``'float'``), and
    ``Pr(0) = |<+...+| exp(-iHt) |+...+>|^2``. Each call diagonalises one
    :math:`2^n \times 2^n` Hamiltonian per particle with ``numpy.linalg.eigh``,
    so the cost grows like ``2**(3 n)`` per particle; particles are processed
    in blocks of :attr:`block_size` rows to bound memory.

    Measured cost of one particle times one experiment (4096 particles per
    call, numpy 2.4 with OpenBLAS on an x86-64 development machine): about
    0.8 us for ``n_qubits=2``, 4 us for ``n_qubits=3`` and 17 us for
    ``n_qubits=4``.

    Parameters
    ----------
    n_qubits : int, optional
        Chain length, the size knob (default 3).
    """

    _checks_modelparam_count = True

    #: Rows diagonalised at a time.
    block_size = 2048

    def __init__(self, n_qubits: int = 3):
        if n_qubits < 1:
            raise ValueError(f"n_qubits must be >= 1, got {n_qubits}")
        super().__init__()
        self.n_qubits = int(n_qubits)
        self._a, self._b = _ising_terms(self.n_qubits)

    @property
    def n_modelparams(self) -> int:
        """int : Two parameters, :math:`\\omega` and :math:`J`."""
        return 2

    @property
    def expparams_dtype(self) -> str:
        """str : ``'float'``, the evolution time."""
        return "float"

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['\\\\omega', 'J']``."""
        return [r"\omega", "J"]

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment.

        Parameters
        ----------
        expparams : numpy.ndarray or None
        """
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff :math:`\\omega \\ge 0`.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, 2)

        Returns
        -------
        numpy.ndarray of bool, shape (n_models,)
        """
        return modelparams[:, 0] >= 0

    def _pr0_block(self, modelparams, t) -> np.ndarray:
        omega = modelparams[:, 0, np.newaxis, np.newaxis]
        coupling = modelparams[:, 1, np.newaxis, np.newaxis]
        energies, vectors = np.linalg.eigh(omega * self._a + coupling * self._b)
        dim = energies.shape[1]
        # Overlaps <+...+|v_k>, summed row by row instead of with a matmul or a
        # reduction so that no BLAS or pairwise summation order can depend on
        # how many particles are in the block.
        overlap = vectors[:, 0, :].copy()
        for i in range(1, dim):
            overlap += vectors[:, i, :]
        weight = overlap * overlap / dim
        re = np.zeros((modelparams.shape[0], t.shape[1]))
        im = np.zeros_like(re)
        for k in range(dim):
            phase = energies[:, k, np.newaxis] * t
            re += weight[:, k, np.newaxis] * np.cos(phase)
            im += weight[:, k, np.newaxis] * np.sin(phase)
        return np.clip(re * re + im * im, 0.0, 1.0)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | omega, J; t) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        modelparams = np.asarray(modelparams, dtype=np.float64)
        t = _as_times(expparams)[np.newaxis, :]
        pr0 = np.empty((modelparams.shape[0], t.shape[1]))
        for start in range(0, modelparams.shape[0], self.block_size):
            rows = slice(start, start + self.block_size)
            pr0[rows] = self._pr0_block(modelparams[rows], t)
        return self.pr0_to_likelihood_array(outcomes, pr0)


def _log_binomial_coefficients(n_meas: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """``log C(n, k)`` for each outcome ``k`` and trial count ``n``, shape (n_outcomes, n_exp).

    Entries with ``k > n`` (impossible outcomes) are ``-inf``.
    """
    return np.array(
        [
            [
                math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                if 0 <= k <= n
                else -math.inf
                for n in n_meas.tolist()
            ]
            for k in outcomes.tolist()
        ],
        dtype=np.float64,
    ).reshape(outcomes.shape[0], n_meas.shape[0])


def _n_outcomes_of(model) -> int:
    """The (constant) number of outcomes of ``model``, asked with ``expparams=None``."""
    return int(np.ravel(model.n_outcomes(None))[0])


def _xlogy(x, y) -> np.ndarray:
    """``x * log(y)``, taken as 0 where ``x == 0`` (so that ``0**0 == 1``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))


def _expparams_with_n_meas(underlying_model) -> tuple[bool, list]:
    """Whether a model's experiments are scalars, and its experiment dtype with ``('n_meas', 'uint')`` added.

    Scalar experiment parameters move into a field ``'x'``; a list of fields
    is kept as the model gives it (``[] + [('n_meas', 'uint')]`` for a model
    without experiment parameters), as in qinfer.
    """
    given = underlying_model.expparams_dtype
    under_dtype = np.dtype(given)
    if under_dtype.names is None:
        return True, [("x", given), ("n_meas", "uint")]
    if isinstance(given, (list, tuple)):
        return False, list(given) + [("n_meas", "uint")]
    return False, [(name, under_dtype.fields[name][0]) for name in under_dtype.names] + [("n_meas", "uint")]


class BinomialModel(DerivedModel):
    """Repeated independent measurements of a two-outcome model (qinfer's ``BinomialModel``).

    The outcome is the number of times the underlying model gave outcome 1 in
    ``n_meas`` tries. The experiment parameters gain a field ``('n_meas',
    'uint')``; if the underlying dtype is not a record, the underlying
    experiment parameters move into a field ``'x'``.

    Parameters
    ----------
    underlying_model : Model
        A model with a constant two outcomes.
    """

    _checks_modelparam_count = True

    def __init__(self, underlying_model):
        super().__init__(underlying_model)
        if not (
            underlying_model.is_n_outcomes_constant
            and _n_outcomes_of(underlying_model) == 2
        ):
            raise ValueError("Decorated model must be a two-outcome model.")
        self._expparams_scalar, self._expparams_dtype = _expparams_with_n_meas(underlying_model)

    @property
    def decorated_model(self):
        """Model : The underlying model (qinfer back-compatibility name)."""
        return self.underlying_model

    @property
    def expparams_dtype(self) -> list:
        """list : The underlying fields (or ``'x'``) plus ``('n_meas', 'uint')``."""
        return self._expparams_dtype

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always False: ``n_meas + 1`` outcomes."""
        return False

    def _underlying_expparams(self, expparams) -> np.ndarray:
        return expparams["x"] if self._expparams_scalar else expparams

    def n_outcomes(self, expparams) -> np.ndarray:
        """``n_meas + 1`` for each experiment.

        Parameters
        ----------
        expparams : numpy.ndarray
            Experiments, of dtype :attr:`expparams_dtype`.
        """
        return expparams["n_meas"] + 1

    def domain(self, expparams):
        """``IntegerDomain(0, n_meas)``, one per experiment (a list, also for a single experiment).

        Parameters
        ----------
        expparams : numpy.ndarray
            Experiments, of dtype :attr:`expparams_dtype`.

        Returns
        -------
        list of IntegerDomain
        """
        return [IntegerDomain(0, int(n)) for n in np.atleast_1d(expparams["n_meas"])]

    def are_expparam_dtypes_consistent(self, expparams) -> bool:
        """Always True: every outcome is an int64."""
        return True

    def _pr1(self, modelparams, expparams) -> np.ndarray:
        return self.underlying_model.likelihood(
            np.array([1], dtype=np.int64), modelparams, self._underlying_expparams(expparams)
        )

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Binomial pmf of the underlying Pr(1) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        outcomes = np.atleast_1d(np.asarray(outcomes, dtype=np.int64))
        n_meas = np.asarray(expparams["n_meas"], dtype=np.int64).reshape(-1)
        pr1 = self._pr1(modelparams, expparams)  # (1, n_models, n_exp)
        k = outcomes[:, np.newaxis, np.newaxis].astype(np.float64)
        n = n_meas[np.newaxis, np.newaxis, :].astype(np.float64)
        log_coeff = _log_binomial_coefficients(n_meas, outcomes)[:, np.newaxis, :]
        with np.errstate(invalid="ignore"):
            log_pmf = log_coeff + _xlogy(k, pr1) + _xlogy(np.maximum(n - k, 0), 1 - pr1)
        return np.where(np.isneginf(log_coeff), 0.0, np.exp(log_pmf))

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """Draw success counts with ``rng.binomial`` (see :meth:`FiniteOutcomeModel.simulate_experiment`).

        Returns
        -------
        numpy.ndarray of int64, shape (repeat, n_models, n_experiments), or int
        """
        super().simulate_experiment(modelparams, expparams, repeat)
        pr1 = np.clip(self._pr1(modelparams, expparams)[0], 0.0, 1.0)
        n_meas = np.asarray(expparams["n_meas"], dtype=np.int64).reshape(-1)
        outcomes = self.rng.binomial(n_meas, pr1, size=(repeat,) + pr1.shape).astype(np.int64)
        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """Forwarded to the underlying model with its own experiment parameters."""
        return self.underlying_model.update_timestep(
            modelparams, self._underlying_expparams(expparams)
        )


def _field(expparams, name: str) -> np.ndarray:
    """The float64 values of one record field of ``expparams``, flattened to 1-d."""
    return np.asarray(np.asarray(expparams)[name], dtype=np.float64).reshape(-1)


class SimpleInversionModel(FiniteOutcomeModel, DifferentiableModel):
    r"""A qubit precessing at :math:`\omega`, probed by inversion at a guess :math:`\omega_-`.

    qinfer's interactive quantum likelihood estimation model:
    ``Pr(0 | omega; t, w_) = cos^2(t (omega - w_) / 2)``. The experiment is a
    record ``[('t', 'float'), ('w_', 'float')]`` (the form
    :class:`~mpi_qinfer.smc.heuristics.PGH` fills in with ``inv_field='w_'``).

    Parameters
    ----------
    min_freq : float, optional
        Models are valid when :math:`\omega >` ``min_freq`` (default 0), as in
        qinfer.
    """

    _checks_modelparam_count = True

    def __init__(self, min_freq: float = 0):
        super().__init__()
        self._min_freq = min_freq

    @property
    def n_modelparams(self) -> int:
        """int : One parameter, the frequency :math:`\\omega`."""
        return 1

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['\\\\omega']``."""
        return [r"\omega"]

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('t', 'float'), ('w_', 'float')]``."""
        return [("t", "float"), ("w_", "float")]

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment."""
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff :math:`\\omega >` ``min_freq`` (strictly, as in qinfer)."""
        return np.all(modelparams > self._min_freq, axis=1)

    def _phase(self, modelparams, expparams) -> tuple[np.ndarray, np.ndarray]:
        """``(t, t (omega - w_) / 2)``, shapes (1, n_exp) and (n_models, n_exp)."""
        t = _field(expparams, "t")[np.newaxis, :]
        detuning = modelparams[:, 0:1] - _field(expparams, "w_")[np.newaxis, :]
        return t, t * detuning / 2

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """``cos^2`` / ``sin^2`` of ``t (omega - w_) / 2`` for outcomes 0 / 1 (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        return self.pr0_to_likelihood_array(outcomes, np.cos(self._phase(modelparams, expparams)[1]) ** 2)

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """d/domega log Pr: ``-t tan`` for outcome 0, ``t / tan`` for outcome 1 (see :meth:`DifferentiableModel.score`).

        Returns
        -------
        q : numpy.ndarray, shape (1, n_outcomes, n_models, n_experiments)
        L : numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            Only if ``return_L``.
        """
        outcomes = np.atleast_1d(np.asarray(outcomes))
        t, phase = self._phase(modelparams, expparams)
        with np.errstate(divide="ignore", invalid="ignore"):
            tangent = np.tan(phase)
            q = np.where((outcomes == 0)[:, np.newaxis, np.newaxis], -t * tangent, t / tangent)[np.newaxis]
        if return_L:
            return q, self.likelihood(outcomes, modelparams, expparams)
        return q


class UnknownT2Model(FiniteOutcomeModel):
    r"""Precession at :math:`\omega` that dephases at an unknown rate :math:`T_2^{-1}`.

    ``Pr(0) = v cos^2(omega t / 2) + (1 - v) / 2`` with visibility
    ``v = exp(-t / T2)``. The model parameters are :math:`(\omega,
    T_2^{-1})`; the experiment is a record ``[('t', 'float')]``.
    """

    _checks_modelparam_count = True

    @property
    def n_modelparams(self) -> int:
        """int : Two parameters, :math:`\\omega` and :math:`T_2^{-1}`."""
        return 2

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['\\\\omega', 'T_2^{-1}']``."""
        return [r"\omega", r"T_2^{-1}"]

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('t', 'float')]``."""
        return [("t", "float")]

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment."""
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff both parameters are non-negative."""
        return np.all(modelparams >= 0, axis=1)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | omega, 1/T2; t) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        omega, t2_inv = modelparams[:, 0:1], modelparams[:, 1:2]
        t = _field(expparams, "t")[np.newaxis, :]
        visibility = np.exp(-t * t2_inv)
        pr0 = visibility * np.cos(omega * t / 2) ** 2 + (1 - visibility) / 2
        return self.pr0_to_likelihood_array(outcomes, pr0)


def _are_probabilities(modelparams) -> np.ndarray:
    """Rows whose every entry lies in [0, 1]."""
    return np.all((modelparams >= 0) & (modelparams <= 1), axis=1)


class CoinModel(FiniteOutcomeModel, DifferentiableModel):
    """A coin of unknown bias: the model parameter ``p`` is Pr(0); an experiment is one flip.

    There are no experiment parameters (``expparams_dtype`` is ``[]``, as in
    qinfer): only the number of experiments counts, so any 1-d array of that
    length (``np.ones(10, dtype=int)``) serves as ``expparams``.
    """

    _checks_modelparam_count = True

    @property
    def n_modelparams(self) -> int:
        """int : One parameter, the bias ``p``."""
        return 1

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : ``['p']``."""
        return ["p"]

    @property
    def expparams_dtype(self) -> list:
        """list : ``[]``, no experiment parameters."""
        return []

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment."""
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff ``0 <= p <= 1``."""
        return _are_probabilities(modelparams)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """``p`` for outcome 0 and ``1 - p`` for outcome 1, for every experiment (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        n_exp = np.shape(expparams)[0]
        pr0 = np.repeat(np.asarray(modelparams, dtype=np.float64)[:, 0:1], n_exp, axis=1)
        return self.pr0_to_likelihood_array(outcomes, pr0)

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """d/dp log Pr: ``1 / p`` for outcome 0, ``-1 / (1 - p)`` for outcome 1 (see :meth:`DifferentiableModel.score`).

        Returns
        -------
        q : numpy.ndarray, shape (1, n_outcomes, n_models, n_experiments)
        L : numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            Only if ``return_L``.
        """
        side = np.atleast_1d(np.asarray(outcomes)).reshape(-1)[:, np.newaxis]
        p = np.asarray(modelparams, dtype=np.float64)[:, 0][np.newaxis, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (1 - side) / p - side / (1 - p)  # (n_outcomes, n_models)
        n_exp = np.shape(expparams)[0]
        q = np.repeat(q[np.newaxis, :, :, np.newaxis], n_exp, axis=3)
        if return_L:
            return q, self.likelihood(outcomes, modelparams, expparams)
        return q


class NoisyCoinModel(FiniteOutcomeModel):
    r"""A coin seen through a noisy readout (qinfer's model of Ferrie and Blume-Kohout).

    The model parameter ``p`` is the probability of a true 0; the experiment
    record ``[('alpha', 'float'), ('beta', 'float')]`` gives the probability
    of reading 0 when the truth is 0 (:math:`\alpha`) and when it is 1
    (:math:`\beta`): ``Pr(0) = p alpha + (1 - p) beta``. An ideal readout
    has ``alpha = 1``, ``beta = 0``.
    """

    _checks_modelparam_count = True

    @property
    def n_modelparams(self) -> int:
        """int : One parameter, ``p``."""
        return 1

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('alpha', 'float'), ('beta', 'float')]``."""
        return [("alpha", "float"), ("beta", "float")]

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (two outcomes)."""
        return True

    def n_outcomes(self, expparams) -> int:
        """Two outcomes for every experiment."""
        return 2

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff ``0 <= p <= 1``."""
        return _are_probabilities(modelparams)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | p; alpha, beta) (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        p = modelparams[:, 0:1]
        alpha = _field(expparams, "alpha")[np.newaxis, :]
        beta = _field(expparams, "beta")[np.newaxis, :]
        return self.pr0_to_likelihood_array(outcomes, p * alpha + (1 - p) * beta)


class NDieModel(FiniteOutcomeModel):
    """A die with ``n`` sides of unknown weights; an experiment is one roll.

    The model parameters are the ``n`` side probabilities, outcomes the side
    (``0, ..., n - 1``). The experiment record ``[('exp_num', 'int')]`` is a
    label that does not enter the likelihood.

    Parameters
    ----------
    n : int, optional
        Number of sides (default 6).
    threshold : float, optional
        How far from 1 the weights of a valid model may sum (default 1e-7).
    """

    _checks_modelparam_count = True

    def __init__(self, n: int = 6, threshold: float = 1e-7):
        super().__init__()
        if int(n) < 1:
            raise ValueError(f"n must be a positive number of sides, got {n!r}")
        self._n = int(n)
        self._threshold = threshold

    @property
    def n_modelparams(self) -> int:
        """int : ``n``, one weight per side."""
        return self._n

    @property
    def expparams_dtype(self) -> list:
        """list : ``[('exp_num', 'int')]`` (a label only)."""
        return [("exp_num", "int")]

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Always True (``n`` outcomes)."""
        return True

    def n_outcomes(self, expparams) -> int:
        """``n`` outcomes for every experiment."""
        return self._n

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Valid iff every weight is in [0, 1] and they sum to 1 within ``threshold``."""
        sums_to_one = np.abs(np.sum(modelparams, axis=1) - 1) <= self._threshold
        return sums_to_one & _are_probabilities(modelparams)

    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """The weight of each outcome's side, the same for every experiment (see :meth:`Model.likelihood`).

        Returns
        -------
        numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
        """
        super().likelihood(outcomes, modelparams, expparams)
        sides = np.atleast_1d(np.asarray(outcomes))
        weights = np.asarray(modelparams)[:, sides].T  # (n_outcomes, n_models)
        n_exp = np.shape(expparams)[0]
        return np.repeat(weights[:, :, np.newaxis], n_exp, axis=2)
