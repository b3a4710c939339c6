"""Figures that explain a fitted SPIVAE (matplotlib).

Every function draws on the given ``ax`` (or ``axes`` for multi-panel figures),
creating a figure when none is given, and returns what it drew on. Functions
take either a fitted estimator with its data (``X=``) or the plain arrays and
results of :mod:`skspivae.inspection`.

- Training: :func:`plot_history`, :func:`plot_kl_per_component`.
- Neurons: :func:`plot_latent_distributions`, :func:`plot_neuron_summary`.
- Latent versus parameters: :func:`plot_latent_vs_parameters`,
  :func:`plot_latent_surface`.
- Loss and trajectories: :func:`plot_loss_per_alpha`, :func:`plot_msd`.
"""

from numbers import Real

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from sklearn.utils.validation import check_is_fitted

from ._lr_finder import plot_lr_finder
from ._utils import (
    N_TIMESTEPS,
    NON_NEGATIVE,
    POSITIVE_INT,
    QUANTITIES,
    check_1d,
    check_2d,
    check_neurons,
    check_y,
    feature_names,
    spearman,
    validate,
)
from .inspection import (
    NeuronSummary,
    ParameterGroups,
    group_by_parameters,
    neuron_summary_from_moments,
    parameter_quantities,
)

__all__ = [
    "plot_history",
    "plot_kl_per_component",
    "plot_latent_distributions",
    "plot_neuron_summary",
    "plot_latent_vs_parameters",
    "plot_latent_surface",
    "plot_loss_per_alpha",
    "plot_msd",
    "plot_lr_finder",
]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
# Constraints shared by the plotting functions; what an input holds (a history,
# a latent, a summary) is checked by the helpers below.
_AX = [None, Axes]
_AXES = [None, Axes, "array-like"]
_X = [None, "array-like"]
_ANY = "no_validation"


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _get_ax(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    return ax


def _get_axes(axes, shape, figsize=None, **kwargs):
    """A 2-D array of axes of ``shape``: new, or the user's checked for size."""
    if axes is None:
        _, axes = _pyplot().subplots(*shape, figsize=figsize, squeeze=False, **kwargs)
        return axes
    axes = np.asarray(axes, dtype=object)
    if axes.size != shape[0] * shape[1]:
        raise ValueError(
            f"`axes` must hold {shape[0] * shape[1]} axes (layout {shape}); got {axes.size}."
        )
    return axes.reshape(shape)


def _history(history):
    """The per-epoch list of dicts, from ``history_`` or a fitted estimator."""
    if hasattr(history, "history_"):
        history = history.history_
    elif hasattr(history, "fit"):
        check_is_fitted(history, "history_")
    if isinstance(history, dict) or not hasattr(history, "__len__"):
        raise TypeError(
            "`history` must be a list of per-epoch dicts (an estimator's "
            f"`history_`) or a fitted estimator; got {type(history).__name__}."
        )
    if len(history) == 0:
        raise ValueError("`history` is empty: no epoch to plot.")
    return list(history)


def _column(history, key):
    values = [epoch.get(key, np.nan) for epoch in history]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _latent(latent, X, *, need_logvar=False):
    """(mu, logvar or None, feature names, default neurons) from any input.

    ``latent`` is a fitted estimator (then ``X`` is encoded and the default
    neurons are its ``active_components_``), a ``(mu, logvar)`` tuple, or an
    array of latent means.
    """
    if hasattr(latent, "encode"):
        check_is_fitted(latent)
        if X is None:
            raise ValueError("`X` is required when `latent` is an estimator.")
        mu, logvar = (np.asarray(a) for a in latent.encode(X))
        mu = check_2d(mu, "mu")
        names = feature_names(latent, mu.shape[1])
        active = np.asarray(getattr(latent, "active_components_", []), dtype=int)
        neurons = active if active.size else np.arange(mu.shape[1])
        return mu, check_2d(logvar, "logvar", n_samples=mu.shape[0]), names, neurons
    if isinstance(latent, tuple):
        if len(latent) != 2:
            raise ValueError("`latent` as a tuple must be (mu, logvar).")
        mu = check_2d(latent[0], "mu")
        logvar = check_2d(latent[1], "logvar", n_samples=mu.shape[0])
        if logvar.shape != mu.shape:
            raise ValueError("`mu` and `logvar` must have the same shape.")
    else:
        if need_logvar:
            raise TypeError(
                "`latent` must be a fitted estimator or a (mu, logvar) tuple "
                "here: the log-variances are needed."
            )
        mu, logvar = check_2d(latent, "mu"), None
    names = [f"z{i}" for i in range(mu.shape[1])]
    return mu, logvar, names, np.arange(mu.shape[1])


def _edges(centers, log=False):
    """Cell edges around sorted centres (geometric midpoints when ``log``)."""
    c = np.log(centers) if log else np.asarray(centers, dtype=float)
    if c.size == 1:
        edges = np.array([c[0] - 0.5, c[0] + 0.5])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        edges = np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------
@validate({"history": _ANY, "ax": _AX})
def plot_history(history, *, ax=None):
    """Training and validation loss per epoch, with beta on a twin axis.

    Parameters
    ----------
    history : list of dict or fitted estimator
        ``estimator.history_`` (keys ``"epoch"``, ``"train_loss"``,
        ``"valid_loss"``, ``"beta"``) or the estimator itself.
    ax : matplotlib Axes, default=None
        Axes for the losses; a new figure when None. Beta goes on
        ``ax.twinx()``, available afterwards as ``ax.beta_ax``.

    Returns
    -------
    ax : matplotlib Axes
        The axes with the loss curves.

    Examples
    --------
    >>> from skspivae.plotting import plot_history
    >>> history = [{"epoch": e, "train_loss": 1 / (e + 1), "valid_loss": 1.1 / (e + 1),
    ...             "beta": 0.0 if e < 3 else 1e-3} for e in range(6)]
    >>> ax = plot_history(history)
    >>> [line.get_label() for line in ax.get_lines()]
    ['train', 'validation']
    """
    history = _history(history)
    ax = _get_ax(ax)
    epochs = _column(history, "epoch")
    if np.all(np.isnan(epochs)):
        epochs = np.arange(len(history), dtype=float)
    for key, label in (("train_loss", "train"), ("valid_loss", "validation")):
        values = _column(history, key)
        if not np.all(np.isnan(values)):
            ax.plot(epochs, values, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per step)")
    handles, labels = ax.get_legend_handles_labels()
    beta = _column(history, "beta")
    if not np.all(np.isnan(beta)):
        beta_ax = ax.twinx()
        (line,) = beta_ax.step(
            epochs, beta, where="post", color="0.4", linestyle="--", label="beta"
        )
        beta_ax.set_ylabel("beta")
        ax.beta_ax = beta_ax
        handles, labels = handles + [line], labels + ["beta"]
    # Above the axes: inside, it would hide the loss or the beta steps.
    ax.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False
    )
    return ax


