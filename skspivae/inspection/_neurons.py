"""What the latent neurons of a fitted SPIVAE encode.

Numbers only (plots live in :mod:`skspivae.plotting`):

- :func:`neuron_summary` / :func:`neuron_summary_from_moments`: KL divergence to
  the prior, ``Var(mu)`` and ``Mean(log sigma^2)`` per neuron, and which neurons
  survived (Lu et al., Phys. Rev. X 10, 031056).
- :func:`parameter_quantities`: the physical quantities the neurons are compared
  with (alpha, log D and, for SBM, the diffusivity combinations).
- :func:`latent_parameter_relations`: Spearman correlation, linear R^2 and
  mutual information between each neuron and each quantity.
- :func:`latent_readout`: held-out error of a regressor from the latent to one
  quantity.
- :func:`group_by_parameters` / :func:`loss_per_parameter`: statistics over the
  (alpha, D) grid, e.g. the loss distribution per parameter pair.
"""

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.feature_selection import mutual_info_regression
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from .._utils import (
    N_TIMESTEPS,
    NON_NEGATIVE,
    POSITIVE_INT,
    QUANTITIES,
    HasMethods,
    Interval,
    RealNotInt,
    validate,
)
from .._utils import check_1d as _check_1d
from .._utils import check_2d as _check_2d
from .._utils import check_neurons as _check_neurons
from .._utils import check_y as _check_y
from .._utils import feature_names as _feature_names
from .._utils import format_table as _format_table
from .._utils import spearman as _spearman

__all__ = [
    "NeuronSummary",
    "neuron_summary",
    "neuron_summary_from_moments",
    "parameter_quantities",
    "LatentRelations",
    "latent_parameter_relations",
    "ReadoutResult",
    "latent_readout",
    "ParameterGroups",
    "group_by_parameters",
    "loss_per_parameter",
]

# Names of the built-in quantities of y = (alpha, D); T is n_timesteps.
ALPHA, LOG_D = "alpha", "log D"
SBM_LATE, SBM_EARLY = "log(alpha D T^(alpha-1))", "log(alpha D T^(1-alpha))"
_METRICS = ("spearman", "r2", "mutual_info")


# --------------------------------------------------------------------------
# Per-neuron summaries
# --------------------------------------------------------------------------
@dataclass(repr=False)
class NeuronSummary:
    """Per-neuron statistics of the approximate posterior over a data set.

    Attributes
    ----------
    kl : ndarray of shape (n_components,)
        Mean over samples of ``KL(N(mu, sigma^2) || N(0, 1))``, in nats.
    var_mu : ndarray of shape (n_components,)
        Variance of the latent means over the samples. Large for informative
        neurons, about 0 for collapsed ones.
    mean_logvar : ndarray of shape (n_components,)
        Mean of ``log sigma^2``. Very negative for informative neurons, about 0
        for collapsed ones.
    active : ndarray of bool, shape (n_components,)
        Whether ``kl > kl_threshold``.
    kl_threshold : float
        Threshold used to decide ``active``.
    feature_names : list of str
        Name of each neuron.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import neuron_summary_from_moments
    >>> mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> summary = neuron_summary_from_moments(mu, np.zeros_like(mu))
    >>> summary.active.tolist()
    [True, False]
    """

    kl: np.ndarray
    var_mu: np.ndarray
    mean_logvar: np.ndarray
    active: np.ndarray
    kl_threshold: float
    feature_names: list = field(default_factory=list)

    @property
    def n_components(self):
        """Number of latent neurons."""
        return self.kl.shape[0]

    @property
    def active_components(self):
        """Indices of the active neurons, ndarray of int."""
        return np.flatnonzero(self.active)

    def __repr__(self):
        columns = (self.feature_names, self.kl, self.var_mu, self.mean_logvar)
        rows = list(zip(*columns, self.active, strict=True))
        header = ("neuron", "KL", "Var(mu)", "Mean(log s2)", "active")
        title = (
            f"NeuronSummary({self.active.sum()} of {self.n_components} active, "
            f"kl_threshold={self.kl_threshold:g})"
        )
        return title + "\n" + _format_table(header, rows)


