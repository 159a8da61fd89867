"""Failures of the serial model, carried from the ranks where they happened to the root.

A failing rank sends its exception (pickled, when it can travel) and its
traceback text; the root raises the model's own exception, with a
:class:`~mpi_qinfer.errors.RemoteError` holding every failing rank's traceback
as its ``__cause__`` (as :mod:`concurrent.futures` does), so the type a user
catches is the serial model's whichever path a call took.
"""

from __future__ import annotations

import pickle
import traceback

from ..errors import RemoteError

__all__ = ["describe_failure", "pickled_exception", "raise_failure"]


def describe_failure(error: BaseException) -> str:
    """The traceback text of ``error``; never raises (some exceptions cannot be formatted)."""
    try:
        return "".join(traceback.format_exception(error))
    except BaseException:  # noqa: BLE001 - a broken __str__ or __notes__, say
        return f"{type(error).__qualname__} (its message could not be formatted)\n"


def pickled_exception(error: BaseException) -> bytes | None:
    """The model's exception, pickled to be raised again on the root, or None if it cannot travel.

    An exception that cannot be rebuilt from its pickle (a class whose
    ``__init__`` takes other arguments than it passes to ``Exception``, as
    some of NumPy's do) travels as its nearest built-in base class with the
    same message, so an ``except TypeError`` on the root still catches it.
    """
    if not isinstance(error, Exception):
        return None  # KeyboardInterrupt, SystemExit on a worker: not the model's failure
    for candidate in (error, _builtin_stand_in(error)):
        try:
            data = pickle.dumps(candidate, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
            return data
        except BaseException:  # noqa: BLE001 - try the stand-in, then give up (RemoteError)
            continue
    return None


def _builtin_stand_in(error: Exception) -> Exception:
    """The first built-in exception class among ``error``'s bases, with its message."""
    for klass in type(error).__mro__:
        if klass.__module__ == "builtins" and issubclass(klass, Exception):
            try:
                return klass(str(error))
            except BaseException:  # noqa: BLE001 - an unprintable message
                return klass()
    return Exception(repr(error))


def raise_failure(name: str, error: BaseException | None, failures: dict) -> None:
    """Raise, on the root, what the serial model raised, with every rank's traceback as the cause.

    Parameters
    ----------
    name : str
        The call that failed (``"likelihood"``, ...).
    error : BaseException or None
        The root's own failure, raised as itself (its ``KeyboardInterrupt``
        too); None if the root did not fail.
    failures : dict of int to (bytes or None, str)
        Every failing rank's pickled exception and traceback text. Without
        a root failure, the lowest failing rank's exception is raised; one
        that cannot be rebuilt, or that is not an ``Exception``, is replaced
        by the :class:`~mpi_qinfer.errors.RemoteError` itself.
    """
    remote = RemoteError(name, {rank: text for rank, (_, text) in failures.items()})
    if error is not None:
        raise error from remote
    data = failures[min(failures)][0]
    if data is not None:
        try:
            exception = pickle.loads(data)
        except BaseException:  # noqa: BLE001 - cannot be rebuilt here: RemoteError alone
            exception = None
        if isinstance(exception, Exception):
            raise exception from remote
    raise remote
