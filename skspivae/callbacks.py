"""Callbacks: small objects called by :meth:`SPIVAE.fit` during training.

A callback may define any of these methods; each receives the estimator and a
record (a dict), and a true return value from ``on_batch_end`` or
``on_epoch_end`` stops training after the current step:

- ``on_train_begin(estimator, info)``: ``info`` has "stages" (list of
  :class:`~skspivae._schedules.Stage`), "n_batches" (per epoch), "first_epoch"
  and "first_stage" (their numbers in ``history_``, above 0 on a warm start).
- ``on_batch_end(estimator, record)``: "epoch", "batch", "loss", "beta", "lr".
- ``on_epoch_end(estimator, record)``: the epoch's entry of ``history_``.
- ``on_stage_end(estimator, info)``: "stage", "epoch", "beta" at the end of
  each beta stage.
- ``on_train_end(estimator, info)``: "history".

Pass them as ``SPIVAE(callbacks=[...])``. They are called by the main fit
only: not by the short fits of ``n_init`` restarts nor by ``lr_find``.

- :class:`EpochTable`, :class:`ProgressBar`: text output (``verbose=1, 2``).
- :class:`EarlyStopping`: stop when a loss stops improving (scikit-learn's MLP
  rule; ``SPIVAE(n_iter_no_change=...)`` adds one).
- :class:`Checkpoint`: save the model at the end of every beta stage.
- :class:`TensorBoard`, :class:`LivePlot`: watch the curves while training.
"""

import copy
import math
import os
import sys
import warnings

__all__ = ["Callback", "Checkpoint", "EarlyStopping", "EpochTable", "LivePlot",
           "ProgressBar", "TensorBoard"]


class Callback:
    """Base class with every hook doing nothing; subclass and override.

    Examples
    --------
    >>> from skspivae.callbacks import Callback
    >>> class StopAfter(Callback):
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def on_epoch_end(self, estimator, record):
    ...         return record["epoch"] + 1 >= self.n
    >>> StopAfter(3).on_epoch_end(None, {"epoch": 2})
    True
    """

    def on_train_begin(self, estimator, info):
        """Called once before the first epoch."""

    def on_batch_end(self, estimator, record):
        """Called after every optimiser step; return True to stop."""

    def on_epoch_end(self, estimator, record):
        """Called after every epoch; return True to stop."""

    def on_stage_end(self, estimator, info):
        """Called after the last epoch of each beta stage."""

    def on_train_end(self, estimator, info):
        """Called once when training ends, however it ends."""


class EpochTable(Callback):
    """Print one row per epoch as it finishes, like fastai's progress table.

    ``SPIVAE(verbose=1)`` adds one automatically.

    Parameters
    ----------
    file : file-like, default=None
        Where to print; ``sys.stdout`` when None.

    Examples
    --------
    >>> from skspivae.callbacks import EpochTable
    >>> table = EpochTable()
    >>> table.on_train_begin(None, {})
    epoch  stage  train_loss  valid_loss  valid_nll        kl      beta      time
    >>> table.on_epoch_end(None, {"epoch": 0, "stage": 0, "train_loss": -1.5,
    ...     "valid_loss": -1.6, "valid_nll": -1.7, "kl": 12.0, "beta": 0.0,
    ...     "seconds": 2.5})
        0      0     -1.5000     -1.6000    -1.7000    12.000         0     2.50s
    """

    columns = ("epoch", "stage", "train_loss", "valid_loss", "valid_nll", "kl",
               "beta", "time")

    def __init__(self, file=None):
        self.file = file

    def _print(self, line):
        print(line, file=self.file if self.file is not None else sys.stdout,
              flush=True)

    def on_train_begin(self, estimator, info):
        self._print("epoch  stage  train_loss  valid_loss  valid_nll        kl"
                    "      beta      time")

    def on_epoch_end(self, estimator, record):
        r = record
        self._print(f"{r['epoch']:5d}  {r['stage']:5d}  {r['train_loss']:10.4f}  "
                    f"{r['valid_loss']:10.4f}  {r['valid_nll']:9.4f}  {r['kl']:8.3f}  "
                    f"{r['beta']:8.2g}  {r['seconds']:7.2f}s")


