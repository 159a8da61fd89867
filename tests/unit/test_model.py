"""Tests of the model base classes in mpi_qinfer.models.base."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mpi_qinfer.models.base import (
    DerivedModel,
    FiniteOutcomeModel,
    IntegerDomain,
    Model,
    Simulatable,
)


class CoinModel(FiniteOutcomeModel):
    """A biased coin: the single model parameter is Pr(0); expparams are ignored."""

    @property
    def n_modelparams(self):
        return 1

    @property
    def expparams_dtype(self):
        return "float"

    @property
    def is_n_outcomes_constant(self):
        return True

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.all((modelparams >= 0) & (modelparams <= 1), axis=1)

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        pr0 = np.broadcast_to(modelparams[:, 0:1], (modelparams.shape[0], expparams.shape[0]))
        return self.pr0_to_likelihood_array(outcomes, pr0)


class DieModel(FiniteOutcomeModel):
    """A fair die with ``expparams['n']`` faces: the outcome count varies."""

    @property
    def n_modelparams(self):
        return 1

    @property
    def expparams_dtype(self):
        return [("n", "i8")]

    @property
    def is_n_outcomes_constant(self):
        return False

    def n_outcomes(self, expparams):
        return expparams["n"]

    def are_models_valid(self, modelparams):
        return np.ones(modelparams.shape[0], dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        n = expparams["n"][np.newaxis, np.newaxis, :].astype(float)
        o = np.asarray(outcomes)[:, np.newaxis, np.newaxis]
        L = np.where(o < n, 1 / n, 0.0)
        return np.broadcast_to(L, (o.shape[0], modelparams.shape[0], n.shape[2])).copy()


class PassThrough(DerivedModel):
    """The smallest concrete DerivedModel: forwards the likelihood too."""

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        return self.underlying_model.likelihood(outcomes, modelparams, expparams)


class ForeignModel:
    """A duck-typed model from elsewhere, lacking rng, model_chain and base_model."""

    n_modelparams = 1
    expparams_dtype = "float"
    is_n_outcomes_constant = True
    Q = np.array([2.0])

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return modelparams[:, 0] > 0

    def likelihood(self, outcomes, modelparams, expparams):
        return FiniteOutcomeModel.pr0_to_likelihood_array(
            outcomes, np.full((modelparams.shape[0], expparams.shape[0]), 0.25)
        )


# -- IntegerDomain ------------------------------------------------------------


def test_integer_domain_attributes():
    d = IntegerDomain(2, 5)
    assert (d.min, d.max) == (2, 5)
    assert d.dtype == np.dtype(np.int64)
    assert d.is_continuous is False and d.is_finite is True
    assert d.n_members == 4
    np.testing.assert_array_equal(d.values, [2, 3, 4, 5])
    assert d.values.dtype == np.int64
    default = IntegerDomain()  # qinfer's default: the non-negative integers
    assert (default.min, default.max) == (0, np.inf)
    assert default.is_finite is False and default.n_members == np.inf


def test_integer_domain_in_domain():
    d = IntegerDomain(0, 3)
    assert d.in_domain([0, 1, 3]) is True
    assert d.in_domain(np.array([2])) is True
    assert d.in_domain([4]) is False
    assert d.in_domain([-1, 0]) is False
    assert d.in_domain([1.5]) is False


def test_integer_domain_eq_hash_repr():
    assert IntegerDomain(0, 3) == IntegerDomain(0, 3)
    assert IntegerDomain(0, 3) != IntegerDomain(0, 2)
    assert IntegerDomain(0, 3) != "IntegerDomain(0, 3)"
    assert len({IntegerDomain(0, 3), IntegerDomain(0, 3)}) == 1
    assert repr(IntegerDomain(1, 4)) == "IntegerDomain(min=1, max=4)"


# -- base-class defaults ----------------------------------------------------------


def test_abstract_bases_cannot_be_instantiated():
    for cls in (Simulatable, Model, FiniteOutcomeModel):
        with pytest.raises(TypeError):
            cls()


def test_simulatable_defaults():
    m = CoinModel()
    assert m.model_chain == ()
    assert m.base_model is m
    assert m.underlying_model is None
    np.testing.assert_array_equal(m.Q, [1.0])
    assert m.modelparam_names == ["x_{0}"]
    before = (m.call_count, m.sim_count, m._rng)
    m.clear_cache()  # the base has no cache: a no-op that changes nothing
    assert (m.call_count, m.sim_count, m._rng) == before
    eps = np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(m.experiment_cost(eps), np.ones(3))
    mps = np.array([[0.1], [0.9]])
    assert m.canonicalize(mps) is mps
    assert m.are_expparam_dtypes_consistent(eps)
    assert m.is_model_valid(np.array([0.5])) and not m.is_model_valid(np.array([1.5]))


def test_update_timestep_shape_and_values():
    m = CoinModel()
    mps = np.arange(6.0).reshape(3, 2)  # two columns, to see the transpose
    out = m.update_timestep(mps, np.zeros(4))
    assert out.shape == (3, 2, 4)
    for k in range(4):
        np.testing.assert_array_equal(out[:, :, k], mps)


def test_call_and_sim_counts():
    m = CoinModel()
    mps = np.full((5, 1), 0.5)
    eps = np.zeros(3)
    m.likelihood(np.array([0, 1]), mps, eps)
    assert m.call_count == 2 * 5 * 3
    m.likelihood(0, mps, eps)  # a scalar outcome counts as one
    assert m.call_count == 30 + 15
    m.simulate_experiment(mps, eps, repeat=4)
    assert m.sim_count == 5 * 3 * 4


def test_rng_is_lazy_and_settable():
    m = CoinModel()
    assert m._rng is None
    assert isinstance(m.rng, np.random.Generator)
    assert m.rng is m.rng
    g = np.random.default_rng(3)
    m.rng = g
    assert m.rng is g


# -- pr0_to_likelihood_array ------------------------------------------------------


def test_pr0_to_likelihood_array():
    pr0 = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    L = FiniteOutcomeModel.pr0_to_likelihood_array(np.array([0, 1, 0]), pr0)
    assert L.shape == (3, 2, 3) and L.dtype == np.float64
    np.testing.assert_array_equal(L[0], pr0)
    np.testing.assert_array_equal(L[1], 1 - pr0)
    np.testing.assert_array_equal(L[2], pr0)
    scalar = FiniteOutcomeModel.pr0_to_likelihood_array(1, pr0)
    assert scalar.shape == (1, 2, 3)
    np.testing.assert_array_equal(scalar[0], 1 - pr0)


def test_pr0_to_likelihood_array_upcasts_to_float64():
    pr0 = np.array([[0.25]], dtype=np.float32)
    L = FiniteOutcomeModel.pr0_to_likelihood_array(np.array([0]), pr0)
    assert L.dtype == np.float64


# -- simulate_experiment ----------------------------------------------------------


def test_simulate_experiment_shape_dtype_and_squeeze():
    m = CoinModel()
    m.rng = np.random.default_rng(0)
    out = m.simulate_experiment(np.full((4, 1), 0.5), np.zeros(3), repeat=2)
    assert out.shape == (2, 4, 3) and out.dtype == np.int64
    assert set(np.unique(out)) <= {0, 1}
    single = m.simulate_experiment(np.full((1, 1), 0.5), np.zeros(1))
    assert np.ndim(single) == 0
    assert int(single) in (0, 1)
    # repeat > 1 with one model and one experiment is not squeezed.
    assert m.simulate_experiment(np.full((1, 1), 0.5), np.zeros(1), repeat=3).shape == (3, 1, 1)


def test_simulate_experiment_frequencies_and_determinism():
    mps = np.array([[0.0], [0.3], [1.0]])
    m = CoinModel()
    m.rng = np.random.default_rng(42)
    out = m.simulate_experiment(mps, np.zeros(1), repeat=20000)
    frac_zero = np.mean(out == 0, axis=(0, 2))
    assert frac_zero[0] == 0.0 and frac_zero[2] == 1.0
    assert abs(frac_zero[1] - 0.3) < 0.02
    m.rng = np.random.default_rng(42)
    np.testing.assert_array_equal(m.simulate_experiment(mps, np.zeros(1), repeat=20000), out)


def test_non_constant_outcomes_domain_and_simulation():
    m = DieModel()
    eps = np.array([(2,), (5,)], dtype=m.expparams_dtype)
    assert m.domain(eps) == [IntegerDomain(0, 1), IntegerDomain(0, 4)]
    m.rng = np.random.default_rng(1)
    out = m.simulate_experiment(np.zeros((3, 1)), eps, repeat=2000)
    assert out.shape == (2000, 3, 2) and out.dtype == np.int64
    assert set(np.unique(out[..., 0])) == {0, 1}
    assert set(np.unique(out[..., 1])) == {0, 1, 2, 3, 4}
    assert m.sim_count == 2000 * 3 * 2


def test_constant_outcomes_domain():
    assert CoinModel().domain(None) == IntegerDomain(0, 1)


# -- DerivedModel -----------------------------------------------------------------


def test_derived_model_forwards_to_underlying():
    under = CoinModel()
    d = PassThrough(under)
    assert d.underlying_model is under
    assert d.base_model is under
    assert d.model_chain == (under,)
    assert d.n_modelparams == 1
    assert d.expparams_dtype == "float"
    assert d.is_n_outcomes_constant is True
    assert d.n_outcomes(None) == 2
    assert d.domain(None) == IntegerDomain(0, 1)
    assert d.modelparam_names == ["x_{0}"]
    np.testing.assert_array_equal(d.Q, under.Q)
    mps = np.array([[0.5], [2.0]])
    np.testing.assert_array_equal(d.are_models_valid(mps), [True, False])
    np.testing.assert_array_equal(d.update_timestep(mps, np.zeros(2)), under.update_timestep(mps, np.zeros(2)))
    assert d.canonicalize(mps) is mps
    np.testing.assert_array_equal(d.experiment_cost(np.zeros(3)), np.ones(3))
    L = d.likelihood(np.array([0]), mps, np.zeros(1))
    np.testing.assert_array_equal(L[0, :, 0], [0.5, 2.0])
    assert d.call_count == 2 and under.call_count == 2


def test_derived_model_chain_of_two():
    base = CoinModel()
    middle = PassThrough(base)
    top = PassThrough(middle)
    assert top.underlying_model is middle
    assert top.base_model is base
    assert top.model_chain == (base, middle)


def test_derived_model_forwards_rng():
    under = CoinModel()
    d = PassThrough(under)
    g = np.random.default_rng(9)
    d.rng = g
    assert under.rng is g and d.rng is g
    g2 = np.random.default_rng(10)
    under.rng = g2
    assert d.rng is g2


def test_derived_model_over_foreign_model():
    foreign = ForeignModel()
    d = PassThrough(foreign)
    assert d.base_model is foreign
    assert d.model_chain == (foreign,)
    assert isinstance(d.rng, np.random.Generator)  # falls back to its own
    g = np.random.default_rng(0)
    d.rng = g
    assert d.rng is g
    np.testing.assert_array_equal(d.Q, [2.0])
    assert d.modelparam_names == ["x_{0}"]
    mps = np.array([[1.0], [-1.0]])
    assert d.canonicalize(mps) is mps
    d.clear_cache()
    L = d.likelihood(np.array([0, 1]), mps, np.zeros(1))
    np.testing.assert_array_equal(L[:, 0, 0], [0.25, 0.75])


def test_models_pickle():
    m = PassThrough(CoinModel())
    m.rng = np.random.default_rng(5)
    m.likelihood(np.array([0]), np.zeros((2, 1)), np.zeros(1))
    clone = pickle.loads(pickle.dumps(m))
    assert clone.call_count == m.call_count
    assert clone.rng.random() == m.rng.random()


# -- qinfer's semantics: domains per experiment, lenient parameter counts, a clear word on a skipped __init__


def test_domain_is_a_list_of_one_domain_per_experiment_and_the_domain_itself_for_none():
    coin = CoinModel()
    domains = coin.domain(np.zeros(3))
    assert domains == [IntegerDomain(0, 1)] * 3
    assert coin.domain(np.zeros(1)) == [IntegerDomain(0, 1)]
    assert coin.domain(None) == IntegerDomain(0, 1)
    die = DieModel()
    assert die.domain(np.array([(4,)], dtype=die.expparams_dtype)) == [IntegerDomain(0, 3)]


class _TwoParameterMock(FiniteOutcomeModel):
    """qinfer's MockModel: declares two parameters and ignores them (its tests pass one column)."""

    @property
    def n_modelparams(self):
        return 2

    @property
    def expparams_dtype(self):
        return [("a", float), ("b", int)]

    def n_outcomes(self, expparams):
        return 2

    def are_models_valid(self, modelparams):
        return np.ones(modelparams.shape[0], dtype=bool)

    def likelihood(self, outcomes, modelparams, expparams):
        super().likelihood(outcomes, modelparams, expparams)
        return self.pr0_to_likelihood_array(outcomes, np.full((modelparams.shape[0], expparams.shape[0]), 0.5))


