"""Checkpoint and resume: a resumed SMC run is bitwise the uninterrupted one; bad checkpoints are refused.

Serial tests use this package's SMCUpdater (directly and through a one-rank
proxy); the ``mpi`` tests resume a run over 2 or 3 ranks and compare with the
serial model's uninterrupted answer; the ``qinfer`` tests (in an environment
where qinfer imports) resume qinfer's own SMCUpdater running on the proxy.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from conftest import assert_collectively, verdict_of

from mpi_qinfer import PGH, LiuWestResampler, SMCUpdater, UniformDistribution
from mpi_qinfer.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    parse_every,
    read_metadata,
    save_checkpoint,
)
from mpi_qinfer.models import IsingChainModel, SimplePrecessionModel
from mpi_qinfer.termination import TerminationRequested

N_PARTICLES = 500
N_EXPERIMENTS = 40
SPLIT = 17  # the interruption: after this many updates


# --------------------------------------------------------------------- a run
class Run:
    """An SMC estimation whose every random draw comes from ``seed``: updater, heuristic, data."""

    def __init__(self, model, n_particles=N_PARTICLES, seed=7, heuristic_rng=True):
        self.model = model
        n_mp = model.n_modelparams
        prior = UniformDistribution([[0.0, 1.0]] * n_mp)
        streams = np.random.SeedSequence(seed).spawn(4)
        truth_rng, self.data_rng, updater_rng, heuristic_seed = (np.random.default_rng(s) for s in streams)
        self.truth = prior.sample(1, rng=truth_rng)
        self.simulator = SimplePrecessionModel() if n_mp == 1 else IsingChainModel(n_qubits=2)
        self.simulator.rng = self.data_rng
        self.updater = SMCUpdater(model, n_particles, prior, resampler=LiuWestResampler(a=0.95), rng=updater_rng)
        self.heuristic = PGH(self.updater, inv_field=None, rng=heuristic_seed if heuristic_rng else None)

    def step(self):
        expparams = self.heuristic()
        outcome = self.simulator.simulate_experiment(self.truth, expparams)
        self.updater.update(outcome, expparams)

    def run(self, n, checkpointer=None):
        for _ in range(n):
            self.step()
            if checkpointer is not None:
                checkpointer.step()
        return self

    def parts(self, proxy=None):
        return dict(proxy=proxy, heuristic=self.heuristic, generators={"data": self.data_rng})


def _serial(model):
    return getattr(model, "serial_model", model)


def state_of(updater) -> dict:
    """Everything a resumed run must reproduce, as bytes where bitwise matters."""
    return {
        "locations": updater.particle_locations.tobytes(),
        "weights": updater.particle_weights.tobytes(),
        "data": [np.asarray(x).tobytes() for x in updater.data_record],
        "norms": np.asarray(updater.normalization_record).tobytes(),
        "resamples": updater.resample_count,
        "just_resampled": updater.just_resampled,
        "rng": updater.rng.bit_generator.state,
    }


def resumed(make_model, path, n_total=N_EXPERIMENTS, split=SPLIT, proxy_of=None):
    """Run to ``split``, checkpoint, rebuild everything from scratch, load, finish."""
    first_model = make_model()
    first = Run(first_model).run(split)
    save_checkpoint(path, first.updater, **first.parts(proxy_of(first_model) if proxy_of else None))
    second_model = make_model()
    second = Run(second_model)  # a fresh start: its prior draw and generators are overwritten by the load
    load_checkpoint(path, second.updater, **second.parts(proxy_of(second_model) if proxy_of else None))
    return second.run(n_total - split)


# ------------------------------------------------------------- bitwise resume
@pytest.mark.parametrize("make_model", [SimplePrecessionModel, lambda: IsingChainModel(n_qubits=2)],
                         ids=["precession", "ising"])
def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path, make_model):
    whole = Run(make_model()).run(N_EXPERIMENTS)
    assert whole.updater.resample_count > 0  # the resampler's draws are part of what must match
    again = resumed(make_model, tmp_path / "run.npz")
    assert state_of(again.updater) == state_of(whole.updater)
    assert again.heuristic.rng.bit_generator.state == whole.heuristic.rng.bit_generator.state
    assert again.data_rng.bit_generator.state == whole.data_rng.bit_generator.state


def test_resuming_at_every_point_gives_the_same_answer(tmp_path):
    whole = Run(SimplePrecessionModel()).run(12)
    for split in (0, 1, 5, 11, 12):
        again = resumed(SimplePrecessionModel, tmp_path / f"run{split}.npz", n_total=12, split=split)
        assert state_of(again.updater) == state_of(whole.updater), split


def test_the_proxys_seed_stream_is_saved_and_restored(tmp_path):
    from mpi_qinfer import MPIParallelizedModel

    with MPIParallelizedModel(SimplePrecessionModel(), seed=11) as proxy:
        run = Run(proxy).run(5)
        proxy._draw_seed()  # the stream moves on independently of the updater
        save_checkpoint(tmp_path / "c.npz", run.updater, **run.parts(proxy))
        expected = [proxy._draw_seed() for _ in range(3)]
    with MPIParallelizedModel(SimplePrecessionModel(), seed=999) as proxy:
        fresh = Run(proxy)
        load_checkpoint(tmp_path / "c.npz", fresh.updater, **fresh.parts(proxy))
        assert [proxy._draw_seed() for _ in range(3)] == expected
        assert state_of(fresh.updater) == state_of(run.updater)


def test_metadata_describes_the_run(tmp_path):
    run = Run(SimplePrecessionModel()).run(3)
    save_checkpoint(tmp_path / "c.npz", run.updater, **run.parts(), user={"note": "x"})
    meta = read_metadata(tmp_path / "c.npz")
    assert meta["format"] == "mpi_qinfer.checkpoint" and meta["format_version"] == 1
    assert meta["mpi_qinfer_version"]
    assert meta["model"] == {"type": "mpi_qinfer.models.SimplePrecessionModel", "n_modelparams": 1,
                             "expparams_dtype": str(np.dtype(float).descr)}
    assert meta["n_particles"] == N_PARTICLES and meta["n_updates"] == 3
    assert meta["arrays"]["particle_locations"]["shape"] == [N_PARTICLES, 1]
    assert meta["arrays"]["particle_locations"]["dtype"] == "<f8"
    assert meta["user"] == {"note": "x"}
    # The file is a plain .npz: readable without this package.
    with np.load(tmp_path / "c.npz") as archive:
        assert np.array_equal(archive["particle_weights"], run.updater.particle_weights)
        assert json.loads(archive["metadata"].tobytes())["n_updates"] == 3


# ------------------------------------------------------------- periodic and on stop
def test_the_checkpointer_writes_every_n_updates(tmp_path):
    run = Run(SimplePrecessionModel())
    path = tmp_path / "c.npz"
    checkpoints = Checkpointer(path, run.updater, every_updates=4, **run.parts())
    run.run(10, checkpoints)
    assert checkpoints.writes == 2 and read_metadata(path)["n_updates"] == 8


def test_the_checkpointer_writes_every_t_seconds(tmp_path, monkeypatch):
    import mpi_qinfer.checkpoint as checkpoint

    clock = [0.0]
    monkeypatch.setattr(checkpoint.time, "monotonic", lambda: clock[0])
    run = Run(SimplePrecessionModel())
    checkpoints = Checkpointer(tmp_path / "c.npz", run.updater, every_seconds=10, **run.parts())
    for _ in range(6):
        clock[0] += 4.0
        run.run(1, checkpoints)
    assert checkpoints.writes == 2  # at 12 s and at 24 s
    assert read_metadata(tmp_path / "c.npz")["n_updates"] == 6


class _StopsInside(SimplePrecessionModel):
    """Raises TerminationRequested inside its n-th are_models_valid call: in the middle of a resampling."""

    stop_at = None
    calls = 0

    def are_models_valid(self, modelparams):
        type(self).calls += 1
        if type(self).calls == type(self).stop_at:
            raise TerminationRequested(15, 0)
        return super().are_models_valid(modelparams)


def test_a_stop_inside_an_update_saves_the_last_complete_update(tmp_path):
    # Count the validity checks of a full run, then stop a second run at the middle one: inside a
    # resampling, after the resampler drew from the updater's generator.
    _StopsInside.stop_at, _StopsInside.calls = None, 0
    whole = Run(_StopsInside()).run(N_EXPERIMENTS)
    _StopsInside.stop_at, _StopsInside.calls = _StopsInside.calls // 2, 0
    run = Run(_StopsInside())
    path = tmp_path / "c.npz"
    completed = []
    with pytest.raises(TerminationRequested):
        with Checkpointer(path, run.updater, every_updates=1000, **run.parts()) as checkpoints:
            for _ in range(N_EXPERIMENTS):
                run.step()
                completed.append(checkpoints.step())
    assert read_metadata(path)["n_updates"] == len(completed)  # nothing lost, nothing half-done
    _StopsInside.stop_at = None
    again = Run(_StopsInside())
    load_checkpoint(path, again.updater, **again.parts())
    again.run(N_EXPERIMENTS - len(completed))
    assert state_of(again.updater) == state_of(whole.updater)


def test_a_stop_before_the_first_update_saves_the_starting_state(tmp_path):
    run = Run(SimplePrecessionModel())
    with pytest.raises(TerminationRequested):
        with Checkpointer(tmp_path / "c.npz", run.updater, every_updates=5, **run.parts()):
            raise TerminationRequested(2)
    assert read_metadata(tmp_path / "c.npz")["n_updates"] == 0


def test_other_exceptions_write_nothing(tmp_path):
    run = Run(SimplePrecessionModel())
    with pytest.raises(RuntimeError):
        with Checkpointer(tmp_path / "c.npz", run.updater, every_updates=5, **run.parts()):
            raise RuntimeError("a bug")
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("text, expected", [("5", (5, None)), ("30s", (None, 30.0)), ("2m", (None, 120.0)),
                                            ("1h", (None, 3600.0)), (" 7 ", (7, None))])
def test_parse_every(text, expected):
    assert parse_every(text) == expected


@pytest.mark.parametrize("text", ["0", "-3", "s", "1.5", "ten", "0s", ""])
def test_parse_every_refuses_nonsense(text):
    with pytest.raises(ValueError, match="checkpoint interval"):
        parse_every(text)


# ------------------------------------------------------------- atomic writing
def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    run = Run(SimplePrecessionModel()).run(2)
    path = tmp_path / "c.npz"
    save_checkpoint(path, run.updater, **run.parts())
    before = path.read_bytes()
    run.run(2)

    def broken_savez(file, **arrays):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, run.updater, **run.parts())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


# ------------------------------------------------------------- bad checkpoints
@pytest.fixture
def saved(tmp_path):
    run = Run(SimplePrecessionModel()).run(6)
    path = tmp_path / "good.npz"
    save_checkpoint(path, run.updater, **run.parts())
    return path


def _refused(path, run=None, match="", **parts):
    """Loading ``path`` raises CheckpointError and changes nothing in the fresh run."""
    run = Run(SimplePrecessionModel()) if run is None else run
    before = state_of(run.updater), run.heuristic.rng.bit_generator.state, run.data_rng.bit_generator.state
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, run.updater, **(parts or run.parts()))
    after = state_of(run.updater), run.heuristic.rng.bit_generator.state, run.data_rng.bit_generator.state
    assert after == before


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, 0.99])
def test_a_truncated_checkpoint_is_refused(saved, tmp_path, keep):
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    _refused(cut, match="corrupt or truncated|not a readable")


def test_a_flipped_byte_is_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("particle_locations.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside the particle data
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    _refused(bad, match="corrupt")


def test_a_tampered_array_fails_its_checksum(saved, tmp_path):
    with np.load(saved) as archive:
        members = {name: archive[name] for name in archive.files}
    members["particle_weights"] = members["particle_weights"] * 1.5
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **members)
    _refused(bad, match="checksum")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    _refused(other, match="not an mpi_qinfer checkpoint")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(4096))
    _refused(garbage, match="corrupt or truncated|not a readable")
    _refused(tmp_path / "missing.npz", match="cannot read")


def test_another_format_version_is_refused(saved, tmp_path):
    with np.load(saved) as archive:
        members = {name: archive[name] for name in archive.files}
    meta = json.loads(members["metadata"].tobytes())
    meta["format_version"] = 99
    members["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    bad = tmp_path / "v99.npz"
    np.savez(bad, **members)
    _refused(bad, match="format version 99")


class OtherPrecessionModel(SimplePrecessionModel):
    """Another model type with the same parameter count and experiment dtype."""


def test_another_model_is_refused(saved):
    run = Run(OtherPrecessionModel())
    _refused(saved, run, match="model")


def test_another_parameter_count_is_refused(saved):
    run = Run(IsingChainModel(n_qubits=2))
    _refused(saved, run, match="model")


def test_another_particle_count_is_refused(saved):
    run = Run(SimplePrecessionModel(), n_particles=N_PARTICLES + 1)
    _refused(saved, run, match="particles")


def test_another_resampler_is_refused(saved):
    class OtherResampler(LiuWestResampler):
        pass

    run = Run(SimplePrecessionModel())
    run.updater.resampler = OtherResampler()
    _refused(saved, run, match="resampler")


def test_a_missing_generator_is_refused(saved):
    run = Run(SimplePrecessionModel())
    _refused(saved, run, match="generator 'data'", heuristic=run.heuristic, generators={})


def test_a_generator_of_another_kind_is_refused(saved):
    run = Run(SimplePrecessionModel())
    parts = run.parts()
    parts["generators"] = {"data": np.random.Generator(np.random.MT19937(1))}
    _refused(saved, run, match="does not fit", **parts)


def test_unsaveable_state_is_refused_when_saving(tmp_path):
    run = Run(SimplePrecessionModel())
    run.updater._data_record.extend([np.zeros(2), np.zeros(3)])  # outcomes of different shapes
    with pytest.raises(CheckpointError, match="data_record"):
        save_checkpoint(tmp_path / "c.npz", run.updater, **run.parts())
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "c.npz", Run(SimplePrecessionModel()).updater, user={"x": object()})
    assert not (tmp_path / "c.npz").exists()


# ------------------------------------------------------------- over MPI
@pytest.mark.mpi
def test_a_resumed_parallel_run_is_bitwise_the_uninterrupted_serial_one(comm, tmp_path_factory):
    from mpi_qinfer import MPIParallelizedModel

    path = comm.bcast(str(tmp_path_factory.mktemp("ckpt") / "run.npz") if comm.Get_rank() == 0 else None)

    def make_model():
        return IsingChainModel(n_qubits=2)

    expected = None
    if comm.Get_rank() == 0:
        expected = state_of(Run(make_model()).run(N_EXPERIMENTS).updater)
    for stage in ("first", "second"):  # two proxies in a row: the second resumes what the first saved
        verdict = None
        with MPIParallelizedModel(make_model(), comm=comm, serial_threshold=0) as proxy:
            if proxy.is_root:
                def check(proxy=proxy, stage=stage):
                    run = Run(proxy)
                    if stage == "first":
                        run.run(SPLIT)
                        save_checkpoint(path, run.updater, **run.parts(proxy))
                    else:
                        load_checkpoint(path, run.updater, **run.parts(proxy))
                        run.run(N_EXPERIMENTS - SPLIT)
                        assert state_of(run.updater) == expected
                verdict = verdict_of(check)
        assert_collectively(comm, verdict)


# ------------------------------------------------------------- qinfer's updater
def _qinfer_run(qinfer, model, n, start=None, path=None, proxy=None):
    """qinfer's SMC on ``model`` (the global generator seeded); optionally resumed from ``path``."""
    np.random.seed(2024)
    prior = qinfer.UniformDistribution([0, 1])
    updater = qinfer.SMCUpdater(model, 300, prior)
    heuristic = qinfer.ExpSparseHeuristic(updater)
    truth = prior.sample()
    simulator = qinfer.SimplePrecessionModel()
    done = 0
    if start is not None:
        np.random.seed(1)  # a fresh process would not share the first run's global state
        load_checkpoint(start, updater, proxy=proxy)
        done = len(updater.data_record)
    for _ in range(done, n):
        expparams = heuristic()
        updater.update(simulator.simulate_experiment(truth, expparams), expparams)
        if path is not None and len(updater.data_record) == 12:
            save_checkpoint(path, updater, proxy=proxy)
    return updater


