"""skspivae: SPIVAE, a beta-VAE for 1D diffusion trajectories, in scikit-learn style.

SPIVAE (Fernandez-Fernandez et al., arXiv:2307.11608) compresses the
displacements of a trajectory into a few probabilistic latent neurons with a
convolutional encoder and regenerates them with an autoregressive decoder
(by default the exact predictor of a Gaussian process, or the paper's
WaveNet). Annealing the KL weight ``beta`` upward leaves alive only the
neurons the process needs.
"""

from . import callbacks, datasets, inspection, nn, plotting
from ._estimator import SPIVAE
from ._training import NonFiniteLossError

__version__ = "0.1.0.dev0"

__all__ = [
    "NonFiniteLossError",
    "SPIVAE",
    "__version__",
    "callbacks",
    "datasets",
    "inspection",
    "nn",
    "plotting",
]
