"""The scikit-learn face of SPIVAE: API contract, persistence, integration."""

import io
import os
import pickle

import joblib
import numpy as np
import pytest
import torch
from _configs import SMALL, TINY
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skspivae import SPIVAE
from skspivae.callbacks import Callback
from skspivae.datasets import make_fbm

# Small but real: receptive field 8, learns fBM in a few epochs.

# transform takes trajectories of any length (a design choice: the latent of
# a trajectory does not depend on how long the training ones were).
ANY_LENGTH = "transform accepts trajectories of any length, by design"
EXPECTED_FAILED_CHECKS = {"check_n_features_in_after_fitting": ANY_LENGTH,
                          "check_transformer_general": ANY_LENGTH}


@parametrize_with_checks([SPIVAE(max_epochs=2, random_state=0, **TINY),
                          SPIVAE(max_epochs=2, random_state=0, decoder="wavenet", **TINY)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def fbm():
    X, y = make_fbm(720, n_timesteps=100, alpha=[0.4, 1.0, 1.6], D=[0.1, 1.0],
                    shuffle=True, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted(fbm):
    X, _ = fbm
    return SPIVAE(max_epochs=6, beta=1e-3, random_state=0, **SMALL).fit(X[:240])


def test_paper_model_matches_reference_size():
    est = SPIVAE(decoder="wavenet")
    X, _ = make_fbm(4, n_timesteps=40, alpha=[1.0], D=[1e-3], random_state=0)
    est.set_params(max_epochs=1, device="cpu").fit(X)
    assert sum(p.numel() for p in est.module_.parameters()) == 262_885
    assert est.receptive_field_ == 32
    assert est.min_timesteps_ == 2  # shorter ones are preceded by zeros


def test_fit_attributes(fitted, fbm):
    X, _ = fbm
    assert fitted.n_features_in_ == X.shape[1]
    assert fitted.n_iter_ == len(fitted.history_) == 6
    keys = {"epoch", "stage", "beta", "lr", "train_loss", "valid_loss", "valid_nll",
            "kl", "kl_per_component", "seconds"}
    assert set(fitted.history_[0]) == keys
    assert fitted.kl_divergence_.shape == (3,)
    assert np.all(fitted.kl_divergence_ >= 0)
    np.testing.assert_array_equal(
        fitted.active_components_,
        np.flatnonzero(fitted.kl_divergence_ > fitted.kl_threshold))
    assert list(fitted.get_feature_names_out()) == ["spivae0", "spivae1", "spivae2"]


def _fresh_kl(est, X):
    """The validation KL per neuron, measured again on the final weights
    (up to rounding: the displacements are computed in float64 here)."""
    from skspivae import _training

    rng = np.random.RandomState(0)  # random_state=0: the split fit drew
    rng.randint(np.iinfo(np.int32).max)  # the module's seed, drawn first
    order = rng.permutation(X.shape[0])
    n_valid = int(round(est.validation_fraction * X.shape[0]))
    dx = np.diff(X[order[:n_valid]], axis=1) / np.float32(est.input_scale_)
    data = torch.as_tensor(dx.astype(np.float32)).unsqueeze(1)
    _, kl = _training.per_trajectory_losses(
        est.module_, data, _training.eval_batch_size(est.batch_size, "cpu"))
    return kl.double().mean(dim=0).numpy()


def test_kl_divergence_is_that_of_the_final_weights(fitted, fbm):
    # fit takes it from the last epoch's record, without a new pass, when the
    # weights are still those; a callback that restores others gets the pass.
    X, _ = fbm
    np.testing.assert_array_equal(fitted.kl_divergence_,
                                  fitted.history_[-1]["kl_per_component"])
    np.testing.assert_allclose(fitted.kl_divergence_, _fresh_kl(fitted, X[:240]),
                               rtol=1e-6)

    class RestoreFirstEpoch(Callback):
        def on_epoch_end(self, estimator, record):
            if record["epoch"] == 0:
                self.state = {k: v.clone() for k, v in estimator.module_.state_dict().items()}

        def on_train_end(self, estimator, info):
            estimator.module_.load_state_dict(self.state)

    est = SPIVAE(max_epochs=3, beta=1e-3, random_state=0, callbacks=[RestoreFirstEpoch()],
                 **SMALL).fit(X[:240])
    np.testing.assert_array_equal(est.kl_divergence_, est.history_[0]["kl_per_component"])
    assert not np.array_equal(est.kl_divergence_, est.history_[-1]["kl_per_component"])
    np.testing.assert_allclose(est.kl_divergence_, _fresh_kl(est, X[:240]), rtol=1e-6)


def test_trained_wavenet_beats_untrained_and_encodes_parameters(fbm):
    X, y = fbm
    X_train, X_test, y_test = X[:600], X[600:], y[600:]
    # The paper's WaveNet; tests/test_learning.py has the default model's.
    paper = dict(SMALL, decoder="wavenet", beta_schedule="constant")
    untrained = SPIVAE(max_epochs=1, random_state=0, **{**paper, "lr": 1e-9})
    untrained.fit(X_train)
    trained = SPIVAE(max_epochs=20, beta=1e-3, random_state=0, **paper).fit(X_train)
    # Per-step ELBO in nats: 0.1 is far above the seed-to-seed spread (~0.01).
    assert trained.score(X_test) > untrained.score(X_test) + 0.1
    mu = trained.transform(X_test)
    rho_alpha = max(abs(spearmanr(mu[:, k], y_test[:, 0])[0]) for k in range(3))
    rho_d = max(abs(spearmanr(mu[:, k], np.log(y_test[:, 1]))[0]) for k in range(3))
    # 120 test trajectories: |rho| > 0.3 has p < 0.001 under independence. D
    # takes two values, so its best attainable |rho| is 0.87 (ties).
    assert rho_alpha > 0.3
    assert rho_d > 0.8


def test_same_seed_gives_bitwise_same_transform(fbm):
    X, _ = fbm
    a = SPIVAE(max_epochs=2, random_state=3, **SMALL).fit(X[:64]).transform(X[:64])
    b = SPIVAE(max_epochs=2, random_state=3, **SMALL).fit(X[:64]).transform(X[:64])
    c = SPIVAE(max_epochs=2, random_state=4, **SMALL).fit(X[:64]).transform(X[:64])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_transform_and_score_accept_other_lengths(fitted, fbm):
    X, _ = fbm
    short = X[:, :fitted.min_timesteps_]
    assert fitted.transform(short).shape == (len(X), 3)
    assert np.isfinite(fitted.score(X[:, :40]))
    with pytest.raises(ValueError, match="needs at least"):
        fitted.transform(X[:, :fitted.min_timesteps_ - 1])


def test_score_samples_is_elbo_per_scored_step(fitted, fbm):
    X, _ = fbm
    scores = fitted.score_samples(X[:10])
    assert scores.shape == (10,)
    assert fitted.score(X[:10]) == pytest.approx(scores.mean())
    # The same trajectories in another order and batch give the same scores.
    np.testing.assert_allclose(fitted.score_samples(X[9::-1]), scores[::-1], rtol=1e-5)


def test_increments_input_matches_positions(fbm):
    X, _ = fbm
    a = SPIVAE(max_epochs=1, random_state=0, **SMALL).fit(X[:64])
    b = SPIVAE(max_epochs=1, random_state=0, input_type="increments",
               **SMALL).fit(np.diff(X[:64], axis=1))
    np.testing.assert_allclose(a.transform(X[:64]),
                               b.transform(np.diff(X[:64], axis=1)), atol=1e-6)


def test_fit_does_not_modify_input(fbm):
    X, _ = fbm
    dx = np.diff(X[:32], axis=1).astype(np.float32)
    copy = dx.copy()
    SPIVAE(max_epochs=1, random_state=0, input_type="increments", **SMALL).fit(dx)
    np.testing.assert_array_equal(dx, copy)


def test_warm_start_continues_tutorial_workflow(fbm):
    X, _ = fbm
    est = SPIVAE(max_epochs=2, beta=0.0, beta_schedule="constant", warm_start=True,
                 random_state=0, **SMALL)
    est.fit(X[:64])
    weights = [p.detach().clone() for p in est.module_.parameters()]
    est.set_params(beta=1e-3).fit(X[:64])
    assert len(est.history_) == 4
    assert [h["beta"] for h in est.history_] == [0.0, 0.0, 1e-3, 1e-3]
    assert est.history_[2]["stage"] == 1
    assert any(not torch.equal(a, b) for a, b in
               zip(weights, est.module_.parameters()))
    with pytest.raises(ValueError, match="n_components"):
        est.set_params(n_components=4).fit(X[:64])


def test_beta_schedules(fbm):
    X, _ = fbm
    est = SPIVAE(beta=1e-2, beta_schedule="linear", beta_warmup_epochs=2,
                 max_epochs=3, random_state=0, **SMALL).fit(X[:64])
    assert [h["beta"] for h in est.history_] == pytest.approx([5e-3, 1e-2, 1e-2])
    est = SPIVAE(beta_schedule=[(1, 0.0), (2, 1e-3)], random_state=0,
                 **SMALL).fit(X[:64])
    assert [h["beta"] for h in est.history_] == [0.0, 1e-3, 1e-3]
    assert [h["stage"] for h in est.history_] == [0, 1, 1]
    # Each stage runs its own one-cycle: the lr restarts low at a new stage.
    lrs = [h["lr"] for h in est.history_]
    assert lrs[1] < lrs[2] and lrs[1] == pytest.approx(lrs[0])
    # A stage can warm up too: (n_epochs, beta, curve, warmup_epochs).
    est = SPIVAE(beta_schedule=[(3, 1e-2, "linear", 2), (1, 1e-4)], random_state=0,
                 **SMALL).fit(X[:64])
    assert [h["beta"] for h in est.history_] == pytest.approx([5e-3, 1e-2, 1e-2, 1e-4])


def test_default_schedule_follows_max_epochs_and_beta(fbm):
    """A linear warm-up to beta, held until the last quarter (at most 10
    epochs), which runs at beta / 20 as a stage of its own."""
    X, _ = fbm
    est = SPIVAE(max_epochs=8, beta=4e-2, beta_warmup_epochs=2, random_state=0,
                 **SMALL).fit(X[:64])
    assert [h["beta"] for h in est.history_] == pytest.approx(
        [2e-2, 4e-2, 4e-2, 4e-2, 4e-2, 4e-2, 2e-3, 2e-3])
    assert [h["stage"] for h in est.history_] == [0] * 6 + [1] * 2
    from skspivae._schedules import make_stages
    stages = make_stages("default", 2e-2, 45, 10, 10.0)
    assert [(s.n_epochs, s.beta, s.curve) for s in stages] == [
        (35, 2e-2, "linear"), (10, 1e-3, "constant")]


@pytest.mark.parametrize("params, match", [
    (dict(beta_schedule="cosine"), "beta_schedule"),
    (dict(beta_schedule=[(0, 1e-3)]), "n_epochs"),
    (dict(beta_schedule=[(2, -1.0)]), "beta"),
    (dict(beta_schedule=[(2, 1e-3, "cosine", 1)]), "curve"),
    (dict(beta_schedule=[(2, 1e-3, "linear", -1)]), "warmup_epochs"),
    (dict(decoder="lstm"), "decoder"),
    (dict(encoder_scaling="local"), "encoder_scaling"),
    (dict(memory=0), "memory"),
    (dict(encoder_hidden=(8, 0)), "encoder_hidden"),
    (dict(device="tpu"), "device"),
    (dict(validation_fraction=1.5), "validation_fraction"),
    (dict(lr=0), "lr"),
    (dict(n_components=0), "n_components"),
])
def test_bad_parameters_name_the_argument(fbm, params, match):
    X, _ = fbm
    with pytest.raises(ValueError, match=match):
        SPIVAE(**{**SMALL, **params}).fit(X[:32])


def test_bad_input_is_rejected(fbm):
    X, _ = fbm
    est = SPIVAE(max_epochs=1, **SMALL)
    with pytest.raises(ValueError, match="needs at least"):
        est.fit(X[:, :1])
    bad = X[:32].copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    with pytest.raises(ValueError, match="2D"):
        est.fit(X[0])


def test_pickle_and_joblib_round_trip(fitted, fbm, tmp_path):
    X, _ = fbm
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))
    joblib.dump(fitted, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").transform(X),
                                  fitted.transform(X))


def test_save_load_round_trip_and_never_overwrites(fitted, fbm, tmp_path):
    X, _ = fbm
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = SPIVAE.load(path)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.history_ == fitted.history_
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        fitted.save(path)
    assert path.read_bytes() == before
    fitted.save(path, overwrite=True)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_interrupted_save_keeps_existing_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    fitted.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path, overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a model"):
        SPIVAE.load(path)


def test_verbose_prints_epoch_table(fbm, capsys):
    X, _ = fbm
    SPIVAE(max_epochs=2, verbose=1, random_state=0, **SMALL).fit(X[:64])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["epoch", "stage", "train_loss"]
    assert len(out) == 3
    SPIVAE(max_epochs=1, random_state=0, **SMALL).fit(X[:64])
    assert capsys.readouterr().out == ""


class _Recorder(Callback):
    def __init__(self, interrupt_at=None, nan_at=None):
        self.epochs, self.batches = [], 0
        self.interrupt_at, self.nan_at = interrupt_at, nan_at

    def on_batch_end(self, estimator, record):
        self.batches += 1
        if self.nan_at is not None and record["epoch"] == self.nan_at:
            with torch.no_grad():
                next(estimator.module_.parameters()).fill_(float("nan"))

    def on_epoch_end(self, estimator, record):
        self.epochs.append(record["epoch"])
        if record["epoch"] == self.interrupt_at:
            raise KeyboardInterrupt


def test_callbacks_are_called(fbm):
    X, _ = fbm
    rec = _Recorder()
    SPIVAE(max_epochs=2, callbacks=[rec], random_state=0, validation_fraction=0.5,
           **SMALL).fit(X[:64])
    assert rec.epochs == [0, 1] and rec.batches == 2


def test_ctrl_c_keeps_last_finished_epoch_and_reraises(fbm):
    X, _ = fbm
    est = SPIVAE(max_epochs=5, callbacks=[_Recorder(interrupt_at=1)], random_state=0,
                 **SMALL)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:64])
    assert est.n_iter_ == 2
    assert est.transform(X[:4]).shape == (4, 3)


