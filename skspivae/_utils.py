"""Helpers shared by the public modules: input checks that name the argument,
plain-text tables, rank correlation. Private: nothing here is public API.

One validation style runs through the package. The type and range of each
argument are declared in scikit-learn's constraint language: as
``_parameter_constraints`` on an estimator (checked in ``fit``), and with
:func:`validate_params` on a public function (checked at the call); either
way a bad value raises ``InvalidParameterError``, a ``ValueError`` and a
``TypeError``, whose message names the argument and what it accepts. The
contents of arrays (shape, finiteness, consistent lengths) are then checked by
the ``check_*`` helpers below, whose errors name the argument too.
"""

from numbers import Integral, Real

import numpy as np
from scipy import stats
from sklearn.utils import check_array
from sklearn.utils._param_validation import (  # noqa: F401 (re-exported)
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
    validate_params,
)

POSITIVE_INT = Interval(Integral, 1, None, closed="left")
NON_NEGATIVE = Interval(Real, 0, None, closed="left")
N_TIMESTEPS = Interval(Integral, 2, None, closed="left")  # a trajectory: 2+ positions
# What parameter_quantities accepts as ``quantities``.
QUANTITIES = [None, str, list, tuple, dict]
# numpy's seeds: what numpy.random.default_rng and SeedSequence accept.
SEED = [None, Interval(Integral, 0, None, closed="left")]


def validate(constraints):
    """:func:`validate_params` for the package's public functions: the
    estimators and functions called inside still check their own parameters
    (a user's regressor in ``latent_readout``, say)."""
    return validate_params(constraints, prefer_skip_nested_validation=False)


def check_2d(a, name, *, n_samples=None, n_columns=None):
    """Float64 2-D array with finite values; errors name the argument."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_samples, n_features); "
            f"got an array with shape {a.shape}."
        )
    if n_columns is not None and a.shape[1] != n_columns:
        raise ValueError(f"`{name}` must have {n_columns} columns; got shape {a.shape}.")
    check_n_samples(a, name, n_samples)
    return check_array(a, dtype=np.float64, input_name=name)


def check_1d(a, name, *, n_samples=None):
    """Float64 1-D array with finite values; errors name the argument."""
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of shape (n_samples,); "
            f"got an array with shape {a.shape}."
        )
    check_n_samples(a, name, n_samples)
    return check_array(a, dtype=np.float64, ensure_2d=False, input_name=name)


def check_n_samples(a, name, n_samples):
    if n_samples is not None and a.shape[0] != n_samples:
        raise ValueError(
            f"`{name}` has {a.shape[0]} samples but {n_samples} were expected "
            "(all inputs must have the same number of samples)."
        )


def check_y(y, n_samples=None):
    """``y`` with columns (alpha, D), as returned by ``make_fbm``/``make_sbm``."""
    return check_2d(y, "y", n_samples=n_samples, n_columns=2)


def check_neurons(neurons, n_components):
    """Indices of the neurons to analyse; ``None`` means all of them."""
    if neurons is None:
        return np.arange(n_components)
    neurons = np.asarray(neurons)
    if neurons.size == 0:
        raise ValueError("`neurons` is empty: there is no neuron to analyse.")
    if neurons.ndim != 1 or not np.issubdtype(neurons.dtype, np.integer):
        raise TypeError("`neurons` must be a 1-D sequence of integer indices.")
    if neurons.min() < 0 or neurons.max() >= n_components:
        raise ValueError(f"`neurons` must be indices in [0, {n_components}); got {neurons}.")
    return neurons


def feature_names(estimator, n_components):
    """The estimator's names of its latent neurons, or z0, z1, ..."""
    try:
        return [str(name) for name in estimator.get_feature_names_out()]
    except (AttributeError, TypeError, ValueError):
        return [f"z{i}" for i in range(n_components)]


def spearman(x, t):
    """Spearman's rank correlation; NaN when either is constant."""
    if np.ptp(x) == 0 or np.ptp(t) == 0:
        return np.nan
    return float(stats.spearmanr(x, t).statistic)


def format_cell(value):
    """A table cell: strings as they are, booleans as yes/no, numbers to 4
    significant digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.4g}"


def format_table(header, rows, align=None):
    """A plain-text table: columns two spaces apart, the first aligned left
    and the others right, unless ``align`` (a string of "l" and "r", one per
    column) says otherwise; cells through :func:`format_cell`."""
    cells = [list(header)] + [[format_cell(c) for c in row] for row in rows]
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w)
                 for c, w, a in zip(row, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def check_real_array(value, name):
    """Return ``value`` as a float64 array of ndim <= 1 with finite entries."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real number or a 1-D array of real numbers, "
            f"got dtype {array.dtype}."
        )
    if array.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got shape {array.shape}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite.")
    return array


def check_alpha_D(alpha, D):
    """alpha in (0, 2) and positive D, each a scalar or a non-empty 1-D
    array of finite reals, as float64 arrays; errors name the argument."""
    alpha = check_real_array(alpha, "alpha")
    D = check_real_array(D, "D")
    for name, values in (("alpha", alpha), ("D", D)):
        if values.size == 0:
            raise ValueError(f"{name} must hold at least one value, got none.")
    if np.any((alpha <= 0) | (alpha >= 2)):
        raise ValueError("alpha must lie in the open interval (0, 2).")
    if np.any(D <= 0):
        raise ValueError("D must be positive.")
    return alpha, D
