"""How many rows each rank gets: even, fixed weights, or adapted to measured speed.

The adaptive policy keeps a smoothed rate (evaluations per second of serial-model
time) for every rank, fed by the compute times each call reports with its
status, and splits the next call in proportion to those rates. It changes the
split only when the new shares differ from the current ones by more than
``tolerance``, so timing noise does not make the split oscillate.
"""

from __future__ import annotations

import numpy as np

from ..engine.partition import weighted_counts

__all__ = ["Balance", "EvenBalance", "WeightedBalance", "AdaptiveBalance", "make_balance"]


class Balance:
    """Base: the even split (``counts`` returns None, meaning "even")."""

    #: Whether :meth:`record` learns anything (the proxy skips the bookkeeping if not).
    learns = False

    def counts(self, n_rows: int) -> np.ndarray | None:
        """Rows per rank for a call of ``n_rows`` rows, or None for an even split."""
        return None

    def record(self, counts: np.ndarray, evaluations_per_row: int, seconds: np.ndarray) -> None:
        """Learn from the per-rank serial-model ``seconds`` of a call split as ``counts``."""

    @property
    def shares(self) -> np.ndarray | None:
        """The current fraction of rows each rank gets (None: even)."""
        return None

    def for_ranks(self, ranks) -> "Balance":
        """The policy for a communicator of these of the current ranks, in this order (after lost ranks)."""
        return self


EvenBalance = Balance


class WeightedBalance(Balance):
    """A fixed split in proportion to one weight per rank."""

    def __init__(self, weights, n_ranks: int):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_ranks,):
            raise ValueError(f"balance weights must have one entry per rank ({n_ranks}), got shape {weights.shape}")
        weighted_counts(0, weights)  # validates: finite, non-negative, not all zero
        self._shares = weights / weights.sum()

    def counts(self, n_rows):
        return weighted_counts(n_rows, self._shares)

    def for_ranks(self, ranks):
        weights = self._shares[list(ranks)]
        return WeightedBalance(weights, len(weights)) if weights.sum() > 0 else Balance()

    @property
    def shares(self):
        return self._shares.copy()


class AdaptiveBalance(Balance):
    """Shares that follow each rank's measured speed.

    Parameters
    ----------
    n_ranks : int
    smoothing : float
        Weight of the newest measurement in the running rate (0..1].
    tolerance : float
        Smallest change of any rank's share that makes the split move.
    min_seconds : float
        Calls whose slowest rank computed for less than this are too short
        to time reliably and are ignored.
    """

    learns = True

    def __init__(self, n_ranks: int, smoothing: float = 0.3, tolerance: float = 0.02, min_seconds: float = 1e-4):
        self._rates = np.full(n_ranks, np.nan)
        self._shares: np.ndarray | None = None
        self._smoothing = smoothing
        self._tolerance = tolerance
        self._min_seconds = min_seconds

    def counts(self, n_rows):
        return None if self._shares is None else weighted_counts(n_rows, self._shares)

    def for_ranks(self, ranks):
        ranks = list(ranks)
        kept = AdaptiveBalance(len(ranks), self._smoothing, self._tolerance, self._min_seconds)
        kept._rates = self._rates[ranks]
        if self._shares is not None:
            kept._shares = self._shares[ranks] / self._shares[ranks].sum()
        return kept

    def record(self, counts, evaluations_per_row, seconds):
        seconds = np.asarray(seconds, dtype=np.float64)
        if seconds.max(initial=0.0) < self._min_seconds or seconds.min(initial=0.0) < 0:
            return  # too short to time, or a rank failed
        timed = (counts > 0) & (seconds > 0)
        rates = np.where(timed, counts * evaluations_per_row / np.where(timed, seconds, 1.0), np.nan)
        fresh = timed & np.isnan(self._rates)
        self._rates[fresh] = rates[fresh]
        update = timed & ~fresh
        self._rates[update] += self._smoothing * (rates[update] - self._rates[update])
        if np.isnan(self._rates).any():
            return  # a rank not yet measured: keep the current split
        proposal = self._rates / self._rates.sum()
        current = self._shares if self._shares is not None else np.full(len(proposal), 1 / len(proposal))
        if np.max(np.abs(proposal - current)) > self._tolerance:
            self._shares = proposal

    @property
    def shares(self):
        return None if self._shares is None else self._shares.copy()

    @property
    def rates(self) -> np.ndarray:
        """Smoothed evaluations per second of each rank (NaN until measured)."""
        return self._rates.copy()


def make_balance(balance, n_ranks: int) -> Balance:
    """Build a policy from the proxy's ``balance`` argument.

    ``None``/``"even"``, ``"adaptive"``, or a sequence of one weight per rank.
    """
    if balance is None or (isinstance(balance, str) and balance == "even"):
        return Balance()
    if isinstance(balance, str):
        if balance == "adaptive":
            return AdaptiveBalance(n_ranks)
        raise ValueError(f"balance must be 'even', 'adaptive' or one weight per rank, got {balance!r}")
    return WeightedBalance(balance, n_ranks)
