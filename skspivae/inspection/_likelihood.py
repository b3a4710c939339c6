"""Exact Gaussian likelihoods of fBM and SBM, and the maximum-likelihood
estimate of fBM's parameters: the physical limits a learned model is
measured against.

Both processes are Gaussian with known covariances (``docs`` and
:mod:`skspivae.datasets`), so the log-likelihood of a trajectory's
displacements under given parameters is exact, and the maximum-likelihood
estimate of (alpha, D) is the best an estimator can do, asymptotically.
"""

from numbers import Real

import numpy as np
from scipy import linalg
from sklearn.utils.validation import check_array

from .._utils import check_alpha_D, validate
from ..datasets import fgn_autocovariance

__all__ = ["fbm_log_likelihood", "fbm_mle", "sbm_log_likelihood", "sbm_mle"]

_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def _increments(X):
    X = check_array(X, dtype=np.float64, ensure_min_features=2, input_name="X")
    return np.diff(X, axis=1)


def _parameters(alpha, D, n_samples):
    """alpha and D as float64 arrays of shape (n_samples,), checked."""
    alpha, D = check_alpha_D(alpha, D)
    return (np.broadcast_to(alpha, (n_samples,)), np.broadcast_to(D, (n_samples,)))


@validate({"X": ["array-like"], "alpha": [Real, "array-like"], "D": [Real, "array-like"]})
def fbm_log_likelihood(X, alpha, D):
    """Exact log-likelihood of each trajectory's displacements under fBM.

    The displacements of fBM are fractional Gaussian noise, a stationary
    Gaussian process with the Toeplitz covariance of
    :func:`~skspivae.datasets.fgn_autocovariance`; the log-density is
    computed through its Cholesky factor.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions.
    alpha, D : float or array-like of shape (n_samples,)
        Anomalous exponent in (0, 2) and diffusion coefficient of each
        trajectory.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``log p(dx(1), ..., dx(T-1))`` in nats; divide by ``T - 1`` for nats
        per step.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.datasets import make_fbm
    >>> from skspivae.inspection import fbm_log_likelihood
    >>> X, y = make_fbm(4, 50, alpha=[0.5, 1.5], D=[1e-2], random_state=0)
    >>> right = fbm_log_likelihood(X, y[:, 0], y[:, 1])
    >>> wrong = fbm_log_likelihood(X, 2 - y[:, 0], y[:, 1])
    >>> bool((right > wrong).all())
    True
    """
    dx = _increments(X)
    alpha, D = _parameters(alpha, D, dx.shape[0])
    n = dx.shape[1]
    out = np.empty(dx.shape[0])
    # Trajectories with the same alpha share the Cholesky factor of the
    # correlation; D only scales it.
    for a in np.unique(alpha):
        rows = np.flatnonzero(alpha == a)
        gamma = fgn_autocovariance(a, 1.0, n)
        factor = linalg.cholesky(linalg.toeplitz(gamma), lower=True)
        white = linalg.solve_triangular(factor, dx[rows].T, lower=True)  # (n, rows)
        log_det = 2 * np.log(np.diag(factor)).sum() + n * np.log(D[rows])
        out[rows] = (-0.5 * np.square(white).sum(axis=0) / D[rows] - 0.5 * log_det
                     - n * _HALF_LOG_2PI)
    return out


@validate({"X": ["array-like"], "alpha": [Real, "array-like"], "D": [Real, "array-like"]})
def sbm_log_likelihood(X, alpha, D):
    """Exact log-likelihood of each trajectory's displacements under SBM.

    The displacements of scaled Brownian motion are independent, dx(t) ~
    Normal(0, 2 D (t^alpha - (t-1)^alpha)).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions.
    alpha, D : float or array-like of shape (n_samples,)
        Anomalous exponent in (0, 2) and diffusion coefficient of each
        trajectory.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``log p(dx(1), ..., dx(T-1))`` in nats.

    Examples
    --------
    >>> from skspivae.datasets import make_sbm
    >>> from skspivae.inspection import sbm_log_likelihood
    >>> X, y = make_sbm(4, 50, alpha=[0.5, 1.5], D=[1e-2], random_state=0)
    >>> sbm_log_likelihood(X, y[:, 0], y[:, 1]).shape
    (4,)
    """
    dx = _increments(X)
    alpha, D = _parameters(alpha, D, dx.shape[0])
    t = np.arange(dx.shape[1] + 1.0)
    powers = t[None, :] ** alpha[:, None]
    variance = 2 * D[:, None] * np.diff(powers, axis=1)
    return (-0.5 * np.square(dx) / variance - 0.5 * np.log(variance)
            - _HALF_LOG_2PI).sum(axis=1)


