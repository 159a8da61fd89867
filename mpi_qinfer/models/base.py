"""The qinfer-compatible model base classes that every serial model derives from.

The classes mirror ``qinfer.abstract_model`` and ``qinfer.derived_models`` of
qinfer 1.0 (``Simulatable``, ``Model``, ``FiniteOutcomeModel``,
``DifferentiableModel``, ``DerivedModel``), with one addition: every model owns
a :class:`numpy.random.Generator` (:attr:`Simulatable.rng`) that all of its
simulation draws from, so that a parallel engine can hand each rank its own
stream. The outcome domains live in :mod:`~mpi_qinfer.models.domains`
(``IntegerDomain`` is importable from here too).
"""

from __future__ import annotations

import abc

import numpy as np

from .domains import IntegerDomain

__all__ = [
    "IntegerDomain",
    "Simulatable",
    "Model",
    "FiniteOutcomeModel",
    "DifferentiableModel",
    "DerivedModel",
]


def _safe_len(x) -> int:
    """Length of the leading axis of ``x``, counting a scalar as one item."""
    try:
        return len(x)
    except TypeError:  # a scalar or 0-d array
        return 1


def check_arguments(model, modelparams, expparams) -> None:
    """Raise a clear error, naming the argument, for model parameters or experiments a model cannot use.

    The base classes' ``likelihood`` and ``simulate_experiment`` call it, so
    every model that calls ``super()`` there is checked (a few attribute reads
    when the arrays are right).

    The number of columns of ``modelparams`` is checked only for the concrete
    models of this package (class attribute ``_checks_modelparam_count``): a
    model of the user's own, like qinfer's, is given what the caller passes
    (qinfer's own tests drive a two-parameter mock model with one-column
    particles, which it ignores).

    Raises
    ------
    ValueError
        ``modelparams`` not 2-d (or, for a model of this package, not of
        shape ``(n_models, n_modelparams)``), or ``expparams`` not 1-d.
    TypeError
        ``modelparams`` not real numbers, or ``expparams`` without the
        model's record fields.
    """
    shape = np.shape(modelparams)
    if len(shape) != 2 or (getattr(model, "_checks_modelparam_count", False) and shape[1] != model.n_modelparams):
        raise ValueError(
            f"modelparams must be a 2-d array of shape (n_models, {model.n_modelparams}), got shape {shape}"
        )
    kind = np.asarray(modelparams).dtype.kind if type(modelparams) is not np.ndarray else modelparams.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"modelparams must be real numbers, got dtype {np.asarray(modelparams).dtype}")
    if np.ndim(expparams) != 1:
        raise ValueError(f"expparams must be a 1-d array, got shape {np.shape(expparams)}")
    want = np.dtype(model.expparams_dtype).names
    if want:
        have = getattr(expparams, "dtype", None)
        missing = [name for name in want if have is None or have.names is None or name not in have.names]
        if missing:
            raise TypeError(f"expparams must have the model's record fields {list(want)}; missing {missing}")


def _single_n_outcomes(model, expparams) -> int:
    """The number of outcomes of a model whose count does not depend on ``expparams``."""
    return int(np.ravel(model.n_outcomes(expparams))[0])


#: Attributes that the base classes' ``__init__`` sets, and the call that sets them.
_SET_BY_INIT = {
    "_sim_count": "super().__init__()",
    "_rng": "super().__init__()",
    "_call_count": "super().__init__()",
    "_underlying_model": "super().__init__(underlying_model)",
}


def _missing_init_message(model, name: str) -> str:
    """What to do about a model whose ``__init__`` did not run the base classes' ``__init__``."""
    cls = type(model).__name__
    call = _SET_BY_INIT[name]
    return (
        f"{cls} has no attribute {name!r}, which the base class's __init__ sets: {cls}.__init__ (or an "
        f"__init__ between it and the base class) does not call {call}. Call {call} in {cls}.__init__, "
        "after setting any attribute that n_modelparams or expparams_dtype read."
    )


