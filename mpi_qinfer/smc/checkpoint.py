"""Checkpoint and resume of an SMC run: the updater's whole state in one file, written atomically.

A checkpoint is a NumPy ``.npz`` archive (a zip file of ``.npy`` arrays, readable
without this package) holding:

``metadata``
    UTF-8 JSON as a ``uint8`` array: the format name and version, the package
    version, the model's signature (type, ``n_modelparams``,
    ``expparams_dtype``), ``n_particles``, the run's identity
    (:func:`run_identity`), each array's dtype, shape and SHA-256, the
    generators' states and the updater's scalar attributes.
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
the run's identity, every value it would apply, generator states) before it
changes anything, so a corrupt, truncated, edited or mismatched checkpoint,
or one of another run, raises :class:`CheckpointError` and leaves the
updater as it was.

Use :class:`Checkpointer` in a loop: it snapshots the state after every
update (in memory), writes every N updates or T seconds, and on
:class:`~mpi_qinfer.runtime.termination.TerminationRequested` writes the last
complete update's state before the exception goes on.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os
import pickle
import re
import socket
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import MPIQinferError

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
    "run_identity",
    "model_layers",
    "write_snapshot",
    "remove_stale_temporaries",
    "parse_every",
]

FORMAT = "mpi_qinfer.checkpoint"  # the file format's name (it predates the subpackages; never changes)
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
#: The resampler class names that checkpoints of earlier versions (0.1.0) give, by the name the class has now.
_EARLIER_RESAMPLER_NAMES = {"mpi_qinfer.smc.updater.LiuWestResampler": "mpi_qinfer.smc.resampler.LiuWestResampler"}


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


# ------------------------------------------------------------------ what identifies a run
# A model's (or prior's) attributes that change while a run goes on, or are described apart.
_RUNTIME_ATTRIBUTES = frozenset({"_call_count", "_sim_count", "_rng", "_underlying_model"})
_DESCRIBE_DEPTH = 3   # nested objects, lists and dicts described this deep, then by their class only
_DESCRIBE_WIDTH = 32  # at most this many items of a list or dict; longer ones by length and digest
_SMALL_ARRAY = 16     # arrays up to this size are described by their values, larger ones by a digest


def _is_random_state(value) -> bool:
    return isinstance(value, (np.random.Generator, np.random.RandomState, np.random.BitGenerator,
                              np.random.SeedSequence))


def _described(value, depth: int = 0):
    """``value`` as JSON data that two equal parameters share: plain values as such, others by class."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else repr(value)  # NaN != NaN: compare non-finite ones as text
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (complex, np.complexfloating)):
        return {"complex": [_described(value.real), _described(value.imag)]}
    if isinstance(value, np.dtype):
        return {"dtype": str(value.descr)}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return {"array": "object", "shape": list(value.shape)}
        if value.size <= _SMALL_ARRAY and value.dtype.kind in "biufc":
            return {"array": _described(value.tolist(), depth), "dtype": value.dtype.str}
        return {"array": value.dtype.str, "shape": list(value.shape),
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, (list, tuple, dict)):
        if depth >= _DESCRIBE_DEPTH:
            return {"type": _qualname(value), "length": len(value)}
        if len(value) > _DESCRIBE_WIDTH:  # by a digest of its items, each described shallowly
            items = [[str(key), _described(item, _DESCRIBE_DEPTH)] for key, item in value.items()] \
                if isinstance(value, dict) else [_described(item, _DESCRIBE_DEPTH) for item in value]
            text = json.dumps(items, sort_keys=True)
            return {"type": _qualname(value), "length": len(value),
                    "sha256": hashlib.sha256(text.encode()).hexdigest()}
        if isinstance(value, dict):
            return {str(key): _described(item, depth + 1) for key, item in value.items()
                    if not _is_random_state(item)}
        return [_described(item, depth + 1) for item in value]
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return {"callable": f"{getattr(value, '__module__', '')}.{value.__qualname__}"}
    if depth < _DESCRIBE_DEPTH and hasattr(value, "__dict__"):
        return {"type": _qualname(value), "parameters": _parameters(value, depth + 1)}
    return {"type": _qualname(value)}


def _parameters(obj, depth: int = 0) -> dict:
    """An object's instance attributes (its parameters), described; counters and generators left out."""
    try:
        attributes = vars(obj)
    except TypeError:  # no __dict__ (slots, a C type): nothing to describe
        return {}
    return {str(name): _described(value, depth) for name, value in sorted(attributes.items(), key=lambda kv: str(kv[0]))
            if name not in _RUNTIME_ATTRIBUTES and not _is_random_state(value)}


def _proxy_type():
    """MPIParallelizedModel, if its module is loaded (importing it would load MPI); else None."""
    parallel = sys.modules.get(f"{__package__.rpartition('.')[0]}.parallel.proxy")
    return getattr(parallel, "MPIParallelizedModel", None)


