"""qinfer's utility functions (``qinfer.utils``): multinomial draws, simplex maps, ellipsoids and small helpers.

The same names, arguments and results as qinfer's, with NumPy only. The
functions that draw random numbers take an ``rng`` keyword: a
:class:`numpy.random.Generator`, a legacy :class:`numpy.random.RandomState`
(with it the draws are those of qinfer under the same seed) or a seed; None
uses a fresh ``numpy.random.default_rng()``. No MPI here.
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from ._special import gammaln

__all__ = [
    "random_source", "binomial_pdf", "multinomial_pdf", "sample_multinomial", "outer_product",
    "particle_meanfn", "particle_covariance_mtx", "ellipsoid_volume", "mvee", "in_ellipsoid", "uniquify",
    "assert_sigfigs_equal", "format_uncertainty", "compactspace", "to_simplex", "from_simplex", "pretty_time",
    "safe_shape", "join_struct_arrays", "separate_struct_array", "sqrtm_psd", "decorate_init", "binom_est_p",
    "binom_est_error", "get_qutip_module", "check_qutip_version",
]


def random_source(rng=None):
    """The source of random numbers a sampler draws from.

    Parameters
    ----------
    rng : numpy.random.Generator, numpy.random.RandomState, int, SeedSequence or None
        A generator or a legacy ``RandomState`` is used as given (the
        methods the package calls exist on both); anything else seeds
        ``numpy.random.default_rng(rng)``, so None gives fresh entropy.

    Returns
    -------
    numpy.random.Generator or numpy.random.RandomState
    """
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    return np.random.default_rng(rng)


def random_integers(rng, high: int, size):
    """Integers in ``[0, high)`` from either kind of source (``integers`` or ``randint``)."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(high, size=size)
    return rng.integers(high, size=size)