@validate({
    "history": _ANY,
    "ax": _AX,
    "kl_threshold": [None, NON_NEGATIVE],
    "names": [None, "array-like"],
})
def plot_kl_per_component(history, *, ax=None, kl_threshold=None, names=None):
    """KL divergence of each latent neuron per epoch, on a log scale.

    Collapsed (noised) neurons fall orders of magnitude below the ones that
    carry information once beta grows.

    Parameters
    ----------
    history : list of dict or fitted estimator
        ``estimator.history_`` (keys ``"epoch"`` and ``"kl_per_component"``) or
        the estimator itself.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    kl_threshold : float, default=None
        Draws the activity threshold as a dotted horizontal line; taken from
        the estimator's ``kl_threshold`` when an estimator is given.
    names : list of str, default=None
        Neuron names; from the estimator or ``["z0", ...]`` when None.

    Returns
    -------
    ax : matplotlib Axes
        The axes, one line per neuron.

    Examples
    --------
    >>> from skspivae.plotting import plot_kl_per_component
    >>> history = [{"epoch": e, "kl_per_component": [1.0, 10.0**-e]} for e in range(4)]
    >>> ax = plot_kl_per_component(history)
    >>> len(ax.get_lines()), ax.get_yscale()
    (2, 'log')
    """
    if hasattr(history, "history_"):
        if kl_threshold is None:
            kl_threshold = getattr(history, "kl_threshold", None)
        if names is None and hasattr(history, "get_feature_names_out"):
            names = list(history.get_feature_names_out())
    history = _history(history)
    try:
        kl = np.array([epoch["kl_per_component"] for epoch in history], dtype=float)
    except KeyError as error:
        raise ValueError("`history` has no 'kl_per_component' entries.") from error
    if kl.ndim != 2:
        raise ValueError("`history` 'kl_per_component' must be lists of equal length.")
    names = [f"z{i}" for i in range(kl.shape[1])] if names is None else names
    if len(names) != kl.shape[1]:
        raise ValueError(f"`names` has {len(names)} names for {kl.shape[1]} neurons.")
    epochs = _column(history, "epoch")
    if np.all(np.isnan(epochs)):
        epochs = np.arange(len(history), dtype=float)
    ax = _get_ax(ax)
    for i, name in enumerate(names):
        ax.plot(epochs, kl[:, i], label=str(name))
    if kl_threshold is not None:
        ax.axhline(kl_threshold, color="0.5", linestyle=":", label="_threshold")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL per neuron (nats)")
    ax.legend(loc="lower left", fontsize="small")
    return ax


