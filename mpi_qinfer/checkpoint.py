"""Checkpoint and resume of an SMC run: the updater's whole state in one file, written atomically.

A checkpoint is a NumPy ``.npz`` archive (a zip file of ``.npy`` arrays, readable
without this package) holding:

``metadata``
    UTF-8 JSON as a ``uint8`` array: the format name and version, the package
    version, the model's signature (type, ``n_modelparams``,
    ``expparams_dtype``), ``n_particles``, each array's dtype, shape and
    SHA-256, the generators' states and the updater's scalar attributes.
``particle_locations``, ``particle_weights``, ``data_record``, ``normalization_record``
    The particle approximation and the records, in their own dtypes.
``pickled_updater``
    Only for an updater of another package (qinfer's ``SMCUpdater``): its
    attributes, pickled, without its model.

What is saved, so that a resumed run is bitwise the run that was never
interrupted: the particles, weights and records; the updater's generator
(:class:`~mpi_qinfer.SMCUpdater` draws everything from it); the resampler's
parameters; a heuristic's own generator (:class:`~mpi_qinfer.PGH` with
``rng``); the proxy's stream of per-call seeds
(:class:`~mpi_qinfer.MPIParallelizedModel`); any other generators named by
the caller (e.g. the one simulating the data); for a foreign updater, NumPy's
global generator, which qinfer draws from.

Writing goes to a temporary file in the same directory, which is flushed,
``fsync``-ed and renamed over the target: a reader sees the old checkpoint or
the new one, never a partial file. Loading reads and checks everything
(archive integrity, checksums, format, model signature, particle count,
generator states) before it changes anything, so a corrupt, truncated or
mismatched checkpoint raises :class:`CheckpointError` and leaves the updater
as it was.

Use :class:`Checkpointer` in a loop: it snapshots the state after every
update (in memory), writes every N updates or T seconds, and on
:class:`~mpi_qinfer.termination.TerminationRequested` writes the last
complete update's state before the exception goes on.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pickle
import tempfile
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .errors import MPIQinferError

__all__ = [
    "CheckpointError",
    "FORMAT",
    "FORMAT_VERSION",
    "Snapshot",
    "Checkpointer",
    "snapshot",
    "save_checkpoint",
    "load_checkpoint",
    "read_metadata",
    "write_snapshot",
    "parse_every",
]

FORMAT = "mpi_qinfer.checkpoint"
FORMAT_VERSION = 1
_METADATA = "metadata"
_PICKLED = "pickled_updater"
_RECORD_ARRAYS = ("particle_locations", "particle_weights", "data_record", "normalization_record")
# Attributes of this package's SMCUpdater saved explicitly (not with the generic scalars).
_EXPLICIT = {"model", "prior", "resampler", "rng", "particle_locations", "particle_weights",
             "_data_record", "_normalization_record"}
_SCALARS = (bool, int, float, str, type(None))
# Attributes of a foreign updater that the freshly built one keeps.
_FOREIGN_KEPT = {"model", "prior", "resampler"}


class CheckpointError(MPIQinferError, ValueError):
    """A checkpoint that cannot be written, read or applied (corrupt, truncated, mismatched)."""


# ------------------------------------------------------------------ JSON for generator states
def _to_json(value):
    """A bit generator's state (nested dicts, ints, arrays) as JSON-ready data."""
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


