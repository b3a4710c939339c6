"""
Training SPIVAE on fractional Brownian motion
=============================================

Simulate fractional Brownian motion (fBM) with anomalous exponents alpha and
diffusion coefficients D drawn at random, train :class:`~skspivae.SPIVAE` with
its default beta annealing, and watch the latent neurons that the decoder
does not need collapse to the prior. Two survive: one encodes alpha, the
other log D.

3,000 trajectories of 100 positions train in well under a minute on a CPU.
``skspivae demo`` runs the same on 8,000 trajectories of 200 positions (about
two minutes), and ``skspivae demo --full`` the paper's model and recipe.
"""

# %%
# Simulate the data
# -----------------
# alpha uniform in [0.25, 1.75], D log-uniform over two decades. Rows of ``X``
# are positions starting at 0; ``y`` holds (alpha, D) and is not used for
# training.
import matplotlib.pyplot as plt
import numpy as np

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.inspection import (
    fbm_mle,
    fit_anomalous_exponent,
    latent_readout,
    time_averaged_msd,
)
from skspivae.plotting import (
    plot_history,
    plot_kl_per_component,
    plot_latent_vs_parameters,
)

ranges = dict(alpha=(0.25, 1.75), D=(1e-4, 1e-2), design="uniform")
X, y = make_fbm(3000, n_timesteps=100, **ranges, random_state=0)
print("X:", X.shape, "y:", y.shape)

# %%
# A few trajectories: superdiffusive ones (alpha > 1) wander further and more
# smoothly, subdiffusive ones (alpha < 1) turn back on themselves.
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for alpha in (0.3, 1.0, 1.7):
    x, _ = make_fbm(1, n_timesteps=100, alpha=[alpha], D=[1e-2], random_state=2)
    ax.plot(x[0], label=f"alpha = {alpha:.1f}")
ax.set(xlabel="t", ylabel="x(t)", title="fBM, D = 0.01")
ax.legend()

# %%
# Train with beta annealing
# -------------------------
# The default schedule raises beta linearly over 10 epochs and holds it until
# the last quarter, which runs at beta / 20: the high beta leaves alive only
# the neurons the decoder needs, the last stage sharpens them. Each stage runs
# its own one-cycle learning rate.
est = SPIVAE(random_state=0, verbose=1)
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
# The means of the two surviving neurons on new trajectories, against alpha
# and log D, with the Spearman correlation in each panel: one follows alpha,
# the other log D.
X_test, y_test = make_fbm(1000, n_timesteps=100, **ranges, random_state=1)
axes = plot_latent_vs_parameters(est, y_test, X=X_test, neurons=est.active_components_)

# %%
# How much does the latent know?
# ------------------------------
# A linear regression from the latent means to alpha and log D, fitted on half
# of the new trajectories and scored on the other half (its mean absolute error
# is in the units of the target), against two estimates
# from the trajectories themselves, on all of them: the exact Gaussian
# maximum-likelihood estimate (the best any estimator can do, asymptotically)
# and a log-log fit of the time-averaged MSD over lags 1-10.
mu = est.transform(X_test)
for target in ("alpha", "log D"):
    readout = latent_readout(mu, y_test, target=target, test_size=0.5)
    print(f"latent, {target:>5}: R^2 = {readout.r2:.3f}, MAE = {readout.mae:.3f}")
alpha_mle, D_mle = fbm_mle(X_test)
lags, tamsd = time_averaged_msd(X_test, lags=np.arange(1, 11))
alpha_tamsd, D_tamsd = fit_anomalous_exponent(lags, tamsd)
for name, a in (("maximum likelihood", alpha_mle), ("TAMSD fit", alpha_tamsd)):
    print(f"{name}, alpha: MAE = {np.mean(np.abs(a - y_test[:, 0])):.3f}")