# --------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------
@validate({"latent": _ANY, "X": _X, "axes": _AXES, "bins": [POSITIVE_INT]})
def plot_latent_distributions(latent, *, X=None, axes=None, bins=50):
    """Histograms of the latent means mu and variances sigma^2 of each neuron.

    Parameters
    ----------
    latent : fitted estimator or tuple (mu, logvar)
        An estimator with ``encode`` (then ``X`` is required) or the arrays,
        each of shape (n_samples, n_components).
    X : array-like of shape (n_samples, n_timesteps), default=None
        Trajectories to encode when ``latent`` is an estimator.
    axes : array of 2 matplotlib Axes, default=None
        Axes for mu and for sigma^2 (log scale); a new figure when None.
    bins : int, default=50
        Number of bins.

    Returns
    -------
    axes : ndarray of 2 matplotlib Axes
        Each with one histogram per neuron.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_latent_distributions
    >>> rng = np.random.default_rng(0)
    >>> mu, logvar = rng.normal(size=(300, 3)), rng.normal(-2, 1, size=(300, 3))
    >>> axes = plot_latent_distributions((mu, logvar))
    >>> len(axes[0].patches), axes[1].get_xscale()
    (3, 'log')
    """
    mu, logvar, names, _ = _latent(latent, X, need_logvar=True)
    ax_mu, ax_var = _get_axes(axes, (1, 2), figsize=(10, 4)).ravel()
    var = np.exp(logvar)
    var_bins = np.geomspace(max(var.min(), 1e-300), max(var.max(), 1e-300), bins + 1)
    if var_bins[0] == var_bins[-1]:
        var_bins = np.geomspace(var_bins[0] / 2, var_bins[0] * 2, bins + 1)
    for i, name in enumerate(names):
        ax_mu.hist(mu[:, i], bins=bins, histtype="step", label=str(name))
        ax_var.hist(var[:, i], bins=var_bins, histtype="step", label=str(name))
    ax_mu.set_xlabel(r"$\mu$")
    ax_var.set_xlabel(r"$\sigma^2$")
    ax_var.set_xscale("log")
    for ax in (ax_mu, ax_var):
        ax.set_ylabel("count")
    ax_mu.legend(fontsize="small")
    return np.array([ax_mu, ax_var], dtype=object)


