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

import torch
import torch.nn.functional as F
from torch import nn

from ._distributions import kl_normal, log_prob
from ._gaussian import GaussianDecoder, gaussian_log_prob


def _init_relu(module):
    """Kaiming normal (fan_out, ReLU) weights and zero biases, as the reference."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _channels_last(x):
    """(batch, channels, time) -> (batch, channels, 1, time) in channels-last memory."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x, weight, bias))``, unpadded, with a cheap bias gradient.

    The forward pass is oneDNN's, bias fused. (Its fused ReLU, through
    ``torch.ops.mkldnn``, made the encoder's and decoder's forward passes 6%
    faster, but it maps NaN to 0, which would hide a diverged weight from
    the training loop's check of the loss.) In the backward pass oneDNN's
    bias gradient costs more than a column sum: for 16 channels over a
    batch of 256 x 395, its backward takes 5.0-6.4 ms without the bias and
    8.1 ms with it, while ``grad.sum`` takes 0.3 ms.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, transposed, dilation):
        conv = F.conv_transpose2d if transposed else F.conv2d
        out = conv(x, weight, bias, dilation=dilation).relu_()
        ctx.save_for_backward(x, weight, out)
        ctx.transposed, ctx.dilation = transposed, dilation
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # The bias gradient first, while ``grad`` is still in the cache.
        grad_b = grad.sum((0, 2, 3)) if need_b else None
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [1, 1], [0, 0], list(ctx.dilation),
            ctx.transposed, [0, 0], 1, [need_x, need_w, False])
        return grad_x, grad_w, grad_b, None, None


def _conv_relu(x, weight, bias, transposed=False, dilation=1):
    """ReLU of an unpadded 2D (transposed) convolution; see :class:`_ConvReLU`."""
    return _ConvReLU.apply(x, weight, bias, transposed,
                           _dilation_2d(dilation, weight.shape[-1], x.device))


def _dilation_2d(dilation, kernel_size, device):
    """The 2D dilation of a height-1 convolution over time.

    The height dilation does nothing to the result (the kernel has height
    1), but with it oneDNN computes the weight gradient of a dilation-1
    kernel by its GEMM method instead of its direct one: 5-6.5 ms instead of
    8 ms for 16 -> 32 channels of kernel 3 over 256 x 397 steps, and a
    training step 2-3% faster.
    """
    cpu_trick = dilation == 1 and kernel_size > 1 and device.type == "cpu"
    return (2 if cpu_trick else 1, dilation)