@validate({
    "mu": ["array-like"],
    "logvar": ["array-like"],
    "kl_threshold": [NON_NEGATIVE],
    "feature_names": [None, "array-like"],
})
def neuron_summary_from_moments(mu, logvar, *, kl_threshold=0.1, feature_names=None):
    """Summarize each latent neuron from posterior means and log-variances.

    Parameters
    ----------
    mu : array-like of shape (n_samples, n_components)
        Latent means, e.g. the first output of ``SPIVAE.encode``.
    logvar : array-like of shape (n_samples, n_components)
        Latent log-variances ``log sigma^2``.
    kl_threshold : float, default=0.1
        A neuron is active when its mean KL to the prior exceeds this (nats).
    feature_names : list of str, default=None
        Neuron names; ``["z0", "z1", ...]`` when None.

    Returns
    -------
    summary : NeuronSummary
        KL per neuron, ``Var(mu)``, ``Mean(log sigma^2)`` and the active mask.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import neuron_summary_from_moments
    >>> rng = np.random.default_rng(0)
    >>> mu = np.column_stack([rng.normal(size=500), np.zeros(500)])
    >>> logvar = np.column_stack([np.full(500, -4.0), np.zeros(500)])
    >>> summary = neuron_summary_from_moments(mu, logvar)
    >>> summary.active_components
    array([0])
    >>> print(summary)  # doctest: +SKIP
    NeuronSummary(1 of 2 active, kl_threshold=0.1)
    neuron     KL  Var(mu)  Mean(log s2)  active
    z0      2.001   0.9764            -4     yes
    z1          0        0             0      no
    """
    mu = _check_2d(mu, "mu")
    logvar = _check_2d(logvar, "logvar", n_samples=mu.shape[0])
    if logvar.shape != mu.shape:
        raise ValueError(
            f"`mu` and `logvar` must have the same shape; got {mu.shape} and {logvar.shape}."
        )
    n_components = mu.shape[1]
    if feature_names is None:
        feature_names = [f"z{i}" for i in range(n_components)]
    feature_names = [str(name) for name in feature_names]
    if len(feature_names) != n_components:
        raise ValueError(
            f"`feature_names` has {len(feature_names)} names for {n_components} neurons."
        )
    kl = 0.5 * np.mean(mu**2 + np.exp(logvar) - logvar - 1.0, axis=0)
    return NeuronSummary(
        kl=kl,
        var_mu=mu.var(axis=0),
        mean_logvar=logvar.mean(axis=0),
        active=kl > kl_threshold,
        kl_threshold=float(kl_threshold),
        feature_names=feature_names,
    )


@validate({
    "estimator": [HasMethods(["encode"])],
    "X": ["array-like"],
    "kl_threshold": [None, NON_NEGATIVE],
})
def neuron_summary(estimator, X, *, kl_threshold=None):
    """Summarize each latent neuron of a fitted SPIVAE on trajectories ``X``.

    Parameters
    ----------
    estimator : fitted SPIVAE
        Any fitted estimator with ``encode(X) -> (mu, logvar)``.
    X : array-like of shape (n_samples, n_timesteps)
        Trajectories (positions) to encode.
    kl_threshold : float, default=None
        Activity threshold in nats; ``estimator.kl_threshold`` (or 0.1) when None.

    Returns
    -------
    summary : NeuronSummary
        KL per neuron, ``Var(mu)``, ``Mean(log sigma^2)`` and the active mask,
        computed on ``X`` (``estimator.kl_divergence_`` is the same KL on the
        validation set seen during ``fit``).

    See Also
    --------
    neuron_summary_from_moments : The same from ``(mu, logvar)`` arrays.

    Examples
    --------
    >>> from skspivae import SPIVAE
    >>> from skspivae.datasets import make_fbm
    >>> from skspivae.inspection import neuron_summary
    >>> X, y = make_fbm(64, 48, alpha=[0.5, 1.5], D=[1e-3], random_state=0)
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              layer_size=2, max_epochs=2, batch_size=32, random_state=0)
    >>> summary = neuron_summary(est.fit(X), X)
    >>> summary.kl.shape, summary.feature_names
    ((2,), ['spivae0', 'spivae1'])
    """
    check_is_fitted(estimator)
    if kl_threshold is None:
        kl_threshold = getattr(estimator, "kl_threshold", 0.1)
    mu, logvar = estimator.encode(X)
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    return neuron_summary_from_moments(
        mu,
        logvar,
        kl_threshold=kl_threshold,
        feature_names=_feature_names(estimator, mu.shape[1] if mu.ndim == 2 else 0),
    )


