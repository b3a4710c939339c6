"""The Gaussian autoregressive decoder: the Levinson-Durbin recursion against
its plain-autograd reference, the likelihood against the exact multivariate
normal, fBM's exact likelihood, sampling, and the scale-equivariant encoder."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import linalg, stats

from skspivae.datasets import fgn_autocovariance, make_fbm
from skspivae.inspection import fbm_log_likelihood
from skspivae.nn import (
    Encoder,
    GaussianDecoder,
    SPIVAEModule,
    gaussian_covariance,
    gaussian_log_prob,
    gaussian_sample,
    levinson_durbin,
)
from skspivae.nn._gaussian import _levinson_durbin_reference, _LevinsonDurbin


def _pacf(gamma):
    """Partial autocorrelations of an autocovariance (Durbin-Levinson, numpy)."""
    rho = np.asarray(gamma, dtype=np.float64) / gamma[0]
    phi, v, kappa = np.zeros(0), 1.0, []
    for k in range(1, len(rho)):
        kk = (rho[k] - phi @ rho[1:k][::-1]) / v
        phi = np.concatenate([phi - kk * phi[::-1], [kk]])
        v *= 1 - kk**2
        kappa.append(kk)
    return np.array(kappa)


def _covariance(kappa, log_scale, n):
    """The covariance of dx(1..n) that the decoder's parameters define."""
    kappa = np.asarray(kappa, dtype=np.float64)
    rho, phi, v = [1.0], np.zeros(0), 1.0
    for k in range(1, n):
        kk = kappa[k - 1] if k <= len(kappa) else 0.0
        rho.append(kk * v + phi @ np.array(rho[1:k][::-1]))
        phi = np.concatenate([phi - kk * phi[::-1], [kk]])
        v *= 1 - kk**2
    sigma = np.exp(log_scale[0] + log_scale[1] * np.log(np.arange(1, n + 1)))
    return linalg.toeplitz(rho) * np.outer(sigma, sigma)


@pytest.mark.parametrize("order", [1, 2, 3, 8])
def test_levinson_durbin_matches_reference_and_gradcheck(order):
    torch.manual_seed(order)
    kappa = (1.6 * torch.rand(3, order, dtype=torch.float64) - 0.8).requires_grad_()
    fast, plain = levinson_durbin(kappa), _levinson_durbin_reference(kappa)
    torch.testing.assert_close(fast, plain)
    weights = torch.randn_like(fast)
    grad_fast, = torch.autograd.grad((fast * weights).sum(), kappa)
    grad_plain, = torch.autograd.grad((plain * weights).sum(), kappa)
    torch.testing.assert_close(grad_fast, grad_plain)
    assert torch.autograd.gradcheck(_LevinsonDurbin.apply, (kappa,))


def test_levinson_durbin_of_no_lags():
    assert levinson_durbin(torch.zeros(2, 0)).shape == (2, 1, 0)


@pytest.mark.parametrize("n", [1, 2, 4, 5, 6, 12])
def test_log_prob_is_the_exact_gaussian_density(n):
    """Shorter than, as long as and longer than the memory (then AR(K))."""
    kappa = np.array([0.5, -0.3, 0.2, 0.1])
    log_scale = np.array([0.3, -0.2])
    cov = _covariance(kappa, log_scale, n)
    dx = np.random.default_rng(n).multivariate_normal(np.zeros(n), cov, size=3)
    ours = gaussian_log_prob(torch.tensor(dx), torch.tensor(kappa).expand(3, -1),
                             torch.tensor(log_scale).expand(3, -1)).sum(1)
    np.testing.assert_allclose(ours.numpy(), stats.multivariate_normal(cov=cov).logpdf(dx),
                               rtol=1e-10)


def test_log_prob_gradcheck():
    torch.manual_seed(0)
    dx = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    kappa = (0.8 * torch.rand(2, 5, dtype=torch.float64) - 0.4).requires_grad_()
    log_scale = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gaussian_log_prob, (dx, kappa, log_scale))


@given(alpha=st.floats(0.1, 1.9), log10_D=st.floats(-5, 0))
def test_fbm_partial_autocorrelations_give_fbm_exact_likelihood(alpha, log10_D):
    """The decoder holds fBM exactly: with fGn's partial autocorrelations and
    sigma = sqrt(2 D), its likelihood is fBM's, from the first step."""
    D = 10.0**log10_D
    X, _ = make_fbm(3, 40, alpha=[alpha], D=[D], random_state=0)
    kappa = torch.tensor(_pacf(fgn_autocovariance(alpha, D, 39))).expand(3, -1)
    log_scale = torch.tensor([0.5 * np.log(2 * D), 0.0]).expand(3, -1)
    ours = gaussian_log_prob(torch.tensor(np.diff(X, axis=1)), kappa, log_scale).sum(1)
    np.testing.assert_allclose(ours.numpy(), fbm_log_likelihood(X, alpha, D), rtol=1e-7)


