"""
What do the latent neurons of SPIVAE encode?
============================================

Train small SPIVAE models on fractional Brownian motion (fBM) and read their
latent space with :mod:`skspivae.inspection` and :mod:`skspivae.plotting`, as
in the SPIVAE paper (arXiv:2307.11608):

1. the training curves and the KL divergence of each neuron, which shows the
   uninformative neurons collapsing to the prior as beta grows;
2. the statistics of each neuron (``Var(mu)`` and ``Mean(log sigma^2)``);
3. the latent means against the parameters alpha and log D, with their
   correlations, mutual information and linear readout;
4. the reconstruction loss over the (alpha, D) grid;
5. the mean squared displacement (MSD) of trajectories generated from chosen
   latents.

The runs are kept small enough for a laptop CPU (about two minutes in all);
the paper trains a 30 times larger model on 100,000 longer trajectories, where
two neurons survive, one for alpha and one for log D. At this budget the first
model below keeps only the neuron the loss needs most, log D; the second, fed
trajectories with a single D, finds the alpha neuron.

Run as a script, the example saves every figure as a PNG in the folder named
by the environment variable ``SKSPIVAE_FIGURES_DIR`` (default: the current
directory).
"""

# %%
# Simulate the data
# -----------------
# Train on parameters drawn uniformly (alpha) and log-uniformly (D), analyse on
# a grid with the same number of trajectories for each (alpha, D) pair.
import os
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.inspection import (
    group_by_parameters,
    latent_parameter_relations,
    latent_readout,
    loss_per_parameter,
    mutual_information,
    neuron_summary,
)
from skspivae.plotting import (
    plot_history,
    plot_kl_per_component,
    plot_latent_distributions,
    plot_latent_surface,
    plot_latent_vs_parameters,
    plot_loss_per_alpha,
    plot_msd,
    plot_neuron_summary,
)

# Save PNGs when run as a script, not while sphinx-gallery builds the docs.
FIGURES_DIR = os.environ.get("SKSPIVAE_FIGURES_DIR", ".")
SAVE_FIGURES = __name__ == "__main__" and "sphinx_gallery" not in sys.modules


def save(fig, name):
    """Save ``fig`` as ``FIGURES_DIR/name.png`` when run as a script."""
    if SAVE_FIGURES:
        os.makedirs(FIGURES_DIR, exist_ok=True)
        fig.savefig(os.path.join(FIGURES_DIR, f"{name}.png"), dpi=110)


torch.set_num_threads(1)  # tiny networks: one thread is fastest on a shared CPU

n_timesteps = 64
X_train, _ = make_fbm(
    1500,
    n_timesteps,
    alpha=(0.2, 1.8),
    D=(1e-4, 1e-2),
    design="uniform",
    random_state=0,
)
alphas, Ds = np.linspace(0.2, 1.8, 9), np.geomspace(1e-4, 1e-2, 3)
X, y = make_fbm(20 * len(alphas) * len(Ds), n_timesteps, alpha=alphas, D=Ds, random_state=1)
print(f"train on {len(X_train)} trajectories, analyse {len(X)} on a grid")

# A small architecture; the paper's defaults have 263k parameters.
SMALL = dict(
    encoder_channels=8,
    encoder_hidden=(32,),
    decoder_hidden=(32,),
    residual_channels=8,
    skip_channels=8,
    layer_size=2,
    pool_size=8,
    batch_size=16,
    lr=3e-3,
)

# %%
# Train with beta annealing
# -------------------------
# A first stage at beta = 0 lets the encoder use every neuron; the following
# stages raise beta so that the neurons the decoder does not need collapse to
# the prior N(0, 1).
est = SPIVAE(
    n_components=4,
    beta_schedule=[(10, 0.0), (10, 1e-2), (8, 1.5e-2)],
    random_state=0,
    **SMALL,
)
est.fit(X_train)

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_history(est, ax=axes[0])
plot_kl_per_component(est, ax=axes[1])
save(fig, "training")

# %%
# Which neurons survived?
# -----------------------
# Informative neurons have a large variance of their means over the data set
# and a small posterior variance; collapsed ones have mu near 0 and sigma^2
# near 1.
summary = neuron_summary(est, X)
print(summary)

