"""Exact, vectorized and seeded simulators of fBM and SBM trajectories.

Both processes share the convention of SPIVAE and the AnDi challenge: a
trajectory holds the positions x(0), ..., x(T-1) at unit time steps with
x(0) = 0, and its ensemble mean squared displacement is 2 D t^alpha.

Random numbers come from one :class:`numpy.random.Generator` consumed in
trajectory order, one row of standard normals per trajectory. Chunks therefore
only decide how many rows are drawn at a time, never which numbers a
trajectory receives: the output for a seed does not depend on ``chunk_size``,
nor on whether a second thread draws the normals (see ``_fill``).
"""

import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy import fft

from .._utils import N_TIMESTEPS, POSITIVE_INT, SEED, StrOptions, validate
from .._utils import check_alpha_D as _check_alpha_D
from .._utils import check_real_array as _check_real_array

__all__ = [
    "fgn_autocovariance",
    "make_fbm",
    "make_sbm",
    "simulate_fbm",
    "simulate_sbm",
]

_OUTPUTS = ("positions", "increments")
_DESIGNS = ("grid", "uniform")
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
DEFAULT_CHUNK_SIZE = 1024  # measured fastest of 64..4096 at T = 400


# Validation ------------------------------------------------------------------


_PARAMETER = [numbers.Real, "array-like"]
_OUTPUT = [StrOptions(set(_OUTPUTS))]
_RANDOM_STATE = [*SEED, np.random.Generator]
_SIMULATE = {
    "alpha": _PARAMETER,
    "D": _PARAMETER,
    "n_timesteps": [N_TIMESTEPS],
    "n_samples": [None, POSITIVE_INT],
    "output": _OUTPUT,
    "random_state": _RANDOM_STATE,
    "chunk_size": [POSITIVE_INT],
    "out": [None, np.ndarray],
    "dtype": "no_validation",  # see _check_dtype
}
_MAKE = {
    "n_samples": [POSITIVE_INT],
    "n_timesteps": [N_TIMESTEPS],
    "alpha": [None, *_PARAMETER],
    "D": [None, *_PARAMETER],
    "design": [StrOptions(set(_DESIGNS))],
    "shuffle": ["boolean"],
    "output": _OUTPUT,
    "random_state": _RANDOM_STATE,
}


def _check_dtype(dtype, out):
    if dtype is None:
        dtype = np.float64 if out is None else out.dtype
    dtype = np.dtype(dtype)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}.")
    return dtype


def _check_out(out, shape, dtype):
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}.")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype} but dtype is {dtype}.")
    if not out.flags.writeable:
        raise ValueError("out must be writeable.")
    return out


# Exact covariance structures ---------------------------------------------------


def _powers(alpha, n):
    """Return k^alpha for k = 0, ..., n, shape ``alpha.shape + (n + 1,)``."""
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    return np.power(np.arange(n + 1.0), alpha)  # exact at alpha = 1


@validate({"alpha": _PARAMETER, "D": _PARAMETER, "n_lags": [POSITIVE_INT]})
def fgn_autocovariance(alpha, D, n_lags):
    """Autocovariance of fractional Gaussian noise, the increments of fBM.

    ``gamma(k) = D (|k+1|^alpha - 2|k|^alpha + |k-1|^alpha)``, so that
    ``gamma(0) = 2 D`` and the positions have MSD ``2 D t^alpha``.

    Parameters
    ----------
    alpha : float or array-like of shape (n,)
        Anomalous exponent(s) in (0, 2).
    D : float or array-like of shape (n,)
        Diffusion coefficient(s), positive; broadcast against ``alpha``.
    n_lags : int
        Number of lags k = 0, ..., n_lags - 1 to return.

    Returns
    -------
    gamma : ndarray of shape (n_lags,) or (n, n_lags)
        Autocovariance at lags 0, ..., n_lags - 1 (one row per parameter pair).

    Examples
    --------
    >>> from skspivae.datasets import fgn_autocovariance
    >>> fgn_autocovariance(1.0, 0.5, 3)
    array([1., 0., 0.])
    >>> fgn_autocovariance([0.5, 1.5], 1.0, 4).shape
    (2, 4)
    """
    alpha, D = _check_alpha_D(alpha, D)
    alpha, D = np.broadcast_arrays(alpha, D)
    p = _powers(alpha, n_lags)  # k^alpha, k = 0..n_lags
    previous = np.concatenate([p[..., 1:2], p[..., : n_lags - 1]], axis=-1)
    return D[..., None] * (p[..., 1:] - 2 * p[..., :-1] + previous)


