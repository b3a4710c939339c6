"""Neural estimation of KL divergence and mutual information (Donsker-Varadhan).

For samples ``Z ~ P`` and ``Z' ~ Q`` and any function ``t``,

    D(P || Q) >= E_P[t(Z)] - log E_Q[exp(t(Z'))],

with equality at ``t = log dP/dQ + const``. :class:`DVDivergence` trains a small
MLP ``t`` with Adam to maximise the minibatch version of this bound;
:func:`mutual_information` applies it to pairs ``(a, b)`` against shuffled pairs
``(a, permuted b)``, whose divergence is the mutual information ``I(a; b)``.
"""

import math
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted

from .._utils import POSITIVE_INT, Interval, validate

__all__ = ["DVDivergence", "mutual_information"]


def _critic(n_features, hidden_layer_sizes):
    """The MLP t: (batch, n_features) -> (batch,)."""
    layers, width = [], n_features
    for size in hidden_layer_sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    layers += [torch.nn.Linear(width, 1), torch.nn.Flatten(0)]
    return torch.nn.Sequential(*layers)


def _dv_bound(t_p, t_q):
    """E_P[t] - log E_Q[exp t], with log-mean-exp = logsumexp - log n."""
    return t_p.mean() - (torch.logsumexp(t_q, dim=0) - math.log(t_q.shape[0]))


def _as_samples(Z, name):
    Z = np.asarray(Z)
    if Z.ndim == 1:
        Z = Z.reshape(-1, 1)
    if Z.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 1-D or 2-D array of shape (n_samples, "
            f"n_features); got an array with shape {Z.shape}."
        )
    return check_array(Z, dtype=np.float64, input_name=name, ensure_min_samples=2)


