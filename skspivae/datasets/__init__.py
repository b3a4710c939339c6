"""Exact, vectorized, seeded simulators of fBM and SBM trajectories."""

__all__ = []
