"""Splitting rows across ranks: counts and displacements for Scatterv/Gatherv."""

from __future__ import annotations

import numpy as np

__all__ = ["even_counts", "weighted_counts", "displacements", "MAX_COUNT", "check_count"]

#: The largest element count a classic (non large-count) MPI call accepts.
MAX_COUNT = 2**31 - 1


def even_counts(n_rows: int, n_parts: int) -> np.ndarray:
    """Split ``n_rows`` into ``n_parts`` counts that differ by at most one.

    The first ``n_rows % n_parts`` parts get the extra row, so the root (rank 0
    in the usual layout) is never the one left idle.

    Examples
    --------
    >>> even_counts(7, 3).tolist()
    [3, 2, 2]
    """
    if n_parts < 1:
        raise ValueError(f"n_parts must be >= 1, got {n_parts}")
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    base, extra = divmod(n_rows, n_parts)
    counts = np.full(n_parts, base, dtype=np.int64)
    counts[:extra] += 1
    return counts


def weighted_counts(n_rows: int, weights) -> np.ndarray:
    """Split ``n_rows`` in proportion to ``weights`` (largest-remainder rounding).

    Parameters
    ----------
    n_rows : int
        Rows to split.
    weights : array_like of float
        One non-negative weight per part, not all zero: the relative speed of
        each rank.

    Returns
    -------
    numpy.ndarray of int64
        Counts that sum to ``n_rows``; ties in the remainders go to lower parts.

    Examples
    --------
    >>> weighted_counts(10, [1, 3]).tolist()
    [3, 7]
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"weights must be a non-empty 1-d sequence, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    ideal = n_rows * (w / w.sum())
    counts = np.floor(ideal).astype(np.int64)
    short = n_rows - int(counts.sum())
    if short:
        # Stable sort: equal remainders favour the lower part, deterministic everywhere.
        order = np.argsort(-(ideal - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def displacements(counts: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive blocks of the given sizes."""
    displs = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=displs[1:])
    return displs


def check_count(count: int, what: str) -> int:
    """Return ``count`` if one MPI call can carry it, else raise a clear error.

    mpi_qinfer counts in whole rows (a derived datatype per row), so only a
    share of more than ``MAX_COUNT`` rows, or a single row longer than
    ``MAX_COUNT`` bytes, can overflow.

    Raises
    ------
    OverflowError
        Naming ``what`` and the limit.
    """
    if count > MAX_COUNT:
        raise OverflowError(
            f"{what} is {count}, more than one MPI call can carry ({MAX_COUNT}); "
            "split the call into smaller batches"
        )
    return int(count)