def model_layers(model) -> list:
    """The chain of models a run uses, outermost first, each with its class and parameters.

    A derived model (qinfer's ``DerivedModel`` and this package's) is one layer
    and its ``underlying_model`` the next; an
    :class:`~mpi_qinfer.MPIParallelizedModel` is looked through, since it
    changes only the speed.

    Parameters
    ----------
    model : Model

    Returns
    -------
    list of dict
        ``{"type": ..., "parameters": ...}`` per layer; the parameters are the
        model's instance attributes holding numbers, strings, arrays (small
        ones by value, others by SHA-256) and containers of these, other
        objects by their class and attributes, a few levels deep. The call
        counters and generators every model has are left out. A model whose
        attributes change as it runs (counters or caches of its own) says
        what its parameters are with a method ``checkpoint_parameters()``
        returning them (JSON-ready data), used instead.
    """
    proxy = _proxy_type()
    layers, seen = [], set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        if proxy is None or not isinstance(model, proxy):
            # Looked up on the class: a wrapper that forwards unknown names must not answer for its model.
            own = getattr(type(model), "checkpoint_parameters", None)
            parameters = _described(model.checkpoint_parameters()) if callable(own) else _parameters(model)
            layers.append({"type": _qualname(model), "parameters": parameters})
        model = getattr(model, "underlying_model", None)
    return layers


def _seed_of(generator) -> dict | None:
    """What seeded a generator (entropy and spawn key of its SeedSequence), which loading a state keeps."""
    if not isinstance(generator, np.random.Generator):
        return None
    bit_generator = generator.bit_generator
    sequence = getattr(bit_generator, "seed_seq", getattr(bit_generator, "_seed_seq", None))
    if not isinstance(sequence, np.random.SeedSequence):
        return None
    entropy = sequence.entropy
    entropy = [int(x) for x in entropy] if isinstance(entropy, (list, tuple, np.ndarray)) else \
        (None if entropy is None else int(entropy))
    return {"entropy": entropy, "spawn_key": [int(x) for x in sequence.spawn_key],
            "pool_size": int(sequence.pool_size)}


def run_identity(updater, *, heuristic=None, generators=None, run_id=None) -> dict:
    """What tells this run from another that could write the same checkpoint path.

    Parameters
    ----------
    updater : SMCUpdater, DistributedSMCUpdater or another package's updater
    heuristic : Heuristic, optional
    generators : dict of str to numpy.random.Generator, optional
    run_id : str, optional
        The caller's name for the run. When given, it is the run's identity;
        when not, the seeds of the run's generators are.

    Returns
    -------
    dict
        ``run_id``; ``seeds``: the seed (entropy and spawn key) of the
        updater's generator, the heuristic's own and each named generator;
        ``model``: :func:`model_layers`; ``prior``: the prior's class and
        parameters.
    """
    if run_id is not None and not isinstance(run_id, str):
        raise TypeError(f"run_id must be a string or None, got {type(run_id).__name__}")
    named = [("updater rng", getattr(updater, "rng", None)), ("heuristic rng", getattr(heuristic, "rng", None))]
    named += [(f"generator {key!r}", generator) for key, generator in sorted((generators or {}).items())]
    seeds = {name: _seed_of(generator) for name, generator in named if _seed_of(generator) is not None}
    prior = getattr(updater, "prior", None)
    return {"run_id": run_id, "seeds": seeds, "model": model_layers(updater.model),
            "prior": {"type": _qualname(prior), "parameters": _parameters(prior)}}


def _is_our_updater(updater) -> bool:
    from .updater import SMCUpdater

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


def snapshot(updater, *, proxy=None, heuristic=None, generators=None, user=None, run_id=None) -> Snapshot:
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
    run_id : str, optional
        The run's name, which :func:`load_checkpoint` must be given to accept
        the state; by default the run is known by its generators' seeds (see
        :func:`run_identity`).

    Returns
    -------
    Snapshot
    """
    identity = run_identity(updater, heuristic=heuristic, generators=generators, run_id=run_id)
    return _snapshot(updater, identity, proxy=proxy, heuristic=heuristic, generators=generators, user=user)


def _snapshot(updater, identity, *, proxy=None, heuristic=None, generators=None, user=None) -> Snapshot:
    """:func:`snapshot` with the run's identity already described."""
    from .._version import __version__

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
        "identity": identity,
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

    The temporary file, in the target's directory, is named
    ``.checkpoint-<tag>-<pid>-<host>-<random>.tmp`` (``tag`` from the
    target's name). A writer killed mid-way leaves it behind; every
    successful write then removes the stale ones of the same target (see
    :func:`remove_stale_temporaries`).

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
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=_TEMP_SUFFIX, dir=directory)
    _writing.add(temporary)
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
    finally:
        _writing.discard(temporary)
    _fsync_directory(directory)
    remove_stale_temporaries(path)
    return path


# ------------------------------------------------------------------ temporary files left by killed writers
_TEMP_PREFIX, _TEMP_SUFFIX = ".checkpoint-", ".tmp"
# Ours: .checkpoint-<tag>-<pid>-<host>-<8 random>.tmp; the host has no "-", mkstemp's random part neither.
_TEMP_NAME = re.compile(r"\.checkpoint-(?P<tag>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-(?P<host>[A-Za-z0-9._]+)"
                        r"-[a-z0-9_]{8}\.tmp")
