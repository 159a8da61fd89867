"""Checkpoint and resume: a resumed SMC run is bitwise the uninterrupted one; bad checkpoints are refused.

Serial tests use this package's SMCUpdater (directly and through a one-rank
proxy); the ``mpi`` tests resume a run over 2 or 3 ranks and compare with the
serial model's uninterrupted answer; the ``qinfer`` tests (in an environment
where qinfer imports) resume qinfer's own SMCUpdater running on the proxy.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from conftest import assert_collectively, verdict_of

from mpi_qinfer import PGH, LiuWestResampler, SMCUpdater, UniformDistribution
from mpi_qinfer.models.base import DerivedModel
from mpi_qinfer.models.builtin import IsingChainModel, SimplePrecessionModel
from mpi_qinfer.runtime.termination import TerminationRequested
from mpi_qinfer.smc.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    parse_every,
    read_metadata,
    save_checkpoint,
)

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
    assert meta["model"] == {"type": "mpi_qinfer.models.builtin.SimplePrecessionModel", "n_modelparams": 1,
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
    import mpi_qinfer.smc.checkpoint as checkpoint

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


# ------------------------------------------------------------- temporary files of killed writers
KILLED_WRITER = """
import os, signal, sys
import numpy as np
from mpi_qinfer import SMCUpdater, UniformDistribution
from mpi_qinfer.smc.checkpoint import save_checkpoint
from mpi_qinfer.models.builtin import SimplePrecessionModel

def half_then_killed(file, **arrays):
    file.write(b"half a checkpoint")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # the job's end, mid-write

np.savez = half_then_killed
save_checkpoint(sys.argv[1], SMCUpdater(SimplePrecessionModel(), 50, UniformDistribution([0, 1]), rng=1))
"""


def _temporaries(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def _aged(path, seconds):
    """Make ``path`` look unchanged for ``seconds`` (without following a link)."""
    then = os.lstat(path).st_mtime - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def _ended_pid():
    """The process id of a process that has ended."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


@pytest.mark.skipif(os.name != "posix", reason="kills a writer with SIGKILL")
def test_a_write_killed_midway_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "run.npz"
    for _ in range(2):  # two killed jobs in a row
        done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], timeout=120,
                              capture_output=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert done.returncode == -9, done.stderr
    left = _temporaries(tmp_path)
    assert len(left) == 2 and not path.exists()
    run = Run(SimplePrecessionModel()).run(2)
    save_checkpoint(path, run.updater, **run.parts())  # at once: the killed writers' files may be too new
    assert _temporaries(tmp_path) == left
    for name in left:
        _aged(tmp_path / name, 120)  # the next job saves minutes later
    save_checkpoint(path, run.updater, **run.parts())
    assert _temporaries(tmp_path) == []
    assert read_metadata(path)["n_updates"] == 2


def test_only_stale_temporary_files_of_ours_are_removed(tmp_path):
    import subprocess
    import sys

    from mpi_qinfer.smc import checkpoint

    path = tmp_path / "run.npz"
    ended, me = _ended_pid(), os.getpid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = checkpoint._host()
    here = checkpoint._temporary_prefix
    files = {  # name -> (seconds unchanged, removed?)
        here(path, ended) + "aaaaaaaa.tmp": (120, True),             # its writer ended a while ago
        here(path, ended) + "bbbbbbbb.tmp": (5, False),              # ... a moment ago
        here(path, me) + "cccccccc.tmp": (120, True),                # this process's, not being written
        here(path, alive.pid) + "dddddddd.tmp": (7200, False),       # a writer still running
        here(path, 1234, "another_node") + "eeeeeeee.tmp": (600, False),  # another host: cannot ask it
        here(path, 1234, "another_node") + "ffffffff.tmp": (7200, True),
        here(tmp_path / "other.npz", ended) + "gggggggg.tmp": (7200, False),  # another checkpoint's
        ".checkpoint-hhhhhhhh.tmp": (7200, True),                    # named by an older version
        ".checkpoint-iiiiiiii.tmp": (600, False),
        ".checkpoint-notes.tmp": (7200, False),                      # not a name of ours
        "other.tmp": (7200, False),
        ".checkpoint-jjjjjjjj.txt": (7200, False),
    }
    try:
        for name, (age, _) in files.items():
            (tmp_path / name).write_bytes(b"partial")
            _aged(tmp_path / name, age)
        link = here(path, ended) + "kkkkkkkk.tmp"  # a link named like a stale file: neither it nor its target goes
        os.symlink(tmp_path / "other.tmp", tmp_path / link)
        _aged(tmp_path / link, 7200)
        folder = tmp_path / (here(path, ended) + "llllllll.tmp")
        folder.mkdir()
        _aged(folder, 7200)
        run = Run(SimplePrecessionModel()).run(1)
        save_checkpoint(path, run.updater, **run.parts())
        left = set(os.listdir(tmp_path))
        for name, (_, removed) in files.items():
            assert (name not in left) == removed, name
        assert {link, folder.name, "run.npz"} <= left
        assert host in here(path) and str(me) in here(path)
    finally:
        alive.kill()
        alive.wait(timeout=60)


