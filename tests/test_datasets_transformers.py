"""Tests of FBMSimulator, SBMSimulator and Increments."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skspivae.datasets import (
    FBMSimulator,
    Increments,
    SBMSimulator,
    simulate_fbm,
    simulate_sbm,
)

SIMULATORS = pytest.mark.parametrize(
    "Simulator, simulate", [(FBMSimulator, simulate_fbm), (SBMSimulator, simulate_sbm)]
)
PARAMETERS = np.array([[0.5, 1e-3], [1.0, 1e-2], [1.5, 1e-1]])

# The simulators' input is a table of (alpha, D): exactly 2 columns with alpha
# in (0, 2) and D > 0. The common checks that feed other data cannot apply.
_SHAPE = "feeds X whose number of columns is not 2 (alpha, D)"
_DOMAIN = "feeds X with alpha outside (0, 2) or D <= 0"
_SIMULATOR_XFAILS = {
    "check_fit_score_takes_y": _SHAPE,
    "check_estimators_overwrite_params": _DOMAIN,
    "check_dont_overwrite_parameters": _SHAPE,
    "check_estimators_fit_returns_self": _DOMAIN,
    "check_readonly_memmap_input": _DOMAIN,
    "check_n_features_in_after_fitting": _SHAPE,
    "check_positive_only_tag_during_fit": "expects sklearn's 'Negative values in "
    "data' message; ours names the column (alpha or D)",
    "check_estimators_dtypes": _SHAPE,
    "check_dtype_object": _SHAPE,
    "check_pipeline_consistency": _SHAPE,
    "check_estimators_nan_inf": _SHAPE,
    "check_estimators_pickle": _SHAPE,
    "check_f_contiguous_array_estimator": _SHAPE,
    "check_transformer_data_not_an_array": _SHAPE,
    "check_transformer_general": _SHAPE,
    "check_transformer_preserve_dtypes": _SHAPE,
    "check_transformers_unfitted_stateless": _SHAPE,
    "check_methods_sample_order_invariance": _SHAPE,
    "check_methods_subset_invariance": _SHAPE,
    "check_fit2d_1sample": _SHAPE,
    "check_fit2d_1feature": _SHAPE,
    "check_dict_unchanged": _SHAPE,
    "check_fit_idempotent": _DOMAIN,
    "check_fit_check_is_fitted": _DOMAIN,
    "check_n_features_in": _DOMAIN,
    "check_fit2d_predict1d": _SHAPE,
}


def _expected_failed_checks(estimator):
    return {} if isinstance(estimator, Increments) else _SIMULATOR_XFAILS


@parametrize_with_checks(
    [
        FBMSimulator(n_timesteps=8, random_state=0),
        SBMSimulator(n_timesteps=8, output="increments", random_state=0),
        Increments(),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    expected_to_fail = getattr(check, "func", check).__name__ in (
        _expected_failed_checks(estimator)
    )
    try:
        check(estimator)
    except Exception as exc:
        if not expected_to_fail:
            raise
        # pytest formats the full traceback of every xfail, and formatting the
        # deep frames of sklearn's checks took ~0.4 s each: keep only this one.
        raise exc.with_traceback(None) from None


@SIMULATORS
@pytest.mark.parametrize("output", ["positions", "increments"])
def test_simulator_matches_its_function(Simulator, simulate, output):
    sim = Simulator(n_timesteps=20, output=output, random_state=7)
    X = sim.fit_transform(PARAMETERS)
    expected = simulate(
        PARAMETERS[:, 0], PARAMETERS[:, 1], 20, output=output, random_state=7
    )
    assert_array_equal(X, expected)
    assert X.shape == (3, 20 if output == "positions" else 19)
    assert len(sim.get_feature_names_out()) == X.shape[1]
    assert sim.get_feature_names_out()[0] == Simulator.__name__.lower() + "0"


@SIMULATORS
def test_int_seed_repeats_and_rows_depend_only_on_earlier_rows(Simulator, simulate):
    sim = Simulator(n_timesteps=10, random_state=0)
    X = sim.transform(PARAMETERS)  # stateless: no fit needed
    assert_array_equal(X, sim.transform(PARAMETERS))
    assert_array_equal(X[:2], sim.transform(PARAMETERS[:2]))
    assert not np.array_equal(X, Simulator(n_timesteps=10).transform(PARAMETERS))


@SIMULATORS
@pytest.mark.parametrize(
    "X, match",
    [
        ([[0.5, 1.0, 2.0]], "2 columns"),
        ([[0.0, 1.0]], r"X\[:, 0\] is alpha"),
        ([[2.0, 1.0]], r"X\[:, 0\] is alpha"),
        ([[1.0, 0.0]], r"X\[:, 1\] is D"),
        ([[1.0, np.nan]], "NaN"),
    ],
)
def test_simulator_rejects_bad_parameters(Simulator, simulate, X, match):
    with pytest.raises(ValueError, match=match):
        Simulator().fit(X)
    with pytest.raises(ValueError, match=match):
        Simulator().transform(X)


@SIMULATORS
@pytest.mark.parametrize(
    "params",
    [
        dict(n_timesteps=1),
        dict(output="velocities"),
        dict(random_state=-1),
        dict(random_state=np.random.RandomState(0)),
    ],
)
def test_simulator_rejects_bad_hyperparameters(Simulator, simulate, params):
    with pytest.raises(ValueError, match=next(iter(params))):
        Simulator(**params).transform(PARAMETERS)


def test_pipeline_simulator_then_increments():
    pipe = make_pipeline(FBMSimulator(n_timesteps=30, random_state=1), Increments())
    dx = pipe.fit_transform(PARAMETERS)
    direct = FBMSimulator(n_timesteps=30, output="increments", random_state=1)
    assert_allclose(dx, direct.transform(PARAMETERS), atol=1e-12)
    positions = pipe[:-1].transform(PARAMETERS)
    assert_allclose(pipe[-1].inverse_transform(dx), positions, atol=1e-12)
    assert pipe.get_feature_names_out()[0] == "increments0"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_increments_round_trip(dtype):
    X = simulate_sbm([0.5, 1.5], 1.0, 25, random_state=0).astype(dtype)
    increments = Increments().fit(X)
    dx = increments.transform(X)
    assert dx.shape == (2, 24) and dx.dtype == dtype
    back = increments.inverse_transform(dx)
    assert back.dtype == dtype
    assert_array_equal(back[:, 0], 0)
    assert_allclose(back, X, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert len(increments.get_feature_names_out()) == 24


def test_increments_reject_bad_shapes():
    with pytest.raises(ValueError, match="minimum of 2"):
        Increments().transform(np.zeros((3, 1)))
    fitted = Increments().fit(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expected 4 increments"):
        fitted.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expecting 5 features"):
        fitted.transform(np.zeros((3, 4)))
