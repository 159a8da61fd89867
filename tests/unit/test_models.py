"""Tests of the concrete models in mpi_qinfer.models.builtin."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from mpi_qinfer.models.base import IntegerDomain
from mpi_qinfer.models.builtin import BinomialModel, IsingChainModel, RamseyModel, SimplePrecessionModel


def _particles(model, n, rng):
    if isinstance(model, RamseyModel):
        return np.column_stack([rng.uniform(0, 2, n), rng.uniform(0.5, 5, n)])
    if isinstance(model, IsingChainModel):
        return np.column_stack([rng.uniform(0, 2, n), rng.uniform(-1, 1, n)])
    return rng.uniform(0, 2, (n, model.n_modelparams))


def _experiments(model, n, rng):
    dtype = np.dtype(model.expparams_dtype)
    eps = np.zeros(n, dtype=dtype)
    if dtype.names is None:
        eps[:] = rng.uniform(0, 10, n)
    elif "phase" in dtype.names:
        eps["t"] = rng.uniform(0, 10, n)
        eps["phase"] = rng.uniform(0, 2 * np.pi, n)
    else:  # BinomialModel over SimplePrecessionModel
        eps["x"] = rng.uniform(0, 10, n)
        eps["n_meas"] = rng.integers(1, 12, n)
    return eps


MODELS = {
    "precession": SimplePrecessionModel,
    "ramsey": RamseyModel,
    "ising2": lambda: IsingChainModel(2),
    "ising3": lambda: IsingChainModel(3),
    "ising4": lambda: IsingChainModel(4),
    "binomial": lambda: BinomialModel(SimplePrecessionModel()),
}


@pytest.fixture(params=list(MODELS))
def model(request):
    return MODELS[request.param]()


def _all_outcomes(model, eps):
    return np.arange(int(np.max(model.n_outcomes(eps))))


def test_likelihood_shape_dtype_and_normalisation(model):
    rng = np.random.default_rng(0)
    mps, eps = _particles(model, 37, rng), _experiments(model, 5, rng)
    outcomes = _all_outcomes(model, eps)
    L = model.likelihood(outcomes, mps, eps)
    assert L.shape == (outcomes.size, 37, 5)
    assert L.dtype == np.float64
    assert np.all(L >= 0) and np.all(L <= 1)
    np.testing.assert_allclose(L.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    assert model.call_count == outcomes.size * 37 * 5


@pytest.mark.parametrize("n_exp", [1, 3, 8])
def test_row_subsets_are_bitwise_identical(model, n_exp):
    rng = np.random.default_rng(n_exp)
    n = 2100 if isinstance(model, IsingChainModel) and model.n_qubits == 2 else 300
    mps, eps = _particles(model, n, rng), _experiments(model, n_exp, rng)
    outcomes = _all_outcomes(model, eps)[:3]
    full = model.likelihood(outcomes, mps, eps)
    bounds = [(0, 1), (0, n), (1, 2), (3, 17), (17, 64), (63, 64 + 65), (n - 5, n), (n // 2, n)]
    if n > 2048:
        bounds += [(2047, 2049), (5, 2053)]
    for a, b in bounds:
        part = model.likelihood(outcomes, mps[a:b], eps)
        assert np.array_equal(part, full[:, a:b]), (a, b)


def test_pickle_round_trip(model):
    rng = np.random.default_rng(2)
    mps, eps = _particles(model, 10, rng), _experiments(model, 2, rng)
    model.rng = np.random.default_rng(11)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is type(model)
    outcomes = np.array([0, 1])
    assert np.array_equal(clone.likelihood(outcomes, mps, eps), model.likelihood(outcomes, mps, eps))
    assert clone.rng.random() == model.rng.random()


def test_simulate_experiment_matches_likelihood(model):
    rng = np.random.default_rng(3)
    mps, eps = _particles(model, 2, rng), _experiments(model, 2, rng)
    model.rng = np.random.default_rng(4)
    n_rep = 4000
    out = model.simulate_experiment(mps, eps, repeat=n_rep)
    assert out.shape == (n_rep, 2, 2) and out.dtype == np.int64
    L = model.likelihood(np.array([0]), mps, eps)[0]
    freq = np.mean(out == 0, axis=0)
    # Four-sigma binomial tolerance (plus a floor for near-certain outcomes).
    tol = 4 * np.sqrt(L * (1 - L) / n_rep) + 2e-3
    assert np.all(np.abs(freq - L) <= tol)
    assert model.sim_count == n_rep * 4


def test_simulate_experiment_squeezes_single_draw(model):
    rng = np.random.default_rng(5)
    out = model.simulate_experiment(_particles(model, 1, rng), _experiments(model, 1, rng))
    assert np.ndim(out) == 0


# -- SimplePrecessionModel -------------------------------------------------------


def test_precession_values_and_metadata():
    m = SimplePrecessionModel()
    assert m.n_modelparams == 1 and m.expparams_dtype == "float"
    assert m.modelparam_names == [r"\omega"]
    assert m.domain(None) == IntegerDomain(0, 1)
    L = m.likelihood(np.array([0, 1]), np.array([[0.7]]), np.array([2.0]))
    assert L[0, 0, 0] == pytest.approx(np.cos(0.7) ** 2)
    assert L[1, 0, 0] == pytest.approx(np.sin(0.7) ** 2)
    np.testing.assert_array_equal(m.are_models_valid(np.array([[0.0], [1.0], [-1e-9]])), [True, True, False])


def test_precession_score_matches_finite_differences():
    m = SimplePrecessionModel()
    mps = np.array([[0.3], [0.7], [1.9]])
    eps = np.array([0.5, 1.3, 4.0])
    outcomes = np.array([0, 1])
    q, L = m.score(outcomes, mps, eps, return_L=True)
    assert q.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(L, m.likelihood(outcomes, mps, eps))
    h = 1e-6
    log_plus = np.log(m.likelihood(outcomes, mps + h, eps))
    log_minus = np.log(m.likelihood(outcomes, mps - h, eps))
    np.testing.assert_allclose(q[0], (log_plus - log_minus) / (2 * h), rtol=1e-5, atol=1e-6)


def test_precession_fisher_information_is_t_squared():
    m = SimplePrecessionModel()
    mps = np.array([[0.3], [0.7]])
    eps = np.array([0.5, 1.3, 4.0])
    fi = m.fisher_information(mps, eps)
    assert fi.shape == (1, 1, 2, 3)
    np.testing.assert_allclose(fi[0, 0], np.broadcast_to(eps**2, (2, 3)), rtol=1e-10)


# -- RamseyModel -----------------------------------------------------------------


def test_ramsey_values_with_record_expparams():
    m = RamseyModel()
    eps = np.array([(1.5, 0.0), (2.0, np.pi / 3)], dtype=m.expparams_dtype)
    assert eps.dtype.names == ("t", "phase")
    mps = np.array([[0.8, 3.0]])
    L = m.likelihood(np.array([0]), mps, eps)[0, 0]
    expected = 0.5 + 0.5 * np.exp(-eps["t"] / 3.0) * np.cos(0.8 * eps["t"] + eps["phase"])
    np.testing.assert_allclose(L, expected, rtol=1e-14)
    np.testing.assert_array_equal(
        m.are_models_valid(np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, 0.0]])), [True, False, False]
    )


# -- IsingChainModel -------------------------------------------------------------


@pytest.mark.parametrize("n_qubits", [1, 2, 3])
def test_ising_without_coupling_is_product_of_precessions(n_qubits):
    m = IsingChainModel(n_qubits)
    t = np.array([0.4, 1.3, 2.9])
    L = m.likelihood(np.array([0]), np.array([[0.8, 0.0]]), t)[0, 0]
    np.testing.assert_allclose(L, np.cos(0.8 * t / 2) ** (2 * n_qubits), rtol=1e-10, atol=1e-13)


def test_ising_plus_state_is_stationary_without_field():
    # |+...+> is an eigenvector of every X_i X_{i+1}, so with omega = 0 nothing happens.
    L = IsingChainModel(3).likelihood(np.array([0]), np.array([[0.0, 0.7]]), np.array([0.3, 5.0]))
    np.testing.assert_allclose(L[0, 0], 1.0, atol=1e-12)


def test_ising_matches_dense_propagation():
    n = 3
    m = IsingChainModel(n)
    omega, coupling, t = 0.9, -0.6, 1.7
    Z = np.diag([1.0, -1.0])
    X = np.array([[0.0, 1.0], [1.0, 0.0]])

    def on(ops):
        out = np.eye(1)
        for op in ops:
            out = np.kron(out, op)
        return out

    eye = np.eye(2)
    H = sum(omega / 2 * on([Z if j == i else eye for j in range(n)]) for i in range(n))
    H = H + sum(
        coupling * on([X if j in (i, i + 1) else eye for j in range(n)]) for i in range(n - 1)
    )
    E, V = np.linalg.eigh(H)
    U = V @ np.diag(np.exp(-1j * E * t)) @ V.conj().T
    plus = np.ones(2**n) / np.sqrt(2**n)
    expected = abs(plus @ U @ plus) ** 2
    L = m.likelihood(np.array([0]), np.array([[omega, coupling]]), np.array([t]))
    assert L[0, 0, 0] == pytest.approx(expected, abs=1e-12)


def test_ising_metadata():
    m = IsingChainModel()
    assert m.n_qubits == 3
    assert m.modelparam_names == [r"\omega", "J"]
    np.testing.assert_array_equal(m.are_models_valid(np.array([[0.0, -1.0], [-0.1, 1.0]])), [True, False])
    with pytest.raises(ValueError):
        IsingChainModel(0)


# -- BinomialModel ---------------------------------------------------------------


def test_binomial_dtype_and_outcome_metadata():
    m = BinomialModel(SimplePrecessionModel())
    dtype = np.dtype(m.expparams_dtype)
    assert dtype.names == ("x", "n_meas")
    assert dtype["n_meas"].kind == "u"
    assert m.is_n_outcomes_constant is False
    eps = np.array([(1.0, 3), (2.0, 5)], dtype=dtype)
    np.testing.assert_array_equal(m.n_outcomes(eps), [4, 6])
    assert m.domain(eps) == [IntegerDomain(0, 3), IntegerDomain(0, 5)]
    assert m.domain(eps[:1]) == [IntegerDomain(0, 3)]  # a list also for one experiment, as in qinfer
    assert m.are_expparam_dtypes_consistent(eps)
    assert m.decorated_model is m.underlying_model


def test_binomial_over_record_model_keeps_fields():
    m = BinomialModel(RamseyModel())
    assert np.dtype(m.expparams_dtype).names == ("t", "phase", "n_meas")
    eps = np.array([(1.0, 0.5, 4)], dtype=m.expparams_dtype)
    mps = np.array([[0.8, 3.0]])
    pr1 = RamseyModel().likelihood(np.array([1]), mps, eps[["t", "phase"]])[0, 0, 0]
    L = m.likelihood(np.arange(5), mps, eps)[:, 0, 0]
    np.testing.assert_allclose(L, [math.comb(4, k) * pr1**k * (1 - pr1) ** (4 - k) for k in range(5)])


def test_binomial_matches_direct_formula():
    under = SimplePrecessionModel()
    m = BinomialModel(under)
    eps = np.array([(0.5, 1), (1.7, 7), (3.0, 20)], dtype=m.expparams_dtype)
    mps = np.array([[0.2], [0.9], [1.6]])
    outcomes = np.arange(22)  # includes outcomes above some n_meas
    L = m.likelihood(outcomes, mps, eps)
    pr1 = under.likelihood(np.array([1]), mps, eps["x"])[0]
    for k in outcomes:
        for i in range(3):
            for e in range(3):
                n, p = int(eps["n_meas"][e]), pr1[i, e]
                expected = math.comb(n, k) * p**k * (1 - p) ** (n - k) if k <= n else 0.0
                assert L[k, i, e] == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_binomial_handles_certain_outcomes_and_large_n():
    m = BinomialModel(SimplePrecessionModel())
    eps = np.array([(1.0, 3), (1.0, 5000)], dtype=m.expparams_dtype)
    L = m.likelihood(np.arange(4), np.array([[0.0]]), eps)  # omega = 0: outcome 1 never happens
    np.testing.assert_array_equal(L[:, 0, 0], [1.0, 0.0, 0.0, 0.0])
    big = m.likelihood(np.arange(5001), np.array([[0.9]]), eps[1:])
    assert np.all(np.isfinite(big))
    assert big.sum() == pytest.approx(1.0, abs=1e-9)


def test_binomial_simulation_and_rng_forwarding():
    under = SimplePrecessionModel()
    m = BinomialModel(under)
    m.rng = np.random.default_rng(8)
    assert under.rng is m.rng
    eps = np.array([(1.2, 10)], dtype=m.expparams_dtype)
    mps = np.array([[0.4], [1.1]])
    out = m.simulate_experiment(mps, eps, repeat=5000)
    assert out.shape == (5000, 2, 1) and out.dtype == np.int64
    pr1 = under.likelihood(np.array([1]), mps, eps["x"])[0, :, 0]
    np.testing.assert_allclose(out.mean(axis=0)[:, 0], 10 * pr1, atol=0.1)
    assert m.sim_count == 5000 * 2


class ThreeOutcomePrecession(SimplePrecessionModel):
    def n_outcomes(self, expparams):
        return 3


def test_binomial_rejects_non_binary_model():
    with pytest.raises(ValueError):
        BinomialModel(ThreeOutcomePrecession())
    assert BinomialModel(SimplePrecessionModel()).n_modelparams == 1