def _embedding_size(n_increments):
    """Even size 2m >= 2 (n-1) of the circulant embedding, fast for FFTs."""
    size = fft.next_fast_len(max(2 * (n_increments - 1), 2), real=True)
    while size % 2:
        size = fft.next_fast_len(size + 1, real=True)
    return size


def _fgn_spectral_scale(alpha, size):
    """Per-frequency scale of the complex noise that yields unit-D fGn.

    The first row of the symmetric circulant of size 2m embeds gamma(0..m);
    its eigenvalues are the DCT-I of gamma(0..m). They are non-negative for
    fGn (Craigmile 2003; Perrin et al. 2002), so negative values are round-off
    and clipped to 0. With ``Y_k = s_k (N_k + i N'_k)`` and standard normals,
    ``irfft(Y, 2m)`` has covariance exactly the circulant when
    ``s_k = sqrt(2m lambda_k / 2)``, and ``sqrt(2m lambda_k)`` at k = 0 and
    k = m, where irfft ignores the imaginary part. Shape ``alpha.shape + (m+1,)``.
    """
    half = size // 2
    eigenvalues = fft.dct(fgn_autocovariance(alpha, 1.0, half + 1), type=1, axis=-1)
    scale = np.sqrt(np.clip(eigenvalues, 0.0, None) * (size / 2))
    scale[..., [0, -1]] *= np.sqrt(2.0)
    return scale


def _sbm_increment_std(alpha, n_increments):
    """Std of SBM increments at unit D: sqrt(2 (t^alpha - (t-1)^alpha))."""
    p = _powers(alpha, n_increments)
    return np.sqrt(2 * np.diff(p, axis=-1))


# Vectorized sampling -------------------------------------------------------------


def _fbm_plan(n_increments):
    """Noise width, per-alpha scale table, chunk finisher, no drawing in place.

    A chunk's noise is m + 1 complex numbers (2m + 2 reals) per trajectory,
    scaled per frequency; one irfft of size 2m then gives the fGn.
    """
    size = _embedding_size(n_increments)

    def finish(scales, noise, dest):
        spectrum = noise.view(np.result_type(noise.dtype, np.complex64))
        spectrum *= scales
        fgn = fft.irfft(spectrum, size, axis=1, overwrite_x=True)
        _write(fgn[:, :n_increments], dest)

    return size + 2, lambda alphas: _fgn_spectral_scale(alphas, size), finish, False


def _sbm_plan(n_increments):
    """Noise width, per-alpha table of increment stds and finisher for SBM.

    The noise may be drawn straight into a C-contiguous output of increments.
    """

    def finish(scales, noise, dest):
        noise *= scales
        if noise is not dest:
            _write(noise, dest)

    table = lambda alphas: _sbm_increment_std(alphas, n_increments)  # noqa: E731
    return n_increments, table, finish, True


def _remember_last(table):
    """Evaluate ``table`` again only when the set of distinct alphas changes.

    Consecutive chunks of one alpha, or of a shuffled grid, then share rows.
    """
    last = {}

    def cached(alphas):
        if not np.array_equal(last.get("alphas"), alphas):
            last.update(alphas=alphas, rows=table(alphas))
        return last["rows"]

    return cached


def _row_scales(alpha, D, table, dtype):
    """Multiply a per-alpha table by sqrt(D): one row per trajectory, or one row.

    ``table(alphas)`` gives one row per distinct alpha of the chunk.
    """
    values, inverse = np.unique(alpha, return_inverse=True)
    rows = table(values)
    if len(values) == 1 and np.all(D == D[0]):
        return (rows[0] * np.sqrt(D[0])).astype(dtype)  # broadcast over rows
    scales = rows[inverse]
    scales *= np.sqrt(D)[:, None]
    return scales.astype(dtype, copy=False)


def _write(increments, dest):
    """Write increments, or positions from x(0) = 0 when ``dest`` is wider."""
    if dest.shape[1] == increments.shape[1]:
        dest[...] = increments
    else:
        dest[:, 0] = 0
        np.cumsum(increments, axis=1, out=dest[:, 1:])


