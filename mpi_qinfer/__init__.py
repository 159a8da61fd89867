"""mpi_qinfer: qinfer-style Bayesian likelihood models, evaluated in parallel over MPI.

The public API, re-exported; see :mod:`mpi_qinfer.parallel` for the proxy.

The package is built in layers, each a subpackage that imports only those
below it (the rules are in the design notes and checked by the test suite):

* :mod:`mpi_qinfer.models`: model base classes, the built-in models, priors
  and the bridge to qinfer (no MPI);
* :mod:`mpi_qinfer.smc`: the serial SMC updater, resampler, heuristics,
  posterior summaries, plots and checkpoints (no MPI);
* :mod:`mpi_qinfer.runtime`: what a job needs around the work (loading the
  MPI library, launch facts, signals, progress);
* :mod:`mpi_qinfer.engine`: the collective engine that moves one likelihood
  call over the ranks;
* :mod:`mpi_qinfer.parallel`: the model proxy and its root-side policies;
* :mod:`mpi_qinfer.distributed`: the SMC updater whose particles live on all
  ranks;
* :mod:`mpi_qinfer.cli`: the command line (``demo``, ``info``, ``run``,
  ``bench``).

MPI is imported only when a name that needs it is first used
(:class:`MPIParallelizedModel`, :class:`DifferentiableMPIParallelizedModel`,
:class:`Engine`, :class:`TrialFarm`, :func:`register_with_qinfer`): the model layer, SMC, priors,
heuristics and the command line's ``--help`` work in a Python without an MPI
library, and importing the package does not initialise MPI.
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import sys as _sys
import warnings as _warnings

from . import models as _models_layer
from . import smc as _smc_layer
from ._version import __version__
from .distributed.updater import DistributedSMCUpdater
from .errors import (
    EngineClosedError,
    ModelMismatchError,
    MPIQinferError,
    MPIUnavailableError,
    RemoteError,
    SpawnError,
)
from .models import utils  # qinfer.utils's functions, also as ``from mpi_qinfer.utils import ...``
from .models.base import DerivedModel, DifferentiableModel, FiniteOutcomeModel, Model, Simulatable
from .models.builtin import (
    BinomialModel,
    CoinModel,
    IsingChainModel,
    NDieModel,
    NoisyCoinModel,
    RamseyModel,
    SimpleInversionModel,
    SimplePrecessionModel,
    UnknownT2Model,
)
from .models.derived import (
    ALEApproximateModel,
    GaussianHyperparameterizedModel,
    GaussianRandomWalkModel,
    MLEModel,
    MultinomialModel,
    PoisonedModel,
    RandomWalkModel,
)
from .models.distributions import (
    MultivariateNormalDistribution,
    NormalDistribution,
    ProductDistribution,
    UniformDistribution,
)
from .models.domains import Domain, IntegerDomain, MultinomialDomain, ProductDomain, RealDomain
from .models.interop import register_with_qinfer
from .models.rb import RandomizedBenchmarkingModel
from .runtime import termination
from .runtime.progress import Progress
from .smc import clustering  # qinfer.clustering's functions, also as ``from mpi_qinfer.clustering import ...``
from .smc.checkpoint import Checkpointer, CheckpointError, load_checkpoint, save_checkpoint
from .smc.heuristics import PGH, BestCandidateHeuristic, ExpSparseHeuristic
from .smc.perf_testing import load_perf_trials, perf_test, perf_test_multiple, timing
from .smc.simple_est import simple_est_prec, simple_est_rb
from .smc.updater import LiuWestResampler, SMCUpdater

# Every public name of the model and SMC layers too, as their __init__ modules list them (qinfer's users
# write mpi_qinfer.BetaDistribution, mpi_qinfer.Heuristic, mpi_qinfer.SimplePrecessionModel, ...).
_LAYER_NAMES = list(_models_layer.__all__) + list(_smc_layer.__all__)
for _name in _LAYER_NAMES:
    globals().setdefault(_name, getattr(_models_layer if _name in _models_layer.__all__ else _smc_layer, _name))
del _name

#: The public names whose modules import mpi4py.MPI, and those modules.
_NEEDS_MPI = {
    "MPIParallelizedModel": "parallel.proxy",
    "DifferentiableMPIParallelizedModel": "parallel.proxy",
    "Engine": "engine.core",
    "TrialFarm": "parallel.trials",
}


def __getattr__(name):
    """Import the MPI-dependent names on first use (PEP 562)."""
    module_name = _NEEDS_MPI.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .runtime.mpi_library import load_mpi

    load_mpi()  # a missing MPI library is one clear MPIUnavailableError, not mpi4py's traceback
    value = getattr(_importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_NEEDS_MPI))


#: Modules importable under a second name for qinfer's users, without a warning: ``mpi_qinfer.<name>``.
_ALIASES = {"utils": "models.utils", "clustering": "smc.clustering"}

#: Where the modules of the flat layout of releases up to 0.1 live now (``mpi_qinfer.<old>``).
_MOVED = {
    "model": "models.base", "distributions": "models.distributions", "interop": "models.interop",
    "heuristics": "smc.heuristics", "posterior": "smc.posterior", "plotting": "smc.plotting",
    "checkpoint": "smc.checkpoint", "protocol": "engine.protocol", "plans": "engine.plans",
    "datatypes": "engine.datatypes", "operations": "engine.operations", "validation": "engine.validation",
    "failures": "engine.failures", "idle": "engine.idle", "partition": "engine.partition",
    "routes": "parallel.routes", "threshold": "parallel.threshold", "balance": "parallel.balance",
    "distributed_loop": "distributed.loop", "distributed_region": "distributed.region",
    "distributed_resampling": "distributed.resampling", "distributed_sums": "distributed.sums",
    "mpi_library": "runtime.mpi_library", "launcher": "runtime.launcher", "termination": "runtime.termination",
    "progress": "runtime.progress", "demo": "cli.demo", "info": "cli.info", "runner": "cli.run",
    "bench": "cli.bench",
}


class _MovedModuleFinder(_importlib_abc.MetaPathFinder, _importlib_abc.Loader):
    """``import mpi_qinfer.checkpoint`` (an old flat name) gives the module at its new place, with a warning.

    (``mpi_qinfer.models``, ``.smc``, ``.engine``, ``.parallel``, ``.distributed`` and ``.cli`` are
    the new subpackages and re-export what their old modules' users import.)
    """

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.partition(".")
        if package != __name__ or (old not in _MOVED and old not in _ALIASES):
            return None
        return _importlib_util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        old = spec.name.partition(".")[2]
        new = f"{__name__}.{_ALIASES.get(old) or _MOVED[old]}"
        if old not in _ALIASES:
            _warnings.warn(f"{spec.name} is now {new}; the old name will go in a later release",
                           DeprecationWarning, stacklevel=3)
        module = _importlib.import_module(new)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # Imported already, at its new name; the import system has just given it the old name's
        # spec, so give it back its own (the module keeps one identity, under both names).
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(finder, _MovedModuleFinder) for finder in _sys.meta_path):
    _sys.meta_path.append(_MovedModuleFinder())

if "qinfer" in _sys.modules:  # never import qinfer ourselves: it is slow and noisy
    # The user works with qinfer: make our models pass its isinstance checks now (no MPI needed).
    register_with_qinfer()

__all__ = [
    "MPIParallelizedModel",
    "DifferentiableMPIParallelizedModel",
    "register_with_qinfer",
    "Engine",
    "RemoteError",
    "ModelMismatchError",
    "EngineClosedError",
    "MPIQinferError",
    "MPIUnavailableError",
    "SpawnError",
    "Simulatable",
    "Model",
    "FiniteOutcomeModel",
    "DifferentiableModel",
    "DerivedModel",
    "IntegerDomain",
    "Domain",
    "RealDomain",
    "MultinomialDomain",
    "ProductDomain",
    "SimplePrecessionModel",
    "SimpleInversionModel",
    "UnknownT2Model",
    "RamseyModel",
    "IsingChainModel",
    "CoinModel",
    "NoisyCoinModel",
    "NDieModel",
    "BinomialModel",
    "MultinomialModel",
    "PoisonedModel",
    "MLEModel",
    "RandomWalkModel",
    "GaussianRandomWalkModel",
    "RandomizedBenchmarkingModel",
    "ALEApproximateModel",
    "GaussianHyperparameterizedModel",
    "simple_est_prec",
    "simple_est_rb",
    "SMCUpdater",
    "DistributedSMCUpdater",
    "LiuWestResampler",
    "UniformDistribution",
    "NormalDistribution",
    "MultivariateNormalDistribution",
    "ProductDistribution",
    "ExpSparseHeuristic",
    "PGH",
    "BestCandidateHeuristic",
    "Progress",
    "Checkpointer",
    "CheckpointError",
    "load_checkpoint",
    "save_checkpoint",
    "termination",
    "perf_test",
    "perf_test_multiple",
    "timing",
    "load_perf_trials",
    "TrialFarm",
    "utils",
    "clustering",
    "__version__",
]
__all__ += [name for name in _LAYER_NAMES if name not in __all__]