def test_a_users_model_gets_particles_of_any_width_as_in_qinfer():
    mock = _TwoParameterMock()
    assert mock.is_n_outcomes_constant is True  # qinfer's default, not an abstract property
    expparams = np.zeros(4, dtype=mock.expparams_dtype)
    assert mock.likelihood(np.array([0, 1]), np.zeros((3, 1)), expparams).shape == (2, 3, 4)
    assert mock.simulate_experiment(np.zeros((3, 1)), expparams, repeat=2).shape == (2, 3, 4)
    # Still refused: particles that are not a 2-d array of numbers.
    with pytest.raises(ValueError, match="2-d"):
        mock.likelihood(np.array([0]), np.zeros(3), expparams)
    with pytest.raises(TypeError, match="real numbers"):
        mock.likelihood(np.array([0]), np.array([["a"]]), expparams)


def test_the_models_of_this_package_still_check_the_parameter_count():
    from mpi_qinfer.models.builtin import SimplePrecessionModel

    with pytest.raises(ValueError, match=r"\(n_models, 1\)"):
        SimplePrecessionModel().likelihood(np.array([0]), np.zeros((3, 2)), np.ones(2))


class _ForgetsSuperInit(CoinModel):
    def __init__(self, bias):
        self.bias = bias  # and no super().__init__()


