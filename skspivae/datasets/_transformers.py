"""scikit-learn transformers: simulate from parameters, take increments."""

from numbers import Integral

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._utils import N_TIMESTEPS, Interval, StrOptions
from ._simulators import simulate_fbm, simulate_sbm

__all__ = ["FBMSimulator", "Increments", "SBMSimulator"]


def _validate(estimator, X, *, reset, min_features=1, **check_params):
    """``validate_data``, or ``check_array`` when a stateless one is unfitted.

    Transforming without ``fit`` must not warn about feature names never seen.
    A fitted one checks the number of features against ``n_features_in_``.
    """
    if reset or not hasattr(estimator, "n_features_in_"):
        check_params["ensure_min_features"] = min_features
    if not reset and not hasattr(estimator, "n_features_in_"):
        return check_array(X, **check_params)
    return validate_data(estimator, X, reset=reset, **check_params)


class _Simulator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Stateless transformer from rows (alpha, D) to one trajectory each."""

    _parameter_constraints: dict = {
        "n_timesteps": [N_TIMESTEPS],
        "output": [StrOptions({"positions", "increments"})],
        "random_state": [
            None,
            Interval(Integral, 0, None, closed="left"),
            np.random.Generator,
        ],
    }
    _simulate = None  # staticmethod set by subclasses

    def __init__(self, n_timesteps=400, output="positions", random_state=None):
        self.n_timesteps = n_timesteps
        self.output = output
        self.random_state = random_state

    def _check_parameters(self, X, reset):
        X = _validate(self, X, reset=reset, dtype=np.float64)
        if X.shape[1] != 2:
            raise ValueError(
                f"X must have 2 columns (alpha, D), got {X.shape[1]} columns."
            )
        if np.any((X[:, 0] <= 0) | (X[:, 0] >= 2)):
            raise ValueError("X[:, 0] is alpha and must lie in the interval (0, 2).")
        if np.any(X[:, 1] <= 0):
            raise ValueError("X[:, 1] is D and must be positive.")
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check X; nothing is learnt.

        Parameters
        ----------
        X : array-like of shape (n_samples, 2)
            Columns (alpha, D): anomalous exponents in (0, 2) and positive
            diffusion coefficients.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The transformer.
        """
        saved = dict(self.__dict__)
        try:
            self._check_parameters(X, reset=True)
        except BaseException:  # a failed fit leaves what transform accepts
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def transform(self, X):
        """Simulate one trajectory per row of parameters.

        With an int ``random_state`` every call returns the same trajectories
        for the same X, and row i depends only on rows 0..i.

        Parameters
        ----------
        X : array-like of shape (n_samples, 2)
            Columns (alpha, D).

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_timesteps) or \
(n_samples, n_timesteps - 1)
            Positions from x(0) = 0, or increments when ``output="increments"``.
        """
        self._validate_params()
        X = self._check_parameters(X, reset=False)
        return self._simulate(
            X[:, 0],
            X[:, 1],
            self.n_timesteps,
            output=self.output,
            random_state=self.random_state,
        )

    @property
    def _n_features_out(self):
        return self.n_timesteps - (self.output == "increments")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.positive_only = True
        tags.non_deterministic = self.random_state is None
        return tags


class FBMSimulator(_Simulator):
    """Turn rows (alpha, D) into fractional Brownian motion trajectories.

    A stateless transformer around :func:`simulate_fbm`; ``fit`` only checks
    the input. Useful in a :class:`~sklearn.pipeline.Pipeline` or to simulate
    the trajectories of a parameter table.

    Parameters
    ----------
    n_timesteps : int, default=400
        Number of positions T per trajectory.
    output : {"positions", "increments"}, default="positions"
        Return positions (n_samples, T) or increments (n_samples, T-1).
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator. With an int, every call to ``transform`` gives the
        same trajectories for the same input.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns seen in ``fit``, always 2.
    feature_names_in_ : ndarray of shape (2,)
        Input column names seen in ``fit``, when they are all strings.

    See Also
    --------
    SBMSimulator : The same for scaled Brownian motion.
    simulate_fbm : The function behind it.

    Examples
    --------
    >>> from skspivae.datasets import FBMSimulator
    >>> X = FBMSimulator(n_timesteps=50, random_state=0).fit_transform(
    ...     [[0.5, 1e-3], [1.5, 1e-2]]
    ... )
    >>> X.shape
    (2, 50)
    """

    _simulate = staticmethod(simulate_fbm)


