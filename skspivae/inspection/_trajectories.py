"""Mean squared displacements of trajectories and their anomalous exponent.

All reductions are done in float64, a chunk of trajectories at a time, so a
float32 memmap of a million trajectories is never converted whole.
"""

import numpy as np
from scipy import fft
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_array

from .._utils import validate

__all__ = ["ensemble_msd", "fit_anomalous_exponent", "time_averaged_msd"]

_CHUNK = 4096  # trajectories reduced at a time
_DIRECT_MAX_LAGS = 16  # measured: a loop over up to ~20 lags beats the FFT at T=400


def _check_trajectories(X):
    return check_array(
        X, dtype=(np.float64, np.float32), ensure_min_features=2, input_name="X"
    )


def _check_lags(lags, n_timesteps):
    if lags is None:
        return np.arange(1, n_timesteps)
    lags = np.asarray(lags)
    if lags.ndim != 1 or lags.size == 0:
        raise ValueError(f"lags must be a non-empty 1-D array, got shape {lags.shape}.")
    if lags.dtype.kind not in "iu":
        raise TypeError(f"lags must be integers, got dtype {lags.dtype}.")
    if lags.min() < 1 or lags.max() >= n_timesteps:
        raise ValueError(
            f"lags must lie in [1, {n_timesteps - 1}] for {n_timesteps} time steps."
        )
    return lags


@validate({"X": ["array-like"], "lags": [None, "array-like"]})
def ensemble_msd(X, lags=None):
    """Ensemble mean squared displacement from the first position.

    ``msd[i] = mean over trajectories of (x(lags[i]) - x(0))^2``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions of the trajectories.
    lags : array-like of int of shape (n_lags,), default=None
        Lags in [1, n_timesteps - 1]; default all of them.

    Returns
    -------
    lags : ndarray of shape (n_lags,)
        The lags.
    msd : ndarray of shape (n_lags,)
        The ensemble MSD at each lag, in float64.

    Examples
    --------
    >>> from skspivae.datasets import simulate_fbm
    >>> from skspivae.inspection import ensemble_msd
    >>> X = simulate_fbm(1.0, 0.5, 20, n_samples=1000, random_state=0)
    >>> lags, msd = ensemble_msd(X)
    >>> lags.shape, msd.shape
    ((19,), (19,))
    """
    X = _check_trajectories(X)
    lags = _check_lags(lags, X.shape[1])
    total = np.zeros(lags.size)
    for rows in gen_batches(X.shape[0], _CHUNK):
        chunk = X[rows]
        displacements = chunk[:, lags] - chunk[:, :1].astype(np.float64)
        total += np.einsum("ij,ij->j", displacements, displacements)
    return lags, total / X.shape[0]


def _tamsd_fft(X, lags):
    """TAMSD at ``lags`` from sums of squares and an FFT autocorrelation.

    sum_t (y(t+l) - y(t))^2 = sum_{t>=l} y^2 + sum_{t<T-l} y^2 - 2 sum_t y(t) y(t+l)
    with y the positions minus their mean (which reduces cancellation).
    """
    n_timesteps = X.shape[1]
    y = X - X.mean(axis=1, keepdims=True)
    squares = np.zeros((X.shape[0], n_timesteps + 1))
    np.cumsum(y * y, axis=1, out=squares[:, 1:])  # squares[:, k] = sum_{t<k} y^2
    size = fft.next_fast_len(2 * n_timesteps - 1, real=True)
    spectrum = fft.rfft(y, size, axis=1)
    autocorrelation = fft.irfft(spectrum.real**2 + spectrum.imag**2, size, axis=1)
    total = squares[:, [-1]]
    sums = (total - squares[:, lags]) + squares[:, n_timesteps - lags]
    sums -= 2 * autocorrelation[:, lags]  # relative round-off ~1e-9 at alpha=1.9
    return sums / (n_timesteps - lags)


def _tamsd_direct(X, lags):
    """TAMSD at ``lags`` by one vectorized pass over the trajectories per lag."""
    tamsd = np.empty((X.shape[0], lags.size))
    for i, lag in enumerate(lags):
        displacements = X[:, lag:] - X[:, :-lag]
        tamsd[:, i] = np.einsum("ij,ij->i", displacements, displacements)
    return tamsd / (X.shape[1] - lags)