class Simulatable(abc.ABC):
    """A model that can simulate experiment outcomes (qinfer's ``Simulatable``).

    Subclasses provide :attr:`n_modelparams`, :attr:`expparams_dtype`,
    :attr:`is_n_outcomes_constant`, :meth:`n_outcomes`, :meth:`domain` and
    :meth:`are_models_valid`.

    Attributes
    ----------
    _sim_count : int
        Number of (model, experiment, repeat) triples simulated so far.
    _rng : numpy.random.Generator or None
        The generator behind :attr:`rng`; ``None`` until first needed.
    """

    #: Whether check_arguments insists on ``n_modelparams`` columns (this package's concrete models do).
    _checks_modelparam_count = False

    def __init__(self):
        self._sim_count = 0
        self._rng = None

    def __getattr__(self, name):
        # Reached only when normal lookup fails: say what to do when it is an attribute that
        # the base classes' __init__ sets, i.e. a subclass's __init__ skipped super().__init__().
        if name in _SET_BY_INIT:
            raise AttributeError(_missing_init_message(self, name), name=name, obj=self)
        for klass in type(self).__mro__:
            if name in klass.__dict__:
                # A property whose getter raised AttributeError (Python then asks __getattr__):
                # run the getter again, so that its own error, not "no attribute", reaches the caller.
                found = klass.__dict__[name]
                if hasattr(found, "__get__"):
                    return found.__get__(self, type(self))
                break
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self)

    # -- abstract interface ---------------------------------------------------

    @property
    @abc.abstractmethod
    def n_modelparams(self) -> int:
        """int : Number of real model parameters, constant for the model's lifetime."""

    @property
    @abc.abstractmethod
    def expparams_dtype(self):
        """The dtype (scalar or structured) of an experiment parameter array."""

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : True iff the number of outcomes does not depend on the experiment (default True, as in qinfer)."""
        return True

    @abc.abstractmethod
    def n_outcomes(self, expparams):
        """Number of outcomes of each experiment in ``expparams``.

        Parameters
        ----------
        expparams : numpy.ndarray
            Experiments, of dtype :attr:`expparams_dtype`.
        """

    @abc.abstractmethod
    def domain(self, expparams):
        """The outcome domain of each experiment in ``expparams``.

        Parameters
        ----------
        expparams : numpy.ndarray or None
            Experiments, of dtype :attr:`expparams_dtype`.
        """

    @abc.abstractmethod
    def are_models_valid(self, modelparams) -> np.ndarray:
        """Which rows of ``modelparams`` are valid models.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)

        Returns
        -------
        numpy.ndarray of bool, shape (n_models,)
        """

    # -- concrete properties --------------------------------------------------

    @property
    def model_chain(self) -> tuple:
        """tuple : The models this one decorates; empty for a standalone model."""
        return ()

    @property
    def base_model(self):
        """Simulatable : The innermost model; ``self`` for a standalone model."""
        return self

    @property
    def underlying_model(self):
        """Simulatable or None : The model this one decorates, if any."""
        return None

    @property
    def sim_count(self) -> int:
        """int : Number of (model, experiment, repeat) triples simulated so far."""
        return self._sim_count

    @property
    def Q(self) -> np.ndarray:
        """numpy.ndarray : Diagonal of the quadratic-loss scale matrix (all ones)."""
        return np.ones(self.n_modelparams)

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : LaTeX names of the model parameters, ``x_{0}, x_{1}, ...``."""
        return ["x_{{{}}}".format(idx) for idx in range(self.n_modelparams)]

    @property
    def rng(self) -> np.random.Generator:
        """numpy.random.Generator : The source of every random draw of this model.

        Created with :func:`numpy.random.default_rng` on first use unless set.
        """
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self._rng = value

    # -- concrete methods -----------------------------------------------------

    def clear_cache(self) -> None:
        """Drop any internal cache; results never depend on it. No-op by default."""

    def are_expparam_dtypes_consistent(self, expparams) -> bool:
        """Whether all experiments' outcome domains share one dtype.

        Parameters
        ----------
        expparams : numpy.ndarray
            Experiments, of dtype :attr:`expparams_dtype`.

        Returns
        -------
        bool
        """
        if self.is_n_outcomes_constant or np.size(expparams) == 0:
            return True
        domains = self.domain(expparams)
        first = domains[0].dtype
        return all(domain.dtype == first for domain in domains[1:])

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """Count a simulation; subclasses call this, then draw the outcomes.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)
        repeat : int, optional
            Number of repetitions of every (model, experiment) pair.
        """
        check_arguments(self, modelparams, expparams)
        if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
            raise ValueError(f"repeat must be a positive integer, got {repeat!r}")
        self._sim_count += modelparams.shape[0] * expparams.shape[0] * repeat

    def experiment_cost(self, expparams) -> np.ndarray:
        """Cost of each experiment: one, by default.

        Parameters
        ----------
        expparams : numpy.ndarray
            Experiments, of dtype :attr:`expparams_dtype`.

        Returns
        -------
        numpy.ndarray of float, same shape as ``expparams``
        """
        return np.ones(expparams.shape)

    def distance(self, a, b) -> np.ndarray:
        """The :attr:`Q`-weighted 1-norm distance between rows of ``a`` and ``b``.

        Parameters
        ----------
        a, b : numpy.ndarray, shape (n, n_modelparams)

        Returns
        -------
        numpy.ndarray, shape (n,)
        """
        return np.sum(np.abs(self.Q * (np.asarray(a) - np.asarray(b))), axis=1)

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """The models after each experiment; static (a copy per experiment) by default.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)

        Returns
        -------
        numpy.ndarray, shape (n_models, n_modelparams, n_experiments)
        """
        return np.tile(modelparams, (expparams.shape[0], 1, 1)).transpose((1, 2, 0))

    def canonicalize(self, modelparams) -> np.ndarray:
        """A canonical representative of each model; the identity by default.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)

        Returns
        -------
        numpy.ndarray, shape (n_models, n_modelparams)
        """
        return modelparams


