"""Autoregressive generation of displacements with a SPIVAE module.

Plain torch, no scikit-learn. With the Gaussian decoder, displacements are
drawn from the first one on, each from its exact conditional given the
previous ones (:func:`~skspivae.nn._gaussian.gaussian_sample`), as the model
was trained: there is no warm-up. With the WaveNet, generation follows the
paper: a history of ``receptive_field`` zero displacements, then each new
displacement is drawn from the WaveNet's mixture given the history and
appended.

Time alignment is the one of training (see :mod:`skspivae.nn._modules`): for a
sequence of ``length = receptive_field + n_steps`` displacements, the
conditioning ``c`` is decoded for ``length`` and the prediction of ``dx[t]``
reads ``c[:, :, t]``. The first ``receptive_field`` displacements are the
warm-up zeros, the last ``n_steps`` are generated, so a generated step plays the
part of a scored step of a training trajectory of ``length`` displacements.

Two generators compute the same function:

- :func:`generate` caches the past activations of every layer ("fast
  WaveNet", Paine et al. 2016): each step evaluates one time column per layer,
  reading each dilated layer's past inputs from a small ring buffer. Cost
  ``O(n_steps x layers)``, independent of the receptive field.
- :func:`_generate_full_window` runs the whole WaveNet on the last
  ``receptive_field + 1`` displacements at every step and keeps the last
  output column, as the research code does: ``O(n_steps x receptive_field)``.
  It is the yardstick of the tests and the benchmark.

Both draw one call of :func:`~skspivae.nn._distributions.sample` per step on the
same batch, so with the same generator state they give the same samples.
"""

import math

import torch
import torch.nn.functional as F

from ._distributions import sample
from ._gaussian import gaussian_sample

__all__ = ["generate"]


@torch.no_grad()
def generate(module, z, n_steps, *, generator=None, batch_size=1024):
    """Generate displacements autoregressively with cached layer activations.

    Parameters
    ----------
    module : SPIVAEModule
        The model; its conditioning decoder and WaveNet are used.
    z : Tensor of shape (n_samples, n_components)
        One latent per trajectory, on the module's device.
    n_steps : int
        Displacements to generate per trajectory (at least 1).
    generator : torch.Generator or None, default=None
        Source of the sampling noise, on the module's device.
    batch_size : int, default=1024
        Trajectories generated at once; memory grows linearly with it.

    Returns
    -------
    Tensor of shape (n_samples, n_steps)
        The generated displacements in the network's units, after the
        ``receptive_field`` warm-up zeros (which are not returned).

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import SPIVAEModule, generate
    >>> module = SPIVAEModule(n_components=2)
    >>> generate(module, torch.zeros(3, 2), 50).shape
    torch.Size([3, 50])
    """
    return _in_batches(_cached_batch, module, z, n_steps, generator, batch_size)


@torch.no_grad()
def _generate_full_window(module, z, n_steps, *, generator=None, batch_size=1024):
    """As :func:`generate`, recomputing the WaveNet on the full window each step."""
    return _in_batches(_full_window_batch, module, z, n_steps, generator, batch_size)


def _in_batches(batch_fn, module, z, n_steps, generator, batch_size):
    """Run ``batch_fn(wavenet, c, n_mixtures, generator)`` over slices of ``z``;
    for the Gaussian decoder, its exact sampler."""
    param = next(module.parameters())
    z = torch.as_tensor(z, device=param.device, dtype=param.dtype)
    out = torch.empty((z.shape[0], n_steps), device=param.device, dtype=param.dtype)
    for i in range(0, z.shape[0], batch_size):
        if module.decoder_type == "gaussian":
            out[i:i + batch_size] = gaussian_sample(*module.decoder(z[i:i + batch_size]),
                                                    n_steps, generator)
            continue
        c = _conditioning(module, z[i:i + batch_size], module.receptive_field + n_steps)
        out[i:i + batch_size] = batch_fn(module.wavenet, c, module.n_mixtures,
                                         generator)
    return out