# Written by versions that named temporary files .checkpoint-<8 random>.tmp: the writer is unknown.
_OLD_TEMP_NAME = re.compile(r"\.checkpoint-[a-z0-9_]{8}\.tmp")
#: A temporary file whose writer has ended is stale once unchanged for this long (seconds).
STALE_AFTER = 60.0
#: A temporary file whose writer cannot be asked (on another host, or unnamed) is stale after this long.
STALE_UNKNOWN_WRITER_AFTER = 3600.0
_writing: set = set()  # the temporary files this process is writing now


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "_"


def _tag(path) -> str:
    """Eight hex digits from the checkpoint's file name: which checkpoint a temporary file was for."""
    return hashlib.sha256(os.path.basename(os.fspath(path)).encode()).hexdigest()[:8]


def _temporary_prefix(path, pid: int | None = None, host: str | None = None) -> str:
    """The start of the name of a temporary file written for the checkpoint ``path``."""
    return f"{_TEMP_PREFIX}{_tag(path)}-{os.getpid() if pid is None else pid}-{_host() if host is None else host}-"


def _is_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (True where that cannot be told)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # it exists but is another user's, or the number cannot be asked about: assume alive
    return True


def _is_stale(entry, tag: str, now: float) -> bool:
    """Whether a directory entry is a temporary file of ours for the checkpoint ``tag`` that no writer needs."""
    new, old = _TEMP_NAME.fullmatch(entry.name), _OLD_TEMP_NAME.fullmatch(entry.name)
    if new is None and old is None or new is not None and new["tag"] != tag:
        return False
    info = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        return False  # not a plain file of this user's: not ours to remove
    if entry.path in _writing:
        return False
    unchanged = now - info.st_mtime
    if new is None or new["host"] != _host():
        return unchanged >= STALE_UNKNOWN_WRITER_AFTER
    pid = int(new["pid"])
    if pid != os.getpid() and _is_running(pid):
        return False
    return unchanged >= STALE_AFTER


def remove_stale_temporaries(path) -> list:
    """Remove the temporary files that writers of the checkpoint ``path`` were killed before renaming.

    Only plain files of this user's named like this package's temporary
    files for ``path`` are considered; one is removed when no writer can
    still need it: its writer (named in the file's name) is a process of this
    host that has ended, and the file has not changed for
    :data:`STALE_AFTER` seconds; or its writer cannot be asked (another host,
    or a name without one, as older versions wrote) and the file has not
    changed for :data:`STALE_UNKNOWN_WRITER_AFTER` seconds. Called after
    every successful write; never raises.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint.

    Returns
    -------
    list of str
        The files removed.
    """
    path = os.path.abspath(os.fspath(path))
    tag, removed, now = _tag(path), [], time.time()
    try:
        entries = list(os.scandir(os.path.dirname(path)))
    except OSError:
        return removed
    for entry in entries:
        try:
            if _is_stale(entry, tag, now):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:  # gone already, or not removable here: leave it
            continue
    return removed


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


def save_checkpoint(path, updater, *, proxy=None, heuristic=None, generators=None, user=None,
                    run_id=None) -> str:
    """Save the state of an SMC run to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (``.npz`` by convention).
    updater, proxy, heuristic, generators, user, run_id
        As for :func:`snapshot`.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> save_checkpoint("run.npz", updater, heuristic=heuristic)  # doctest: +SKIP
    """
    return write_snapshot(snapshot(updater, proxy=proxy, heuristic=heuristic, generators=generators, user=user,
                                   run_id=run_id), path)


