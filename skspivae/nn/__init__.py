"""PyTorch modules of SPIVAE. Plain torch: nothing here imports scikit-learn."""

from ._distributions import kl_normal, log_prob
from ._generation import generate
from ._modules import ConditioningDecoder, Encoder, SPIVAEModule, SPIVAEOutput, WaveNet

__all__ = [
    "ConditioningDecoder",
    "Encoder",
    "SPIVAEModule",
    "SPIVAEOutput",
    "WaveNet",
    "generate",
    "kl_normal",
    "log_prob",
]
