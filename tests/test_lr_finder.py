"""Learning-rate finder: SPIVAE.lr_find, its suggestions and plot."""

import copy

import matplotlib
import numpy as np
import pytest
import torch
from _configs import TINY

from skspivae import SPIVAE
from skspivae._lr_finder import LRFinderResult, _SweepRecorder, plot_lr_finder, suggest
from skspivae.datasets import make_fbm

matplotlib.use("Agg")



@pytest.fixture(scope="module")
def X():
    return make_fbm(96, n_timesteps=40, alpha=[0.5, 1.5], D=[1e-2], random_state=0)[0]


def test_suggestions_lie_in_the_swept_range(X):
    est = SPIVAE(random_state=0, **TINY)
    result = est.lr_find(X, start_lr=1e-5, end_lr=1e-1, num_it=30)
    assert len(result.lrs) == len(result.losses) == 30
    np.testing.assert_allclose(result.lrs[[0, -1]], [1e-5, 1e-1])
    np.testing.assert_allclose(np.diff(np.log(result.lrs)), np.log(1e4) / 29)
    for lr in (result.valley, result.steep, result.minimum * 10):
        assert 1e-5 <= lr <= 1e-1
    assert set(result.suggestions) == {"valley", "steep", "minimum"}
    assert not hasattr(est, "module_")  # still unfitted


def test_sweep_stops_when_the_loss_diverges(X):
    result = SPIVAE(random_state=0, **TINY).lr_find(X, start_lr=1e-4, end_lr=1e6,
                                                    num_it=50)
    assert len(result.lrs) < 50
    assert result.valley < result.lrs[-1]


def test_fitted_estimator_is_left_untouched(X):
    est = SPIVAE(max_epochs=2, random_state=0, **TINY).fit(X)
    weights = copy.deepcopy(est.module_.state_dict())
    optimizer = copy.deepcopy(est._optimizer.state_dict())
    history, Z = copy.deepcopy(est.history_), est.transform(X)
    est.lr_find(X, num_it=20)
    for name, value in est.module_.state_dict().items():
        assert torch.equal(value, weights[name])
    assert est._optimizer.state_dict()["state"].keys() == optimizer["state"].keys()
    for key, state in optimizer["state"].items():
        assert torch.equal(est._optimizer.state_dict()["state"][key]["exp_avg"],
                           state["exp_avg"])
    assert est.history_ == history
    np.testing.assert_array_equal(est.transform(X), Z)


def test_lr_find_does_not_change_a_later_fit(X):
    rng = np.random.RandomState(0)
    alone = SPIVAE(max_epochs=1, random_state=np.random.RandomState(0), **TINY).fit(X)
    est = SPIVAE(max_epochs=1, random_state=rng, **TINY)
    est.lr_find(X, num_it=10)
    torch.manual_seed(123)  # lr_find must not depend on or advance global RNGs
    np.testing.assert_array_equal(est.fit(X).transform(X), alone.transform(X))


def test_unfitted_sweep_starts_from_the_fit_initialisation(X):
    # The first batch is scored before any step: the same loss as the fresh
    # model fit() would build with this random_state.
    a = SPIVAE(random_state=3, **TINY).lr_find(X, num_it=5)
    b = SPIVAE(random_state=3, **TINY).lr_find(X, num_it=5)
    c = SPIVAE(random_state=4, **TINY).lr_find(X, num_it=5)
    assert a.losses[0] == b.losses[0] != c.losses[0]


def test_recorder_divergence_rule_handles_negative_losses():
    rec = _SweepRecorder(1e-3, 1.0, 100, 4.0)
    for loss in [-2.0] * 20:
        assert not rec.on_batch_end(None, {"loss": loss})
    # 4x the best would be -8 (always exceeded); the rule needs a rise of
    # 3 x |best| = 6 nats of the smoothed loss.
    assert not rec.on_batch_end(None, {"loss": 50.0})  # smoothed: about +1
    assert any(rec.on_batch_end(None, {"loss": 1e3}) for _ in range(5))


def test_suggestions_on_a_known_curve():
    lrs = np.geomspace(1e-6, 10, 100)
    x = np.log10(lrs)
    losses = 1 - np.tanh(x + 3) + np.where(x > -1, 20 * (x + 1) ** 2, 0)
    s = suggest(lrs, losses, 100)
    assert s["steep"] == pytest.approx(1e-3, rel=0.15)  # steepest fall of tanh
    i_min = np.argmin(losses[10:-5]) + 10
    assert s["minimum"] == pytest.approx(lrs[i_min] / 10)
    assert 1e-5 < s["valley"] < lrs[i_min]


def test_too_few_points_is_a_clear_error(X):
    with pytest.raises(ValueError, match="num_it"):
        SPIVAE(**TINY).lr_find(X, num_it=1)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        SPIVAE(**TINY).lr_find(X, start_lr=1.0, end_lr=1e-3)


def test_plot_lr_finder_marks_suggestions():
    import matplotlib.pyplot as plt

    lrs = np.geomspace(1e-6, 1, 50)
    losses = (np.log10(lrs) + 2) ** 2
    result = LRFinderResult(lrs, losses, **suggest(lrs, losses, 50))
    ax = plot_lr_finder(result)
    assert ax.get_xscale() == "log"
    assert len(ax.get_lines()) == 4
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert labels[1].startswith("valley") and labels[3].startswith("minimum")
    fig, ax2 = plt.subplots()
    assert plot_lr_finder(result, ax=ax2) is ax2
    plt.close("all")
