"""Callbacks: ProgressBar, EarlyStopping, Checkpoint, TensorBoard, LivePlot."""

import copy
import glob
import io
import os
import sys
import types
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from _configs import TINY
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skspivae import SPIVAE
from skspivae.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    LivePlot,
    ProgressBar,
    TensorBoard,
)
from skspivae.datasets import make_fbm

matplotlib.use("Agg")

TWO_STAGES = [(1, 0.0), (1, 1e-3)]


@pytest.fixture(scope="module")
def X():
    return make_fbm(64, n_timesteps=40, alpha=[0.5, 1.5], D=[1e-2], random_state=0)[0]


# --- ProgressBar ----------------------------------------------------------------

def test_progress_bar_counts_the_batches_of_the_fit(X):
    out = io.StringIO()
    SPIVAE(max_epochs=2, callbacks=[ProgressBar(file=out, min_interval=0)],
           random_state=0, **TINY).fit(X)
    text = out.getvalue()
    assert text.endswith("\n")  # the finished bar stays
    last = text.split("\r")[-1]
    # 51 training trajectories in batches of 16: 4 batches, 2 epochs.
    assert last.startswith("epoch 2/2: 100%") and "8/8" in last
    assert "train_loss=" in last and "valid_loss=" in last


def test_verbose_2_adds_a_transient_progress_bar(X, capsys):
    SPIVAE(max_epochs=2, verbose=2, random_state=0, **TINY).fit(X)
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3  # the epoch table
    assert "epoch" in captured.err and "\n" not in captured.err.rstrip("\r")


# --- EarlyStopping ----------------------------------------------------------------

def _feed(stop, values, stage_ends=()):
    stop.on_train_begin(None, {})
    for epoch, value in enumerate(values):
        if stop.on_epoch_end(None, {"epoch": epoch, "valid_loss": value}):
            return epoch
        if epoch in stage_ends:
            stop.on_stage_end(None, {})
    return None


def test_early_stopping_follows_the_mlp_rule():
    # Improvements smaller than tol do not count; more than n_iter_no_change
    # epochs without one stop (MLPRegressor's "_no_improvement_count > n").
    stop = EarlyStopping(n_iter_no_change=2, tol=0.1)
    assert _feed(stop, [1.0, 0.95, 0.92, 0.91, 0.5]) == 3
    assert stop.best_value_ == 0.91 and stop.best_epoch_ == 3
    assert _feed(stop, [1.0, 0.8, 0.6, 0.4]) is None
    # A new beta stage restarts the count (the loss jumps with beta).
    assert _feed(stop, [1.0, 0.5, 2.0, 2.0, 1.95, 1.95], stage_ends=(1,)) == 5


def test_early_stopping_stops_when_the_loss_plateaus(X):
    # lr=1e-7: the loss does not move, so no epoch improves by tol.
    stop = EarlyStopping(n_iter_no_change=2, tol=1e-3)
    est = SPIVAE(max_epochs=30, lr=1e-7, lr_schedule="constant", callbacks=[stop],
                 random_state=0, **TINY).fit(X)
    assert est.n_iter_ == 4 < 30 and stop.stopped_epoch_ == 3
    # The same through the estimator's parameters, on the training loss.
    est = SPIVAE(max_epochs=30, lr=1e-7, lr_schedule="constant", n_iter_no_change=2,
                 tol=1e-3, validation_fraction=0, random_state=0, **TINY).fit(X)
    assert est.n_iter_ < 30


def test_estimator_warns_when_early_stopping_never_triggers(X):
    with pytest.warns(ConvergenceWarning, match="n_iter_no_change=5"):
        SPIVAE(max_epochs=2, n_iter_no_change=5, random_state=0, **TINY).fit(X)


def test_early_stopping_restores_the_best_weights(X):
    class Snapshots(Callback):
        def on_train_begin(self, estimator, info):
            self.states = {}

        def on_epoch_end(self, estimator, record):
            self.states[record["epoch"]] = copy.deepcopy(estimator.module_.state_dict())

    snaps = Snapshots()
    stop = EarlyStopping(n_iter_no_change=1, tol=10.0, restore_best_weights=True)
    est = SPIVAE(max_epochs=10, lr=3e-2, callbacks=[snaps, stop], random_state=0,
                 **TINY).fit(X)
    losses = [r["valid_loss"] for r in est.history_]
    assert stop.best_epoch_ == int(np.argmin(losses)) and est.n_iter_ == 3
    for name, value in est.module_.state_dict().items():
        assert torch.equal(value, snaps.states[stop.best_epoch_][name])


def test_early_stopping_without_validation_set_is_a_clear_error(X):
    est = SPIVAE(max_epochs=2, validation_fraction=0, callbacks=[EarlyStopping()],
                 **TINY)
    with pytest.raises(ValueError, match="monitor 'train_loss'"):
        est.fit(X)
    with pytest.raises(ValueError, match="not a history key"):
        SPIVAE(max_epochs=1, callbacks=[EarlyStopping("loss")], **TINY).fit(X)


