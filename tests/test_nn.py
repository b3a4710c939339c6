"""The torch modules: reference size, same function as the plain transcription,
causality and the receptive field."""

import copy

import numpy as np
import pytest
import torch

from skspivae.nn import SPIVAEModule, WaveNet, kl_normal, log_prob
from skspivae.nn._reference import ReferenceSPIVAE, copy_weights


def test_default_parameter_count_and_receptive_field():
    module = SPIVAEModule()
    assert sum(p.numel() for p in module.parameters()) == 262_885
    assert module.receptive_field == 32
    assert WaveNet(layer_size=6).receptive_field == 2 + 2 * 63


def _gradients_in_reference_layout(module, config):
    """``module``'s gradients, laid out like a reference's parameters.

    :func:`copy_weights` (through :meth:`WaveNet.blocks`, the one owner of the
    stacked layout) moves a module's tensors into the reference's layout; it
    is linear, so applied to a copy holding the gradients it moves those.
    """
    grads = copy.deepcopy(module)
    with torch.no_grad():
        for p, g in zip(module.parameters(), grads.parameters()):
            g.copy_(torch.zeros_like(p) if p.grad is None else p.grad)
    image = ReferenceSPIVAE(**config).to(next(module.parameters()).device)
    copy_weights(grads, image)
    return dict(image.named_parameters())


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# Every architecture parameter of the WaveNet model, one change at a time.
CONFIGS = {
    "paper": {},
    "layers 2, kernel 2": dict(layer_size=2, wavenet_kernel_size=2),
    "one layer": dict(layer_size=1),
    "stack of 2": dict(layer_size=2, stack_size=2),
    "skip != residual": dict(skip_channels=8, residual_channels=12),
    "encoder": dict(encoder_layers=2, kernel_size=5, encoder_channels=8, pool_size=4,
                    encoder_hidden=(32, 16), decoder_hidden=(16, 32)),
    "mixture of 3": dict(n_mixtures=3),
    "normalized encoder": dict(normalize_encoder=True),
}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_same_function_as_plain_transcription(config, device):
    torch.manual_seed(0)
    module = SPIVAEModule(**CONFIGS[config])
    with torch.no_grad():  # non-zero biases: the fast module folds them
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
        if CONFIGS[config].get("normalize_encoder"):
            module.encoder.scale.weight.normal_()
    reference = ReferenceSPIVAE(**CONFIGS[config])
    copy_weights(module, reference)
    module, reference = module.to(device), reference.to(device)
    dx = 0.05 * torch.randn(4, 1, 120, device=device)
    fast = module(dx, sample_latent=False)
    plain = reference(dx)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Every gradient agrees too: the fused computation is the same function.
    target = dx[:, 0, module.receptive_field:]
    k = module.n_mixtures
    log_prob(fast.params, target, k).sum().backward()
    log_prob(reference(dx)[0], target, k).sum().backward()
    fast_grads = _gradients_in_reference_layout(module, CONFIGS[config])
    assert (sum(p.numel() for p in module.parameters())
            == sum(p.numel() for p in reference.parameters()))
    for name, p in reference.named_parameters():
        # The last block's residual is never read: no gradient.
        expected = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(fast_grads[name], expected, rtol=1e-3, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("layer_size, stack_size, kernel", [(4, 1, 3), (2, 2, 2)])
def test_wavenet_is_causal_with_its_receptive_field(layer_size, stack_size, kernel):
    torch.manual_seed(0)
    net = WaveNet(cond_channels=2, residual_channels=4, skip_channels=4,
                  kernel_size=kernel, layer_size=layer_size, stack_size=stack_size)
    rf = net.receptive_field
    length = rf + 20
    dx = torch.randn(1, 1, length)
    c = torch.zeros(1, 2, length)
    base = net(dx, c)
    assert base.shape == (1, 3, length - rf)
    t = rf + 7  # perturb one displacement
    moved = dx.clone()
    moved[0, 0, t] += 1.0
    changed = (net(moved, c) - base).abs().sum(dim=1)[0] > 0
    targets = torch.arange(rf, length)
    # Predictions of targets up to t do not see dx[t]; those within rf after it do.
    assert not changed[targets <= t].any()
    assert changed[(targets > t) & (targets <= t + rf)].all()
    assert not changed[targets > t + rf].any()


def test_log_prob_matches_torch_normal_and_mixture_reduces_to_it():
    torch.manual_seed(0)
    params = torch.randn(3, 3, 10)
    target = torch.randn(3, 10)
    expected = torch.distributions.Normal(params[:, 1], params[:, 2].exp()).log_prob(target)
    torch.testing.assert_close(log_prob(params, target), expected)
    # Two identical components with equal weights are the same Normal.
    mix = torch.cat([torch.zeros(3, 2, 10), params[:, 1:2].repeat(1, 2, 1),
                     params[:, 2:3].repeat(1, 2, 1)], dim=1)
    torch.testing.assert_close(log_prob(mix, target, n_mixtures=2), expected)


def test_log_scale_is_clamped():
    params = torch.tensor([[[0.0], [0.0], [-50.0]]])
    assert torch.isfinite(log_prob(params, torch.tensor([[1e-3]]))).all()


def test_kl_normal_is_zero_at_prior_and_positive_elsewhere():
    mu = torch.tensor([0.0, 1.0, 0.0])
    logvar = torch.tensor([0.0, 0.0, 1.0])
    kl = kl_normal(mu, logvar)
    assert kl[0] == 0
    np.testing.assert_allclose(kl[1].item(), 0.5)
    assert kl[2] > 0


def test_initial_loss_is_a_stable_start():
    # The paper's code: an initial loss above about 1.5 signals an unstable start
    # (for unit-scale displacements).
    torch.manual_seed(0)
    module = SPIVAEModule()
    nll, kl = module.losses(torch.randn(32, 1, 399))
    assert nll.mean().item() < 1.6
    # The log-variance rows start at zero: sigma = 1 for every neuron.
    _, logvar = module.encoder(torch.randn(32, 1, 399))
    assert torch.all(logvar == 0)


@pytest.mark.parametrize("length", [1, 2, 32, 33, 40])
def test_any_length_down_to_one_displacement(length):
    """Short trajectories are preceded by receptive_field zeros and scored in
    full; from receptive_field + 1 on, the first receptive_field are not."""
    module = SPIVAEModule()
    out = module(torch.randn(2, 1, length), sample_latent=False)
    n = length if length <= 32 else length - 32
    assert out.params.shape == (2, 3, n) == (2, 3, module.n_scored(length))
    nll, kl = module.losses(torch.randn(2, 1, length))
    assert torch.isfinite(nll).all() and kl.shape == (2, 6)


def test_fused_conditioning_sum_matches_plain_ops():
    # On CPU the conditioning is added inside oneDNN's convolution; the
    # plain ops (float64 takes them) give the same values.
    from skspivae.nn._kernels import _conv, _conv_add_

    torch.manual_seed(0)
    x, weight = torch.randn(3, 50, 7), torch.randn(32, 7, 1)
    out = torch.randn(3, 50, 32)  # time-major, as in the WaveNet
    expected = out.double() + _conv(x.double(), weight.double())
    got = _conv_add_(out.clone(), x, weight)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_fused_conditioning_sum_falls_back_when_the_private_op_fails(monkeypatch):
    """oneDNN's fused add is a private torch op: a later release may change
    its signature. Any failure falls back to the plain ops, with the same
    values, and the op is not tried again."""
    from skspivae.nn import _kernels as _modules

    calls = []

    class Changed:
        def binary(self, *args):
            calls.append(len(args))
            raise TypeError("binary() takes 14 positional arguments")

    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise_", Changed(),
                        raising=False)
    monkeypatch.setattr(_modules, "_FUSED_ADD_WORKS", True)
    torch.manual_seed(0)
    x, weight = torch.randn(3, 50, 7), torch.randn(32, 7, 1)
    out = torch.randn(3, 50, 32)
    expected = out + _modules._conv(x, weight)
    torch.testing.assert_close(_modules._conv_add_(out.clone(), x, weight), expected)
    torch.testing.assert_close(_modules._conv_add_(out.clone(), x, weight), expected)
    assert len(calls) == 1 and not _modules._FUSED_ADD_WORKS
    # A whole WaveNet training step still works.
    module = SPIVAEModule(layer_size=2)
    nll, kl = module.losses(torch.randn(2, 1, 40))
    (nll.mean() + kl.mean()).backward()


