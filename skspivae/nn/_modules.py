"""The SPIVAE network: encoder, conditioning decoder and WaveNet.

Every tensor is laid out as (batch, channels, time). Trajectories enter as
displacements ``dx`` of shape (batch, 1, length).

The WaveNet uses unpadded ("valid") convolutions. It reads ``dx[:, :, :-1]``
and its last output column predicts ``dx[:, :, -1]``; all layers are aligned on
their right end, so a layer of length ``n`` covers the target times
``length - n, ..., length - 1``. The first ``receptive_field`` steps have no
full history and are not predicted: the output has ``length - receptive_field``
columns, for the targets ``dx[:, :, receptive_field:]``.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._distributions import kl_normal, log_prob
from ._gaussian import GaussianDecoder, gaussian_log_prob
from ._kernels import (
    _AvgMaxPool,
    _channels_last,
    _cl,
    _conv,
    _conv_relu,
    _StackWeights,
    _taps,
    _WaveNetStack,
)


def _init_relu(module):
    """Kaiming normal (fan_out, ReLU) weights and zero biases, as the reference."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Encoder(nn.Module):
    """Convolutional encoder: displacements -> (mu, logvar) of the latent.

    Parameters
    ----------
    n_components : int
        Number of latent neurons.
    channels : int
        Filters of each convolution.
    n_layers, kernel_size : int
        Number and width of the unpadded convolutions.
    pool_size : int
        Positions kept by each of the adaptive average and max poolings.
    hidden : tuple of int
        Sizes of the dense layers between the pooled features and the output.
    normalize : bool
        Divide each trajectory by the root mean square ``s`` of its own
        displacements before the convolutions, and add ``log(s)`` times a
        learned vector to the latent means. Across decades of D the scale
        otherwise hides the shape of the trajectory (which carries alpha)
        from the convolutions. The encoder is then scale-equivariant: a
        trajectory multiplied by ``c`` has its latent means moved by
        ``log(c)`` along that vector, and the same posterior variances.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import Encoder
    >>> mu, logvar = Encoder(n_components=3)(torch.randn(5, 1, 99))
    >>> mu.shape, logvar.shape
    (torch.Size([5, 3]), torch.Size([5, 3]))
    """

    def __init__(self, n_components=6, channels=16, n_layers=4, kernel_size=3,
                 pool_size=16, hidden=(200, 100), normalize=False):
        super().__init__()
        self.pool_size = pool_size
        self.normalize = normalize
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else channels, channels, kernel_size)
            for i in range(n_layers)
        )
        dims = [2 * channels * pool_size, *hidden, 2 * n_components]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.shrink = n_layers * (kernel_size - 1)
        _init_relu(self)
        # The last layer starts at zero log-variance and zero bias: a stable start.
        last = self.dense[-1]
        nn.init.zeros_(last.weight[n_components:])
        nn.init.zeros_(last.bias)
        if normalize:
            # The log-scale moves the latent means along one learned direction.
            self.scale = nn.Linear(1, n_components, bias=False)
            nn.init.zeros_(self.scale.weight)

    def forward(self, dx):
        """(batch, 1, length) -> mu, logvar, each (batch, n_components).

        A trajectory shorter than the convolutions need (``shrink + 1``) is
        preceded by zero displacements. The convolutions run as 2D ones of
        height 1 in channels-last memory: for 16 channels oneDNN is about 2x
        faster than in 1D (B, C, T).
        """
        if self.normalize:  # (batch, 1) log of each trajectory's RMS
            # A trajectory of zero displacements gets the smallest scale.
            log_rms = 0.5 * torch.log(dx.square().mean(dim=2).clamp_min(
                torch.finfo(dx.dtype).tiny))
            dx = dx * torch.exp(-log_rms)[:, :, None]
        if dx.shape[-1] <= self.shrink:
            dx = F.pad(dx, (self.shrink + 1 - dx.shape[-1], 0))
        # The first layer (one input channel) as a product of its taps and a
        # column of ones for the bias: a 2D input with one channel would
        # leave oneDNN in the slow NCHW layout.
        first, *rest = self.convs
        taps = _taps(dx, first.kernel_size[0], ones=True)
        # x @ W with W = w.T stored row-major: the weight gradient is then
        # taps.T @ grad, 3x faster than grad.T @ taps for these few columns.
        weight = torch.cat([first.weight[:, 0], first.bias[:, None]], dim=1).t().contiguous()
        h = F.relu(torch.mm(taps.view(-1, taps.shape[2]), weight), inplace=True)
        h = _cl(h.view(*taps.shape[:2], -1))
        for conv in rest:
            h = _conv_relu(h, conv.weight.unsqueeze(2), conv.bias)
        h = _AvgMaxPool.apply(h, self.pool_size)
        for layer in self.dense[:-1]:
            h = F.relu(layer(h))
        mu, logvar = self.dense[-1](h).chunk(2, dim=1)
        if self.normalize:
            mu = mu + self.scale(log_rms)
        return mu, logvar