def test_a_temporary_file_being_written_is_never_removed(tmp_path, monkeypatch):
    from mpi_qinfer.smc import checkpoint

    path = tmp_path / "run.npz"
    run = Run(SimplePrecessionModel()).run(1)
    seen, savez = [], np.savez

    def savez_then_clean(file, **arrays):  # another save of the same path finishes while this one writes
        savez(file, **arrays)
        (name,) = _temporaries(tmp_path)
        _aged(tmp_path / name, 7200)
        seen.append(checkpoint.remove_stale_temporaries(path))

    monkeypatch.setattr(np, "savez", savez_then_clean)
    save_checkpoint(path, run.updater, **run.parts())
    assert seen == [[]] and read_metadata(path)["n_updates"] == 1 and _temporaries(tmp_path) == []


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


def _bits_to_flip(data: bytes) -> list:
    """Every bit of the archive's structure; one bit of every third other byte (a different bit each time).

    Structure: each member's zip header and .npy header up to its closing brace, the central directory
    and its end record. The rest (the .npy headers' padding, the arrays, the metadata's JSON) is covered
    by the zip CRC-32, which catches every single-bit error: a sample of it is enough.
    """
    every_bit = set()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_length + extra_length
            brace = data.index(b"}", start)
            every_bit.update(range(info.header_offset, brace + 1))
        every_bit.update(range(archive.start_dir, len(data)))
    bits = []
    for byte in range(len(data)):
        if byte in every_bit:
            bits.extend(8 * byte + k for k in range(8))
        elif byte % 3 == 0:
            bits.append(8 * byte + byte // 3 % 8)
    return bits


def test_a_flipped_bit_anywhere_is_refused_or_changes_nothing(tmp_path):
    # A small checkpoint (4 particles, 2 updates): its structure is that of any other.
    def fresh():
        return Run(SimplePrecessionModel(), n_particles=4)

    def whole_state(run):
        return state_of(run.updater), run.heuristic.rng.bit_generator.state, run.data_rng.bit_generator.state

    first = fresh().run(2)
    good = tmp_path / "good.npz"
    save_checkpoint(good, first.updater, **first.parts())
    data = good.read_bytes()
    reference = fresh()
    load_checkpoint(good, reference.updater, **reference.parts())
    expected = whole_state(reference)
    target, flipped, outcomes = fresh(), tmp_path / "flipped.npz", {"refused": 0, "loaded": 0}
    bits = _bits_to_flip(data)
    for bit in bits:
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        flipped.write_bytes(bytes(damaged))
        before = whole_state(target)
        try:
            load_checkpoint(flipped, target.updater, **target.parts())
        except CheckpointError:
            outcomes["refused"] += 1
            assert whole_state(target) == before, bit
        else:  # a bit no reader looks at (a time stamp, a version-made-by field): the very same state
            outcomes["loaded"] += 1
            assert whole_state(target) == expected, bit
    assert outcomes["refused"] > len(bits) / 2, outcomes  # most flips do damage (and are refused)


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


def test_the_liu_west_resampler_of_a_0_1_0_checkpoint_is_this_one(saved, tmp_path):
    with np.load(saved) as archive:
        assert json.loads(archive["metadata"].tobytes())["resampler"]["type"] == \
            "mpi_qinfer.smc.resampler.LiuWestResampler"
    earlier = _edited(saved, tmp_path, _set("resampler", "type", "mpi_qinfer.smc.updater.LiuWestResampler"))
    runs = [Run(SimplePrecessionModel()) for _ in range(2)]
    for run, path in zip(runs, (saved, earlier)):
        load_checkpoint(path, run.updater, **run.parts())
        run.run(3)
    assert state_of(runs[1].updater) == state_of(runs[0].updater)
    renamed = _edited(saved, tmp_path, _set("resampler", "type", "mpi_qinfer.smc.updater.OtherResampler"),
                      name="other.npz")
    _refused(renamed, match="resampler")


def test_a_missing_generator_is_refused(saved):
    run = Run(SimplePrecessionModel())
    _refused(saved, run, match="generator 'data'", heuristic=run.heuristic, generators={})


def test_a_generator_of_another_kind_is_refused(saved):
    run = Run(SimplePrecessionModel())
    parts = run.parts()
    # Seeded like the saved one (so the run is the same), but a bit generator of another kind.
    parts["generators"] = {"data": np.random.Generator(np.random.MT19937(np.random.SeedSequence(7).spawn(4)[1]))}
    _refused(saved, run, match="does not fit", **parts)


def test_unsaveable_state_is_refused_when_saving(tmp_path):
    run = Run(SimplePrecessionModel())
    run.updater._data_record.extend([np.zeros(2), np.zeros(3)])  # outcomes of different shapes
    with pytest.raises(CheckpointError, match="data_record"):
        save_checkpoint(tmp_path / "c.npz", run.updater, **run.parts())
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "c.npz", Run(SimplePrecessionModel()).updater, user={"x": object()})
    assert not (tmp_path / "c.npz").exists()


