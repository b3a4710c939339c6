"""The training loop's process-wide settings (set while training, restored after)
and its batches' halves on two threads."""

import concurrent.futures
import threading

import numpy as np
import pytest
import torch
from sklearn.base import clone

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


# --- a batch's halves on two threads -----------------------------------------

def _halves():
    halves = _training.HalfBatches.create("cpu")
    if halves is None:
        pytest.skip("torch's OpenMP runtime was not found")
    return halves


def _tiny_module():
    from skspivae.nn import SPIVAEModule

    torch.manual_seed(0)
    return SPIVAEModule(n_components=3, encoder_channels=4, encoder_hidden=(8,),
                        decoder_hidden=(8,), residual_channels=4, skip_channels=4,
                        layer_size=2, pool_size=2)


def test_half_batches_apply_only_on_a_cpu_with_several_settable_threads(
        two_threads, monkeypatch):
    assert _training.HalfBatches.create("cuda") is None
    monkeypatch.setattr(_training, "_thread_counts_settable", lambda: False)
    assert _training.HalfBatches.create("cpu") is None
    monkeypatch.undo()
    torch.set_num_threads(1)
    assert _training.HalfBatches.create("cpu") is None


def test_half_batches_give_the_loss_and_gradients_of_the_whole_batch(two_threads,
                                                                     monkeypatch):
    monkeypatch.setattr(_training.HalfBatches, "min_size", 40 * 40)
    module = _tiny_module()
    batch = torch.randn(42, 1, 40)
    results = []
    for halves in (None, _halves()):
        module.zero_grad(set_to_none=True)
        generator = torch.Generator().manual_seed(1)
        loss = _training.forward_backward(module, batch, 0.5, generator, halves)
        results.append((loss, [p.grad.clone() for p in module.parameters()]))
        if halves is not None:
            halves.close()
    (whole, grads_whole), (split, grads_split) = results
    torch.testing.assert_close(split, whole)
    for a, b in zip(grads_split, grads_whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_half_batch_threads_use_their_share_and_change_no_other_thread(two_threads):
    halves = _halves()
    try:
        assert halves.map(lambda _: torch.get_num_threads(), [0, 1]) == [1, 1]
    finally:
        halves.close()
    assert torch.get_num_threads() == 2
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [2]  # what a new thread starts with is unchanged


def test_half_batch_threads_flush_denormals_with_the_caller(two_threads):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    halves = _halves()
    try:
        with _training.flush_denormals():
            assert halves.map(lambda _: not _denormal_products().any(), [0, 1]) == [True, True]
    finally:
        halves.close()


def test_half_batches_finish_both_halves_before_raising(two_threads):
    halves = _halves()
    finished = threading.Event()

    def part(i):
        if i == 0:
            raise ValueError("first half")
        finished.wait(0.2)
        finished.set()
        return i

    try:
        with pytest.raises(ValueError, match="first half"):
            halves.map(part, [0, 1])
        assert finished.is_set()
    finally:
        halves.close()


def test_half_batches_finish_both_halves_when_the_caller_is_interrupted(
        two_threads, monkeypatch):
    """Ctrl-C while the caller waits for the halves: both finish before it is
    re-raised. The interrupt is injected into the wait itself (as a SIGINT
    would arrive there), not by a timer, so no race decides the outcome."""
    halves = _halves()
    finished, release = [], threading.Event()

    def part(i):
        release.wait(5)
        finished.append(i)

    def interrupted_wait(self, timeout=None):
        release.set()  # the halves finish only after the caller was interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(concurrent.futures.Future, "result", interrupted_wait)
    try:
        with pytest.raises(KeyboardInterrupt):
            halves.map(part, [0, 1])
        assert sorted(finished) == [0, 1]
    finally:
        halves.close()


def _small(**params):
    """A tiny estimator, unfitted, and 160 trajectories for it."""
    X = np.cumsum(np.random.default_rng(0).normal(size=(160, 60)), axis=1)
    est = SPIVAE(n_components=2, encoder_channels=4, encoder_hidden=(8,),
                 decoder_hidden=(8,), residual_channels=4, skip_channels=4,
                 layer_size=2, pool_size=2, batch_size=64, validation_fraction=0.0,
                 device="cpu", random_state=0, **params)
    return est, X


def test_fit_on_two_threads_keeps_finite_weights_after_a_non_finite_loss(two_threads,
                                                                        monkeypatch):
    _halves().close()  # skips where the halves cannot be set up

    class PoisonAtEpoch1:
        def on_batch_end(self, estimator, record):
            if record["epoch"] == 1:
                with torch.no_grad():
                    next(estimator.module_.parameters()).fill_(float("nan"))

    monkeypatch.setattr(_training.HalfBatches, "min_size", 64 * 59)  # batches of 64 rows
    est, X = _small(max_epochs=1)
    est.fit(X)
    before = {k: v.clone() for k, v in est.module_.state_dict().items()}
    est.set_params(warm_start=True, callbacks=[PoisonAtEpoch1()])
    with pytest.raises(FloatingPointError, match="epoch 1"):
        est.fit(X)
    assert est.n_iter_ == 1
    for k, v in est.module_.state_dict().items():
        assert torch.equal(v, before[k])


def test_small_batches_run_whole(two_threads, monkeypatch):
    halves = _halves()
    monkeypatch.setattr(halves, "map", lambda *args: pytest.fail("split a small batch"))
    try:
        batch = torch.randn(_training.HalfBatches.min_size // 40 - 1, 1, 40)
        _training.forward_backward(_tiny_module(), batch, 0.5, halves=halves)
    finally:
        halves.close()


def test_fit_on_two_threads_splits_batches_and_is_reproducible(two_threads, monkeypatch):
    _halves().close()  # skips where the halves cannot be set up
    calls = []
    split = _training.HalfBatches.map

    def counting_map(self, function, parts):
        calls.append(len(parts))
        return split(self, function, parts)

    monkeypatch.setattr(_training.HalfBatches, "map", counting_map)
    monkeypatch.setattr(_training.HalfBatches, "min_size", 64 * 59)  # batches of 64 rows
    first, X = _small(max_epochs=2)
    second = clone(first)
    first.fit(X)
    second.fit(X)
    assert len(calls) == 8 and set(calls) == {2}  # 160 rows: 64, 64 and 32
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    assert [r["train_loss"] for r in first.history_] == [
        r["train_loss"] for r in second.history_]