class ProgressBar(Callback):
    """A progress bar of the batches of the whole fit, drawn by tqdm.

    ``tqdm.auto`` draws a widget in a Jupyter notebook and a self-updating
    line in a terminal. The bar shows the epoch, the last batch's loss and,
    after each epoch, its training and validation losses.
    ``SPIVAE(verbose=2)`` adds one with ``leave=False`` in front of the
    :class:`EpochTable`, so that the bar disappears when training ends.

    Parameters
    ----------
    file : file-like, default=None
        Where to write; ``sys.stderr`` when None.
    leave : bool, default=True
        Keep the finished bar; False erases it when training ends.
    min_interval : float, default=0.1
        Seconds between two redraws (tqdm's ``mininterval``).

    Examples
    --------
    >>> import io
    >>> from skspivae import SPIVAE
    >>> from skspivae.callbacks import ProgressBar
    >>> from skspivae.datasets import make_fbm
    >>> X, _ = make_fbm(32, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
    >>> out = io.StringIO()
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              max_epochs=2, batch_size=16, random_state=0,
    ...              callbacks=[ProgressBar(file=out)]).fit(X)
    >>> print(out.getvalue().split("\\r")[-1].strip())  # doctest: +ELLIPSIS
    epoch 2/2: 100%|##########| 4/4 [..., train_loss=..., valid_loss=...]
    """

    def __init__(self, file=None, leave=True, min_interval=0.1):
        self.file = file
        self.leave = leave
        self.min_interval = min_interval

    def on_train_begin(self, estimator, info):
        from tqdm.auto import tqdm

        self._n_epochs = sum(stage.n_epochs for stage in info["stages"])
        self._first = info.get("first_epoch", 0)
        self._bar = tqdm(total=self._n_epochs * info["n_batches"], unit="batch",
                         file=self.file if self.file is not None else sys.stderr,
                         leave=self.leave, mininterval=self.min_interval,
                         dynamic_ncols=True, desc=f"epoch 1/{self._n_epochs}")

    def on_batch_end(self, estimator, record):
        self._bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        self._bar.update(1)

    def on_epoch_end(self, estimator, record):
        e = record["epoch"] - self._first + 1
        # The next epoch's number, or the last one's once all are done.
        self._bar.set_description(f"epoch {min(e + 1, self._n_epochs)}/{self._n_epochs}",
                                  refresh=False)
        self._bar.set_postfix(train_loss=f"{record['train_loss']:.4f}",
                              valid_loss=f"{record['valid_loss']:.4f}")

    def on_train_end(self, estimator, info):
        self._bar.close()


class EarlyStopping(Callback):
    """Stop training when a loss stops improving, as scikit-learn's MLP does.

    After each epoch, a value that is not lower than the best so far minus
    ``tol`` counts as no improvement; training stops once more than
    ``n_iter_no_change`` epochs in a row count (the rule of
    :class:`~sklearn.neural_network.MLPRegressor`). Beta changes the loss
    between beta stages, so the count and the best value restart at each new
    stage; a stop ends the whole fit (later stages do not run).
    ``SPIVAE(n_iter_no_change=...)`` adds one monitoring "valid_loss"
    ("train_loss" when ``validation_fraction=0``).

    Parameters
    ----------
    monitor : str, default="valid_loss"
        Key of the ``history_`` entries to minimise: "valid_loss",
        "valid_nll", "train_loss" or "kl".
    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` that are tolerated.
    tol : float, default=1e-4
        Smallest decrease that counts as an improvement.
    restore_best_weights : bool, default=False
        When training ends, load the weights of the best epoch (of the last
        stage). ``history_`` keeps every epoch.

    Attributes
    ----------
    best_value_ : float
        Lowest monitored value of the current (or last) stage.
    best_epoch_ : int or None
        Epoch (in ``history_``) of ``best_value_``.
    stopped_epoch_ : int or None
        Epoch at which training was stopped; None when it was not.

    Examples
    --------
    >>> from skspivae import SPIVAE
    >>> from skspivae.callbacks import EarlyStopping
    >>> from skspivae.datasets import make_fbm
    >>> X, _ = make_fbm(64, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
    >>> stop = EarlyStopping(n_iter_no_change=1, tol=10.0)  # no epoch gains 10 nats
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              layer_size=2, max_epochs=20, batch_size=16, random_state=0,
    ...              callbacks=[stop]).fit(X)
    >>> est.n_iter_, stop.stopped_epoch_
    (3, 2)
    """

    def __init__(self, monitor="valid_loss", n_iter_no_change=10, tol=1e-4,
                 restore_best_weights=False):
        self.monitor = monitor
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.restore_best_weights = restore_best_weights

    def _reset(self):
        self.best_value_ = math.inf
        self.best_epoch_ = None
        self._count = 0
        self._best_state = None

    def on_train_begin(self, estimator, info):
        self._reset()
        self.stopped_epoch_ = None

    def on_epoch_end(self, estimator, record):
        if self.monitor not in record:
            raise ValueError(f"EarlyStopping: monitor={self.monitor!r} is not a "
                             f"history key; use one of {sorted(record)}.")
        value = record[self.monitor]
        if math.isnan(value):
            raise ValueError(
                f"EarlyStopping: {self.monitor} is NaN at epoch {record['epoch']}"
                + (" (validation_fraction=0 leaves no validation set; monitor "
                   "'train_loss')." if self.monitor.startswith("valid") else ".")
            )
        self._count = self._count + 1 if value > self.best_value_ - self.tol else 0
        if value < self.best_value_:
            self.best_value_, self.best_epoch_ = value, record["epoch"]
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(estimator.module_.state_dict())
        if self._count > self.n_iter_no_change:
            self.stopped_epoch_ = record["epoch"]
            return True
        return False

    def on_stage_end(self, estimator, info):
        self._reset()

    def on_train_end(self, estimator, info):
        if self._best_state is not None:
            estimator.module_.load_state_dict(self._best_state)
            self._best_state = None