# --------------------------------------------------------------------------
# Quantities of the parameters
# --------------------------------------------------------------------------
def _builtin_quantity(name, alpha, D, n_timesteps):
    if name == ALPHA:
        return alpha
    if name == LOG_D:
        if np.any(D <= 0):
            raise ValueError("The D column of `y` must be positive to take log D.")
        return np.log(D)
    if name in (SBM_LATE, SBM_EARLY):
        if n_timesteps is None:
            raise ValueError(f"Quantity {name!r} needs `n_timesteps` (T).")
        if np.any(alpha <= 0) or np.any(D <= 0):
            raise ValueError(f"Quantity {name!r} needs positive alpha and D in `y`.")
        sign = 1.0 if name == SBM_LATE else -1.0
        return np.log(alpha) + np.log(D) + sign * (alpha - 1.0) * np.log(n_timesteps)
    raise ValueError(
        f"Unknown quantity {name!r}; built-in quantities are "
        f"{[ALPHA, LOG_D, SBM_LATE, SBM_EARLY]}, or pass a (name, callable) pair."
    )


@validate({"y": ["array-like"], "n_timesteps": [None, N_TIMESTEPS], "quantities": QUANTITIES})
def parameter_quantities(y, *, n_timesteps=None, quantities=None):
    """Physical quantities of the parameters ``y = (alpha, D)`` to relate to neurons.

    Parameters
    ----------
    y : array-like of shape (n_samples, 2)
        Anomalous exponent alpha and diffusion coefficient D of each trajectory.
    n_timesteps : int, default=None
        Trajectory length T (positions). Needed by the SBM combinations.
    quantities : sequence or dict, default=None
        Which quantities to compute. Items of a sequence are built-in names
        (``"alpha"``, ``"log D"``, ``"log(alpha D T^(alpha-1))"``,
        ``"log(alpha D T^(1-alpha))"``) or ``(name, callable)`` pairs where the
        callable maps ``y`` to an array of shape (n_samples,); a dict maps names
        to such callables. When None: alpha and log D, plus both SBM
        combinations when ``n_timesteps`` is given. Logarithms are natural.

    Returns
    -------
    quantities : dict of str to ndarray of shape (n_samples,)
        The quantities, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import parameter_quantities
    >>> y = np.array([[0.5, 1.0], [1.5, np.e]])
    >>> twice_alpha = ("2 alpha", lambda y: 2 * y[:, 0])
    >>> q = parameter_quantities(y, quantities=["log D", twice_alpha])
    >>> list(q)
    ['log D', '2 alpha']
    >>> q["log D"], q["2 alpha"]
    (array([0., 1.]), array([1., 3.]))
    """
    y = _check_y(y)
    alpha, D = y[:, 0], y[:, 1]
    if quantities is None:
        quantities = [ALPHA, LOG_D]
        if n_timesteps is not None:
            quantities += [SBM_LATE, SBM_EARLY]
    if isinstance(quantities, dict):
        quantities = list(quantities.items())
    if isinstance(quantities, str):
        quantities = [quantities]
    out = {}
    for item in quantities:
        if isinstance(item, str):
            name, values = item, _builtin_quantity(item, alpha, D, n_timesteps)
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and callable(item[1])
        ):
            name, values = item[0], item[1](y.copy())
        else:
            raise TypeError(
                "Each item of `quantities` must be a built-in name (str) or a "
                f"(name, callable) pair; got {item!r}."
            )
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (y.shape[0],):
            raise ValueError(
                f"Quantity {name!r} has shape {values.shape}; expected ({y.shape[0]},)."
            )
        out[name] = values
    return out


