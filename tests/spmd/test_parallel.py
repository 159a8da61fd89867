"""The proxy against the serial model, under mpiexec -n 2 and -n 3: bitwise equal answers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import assert_collectively, run_parallel, verdict_of
from fault_models import CountingModel
from parity_models import N_MODELS, SERIAL_MODELS, all_outcomes, random_expparams, random_modelparams

from mpi_qinfer import Engine, MPIParallelizedModel
from mpi_qinfer.models.builtin import (
    BinomialModel,
    RamseyModel,
    SimplePrecessionModel,
)

pytestmark = pytest.mark.mpi(min_size=2)

@pytest.mark.parametrize("split", ["models", "experiments", "auto"])
@pytest.mark.parametrize("name", sorted(SERIAL_MODELS))
def test_likelihood_is_bitwise_serial(comm, name, split):
    def check(proxy, serial):
        rng = np.random.default_rng(7)
        for n_models in N_MODELS:
            for n_exp in (1, 2, 5):
                modelparams = random_modelparams(serial, n_models, rng)
                expparams = random_expparams(serial, n_exp, rng)
                outcomes = all_outcomes(serial, expparams)
                got = proxy.likelihood(outcomes, modelparams, expparams)
                want = serial.likelihood(outcomes, modelparams, expparams)
                assert got.shape == want.shape and got.dtype == want.dtype, (n_models, n_exp)
                # The bytes: NaNs (a binomial of an invalid model's probability) compare too.
                assert got.tobytes() == want.tobytes(), (n_models, n_exp)
        assert proxy.engine.calls == len(N_MODELS) * 3

    proxy = run_parallel(comm, SERIAL_MODELS[name](), check, serial_threshold=0, split=split)
    # Every rank took part in every call: the workers' counters agree with the root's.
    assert len(set(comm.allgather(proxy.engine.calls))) == 1


def test_empty_and_single_calls_run_serially(comm):
    def check(proxy, serial):
        expparams = np.array([1.0, 2.0])
        for modelparams, exp in ((np.zeros((0, 1)), expparams), (np.ones((3, 1)), np.zeros(0))):
            got = proxy.likelihood(np.arange(2), modelparams, exp)
            want = serial.likelihood(np.arange(2), modelparams, exp)
            assert got.shape == want.shape and np.array_equal(got, want)
        got = proxy.likelihood(np.arange(0), np.ones((3, 1)), expparams)
        assert got.shape == (0, 3, 2)
        assert proxy.engine.calls == 1  # only the call with no outcomes but 3x2 work went out

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def test_many_experiments_few_particles_split_by_experiments(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(3)
        modelparams = random_modelparams(serial, 4, rng)
        expparams = random_expparams(serial, 3001, rng)
        got = proxy.likelihood(np.arange(2), modelparams, expparams)
        assert np.array_equal(got, serial.likelihood(np.arange(2), modelparams, expparams))

    run_parallel(comm, RamseyModel(), check, serial_threshold=0)


def test_layout_and_dtype_variants_give_the_serial_answer(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(11)
        base = random_modelparams(serial, 37, rng)
        expparams = random_expparams(serial, 4, rng)
        variants = {
            "fortran": np.asfortranarray(base),
            "strided": np.repeat(base, 2, axis=0)[::2],
            "big-endian": base.astype(">f8"),
            "float32": base.astype(np.float32),
            "read-only": base.copy(),
        }
        variants["read-only"].flags.writeable = False
        for label, modelparams in variants.items():
            for outcomes in (np.arange(2), np.array([1], dtype=np.int8), np.array([0.0, 1.0]), 1):
                got = proxy.likelihood(outcomes, modelparams, expparams)
                want = serial.likelihood(np.atleast_1d(outcomes), np.ascontiguousarray(modelparams), expparams)
                assert np.array_equal(got, want), label
        reordered = np.zeros(4, dtype=[("phase", "f4"), ("t", ">f8")])
        reordered["t"], reordered["phase"] = expparams["t"], expparams["phase"].astype(np.float32)
        want = serial.likelihood(np.arange(2), base, reordered[["t", "phase"]].astype(serial.expparams_dtype))
        assert np.array_equal(proxy.likelihood(np.arange(2), base, reordered), want)

    run_parallel(comm, RamseyModel(), check, serial_threshold=0)


def test_simulate_experiment_shapes_and_reproducibility(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(5)
        modelparams = random_modelparams(serial, 11, rng)
        expparams = random_expparams(serial, 3, rng)
        for split_by_modelparams in (True, False):
            for repeat in (1, 4):
                proxy.reseed(99)
                global_state = np.random.get_state()[1].copy()
                first = proxy.simulate_experiment(modelparams, expparams, repeat, split_by_modelparams)
                proxy.reseed(99)
                again = proxy.simulate_experiment(modelparams, expparams, repeat, split_by_modelparams)
                # The user's global stream is untouched by parallel draws.
                assert np.array_equal(np.random.get_state()[1], global_state)
                reference = serial.simulate_experiment(modelparams, expparams, repeat)
                assert first.shape == reference.shape == (repeat, 11, 3)
                assert first.dtype == reference.dtype
                assert np.array_equal(first, again)  # same seed, same ranks: same draws
                assert set(np.unique(first)) <= {0, 1}
        single = proxy.simulate_experiment(modelparams[:1], expparams[:1])
        assert np.ndim(single) == 0  # qinfer squeezes one outcome to a scalar
        # Each rank draws from its own stream: the halves of a large draw differ.
        many = proxy.simulate_experiment(np.full((2000, 1), 0.5), np.array([np.pi]), 1)
        assert 0.3 < many.mean() < 0.7 and not np.array_equal(many[0, :1000], many[0, 1000:])

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def test_simulate_statistics_match_serial(comm):
    def check(proxy, serial):
        modelparams = np.full((4000, 1), 1.0)
        expparams = np.array([1.0, 2.0])
        pr1 = 1 - np.cos(expparams / 2) ** 2
        draws = proxy.simulate_experiment(modelparams, expparams, repeat=2)
        assert np.all(np.abs(draws.mean(axis=(0, 1)) - pr1) < 5 * np.sqrt(pr1 * (1 - pr1) / 8000))

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def test_score_fisher_timestep_validity_are_bitwise_serial(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(8)
        for n_models, n_exp in ((9, 2), (3, 40)):
            modelparams = random_modelparams(serial, n_models, rng)
            modelparams[0, 0] = -0.5  # one invalid model
            expparams = random_expparams(serial, n_exp, rng)
            outcomes = np.arange(2)
            assert np.array_equal(proxy.score(outcomes, modelparams, expparams),
                                  serial.score(outcomes, modelparams, expparams))
            got_s, got_l = proxy.score(outcomes, modelparams, expparams, return_L=True)
            want_s, want_l = serial.score(outcomes, modelparams, expparams, return_L=True)
            assert np.array_equal(got_s, want_s) and np.array_equal(got_l, want_l)
            assert np.array_equal(proxy.fisher_information(modelparams, expparams),
                                  serial.fisher_information(modelparams, expparams))
            assert np.array_equal(proxy.update_timestep(modelparams, expparams),
                                  serial.update_timestep(modelparams, expparams))
            valid = proxy.are_models_valid(modelparams)
            assert valid.dtype == bool and np.array_equal(valid, serial.are_models_valid(modelparams))

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def test_clear_cache_reaches_every_rank(comm):
    serial = CountingModel()
    run_parallel(comm, serial, lambda proxy, _: proxy.clear_cache(), serial_threshold=0)
    assert comm.allgather(serial.cleared) == [1] * comm.Get_size()


def test_sync_model_ships_the_roots_state(comm):
    def check(proxy, serial):
        modelparams, expparams = np.linspace(0.1, 1, 50)[:, None], np.array([1.0, 3.0])
        serial.scale = 2.5
        proxy.sync_model()
        assert np.array_equal(proxy.likelihood(np.arange(2), modelparams, expparams),
                              serial.likelihood(np.arange(2), modelparams, expparams))

    serial = CountingModel()
    run_parallel(comm, serial, check, serial_threshold=0)


def test_explicit_serve_and_shutdown(comm):
    serial = SimplePrecessionModel()
    proxy = MPIParallelizedModel(serial, comm=comm, serial_threshold=0)
    verdict = None
    if proxy.is_root:
        modelparams = np.linspace(0, 1, 20)[:, None]
        verdict = verdict_of(lambda: np.testing.assert_array_equal(
            proxy.likelihood(np.arange(2), modelparams, np.array([2.0])),
            serial.likelihood(np.arange(2), modelparams, np.array([2.0]))))
        proxy.shutdown()
        proxy.shutdown()  # idempotent
    else:
        proxy.serve()
    assert proxy.engine.closed
    assert_collectively(comm, verdict)


def test_several_proxies_share_one_engine(comm):
    engine = Engine(comm)
    base = SimplePrecessionModel()
    direct = MPIParallelizedModel(base, engine=engine, serial_threshold=0)
    wrapped_serial = BinomialModel(SimplePrecessionModel())
    wrapped = MPIParallelizedModel(wrapped_serial, engine=engine, serial_threshold=0)
    verdict = None
    with engine:
        if engine.is_root:
            def check():
                modelparams = np.linspace(0.1, 1, 33)[:, None]
                expparams = random_expparams(wrapped_serial, 3, np.random.default_rng(0))
                assert np.array_equal(direct.likelihood(np.arange(2), modelparams, expparams["x"]),
                                      base.likelihood(np.arange(2), modelparams, expparams["x"]))
                assert np.array_equal(wrapped.likelihood(np.arange(2), modelparams, expparams),
                                      wrapped_serial.likelihood(np.arange(2), modelparams, expparams))
            verdict = verdict_of(check)
    assert_collectively(comm, verdict)


def test_sub_communicators_run_side_by_side(comm):
    if comm.Get_size() < 2:
        pytest.skip("needs 2 ranks")
    color = comm.Get_rank() % 2
    group = comm.Split(color, comm.Get_rank())
    try:
        serial = SimplePrecessionModel() if color == 0 else RamseyModel()
        verdict = None
        with MPIParallelizedModel(serial, comm=group, serial_threshold=0) as proxy:
            if proxy.is_root:
                def check():
                    rng = np.random.default_rng(color)
                    modelparams = random_modelparams(serial, 101, rng)
                    expparams = random_expparams(serial, 3, rng)
                    assert np.array_equal(proxy.likelihood(np.arange(2), modelparams, expparams),
                                          serial.likelihood(np.arange(2), modelparams, expparams))
                verdict = verdict_of(check)
        verdicts = comm.allgather(verdict if group.Get_rank() == 0 else None)
    finally:
        group.Free()
    assert verdicts == [None] * comm.Get_size(), verdicts


def test_unpickled_proxy_runs_serially(comm):
    def check(proxy, serial):
        clone = pickle.loads(pickle.dumps(proxy))
        assert clone.engine is None and clone.is_root and clone.n_engines == 1
        modelparams = np.linspace(0.1, 1, 9)[:, None]
        assert np.array_equal(clone.likelihood(np.arange(2), modelparams, np.array([1.0])),
                              serial.likelihood(np.arange(2), modelparams, np.array([1.0])))
        calls = proxy.engine.calls
        clone.likelihood(np.arange(2), modelparams, np.array([1.0]))
        assert proxy.engine.calls == calls  # nothing went over the wire

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def test_auto_threshold_learns_and_stays_exact(comm):
    def check(proxy, serial):
        rng = np.random.default_rng(1)
        for n_models in (10, 10, 10, 50_000, 50_000, 50_000):
            modelparams = random_modelparams(serial, n_models, rng)
            expparams = random_expparams(serial, 2, rng)
            assert np.array_equal(proxy.likelihood(np.arange(2), modelparams, expparams),
                                  serial.likelihood(np.arange(2), modelparams, expparams))
        learned = proxy.threshold_policy.summary()
        assert all(serial_cost is not None for serial_cost, _ in learned.values())

    run_parallel(comm, SimplePrecessionModel(), check)


def test_proxy_forwards_the_model_interface(comm):
    def check(proxy, serial):
        assert proxy.n_modelparams == serial.n_modelparams
        assert proxy.expparams_dtype == serial.expparams_dtype
        assert proxy.is_n_outcomes_constant == serial.is_n_outcomes_constant
        assert proxy.modelparam_names == serial.modelparam_names
        assert np.array_equal(proxy.Q, serial.Q)
        assert proxy.n_engines == comm.Get_size()
        assert proxy.underlying_model is serial and proxy.base_model is serial
        modelparams = np.linspace(0.1, 1, 7)[:, None]
        before = proxy.call_count
        proxy.likelihood(np.arange(2), modelparams, np.array([1.0, 2.0]))
        assert proxy.call_count == before + 2 * 7 * 2

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


def _draws_by_rank(model, modelparams, expparams, repeat, seed, counts, split_by_modelparams):
    """What the ranks draw in one simulate call, computed serially: rank r's rows on rank r's stream."""
    from mpi_qinfer.engine.operations import rank_seed_sequence, seeded

    parts, start = [], 0
    for rank, count in enumerate(counts):
        rows = slice(start, start + count)
        start += count
        mp, ep = (modelparams[rows], expparams) if split_by_modelparams else (modelparams, expparams[rows])
        with seeded(model, rank_seed_sequence(seed, rank)):
            parts.append(np.reshape(model.simulate_experiment(mp, ep, repeat=repeat), (repeat, len(mp), len(ep))))
    return np.concatenate(parts, axis=1 if split_by_modelparams else 2)


def test_simulate_splits_along_the_axis_asked_for(comm):
    from mpi_qinfer.engine.partition import even_counts

    def check(proxy, serial):
        modelparams = np.linspace(0.1, 1, 9)[:, None]
        expparams = np.linspace(0.5, 4, 7)
        seed = int(np.random.default_rng(21).integers(0, 2**63 - 1))  # the proxy's first per-call seed
        by_models = _draws_by_rank(SimplePrecessionModel(), modelparams, expparams, 5, seed,
                                   even_counts(9, comm.Get_size()), True)
        by_experiments = _draws_by_rank(SimplePrecessionModel(), modelparams, expparams, 5, seed,
                                        even_counts(7, comm.Get_size()), False)
        assert not np.array_equal(by_models, by_experiments)
        for flag, want in ((True, by_models), (False, by_experiments)):
            proxy.reseed(21)
            assert np.array_equal(proxy.simulate_experiment(modelparams, expparams, 5, flag), want)

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)


class KeepsItsInputs(SimplePrecessionModel):
    """Keeps the broadcast arrays it is given, then checks that an earlier call's never changed.

    With ``split="experiments"`` the expparams are split rows (documented as
    read-only views of a reused buffer), so only the outcomes are checked.
    """

    def __init__(self, split):
        super().__init__()
        self.kept = []
        self.split = split

    def likelihood(self, outcomes, modelparams, expparams):
        if np.any(expparams < 0):  # the probe call: compare what was kept with copies taken then
            for (outcomes_then, expparams_then), (outcomes_copy, expparams_copy) in self.kept:
                if self.split == "experiments":
                    expparams_then = expparams_copy
                if not (np.array_equal(outcomes_then, outcomes_copy) and np.array_equal(expparams_then,
                                                                                         expparams_copy)):
                    raise AssertionError("an input kept from an earlier call changed under the model")
            expparams = -expparams
        else:
            self.kept.append(((outcomes, expparams), (outcomes.copy(), expparams.copy())))
        return super().likelihood(outcomes, modelparams, expparams)


@pytest.mark.parametrize("split", ["models", "experiments"])
def test_broadcast_inputs_are_the_models_to_keep(comm, split):
    def check(proxy, serial):
        modelparams = np.linspace(0.1, 1, 12)[:, None]
        for k in range(4):
            proxy.likelihood(np.array([k % 2, 1]), modelparams, np.array([0.5 + k, 1.5 + k]))
        proxy.likelihood(np.array([0]), modelparams, np.array([-1.0, -2.0]))

    run_parallel(comm, KeepsItsInputs(split), check, serial_threshold=0, split=split)