# ------------------------------------------------------------------ reading
def _read(path) -> tuple[dict, dict]:
    """Every array and the metadata of a checkpoint, checked for integrity: a damaged file -> CheckpointError."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint {path!r}: {error}") from error
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # noqa: BLE001 - a damaged archive fails in many ways, all of them "damaged"
        # A flipped bit makes zipfile raise BadZipFile, NotImplementedError (compression method),
        # RuntimeError (encryption flag), zlib.error, EOFError or UnicodeDecodeError (file name), and
        # NumPy's .npy header parser ValueError or SyntaxError; a size field, MemoryError or OverflowError.
        raise CheckpointError(f"{path!r} is not a readable checkpoint (corrupt or truncated?): "
                              f"{type(error).__name__}: {error}") from error
    metadata = arrays.pop(_METADATA, None)
    if metadata is None:
        raise CheckpointError(f"{path!r} is not an mpi_qinfer checkpoint: it has no metadata")
    try:
        if metadata.dtype != np.uint8 or metadata.ndim != 1:
            raise ValueError(f"it is {metadata.dtype} of shape {metadata.shape}, not bytes")
        meta = json.loads(metadata.tobytes().decode())
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path!r}: its metadata is corrupt: {error}") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path!r}: its metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not an mpi_qinfer checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format version {meta.get('format_version')!r}; "
                              f"this mpi_qinfer reads version {FORMAT_VERSION}")
    described = meta.get("arrays")
    if not isinstance(described, dict) or set(described) != set(arrays):
        listed = sorted(described) if isinstance(described, dict) else described
        raise CheckpointError(f"{path!r}: the arrays {sorted(arrays)} differ from those its metadata lists "
                              f"({listed!r})")
    for name, array in arrays.items():
        entry = described[name]
        if not isinstance(entry, dict) or entry.get("sha256") != hashlib.sha256(array.tobytes()).hexdigest():
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
    """The checkpoint fits this run, or CheckpointError saying how it does not."""
    if not condition:
        raise CheckpointError(f"the checkpoint {os.fspath(path)!r} does not fit this run: {message}")


def _sound(condition: bool, path, message: str) -> None:
    """The checkpoint agrees with itself, or CheckpointError saying where it does not."""
    if not condition:
        raise CheckpointError(f"the checkpoint {os.fspath(path)!r} is inconsistent: {message}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _possible_ess(value, n_particles: int) -> bool:
    """An effective sample size a run can have: 0..n_particles, or inf or NaN (all-zero or NaN weights kept)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return math.isnan(value) or value == math.inf or 0 <= value <= n_particles * (1 + 1e-9)


@dataclass
class _Plan:
    """Everything loading a checkpoint changes, checked and prepared before any of it is applied."""

    states: list = field(default_factory=list)      # (bit generator, or the numpy.random module, state)
    resampler: dict = field(default_factory=dict)   # the resampler's attributes
    attributes: dict = field(default_factory=dict)  # the updater's attributes
    restore: dict | None = None                     # a distributed updater's cloud, for its ranks


def load_checkpoint(path, updater, *, proxy=None, heuristic=None, generators=None, run_id=None,
                    allow_other_run: bool = False) -> dict:
    """Restore the state saved by :func:`save_checkpoint` into a freshly built run.

    Build the run as for a new start (the same model, number of particles,
    prior, resampler, heuristic and seeds), then load: every saved piece of
    state replaces the new one. Nothing is changed unless the whole checkpoint
    is sound, fits this run and is this run's.

    Parameters
    ----------
    path : str or os.PathLike
    updater : SMCUpdater or DistributedSMCUpdater
        Of the same class, model signature and ``n_particles`` as the saved
        one. A distributed one on the same number of ranks gets its shards
        back where they were: the run continues bitwise. On another number of
        ranks the saved cloud is split as this updater splits its particles
        (re-sharded): the same particle approximation, so the run continues
        validly, but not bitwise as it would have on the saved number.
    proxy : MPIParallelizedModel, optional
        Gets the saved stream of per-call seeds. Default: the updater's model,
        when it is a proxy.
    heuristic : Heuristic, optional
        Gets its saved generator state, if it had one.
    generators : dict of str to numpy.random.Generator, optional
        Get the saved states of the generators saved under the same names.
    run_id : str, optional
        This run's name, as given when the checkpoint was saved.
    allow_other_run : bool, optional
        Load the state even if the checkpoint is of another run: another run
        id or other seeds, another model chain or model parameters, another
        prior, or no record of its run (one written before checkpoints
        recorded it). What the state must fit to be usable at all (the
        updater class, ``n_particles``, ``n_modelparams``, ``expparams_dtype``,
        the resampler's class, a distributed updater's ``draws``) is checked all the same.
        Default False.

    Returns
    -------
    dict
        The checkpoint's metadata (``metadata["user"]`` holds the caller's data).

    Raises
    ------
    CheckpointError
        If the file is damaged (corrupt, truncated, edited into values that
        cannot be a state), of another format, saved from another updater
        class or number of particles or for another model shape, or (unless
        ``allow_other_run``) of another run. The message names what differs.
    """
    arrays, meta = _read(path)
    if proxy is None and hasattr(updater.model, "_seeds"):
        proxy = updater.model
    here = run_identity(updater, heuristic=heuristic, generators=generators, run_id=run_id)
    plan = _check(path, arrays, meta, updater, here, proxy=proxy, heuristic=heuristic, generators=generators,
                  allow_other_run=allow_other_run)
    _apply(plan, updater)
    return meta


# ------------------------------------------------------------------ loading, step 1: check (no side effects)
def _check(path, arrays, meta, updater, here, *, proxy, heuristic, generators, allow_other_run) -> _Plan:
    """Check the read checkpoint against itself and this run; prepare every change. Changes nothing."""
    try:
        _check_contents(path, arrays, meta)
        _check_fit(path, meta, updater)
        if not allow_other_run:
            _check_identity(path, meta, here)
        plan = _Plan(resampler=_checked_resampler(path, meta, updater.resampler))
        plan.states.extend(_checked_generators(path, meta, proxy=proxy, heuristic=heuristic, generators=generators))
        if _is_distributed(updater):
            _plan_distributed(path, arrays, meta, updater, plan)
        elif _is_our_updater(updater):
            _plan_ours(path, arrays, meta, updater, plan)
        else:
            _plan_foreign(path, arrays, meta, plan)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as error:
        # Metadata of the right format holding values of the wrong kind (edited by hand, say).
        raise CheckpointError(f"the checkpoint {os.fspath(path)!r} has malformed metadata "
                              f"({type(error).__name__}: {error})") from error
    return plan


