"""Benchmark what SPIVAE learns: the latent's physics, and generation from it.

Run ``python benchmarks/bench_learning.py`` (``--help`` for the options). For
each process (fBM, SBM) and recipe (the package's defaults, the paper's
WaveNet and staged schedule) it simulates ``--n-train`` training and
``--n-test`` held-out trajectories of ``--n-timesteps`` positions, alpha
uniform in [0.25, 1.75] and D log-uniform in [10^-4.5, 10^-2], fits, and
prints:

- during the fit, every ``--every`` epochs and at the end of each beta
  stage, against the fit's wall time (the epochs' own seconds, evaluation
  excluded): the held-out R^2 and MAE of a linear readout of alpha and
  log10 D from the latent means (fitted on the training trajectories'
  latent means), the number of active neurons and the KL of each;
- at the end: each neuron's KL and Spearman correlations; how much the
  decoder uses alpha, as the increase of the per-step NLL when the latent
  means are shuffled among held-out trajectories of similar D (bins of 20
  by log D), which destroys alpha alone; the per-step negative ELBO next to
  the exact per-step negative log-likelihood under the true parameters; and
  generation: for alpha in 0.4..1.6 and D in 1e-5..1e-2, trajectories
  sampled at the mean latent of 200 simulated ones (collapsed neurons set to
  0), their ensemble MSD exponent and prefactor fitted over all lags;
- once per process, on the same held-out trajectories, two baselines: the
  exact Gaussian maximum-likelihood estimate (D profiled out) and, for fBM,
  a time-averaged-MSD log-log fit over lags 1-10.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import sklearn
import torch
from _machine import cpu_model
from scipy.stats import spearmanr
from sklearn.linear_model import LinearRegression

from skspivae import SPIVAE
from skspivae.callbacks import Callback
from skspivae.datasets import make_fbm, make_sbm
from skspivae.inspection import (
    fbm_log_likelihood,
    fbm_mle,
    fit_anomalous_exponent,
    generated_msd,
    sbm_log_likelihood,
    sbm_mle,
    time_averaged_msd,
)

ALPHA, D_RANGE = (0.25, 1.75), (10**-4.5, 1e-2)
RECIPES = {
    "default": {},
    # The paper's architecture and staged schedule (64 epochs at beta = 0,
    # then 16-epoch stages at increasing beta), batch size 256.
    "paper": {"decoder": "wavenet", "batch_size": 256},
}
PAPER_SCHEDULES = {"fbm": "fbm_paper", "sbm": "sbm_paper"}
GEN_ALPHA = (0.4, 0.7, 1.0, 1.3, 1.6)
GEN_D = (1e-5, 1e-4, 1e-3, 1e-2)


def simulate(process, n, n_timesteps, seed, alpha=ALPHA, D=D_RANGE):
    make = make_fbm if process == "fbm" else make_sbm
    design = "uniform" if isinstance(alpha, tuple) else "grid"
    return make(n, n_timesteps, alpha=alpha, D=D, design=design, random_state=seed)


def readouts(est, X, y, X_test, y_test):
    """Held-out R^2 and MAE of linear readouts of alpha and log10 D."""
    mu, mu_test = est.transform(X), est.transform(X_test)
    out = {}
    for name, target in (("alpha", y[:, 0]), ("log10 D", np.log10(y[:, 1]))):
        truth = y_test[:, 0] if name == "alpha" else np.log10(y_test[:, 1])
        pred = LinearRegression().fit(mu, target).predict(mu_test)
        out[name] = (1 - np.mean((pred - truth) ** 2) / np.var(truth),
                     np.mean(np.abs(pred - truth)))
    return out


def baseline_scores(estimate, y_test):
    """R^2 and MAE of (alpha, D) estimates against the truth."""
    out = {}
    for name, pred, truth in (("alpha", estimate[0], y_test[:, 0]),
                              ("log10 D", np.log10(estimate[1]), np.log10(y_test[:, 1]))):
        out[name] = (1 - np.mean((pred - truth) ** 2) / np.var(truth),
                     np.mean(np.abs(pred - truth)))
    return out


class Progress(Callback):
    """Readouts on held-out data every ``every`` epochs and at stage ends;
    stops the fit once its epochs have taken ``time_limit`` seconds."""

    def __init__(self, data, every, time_limit=None):
        self.data, self.every, self.rows = data, every, []
        self.time_limit = time_limit

    def _row(self, est, epoch):
        history = est.history_
        seconds = sum(r["seconds"] for r in history)
        scores = readouts(est, *self.data)
        kl = np.sort(history[-1]["kl_per_component"])[::-1]
        self.rows.append((epoch, seconds, history[-1]["beta"], history[-1]["valid_nll"],
                          scores, kl, int((kl > est.kl_threshold).sum())))
        (r2a, maea), (r2d, maed) = scores["alpha"], scores["log10 D"]
        print(f"{epoch + 1:6d} {seconds:8.1f} {history[-1]['beta']:8.1e} "
              f"{history[-1]['valid_nll']:9.4f} {r2a:7.3f} {maea:7.3f} {r2d:7.3f} "
              f"{maed:7.3f} {self.rows[-1][-1]:6d}  "
              + " ".join(f"{v:.3g}" for v in kl), flush=True)

    def on_epoch_end(self, est, record):
        over = (self.time_limit is not None
                and sum(r["seconds"] for r in est.history_) > self.time_limit)
        if over or self.every and (record["epoch"] + 1) % self.every == 0:
            self._row(est, record["epoch"])
        if over:
            print(f"time limit of {self.time_limit:g} s reached: fit stopped after "
                  f"{record['epoch'] + 1} epochs")
        return over

    def on_stage_end(self, est, record):
        if not self.rows or self.rows[-1][0] != record["epoch"]:
            self._row(est, record["epoch"])


@torch.no_grad()
def nll_per_step(est, X, Z, batch_size=512):
    """Per-step NLL (raw units) of each trajectory given latents ``Z``."""
    module = est.module_.eval()
    device = next(module.parameters()).device
    dx = np.diff(X, axis=1) / est.input_scale_
    out = []
    for i in range(0, len(X), batch_size):
        data = torch.as_tensor(dx[i:i + batch_size], dtype=torch.float32,
                               device=device)[:, None]
        z = torch.as_tensor(Z[i:i + batch_size], dtype=torch.float32, device=device)
        out.append(module.nll(data, z).double().cpu().numpy())
    return np.concatenate(out) + np.log(est.input_scale_)


def alpha_use(est, X, y, seed, bin_size=20):
    """NLL increase when latent means are shuffled among trajectories of similar D."""
    mu = est.transform(X)
    order = np.argsort(y[:, 1])
    rng = np.random.default_rng(seed)
    shuffled = mu.copy()
    for start in range(0, len(order), bin_size):
        rows = order[start:start + bin_size]
        shuffled[rows] = mu[rng.permutation(rows)]
    own, other = nll_per_step(est, X, mu), nll_per_step(est, X, shuffled)
    return own.mean(), other.mean()


def _targets_met(report, exact=False):
    """How many targets are met, and the worst exponent error and D ratio."""
    exponent = report.exact_exponent if exact else report.exponent
    ratio = report.exact_prefactor if exact else report.prefactor
    ok = report.within(exact=exact)
    return (f"{ok.sum()} of {ok.size} targets within 0.1 in exponent and 1.5x in "
            f"prefactor (worst: {np.max(np.abs(exponent - report.alpha)):.3f}, "
            f"{np.max(np.maximum(ratio, 1 / ratio)):.2f}x)")


def print_generation(est, process, seed):
    report = generated_msd(est, process=process, alpha=GEN_ALPHA, D=GEN_D,
                           random_state=seed)
    print("\ngeneration from the mean latent of 200 trajectories (500 samples each):")
    print(report)
    print(_targets_met(report))
    # The 500-sample estimate has a standard error of about 0.02 in the
    # exponent; the exact MSD of the decoder's process has none.
    if np.isfinite(report.exact_exponent).all():
        print("exact MSD of the decoder's process:", _targets_met(report, exact=True))


def run(process, recipe, data, args):
    X, y, X_test, y_test = data
    params = dict(RECIPES[recipe])
    if recipe == "paper":
        params["beta_schedule"] = PAPER_SCHEDULES[process]
    for item in args.set or []:
        name, value = item.split("=", 1)
        params[name] = eval(value, {"np": np})  # noqa: S307 (a benchmark option)
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    print(f"\n=== {process}, {recipe} recipe: SPIVAE({shown})")
    progress = Progress((X, y, X_test, y_test), args.every, args.time_limit)
    est = SPIVAE(**params, callbacks=[progress], random_state=args.seed,
                 device=args.device)
    print(f"{'epoch':>6} {'fit s':>8} {'beta':>8} {'val nll':>9} {'R2 a':>7} {'MAE a':>7} "
          f"{'R2 lgD':>7} {'MAE lgD':>7} {'active':>6}  KL per neuron (sorted)")
    start = time.perf_counter()
    est.fit(X)
    wall = time.perf_counter() - start
    print(f"fit: {est.n_iter_} epochs, {wall:.1f} s wall in all (with evaluations)")

    mu = est.transform(X_test)
    T = X.shape[1]
    quantities = {"alpha": y_test[:, 0], "log D": np.log(y_test[:, 1])}
    if process == "sbm":
        a, D = y_test[:, 0], y_test[:, 1]
        quantities["log(a D T^(a-1))"] = np.log(a * D * T ** (a - 1))
        quantities["log(a D T^(1-a))"] = np.log(a * D * T ** (1 - a))
    print("\nneuron  KL (nats)  " + "  ".join(f"rho/R2 {q}" for q in quantities))
    for k in np.argsort(est.kl_divergence_)[::-1]:
        cells = []
        for q in quantities.values():
            rho = spearmanr(mu[:, k], q)[0]
            r2 = np.corrcoef(mu[:, k], q)[0, 1] ** 2
            cells.append(f"{rho:+.3f}/{r2:.3f}")
        print(f"{k:6d} {est.kl_divergence_[k]:10.3g}  " + "  ".join(cells))
    active = est.kl_divergence_[est.active_components_]
    if active.size:
        others = np.delete(est.kl_divergence_, est.active_components_)
        ratio = active.min() / others.max() if others.size else np.inf
        print(f"{active.size} active; weakest active KL / strongest collapsed KL = "
              f"{ratio:.0f}")

    own, shuffled = alpha_use(est, X_test, y_test, args.seed)
    print(f"\ndecoder's use of alpha: NLL/step {own:.4f} with each trajectory's latent, "
          f"{shuffled:.4f} shuffled among similar D (+{shuffled - own:.4f})")
    loglik = fbm_log_likelihood if process == "fbm" else sbm_log_likelihood
    exact = -loglik(X_test, y_test[:, 0], y_test[:, 1]).mean() / (T - 1)
    print(f"per-step negative ELBO {-est.score(X_test):.4f}; exact NLL under the true "
          f"parameters {exact:.4f}")
    if not args.no_generation:
        print_generation(est, process, args.seed)
    return est


def print_baselines(process, X_test, y_test):
    print(f"\nbaselines on the {len(X_test)} held-out {process} trajectories:")
    tick = time.perf_counter()
    estimates = {"maximum likelihood": (fbm_mle if process == "fbm" else sbm_mle)(X_test)}
    seconds = {"maximum likelihood": time.perf_counter() - tick}
    if process == "fbm":
        tick = time.perf_counter()
        lags, tamsd = time_averaged_msd(X_test, lags=np.arange(1, 11))
        estimates["TAMSD fit, lags 1-10"] = fit_anomalous_exponent(lags, tamsd)
        seconds["TAMSD fit, lags 1-10"] = time.perf_counter() - tick
    for name, estimate in estimates.items():
        (r2a, maea), (r2d, maed) = baseline_scores(estimate, y_test).values()
        print(f"  {name:22s} alpha R2 {r2a:.3f} MAE {maea:.3f}; log10 D R2 {r2d:.3f} "
              f"MAE {maed:.3f} ({seconds[name]:.1f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", nargs="+", default=["fbm", "sbm"],
                        choices=["fbm", "sbm"])
    parser.add_argument("--recipes", nargs="+", default=["default", "paper"],
                        choices=sorted(RECIPES))
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--n-timesteps", type=int, default=200)
    parser.add_argument("--every", type=int, default=5,
                        help="evaluate every this many epochs (0: stage ends only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="override a SPIVAE parameter (Python expression)")
    parser.add_argument("--no-generation", action="store_true")
    parser.add_argument("--time-limit", type=float,
                        help="stop each fit once its epochs took this many seconds")
    parser.add_argument("--paper-grid", action="store_true",
                        help="train on the paper's grid instead: alpha in "
                        "linspace(0.2, 1.8, 21) x D in geomspace(1e-5, 1e-2, 10), 476 "
                        "trajectories per pair (99,960); use --n-timesteps 400")
    args = parser.parse_args(argv)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}; Python {platform.python_version()}, torch "
          f"{torch.__version__}, scikit-learn {sklearn.__version__}, numpy "
          f"{np.__version__}")
    print("command: python " + " ".join(sys.argv))
    for process in args.processes:
        if args.paper_grid:
            ranges = {"alpha": (0.2, 1.8), "D": (1e-5, 1e-2)}
            X, y = (make_fbm if process == "fbm" else make_sbm)(
                99_960, args.n_timesteps, alpha=np.linspace(0.2, 1.8, 21),
                D=np.geomspace(1e-5, 1e-2, 10), shuffle=True, random_state=args.seed)
        else:
            ranges = {"alpha": ALPHA, "D": D_RANGE}
            X, y = simulate(process, args.n_train, args.n_timesteps, args.seed)
        X_test, y_test = simulate(process, args.n_test, args.n_timesteps, args.seed + 1,
                                  **ranges)
        print_baselines(process, X_test, y_test)
        for recipe in args.recipes:
            run(process, recipe, (X, y, X_test, y_test), args)


if __name__ == "__main__":
    main()