# --------------------------------------------------------------------------
# Relations between neurons and quantities
# --------------------------------------------------------------------------
@dataclass(repr=False)
class LatentRelations:
    """How strongly each latent neuron relates to each quantity of the parameters.

    Attributes
    ----------
    neurons : ndarray of int, shape (n_neurons,)
        Indices of the analysed neurons in the latent.
    feature_names : list of str
        Names of the analysed neurons.
    quantities : list of str
        Names of the quantities.
    spearman : ndarray of shape (n_neurons, n_quantities)
        Spearman rank correlation (NaN for a constant neuron).
    r2 : ndarray of shape (n_neurons, n_quantities)
        R^2 of the best straight line between neuron and quantity.
    mutual_info : ndarray of shape (n_neurons, n_quantities)
        Mutual information in nats (k-nearest-neighbour estimate).

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import latent_parameter_relations
    >>> rng = np.random.default_rng(0)
    >>> y = np.column_stack([rng.uniform(0.2, 1.8, 200), 10 ** rng.uniform(-3, -1, 200)])
    >>> mu = np.column_stack([y[:, 0], np.log(y[:, 1])]) + 0.01 * rng.normal(size=(200, 2))
    >>> relations = latent_parameter_relations(mu, y, random_state=0)
    >>> int(relations.best_neuron("alpha")), int(relations.best_neuron("log D"))
    (0, 1)
    """

    neurons: np.ndarray
    feature_names: list
    quantities: list
    spearman: np.ndarray
    r2: np.ndarray
    mutual_info: np.ndarray

    def _column(self, quantity):
        if quantity not in self.quantities:
            raise ValueError(f"Unknown quantity {quantity!r}; available: {self.quantities}.")
        return self.quantities.index(quantity)

    def best_neuron(self, quantity, metric="spearman"):
        """Index (in the latent) of the neuron most related to ``quantity``.

        Parameters
        ----------
        quantity : str
            Name of a quantity, one of ``self.quantities``.
        metric : {"spearman", "r2", "mutual_info"}, default="spearman"
            Strength measure; the absolute value is used for Spearman.

        Returns
        -------
        neuron : int
            Index of the neuron in the latent (e.g. a column of ``transform``).
        """
        if metric not in _METRICS:
            raise ValueError(f"`metric` must be one of {_METRICS}; got {metric!r}.")
        values = np.abs(getattr(self, metric)[:, self._column(quantity)])
        if np.all(np.isnan(values)):
            raise ValueError(f"No neuron has a defined {metric} for {quantity!r}.")
        return int(self.neurons[np.nanargmax(values)])

    def get(self, neuron, quantity, metric="spearman"):
        """Value of ``metric`` for one neuron (index in the latent) and quantity."""
        if metric not in _METRICS:
            raise ValueError(f"`metric` must be one of {_METRICS}; got {metric!r}.")
        rows = np.flatnonzero(self.neurons == neuron)
        if rows.size == 0:
            raise ValueError(f"Neuron {neuron} was not analysed; see `neurons`.")
        return float(getattr(self, metric)[rows[0], self._column(quantity)])

    def __repr__(self):
        rows = []
        for i, name in enumerate(self.feature_names):
            for j, quantity in enumerate(self.quantities):
                rows.append(
                    (
                        name,
                        quantity,
                        self.spearman[i, j],
                        self.r2[i, j],
                        self.mutual_info[i, j],
                    )
                )
        title = (
            f"LatentRelations({len(self.neurons)} neurons x {len(self.quantities)} quantities)"
        )
        header = ("neuron", "quantity", "spearman", "R^2", "MI (nats)")
        return title + "\n" + _format_table(header, rows)


def _r2_line(x, t):
    """R^2 of the least-squares line t ~ a + b x (the squared Pearson r)."""
    x, t = x - x.mean(), t - t.mean()
    denom = np.sqrt(np.dot(x, x) * np.dot(t, t))
    return float(np.dot(x, t) / denom) ** 2 if denom > 0 else np.nan