class ConditioningDecoder(nn.Module):
    """Latent -> local conditioning c(t) of the WaveNet, for any length.

    Dense layers map z to ``channels x (2 * pool_size)`` values, which are
    linearly interpolated in time to ``length - n_layers * (kernel_size - 1)``
    and brought to ``length`` by transposed convolutions.

    Parameters
    ----------
    n_components : int, default=6
        Latent neurons.
    channels : int, default=16
        Channels of the transposed convolutions.
    n_layers : int, default=4
        Transposed convolutions.
    kernel_size : int, default=3
        Their kernel size.
    pool_size : int, default=16
        Half the number of time points the dense layers output.
    hidden : tuple of int, default=(100, 200)
        Sizes of the dense layers.
    out_channels : int, default=None
        Channels of c(t); ``n_components`` when None.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import ConditioningDecoder
    >>> ConditioningDecoder(n_components=3)(torch.randn(5, 3), 120).shape
    torch.Size([5, 3, 120])
    """

    def __init__(self, n_components=6, channels=16, n_layers=4, kernel_size=3,
                 pool_size=16, hidden=(100, 200), out_channels=None):
        super().__init__()
        out_channels = n_components if out_channels is None else out_channels
        self.channels = channels
        self.width = 2 * pool_size
        dims = [n_components, *hidden, channels * self.width]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.convs = nn.ModuleList(
            nn.ConvTranspose1d(channels, out_channels if i == n_layers - 1 else channels,
                               kernel_size)
            for i in range(n_layers)
        )
        self.grow = n_layers * (kernel_size - 1)
        _init_relu(self)

    def forward(self, z, length):
        """(batch, n_components), int -> c of shape (batch, out_channels, length)."""
        h = z
        for layer in self.dense:
            h = F.relu(layer(h))
        # Linear interpolation in time, done as bilinear on the (1, width) image
        # in channels-last memory (the same function), so that no layout copy
        # of the long output is needed.
        h = _channels_last(h.view(-1, self.channels, self.width))
        h = F.interpolate(h, size=(1, length - self.grow), mode="bilinear")
        for conv in self.convs:  # 2D channels-last, as in the encoder
            h = _conv_relu(h, conv.weight.unsqueeze(2), conv.bias, transposed=True)
        return h.squeeze(2)  # (batch, out, length), stored time-major


class BlockWeights(NamedTuple):
    """One gated residual block's weights as the plain layers of the paper.

    ``dilated`` (2r, r, k) and ``dilated_bias`` (2r,); ``cond`` (2r, cond,
    1), the conditioning projection, without bias; ``skip`` (s, r, 1),
    ``skip_bias`` (s,), ``res`` (r, r, 1), ``res_bias`` (r,). The block's
    output is ``(res(g) + bias + x) * res_scale`` and its skip contribution
    ``(skip(g) + bias) * skip_scale`` (see :meth:`WaveNet.blocks`).
    """

    dilated: torch.Tensor
    dilated_bias: torch.Tensor
    cond: torch.Tensor
    skip: torch.Tensor
    skip_bias: torch.Tensor
    res: torch.Tensor
    res_bias: torch.Tensor