# --- float64 gradchecks of the hand-written autograd functions ---------------

def test_conv_relu_gradcheck():
    from skspivae.nn._kernels import _ConvReLU

    torch.manual_seed(0)
    for transposed, dilation in ((False, (2, 1)), (False, (1, 2)), (True, (1, 1))):
        x = torch.randn(2, 3, 1, 12, dtype=torch.float64).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        shape = (3, 4, 1, 3) if transposed else (4, 3, 1, 3)
        weight = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda x, w, b, t=transposed, d=dilation: _ConvReLU.apply(x, w, b, t, d),
            (x, weight, bias))


def test_avg_max_pool_gradcheck():
    from skspivae.nn._kernels import _AvgMaxPool

    torch.manual_seed(0)
    for length, size in ((12, 4), (13, 5), (7, 7)):
        h = torch.randn(2, 3, 1, length, dtype=torch.float64).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        assert torch.autograd.gradcheck(lambda h, s=size: _AvgMaxPool.apply(h, s), (h,))


@pytest.mark.parametrize("config", [dict(layer_size=2), dict(layer_size=2, stack_size=2,
                                                              skip_channels=3)])
def test_wavenet_stack_gradcheck_inputs_and_every_weight(config):
    """The blocks and head (``_WaveNetStack``'s hand-written backward) in
    float64, against finite differences: the displacements, the conditioning
    and every parameter."""
    from torch.func import functional_call

    torch.manual_seed(0)
    net = WaveNet(cond_channels=2, residual_channels=4, **{"skip_channels": 4, **config})
    net = net.double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    dx = torch.randn(2, 1, net.receptive_field + 4, dtype=torch.float64,
                     requires_grad=True)
    c = torch.randn(2, 2, dx.shape[-1], dtype=torch.float64, requires_grad=True)

    def run(dx, c, *weights):
        return functional_call(net, dict(zip(names, weights, strict=True)), (dx, c))

    assert torch.autograd.gradcheck(run, (dx, c, *params))
