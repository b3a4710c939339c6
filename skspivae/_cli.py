"""The ``skspivae`` command line (also ``python -m skspivae``).

Subcommands follow the data flow: ``simulate`` -> ``fit`` -> ``transform`` /
``sample`` / ``inspect``; ``demo`` runs all of it on a small fBM grid. Errors
in the input end the program with one line on stderr and exit status 1.
"""

import argparse
import ast
import json
import os
import sys
import time

import numpy as np

from ._io import atomic_write
from ._utils import format_table

PROG = "skspivae"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


# --- reading and writing ------------------------------------------------------

def _check_output(path, overwrite):
    """Refuse to replace an existing file unless ``overwrite``."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist (for {path}).")


def _check_folder(path, overwrite):
    """Refuse a non-empty output folder unless ``overwrite`` (created later)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; pass --overwrite to "
                              "write into it.")


def _save_arrays(path, overwrite, **arrays):
    """Write ``arrays`` to ``.npz`` (compressed) or one array to ``.npy``, atomically.

    ``atomic_write`` checks ``path`` again, so that no caller can replace a
    file without ``overwrite``.
    """
    if not path.endswith((".npz", ".npy")):
        raise ValueError(f"{path}: the output must end in .npz or .npy.")

    def write(f):
        if path.endswith(".npz"):
            np.savez_compressed(f, **arrays)
        else:
            np.save(f, next(iter(arrays.values())))

    atomic_write(path, write, overwrite=overwrite, hint="pass --overwrite")


def _load_data(path, *, need_y=False):
    """``X`` (and ``y``, or None) from a ``.npz`` (keys X, y) or a ``.npy`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises many kinds on a malformed file
        # A file that is neither .npy nor .npz is taken for a pickle, refused.
        reason = "not a numpy file" if "pickle" in str(exc) else exc
        raise ValueError(f"{path} is not a readable .npy or .npz file "
                         f"({reason}).") from None
    if isinstance(loaded, np.ndarray):
        X, y = loaded, None
    else:
        with loaded:
            if "X" not in loaded.files:
                raise ValueError(f"{path} has no array 'X' (it has: "
                                 f"{', '.join(loaded.files) or 'nothing'}).")
            X = loaded["X"]
            y = loaded["y"] if "y" in loaded.files else None
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X in {path} must be a 2-D numeric array (n_samples, "
                         f"n_timesteps); got shape {X.shape}, dtype {X.dtype}.")
    if need_y and y is None:
        raise ValueError(f"{path} has no array 'y' of parameters (alpha, D); "
                         "write one with 'skspivae simulate'.")
    if y is not None and y.shape != (X.shape[0], 2):
        raise ValueError(f"y in {path} must have shape ({X.shape[0]}, 2) (alpha, D); "
                         f"got {y.shape}.")
    return X, y


def _load_model(path, device=None):
    from ._estimator import SPIVAE

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return SPIVAE.load(path, device=device)
    except ValueError:
        raise
    except Exception as exc:  # torch raises many kinds on a foreign file
        raise ValueError(f"{path} is not a model written by 'skspivae fit' "
                         f"({type(exc).__name__}).") from None


# --- parsing values -----------------------------------------------------------

def _literal(text):
    """A Python literal, or the text itself when it is not one (``cpu``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _param(text):
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), _literal(value.strip())


def _schedule(text):
    """A schedule name, or a JSON/Python list of (n_epochs, beta) stages."""
    if text.strip()[:1] in "[(":
        value = _literal(text)
        if not isinstance(value, (list, tuple)):
            raise argparse.ArgumentTypeError(f"cannot read the stages {text!r}")
        return [tuple(s) if isinstance(s, (list, tuple)) else s for s in value]
    return text


def _values(log):
    """Parser of ``0.5,1,1.5`` or ``START:STOP:NUM`` (geometric when ``log``)."""
    def parse(text):
        try:
            if ":" in text:
                start, stop, num = text.split(":")
                if int(num) < 1:
                    raise argparse.ArgumentTypeError(
                        f"NUM in START:STOP:NUM must be at least 1, got {text!r}")
                space = np.geomspace if log else np.linspace
                return space(float(start), float(stop), int(num))
            return np.array([float(v) for v in text.split(",")])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers like 0.5,1.5 or START:STOP:NUM, got {text!r}"
            ) from None
    parse.__name__ = "values"
    return parse


def _z(text):
    """``--z``: a ``.npy`` file or a literal list (one latent or one per row)."""
    if os.path.isfile(text):
        z = np.load(text, allow_pickle=False)
    else:
        value = _literal(text)
        if isinstance(value, str):
            raise ValueError(f"--z {text!r} is neither a file nor a list of numbers.")
        z = np.asarray(value, dtype=float)
    if z.ndim not in (1, 2):
        raise ValueError(f"--z must be 1-D or 2-D; got shape {z.shape}.")
    return z


