"""Deciding, call by call, whether the root runs the serial model or the ranks share it.

A fixed ``serial_threshold`` sends every call with fewer than that many
evaluations (``n_models * n_expparams``) to the serial model. ``"auto"``
learns instead, per *size class*: the command, the power-of-two class of the
evaluations, the power-of-two class of the outcome count and the split axis.
The outcome count and the split are part of the class because they change
the cost of the parallel path much more than the serial one's (the answer to
move grows with the outcomes; the experiments split moves it in other
pieces), so one outcome's decision must not be applied to six. In each class:

1. The first calls of a class run in parallel. The very first is discarded
   (cold buffers and datatypes make it unrepresentative); the next ones give
   the parallel cost, and the root's own share of each of them gives an
   estimate of the serial cost for free (its compute time, scaled to all rows).
2. If that estimate says parallel clearly wins, serial is never tried: a
   costly model is parallel from its second call on. Otherwise one serial
   call measures the serial cost directly.
3. From then on the faster path is taken (parallel only when it is at
   least 3% faster: within the noise of two timings the serial path, which
   leaves the other ranks idle, is preferred), and the other one is measured
   again after 4, 8, 16, ... calls (capped at ``reprobe``; when one path is
   more than 1.5 times faster, after 4, 32, 256, ... capped at 16 times
   that, starting at 32 when the first comparison is already that clear),
   so the choice follows a machine whose load changes without paying
   often for a clear loser.
4. A re-check measures both sides. A class settled on parallel times every
   call, so its re-check is one serial call. A class settled on serial runs
   untimed (the fast path), so its re-check is one timed serial call and
   then one parallel call: a model that gets costlier is noticed on its own
   path too, not only on the other one.

Costs are smoothed per evaluation; a single sample counts at most twice the
current estimate, so one call stalled by a busy machine cannot flip a
decision that many calls have confirmed. A re-check's sample is judged
against its estimate: after one more than twice, or less than half, the
estimate, the next re-check comes after 4 calls instead of the back-off's
interval; if that one finds the same side off in the same direction, the
cost has changed: its sample replaces the estimate and the back-off starts
again from 4 calls. Otherwise it was a stall, and the back-off goes on where
it was. So a model whose cost changes for good is followed within two
re-checks a few calls apart, while a single stall costs one early re-check
and moves the estimate by 30% only.

Both paths return bitwise the same answer, so the choice only changes speed.
"""

from __future__ import annotations

import math
from collections import Counter

from ..engine.protocol import Command

__all__ = ["ThresholdPolicy", "SizeClass", "outcome_class", "FOREVER", "SIMULATE_AUTO_THRESHOLD"]

_SMOOTHING = 0.3
#: A sample above this many times the current estimate counts as this many times it:
#: a call stalled by a busy machine (a descheduled rank, a page-fault storm) moves the
#: estimate by 30%, not by 30% of the stall, while a real change still shows in a few calls.
_SPIKE_CLIP = 2.0
#: Parallel wins without a serial measurement when its cost is below this share of the estimate.
_CLEAR_WIN = 0.6
#: A path this many times faster than the other is re-checked 16 times less often.
_CLEAR_MARGIN = 1.5
#: Parallel must be this much faster to be taken: within the noise of two timings the
#: serial path, which leaves the other ranks idle and costs nothing to keep, is preferred.
_PARALLEL_MARGIN = 1.03
#: Calls before the first re-check when the first serial measurement is already a clear verdict.
_FIRST_CLEAR_INTERVAL = 32
#: Calls before the next re-check after one found a cost far off its estimate (the class may be changing).
_CHANGING_INTERVAL = 4
#: What a re-check found (``SizeClass.changing``): costs as estimated; one far off (a stall or a
#: change: the next re-check comes soon and tells); the second far off in a row (a change).
_STEADY, _FAR_OFF, _CHANGED = 0, 1, 2
#: ``SizeClass.fast_left`` of a class that never needs a re-check (a fixed threshold's serial side).
FOREVER = 2**62
_WARMUP_CALLS = 1
_PARALLEL_SAMPLES = 2
#: In "auto" mode, simulations go parallel from this many draws: a fixed rule, because which
#: path runs decides the random streams used (see :meth:`ThresholdPolicy.random_parallel`).
SIMULATE_AUTO_THRESHOLD = 100_000
_SIMULATE = int(Command.SIMULATE)