@validate({
    "mu": ["array-like"],
    "y": ["array-like"],
    "neurons": [None, "array-like"],
    "n_timesteps": [None, N_TIMESTEPS],
    "quantities": QUANTITIES,
    "feature_names": [None, "array-like"],
    "n_neighbors": [POSITIVE_INT],
    "random_state": ["random_state"],
})
def latent_parameter_relations(
    mu,
    y,
    *,
    neurons=None,
    n_timesteps=None,
    quantities=None,
    feature_names=None,
    n_neighbors=3,
    random_state=0,
):
    """Relate latent means to the physical parameters of the trajectories.

    For each analysed neuron and each quantity of ``y`` (see
    :func:`parameter_quantities`) computes the Spearman correlation
    (:func:`scipy.stats.spearmanr`), the R^2 of the best straight line and the
    mutual information (:func:`sklearn.feature_selection.mutual_info_regression`).

    Parameters
    ----------
    mu : array-like of shape (n_samples, n_components)
        Latent means, e.g. ``estimator.transform(X)``.
    y : array-like of shape (n_samples, 2)
        Parameters (alpha, D) of each trajectory.
    neurons : array-like of int, default=None
        Neurons to analyse, e.g. ``estimator.active_components_``; all when None.
    n_timesteps : int, default=None
        Trajectory length T, which adds the SBM combinations when given.
    quantities : sequence or dict, default=None
        Quantities to relate to; see :func:`parameter_quantities`.
    feature_names : list of str, default=None
        Names of all ``n_components`` neurons (``["z0", ...]`` when None).
    n_neighbors : int, default=3
        Neighbours of the mutual-information estimator.
    random_state : int, RandomState instance or None, default=0
        Seed of the mutual-information estimator (it adds a little noise).

    Returns
    -------
    relations : LatentRelations
        Tables of Spearman correlation, R^2 and mutual information, with
        :meth:`LatentRelations.best_neuron`.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import latent_parameter_relations
    >>> rng = np.random.default_rng(0)
    >>> alpha, D = rng.uniform(0.2, 1.8, 400), 10 ** rng.uniform(-5, -2, 400)
    >>> y = np.column_stack([alpha, D])
    >>> mu = np.column_stack([rng.normal(size=400), np.log(y[:, 1]), -y[:, 0]])
    >>> relations = latent_parameter_relations(mu, y)
    >>> relations.best_neuron("alpha"), relations.best_neuron("log D")
    (2, 1)
    >>> relations.get(2, "alpha")
    -1.0
    """
    mu = _check_2d(mu, "mu")
    y = _check_y(y, n_samples=mu.shape[0])
    neurons = _check_neurons(neurons, mu.shape[1])
    if feature_names is None:
        feature_names = [f"z{i}" for i in range(mu.shape[1])]
    if len(feature_names) != mu.shape[1]:
        raise ValueError(
            f"`feature_names` has {len(feature_names)} names for {mu.shape[1]} neurons."
        )
    if mu.shape[0] <= n_neighbors:
        raise ValueError(
            f"`mu` needs more than n_neighbors={n_neighbors} samples; got {mu.shape[0]}."
        )
    table = parameter_quantities(y, n_timesteps=n_timesteps, quantities=quantities)
    Z = mu[:, neurons]
    shape = (len(neurons), len(table))
    spearman, r2, mi = np.empty(shape), np.empty(shape), np.empty(shape)
    for j, values in enumerate(table.values()):
        for i in range(len(neurons)):
            spearman[i, j] = _spearman(Z[:, i], values)
            r2[i, j] = _r2_line(Z[:, i], values)
        mi[:, j] = mutual_info_regression(
            Z, values, n_neighbors=n_neighbors, random_state=random_state
        )
    return LatentRelations(
        neurons=neurons,
        feature_names=[str(feature_names[i]) for i in neurons],
        quantities=list(table),
        spearman=spearman,
        r2=r2,
        mutual_info=mi,
    )


# --------------------------------------------------------------------------
# Readout
# --------------------------------------------------------------------------
@dataclass
class ReadoutResult:
    """Held-out error of a regressor from latent means to one quantity.

    Attributes
    ----------
    target : str
        Name of the predicted quantity.
    neurons : ndarray of int
        Neurons used as features.
    rmse : float
        Root mean squared error on the test split.
    mae : float
        Mean absolute error on the test split.
    r2 : float
        Coefficient of determination on the test split.
    n_train, n_test : int
        Sizes of the splits.
    regressor : estimator
        The regressor fitted on the training split.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import latent_readout
    >>> rng = np.random.default_rng(0)
    >>> y = np.column_stack([rng.uniform(0.2, 1.8, 100), np.full(100, 1e-3)])
    >>> result = latent_readout(y[:, :1] + 0.01 * rng.normal(size=(100, 1)), y,
    ...                         target="alpha", random_state=0)
    >>> bool(result.r2 > 0.9)
    True
    """

    target: str
    neurons: np.ndarray
    rmse: float
    mae: float
    r2: float
    n_train: int
    n_test: int
    regressor: object = field(repr=False)