fig, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained")
plot_neuron_summary(summary, axes=axes[0])
plot_latent_distributions(est, X=X, axes=axes[1])
save(fig, "neurons")

# %%
# What do they encode?
# --------------------
# Spearman correlation, R^2 of the best straight line and mutual information
# between each active neuron and alpha and log D, and how well a linear readout
# of the active neurons predicts each parameter on held-out trajectories.
neurons = summary.active_components if summary.active.any() else None
mu = est.transform(X)
relations = latent_parameter_relations(
    mu, y, neurons=neurons, feature_names=list(est.get_feature_names_out())
)
print(relations)
print(f"log D is read best by neuron {relations.best_neuron('log D')}")
for target in ("alpha", "log D"):
    print(latent_readout(mu, y, target=target, neurons=neurons))

axes = plot_latent_vs_parameters(est, y, X=X, bins=30)
save(axes.flat[0].figure, "latent_vs_parameters")

axes = plot_latent_surface(est, y, X=X)
save(axes[0].figure, "latent_surface")

# %%
# Reconstruction loss over the parameters
# ---------------------------------------
# The loss (negative ELBO per step) is set mostly by D, the scale of the
# displacements; this is why the log D neuron is the last to collapse.
loss = loss_per_parameter(est, X, y)
print(loss)
ax = plot_loss_per_alpha(loss)
save(ax.figure, "loss_per_alpha")

# %%
# The alpha neuron
# ----------------
# With D fixed, alpha is the only parameter of the process, and the same small
# model finds a neuron that follows it while the others collapse.
X_alpha, y_alpha = make_fbm(
    120 * len(alphas), n_timesteps, alpha=alphas, D=[1e-3], random_state=1
)
est_alpha = SPIVAE(
    n_components=3,
    beta_schedule=[(10, 0.0), (10, 1e-2), (8, 1.5e-2)],
    random_state=1,
    **SMALL,
)
est_alpha.fit(X_alpha)
summary_alpha = neuron_summary(est_alpha, X_alpha)
print(summary_alpha)
mu_alpha = est_alpha.transform(X_alpha)
relations_alpha = latent_parameter_relations(
    mu_alpha,
    y_alpha,
    neurons=summary_alpha.active_components,
    quantities=["alpha"],
    feature_names=list(est_alpha.get_feature_names_out()),
)
print(relations_alpha)
alpha_neuron = relations_alpha.best_neuron("alpha")

# The same dependence measured by the neural Donsker-Varadhan estimator.
mi = mutual_information(mu_alpha[:, alpha_neuron], y_alpha[:, 0], random_state=0)
print(f"I(neuron {alpha_neuron}; alpha) = {mi:.2f} nats (neural estimate)")

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_kl_per_component(est_alpha, ax=axes[0])
plot_latent_vs_parameters(
    est_alpha,
    y_alpha,
    X=X_alpha,
    neurons=[alpha_neuron],
    quantities=["alpha"],
    axes=axes[1:],
    bins=30,
)
save(fig, "alpha_neuron")

# %%
# Generate trajectories with a chosen alpha
# -----------------------------------------
# Fix the active neurons to the mean latent of the trajectories with a given
# alpha, set the collapsed ones to 0, generate, and compare the MSD with the
# theory 2 D t^alpha. The generated exponents follow the chosen alpha in order;
# a model this small draws them toward 1 at the extremes.
groups = group_by_parameters(mu_alpha, y_alpha)
active = summary_alpha.active
fig, ax = plt.subplots(layout="constrained")
for k, alpha in enumerate([0.4, 1.0, 1.6]):
    row = np.flatnonzero(np.isclose(groups.alpha, alpha))[0]
    z = np.where(active, groups.mean[row], 0.0)
    X_new = est_alpha.sample(300, z=z, n_timesteps=n_timesteps, random_state=k)
    plot_msd(X_new, alpha=alpha, D=1e-3, ax=ax, label=rf"generated, $\alpha$={alpha}")
save(fig, "msd_generated")

plt.show()