class DVDivergence(BaseEstimator):
    """KL divergence ``D(P || Q)`` between two samples, by the Donsker-Varadhan bound.

    A small MLP ``t`` is trained with Adam on minibatches of both samples to
    maximise ``mean t(Z) - log mean exp t(Z_ref)``; the bound at the optimum is
    the divergence. Inputs are standardized with the mean and scale of the
    pooled samples first, which leaves the divergence unchanged (the same
    invertible map is applied to both).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(64, 64)
        Widths of the hidden layers of ``t`` (ReLU activations).
    lr : float, default=1e-3
        Adam learning rate.
    max_epochs : int, default=60
        Passes over the sample ``Z``.
    batch_size : int, default=256
        Minibatch size for both samples (clipped to the sample sizes).
    standardize : bool, default=True
        Whether to standardize the inputs with the pooled mean and scale.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization of ``t`` and the minibatches (through a
        :class:`torch.Generator`; torch's global seed is left untouched).
    device : str or torch.device, default="cpu"
        Device of the network. The critic is tiny: on a CPU shared with other
        work, one torch thread (``torch.set_num_threads(1)``, your choice to
        make) is often faster than several.
    verbose : bool, default=False
        Print the estimate after each epoch.

    Attributes
    ----------
    estimate_ : float
        The bound evaluated on the full samples with the final ``t``, in nats.
        On small samples it can overfit upward a little; :meth:`score` on
        held-out samples gives an unbiased-by-fitting value.
    history_ : list of dict
        One dict per epoch: ``"epoch"``, ``"train_bound"`` (mean of the
        minibatch bounds) and ``"estimate"`` (the bound on the full samples).
    n_features_in_ : int
        Number of features of the samples.
    n_iter_ : int
        Number of epochs run.
    critic_ : torch.nn.Module
        The trained function ``t`` (on standardized inputs).
    mean_, scale_ : ndarray of shape (n_features_in_,)
        Standardization (zeros and ones when ``standardize=False``).

    See Also
    --------
    mutual_information : Mutual information from the same estimator.

    References
    ----------
    Donsker and Varadhan, Comm. Pure Appl. Math. 36, 183 (1983);
    Belghazi et al., "MINE: mutual information neural estimation", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import DVDivergence
    >>> rng = np.random.default_rng(0)
    >>> P = rng.normal(1.0, 1.0, size=(2000, 1))  # KL(N(1, 1) || N(0, 1)) = 0.5
    >>> Q = rng.normal(0.0, 1.0, size=(2000, 1))
    >>> est = DVDivergence(max_epochs=20, random_state=0).fit(P, Q)
    >>> bool(abs(est.estimate_ - 0.5) < 0.15)
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(64, 64),
        *,
        lr=1e-3,
        max_epochs=60,
        batch_size=256,
        standardize=True,
        random_state=None,
        device="cpu",
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    _parameter_constraints = {
        "hidden_layer_sizes": [POSITIVE_INT, "array-like"],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "standardize": ["boolean"],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
    }

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                   for s in sizes):
            raise ValueError(
                "`hidden_layer_sizes` must be positive integers; got "
                f"{self.hidden_layer_sizes!r}."
            )
        return sizes

    def _transform(self, Z):
        """Standardized float32 tensor on the device."""
        Z = (Z - self.mean_) / self.scale_
        return torch.as_tensor(Z, dtype=torch.float32, device=self.device)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, Z, Z_ref):
        """Train ``t`` on samples ``Z ~ P`` and ``Z_ref ~ Q``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features) or (n_samples,)
            Sample of P.
        Z_ref : array-like of shape (n_ref_samples, n_features) or (n_ref_samples,)
            Sample of Q.

        Returns
        -------
        self : DVDivergence
            Fitted estimator.
        """
        return self._fit(Z, Z_ref)

    def _fit(self, Z, Z_ref):
        sizes = self._hidden_sizes()
        Z, Z_ref = _as_samples(Z, "Z"), _as_samples(Z_ref, "Z_ref")
        if Z.shape[1] != Z_ref.shape[1]:
            raise ValueError(
                f"`Z` and `Z_ref` must have the same number of features; got "
                f"{Z.shape[1]} and {Z_ref.shape[1]}."
            )
        self.n_features_in_ = Z.shape[1]
        pooled = np.concatenate([Z, Z_ref])
        if self.standardize:
            self.mean_, self.scale_ = pooled.mean(axis=0), pooled.std(axis=0)
            self.scale_[self.scale_ == 0] = 1.0
        else:
            self.mean_ = np.zeros(self.n_features_in_)
            self.scale_ = np.ones(self.n_features_in_)

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.critic_ = _critic(self.n_features_in_, sizes).to(self.device)
        optimizer = torch.optim.Adam(self.critic_.parameters(), lr=self.lr)

        P, Q = self._transform(Z), self._transform(Z_ref)
        n_p, n_q = P.shape[0], Q.shape[0]
        batch_p, batch_q = min(self.batch_size, n_p), min(self.batch_size, n_q)
        n_batches = max(1, n_p // batch_p)
        self.history_ = []
        for epoch in range(self.max_epochs):
            order = torch.randperm(n_p, generator=generator)
            self.critic_.train()
            bounds = []
            for b in range(n_batches):
                index_p = order[b * batch_p : (b + 1) * batch_p].to(self.device)
                index_q = torch.randint(n_q, (batch_q,), generator=generator)
                bound = _dv_bound(
                    self.critic_(P[index_p]), self.critic_(Q[index_q.to(self.device)])
                )
                optimizer.zero_grad()
                (-bound).backward()
                optimizer.step()
                bounds.append(bound.item())
            estimate = self._bound(P, Q)
            self.history_.append(
                {
                    "epoch": epoch,
                    "train_bound": float(np.mean(bounds)),
                    "estimate": estimate,
                }
            )
            if self.verbose:
                print(f"epoch {epoch:4d}  DV estimate {estimate:.4f} nats")
        self.n_iter_ = self.max_epochs
        self.estimate_ = self.history_[-1]["estimate"]
        return self

    def _bound(self, P, Q):
        """The bound on full standardized samples, reduced in float64."""
        self.critic_.eval()
        with torch.no_grad():
            t_p = self.critic_(P).double()
            t_q = self.critic_(Q).double()
        return float(_dv_bound(t_p, t_q))

    def score(self, Z, Z_ref):
        """The Donsker-Varadhan bound of the fitted ``t`` on new samples.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features) or (n_samples,)
            Sample of P (e.g. held out from ``fit``).
        Z_ref : array-like of shape (n_ref_samples, n_features) or (n_ref_samples,)
            Sample of Q.

        Returns
        -------
        bound : float
            Lower bound of ``D(P || Q)`` in nats.
        """
        check_is_fitted(self)
        Z, Z_ref = _as_samples(Z, "Z"), _as_samples(Z_ref, "Z_ref")
        for name, a in (("Z", Z), ("Z_ref", Z_ref)):
            if a.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"`{name}` has {a.shape[1]} features; the estimator was "
                    f"fitted with {self.n_features_in_}."
                )
        return self._bound(self._transform(Z), self._transform(Z_ref))


@validate({
    "a": ["array-like"],
    "b": ["array-like"],
    "estimator": [None, DVDivergence],
    "random_state": ["random_state"],
})
def mutual_information(a, b, *, estimator=None, random_state=None):
    """Mutual information ``I(a; b)`` in nats by neural Donsker-Varadhan estimation.

    The joint sample ``(a, b)`` is compared with a product-of-marginals sample
    ``(a, permuted b)``: their KL divergence is the mutual information.

    Parameters
    ----------
    a : array-like of shape (n_samples,) or (n_samples, n_features_a)
        First variable, e.g. a latent neuron.
    b : array-like of shape (n_samples,) or (n_samples, n_features_b)
        Second variable, e.g. alpha; paired with ``a`` row by row.
    estimator : DVDivergence, default=None
        Configuration of the divergence estimator (cloned);
        ``DVDivergence()`` when None.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutation and, when the estimator has no ``random_state``
        of its own, the estimator.

    Returns
    -------
    mi : float
        Estimated mutual information in nats (a lower bound, up to sampling
        error; about 0 for independent variables).

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.inspection import mutual_information
    >>> rng = np.random.default_rng(0)
    >>> cov = [[1.0, 0.8], [0.8, 1.0]]  # I = -0.5 log(1 - 0.8^2) = 0.51 nats
    >>> ab = rng.multivariate_normal([0, 0], cov, size=2000)
    >>> mi = mutual_information(ab[:, 0], ab[:, 1], random_state=0)
    >>> bool(abs(mi - 0.51) < 0.15)
    True
    """
    a, b = _as_samples(a, "a"), _as_samples(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`a` and `b` must have the same number of samples; got {a.shape[0]} "
            f"and {b.shape[0]}."
        )
    if estimator is None:
        estimator = DVDivergence()
    rng = check_random_state(random_state)
    estimator = clone(estimator)
    if estimator.random_state is None:
        estimator.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
    shuffled = b[rng.permutation(b.shape[0])]
    estimator.fit(np.hstack([a, b]), np.hstack([a, shuffled]))
    return estimator.estimate_