class Model(Simulatable):
    """A simulatable model with an explicit likelihood (qinfer's ``Model``).

    Attributes
    ----------
    _call_count : int
        Number of (outcome, model, experiment) likelihood entries computed.
    """

    def __init__(self):
        super().__init__()
        self._call_count = 0

    @property
    def call_count(self) -> int:
        """int : Number of (outcome, model, experiment) likelihood entries computed."""
        return self._call_count

    @abc.abstractmethod
    def likelihood(self, outcomes, modelparams, expparams) -> np.ndarray:
        """Pr(outcome | model; experiment); subclasses call this to count the call.

        Parameters
        ----------
        outcomes : numpy.ndarray, shape (n_outcomes,)
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)

        Returns
        -------
        numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            In subclasses; the base returns None.
        """
        check_arguments(self, modelparams, expparams)
        self._call_count += (
            _safe_len(outcomes) * _safe_len(modelparams) * _safe_len(expparams)
        )

    def is_model_valid(self, modelparams) -> bool:
        """Whether the single model vector ``modelparams`` is valid.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_modelparams,)

        Returns
        -------
        bool
        """
        return bool(self.are_models_valid(modelparams[np.newaxis, :])[0])


class FiniteOutcomeModel(Model):
    """A model whose outcomes are the integers ``0, ..., n_outcomes - 1``."""

    def domain(self, expparams):
        """The outcome domains, ``IntegerDomain(0, n_outcomes - 1)``: a list, one per experiment.

        As in qinfer, ``domain(None)`` of a model whose number of outcomes is
        constant is the one domain itself, not a list.

        Parameters
        ----------
        expparams : numpy.ndarray or None
            Experiments; may be None when :attr:`is_n_outcomes_constant`.

        Returns
        -------
        list of IntegerDomain, or IntegerDomain for ``expparams=None``
        """
        if self.is_n_outcomes_constant:
            domain = IntegerDomain(0, _single_n_outcomes(self, expparams) - 1)
            return domain if expparams is None else [domain] * _safe_len(expparams)
        return [IntegerDomain(0, int(n_o) - 1) for n_o in np.atleast_1d(self.n_outcomes(expparams))]

    def are_expparam_dtypes_consistent(self, expparams) -> bool:
        """Always True: every outcome is an int64 (see :meth:`Simulatable.are_expparam_dtypes_consistent`)."""
        return True

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1):
        """Draw outcomes by inverting the cumulative likelihood with :attr:`rng`.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)
        repeat : int, optional
            Number of repetitions of every (model, experiment) pair.

        Returns
        -------
        numpy.ndarray of int64, shape (repeat, n_models, n_experiments), or int
            A bare scalar when only one outcome was drawn (as qinfer does).
        """
        super().simulate_experiment(modelparams, expparams, repeat)
        n_models, n_exp = modelparams.shape[0], expparams.shape[0]

        if self.is_n_outcomes_constant:
            n_o = _single_n_outcomes(self, expparams[:1])
            cdf = np.cumsum(self.likelihood(np.arange(n_o), modelparams, expparams), axis=0)
            draws = self.rng.random((repeat, 1, n_models, n_exp))
            outcomes = np.argmax(cdf > draws, axis=1).astype(np.int64)
        else:
            outcomes = np.empty((repeat, n_models, n_exp), dtype=np.int64)
            for idx in range(n_exp):
                single = expparams[idx : idx + 1]
                n_o = _single_n_outcomes(self, single)
                cdf = np.cumsum(self.likelihood(np.arange(n_o), modelparams, single), axis=0)[..., 0]
                draws = self.rng.random((repeat, 1, n_models))
                outcomes[:, :, idx] = np.argmax(cdf > draws, axis=1)

        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes

    @staticmethod
    def pr0_to_likelihood_array(outcomes, pr0) -> np.ndarray:
        """Likelihood array of a two-outcome model from Pr(0).

        Parameters
        ----------
        outcomes : int or numpy.ndarray of int, shape (n_outcomes,)
            Outcome 0 selects ``pr0``; any other value selects ``1 - pr0``.
        pr0 : numpy.ndarray, shape (n_models, n_experiments)

        Returns
        -------
        numpy.ndarray of float64, shape (n_outcomes, n_models, n_experiments)
        """
        outcomes = np.atleast_1d(np.asarray(outcomes))
        pr0 = np.asarray(pr0, dtype=np.float64)[np.newaxis, ...]
        pr1 = 1 - pr0
        is_zero = (outcomes == 0).reshape((-1,) + (1,) * (pr0.ndim - 1))
        return np.where(is_zero, pr0, pr1)


