"""
Analysing a model trained on scaled Brownian motion
===================================================

Scaled Brownian motion (SBM) has independent Gaussian increments with a
diffusivity that changes in time, D(t) = alpha D t^(alpha - 1). Its
trajectories are described by alpha and D, but a model that only sees
trajectories of one length T may prefer other combinations of the two: the
paper finds two neurons, one nearly linear in log(alpha D T^(alpha-1)), the
diffusivity at the end of the trajectory, and one related to
log(alpha D T^(1-alpha)).

This example trains the default SPIVAE on SBM, finds the surviving neurons
with :func:`~skspivae.inspection.neuron_summary` and relates them to alpha,
log D and the two combinations with
:func:`~skspivae.inspection.latent_parameter_relations`. The default decoder
holds SBM exactly: independent displacements (no correlations) whose scale
grows as a power of t, ``log sigma(t) = a + b log t``.
"""

# %%
# Simulate and train
# ------------------
import matplotlib.pyplot as plt
import numpy as np

from skspivae import SPIVAE
from skspivae.datasets import make_sbm
from skspivae.inspection import (
    latent_parameter_relations,
    latent_readout,
    neuron_summary,
)
from skspivae.plotting import (
    plot_kl_per_component,
    plot_latent_vs_parameters,
    plot_loss_per_alpha,
    plot_neuron_summary,
)

T = 100
X, y = make_sbm(3000, n_timesteps=T, alpha=(0.25, 1.75), D=(1e-4, 1e-2),
                design="uniform", random_state=0)
# New trajectories on a grid of (alpha, D), 40 per pair, for the analysis.
alphas, Ds = np.linspace(0.25, 1.75, 7), np.geomspace(1e-4, 1e-2, 3)
X_test, y_test = make_sbm(40 * len(alphas) * len(Ds), n_timesteps=T, alpha=alphas,
                          D=Ds, random_state=1)

est = SPIVAE(random_state=0).fit(X)
plot_kl_per_component(est, kl_threshold=est.kl_threshold)

# %%
# Which neurons survived?
# -----------------------
# On held-out trajectories: the KL divergence of each neuron to the prior, the
# variance of its mean over the data set and its mean log-variance. Active
# neurons have a large ``Var(mu)`` and a very negative ``Mean(log s2)``;
# collapsed ones sit at the prior, ``mu`` about 0 and ``sigma^2`` about 1.
summary = neuron_summary(est, X_test)
print(summary)
axes = plot_neuron_summary(summary)

# %%
# What do they encode?
# --------------------
# Spearman correlation, R^2 of a straight line and mutual information between
# each active neuron and the four quantities (``n_timesteps=T`` adds the SBM
# combinations).
mu = est.transform(X_test)
active = summary.active_components
relations = latent_parameter_relations(mu, y_test, neurons=active, n_timesteps=T)
print(relations)

# %%
for quantity in relations.quantities:
    print(f"{quantity:>26}: best neuron z{relations.best_neuron(quantity)}")

# %%
# The same as 2-D histograms for the two neurons with the largest KL, one row
# per neuron.
top_two = np.argsort(summary.kl)[::-1][:2]
axes = plot_latent_vs_parameters(mu, y_test, neurons=top_two, n_timesteps=T)

# %%
# How much of a quantity can be read out of the active neurons together? A
# linear regression on a held-out quarter of the trajectories:
for target in ("alpha", "log D", "log(alpha D T^(alpha-1))"):
    readout = latent_readout(mu, y_test, target=target, neurons=active,
                             n_timesteps=T)
    print(f"{target:>26}: R^2 = {readout.r2:.2f}")

# %%
# Loss over the parameters
# ------------------------
# The negative ELBO per step of each trajectory, averaged over the trajectories
# of each (alpha, D): it is set mostly by D (the scale of the displacements) and
# for SBM grows with alpha.
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
plot_loss_per_alpha(est, y_test, X=X_test, ax=ax)
