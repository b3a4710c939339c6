"""Tests of the exact fBM and SBM simulators and the data set makers.

Statistical tolerances are derived from exact variances, never tuned: every
comparison allows 6 standard errors, so with the derandomized hypothesis
profile of conftest.py (and for any seed, in practice) a correct simulator
passes and an error of a few per cent in a variance or an exponent fails.
"""

import contextlib
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import fft

from skspivae.datasets import (
    fgn_autocovariance,
    make_fbm,
    make_sbm,
    simulate_fbm,
    simulate_sbm,
)
from skspivae.datasets._simulators import _embedding_size, _fgn_spectral_scale
from skspivae.inspection import (
    ensemble_msd,
    fit_anomalous_exponent,
    time_averaged_msd,
)

SIMULATORS = pytest.mark.parametrize("simulate", [simulate_fbm, simulate_sbm])
N_SIGMA = 6  # standard errors allowed in statistical comparisons

alphas = st.floats(0.05, 1.95)
Ds = st.floats(1e-6, 1e2)
seeds = st.integers(0, 2**32 - 1)


def _fit_weights(lags):
    """Weights w with slope = w @ log(msd) for the log-log least squares fit."""
    centred = np.log(lags) - np.log(lags).mean()
    return centred / (centred @ centred)


# Shapes, seeds, chunks ---------------------------------------------------------


@SIMULATORS
@given(
    alpha=alphas,
    D=Ds,
    n_timesteps=st.integers(2, 40),
    n_samples=st.integers(1, 5),
    output=st.sampled_from(["positions", "increments"]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_shape_dtype_and_origin(simulate, alpha, D, n_timesteps, n_samples, output, dtype):
    X = simulate(
        alpha,
        D,
        n_timesteps,
        n_samples=n_samples,
        output=output,
        dtype=dtype,
        random_state=0,
    )
    width = n_timesteps if output == "positions" else n_timesteps - 1
    assert X.shape == (n_samples, width)
    assert X.dtype == dtype
    assert np.all(np.isfinite(X))
    if output == "positions":
        assert_array_equal(X[:, 0], 0)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run with torch's thread count, which switches on the drawing thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@SIMULATORS
@given(
    seed=seeds,
    n_samples=st.integers(1, 30),
    n_timesteps=st.integers(2, 30),
    chunk_sizes=st.tuples(st.integers(1, 31), st.integers(1, 31)),
    threads=st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2])),
    output=st.sampled_from(["positions", "increments"]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_same_seed_same_result_for_any_chunk_size_and_threads(
    simulate, seed, n_samples, n_timesteps, chunk_sizes, threads, output, dtype
):
    rng = np.random.default_rng(seed)
    alpha = rng.choice([0.4, 1.0, 1.6], n_samples)  # repeated and distinct values
    D = rng.uniform(0.1, 2.0, n_samples)
    results = []
    for chunk, n_threads in zip(chunk_sizes, threads):
        with torch_threads(n_threads):
            results.append(
                simulate(
                    alpha,
                    D,
                    n_timesteps,
                    output=output,
                    dtype=dtype,
                    random_state=seed,
                    chunk_size=chunk,
                )
            )
    assert_array_equal(*results)


@SIMULATORS
def test_generator_continues_and_int_seed_repeats(simulate):
    rng = np.random.default_rng(0)
    first, second = (simulate(1.0, 1.0, 10, n_samples=3, random_state=rng) for _ in range(2))
    assert not np.array_equal(first, second)
    assert_array_equal(
        simulate(1.0, 1.0, 10, n_samples=3, random_state=0),
        simulate(1.0, 1.0, 10, n_samples=3, random_state=0),
    )


@SIMULATORS
def test_positions_are_cumulative_increments(simulate):
    kwargs = dict(n_samples=4, random_state=3)
    X = simulate([0.3, 0.9, 1.3, 1.9], 0.1, 50, **kwargs)
    dx = simulate([0.3, 0.9, 1.3, 1.9], 0.1, 50, output="increments", **kwargs)
    assert_allclose(np.diff(X, axis=1), dx, atol=1e-12)


@SIMULATORS
@pytest.mark.parametrize("output, width", [("positions", 20), ("increments", 19)])
def test_out_fills_a_memmap(simulate, output, width, tmp_path):
    out = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=(100, width)
    )
    alpha = np.linspace(0.1, 1.9, 100)
    kwargs = dict(output=output, random_state=1)
    result = simulate(alpha, 1e-3, 20, out=out, chunk_size=16, **kwargs)
    assert result is out
    expected = simulate(alpha, 1e-3, 20, dtype=np.float32, **kwargs)
    out.flush()
    assert_array_equal(np.load(tmp_path / "X.npy"), expected)