def _from_json(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {key: _from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


def _generator_state(generator) -> dict:
    if not isinstance(generator, np.random.Generator):
        raise CheckpointError(f"expected a numpy.random.Generator, got {type(generator).__name__}")
    return _to_json(generator.bit_generator.state)


def _checked_generator_state(state, generator, what: str) -> dict:
    """``state`` as a bit-generator state, tried on a scratch generator of ``generator``'s kind."""
    state = _from_json(state)
    if not isinstance(generator, np.random.Generator):
        raise CheckpointError(f"{what}: expected a numpy.random.Generator to restore, got {type(generator).__name__}")
    scratch = type(generator.bit_generator)()
    try:
        scratch.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{what}: the saved generator state does not fit a "
                              f"{type(generator.bit_generator).__name__}: {error}") from error
    return state


# ------------------------------------------------------------------ what describes a model
def _serial_model(model):
    """The innermost model under any chain of derived models (a proxy's serial model)."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "underlying_model", None)
        if inner is None:
            break
        model = inner
    return model


def model_signature(model) -> dict:
    """What a checkpoint's model must match: the serial model's type and shapes.

    Parameters
    ----------
    model : Model
        The updater's model; derived models (a proxy included) are looked through.

    Returns
    -------
    dict
        ``type``, ``n_modelparams`` and ``expparams_dtype``.
    """
    serial = _serial_model(model)
    kind = type(serial)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "n_modelparams": int(model.n_modelparams),
        "expparams_dtype": str(np.dtype(model.expparams_dtype).descr),
    }


def _qualname(obj) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_our_updater(updater) -> bool:
    from .smc import SMCUpdater

    return isinstance(updater, SMCUpdater)


def _is_distributed(updater) -> bool:
    return callable(getattr(updater, "checkpoint_state", None)) and callable(
        getattr(updater, "restore_checkpoint_state", None))


# ------------------------------------------------------------------ snapshot
@dataclass
class Snapshot:
    """The state of an SMC run at one moment, in memory, ready to be written.

    Attributes
    ----------
    arrays : dict of str to numpy.ndarray
        Copies of the updater's arrays.
    metadata : dict
        Everything else, JSON-ready.
    """

    arrays: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def n_updates(self) -> int:
        """Number of data the updater had seen."""
        return int(self.metadata["n_updates"])


def _resampler_state(resampler) -> dict:
    params = {key: value for key, value in vars(resampler).items() if isinstance(value, _SCALARS)} \
        if hasattr(resampler, "__dict__") else {}
    return {"type": _qualname(resampler), "params": params}


def _heuristic_state(heuristic) -> dict | None:
    if heuristic is None:
        return None
    rng = getattr(heuristic, "rng", None)
    return {"type": _qualname(heuristic),
            "rng": _generator_state(rng) if isinstance(rng, np.random.Generator) else None}


def _record_array(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError:  # NumPy refuses ragged sequences
        array = np.empty(0, dtype=object)
    if array.dtype == object:
        raise CheckpointError(f"the updater's {name} holds values that are not plain numbers or arrays "
                              "of one shape; it cannot be checkpointed")
    return array.copy()


def _checked_user(user) -> dict:
    user = dict(user or {})
    try:
        json.dumps(user)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"user data must be JSON-serialisable: {error}") from error
    return user


def snapshot(updater, *, proxy=None, heuristic=None, generators=None, user=None) -> Snapshot:
    """Capture the state of an SMC run in memory (no file is written).

    Parameters
    ----------
    updater : SMCUpdater or DistributedSMCUpdater
        This package's updaters (a distributed one's shards are gathered to
        the root: a collective command), or another package's (qinfer's)
        whose state can be pickled.
    proxy : MPIParallelizedModel, optional
        Its stream of per-call seeds is saved. Default: the updater's model,
        when it is a proxy.
    heuristic : Heuristic, optional
        Its own generator, if it has one, is saved.
    generators : dict of str to numpy.random.Generator, optional
        More generators of the run, by name (for example the one simulating data).
    user : dict, optional
        JSON-serialisable data of the caller's, returned by :func:`load_checkpoint`.

    Returns
    -------
    Snapshot
    """
    from . import __version__

    if proxy is None and hasattr(updater.model, "_seeds"):
        proxy = updater.model
    seeds = getattr(proxy, "_seeds", None) if proxy is not None else None
    arrays = {}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mpi_qinfer_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "updater": _qualname(updater),
        "model": model_signature(updater.model),
        "n_particles": int(updater.n_particles),
        "n_updates": len(updater.data_record),
        "proxy_seeds": None if seeds is None else _generator_state(seeds),
        "heuristic": _heuristic_state(heuristic),
        "generators": {name: _generator_state(gen) for name, gen in (generators or {}).items()},
        "user": _checked_user(user),
    }

    if _is_distributed(updater):
        # The sharded cloud, gathered in global order with its shard counts (a collective command).
        state = updater.checkpoint_state()
        meta["updater_rng"] = _generator_state(updater.rng)
        meta["resampler"] = _resampler_state(updater.resampler)
        meta["distributed"] = {"n_ranks": int(len(state["counts"])), "n_ess": float(state["n_ess"]),
                               "just_resampled": bool(state["just_resampled"]),
                               "resample_count": int(state["resample_count"]), "draws": updater.draws,
                               "resample_thresh": float(updater.resample_thresh)}
        arrays["particle_locations"] = state["locations"]
        arrays["particle_weights"] = state["weights"]
        arrays["shard_counts"] = np.asarray(state["counts"], dtype=np.int64)
        arrays["shift"] = np.asarray(state["shift"], dtype=np.float64)
        arrays["data_record"] = _record_array(state["data_record"], "data_record")
        arrays["normalization_record"] = np.asarray(state["normalization_record"], dtype=np.float64)
    elif _is_our_updater(updater):
        meta["updater_rng"] = _generator_state(updater.rng)
        meta["resampler"] = _resampler_state(updater.resampler)
        scalars, extra_arrays = {}, []
        for name, value in vars(updater).items():
            if name in _EXPLICIT:
                continue
            if isinstance(value, _SCALARS):
                scalars[name] = value
            elif isinstance(value, (list, np.ndarray)):
                arrays[f"attribute.{name}"] = _record_array(value, name)
                extra_arrays.append(name)
        meta["scalars"] = scalars
        meta["list_attributes"] = [name for name in extra_arrays if isinstance(getattr(updater, name), list)]
        arrays["particle_locations"] = np.array(updater.particle_locations, copy=True)
        arrays["particle_weights"] = np.array(updater.particle_weights, copy=True)
        arrays["data_record"] = _record_array(updater.data_record, "data_record")
        arrays["normalization_record"] = np.asarray(updater.normalization_record, dtype=np.float64).copy()
    else:
        # A foreign updater: its attributes, pickled, without the live model and without the prior
        # and resampler, which may hold references to NumPy's global generator (qinfer's LiuWestResampler
        # draws from np.random.randn); the resampler's parameters are saved like ours.
        state = {name: value for name, value in vars(updater).items() if name not in _FOREIGN_KEPT}
        meta["resampler"] = _resampler_state(updater.resampler)
        try:
            blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - any pickling failure means: cannot checkpoint
            raise CheckpointError(f"the state of {_qualname(updater)} cannot be pickled: {error}") from error
        arrays[_PICKLED] = np.frombuffer(blob, dtype=np.uint8).copy()
        arrays["particle_locations"] = np.array(updater.particle_locations, copy=True)
        arrays["particle_weights"] = np.array(updater.particle_weights, copy=True)
        meta["numpy_global"] = _to_json(np.random.get_state(legacy=False))
    return Snapshot(arrays, meta)


# ------------------------------------------------------------------ writing
def write_snapshot(snap: Snapshot, path) -> str:
    """Write ``snap`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    snap : Snapshot
    path : str or os.PathLike

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    meta = dict(snap.metadata)
    meta["arrays"] = {
        name: {"dtype": array.dtype.str if array.dtype.names is None else str(array.dtype.descr),
               "shape": list(array.shape), "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
        for name, array in snap.arrays.items()
    }
    members = dict(snap.arrays)
    members[_METADATA] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **members)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, updater, *, proxy=None, heuristic=None, generators=None, user=None) -> str:
    """Save the state of an SMC run to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (``.npz`` by convention).
    updater, proxy, heuristic, generators, user
        As for :func:`snapshot`.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> save_checkpoint("run.npz", updater, heuristic=heuristic)  # doctest: +SKIP
    """
    return write_snapshot(snapshot(updater, proxy=proxy, heuristic=heuristic, generators=generators, user=user),
                          path)


# ------------------------------------------------------------------ reading
def _read(path) -> tuple[dict, dict]:
    """Every array and the metadata of a checkpoint, checked for integrity."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint {path!r}: {error}") from error
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"{path!r} is not a readable checkpoint (corrupt or truncated?): {error}") from error
    if _METADATA not in arrays:
        raise CheckpointError(f"{path!r} is not an mpi_qinfer checkpoint: it has no metadata")
    try:
        meta = json.loads(arrays.pop(_METADATA).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path!r}: its metadata is corrupt: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not an mpi_qinfer checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{path!r}: its metadata is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format version {meta.get('format_version')!r}; "
                              f"this mpi_qinfer reads version {FORMAT_VERSION}")
    described = meta.get("arrays", {})
    if set(described) != set(arrays):
        raise CheckpointError(f"{path!r}: the arrays {sorted(arrays)} differ from those its metadata lists "
                              f"{sorted(described)}")
    for name, array in arrays.items():
        if hashlib.sha256(array.tobytes()).hexdigest() != described[name]["sha256"]:
            raise CheckpointError(f"{path!r}: the array {name!r} fails its checksum (corrupt)")
    return arrays, meta


def read_metadata(path) -> dict:
    """The metadata of the checkpoint at ``path`` (after checking the whole file).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
    """
    return _read(path)[1]


def _expect(condition: bool, path, message: str) -> None:
    if not condition:
        raise CheckpointError(f"the checkpoint {os.fspath(path)!r} does not fit this run: {message}")


def load_checkpoint(path, updater, *, proxy=None, heuristic=None, generators=None) -> dict:
    """Restore the state saved by :func:`save_checkpoint` into a freshly built run.

    Build the run as for a new start (the same model, number of particles,
    prior, resampler and heuristic), then load: every saved piece of state
    replaces the new one. Nothing is changed unless the whole checkpoint is
    sound and fits.

    Parameters
    ----------
    path : str or os.PathLike
    updater : SMCUpdater or DistributedSMCUpdater
        Of the same class, model signature and ``n_particles`` as the saved
        one (a distributed one also on the same number of ranks, its shards
        then put back where they were: the run continues bitwise).
    proxy : MPIParallelizedModel, optional
        Gets the saved stream of per-call seeds. Default: the updater's model,
        when it is a proxy.
    heuristic : Heuristic, optional
        Gets its saved generator state, if it had one.
    generators : dict of str to numpy.random.Generator, optional
        Get the saved states of the generators saved under the same names.

    Returns
    -------
    dict
        The checkpoint's metadata (``metadata["user"]`` holds the caller's data).

    Raises
    ------
    CheckpointError
        If the file is corrupt, truncated, of another format, or saved from
        another model, updater class or number of particles.
    """
    arrays, meta = _read(path)
    _expect(meta.get("updater") == _qualname(updater), path,
            f"it was saved from a {meta.get('updater')}, this updater is a {_qualname(updater)}")
    _expect(meta.get("model") == model_signature(updater.model), path,
            f"it was saved for the model {meta.get('model')}, this run's is {model_signature(updater.model)}")
    _expect(meta.get("n_particles") == int(updater.n_particles), path,
            f"it holds {meta.get('n_particles')} particles, this updater has {updater.n_particles}")
    if proxy is None and hasattr(updater.model, "_seeds"):
        proxy = updater.model
    n_mp = int(updater.model.n_modelparams)
    locations, weights = arrays.get("particle_locations"), arrays.get("particle_weights")
    _expect(locations is not None and locations.shape == (updater.n_particles, n_mp), path,
            "particle_locations has the wrong shape")
    _expect(weights is not None and weights.shape == (updater.n_particles,), path,
            "particle_weights has the wrong shape")

    # Every assignment is prepared (and checked) first, then applied at once.
    apply = []
    resampler = meta.get("resampler") or {}
    _expect(resampler.get("type") == _qualname(updater.resampler), path,
            f"it was saved with a {resampler.get('type')} resampler, this updater has a "
            f"{_qualname(updater.resampler)}")
    apply.append((updater.resampler, dict(resampler.get("params", {}))))
    for name, state in (meta.get("generators") or {}).items():
        target = (generators or {}).get(name)
        _expect(target is not None, path, f"it holds the generator {name!r}, which was not given")
        apply.append((target.bit_generator, _checked_generator_state(state, target, f"generator {name!r}")))
    if meta.get("proxy_seeds") is not None:
        seeds = getattr(proxy, "_seeds", None) if proxy is not None else None
        _expect(seeds is not None, path, "it holds a proxy's seed stream, but no proxy was given")
        apply.append((seeds.bit_generator, _checked_generator_state(meta["proxy_seeds"], seeds, "proxy seeds")))
    saved_heuristic = meta.get("heuristic")
    if saved_heuristic is not None and saved_heuristic.get("rng") is not None:
        rng = getattr(heuristic, "rng", None)
        _expect(isinstance(rng, np.random.Generator), path, "it holds a heuristic's generator; give that heuristic")
        apply.append((rng.bit_generator, _checked_generator_state(saved_heuristic["rng"], rng, "heuristic rng")))

    attributes = {}
    restore = None
    if _is_distributed(updater):
        saved = meta.get("distributed") or {}
        n_ranks = int(updater.shard_counts.size)
        _expect(saved.get("n_ranks") == n_ranks, path,
                f"it holds shards of {saved.get('n_ranks')} ranks, this run has {n_ranks}: a sharded state "
                "resumes on the same number of ranks")
        _expect(saved.get("draws") == updater.draws, path,
                f"it was saved with draws={saved.get('draws')!r}, this updater has draws={updater.draws!r}")
        for name in ("data_record", "normalization_record", "shard_counts", "shift"):
            _expect(name in arrays, path, f"it has no {name}")
        _expect(len(arrays["data_record"]) == int(meta.get("n_updates", -1)) == len(arrays["normalization_record"]),
                path, "its records disagree in length")
        counts = arrays["shard_counts"]
        _expect(counts.shape == (n_ranks,) and int(counts.min()) >= 0 and int(counts.sum()) == updater.n_particles,
                path, "its shard counts do not fit")
        _expect(arrays["shift"].shape == (n_mp,), path, "its shift has the wrong shape")
        apply.append((updater.rng.bit_generator,
                      _checked_generator_state(meta.get("updater_rng"), updater.rng, "updater rng")))
        restore = {"weights": weights, "locations": locations, "counts": counts, "shift": arrays["shift"],
                   "n_ess": saved["n_ess"], "just_resampled": saved["just_resampled"],
                   "resample_count": saved["resample_count"], "data_record": list(arrays["data_record"]),
                   "normalization_record": arrays["normalization_record"]}
    elif _is_our_updater(updater):
        for name in ("data_record", "normalization_record"):
            _expect(name in arrays, path, f"it has no {name}")
        n_updates = int(meta.get("n_updates", -1))
        _expect(len(arrays["data_record"]) == n_updates == len(arrays["normalization_record"]), path,
                "its records disagree in length")
        apply.append((updater.rng.bit_generator,
                      _checked_generator_state(meta.get("updater_rng"), updater.rng, "updater rng")))
        for name, value in meta.get("scalars", {}).items():
            attributes[name] = value
        lists = set(meta.get("list_attributes", []))
        for key, array in arrays.items():
            if key.startswith("attribute."):
                name = key[len("attribute."):]
                attributes[name] = array.tolist() if name in lists else array.copy()
        attributes.update(
            particle_locations=locations.copy(),
            particle_weights=weights.copy(),
            _data_record=list(arrays["data_record"]),
            _normalization_record=[float(x) for x in arrays["normalization_record"]],
        )
    else:
        _expect(_PICKLED in arrays and "numpy_global" in meta, path, "it has no pickled updater state")
        try:
            state = pickle.loads(arrays[_PICKLED].tobytes())
        except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad checkpoint
            raise CheckpointError(f"{os.fspath(path)!r}: the pickled updater state cannot be read: {error}") from error
        _expect(isinstance(state, dict), path, "the pickled updater state is not a dict of attributes")
        _expect(not _FOREIGN_KEPT & set(state), path, "the pickled updater state holds its model, prior or resampler")
        attributes.update(state)
        global_state = _from_json(meta["numpy_global"])
        try:
            np.random.RandomState().set_state(global_state)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{os.fspath(path)!r}: NumPy's global generator state is invalid: {error}") from error
        apply.append((np.random, global_state))

    # ---- nothing below can fail on a checked checkpoint
    for target, value in apply:
        if target is np.random:
            np.random.set_state(value)
        elif isinstance(target, np.random.BitGenerator):
            target.state = value
        else:
            for name, item in value.items():
                setattr(target, name, item)
    for name, value in attributes.items():
        setattr(updater, name, value)
    if restore is not None:
        updater.restore_checkpoint_state(restore)  # the shards back on their ranks (a collective command)
    return meta


# ------------------------------------------------------------------ periodic checkpoints
def parse_every(text: str) -> tuple[int | None, float | None]:
    """Parse a checkpoint interval: ``"N"`` updates, or ``"Ts"`` / ``"Tm"`` / ``"Th"`` of wall time.

    Parameters
    ----------
    text : str

    Returns
    -------
    (int or None, float or None)
        Updates, seconds; exactly one is set.

    Raises
    ------
    ValueError
        For anything else, or a value that is not positive.
    """
    text = str(text).strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        if text and text[-1] in units:
            seconds = float(text[:-1]) * units[text[-1]]
            if seconds > 0:
                return None, seconds
        else:
            updates = int(text)
            if updates > 0:
                return updates, None
    except ValueError:
        pass
    raise ValueError(f"a checkpoint interval is N updates or T seconds/minutes/hours (e.g. 50, 30s, 5m), "
                     f"got {text!r}")


class Checkpointer:
    """Periodic checkpoints of an SMC loop, and one more when the run is told to stop.

    Call :meth:`step` after every update. It snapshots the state in memory,
    so that a checkpoint always holds a *complete* update, and writes it
    every ``every_updates`` updates or ``every_seconds`` seconds. Used as a
    context manager, it writes the last snapshot when a
    :class:`~mpi_qinfer.termination.TerminationRequested` (or ``KeyboardInterrupt``)
    leaves the block, wherever in the update it was raised.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, rewritten atomically each time.
    updater, proxy, heuristic, generators
        As for :func:`snapshot`.
    every_updates : int, optional
        Write every this many updates.
    every_seconds : float, optional
        Write when this much wall time has passed since the last write.
    user : callable or dict, optional
        Caller's JSON data saved with each checkpoint. A callable is called
        when a checkpoint is written (not at every step, which keeps steps
        cheap); it must describe the run as of the last :meth:`step`.

    Examples
    --------
    ::

        with Checkpointer("run.npz", updater, heuristic=heuristic, every_updates=50) as checkpoints:
            for _ in range(n_experiments):
                termination.check()
                updater.update(outcome, expparams)
                checkpoints.step()
    """

    def __init__(self, path, updater, *, proxy=None, heuristic=None, generators=None,
                 every_updates: int | None = None, every_seconds: float | None = None, user=None):
        if every_updates is not None and int(every_updates) < 1:
            raise ValueError(f"every_updates must be a positive integer, got {every_updates!r}")
        if every_seconds is not None and not float(every_seconds) > 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds!r}")
        self.path = os.fspath(path)
        self.updater = updater
        self.every_updates = None if every_updates is None else int(every_updates)
        self.every_seconds = None if every_seconds is None else float(every_seconds)
        self._parts = {"proxy": proxy, "heuristic": heuristic, "generators": generators}
        self._user = user
        self._last: Snapshot | None = None
        self._written_updates: int | None = None
        self._written_at = time.monotonic()
        self.writes = 0
        if not _is_distributed(updater):
            self.take()  # a stop before the first update still saves the starting state

    def take(self) -> Snapshot:
        """Snapshot the run's state now (in memory) and keep it as the latest."""
        self._last = snapshot(self.updater, **self._parts)
        return self._last

    def step(self) -> bool:
        """After an update: take a snapshot, and write it if one is due.

        Returns
        -------
        bool
            Whether a checkpoint was written.
        """
        if _is_distributed(self.updater):
            # Its state is sharded: gathered only when a checkpoint is written. Its updates
            # are atomic on every shard, so the live state is always a complete update.
            self._last = None
            n_updates = len(self.updater.data_record)
        else:
            n_updates = self.take().n_updates
        due = (self.every_updates is not None and n_updates % self.every_updates == 0) or (
            self.every_seconds is not None and time.monotonic() - self._written_at >= self.every_seconds)
        if due:
            self.write()
        return due

    def write(self) -> str | None:
        """Write the latest snapshot (taking one first if there is none); return the path."""
        snap = self._last if self._last is not None else self.take()
        if self._written_updates == snap.n_updates and os.path.exists(self.path):
            return self.path  # already on disk
        user = self._user() if callable(self._user) else self._user
        write_snapshot(Snapshot(snap.arrays, dict(snap.metadata, user=_checked_user(user))), self.path)
        self._written_updates = snap.n_updates
        self._written_at = time.monotonic()
        self.writes += 1
        return self.path

    @property
    def last_written_updates(self) -> int | None:
        """Updates held by the checkpoint last written (None before the first write)."""
        return self._written_updates

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        from .termination import TerminationRequested

        if kind is not None and issubclass(kind, (TerminationRequested, KeyboardInterrupt)):
            self.write()
        return False