@validate({"X": ["array-like"], "alpha_grid": [None, "array-like"]})
def fbm_mle(X, *, alpha_grid=None):
    """Maximum-likelihood estimate of fBM's alpha and D for each trajectory.

    The exact Gaussian log-likelihood is maximised over D in closed form
    (for a given alpha, D-hat is the quadratic form of the displacements
    with the inverse correlation matrix, over the number of steps) and over
    alpha on a grid, refined by a parabola through the best grid point and
    its neighbours.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions.
    alpha_grid : array-like of shape (n_alphas,), default=None
        Increasing exponents in (0, 2) to search; default 197 values from
        0.02 to 1.98.

    Returns
    -------
    alpha : ndarray of shape (n_samples,)
    D : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.datasets import make_fbm
    >>> from skspivae.inspection import fbm_mle
    >>> X, y = make_fbm(200, 400, alpha=[0.5, 1.5], D=[1e-3], random_state=0)
    >>> alpha, D = fbm_mle(X)
    >>> bool(np.abs(alpha - y[:, 0]).mean() < 0.1)
    True
    """
    dx = _increments(X)
    grid = _check_grid(alpha_grid)
    n = dx.shape[1]
    profile = np.empty((grid.size, dx.shape[0]))  # profile log-likelihood
    log_D = np.empty_like(profile)
    for i, a in enumerate(grid):
        factor = linalg.cholesky(linalg.toeplitz(fgn_autocovariance(a, 1.0, n)),
                                 lower=True)
        white = linalg.solve_triangular(factor, dx.T, lower=True)
        log_D[i] = np.log(np.square(white).sum(axis=0) / n)
        profile[i] = -0.5 * n * log_D[i] - np.log(np.diag(factor)).sum()
    return _refine(grid, profile, log_D)


@validate({"X": ["array-like"], "alpha_grid": [None, "array-like"]})
def sbm_mle(X, *, alpha_grid=None):
    """Maximum-likelihood estimate of SBM's alpha and D for each trajectory.

    As :func:`fbm_mle`, with the independent increments of scaled Brownian
    motion: for a given alpha, D-hat is the mean of
    ``dx(t)^2 / (2 (t^alpha - (t-1)^alpha))``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Positions.
    alpha_grid : array-like of shape (n_alphas,), default=None
        Increasing exponents in (0, 2) to search; default 197 values from
        0.02 to 1.98.

    Returns
    -------
    alpha : ndarray of shape (n_samples,)
    D : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.datasets import make_sbm
    >>> from skspivae.inspection import sbm_mle
    >>> X, y = make_sbm(200, 400, alpha=[0.5, 1.5], D=[1e-3], random_state=0)
    >>> alpha, D = sbm_mle(X)
    >>> bool(np.abs(alpha - y[:, 0]).mean() < 0.1)
    True
    """
    dx = _increments(X)
    grid = _check_grid(alpha_grid)
    n = dx.shape[1]
    t = np.arange(n + 1.0)
    weights = np.diff(t[None, :] ** grid[:, None], axis=1)  # (n_alphas, n)
    log_D = np.log(np.square(dx) @ (0.5 / weights).T / n).T  # (n_alphas, n_samples)
    profile = -0.5 * n * log_D - 0.5 * np.log(weights).sum(axis=1)[:, None]
    return _refine(grid, profile, log_D)


def _check_grid(alpha_grid):
    grid = (np.linspace(0.02, 1.98, 197) if alpha_grid is None
            else np.asarray(alpha_grid, dtype=np.float64))
    if grid.ndim != 1 or grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise ValueError("alpha_grid must be 1-D, increasing, with at least 3 values.")
    if grid[0] <= 0 or grid[-1] >= 2:
        raise ValueError("alpha_grid must lie in the open interval (0, 2).")
    return grid


def _refine(grid, profile, log_D):
    """The maximiser of each column of ``profile`` (n_alphas, n_samples) on
    ``grid``, refined by a parabola, and D-hat there."""
    best = np.clip(profile.argmax(axis=0), 1, grid.size - 2)
    cols = np.arange(profile.shape[1])
    lo, mid, hi = (profile[best + k, cols] for k in (-1, 0, 1))
    curvature = lo - 2 * mid + hi
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (lo - hi) / curvature, 0.0)
    shift = np.clip(shift, -1.0, 1.0)  # in grid steps, around the best point
    step_lo, step_hi = grid[best] - grid[best - 1], grid[best + 1] - grid[best]
    alpha = grid[best] + np.where(shift < 0, shift * step_lo, shift * step_hi)
    # log D-hat along the same parabola in the grid coordinate.
    d_lo, d_mid, d_hi = (log_D[best + k, cols] for k in (-1, 0, 1))
    log_D_hat = d_mid + 0.5 * shift * (d_hi - d_lo) + 0.5 * shift**2 * (d_hi - 2 * d_mid
                                                                           + d_lo)
    return alpha, np.exp(log_D_hat)