@validate({
    "mu": ["array-like"],
    "y": ["array-like"],
    "target": [str, tuple],
    "neurons": [None, "array-like"],
    "regressor": [None, HasMethods(["fit", "predict"])],
    "n_timesteps": [None, N_TIMESTEPS],
    "test_size": [Interval(RealNotInt, 0, 1, closed="neither"),
                  POSITIVE_INT],
    "random_state": ["random_state"],
})
def latent_readout(
    mu,
    y,
    *,
    target="alpha",
    neurons=None,
    regressor=None,
    n_timesteps=None,
    test_size=0.25,
    random_state=0,
):
    """Fit a regressor from latent means to a quantity and report held-out error.

    Parameters
    ----------
    mu : array-like of shape (n_samples, n_components)
        Latent means, e.g. ``estimator.transform(X)``.
    y : array-like of shape (n_samples, 2)
        Parameters (alpha, D) of each trajectory.
    target : str or (name, callable), default="alpha"
        Quantity to predict; see :func:`parameter_quantities` (e.g. ``"log D"``).
    neurons : array-like of int, default=None
        Neurons used as features; all when None.
    regressor : scikit-learn regressor, default=None
        Cloned before fitting; :class:`~sklearn.linear_model.LinearRegression`
        when None.
    n_timesteps : int, default=None
        Trajectory length T, needed by the SBM combinations.
    test_size : float or int, default=0.25
        Size of the held-out split, as in
        :func:`~sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seed of the split.

    Returns
    -------
    result : ReadoutResult
        Test RMSE and R^2, split sizes and the fitted regressor.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import latent_readout
    >>> rng = np.random.default_rng(0)
    >>> y = np.column_stack([rng.uniform(0.2, 1.8, 400), np.full(400, 1e-3)])
    >>> noise = rng.normal(size=(400, 2))
    >>> mu = np.column_stack([2 * y[:, 0] + 0.01 * noise[:, 0], noise[:, 1]])
    >>> result = latent_readout(mu, y, target="alpha")
    >>> result.r2 > 0.99, result.n_test
    (True, 100)
    """
    mu = _check_2d(mu, "mu")
    y = _check_y(y, n_samples=mu.shape[0])
    neurons = _check_neurons(neurons, mu.shape[1])
    ((name, t),) = parameter_quantities(
        y, n_timesteps=n_timesteps, quantities=[target]
    ).items()
    regressor = LinearRegression() if regressor is None else clone(regressor)
    Z_train, Z_test, t_train, t_test = train_test_split(
        mu[:, neurons], t, test_size=test_size, random_state=random_state
    )
    regressor.fit(Z_train, t_train)
    prediction = regressor.predict(Z_test)
    return ReadoutResult(
        target=name,
        neurons=neurons,
        rmse=float(root_mean_squared_error(t_test, prediction)),
        mae=float(mean_absolute_error(t_test, prediction)),
        r2=float(r2_score(t_test, prediction)),
        n_train=len(t_train),
        n_test=len(t_test),
        regressor=regressor,
    )


# --------------------------------------------------------------------------
# Statistics over the (alpha, D) grid
# --------------------------------------------------------------------------
@dataclass(repr=False)
class ParameterGroups:
    """Mean and spread of a per-sample value for each unique (alpha, D) pair.

    Attributes
    ----------
    alpha, D : ndarray of shape (n_groups,)
        The unique parameter pairs, sorted by alpha then D.
    mean, std : ndarray of shape (n_groups,) or (n_groups, n_outputs)
        Mean and standard deviation of the value in each group.
    count : ndarray of int, shape (n_groups,)
        Number of samples in each group.
    name : str
        What the value is (e.g. ``"loss"``).

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import group_by_parameters
    >>> y = np.array([[0.5, 1e-3], [0.5, 1e-3], [1.5, 1e-3]])
    >>> groups = group_by_parameters(np.array([1.0, 3.0, 5.0]), y)
    >>> groups.mean.tolist(), groups.count.tolist()
    ([2.0, 5.0], [2, 1])
    """

    alpha: np.ndarray
    D: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    name: str = "value"

    def to_grid(self, values=None):
        """Arrange group values on the (alpha, D) grid.

        Parameters
        ----------
        values : ndarray of shape (n_groups, ...), default=None
            Per-group values to arrange; ``self.mean`` when None.

        Returns
        -------
        alphas : ndarray of shape (n_alpha,)
            Sorted unique alphas.
        Ds : ndarray of shape (n_D,)
            Sorted unique Ds.
        grid : ndarray of shape (n_alpha, n_D, ...)
            ``values`` of each (alpha, D) cell; NaN where the pair is missing.
        """
        values = self.mean if values is None else np.asarray(values, dtype=float)
        alphas, i = np.unique(self.alpha, return_inverse=True)
        Ds, j = np.unique(self.D, return_inverse=True)
        grid = np.full((len(alphas), len(Ds)) + values.shape[1:], np.nan)
        grid[i, j] = values
        return alphas, Ds, grid

    def __repr__(self):
        mean = self.mean if self.mean.ndim == 1 else self.mean[:, 0]
        std = self.std if self.std.ndim == 1 else self.std[:, 0]
        rows = list(zip(self.alpha, self.D, mean, std, self.count, strict=True))
        header = ("alpha", "D", f"mean {self.name}", f"std {self.name}", "count")
        title = f"ParameterGroups({len(self.alpha)} (alpha, D) pairs)"
        if len(rows) > 12:
            rows = rows[:5] + [("...",) * 5] + rows[-5:]
        return title + "\n" + _format_table(header, rows)


