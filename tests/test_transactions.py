"""A fit that fails or is interrupted loses nothing: fault injection.

Each failure is injected deterministically (from a callback or a bad
parameter), never by a timer or a signal, so that the tests hold on a loaded
machine.
"""

import numpy as np
import pytest
import torch
from _configs import TINY as _TINY
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

from skspivae import SPIVAE, NonFiniteLossError
from skspivae.callbacks import Callback, Checkpoint
from skspivae.datasets import make_fbm

SMALL = dict(_TINY, encoder_layers=2, pool_size=4, encoder_hidden=(16,),
             decoder_hidden=(16,), memory=16, max_epochs=3, random_state=0)


class Fault(Callback):
    """Raise ``error`` at this fit's epoch ``epoch``, batch ``batch`` (after the
    batch's step; epochs counted from 0 in every fit, warm starts too), or
    make the weights NaN there."""

    def __init__(self, error=None, epoch=0, batch=0, nan=False):
        self.error, self.epoch, self.batch, self.nan = error, epoch, batch, nan

    def on_train_begin(self, estimator, info):
        self.first_epoch = info["first_epoch"]

    def on_batch_end(self, estimator, record):
        here = (record["epoch"] - self.first_epoch, record["batch"])
        if here != (self.epoch, self.batch):
            return
        if self.nan:
            with torch.no_grad():
                next(estimator.module_.parameters()).fill_(float("nan"))
        else:
            raise self.error


@pytest.fixture(scope="module")
def X():
    return make_fbm(64, 40, alpha=(0.5, 1.5), D=(1e-3, 1e-2), design="uniform",
                    random_state=0)[0]


def _state(est, X):
    """Everything a refit could change, as comparable values."""
    return {
        "transform": est.transform(X[:8]),
        "weights": {k: v.clone() for k, v in est.module_.state_dict().items()},
        "history": [dict(r) for r in est.history_],
        "attrs": {k: getattr(est, k) for k in ("n_features_in_", "input_scale_",
                                                "n_iter_", "receptive_field_",
                                                "min_timesteps_")},
        "kl": est.kl_divergence_.copy(),
        "optimizer": str(est._optimizer.state_dict()["state"].keys()),
        "sample_length": est.sample(1, random_state=0).shape[1],
    }


def _assert_same(a, b):
    np.testing.assert_array_equal(a["transform"], b["transform"])
    assert a["weights"].keys() == b["weights"].keys()
    for k in a["weights"]:
        assert torch.equal(a["weights"][k], b["weights"][k]), k
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a["history"]] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in b["history"]]
    assert a["attrs"] == b["attrs"]
    np.testing.assert_array_equal(a["kl"], b["kl"])
    assert a["optimizer"] == b["optimizer"] and a["sample_length"] == b["sample_length"]


@pytest.fixture
def fitted(X):
    return SPIVAE(**SMALL).fit(X)


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("failure", ["bad data", "callback", "nan", "interrupt at start"])
def test_a_failed_refit_leaves_the_estimator_as_it_was(fitted, X, failure, warm_start):
    before = _state(fitted, X)
    fitted.set_params(warm_start=warm_start)
    data = X
    if failure == "bad data":  # no training trajectory is left
        fitted.set_params(validation_fraction=0.9)
        data = X[:2] * 10
    elif failure == "callback":
        fitted.set_params(callbacks=[Fault(RuntimeError("boom"), epoch=1, batch=1)])
    elif failure == "nan":
        fitted.set_params(callbacks=[Fault(epoch=1, batch=2, nan=True)])
    else:
        fitted.set_params(callbacks=[Fault(KeyboardInterrupt(), epoch=0, batch=0)])
    error = {"bad data": ValueError, "callback": RuntimeError, "nan": NonFiniteLossError,
             "interrupt at start": KeyboardInterrupt}[failure]
    with pytest.raises(error):
        fitted.fit(data)
    fitted.set_params(validation_fraction=0.2, callbacks=None, warm_start=False)
    _assert_same(_state(fitted, X), before)