def test_sample_has_the_model_covariance_and_is_reproducible():
    kappa = torch.tensor([[0.5, -0.3, 0.2]]).expand(40_000, -1)
    log_scale = torch.tensor([[0.1, 0.2]]).expand(40_000, -1)
    n = 7
    dx = gaussian_sample(kappa, log_scale, n, torch.Generator().manual_seed(0))
    cov = _covariance(kappa[0].numpy(), log_scale[0].numpy(), n)
    # Sample covariances of 40,000 draws: standard errors below 0.012 here.
    np.testing.assert_allclose(np.cov(dx.numpy().T), cov, atol=0.06)
    again = gaussian_sample(kappa, log_scale, n, torch.Generator().manual_seed(0))
    assert torch.equal(dx, again)


@given(order=st.integers(0, 12), n=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_covariance_continues_as_the_autoregression(order, n, seed):
    """gaussian_covariance is the covariance the parameters define, also
    beyond ``memory`` lags, where the process continues as an AR(K)."""
    rng = np.random.default_rng(seed)
    kappa = rng.uniform(-0.9, 0.9, order) / np.arange(1, order + 1)
    log_scale = rng.normal(0, 0.5, 2)
    ours = gaussian_covariance(torch.tensor(kappa[None]), torch.tensor(log_scale[None]), n)
    np.testing.assert_allclose(ours[0].numpy(), _covariance(kappa, log_scale, n),
                               rtol=1e-10, atol=1e-12)


@given(alpha=st.floats(0.05, 1.95), log10_D=st.floats(-5, 0), n=st.integers(2, 200))
def test_fbm_partial_autocorrelations_generate_msd_2_D_t_alpha(alpha, log10_D, n):
    """Physics: with fGn's partial autocorrelations (memory n - 1) the decoder's
    process has the ensemble MSD of fBM, 2 D t^alpha, at every t."""
    D = 10.0**log10_D
    kappa = torch.tensor(_pacf(fgn_autocovariance(alpha, D, n)))[None]
    log_scale = torch.tensor([[0.5 * np.log(2 * D), 0.0]])
    cov = gaussian_covariance(kappa, log_scale, n)[0].numpy()
    msd = np.diagonal(cov.cumsum(axis=0).cumsum(axis=1))
    t = np.arange(1, n + 1)
    np.testing.assert_allclose(msd, 2 * D * t**alpha, rtol=1e-8)


def test_decoder_outputs_valid_parameters():
    kappa, log_scale = GaussianDecoder(n_components=3, memory=20)(10 * torch.randn(5, 3))
    assert kappa.shape == (5, 20) and log_scale.shape == (5, 2)
    assert bool((kappa.abs() < 1).all())


def test_gaussian_module_scores_every_step():
    module = SPIVAEModule(n_components=2, decoder="gaussian", memory=16,
                          normalize_encoder=True)
    assert module.n_scored(5) == 5 and module.min_length == 1
    dx = torch.randn(3, 1, module.encoder.shrink + 1)
    nll, kl = module.losses(dx)
    assert nll.shape == (3,) and kl.shape == (3, 2)
    z = torch.zeros(3, 2)
    expected = -gaussian_log_prob(dx[:, 0], *module.decoder(z)).mean(1)
    torch.testing.assert_close(module.nll(dx, z), expected)


@given(log_factor=st.floats(-8, 8))
def test_normalized_encoder_is_scale_equivariant(log_factor):
    """Scaling a trajectory by c moves its latent means by log(c) times one
    learned direction, and leaves the posterior variances as they were."""
    torch.manual_seed(0)
    encoder = Encoder(n_components=3, normalize=True).double()
    with torch.no_grad():
        encoder.scale.weight.normal_()
    dx = torch.randn(2, 1, 60, dtype=torch.float64)
    mu, logvar = encoder(dx)
    mu_c, logvar_c = encoder(dx * np.exp(log_factor))
    torch.testing.assert_close(mu_c, mu + log_factor * encoder.scale.weight[:, 0])
    torch.testing.assert_close(logvar_c, logvar)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    dx = torch.randn(3, 40, dtype=torch.float64)
    kappa = 0.8 * torch.rand(3, 30, dtype=torch.float64) - 0.4
    log_scale = torch.randn(3, 2, dtype=torch.float64)
    out = {}
    for device in ("cpu", "cuda"):
        args = [t.to(device).requires_grad_() for t in (dx, kappa, log_scale)]
        value = gaussian_log_prob(*args)
        grads = torch.autograd.grad(value.sum(), args)
        out[device] = [value.detach().cpu()] + [g.cpu() for g in grads]
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(a, b)
    kappa = kappa.cuda().requires_grad_()
    assert torch.autograd.gradcheck(_LevinsonDurbin.apply, (kappa[:, :6],))
