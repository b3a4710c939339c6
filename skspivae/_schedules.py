"""Beta (KL weight) schedules, as lists of training stages.

A schedule is a list of :class:`Stage`: each stage runs ``n_epochs`` epochs
with its own one-cycle learning rate, and gives beta for each of its epochs.
"""

import math
from dataclasses import dataclass
from numbers import Integral, Real

# Named schedules, as lists of stages (n_epochs, beta[, curve, warmup_epochs]).
SCHEDULES = {
    # The paper's fBM tutorial: 64 epochs at beta = 0, then 16-epoch cycles at
    # increasing beta. The paper's SBM model ends at 5e-3.
    "fbm_paper": [(64, 0.0), (16, 1e-4), (16, 6e-4), (16, 1e-3), (16, 2e-3), (16, 4e-3)],
    "sbm_paper": [(64, 0.0), (16, 1e-4), (16, 6e-4), (16, 1e-3), (16, 2e-3), (16, 4e-3),
                  (16, 5e-3)],
}
CURVES = ("constant", "linear", "tanh")
# Epochs of the "default" schedule's final stage, at most, and its beta's
# fraction of the peak.
SHARPEN_EPOCHS, SHARPEN_FRACTION = 10, 1 / 20


@dataclass(frozen=True)
class Stage:
    """``n_epochs`` epochs with beta rising from ``start`` to ``beta``.

    ``curve`` is "constant" (beta throughout), "linear" or "tanh" (warm-up
    over ``warmup_epochs`` epochs, then constant; ``sharpness`` shapes tanh).
    """

    n_epochs: int
    beta: float
    curve: str = "constant"
    warmup_epochs: int = 0
    sharpness: float = 10.0

    def beta_at(self, epoch):
        """Beta for the ``epoch``-th epoch of this stage (0-based)."""
        if self.curve == "constant" or self.warmup_epochs == 0:
            return self.beta
        # Epoch e uses the value reached at the end of it, as osl-dynamics does.
        frac = min((epoch + 1) / self.warmup_epochs, 1.0)
        if self.curve == "linear":
            return self.beta * frac
        # tanh: 0.5 * tanh(s * (f - 1/2)) + 0.5 rescaled to reach 0 and 1 exactly.
        lo, hi = math.tanh(-0.5 * self.sharpness), math.tanh(0.5 * self.sharpness)
        return self.beta * (math.tanh(self.sharpness * (frac - 0.5)) - lo) / (hi - lo)


def make_stages(schedule, beta, max_epochs, warmup_epochs, sharpness):
    """Turn the estimator's schedule parameters into a list of stages.

    Parameters
    ----------
    schedule : str or sequence of tuples
        "default" (a "linear" stage of ``max_epochs - m`` epochs, then ``m =
        min(10, max_epochs // 4)`` epochs at ``beta / 20``), "constant",
        "linear", "tanh", a name in ``SCHEDULES``, or a list of
        stages each run as its own one-cycle: ``(n_epochs, beta)`` at a
        constant beta, or ``(n_epochs, beta, curve, warmup_epochs)`` with
        curve "linear" or "tanh" (the warm-up's sharpness is
        ``sharpness``).
    beta, max_epochs, warmup_epochs, sharpness
        Used by the single-stage curves; staged schedules carry their own.

    Returns
    -------
    list of Stage
    """
    if isinstance(schedule, str):
        if schedule == "default":
            sharpen = min(SHARPEN_EPOCHS, max_epochs // 4)
            stages = [Stage(max_epochs - sharpen, beta, "linear",
                            min(warmup_epochs, max_epochs - sharpen), sharpness)]
            if sharpen:
                stages.append(Stage(sharpen, beta * SHARPEN_FRACTION))
            return stages
        if schedule in SCHEDULES:
            return make_stages(SCHEDULES[schedule], beta, max_epochs, warmup_epochs,
                               sharpness)
        if schedule not in CURVES:
            raise ValueError(
                f"beta_schedule={schedule!r} is not a known schedule; use one of "
                f"{sorted(('default',) + CURVES + tuple(SCHEDULES))} or a list of "
                "(n_epochs, beta) stages."
            )
        return [Stage(max_epochs, beta, schedule, min(warmup_epochs, max_epochs),
                      sharpness)]
    stages = []
    for item in schedule:
        try:
            n_epochs, stage_beta, *curve = item
            curve, stage_warmup = curve or ("constant", 0)
        except (TypeError, ValueError):
            raise ValueError(
                "beta_schedule stages must be (n_epochs, beta) pairs or "
                f"(n_epochs, beta, curve, warmup_epochs); got {item!r}."
            ) from None
        if curve not in CURVES:
            raise ValueError(f"beta_schedule stage {item!r}: curve must be one of "
                             f"{CURVES}.")
        if (isinstance(stage_warmup, bool) or not isinstance(stage_warmup, Integral)
                or stage_warmup < 0):
            raise ValueError(f"beta_schedule stage {item!r}: warmup_epochs must be an "
                             "integer >= 0.")
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, Integral) or n_epochs < 1:
            raise ValueError(f"beta_schedule stage {item!r}: n_epochs must be an "
                             "integer >= 1.")
        if not (isinstance(stage_beta, Real) and math.isfinite(stage_beta)
                and stage_beta >= 0):
            raise ValueError(f"beta_schedule stage {item!r}: beta must be a finite "
                             "number >= 0.")
        stages.append(Stage(int(n_epochs), float(stage_beta), curve,
                            min(int(stage_warmup), int(n_epochs)), sharpness))
    if not stages:
        raise ValueError("beta_schedule must hold at least one (n_epochs, beta) stage.")
    return stages