def _qinfer_state(updater):
    return (updater.particle_locations.tobytes(), updater.particle_weights.tobytes(),
            [np.asarray(x).tobytes() for x in updater.data_record], updater.resample_count)


@pytest.mark.qinfer
def test_qinfer_updater_on_the_proxy_resumes_bitwise(tmp_path):
    qinfer = pytest.importorskip("qinfer")
    from mpi_qinfer import MPIParallelizedModel

    whole = _qinfer_run(qinfer, qinfer.SimplePrecessionModel(), 30)
    assert whole.resample_count > 0
    with MPIParallelizedModel(qinfer.SimplePrecessionModel()) as proxy:
        _qinfer_run(qinfer, proxy, 12, path=tmp_path / "q.npz", proxy=proxy)
    with MPIParallelizedModel(qinfer.SimplePrecessionModel()) as proxy:
        again = _qinfer_run(qinfer, proxy, 30, start=tmp_path / "q.npz", proxy=proxy)
    assert _qinfer_state(again) == _qinfer_state(whole)


@pytest.mark.mpi
@pytest.mark.qinfer
def test_qinfer_updater_on_a_parallel_proxy_resumes_bitwise(comm, tmp_path_factory):
    qinfer = pytest.importorskip("qinfer")
    from mpi_qinfer import MPIParallelizedModel

    path = comm.bcast(str(tmp_path_factory.mktemp("q") / "q.npz") if comm.Get_rank() == 0 else None)
    expected = None
    if comm.Get_rank() == 0:
        expected = _qinfer_state(_qinfer_run(qinfer, qinfer.SimplePrecessionModel(), 30))
    for stage in ("first", "second"):
        verdict = None
        with MPIParallelizedModel(qinfer.SimplePrecessionModel(), comm=comm, serial_threshold=0) as proxy:
            if proxy.is_root:
                def check(proxy=proxy, stage=stage):
                    if stage == "first":
                        _qinfer_run(qinfer, proxy, 12, path=path, proxy=proxy)
                    else:
                        assert _qinfer_state(_qinfer_run(qinfer, proxy, 30, start=path, proxy=proxy)) == expected
                verdict = verdict_of(check)
        assert_collectively(comm, verdict)
