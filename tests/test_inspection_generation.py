"""generated_msd: generation from the mean latent of simulated trajectories."""

import numpy as np
import pytest

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.inspection import generated_msd


@pytest.fixture(scope="module")
def est():
    X, _ = make_fbm(64, 40, alpha=(0.5, 1.5), D=(1e-3, 1e-2), design="uniform",
                    random_state=0)
    return SPIVAE(n_components=2, max_epochs=2, random_state=0).fit(X)


def test_report_shapes_and_reproducibility(est):
    a = generated_msd(est, alpha=[0.5, 1.5], D=[1e-3], n_encode=20, n_samples=30,
                      random_state=0)
    b = generated_msd(est, alpha=[0.5, 1.5], D=[1e-3], n_encode=20, n_samples=30,
                      random_state=0)
    assert a.alpha.tolist() == [0.5, 1.5] and a.D.tolist() == [1e-3, 1e-3]
    assert a.z.shape == (2, 2) and a.samples[0].shape == (30, 40)
    np.testing.assert_array_equal(a.exponent, b.exponent)
    assert a.within().shape == (2,) and "exponent" in str(a)


def test_collapsed_neurons_are_set_to_zero(est):
    report = generated_msd(est, alpha=[1.0], D=[1e-3], n_encode=10, n_samples=5,
                           random_state=0)
    collapsed = np.setdiff1d(np.arange(est.n_components), est.active_components_)
    assert np.all(report.z[:, collapsed] == 0)


def test_bad_input(est):
    with pytest.raises(ValueError, match="process"):
        generated_msd(est, process="ctrw")
    with pytest.raises(ValueError, match="n_samples"):
        generated_msd(est, n_samples=0)
    with pytest.raises(ValueError, match="alpha"):
        generated_msd(est, alpha=[2.5], n_encode=2, n_samples=2)


def test_exact_msd_is_what_many_samples_give(est):
    report = generated_msd(est, alpha=[0.5, 1.5], D=[1e-3], n_encode=20, n_samples=4000,
                           random_state=0)
    assert np.isfinite(report.exact_exponent).all() and "exact" in str(report)
    # 4,000 samples of 40 positions: the fitted exponent's standard error is
    # below 0.01, the prefactor's a few percent.
    np.testing.assert_allclose(report.exponent, report.exact_exponent, atol=0.05)
    np.testing.assert_allclose(report.prefactor, report.exact_prefactor, rtol=0.15)
    assert report.within(exact=True).shape == (2,)


def test_wavenet_has_no_exact_msd():
    X, _ = make_fbm(32, 40, alpha=[1.0], D=[1e-3], random_state=0)
    wavenet = SPIVAE(n_components=2, decoder="wavenet", layer_size=2, max_epochs=1,
                     random_state=0).fit(X)
    assert not hasattr(wavenet, "increment_covariance")
    report = generated_msd(wavenet, alpha=[1.0], D=[1e-3], n_encode=5, n_samples=5,
                           random_state=0)
    assert np.isnan(report.exact_exponent).all() and "exact" not in str(report)
    assert not report.within(exact=True).any()
