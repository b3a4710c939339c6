"""Numbers that explain a fitted SPIVAE: neurons, relations, trajectory statistics."""

from ._divergence import DVDivergence, mutual_information
from ._neurons import (
    LatentRelations,
    NeuronSummary,
    ParameterGroups,
    ReadoutResult,
    group_by_parameters,
    latent_parameter_relations,
    latent_readout,
    loss_per_parameter,
    neuron_summary,
    neuron_summary_from_moments,
    parameter_quantities,
)
from ._trajectories import ensemble_msd, fit_anomalous_exponent, time_averaged_msd

__all__ = [
    "DVDivergence",
    "mutual_information",
    "LatentRelations",
    "NeuronSummary",
    "ParameterGroups",
    "ReadoutResult",
    "group_by_parameters",
    "latent_parameter_relations",
    "latent_readout",
    "loss_per_parameter",
    "neuron_summary",
    "neuron_summary_from_moments",
    "parameter_quantities",
    "ensemble_msd",
    "fit_anomalous_exponent",
    "time_averaged_msd",
]
