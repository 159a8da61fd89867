"""Making mpi_qinfer's models and proxy pass the real qinfer package's type checks.

qinfer's model classes (``Simulatable``, ``Model``, ``FiniteOutcomeModel``,
``DifferentiableModel``, ``DerivedModel``) and its ``Domain`` are :class:`abc.ABCMeta` classes,
and the few places where qinfer checks a model's type use ``isinstance``
(``ALEApproximateModel``, ``DifferentiableBinomialModel``, ``SMCUpdaterBCRB``).
:func:`register_with_qinfer` registers this package's bases as *virtual
subclasses* of their qinfer counterparts, so every mpi_qinfer model, and so
every :class:`~mpi_qinfer.MPIParallelizedModel` (a ``DerivedModel``), passes
those checks. qinfer stays optional: without it the function does nothing.

The proxy is a qinfer ``Model`` and ``DerivedModel``; wrapping a
differentiable serial model gives a
:class:`~mpi_qinfer.parallel.proxy.DifferentiableMPIParallelizedModel`, which is
also a qinfer ``DifferentiableModel`` (as ``SMCUpdaterBCRB`` requires).
"""

from __future__ import annotations

import importlib.util
import sys

from .base import DerivedModel, DifferentiableModel, FiniteOutcomeModel, Model, Simulatable
from .domains import Domain

__all__ = ["register_with_qinfer"]

#: Our base class -> the name of the qinfer class it stands in for.
_COUNTERPARTS = (
    (Simulatable, "Simulatable"),
    (Model, "Model"),
    (FiniteOutcomeModel, "FiniteOutcomeModel"),
    (DifferentiableModel, "DifferentiableModel"),
    (DerivedModel, "DerivedModel"),
    (Domain, "Domain"),
)

#: The qinfer module the classes were registered with, once done.
_registered_with = None
#: Set once qinfer was found missing or failed to import: never look again.
_unavailable = False


def _import_qinfer():
    """The qinfer module, or None where it is not installed or does not import."""
    global _unavailable
    module = sys.modules.get("qinfer")  # imported meanwhile, by other means
    if module is not None or _unavailable:
        return module
    try:
        if importlib.util.find_spec("qinfer") is None:
            _unavailable = True
            return None
        import qinfer
    except Exception:  # noqa: BLE001 - qinfer 1.0 fails to import on SciPy >= 1.14 (scipy.integrate.cumtrapz)
        _unavailable = True
        return None
    return qinfer


def register_with_qinfer() -> bool:
    """Register mpi_qinfer's model bases as virtual subclasses of qinfer's.

    Afterwards ``isinstance(m, qinfer.Model)`` holds for every mpi_qinfer
    model and every :class:`~mpi_qinfer.MPIParallelizedModel`, whatever
    serial model it wraps (likewise ``qinfer.Simulatable`` and
    ``qinfer.DerivedModel``); our ``FiniteOutcomeModel`` and
    ``DifferentiableModel`` subclasses also pass qinfer's checks of the same
    names.

    Idempotent and cheap: the first call without qinfer costs one
    ``importlib.util.find_spec``, later ones a dictionary look-up (a qinfer
    imported later by other means is still found). When qinfer is installed
    but not yet imported, this imports it (about 0.3 s). A qinfer that fails
    to import (as qinfer 1.0 does with SciPy >= 1.14) counts as missing.

    Returns
    -------
    bool
        Whether qinfer is importable and the classes are registered.
    """
    global _registered_with
    if _registered_with is not None:
        return True
    qinfer = _import_qinfer()
    if qinfer is None:
        return False
    for ours, name in _COUNTERPARTS:
        theirs = getattr(qinfer, name, None)
        if theirs is not None and hasattr(theirs, "register"):  # an ABCMeta class
            theirs.register(ours)
    _registered_with = qinfer
    return True
