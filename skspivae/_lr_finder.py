"""Learning-rate finder (fastai's ``lr_find``): a short exponential lr sweep.

The sweep runs through :class:`~skspivae._training.Trainer`, the estimator's
one training loop, with an exponential lr schedule and a callback that records
the loss of every batch and stops after ``num_it`` batches or when the
smoothed loss diverges. :meth:`SPIVAE.lr_find` prepares a copy of the model
and the data; this module is plain torch.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._schedules import Stage
from ._training import NonFiniteLossError, Trainer, make_optimizer

SMOOTHING = 0.98  # fastai's AvgSmoothLoss


@dataclass(frozen=True)
class LRFinderResult:
    """Losses of a learning-rate sweep and the suggested learning rates.

    Attributes
    ----------
    lrs : ndarray of shape (n_steps,)
        Learning rate of each batch, growing exponentially.
    losses : ndarray of shape (n_steps,)
        Training loss after each batch, exponentially smoothed (debiased
        moving average with factor 0.98, as fastai).
    valley : float
        fastai's default: the point 2/3 down the longest valley (the
        longest decreasing run) of the smoothed curve.
    steep : float
        Learning rate where the smoothed loss falls fastest per log-lr.
    minimum : float
        Learning rate of the lowest smoothed loss, divided by 10.
    """

    lrs: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)
    valley: float
    steep: float
    minimum: float

    @property
    def suggestions(self):
        """Dict of the suggested learning rates by criterion."""
        return {"valley": self.valley, "steep": self.steep, "minimum": self.minimum}


class _SweepRecorder:
    """``on_batch_end`` callback: record lr and smoothed loss, stop when done."""

    def __init__(self, start_lr, end_lr, num_it, stop_div):
        self.start_lr, self.end_lr = start_lr, end_lr
        self.num_it, self.stop_div = num_it, stop_div
        self.lrs, self.losses = [], []
        self._avg, self._best, self._first = 0.0, math.inf, None

    def lr_at(self, step):
        ratio = self.end_lr / self.start_lr
        return self.start_lr * ratio ** (step / max(self.num_it - 1, 1))

    def on_batch_end(self, owner, record):
        step = len(self.losses)
        self._avg = SMOOTHING * self._avg + (1 - SMOOTHING) * record["loss"]
        smooth = self._avg / (1 - SMOOTHING ** (step + 1))
        self.lrs.append(self.lr_at(step))  # the lr this batch was trained with
        self.losses.append(smooth)
        self._first = smooth if self._first is None else self._first
        self._best = min(self._best, smooth)
        return step + 1 >= self.num_it or self._diverged(smooth)

    def _diverged(self, smooth):
        # fastai's "smooth > 4 * best", measured from the best in units of the
        # loss's own size so that it also holds for negative log-likelihoods.
        scale = max(abs(self._best), abs(self._first), 1e-8)
        rise = smooth - self._best
        return not math.isfinite(smooth) or rise > (self.stop_div - 1) * scale


def find_lr(module, data, *, batch_size, generator, beta=0.0, clip_grad_norm=None,
            start_lr=1e-7, end_lr=10.0, num_it=100, stop_div=4.0):
    """Train ``module`` (modified in place: pass a copy) with an lr sweep.

    Parameters
    ----------
    module : SPIVAEModule
    data : Tensor of shape (n, 1, length)
        Scaled displacements, on the module's device.
    batch_size : int
    generator : torch.Generator
        Drives the batch order and the latent noise.
    beta : float, default=0.0
        Weight of the KL term of the loss.
    clip_grad_norm : float or None, default=None
    start_lr, end_lr : float, default=1e-7, 10.0
        The sweep's first and last learning rates.
    num_it : int, default=100
        Batches of the sweep (over as many epochs as needed).
    stop_div : float or None, default=4.0
        Stop once the smoothed loss exceeds the best one by ``stop_div - 1``
        times the size of the loss; None sweeps the whole range.

    Returns
    -------
    LRFinderResult
    """
    optimizer = make_optimizer(module.parameters(), start_lr)
    recorder = _SweepRecorder(start_lr, end_lr, num_it,
                              math.inf if stop_div is None else stop_div)

    def exponential(optimizer, lr, total_steps):
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = start_lr
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: recorder.lr_at(step) / start_lr)

    trainer = Trainer(module, optimizer, batch_size=batch_size, lr=start_lr,
                      lr_schedule=exponential, clip_grad_norm=clip_grad_norm,
                      generator=generator, callbacks=[recorder])
    n_epochs = math.ceil(num_it / math.ceil(data.shape[0] / batch_size))
    try:
        trainer.run(data, None, [Stage(n_epochs, beta)], [])
    except NonFiniteLossError:
        pass  # the sweep diverged: what was recorded before stands
    if len(recorder.losses) < 2:
        raise ValueError(f"The lr sweep stopped after {len(recorder.losses)} batch; "
                         "lower start_lr.")
    lrs, losses = np.array(recorder.lrs), np.array(recorder.losses)
    return LRFinderResult(lrs, losses, **suggest(lrs, losses, num_it))


def suggest(lrs, losses, num_it):
    """fastai's "valley", "steep" and "minimum" suggestions for a sweep.

    As fastai, the first tenth of the planned sweep and its last 5 points
    (where it diverges) are left out, unless that leaves too few points.
    """
    keep = slice(num_it // 10, -5)
    if len(lrs[keep]) >= 3:
        lrs, losses = lrs[keep], losses[keep]
    log_lrs = np.log(lrs)
    slopes = np.diff(losses) / np.diff(log_lrs)
    return {"valley": float(lrs[_valley_index(losses)]),
            "steep": float(lrs[np.argmin(slopes)]),
            "minimum": float(lrs[np.argmin(losses)] / 10)}


def _valley_index(losses):
    """fastai's valley: the longest decreasing subsequence, 2/3 of the way down."""
    n = len(losses)
    lengths = np.ones(n, dtype=int)
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
        if lengths[end] < lengths[i]:
            end, start = i, i - lengths[i]
    third = (end - start) / 3
    return start + int(third) + int(third / 2)


def plot_lr_finder(result, ax=None):
    """Smoothed loss against learning rate (log scale), with the suggestions.

    Parameters
    ----------
    result : LRFinderResult
        From :meth:`SPIVAE.lr_find`.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from skspivae._lr_finder import plot_lr_finder, suggest, LRFinderResult
    >>> lrs = np.geomspace(1e-6, 1, 60)
    >>> losses = np.log10(lrs) ** 2 / 10
    >>> result = LRFinderResult(lrs, losses, **suggest(lrs, losses, 60))
    >>> ax = plot_lr_finder(result)
    >>> ax.get_xscale(), [t.get_text().split(":")[0] for t in ax.get_legend().texts]
    ('log', ['loss', 'valley', 'steep', 'minimum'])
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    log_lrs = np.log(result.lrs)
    ax.plot(result.lrs, result.losses, color="C0", label="loss")
    for i, (name, lr) in enumerate(result.suggestions.items()):
        loss = np.interp(np.log(lr), log_lrs, result.losses)
        ax.plot([lr], [loss], "o", color=f"C{i + 1}", label=f"{name}: {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.legend()
    return ax
