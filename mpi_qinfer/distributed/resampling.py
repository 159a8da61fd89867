"""Resampling a sharded particle cloud: draws resolved where the weights live, then a rebalancing exchange.

The cloud's global order is rank order, then local order. Rank ``r``'s
particles cover the segment ``[start_r, start_r + total_r)`` of the global
cumulative weight, where ``total_r`` is its shard's weight sum and
``start_r`` the sum over lower ranks. The per-rank totals are allgathered
(one number per rank) and every rank forms the prefix sums itself, in the
same order: the segment boundaries are then identical, to the last bit, on
every rank, so a draw can never fall between two segments or into both. (An
``MPI_Exscan`` gives the same prefix sums, but its association order is the
library's, so rank ``r``'s upper end and rank ``r+1``'s lower end may differ
in the last bit.)

Draws (:func:`offspring_counts`):

``multinomial``
    As :class:`~mpi_qinfer.smc.updater.SMCUpdater` (inverse-CDF of independent
    uniforms). How many of the ``n`` draws land in each rank's segment is one
    multinomial draw from a stream common to all ranks; each rank then places
    its draws in its own segment from its own stream.
``systematic``
    One uniform ``U`` (common stream) and the points ``(k + U) / n`` of the
    total; each rank takes the points in its segment. Lower variance.

Rebalancing (:func:`exchange_plan`, :func:`exchange_rows`): the offspring,
in global order, are cut into the target shares (``counts``) and moved with
one ``MPI_Alltoallv`` of the parent rows; only rows that change rank travel.
"""

from __future__ import annotations

import numpy as np

from ..engine.partition import check_count, displacements

__all__ = ["DRAWS", "segments", "offspring_counts", "exchange_plan", "exchange_rows", "locate"]

#: The ways of drawing offspring.
DRAWS = ("multinomial", "systematic")


def segments(comm, local_total: float) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's weight total and segment start (collective; identical on every rank).

    Returns
    -------
    totals, starts : numpy.ndarray of float64, shape (n_ranks,)
    """
    totals = np.empty(comm.Get_size(), dtype=np.float64)
    comm.Allgather(np.array([local_total], dtype=np.float64), totals)
    starts = np.zeros_like(totals)
    np.cumsum(totals[:-1], out=starts[1:])
    return totals, starts


def _per_rank_draws(method: str, n: int, totals: np.ndarray, starts: np.ndarray, common) -> tuple:
    """How many draws land in each rank's segment, and (systematic) the common offset ``U``."""
    grand = float(starts[-1] + totals[-1])
    if method == "multinomial":
        return common.multinomial(n, totals / grand), None
    u = float(common.random())
    ends = np.append(starts[1:], grand)
    # Point k lies at (k + u) * grand / n; the first point at or after a boundary b is ceil(b n / grand - u).
    first = np.clip(np.ceil(np.append(0.0, ends[:-1]) * n / grand - u), 0, n).astype(np.int64)
    first[0] = 0
    return np.diff(np.append(first, n)), (u, first)


def offspring_counts(weights: np.ndarray, method: str, n: int, totals: np.ndarray, starts: np.ndarray,
                     rank: int, common, own) -> tuple[np.ndarray, np.ndarray]:
    """The number of offspring of each local particle, and of every rank (identical everywhere).

    A cloud whose weights are all zero is resampled as if uniform.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_local,)
    method : {"multinomial", "systematic"}
    n : int
        Offspring in all.
    totals, starts : numpy.ndarray
        From :func:`segments`.
    rank : int
    common, own : numpy.random.Generator
        A stream in the same state on every rank, and this rank's own stream.

    Returns
    -------
    local : numpy.ndarray of int64, shape (n_local,)
    per_rank : numpy.ndarray of int64, shape (n_ranks,)
    """
    if not starts[-1] + totals[-1] > 0:
        raise ValueError("every particle weight is zero; there is nothing to resample from")
    per_rank, systematic = _per_rank_draws(method, n, totals, starts, common)
    mine = int(per_rank[rank])
    local = np.zeros(weights.size, dtype=np.int64)
    if mine == 0 or weights.size == 0:
        return local, per_rank
    cumsum = np.cumsum(weights)
    if systematic is None:
        # Sorted, the search walks the cumsum in order (cache-friendly); only the counts matter.
        points = np.sort(own.random(mine)) * totals[rank]
    else:
        u, first = systematic
        grand = float(starts[-1] + totals[-1])
        points = (first[rank] + np.arange(mine) + u) * (grand / n) - starts[rank]
    # Rounding can put a point a hair past the last local cumsum; it belongs to the last particle.
    index = np.minimum(cumsum.searchsorted(points, side="right"), weights.size - 1)
    local += np.bincount(index, minlength=weights.size)
    return local, per_rank


