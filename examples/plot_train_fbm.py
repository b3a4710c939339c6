"""
Training SPIVAE on fractional Brownian motion
=============================================

Simulate fractional Brownian motion (fBM) on a grid of anomalous exponents
alpha and diffusion coefficients D, train :class:`~skspivae.SPIVAE` with a
staged beta annealing and watch the latent neurons that the decoder does not
need collapse to the prior.

This is the paper's fBM tutorial at a size that runs in well under a minute on
a CPU: 840 trajectories of 100 positions and 36 epochs instead of 100,000 of
400 and 144 epochs. Run ``skspivae demo`` for a five-minute version and
``skspivae demo --full`` for the paper's recipe.
"""

# %%
# Simulate the data
# -----------------
# Every (alpha, D) pair of the grid gets 40 trajectories. Rows of ``X`` are
# positions starting at 0; ``y`` holds (alpha, D) and is not used for training.
import matplotlib.pyplot as plt
import numpy as np

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.plotting import (
    plot_history,
    plot_kl_per_component,
    plot_latent_vs_parameters,
)

alphas = np.linspace(0.2, 1.8, 7)
Ds = np.geomspace(1e-4, 1e-2, 3)
X, y = make_fbm(40 * len(alphas) * len(Ds), n_timesteps=100, alpha=alphas, D=Ds,
                random_state=0)
print("X:", X.shape, "y:", y.shape)

# %%
# A few trajectories: superdiffusive ones (alpha > 1) wander further and more
# smoothly, subdiffusive ones (alpha < 1) turn back on themselves.
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for alpha in (0.2, 1.0, 1.8):
    row = np.flatnonzero((y[:, 0] == alpha) & (y[:, 1] == Ds[-1]))[0]
    ax.plot(X[row], label=f"alpha = {alpha:.1f}")
ax.set(xlabel="t", ylabel="x(t)", title=f"fBM, D = {Ds[-1]:g}")
ax.legend()

# %%
# Train with beta annealing
# -------------------------
# A first stage at beta = 0 lets the encoder use all six neurons; each later
# stage raises beta, and each runs its own one-cycle learning rate. This is the
# shape of the paper's ``"fbm_paper"`` schedule with fewer epochs per stage.
schedule = [(12, 0.0), (6, 1e-4), (6, 1e-3), (6, 2e-3), (6, 4e-3)]
est = SPIVAE(beta_schedule=schedule, batch_size=64, random_state=0, verbose=1)
est.fit(X)

# %%
# Training curves
# ---------------
# The loss is the negative log-likelihood per displacement plus beta times the
# KL divergence; the dashed line is beta. Per neuron, the KL divergence to the
# prior shows which neurons carry information: as beta grows, the unneeded
# ones fall by orders of magnitude.
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_history(est, ax=axes[0])
plot_kl_per_component(est, ax=axes[1], kl_threshold=est.kl_threshold)

# %%
# The neurons above ``kl_threshold`` (0.1 nats) on the validation split are
# the active ones.
print("KL per neuron (nats):", np.round(est.kl_divergence_, 3))
print("active neurons:", est.active_components_)

# %%
# What do the active neurons encode?
# ----------------------------------
# The means of the two neurons with the largest KL, on new trajectories,
# against alpha and log D, with the Spearman correlation in each panel. At this
# size the diffusion coefficient is learned first; the neuron for alpha needs
# the longer training of the paper's recipe.
X_test, y_test = make_fbm(10 * len(alphas) * len(Ds), n_timesteps=100,
                          alpha=alphas, D=Ds, random_state=1)
top_two = np.argsort(est.kl_divergence_)[::-1][:2]
axes = plot_latent_vs_parameters(est, y_test, X=X_test, neurons=top_two)