def _conditioning(module, z, length):
    """Conditioning c(t) of shape (batch, cond, length) decoded from ``z``.

    A length shorter than the decoder's transposed convolutions need (only
    with tiny receptive fields) is decoded longer and its last columns kept.
    """
    n = max(length, module.decoder.grow + 1)
    return module.decoder(z, n)[:, :, n - length:]


def _full_window_batch(wavenet, c, n_mixtures, generator):
    """(batch, cond, length) -> generated (batch, length - rf), O(length x rf)."""
    rf = wavenet.receptive_field
    batch, _, length = c.shape
    dx = c.new_zeros((batch, 1, length))  # warm-up zeros, then the samples
    for t in range(rf, length):
        params = wavenet(dx[:, :, t - rf:t + 1], c[:, :, t - rf:t + 1])  # (B, 3K, 1)
        dx[:, :, t] = sample(params, n_mixtures, generator)
    return dx[:, 0, rf:]


class _Block:
    """One gated residual block evaluated one time column at a time.

    Its past inputs live in a ring buffer of the last ``(k - 1) * dilation``
    columns, time-major ``(span, batch, r)``: the column of time ``t`` sits in
    slot ``t % span``. The kernel's taps are read from it as contiguous
    (batch, r) slices and each multiplies its own (r, 2r) weight.
    """

    def __init__(self, weights, dilation, skip_scale):
        self.r = weights.dilated.shape[1]
        k, self.dilation = weights.dilated.shape[2], dilation
        self.span = (k - 1) * self.dilation
        # w_taps[j] multiplies the input at t - j * dilation: (k, r, 2r).
        self.w_taps = weights.dilated.flip(2).permute(2, 1, 0).contiguous()
        self.w_skip = weights.skip[:, :, 0].t() * skip_scale
        self.b_skip = weights.skip_bias * skip_scale
        self.w_res = weights.res[:, :, 0].t()
        self.b_res = weights.res_bias
        self.buffer = None

    def fill(self, history):
        """Load the past inputs ``history`` (batch, time, r), the last = time t-1."""
        batch, n_time, r = history.shape
        self.buffer = history.new_zeros((self.span, batch, r))
        past = min(self.span, n_time)
        for time in range(n_time - past, n_time):
            self.buffer[time % self.span] = history[:, time]

    def step(self, x, t, cond, skips, last):
        """Input column ``x`` (batch, r) at time ``t`` -> (residual out, skips).

        ``cond`` is this block's conditioning projection plus the dilated
        convolution's bias, (batch, 2r); ``skips`` the sum so far, to which
        this block's skip (without its bias) is added.
        """
        y = torch.addmm(cond, x, self.w_taps[0])
        for j in range(1, self.w_taps.shape[0]):
            y.addmm_(self.buffer[(t - j * self.dilation) % self.span], self.w_taps[j])
        self.buffer[t % self.span] = x  # overwrites time t - span, read above
        g = torch.sigmoid(y[:, self.r:]).mul_(y[:, :self.r])
        skips = torch.addmm(skips, g, self.w_skip)
        if last:  # the last block's residual output is never read
            return None, skips
        res = torch.addmm(x + self.b_res, g, self.w_res, beta=math.sqrt(0.5),
                          alpha=math.sqrt(0.5))
        return res, skips


