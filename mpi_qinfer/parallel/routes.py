"""Routes: how one call runs (serially or on every rank, and the parallel call's spec), kept per likelihood shape.

Each call of the proxy that may run in parallel gets a :class:`Route`: the
call's split, its work and the rows the ranks divide, and the threshold
policy's :class:`~mpi_qinfer.parallel.threshold.SizeClass` of the call. The
route decides serial or parallel (:meth:`Route.parallel` asks the policy) and
describes the parallel call (:meth:`Route.describe`).

An SMC run calls ``likelihood`` with the same few shapes thousands of times.
Everything decided before a call depends on the shapes and dtypes of the
arrays, never on their values, so the proxy keeps the route of a likelihood
call shape for the next call of that shape, and with it:

* the size class, whose settled-serial countdown the hot path takes
  (:meth:`~mpi_qinfer.parallel.threshold.SizeClass.take_settled_serial`);
* for the dtypes last seen with the shape: whether such arrays can travel
  (:func:`~mpi_qinfer.engine.validation.transportable`), and the
  :class:`~mpi_qinfer.engine.protocol.CallSpec` of the parallel call.

A kept route never outlives what it was derived from: the dtypes are compared on
every call (other dtypes are derived afresh), the spec is rebuilt when the
engine's learned answer dtypes change (:attr:`Engine.answer_dtypes_version
<mpi_qinfer.engine.core.Engine.answer_dtypes_version>`), and the proxy drops every
route when its policy is replaced (``sync_model``). Arrays that are not
C-contiguous take the proxy's general path, which copies them.
"""

from __future__ import annotations

import math

from ..engine.protocol import CallSpec
from ..engine.validation import transportable
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
    """One call's shape and what was decided about it: split, size class, path, and the parallel call's spec.

    Made by the proxy for each call that may run in parallel; a likelihood
    call's route is kept for the next call of its shape.

    Attributes
    ----------
    engine : Engine
        The proxy's engine (the hot path checks that it is still open).
    model : Model
        The serial model (read here by the hot path: the proxy's own
        attributes are slower to read).
    policy : ThresholdPolicy
        The proxy's threshold policy, which :meth:`parallel` asks.
    command : int
        The call's :class:`~mpi_qinfer.engine.protocol.Command`.
    evaluations, calls : int
        ``n_models * n_expparams * n_outcomes``, and the calls of this shape
        so far: the proxy's ``call_count`` counts them on a kept route.
    direct : bool
        Whether calls of this shape can take the route's own path; if not
        (shapes the serial model must judge, a single rank, no work), the
        size class decides serial or the proxy's general path.
    work, values, split, n_rows : int
        Evaluations (draws, for a random call), values per evaluation, split
        axis and the rows it divides.
    size : SizeClass or None
        The policy's class of the shape (its settled-serial countdown is the
        hot path's test); None for a random call, which no timing decides.
    dtypes : tuple or None
        ``(modelparams, expparams, outcomes)`` dtypes that ``travels`` and ``spec`` are for.
    travels : bool
        Whether arrays of those dtypes can travel.
    spec, version
        The parallel call's spec (None until the first parallel call) and
        the engine's answer-dtypes version it was built under.
    """

    __slots__ = ("engine", "model", "policy", "command", "evaluations", "calls", "direct", "work", "values", "split",
                 "n_rows", "size", "dtypes", "travels", "spec", "version")

    def __init__(self, engine, model, policy, command: int, evaluations: int, size: SizeClass | None,
                 direct: bool = False, work: int = 0, values: int = 0, split: int = 0, n_rows: int = 0):
        self.engine = engine
        self.model = model
        self.policy = policy
        self.command = command
        self.evaluations = evaluations
        self.calls = 0
        self.size = size
        self.direct = direct
        self.work, self.values, self.split, self.n_rows = work, values, split, n_rows
        self.dtypes = None
        self.travels = False
        self.spec = None
        self.version = -1

    def parallel(self) -> bool:
        """Whether this call runs on every rank: the policy's decision, counted in its size class.

        A random call (no size class) follows the policy's fixed rule
        (:meth:`~mpi_qinfer.parallel.threshold.ThresholdPolicy.random_parallel`).
        """
        size = self.size
        if size is None:
            return self.policy.random_parallel(self.command, self.work)
        return self.policy.decide(size, self.command)

    def travels_with(self, outcomes, modelparams, expparams) -> bool:
        """Whether arrays of these dtypes can travel; judged once per change of dtypes (which drops the spec)."""
        dtypes = (modelparams.dtype, expparams.dtype, outcomes.dtype)
        if dtypes != self.dtypes:
            self.dtypes = dtypes
            self.travels = transportable(self.model, modelparams, expparams, outcomes) is not None
            self.spec = None
        return self.travels

    def describe(self, model_id: int, outcomes, modelparams, expparams, explicit_counts: bool, **options) -> CallSpec:
        """The parallel call's :class:`~mpi_qinfer.engine.protocol.CallSpec` on these arrays.

        ``options``: :meth:`Engine.describe <mpi_qinfer.engine.core.Engine.describe>`'s
        ``repeat``, ``return_likelihood``, ``seed`` and ``answer_hint``.
        """
        return self.engine.describe(self.command, model_id, self.split, outcomes=outcomes, modelparams=modelparams,
                                    expparams=expparams, explicit_counts=explicit_counts, **options)

    def kept_spec(self, model_id: int, outcomes, modelparams, expparams, explicit_counts: bool) -> CallSpec:
        """:meth:`describe` for a kept route: the spec of the last call, unless what it was built on changed."""
        spec = self.spec
        version = self.engine.answer_dtypes_version
        if spec is None or self.version != version or spec.explicit_counts != explicit_counts:
            spec = self.spec = self.describe(model_id, outcomes, modelparams, expparams, explicit_counts)
            self.version = version
        return spec
