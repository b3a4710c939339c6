"""PyTorch modules of SPIVAE. Plain torch: nothing here imports scikit-learn."""

from ._distributions import kl_normal, log_prob
from ._gaussian import (
    GaussianDecoder,
    gaussian_autocorrelation,
    gaussian_covariance,
    gaussian_log_prob,
    gaussian_sample,
    lag_knots,
    levinson_durbin,
)
from ._generation import generate
from ._modules import ConditioningDecoder, Encoder, SPIVAEModule, SPIVAEOutput, WaveNet

__all__ = [
    "ConditioningDecoder",
    "Encoder",
    "GaussianDecoder",
    "SPIVAEModule",
    "SPIVAEOutput",
    "WaveNet",
    "gaussian_autocorrelation",
    "gaussian_covariance",
    "gaussian_log_prob",
    "gaussian_sample",
    "generate",
    "lag_knots",
    "levinson_durbin",
    "kl_normal",
    "log_prob",
]
