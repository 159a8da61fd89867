"""Per-shard partial sums of the distributed SMC updater, and how the reduced sums become estimates.

Every estimate of :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater` is a
sum over particles, so each rank sums over its own shard, one reduction adds
the shards' sums, and the root finishes the estimate from the totals. The
functions here are plain numpy (no MPI): the ``local_*`` ones make a flat
float64 vector from one shard, the ``*_from_sums`` ones turn the reduced
vector into the answer.

Second moments are summed about a *shift* ``s`` (any point near the cloud,
the same on every rank): ``sum w (x - s)(x - s)^T`` keeps the precision of a
centred sum for a narrow posterior far from the origin, where the raw moment
``sum w x x^T`` would cancel catastrophically, yet needs only one reduction.
The result does not depend on ``s`` except through rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "moment_length",
    "local_moments",
    "moments_from_sums",
    "local_entropy",
    "outcome_blocks",
    "local_design_sums",
    "risk_from_sums",
    "information_gain_from_sums",
]


def moment_length(n_mp: int) -> int:
    """Length of a :func:`local_moments` vector: ``1 + n_mp + n_mp**2``."""
    return 1 + n_mp + n_mp * n_mp


def local_moments(weights: np.ndarray, locations: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``[sum w, sum w y, sum w y y^T]`` over one shard, with ``y = x - shift``, flattened.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_local,)
    locations : numpy.ndarray, shape (n_local, n_mp)
    shift : numpy.ndarray, shape (n_mp,)

    Returns
    -------
    numpy.ndarray, shape (1 + n_mp + n_mp**2,)
    """
    y = locations - shift
    # einsum, not matmul: no BLAS threads to wake for a few flops per particle.
    return np.concatenate(([weights.sum()], np.einsum("i,im->m", weights, y),
                           np.einsum("i,im,in->mn", weights, y, y).ravel()))


