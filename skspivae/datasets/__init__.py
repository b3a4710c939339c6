"""Exact, vectorized, seeded simulators of fBM and SBM trajectories.

Functions simulate trajectories (:func:`simulate_fbm`, :func:`simulate_sbm`)
or labelled data sets on the SPIVAE paper's parameter grid (:func:`make_fbm`,
:func:`make_sbm`); transformers do the same inside a scikit-learn pipeline
(:class:`FBMSimulator`, :class:`SBMSimulator`) and move between positions and
increments (:class:`Increments`).
"""

from ._simulators import (
    fgn_autocovariance,
    make_fbm,
    make_sbm,
    simulate_fbm,
    simulate_sbm,
)
from ._transformers import FBMSimulator, Increments, SBMSimulator

__all__ = [
    "FBMSimulator",
    "Increments",
    "SBMSimulator",
    "fgn_autocovariance",
    "make_fbm",
    "make_sbm",
    "simulate_fbm",
    "simulate_sbm",
]
