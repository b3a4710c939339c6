"""The demo behind ``skspivae demo``: simulate fBM, fit, show what the neurons
learned, generate trajectories with chosen features.

Three recipes (:data:`RECIPES`): ``"default"`` fits the package's default
model on 8,000 fBM trajectories in a few minutes on a laptop CPU;
``"quick"`` is a seconds-long smoke test; ``"full"`` is the paper's: its
WaveNet architecture and staged beta schedule on about 100,000 trajectories
of its (alpha, D) grid, meant for a GPU.
"""

import os
import time

import numpy as np

# The paper's fBM grid.
PAPER_ALPHA = np.linspace(0.2, 1.8, 21)
PAPER_D = np.geomspace(1e-5, 1e-2, 10)
# A tiny architecture, for smoke tests and the quick demo.
TINY = {"encoder_hidden": (32,), "decoder_hidden": (32,), "encoder_channels": 8,
        "memory": 32}

# Each recipe: training data (a uniform design over the alpha and D ranges, or
# the paper's grid with ``per_point`` trajectories per pair), held-out data,
# SPIVAE parameters, and the (alpha, D) targets of generation.
RECIPES = {
    "quick": {
        "alpha": (0.2, 1.8), "D": (1e-4, 1e-2), "n_train": 400, "n_test": 200,
        "n_timesteps": 100, "params": dict(TINY, n_components=3, max_epochs=4),
        "targets": {"alpha": (0.4, 1.6), "D": (1e-3,)},
    },
    # The package's defaults: about 2 minutes of training on 2 CPU cores.
    "default": {
        "alpha": (0.2, 1.8), "D": (1e-5, 1e-2), "n_train": 8000, "n_test": 2000,
        "n_timesteps": 200, "params": {},
        "targets": {"alpha": (0.4, 1.0, 1.6), "D": (1e-5, 1e-3, 1e-2)},
    },
    # The paper's model and recipe: 21 x 10 grid, 476 trajectories per pair.
    "full": {
        "alpha": PAPER_ALPHA, "D": PAPER_D, "per_point": 476, "n_test": 2000,
        "n_timesteps": 400,
        "params": dict(decoder="wavenet", batch_size=256, beta_schedule="fbm_paper"),
        "targets": {"alpha": (0.4, 1.0, 1.6), "D": (1e-5, 1e-3, 1e-2)},
    },
}


def _data(recipe, seed):
    """Training and held-out fBM trajectories and their (alpha, D)."""
    from .datasets import make_fbm

    r = RECIPES[recipe]
    T = r["n_timesteps"]
    if "per_point" in r:
        n = len(r["alpha"]) * len(r["D"]) * r["per_point"]
        X, y = make_fbm(n, T, alpha=r["alpha"], D=r["D"], shuffle=True,
                        random_state=seed)
        ranges = {"alpha": (r["alpha"].min(), r["alpha"].max()),
                  "D": (r["D"].min(), r["D"].max())}
    else:
        ranges = {"alpha": r["alpha"], "D": r["D"]}
        X, y = make_fbm(r["n_train"], T, **ranges, design="uniform", random_state=seed)
    X_test, y_test = make_fbm(r["n_test"], T, **ranges, design="uniform",
                              random_state=seed + 1)
    return X, y, X_test, y_test


def _readouts(est, X_test, y_test):
    """R^2 and MAE of alpha and log10 D: linear readouts of the latent means
    (fitted on half the held-out trajectories, scored on the other half), the
    maximum-likelihood estimate and the TAMSD fit on the same half."""
    from sklearn.model_selection import train_test_split

    from .inspection import (
        fbm_mle,
        fit_anomalous_exponent,
        latent_readout,
        time_averaged_msd,
    )

    targets = {"alpha": ("alpha", lambda y: y[:, 0]),
               "log10 D": ("log10 D", lambda y: np.log10(y[:, 1]))}
    mu = est.transform(X_test)
    rows = {"latent means, linear": {}}
    for name, target in targets.items():
        readout = latent_readout(mu, y_test, target=target, test_size=0.5, random_state=0)
        rows["latent means, linear"][name] = (readout.r2, readout.mae)
    # The baselines on the same half the readouts are scored on.
    _, X_half, _, y_half = train_test_split(X_test, y_test, test_size=0.5, random_state=0)
    lags, tamsd = time_averaged_msd(X_half, lags=np.arange(1, 11))
    for name, (alpha, D) in (("maximum likelihood", fbm_mle(X_half)),
                             ("TAMSD fit, lags 1-10", fit_anomalous_exponent(lags, tamsd))):
        rows[name] = {}
        for key, truth, pred in (("alpha", y_half[:, 0], alpha),
                                 ("log10 D", np.log10(y_half[:, 1]), np.log10(D))):
            rows[name][key] = (1 - np.mean((pred - truth) ** 2) / np.var(truth),
                               np.mean(np.abs(pred - truth)))
    return rows


def _format_readouts(rows):
    lines = [f"{'estimate':22s} {'R2 alpha':>9} {'MAE alpha':>10} {'R2 log10 D':>11} "
             f"{'MAE log10 D':>12}"]
    for name, scores in rows.items():
        (r2a, maea), (r2d, maed) = scores["alpha"], scores["log10 D"]
        lines.append(f"{name:22s} {r2a:9.3f} {maea:10.3f} {r2d:11.3f} {maed:12.3f}")
    return "\n".join(lines)