@SIMULATORS
@pytest.mark.parametrize("n_threads", [1, 2])
def test_memory_is_bounded_by_the_chunk_size(simulate, n_threads):
    # With a preallocated output, only the chunk's buffers are allocated:
    # about 3 arrays of chunk_size x (2 T) float64, whatever n_samples
    # (one more noise buffer when a second thread draws).
    n_samples, n_timesteps, chunk_size = 20_000, 100, 128
    out = np.empty((n_samples, n_timesteps))
    tracemalloc.start()
    with torch_threads(n_threads):
        simulate(0.7, 1.0, n_timesteps, n_samples=n_samples, out=out, chunk_size=chunk_size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * chunk_size * 2 * n_timesteps * 8 < out.nbytes / 10


# Exact covariance structure --------------------------------------------------------


def test_fgn_autocovariance_values():
    assert_allclose(fgn_autocovariance(1.0, 0.5, 4), [1, 0, 0, 0])
    gamma = fgn_autocovariance([0.5, 1.5], [1.0, 2.0], 3)
    assert_allclose(gamma[:, 0], [2.0, 4.0])
    assert_allclose(gamma[1, 1], 2.0 * (2**1.5 - 2))


@pytest.mark.parametrize("n_increments", [1, 2, 3, 10, 99, 399])
def test_circulant_embedding_reproduces_the_autocovariance(n_increments):
    # The sampler's covariance is the circulant whose eigenvalues it uses:
    # undo the scale to eigenvalues, transform back, compare with gamma.
    alpha = np.linspace(0.01, 1.99, 67)
    size = _embedding_size(n_increments)
    scale = _fgn_spectral_scale(alpha, size)
    eigenvalues = scale**2 * 2 / size
    eigenvalues[:, [0, -1]] /= 2
    half = size // 2
    gamma = fgn_autocovariance(alpha, 1.0, half + 1)
    assert size >= 2 * (n_increments - 1) and size % 2 == 0
    assert_allclose(fft.irfft(eigenvalues, size)[:, : half + 1], gamma, atol=1e-9)


@SIMULATORS
@given(alpha=alphas, D=Ds, n_timesteps=st.integers(16, 64), seed=seeds)
def test_ensemble_msd_is_2D_t_alpha(simulate, alpha, D, n_timesteps, seed):
    # x(t)^2 / (2 D t^alpha) is chi-square with 1 degree of freedom (variance
    # 2), so the ensemble mean over n independent trajectories has relative
    # standard error sqrt(2 / n): 2.2% for n = 4000, and a 6-sigma tolerance of
    # 13%. A union bound over the <= 63 lags keeps false alarms below ~1e-6.
    n = 4000
    X = simulate(alpha, D, n_timesteps, n_samples=n, random_state=seed)
    lags, msd = ensemble_msd(X)
    theory = 2 * D * lags**alpha
    tolerance = N_SIGMA * np.sqrt(2 / n)
    assert np.all(np.abs(msd / theory - 1) < tolerance)
    # Then every log(msd) is within eps of the truth, and the least squares
    # slope and intercept move by at most eps times the l1 norm of their
    # weights: a deterministic consequence, no new probability.
    eps = -np.log(1 - tolerance)
    weights = _fit_weights(lags)
    intercept_weights = 1 / lags.size - np.log(lags).mean() * weights
    fitted_alpha, fitted_D = fit_anomalous_exponent(lags, msd)
    assert abs(fitted_alpha - alpha) <= eps * np.abs(weights).sum()
    assert abs(np.log(fitted_D / D)) <= eps * np.abs(intercept_weights).sum()


def _isserlis_lagged_product_std(gamma, lag, n_terms):
    """Std of the mean over t < n_terms of dx(t) dx(t+lag) for stationary
    Gaussian dx with autocovariance gamma (Isserlis' theorem)."""
    diff = np.arange(n_terms)[:, None] - np.arange(n_terms)[None, :]
    g = lambda k: gamma[np.abs(k)]  # noqa: E731
    covariance = g(diff) ** 2 + g(diff + lag) * g(diff - lag)
    return np.sqrt(covariance.sum()) / n_terms


@given(alpha=alphas, seed=seeds)
def test_fbm_increment_autocovariance_is_gamma(alpha, seed):
    # Each estimate averages dx(t) dx(t+k) over 2000 trajectories and all t;
    # its exact standard error comes from Isserlis' theorem.
    n, n_increments, D = 2000, 48, 0.3
    dx = simulate_fbm(
        alpha, D, n_increments + 1, n_samples=n, output="increments", random_state=seed
    )
    gamma = fgn_autocovariance(alpha, D, 2 * n_increments)
    for lag in range(5):
        n_terms = n_increments - lag
        estimate = np.mean(dx[:, :n_terms] * dx[:, lag:])
        std = _isserlis_lagged_product_std(gamma, lag, n_terms) / np.sqrt(n)
        assert abs(estimate - gamma[lag]) < N_SIGMA * std


def _sbm_displacement_covariance(alpha, D, lag, n_timesteps):
    """Cov(x(s+lag) - x(s), x(t+lag) - x(t)) for SBM: the variance of the
    overlap of the two windows, s, t = 0..T-1-lag."""
    t = np.arange(n_timesteps - lag)
    low = np.maximum(t[:, None], t[None, :])
    high = np.minimum(t[:, None], t[None, :]) + lag
    return 2 * D * np.where(high > low, np.abs(high) ** alpha - low**alpha, 0.0)


def _fbm_displacement_covariance(alpha, D, lag, n_timesteps):
    t = np.arange(n_timesteps - lag)
    k = np.abs(t[:, None] - t[None, :]).astype(float)
    return D * (np.abs(k + lag) ** alpha + np.abs(k - lag) ** alpha - 2 * k**alpha)


def _tamsd_std(covariance):
    """Std of the mean of squares of a zero-mean Gaussian vector: the
    variance of a sum of squares is 2 tr(C^2) = 2 sum(C**2)."""
    return np.sqrt(2 * np.sum(covariance**2)) / len(covariance)


@pytest.mark.parametrize(
    "simulate, covariance",
    [
        (simulate_sbm, _sbm_displacement_covariance),
        (simulate_fbm, _fbm_displacement_covariance),
    ],
)
@given(alpha=alphas, seed=seeds)
def test_mean_tamsd_matches_its_exact_expectation(simulate, covariance, alpha, seed):
    # E[TAMSD(lag)] is the mean of the diagonal of the displacement covariance:
    # 2 D lag^alpha for fBM, mean_t 2 D ((t+lag)^alpha - t^alpha) for SBM. The
    # TAMSD of one trajectory has the exact std of _tamsd_std; the average
    # over n independent trajectories divides it by sqrt(n).
    n, n_timesteps, D = 300, 64, 2.0
    X = simulate(alpha, D, n_timesteps, n_samples=n, random_state=seed)
    lags, tamsd = time_averaged_msd(X, lags=[1, 2, 4, 8, 16, 32])
    for lag, mean in zip(lags, tamsd.mean(axis=0), strict=True):
        cov = covariance(alpha, D, lag, n_timesteps)
        assert abs(mean - np.trace(cov) / len(cov)) < N_SIGMA * _tamsd_std(cov) / (np.sqrt(n))
        if simulate is simulate_fbm:
            assert_allclose(np.trace(cov) / len(cov), 2 * D * lag**alpha)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 1.9])
