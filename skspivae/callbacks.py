"""Callbacks: small objects called by :meth:`SPIVAE.fit` during training.

A callback may define any of these methods; each receives the estimator and a
record (a dict), and a true return value from ``on_batch_end`` or
``on_epoch_end`` stops training after the current step:

- ``on_train_begin(estimator, info)``: ``info`` has "stages" and "n_batches".
- ``on_batch_end(estimator, record)``: "epoch", "batch", "loss", "beta", "lr".
- ``on_epoch_end(estimator, record)``: the epoch's entry of ``history_``.
- ``on_stage_end(estimator, info)``: "stage", "epoch", "beta" at the end of
  each beta stage.
- ``on_train_end(estimator, info)``: "history".

Pass them as ``SPIVAE(callbacks=[...])``.
"""

import sys

__all__ = ["Callback", "EpochTable"]


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