class _AvgMaxPool(torch.autograd.Function):
    """Adaptive average and max pooling over time, concatenated and flattened.

    ``h`` (batch, channels, 1, time) -> (batch, 2 * channels * size): the
    average pool's features, then the max pool's, each channel's ``size``
    bins together. The backward pass writes the gradient once, as a product
    of the average's gradient with the pooling matrix, and adds the max's in
    place at its argmax; autograd's backward of the two poolings zero-fills,
    copies and adds three tensors of the input's size.
    """

    @staticmethod
    def forward(ctx, h, size):
        avg = F.adaptive_avg_pool2d(h, (1, size))
        top, index = F.adaptive_max_pool2d(h, (1, size), return_indices=True)
        ctx.save_for_backward(index)
        ctx.length = h.shape[-1]
        return torch.cat([avg, top], dim=1).flatten(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        batch, channels, _, size = index.shape
        grad_avg, grad_max = grad.view(batch, 2, channels, size).unbind(1)
        # The average's bins, as adaptive_avg_pool's:
        # [floor(j n / size), ceil((j + 1) n / size)).
        n = ctx.length
        t = torch.arange(n, device=grad.device)
        j = torch.arange(size, device=grad.device)
        start, end = (j * n) // size, -((-(j + 1) * n) // size)
        inside = (t[:, None] >= start) & (t[:, None] < end)
        pool = inside.to(grad.dtype) / (end - start).to(grad.dtype)  # (n, size)
        grad_h = torch.matmul(pool, grad_avg.transpose(1, 2))  # (batch, n, channels)
        grad_h.transpose(1, 2).scatter_add_(2, index.squeeze(2), grad_max)
        return _cl(grad_h), None


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
        r, s = self.residual_channels, self.skip_channels
        n_blocks = len(self.dilations)
        res_scale, skip_scale = math.sqrt(0.5), math.sqrt(1.0 / n_blocks)
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
        for i, (conv, proj) in enumerate(zip(self.dilated, self.skip_res)):
            # The dilated conv of x + offset is that of x plus this bias.
            bias = conv.bias + conv.weight.sum(2) @ offset
            if i > 0:
                dilated.append(conv.weight)
            cond.append(torch.cat([self.cond.weight[i * 2 * r:(i + 1) * 2 * r],
                                   bias[:, None, None]], dim=1))
            # The scales sqrt(1/n_blocks) and sqrt(1/2) ride in the weights.
            skip.append(proj.weight[:s] * skip_scale)
            if i < n_blocks - 1:  # the last block's residual is never read
                res.append(proj.weight[s:] * res_scale)
                offset = res_scale * (offset + proj.bias[s:])
        skip_bias = skip_scale * sum(proj.bias[:s] for proj in self.skip_res)
        out = _WaveNetStack.apply(
            tuple(self.dilations), res_scale, torch.is_grad_enabled(), taps, x, c,
            *dilated, *cond, *skip, *res,
            skip_bias, self.head[1].weight, self.head[1].bias,
            self.head[3].weight, self.head[3].bias)
        return out.transpose(1, 2)


def _taps(dx, kernel_size, ones=False):
    """The taps of a one-channel (batch, 1, length) signal: (batch, time, kernel_size),
    time-major and contiguous, with a last column of ones if ``ones``."""
    taps = dx[:, 0].unfold(1, kernel_size, 1)
    if ones:
        taps = torch.cat([taps, taps.new_ones(taps.shape[:2] + (1,))], dim=2)
    return taps.contiguous()


def _cl(x):
    """Time-major (batch, time, channels) -> channels-last (batch, channels, 1, time) view."""
    return x.transpose(1, 2).unsqueeze(2)


def _conv(x, weight, bias=None, dilation=1):
    """Unpadded 1D convolution of time-major ``x`` (batch, time, in).

    ``weight`` is a Conv1d weight (out, in, k). The convolution runs as a 2D
    one of height 1 on the channels-last view of the same memory, and its
    output (batch, time, out) is again contiguous. For 16-32 channels oneDNN
    runs it about 2x faster than in (batch, channels, time) layout, and runs
    1x1 ones faster than a matrix product: 16 -> 16 channels over 100,000
    rows take 2.3 ms forward and backward against 3.7 ms for ``torch.mm``.
    """
    return F.conv2d(_cl(x), weight.unsqueeze(2), bias,
                    dilation=_dilation_2d(dilation, weight.shape[-1], x.device)
                    ).squeeze(2).transpose(1, 2)


def _conv_add_(out, x, weight):
    """``out += _conv(x, weight)`` for a 1x1 ``weight``; returns ``out``.

    On CPU this runs as one pass of oneDNN's fused convolution (the op in
    ``torch.ops.mkldnn`` that ``torch.compile`` uses on CPUs): the WaveNet's
    forward pass takes 8% less time than with a separate sum. That op is
    private to torch: where it is missing (other builds, devices or dtypes)
    or fails in any way (its signature may change in a later release), the
    plain ops compute the same, and a failure is not tried again.
    """
    global _FUSED_ADD_WORKS
    fused = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)
    if (not _FUSED_ADD_WORKS or fused is None or x.device.type != "cpu"
            or x.dtype != torch.float32 or not torch.backends.mkldnn.is_available()):
        return out.add_(_conv(x, weight))
    try:
        fused.binary(_cl(out), _cl(x), weight.unsqueeze(2), None, [0, 0], [1, 1],
                     [1, 1], 1, "add", None, None, [], None)
    except Exception:  # noqa: BLE001 - any failure of a private op: fall back
        _FUSED_ADD_WORKS = False
        return out.add_(_conv(x, weight))
    return out