def test_sbm_tamsd_is_linear_in_lag_while_fbm_follows_alpha(alpha):
    n_timesteps, lags = 400, np.arange(1, 9)
    # Exact: lag << T makes the SBM expectation ~ 2 D lag T^(alpha-1).
    t = np.arange(n_timesteps)
    expected = [
        np.mean((t[: n_timesteps - lag] + lag) ** alpha - t[: n_timesteps - lag] ** alpha)
        for lag in lags
    ]
    assert abs(fit_anomalous_exponent(lags, np.array(expected))[0] - 1) < 0.05
    # Measured on 200 trajectories (seeded): SBM ~ lag, fBM ~ lag^alpha.
    for simulate, slope in [(simulate_sbm, 1.0), (simulate_fbm, alpha)]:
        X = simulate(alpha, 1e-3, n_timesteps, n_samples=200, random_state=0)
        _, tamsd = time_averaged_msd(X, lags=lags)
        assert abs(fit_anomalous_exponent(lags, tamsd.mean(axis=0))[0] - slope) < 0.1


# Data sets -------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_fbm, make_sbm])
def test_grid_design_balances_combinations(make):
    X, y = make(12, 30, alpha=[0.5, 1.5], D=[1e-3, 1e-2, 1e-1], random_state=0)
    assert X.shape == (12, 30) and y.shape == (12, 2)
    combinations, counts = np.unique(y, axis=0, return_counts=True)
    assert len(combinations) == 6 and np.all(counts == 2)
    assert_array_equal(y[:, 0], np.repeat([0.5, 1.5], 6))  # ordered by alpha, D


