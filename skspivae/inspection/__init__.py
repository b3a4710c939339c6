"""Numbers that explain a fitted SPIVAE: neurons, relations, trajectory statistics."""

from ._trajectories import ensemble_msd, fit_anomalous_exponent, time_averaged_msd

__all__ = ["ensemble_msd", "fit_anomalous_exponent", "time_averaged_msd"]
