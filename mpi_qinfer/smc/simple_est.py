"""One-call estimators for common experiments (qinfer's ``simple_est``).

Each function takes data as a table, builds the model and the prior, runs an
:class:`~mpi_qinfer.smc.updater.SMCUpdater` over every row (checking for
resampling after each) and returns the posterior mean and covariance.

The data may be

* a 2-d array whose columns are, in order, the ones the function lists;
* a 1-d record array with fields of those names;
* a file name or an open file of comma-separated values in the column order;
* a pandas ``DataFrame`` with columns of those names (anything with ``to_records``).
"""

from __future__ import annotations

import numpy as np

from ..models.builtin import BinomialModel, SimplePrecessionModel
from ..models.distributions import UniformDistribution
from ..models.rb import RandomizedBenchmarkingModel
from .updater import SMCUpdater

__all__ = ["simple_est_prec", "simple_est_rb", "data_to_params", "load_data_or_txt"]


def data_to_params(data, expparams_dtype, col_outcomes=(0, "counts"), cols_expparams=None):
    """Split a data table into the outcomes and an array of experiments.

    A column is named by a pair ``(index, field name)``: the index picks it
    from a 2-d array, the name from a record array. A 2-d array has one
    dtype, so its columns are cast to the experiment fields' dtypes.

    Parameters
    ----------
    data : numpy.ndarray
        A 2-d array or a 1-d record array.
    expparams_dtype : dtype or list
        The model's experiment dtype.
    col_outcomes : (int, str), optional
        The column of the outcomes (default ``(0, 'counts')``).
    cols_expparams : dict or (int, str)
        For a record ``expparams_dtype``, a dict from each field to its
        column; for a scalar one, the one column.

    Returns
    -------
    outcomes : numpy.ndarray of int
    expparams : numpy.ndarray of ``expparams_dtype``
    """
    data = np.asarray(data)
    by_name = data.dtype.names is not None

    def column(spec):
        return data[spec[1]] if by_name else data[..., spec[0]]

    outcomes = column(col_outcomes).astype(int)
    expparams = np.empty(outcomes.shape, dtype=expparams_dtype)
    if np.dtype(expparams_dtype).names is None:
        expparams[:] = column(cols_expparams)
    else:
        for field, spec in cols_expparams.items():
            expparams[field] = column(spec)
    return outcomes, expparams


def load_data_or_txt(data, dtype):
    """The data as an array: an array as it is, a table's records, or a CSV file's rows.

    Parameters
    ----------
    data : numpy.ndarray, DataFrame, str or file
    dtype : dtype or list
        The record dtype the rows of a CSV file are read with.

    Raises
    ------
    TypeError
        Anything else.
    """
    if isinstance(data, np.ndarray):
        return data
    if callable(getattr(data, "to_records", None)):  # a pandas DataFrame, without importing pandas
        return data.to_records(index=False)
    if isinstance(data, str) or hasattr(data, "read"):
        return np.loadtxt(data, dtype=dtype, delimiter=",")
    raise TypeError(f"expected an array, a DataFrame, a file name or a file of data, got {type(data).__name__}")


class _ValidPrior:
    """Draws of ``prior`` kept only where ``model`` says they are valid models (rejection sampling)."""

    def __init__(self, prior, model, max_tries: int = 1000):
        self._prior, self._model, self._max_tries = prior, model, max_tries

    @property
    def n_rvs(self) -> int:
        return self._prior.n_rvs

    def sample(self, n: int = 1, rng=None) -> np.ndarray:
        rng = np.random.default_rng(rng)
        kept = np.empty((0, self.n_rvs))
        for _ in range(self._max_tries):
            drawn = self._prior.sample(n=n, rng=rng)
            kept = np.concatenate([kept, drawn[self._model.are_models_valid(drawn)]])
            if kept.shape[0] >= n:
                return kept[:n]
        raise RuntimeError(f"fewer than {n} valid models in {self._max_tries} draws of {n} from the prior")


