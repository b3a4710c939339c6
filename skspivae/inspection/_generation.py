"""Does generation obey the latent? MSD of trajectories generated from the
mean latent of simulated ones."""

from dataclasses import dataclass, field

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._utils import N_TIMESTEPS, POSITIVE_INT, SEED, HasMethods, StrOptions, validate
from .._utils import check_alpha_D as _check_alpha_D
from ._trajectories import ensemble_msd, fit_anomalous_exponent

__all__ = ["GeneratedMSD", "generated_msd"]


@dataclass
class GeneratedMSD:
    """Ensemble MSD fits of trajectories generated for (alpha, D) targets.

    Attributes
    ----------
    alpha, D : ndarray of shape (n_targets,)
        The targets.
    exponent, prefactor : ndarray of shape (n_targets,)
        The fit ``MSD = 2 D_fit t^exponent`` over all lags of each target's
        generated ensemble, and ``prefactor = D_fit / D``; NaN where a
        generated value is not finite.
    z : ndarray of shape (n_targets, n_components)
        The latents the trajectories were generated from.
    samples : list of ndarray of shape (n_samples, n_timesteps)
        The generated trajectories of each target.
    exact_exponent, exact_prefactor : ndarray of shape (n_targets,)
        The same fit of the exact MSD of the process the model generates at
        each latent (:meth:`SPIVAE.increment_covariance`): what infinitely
        many samples would give. NaN where the model has no closed form (the
        WaveNet decoder).

    Examples
    --------
    See :func:`generated_msd`.
    """

    alpha: np.ndarray
    D: np.ndarray
    exponent: np.ndarray
    prefactor: np.ndarray
    z: np.ndarray
    samples: list = field(repr=False)
    exact_exponent: np.ndarray = None
    exact_prefactor: np.ndarray = None

    def __post_init__(self):
        for name in ("exact_exponent", "exact_prefactor"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(self.alpha.shape, np.nan))

    def within(self, exponent_tol=0.1, prefactor_factor=1.5, *, exact=False):
        """Whether each target's exponent is within ``exponent_tol`` of
        alpha and its prefactor within a factor ``prefactor_factor`` of D.

        Parameters
        ----------
        exponent_tol : float, default=0.1
        prefactor_factor : float, default=1.5
        exact : bool, default=False
            Judge the exact MSD of the model's process instead of the
            generated samples' (False where it is NaN).

        Returns
        -------
        ndarray of bool of shape (n_targets,)
        """
        exponent = self.exact_exponent if exact else self.exponent
        prefactor = self.exact_prefactor if exact else self.prefactor
        with np.errstate(invalid="ignore"):
            return ((np.abs(exponent - self.alpha) <= exponent_tol)
                    & (prefactor <= prefactor_factor)
                    & (prefactor >= 1 / prefactor_factor))

    def __str__(self):
        ok = self.within()
        exact = bool(np.isfinite(self.exact_exponent).any())
        lines = ["alpha        D  exponent  prefactor/D  within 0.1, 1.5x"
                 + ("  exact: exponent  prefactor/D" if exact else "")]
        for i in range(self.alpha.size):
            line = (f"{self.alpha[i]:5.2f} {self.D[i]:8.1e} {self.exponent[i]:9.3f} "
                    f"{self.prefactor[i]:12.3f}  {'yes' if ok[i] else 'no':>16}")
            if exact:
                line += (f"  {self.exact_exponent[i]:15.3f} "
                         f"{self.exact_prefactor[i]:12.3f}")
            lines.append(line)
        return "\n".join(lines)


