"""Exact likelihoods of fBM and SBM and the maximum-likelihood estimates: the
physical limits the learning benchmark compares the latent with."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import linalg, stats

from skspivae.datasets import fgn_autocovariance, make_fbm, make_sbm
from skspivae.inspection import fbm_log_likelihood, fbm_mle, sbm_log_likelihood, sbm_mle


@given(alpha=st.floats(0.05, 1.95), log10_D=st.floats(-6, 1))
def test_fbm_log_likelihood_is_the_multivariate_normal_density(alpha, log10_D):
    D = 10.0**log10_D
    X, _ = make_fbm(3, 30, alpha=[alpha], D=[D], random_state=0)
    cov = linalg.toeplitz(fgn_autocovariance(alpha, D, 29))
    expected = stats.multivariate_normal(cov=cov).logpdf(np.diff(X, axis=1))
    np.testing.assert_allclose(fbm_log_likelihood(X, alpha, D), expected, rtol=1e-8)


def test_sbm_log_likelihood_is_the_sum_of_independent_normals():
    X, y = make_sbm(4, 20, alpha=[0.5, 1.5], D=[1e-2], random_state=0)
    dx, t = np.diff(X, axis=1), np.arange(20.0)
    expected = [stats.norm(scale=np.sqrt(2 * d * np.diff(t**a))).logpdf(row).sum()
                for row, (a, d) in zip(dx, y, strict=True)]
    np.testing.assert_allclose(sbm_log_likelihood(X, y[:, 0], y[:, 1]), expected)


@pytest.mark.parametrize("make, mle", [(make_fbm, fbm_mle), (make_sbm, sbm_mle)])
def test_mle_is_consistent(make, mle):
    """The estimates improve with the length and are unbiased on average."""
    errors = []
    for T in (50, 400):
        X, y = make(300, T, alpha=[0.6, 1.4], D=[1e-3, 1e-1], random_state=1)
        alpha, D = mle(X)
        errors.append(np.abs(alpha - y[:, 0]).mean())
        assert abs(np.mean(alpha - y[:, 0])) < 0.05
        assert abs(np.mean(np.log(D / y[:, 1]))) < 0.3
    assert errors[1] < 0.6 * errors[0]


def test_likelihood_input_errors():
    X, _ = make_fbm(2, 10, alpha=[1.0], D=[1.0], random_state=0)
    with pytest.raises(ValueError, match="alpha"):
        fbm_log_likelihood(X, 2.5, 1.0)
    with pytest.raises(ValueError, match="D"):
        sbm_log_likelihood(X, 1.0, -1.0)
    with pytest.raises(ValueError, match="alpha_grid"):
        fbm_mle(X, alpha_grid=[0.5, 0.4, 0.6])