def exchange_plan(have: np.ndarray, want: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows this rank sends to and receives from each rank to turn ``have`` into ``want``.

    The rows keep their global order: rank ``r`` holds rows
    ``[sum(have[:r]), sum(have[:r+1]))`` and must end with rows
    ``[sum(want[:r]), sum(want[:r+1]))``.

    Returns
    -------
    send, receive : numpy.ndarray of int64, shape (n_ranks,)
    """
    have_lo = np.concatenate(([0], np.cumsum(have)))
    want_lo = np.concatenate(([0], np.cumsum(want)))

    def overlap(lo, hi, los, his):
        return np.clip(np.minimum(hi, his) - np.maximum(lo, los), 0, None)

    send = overlap(have_lo[rank], have_lo[rank + 1], want_lo[:-1], want_lo[1:])
    receive = overlap(want_lo[rank], want_lo[rank + 1], have_lo[:-1], have_lo[1:])
    return send.astype(np.int64), receive.astype(np.int64)


def exchange_rows(comm, rows: np.ndarray, send: np.ndarray, receive: np.ndarray) -> np.ndarray:
    """Move float64 rows between ranks with one ``Alltoallv`` (collective).

    Parameters
    ----------
    rows : numpy.ndarray, shape (sum(send), width), C-contiguous float64
    send, receive : numpy.ndarray of int64
        From :func:`exchange_plan`.

    Returns
    -------
    numpy.ndarray, shape (sum(receive), width)
    """
    from mpi4py import MPI

    width = rows.shape[1]
    out = np.empty((int(receive.sum()), width), dtype=np.float64)
    check_count(int(max(send.sum(), receive.sum())) * width, "the particle values one rank exchanges")
    scounts, rcounts = send * width, receive * width
    comm.Alltoallv([rows, scounts, displacements(scounts), MPI.DOUBLE],
                   [out, rcounts, displacements(rcounts), MPI.DOUBLE])
    return out


def locate(weights: np.ndarray, points: np.ndarray, totals: np.ndarray, starts: np.ndarray,
           sizes: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of the global cumulative-weight ``points`` fall in this rank's segment, and on which particle.

    A point at or past the grand total (rounding) belongs to the last particle
    of the last rank with weight (or, if every weight is zero, with
    particles), as :class:`~mpi_qinfer.smc.updater.SMCUpdater` clamps its draws to
    the last particle. ``sizes`` are the ranks' particle counts.

    Returns
    -------
    mask : numpy.ndarray of bool, shape (n_points,)
        The points this rank owns.
    index : numpy.ndarray of int64, shape (mask.sum(),)
        Their local particle indices.
    """
    points = np.asarray(points, dtype=np.float64)
    ends = starts + totals
    if weights.size == 0:
        return np.zeros(points.size, dtype=bool), np.zeros(0, dtype=np.int64)
    mask = (points >= starts[rank]) & (points < ends[rank])
    holders = np.flatnonzero(totals > 0) if np.any(totals > 0) else np.flatnonzero(np.asarray(sizes) > 0)
    last_nonempty = int(holders[-1])
    if rank == last_nonempty:
        mask |= points >= ends[rank]
    local = np.cumsum(weights)
    index = np.minimum(local.searchsorted(points[mask] - starts[rank], side="right"), weights.size - 1)
    return mask, index.astype(np.int64)
