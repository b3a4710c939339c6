"""
Generating trajectories with chosen features
============================================

A trained SPIVAE is a generative model: :meth:`~skspivae.SPIVAE.sample` draws
new trajectories one displacement at a time from the WaveNet decoder,
conditioned on a latent vector. Fixing the surviving neurons to chosen values,
and the collapsed ones to 0, chooses the features of the trajectories.

Here we take, for a few values of D, the mean latent of test trajectories
with that D (and alpha = 1), generate new trajectories from it and compare
their mean squared displacement (MSD) with the theory, 2 D t^alpha. The model
is small and briefly trained: it has learned the diffusion coefficient, the
feature it learns first, but not yet alpha, so the generated exponent is
roughly the same for every target. The paper's model, with a neuron for
alpha, reproduces both.
"""

# %%
# Train a model
# -------------
import matplotlib.pyplot as plt
import numpy as np

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.inspection import fit_anomalous_exponent, time_averaged_msd
from skspivae.plotting import plot_msd

T = 100
alphas = np.linspace(0.2, 1.8, 7)
Ds = np.geomspace(1e-4, 1e-2, 3)
X, y = make_fbm(40 * len(alphas) * len(Ds), n_timesteps=T, alpha=alphas, D=Ds,
                random_state=0)
schedule = [(12, 0.0), (6, 1e-4), (6, 1e-3), (6, 2e-3), (6, 4e-3)]
est = SPIVAE(beta_schedule=schedule, batch_size=64, random_state=0).fit(X)
print("active neurons:", est.active_components_)

# %%
# Choose the latent
# -----------------
# The mean latent of the test trajectories with each target (alpha, D), with
# the collapsed neurons set to 0 (their prior mean).
X_test, y_test = make_fbm(20 * len(alphas) * len(Ds), n_timesteps=T, alpha=alphas,
                          D=Ds, random_state=1)
Z = est.transform(X_test)
collapsed = np.setdiff1d(np.arange(est.n_components), est.active_components_)
alpha = alphas[3]  # 1.0
latents = {}
for D in Ds:
    z = Z[(y_test[:, 0] == alpha) & (y_test[:, 1] == D)].mean(axis=0)
    z[collapsed] = 0.0
    latents[D] = z
    print(f"D = {D:g}: z = {np.round(z, 2)}")

# %%
# Generate
# --------
# 50 trajectories per target, of the training length. ``sample`` returns
# positions starting at 0, in the units of the training data.
generated = {D: est.sample(50, z=z, n_timesteps=T, random_state=0)
             for D, z in latents.items()}

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for k, Xg in enumerate(generated.values()):
    ax.plot(Xg[:3].T, color=f"C{k}", lw=0.8)
ax.set(xlabel="t", ylabel="x(t)", title="Generated trajectories, three per D")

# %%
# Compare with the theory
# -----------------------
# The ensemble MSD of each set against 2 D t^alpha (dashed), and the exponent
# fitted to each trajectory's time-averaged MSD at short lags.
fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
for k, (D, Xg) in enumerate(generated.items()):
    plot_msd(Xg, alpha=alpha, D=D, ax=ax, color=f"C{k}", label=f"generated, D = {D:g}")
    lags, tamsd = time_averaged_msd(Xg, lags=np.arange(1, 11))
    fitted_alpha, fitted_D = fit_anomalous_exponent(lags, tamsd)
    print(f"target D {D:g}, alpha {alpha:.1f}: fitted D {np.median(fitted_D):.2g}, "
          f"alpha {np.median(fitted_alpha):.2f} (medians over {len(Xg)} trajectories)")
