"""How one call is timed: warm-up calls discarded, then repeated calls, the median, minimum and maximum kept."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "time_calls"]


@dataclass
class Timing:
    """Per-call wall times of one method on one case.

    Attributes
    ----------
    times : list of float
        Seconds of every timed call (warm-up calls not included).
    warmup : int
        Calls made and discarded before timing (over all rounds).
    """

    times: list
    warmup: int

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return float(np.median(self.times))

    @property
    def min(self) -> float:
        """Fastest call, in seconds."""
        return float(min(self.times))

    @property
    def max(self) -> float:
        """Slowest call, in seconds."""
        return float(max(self.times))

    @classmethod
    def merge(cls, timings) -> "Timing":
        """One timing from the samples of several rounds."""
        timings = list(timings)
        return cls([t for timing in timings for t in timing.times], sum(t.warmup for t in timings))

    def as_dict(self, method: str) -> dict:
        """The JSON fields ``<method>_median_s``, ``_min_s``, ``_max_s`` and ``_repeats``."""
        return {
            f"{method}_median_s": self.median,
            f"{method}_min_s": self.min,
            f"{method}_max_s": self.max,
            f"{method}_repeats": len(self.times),
        }


def time_calls(call, *, warmup: int = 2, min_seconds: float = 0.3, min_repeats: int = 5,
               max_repeats: int = 50, max_seconds: float = 5.0, check=None) -> Timing:
    """Time ``call()``: discard ``warmup`` calls, then repeat it and keep every call's time.

    Repeats stop once at least ``min_repeats`` calls took ``min_seconds`` in
    all, or after ``max_repeats`` calls, or -- for slow calls -- once three or
    more took ``max_seconds``.

    Parameters
    ----------
    call : callable
        Takes no argument; its result is dropped at once (only the first is
        looked at, by ``check``).
    warmup : int
        Calls made before timing (at least one: the first result goes to ``check``).
    min_seconds, min_repeats, max_repeats, max_seconds
        The stopping rule above.
    check : callable, optional
        Given the first warm-up call's result (e.g. to compare it bitwise).

    Returns
    -------
    Timing
    """
    for index in range(max(warmup, 1)):
        result = call()
        if index == 0 and check is not None:
            check(result)
        del result
    times = []
    total = 0.0
    while True:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        total += times[-1]
        if len(times) >= max_repeats:
            break
        if len(times) >= min_repeats and total >= min_seconds:
            break
        if len(times) >= 3 and total >= max_seconds:
            break
    return Timing(times, max(warmup, 1))