class DifferentiableModel(Model):
    """A model that also provides the score, hence the Fisher information."""

    @abc.abstractmethod
    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        r"""The score :math:`\nabla_x \log \Pr(d | x; e)`.

        Parameters
        ----------
        outcomes : numpy.ndarray, shape (n_outcomes,)
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)
        return_L : bool, optional
            Also return the likelihood.

        Returns
        -------
        q : numpy.ndarray, shape (n_modelparams, n_outcomes, n_models, n_experiments)
        L : numpy.ndarray, shape (n_outcomes, n_models, n_experiments)
            Only if ``return_L``.
        """

    def fisher_information(self, modelparams, expparams) -> np.ndarray:
        """The Fisher information: the outcome-average of the score's outer product.

        Parameters
        ----------
        modelparams : numpy.ndarray, shape (n_models, n_modelparams)
        expparams : numpy.ndarray, shape (n_experiments,)

        Returns
        -------
        numpy.ndarray, shape (n_modelparams, n_modelparams, n_models, n_experiments)
        """
        if not self.is_n_outcomes_constant:
            raise NotImplementedError(
                "fisher_information needs a constant number of outcomes"
            )
        outcomes = np.arange(_single_n_outcomes(self, expparams))
        scores, L = self.score(outcomes, modelparams, expparams, return_L=True)
        return np.einsum("ome,iome,jome->ijme", L, scores, scores)


