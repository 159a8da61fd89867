"""How the stand-in ``qinfer`` finds mpi_qinfer's counterpart of a qinfer name, and what it gives if there is none."""

from __future__ import annotations

import abc
import functools
import importlib
import inspect
import pkgutil

import numpy as np

#: qinfer names whose counterpart has another name or place in mpi_qinfer: "module.name" or "name" -> dotted path.
RENAMES: dict[str, str] = {}

#: qinfer submodules whose names are looked for in mpi_qinfer's module of the same name first.
PARALLEL_MODULES = {"utils": "mpi_qinfer.utils", "clustering": "mpi_qinfer.clustering",
                    "tomography": "mpi_qinfer.tomography"}

#: qinfer's positional parameters of SMCUpdater after (model, n_particles, prior), in qinfer's order.
SMC_UPDATER_POSITIONAL = ("resample_a", "resampler", "resample_thresh", "debug_resampling",
                          "track_resampling_divergence", "zero_weight_policy", "zero_weight_thresh", "canonicalize")


class MissingName(NotImplementedError):
    """A test used a qinfer name that mpi_qinfer does not have."""

    def __init__(self, qualname: str):
        super().__init__(f"qinfer_on_numpy2: missing name {qualname} (mpi_qinfer has no counterpart)")
        self.qualname = qualname


class _PlaceholderMeta(abc.ABCMeta):
    """Classes standing for missing names: calling one, asking it anything or isinstance against it raises."""

    def __call__(cls, *args, **kwargs):
        raise MissingName(cls._qinfer_name)

    def __getattr__(cls, name):
        if name.startswith("__") or name == "_qinfer_name":
            raise AttributeError(name)
        raise MissingName(cls._qinfer_name)

    def __instancecheck__(cls, instance):
        raise MissingName(cls._qinfer_name)

    def __subclasscheck__(cls, subclass):
        raise MissingName(cls._qinfer_name)


def placeholder(qualname: str):
    """A class that stands for ``qualname``: it can be imported and subclassed; using it raises MissingName."""
    return _PlaceholderMeta(qualname.rpartition(".")[2], (), {"_qinfer_name": qualname, "__module__": "qinfer"})


@functools.lru_cache(maxsize=None)
def _layer_modules() -> tuple:
    """Every public module of mpi_qinfer's model and SMC layers (what a helper adds there is found too)."""
    found = []
    for package_name in ("mpi_qinfer.models", "mpi_qinfer.smc"):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                found.append(importlib.import_module(f"{package_name}.{info.name}"))
    return tuple(found)


def lookup(module: str, name: str):
    """mpi_qinfer's counterpart of qinfer's ``module.name``, or None.

    In order: :data:`RENAMES`; the mpi_qinfer module parallel to a qinfer submodule
    (:data:`PARALLEL_MODULES`); the package's own names; any public module of ``mpi_qinfer.models``
    or ``mpi_qinfer.smc`` that defines it.
    """
    target = RENAMES.get(f"{module}.{name}") or RENAMES.get(name)
    if target:
        place, _, attribute = target.rpartition(".")
        return getattr(importlib.import_module(place), attribute)
    sub = module.split(".")[1] if "." in module else ""
    places = [PARALLEL_MODULES[sub]] if sub in PARALLEL_MODULES else []
    places.append("mpi_qinfer")
    for place in places:
        try:
            found = getattr(importlib.import_module(place), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    for candidate in _layer_modules():
        found = candidate.__dict__.get(name)
        if found is not None and getattr(found, "__module__", candidate.__name__) == candidate.__name__:
            return found
    return None


def _global_state():
    """NumPy's global RandomState: what qinfer draws from and its tests seed."""
    return np.random.mtrand._rand


def _qinfer_source(rng):
    """The source a distribution draws from here: NumPy's global state, for no ``rng`` or for an updater's.

    A stand-in updater's generator runs on the global state's bit generator; handing the distribution
    the ``RandomState`` itself makes its draws qinfer's (for the algorithms that are qinfer's), so that
    what a test draws next from the global state is what it drew under qinfer.
    """
    state = _global_state()
    if rng is None or (isinstance(rng, np.random.Generator) and rng.bit_generator is state._bit_generator):
        return state
    return rng


@functools.lru_cache(maxsize=None)
def _with_global_randomness(cls):
    """``cls`` with qinfer's convention for randomness: draws without ``rng`` come from NumPy's global state."""
    from mpi_qinfer.models.distributions import Distribution
    from mpi_qinfer.smc.updater import SMCUpdater

    if issubclass(cls, SMCUpdater):
        def __init__(self, model, n_particles, prior, *args, rng=None, **kwargs):
            if len(args) > len(SMC_UPDATER_POSITIONAL):
                raise TypeError(f"SMCUpdater takes at most {3 + len(SMC_UPDATER_POSITIONAL)} positional arguments")
            kwargs.update(zip(SMC_UPDATER_POSITIONAL, args))  # qinfer's positional order, by name
            cls.__init__(self, model, n_particles, prior,
                         rng=np.random.default_rng(_global_state()) if rng is None else rng, **kwargs)

        members = {"__init__": __init__}
    elif issubclass(cls, Distribution) and not inspect.isabstract(cls):
        def sample(self, n=1, rng=None):
            return cls.sample(self, n, rng=_qinfer_source(rng))

        members = {"sample": sample}
    else:
        return cls
    members.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)
    return type(cls.__name__, (cls,), members)


def forward(module: str, name: str):
    """What the stand-in gives for qinfer's ``module.name``: mpi_qinfer's object (classes adapted), or a placeholder."""
    found = lookup(module, name)
    if found is None:
        return placeholder(f"{module}.{name}")
    if isinstance(found, type):
        return _with_global_randomness(found)
    return found