# --- Checkpoint -------------------------------------------------------------------

def test_checkpoints_load_back_to_the_same_model(X, tmp_path):
    check = Checkpoint(tmp_path / "ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "callbacks are not saved" warning
        est = SPIVAE(beta_schedule=TWO_STAGES, callbacks=[check], random_state=0,
                     **TINY).fit(X)
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == ["spivae-stage0-beta0.pt", "spivae-stage1-beta0.001.pt"]
    assert check.paths_ == [str(tmp_path / "ckpt" / n) for n in names]
    first, last = (SPIVAE.load(p) for p in check.paths_)
    assert len(first.history_) == 1 and last.history_ == est.history_
    np.testing.assert_array_equal(last.transform(X), est.transform(X))
    assert not np.array_equal(first.transform(X), est.transform(X))
    # A warm start continues the stage numbers: no clash with the old files.
    est.set_params(warm_start=True, beta_schedule=[(1, 2e-3)]).fit(X)
    assert sorted(os.listdir(tmp_path / "ckpt"))[-1] == "spivae-stage2-beta0.002.pt"


def test_checkpoint_never_overwrites_silently(X, tmp_path):
    SPIVAE(beta_schedule=TWO_STAGES, callbacks=[Checkpoint(tmp_path)], random_state=0,
           **TINY).fit(X)
    path = tmp_path / "spivae-stage1-beta0.001.pt"
    content = path.read_bytes()

    class Epochs(Callback):
        n = 0

        def on_epoch_end(self, estimator, record):
            Epochs.n += 1

    est = SPIVAE(beta_schedule=TWO_STAGES, callbacks=[Checkpoint(tmp_path), Epochs()],
                 random_state=1, **TINY)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        est.fit(X)
    assert Epochs.n == 0 and path.read_bytes() == content  # refused before training
    est.set_params(callbacks=[Checkpoint(tmp_path, overwrite=True)]).fit(X)
    assert path.read_bytes() != content
    np.testing.assert_array_equal(SPIVAE.load(path).transform(X), est.transform(X))


def test_checkpoint_rejects_an_unsaveable_model_before_training(X, tmp_path):
    def schedule(optimizer, lr, total_steps):
        return None

    est = SPIVAE(lr_schedule=schedule, callbacks=[Checkpoint(tmp_path)], **TINY)
    with pytest.raises(ValueError, match="callable lr_schedule"):
        est.fit(X)
    assert os.listdir(tmp_path) == []


def test_callbacks_survive_clone(tmp_path):
    est = SPIVAE(callbacks=[Checkpoint(tmp_path), EarlyStopping(), ProgressBar(),
                            LivePlot()])
    assert len(clone(est).callbacks) == 4


# --- TensorBoard ------------------------------------------------------------------

def test_tensorboard_writes_event_files(X, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    board = TensorBoard(tmp_path / "runs")
    est = SPIVAE(max_epochs=3, callbacks=[board], random_state=0, **TINY).fit(X)
    files = glob.glob(str(tmp_path / "runs" / "events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(tmp_path / "runs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/valid", "kl/z0", "kl/z1", "beta", "lr"} <= tags
    train = [e.value for e in events.Scalars("loss/train")]
    np.testing.assert_allclose(train, [r["train_loss"] for r in est.history_],
                               rtol=1e-6)
    clone(est)  # the writer is closed and dropped after fit


def test_tensorboard_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"skspivae\[tensorboard\]"):
        TensorBoard()


# --- LivePlot ---------------------------------------------------------------------

def test_live_plot_is_a_no_op_outside_ipython(X, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    plot = LivePlot()
    figures = plt.get_fignums()
    SPIVAE(max_epochs=2, callbacks=[plot], **TINY).fit(X)
    assert plot.active_ is False and plt.get_fignums() == figures
    assert "IPython" not in sys.modules


def test_live_plot_redraws_in_a_kernel(X, monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def display(fig, display_id=None):
        shown.append(("display", fig))
        return Handle()

    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell,
                                              version_info=(9, 0)))
    monkeypatch.setitem(sys.modules, "IPython.display",
                        types.SimpleNamespace(display=display))
    # matplotlib < 3.8 looks up IPython.core.pylabtools when it makes a canvas.
    pylabtools = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "IPython.core",
                        types.SimpleNamespace(pylabtools=pylabtools))
    monkeypatch.setitem(sys.modules, "IPython.core.pylabtools", pylabtools)
    plot = LivePlot(every=2)
    SPIVAE(max_epochs=3, callbacks=[plot], **TINY).fit(X)
    assert plot.active_ is True
    assert [kind for kind, _ in shown] == ["display", "update"]  # epoch 2, end
    loss_ax, kl_ax = shown[-1][1].axes[:2]
    assert len(loss_ax.get_lines()) == 2  # train, validation
    assert len(kl_ax.get_lines()) == 3  # two neurons and the kl_threshold
    assert kl_ax.get_yscale() == "log"