def test_non_finite_loss_stops_with_clear_error(fbm):
    X, _ = fbm
    est = SPIVAE(max_epochs=5, callbacks=[_Recorder(nan_at=1)], random_state=0,
                 **SMALL)
    with pytest.raises(FloatingPointError, match="epoch 1.*lower lr"):
        est.fit(X[:64])
    assert not hasattr(est, "module_")  # the first fit failed: still unfitted


def test_parameters_are_stored_as_given_and_clones_are_unfitted(fbm):
    X, _ = fbm
    schedule, hidden = [(2, 0.0), (1, 1e-3)], np.array([16])
    est = SPIVAE(beta_schedule=schedule, encoder_hidden=hidden, n_components=-1)
    # __init__ stores, validates nothing: the invalid n_components waits for fit.
    assert est.beta_schedule is schedule and est.encoder_hidden is hidden
    with pytest.raises(ValueError, match="n_components"):
        est.fit(X[:32])
    est.set_params(n_components=2, **{k: v for k, v in SMALL.items()
                                      if k not in ("encoder_hidden", "n_components")})
    assert est.fit(X[:32]) is est and hasattr(est, "module_")
    twin = clone(est)
    assert not hasattr(twin, "module_") and not hasattr(twin, "history_")
    assert twin.get_params()["beta_schedule"] == schedule
    assert twin.set_params(beta=0.5) is twin and twin.beta == 0.5
    with pytest.raises(ValueError, match="no_such"):
        twin.set_params(no_such=1)