class Checkpoint(Callback):
    """Save the estimator at the end of every beta stage, as the paper does.

    With a staged ``beta_schedule`` (e.g. "fbm_paper"), a later stage can
    collapse every neuron; the checkpoints keep each stage's model. Files are
    written with :meth:`SPIVAE.save` (atomic) and named
    ``{prefix}-stage{stage}-beta{beta:g}.pt``; read one back with
    :meth:`SPIVAE.load`. Existing files are never replaced unless
    ``overwrite=True``: training refuses to start if one of its targets exists.
    A fit stopped inside a stage (by a callback or Ctrl-C) writes no file for
    that stage; the estimator itself holds the last weights.

    Parameters
    ----------
    directory : str or path-like
        Folder of the files, created if needed.
    prefix : str, default="spivae"
        Start of the file names.
    overwrite : bool, default=False
        Replace existing files.

    Attributes
    ----------
    paths_ : list of str
        Files written during the last fit, in order.

    Examples
    --------
    >>> import os, tempfile
    >>> from skspivae import SPIVAE
    >>> from skspivae.callbacks import Checkpoint
    >>> from skspivae.datasets import make_fbm
    >>> X, _ = make_fbm(32, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
    >>> folder = tempfile.mkdtemp()
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              layer_size=2, beta_schedule=[(1, 0.0), (1, 1e-3)],
    ...              batch_size=16, random_state=0,
    ...              callbacks=[Checkpoint(folder)]).fit(X)
    >>> sorted(os.listdir(folder))
    ['spivae-stage0-beta0.pt', 'spivae-stage1-beta0.001.pt']
    >>> last = SPIVAE.load(os.path.join(folder, "spivae-stage1-beta0.001.pt"))
    >>> bool((last.transform(X) == est.transform(X)).all())
    True
    """

    def __init__(self, directory, *, prefix="spivae", overwrite=False):
        self.directory = directory
        self.prefix = prefix
        self.overwrite = overwrite

    def _path(self, stage, beta):
        return os.path.join(os.fspath(self.directory),
                            f"{self.prefix}-stage{stage}-beta{beta:g}.pt")

    def on_train_begin(self, estimator, info):
        if callable(getattr(estimator, "lr_schedule", None)):
            raise ValueError("Checkpoint cannot save a model with a callable "
                             "lr_schedule; use a string lr_schedule.")
        first = info.get("first_stage", 0)
        targets = [self._path(first + i, stage.beta)
                   for i, stage in enumerate(info["stages"])]
        existing = [p for p in targets if os.path.exists(p)]
        if existing and not self.overwrite:
            raise FileExistsError(
                f"Checkpoint would replace {existing}; remove them, choose another "
                "directory or prefix, or pass overwrite=True."
            )
        os.makedirs(self.directory, exist_ok=True)
        self.paths_ = []

    def on_stage_end(self, estimator, info):
        path = self._path(info["stage"], info["beta"])
        with warnings.catch_warnings():
            # This callback is one of them: nothing to warn the user about.
            warnings.filterwarnings("ignore", "callbacks are not saved", UserWarning)
            estimator.save(path, overwrite=self.overwrite)
        self.paths_.append(path)


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError("The TensorBoard callback needs the tensorboard package: "
                          "pip install 'skspivae[tensorboard]'.") from error
    return SummaryWriter


