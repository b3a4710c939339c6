"""Numbers that explain a fitted SPIVAE: neurons, relations, trajectory statistics."""

from ._divergence import DVDivergence, mutual_information
from ._generation import GeneratedMSD, generated_msd
from ._likelihood import fbm_log_likelihood, fbm_mle, sbm_log_likelihood, sbm_mle
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
    "GeneratedMSD",
    "generated_msd",
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
    "fbm_log_likelihood",
    "fbm_mle",
    "sbm_log_likelihood",
    "sbm_mle",
    "time_averaged_msd",
]