# --- reports ------------------------------------------------------------------

def _neuron_report(est, X, y, *, n_timesteps=None):
    """One dict per latent neuron: KL, Var(mu), Mean(log s2), active, Spearman.

    Spearman correlations are with alpha and log D (and the SBM combinations
    when ``n_timesteps`` is given), computed on ``X`` with parameters ``y``.
    """
    from .inspection import latent_parameter_relations, neuron_summary_from_moments

    mu, logvar = est.encode(X)
    names = [str(n) for n in est.get_feature_names_out()]
    summary = neuron_summary_from_moments(mu, logvar, kl_threshold=est.kl_threshold,
                                          feature_names=names)
    relations = latent_parameter_relations(mu, y, n_timesteps=n_timesteps,
                                           feature_names=names)
    return [{"neuron": name, "index": i, "kl": float(summary.kl[i]),
             "var_mu": float(summary.var_mu[i]),
             "mean_logvar": float(summary.mean_logvar[i]),
             "active": bool(summary.active[i]),
             "spearman": {q: _finite(relations.spearman[i, j])
                          for j, q in enumerate(relations.quantities)}}
            for i, name in enumerate(names)]


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _format_report(rows, *, active_only=False):
    """The rows of :func:`_neuron_report` as an aligned text table."""
    rows = [r for r in rows if r["active"] or not active_only]
    quantities = list(rows[0]["spearman"]) if rows else []
    header = ["neuron", "KL (nats)", "Var(mu)", "Mean(log s2)", "active"]
    header += [f"rho({q})" for q in quantities]
    table = []
    for r in rows:
        rho = ["nan" if r["spearman"][q] is None else f"{r['spearman'][q]:+.3f}"
               for q in quantities]
        table.append([r["neuron"], f"{r['kl']:.4g}", f"{r['var_mu']:.4g}",
                      f"{r['mean_logvar']:.3g}", r["active"]] + rho)
    return format_table(header, table)


def _figure(nrows=1, ncols=1, **kwargs):
    """A matplotlib figure with its axes, without pyplot (no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kwargs)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _write_figures(est, X, y, rows, folder, *, n_timesteps=None):
    """Training curves, KL per neuron and latent-vs-parameter panels as PNG."""
    from . import plotting

    written = []
    fig, ax = _figure(figsize=(6, 4))
    plotting.plot_history(est.history_, ax=ax[0, 0])
    written.append(_savefig(fig, folder, "history.png"))
    fig, ax = _figure(figsize=(6, 4))
    plotting.plot_kl_per_component(est.history_, ax=ax[0, 0],
                                   kl_threshold=est.kl_threshold,
                                   names=[r["neuron"] for r in rows])
    written.append(_savefig(fig, folder, "kl_per_component.png"))
    active = [r["index"] for r in rows if r["active"]]
    if active:
        n_quantities = len(rows[0]["spearman"])
        fig, axes = _figure(len(active), n_quantities,
                            figsize=(3.2 * n_quantities, 2.8 * len(active)))
        plotting.plot_latent_vs_parameters(est.transform(X), y, neurons=active,
                                           n_timesteps=n_timesteps, axes=axes)
        written.append(_savefig(fig, folder, "latent_vs_parameters.png"))
    return written


def _savefig(fig, folder, name):
    path = os.path.join(folder, name)
    fig.savefig(path, dpi=100)
    return path


def _json_ready(obj):
    """Numpy scalars and arrays, tuples and NaN made JSON-friendly."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.integer, bool, np.bool_)):
        return obj.item() if hasattr(obj, "item") else obj
    if isinstance(obj, (float, np.floating)):
        return _finite(obj)
    if obj is None or isinstance(obj, (int, str)):
        return obj
    return str(obj)


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(_json_ready(obj), f, indent=2)
        f.write("\n")
    return path


# --- subcommands --------------------------------------------------------------

def _cmd_simulate(args):
    from ._demo import PAPER_ALPHA, PAPER_D
    from .datasets import make_fbm, make_sbm

    _check_output(args.out, args.overwrite)
    if not args.out.endswith(".npz"):
        raise ValueError(f"{args.out}: the output of simulate must end in .npz.")
    make = make_fbm if args.process == "fbm" else make_sbm
    grid = args.design == "grid"
    alpha = args.alpha if args.alpha is not None or not grid else PAPER_ALPHA
    D = args.D if args.D is not None or not grid else PAPER_D
    X, y = make(args.n_samples, args.n_timesteps, alpha=alpha, D=D,
                design=args.design, shuffle=args.shuffle, random_state=args.seed)
    _save_arrays(args.out, args.overwrite, X=X, y=y)
    print(f"wrote {X.shape[0]} {args.process} trajectories of {X.shape[1]} positions "
          f"to {args.out}")


