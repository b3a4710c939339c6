"""Random restarts before the full fit (n_init, init_epochs, init_fraction)."""

import numpy as np
import pytest
import torch
from _configs import TINY

from skspivae import SPIVAE, _training
from skspivae.callbacks import Callback
from skspivae.datasets import make_fbm


@pytest.fixture(scope="module")
def X():
    return make_fbm(96, n_timesteps=40, alpha=[0.5, 1.5], D=[1e-2], random_state=0)[0]


def _without_time(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_same_seed_gives_the_same_restarts_and_model(X):
    a = SPIVAE(max_epochs=2, n_init=3, random_state=0, **TINY).fit(X)
    b = SPIVAE(max_epochs=2, n_init=3, random_state=0, **TINY).fit(X)
    np.testing.assert_array_equal(a.init_scores_, b.init_scores_)
    assert _without_time(a.init_history_) == _without_time(b.init_history_)
    assert _without_time(a.history_) == _without_time(b.history_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = SPIVAE(max_epochs=2, n_init=3, random_state=1, **TINY).fit(X)
    assert not np.array_equal(a.init_scores_, c.init_scores_)


class _StartLoss(Callback):
    """Loss of the module the full fit starts from, on all of X."""

    def __init__(self, X):
        self.X = X

    def on_train_begin(self, estimator, info):
        dx = np.diff(self.X, axis=1) / estimator.input_scale_
        data = torch.as_tensor(dx, dtype=torch.float32).unsqueeze(1)
        self.loss = _training.evaluate(estimator.module_, data, 0.0, 64)["valid_loss"]


def test_full_fit_starts_from_the_best_restart(X):
    # validation_fraction=0: the restarts are scored on the whole training set.
    start = _StartLoss(X)
    est = SPIVAE(max_epochs=1, n_init=4, init_epochs=2, validation_fraction=0,
                 beta_schedule="constant", beta=0.0, callbacks=[start], random_state=0,
                 **TINY).fit(X)
    scores = est.init_scores_
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    assert start.loss == pytest.approx(scores.min(), abs=1e-5)
    assert scores.min() <= scores[0]  # never worse than the first start


def test_history_of_the_full_fit_stays_clean(X):
    est = SPIVAE(max_epochs=3, n_init=2, init_epochs=2, init_fraction=0.5,
                 random_state=0, **TINY).fit(X)
    assert [r["epoch"] for r in est.history_] == [0, 1, 2]
    assert all("restart" not in r for r in est.history_)
    assert est.n_iter_ == 3
    assert [(r["restart"], r["epoch"]) for r in est.init_history_] == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    for i in range(2):
        last = [r for r in est.init_history_ if r["restart"] == i][-1]
        assert last["valid_loss"] == est.init_scores_[i]


def test_single_start_records_no_restart(X):
    est = SPIVAE(max_epochs=1, random_state=0, **TINY).fit(X)
    assert est.init_scores_ is None and est.init_history_ == []


def test_restarts_use_a_subset_and_the_first_beta(X, monkeypatch):
    runs = []
    run = _training.Trainer.run

    def recording_run(self, train, valid, stages, history):
        runs.append((train.shape[0], valid.shape[0], stages))
        return run(self, train, valid, stages, history)

    monkeypatch.setattr(_training.Trainer, "run", recording_run)
    SPIVAE(max_epochs=4, n_init=2, init_epochs=3, init_fraction=0.25, beta=1e-3,
           beta_schedule="linear", beta_warmup_epochs=4, random_state=0,
           **TINY).fit(X)
    (n0, v0, s0), (n1, v1, s1), (n, v, stages) = runs
    assert (n, v) == (77, 19) and n0 == n1 == round(0.25 * 77) and v0 == v1 == 19
    assert s0 == s1 and len(s0) == 1 and s0[0].n_epochs == 3
    assert s0[0].beta_at(2) == stages[0].beta_at(0) == 1e-3 / 4


def test_warm_start_does_not_restart(X):
    est = SPIVAE(max_epochs=1, n_init=2, warm_start=True, random_state=0,
                 **TINY).fit(X)
    scores = est.init_scores_
    est.fit(X)
    assert est.init_scores_ is scores and len(est.history_) == 2


@pytest.mark.parametrize("params", [dict(n_init=0), dict(init_epochs=0),
                                    dict(init_fraction=0.0), dict(init_fraction=1.5)])
def test_bad_restart_parameters_are_rejected(X, params):
    with pytest.raises(ValueError, match=next(iter(params))):
        SPIVAE(**params, **TINY).fit(X)


def test_restarts_survive_save_and_load(tmp_path):
    from skspivae import SPIVAE
    from skspivae.datasets import make_fbm

    X, _ = make_fbm(64, n_timesteps=24, alpha=[0.5, 1.5], D=[1e-2], random_state=0)
    est = SPIVAE(n_components=2, encoder_channels=4, encoder_layers=1, pool_size=2,
                 encoder_hidden=(8,), decoder_hidden=(8,), residual_channels=4,
                 skip_channels=4, layer_size=1, batch_size=16, device="cpu",
                 max_epochs=1, n_init=2, init_epochs=1, random_state=0).fit(X)
    est.save(tmp_path / "m.pt")
    loaded = SPIVAE.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.init_scores_, est.init_scores_)
    assert loaded.init_history_ == est.init_history_
