"""The training loop's process-wide settings: set while training, restored after."""

import threading

import numpy as np
import pytest
import torch

from skspivae import SPIVAE, _training


class _FakeLibc:
    """Records the allocator calls that :func:`keep_freed_memory` makes."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_keep_freed_memory_sets_once_and_restores_when_the_last_user_leaves(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(_training, "_glibc", lambda: libc)
    with _training.keep_freed_memory() as tuned:
        assert tuned
        with _training.keep_freed_memory():
            pass
        # The inner exit must not restore while the outer use still runs.
        assert [c[0] for c in libc.calls] == ["mallopt", "mallopt"]
    assert libc.calls == [
        ("mallopt", _training._M_MMAP_THRESHOLD, 32 * 2**20),
        ("mallopt", _training._M_TRIM_THRESHOLD, 2**30),
        ("mallopt", _training._M_TRIM_THRESHOLD, 64 * 2**20),
        ("malloc_trim", 0),
    ]
    assert _training._malloc_users == 0


def test_keep_freed_memory_restores_after_an_error_and_across_threads(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(_training, "_glibc", lambda: libc)
    try:
        with _training.keep_freed_memory():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert libc.calls[-1] == ("malloc_trim", 0) and _training._malloc_users == 0
    barrier = threading.Barrier(4)

    def use():
        with _training.keep_freed_memory():
            barrier.wait()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _training._malloc_users == 0
    assert sum(c[0] == "malloc_trim" for c in libc.calls) == 2


def test_keep_freed_memory_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(_training, "_glibc", lambda: None)
    with _training.keep_freed_memory() as tuned:
        assert not tuned


def _flushing():
    """Whether float32 arithmetic flushes denormals to zero right now."""
    return float(torch.tensor([1e-39]) * 2.0) == 0.0


def _denormal_products():
    """Float32 denormals times 2 in one element-wise pass, which torch splits
    over all its threads: all stay non-zero where no thread flushes, none
    where every thread does. The denormals are made from their bits, which
    no floating-point setting changes."""
    denormals = torch.full((1_000_000,), 2**20, dtype=torch.int32).view(torch.float32)
    return denormals * 2.0


@pytest.fixture
def two_threads():
    """Two intra-op threads (the test session runs torch on one, see conftest)."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n_threads)


def test_flush_denormals_reaches_every_thread_and_restores(two_threads):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    if _training._fenv() is None:
        pytest.skip("torch's OpenMP runtime was not found")
    # Also starts the second thread, if new, before the flush: a thread
    # inherits its creator's floating-point environment.
    assert _denormal_products().all()
    with _training.flush_denormals() as supported:
        assert supported
        assert not _denormal_products().any()
    assert _denormal_products().all()


def test_flush_denormals_keeps_a_flush_the_user_had_set():
    if _training._fenv() is None:
        pytest.skip("torch's OpenMP runtime was not found")
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        with _training.flush_denormals():
            pass
        assert _flushing()
    finally:
        torch.set_flush_denormal(False)
        with _training.flush_denormals():  # back to no flush on every thread
            pass
    assert not _flushing()


def test_flush_denormals_without_openmp_access_flushes_the_calling_thread(monkeypatch):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    monkeypatch.setattr(_training, "_fenv", lambda: None)
    with _training.flush_denormals() as supported:
        assert supported and _flushing()
    assert not _flushing()


def test_fit_runs_under_the_process_settings_and_restores_them(monkeypatch):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    assert not _flushing()
    seen = []
    libc = _FakeLibc()
    monkeypatch.setattr(_training, "_glibc", lambda: libc)
    run = _training.Trainer.run

    def recording_run(self, *args, **kwargs):
        seen.append((_flushing(), _training._malloc_users))
        return run(self, *args, **kwargs)

    monkeypatch.setattr(_training.Trainer, "run", recording_run)
    X = np.cumsum(np.random.default_rng(0).normal(size=(40, 60)), axis=1)
    SPIVAE(n_components=2, encoder_channels=4, encoder_hidden=(8,), decoder_hidden=(8,),
           residual_channels=4, skip_channels=4, layer_size=2, pool_size=2,
           max_epochs=1, batch_size=16, device="cpu", random_state=0).fit(X)
    assert seen == [(True, 1)]
    assert not _flushing() and _training._malloc_users == 0
    assert libc.calls[-1] == ("malloc_trim", 0)