def _fill(out, alpha, D, rng, chunk_size, plan):
    """Fill ``out`` chunk by chunk: draw normals, then finish the chunk.

    Draws come from ``rng`` in trajectory order, whatever the chunk size.
    When torch may use more than one thread (skspivae's one thread setting),
    the next chunk's normals are drawn in a second thread while this chunk is
    finished; numpy releases the GIL while drawing. The draws stay sequential,
    so the output is the same; the FFT and sums overlap them, which saves a
    third of the time of fBM.
    """
    width, table, finish, draws_in_place = plan
    table = _remember_last(table)
    dtype = out.dtype
    chunks = [out[start : start + chunk_size] for start in range(0, len(out), chunk_size)]
    in_place = draws_in_place and width == out.shape[1] and out.flags.c_contiguous
    pipelined = len(chunks) > 1 and torch.get_num_threads() > 1
    n_slots = 0 if in_place else 1 + pipelined
    slots = [np.empty((chunk_size, width), dtype) for _ in range(n_slots)]

    def draw(i):
        noise = chunks[i] if in_place else slots[i % len(slots)][: len(chunks[i])]
        rng.standard_normal(out=noise, dtype=dtype)
        return noise

    def finish_chunk(i, noise):
        rows = slice(i * chunk_size, i * chunk_size + len(noise))
        finish(_row_scales(alpha[rows], D[rows], table, dtype), noise, chunks[i])

    if not pipelined:
        for i in range(len(chunks)):
            finish_chunk(i, draw(i))
        return
    with ThreadPoolExecutor(max_workers=1) as drawer:
        pending = drawer.submit(draw, 0)
        for i in range(len(chunks)):
            noise = pending.result()
            if i + 1 < len(chunks):
                pending = drawer.submit(draw, i + 1)
            finish_chunk(i, noise)


def _simulate(
    plan,
    alpha,
    D,
    n_timesteps,
    n_samples,
    output,
    random_state,
    chunk_size,
    out,
    dtype,
):
    """Validate, allocate, then fill the output one chunk of rows at a time."""
    alpha, D = _check_alpha_D(alpha, D)
    lengths = {a.size for a in (alpha, D) if a.ndim == 1}
    if n_samples is not None:
        lengths.add(n_samples)
    if len(lengths) > 1:
        raise ValueError(
            f"alpha, D and n_samples give inconsistent numbers of samples {lengths}."
        )
    n_samples = lengths.pop() if lengths else 1
    if n_samples == 0:
        raise ValueError("alpha and D must hold at least one value.")
    rng = np.random.default_rng(random_state)
    dtype = _check_dtype(dtype, out)

    n_increments = n_timesteps - 1
    width = n_timesteps if output == "positions" else n_increments
    if out is None:
        out = np.empty((n_samples, width), dtype=dtype)
    else:
        _check_out(out, (n_samples, width), dtype)
    alpha = np.broadcast_to(alpha, n_samples)
    D = np.broadcast_to(D, n_samples)
    chunk_size = min(chunk_size, n_samples)
    _fill(out, alpha, D, rng, chunk_size, plan(n_increments))
    return out


_SIMULATE_PARAMETERS = """\
    Parameters
    ----------
    alpha : float or array-like of shape (n_samples,)
        Anomalous exponent(s), in the open interval (0, 2).
    D : float or array-like of shape (n_samples,)
        Diffusion coefficient(s), positive. ``alpha`` and ``D`` broadcast.
    n_timesteps : int, default=400
        Number of positions T per trajectory, at least 2.
    n_samples : int, default=None
        Number of trajectories. Needed only when ``alpha`` and ``D`` are both
        scalars (then None means 1); otherwise it must match their length.
    output : {"positions", "increments"}, default="positions"
        Return positions x(0..T-1) with x(0) = 0, shape (n_samples, T), or
        increments x(t) - x(t-1), shape (n_samples, T-1).
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator. The result for a seed does not depend on
        ``chunk_size``; it does depend on ``dtype``.
    chunk_size : int, default=1024
        Number of trajectories simulated at a time; bounds the memory used
        besides the output. When ``torch.get_num_threads() > 1`` a second
        thread draws the next chunk's normals while the current chunk is
        transformed; the result is the same either way.
    out : ndarray of shape (n_samples, T) or (n_samples, T-1), default=None
        Preallocated output (e.g. a :class:`numpy.memmap`) to fill.
    dtype : {numpy.float64, numpy.float32}, default=None
        Precision of the computation and the output: float64, or the dtype of
        ``out`` when given.

    Returns
    -------
    X : ndarray of shape (n_samples, T) or (n_samples, T-1)
        The trajectories (``out`` itself when given).
"""


