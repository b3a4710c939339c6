"""Tests of the ensemble and time-averaged MSD and the exponent fit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from skspivae.inspection import (
    ensemble_msd,
    fit_anomalous_exponent,
    time_averaged_msd,
)
from skspivae.inspection._trajectories import _tamsd_direct, _tamsd_fft


def _naive_tamsd(X, lags):
    return np.array([[np.mean((x[lag:] - x[:-lag]) ** 2) for lag in lags] for x in X])


@given(
    n_samples=st.integers(1, 5),
    n_timesteps=st.integers(2, 50),
    offset=st.floats(-1e3, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_msds_match_their_definitions(n_samples, n_timesteps, offset, seed):
    X = np.random.default_rng(seed).standard_normal((n_samples, n_timesteps))
    X = np.cumsum(X, axis=1) + offset  # the MSDs do not depend on the origin
    lags, msd = ensemble_msd(X)
    assert_array_equal(lags, np.arange(1, n_timesteps))
    assert_allclose(msd, np.mean((X[:, 1:] - X[:, :1]) ** 2, axis=0))
    expected = _naive_tamsd(X, lags)
    for method in (_tamsd_direct, _tamsd_fft):
        assert_allclose(method(X, lags), expected, rtol=1e-8, atol=1e-9)
    lags, tamsd = time_averaged_msd(X)
    assert tamsd.shape == (n_samples, n_timesteps - 1)
    assert_allclose(tamsd, expected, rtol=1e-8, atol=1e-9)


def test_msds_of_float32_input_are_float64_and_chunked(monkeypatch):
    monkeypatch.setattr("skspivae.inspection._trajectories._CHUNK", 3)
    X = np.cumsum(np.random.default_rng(0).standard_normal((10, 30)), axis=1)
    lags, msd = ensemble_msd(X.astype(np.float32), lags=[1, 5, 29])
    assert msd.dtype == np.float64
    assert_allclose(msd, ensemble_msd(X, lags=lags)[1], rtol=1e-5)
    _, tamsd = time_averaged_msd(X.astype(np.float32), lags=[1, 5, 29])
    assert tamsd.dtype == np.float64 and tamsd.shape == (10, 3)
    assert_allclose(tamsd, _naive_tamsd(X, [1, 5, 29]), rtol=1e-5)


@given(
    alpha=st.floats(0.05, 1.95),
    D=st.floats(1e-6, 1e3),
    n_curves=st.integers(1, 4),
)
def test_fit_recovers_exact_power_laws(alpha, D, n_curves):
    lags = np.arange(1, 40)
    scale = np.arange(1, n_curves + 1)[:, None]
    msd = 2 * D * scale * lags**alpha
    fitted_alpha, fitted_D = fit_anomalous_exponent(lags, msd)
    assert fitted_alpha.shape == fitted_D.shape == (n_curves,)
    assert_allclose(fitted_alpha, alpha, atol=1e-9)
    assert_allclose(fitted_D, D * scale[:, 0], rtol=1e-9)
    single = fit_anomalous_exponent(lags, msd[0], lag_range=(2, 10))
    assert isinstance(single[0], float)
    assert_allclose(single, (alpha, D), rtol=1e-9)


def test_fit_lag_range_selects_lags():
    lags = np.arange(1, 21)
    msd = np.where(lags <= 10, lags**0.5, 10**0.5 * (lags / 10) ** 1.5)
    assert_allclose(fit_anomalous_exponent(lags, msd, lag_range=(1, 10))[0], 0.5)
    assert_allclose(fit_anomalous_exponent(lags, msd, lag_range=(10, 20))[0], 1.5)


@pytest.mark.parametrize("function", [ensemble_msd, time_averaged_msd])
@pytest.mark.parametrize(
    "X, lags, error, match",
    [
        (np.zeros((2, 1)), None, ValueError, "minimum of 2"),
        (np.zeros(5), None, ValueError, "2D array"),
        ([[0.0, np.nan]], None, ValueError, "NaN"),
        (np.zeros((2, 5)), [0], ValueError, r"lags must lie in \[1, 4\]"),
        (np.zeros((2, 5)), [5], ValueError, "lags must lie"),
        (np.zeros((2, 5)), [1.5], TypeError, "lags must be integers"),
        (np.zeros((2, 5)), [[1]], ValueError, "1-D"),
        (np.zeros((2, 5)), [], ValueError, "non-empty"),
    ],
)
def test_msd_rejects_bad_input(function, X, lags, error, match):
    with pytest.raises(error, match=match):
        function(X, lags=lags)


@pytest.mark.parametrize(
    "lags, msd, kwargs, match",
    [
        ([1, 2], [1.0, 2.0, 3.0], {}, "shape"),
        ([[1, 2]], [1.0, 2.0], {}, "shape"),
        ([1, 2], np.ones((2, 2, 2)), {}, "shape"),
        ([0, 1], [1.0, 2.0], {}, "lags must be positive"),
        ([1, 2], [0.0, 2.0], {}, "msd must be positive"),
        ([1, 2], [np.inf, 2.0], {}, "msd must be positive and finite"),
        ([1, 1], [1.0, 2.0], {}, "at least 2 distinct lags"),
        ([1, 2, 3], [1.0, 2.0, 3.0], dict(lag_range=(5, 9)), "at least 2"),
    ],
)
def test_fit_rejects_bad_input(lags, msd, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_anomalous_exponent(lags, msd, **kwargs)
