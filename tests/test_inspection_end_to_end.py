"""Acceptance test: a small SPIVAE trained on fBM, read through the toolkit.

With the diffusion coefficient fixed, the only parameter of the process is
alpha, so beta annealing should leave a neuron that follows alpha and collapse
the rest. The data, the architecture and the schedule are tuned so this holds
with the fixed seed in about half a minute on two CPU cores.
"""

import numpy as np
import pytest
import torch

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.inspection import (
    latent_parameter_relations,
    latent_readout,
    loss_per_parameter,
    neuron_summary,
)

ALPHAS = np.linspace(0.2, 1.8, 9)
N_TIMESTEPS = 64


@pytest.fixture(scope="module")
def one_thread():
    # A tiny network on a shared CPU trains several times faster on one thread.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def fitted(one_thread):
    X, y = make_fbm(120 * len(ALPHAS), N_TIMESTEPS, alpha=ALPHAS, D=[1e-3], random_state=1)
    est = SPIVAE(
        n_components=3,
        encoder_channels=8,
        encoder_hidden=(32,),
        decoder_hidden=(32,),
        residual_channels=8,
        skip_channels=8,
        layer_size=2,
        pool_size=8,
        beta_schedule=[(10, 0.0), (10, 1e-2), (8, 1.5e-2)],
        batch_size=16,
        lr=3e-3,
        random_state=1,
    )
    return est.fit(X), X, y


def test_annealing_leaves_an_alpha_neuron_and_collapses_the_rest(fitted):
    est, X, y = fitted
    summary = neuron_summary(est, X)
    active = summary.active_components
    assert active.size >= 1
    np.testing.assert_array_equal(active, est.active_components_)

    relations = latent_parameter_relations(est.transform(X), y, neurons=active)
    alpha_neuron = relations.best_neuron("alpha")
    assert abs(relations.get(alpha_neuron, "alpha")) > 0.8

    collapsed = ~summary.active
    assert collapsed.any()
    assert summary.kl[collapsed].max() < 0.2 * summary.kl[active].min()
    # Collapsed neurons sit at the prior: tiny Var(mu), log sigma^2 near 0.
    assert np.all(summary.var_mu[collapsed] < 0.2 * summary.var_mu[active].min())
    assert np.all(summary.mean_logvar[collapsed] > summary.mean_logvar[active].max())


def test_history_shows_the_collapse(fitted):
    est, _, _ = fitted
    kl = np.array([epoch["kl_per_component"] for epoch in est.history_])
    collapsed = np.setdiff1d(np.arange(est.n_components), est.active_components_)
    # At beta = 0 every neuron carries information; at the end the collapsed
    # ones carry much less than they did.
    assert np.all(kl[-1, collapsed] < 0.1 * kl[9, collapsed])


def test_readout_and_loss_through_the_toolkit(fitted):
    est, X, y = fitted
    readout = latent_readout(est.transform(X), y, neurons=est.active_components_)
    assert readout.r2 > 0.6
    groups = loss_per_parameter(est, X, y)
    assert groups.mean.shape == (len(ALPHAS),)
    assert np.all(np.isfinite(groups.mean))