@validate({"summary": _ANY, "X": _X, "axes": _AXES})
def plot_neuron_summary(summary, *, X=None, axes=None):
    """Var(mu) and Mean(log sigma^2) per neuron, active neurons highlighted.

    Informative neurons have a large ``Var(mu)`` and a very negative
    ``Mean(log sigma^2)``; collapsed ones sit at about 0 in both.

    Parameters
    ----------
    summary : NeuronSummary, fitted estimator or tuple (mu, logvar)
        A result of :func:`~skspivae.inspection.neuron_summary`, an estimator
        with ``encode`` (then ``X`` is required) or the arrays.
    X : array-like of shape (n_samples, n_timesteps), default=None
        Trajectories to encode when ``summary`` is an estimator.
    axes : array of 2 matplotlib Axes, default=None
        Axes for Var(mu) (log scale) and Mean(log sigma^2); new when None.

    Returns
    -------
    axes : ndarray of 2 matplotlib Axes
        Each with one bar per neuron.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_neuron_summary
    >>> rng = np.random.default_rng(0)
    >>> mu = rng.normal(size=(300, 3)) * [1.0, 0.01, 2.0]
    >>> logvar = np.tile([-5.0, 0.0, -3.0], (300, 1))
    >>> axes = plot_neuron_summary((mu, logvar))
    >>> len(axes[0].patches), len(axes[1].patches)
    (3, 3)
    """
    if not isinstance(summary, NeuronSummary):
        mu, logvar, names, _ = _latent(summary, X, need_logvar=True)
        threshold = getattr(summary, "kl_threshold", 0.1)
        summary = neuron_summary_from_moments(
            mu, logvar, kl_threshold=threshold, feature_names=names
        )
    ax_var, ax_logvar = _get_axes(axes, (1, 2), figsize=(10, 4)).ravel()
    x = np.arange(summary.n_components)
    colors = np.where(summary.active, "C0", "0.7")
    ax_var.bar(x, summary.var_mu, color=colors)
    ax_logvar.bar(x, summary.mean_logvar, color=colors)
    ax_var.set_yscale("log")
    ax_var.set_ylabel(r"Var($\mu$)")
    ax_logvar.set_ylabel(r"Mean(log $\sigma^2$)")
    for ax in (ax_var, ax_logvar):
        ax.set_xticks(x, summary.feature_names)
        ax.set_xlabel("neuron (colored: active)")
    return np.array([ax_var, ax_logvar], dtype=object)


# --------------------------------------------------------------------------
# Latent versus parameters
# --------------------------------------------------------------------------
@validate({
    "latent": _ANY,
    "y": ["array-like"],
    "X": _X,
    "neurons": [None, "array-like"],
    "n_timesteps": [None, N_TIMESTEPS],
    "quantities": QUANTITIES,
    "axes": _AXES,
    "bins": [POSITIVE_INT],
})
def plot_latent_vs_parameters(
    latent,
    y,
    *,
    X=None,
    neurons=None,
    n_timesteps=None,
    quantities=None,
    axes=None,
    bins=40,
):
    """2-D histograms of each neuron's mean against each parameter quantity.

    One row per neuron, one column per quantity (alpha, log D and, when
    ``n_timesteps`` is given, the SBM combinations); each panel is annotated
    with the Spearman correlation.

    Parameters
    ----------
    latent : fitted estimator, array-like or tuple (mu, logvar)
        An estimator with ``encode`` (then ``X`` is required), the latent
        means of shape (n_samples, n_components), or a ``(mu, logvar)`` tuple.
    y : array-like of shape (n_samples, 2)
        Parameters (alpha, D) of each trajectory.
    X : array-like of shape (n_samples, n_timesteps), default=None
        Trajectories to encode when ``latent`` is an estimator.
    neurons : array-like of int, default=None
        Neurons to show; the estimator's ``active_components_`` (or all neurons
        for arrays) when None.
    n_timesteps : int, default=None
        Trajectory length T, which adds the SBM combinations.
    quantities : sequence or dict, default=None
        Quantities to show; see :func:`~skspivae.inspection.parameter_quantities`.
    axes : array of matplotlib Axes, default=None
        ``n_neurons * n_quantities`` axes; a new figure when None.
    bins : int, default=40
        Bins per dimension.

    Returns
    -------
    axes : ndarray of matplotlib Axes, shape (n_neurons, n_quantities)
        The panels.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_latent_vs_parameters
    >>> rng = np.random.default_rng(0)
    >>> alpha, D = rng.uniform(0.2, 1.8, 500), 10 ** rng.uniform(-5, -2, 500)
    >>> y = np.column_stack([alpha, D])
    >>> mu = np.column_stack([y[:, 0], np.log(y[:, 1]), rng.normal(size=500)])
    >>> axes = plot_latent_vs_parameters(mu, y, neurons=[0, 1])
    >>> axes.shape, axes[1, 1].get_xlabel()
    ((2, 2), 'log D')
    """
    mu, _, names, default = _latent(latent, X)
    y = check_y(y, n_samples=mu.shape[0])
    neurons = default if neurons is None else check_neurons(neurons, mu.shape[1])
    table = parameter_quantities(y, n_timesteps=n_timesteps, quantities=quantities)
    shape = (len(neurons), len(table))
    axes = _get_axes(
        axes, shape, figsize=(3.2 * shape[1], 2.8 * shape[0]), layout="constrained"
    )
    for row, neuron in enumerate(neurons):
        for col, (name, values) in enumerate(table.items()):
            ax = axes[row, col]
            ax.hist2d(values, mu[:, neuron], bins=bins, cmap="viridis")
            rho = spearman(mu[:, neuron], values)
            ax.text(
                0.03,
                0.95,
                f"$\\rho_s$ = {rho:.2f}",
                transform=ax.transAxes,
                va="top",
                color="w",
                fontsize="small",
                bbox={"facecolor": "k", "alpha": 0.5, "linewidth": 0},
            )
            ax.set_xlabel(name)
            ax.set_ylabel(rf"$\mu$ of {names[neuron]}")
    return axes


