"""Tests of skspivae.plotting: each figure draws the right artists and labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skspivae.inspection import (  # noqa: E402
    group_by_parameters,
    neuron_summary_from_moments,
)
from skspivae.plotting import (  # noqa: E402
    plot_history,
    plot_kl_per_component,
    plot_latent_distributions,
    plot_latent_surface,
    plot_latent_vs_parameters,
    plot_loss_per_alpha,
    plot_msd,
    plot_neuron_summary,
)

N_COMPONENTS = 4
N_EPOCHS = 8


class FakeSPIVAE(BaseEstimator):
    """Fitted-SPIVAE stand-in: neuron 0 reads alpha, neuron 2 reads log D."""

    def __init__(self, n_components=N_COMPONENTS, kl_threshold=0.1):
        self.n_components = n_components
        self.kl_threshold = kl_threshold

    def fit(self, X, y=None):
        self.active_components_ = np.array([0, 2])
        self.history_ = [
            {
                "epoch": e,
                "stage": int(e >= 4),
                "train_loss": 1.0 / (e + 1),
                "valid_loss": 1.2 / (e + 1),
                "valid_nll": 1.1 / (e + 1),
                "kl": 3.0,
                "kl_per_component": [1.0, 10.0**-e, 2.0, 10.0**-e],
                "beta": 0.0 if e < 4 else 1e-3,
                "lr": 1e-3,
                "seconds": 0.1,
            }
            for e in range(N_EPOCHS)
        ]
        return self

    def get_feature_names_out(self, input_features=None):
        return np.array([f"spivae{i}" for i in range(self.n_components)], dtype=object)

    def encode(self, X):
        X = np.asarray(X, dtype=float)
        mu = 1e-3 * X[:, 3 : 3 + self.n_components]
        mu[:, 0] = X[:, 1]
        mu[:, 2] = np.log(X[:, 2])
        logvar = np.zeros_like(mu)
        logvar[:, [0, 2]] = -5.0
        return mu, logvar

    def transform(self, X):
        return self.encode(X)[0]

    def score_samples(self, X):
        return -0.5 * np.log(4 * np.pi * np.e * np.asarray(X, dtype=float)[:, 2])


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    alpha, D = np.meshgrid(np.linspace(0.2, 1.8, 5), np.geomspace(1e-5, 1e-2, 3))
    y = np.repeat(np.column_stack([alpha.ravel(), D.ravel()]), 6, axis=0)
    X = rng.normal(size=(len(y), 30))
    X[:, 0], X[:, 1], X[:, 2] = 0.0, y[:, 0], y[:, 1]
    return FakeSPIVAE().fit(X), X, y


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_history_draws_losses_and_beta(data):
    est, _, _ = data
    for source in (est, est.history_):
        ax = plot_history(source)
        assert [line.get_label() for line in ax.get_lines()] == ["train", "validation"]
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), range(N_EPOCHS))
        assert ax.get_xlabel() == "epoch" and "loss" in ax.get_ylabel()
        assert ax.beta_ax.get_ylabel() == "beta"
        assert len(ax.beta_ax.get_lines()) == 1
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "train",
            "validation",
            "beta",
        ]


def test_plot_history_uses_given_axes_and_skips_missing_keys():
    fig, ax = plt.subplots()
    out = plot_history([{"train_loss": 1.0}, {"train_loss": 0.5}], ax=ax)
    assert out is ax
    assert len(ax.get_lines()) == 1
    assert not hasattr(ax, "beta_ax")


def test_plot_history_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        plot_history([])
    with pytest.raises(TypeError, match="history"):
        plot_history({"train_loss": [1.0]})
    with pytest.raises(NotFittedError):
        plot_history(FakeSPIVAE())


def test_plot_kl_per_component_has_one_log_line_per_neuron(data):
    est, _, _ = data
    ax = plot_kl_per_component(est)
    neuron_lines = [line for line in ax.get_lines() if line.get_label().startswith("spivae")]
    assert len(neuron_lines) == N_COMPONENTS
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch" and "KL" in ax.get_ylabel()
    # The threshold is drawn as one more (unlabelled) horizontal line.
    assert len(ax.get_lines()) == N_COMPONENTS + 1
    ax = plot_kl_per_component(est.history_, names=list("abcd"))
    assert [line.get_label() for line in ax.get_lines()] == list("abcd")
    with pytest.raises(ValueError, match="names"):
        plot_kl_per_component(est.history_, names=["a"])
    with pytest.raises(ValueError, match="kl_per_component"):
        plot_kl_per_component([{"epoch": 0}])


def test_plot_latent_distributions_histograms_each_neuron(data):
    est, X, _ = data
    axes = plot_latent_distributions(est, X=X, bins=10)
    assert len(axes) == 2
    assert len(axes[0].patches) == len(axes[1].patches) == N_COMPONENTS
    assert axes[0].get_xlabel() == r"$\mu$" and axes[1].get_xlabel() == r"$\sigma^2$"
    assert axes[1].get_xscale() == "log"
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == [f"spivae{i}" for i in range(N_COMPONENTS)]


def test_plot_latent_distributions_needs_logvar_and_x(data):
    est, _, _ = data
    with pytest.raises(TypeError, match="logvar"):
        plot_latent_distributions(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="`X` is required"):
        plot_latent_distributions(est)
    with pytest.raises(ValueError, match="axes"):
        plot_latent_distributions((np.zeros((5, 2)), np.zeros((5, 2))), axes=[None])


def test_plot_neuron_summary_draws_a_bar_per_neuron(data):
    est, X, _ = data
    mu, logvar = est.encode(X)
    for source, kwargs in (
        (est, {"X": X}),
        ((mu, logvar), {}),
        (neuron_summary_from_moments(mu, logvar), {}),
    ):
        axes = plot_neuron_summary(source, **kwargs)
        assert len(axes[0].patches) == len(axes[1].patches) == N_COMPONENTS
        assert "Var" in axes[0].get_ylabel() and "log" in axes[1].get_ylabel()
        heights = [p.get_height() for p in axes[1].patches]
        np.testing.assert_allclose(heights, [-5, 0, -5, 0])
        # Active neurons are coloured, collapsed ones grey.
        colors = {tuple(p.get_facecolor()) for p in axes[0].patches}
        assert len(colors) == 2
        plt.close("all")


def test_plot_latent_vs_parameters_grid_of_histograms(data):
    est, X, y = data
    axes = plot_latent_vs_parameters(est, y, X=X, bins=5)
    assert axes.shape == (2, 2)  # active neurons x (alpha, log D)
    assert [ax.get_xlabel() for ax in axes[0]] == ["alpha", "log D"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [
        r"$\mu$ of spivae0",
        r"$\mu$ of spivae2",
    ]
    for ax in axes.ravel():
        assert len([c for c in ax.collections if isinstance(c, QuadMesh)]) == 1
        assert ax.texts[0].get_text().startswith(r"$\rho_s$")
    assert axes[0, 0].texts[0].get_text().endswith("1.00")


def test_plot_latent_vs_parameters_with_sbm_quantities_and_arrays(data):
    _, X, y = data
    mu = FakeSPIVAE().fit(X).transform(X)
    axes = plot_latent_vs_parameters(mu, y, n_timesteps=30, bins=5)
    assert axes.shape == (N_COMPONENTS, 4)
    assert axes[0, 2].get_xlabel() == "log(alpha D T^(alpha-1))"
    with pytest.raises(ValueError, match="`y`"):
        plot_latent_vs_parameters(mu, y[:-1])


def test_plot_latent_surface_has_one_image_per_neuron(data):
    est, X, y = data
    axes = plot_latent_surface(est, y, X=X)
    assert len(axes) == 2
    for ax, name in zip(axes, ["spivae0", "spivae2"], strict=True):
        meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
        assert len(meshes) == 1
        # (n_D, n_alpha); matplotlib before 3.8 keeps the image flattened.
        assert np.asarray(meshes[0].get_array()).size == 3 * 5
        assert ax.get_yscale() == "log"
        assert ax.get_xlabel() == r"$\alpha$" and ax.get_ylabel() == "D"
        assert ax.get_title() == name
    # Neuron 0 encodes alpha: its image increases along alpha.
    image = [c for c in axes[0].collections if isinstance(c, QuadMesh)][0]
    row = np.asarray(image.get_array()).reshape(3, 5)[0]
    np.testing.assert_allclose(row, np.linspace(0.2, 1.8, 5))
    # Colorbars are extra axes of the figure.
    assert len(axes[0].figure.axes) == 4


def test_plot_loss_per_alpha_one_line_per_d(data):
    est, X, y = data
    for args, kwargs in (
        ((est, y), {"X": X}),
        ((-est.score_samples(X), y), {}),
        ((group_by_parameters(-est.score_samples(X), y, name="loss"),), {}),
    ):
        ax = plot_loss_per_alpha(*args, **kwargs)
        assert len(ax.get_lines()) == 3
        assert ax.get_xlabel() == r"$\alpha$" and "loss" in ax.get_ylabel()
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["D = 1e-05", "D = 0.00032", "D = 0.01"]
        np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), np.linspace(0.2, 1.8, 5))
        plt.close("all")
    with pytest.raises(ValueError, match="`y` is required"):
        plot_loss_per_alpha(np.zeros(5))
    with pytest.raises(ValueError, match="`X` is required"):
        plot_loss_per_alpha(est, y)


def test_plot_msd_against_theory():
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.normal(size=(500, 40)), axis=1)  # Brownian: 2 D t with D = 1/2
    X = np.column_stack([np.zeros(500), X])
    ax = plot_msd(X, alpha=1.0, D=0.5, label="generated")
    measured, theory = ax.get_lines()
    assert measured.get_label() == "generated"
    assert theory.get_linestyle() == "--"
    np.testing.assert_allclose(measured.get_ydata(), theory.get_ydata(), rtol=0.2)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "lag t" and ax.get_ylabel() == "MSD"
    # Several sets of trajectories on the same axes.
    plot_msd(2 * X, ax=ax)
    assert len(ax.get_lines()) == 3
    with pytest.raises(ValueError, match="both"):
        plot_msd(X, alpha=1.0)


@pytest.fixture
def one_thread():
    import torch

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network trains faster on one thread
    yield
    torch.set_num_threads(n_threads)


def test_plots_accept_a_real_fitted_spivae(one_thread):
    from skspivae import SPIVAE
    from skspivae.datasets import make_fbm

    X, y = make_fbm(32, 40, alpha=[0.5, 1.5], D=[1e-3, 1e-2], random_state=0)
    est = SPIVAE(
        n_components=2,
        encoder_channels=4,
        encoder_hidden=(8,),
        decoder_hidden=(8,),
        residual_channels=4,
        skip_channels=4,
        layer_size=2,
        pool_size=4,
        beta_schedule=[(1, 0.0), (1, 1e-3)],
        batch_size=16,
        random_state=0,
    ).fit(X)
    ax = plot_history(est)
    assert len(ax.get_lines()) == 2 and len(ax.beta_ax.get_lines()) == 1
    ax = plot_kl_per_component(est)
    assert len([c for c in ax.get_lines() if c.get_label().startswith("spivae")]) == 2
    axes = plot_latent_vs_parameters(est, y, X=X, neurons=[0, 1], bins=4)
    assert axes.shape == (2, 2)
    axes = plot_latent_surface(est, y, X=X, neurons=[0, 1])
    assert len(axes) == 2
    ax = plot_loss_per_alpha(est, y, X=X)
    assert len(ax.get_lines()) == 2
    axes = plot_neuron_summary(est, X=X)
    assert len(axes[0].patches) == 2
