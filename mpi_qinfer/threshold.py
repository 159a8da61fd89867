"""Deciding, call by call, whether the root runs the serial model or the ranks share it.

A fixed ``serial_threshold`` sends every call with fewer than that many
evaluations (``n_models * n_expparams``) to the serial model. ``"auto"``
learns instead: evaluations are grouped into power-of-two size classes, and
the first calls of a class measure the serial model and then the parallel
call; from then on the faster path is taken, and the slower one is measured
again every ``reprobe`` calls of the class so the choice follows a machine
whose load changes. Both paths return bitwise the same answer, so the choice
only ever changes speed.
"""

from __future__ import annotations

import math

__all__ = ["ThresholdPolicy"]

_SMOOTHING = 0.3


class _SizeClass:
    __slots__ = ("serial", "parallel", "calls")

    def __init__(self):
        self.serial = None  # smoothed seconds per evaluation
        self.parallel = None
        self.calls = 0


class ThresholdPolicy:
    """Serial-or-parallel decisions for one proxy.

    Parameters
    ----------
    threshold : int or "auto"
        Fixed number of evaluations below which calls run serially, or
        ``"auto"`` to measure both paths and keep the faster.
    reprobe : int
        In ``"auto"`` mode, measure the path not taken once every this many
        calls of a size class.
    """

    def __init__(self, threshold="auto", reprobe: int = 50):
        if threshold != "auto" and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
        ):
            raise ValueError(f"serial_threshold must be a non-negative int or 'auto', got {threshold!r}")
        self.threshold = threshold
        self.reprobe = reprobe
        self._classes: dict[tuple[int, int], _SizeClass] = {}

    @property
    def learns(self) -> bool:
        """Whether decisions come from measurements (``"auto"``)."""
        return self.threshold == "auto"

    def _size_class(self, command: int, work: int) -> _SizeClass:
        key = (command, int(math.log2(work)) if work > 0 else -1)
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = _SizeClass()
        return found

    def use_parallel(self, command: int, work: int) -> bool:
        """Whether a call of ``work`` evaluations should run in parallel."""
        if not self.learns:
            return work >= self.threshold
        size_class = self._size_class(command, work)
        size_class.calls += 1
        if size_class.serial is None:
            return False
        if size_class.parallel is None:
            return True
        parallel_wins = size_class.parallel < size_class.serial
        if size_class.calls % self.reprobe == 0:
            return not parallel_wins
        return parallel_wins

    def record(self, command: int, work: int, parallel: bool, seconds: float) -> None:
        """Feed back how long a call took on the path it took."""
        if not self.learns:
            return
        size_class = self._size_class(command, work)
        attribute = "parallel" if parallel else "serial"
        per_evaluation = seconds / max(work, 1)
        old = getattr(size_class, attribute)
        new = per_evaluation if old is None else old + _SMOOTHING * (per_evaluation - old)
        setattr(size_class, attribute, new)

    def summary(self) -> dict:
        """The learned costs: ``{(command, log2 size): (serial, parallel)}`` in seconds per evaluation."""
        return {key: (c.serial, c.parallel) for key, c in sorted(self._classes.items())}