@validate({
    "latent": _ANY,
    "y": ["array-like"],
    "X": _X,
    "neurons": [None, "array-like"],
    "axes": _AXES,
    "cmap": [str, Colormap],
})
def plot_latent_surface(latent, y, *, X=None, neurons=None, axes=None, cmap="RdBu_r"):
    """Mean of each neuron over the (alpha, D) grid, as an image.

    Parameters
    ----------
    latent : fitted estimator, array-like or tuple (mu, logvar)
        An estimator with ``encode`` (then ``X`` is required), the latent
        means of shape (n_samples, n_components), or a ``(mu, logvar)`` tuple.
    y : array-like of shape (n_samples, 2)
        Parameters (alpha, D) on a grid (pairs repeat).
    X : array-like of shape (n_samples, n_timesteps), default=None
        Trajectories to encode when ``latent`` is an estimator.
    neurons : array-like of int, default=None
        Neurons to show; the estimator's ``active_components_`` (or all
        neurons for arrays) when None.
    axes : array of matplotlib Axes, default=None
        One axes per neuron; a new figure when None.
    cmap : str, default="RdBu_r"
        Colormap.

    Returns
    -------
    axes : ndarray of matplotlib Axes, shape (n_neurons,)
        One image (with colorbar) per neuron; alpha on x, D on a log y axis.
        Missing grid cells are blank.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_latent_surface
    >>> alpha, D = np.meshgrid(np.linspace(0.2, 1.8, 5), np.geomspace(1e-5, 1e-2, 4))
    >>> y = np.column_stack([alpha.ravel(), D.ravel()])
    >>> mu = np.column_stack([y[:, 0], np.log(y[:, 1])])
    >>> axes = plot_latent_surface(mu, y)
    >>> len(axes), axes[0].get_yscale()
    (2, 'log')
    """
    mu, _, names, default = _latent(latent, X)
    y = check_y(y, n_samples=mu.shape[0])
    neurons = default if neurons is None else check_neurons(neurons, mu.shape[1])
    if np.any(y[:, 1] <= 0):
        raise ValueError("The D column of `y` must be positive (log axis).")
    groups = group_by_parameters(mu[:, neurons], y, name="mu")
    alphas, Ds, grid = groups.to_grid()  # grid: (n_alpha, n_D, n_neurons)
    axes = _get_axes(
        axes, (1, len(neurons)), figsize=(4 * len(neurons), 3.5), layout="constrained"
    ).ravel()
    alpha_edges, D_edges = _edges(alphas), _edges(Ds, log=True)
    for k, neuron in enumerate(neurons):
        ax = axes[k]
        mesh = ax.pcolormesh(
            alpha_edges, D_edges, np.ma.masked_invalid(grid[:, :, k].T), cmap=cmap
        )
        ax.figure.colorbar(mesh, ax=ax, label=rf"mean $\mu$ of {names[neuron]}")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel("D")
        ax.set_title(str(names[neuron]))
    return axes