def test_a_failed_first_fit_leaves_an_unfitted_estimator(X):
    est = SPIVAE(**SMALL, callbacks=[Fault(epoch=1, batch=0, nan=True)])
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        est.fit(X)
    with pytest.raises(Exception, match="not fitted"):
        check_is_fitted(est)
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "history_")


def test_checkpoint_that_refuses_to_overwrite_loses_nothing(fitted, X, tmp_path):
    mine = tmp_path / "spivae-stage0-beta0.001.pt"
    mine.write_bytes(b"mine")
    before = _state(fitted, X)
    fitted.set_params(callbacks=[Checkpoint(tmp_path)], beta_schedule=[(1, 1e-3)])
    with pytest.raises(FileExistsError):
        fitted.fit(X)
    fitted.set_params(callbacks=None, beta_schedule="default")
    _assert_same(_state(fitted, X), before)
    assert mine.read_bytes() == b"mine"


def test_interrupt_mid_fit_keeps_the_last_finished_epoch_and_reraises(X):
    est = SPIVAE(**SMALL, callbacks=[Fault(KeyboardInterrupt(), epoch=1, batch=1)])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    check_is_fitted(est)
    assert est.n_iter_ == len(est.history_) == 1
    # The weights are those of epoch 0: the same as a one-epoch fit's
    # after its first epoch.
    one = SPIVAE(**{**SMALL, "max_epochs": 3},
                 callbacks=[Fault(KeyboardInterrupt(), epoch=1, batch=0)])
    with pytest.raises(KeyboardInterrupt):
        one.fit(X)
    np.testing.assert_array_equal(est.transform(X), one.transform(X))
    assert est.kl_divergence_.shape == (2,)
    # warm_start continues from there.
    est.set_params(callbacks=None, warm_start=True, beta_schedule=[(2, 1e-3)]).fit(X)
    assert est.n_iter_ == 3


@pytest.mark.parametrize("warm_fit_first", [False, True])
def test_interrupt_inside_restarts_reraises_and_leaves_nothing(X, monkeypatch,
                                                               warm_fit_first):
    """Ctrl-C in the third batch of the n_init restarts (no epoch of the full
    fit has finished): re-raised, and the estimator is as before."""
    from skspivae import _training

    est = SPIVAE(**SMALL, n_init=3, init_epochs=2)
    before = _state(est.fit(X), X) if warm_fit_first else None
    original, calls = _training.forward_backward, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(_training, "forward_backward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    monkeypatch.undo()
    assert len(calls) == 3
    if warm_fit_first:
        _assert_same(_state(est, X), before)
    else:
        with pytest.raises(Exception, match="not fitted"):
            check_is_fitted(est)
        assert not hasattr(est, "init_history_")


def test_interrupt_stops_a_grid_search(X):
    seen = []

    class CountFits(Callback):
        def on_train_begin(self, estimator, info):
            seen.append(1)
            if len(seen) == 2:
                raise KeyboardInterrupt

    search = GridSearchCV(SPIVAE(**SMALL, callbacks=[CountFits()]),
                          {"beta": [1e-3, 1e-2]}, cv=2, n_jobs=None)
    with pytest.raises(KeyboardInterrupt):
        search.fit(X)
    assert len(seen) == 2  # the search stopped at the interrupted fit


@pytest.mark.parametrize("method", ["fit", "transform", "score", "sample"])
def test_values_beyond_float32_are_refused_up_front(fitted, X, method):
    big = X * 1e300
    with pytest.raises(ValueError, match="largest float32"):
        if method == "fit":
            SPIVAE(**SMALL).fit(big)
        elif method == "sample":
            fitted.sample(z=np.full(2, 1e300))
        else:
            getattr(fitted, method)(big)
