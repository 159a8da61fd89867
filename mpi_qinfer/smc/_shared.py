"""What the serial and the distributed updater do and say alike, in one place for both.

Canonical particles, a prior's draws, one outcome's check, the zero-weights
error, a reset's arguments and the cloud's moments. Used by
:mod:`mpi_qinfer.smc.updater`, :mod:`mpi_qinfer.smc.resampler` and
:mod:`mpi_qinfer.distributed.updater`, so that a prior, an outcome or a dead
cloud gets the same verdict and the same words from every updater.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from ._warnings import PriorDimensionWarning


def _canonicalize(model, locations: np.ndarray) -> np.ndarray:
    canonicalize = getattr(model, "canonicalize", None)
    return locations if canonicalize is None else canonicalize(locations)


def _prior_dimension_message(prior, model, width: int) -> str:
    n_mp = int(model.n_modelparams)
    return (
        f"prior {prior!r} draws {width} parameter(s) per particle, but {type(model).__name__} has "
        f"n_modelparams = {n_mp}: give a prior of dimension {n_mp} (its n_rvs), for example a "
        f"ProductDistribution of one distribution per parameter, or fix the model's n_modelparams"
    )


def _prior_sample(prior, model, n: int, rng, canonical: bool = True, *, other_width: str = "error") -> np.ndarray:
    """``n`` canonical particles from ``prior``, shape ``(n, n_modelparams)``.

    Shared by :class:`~mpi_qinfer.smc.updater.SMCUpdater` and
    :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater`, so that a prior
    gets the same verdict from both. ``prior.sample`` is given ``rng`` when it
    takes an ``rng`` keyword. A prior must return one row per particle; any
    other shape is refused rather than reshaped, since a ``(n_modelparams, n)``
    array reshaped to ``(n, n_modelparams)`` would mix the parameters of
    different particles.

    A prior with one row per particle but another number of columns than
    ``n_modelparams`` raises a ValueError that says what to do, or, with
    ``other_width="warn"`` (the serial updater: qinfer accepts such a prior,
    and its own tests give a two-parameter mock model a one-dimensional
    prior), gives a :class:`~mpi_qinfer.smc.updater.PriorDimensionWarning` and is used as it is.

    ``canonical=False`` (an updater built with ``canonicalize=False``) leaves the
    draws as the prior made them.
    """
    if "rng" in inspect.signature(prior.sample).parameters:
        drawn = prior.sample(n=n, rng=rng)
    else:  # a foreign (e.g. qinfer) prior
        drawn = prior.sample(n=n)
    drawn = np.asarray(drawn, dtype=np.float64)
    want = (int(n), int(model.n_modelparams))
    if drawn.ndim == 2 and drawn.shape[0] == want[0] and drawn.shape[1] != want[1]:
        if other_width != "warn":
            raise ValueError(_prior_dimension_message(prior, model, drawn.shape[1]))
        warnings.warn(_prior_dimension_message(prior, model, drawn.shape[1]), PriorDimensionWarning, stacklevel=4)
    elif drawn.shape != want:
        raise ValueError(
            f"prior {prior!r}: sample(n) must return one row per particle, shape (n, n_modelparams) = {want}, "
            f"but it returned shape {drawn.shape}"
        )
    return _canonicalize(model, drawn) if canonical else drawn


#: Kinds of outcome an updater accepts: booleans, numbers and records (the model judges their values).
_OUTCOME_KINDS = frozenset("biufcV")


def _one_outcome(outcome) -> np.ndarray:
    """The outcome of one experiment as the one-element array the likelihood is given.

    Shared by :class:`~mpi_qinfer.smc.updater.SMCUpdater` and
    :class:`~mpi_qinfer.distributed.updater.DistributedSMCUpdater`. A scalar (a
    Python or NumPy number, a record, a 0-d array) or an array of one element
    is accepted whatever its dtype among numbers and records, and its value is
    left to the model; several values, or objects and strings, are refused.

    Raises
    ------
    TypeError
        When ``outcome`` is not a number or a record.
    ValueError
        When ``outcome`` holds more than one value.
    """
    try:
        array = np.asarray(outcome)
    except (TypeError, ValueError) as error:  # ragged nesting, say
        raise ValueError(f"outcome must be the outcome of one experiment, got {outcome!r}") from error
    if array.dtype.hasobject or array.dtype.kind not in _OUTCOME_KINDS:
        raise TypeError(f"outcome must be a number or a record (the outcome of one experiment), got {outcome!r}")
    if array.size != 1 or array.ndim > 1:
        raise ValueError(
            f"outcome must be the outcome of one experiment (a scalar or an array of one element), got "
            f"{array.size} values of shape {array.shape}: {outcome!r}; give several outcomes to batch_update"
        )
    return array.reshape(1)


def _zero_weights_error(outcome, total: float) -> RuntimeError:
    """The error of ``zero_weight_policy="error"``, shared by both updaters; ``total`` is the weights' sum."""
    if np.isnan(total):
        what = ("The particle weights are not a number (NaN) after outcome {!r}: the likelihood is NaN or "
                "infinite for some particle.")
    else:
        what = ("All particle weights are zero (or NaN) after outcome {!r}: the datum is impossible under the "
                "current posterior.")
    return RuntimeError(what.format(outcome) + " The updater is unchanged; choose zero_weight_policy= "
                        "'skip', 'reset' or 'warn' to carry on anyway.")


def _reset_count(n_particles, only_params, reset_weights: bool, current: int) -> int:
    """The number of particles a ``reset`` leaves, once its arguments are checked (the same words for both)."""
    if n_particles is not None and only_params is not None:
        raise ValueError("give n_particles or only_params, not both")
    n = current if n_particles is None else int(n_particles)
    if n < 1:
        raise ValueError(f"n_particles must be positive, got {n_particles!r}")
    if not reset_weights and n != current:
        raise ValueError("reset_weights=False needs the particle count unchanged")
    return n


def _weighted_mean(weights: np.ndarray, locations: np.ndarray) -> np.ndarray:
    return weights @ locations


def _weighted_covariance(weights: np.ndarray, locations: np.ndarray) -> np.ndarray:
    centred = locations - _weighted_mean(weights, locations)
    cov = np.einsum("i,im,in->mn", weights, centred, centred)
    return (cov + cov.T) / 2


def _correlation(cov: np.ndarray, corr: bool) -> np.ndarray:
    """``cov``, or with ``corr`` the correlation matrix it gives (shared by both updaters)."""
    if not corr:
        return cov
    std = np.sqrt(np.diag(cov))
    return cov / np.outer(std, std)