class SizeClass:
    """What the policy knows about one size class; the proxy keeps a reference per call shape.

    ``fast_left`` is the settled-serial countdown of the proxy's hot path:
    while it is positive, a call of the class runs serially, untimed, and
    :meth:`take_settled_serial` takes one off it. The policy hands a settled
    serial class's countdown to the next re-check over to ``fast_left``
    (``until_probe`` is then 0, so the first call after it is the re-check),
    and takes it back when parallel wins. A fixed threshold's serial class
    never runs out.
    """

    __slots__ = ("serial", "parallel", "estimate", "parallel_calls", "until_probe", "interval", "serial_wins",
                 "fast_left", "handed", "decided", "rechecking", "probing", "trends", "changing")

    def __init__(self):
        self.serial = None  # smoothed seconds per evaluation, measured serially
        self.parallel = None  # ... measured in parallel
        self.estimate = None  # serial seconds per evaluation estimated from the root's share
        self.parallel_calls = 0
        self.until_probe = 4  # calls of the winning path before the other is measured again
        self.interval = 4
        self.serial_wins = False  # both paths measured and serial is the faster
        self.fast_left = 0  # settled serial calls before the policy looks again (the hot path's test)
        self.handed = 0  # calls ever handed over to fast_left: handed - fast_left took the fast path
        self.decided = [0, 0]  # calls decided serial, parallel by ThresholdPolicy.decide
        self.rechecking = False  # a settled serial class's re-check timed its serial call; parallel is next
        self.probing = False  # the call just decided is a re-check's measurement
        self.trends = [0, 0]  # serial, parallel: +1 / -1 when the last re-check sample was far above / below
        self.changing = _STEADY  # what the re-check under way found: a cost far off its estimate, or changed

    def take_settled_serial(self) -> bool:
        """Whether a call of this class runs serially, untimed (the fast path); if so, it counts on the countdown.

        False once the countdown is spent: the call is then the policy's to
        decide (:meth:`ThresholdPolicy.decide`), the next re-check's first.
        """
        if self.fast_left > 0:
            self.fast_left -= 1
            return True
        return False


def outcome_class(n_outcomes: int) -> int:
    """The outcome-count class of a call: 0 for one outcome, 1 for two, 2 for 3-4, 3 for 5-8, ..."""
    return (n_outcomes - 1).bit_length() if n_outcomes > 1 else 0