@validate({"values": ["array-like"], "y": ["array-like"], "name": [str]})
def group_by_parameters(values, y, *, name="value"):
    """Mean and standard deviation of a per-sample value per (alpha, D) pair.

    Parameters
    ----------
    values : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Per-sample values, e.g. a loss or the latent means.
    y : array-like of shape (n_samples, 2)
        Parameters (alpha, D) of each sample; pairs are grouped when equal.
    name : str, default="value"
        What ``values`` is, for the table.

    Returns
    -------
    groups : ParameterGroups
        One row per unique (alpha, D) pair, with :meth:`ParameterGroups.to_grid`.

    Examples
    --------
    >>> from skspivae.inspection import group_by_parameters
    >>> y = [[0.5, 1e-3], [0.5, 1e-3], [1.5, 1e-3]]
    >>> groups = group_by_parameters([1.0, 3.0, 5.0], y)
    >>> groups.mean, groups.count
    (array([2., 5.]), array([2, 1]))
    """
    values = np.asarray(values)
    if values.ndim == 1:
        values = _check_1d(values, "values")
    else:
        values = _check_2d(values, "values")
    y = _check_y(y, n_samples=values.shape[0])
    pairs, inverse, count = np.unique(y, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    shape = (len(pairs),) + values.shape[1:]
    n_per_group = count.reshape((-1,) + (1,) * (values.ndim - 1))
    total, squares = np.zeros(shape), np.zeros(shape)
    np.add.at(total, inverse, values)
    mean = total / n_per_group
    np.add.at(squares, inverse, (values - mean[inverse]) ** 2)
    std = np.sqrt(squares / n_per_group)
    return ParameterGroups(
        alpha=pairs[:, 0], D=pairs[:, 1], mean=mean, std=std, count=count, name=name
    )


@validate({
    "estimator": [HasMethods(["score_samples"])],
    "X": ["array-like"],
    "y": ["array-like"],
})
def loss_per_parameter(estimator, X, y):
    """Distribution of the per-trajectory loss over the (alpha, D) grid.

    The loss of a trajectory is ``-estimator.score_samples(X)``: the negative
    ELBO (beta = 1) in nats per scored step. The paper shows that it depends
    mostly on D and, for SBM, grows with alpha.

    Parameters
    ----------
    estimator : fitted SPIVAE
        Any fitted estimator with ``score_samples(X)``.
    X : array-like of shape (n_samples, n_timesteps)
        Trajectories.
    y : array-like of shape (n_samples, 2)
        Their parameters (alpha, D).

    Returns
    -------
    groups : ParameterGroups
        Mean and std of the loss per unique (alpha, D) pair.

    Examples
    --------
    >>> from skspivae import SPIVAE
    >>> from skspivae.datasets import make_fbm
    >>> from skspivae.inspection import loss_per_parameter
    >>> X, y = make_fbm(64, 48, alpha=[0.5, 1.5], D=[1e-3, 1e-2], random_state=0)
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              layer_size=2, max_epochs=2, batch_size=32, random_state=0)
    >>> groups = loss_per_parameter(est.fit(X), X, y)
    >>> groups.count, groups.to_grid()[2].shape
    (array([16, 16, 16, 16]), (2, 2))
    """
    check_is_fitted(estimator)
    y = _check_y(y)
    loss = -np.asarray(estimator.score_samples(X), dtype=np.float64)
    if loss.shape != (y.shape[0],):
        raise ValueError(f"`X` gave {loss.shape[0]} scores but `y` has {y.shape[0]} rows.")
    return group_by_parameters(loss, y, name="loss")
