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