def _check_contents(path, arrays, meta) -> None:
    """What holds for every checkpoint, whatever the run: its counts and arrays agree."""
    n_particles, n_updates, model = meta.get("n_particles"), meta.get("n_updates"), meta.get("model")
    _sound(_is_int(n_particles) and n_particles >= 1, path, f"n_particles is {n_particles!r}")
    _sound(_is_int(n_updates) and n_updates >= 0, path, f"n_updates is {n_updates!r}")
    _sound(isinstance(meta.get("updater"), str), path, f"the updater is {meta.get('updater')!r}")
    _sound(isinstance(model, dict) and _is_int(model.get("n_modelparams")) and model["n_modelparams"] >= 1
           and isinstance(model.get("expparams_dtype"), str), path, f"the model is {model!r}")
    locations, weights = arrays.get("particle_locations"), arrays.get("particle_weights")
    _sound(locations is not None and weights is not None, path, "it has no particle_locations or particle_weights")
    _sound(locations.shape == (n_particles, model["n_modelparams"]) and locations.dtype.kind == "f", path,
           f"its metadata says {n_particles} particles of {model['n_modelparams']} parameters, its "
           f"particle_locations are {locations.dtype} of shape {locations.shape}")
    _sound(weights.shape == (n_particles,) and weights.dtype.kind == "f", path,
           f"its metadata says {n_particles} particles, its particle_weights are {weights.dtype} of shape "
           f"{weights.shape}")
    # Never negative (the updaters clip); NaN can be a state, under zero_weight_policy "warn" or "ignore".
    _sound(not bool(np.any(weights < 0)), path, "particle_weights holds negative weights")
    if _PICKLED not in arrays:  # this package's updaters keep their records as arrays
        records = arrays.get("data_record"), arrays.get("normalization_record")
        _sound(all(record is not None for record in records), path, "it has no data_record or normalization_record")
        _sound(records[0].ndim >= 1 and len(records[0]) == n_updates == records[1].shape[0]
               and records[1].ndim == 1 and records[1].dtype.kind == "f", path,
               f"its records disagree with n_updates={n_updates}")


def _check_fit(path, meta, updater) -> None:
    """What the saved state needs of this run to be usable at all (never waived)."""
    _expect(meta["updater"] == _qualname(updater), path,
            f"it was saved from a {meta['updater']}, this updater is a {_qualname(updater)}")
    _expect(meta["n_particles"] == int(updater.n_particles), path,
            f"it holds {meta['n_particles']} particles, this updater has {updater.n_particles}")
    saved, mine = meta["model"], model_signature(updater.model)
    for key in ("n_modelparams", "expparams_dtype"):
        _expect(saved.get(key) == mine[key], path,
                f"it was saved for a model with {key} {saved.get(key)}, this run's has {mine[key]}")
    resampler = meta.get("resampler") or {}
    saved_type = resampler.get("type")
    if isinstance(saved_type, str):
        saved_type = _EARLIER_RESAMPLER_NAMES.get(saved_type, saved_type)
    _expect(saved_type == _qualname(updater.resampler), path,
            f"it was saved with a {resampler.get('type')} resampler, this updater has a "
            f"{_qualname(updater.resampler)}")


def _check_identity(path, meta, here) -> None:
    """The checkpoint is this run's: the same run id or seeds, model chain and parameters, prior."""
    saved = meta.get("identity")
    if saved is None:
        raise CheckpointError(
            f"the checkpoint {os.fspath(path)!r} records no run identity (it was written by mpi_qinfer "
            f"{meta.get('mpi_qinfer_version')}): nothing tells that it is this run's; if it is, load it with "
            "allow_other_run=True")
    differences = _model_differences(saved["model"], here["model"]) + _prior_differences(saved["prior"], here["prior"])
    run, hint = _run_differences(saved, here)
    if differences or run:
        raise CheckpointError(f"the checkpoint {os.fspath(path)!r} is of another run: "
                              + "; ".join(differences + run) + hint
                              + ". If it is this run's, load it with allow_other_run=True")


def _model_differences(saved: list, here: list) -> list:
    saved_chain, my_chain = [layer["type"] for layer in saved], [layer["type"] for layer in here]
    if saved_chain != my_chain:
        return [f"model {_chain(saved_chain)} there, {_chain(my_chain)} here"]
    return [found for old, new in zip(saved, here)
            for found in _differences(old["parameters"], new["parameters"], f"model {_short(old['type'])}")]


def _prior_differences(saved: dict, here: dict) -> list:
    if saved["type"] != here["type"]:
        return [f"prior {saved['type']} there, {here['type']} here"]
    return _differences(saved["parameters"], here["parameters"], f"prior {_short(here['type'])}")