def _cached_batch(wavenet, c, n_mixtures, generator):
    """(batch, cond, length) -> generated (batch, length - rf), O(length)."""
    rf = wavenet.receptive_field
    batch, _, length = c.shape
    r = wavenet.residual_channels
    n_blocks = len(wavenet.dilated)
    blocks = [_Block(weights, d, wavenet.skip_scale)
              for weights, d in zip(wavenet.blocks(), wavenet.dilations, strict=True)]
    for block, history in zip(blocks, _warm_up(wavenet, c[:, :, :rf]), strict=True):
        block.fill(history)

    w_in, b_in = wavenet._input_kernel()
    w_in = w_in[:, 0, :].t()  # (2, r): taps dx[t-2], dx[t-1]
    # All blocks' conditioning projections and dilated biases, one product a step.
    w_cond = wavenet.cond.weight[:, :, 0].t()  # (cond, n_blocks * 2r)
    b_cond = torch.cat([conv.bias for conv in wavenet.dilated])
    c_steps = c.permute(2, 0, 1).contiguous()  # (length, batch, cond)
    head1, head2 = wavenet.head[1], wavenet.head[3]
    w1, w2 = head1.weight[:, :, 0].t(), head2.weight[:, :, 0].t()

    skip_bias = sum(block.b_skip for block in blocks)  # all blocks' skip biases
    dx = c.new_zeros((batch, length))  # warm-up zeros, then the samples
    for t in range(rf, length):
        x = torch.addmm(b_in, dx[:, t - 2:t], w_in)  # (B, r)
        cond = torch.addmm(b_cond, c_steps[t], w_cond)  # (B, n_blocks * 2r)
        skips = skip_bias
        for i, block in enumerate(blocks):
            x, skips = block.step(x, t, cond[:, 2 * r * i:2 * r * (i + 1)], skips,
                                  last=i == n_blocks - 1)
        h = torch.addmm(head1.bias, skips.relu_(), w1).relu_()
        params = torch.addmm(head2.bias, h, w2)  # (B, 3K)
        dx[:, t] = sample(params.unsqueeze(-1), n_mixtures, generator)[:, 0]
    return dx[:, rf:]


def _warm_up(wavenet, c):
    """Inputs of every block over the zero history, each (batch, rf, r).

    ``c`` is the conditioning of the warm-up times (batch, cond, rf). Times
    before 0 are zeros (left padding); the activations they touch never reach
    a prediction at time >= rf, exactly as in the full-window computation.
    Time-major products as in :meth:`WaveNet.forward`, so that the arithmetic
    (TF32 on CUDA convolutions, say) is the same as the full-window path's.
    """
    batch, _, rf = c.shape
    _, b_in = wavenet._input_kernel()
    x = b_in.expand(batch, rf, wavenet.residual_channels)  # zero displacements
    c = c.transpose(1, 2)  # (batch, rf, cond)
    inputs = []
    for w, dilation in zip(wavenet.blocks(), wavenet.dilations, strict=True):
        inputs.append(x)
        pad = dilation * (w.dilated.shape[2] - 1)
        y = _conv_time_major(F.pad(x, (0, 0, pad, 0)), w.dilated, w.dilated_bias,
                             dilation, extra=c, extra_weight=w.cond[:, :, 0])
        a, b = y.chunk(2, dim=2)
        res = F.linear(a * torch.sigmoid(b), w.res[:, :, 0], w.res_bias)
        x = (res + x) * wavenet.res_scale
    return inputs


def _conv_time_major(x, weight, bias, dilation=1, extra=None, extra_weight=None):
    """Unpadded 1D convolution of time-major ``x`` (batch, time, in) as one product.

    ``weight`` is a Conv1d weight (out, in, k). Optional ``extra`` columns
    (batch, time_extra, e) right-aligned with the output are multiplied by
    ``extra_weight`` (out, e) in the same product.
    """
    out_ch, in_ch, k = weight.shape
    n = x.shape[1] - dilation * (k - 1)
    taps = [x[:, j * dilation:j * dilation + n] for j in range(k)]
    w = weight.permute(0, 2, 1).reshape(out_ch, k * in_ch)
    if extra is not None:
        taps.append(extra[:, extra.shape[1] - n:])
        w = torch.cat([w, extra_weight], dim=1)
    h = taps[0] if len(taps) == 1 else torch.cat(taps, dim=2)
    # x @ W with W = w.T stored row-major, rather than F.linear: the weight
    # gradient is then h.T @ grad, 3x faster than grad.T @ h for these few
    # input columns (torch keeps a gradient in its weight's layout).
    h2d, w = h.reshape(-1, h.shape[-1]), w.t().contiguous()
    out = torch.mm(h2d, w) if bias is None else torch.addmm(bias, h2d, w)
    return out.view(*h.shape[:-1], out_ch)