class ThresholdPolicy:
    """Serial-or-parallel decisions for one proxy.

    Every method takes the call's ``command`` (a
    :class:`~mpi_qinfer.engine.protocol.Command` value), its ``work`` (evaluations,
    ``n_models * n_expparams``) and, as keywords, ``n_outcomes`` (default 1;
    the likelihood's number of outcomes; for another command, the values its
    answers hold per evaluation, which is what the count stands for: the
    bytes a parallel call moves back) and
    ``split`` (default 0, :attr:`~mpi_qinfer.engine.protocol.Split.MODELS`; the axis a
    parallel call would divide). Calls differing in any of these learn
    separately.

    Parameters
    ----------
    threshold : int or "auto"
        Fixed number of evaluations below which calls run serially, or
        ``"auto"`` to measure and keep the faster path.
    reprobe : int
        In ``"auto"`` mode, the longest run of calls of one size class before
        the path not taken is measured again.
    """

    def __init__(self, threshold="auto", reprobe: int = 64):
        if threshold != "auto" and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
        ):
            raise ValueError(f"serial_threshold must be a non-negative int or 'auto', got {threshold!r}")
        self.threshold = threshold
        self.reprobe = reprobe
        self.learns = threshold == "auto"
        self._classes: dict[tuple[int, int, int, int], SizeClass] = {}
        self._fixed: dict[tuple[int, bool], SizeClass] = {}  # a fixed threshold's two classes per command

    def size_class(self, command: int, work: int, n_outcomes: int = 1, split: int = 0) -> SizeClass:
        """The :class:`SizeClass` of a call (made on first use; the same object for the policy's life).

        With a fixed threshold there are two per command, below and from the
        threshold, whatever the outcomes and split.
        """
        if not self.learns:
            below = work < self.threshold
            found = self._fixed.get((command, below))
            if found is None:
                found = self._fixed[command, below] = SizeClass()
                found.serial_wins, found.until_probe = below, math.inf
                if below:
                    found.fast_left = found.handed = FOREVER
            return found
        key = (command, work.bit_length(), outcome_class(n_outcomes), split)
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = SizeClass()
        return found

    def use_parallel(self, command: int, work: int, *, n_outcomes: int = 1, split: int = 0) -> bool:
        """Whether a call of ``work`` evaluations (and ``n_outcomes`` outcomes, ``split``) should run in parallel."""
        return self.decide(self.size_class(command, work, n_outcomes, split), command)

    def random_parallel(self, command: int, work: int) -> bool:
        """Whether a call that draws random numbers (``work`` draws) runs in parallel.

        Which path runs decides the random streams used, so timings never
        decide: a fixed threshold does, and in ``"auto"`` mode a fixed rule,
        simulations in parallel from :data:`SIMULATE_AUTO_THRESHOLD` draws and
        other random calls (``update_timestep``) on the root. Nothing is
        learned or counted.
        """
        threshold = self.threshold
        if self.learns:
            threshold = SIMULATE_AUTO_THRESHOLD if command == _SIMULATE else None
        return threshold is not None and work >= threshold

    def decide(self, size: SizeClass, command: int) -> bool:
        """:meth:`use_parallel` for a call whose :meth:`size_class` the caller kept."""
        decision = bool(self._decide(size)) if self.learns else not size.serial_wins
        size.decided[decision] += 1
        return decision

    @property
    def decisions(self) -> Counter:
        """How many calls took each path: ``decisions[command, parallel]``."""
        counts = Counter()
        for (command, *_), size in [*self._classes.items(), *self._fixed.items()]:
            counts[command, False] += size.handed - size.fast_left + size.decided[False]
            counts[command, True] += size.decided[True]
        return +counts  # (without zero counts)

    def _decide(self, size: SizeClass) -> bool:
        size.probing = False
        if size.parallel_calls < _WARMUP_CALLS + _PARALLEL_SAMPLES:
            return True
        if size.fast_left > 0:  # settled serial, asked here rather than on the fast path: one off the countdown
            size.fast_left -= 1
            size.handed -= 1  # (counted as decided, not as fast)
            return False
        serial = size.serial
        if serial is None:
            if size.estimate is not None and size.parallel < _CLEAR_WIN * size.estimate:
                serial = size.estimate
            else:
                return False
        parallel_wins = size.parallel * _PARALLEL_MARGIN < serial
        if size.until_probe <= 0:  # a re-check (see the module's notes, 3 and 4); its last sample reschedules
            size.probing = True
            if size.rechecking:  # a settled serial class timed its serial call: now the parallel one
                size.rechecking = False
                return True
            # Settled parallel: its calls are all timed, so the serial side is measured. Settled
            # serial: its calls ran untimed, so its own cost is measured first, the parallel one next.
            size.rechecking = not parallel_wins
            return False
        size.until_probe -= 1
        return parallel_wins

    def _reschedule(self, size: SizeClass) -> None:
        """Calls before the next re-check, set when a re-check's last sample is in."""
        changing, size.changing = size.changing, _STEADY
        if changing == _CHANGED:  # new costs: the back-off starts again, as for a new class
            size.until_probe = size.interval = _CHANGING_INTERVAL
            return
        if changing == _FAR_OFF:  # a change, or a stall? The next re-check, soon, tells; the back-off waits
            size.until_probe = _CHANGING_INTERVAL
            return
        serial = size.serial if size.serial is not None else size.estimate
        clear = max(size.parallel, serial) > _CLEAR_MARGIN * min(size.parallel, serial)
        size.interval = min(size.interval * (8 if clear else 2), self.reprobe * (16 if clear else 1))
        size.until_probe = size.interval

    def settled_serial(self, command: int, work: int, n_outcomes: int = 1, split: int = 0) -> bool:
        """Whether this call should go serially *without* being timed (the fast path).

        True for a size class that has settled on the serial path, except on
        the calls due for measurement, which take the ordinary path.
        ``n_outcomes`` and ``split`` may be given by position here: this is
        the call on every cheap call's path.
        """
        if not self.learns:
            return work < self.threshold
        size = self._classes.get((command, work.bit_length(),
                                  (n_outcomes - 1).bit_length() if n_outcomes > 1 else 0, split))
        return size is not None and size.take_settled_serial()

    def record(self, command: int, work: int, parallel: bool, seconds: float,
               serial_estimate: float | None = None, *, n_outcomes: int = 1, split: int = 0) -> None:
        """Feed back how long a call took on the path it took.

        ``serial_estimate``: for a parallel call, the serial seconds the root's
        own share suggests for the whole call. ``n_outcomes`` and ``split``
        must be those the decision was asked for.
        """
        if self.learns:
            self.record_class(self.size_class(command, work, n_outcomes, split), work, parallel, seconds,
                              serial_estimate)

    def record_class(self, size: SizeClass, work: int, parallel: bool, seconds: float,
                     serial_estimate: float | None = None) -> None:
        """:meth:`record` for a call whose :meth:`size_class` the caller kept (learning policies only)."""
        evaluations = max(work, 1)
        probe, size.probing = size.probing, False
        first = False
        if parallel:
            size.parallel_calls += 1
            if size.parallel_calls <= _WARMUP_CALLS:
                return
            if serial_estimate is not None:
                size.estimate = _smoothed(size.estimate, serial_estimate / evaluations)
            size.parallel = _sampled(size, 1, size.parallel, seconds / evaluations, probe)
        else:
            first = size.serial is None
            size.serial = _sampled(size, 0, size.serial, seconds / evaluations, probe)
        if probe and not size.rechecking:  # the re-check's last sample: when the next one comes
            self._reschedule(size)
        if first and size.parallel is not None and max(size.parallel, size.serial) > _CLEAR_MARGIN * min(
                size.parallel, size.serial):
            # Clear from the first comparison: the first re-check waits as the second would.
            size.until_probe = size.interval = _FIRST_CLEAR_INTERVAL
        size.serial_wins = (size.serial is not None and size.parallel is not None
                            and size.serial <= size.parallel * _PARALLEL_MARGIN)
        if size.serial_wins and size.until_probe > 0:  # the countdown goes to the hot path
            size.fast_left += size.until_probe
            size.handed += size.until_probe
            size.until_probe = 0
        elif not size.serial_wins and size.fast_left > 0:  # ... and comes back when parallel wins
            size.until_probe += size.fast_left
            size.handed -= size.fast_left
            size.fast_left = 0

    def choice(self, command: int, work: int, *, n_outcomes: int = 1, split: int = 0) -> str:
        """The path calls of this size class now take: ``"serial"``, ``"parallel"`` or ``"undecided"``."""
        if not self.learns:
            return "parallel" if work >= self.threshold else "serial"
        size = self._classes.get((command, work.bit_length(), outcome_class(n_outcomes), split))
        if size is None or size.parallel is None:
            return "undecided"
        serial = size.serial if size.serial is not None else size.estimate
        if serial is None:
            return "undecided"
        return "parallel" if size.parallel * _PARALLEL_MARGIN < serial else "serial"

    def summary(self) -> dict:
        """The learned costs: ``{(command, work class, outcome class, split): (serial, parallel)}``.

        Costs are in seconds per evaluation. The work class of ``work``
        evaluations is ``work.bit_length()``, the outcome class
        :func:`outcome_class` of the outcome count; a serial cost not yet
        measured is the estimate from the root's share.
        """
        return {
            key: (c.serial if c.serial is not None else c.estimate, c.parallel)
            for key, c in sorted(self._classes.items())
        }


def _smoothed(old: float | None, new: float) -> float:
    if old is None:
        return new
    return old + _SMOOTHING * (min(new, _SPIKE_CLIP * old) - old)


def _sampled(size: SizeClass, side: int, old: float | None, new: float, probe: bool) -> float:
    """The estimate of one side (0 serial, 1 parallel) after a sample ``new``; ``probe``: a re-check's.

    A re-check's sample far off its estimate (more than ``_SPIKE_CLIP`` times
    above or below) brings the next re-check close; the second far-off one in
    a row, in the same direction, is a change of cost rather than a stall,
    and becomes the estimate.
    """
    if not probe or old is None:
        return _smoothed(old, new)
    far = 1 if new > _SPIKE_CLIP * old else -1 if new * _SPIKE_CLIP < old else 0
    confirmed = far != 0 and far == size.trends[side]
    size.trends[side] = far
    if far:
        size.changing = max(size.changing, _CHANGED if confirmed else _FAR_OFF)
    return new if confirmed else _smoothed(old, new)
