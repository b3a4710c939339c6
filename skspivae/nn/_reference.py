"""A plain PyTorch transcription of the SPIVAE reference model (private).

This is the paper's model (Fernandez-Fernandez et al., arXiv:2307.11608, and
the user guide's description) written the obvious way: one
``nn.Conv1d`` per box of the diagram and no fusion. It is kept as a yardstick:
the tests check that :class:`skspivae.nn.SPIVAEModule` computes the same
function with the same weights, and ``benchmarks/bench_training.py`` times it
against the optimised module.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class ReferenceSPIVAE(nn.Module):
    """SPIVAE with the WaveNet decoder written with one layer per box.

    Takes the architecture parameters of :class:`SPIVAEModule` (with
    ``decoder="wavenet"``) and has its weights once :func:`copy_weights`
    has copied them; ``forward`` returns ``(params, mu, logvar)`` at
    ``z = mu``, for the scored steps of a trajectory long enough to have
    some.
    """

    def __init__(self, n_components=6, encoder_channels=16, encoder_layers=4,
                 kernel_size=3, pool_size=16, encoder_hidden=(200, 100),
                 decoder_hidden=(100, 200), residual_channels=16, skip_channels=16,
                 wavenet_kernel_size=3, layer_size=4, stack_size=1, n_mixtures=1,
                 normalize_encoder=False):
        super().__init__()
        c, r, s = encoder_channels, residual_channels, skip_channels
        self.n_components, self.n_mixtures = n_components, n_mixtures
        self.channels, self.pool_size = c, pool_size
        self.normalize_encoder = normalize_encoder
        self.encoder_convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else c, c, kernel_size) for i in range(encoder_layers))
        dims = [2 * c * pool_size, *encoder_hidden, 2 * n_components]
        self.encoder_dense = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        if normalize_encoder:
            self.encoder_scale = nn.Linear(1, n_components, bias=False)
        ddims = [n_components, *decoder_hidden, 2 * c * pool_size]
        self.decoder_dense = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(ddims[:-1], ddims[1:]))
        self.decoder_convs = nn.ModuleList(
            nn.ConvTranspose1d(c, n_components if i == encoder_layers - 1 else c,
                               kernel_size)
            for i in range(encoder_layers))
        self.grow = encoder_layers * (kernel_size - 1)
        self.input_conv = nn.Conv1d(1, r, 1)
        self.causal_conv = nn.Conv1d(r, r, 2)
        self.dilations = [2**i for i in range(layer_size)] * stack_size
        self.dilated = nn.ModuleList(
            nn.Conv1d(r, 2 * r, wavenet_kernel_size, dilation=d) for d in self.dilations)
        self.cond = nn.ModuleList(
            nn.Conv1d(n_components, 2 * r, 1, bias=False) for _ in self.dilations)
        self.skip = nn.ModuleList(nn.Conv1d(r, s, 1) for _ in self.dilations)
        self.res = nn.ModuleList(nn.Conv1d(r, r, 1) for _ in self.dilations)
        self.head1 = nn.Conv1d(s, s, 1)
        self.head2 = nn.Conv1d(s, 3 * n_mixtures, 1)
        self.receptive_field = 2 + sum(d * (wavenet_kernel_size - 1)
                                       for d in self.dilations)

    def forward(self, dx):
        """dx: (batch, 1, length) -> (params (batch, 3K, length - rf), mu, logvar)."""
        h = dx
        if self.normalize_encoder:
            log_rms = 0.5 * torch.log(dx.square().mean(dim=2))
            h = dx / torch.exp(log_rms)[:, :, None]
        for conv in self.encoder_convs:
            h = F.relu(conv(h))
        h = torch.cat(
            [F.adaptive_avg_pool1d(h, self.pool_size),
             F.adaptive_max_pool1d(h, self.pool_size)], dim=1
        ).flatten(1)
        for i, layer in enumerate(self.encoder_dense):
            h = layer(h)
            if i < len(self.encoder_dense) - 1:
                h = F.relu(h)
        mu, logvar = h.chunk(2, dim=1)
        if self.normalize_encoder:
            mu = mu + self.encoder_scale(log_rms)
        z = mu  # deterministic for the comparison
        length = dx.shape[-1]
        c = z
        for layer in self.decoder_dense:
            c = F.relu(layer(c))
        c = c.view(-1, self.channels, 2 * self.pool_size)
        c = F.interpolate(c, size=length - self.grow, mode="linear")
        for conv in self.decoder_convs:
            c = F.relu(conv(c))
        x = self.causal_conv(self.input_conv(dx[..., :-1]))
        skips = 0
        for conv, cond, skip, res in zip(self.dilated, self.cond, self.skip, self.res):
            y = conv(x)
            y = y + cond(c[..., length - y.shape[-1]:])
            a, b = y.chunk(2, dim=1)
            g = a * torch.sigmoid(b)
            skips = skips + skip(g)[..., -(length - self.receptive_field):]
            x = (res(g) + x[..., -y.shape[-1]:]) * math.sqrt(0.5)
        out = F.relu(skips * math.sqrt(1.0 / len(self.dilations)))
        out = self.head2(F.relu(self.head1(out)))
        return out, mu, logvar


@torch.no_grad()
def copy_weights(module, reference):
    """Copy the weights of a :class:`SPIVAEModule` into a :class:`ReferenceSPIVAE`."""
    pairs = [
        (reference.encoder_convs, module.encoder.convs),
        (reference.encoder_dense, module.encoder.dense),
        (reference.decoder_dense, module.decoder.dense),
        (reference.decoder_convs, module.decoder.convs),
        (reference.dilated, module.wavenet.dilated),
    ]
    for ref_layers, layers in pairs:
        for ref, layer in zip(ref_layers, layers):
            ref.load_state_dict(layer.state_dict())
    wavenet = module.wavenet
    reference.input_conv.load_state_dict(wavenet.input_conv.state_dict())
    reference.causal_conv.load_state_dict(wavenet.causal_conv.state_dict())
    for block, cond, skip, res in zip(wavenet.blocks(), reference.cond, reference.skip,
                                      reference.res):
        cond.weight.copy_(block.cond)
        skip.weight.copy_(block.skip)
        skip.bias.copy_(block.skip_bias)
        res.weight.copy_(block.res)
        res.bias.copy_(block.res_bias)
    reference.head1.load_state_dict(wavenet.head[1].state_dict())
    reference.head2.load_state_dict(wavenet.head[3].state_dict())
    if reference.normalize_encoder:
        reference.encoder_scale.load_state_dict(module.encoder.scale.state_dict())