def run_demo(recipe="default", *, out="skspivae_demo", overwrite=False, seed=0,
             device="auto"):
    """Simulate fBM, train with beta annealing, report the neurons, generate.

    The body of ``skspivae demo``; see :data:`RECIPES` for the sizes. Writes
    ``model.pt``, ``summary.json`` and PNG figures into ``out`` and returns
    the summary.

    Parameters
    ----------
    recipe : {"default", "quick", "full"}, default="default"
    out : str, default="skspivae_demo"
        Output folder; an existing non-empty one needs ``overwrite``.
    overwrite : bool, default=False
    seed : int, default=0
        Seeds the data, the model and the generation.
    device : str, default="auto"

    Returns
    -------
    dict
        What ``summary.json`` holds.
    """
    from . import plotting
    from ._cli import (
        _check_folder,
        _figure,
        _format_report,
        _neuron_report,
        _savefig,
        _write_figures,
        _write_json,
    )
    from ._estimator import SPIVAE, _resolve_device
    from .inspection import generated_msd, neuron_summary

    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}; got {recipe!r}.")
    r = RECIPES[recipe]
    est = SPIVAE(**r["params"], device=device, random_state=seed, verbose=1)
    est._validate_params()
    resolved = _resolve_device(device)  # a clear error now if CUDA is missing
    _check_folder(out, overwrite)
    timings, start = {}, time.perf_counter()
    X, y, X_test, y_test = _data(recipe, seed)
    timings["simulate_s"] = time.perf_counter() - start
    print(f"skspivae demo ({recipe}): {X.shape[0]} fBM trajectories of {X.shape[1]} "
          f"positions, alpha in [{y[:, 0].min():.2g}, {y[:, 0].max():.2g}], D in "
          f"[{y[:, 1].min():.2g}, {y[:, 1].max():.2g}]; {est.decoder} decoder, "
          f"schedule {est.beta_schedule!r}; device {resolved}.", flush=True)

    tick = time.perf_counter()
    est.fit(X)
    timings["fit_s"] = time.perf_counter() - tick
    os.makedirs(out, exist_ok=True)

    tick = time.perf_counter()
    rows = _neuron_report(est, X_test, y_test)
    active = [row for row in rows if row["active"]]
    print(f"\n{len(active)} of {len(rows)} neurons survive (KL > {est.kl_threshold:g} "
          "nats on held-out trajectories); Spearman correlation of their means with "
          "alpha and log D:")
    print(_format_report(rows, active_only=True) if active else "(none)")
    readouts = _readouts(est, X_test, y_test)
    print("\nWhat the latent knows, against the physical limit (maximum likelihood) "
          "and the usual estimate (TAMSD fit):")
    print(_format_readouts(readouts))
    figures = _write_figures(est, X_test, y_test, rows, out)
    fig, ax = _figure(1, 2, figsize=(9, 3.5))
    plotting.plot_neuron_summary(neuron_summary(est, X_test), axes=ax[0])
    figures.append(_savefig(fig, out, "neuron_summary.png"))
    timings["inspect_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    report = generated_msd(est, alpha=r["targets"]["alpha"], D=r["targets"]["D"],
                           n_samples=200, random_state=seed)
    print("\nTrajectories generated at the mean latent of 200 simulated ones "
          "(collapsed neurons at 0):\nthe ensemble MSD of 200 samples fitted as "
          "2 D' t^exponent (standard error 0.03-0.04 in the exponent), and\n"
          "(exact) the same fit of the exact MSD of the model's process")
    print(report)
    fig, ax = _figure(figsize=(6, 4.5))
    for k, samples in enumerate(report.samples):
        plotting.plot_msd(samples, alpha=report.alpha[k], D=report.D[k], ax=ax[0, 0],
                          color=f"C{k % 10}", label="generated")
    ax[0, 0].set_title("Generated from chosen latents (dashed: 2 D t^alpha)")
    ax[0, 0].legend().remove()
    figures.append(_savefig(fig, out, "msd_generated.png"))
    timings["sample_s"] = time.perf_counter() - tick

    model_path = os.path.join(out, "model.pt")
    est.save(model_path, overwrite=overwrite)
    timings["total_s"] = time.perf_counter() - start
    summary = {
        "recipe": recipe,
        "data": {"process": "fbm", "n_samples": X.shape[0], "n_timesteps": X.shape[1],
                 "n_test": X_test.shape[0], "seed": seed},
        "parameters": {k: v for k, v in est.get_params().items() if k != "callbacks"},
        "device": str(est._device),
        "n_epochs": est.n_iter_,
        "history_tail": est.history_[-5:],
        "kl_divergence": est.kl_divergence_,
        "active_components": est.active_components_,
        "neurons": rows,
        "readouts": {name: {k: {"r2": v[0], "mae": v[1]} for k, v in scores.items()}
                     for name, scores in readouts.items()},
        "generated": [{"alpha": a, "D": d, "exponent": e, "prefactor": p,
                       "exact_exponent": ee, "exact_prefactor": ep}
                      for a, d, e, p, ee, ep in zip(
                          report.alpha, report.D, report.exponent, report.prefactor,
                          report.exact_exponent, report.exact_prefactor)],
        "timings": timings,
        "files": [os.path.basename(p) for p in [model_path] + figures],
    }
    _write_json(os.path.join(out, "summary.json"), summary)
    print(f"\nwrote model.pt, summary.json and {len(figures)} figures to {out} "
          f"in {timings['total_s']:.0f} s (training {timings['fit_s']:.0f} s).")
    return summary