def _run_differences(saved: dict, here: dict) -> tuple[list, str]:
    """The run ids when either run has one, else the seeds; and a hint for runs without seeds."""
    if saved["run_id"] is not None or here["run_id"] is not None:
        same = saved["run_id"] == here["run_id"]
        return ([] if same else [f"run_id {saved['run_id']!r} there, {here['run_id']!r} here"]), ""
    seeds = [f"{name}: {_seed_text(saved['seeds'].get(name), here['seeds'].get(name))}"
             for name in sorted(set(saved["seeds"]) | set(here["seeds"]))
             if saved["seeds"].get(name) != here["seeds"].get(name)]
    hint = (" (a generator made without a seed gets a new one every time: to resume such a run, give it a "
            "run_id when saving and loading)") if seeds else ""
    return seeds, hint


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


def _chain(types: list) -> str:
    """Layers outermost first as nested calls: ``Outer(Inner)``."""
    text = ""
    for kind in reversed(types):
        text = f"{kind}({text})" if text else kind
    return text or "(none)"


def _shown(value) -> str:
    if isinstance(value, dict) and isinstance(value.get("array"), list):
        value = value["array"]  # a small array: its values
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _differences(saved, here, where: str) -> list:
    """Where two described parameter sets differ, as ``"<where> name: A there, B here"``."""
    if saved == here:
        return []
    plain = isinstance(saved, dict) and isinstance(here, dict) and not {"array", "type"} & (set(saved) | set(here))
    if not plain:
        return [f"{where}: {_shown(saved)} there, {_shown(here)} here"]
    found = []
    for key in sorted(set(saved) | set(here)):
        if key not in saved or key not in here:
            found.append(f"{where} {key}: {'absent' if key not in saved else _shown(saved[key])} there, "
                         f"{'absent' if key not in here else _shown(here[key])} here")
        else:
            found += _differences(saved[key], here[key], f"{where} {key}")
    return found


def _seed_text(saved, here) -> str:
    def entropy(seed):
        return "no seed" if seed is None else f"seed {seed['entropy']}"

    if saved is not None and here is not None and saved["entropy"] != here["entropy"]:
        same_key = saved["spawn_key"] == here["spawn_key"]
        text = f"seed {saved['entropy']} there, {here['entropy']} here"
        return text if same_key else f"{text} (spawn keys {saved['spawn_key']} and {here['spawn_key']})"
    if saved is not None and here is not None:
        return f"spawn key {saved['spawn_key']} there, {here['spawn_key']} here"
    return f"{entropy(saved)} there, {entropy(here)} here"


def _kind(value) -> str:
    """What kind of value a parameter is, as JSON keeps it: NumPy scalars are the Python numbers they hold."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    return type(value).__name__


def _checked_resampler(path, meta, resampler) -> dict:
    """The saved resampler parameters, each one this resampler has, of the same kind."""
    saved = meta["resampler"].get("params", {})
    mine = _resampler_state(resampler)["params"]
    _sound(isinstance(saved, dict), path, f"the resampler's parameters are {saved!r}")
    for name, value in saved.items():
        _expect(name in mine, path, f"it sets the resampler parameter {name!r}, which this "
                f"{_qualname(resampler)} does not have")
        _expect(mine[name] is None or _kind(value) == _kind(mine[name]), path,
                f"its resampler parameter {name!r} is {value!r}, this resampler's is a {type(mine[name]).__name__}")
        _expect(not isinstance(value, float) or math.isfinite(value), path,
                f"its resampler parameter {name!r} is {value!r}")
    return dict(saved)


def _checked_generators(path, meta, *, proxy, heuristic, generators) -> list:
    """The saved states of the caller's generators, the proxy's seed stream and the heuristic's generator."""
    states = []
    saved = meta.get("generators") or {}
    _sound(isinstance(saved, dict), path, f"its generators are {saved!r}")
    for name, state in saved.items():
        target = (generators or {}).get(name)
        _expect(target is not None, path, f"it holds the generator {name!r}, which was not given")
        states.append((target.bit_generator, _checked_generator_state(state, target, f"generator {name!r}")))
    if meta.get("proxy_seeds") is not None:
        seeds = getattr(proxy, "_seeds", None) if proxy is not None else None
        _expect(seeds is not None, path, "it holds a proxy's seed stream, but no proxy was given")
        states.append((seeds.bit_generator, _checked_generator_state(meta["proxy_seeds"], seeds, "proxy seeds")))
    saved_heuristic = meta.get("heuristic")
    if saved_heuristic is not None and saved_heuristic.get("rng") is not None:
        rng = getattr(heuristic, "rng", None)
        _expect(isinstance(rng, np.random.Generator), path, "it holds a heuristic's generator; give that heuristic")
        states.append((rng.bit_generator, _checked_generator_state(saved_heuristic["rng"], rng, "heuristic rng")))
    return states