class TensorBoard(Callback):
    """Log the curves of every epoch for TensorBoard.

    Scalars per epoch (the step is the epoch of ``history_``): "loss/train",
    "loss/valid", "loss/valid_nll", "kl/total", "kl/z0", "kl/z1", ... (KL
    per neuron), "beta" and "lr". Needs the optional ``tensorboard`` package
    (``pip install 'skspivae[tensorboard]'``); then run
    ``tensorboard --logdir runs``.

    Parameters
    ----------
    log_dir : str or path-like, default=None
        Folder of the event files; None uses torch's default
        ``runs/<date>_<host>``.

    Raises
    ------
    ImportError
        When the ``tensorboard`` package is not installed.

    Examples
    --------
    >>> from skspivae.callbacks import TensorBoard
    >>> board = TensorBoard("runs/spivae")  # doctest: +SKIP
    >>> SPIVAE(callbacks=[board]).fit(X)  # doctest: +SKIP
    """

    def __init__(self, log_dir=None):
        _summary_writer_class()  # fail now, not at the start of fit
        self.log_dir = log_dir

    def on_train_begin(self, estimator, info):
        self._writer = None  # opened at the first epoch: nothing to close before

    def on_epoch_end(self, estimator, record):
        if self._writer is None:
            self._writer = _summary_writer_class()(log_dir=self.log_dir)
        scalars = {"loss/train": record["train_loss"],
                   "loss/valid": record["valid_loss"],
                   "loss/valid_nll": record["valid_nll"], "kl/total": record["kl"],
                   "beta": record["beta"], "lr": record["lr"]}
        for i, kl in enumerate(record["kl_per_component"]):
            scalars[f"kl/z{i}"] = kl
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, record["epoch"])

    def on_train_end(self, estimator, info):
        if self._writer is not None:
            self._writer.close()
            self._writer = None  # keeps the callback picklable and clonable


def _in_ipython_kernel():
    """True inside a Jupyter (IPython kernel) session; never imports IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class LivePlot(Callback):
    """Redraw the loss and per-neuron KL curves while ``fit`` runs in Jupyter.

    Inside an IPython kernel, one figure (:func:`skspivae.plotting.plot_history`
    and :func:`skspivae.plotting.plot_kl_per_component`) is displayed and
    updated in place every ``every`` epochs. Anywhere else (scripts, a plain
    terminal) it does nothing.

    Parameters
    ----------
    every : int, default=1
        Redraw every ``every`` epochs (and after the last one).
    figsize : tuple of float, default=(10, 3.5)
        Size of the figure in inches.

    Attributes
    ----------
    active_ : bool
        Whether the last fit ran in an IPython kernel (and was drawn).

    Examples
    --------
    >>> from skspivae.callbacks import LivePlot
    >>> plot = LivePlot(every=2)
    >>> plot.on_train_begin(None, {})  # not in a notebook: a no-op
    >>> plot.active_
    False
    """

    def __init__(self, every=1, figsize=(10, 3.5)):
        self.every = every
        self.figsize = figsize

    def on_train_begin(self, estimator, info):
        self.active_ = _in_ipython_kernel()
        self._handle, self._stale = None, False

    def _draw(self, estimator):
        from IPython.display import display
        from matplotlib.figure import Figure  # no pyplot: no second, inline copy

        from .plotting import plot_history, plot_kl_per_component

        fig = Figure(figsize=self.figsize, layout="constrained")
        loss_ax, kl_ax = fig.subplots(1, 2)
        plot_history(estimator.history_, ax=loss_ax)
        plot_kl_per_component(estimator.history_, ax=kl_ax,
                              kl_threshold=getattr(estimator, "kl_threshold", None))
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        self._stale = False

    def on_epoch_end(self, estimator, record):
        self._stale = self.active_
        if self.active_ and len(estimator.history_) % self.every == 0:
            self._draw(estimator)

    def on_train_end(self, estimator, info):
        if self._stale and estimator.history_:
            self._draw(estimator)
