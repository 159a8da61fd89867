"""qinfer's credible region on a sharded cloud: which particles are in it, found without gathering the weights.

qinfer sorts the particles by decreasing weight and keeps those whose
cumulative weight is at most ``level``, and one more. That set is the
particles heavier than some weight ``v`` plus enough of those weighing exactly
``v``. Here ``v`` is found by bisection over the float64 bit patterns (for
non-negative floats their order is the integers' order), each step one
one-number sum over the ranks of "the mass of the weights at least ``t``";
about 64 steps, each O(log n) on every rank after one local sort. Ties at
``v`` are taken in global order (lower ranks first).
"""

from __future__ import annotations

import numpy as np

__all__ = ["credible_mask"]


def credible_mask(comm, weights: np.ndarray, level: float, allsum) -> np.ndarray:
    """The local particles inside the credible region of ``level`` (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    weights : numpy.ndarray, shape (n_local,)
        This rank's weights (non-negative).
    level : float
        In (0, 1].
    allsum : callable
        ``allsum(terms)``: the sum over ranks of a float vector, with the same
        bits on every rank (the bisection branches on it).

    Returns
    -------
    numpy.ndarray of bool, shape (n_local,)
    """
    from mpi4py import MPI

    ascending = np.sort(weights)
    # suffix[i] = sum(ascending[i:]): the mass of the weights >= ascending[i].
    suffix = np.append(np.cumsum(ascending[::-1])[::-1], 0.0)

    def mass_at_least(threshold) -> float:
        return allsum([suffix[ascending.searchsorted(threshold, side="left")]])[0]

    if not mass_at_least(0.0) > level:
        return np.ones(weights.size, dtype=bool)  # the whole cloud weighs no more than level
    # Invariant: mass(>= lo) > level >= mass(>= hi); lo = 0.0 and hi just above the heaviest weight start it.
    heaviest = comm.allreduce(float(ascending[-1]) if weights.size else 0.0, op=MPI.MAX)
    lo, hi = 0, int(np.float64(heaviest).view(np.int64)) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mass_at_least(np.int64(mid).view(np.float64)) > level:
            lo = mid
        else:
            hi = mid
    v = float(np.int64(lo).view(np.float64))  # a weight: mass(>= t) only changes at weights
    inside = weights > v
    mass_above = allsum([weights[inside].sum()])[0]
    ties = np.flatnonzero(weights == v)
    tie_counts = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([ties.size], dtype=np.int64), tie_counts)
    # Cumulative weight <= level within the ties: floor((level - mass_above) / v) of them, then one more.
    wanted = int(np.floor((level - mass_above) / v)) + 1
    take = int(np.clip(wanted - tie_counts[: comm.Get_rank()].sum(), 0, ties.size))
    inside[ties[:take]] = True
    return inside
