"""The Gaussian autoregressive decoder: p(dx | z) for Gaussian processes.

Every displacement is predicted from all the previous ones, as a WaveNet
does, but with the exact predictor of a Gaussian process whose parameters come
from the latent alone. For displacements ``dx(1..n)``

    dx(t) = sigma(t) u(t),   log sigma(t) = a + b log t,

where ``u`` is a stationary Gaussian process of unit variance given by its
partial autocorrelations ``kappa_1, ..., kappa_K`` (``K`` is ``memory``;
``kappa_k = 0`` beyond it). ``a``, ``b`` and ``kappa`` are functions of the
latent ``z``. Any ``kappa`` in (-1, 1) is a valid process, and the
Levinson-Durbin recursion turns it into the coefficients ``phi^(k)`` of the
best linear predictor of ``u(t)`` from its ``k`` predecessors and the
variance ``v_k`` of its error:

    u(t) | u(<t) ~ Normal(sum_j phi^(m)_j u(t - j), v_m),  m = min(t - 1, K).

This is the exact likelihood of a Gaussian process with such correlations,
from the first displacement on: nothing is left unscored, and generation
starts from an empty history, as the data do. Fractional Brownian motion is
the case ``b = 0`` (its increments are stationary); scaled Brownian motion
has ``kappa = 0`` and ``b = (alpha - 1) / 2``. The decoder cannot learn the
correlations or the scale from the trajectory it predicts (its coefficients
depend on ``z`` only), so the latent has to carry them.

Layout: the coefficients of every order are kept in one table ``psi`` of
shape (batch, K + 1, K). Row ``m`` holds ``phi^(m)`` reversed, from its
first column: ``psi[:, m, m - j] = phi^(m)_j``, so that the prediction of
``u(t)`` from the ``m`` values ``u(t-m), ..., u(t-1)`` is their dot product
with ``psi[:, m, :m]``. For a trajectory no longer than ``K + 1`` every
prediction is one row of the product ``psi @ u``.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _levinson_table(kappa):
    """The recursion, for k = 1..K:
    ``phi^(k) = [phi^(k-1) - kappa_k psi^(k-1), kappa_k]`` and
    ``psi^(k) = [kappa_k, psi^(k-1) - kappa_k phi^(k-1)]``, with ``psi^(k)``
    the reverse of ``phi^(k)``: two in-place operations per order (autograd
    would record a dozen). Returns the table ``psi`` (batch, K + 1, K)."""
    batch, order = kappa.shape
    psi = kappa.new_zeros((batch, order + 1, order))
    # psi^(k) starts with kappa_k, and phi^(k) ends with it; the orders
    # below k do not change that entry: write all of them first.
    psi[:, 1:, 0] = kappa
    phi = kappa.clone()  # phi^(k) in its first k entries
    for k in range(2, order + 1):
        kk = kappa[:, k - 1:k]
        prev = psi[:, k - 1, :k - 1]  # psi^(k-1)
        torch.addcmul(prev, kk, phi[:, :k - 1], value=-1, out=psi[:, k, 1:k])
        phi[:, :k - 1].addcmul_(kk, prev, value=-1)
    return psi


def _levinson_backward(kappa, psi, grad):
    """Gradient of the partial autocorrelations from that of the table
    (only the entries ``grad[:, k, :k]`` are read): the recursion run down
    with the gradient of ``phi^(k)``."""
    order = kappa.shape[1]
    grad_kappa = torch.empty_like(kappa)
    # g: the gradient of phi^(k) from the orders above k (in its first k - 1
    # entries); grad[:, k, :k] reaches psi^(k), its reverse, directly.
    g = torch.zeros_like(kappa)
    for k in range(order, 0, -1):
        gk = g[:, :k].add_(grad[:, k, :k].flip(1))  # all of phi^(k)'s
        # kappa_k is phi^(k)_k, and enters phi^(k)_{<k} as -kappa_k psi^(k-1).
        grad_kappa[:, k - 1] = gk[:, k - 1]
        if k == 1:
            break
        grad_kappa[:, k - 1] -= torch.linalg.vecdot(gk[:, :k - 1], psi[:, k - 1, :k - 1])
        # phi^(k-1) enters phi^(k)_{<k} as itself and, reversed, times -kappa_k.
        g[:, :k - 1] = torch.addcmul(gk[:, :k - 1], kappa[:, k - 1:k],
                                     gk[:, :k - 1].flip(1), value=-1)
    return grad_kappa


class _LevinsonDurbin(torch.autograd.Function):
    """Partial autocorrelations (batch, K) -> the table ``psi`` (batch, K + 1, K).

    :func:`_levinson_durbin_reference` is the same function in plain autograd
    operations.
    """

    @staticmethod
    def forward(ctx, kappa):
        psi = _levinson_table(kappa)
        ctx.save_for_backward(kappa, psi)
        return psi

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        kappa, psi = ctx.saved_tensors
        return _levinson_backward(kappa, psi, grad)


class _LevinsonPrediction(torch.autograd.Function):
    """Partial autocorrelations (batch, K) and values ``u`` (batch, K + 1) ->
    the prediction of each ``u(t)`` from all the values before it (batch,
    K + 1), and the coefficients ``psi^(K)`` of the last order (batch, K).

    The same as ``levinson_durbin(kappa) @ u[:, :K]`` row by row, without
    autograd's bookkeeping of the table: its gradient is formed once, as
    the outer product of the prediction's gradient with ``u``.
    """

    @staticmethod
    def forward(ctx, kappa, u):
        order = kappa.shape[1]
        psi = _levinson_table(kappa)
        ctx.save_for_backward(kappa, u, psi)
        return torch.linalg.vecdot(psi, u[:, None, :order]), psi[:, order].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_pred, grad_last):
        kappa, u, psi = ctx.saved_tensors
        order = kappa.shape[1]
        grad = grad_pred[:, :, None] * u[:, None, :order]  # of the table
        grad[:, order] += grad_last
        grad_u = torch.zeros_like(u)
        grad_u[:, :order] = torch.linalg.vecdot(psi.transpose(1, 2), grad_pred[:, None])
        return _levinson_backward(kappa, psi, grad), grad_u


def levinson_durbin(kappa):
    """Predictor coefficients of every order from partial autocorrelations.

    Parameters
    ----------
    kappa : Tensor of shape (batch, K)
        Partial autocorrelations, each in (-1, 1).

    Returns
    -------
    psi : Tensor of shape (batch, K + 1, K)
        Row ``m`` holds the coefficients of the best linear predictor from
        ``m`` past values, reversed: the prediction of ``u(t)`` from
        ``u(t-m), ..., u(t-1)`` is their dot product with ``psi[:, m, :m]``.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import levinson_durbin
    >>> levinson_durbin(torch.tensor([[0.5, 0.0]]))  # an AR(1) process
    tensor([[[0.0000, 0.0000],
             [0.5000, 0.0000],
             [0.0000, 0.5000]]])
    """
    if kappa.shape[1] == 0:
        return kappa.new_zeros((kappa.shape[0], 1, 0))
    return _LevinsonDurbin.apply(kappa)


@torch.no_grad()
def gaussian_autocorrelation(kappa, n):
    """Autocorrelations of the process with partial autocorrelations ``kappa``.

    The Durbin-Levinson recursion run the other way: ``rho(m) = phi^(m-1) .
    (rho(m-1), ..., rho(1)) + kappa_m v_(m-1)``, and beyond ``K`` lags (where
    ``kappa_m = 0``) the process continues as the autoregression of order K.
    With :func:`log_sigma` this gives the exact covariance of the
    displacements the Gaussian decoder generates, ``sigma(s) sigma(t)
    rho(|s - t|)``, and from it their exact mean squared displacement.

    Parameters
    ----------
    kappa : Tensor of shape (batch, K)
        Partial autocorrelations, each in (-1, 1).
    n : int
        Number of lags, 0 to ``n - 1``.

    Returns
    -------
    Tensor of shape (batch, n)
        ``rho(0) = 1, rho(1), ..., rho(n - 1)``.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import gaussian_autocorrelation
    >>> gaussian_autocorrelation(torch.tensor([[0.5]]), 4)  # AR(1): 0.5^k
    tensor([[1.0000, 0.5000, 0.2500, 0.1250]])
    """
    batch, order = kappa.shape
    rho = kappa.new_zeros((batch, n))
    rho[:, 0] = 1.0
    if order == 0 or n == 1:
        return rho
    psi = _levinson_table(kappa)
    v = torch.exp(_log_innovation_variance(kappa))
    for m in range(1, n):
        if m <= order:
            rho[:, m] = (torch.linalg.vecdot(psi[:, m - 1, :m - 1], rho[:, 1:m])
                         + kappa[:, m - 1] * v[:, m - 1])
        else:
            rho[:, m] = torch.linalg.vecdot(psi[:, order], rho[:, m - order:m])
    return rho


@torch.no_grad()
def gaussian_covariance(kappa, log_scale, n):
    """Covariance of the displacements dx(1..n) of the Gaussian decoder's process.

    ``Cov(dx(s), dx(t)) = sigma(s) sigma(t) rho(|s - t|)``, with ``rho`` from
    :func:`gaussian_autocorrelation` and ``sigma`` from ``log_scale``: what
    :func:`gaussian_sample` draws from, exactly.

    Parameters
    ----------
    kappa : Tensor of shape (batch, K)
    log_scale : Tensor of shape (batch, 2)
        As in :func:`gaussian_log_prob`.
    n : int
        Displacements per trajectory.

    Returns
    -------
    Tensor of shape (batch, n, n)

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import gaussian_covariance
    >>> log_scale = torch.tensor([[0.0, 0.25]])  # sigma(t) = t^(1/4): SBM, alpha 1.5
    >>> gaussian_covariance(torch.zeros(1, 3), log_scale, 3)[0].diagonal()
    tensor([1.0000, 1.4142, 1.7321])
    """
    rho = gaussian_autocorrelation(kappa, n)
    t = torch.arange(n, device=kappa.device)
    sigma = torch.exp(log_sigma(log_scale, n))
    return rho[:, (t[:, None] - t[None, :]).abs()] * sigma[:, :, None] * sigma[:, None, :]


def _levinson_durbin_reference(kappa):
    """:func:`levinson_durbin` in plain autograd operations (for tests)."""
    batch, order = kappa.shape
    rows = [kappa.new_zeros((batch, order))]
    phi = kappa[:, :0]
    for k in range(1, order + 1):
        kk = kappa[:, k - 1:k]
        phi = torch.cat([phi - kk * phi.flip(1), kk], dim=1)
        rows.append(F.pad(phi.flip(1), (0, order - k)))
    return torch.stack(rows, dim=1)


def _log_innovation_variance(kappa):
    """log v_m for m = 0..K: (batch, K) -> (batch, K + 1), v_0 = 1."""
    return F.pad(torch.cumsum(torch.log1p(-kappa * kappa), dim=1), (1, 0))


def _rows(table, n):
    """Rows ``min(t, K)`` of ``table`` (batch, K + 1, ...) for t = 0..n-1."""
    order = table.shape[1] - 1
    if n <= order + 1:
        return table[:, :n]
    tail = table[:, -1:].expand(table.shape[0], n - order - 1, *table.shape[2:])
    return torch.cat([table, tail], dim=1)


def log_sigma(log_scale, n):
    """log sigma(t) = a + b log t for t = 1..n: (batch, 2) -> (batch, n)."""
    t = torch.arange(1, n + 1, device=log_scale.device, dtype=log_scale.dtype)
    return log_scale[:, :1] + log_scale[:, 1:] * torch.log(t)


def gaussian_log_prob(dx, kappa, log_scale):
    """Log-density of each displacement given the previous ones.

    Parameters
    ----------
    dx : Tensor of shape (batch, n)
        Displacements dx(1..n).
    kappa : Tensor of shape (batch, K)
        Partial autocorrelations of the normalised process ``u``.
    log_scale : Tensor of shape (batch, 2)
        ``a, b`` of ``log sigma(t) = a + b log t``.

    Returns
    -------
    Tensor of shape (batch, n)
        ``log p(dx(t) | dx(<t))``; summed over t, the exact log-likelihood.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import gaussian_log_prob
    >>> dx = torch.zeros(1, 3)  # white noise of unit variance:
    >>> gaussian_log_prob(dx, torch.zeros(1, 4), torch.zeros(1, 2))
    tensor([[-0.9189, -0.9189, -0.9189]])
    """
    n = dx.shape[1]
    order = min(kappa.shape[1], n - 1)
    kappa = kappa[:, :order]
    log_s = log_sigma(log_scale, n)
    u = dx * torch.exp(-log_s)
    log_v = _rows(_log_innovation_variance(kappa), n)
    if order == 0:
        pred = torch.zeros_like(u)
    else:
        # u(t) for t <= K from all its past, the later ones from the K values
        # before them.
        pred, last = _LevinsonPrediction.apply(kappa, u[:, :order + 1])
        if n > order + 1:
            windows = u[:, 1:-1].unfold(1, order, 1)  # (batch, n - K - 1, K)
            pred = torch.cat([pred, torch.linalg.vecdot(windows, last[:, None])], dim=1)
    err = (u - pred) * torch.exp(-0.5 * log_v)
    return -0.5 * err * err - 0.5 * log_v - log_s - _HALF_LOG_2PI


@torch.no_grad()
def gaussian_sample(kappa, log_scale, n, generator=None):
    """Draw displacements dx(1..n) one at a time, each given the previous ones.

    Parameters
    ----------
    kappa : Tensor of shape (batch, K)
    log_scale : Tensor of shape (batch, 2)
    n : int
        Displacements per trajectory.
    generator : torch.Generator or None
        Source of the noise, drawn at once as (batch, n) standard normals.

    Returns
    -------
    Tensor of shape (batch, n)

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import gaussian_sample
    >>> g = torch.Generator().manual_seed(0)
    >>> kappa = torch.full((2000, 8), -0.1) / torch.arange(1.0, 9)  # anti-persistent
    >>> dx = gaussian_sample(kappa, torch.zeros(2000, 2), 50, generator=g)
    >>> dx.shape, bool((dx[:, 1:] * dx[:, :-1]).mean() < 0)
    (torch.Size([2000, 50]), True)
    """
    batch = kappa.shape[0]
    order = min(kappa.shape[1], n - 1)
    kappa = kappa[:, :order]
    noise = torch.randn((batch, n), generator=generator, device=kappa.device,
                        dtype=kappa.dtype)
    sd = torch.exp(0.5 * _log_innovation_variance(kappa))  # (batch, K + 1)
    psi = levinson_durbin(kappa)
    u = kappa.new_zeros((batch, order + n))  # K zeros of empty past, then u
    for t in range(n):
        m = min(t, order)
        pred = torch.linalg.vecdot(psi[:, m, :m], u[:, order + t - m:order + t])
        u[:, order + t] = pred + sd[:, m] * noise[:, t]
    return u[:, order:] * torch.exp(log_sigma(log_scale, n))


def lag_knots(memory):
    """Lags at which the Gaussian decoder sets its partial autocorrelations.

    1, 2, 3 and 4, then 14 knots spaced geometrically up to ``memory``
    (rounded, without repeats): the first lags, which carry the most
    information, each get their own value, and the long memory of
    anomalous processes varies slowly in log k.

    Parameters
    ----------
    memory : int
        The largest lag.

    Returns
    -------
    ndarray of int
        The knots, increasing, none above ``memory``.

    Examples
    --------
    >>> from skspivae.nn import lag_knots
    >>> lag_knots(128)
    array([  1,   2,   3,   4,   5,   7,   9,  12,  15,  20,  26,  34,  44,
            58,  75,  98, 128])
    """
    knots = np.round(np.geomspace(4, max(memory, 4), 14)).astype(int)
    knots = np.unique(np.concatenate([[1, 2, 3, 4], knots]))
    return knots[knots <= memory]


def _lag_basis(memory):
    """(memory, n_knots): linear interpolation in log k between the knots."""
    knots = lag_knots(memory)
    log_lags = np.log(np.arange(1, memory + 1.0))
    eye = np.eye(knots.size)
    basis = np.stack([np.interp(log_lags, np.log(knots), row) for row in eye], axis=1)
    return torch.tensor(basis, dtype=torch.float32)


class GaussianDecoder(nn.Module):
    """Latent -> the parameters of a Gaussian process over the displacements.

    The decoder is additive: each latent neuron ``z_i`` goes through its own
    small ReLU network, and the outputs are summed into ``a, b`` of
    ``log sigma(t) = a + b log t`` and into the values of the partial
    autocorrelations at the lags of :func:`lag_knots`, interpolated
    linearly in log k to every lag up to ``memory``, then mapped to
    ``kappa_k = tanh(.) / k``; see :func:`gaussian_log_prob`.

    The bound ``|kappa_k| < 1 / k`` holds for the processes of anomalous
    diffusion: for fractional Gaussian noise (and ARFIMA) ``kappa_k`` is
    close to (exactly) ``d / (k - d)`` with ``|d| < 1/2``, and white noise
    has ``kappa = 0``. It keeps the variance of the innovations above half
    of ``1 - kappa_1^2`` (the product of ``1 - 1/k^2`` is 1/2), so that no
    latent can make the decoder nearly deterministic: without it, a large
    value at a far knot sets many lags close to 1 and a single trajectory's
    loss can reach 1e22. With an additive decoder the factors of the
    data are identifiable up to a permutation and a change of scale of each
    neuron (Lachapelle et al., 2023): for fBM, one neuron can set the
    correlations (alpha) and another the scale (D), each alone.

    Parameters
    ----------
    n_components : int
        Number of latent neurons.
    hidden : tuple of int
        Sizes of the dense layers of each neuron's network.
    memory : int
        Lags K of the partial autocorrelations: a prediction uses up to K
        past displacements.

    References
    ----------
    S. Lachapelle, D. Mahajan, I. Mitliagkas and S. Lacoste-Julien, "Additive
    decoders for latent variables identification and Cartesian-product
    extrapolation", NeurIPS 2023.

    Examples
    --------
    >>> import torch
    >>> from skspivae.nn import GaussianDecoder
    >>> kappa, log_scale = GaussianDecoder(n_components=3, memory=50)(torch.zeros(4, 3))
    >>> kappa.shape, log_scale.shape
    (torch.Size([4, 50]), torch.Size([4, 2]))
    """

    def __init__(self, n_components=6, hidden=(100, 200), memory=256):
        super().__init__()
        self.memory = memory
        self.register_buffer("basis", _lag_basis(memory), persistent=False)
        # |kappa_k| < 1 / k (see the class docstring).
        self.register_buffer("bound", 1.0 / torch.arange(1.0, memory + 1), persistent=False)
        dims = [1, *hidden]
        # Layer l of all neurons' networks: weights (n_components, in, out).
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_components, a, b)) for a, b in zip(dims[:-1], dims[1:]))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(n_components, 1, b)) for b in dims[1:])
        for weight in self.weights:
            for w in weight.data:  # (in, out): as the transposed Linear weight
                nn.init.kaiming_normal_(w.T, mode="fan_out", nonlinearity="relu")
        # Small but not zero: with a zero output layer no gradient reaches the
        # latent, and the correlations are never learned.
        n_out = self.basis.shape[1] + 2
        self.out = nn.Parameter(0.01 * torch.randn(n_components, dims[-1], n_out))
        self.out_bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, z):
        """(batch, n_components) -> kappa (batch, memory), log_scale (batch, 2)."""
        h = z.t()[:, :, None]  # (n_components, batch, 1)
        for weight, bias in zip(self.weights, self.biases):
            h = F.relu(torch.baddbmm(bias, h, weight))
        out = torch.bmm(h, self.out).sum(dim=0) + self.out_bias
        n_knots = self.basis.shape[1]
        kappa = torch.tanh(out[:, :n_knots] @ self.basis.t()) * self.bound
        return kappa, out[:, n_knots:]
