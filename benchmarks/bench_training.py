"""Training speed of SPIVAE against a plain PyTorch transcription of the model.

Usage::

    python benchmarks/bench_training.py            # 10,000 fBM trajectories, T=400, 5 rounds
    python benchmarks/bench_training.py --profile  # also where the time goes

Prints the machine, then seconds per epoch and trajectories per second for the
paper's default model (262,885 parameters), batch 256, at
``torch.get_num_threads()`` threads:

- ``plain``: the plain transcription (``skspivae.nn._reference``, one
  ``nn.Conv1d`` per box) in a bare loop over pre-made batches;
- ``module``: our :class:`~skspivae.nn.SPIVAEModule` in the same bare loop,
  with ``fit``'s forward and backward passes
  (``skspivae._training.forward_backward``);
- ``fit``: a whole ``SPIVAE.fit`` epoch of a fresh estimator (shuffling,
  slicing, schedules, history), without and with a 20% validation set.

All rows run in ``--repeats`` interleaved rounds and each keeps its best
time, so that they see the same load and their ratios are meaningful on a
machine whose speed drifts. The plain loop runs in a fresh process each
round, as a user's script would.
The two rows of the 2x target run back to back at the start of each round,
in alternating order, so that each round also gives a paired ratio of the
two, taken a few seconds apart; the median of those ratios is printed
beside the ratio of the best times.

The data are fBM on the paper's ranges (alpha uniform in 0.2-1.8, D log-uniform
in 1e-5-1e-2).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from _machine import cpu_model

from skspivae import SPIVAE
from skspivae._training import forward_backward, make_optimizer
from skspivae.datasets import make_fbm
from skspivae.nn import SPIVAEModule, kl_normal, log_prob
from skspivae.nn._reference import ReferenceSPIVAE


def machine():
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{cpu_model()}; {os.cpu_count()} cores; torch {torch.__version__}; "
            f"{torch.get_num_threads()} threads; load average {load[0]:.2f}")


def simulate(n_samples, n_timesteps, random_state):
    """fBM positions on the paper's ranges, the benchmark's data."""
    X, _ = make_fbm(n_samples, n_timesteps, alpha=(0.2, 1.8), D=(1e-5, 1e-2),
                    design="uniform", random_state=random_state)
    return X


def make_data(args):
    """The benchmark's positions ``X`` and their displacements as batches."""
    X = simulate(args.n_samples, args.n_timesteps, random_state=0)
    dx = torch.as_tensor(np.diff(X, axis=1), dtype=torch.float32).unsqueeze(1)
    return X, list(dx.split(args.batch_size))


def warm_up(batches):
    """The batches a warm-up runs: a full one and the epoch's last, short one,
    so that the one-time costs of both shapes (oneDNN's kernels) are not
    timed."""
    return [batches[0], batches[-1]]


def bare_loop(model, batches, fast):
    """One epoch over pre-made batches: forward, NLL + KL, backward, Adam.

    The plain transcription uses torch's default Adam; ours (``fast``) the
    fused Adam and the forward and backward passes that ``fit`` uses, so
    that the fit overhead compares like with like.
    """
    optimizer = (make_optimizer(model.parameters(), 1e-3) if fast else
                 torch.optim.Adam(model.parameters(), lr=1e-3))
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        if fast:
            forward_backward(model, batch, 1e-4)
        else:
            params, mu, logvar = model(batch)
            rf = model.receptive_field
            loss = (-log_prob(params, batch[:, 0, rf:]).mean()
                    + 1e-4 * kl_normal(mu, logvar).sum(1).mean())
            loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def timed_fit(X, validation_fraction, device="cpu"):
    est = SPIVAE(decoder="wavenet", batch_size=256, beta_schedule="constant",
                 max_epochs=1, validation_fraction=validation_fraction,
                 input_scale=None, device=device, random_state=0)
    est.fit(X)
    return est.history_[-1]["seconds"]