# --------------------------------------------------------------------------
# Loss and trajectories
# --------------------------------------------------------------------------
@validate({
    "loss": _ANY,
    "y": [None, "array-like"],
    "X": _X,
    "ax": _AX,
    "show_std": ["boolean"],
})
def plot_loss_per_alpha(loss, y=None, *, X=None, ax=None, show_std=True):
    """Mean loss against alpha, one line per diffusion coefficient D.

    Parameters
    ----------
    loss : ParameterGroups, fitted estimator or array-like of shape (n_samples,)
        A result of :func:`~skspivae.inspection.loss_per_parameter`, an
        estimator with ``score_samples`` (then ``X`` and ``y`` are required;
        the loss is ``-score_samples(X)``) or per-trajectory losses with ``y``.
    y : array-like of shape (n_samples, 2), default=None
        Parameters (alpha, D); required unless ``loss`` is a ParameterGroups.
    X : array-like of shape (n_samples, n_timesteps), default=None
        Trajectories to score when ``loss`` is an estimator.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    show_std : bool, default=True
        Shade mean +/- one standard deviation.

    Returns
    -------
    ax : matplotlib Axes
        One line per D.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_loss_per_alpha
    >>> alpha, D = np.meshgrid(np.linspace(0.2, 1.8, 5), [1e-4, 1e-3, 1e-2])
    >>> y = np.column_stack([alpha.ravel(), D.ravel()])
    >>> ax = plot_loss_per_alpha(np.log(y[:, 1]), y)
    >>> len(ax.get_lines())
    3
    """
    if isinstance(loss, ParameterGroups):
        groups = loss
    else:
        if y is None:
            raise ValueError("`y` is required unless `loss` is a ParameterGroups.")
        if hasattr(loss, "score_samples"):
            check_is_fitted(loss)
            if X is None:
                raise ValueError("`X` is required when `loss` is an estimator.")
            loss = -np.asarray(loss.score_samples(X), dtype=float)
        loss = check_1d(loss, "loss")
        groups = group_by_parameters(loss, check_y(y, n_samples=len(loss)), name="loss")
    alphas, Ds, mean = groups.to_grid()
    _, _, std = groups.to_grid(groups.std)
    ax = _get_ax(ax)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(Ds)))
    for j, D in enumerate(Ds):
        (line,) = ax.plot(
            alphas, mean[:, j], marker=".", color=colors[j], label=f"D = {D:.2g}"
        )
        if show_std:
            ax.fill_between(
                alphas,
                mean[:, j] - std[:, j],
                mean[:, j] + std[:, j],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(f"{groups.name} (nats per step)")
    ax.legend(fontsize="small", ncols=2 if len(Ds) > 5 else 1)
    return ax


@validate({
    "X": ["array-like"],
    "alpha": [None, Real],
    "D": [None, Real],
    "lags": [None, "array-like"],
    "ax": _AX,
    "label": [None, str],
    "color": _ANY,
})
def plot_msd(X, *, alpha=None, D=None, lags=None, ax=None, label="ensemble", color=None):
    """Ensemble mean squared displacement of trajectories against theory, log-log.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps)
        Trajectories (positions), e.g. generated by ``SPIVAE.sample``.
    alpha, D : float, default=None
        When both are given, the theory ``2 D t^alpha`` is drawn dashed.
    lags : array-like of int, default=None
        Lags at which to evaluate; as
        :func:`~skspivae.inspection.ensemble_msd` when None.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    label : str, default="ensemble"
        Label of the measured curve.
    color : color, default=None
        Color of both curves; the next in the cycle when None.

    Returns
    -------
    ax : matplotlib Axes
        The measured MSD line, then the theory line if drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.plotting import plot_msd
    >>> X = np.cumsum(np.random.default_rng(0).normal(size=(200, 100)), axis=1)
    >>> X -= X[:, :1]
    >>> ax = plot_msd(X, alpha=1.0, D=0.5)
    >>> len(ax.get_lines()), ax.get_xscale(), ax.get_yscale()
    (2, 'log', 'log')
    """
    from .inspection import ensemble_msd

    X = check_2d(X, "X")
    if (alpha is None) != (D is None):
        raise ValueError("Give both `alpha` and `D` to draw the theory, or neither.")
    lags, msd = ensemble_msd(X, lags=lags)
    lags, msd = np.asarray(lags, dtype=float), np.asarray(msd, dtype=float)
    keep = (lags > 0) & (msd > 0)
    ax = _get_ax(ax)
    (line,) = ax.plot(lags[keep], msd[keep], color=color, label=label)
    if alpha is not None:
        ax.plot(
            lags[keep],
            2 * D * lags[keep] ** alpha,
            color=line.get_color(),
            linestyle="--",
            label=rf"$2 D t^\alpha$ ($\alpha$={alpha:.2g}, D={D:.2g})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lag t")
    ax.set_ylabel("MSD")
    ax.legend(fontsize="small")
    return ax
