"""Tests of skspivae.inspection._divergence: Donsker-Varadhan KL and mutual information.

Tolerances: with 3000 samples, a (64, 64) critic and 30-40 epochs the estimate
is within 0.1 nats of the truth (bivariate Gaussian rho = 0.8: 0.511 nats), and
independent samples give |estimate| < 0.05.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skspivae.inspection import DVDivergence, mutual_information


def gaussian_pairs(rho, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


def test_mutual_information_of_correlated_gaussians_matches_closed_form():
    ab = gaussian_pairs(0.8)
    truth = -0.5 * np.log(1 - 0.8**2)  # 0.511 nats
    mi = mutual_information(
        ab[:, 0], ab[:, 1], estimator=DVDivergence(max_epochs=30), random_state=0
    )
    assert mi == pytest.approx(truth, abs=0.1)


def test_mutual_information_of_independent_samples_is_about_zero():
    ab = gaussian_pairs(0.0)
    mi = mutual_information(
        ab[:, 0], ab[:, 1], estimator=DVDivergence(max_epochs=20), random_state=0
    )
    assert abs(mi) < 0.05


def test_kl_between_shifted_gaussians_matches_closed_form():
    rng = np.random.default_rng(1)
    P = rng.normal([1.0, 0.0], 1.0, size=(3000, 2))  # KL = 0.5 * |shift|^2 = 0.5
    Q = rng.normal(0.0, 1.0, size=(3000, 2))
    est = DVDivergence(max_epochs=30, random_state=0).fit(P, Q)
    assert est.estimate_ == pytest.approx(0.5, abs=0.1)
    # The bound of the fitted critic on fresh samples is close as well.
    P_new = rng.normal([1.0, 0.0], 1.0, size=(3000, 2))
    Q_new = rng.normal(0.0, 1.0, size=(3000, 2))
    assert est.score(P_new, Q_new) == pytest.approx(0.5, abs=0.1)


def test_fit_records_history_and_is_reproducible():
    ab = gaussian_pairs(0.5, n=500)
    state, n_threads = torch.random.get_rng_state(), torch.get_num_threads()
    params = {"max_epochs": 5, "batch_size": 100, "random_state": 3}
    first = DVDivergence(**params).fit(ab, ab[::-1])
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    assert torch.get_num_threads() == n_threads  # thread setting restored
    second = DVDivergence(**params).fit(ab, ab[::-1])
    assert first.estimate_ == second.estimate_
    assert len(first.history_) == first.n_iter_ == 5
    assert set(first.history_[0]) == {"epoch", "train_bound", "estimate"}
    assert first.estimate_ == first.history_[-1]["estimate"]
    assert first.n_features_in_ == 2


def test_standardization_leaves_the_divergence_unchanged():
    rng = np.random.default_rng(2)
    P, Q = rng.normal(1.0, 1.0, size=(2000, 1)), rng.normal(0.0, 1.0, size=(2000, 1))
    scaled = DVDivergence(max_epochs=20, random_state=0).fit(1e4 * P, 1e4 * Q)
    plain = DVDivergence(max_epochs=20, random_state=0).fit(P, Q)
    assert scaled.estimate_ == pytest.approx(plain.estimate_, abs=1e-3)


def test_estimator_behaves_like_a_scikit_learn_estimator():
    est = DVDivergence(hidden_layer_sizes=(8,), lr=0.01, random_state=0)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.score(np.zeros((3, 1)), np.zeros((3, 1)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"lr": -1.0}, "lr"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_fit_rejects_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        DVDivergence(**params).fit(np.zeros((4, 1)), np.ones((4, 1)))


def test_inputs_are_checked():
    est = DVDivergence(max_epochs=1)
    with pytest.raises(ValueError, match="same number of features"):
        est.fit(np.zeros((4, 1)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`Z`"):
        est.fit(np.zeros((4, 1, 1)), np.zeros((4, 1)))
    est.fit(np.arange(8.0), np.arange(8.0)[::-1])  # 1-D samples are one feature
    with pytest.raises(ValueError, match="`Z_ref` has 2 features"):
        est.score(np.zeros(4), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="same number of samples"):
        mutual_information(np.zeros(4), np.zeros(5))
    with pytest.raises(TypeError, match="estimator"):
        mutual_information(np.zeros(4), np.zeros(4), estimator="mine")