def test_default_grid_is_the_papers():
    X, y = make_fbm(210, 10, output="increments", random_state=0)
    assert X.shape == (210, 9)
    assert_allclose(np.unique(y[:, 0]), np.linspace(0.2, 1.8, 21))
    assert_allclose(np.unique(y[:, 1]), np.geomspace(1e-5, 1e-2, 10))


@pytest.mark.parametrize("make", [make_fbm, make_sbm])
def test_shuffle_permutes_rows_reproducibly(make):
    kwargs = dict(alpha=[0.5, 1.5], D=[1e-3, 1e-2], random_state=0)
    _, y = make(40, 10, **kwargs)
    X1, y1 = make(40, 10, shuffle=True, **kwargs)
    X2, y2 = make(40, 10, shuffle=True, **kwargs)
    assert_array_equal(X1, X2)
    assert not np.array_equal(y1, y)
    assert_array_equal(np.sort(y1, axis=0), np.sort(y, axis=0))


@pytest.mark.parametrize("make", [make_fbm, make_sbm])
def test_uniform_design_draws_in_ranges(make):
    X, y = make(500, 10, alpha=(0.5, 1.0), D=(1e-4, 1e-2), design="uniform", random_state=0)
    assert X.shape == (500, 10)
    assert np.all((y[:, 0] >= 0.5) & (y[:, 0] <= 1.0))
    assert np.all((y[:, 1] >= 1e-4) & (y[:, 1] <= 1e-2))
    # log-uniform: about half of the values below the geometric mean 1e-3
    assert 0.4 < np.mean(y[:, 1] < 1e-3) < 0.6
    _, y_fixed = make(5, 10, alpha=0.7, D=(1e-3, 1e-2), design="uniform")
    assert_array_equal(y_fixed[:, 0], 0.7)


# Bad input -------------------------------------------------------------------------


@SIMULATORS
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(alpha=0.0), ValueError, "alpha"),
        (dict(alpha=2.0), ValueError, "alpha"),
        (dict(alpha=[0.5, -1.0]), ValueError, "alpha"),
        (dict(alpha=np.nan), ValueError, "alpha must be finite"),
        (dict(alpha=[[0.5]]), ValueError, "alpha"),
        (dict(alpha="0.5"), TypeError, "alpha"),
        (dict(D=0.0), ValueError, "D must be positive"),
        (dict(D=-1.0), ValueError, "D must be positive"),
        (dict(D=np.inf), ValueError, "D must be finite"),
        (dict(D=[1.0, 2.0], alpha=[0.5, 1.0, 1.5]), ValueError, "inconsistent"),
        (dict(alpha=[0.5, 1.0], n_samples=3), ValueError, "inconsistent"),
        (dict(alpha=[]), ValueError, "at least one"),
        (dict(n_samples=2.0), TypeError, "n_samples"),
        (dict(n_samples=0), ValueError, "n_samples"),
        (dict(n_timesteps=1), ValueError, "n_timesteps"),
        (dict(n_timesteps=10.0), TypeError, "n_timesteps"),
        (dict(output="velocities"), ValueError, "output"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(random_state=np.random.RandomState(0)), TypeError, "random_state"),
        (dict(random_state=1.5), TypeError, "random_state"),
        (dict(dtype=np.int64), ValueError, "dtype"),
        (dict(out=[[0.0] * 10]), TypeError, "out"),
        (dict(out=np.zeros((1, 9))), ValueError, "out must have shape"),
        (dict(out=np.zeros((1, 10)), dtype=np.float32), ValueError, "dtype"),
    ],
)
def test_simulate_rejects_bad_input(simulate, kwargs, error, match):
    params = dict(alpha=0.5, D=1.0, n_timesteps=10) | kwargs
    with pytest.raises(error, match=match):
        simulate(**params)