def _estimator_from_args(args):
    from ._estimator import SPIVAE

    params = dict(args.param or [])
    flags = {"n_components": args.n_components, "beta_schedule": args.beta_schedule,
             "beta": args.beta, "max_epochs": args.max_epochs,
             "batch_size": args.batch_size, "lr": args.lr, "device": args.device,
             "random_state": args.seed, "verbose": args.verbose}
    params.update({k: v for k, v in flags.items() if v is not None})
    est = SPIVAE().set_params(**params)
    est._validate_params()  # fail before loading data, not after training
    return est


def _cmd_fit(args):
    _check_output(args.out, args.overwrite)
    est = _estimator_from_args(args)
    X, _ = _load_data(args.data)
    start = time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - start
    est.save(args.out, overwrite=args.overwrite)
    kl = ", ".join(f"{v:.3g}" for v in est.kl_divergence_)
    print(f"fitted {est.n_iter_} epochs in {seconds:.1f} s; KL per neuron: [{kl}]; "
          f"active neurons: {est.active_components_.tolist()}")
    print(f"wrote {args.out}")


def _cmd_transform(args):
    _check_output(args.out, args.overwrite)
    est = _load_model(args.model, args.device)
    X, y = _load_data(args.data)
    mu, logvar = est.encode(X)
    arrays = {"mu": mu, "logvar": logvar}
    if y is not None:
        arrays["y"] = y
    _save_arrays(args.out, args.overwrite, **arrays)
    print(f"wrote latent means of {mu.shape[0]} trajectories to {args.out}")


def _cmd_sample(args):
    _check_output(args.out, args.overwrite)
    if not args.out.endswith(".npz"):
        raise ValueError(f"{args.out}: the output of sample must end in .npz.")
    est = _load_model(args.model, args.device)
    z = _z(args.z) if args.z is not None else None
    X = est.sample(args.n_samples, z=z, n_timesteps=args.n_timesteps,
                   random_state=args.seed)
    arrays = {"X": X}
    if z is not None:
        arrays["z"] = z
    _save_arrays(args.out, args.overwrite, **arrays)
    print(f"wrote {X.shape[0]} generated trajectories of {X.shape[1]} positions "
          f"to {args.out}")


def _cmd_inspect(args):
    _check_folder(args.out, args.overwrite)
    est = _load_model(args.model, args.device)
    X, y = _load_data(args.data, need_y=True)
    n_timesteps = X.shape[1] if args.sbm else None
    rows = _neuron_report(est, X, y, n_timesteps=n_timesteps)
    table = _format_report(rows)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "neurons.txt"), "w") as f:
        f.write(table + "\n")
    _write_json(os.path.join(args.out, "neurons.json"), rows)
    figures = _write_figures(est, X, y, rows, args.out, n_timesteps=n_timesteps)
    if args.json:
        print(json.dumps(_json_ready(rows), indent=2))
    else:
        print(table)
        print(f"wrote neurons.txt, neurons.json and {len(figures)} figures to "
              f"{args.out}")


def _cmd_demo(args):
    from ._demo import run_demo

    recipe = "quick" if args.quick else "full" if args.full else "default"
    run_demo(recipe, out=args.out, overwrite=args.overwrite, seed=args.seed,
             device=args.device)


# --- the parser ---------------------------------------------------------------

