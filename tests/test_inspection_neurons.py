"""Tests of skspivae.inspection._neurons: per-neuron summaries, relations, readout,
statistics over the (alpha, D) grid."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsRegressor

from skspivae.inspection import (
    LatentRelations,
    NeuronSummary,
    ParameterGroups,
    group_by_parameters,
    latent_parameter_relations,
    latent_readout,
    loss_per_parameter,
    neuron_summary,
    neuron_summary_from_moments,
    parameter_quantities,
)

T = 50


class FakeSPIVAE(BaseEstimator):
    """Stands in for a fitted SPIVAE on data from :func:`fake_data`.

    Neuron 0 reads alpha, neuron 1 reads log D (both with a little noise and a
    small posterior variance); the other neurons are collapsed to the prior.
    """

    def __init__(self, n_components=4, kl_threshold=0.1):
        self.n_components = n_components
        self.kl_threshold = kl_threshold

    def fit(self, X, y=None):
        self.active_components_ = np.array([0, 1])
        self.kl_divergence_ = np.array([2.0, 3.0] + [1e-3] * (self.n_components - 2))
        return self

    def get_feature_names_out(self, input_features=None):
        return np.array([f"spivae{i}" for i in range(self.n_components)], dtype=object)

    def encode(self, X):
        X = np.asarray(X, dtype=float)
        noise = X[:, 3 : 3 + self.n_components]
        mu = 1e-3 * noise
        mu[:, 0] = X[:, 1] + 0.05 * noise[:, 0]
        mu[:, 1] = np.log(X[:, 2]) + 0.05 * noise[:, 1]
        logvar = np.full_like(mu, -1e-3)
        logvar[:, :2] = -6.0
        return mu, logvar

    def transform(self, X):
        return self.encode(X)[0]

    def score_samples(self, X):
        # Entropy of a Normal increment of variance 2 D: the loss depends on D.
        D = np.asarray(X, dtype=float)[:, 2]
        return -0.5 * np.log(2 * np.pi * np.e * 2 * D)


def fake_data(n_per_pair=8, n_components=4, seed=0):
    """(X, y) on a small (alpha, D) grid; X carries alpha and D for FakeSPIVAE."""
    rng = np.random.default_rng(seed)
    alpha, D = np.meshgrid(np.linspace(0.2, 1.8, 5), np.geomspace(1e-5, 1e-2, 4))
    y = np.repeat(np.column_stack([alpha.ravel(), D.ravel()]), n_per_pair, axis=0)
    X = rng.normal(size=(len(y), T))
    X[:, 0], X[:, 1], X[:, 2] = 0.0, y[:, 0], y[:, 1]
    return X, y


@pytest.fixture
def fitted():
    X, y = fake_data()
    return FakeSPIVAE().fit(X), X, y


# --------------------------------------------------------------------------
# Per-neuron summaries
# --------------------------------------------------------------------------
def test_neuron_summary_from_moments_matches_gaussian_kl():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(200, 3)) * [2.0, 0.5, 0.0]
    logvar = np.tile([-3.0, -1.0, 0.0], (200, 1))
    summary = neuron_summary_from_moments(mu, logvar)
    expected = 0.5 * (np.mean(mu**2, axis=0) + np.exp([-3.0, -1.0, 0.0]) + [2, 0, -1])
    np.testing.assert_allclose(summary.kl, expected)
    np.testing.assert_allclose(summary.var_mu, mu.var(axis=0))
    np.testing.assert_allclose(summary.mean_logvar, [-3.0, -1.0, 0.0])
    assert summary.kl[2] == 0.0
    np.testing.assert_array_equal(summary.active_components, [0, 1])
    assert summary.feature_names == ["z0", "z1", "z2"]


def test_neuron_summary_threshold_decides_activity():
    mu = np.zeros((10, 2))
    logvar = np.tile([-1.0, 0.0], (10, 1))  # KL = 0.5 * (e^-1 + 1 - 1) = 0.184
    assert neuron_summary_from_moments(mu, logvar).active.tolist() == [True, False]
    summary = neuron_summary_from_moments(mu, logvar, kl_threshold=0.2)
    assert summary.active.tolist() == [False, False]


def test_neuron_summary_of_estimator_finds_active_neurons(fitted):
    est, X, _ = fitted
    summary = neuron_summary(est, X)
    assert isinstance(summary, NeuronSummary)
    np.testing.assert_array_equal(summary.active_components, [0, 1])
    assert summary.kl_threshold == est.kl_threshold
    assert summary.feature_names == ["spivae0", "spivae1", "spivae2", "spivae3"]
    assert np.all(summary.kl[:2] > 100 * summary.kl[2:])
    assert np.all(summary.mean_logvar[:2] < summary.mean_logvar[2:])
    assert neuron_summary(est, X, kl_threshold=1e9).active.sum() == 0


def test_neuron_summary_repr_is_a_table(fitted):
    est, X, _ = fitted
    text = repr(neuron_summary(est, X))
    lines = text.splitlines()
    assert lines[0].startswith("NeuronSummary(2 of 4 active")
    assert lines[1].split() == ["neuron", "KL", "Var(mu)", "Mean(log", "s2)", "active"]
    assert len(lines) == 2 + 4
    assert lines[2].startswith("spivae0") and lines[2].endswith("yes")
    assert lines[-1].endswith("no")


def test_neuron_summary_rejects_unfitted_and_non_estimators():
    X, _ = fake_data()
    with pytest.raises(NotFittedError):
        neuron_summary(FakeSPIVAE(), X)
    with pytest.raises(TypeError, match="estimator"):
        neuron_summary(object(), X)


@pytest.mark.parametrize(
    ("mu", "logvar", "match"),
    [
        (np.zeros(5), np.zeros(5), "mu"),
        (np.zeros((5, 2)), np.zeros((4, 2)), "logvar"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "same shape"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), "mu"),
    ],
)
def test_neuron_summary_from_moments_rejects_bad_shapes(mu, logvar, match):
    with pytest.raises(ValueError, match=match):
        neuron_summary_from_moments(mu, logvar)


@given(
    arrays(np.float64, (7, 3), elements=st.floats(-5, 5)),
    arrays(np.float64, (7, 3), elements=st.floats(-8, 3)),
)
def test_neuron_kl_is_non_negative(mu, logvar):
    assert np.all(neuron_summary_from_moments(mu, logvar).kl >= -1e-12)


# --------------------------------------------------------------------------
# Quantities
# --------------------------------------------------------------------------
def test_parameter_quantities_default_and_sbm_combinations():
    y = np.array([[0.5, 1e-3], [1.5, 1e-2]])
    assert list(parameter_quantities(y)) == ["alpha", "log D"]
    q = parameter_quantities(y, n_timesteps=400)
    assert list(q) == [
        "alpha",
        "log D",
        "log(alpha D T^(alpha-1))",
        "log(alpha D T^(1-alpha))",
    ]
    alpha, D = y.T
    np.testing.assert_allclose(q["log D"], np.log(D))
    np.testing.assert_allclose(
        q["log(alpha D T^(alpha-1))"], np.log(alpha * D * 400.0 ** (alpha - 1))
    )
    np.testing.assert_allclose(
        q["log(alpha D T^(1-alpha))"], np.log(alpha * D * 400.0 ** (1 - alpha))
    )


def test_parameter_quantities_accepts_names_and_callables():
    y = np.array([[0.5, 1e-3], [1.5, 1e-2]])
    q = parameter_quantities(y, quantities={"H": lambda y: y[:, 0] / 2})
    np.testing.assert_allclose(q["H"], [0.25, 0.75])
    q = parameter_quantities(y, quantities="alpha")
    assert list(q) == ["alpha"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"quantities": ["log(alpha D T^(alpha-1))"]}, ValueError, "n_timesteps"),
        ({"quantities": ["beta"]}, ValueError, "Unknown quantity"),
        ({"quantities": [("bad", lambda y: y)]}, ValueError, "shape"),
        ({"quantities": [3]}, TypeError, "quantities"),
        ({"n_timesteps": 1.5}, ValueError, "n_timesteps"),
    ],
)
def test_parameter_quantities_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        parameter_quantities(np.array([[0.5, 1e-3], [1.5, 1e-2]]), **kwargs)


def test_parameter_quantities_needs_two_columns_and_positive_d():
    with pytest.raises(ValueError, match="`y` must have 2 columns"):
        parameter_quantities(np.ones((4, 3)))
    with pytest.raises(ValueError, match="`y` must be a 2-D"):
        parameter_quantities(np.ones(4))
    with pytest.raises(ValueError, match="positive"):
        parameter_quantities(np.array([[0.5, -1.0]]))


# --------------------------------------------------------------------------
# Relations
# --------------------------------------------------------------------------
def synthetic_latents(n=600, seed=0):
    """Neuron 0 ~ noise, 1 ~ -alpha, 2 ~ exp(log D) (monotone, not linear)."""
    rng = np.random.default_rng(seed)
    y = np.column_stack([rng.uniform(0.2, 1.8, n), 10 ** rng.uniform(-5, -2, n)])
    mu = np.column_stack(
        [
            rng.normal(size=n),
            -y[:, 0] + 0.02 * rng.normal(size=n),
            np.exp(np.log(y[:, 1]) / 3),
        ]
    )
    return mu, y


def test_relations_find_the_neuron_of_each_parameter():
    mu, y = synthetic_latents()
    relations = latent_parameter_relations(mu, y)
    assert isinstance(relations, LatentRelations)
    assert relations.quantities == ["alpha", "log D"]
    assert relations.spearman.shape == relations.r2.shape == (3, 2)
    assert relations.best_neuron("alpha") == 1
    assert relations.best_neuron("log D") == 2
    assert relations.best_neuron("log D", metric="mutual_info") == 2
    assert relations.get(1, "alpha") < -0.99
    assert relations.get(2, "log D") == pytest.approx(1.0)
    # Monotone but curved: perfect rank correlation, imperfect straight line.
    assert 0.5 < relations.get(2, "log D", metric="r2") < 0.99
    assert relations.get(1, "alpha", metric="r2") > 0.99
    assert abs(relations.get(0, "alpha")) < 0.15
    assert relations.get(0, "alpha", metric="mutual_info") < 0.1
    assert relations.get(1, "alpha", metric="mutual_info") > 1.0


def test_relations_subset_of_neurons_and_sbm_quantities():
    rng = np.random.default_rng(1)
    y = np.column_stack([rng.uniform(0.2, 1.8, 300), 10 ** rng.uniform(-5, -2, 300)])
    late = np.log(y[:, 0] * y[:, 1] * T ** (y[:, 0] - 1))
    mu = np.column_stack([rng.normal(size=300), rng.normal(size=300), late])
    relations = latent_parameter_relations(mu, y, neurons=[0, 2], n_timesteps=T)
    np.testing.assert_array_equal(relations.neurons, [0, 2])
    assert len(relations.quantities) == 4
    assert relations.best_neuron("log(alpha D T^(alpha-1))") == 2
    assert relations.get(2, "log(alpha D T^(alpha-1))", metric="r2") == pytest.approx(1)
    with pytest.raises(ValueError, match="not analysed"):
        relations.get(1, "alpha")


def test_relations_are_reproducible_and_repr_is_a_table():
    mu, y = synthetic_latents(n=200)
    first = latent_parameter_relations(mu, y, random_state=3)
    second = latent_parameter_relations(mu, y, random_state=3)
    np.testing.assert_array_equal(first.mutual_info, second.mutual_info)
    lines = repr(first).splitlines()
    assert lines[0] == "LatentRelations(3 neurons x 2 quantities)"
    assert lines[1].split()[:3] == ["neuron", "quantity", "spearman"]
    assert len(lines) == 2 + 3 * 2


def test_relations_ignore_constant_neurons():
    mu, y = synthetic_latents(n=200)
    mu[:, 1] = 0.0
    relations = latent_parameter_relations(mu, y)
    assert np.isnan(relations.get(1, "alpha"))
    assert relations.best_neuron("alpha") != 1


def test_relations_estimator_workflow(fitted):
    est, X, y = fitted
    relations = latent_parameter_relations(
        est.transform(X),
        y,
        neurons=est.active_components_,
        feature_names=list(est.get_feature_names_out()),
    )
    assert relations.feature_names == ["spivae0", "spivae1"]
    assert relations.best_neuron("alpha") == 0
    assert relations.best_neuron("log D") == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": np.ones((599, 2))}, ValueError, "`y` has 599 samples"),
        ({"y": np.ones((600, 1))}, ValueError, "`y` must have 2 columns"),
        ({"mu": np.ones(600)}, ValueError, "`mu` must be a 2-D"),
        ({"neurons": [5]}, ValueError, "neurons"),
        ({"neurons": []}, ValueError, "neurons"),
        ({"neurons": [0.5]}, TypeError, "neurons"),
        ({"feature_names": ["a"]}, ValueError, "feature_names"),
    ],
)
def test_relations_reject_bad_input(kwargs, error, match):
    mu, y = synthetic_latents()
    args = {"mu": mu, "y": y} | kwargs
    with pytest.raises(error, match=match):
        latent_parameter_relations(args.pop("mu"), args.pop("y"), **args)


def test_best_neuron_rejects_unknown_quantity_and_metric():
    relations = latent_parameter_relations(*synthetic_latents(n=100))
    with pytest.raises(ValueError, match="Unknown quantity"):
        relations.best_neuron("D")
    with pytest.raises(ValueError, match="metric"):
        relations.best_neuron("alpha", metric="pearson")


# --------------------------------------------------------------------------
# Readout
# --------------------------------------------------------------------------
def test_linear_readout_of_alpha_is_accurate_on_held_out_data():
    mu, y = synthetic_latents()
    result = latent_readout(mu, y, target="alpha", neurons=[1])
    assert result.target == "alpha"
    assert result.n_train == 450 and result.n_test == 150
    assert result.r2 > 0.99 and result.rmse < 0.05
    assert result.regressor.coef_[0] == pytest.approx(-1.0, abs=0.02)


def test_readout_of_noise_has_no_skill():
    mu, y = synthetic_latents()
    result = latent_readout(mu, y, target="alpha", neurons=[0])
    assert result.r2 < 0.05
    assert result.rmse == pytest.approx(np.std(y[:, 0]), rel=0.2)


def test_readout_accepts_any_regressor_and_target():
    mu, y = synthetic_latents()
    regressor = KNeighborsRegressor(n_neighbors=5)
    result = latent_readout(
        mu,
        y,
        target="log D",
        neurons=[2],
        regressor=regressor,
        test_size=100,
        random_state=1,
    )
    assert result.n_test == 100
    assert result.r2 > 0.95
    assert not hasattr(regressor, "n_features_in_")  # the given one is cloned
    custom = latent_readout(mu, y, target=("minus alpha", lambda y: -y[:, 0]))
    assert custom.target == "minus alpha" and custom.r2 > 0.99


def test_readout_rejects_bad_target():
    mu, y = synthetic_latents(n=50)
    with pytest.raises(TypeError, match="target"):
        latent_readout(mu, y, target=0)
    with pytest.raises(ValueError, match="Unknown quantity"):
        latent_readout(mu, y, target="D")


# --------------------------------------------------------------------------
# Statistics over the (alpha, D) grid
# --------------------------------------------------------------------------
def test_group_by_parameters_means_and_stds():
    y = np.array([[1.0, 1e-3], [0.5, 1e-3], [1.0, 1e-3], [0.5, 1e-2]])
    groups = group_by_parameters([1.0, 2.0, 3.0, 4.0], y, name="loss")
    assert isinstance(groups, ParameterGroups)
    np.testing.assert_array_equal(groups.alpha, [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(groups.D, [1e-3, 1e-2, 1e-3])
    np.testing.assert_allclose(groups.mean, [2.0, 4.0, 2.0])
    np.testing.assert_allclose(groups.std, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(groups.count, [1, 1, 2])
    alphas, Ds, grid = groups.to_grid()
    np.testing.assert_array_equal(alphas, [0.5, 1.0])
    np.testing.assert_array_equal(Ds, [1e-3, 1e-2])
    np.testing.assert_array_equal(grid, [[2.0, 4.0], [2.0, np.nan]])
    assert repr(groups).splitlines()[0] == "ParameterGroups(3 (alpha, D) pairs)"
    assert "mean loss" in repr(groups)


def test_group_by_parameters_with_several_outputs():
    X, y = fake_data()
    mu = FakeSPIVAE().fit(X).transform(X)
    groups = group_by_parameters(mu, y)
    assert groups.mean.shape == (20, 4)
    _, _, grid = groups.to_grid()
    assert grid.shape == (5, 4, 4)
    np.testing.assert_allclose(grid[:, 0, 0], np.linspace(0.2, 1.8, 5), atol=0.1)


@given(st.integers(0, 2**16), st.integers(2, 40))
def test_group_by_parameters_is_invariant_to_sample_order(seed, n):
    rng = np.random.default_rng(seed)
    y = np.column_stack([rng.integers(0, 3, n) / 2, 10.0 ** -rng.integers(2, 4, n)])
    values = rng.normal(size=n)
    order = rng.permutation(n)
    a, b = group_by_parameters(values, y), group_by_parameters(values[order], y[order])
    np.testing.assert_allclose(a.mean, b.mean)
    np.testing.assert_allclose(a.std, b.std, atol=1e-12)
    assert a.count.sum() == n


def test_group_by_parameters_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="`y` has 3 samples"):
        group_by_parameters([1.0, 2.0], np.ones((3, 2)))
    with pytest.raises(ValueError, match="`values`"):
        group_by_parameters(np.ones((2, 2, 2)), np.ones((2, 2)))


def test_loss_per_parameter_depends_on_d(fitted):
    est, X, y = fitted
    groups = loss_per_parameter(est, X, y)
    assert groups.name == "loss"
    alphas, Ds, grid = groups.to_grid()
    assert grid.shape == (5, 4)
    expected = 0.5 * np.log(2 * np.pi * np.e * 2 * Ds)
    np.testing.assert_allclose(grid, np.tile(expected, (5, 1)))
    np.testing.assert_allclose(groups.std, 0.0, atol=1e-12)
    np.testing.assert_array_equal(groups.count, 8)


def test_loss_per_parameter_checks_inputs(fitted):
    est, X, y = fitted
    with pytest.raises(ValueError, match="`y`"):
        loss_per_parameter(est, X, y[:-1])
    with pytest.raises(NotFittedError):
        loss_per_parameter(FakeSPIVAE(), X, y)


# --------------------------------------------------------------------------
# With a real (tiny, barely trained) SPIVAE
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_spivae():
    import torch

    from skspivae import SPIVAE
    from skspivae.datasets import make_fbm

    X, y = make_fbm(48, 40, alpha=[0.5, 1.5], D=[1e-3, 1e-2], random_state=0)
    est = SPIVAE(
        n_components=3,
        encoder_channels=4,
        encoder_hidden=(8,),
        decoder_hidden=(8,),
        residual_channels=4,
        skip_channels=4,
        layer_size=2,
        pool_size=4,
        max_epochs=2,
        batch_size=16,
        validation_fraction=0.0,
        random_state=0,
    )
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network trains faster on one thread
    try:
        est.fit(X)
    finally:
        torch.set_num_threads(n_threads)
    return est, X, y


def test_neuron_summary_agrees_with_the_estimator_kl(tiny_spivae):
    est, X, _ = tiny_spivae
    summary = neuron_summary(est, X)
    # With no validation split the estimator's KL is measured on X as well.
    np.testing.assert_allclose(summary.kl, est.kl_divergence_, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(summary.active_components, est.active_components_)
    assert summary.feature_names == list(est.get_feature_names_out())


def test_toolkit_runs_on_a_real_estimator(tiny_spivae):
    est, X, y = tiny_spivae
    relations = latent_parameter_relations(est.transform(X), y)
    assert relations.spearman.shape == (3, 2)
    groups = loss_per_parameter(est, X, y)
    assert groups.count.tolist() == [12, 12, 12, 12]
    np.testing.assert_allclose(
        np.sort(groups.mean),
        np.sort(-group_by_parameters(est.score_samples(X), y).mean),
    )
