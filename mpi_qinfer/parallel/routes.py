"""What the proxy decided about one likelihood call shape, kept for the next call of that shape.

An SMC run calls ``likelihood`` with the same few shapes thousands of times.
Everything the proxy decides before a call depends on the shapes and dtypes
of the arrays, never on their values, so the proxy decides once per shape and
keeps the outcome in a :class:`Route`:

* the call's split, its work, the rows the ranks divide;
* the threshold policy's :class:`~mpi_qinfer.parallel.threshold.SizeClass` of the
  shape, whose settled-serial flag the hot path reads directly;
* for the dtypes last seen with the shape: whether such arrays can travel
  (:func:`~mpi_qinfer.engine.validation.transportable`), and the
  :class:`~mpi_qinfer.engine.protocol.CallSpec` of the parallel call.

A route never outlives what it was derived from: the dtypes are compared on
every call (other dtypes are derived afresh), the spec is rebuilt when the
engine's learned answer dtypes change (:attr:`Engine.answer_dtypes_version
<mpi_qinfer.engine.core.Engine.answer_dtypes_version>`), and the proxy drops every
route when its policy is replaced (``sync_model``). Arrays that are not
C-contiguous take the proxy's general path, which copies them.
"""

from __future__ import annotations

import math

from .threshold import FOREVER, SizeClass

__all__ = ["Route", "fixed_class", "MAX_ROUTES"]

#: Shapes remembered before the memo starts afresh (a run that keeps changing
#: shapes -- adaptive particle counts -- stays bounded).
MAX_ROUTES = 64


def fixed_class(serial_wins: bool) -> SizeClass:
    """A size class that never learns: always serial (one rank, no work) or never settled (undecidable here)."""
    size = SizeClass()
    size.serial_wins, size.until_probe = serial_wins, math.inf
    if serial_wins:
        size.fast_left = size.handed = FOREVER
    return size


class Route:
    """One likelihood call shape: its split and size class, and the parallel call for its dtypes.

    Attributes
    ----------
    engine : Engine
        The proxy's engine (the hot path checks that it is still open).
    evaluations, calls : int
        ``n_models * n_expparams * n_outcomes``, and the calls of this shape
        so far: the proxy's ``call_count`` counts them on the route.
    direct : bool
        Whether calls of this shape can take the route's own path; if not
        (shapes the serial model must judge, a single rank, no work), the
        size class decides serial or the proxy's general path.
    work, values, split, n_rows : int
        Evaluations, outcomes, split axis and the rows it divides.
    size : SizeClass
        The policy's class of the shape (its settled-serial flag is the hot path's test).
    dtypes : tuple or None
        ``(modelparams, expparams, outcomes)`` dtypes that ``travels`` and ``spec`` are for.
    travels : bool
        Whether arrays of those dtypes can travel.
    spec, version
        The parallel call's spec (None until the first parallel call) and
        the engine's answer-dtypes version it was built under.
    """

    __slots__ = ("engine", "evaluations", "calls", "direct", "work", "values", "split", "n_rows", "size", "dtypes",
                 "travels", "spec", "version")

    def __init__(self, engine, evaluations: int, size: SizeClass, *, direct: bool = False, work: int = 0,
                 values: int = 0, split: int = 0, n_rows: int = 0):
        self.engine = engine
        self.evaluations = evaluations
        self.calls = 0
        self.size = size
        self.direct = direct
        self.work, self.values, self.split, self.n_rows = work, values, split, n_rows
        self.dtypes = None
        self.travels = False
        self.spec = None
        self.version = -1