@validate({
    "estimator": [HasMethods(["transform", "sample"])],
    "process": [StrOptions({"fbm", "sbm"})],
    "alpha": ["array-like"],
    "D": ["array-like"],
    "n_timesteps": [None, N_TIMESTEPS],
    "n_encode": [POSITIVE_INT],
    "n_samples": [POSITIVE_INT],
    "random_state": SEED,
})
def generated_msd(estimator, *, process="fbm", alpha=(0.4, 1.0, 1.6), D=(1e-4, 1e-2),
                  n_timesteps=None, n_encode=200, n_samples=500, random_state=None):
    """Generate from the mean latent of simulated trajectories; fit their MSD.

    For each pair of the grid ``alpha x D``, ``n_encode`` trajectories of
    ``process`` are simulated and encoded; their mean latent, with the
    collapsed neurons set to 0, conditions ``n_samples`` generated
    trajectories, whose ensemble MSD is fitted by ``2 D_fit t^exponent`` over
    all lags. A model whose generation obeys its latent gives back
    ``exponent`` close to alpha and ``D_fit`` close to D. With 500 samples
    the fitted exponent has a standard error of about 0.02; for the Gaussian
    decoder the same fit of the exact MSD of the model's process is given too
    (``exact_exponent``, ``exact_prefactor``), which has none.

    Parameters
    ----------
    estimator : fitted SPIVAE
    process : {"fbm", "sbm"}, default="fbm"
    alpha, D : array-like of float, default=(0.4, 1.0, 1.6) and (1e-4, 1e-2)
        The targets' exponents in (0, 2) and diffusion coefficients.
    n_timesteps : int, default=None
        Length of the simulated and generated trajectories (positions);
        ``estimator.n_features_in_`` when None.
    n_encode, n_samples : int, default=200, 500
        Trajectories simulated and generated per target.
    random_state : int or None, default=None
        Seeds the simulations and the generation.

    Returns
    -------
    GeneratedMSD

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae import SPIVAE
    >>> from skspivae.datasets import make_fbm
    >>> from skspivae.inspection import generated_msd
    >>> X, _ = make_fbm(64, 40, alpha=(0.5, 1.5), D=(1e-3, 1e-2), design="uniform",
    ...                 random_state=0)
    >>> est = SPIVAE(n_components=2, max_epochs=1, random_state=0).fit(X)
    >>> report = generated_msd(est, alpha=[0.5], D=[1e-3], n_samples=20, random_state=0)
    >>> report.exponent.shape, report.samples[0].shape
    ((1,), (20, 40))
    >>> bool(np.isfinite(report.exact_exponent).all())  # the Gaussian decoder
    True
    """
    from ..datasets import make_fbm, make_sbm

    check_is_fitted(estimator)
    alphas, Ds = _check_alpha_D(np.ravel(alpha), np.ravel(D))
    n_timesteps = estimator.n_features_in_ if n_timesteps is None else n_timesteps
    make = make_fbm if process == "fbm" else make_sbm
    collapsed = np.setdiff1d(np.arange(estimator.n_components),
                             estimator.active_components_)
    seeds = np.random.SeedSequence(random_state).generate_state(2 * alphas.size * Ds.size)
    grid = [(a, d) for a in alphas for d in Ds]
    exponent, prefactor, zs, samples = [], [], [], []
    for k, (a, d) in enumerate(grid):
        X, _ = make(n_encode, n_timesteps, alpha=[a], D=[d], random_state=int(seeds[2 * k]))
        z = estimator.transform(X).mean(axis=0)
        z[collapsed] = 0.0
        generated = estimator.sample(n_samples, z=z, n_timesteps=n_timesteps,
                                     random_state=int(seeds[2 * k + 1]))
        lags, msd = ensemble_msd(generated) if np.isfinite(generated).all() else (None, None)
        if msd is not None and np.all(msd > 0):
            e, d_fit = fit_anomalous_exponent(lags, msd)
        else:
            e, d_fit = np.nan, np.nan
        exponent.append(e)
        prefactor.append(d_fit / d)
        zs.append(z)
        samples.append(generated)
    exact = np.full((len(grid), 2), np.nan)
    if hasattr(estimator, "increment_covariance"):
        cov = estimator.increment_covariance(np.array(zs), n_timesteps=n_timesteps)
        msd = np.diagonal(cov.cumsum(axis=1).cumsum(axis=2), axis1=1, axis2=2)
        lags = np.arange(1, msd.shape[1] + 1)
        exact = np.column_stack(fit_anomalous_exponent(lags, msd))
    alphas_, Ds_ = np.array([a for a, _ in grid]), np.array([d for _, d in grid])
    return GeneratedMSD(alphas_, Ds_, np.array(exponent), np.array(prefactor),
                        np.array(zs), samples, exact_exponent=exact[:, 0],
                        exact_prefactor=exact[:, 1] / Ds_)
