"""Input conventions: short trajectories, feature names, devices, warm starts
with another length, empty parameter grids, simulators' failed fits."""

import warnings

import numpy as np
import pytest
from _configs import TINY as _TINY
from sklearn.exceptions import NotFittedError

from skspivae import SPIVAE
from skspivae._cli import main
from skspivae.datasets import FBMSimulator, make_fbm

TINY = dict(_TINY, encoder_layers=2, max_epochs=1, random_state=0)


@pytest.fixture(scope="module")
def X():
    return make_fbm(32, 20, alpha=[0.5, 1.5], D=[1e-2], random_state=0)[0]


@pytest.mark.parametrize("decoder", ["gaussian", "wavenet"])
@pytest.mark.parametrize("n_timesteps", [2, 3, 5])
def test_short_trajectories_are_accepted_and_scored_where_data_is(X, decoder,
                                                                  n_timesteps):
    est = SPIVAE(**{**TINY, "decoder": decoder, "layer_size": 2}).fit(X[:, :n_timesteps])
    assert est.min_timesteps_ == 2
    assert est.transform(X[:4, :n_timesteps]).shape == (4, 2)
    # Scored on its own displacements (the padding is not scored): finite.
    assert np.isfinite(est.score_samples(X[:4, :n_timesteps])).all()
    with pytest.raises(ValueError, match="at least 2"):
        est.transform(X[:4, :1])


def test_feature_names_are_checked_at_the_fitted_length(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"t{i}" for i in range(X.shape[1])])
    est = SPIVAE(**TINY).fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    est.transform(df)  # the same names: fine
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.transform(X)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(df.rename(columns={"t3": "x"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.transform(df.iloc[:, :10])  # another length: names cannot match


def test_feature_names_out_need_a_fit():
    with pytest.raises(NotFittedError):
        SPIVAE().get_feature_names_out()


@pytest.mark.parametrize("device", ["mps", "meta", "xla"])
def test_unsupported_devices_are_a_value_error(X, device):
    with pytest.raises(ValueError, match="device="):
        SPIVAE(**{**TINY, "device": device}).fit(X)


def test_warm_start_accepts_another_length(X):
    est = SPIVAE(**TINY).fit(X)
    est.set_params(warm_start=True).fit(X[:, :12])
    assert est.n_features_in_ == 12 and est.n_iter_ == 2
    assert est.sample(1, random_state=0).shape == (1, 12)


def test_empty_parameter_grids_are_a_value_error(capsys, tmp_path):
    with pytest.raises(ValueError, match="alpha must hold at least one value"):
        make_fbm(6, alpha=[], D=[1.0])
    code = main(["simulate", "-o", str(tmp_path / "x.npz"), "--alpha", "0.2:1.8:0"])
    err = capsys.readouterr().err
    assert code == 2 and "NUM" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_failed_simulator_fit_keeps_what_transform_accepts():
    sim = FBMSimulator(n_timesteps=10, random_state=0).fit(np.array([[0.5, 1.0]]))
    for bad in (np.array([[0.5, 1.0, 3.0]]), np.array([[np.nan, 1.0]]),
                np.array([[2.5, 1.0]])):
        with pytest.raises(ValueError):
            sim.fit(bad)
        assert sim.n_features_in_ == 2
    assert sim.transform(np.array([[1.0, 1.0]])).shape == (1, 10)


def _bad_arguments():
    """One call per public function with one argument of the wrong kind."""
    from skspivae import inspection, plotting
    from skspivae.datasets import fgn_autocovariance, make_sbm, simulate_fbm

    X, y = np.zeros((4, 5)), np.tile([[1.0, 1e-3]], (4, 1))
    return [
        (simulate_fbm, (0.5, 1e-3), {"n_timesteps": 1.5}, "n_timesteps"),
        (make_sbm, (10,), {"design": "random"}, "design"),
        (fgn_autocovariance, (0.5, 1e-3, 0), {}, "n_lags"),
        (inspection.generated_msd, (SPIVAE(),), {"process": "ctrw"}, "process"),
        (inspection.neuron_summary_from_moments, (X, X), {"kl_threshold": -1}, "kl_threshold"),
        (inspection.latent_readout, (X, y), {"test_size": 1.5}, "test_size"),
        (inspection.latent_parameter_relations, (X, y), {"n_neighbors": 0}, "n_neighbors"),
        (inspection.group_by_parameters, (X[:, 0], y), {"name": 3}, "name"),
        (inspection.fbm_mle, (X,), {"alpha_grid": "fine"}, "alpha_grid"),
        (inspection.ensemble_msd, (X,), {"lags": 3}, "lags"),
        (inspection.mutual_information, (X, X), {"estimator": SPIVAE()}, "estimator"),
        (plotting.plot_latent_distributions, (X,), {"bins": 0}, "bins"),
        (plotting.plot_msd, (X,), {"ax": "left"}, "ax"),
    ]


@pytest.mark.parametrize("func, args, kwargs, name", _bad_arguments(),
                         ids=lambda v: getattr(v, "__name__", None))
def test_public_functions_name_the_bad_argument(func, args, kwargs, name):
    # One style for every public function, as for the estimators'
    # _parameter_constraints: a ValueError (and TypeError) naming the argument.
    with pytest.raises(ValueError, match=f"The '{name}' parameter of {func.__name__}"):
        func(*args, **kwargs)