class _DerivedForgetsSuperInit(DerivedModel):
    def __init__(self, underlying_model):
        self.wrapped = underlying_model

    def likelihood(self, outcomes, modelparams, expparams):
        return self.underlying_model.likelihood(outcomes, modelparams, expparams)


def test_a_skipped_super_init_is_named_with_what_to_do():
    model = _ForgetsSuperInit(0.5)
    with pytest.raises(AttributeError, match=r"_ForgetsSuperInit.__init__.*does not call super\(\).__init__\(\)"):
        model.likelihood(np.array([0]), np.full((2, 1), 0.5), np.zeros(1))
    with pytest.raises(AttributeError, match=r"Call super\(\).__init__\(\) in _ForgetsSuperInit.__init__"):
        model.simulate_experiment(np.full((2, 1), 0.5), np.zeros(1))
    with pytest.raises(AttributeError, match="super"):
        _ = model.rng
    derived = _DerivedForgetsSuperInit(CoinModel())
    with pytest.raises(AttributeError, match=r"super\(\).__init__\(underlying_model\)"):
        _ = derived.n_modelparams
    # Other missing attributes keep Python's own message, and hasattr still works.
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = CoinModel().nothing_here
    assert not hasattr(model, "rng") and hasattr(CoinModel(), "rng")


class _BrokenProperty(CoinModel):
    @property
    def n_modelparams(self):
        return self._typo_in_the_users_code


def test_an_attribute_error_inside_a_property_keeps_its_own_message():
    with pytest.raises(AttributeError, match="_typo_in_the_users_code"):
        _ = _BrokenProperty().n_modelparams
