"""The fast path of the WaveNet model's layers: hand-written autograd functions
and oneDNN-friendly convolutions.

Each computes the same function as the plain layers of
:mod:`skspivae.nn._reference` (the tests compare outputs and every gradient,
and gradcheck them in float64). They use a time-major layout (batch, time,
channels), viewed as channels-last 2-D images of height 1, where oneDNN runs
these narrow convolutions about twice as fast as 1-D ones.
"""


from typing import NamedTuple

import torch
import torch.nn.functional as F


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


class _StackWeights(NamedTuple):
    """The weights :class:`_WaveNetStack` reads, by name: per block the
    dilated weights (the first one folded with the input convolution), the
    conditioning weights (the dilated bias as their last column), the scaled
    skip weights and the scaled residual weights (all but the last block);
    then the summed skip bias and the head's two weights and biases.
    ``flat()`` lists them as the function takes them, ``from_flat`` names
    them again."""

    dilated: list
    cond: list
    skip: list
    res: list
    skip_bias: torch.Tensor
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def flat(self):
        return (*self.dilated, *self.cond, *self.skip, *self.res, self.skip_bias,
                self.w1, self.b1, self.w2, self.b2)

    @classmethod
    def from_flat(cls, params, n_blocks):
        n = n_blocks
        return cls(list(params[:n]), list(params[n:2 * n]), list(params[2 * n:3 * n]),
                   list(params[3 * n:4 * n - 1]), *params[4 * n - 1:])


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
        dilated, cond, skip, res, skip_bias, w1, b1, w2, b2 = _StackWeights.from_flat(
            params, n)
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
        dilated, cond, skip, res, _, w1, _, w2, _ = _StackWeights.from_flat(params, n)
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
