"""A stand-in ``qinfer`` package that forwards qinfer's names to mpi_qinfer (for running qinfer's tests on NumPy 2).

Not part of mpi_qinfer and not for users: ``scripts/qinfer_on_numpy2/run.py`` copies this package into a
work directory, beside a copy of qinfer's own ``tests`` package and a ``_names.json`` listing qinfer's
public names and the module of qinfer that defines each (made from the checkout by
``scripts/list_qinfer_names.py``). Then:

* ``qinfer.X`` and ``qinfer.<module>.X`` are mpi_qinfer's ``X`` where it has one (see
  :func:`._forward.lookup`), or a placeholder that raises :class:`._forward.MissingName` when it is
  used, so that each test is charged only for the names it uses;
* randomness follows qinfer's convention: a distribution's ``sample(n)`` without ``rng`` and an
  ``SMCUpdater`` without ``rng`` draw from NumPy's global state (what the tests seed), by handing
  mpi_qinfer that state (``numpy.random.mtrand._rand``, a ``RandomState``).
"""

from __future__ import annotations

import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util
import json as _json
import sys as _sys
from pathlib import Path as _Path

from . import _forward

_NAMES = _json.loads((_Path(__file__).with_name("_names.json")).read_text())
#: defining module -> its public names; reaching module (qinfer, qinfer.tomography) -> the names it shows.
_DEFINED: dict = _NAMES["defined"]
_REACHED: dict = _NAMES["reached"]
_KNOWN_MODULES = set(_DEFINED) | set(_REACHED)
#: Every public name of qinfer, wherever defined: the only names a module here answers for.
_KNOWN_NAMES = {name for names in _DEFINED.values() for name in names}


def _answers_for(name: str) -> bool:
    """Whether a module here gives a forward or placeholder for ``name`` (not for pytest's or Python's probes)."""
    return name in _KNOWN_NAMES

for _name in _REACHED.get(__name__, []):
    globals()[_name] = _forward.forward(__name__, _name)
del _name

MissingName = _forward.MissingName


def __getattr__(name):
    """Any other public name of qinfer that a test uses here: mpi_qinfer's, or a placeholder (PEP 562)."""
    if f"{__name__}.{name}" in _KNOWN_MODULES:  # a submodule, as qinfer's star imports leave them
        return _importlib.import_module(f"{__name__}.{name}")
    if not _answers_for(name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _forward.forward(__name__, name)
    globals()[name] = value
    return value


class _ShimModuleFinder(_abc.MetaPathFinder, _abc.Loader):
    """``import qinfer.<module>`` for qinfer's modules: a module of forwarded names (``qinfer.tests`` is real)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _KNOWN_MODULES and fullname != __name__:
            is_package = any(other.startswith(fullname + ".") for other in _KNOWN_MODULES)
            return _util.spec_from_loader(fullname, self, is_package=is_package)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        fullname = module.__name__
        if getattr(module, "__path__", None) is not None:
            module.__path__ = []
        names = list(_REACHED.get(fullname, [])) + [n for n in _DEFINED.get(fullname, [])
                                                    if n not in _REACHED.get(fullname, [])]
        for name in names:
            setattr(module, name, _forward.forward(fullname, name))
        module.__all__ = list(_DEFINED.get(fullname, names))

        def __getattr__(name, _module=fullname):
            if not _answers_for(name):
                raise AttributeError(f"module {_module!r} has no attribute {name!r}")
            return _forward.forward(_module, name)

        module.__getattr__ = __getattr__


if not any(isinstance(finder, _ShimModuleFinder) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _ShimModuleFinder())

__all__ = list(_REACHED.get(__name__, []))