class WaveNet(nn.Module):
    """Dilated causal convolutions with gated residual blocks and local conditioning.

    Each block: a dilated convolution to ``2 * residual_channels`` plus a 1x1
    projection of the conditioning, split into halves ``a, b``, gated as
    ``a * sigmoid(b)``, then 1x1 skip and residual convolutions; the residual is
    added to the block input and scaled by sqrt(1/2), the skips are summed and
    scaled by sqrt(1/n_blocks). The head is ReLU, 1x1, ReLU, 1x1.

    The function is the plain one of the reference, computed faster: input
    and causal convolutions fused into one kernel-2 convolution, and with the
    first block's dilated convolution into one product over kernel-4 taps of
    the displacements; all convolutions in channels-last memory; the biases
    folded so that they need no gradient pass of their own and the scales
    folded into the 1x1 weights; the blocks and the head as one autograd
    function with a hand-written backward (see
    ``docs/benchmarks_training.rst`` for the measurements).

    Parameters
    ----------
    cond_channels : int, default=6
        Channels of the conditioning c(t).
    residual_channels : int, default=16
        Channels of the residual stream.
    skip_channels : int, default=16
        Channels of the skip connections and the head.
    kernel_size : int, default=3
        Kernel size of the dilated convolutions.
    layer_size : int, default=4
        Blocks per stack, with dilations 1, 2, ..., 2^(layer_size - 1).
    stack_size : int, default=1
        Stacks of blocks.
    out_channels : int, default=3
        Outputs per step: the parameters of the output distribution.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import WaveNet
    >>> net = WaveNet(cond_channels=2)
    >>> net.receptive_field
    32
    >>> net(torch.randn(4, 1, 100), torch.zeros(4, 2, 100)).shape
    torch.Size([4, 3, 68])
    """

    def __init__(self, cond_channels=6, residual_channels=16, skip_channels=16,
                 kernel_size=3, layer_size=4, stack_size=1, out_channels=3):
        super().__init__()
        self.residual_channels = residual_channels
        self.skip_channels = skip_channels
        self.dilations = [2**i for i in range(layer_size)] * stack_size
        self.receptive_field = 2 + sum(d * (kernel_size - 1) for d in self.dilations)
        r, s = residual_channels, skip_channels
        self.input_conv = nn.Conv1d(1, r, 1)
        self.causal_conv = nn.Conv1d(r, r, 2)
        self.dilated = nn.ModuleList(
            nn.Conv1d(r, 2 * r, kernel_size, dilation=d) for d in self.dilations
        )
        n = len(self.dilations)
        # Conditioning projections of all blocks stacked: (n * 2r, cond, 1).
        self.cond = nn.Conv1d(cond_channels, n * 2 * r, 1, bias=False)
        # Skip and residual 1x1 convolutions of each block stacked: (s + r, r, 1).
        self.skip_res = nn.ModuleList(nn.Conv1d(r, s + r, 1) for _ in self.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(),
                                  nn.Conv1d(s, out_channels, 1))
        _init_relu(self)
        last = self.head[-1]
        nn.init.trunc_normal_(last.weight, std=1.0 / math.sqrt(last.in_channels),
                              a=-2.0 / math.sqrt(last.in_channels),
                              b=2.0 / math.sqrt(last.in_channels))

    @property
    def res_scale(self):
        """The residual sum's scale, sqrt(1/2)."""
        return math.sqrt(0.5)

    @property
    def skip_scale(self):
        """The skip sum's scale, sqrt(1/n_blocks)."""
        return math.sqrt(1.0 / len(self.dilations))

    def blocks(self):
        """Each block's weights as the plain layers, a :class:`BlockWeights`.

        The one place that knows how they are stored: the conditioning
        projections of all blocks stacked in one convolution, and each
        block's skip and residual convolutions in one. The forward pass,
        generation and the plain reference all read them from here.
        """
        r, s = self.residual_channels, self.skip_channels
        return [BlockWeights(conv.weight, conv.bias,
                             self.cond.weight[2 * r * i:2 * r * (i + 1)],
                             proj.weight[:s], proj.bias[:s],
                             proj.weight[s:], proj.bias[s:])
                for i, (conv, proj) in enumerate(zip(self.dilated, self.skip_res))]

    def _input_kernel(self):
        """The 1x1 input conv followed by the kernel-2 causal conv, as one conv."""
        w_in, b_in = self.input_conv.weight[:, :, 0], self.input_conv.bias  # (r, 1), (r,)
        w_c, b_c = self.causal_conv.weight, self.causal_conv.bias  # (r, r, 2), (r,)
        weight = torch.einsum("ock,ci->oik", w_c, w_in)  # (r, 1, 2)
        bias = b_c + torch.einsum("ock,c->o", w_c, b_in)
        return weight, bias

    def forward(self, dx, c):
        """dx (batch, 1, length), c (batch, cond, length) -> (batch, out, length - rf).

        Internally time-major, (batch, time, channels): every convolution,
        1x1 ones included, runs on the channels-last view of that memory,
        where oneDNN computes these narrow products 1.6-2.1x faster than a
        matrix product (see :func:`_conv`). The blocks and the
        head run as one autograd function, :class:`_WaveNetStack`.

        The biases cost no gradient pass of their own. Those of the input and
        residual convolutions only shift ``x`` by a constant per channel, so
        they are carried as an ``offset`` and folded into the next dilated
        convolution's bias; that bias rides on the conditioning projection, as
        the weight of a column of ones. The skip biases are summed once.
        """
        n_blocks = len(self.dilations)
        res_scale, skip_scale = self.res_scale, self.skip_scale
        blocks = self.blocks()
        c = c.transpose(1, 2)  # (batch, length, cond)
        c = torch.cat([c, c.new_ones(c.shape[:2] + (1,))], dim=2)
        weight, offset = self._input_kernel()  # (r, 1, k_in), (r,)
        # The first block's dilated convolution of the input convolution is
        # one convolution of dx with a longer kernel, a product over its taps.
        first, k_in = self.dilated[0], weight.shape[-1]
        d0 = first.dilation[0]
        span = d0 * (first.kernel_size[0] - 1) + k_in
        first_weight = sum(
            F.pad(first.weight[:, :, k] @ weight[:, 0], (k * d0, span - k * d0 - k_in))
            for k in range(first.kernel_size[0]))  # (2r, span)
        taps = dx[:, 0, :-1].unfold(1, span, 1)  # (batch, m0, span), a view
        # The input convolution itself is read only by the first residual:
        # x (batch, m0, r) over the first block's columns, without its bias,
        # which is ``offset``, and already times the residual scale.
        m0 = taps.shape[1]
        x = _conv(_taps(dx[:, :, -(m0 + k_in):-1], k_in),
                  weight[:, 0, :, None] * res_scale)
        dilated, cond, skip, res = [first_weight[:, :, None]], [], [], []
        for i, block in enumerate(blocks):
            # The dilated conv of x + offset is that of x plus this bias.
            bias = block.dilated_bias + block.dilated.sum(2) @ offset
            if i > 0:
                dilated.append(block.dilated)
            cond.append(torch.cat([block.cond, bias[:, None, None]], dim=1))
            # The scales sqrt(1/n_blocks) and sqrt(1/2) ride in the weights.
            skip.append(block.skip * skip_scale)
            if i < n_blocks - 1:  # the last block's residual is never read
                res.append(block.res * res_scale)
                offset = res_scale * (offset + block.res_bias)
        weights = _StackWeights(
            dilated, cond, skip, res, skip_scale * sum(b.skip_bias for b in blocks),
            self.head[1].weight, self.head[1].bias, self.head[3].weight,
            self.head[3].bias)
        out = _WaveNetStack.apply(tuple(self.dilations), res_scale,
                                  torch.is_grad_enabled(), taps, x, c, *weights.flat())
        return out.transpose(1, 2)