@validate(_SIMULATE)
def simulate_fbm(
    alpha,
    D,
    n_timesteps=400,
    *,
    n_samples=None,
    output="positions",
    random_state=None,
    chunk_size=DEFAULT_CHUNK_SIZE,
    out=None,
    dtype=None,
):
    return _simulate(
        _fbm_plan,
        alpha,
        D,
        n_timesteps,
        n_samples,
        output,
        random_state,
        chunk_size,
        out,
        dtype,
    )


simulate_fbm.__doc__ = f"""Simulate fractional Brownian motion exactly.

    The increments are fractional Gaussian noise with autocovariance
    :func:`fgn_autocovariance`, sampled by circulant embedding (Davies and
    Harte 1987; Wood and Chan 1994): one real inverse FFT per chunk of
    trajectories, about 2 (T - 1) normal draws per trajectory.

{_SIMULATE_PARAMETERS}
    See Also
    --------
    simulate_sbm : Scaled Brownian motion with the same MSD.
    make_fbm : Labelled data set on a grid of parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.datasets import simulate_fbm
    >>> X = simulate_fbm(0.5, 1e-3, 100, n_samples=5, random_state=0)
    >>> X.shape, X[:, 0]
    ((5, 100), array([0., 0., 0., 0., 0.]))
    >>> dx = simulate_fbm([0.3, 1.7], 1.0, 10, output="increments", random_state=0)
    >>> dx.shape
    (2, 9)
    """


@validate(_SIMULATE)
def simulate_sbm(
    alpha,
    D,
    n_timesteps=400,
    *,
    n_samples=None,
    output="positions",
    random_state=None,
    chunk_size=DEFAULT_CHUNK_SIZE,
    out=None,
    dtype=None,
):
    return _simulate(
        _sbm_plan,
        alpha,
        D,
        n_timesteps,
        n_samples,
        output,
        random_state,
        chunk_size,
        out,
        dtype,
    )


simulate_sbm.__doc__ = f"""Simulate scaled Brownian motion exactly.

    The increments are independent, ``dx(t) ~ Normal(0, 2 D (t^alpha -
    (t-1)^alpha))`` for t = 1, ..., T-1, so that ``<x(t)^2> = 2 D t^alpha``.

{_SIMULATE_PARAMETERS}
    See Also
    --------
    simulate_fbm : Fractional Brownian motion with the same MSD.
    make_sbm : Labelled data set on a grid of parameters.

    Examples
    --------
    >>> from skspivae.datasets import simulate_sbm
    >>> X = simulate_sbm([0.5, 1.0, 1.5], [1e-3, 1e-2, 1e-1], 50, random_state=0)
    >>> X.shape
    (3, 50)
    """


# Labelled data sets ----------------------------------------------------------------


def _check_range(value, name):
    """A scalar (fixed value) or a (low, high) range, as (low, high)."""
    values = _check_real_array(value, name)
    if values.size not in (1, 2) or values.size == 2 and values[0] > values[1]:
        raise ValueError(
            f"{name} must be a scalar or a (low, high) pair with low <= high "
            f"for design='uniform', got {value!r}."
        )
    return values.min(), values.max()


