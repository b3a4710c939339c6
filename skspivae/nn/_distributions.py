"""Output distribution of the WaveNet: a mixture of Normals per time step.

The head emits ``3 * n_mixtures`` channels per step, in this order: mixture
logits, means and log-scales. With ``n_mixtures=1`` the logits are ignored and
the distribution is one Normal, as in the paper.
"""

import math

import torch
import torch.nn.functional as F

MIN_LOG_SCALE = -12.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def split_params(params, n_mixtures):
    """Split head output (batch, 3K, time) into logits, means, log-scales.

    Log-scales are clamped below at ``MIN_LOG_SCALE``.
    """
    logits, means, log_scales = params.split(n_mixtures, dim=1)
    return logits, means, log_scales.clamp(min=MIN_LOG_SCALE)


def log_prob(params, target, n_mixtures=1):
    """Log-density of ``target`` (batch, time) under the head's mixture.

    Parameters
    ----------
    params : Tensor of shape (batch, 3 * n_mixtures, time)
    target : Tensor of shape (batch, time)
    n_mixtures : int

    Returns
    -------
    Tensor of shape (batch, time)

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import log_prob
    >>> params = torch.zeros(1, 3, 2)  # mean 0, log-scale 0: standard Normal
    >>> log_prob(params, torch.zeros(1, 2))
    tensor([[-0.9189, -0.9189]])
    """
    logits, means, log_scales = split_params(params, n_mixtures)
    z = (target.unsqueeze(1) - means) * torch.exp(-log_scales)
    component = -0.5 * z * z - log_scales - _HALF_LOG_2PI
    if n_mixtures == 1:
        return component[:, 0]
    return torch.logsumexp(F.log_softmax(logits, dim=1) + component, dim=1)


def sample(params, n_mixtures=1, generator=None):
    """Draw one value per step from the head's mixture: (batch, 3K, t) -> (batch, t)."""
    logits, means, log_scales = split_params(params, n_mixtures)
    noise = torch.randn(means[:, 0].shape, generator=generator,
                        device=params.device, dtype=params.dtype)
    if n_mixtures == 1:
        return means[:, 0] + torch.exp(log_scales[:, 0]) * noise
    probs = F.softmax(logits, dim=1).movedim(1, -1)  # (batch, time, K)
    flat = probs.reshape(-1, n_mixtures)
    k = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
    k = k.unsqueeze(1)
    mean = means.gather(1, k)[:, 0]
    scale = torch.exp(log_scales.gather(1, k)[:, 0])
    return mean + scale * noise


def kl_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent neuron, same shape as ``mu``.

    Parameters
    ----------
    mu, logvar : Tensor
        Means and log-variances of the posterior, of the same shape.

    Returns
    -------
    Tensor
        The KL divergence in nats, element by element.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import kl_normal
    >>> kl_normal(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
    tensor([0.0000, 0.5000])
    """
    return 0.5 * (mu * mu + torch.exp(logvar) - logvar - 1.0)