def profile(batches):
    from torch.profiler import ProfilerActivity, profile

    model = SPIVAEModule()
    bare_loop(model, batches[:1], True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        bare_loop(model, batches[:3], True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-timesteps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds; each row keeps its best")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cuda", action="store_true",
                        help="time only SPIVAE.fit epochs on the GPU")
    parser.add_argument("--plain-epoch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cuda:
        return cuda(args)
    if args.plain_epoch:
        return plain_epoch(args)

    print("machine:", machine())
    X, batches = make_data(args)
    n = args.n_samples
    print(f"data: {n} fBM trajectories, T={args.n_timesteps}, "
          f"batch {args.batch_size} ({len(batches)} batches)")
    if args.profile:
        with torch.random.fork_rng():
            profile(batches)

    torch.manual_seed(0)
    n_research = int(round(9_984 / 0.8))
    X_research = simulate(n_research, args.n_timesteps, random_state=1)
    # Warm-up both models once so that one-time costs are not timed.
    bare_loop(ReferenceSPIVAE(), warm_up(batches), False)
    bare_loop(SPIVAEModule(), warm_up(batches), True)

    # All rows in interleaved rounds, best of each, so that every row sees
    # the same load on a shared machine and the ratios are meaningful.
    timed = {
        "plain transcription, bare loop": lambda: plain_in_fresh_process(args),
        "SPIVAEModule, bare loop": lambda: bare_loop(SPIVAEModule(), batches, True),
        "SPIVAE.fit epoch (no validation)": lambda: timed_fit(X, 0.0),
        f"SPIVAE.fit epoch, 9,984 train + {n_research - 9_984} valid":
            lambda: timed_fit(X_research, 0.2),
    }
    pair = ["plain transcription, bare loop", "SPIVAE.fit epoch (no validation)"]
    times = {name: [] for name in timed}
    for k in range(args.repeats):
        # The two rows of the 2x target back to back, in alternating order.
        first = pair if k % 2 == 0 else pair[::-1]
        for name in first + [name for name in timed if name not in pair]:
            times[name].append(timed[name]())
    best = {name: min(seconds) for name, seconds in times.items()}
    rows = best.items()
    plain_raw, module, fit, fit_valid = best.values()

    print(f"\n{'what':58s} {'s/epoch':>8s} {'traj/s':>8s}")
    for name, seconds in rows:
        count = n_research if "valid" in name and "no valid" not in name else n
        print(f"{name:58s} {seconds:8.2f} {count / seconds:8.0f}")
    print("\neach round, s/epoch:")
    for name in pair:
        print(f"  {name:56s}", " ".join(f"{t:6.2f}" for t in times[name]))
    paired = [p / f for p, f in zip(*(times[name] for name in pair))]
    print(f"  {'paired ratio, plain / fit':56s}", " ".join(f"{r:6.2f}" for r in paired))
    print("\nratios (targets in brackets):")
    print(f"  plain bare loop / fit epoch        {plain_raw / fit:5.2f}x  [>= 2x]")
    print(f"  (median of the paired rounds       {statistics.median(paired):5.2f}x)")
    print(f"  fit loop overhead over module loop {100 * (fit - module) / fit:5.1f}%  "
          "[< 10%]")
    print(f"  research fastai epoch (54 s) / ours {54.0 / fit_valid:5.2f}x  [>= 5x]")


def plain_in_fresh_process(args):
    """One epoch of the plain loop in a new process, as a user's script
    would run it, between the other rows at the machine's speed of the
    moment."""
    command = [sys.executable, os.path.abspath(__file__), "--plain-epoch",
               "--n-samples", str(args.n_samples), "--n-timesteps", str(args.n_timesteps),
               "--batch-size", str(args.batch_size)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def plain_epoch(args):
    """What :func:`plain_in_fresh_process` runs: the data, the warm-up
    batches, then one timed epoch; prints its seconds."""
    _, batches = make_data(args)
    torch.manual_seed(0)
    bare_loop(ReferenceSPIVAE(), warm_up(batches), False)
    print(bare_loop(ReferenceSPIVAE(), batches, False))


def cuda(args):
    print("machine:", machine(), "|", torch.cuda.get_device_name())
    X = simulate(args.n_samples, args.n_timesteps, random_state=0)
    timed_fit(X[:512], 0.0, "cuda")  # warm-up: CUDA context, kernels
    for fraction in (0.0, 0.2):
        seconds = timed_fit(X, fraction, "cuda")
        print(f"SPIVAE.fit epoch on CUDA, {args.n_samples} trajectories, "
              f"validation_fraction={fraction}: {seconds:.2f} s "
              f"({args.n_samples / seconds:.0f} traj/s)")


if __name__ == "__main__":
    main()
