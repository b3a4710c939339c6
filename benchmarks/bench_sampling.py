"""Time autoregressive generation: cached layers versus full-window recomputation.

Generates trajectories of T positions (T - 1 displacements) with the paper's
default architecture (an untrained module: the cost does not depend on the
weights), once with :func:`skspivae.nn.generate` (cached activations, one time
column per layer and step) and once with the research code's way,
``_generate_full_window`` (the whole WaveNet on the last RF + 1 steps at every
step). The full-window path is timed on fewer trajectories and extrapolated
linearly (its cost is linear in the number of trajectories at a fixed chunk
size); such rows are marked "extrapolated". The architectures 4x1, 6x1 and 3x2
(layer_size x stack_size: receptive fields 32, 128 and 30) show that the cached
loop's cost per step grows with the number of layers only (6x1 and 3x2 have six
each), not with the receptive field, while the full window's grows with both.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_sampling.py            # CPU, 1 thread
    python benchmarks/bench_sampling.py --device cuda --n 1000 10000
"""

import argparse
import os
import time

import torch
from _machine import cpu_model

from skspivae.nn import SPIVAEModule, generate
from skspivae.nn._generation import _conditioning, _generate_full_window, _warm_up


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_architecture(layer_size, stack_size, args, device, n_steps):
    """Print the rows of one architecture: cached and full window at each n."""
    torch.manual_seed(0)
    module = SPIVAEModule(layer_size=layer_size, stack_size=stack_size).to(device)
    rf = module.receptive_field
    n_layers = layer_size * stack_size
    generator = torch.Generator(device=device).manual_seed(0)
    n_max, n_min = max(args.n), min(args.n)
    z = torch.randn(n_max, module.n_components, device=device, generator=generator)

    def cached(n):
        return generate(module, z[:n], n_steps, generator=generator,
                        batch_size=args.batch_size)

    def full(n):
        return _generate_full_window(module, z[:n], n_steps, generator=generator,
                                     batch_size=args.batch_size)

    # Warm up (allocator, kernels) on a few short trajectories.
    generate(module, z[:8], 8, generator=generator)
    _generate_full_window(module, z[:8], 8, generator=generator)
    n_full = min(args.n_full, n_max)
    t_full = timed(lambda: full(n_full), device) / n_full
    # The fixed costs per trajectory of the cached path, on one chunk.
    n_chunk = min(n_min, args.batch_size)
    with torch.no_grad():
        t_decoder = timed(lambda: _conditioning(module, z[:n_chunk], rf + n_steps),
                          device)
        c = _conditioning(module, z[:n_chunk], rf + n_steps)
        t_warm = timed(lambda: _warm_up(module.wavenet, c[:, :, :rf]), device)
    fixed = (t_decoder + t_warm) / n_chunk
    for n in args.n:
        t_cached = timed(lambda n=n: cached(n), device)
        note = (f"measured on {n_full}" if n_full == n
                else f"extrapolated from {n_full}")
        loop = 1e6 * (t_cached - fixed * n) / (n * n_steps)
        for method, seconds, extra in (
                ("cached", t_cached, f"loop {loop:.2f} us/step, "
                                     f"{loop / n_layers:.3f} per layer"),
                ("full window", t_full * n, note)):
            speedup = f"{t_full * n / t_cached:7.1f}x" if method == "cached" else ""
            print(f"{layer_size:>3}x{stack_size} {rf:>4} {method:>12} {n:>6} "
                  f"{seconds:>9.2f} {1e6 * seconds / (n * n_steps):>8.2f} "
                  f"{speedup:>8}  {extra}")
    print(f"{'':>5} {'':>4} {'':>12} {n_chunk:>6} {'':>9} {'':>8} {'':>8}  "
          f"of which decoder {t_decoder:.3f} s, warm-up {t_warm:.3f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000],
                        help="trajectories to generate")
    parser.add_argument("--n-full", type=int, default=100,
                        help="trajectories the full-window path is timed on")
    parser.add_argument("--timesteps", type=int, default=400)
    parser.add_argument("--architectures", nargs="+", default=["4x1", "6x1", "3x2"],
                        help="WaveNet layer_size x stack_size")
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="trajectories generated at once (SPIVAE uses 4 x its "
                             "batch_size, 1024 by default)")
    args = parser.parse_args()
    device = torch.device(args.device)
    n_steps = args.timesteps - 1

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda"
             else ""))
    print(f"torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads, T = {args.timesteps} positions")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    header = (f"{'WaveNet':>5} {'RF':>4} {'method':>12} {'n':>6} {'seconds':>9} "
              f"{'us/step':>8} {'speedup':>8}  note")
    print(header)
    print("-" * len(header))
    for arch in args.architectures:
        layer_size, stack_size = (int(v) for v in arch.split("x"))
        bench_architecture(layer_size, stack_size, args, device, n_steps)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("WaveNet: layer_size x stack_size. us/step: microseconds per generated "
          "displacement of one trajectory; the cached loop excludes the decoder "
          "and the warm-up (fixed costs per trajectory, measured on one chunk).")


if __name__ == "__main__":
    main()