class SBMSimulator(_Simulator):
    """Turn rows (alpha, D) into scaled Brownian motion trajectories.

    A stateless transformer around :func:`simulate_sbm`; ``fit`` only checks
    the input.

    Parameters
    ----------
    n_timesteps : int, default=400
        Number of positions T per trajectory.
    output : {"positions", "increments"}, default="positions"
        Return positions (n_samples, T) or increments (n_samples, T-1).
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator. With an int, every call to ``transform`` gives the
        same trajectories for the same input.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns seen in ``fit``, always 2.
    feature_names_in_ : ndarray of shape (2,)
        Input column names seen in ``fit``, when they are all strings.

    See Also
    --------
    FBMSimulator : The same for fractional Brownian motion.
    simulate_sbm : The function behind it.

    Examples
    --------
    >>> from skspivae.datasets import SBMSimulator
    >>> sim = SBMSimulator(n_timesteps=20, output="increments", random_state=0)
    >>> sim.fit_transform([[0.5, 1e-3], [1.5, 1e-2], [1.0, 1.0]]).shape
    (3, 19)
    """

    _simulate = staticmethod(simulate_sbm)


class Increments(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Turn positions into increments, and back by a cumulative sum from 0.

    ``transform`` maps positions x(0..T-1), shape (n_samples, T), to
    increments x(t) - x(t-1), shape (n_samples, T-1); ``inverse_transform``
    maps increments back to positions with x(0) = 0. The round trip is exact
    (up to round-off) for trajectories that start at 0. Stateless.

    Attributes
    ----------
    n_features_in_ : int
        Number of positions T seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input column names seen in ``fit``, when they are all strings.

    See Also
    --------
    FBMSimulator : Simulates positions (or increments) directly.

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae.datasets import Increments
    >>> X = np.array([[0.0, 1.0, 3.0, 2.0]])
    >>> dx = Increments().fit_transform(X)
    >>> dx
    array([[ 1.,  2., -1.]])
    >>> Increments().inverse_transform(dx)
    array([[0., 1., 3., 2.]])
    """

    _parameter_constraints: dict = {}
    _check_params = {"dtype": (np.float64, np.float32)}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check X; nothing is learnt.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
            Positions, at least 2 per trajectory.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The transformer.
        """
        _validate(self, X, reset=True, min_features=2, **self._check_params)
        return self

    def transform(self, X):
        """Take increments x(t) - x(t-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
            Positions.

        Returns
        -------
        dx : ndarray of shape (n_samples, n_timesteps - 1)
            Increments, in the dtype of X (float32 or float64).
        """
        X = _validate(self, X, reset=False, min_features=2, **self._check_params)
        return np.diff(X, axis=1)

    def inverse_transform(self, X):
        """Integrate increments into positions from x(0) = 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps - 1)
            Increments.

        Returns
        -------
        positions : ndarray of shape (n_samples, n_timesteps)
            Cumulative sums with a leading 0.
        """
        dx = check_array(X, **self._check_params)
        expected = getattr(self, "n_features_in_", dx.shape[1] + 1) - 1
        if dx.shape[1] != expected:
            raise ValueError(
                f"X has {dx.shape[1]} increments, but Increments was fitted on "
                f"{expected + 1} positions; expected {expected} increments."
            )
        positions = np.zeros((dx.shape[0], dx.shape[1] + 1), dtype=dx.dtype)
        np.cumsum(dx, axis=1, out=positions[:, 1:])
        return positions

    @property
    def _n_features_out(self):
        check_is_fitted(self, "n_features_in_")
        return self.n_features_in_ - 1

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