def test_simulate_rejects_read_only_out():
    out = np.zeros((1, 10))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        simulate_fbm(0.5, 1.0, 10, out=out)


@pytest.mark.parametrize("make", [make_fbm, make_sbm])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_samples=211), ValueError, "multiple of the number of"),
        (dict(n_samples=210.0), TypeError, "n_samples"),
        (dict(n_samples=210, design="random"), ValueError, "design"),
        (dict(n_samples=210, shuffle="yes"), TypeError, "shuffle"),
        (dict(n_samples=2, alpha=[0.5, 2.5], D=1.0), ValueError, "alpha"),
        (dict(n_samples=2, alpha=1.0, D=[1.0, 0.0]), ValueError, "D must be"),
        (dict(n_samples=2, alpha=(1.5, 0.5), design="uniform"), ValueError, "alpha"),
        (dict(n_samples=2, D=(1, 2, 3), design="uniform"), ValueError, "D must be"),
        (dict(n_samples=2, alpha=(0.0, 1.0), design="uniform"), ValueError, "alpha"),
        (dict(n_samples=2, D=(0.0, 1.0), design="uniform"), ValueError, "D must be"),
        (dict(n_samples=210, output="x"), ValueError, "output"),
    ],
)
def test_make_rejects_bad_input(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(n_timesteps=10, **kwargs)


# Comparison with the AnDi challenge simulators --------------------------------------


def _andi_trajectories(method, alpha, D, n_timesteps, n):
    andi = pytest.importorskip(
        "andi_datasets.models_theory", reason="andi-datasets is not installed"
    )
    stochastic_random = pytest.importorskip("stochastic.random")
    np.random.seed(0)  # noqa: NPY002 (andi-datasets draws from the global state)
    stochastic_random.seed(0)  # and, for fBM, from stochastic's own generator
    model = andi.models_theory()
    return np.array([getattr(model, method)(n_timesteps, alpha) for _ in range(n)])


@pytest.mark.parametrize("alpha", [0.4, 1.0, 1.6])
def test_same_ensemble_msd_as_andi_datasets(alpha):
    # andi's fbm(T, alpha) is stochastic's fBM on [0, 1] sampled at T points:
    # MSD (t / (T-1))^alpha; times sqrt(2 D) (T-1)^(alpha/2) gives 2 D t^alpha,
    # the conversion of andi_datasets.utils_trajectories.normalize_fGN.
    # andi's sbm(T, alpha) (sigma = 1) returns cumsum(dx) - dx[0] with
    # Var dx[i] = (i+1)^alpha - i^alpha: the MSD is (t+1)^alpha - 1, our SBM
    # seen from t = 1, i.e. x(t+1) - x(1), times 1 / sqrt(2 D).
    n, n_timesteps, D = 2000, 32, 1e-3
    andi_fbm = _andi_trajectories("fbm", alpha, D, n_timesteps, n)
    andi_fbm *= np.sqrt(2 * D) * (n_timesteps - 1) ** (alpha / 2)
    andi_sbm = _andi_trajectories("sbm", alpha, D, n_timesteps, n) * np.sqrt(2 * D)
    ours_fbm = simulate_fbm(alpha, D, n_timesteps, n_samples=n, random_state=0)
    ours_sbm = simulate_sbm(alpha, D, n_timesteps + 1, n_samples=n, random_state=0)
    ours_sbm = ours_sbm[:, 1:] - ours_sbm[:, [1]]
    # Two independent ensemble means, each with relative std sqrt(2/n).
    tolerance = N_SIGMA * np.sqrt(2) * np.sqrt(2 / n)
    for ours, theirs in [(ours_fbm, andi_fbm), (ours_sbm, andi_sbm)]:
        _, msd_ours = ensemble_msd(ours)
        _, msd_theirs = ensemble_msd(theirs)
        assert np.all(np.abs(msd_ours / msd_theirs - 1) < tolerance)