def build_parser():
    """The ``argparse`` parser of the ``skspivae`` command."""
    parser = _Parser(prog=PROG, description="SPIVAE: minimal representations of "
                     "diffusion trajectories with a beta-VAE.")
    from . import __version__

    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def overwrite(p):
        p.add_argument("--overwrite", action="store_true",
                       help="replace existing output")

    p = command("simulate", _cmd_simulate, "simulate fBM or SBM trajectories to .npz "
                "(arrays X: positions, y: alpha and D)")
    p.add_argument("-o", "--out", required=True, help="output file (.npz)")
    p.add_argument("--process", choices=("fbm", "sbm"), default="fbm")
    p.add_argument("-n", "--n-samples", type=int, default=2100,
                   help="trajectories (a multiple of the grid size for --design grid; "
                   "default 2100)")
    p.add_argument("-T", "--n-timesteps", type=int, default=400,
                   help="positions per trajectory (default 400)")
    p.add_argument("--alpha", type=_values(log=False),
                   help="exponents 0.5,1,1.5 or START:STOP:NUM (linear); with "
                   "--design uniform a LOW,HIGH range (default: the paper's grid)")
    p.add_argument("-D", "--D", dest="D", type=_values(log=True),
                   help="diffusion coefficients 1e-4,1e-3 or START:STOP:NUM "
                   "(geometric); with --design uniform a LOW,HIGH range")
    p.add_argument("--design", choices=("grid", "uniform"), default="grid")
    p.add_argument("--shuffle", action="store_true", help="shuffle the rows")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    overwrite(p)

    p = command("fit", _cmd_fit, "train a SPIVAE on trajectories and save it")
    p.add_argument("data", help="trajectories: .npz with array X, or .npy")
    p.add_argument("-o", "--out", required=True, help="model file to write (.pt)")
    p.add_argument("--n-components", type=int, help="latent neurons (default 6)")
    p.add_argument("--beta-schedule", type=_schedule,
                   help="constant, linear, tanh, fbm_paper, sbm_paper, or stages "
                   "like '[(64, 0), (16, 1e-4), (16, 1e-3)]'")
    p.add_argument("--beta", type=float, help="beta of the single-stage schedules")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--seed", type=int, help="random_state")
    p.add_argument("--verbose", type=int, default=1,
                   help="1 prints an epoch table (default), 0 is silent")
    p.add_argument("--param", action="append", type=_param, metavar="NAME=VALUE",
                   help="any SPIVAE parameter, value as a Python literal, e.g. "
                   "--param 'encoder_hidden=(64, 32)'; repeatable")
    overwrite(p)

    p = command("transform", _cmd_transform, "write the latent means (and "
                "log-variances) of trajectories")
    p.add_argument("model", help="model written by fit")
    p.add_argument("data", help="trajectories: .npz with array X, or .npy")
    p.add_argument("-o", "--out", required=True,
                   help=".npy (means) or .npz (mu, logvar and y when present)")
    p.add_argument("--device", help="where to run (default: the saved device)")
    overwrite(p)

    p = command("sample", _cmd_sample, "generate new trajectories from a model")
    p.add_argument("model", help="model written by fit")
    p.add_argument("-o", "--out", required=True, help="output file (.npz, array X)")
    p.add_argument("-n", "--n-samples", type=int, default=1)
    p.add_argument("-T", "--n-timesteps", type=int,
                   help="positions per trajectory (default: the training length)")
    p.add_argument("--z", help="latent values: a .npy file or a literal such as "
                   "'[0.5, -1, 0, 0, 0, 0]' (default: drawn from the prior)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--device", help="where to run (default: the saved device)")
    overwrite(p)

    p = command("inspect", _cmd_inspect, "neuron table (KL, Spearman correlations) "
                "and figures of a model on labelled trajectories")
    p.add_argument("model", help="model written by fit")
    p.add_argument("data", help=".npz with arrays X and y (as written by simulate)")
    p.add_argument("-o", "--out", required=True,
                   help="folder for the table and figures")
    p.add_argument("--sbm", action="store_true", help="also relate the neurons to "
                   "the SBM combinations log(alpha D T^(alpha-1)) and "
                   "log(alpha D T^(1-alpha))")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--device", help="where to run (default: the saved device)")
    overwrite(p)

    p = command("demo", _cmd_demo, "simulate fBM, train with beta annealing, show "
                "which neurons survive and what they encode, generate trajectories "
                "from chosen latents (a few minutes on a 2-core CPU)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a tiny run of seconds, for smoke tests")
    size.add_argument("--full", action="store_true", help="the paper's model and "
                      "recipe: WaveNet decoder, 100,000 trajectories of T = 400, "
                      "fbm_paper schedule (for a GPU)")
    p.add_argument("-o", "--out", default="skspivae_demo",
                   help="output folder (default skspivae_demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    overwrite(p)
    return parser


def _message(exc):
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """Run the ``skspivae`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status: 0 on success, 1 on bad input (one line on stderr),
        2 on a usage error, 130 when interrupted.

    Examples
    --------
    >>> import os, tempfile
    >>> from skspivae._cli import main
    >>> path = os.path.join(tempfile.mkdtemp(), "fbm.npz")
    >>> main(["simulate", "-o", path, "-n", "8", "-T", "50", "--alpha", "0.5,1.5",
    ...       "-D", "1e-3"])
    wrote 8 fbm trajectories of 50 positions to ...fbm.npz
    0
    >>> main(["simulate", "-o", path])  # refuses to replace the file
    1
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    # OSError covers FileExistsError and FileNotFoundError.
    except (ValueError, TypeError, OSError) as exc:
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 1
    return 0