class DerivedModel(Model):
    """A model that decorates another one, forwarding what it does not change.

    The underlying model may be a foreign (e.g. real qinfer) model: attributes
    it may lack (``model_chain``, ``base_model``, ``rng``, ...) fall back to
    sensible defaults.

    Parameters
    ----------
    underlying_model : Model
        The decorated model.
    """

    def __init__(self, underlying_model):
        self._underlying_model = underlying_model
        super().__init__()

    @property
    def underlying_model(self):
        """Model : The decorated model."""
        return self._underlying_model

    @property
    def base_model(self):
        """Model : The innermost model of the chain."""
        under = self._underlying_model
        return getattr(under, "base_model", under)

    @property
    def model_chain(self) -> tuple:
        """tuple : The underlying model's own chain, then the underlying model (qinfer's order)."""
        under = self._underlying_model
        return tuple(getattr(under, "model_chain", ())) + (under,)

    @property
    def rng(self) -> np.random.Generator:
        """numpy.random.Generator : The underlying model's generator, when it has one."""
        under = self._underlying_model
        if hasattr(under, "rng"):
            return under.rng
        return Simulatable.rng.fget(self)

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self._rng = value
        under = self._underlying_model
        if hasattr(under, "rng"):
            under.rng = value

    @property
    def n_modelparams(self) -> int:
        """int : Forwarded to the underlying model."""
        return self._underlying_model.n_modelparams

    @property
    def expparams_dtype(self):
        """Forwarded to the underlying model."""
        return self._underlying_model.expparams_dtype

    @property
    def is_n_outcomes_constant(self) -> bool:
        """bool : Forwarded to the underlying model."""
        return self._underlying_model.is_n_outcomes_constant

    @property
    def modelparam_names(self) -> list[str]:
        """list of str : Forwarded to the underlying model."""
        return getattr(self._underlying_model, "modelparam_names", Model.modelparam_names.fget(self))

    @property
    def Q(self) -> np.ndarray:
        """numpy.ndarray : Forwarded to the underlying model."""
        return getattr(self._underlying_model, "Q", np.ones(self.n_modelparams))

    def n_outcomes(self, expparams):
        """Forwarded to the underlying model (see :meth:`Simulatable.n_outcomes`)."""
        return self._underlying_model.n_outcomes(expparams)

    def domain(self, expparams):
        """Forwarded to the underlying model (see :meth:`Simulatable.domain`)."""
        return self._underlying_model.domain(expparams)

    def are_models_valid(self, modelparams) -> np.ndarray:
        """Forwarded to the underlying model (see :meth:`Simulatable.are_models_valid`)."""
        return self._underlying_model.are_models_valid(modelparams)

    def clear_cache(self) -> None:
        """Forwarded to the underlying model."""
        clear = getattr(self._underlying_model, "clear_cache", None)
        if clear is not None:
            clear()

    def update_timestep(self, modelparams, expparams) -> np.ndarray:
        """Forwarded to the underlying model (see :meth:`Simulatable.update_timestep`)."""
        return self._underlying_model.update_timestep(modelparams, expparams)

    def canonicalize(self, modelparams) -> np.ndarray:
        """Forwarded to the underlying model, the identity if it has none."""
        canonicalize = getattr(self._underlying_model, "canonicalize", None)
        return modelparams if canonicalize is None else canonicalize(modelparams)

    def experiment_cost(self, expparams) -> np.ndarray:
        """Forwarded to the underlying model, one per experiment if it has none."""
        cost = getattr(self._underlying_model, "experiment_cost", None)
        return np.ones(expparams.shape) if cost is None else cost(expparams)

    def distance(self, a, b) -> np.ndarray:
        """Forwarded to the underlying model (PGH uses it), the Q-weighted 1-norm if it has none."""
        distance = getattr(self._underlying_model, "distance", None)
        return Simulatable.distance(self, a, b) if distance is None else distance(a, b)
