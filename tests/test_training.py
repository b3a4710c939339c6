"""The training loop: the loss it steps on, reproducibility on several
threads, and nothing changed outside the library."""

import threading

import numpy as np
import pytest
import torch
from _configs import TINY
from sklearn.base import clone

from skspivae import SPIVAE, _training
from skspivae.nn import SPIVAEModule


@pytest.fixture
def two_threads():
    """Two intra-op threads (the test session runs torch on one, see conftest)."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n_threads)


def _small(**params):
    """A tiny estimator, unfitted, and 160 trajectories for it."""
    X = np.cumsum(np.random.default_rng(0).normal(size=(160, 60)), axis=1)
    est = SPIVAE(**{**TINY, "batch_size": 64, "validation_fraction": 0.0,
                    "random_state": 0, **params})
    return est, X


def test_loss_is_the_mean_nll_plus_beta_times_the_kl():
    torch.manual_seed(0)
    module = SPIVAEModule(n_components=3, decoder="gaussian", memory=8,
                          normalize_encoder=True)
    batch = torch.randn(5, 1, 30)
    generator = torch.Generator().manual_seed(1)
    loss = _training.forward_backward(module, batch, 0.5, generator)
    noise = torch.randn((5, 3), generator=torch.Generator().manual_seed(1))
    nll, kl = module.losses(batch, noise=noise)
    torch.testing.assert_close(loss, (nll.mean() + 0.5 * kl.sum(1).mean()).detach())
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("lr", [1e-3, 1e-2])
def test_one_cycle_warms_up_then_decays(lr):
    factors = [_training.one_cycle_factor(step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(1 / 25) and max(factors) == pytest.approx(1.0)
    peak = int(np.argmax(factors))
    assert peak == 25 and np.all(np.diff(factors[:peak + 1]) > 0)
    assert np.all(np.diff(factors[peak:]) < 0) and factors[-1] < 1e-3


def test_fit_on_two_threads_is_reproducible(two_threads):
    first, X = _small(max_epochs=2)
    second = clone(first)
    first.fit(X)
    second.fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    assert [r["train_loss"] for r in first.history_] == [
        r["train_loss"] for r in second.history_]


def test_fit_changes_nothing_outside_the_library(two_threads):
    """No thread count, no thread, no floating-point mode is left changed: a
    denormal product stays denormal after a fit, on the calling thread."""
    threads, n_threads = threading.active_count(), torch.get_num_threads()
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    before = (tiny * 0.5).item()
    est, X = _small(max_epochs=1)
    est.fit(X)
    assert torch.get_num_threads() == n_threads
    assert threading.active_count() == threads
    assert (tiny * 0.5).item() == before != 0.0


def test_a_non_finite_loss_on_a_warm_start_keeps_the_weights():
    class PoisonAtEpoch1:
        def on_batch_end(self, estimator, record):
            if record["epoch"] == 1:
                with torch.no_grad():
                    next(estimator.module_.parameters()).fill_(float("nan"))

    est, X = _small(max_epochs=1)
    est.fit(X)
    before = {k: v.clone() for k, v in est.module_.state_dict().items()}
    est.set_params(warm_start=True, callbacks=[PoisonAtEpoch1()])
    with pytest.raises(FloatingPointError, match="epoch 1"):
        est.fit(X)
    assert est.n_iter_ == 1
    for k, v in est.module_.state_dict().items():
        assert torch.equal(v, before[k])