def _scalar_rules() -> dict:
    """Checks of this package's SMCUpdater attributes beyond their kind: name -> (test(value, updater), what)."""
    from .updater import ZERO_WEIGHT_POLICIES

    return {
        "n_particles": (lambda value, updater: value == updater.n_particles, "this updater's n_particles"),
        "resample_thresh": (lambda value, updater: 0 <= value <= 1, "between 0 and 1"),
        "_zero_weight_policy": (lambda value, updater: value in ZERO_WEIGHT_POLICIES,
                                f"one of {ZERO_WEIGHT_POLICIES}"),
        "zero_weight_thresh": (lambda value, updater: math.isfinite(value) and value >= 0, "finite and >= 0"),
        "_resample_count": (lambda value, updater: value >= 0, ">= 0"),
    }


def _plan_ours(path, arrays, meta, updater, plan) -> None:
    """This package's SMCUpdater: its generator, plain attributes, extra arrays, particles and records."""
    plan.states.append((updater.rng.bit_generator,
                        _checked_generator_state(meta.get("updater_rng"), updater.rng, "updater rng")))
    mine = {name: value for name, value in vars(updater).items() if name not in _EXPLICIT}
    scalars, rules = meta.get("scalars", {}), _scalar_rules()
    _sound(isinstance(scalars, dict), path, f"the updater's attributes are {scalars!r}")
    for name, value in scalars.items():
        _expect(name in mine and isinstance(mine[name], _SCALARS), path,
                f"it sets the updater attribute {name!r}, which this {_qualname(updater)} does not hold as a "
                "plain value")
        _expect(mine[name] is None or type(value) is type(mine[name]), path,
                f"its updater attribute {name!r} is {value!r}, this updater's is a {type(mine[name]).__name__}")
        test, what = rules.get(name, (None, None))
        _expect(test is None or test(value, updater), path, f"its updater attribute {name!r} is {value!r}, not {what}")
        plan.attributes[name] = value
    lists = meta.get("list_attributes", [])
    _sound(isinstance(lists, list), path, f"its list attributes are {lists!r}")
    for key, array in arrays.items():
        if key.startswith("attribute."):
            name = key[len("attribute."):]
            _expect(isinstance(mine.get(name), (list, np.ndarray)), path,
                    f"it sets the updater attribute {name!r}, which this {_qualname(updater)} does not hold as an "
                    "array or list")
            plan.attributes[name] = array.tolist() if name in lists else array.copy()
    plan.attributes.update(
        particle_locations=arrays["particle_locations"].copy(),
        particle_weights=arrays["particle_weights"].copy(),
        _data_record=list(arrays["data_record"]),
        _normalization_record=[float(x) for x in arrays["normalization_record"]],
    )


def _plan_distributed(path, arrays, meta, updater, plan) -> None:
    """A DistributedSMCUpdater: the root's generator, and the cloud with its shard counts for the ranks."""
    saved = meta.get("distributed")
    _sound(isinstance(saved, dict), path, f"its distributed state is {saved!r}")
    n_ranks, n_mp = int(updater.shard_counts.size), int(updater.model.n_modelparams)
    saved_ranks = saved.get("n_ranks")
    _sound(_is_int(saved_ranks) and saved_ranks >= 1, path, f"its number of ranks is {saved_ranks!r}")
    _expect(saved.get("draws") == updater.draws, path,
            f"it was saved with draws={saved.get('draws')!r}, this updater has draws={updater.draws!r}")
    for name in ("shard_counts", "shift"):
        _sound(name in arrays, path, f"it has no {name}")
    counts, shift = arrays["shard_counts"], arrays["shift"]
    _sound(counts.shape == (saved_ranks,) and counts.dtype.kind in "iu" and int(counts.min()) >= 0
           and int(counts.sum()) == updater.n_particles, path, f"its shard counts {counts.tolist()} do not fit")
    if saved_ranks != n_ranks:
        # Re-sharded: the cloud is whole and in global order, so any split of it is the same
        # particle approximation. This run's own split (its balance's) takes the saved one's
        # place; the run goes on validly, though not bitwise as it would have on the saved count.
        counts = updater.shard_counts
    _sound(shift.shape == (n_mp,) and shift.dtype.kind == "f", path, "its shift is not one number per model parameter")
    n_ess, just_resampled, resample_count = saved.get("n_ess"), saved.get("just_resampled"), saved.get("resample_count")
    _sound(_possible_ess(n_ess, updater.n_particles), path, f"its effective sample size is {n_ess!r}")
    _sound(isinstance(just_resampled, bool), path, f"its just_resampled is {just_resampled!r}")
    _sound(_is_int(resample_count) and resample_count >= 0, path, f"its resample_count is {resample_count!r}")
    plan.states.append((updater.rng.bit_generator,
                        _checked_generator_state(meta.get("updater_rng"), updater.rng, "updater rng")))
    plan.restore = {"weights": arrays["particle_weights"], "locations": arrays["particle_locations"],
                    "counts": counts, "shift": shift, "n_ess": float(n_ess), "just_resampled": just_resampled,
                    "resample_count": resample_count, "data_record": list(arrays["data_record"]),
                    "normalization_record": arrays["normalization_record"]}