@validate({"X": ["array-like"], "lags": [None, "array-like"]})
def time_averaged_msd(X, lags=None):
    """Time-averaged mean squared displacement of each trajectory.

    ``TAMSD(lag) = mean over t = 0..T-1-lag of (x(t+lag) - x(t))^2``. Few lags
    are computed directly; many lags by an FFT autocorrelation and cumulative
    sums of squares, O(T log T) per trajectory whatever the number of lags.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions of the trajectories.
    lags : array-like of int of shape (n_lags,), default=None
        Lags in [1, n_timesteps - 1]; default all of them.

    Returns
    -------
    lags : ndarray of shape (n_lags,)
        The lags.
    tamsd : ndarray of shape (n_samples, n_lags)
        The TAMSD of each trajectory at each lag, in float64.

    Examples
    --------
    >>> from skspivae.datasets import simulate_sbm
    >>> from skspivae.inspection import time_averaged_msd
    >>> X = simulate_sbm(0.5, 1.0, 100, n_samples=3, random_state=0)
    >>> lags, tamsd = time_averaged_msd(X, lags=[1, 2, 4, 8])
    >>> tamsd.shape
    (3, 4)
    """
    X = _check_trajectories(X)
    lags = _check_lags(lags, X.shape[1])
    method = _tamsd_direct if lags.size <= _DIRECT_MAX_LAGS else _tamsd_fft
    tamsd = np.empty((X.shape[0], lags.size))
    for rows in gen_batches(X.shape[0], _CHUNK):
        tamsd[rows] = method(X[rows].astype(np.float64), lags)
    return lags, tamsd


@validate({"lags": ["array-like"], "msd": ["array-like"], "lag_range": [None, tuple, list]})
def fit_anomalous_exponent(lags, msd, *, lag_range=None):
    """Fit ``msd = 2 D lag^alpha`` by least squares in log-log scale.

    Parameters
    ----------
    lags : array-like of shape (n_lags,)
        Positive lags.
    msd : array-like of shape (n_lags,) or (n_curves, n_lags)
        Positive mean squared displacements; one fit per row when 2-D
        (e.g. the output of :func:`time_averaged_msd`).
    lag_range : (float, float), default=None
        Fit only the lags in ``[low, high]``; default all.

    Returns
    -------
    alpha : float or ndarray of shape (n_curves,)
        Anomalous exponent(s), the slope.
    D : float or ndarray of shape (n_curves,)
        Diffusion coefficient(s), half the exponential of the intercept.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import fit_anomalous_exponent
    >>> lags = np.arange(1, 50)
    >>> alpha, D = fit_anomalous_exponent(lags, 2 * 0.1 * lags**0.7)
    >>> print(f"{alpha:.3f} {D:.3f}")
    0.700 0.100
    """
    lags = np.asarray(lags, dtype=np.float64)
    msd = np.asarray(msd, dtype=np.float64)
    if lags.ndim != 1 or msd.ndim not in (1, 2) or msd.shape[-1] != lags.size:
        raise ValueError(
            "lags must be 1-D and msd of shape (n_lags,) or (n_curves, n_lags); "
            f"got shapes {lags.shape} and {msd.shape}."
        )
    if not (np.all(np.isfinite(lags)) and np.all(lags > 0)):
        raise ValueError("lags must be positive and finite.")
    if not (np.all(np.isfinite(msd)) and np.all(msd > 0)):
        raise ValueError("msd must be positive and finite.")
    keep = np.ones(lags.size, dtype=bool)
    if lag_range is not None:
        low, high = lag_range
        keep = (lags >= low) & (lags <= high)
    log_lags = np.log(lags[keep])
    if np.unique(log_lags).size < 2:
        raise ValueError("the fit needs at least 2 distinct lags in lag_range.")
    log_msd = np.log(msd[..., keep])
    centred = log_lags - log_lags.mean()
    alpha = log_msd @ centred / (centred @ centred)
    intercept = log_msd.mean(axis=-1) - alpha * log_lags.mean()
    D = np.exp(intercept) / 2
    return (float(alpha), float(D)) if msd.ndim == 1 else (alpha, D)