def moments_from_sums(sums: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``sum w x`` and covariance ``sum w (x - mean)(x - mean)^T`` from reduced moments.

    As in :class:`~mpi_qinfer.smc.updater.SMCUpdater`, the weights are not divided by
    their total (they sum to one after a normal update).

    Parameters
    ----------
    sums : numpy.ndarray
        The sum over ranks of :func:`local_moments`.
    shift : numpy.ndarray, shape (n_mp,)
        The shift those moments were taken about.

    Returns
    -------
    mean : numpy.ndarray, shape (n_mp,)
    covariance : numpy.ndarray, shape (n_mp, n_mp)
    """
    n_mp = shift.size
    total, wy = sums[0], sums[1 : 1 + n_mp]
    wyy = sums[1 + n_mp :].reshape(n_mp, n_mp)
    mean = wy + total * shift
    d = mean - shift
    # sum w (y - d)(y - d)^T expanded; d is the mean's offset from the shift.
    cov = wyy - np.outer(d, wy) - np.outer(wy, d) + total * np.outer(d, d)
    return mean, (cov + cov.T) / 2


def local_entropy(weights: np.ndarray) -> float:
    """``-sum w log w`` over the shard's particles of non-zero weight (qinfer's ``est_entropy``)."""
    nonzero = weights[weights > 0]
    return float(-np.sum(np.log(nonzero) * nonzero))


def _outcomes_of(model, experiment: np.ndarray) -> np.ndarray:
    """The outcome values of one experiment (a model may answer one domain or a list of them)."""
    domain = model.domain(experiment)
    if isinstance(domain, (list, tuple)):
        domain = domain[0]
    return np.asarray(domain.values)


def outcome_blocks(model, expparams: np.ndarray, block_rows: int) -> list[tuple[slice, np.ndarray]]:
    """The experiments in blocks sharing one outcome list, as qinfer's ``bayes_risk`` groups them.

    A model whose number of outcomes is constant uses the first experiment's
    domain for all (in blocks of at most ``block_rows`` experiments, to bound
    memory); otherwise each experiment is a block of its own.

    Returns
    -------
    list of (slice, numpy.ndarray)
        The experiments of each block and their outcomes.
    """
    n_eps = expparams.size
    if n_eps > 1 and not model.is_n_outcomes_constant:
        return [(slice(e, e + 1), _outcomes_of(model, expparams[e : e + 1])) for e in range(n_eps)]
    outcomes = _outcomes_of(model, expparams[0:1])
    step = max(int(block_rows), 1)
    return [(slice(start, min(start + step, n_eps)), outcomes) for start in range(0, n_eps, step)]


def _xlogx(values: np.ndarray) -> np.ndarray:
    """``v log v`` with the limit 0 at ``v = 0``."""
    out = np.zeros_like(values)
    positive = values > 0
    out[positive] = values[positive] * np.log(values[positive])
    return out


def local_design_sums(model, weights, locations, shift, expparams, blocks) -> np.ndarray:
    """The shard's sums behind ``bayes_risk`` and ``expected_information_gain``, flattened.

    For every block, outcome ``o`` and experiment ``e``, with ``L`` the
    likelihood (the last outcome's taken as one minus the others', as in
    qinfer) and ``y = x - shift``: ``N = sum w L``, ``M1 = sum w L y``
    (``n_mp`` numbers), ``M2 = sum w L sum_m Q_m y_m**2`` and
    ``S = sum w xlogx(L)``, in that order per ``(o, e)``.

    Returns
    -------
    numpy.ndarray, shape (sum over blocks of n_outcomes * n_block * (n_mp + 3),)
    """
    n_mp = locations.shape[1]
    q = np.asarray(getattr(model, "Q", np.ones(n_mp)), dtype=np.float64)
    y = locations - shift
    qy2 = (q * y * y).sum(axis=1)
    parts = []
    for rows, outcomes in blocks:
        eps = expparams[rows]
        n_block = eps.size
        if outcomes.size > 1:
            likelihood = model.likelihood(outcomes[:-1], locations, eps).transpose([0, 2, 1])
        else:
            likelihood = np.zeros((0, n_block, locations.shape[0]))
        last = 1 - likelihood.sum(axis=0)
        likelihood = np.concatenate([likelihood, last[np.newaxis]], axis=0)  # (n_out, n_block, n_local)
        weighted = likelihood * weights
        block = np.empty((outcomes.size, n_block, n_mp + 3))
        block[..., 0] = weighted.sum(axis=2)
        block[..., 1 : 1 + n_mp] = np.einsum("oen,nm->oem", weighted, y)
        block[..., 1 + n_mp] = np.einsum("oen,n->oe", weighted, qy2)
        block[..., 2 + n_mp] = np.einsum("oen,n->oe", _xlogx(likelihood), weights)
        parts.append(block.ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def _per_block(sums, blocks, n_mp, q, finish) -> np.ndarray:
    answers = []
    offset = 0
    for rows, outcomes in blocks:
        n_block = rows.stop - rows.start
        size = outcomes.size * n_block * (n_mp + 3)
        block = sums[offset : offset + size].reshape(outcomes.size, n_block, n_mp + 3)
        offset += size
        answers.append(finish(block, n_mp, q))
    return np.concatenate(answers) if answers else np.zeros(0)


def _risk(block, n_mp, q):
    norm, m1, m2 = block[..., 0], block[..., 1 : 1 + n_mp], block[..., 1 + n_mp]
    safe = np.where(norm > 0, norm, 1.0)
    # N * (posterior variance) = M2 - sum_m Q_m M1_m**2 / N; an impossible outcome adds nothing.
    terms = np.where(norm > 0, m2 - (q * m1 * m1).sum(axis=-1) / safe, 0.0)
    return terms.sum(axis=0)


def _gain(block, n_mp, q):
    norm, s = block[..., 0], block[..., 2 + n_mp]
    safe = np.where(norm > 0, norm, 1.0)
    # N * KL(posterior || prior) = sum w L log L - N log N.
    return np.where(norm > 0, s - norm * np.log(safe), 0.0).sum(axis=0)


def risk_from_sums(model, sums: np.ndarray, blocks, n_mp: int) -> np.ndarray:
    """qinfer's Bayes risk per experiment from the reduced :func:`local_design_sums`.

    Returns
    -------
    numpy.ndarray, shape (n_experiments,)
    """
    q = np.asarray(getattr(model, "Q", np.ones(n_mp)), dtype=np.float64)
    return _per_block(sums, blocks, n_mp, q, _risk)


def information_gain_from_sums(model, sums: np.ndarray, blocks, n_mp: int) -> np.ndarray:
    """qinfer's expected information gain per experiment from the reduced :func:`local_design_sums`.

    Returns
    -------
    numpy.ndarray, shape (n_experiments,)
    """
    return _per_block(sums, blocks, n_mp, None, _gain)