def _estimate(model, n_particles, prior, outcomes, expparams, return_all, rng):
    updater = SMCUpdater(model, n_particles, prior, rng=rng)
    updater.batch_update(outcomes, expparams, resample_interval=1)
    mean, cov = updater.est_mean(), updater.est_covariance_mtx()
    if model.n_modelparams == 1:
        mean, cov = mean[0], cov[0, 0]
    if return_all:
        return mean, cov, {"updater": updater}
    return mean, cov


def simple_est_prec(data, freq_min=0.0, freq_max=1.0, n_particles=6000, return_all=False, *, rng=None):
    r"""Estimate a precession frequency from counts of a ``sin^2(omega t / 2)`` signal.

    The model is ``BinomialModel(SimplePrecessionModel(freq_min))`` with a
    uniform prior on ``[0, freq_max]``.

    Parameters
    ----------
    data
        Columns ``counts`` (ones observed), ``t`` (evolution time) and
        ``n_shots`` (measurements at that time); see the module docs for the
        forms it may take.
    freq_min, freq_max : float, optional
        The range of plausible frequencies (default 0 to 1).
    n_particles : int, optional
        Particles of the SMC updater (default 6000).
    return_all : bool, optional
        Also return ``{'updater': the SMCUpdater}``.
    rng : int or numpy.random.Generator, optional
        Seeds the updater (an addition to qinfer's arguments).

    Returns
    -------
    mean : float
        Posterior mean of the frequency.
    var : float
        Posterior variance.
    extra : dict
        Only with ``return_all``.
    """
    model = BinomialModel(SimplePrecessionModel(freq_min))
    prior = UniformDistribution([0, freq_max])
    data = load_data_or_txt(data, [("counts", "uint"), ("t", float), ("n_shots", "uint")])
    outcomes, expparams = data_to_params(data, model.expparams_dtype,
                                         cols_expparams={"x": (1, "t"), "n_meas": (2, "n_shots")})
    return _estimate(model, n_particles, prior, outcomes, expparams, return_all, rng)


def simple_est_rb(data, interleaved=False, p_min=0.0, p_max=1.0, n_particles=8000, return_all=False, *, rng=None):
    r"""Estimate the randomized benchmarking parameters ``(p, A, B)`` from survival counts.

    The model is ``BinomialModel(RandomizedBenchmarkingModel(interleaved))``
    with a uniform prior (``p`` on ``[p_min, p_max]``, ``A`` and ``B`` on
    ``[0, 1]``) restricted to valid models.

    Parameters
    ----------
    data
        Columns ``counts`` (sequences that survived), ``m`` (sequence length),
        ``n_shots`` (sequences measured) and, when interleaved, ``reference``
        (1 for a reference row, 0 for an interleaved one).
    interleaved : bool, optional
        Interleaved benchmarking: the model vector is ``(p_tilde, p, A, B)``.
    p_min, p_max : float, optional
        The range of plausible depolarizing strengths.
    n_particles : int, optional
        Particles of the SMC updater (default 8000).
    return_all : bool, optional
        Also return ``{'updater': the SMCUpdater}``.
    rng : int or numpy.random.Generator, optional
        Seeds the updater and the prior (an addition to qinfer's arguments).

    Returns
    -------
    mean : numpy.ndarray
        Posterior mean of the model vector.
    cov : numpy.ndarray
        Posterior covariance.
    extra : dict
        Only with ``return_all``.
    """
    model = BinomialModel(RandomizedBenchmarkingModel(interleaved=interleaved))
    ranges = [[p_min, p_max]] * (2 if interleaved else 1) + [[0, 1], [0, 1]]
    prior = _ValidPrior(UniformDistribution(ranges), model)
    columns = [("counts", "uint"), ("m", "uint"), ("n_shots", "uint")]
    columns += [("reference", "uint")] if interleaved else []
    data = load_data_or_txt(data, columns)
    cols_expparams = {"m": (1, "m"), "n_meas": (2, "n_shots")}
    if interleaved:
        cols_expparams["reference"] = (3, "reference")
    outcomes, expparams = data_to_params(data, model.expparams_dtype, cols_expparams=cols_expparams)
    return _estimate(model, n_particles, prior, outcomes, expparams, return_all, rng)