# ------------------------------------------------------------- whose run it is
def _edited(path, tmp_path, edit, name="edited.npz"):
    """A copy of the checkpoint at ``path`` with its metadata changed by ``edit`` (the arrays untouched)."""
    with np.load(path) as archive:
        members = {member: archive[member] for member in archive.files}
    meta = json.loads(members["metadata"].tobytes())
    edit(meta)
    members["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = tmp_path / name
    np.savez(out, **members)
    return out


class Dephased(DerivedModel):
    """A user's wrapper: the same shapes as the model it wraps, another likelihood (contrast ``visibility``)."""

    def __init__(self, underlying_model, visibility=0.8):
        super().__init__(underlying_model)
        self.visibility = visibility

    def likelihood(self, outcomes, modelparams, expparams):
        under = self.underlying_model.likelihood(outcomes, modelparams, expparams)
        return self.visibility * under + (1 - self.visibility) / 2


def _wrapped_run(visibility=0.8, seed=7):
    return Run(Dephased(SimplePrecessionModel(), visibility), seed=seed)


def test_a_wrapped_models_checkpoint_is_refused_by_the_bare_model_and_back(tmp_path):
    wrapped = tmp_path / "wrapped.npz"
    run = _wrapped_run().run(4)
    save_checkpoint(wrapped, run.updater, **run.parts())
    _refused(wrapped, Run(SimplePrecessionModel()),
             match=r"Dephased\(mpi_qinfer.models.builtin.SimplePrecessionModel\) "
             r"there, mpi_qinfer.models.builtin.SimplePrecessionModel here")
    bare = tmp_path / "bare.npz"
    run = Run(SimplePrecessionModel()).run(4)
    save_checkpoint(bare, run.updater, **run.parts())
    _refused(bare, _wrapped_run(), match="model mpi_qinfer.models.builtin.SimplePrecessionModel there, "
             r"test_checkpoint.Dephased\(mpi_qinfer.models.builtin.SimplePrecessionModel\) here")


def test_another_model_parameter_is_refused_and_named(tmp_path):
    path = tmp_path / "c.npz"
    run = _wrapped_run(visibility=0.8).run(3)
    save_checkpoint(path, run.updater, **run.parts())
    _refused(path, _wrapped_run(visibility=0.6), match="model Dephased visibility: 0.8 there, 0.6 here")
    run = Run(IsingChainModel(n_qubits=2)).run(3)  # two couplings whatever the chain's length
    save_checkpoint(path, run.updater, **run.parts())
    other = Run(IsingChainModel(n_qubits=3))
    before = state_of(other.updater)
    with pytest.raises(CheckpointError, match="n_qubits: 2 there, 3 here"):
        load_checkpoint(path, other.updater, **other.parts())
    assert state_of(other.updater) == before


class Counting(DerivedModel):
    """A wrapper that counts its calls in an attribute of its own: state, not a parameter."""

    def __init__(self, underlying_model, scale=1.0):
        super().__init__(underlying_model)
        self.scale = scale
        self.calls = 0

    def likelihood(self, outcomes, modelparams, expparams):
        self.calls += 1
        return self.underlying_model.likelihood(outcomes, modelparams, expparams)


class CountingWithParameters(Counting):
    def checkpoint_parameters(self):
        return {"scale": self.scale}


def test_a_model_can_say_which_attributes_are_its_parameters(tmp_path):
    path = tmp_path / "c.npz"
    run = Run(Counting(SimplePrecessionModel())).run(3)
    save_checkpoint(path, run.updater, **run.parts())
    _refused(path, Run(Counting(SimplePrecessionModel())), match="model Counting calls: ")
    run = Run(CountingWithParameters(SimplePrecessionModel())).run(3)
    save_checkpoint(path, run.updater, **run.parts())
    again = Run(CountingWithParameters(SimplePrecessionModel()))
    load_checkpoint(path, again.updater, **again.parts())
    assert state_of(again.updater) == state_of(run.updater)
    _refused(path, Run(CountingWithParameters(SimplePrecessionModel(), scale=2.0)),
             match="model CountingWithParameters scale: 1.0 there, 2.0 here")


def test_another_prior_is_refused(saved):
    run = Run(SimplePrecessionModel())
    run.updater.prior = UniformDistribution([[0.0, 2.0]])
    _refused(saved, run, match=r"prior UniformDistribution ranges: \[\[0.0, 1.0\]\] there, \[\[0.0, 2.0\]\] here")


def test_a_proxy_is_looked_through_a_wrapper_is_not():
    from mpi_qinfer import MPIParallelizedModel
    from mpi_qinfer.smc.checkpoint import model_layers

    with MPIParallelizedModel(IsingChainModel(n_qubits=2)) as proxy:
        assert model_layers(proxy) == model_layers(IsingChainModel(n_qubits=2))
    layers = model_layers(Dephased(IsingChainModel(n_qubits=2), 0.5))
    assert [layer["type"] for layer in layers] == [f"{__name__}.Dephased", "mpi_qinfer.models.builtin.IsingChainModel"]
    assert layers[0]["parameters"] == {"visibility": 0.5} and layers[1]["parameters"]["n_qubits"] == 2


def test_a_serial_checkpoint_resumes_on_a_proxy(tmp_path):
    from mpi_qinfer import MPIParallelizedModel

    whole = Run(SimplePrecessionModel()).run(10)
    first = Run(SimplePrecessionModel()).run(4)
    save_checkpoint(tmp_path / "c.npz", first.updater, **first.parts())
    with MPIParallelizedModel(SimplePrecessionModel()) as proxy:
        again = Run(proxy)
        load_checkpoint(tmp_path / "c.npz", again.updater, **again.parts(proxy))
        again.run(6)
        assert state_of(again.updater) == state_of(whole.updater)


def test_two_jobs_on_one_path_each_resume_only_their_own_state(tmp_path):
    path = tmp_path / "shared.npz"
    job_a = Run(SimplePrecessionModel(), seed=1).run(5)
    save_checkpoint(path, job_a.updater, **job_a.parts())
    job_b = Run(SimplePrecessionModel(), seed=2).run(3)
    save_checkpoint(path, job_b.updater, **job_b.parts())  # B overwrites A's checkpoint
    a_again = Run(SimplePrecessionModel(), seed=1)
    _refused(path, a_again, match="another run: .*updater rng: seed 2 there, 1 here")
    b_again = Run(SimplePrecessionModel(), seed=2)
    load_checkpoint(path, b_again.updater, **b_again.parts())
    assert state_of(b_again.updater) == state_of(job_b.updater)


def test_a_run_id_names_a_run_started_without_seeds(tmp_path):
    def unseeded():
        run = Run(SimplePrecessionModel())
        run.updater.rng = np.random.default_rng()  # fresh entropy every time
        return run

    path = tmp_path / "c.npz"
    first = unseeded().run(4)
    save_checkpoint(path, first.updater, **first.parts(), run_id="job-a")
    assert read_metadata(path)["identity"]["run_id"] == "job-a"
    again = unseeded()
    before = state_of(again.updater)
    with pytest.raises(CheckpointError, match="run_id 'job-a' there, None here"):
        load_checkpoint(path, again.updater, **again.parts())
    with pytest.raises(CheckpointError, match="run_id 'job-a' there, 'job-b' here"):
        load_checkpoint(path, again.updater, **again.parts(), run_id="job-b")
    assert state_of(again.updater) == before
    load_checkpoint(path, again.updater, **again.parts(), run_id="job-a")
    assert state_of(again.updater) == state_of(first.updater)
    # A Checkpointer writes the run_id it was given.
    with Checkpointer(path, again.updater, **again.parts(), run_id="job-a", every_updates=1) as checkpoints:
        again.run(1, checkpoints)
    assert read_metadata(path)["identity"]["run_id"] == "job-a"
    with pytest.raises(TypeError, match="run_id"):
        save_checkpoint(path, again.updater, run_id=7)


def test_allow_other_run_loads_another_runs_state_but_not_one_that_cannot_fit(tmp_path):
    path = tmp_path / "c.npz"
    other = _wrapped_run(seed=3).run(5)
    save_checkpoint(path, other.updater, **other.parts())
    mine = Run(SimplePrecessionModel(), seed=1)
    load_checkpoint(path, mine.updater, **mine.parts(), allow_other_run=True)
    assert state_of(mine.updater) == state_of(other.updater)
    _refused(path, Run(SimplePrecessionModel(), n_particles=N_PARTICLES - 1), match="particles")
    bigger = Run(IsingChainModel(n_qubits=2))
    before = state_of(bigger.updater)
    with pytest.raises(CheckpointError, match="n_modelparams"):
        load_checkpoint(path, bigger.updater, **bigger.parts(), allow_other_run=True)
    assert state_of(bigger.updater) == before


def test_a_checkpoint_without_a_run_identity_loads_only_when_asked(saved, tmp_path):
    old = _edited(saved, tmp_path, lambda meta: meta.pop("identity"))
    _refused(old, match="records no run identity.*allow_other_run=True")
    run = Run(SimplePrecessionModel())
    load_checkpoint(old, run.updater, **run.parts(), allow_other_run=True)
    assert len(run.updater.data_record) == 6


def _set(*keys_and_value):
    """An edit setting meta[k1][k2]... = value."""
    *keys, last, value = keys_and_value

    def edit(meta):
        for key in keys:
            meta = meta[key]
        meta[last] = value

    return edit


# Hand edits of the metadata of a 500-particle checkpoint, and what the refusal must name.
HAND_EDITS = {
    "n_particles 501": (_set("n_particles", N_PARTICLES + 1), "says 501 particles"),
    "model null": (_set("model", None), "the model is None"),
    "updater attribute n_particles 501": (_set("scalars", "n_particles", N_PARTICLES + 1), "'n_particles' is 501"),
    "updater attribute model null": (_set("scalars", "model", None), "attribute 'model'"),
    "updater attribute unknown": (_set("scalars", "particle_count", 3), "attribute 'particle_count'"),
    "resample_thresh 7": (_set("scalars", "resample_thresh", 7.0), "between 0 and 1"),
    "resample_thresh text": (_set("scalars", "resample_thresh", "half"), "'resample_thresh' is 'half'"),
    "zero weight policy": (_set("scalars", "_zero_weight_policy", "bogus"), "one of"),
    "resample count -1": (_set("scalars", "_resample_count", -1), ">= 0"),
    "just_resampled text": (_set("scalars", "_just_resampled", "yes"), "_just_resampled"),
    "resampler a text": (_set("resampler", "params", "a", "x"), "resampler parameter 'a'"),
    "resampler a nan": (_set("resampler", "params", "a", float("nan")), "resampler parameter 'a'"),
    "resampler unknown": (_set("resampler", "params", "b", 1.0), "resampler parameter 'b'"),
    "resampler params list": (_set("resampler", "params", [1]), "resampler"),
    "n_updates": (_set("n_updates", 5), "records disagree"),
    "n_updates text": (_set("n_updates", "6"), "n_updates is '6'"),
    "updater rng": (_set("updater_rng", {"bit_generator": "PCG64", "state": 5}), "updater rng"),
    "data generator": (_set("generators", "data", 5), "generator 'data'"),
    "generators list": (_set("generators", [1]), "generators"),
    "identity model": (_set("identity", "model", 5), "malformed"),
    "identity null seeds": (_set("identity", "seeds", None), "malformed"),
    "array list": (_set("arrays", "particle_weights", 5), "particle_weights"),
    "arrays null": (_set("arrays", None), "arrays"),
}


@pytest.mark.parametrize("name", sorted(HAND_EDITS))
def test_hand_edited_metadata_is_checked_before_anything_is_applied(saved, tmp_path, name):
    edit, match = HAND_EDITS[name]
    _refused(_edited(saved, tmp_path, edit), match=match)


def test_negative_weights_with_a_matching_checksum_are_refused(saved, tmp_path):
    import hashlib

    with np.load(saved) as archive:
        members = {member: archive[member] for member in archive.files}
    weights = members["particle_weights"].copy()
    weights[0] = -weights[0]
    members["particle_weights"] = weights
    meta = json.loads(members["metadata"].tobytes())
    meta["arrays"]["particle_weights"]["sha256"] = hashlib.sha256(weights.tobytes()).hexdigest()
    members["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "negative.npz", **members)
    _refused(tmp_path / "negative.npz", match="negative weights")


def test_metadata_that_is_not_an_object_is_refused(saved, tmp_path):
    with np.load(saved) as archive:
        members = {member: archive[member] for member in archive.files}
    for i, text in enumerate(("[]", '"text"', "3", "null", "[1, 2]")):
        members["metadata"] = np.frombuffer(text.encode(), dtype=np.uint8)
        np.savez(tmp_path / f"e{i}.npz", **members)
        _refused(tmp_path / f"e{i}.npz", match="metadata is not a JSON object")
    members["metadata"] = np.arange(4.0)  # not bytes at all
    np.savez(tmp_path / "floats.npz", **members)
    _refused(tmp_path / "floats.npz", match="metadata is corrupt")


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


# ------------------------------------------------------------- the distributed updater's checkpoints
@pytest.fixture(params=[pytest.param("serial"), pytest.param("mpi", marks=pytest.mark.mpi)])
def world(request):
    """COMM_WORLD: one rank in a plain pytest run, every rank under mpiexec."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _shared_path(world, tmp_path, name):
    return world.bcast(str(tmp_path / name) if world.Get_rank() == 0 else None, 0)


def _on_sharded(world, check, model=None, rng=1):
    """A DistributedSMCUpdater over ``world``; ``check(updater)`` on the root; every rank gets its verdict."""
    from mpi_qinfer import DistributedSMCUpdater

    model = SimplePrecessionModel() if model is None else model
    verdict = None
    with DistributedSMCUpdater(model, 300, UniformDistribution([0, 1]), comm=world, rng=rng) as updater:
        if updater.is_root:
            verdict = verdict_of(check, updater)
    assert_collectively(world, verdict)


def _sharded_updates(updater, start, stop):
    for k in range(start, stop):
        updater.update(k % 2, np.array([1.3**k]))


def _sharded_state(updater):
    weights, locations = updater.gather()
    return (weights.tobytes(), locations.tobytes(), [np.asarray(x).tobytes() for x in updater.data_record],
            updater.resample_count, updater.rng.bit_generator.state)


def test_a_sharded_checkpoint_of_another_run_is_refused_and_the_ranks_stay_in_step(world, tmp_path):
    path = _shared_path(world, tmp_path, "sharded.npz")
    expected = {}
    _on_sharded(world, lambda updater: expected.update(state=(_sharded_updates(updater, 0, 12),
                                                                _sharded_state(updater))[1]), rng=2)

    def save(updater):
        _sharded_updates(updater, 0, 8)
        save_checkpoint(path, updater)

    _on_sharded(world, save, model=Dephased(SimplePrecessionModel()), rng=1)

    def refuse_then_run(updater):
        with pytest.raises(CheckpointError, match=r"Dephased\(mpi_qinfer.models.builtin.SimplePrecessionModel\) there"):
            load_checkpoint(path, updater)
        with pytest.raises(CheckpointError, match="updater rng: seed 1 there, 2 here"):
            load_checkpoint(path, updater, allow_other_run=False)
        _sharded_updates(updater, 0, 12)  # unchanged by the refusals, on every rank
        assert _sharded_state(updater) == expected["state"]

    _on_sharded(world, refuse_then_run, rng=2)

    def other_seed(updater):
        with pytest.raises(CheckpointError, match="updater rng: seed 1 there, 3 here"):
            load_checkpoint(path, updater)

    _on_sharded(world, other_seed, model=Dephased(SimplePrecessionModel()), rng=3)


SHARDED_EDITS = {
    "n_ess text": (_set("distributed", "n_ess", "abc"), "effective sample size is 'abc'"),
    "n_ess negative": (_set("distributed", "n_ess", -1.0), "effective sample size is -1.0"),
    "n_ess too large": (_set("distributed", "n_ess", 1e9), "effective sample size"),
    "just_resampled int": (_set("distributed", "just_resampled", 1), "just_resampled is 1"),
    "resample_count negative": (_set("distributed", "resample_count", -1), "resample_count is -1"),
    "n_ranks text": (_set("distributed", "n_ranks", "2"), "its number of ranks is '2'"),
    "n_ranks zero": (_set("distributed", "n_ranks", 0), "its number of ranks is 0"),
    "n_ranks other": (_set("distributed", "n_ranks", 7), r"its shard counts \[.*\] do not fit"),
    "distributed null": (_set("distributed", None), "distributed state is None"),
    "n_particles": (_set("n_particles", 301), "says 301 particles"),
    "model null": (_set("model", None), "the model is None"),
    "no identity": (lambda meta: meta.pop("identity"), "records no run identity"),
}


def test_hand_edited_sharded_metadata_is_refused_on_the_root_and_the_ranks_stay_in_step(world, tmp_path):
    path = _shared_path(world, tmp_path, "sharded.npz")
    expected = {}

    def save(updater):
        _sharded_updates(updater, 0, 6)
        save_checkpoint(path, updater)
        _sharded_updates(updater, 6, 10)
        expected["state"] = _sharded_state(updater)

    _on_sharded(world, save)

    def refuse_each_then_resume(updater):
        before = _sharded_state(updater)
        for name, (edit, match) in sorted(SHARDED_EDITS.items()):
            edited = _edited(path, tmp_path, edit, name=f"{name.replace(' ', '_')}.npz")
            with pytest.raises(CheckpointError, match=match):
                load_checkpoint(edited, updater)
            assert _sharded_state(updater) == before, name
        # Asked explicitly, the identity-less copy loads, and the run goes on as if never stopped.
        meta = load_checkpoint(tmp_path / "no_identity.npz", updater, allow_other_run=True)
        _sharded_updates(updater, meta["n_updates"], 10)
        assert _sharded_state(updater) == expected["state"]

    _on_sharded(world, refuse_each_then_resume)


def test_a_sharded_save_removes_a_killed_writers_temporary_file(world, tmp_path):
    from mpi_qinfer.smc import checkpoint

    path = _shared_path(world, tmp_path, "sharded.npz")

    def run(updater):
        stale = os.path.join(os.path.dirname(path), checkpoint._temporary_prefix(path, _ended_pid()) + "aaaaaaaa.tmp")
        with open(stale, "wb") as file:
            file.write(b"partial")
        _aged(stale, 120)
        with Checkpointer(path, updater, every_updates=3) as checkpoints:
            for k in range(3):
                _sharded_updates(updater, k, k + 1)
                checkpoints.step()
        assert not os.path.exists(stale) and _temporaries(os.path.dirname(path)) == []
        assert read_metadata(path)["n_updates"] == 3

    _on_sharded(world, run)


def test_a_flipped_bit_of_a_sharded_checkpoint_is_refused_or_changes_nothing(world, tmp_path):
    path = _shared_path(world, tmp_path, "sharded.npz")
    expected = {}

    def save(updater):
        _sharded_updates(updater, 0, 4)
        save_checkpoint(path, updater)
        expected["state"] = _sharded_state(updater)

    _on_sharded(world, save)

    def flip_and_load(updater):
        data, flipped = open(path, "rb").read(), os.path.join(os.path.dirname(path), "flipped.npz")
        refused = 0
        bits = _bits_to_flip(data)[::40]  # a sample: the serial test flips them all
        for bit in bits:
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            with open(flipped, "wb") as file:
                file.write(bytes(damaged))
            before = _sharded_state(updater)
            try:
                load_checkpoint(flipped, updater)
            except CheckpointError:
                refused += 1
                assert _sharded_state(updater) == before, bit
            else:
                assert _sharded_state(updater) == expected["state"], bit
        assert refused > len(bits) / 2

    _on_sharded(world, flip_and_load)


class Blind(SimplePrecessionModel):
    """Gives every outcome likelihood zero at t >= 100: that datum leaves every weight zero."""

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        return np.where(np.asarray(expparams, dtype=float) >= 100, 0.0, answer)


def test_a_state_with_every_weight_zero_kept_by_the_policy_resumes(world, tmp_path):
    from mpi_qinfer import DistributedSMCUpdater

    path = _shared_path(world, tmp_path, "zero.npz")
    saved = {}
    for stage in ("save", "load"):
        verdict = None
        with DistributedSMCUpdater(Blind(), 300, UniformDistribution([0, 1]), comm=world, rng=4,
                                   zero_weight_policy="ignore") as updater:
            if updater.is_root:
                def check(updater=updater, stage=stage):
                    if stage == "save":
                        _sharded_updates(updater, 0, 2)
                        updater.update(1, np.array([150.0]))  # every weight zero, kept ("ignore")
                        save_checkpoint(path, updater)
                        saved["state"] = _sharded_state(updater)
                    else:
                        load_checkpoint(path, updater)
                        assert _sharded_state(updater) == saved["state"]
                verdict = verdict_of(check)
        assert_collectively(world, verdict)
    # The same for the serial updater.
    if world.Get_rank() == 0:
        first = SMCUpdater(Blind(), 300, UniformDistribution([0, 1]), rng=4, zero_weight_policy="ignore")
        _sharded_updates(first, 0, 2)
        first.update(1, np.array([150.0]))
        save_checkpoint(tmp_path / "serial.npz", first)
        again = SMCUpdater(Blind(), 300, UniformDistribution([0, 1]), rng=4, zero_weight_policy="ignore")
        load_checkpoint(tmp_path / "serial.npz", again)
        assert state_of(again) == state_of(first)


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