# ------------------------------------------------------------------ binomial and multinomial
def _xlogy(x, y):
    """``x log y`` with ``0 log 0 = 0``."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    out = np.zeros(x.shape)
    mask = x != 0
    with np.errstate(divide="ignore"):
        out[mask] = x[mask] * np.log(y[mask])
    return out


def binomial_pdf(N, n, p):
    r"""The probability of ``n`` successes in ``N`` trials of bias ``p``, :math:`\binom{N}{n} p^n (1-p)^{N-n}`.

    Broadcasts over its arguments; zero where ``n`` is not an integer in
    ``[0, N]`` (as ``scipy.stats.binom(N, p).pmf(n)``).

    Parameters
    ----------
    N : int or array_like of int
    n : int or array_like
    p : float or array_like of float

    Returns
    -------
    numpy.float64 or numpy.ndarray
    """
    N, n, p = (np.asarray(a, dtype=np.float64) for a in (N, n, p))
    log_choose = gammaln(N + 1) - gammaln(n + 1) - gammaln(N - n + 1)
    with np.errstate(invalid="ignore"):
        log_pmf = log_choose + _xlogy(n, p) + _xlogy(N - n, 1 - p)
        pmf = np.exp(log_pmf)
    possible = (n >= 0) & (n <= N) & (n == np.floor(n))
    result = np.where(possible, pmf, 0.0)
    return result[()] if result.ndim == 0 else result


def multinomial_pdf(n, p):
    r"""The multinomial probability :math:`\frac{N!}{n_1!\cdots n_k!} p_1^{n_1}\cdots p_k^{n_k}`, vectorised.

    Parameters
    ----------
    n : numpy.ndarray of int, shape (sides, ...)
        Counts of each side; their sum over axis 0 is the number of rolls.
    p : numpy.ndarray, shape (sides, ...) or (sides - 1, ...)
        The probability of each side, or of all but the last (which then
        makes them sum to one); the other axes as those of ``n`` (or
        broadcastable to them).

    Returns
    -------
    numpy.ndarray, shape ``n.shape[1:]``
    """
    n = np.asarray(n)
    p = np.asarray(p, dtype=np.float64)
    if p.shape[0] == n.shape[0] - 1:
        full = np.empty(np.broadcast_shapes(n.shape, (n.shape[0],) + p.shape[1:]))
        full[:-1] = p
        full[-1] = 1 - np.sum(p, axis=0)
        p = full
    log_rolls = gammaln(np.sum(n, axis=0) + 1)
    log_counts = np.sum(gammaln(n + 1), axis=0)
    log_powers = np.sum(_xlogy(n, p), axis=0)
    probability = np.exp(log_rolls - log_counts + log_powers)
    # A side of probability zero that was seen at least once makes the whole outcome impossible.
    impossible = np.any((n != 0) & (p == 0), axis=0)
    return np.where(impossible, 0.0, probability)


def sample_multinomial(N, p, size=None, rng=None):
    r"""``N`` rolls of each of several dice with the same number of sides.

    Parameters
    ----------
    N : int
        Rolls per draw.
    p : numpy.ndarray, shape (sides, ...)
        The probabilities of the sides along axis 0 (summing to one there);
        each index of the other axes is one die.
    size : int, tuple of int or None, optional
        Draws per die; None is one draw, without an axis of its own.
    rng : Generator, RandomState, int or None, optional
        See :func:`random_source`. The dice are rolled in C order of their
        indices, each ``prod(size)`` times, as qinfer does with NumPy's
        global state.

    Returns
    -------
    numpy.ndarray of int, shape ``p.shape + size`` (``p.shape`` when ``size`` is None)
        ``result[k, j..., i...]``: how often side ``k`` came up in draw
        ``i`` of die ``j``.
    """
    rng = random_source(rng)
    p = np.asarray(p)
    shape = () if size is None else tuple(np.atleast_1d(np.asarray(size, dtype=np.int64)).tolist())
    n_draws = int(np.prod(shape)) if shape else 1
    samples = np.empty((n_draws,) + p.shape, dtype=np.int64)
    for die in np.ndindex(*p.shape[1:]):
        where = (slice(None),) + die
        samples[(slice(None),) + where] = rng.multinomial(N, p[where], size=n_draws)
    samples = samples.reshape(shape + p.shape) if shape else samples[0]
    # Draws last: (size..., sides, dice...) -> (sides, dice..., size...).
    return np.moveaxis(samples, tuple(range(len(shape))), tuple(range(p.ndim, p.ndim + len(shape))))


# ------------------------------------------------------------------ moments of particles
def outer_product(vec):
    r"""The outer product :math:`v v^T` of a vector (or ``vec @ vec.T`` of a matrix)."""
    vec = np.asarray(vec)
    return np.outer(vec, vec) if vec.ndim == 1 else vec @ vec.T


def particle_meanfn(weights, locations, fn=None):
    """The weighted mean of ``fn(locations)`` (of the locations themselves when ``fn`` is None).

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_particles,)
    locations : numpy.ndarray, shape (n_particles, n_modelparams)
    fn : callable or None, optional
        Vectorised over particles: ``fn(locations)`` has shape ``(n_particles, k)``.

    Returns
    -------
    numpy.ndarray, shape (k,)
    """
    values = np.asarray(locations if fn is None else fn(locations))
    return np.asarray(weights) @ values


def particle_covariance_mtx(weights, locations):
    """The weighted covariance of particles, ``sum_i w_i (x_i - mu)(x_i - mu)^T``.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_particles,)
    locations : numpy.ndarray, shape (n_particles, n_modelparams)

    Returns
    -------
    numpy.ndarray, shape (n_modelparams, n_modelparams)
        Symmetric; computed about the mean, so it is positive semidefinite
        up to rounding.
    """
    weights = np.asarray(weights, dtype=np.float64)
    locations = np.asarray(locations, dtype=np.float64)
    centred = locations - weights @ locations
    cov = np.einsum("i,im,in->mn", weights, centred, centred)
    return (cov + cov.T) / 2


# ------------------------------------------------------------------ ellipsoids
def ellipsoid_volume(A=None, invA=None):
    r"""The volume of the ellipsoid :math:`\{x : x^T A x \le 1\}` (:func:`mvee`'s form), from ``A`` or its inverse.

    Raises
    ------
    ValueError
        When neither is given.
    """
    if A is None and invA is None:
        raise ValueError("ellipsoid_volume needs A or invA")
    invA = np.linalg.inv(A) if invA is None else np.asarray(invA, dtype=np.float64)
    n = invA.shape[0]
    unit_ball = math.pi ** (n / 2) / math.gamma(1 + n / 2)
    return unit_ball * math.sqrt(np.linalg.det(invA))


def mvee(points, tol=0.001):
    r"""The minimum-volume enclosing ellipsoid of points, by Khachiyan's algorithm.

    Iterates the weights ``u`` of the points (starting uniform): each step
    moves weight to the point that lies farthest out of the current
    ellipsoid, until the weights change by less than ``tol`` (Euclidean
    norm).

    Parameters
    ----------
    points : numpy.ndarray, shape (n_points, dim)
        At least ``dim + 1`` points, not all in one hyperplane.
    tol : float, optional
        Stopping tolerance (default 0.001).

    Returns
    -------
    A : numpy.ndarray, shape (dim, dim)
        The ellipsoid is :math:`\{x : (x - c)^T A (x - c) \le 1\}`.
    c : numpy.ndarray, shape (dim,)
        Its centre.
    """
    points = np.asarray(points, dtype=np.float64)
    n, d = points.shape
    lifted = np.vstack([points.T, np.ones(n)])  # (d + 1, n): the points on the plane z = 1
    u = np.full(n, 1.0 / n)
    error = 1.0
    while error > tol:
        scatter = (lifted * u) @ lifted.T
        spread = np.einsum("in,ij,jn->n", lifted, np.linalg.inv(scatter), lifted)
        far = int(np.argmax(spread))
        step = (spread[far] - d - 1) / ((d + 1) * (spread[far] - 1))
        new_u = (1 - step) * u
        new_u[far] += step
        error = float(np.linalg.norm(new_u - u))
        u = new_u
    centre = points.T @ u
    A = np.linalg.inv((points.T * u) @ points - np.outer(centre, centre)) / d
    return A, centre


def in_ellipsoid(x, A, c):
    r"""Which points lie in the closed ellipsoid :math:`\{x : (x - c)^T A^{-1} (x - c) \le 1\}`.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_points, dim) or (dim,)
    A : numpy.ndarray, shape (dim, dim)
        Positive definite.
    c : numpy.ndarray, shape (dim,)

    Returns
    -------
    numpy.ndarray of bool, shape (n_points,); a ``numpy.bool_`` for one point
    """
    x = np.asarray(x)
    inverse = np.linalg.inv(A)
    offset = np.asarray(c) - x
    if offset.ndim == 1:
        return offset @ inverse @ offset <= 1
    return np.einsum("ij,jl,il->i", offset, inverse, offset) <= 1


# ------------------------------------------------------------------ small helpers
def uniquify(seq) -> list:
    """The distinct elements of ``seq``, in order of first appearance."""
    seen = set()
    return [item for item in seq if not (item in seen or seen.add(item))]


def assert_sigfigs_equal(x, y, sigfigs=3):
    """Assert that ``x`` and ``y`` agree to ``sigfigs`` significant figures (on the scale of ``x``).

    Raises
    ------
    AssertionError
        Where they do not.
    """
    from numpy.testing import assert_almost_equal

    x = np.asarray(x, dtype=np.float64)
    scale = 10.0 ** -np.floor(np.log10(x))
    assert_almost_equal(x * scale, np.asarray(y) * scale, sigfigs)


def format_uncertainty(value, uncertianty, scinotn_break=4):
    r"""``value`` and its uncertainty as LaTeX (``"1.23 \pm 0.04"``, scientific notation when large or small).

    Parameters
    ----------
    value, uncertianty : float
        (qinfer's spelling of the argument.) An uncertainty of zero prints
        ``value`` alone.
    scinotn_break : int, optional
        Powers of ten beyond which scientific notation is used.
    """
    if uncertianty == 0:
        return f"{value:f}"
    mag_unc = int(np.log10(np.abs(uncertianty)))
    mag_val = int(np.log10(np.abs(value))) if value != 0 else 0
    n_digits = max(mag_val - mag_unc, 0)

    def scaled(power):
        scale = 10**power
        return rf"({value / scale:0.{n_digits}f} \pm {uncertianty / scale:0.{n_digits}f}) \times 10^{power}"

    if abs(mag_val) < abs(mag_unc) and abs(mag_unc) > scinotn_break:
        return scaled(mag_unc)
    if abs(mag_val) <= scinotn_break:
        return rf"{value:0.{n_digits}f} \pm {uncertianty:0.{n_digits}f}"
    return scaled(mag_val)


def compactspace(scale, n):
    r"""``n`` points on the real line, evenly spaced in the logistic coordinate of the given scale.

    The points are the quantiles ``1/(n+1), ..., n/(n+1)`` of the logistic
    distribution of that scale: dense near zero, sparse in the tails.
    """
    p = np.linspace(0, 1, n + 2)[1:-1]
    return scale * np.log(p / (1 - p))


def _logit(p):
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def _expit(x):
    return 1 / (1 + np.exp(-x))


def to_simplex(y):
    r"""Map unconstrained coordinates along the last axis onto the unit simplex (inverse of :func:`from_simplex`).

    The last axis holds stick-breaking fractions in logit space: with ``K``
    entries, :math:`z_k = \operatorname{expit}(y_k - \log(K - k))` is the
    fraction broken off what is left of the unit stick at step ``k``, so
    :math:`x_k = z_k \prod_{k' < k} (1 - z_{k'})`. The last entry ``y_K``
    should be 0 (the last piece is not broken); ``y = 0`` maps to the
    centre ``x = (1/K, ..., 1/K)``.

    Parameters
    ----------
    y : numpy.ndarray, shape (..., K)

    Returns
    -------
    numpy.ndarray, shape (..., K)
        Non-negative, summing to one along the last axis.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    with np.errstate(divide="ignore"):  # the last shift is log(0): that piece is never broken
        z = _expit(y - np.log(n - np.arange(1, n + 1)))
    x = np.empty(y.shape)
    x[..., 0] = z[..., 0]
    x[..., 1:] = z[..., 1:] * np.cumprod(1 - z[..., :-1], axis=-1)
    return x


def from_simplex(x):
    r"""Map points of the unit simplex along the last axis to unconstrained coordinates (see :func:`to_simplex`).

    Parameters
    ----------
    x : numpy.ndarray, shape (..., K)
        Non-negative, summing to one along the last axis.

    Returns
    -------
    numpy.ndarray, shape (..., K)
        The last entry is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    z = np.empty(x.shape)
    z[..., 0] = x[..., 0]
    z[..., 1:-1] = x[..., 1:-1] / (1 - np.cumsum(x[..., :-2], axis=-1))
    z[..., :-1] = _logit(z[..., :-1]) - _logit(1 / (n - np.arange(n - 1, dtype=np.float64)))
    z[..., -1] = 0  # set, not computed: it would be inf - inf
    return z


def pretty_time(secs, force_h=False, force_m=False) -> str:
    """A duration in seconds as text: ``"3.14 seconds"``, ``"2:05"``, ``"1:02:05"``, ``"2 days, 1:02:05"``."""
    if secs > 86400:
        return f"{int(secs // 86400)} days, " + pretty_time(secs % 86400, force_h=True)
    if force_h or secs > 3600:
        return f"{int(secs // 3600)}:" + pretty_time(secs % 3600, force_m=True)
    if force_m or secs > 60:
        minutes, seconds = int(secs // 60), int(secs % 60)
        return f"{minutes:0>2}:{seconds:0>2}" if force_m else f"{minutes}:{seconds:0>2}"
    return f"{secs:0.2f} seconds"


def safe_shape(arr, idx=0, default=1):
    """``np.shape(arr)[idx]``, or ``default`` where ``arr`` has no such axis."""
    shape = np.shape(arr)
    return shape[idx] if idx < len(shape) else default


def join_struct_arrays(arrays):
    """Join arrays of the same shape into one structured array whose fields are all of theirs, side by side.

    The inverse of :func:`separate_struct_array`. Returns a 1-d array.
    """
    sizes = [a.itemsize for a in arrays]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    shape = arrays[0].shape
    joint = np.empty(shape + (int(offsets[-1]),), dtype=np.uint8)
    for array, size, offset in zip(arrays, sizes, offsets):
        joint[..., offset:offset + size] = np.atleast_1d(array).view(np.uint8).reshape(shape + (size,))
    dtype = sum((array.dtype.descr for array in arrays), [])
    return joint.ravel().view(dtype)


def separate_struct_array(array, dtypes):
    """Cut a structured array into arrays of the given dtypes, byte by byte (inverse of :func:`join_struct_arrays`).

    Parameters
    ----------
    array : numpy.ndarray
    dtypes : list of dtype, or one dtype
        One dtype is repeated as many times as fit in an element.

    Returns
    -------
    list of numpy.ndarray (1-d)
    """
    try:
        sizes = [np.dtype(dtype).itemsize for dtype in dtypes]
    except TypeError:  # one dtype
        size = np.dtype(dtypes).itemsize
        count = int(array.nbytes / (array.size * size))
        sizes, dtypes = [size] * count, [dtypes] * count
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    raw = array.view(np.uint8).reshape(array.shape + (-1,))
    return [raw[..., offsets[i]:offsets[i + 1]].flatten().view(dtype) for i, dtype in enumerate(dtypes)]


def sqrtm_psd(A, est_error=True, check_finite=True):
    """The square root of a positive semidefinite matrix, its negative eigenvalues set to zero.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        Hermitian.
    est_error : bool, optional
        Also return the Frobenius norm of ``S @ S - A``.
    check_finite : bool, optional
        Refuse a matrix with infinite or NaN entries.

    Returns
    -------
    S : numpy.ndarray, shape (n, n)
    error : float
        Only with ``est_error=True``.

    Raises
    ------
    ValueError
        With ``check_finite`` and a non-finite ``A``.
    """
    A = np.asarray(A)
    if check_finite and not np.all(np.isfinite(A)):
        raise ValueError("array must not contain infs or NaNs")
    values, vectors = np.linalg.eigh(A)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.conj().T
    if est_error:
        return root, float(np.linalg.norm(root @ root - A, "fro"))
    return root


def decorate_init(init_decorator):
    """A class decorator that applies ``init_decorator`` to the class's ``__init__``."""

    def class_decorator(cls):
        cls.__init__ = init_decorator(cls.__init__)
        return cls

    return class_decorator


def binom_est_p(n, N, hedge=0.0):
    r"""The hedged maximum-likelihood estimate :math:`(n + \beta)/(N + 2\beta)` of a binomial bias."""
    return (n + hedge) / (N + 2 * hedge)


def binom_est_error(p, N, hedge=0.0):
    r"""The standard error :math:`\sqrt{p(1-p)/(N + 2\beta + 1)}` of :func:`binom_est_p`'s estimate."""
    return np.sqrt(p * (1 - p) / (N + 2 * hedge + 1))


def _version_tuple(text: str) -> tuple:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def get_qutip_module(required_version="3.2"):
    """The ``qutip`` module if it is installed at ``required_version`` or newer, else None."""
    try:
        qutip = importlib.import_module("qutip")
    except Exception:  # noqa: BLE001 - any failure to import means "not available"
        return None
    if _version_tuple(getattr(qutip, "__version__", "0")) < _version_tuple(required_version):
        return None
    return qutip


def check_qutip_version(required_version="3.2") -> bool:
    """Whether ``qutip`` imports at ``required_version`` or newer."""
    return get_qutip_module(required_version) is not None