def _plan_foreign(path, arrays, meta, plan) -> None:
    """Another package's updater: its pickled attributes, and NumPy's global generator."""
    _expect(_PICKLED in arrays and "numpy_global" in meta, path, "it has no pickled updater state")
    try:
        state = pickle.loads(arrays[_PICKLED].tobytes())
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad checkpoint
        raise CheckpointError(f"{os.fspath(path)!r}: the pickled updater state cannot be read: {error}") from error
    _expect(isinstance(state, dict), path, "the pickled updater state is not a dict of attributes")
    _expect(not _FOREIGN_KEPT & set(state), path, "the pickled updater state holds its model, prior or resampler")
    plan.attributes.update(state)
    global_state = _from_json(meta["numpy_global"])
    try:
        np.random.RandomState().set_state(global_state)
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{os.fspath(path)!r}: NumPy's global generator state is invalid: {error}") from error
    plan.states.append((np.random, global_state))


# ------------------------------------------------------------------ loading, step 2: apply
def _apply(plan: _Plan, updater) -> None:
    """Make the checked changes: the ranks' shards first (a collective command), then the root's own state."""
    if plan.restore is not None:
        updater.restore_checkpoint_state(plan.restore)
    for target, value in plan.states:
        if target is np.random:
            np.random.set_state(value)
        else:
            target.state = value
    for name, value in plan.resampler.items():
        setattr(updater.resampler, name, value)
    for name, value in plan.attributes.items():
        setattr(updater, name, value)


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
    :class:`~mpi_qinfer.runtime.termination.TerminationRequested` (or ``KeyboardInterrupt``)
    leaves the block, wherever in the update it was raised.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, rewritten atomically each time.
    updater, proxy, heuristic, generators, run_id
        As for :func:`snapshot`. The run's identity (:func:`run_identity`) is
        taken once, here.
    every_updates : int, optional
        Write every this many updates.
    every_seconds : float, optional
        Write when this much wall time has passed since the last write.
    user : callable or dict, optional
        Caller's JSON data saved with each checkpoint. A callable is called
        when a checkpoint is written (not at every step, which keeps steps
        cheap); it must describe the run as of the last :meth:`step`.
    resume : bool or "auto", optional
        Load ``path`` into the run first (:func:`load_checkpoint` with the
        same ``proxy``, ``heuristic``, ``generators`` and ``run_id``):
        ``True`` requires the file, ``"auto"`` loads it only if it exists,
        so that the same script started again (a resubmitted or requeued
        job) goes on from its last checkpoint by itself. The metadata loaded
        is :attr:`resumed` (None when nothing was). Default False.

    Examples
    --------
    ::

        with Checkpointer("run.npz", updater, heuristic=heuristic, every_updates=50,
                          resume="auto") as checkpoints:
            while len(updater.data_record) < n_experiments:
                termination.check()
                updater.update(outcome, expparams)
                checkpoints.step()
    """

    def __init__(self, path, updater, *, proxy=None, heuristic=None, generators=None,
                 every_updates: int | None = None, every_seconds: float | None = None, user=None,
                 run_id=None, resume=False):
        if every_updates is not None and int(every_updates) < 1:
            raise ValueError(f"every_updates must be a positive integer, got {every_updates!r}")
        if every_seconds is not None and not float(every_seconds) > 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds!r}")
        if resume not in (False, True, "auto"):
            raise ValueError(f"resume must be False, True or 'auto', got {resume!r}")
        self.path = os.fspath(path)
        self.updater = updater
        self.every_updates = None if every_updates is None else int(every_updates)
        self.every_seconds = None if every_seconds is None else float(every_seconds)
        self._parts = {"proxy": proxy, "heuristic": heuristic, "generators": generators}
        self._identity = run_identity(updater, heuristic=heuristic, generators=generators, run_id=run_id)
        self._user = user
        self._last: Snapshot | None = None
        self._written_updates: int | None = None
        self._written_at = time.monotonic()
        self.writes = 0
        #: The metadata of the checkpoint loaded by ``resume`` (None when none was).
        self.resumed: dict | None = None
        if resume is True or (resume == "auto" and os.path.exists(self.path)):
            self.resumed = load_checkpoint(self.path, updater, proxy=proxy, heuristic=heuristic,
                                           generators=generators, run_id=run_id)
            self._written_updates = int(self.resumed["n_updates"])  # that state is on disk already
        if not _is_distributed(updater):
            self.take()  # a stop before the first update still saves the starting (or resumed) state

    def take(self) -> Snapshot:
        """Snapshot the run's state now (in memory) and keep it as the latest."""
        self._last = _snapshot(self.updater, self._identity, **self._parts)
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
        from ..runtime.termination import TerminationRequested

        if kind is not None and issubclass(kind, (TerminationRequested, KeyboardInterrupt)):
            self.write()
        return False