def _design_parameters(n_samples, alpha, D, design, rng):
    """Return the (n_samples, 2) parameter array of columns (alpha, D)."""
    if design == "grid":
        alpha = np.linspace(0.2, 1.8, 21) if alpha is None else alpha
        D = np.geomspace(1e-5, 1e-2, 10) if D is None else D
        alpha, D = _check_alpha_D(np.ravel(alpha), np.ravel(D))
        n_combinations = alpha.size * D.size
        if n_samples % n_combinations:
            raise ValueError(
                f"n_samples={n_samples} must be a multiple of the number of "
                f"(alpha, D) combinations, {alpha.size} x {D.size} = "
                f"{n_combinations}, for design='grid'."
            )
        grid = np.stack(np.meshgrid(alpha, D, indexing="ij"), axis=-1).reshape(-1, 2)
        return np.repeat(grid, n_samples // n_combinations, axis=0)
    alpha = (0.2, 1.8) if alpha is None else alpha
    alpha_low, alpha_high = _check_range(alpha, "alpha")
    D_low, D_high = _check_range((1e-5, 1e-2) if D is None else D, "D")
    _check_alpha_D([alpha_low, alpha_high], [D_low, D_high])
    alphas = rng.uniform(alpha_low, alpha_high, n_samples)
    Ds = np.exp(rng.uniform(np.log(D_low), np.log(D_high), n_samples))
    return np.column_stack([alphas, Ds])


def _make(simulate, n_samples, n_timesteps, alpha, D, design, shuffle, output, rng):
    rng = np.random.default_rng(rng)
    y = _design_parameters(n_samples, alpha, D, design, rng)
    if shuffle:
        y = y[rng.permutation(n_samples)]
    X = simulate(y[:, 0], y[:, 1], n_timesteps, output=output, random_state=rng)
    return X, y


_MAKE_PARAMETERS = """\
    Parameters
    ----------
    n_samples : int
        Number of trajectories. With ``design="grid"`` it must be a multiple
        of the number of (alpha, D) combinations.
    n_timesteps : int, default=400
        Number of positions T per trajectory.
    alpha : float or array-like, default=None
        With ``design="grid"``: the grid of exponents, default
        ``np.linspace(0.2, 1.8, 21)`` (the SPIVAE paper's). With
        ``design="uniform"``: a (low, high) range for a uniform draw, default
        (0.2, 1.8), or a scalar for a fixed value. Values in (0, 2).
    D : float or array-like, default=None
        With ``design="grid"``: the grid of diffusion coefficients, default
        ``np.geomspace(1e-5, 1e-2, 10)``. With ``design="uniform"``: a (low,
        high) range for a log-uniform draw, default (1e-5, 1e-2), or a scalar.
    design : {"grid", "uniform"}, default="grid"
        "grid": every (alpha, D) combination, ``n_samples / (n_alpha n_D)``
        trajectories each, ordered by alpha then D. "uniform": independent
        random parameters per trajectory.
    shuffle : bool, default=False
        Shuffle the order of the trajectories (seeded by ``random_state``).
    output : {"positions", "increments"}, default="positions"
        Return positions, shape (n_samples, T), or increments, (n_samples, T-1).
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator for the parameters, the shuffle and the trajectories.

    Returns
    -------
    X : ndarray of shape (n_samples, T) or (n_samples, T-1)
        The trajectories.
    y : ndarray of shape (n_samples, 2)
        Their parameters, columns (alpha, D).
"""


@validate(_MAKE)
def make_fbm(
    n_samples,
    n_timesteps=400,
    *,
    alpha=None,
    D=None,
    design="grid",
    shuffle=False,
    output="positions",
    random_state=None,
):
    return _make(
        simulate_fbm,
        n_samples,
        n_timesteps,
        alpha,
        D,
        design,
        shuffle,
        output,
        random_state,
    )


make_fbm.__doc__ = f"""Make a labelled data set of fBM trajectories.

{_MAKE_PARAMETERS}
    See Also
    --------
    simulate_fbm : The simulator, for arbitrary parameters.

    Examples
    --------
    >>> from skspivae.datasets import make_fbm
    >>> X, y = make_fbm(210 * 2, 100, random_state=0)
    >>> X.shape, y.shape
    ((420, 100), (420, 2))
    >>> X, y = make_fbm(
    ...     50, alpha=(0.5, 1.5), D=(1e-3, 1e-1), design="uniform", random_state=0
    ... )
    >>> X.shape, bool(y[:, 0].min() >= 0.5)
    ((50, 400), True)
    """


@validate(_MAKE)
def make_sbm(
    n_samples,
    n_timesteps=400,
    *,
    alpha=None,
    D=None,
    design="grid",
    shuffle=False,
    output="positions",
    random_state=None,
):
    return _make(
        simulate_sbm,
        n_samples,
        n_timesteps,
        alpha,
        D,
        design,
        shuffle,
        output,
        random_state,
    )


make_sbm.__doc__ = f"""Make a labelled data set of SBM trajectories.

{_MAKE_PARAMETERS}
    See Also
    --------
    simulate_sbm : The simulator, for arbitrary parameters.

    Examples
    --------
    >>> from skspivae.datasets import make_sbm
    >>> X, y = make_sbm(20, 10, alpha=[0.5, 1.5], D=[1e-3, 1e-2], shuffle=True,
    ...                 output="increments", random_state=0)
    >>> X.shape, y.shape
    ((20, 9), (20, 2))
    """