class SPIVAEModule(nn.Module):
    """The full SPIVAE: encoder, reparametrised latent, decoder.

    Two decoders are available. ``decoder="wavenet"`` is the paper's: a
    conditioning decoder maps z to c(t), and a WaveNet predicts each
    displacement from the ``receptive_field`` previous ones and c(t); the
    first ``receptive_field`` displacements are not scored. The defaults of
    this module are the paper's model (262,885 parameters).
    ``decoder="gaussian"`` is :class:`GaussianDecoder`: the exact predictor
    of a Gaussian process whose correlations and scale come from z alone,
    which scores every displacement (see :mod:`skspivae.nn._gaussian`).

    Parameters
    ----------
    n_components : int
        Number of latent neurons.
    encoder_channels, encoder_layers, kernel_size, pool_size : int
        Encoder convolutions (mirrored by the conditioning decoder).
    encoder_hidden, decoder_hidden : tuple of int
        Dense layer sizes of the encoder and of the decoder.
    residual_channels, skip_channels, wavenet_kernel_size, layer_size, stack_size : int
        WaveNet sizes; dilations are ``1, 2, ..., 2**(layer_size-1)``
        repeated ``stack_size`` times.
    n_mixtures : int
        Normal components of the WaveNet's output distribution.
    decoder : {"wavenet", "gaussian"}
        Which decoder.
    memory : int
        Lags of the Gaussian decoder's partial autocorrelations.
    normalize_encoder : bool
        Whether the encoder sees each trajectory divided by its own scale
        (see :class:`Encoder`).

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import SPIVAEModule
    >>> module = SPIVAEModule()
    >>> sum(p.numel() for p in module.parameters())
    262885
    >>> module.receptive_field
    32
    >>> out = module(torch.zeros(2, 1, 99))
    >>> out.params.shape, out.mu.shape
    (torch.Size([2, 3, 67]), torch.Size([2, 6]))
    >>> gaussian = SPIVAEModule(decoder="gaussian", memory=64, normalize_encoder=True)
    >>> kappa, log_scale = gaussian(torch.randn(2, 1, 99)).params
    >>> kappa.shape, log_scale.shape
    (torch.Size([2, 64]), torch.Size([2, 2]))
    """

    def __init__(self, n_components=6, encoder_channels=16, encoder_layers=4,
                 kernel_size=3, pool_size=16, encoder_hidden=(200, 100),
                 decoder_hidden=(100, 200), residual_channels=16, skip_channels=16,
                 wavenet_kernel_size=3, layer_size=4, stack_size=1, n_mixtures=1,
                 decoder="wavenet", memory=256, normalize_encoder=False):
        super().__init__()
        if decoder not in ("wavenet", "gaussian"):
            raise ValueError(f"decoder must be 'wavenet' or 'gaussian'; got {decoder!r}.")
        self.n_components = n_components
        self.n_mixtures = n_mixtures
        self.decoder_type = decoder
        self.encoder = Encoder(n_components, encoder_channels, encoder_layers,
                               kernel_size, pool_size, tuple(encoder_hidden),
                               normalize=normalize_encoder)
        if decoder == "gaussian":
            self.decoder = GaussianDecoder(n_components, tuple(decoder_hidden), memory)
            return
        self.decoder = ConditioningDecoder(n_components, encoder_channels,
                                           encoder_layers, kernel_size, pool_size,
                                           tuple(decoder_hidden))
        self.wavenet = WaveNet(n_components, residual_channels, skip_channels,
                               wavenet_kernel_size, layer_size, stack_size,
                               3 * n_mixtures)

    @property
    def receptive_field(self):
        """Past displacements one prediction depends on."""
        if self.decoder_type == "gaussian":
            return self.decoder.memory
        return self.wavenet.receptive_field

    @property
    def min_length(self):
        """Fewest displacements a trajectory needs: one. Shorter ones than the
        networks need are preceded by zero displacements (see
        :meth:`n_scored`)."""
        return 1

    def n_scored(self, length):
        """How many of a trajectory's ``length`` displacements are scored.

        The Gaussian decoder scores all of them. The WaveNet does not score
        the first ``receptive_field``, which have no full history; a
        trajectory of ``receptive_field`` displacements or fewer is preceded
        by ``receptive_field`` zero displacements (the history generation
        starts from), and all its displacements are scored.
        """
        if self.decoder_type == "gaussian" or length <= self.receptive_field:
            return length
        return length - self.receptive_field

    def _decoder_input(self, dx):
        """``dx`` for the WaveNet: preceded by zeros when it is too short."""
        if self.decoder_type == "gaussian" or dx.shape[-1] > self.receptive_field:
            return dx
        pad = max(self.receptive_field, self.decoder.grow + 1 - dx.shape[-1])
        return F.pad(dx, (pad, 0))

    def forward(self, dx, sample_latent=True, generator=None, noise=None):
        """Encode, draw z, decode. Returns an :class:`SPIVAEOutput`.

        ``z = mu + exp(logvar / 2) * noise`` where ``noise`` (batch,
        n_components) is standard normal: drawn from ``generator`` when not
        given. With ``sample_latent=False``, ``z = mu``.
        """
        mu, logvar = self.encoder(dx)
        z = mu
        if sample_latent:
            if noise is None:
                noise = torch.randn(mu.shape, generator=generator, device=mu.device,
                                    dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * noise
        return SPIVAEOutput(self.decode(dx, z), mu, logvar)

    def decode(self, dx, z):
        """The decoder's output for displacements ``dx`` given latents ``z``:
        the WaveNet head's parameters (batch, 3 * n_mixtures,
        n_scored(length)), or the Gaussian decoder's ``(kappa, log_scale)``."""
        if self.decoder_type == "gaussian":
            return self.decoder(z)
        dx = self._decoder_input(dx)
        return self.wavenet(dx, self.decoder(z, dx.shape[-1]))

    def log_prob(self, dx, params):
        """Log-density (batch, n_scored(length)) of each scored displacement
        of ``dx`` (batch, 1, length) given the decoder's output ``params``."""
        if self.decoder_type == "gaussian":
            return gaussian_log_prob(dx[:, 0], *params)
        n = self.n_scored(dx.shape[-1])
        return log_prob(params, dx[:, 0, dx.shape[-1] - n:], self.n_mixtures)

    def nll(self, dx, z):
        """Negative log-likelihood per scored step of each trajectory given
        its latent ``z`` (batch, n_components): (batch,)."""
        return -self.log_prob(dx, self.decode(dx, z)).mean(dim=1)

    def losses(self, dx, sample_latent=True, generator=None, noise=None):
        """Per-trajectory mean NLL over scored steps and KL per neuron.

        Returns
        -------
        nll : Tensor of shape (batch,)
            Negative log-likelihood averaged over the scored steps.
        kl : Tensor of shape (batch, n_components)
        """
        out = self(dx, sample_latent, generator, noise)
        nll = -self.log_prob(dx, out.params).mean(dim=1)
        return nll, kl_normal(out.mu, out.logvar)


class SPIVAEOutput(tuple):
    """What :class:`SPIVAEModule` returns: ``(params, mu, logvar)`` with names.

    ``params`` is the decoder's output (:meth:`SPIVAEModule.decode`): for
    the WaveNet, (batch, 3 * n_mixtures, length - receptive_field), the
    output distribution's parameters for the scored steps; ``mu`` and
    ``logvar`` (batch, n_components) the latent distribution.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import SPIVAEModule
    >>> out = SPIVAEModule(n_components=2)(torch.randn(3, 1, 40))
    >>> params, mu, logvar = out
    >>> out.params is params, tuple(out.mu.shape)
    (True, (3, 2))
    """

    __slots__ = ()

    def __new__(cls, params, mu, logvar):
        return super().__new__(cls, (params, mu, logvar))

    params = property(lambda self: self[0])
    mu = property(lambda self: self[1])
    logvar = property(lambda self: self[2])