# Whether oneDNN's fused add works in this torch (set False at its first failure).
_FUSED_ADD_WORKS = True


def _conv_backward(grad, x, weight, dilation=1, need_x=True):
    """Gradients of :func:`_conv` (without bias) for ``x`` and ``weight``."""
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        _cl(grad), _cl(x), weight.unsqueeze(2), None, [1, 1], [0, 0],
        list(_dilation_2d(dilation, weight.shape[-1], x.device)), False, [0, 0], 1,
        [need_x, True, False])
    if grad_x is not None:
        grad_x = grad_x.squeeze(2).transpose(1, 2)
    return grad_x, grad_w.squeeze(2)


class _WaveNetStack(torch.autograd.Function):
    """The WaveNet's gated residual blocks and head, with a hand-written backward.

    Inputs (``keep``: whether to keep what the backward pass needs):
    - ``taps`` (batch, m0, span): the displacements the first block's
      dilated convolution reads, folded with the input convolution, whose
      weight (2r, span, 1) comes first in ``params``; it and the
      conditioning run as one product over their concatenated columns;
    - ``x`` (batch, m0, r): the input convolution over the first block's
      columns times ``res_scale``, which its residual reads;
    - ``c`` (batch, length, cond + 1) with its column of ones;
    - ``params``: per block the dilated weights (the first one folded as
      above), the conditioning weights (the dilated bias as their last
      column), the scaled skip weights and the scaled residual weights (all
      but the last block); then the summed skip bias and the head's two
      weights and biases.

    Returns (batch, time, out) for the head's columns.

    The same function autograd would build from the plain ops, with fewer
    passes over memory: gradients that reach a tensor from two places (a
    block input from its dilated convolution and from the residual, a gate
    output from its skip and residual convolutions, ``c`` from every block)
    are added in place into one buffer, where autograd zero-fills a tensor
    for every slice and adds the parts out of place.
    """

    @staticmethod
    def forward(ctx, dilations, res_scale, keep, taps, x, c, *params):
        n = len(dilations)
        dilated, cond, skip = params[:n], params[n:2 * n], params[2 * n:3 * n]
        res = params[3 * n:4 * n - 1]
        skip_bias, w1, b1, w2, b2 = params[4 * n - 1:]
        length = c.shape[1]
        # Columns of each block; the last block's are the head's.
        ms = [x.shape[1]]
        for d, weight in zip(dilations[1:], dilated[1:]):
            ms.append(ms[-1] - d * (weight.shape[-1] - 1))
        xs, cs, ys, gs, tails = [], [], [], [], []
        skip_sum = None
        for i, (d, m) in enumerate(zip(dilations, ms)):
            if i == 0:
                # The first block's taps and conditioning as one product:
                # ci (batch, m, span + cond + 1), read again by the backward.
                ci = torch.cat([taps, c[:, length - m:]], dim=2)
                y = _conv(ci, torch.cat([dilated[0], cond[0]], dim=1))
            else:
                y = _conv(x, dilated[i], dilation=d)
                ci = c[:, length - m:].contiguous()  # read again by the backward
                y = _conv_add_(y, ci, cond[i])
            g = F.glu(y, dim=2)  # a * sigmoid(b) of the halves, (batch, m, r)
            if keep:  # for the backward pass
                xs.append(x)
                cs.append(ci)
                ys.append(y)
                gs.append(g)
            # The skips only over the head's columns, summed in the
            # convolutions' pass; the copied tail is kept for the backward.
            tail = g[:, m - ms[-1]:].contiguous() if i < n - 1 else g
            skip_sum = (_conv(tail, skip[i], skip_bias) if i == 0  # the bias once
                        else _conv_add_(skip_sum, tail, skip[i]))
            if keep:
                tails.append(tail)
            if i < n - 1:
                x = _conv(g, res[i]).add_(x[:, x.shape[1] - m:],
                                          alpha=res_scale if i > 0 else 1.0)
        h1 = skip_sum.relu_()
        h2 = _conv(h1, w1, b1).relu_()
        ctx.dilations, ctx.res_scale = dilations, res_scale
        if keep:
            ctx.save_for_backward(c, h1, h2, *xs, *cs, *ys, *gs, *tails, *params)
        return _conv(h2, w2, b2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        dilations, res_scale = ctx.dilations, ctx.res_scale
        n = len(dilations)
        c, h1, h2, *saved = ctx.saved_tensors
        xs, cs, ys, gs, tails = (saved[k * n:(k + 1) * n] for k in range(5))
        params = saved[5 * n:]
        dilated, cond, skip = params[:n], params[n:2 * n], params[2 * n:3 * n]
        res = params[3 * n:4 * n - 1]
        _, w1, _, w2, _ = params[4 * n - 1:]
        need_taps, need_x, need_c = ctx.needs_input_grad[3:6]
        grad_taps = None

        # Each bias gradient right after its gradient, while it is in the cache.
        grad = grad.contiguous()
        grad_b2 = grad.sum((0, 1))
        grad_h2, grad_w2 = _conv_backward(grad, h2, w2)
        grad_h2 = torch.ops.aten.threshold_backward(grad_h2, h2, 0)
        grad_b1 = grad_h2.sum((0, 1))
        grad_h1, grad_w1 = _conv_backward(grad_h2, h1, w1)
        grad_skip = torch.ops.aten.threshold_backward(grad_h1, h1, 0)
        grad_skip_bias = grad_skip.sum((0, 1))

        length = c.shape[1]
        grad_c = torch.zeros_like(c) if need_c else None
        grads = {name: [None] * n for name in ("dilated", "cond", "skip", "res")}
        grad_x = None  # of the next block's input
        for i in reversed(range(n)):
            g, m = gs[i], gs[i].shape[1]
            if i == n - 1:
                grad_g, grads["skip"][i] = _conv_backward(grad_skip, g, skip[i])
            else:
                grad_g, grads["res"][i] = _conv_backward(grad_x, g, res[i])
                grad_tail, grads["skip"][i] = _conv_backward(grad_skip, tails[i], skip[i])
                grad_g[:, m - grad_skip.shape[1]:].add_(grad_tail)
            grad_y = torch.ops.aten.glu_backward(grad_g, ys[i], 2)
            if i == 0:  # one product over the taps and the conditioning
                span = dilated[0].shape[1]
                grad_ci, grad_w = _conv_backward(
                    grad_y, cs[0], torch.cat([dilated[0], cond[0]], dim=1),
                    need_x=need_c or need_taps)
                grads["dilated"][0], grads["cond"][0] = grad_w[:, :span], grad_w[:, span:]
                if need_c:
                    grad_c[:, length - m:].add_(grad_ci[:, :, span:])
                if need_taps:  # the displacements, when they need a gradient
                    grad_taps = grad_ci[:, :, :span]
                grad_x = grad_x if need_x else None  # x carries the scale
                break  # x is read only by the residual
            grad_ci, grads["cond"][i] = _conv_backward(grad_y, cs[i], cond[i],
                                                       need_x=need_c)
            if need_c:
                grad_c[:, length - m:].add_(grad_ci)
            x = xs[i]
            grad_xi, grads["dilated"][i] = _conv_backward(grad_y, x, dilated[i],
                                                          dilations[i])
            if grad_x is not None:  # the residual's share
                grad_xi[:, x.shape[1] - m:].add_(grad_x, alpha=res_scale)
            grad_x = grad_xi
        return (None, None, None, grad_taps, grad_x, grad_c, *grads["dilated"],
                *grads["cond"],
                *grads["skip"], *grads["res"][:n - 1], grad_skip_bias,
                grad_w1, grad_b1, grad_w2, grad_b2)


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