def test_pipeline_regression_on_alpha(fbm):
    X, y = fbm
    pipe = make_pipeline(SPIVAE(max_epochs=4, random_state=0, **SMALL),
                         LinearRegression())
    pipe.fit(X[:240], y[:240, 0])
    assert pipe.score(X[600:], y[600:, 0]) > 0.0


def test_grid_search_parallel(fbm):
    X, _ = fbm
    grid = GridSearchCV(SPIVAE(max_epochs=2, random_state=0, **SMALL),
                        {"beta": [0.0, 1e-2], "n_components": [2, 3]}, cv=2, n_jobs=2)
    grid.fit(X[:96])
    assert set(grid.best_params_) == {"beta", "n_components"}
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_epoch_table_to_file():
    from skspivae.callbacks import EpochTable

    buf = io.StringIO()
    EpochTable(file=buf).on_train_begin(None, {})
    assert buf.getvalue().startswith("epoch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_transform_and_pickle_to_cpu(fbm):
    X, _ = fbm
    est = SPIVAE(max_epochs=2, random_state=0, **{**SMALL, "device": "cuda"}).fit(X)
    assert next(est.module_.parameters()).is_cuda
    mu = est.transform(X)
    state = pickle.dumps(est)
    again = pickle.loads(state)
    np.testing.assert_allclose(again.transform(X), mu, atol=1e-5)


def test_cuda_request_without_cuda_is_a_clear_error(fbm):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    X, _ = fbm
    with pytest.raises(ValueError, match="CUDA is not available"):
        SPIVAE(**{**SMALL, "device": "cuda"}).fit(X[:32])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_grid_search(fbm):
    X, _ = fbm
    grid = GridSearchCV(SPIVAE(max_epochs=2, random_state=0, **{**SMALL, "device": "cuda"}),
                        {"beta": [0.0, 1e-2]}, cv=2)
    grid.fit(X[:96])
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert next(grid.best_estimator_.module_.parameters()).is_cuda


def test_threaded_fits_are_reproducible(fbm):
    # Fits in threads (joblib threading, Dask thread workers) seed their own
    # initialisation: the same random_state gives the same model.
    from joblib import Parallel, delayed

    X, _ = fbm

    def fit(seed):
        return SPIVAE(max_epochs=1, random_state=seed, **SMALL).fit(X[:64]).transform(X[:8])

    serial = [fit(s) for s in (0, 1, 0, 1)]
    threaded = Parallel(n_jobs=4, backend="threading")(delayed(fit)(s) for s in (0, 1, 0, 1))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def test_losses_are_reported_in_raw_units(fbm):
    # input_scale="auto" makes the network see the same numbers for X and 10 X;
    # history and score report nats of the raw displacements, log(10) apart.
    X, _ = fbm
    a = SPIVAE(max_epochs=2, random_state=0, **SMALL).fit(X[:64])
    b = SPIVAE(max_epochs=2, random_state=0, **SMALL).fit(10 * X[:64])
    for key in ("train_loss", "valid_nll", "valid_loss"):
        assert b.history_[-1][key] - a.history_[-1][key] == pytest.approx(np.log(10), abs=1e-3)
    assert a.score(X[:64]) - b.score(10 * X[:64]) == pytest.approx(np.log(10), abs=1e-3)
