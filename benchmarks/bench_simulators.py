"""Benchmark the fBM and SBM simulators against andi-datasets and a floor.

Run ``python benchmarks/bench_simulators.py`` (``--help`` for the sizes). For
each number of trajectories and each alpha it prints the best wall time over
``--repeats`` runs and the peak memory of one run, measured with
:mod:`tracemalloc` (numpy reports its array allocations to it; the output
array is included), for

- floor: ``rng.standard_normal((n, T - 1))``, the normals any exact simulator
  of T - 1 increments must draw at least;
- skspivae fBM and SBM (``simulate_fbm``, ``simulate_sbm``, float64 positions);
- andi-datasets fBM and SBM (``models_theory().fbm/sbm``, one trajectory per
  call, converted to MSD 2 D t^alpha), when installed and n <= ``--andi-max``.

Ratios are to the floor measured in the same run. The simulators follow
torch's thread count (``--threads``, default torch's): with two or more, a
second thread draws the next chunk's normals while the current one is
transformed; with one, everything runs in the calling thread.
"""

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np
import scipy
import torch
from _machine import cpu_model

from skspivae.datasets import simulate_fbm, simulate_sbm


def _andi_simulators(D):
    """The andi-datasets simulators as ``f(alpha, n, T)``, or {} if absent."""
    try:
        from andi_datasets.models_theory import models_theory
    except ImportError:
        return {}
    model = models_theory()

    def fbm(alpha, n, T):
        X = np.array([model.fbm(T, alpha) for _ in range(n)])
        return X * (np.sqrt(2 * D) * (T - 1) ** (alpha / 2))

    def sbm(alpha, n, T):
        return np.array([model.sbm(T, alpha) for _ in range(n)]) * np.sqrt(2 * D)

    return {"andi-datasets fBM": fbm, "andi-datasets SBM": sbm}


def _measure(functions, repeats):
    """Best wall time over ``repeats`` interleaved rounds, then the tracemalloc
    peak of one more run, for each of ``functions`` (a dict name -> callable).

    Interleaving exposes every function to the same load on a shared machine,
    so that ratios between them are meaningful.
    """
    best = dict.fromkeys(functions, np.inf)
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    peaks = {}
    for name, function in functions.items():
        tracemalloc.start()
        function()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {name: (best[name], peaks[name]) for name in functions}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--n-timesteps", type=int, default=400)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.3, 1.0, 1.7])
    parser.add_argument("--D", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--andi-max",
        type=int,
        default=10_000,
        help="largest size for andi-datasets, which loops in Python per trajectory",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    T, D = args.n_timesteps, args.D
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical cores")
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}"
    )
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"T = {T}, D = {D}, best of {args.repeats} runs; memory: tracemalloc peak")

    rng = np.random.default_rng(0)
    ours = {
        "skspivae fBM": lambda a, n: simulate_fbm(a, D, T, n_samples=n, random_state=0),
        "skspivae SBM": lambda a, n: simulate_sbm(a, D, T, n_samples=n, random_state=0),
    }
    andi = _andi_simulators(D)
    header = f"{'n':>7} {'alpha':>5} {'simulator':<18} {'time [s]':>9} "
    header += f"{'x floor':>7} {'peak [MB]':>9}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for alpha in args.alphas:
            functions = {"floor (normals)": lambda n=n: rng.standard_normal((n, T - 1))}
            for name, simulate in ours.items():
                functions[name] = lambda a=alpha, n=n, f=simulate: f(a, n)
            rows = _measure(functions, args.repeats)
            if n <= args.andi_max:
                andi_functions = {
                    name: lambda a=alpha, n=n, f=simulate: f(a, n, T)
                    for name, simulate in andi.items()
                }
                rows |= _measure(andi_functions, 1)  # slow: a single run
            floor = rows["floor (normals)"][0]
            for name, (seconds, peak) in rows.items():
                print(
                    f"{n:>7} {alpha:>5.1f} {name:<18} {seconds:>9.3f} "
                    f"{seconds / floor:>7.2f} {peak / 2**20:>9.1f}"
                )
    if not andi:
        print("andi-datasets is not installed: its rows are missing.")


if __name__ == "__main__":
    main()
