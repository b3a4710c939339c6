"""The training loop: batches, optimiser, one-cycle schedules, beta, history.

Plain torch, no scikit-learn. The data set lives on the device as one tensor of
displacements (n, 1, length); a batch is an index slice of a seeded
permutation. Callbacks (see :mod:`skspivae.callbacks`) are called with the
object that owns the loop (the estimator) at the end of every batch and epoch.
"""

import concurrent.futures
import contextlib
import copy
import ctypes
import functools
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

# fastai's fit_one_cycle defaults: 25% warm-up from lr/25, then down to lr/1e5.
ONE_CYCLE = {"pct_start": 0.25, "div": 25.0, "div_final": 1e5}


@contextlib.contextmanager
def flush_denormals():
    """Flush denormal floats to zero while training, on every torch thread.

    Small displacements (D down to 1e-5) otherwise produce denormals that make
    some CPU batches ten times slower. ``torch.set_flush_denormal`` sets the
    floating-point control register of the calling thread only; torch's other
    intra-op threads, OpenMP's, keep their own (on 2 threads, half of an
    element-wise product of denormals stayed denormal). So the calling
    thread's floating-point environment is copied to every thread of its
    OpenMP team; on exit the calling thread gets back the environment it had
    before (a flush the user had set stays), and the team a copy of it.
    Where that cannot be done (outside Linux, no OpenMP runtime of torch's
    found) only the calling thread flushes, as torch does, and is set back
    to not flushing on exit.

    Yields whether this CPU can flush denormals.
    """
    fenv = _fenv()
    saved = fenv.get() if fenv is not None else None
    supported = torch.set_flush_denormal(True)
    if supported and saved is not None:
        fenv.share(fenv.get())
    try:
        yield supported
    finally:
        if saved is None:
            torch.set_flush_denormal(False)
        elif supported:
            fenv.share(saved)


class _FloatEnv:
    """The calling thread's floating-point environment (C's ``fenv.h``), and
    a way to copy it to the threads of its OpenMP team."""

    _SIZE = 256  # bytes, more than any platform's fenv_t

    def __init__(self, libc, gomp_parallel):
        self._libc = libc
        self._gomp_parallel = gomp_parallel
        self._fesetenv = ctypes.cast(libc.fesetenv, ctypes.c_void_p)

    def get(self):
        """This thread's environment, or None if it cannot be read."""
        env = ctypes.create_string_buffer(self._SIZE)
        return env if self._libc.fegetenv(env) == 0 else None

    def share(self, env):
        """Run ``fesetenv(env)`` on this thread and every other thread of the
        team that torch's parallel regions use (``GOMP_parallel``, libgomp's
        entry point, which LLVM's and Intel's OpenMP runtimes also export;
        it ignores the int that ``fesetenv`` returns). Nothing if ``env`` is
        None."""
        if env is not None:
            self._gomp_parallel(self._fesetenv, env, torch.get_num_threads(), 0)


_OPENMP_RUNTIMES = ("libgomp", "libiomp5", "libomp")


def _torch_openmp_runtime():
    """The path of the OpenMP runtime that torch's threads run on, or None.

    Other packages may load their own (scikit-learn's wheels bring a libgomp
    of their own): the one inside torch's installation is taken, or else the
    only one loaded; with several and none of them torch's, None.
    """
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps}
    paths = sorted(p for p in paths if os.path.basename(p).startswith(_OPENMP_RUNTIMES))
    root = os.path.dirname(os.path.abspath(torch.__file__))
    own = [p for p in paths if p.startswith((root + os.sep, root + ".libs" + os.sep))]
    if own:
        return own[0]
    return paths[0] if len(paths) == 1 else None


@functools.lru_cache(maxsize=1)
def _openmp():
    """Torch's OpenMP runtime as a ``ctypes`` library, or None: outside Linux,
    or where it is not found."""
    if not sys.platform.startswith("linux"):
        return None
    path = _torch_openmp_runtime()
    try:
        return None if path is None else ctypes.CDLL(path)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _fenv():
    """A :class:`_FloatEnv` for this process, or None where there is none:
    outside Linux, without ``fenv.h``'s functions, or without torch's OpenMP
    runtime found."""
    openmp = _openmp()
    if openmp is None:
        return None
    try:
        libc = ctypes.CDLL(None)  # any C library: fenv.h is C99's, not glibc's alone
        libc.fegetenv, libc.fesetenv  # noqa: B018
        gomp_parallel = openmp.GOMP_parallel
    except (OSError, AttributeError):
        return None
    gomp_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    gomp_parallel.restype = None
    return _FloatEnv(libc, gomp_parallel)


# glibc's mallopt parameters, and the largest mmap threshold it accepts on
# 64-bit systems (where its own dynamic threshold stops growing).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20
_malloc_lock = threading.Lock()
_malloc_users = 0


def _glibc():
    """The process's C library if it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def keep_freed_memory():
    """Let glibc's ``malloc`` keep the memory that training steps free.

    Every CPU step allocates and frees the same activations and gradients,
    blocks of up to 13 MB for the default model. By default glibc gives much
    of that back to the operating system after each step and page-faults it
    in again at the next: 16,000-19,000 page faults and about 50 ms of
    system time per batch of 256, and every fresh tensor is slow to write
    (a 32-channel sum into fresh memory took 4-6 ms, in place 1.4 ms).
    Inside this context blocks up to 32 MiB come from the heap and the heap
    is not trimmed; the process keeps the memory of its largest step, which
    it had needed anyway. On exit the trim threshold becomes 64 MiB, which is
    where glibc's own dynamic thresholds end up after freeing such blocks,
    and the free memory is handed back (``malloc_trim``). Elsewhere than
    glibc this does nothing.

    Yields whether the allocator was tuned. Nested and concurrent uses are
    counted; the last one out restores.
    """
    global _malloc_users
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _malloc_lock:
        if _malloc_users == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
        _malloc_users += 1
    try:
        yield True
    finally:
        with _malloc_lock:
            _malloc_users -= 1
            if _malloc_users == 0:
                libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
                libc.malloc_trim(0)


@contextlib.contextmanager
def process_settings():
    """The process-wide settings training runs under, each restored after:
    :func:`flush_denormals` and :func:`keep_freed_memory`."""
    with flush_denormals(), keep_freed_memory():
        yield


class HalfBatches:
    """Two threads that run the forward and backward passes of a batch's two
    halves at once, with half of torch's intra-op threads each; their
    gradients add up in the parameters' ``.grad``.

    On a CPU, a training step costs a fixed part that more threads do not
    shorten (about 20 ms for the default model, in hundreds of small
    operations) and a part that grows with the batch. On 2 cores, two half
    batches on one thread each do the same arithmetic as the whole batch on
    two, but each half's fixed part runs beside the other half's work
    instead of before it. That pays for large batches only, so
    :func:`forward_backward` splits those of ``min_size`` or more
    (``docs/benchmarks_training.rst`` has the measurements). The sum of two
    gradients does not depend on which thread finishes first, so training
    stays bitwise reproducible.

    The threads start on their first batch, from the thread that calls
    :meth:`map`, whose floating-point environment they inherit (POSIX), so
    they flush denormals inside :func:`flush_denormals`. No setting of the
    calling thread or of the process changes.

    Use :meth:`create`, which returns None where the halves do not apply:
    off the CPU, on one intra-op thread, or where torch's OpenMP runtime,
    which holds the per-thread counts, is not reachable.
    """

    #: Smallest batch that is split, in displacements (rows times steps).
    #: Measured on 2 cores (paired steps of the default model): halves of
    #: 6,400-13,000 displacements each were 13-16% slower than whole
    #: batches, of 25,000 within 2%, of 38,000 1% faster, of 51,000 5%.
    min_size = 80_000

    def __init__(self, n_threads):
        self._pools = [ThreadPoolExecutor(1, "skspivae-step", _set_thread_count, (k,))
                       for k in (n_threads - n_threads // 2, n_threads // 2)]

    @classmethod
    def create(cls, device):
        """Two threads for training on ``device``, or None."""
        n_threads = torch.get_num_threads()
        if (torch.device(device).type != "cpu" or n_threads < 2
                or not _thread_counts_settable()):
            return None
        return cls(n_threads)

    def map(self, function, parts):
        """``[function(part) for part in parts]`` for two parts, one on each
        thread. If one call raises, both have finished when it is re-raised,
        and so have they if the caller is interrupted while waiting."""
        futures = [pool.submit(function, part) for pool, part in zip(self._pools, parts)]
        try:
            return [future.result() for future in futures]
        except BaseException:
            concurrent.futures.wait(futures)
            raise

    def close(self):
        """Stop the threads."""
        for pool in self._pools:
            pool.shutdown()


@functools.lru_cache(maxsize=1)
def _thread_counts_settable():
    """Whether :func:`_set_thread_count` gives a new thread the count asked
    for: torch's OpenMP runtime is found and torch's threads are OpenMP's
    (not so in builds with another parallel backend)."""
    if _openmp() is None:
        return False
    seen = []

    def probe():
        _set_thread_count(1)
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return seen == [1]


def _set_thread_count(n_threads):
    """Give the calling thread ``n_threads`` intra-op threads. OpenMP keeps
    the count per thread, and torch sets it on a thread's first use, so that
    comes first; ``torch.set_num_threads`` would also change the count that
    every later new thread starts with."""
    torch.get_num_threads()
    _openmp().omp_set_num_threads(n_threads)


def make_optimizer(parameters, lr):
    """Adam, fused: one kernel per parameter instead of a dozen small ops.

    For the default model's 262,885 parameters on CPU an update takes 0.8 ms
    fused against 4.9 ms in torch's default per-parameter loop.
    """
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def make_lr_scheduler(optimizer, lr, total_steps, kind):
    """A per-stage learning-rate scheduler stepped once per batch.

    ``kind`` is "one_cycle" (cosine warm-up to ``lr`` then cosine decay, as
    fastai's ``fit_one_cycle``), "constant", or a callable
    ``(optimizer, lr, total_steps) -> scheduler``.
    """
    if callable(kind):
        return kind(optimizer, lr, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = lr
    if kind == "one_cycle":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: one_cycle_factor(step, total_steps))
    return None


def one_cycle_factor(step, total_steps, pct_start=ONE_CYCLE["pct_start"],
                     div=ONE_CYCLE["div"], div_final=ONE_CYCLE["div_final"]):
    """Learning-rate multiplier of the one-cycle policy at ``step``."""
    warm = max(1, round(pct_start * total_steps))

    def cos(start, end, frac):
        return end + (start - end) * (1 + math.cos(math.pi * min(frac, 1.0))) / 2

    if step < warm:
        return cos(1 / div, 1.0, step / warm)
    return cos(1.0, 1 / div_final, (step - warm) / max(total_steps - warm, 1))


class NonFiniteLossError(FloatingPointError):
    """Raised by ``SPIVAE.fit`` when the training loss becomes NaN or infinite.

    The estimator is left as it was before that call of ``fit``. A
    ``FloatingPointError``, so ``except FloatingPointError`` catches it too.

    Examples
    --------
    >>> from skspivae import NonFiniteLossError
    >>> issubclass(NonFiniteLossError, FloatingPointError)
    True
    """


class Trainer:
    """Runs stages of epochs over a module; owns nothing but the loop state.

    Parameters
    ----------
    module : SPIVAEModule
    optimizer : torch.optim.Optimizer
    batch_size : int
    lr : float
        Peak learning rate of each stage's one-cycle.
    lr_schedule : str or callable
    clip_grad_norm : float or None
    generator : torch.Generator
        On the module's device; drives shuffling and the latent noise.
    callbacks : list
        Objects with optional ``on_batch_end(owner, record)`` and
        ``on_epoch_end(owner, record)`` methods; a true return value stops.
    owner : object
        Passed to the callbacks (the estimator).
    nll_offset : float
        Added to every reported loss: ``log(scale)`` when the module sees
        displacements divided by ``scale``, so that losses are in nats per
        step of the raw displacements. Optimisation is unaffected.
    """

    def __init__(self, module, optimizer, *, batch_size, lr, lr_schedule,
                 clip_grad_norm, generator, callbacks=(), owner=None, nll_offset=0.0):
        self.nll_offset = nll_offset
        self.module = module
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.clip_grad_norm = clip_grad_norm
        self.generator = generator
        self.callbacks = list(callbacks)
        self.owner = owner
        self.last_good_state = copy.deepcopy(module.state_dict())

    def _call(self, hook, record):
        stop = False
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if method is not None and method(self.owner, record):
                stop = True
        return stop

    def run(self, train, valid, stages, history):
        """Train over ``stages``, appending one record per epoch to ``history``.

        Returns
        -------
        str
            "completed" or "stopped" (a callback asked).

        Raises
        ------
        KeyboardInterrupt, NonFiniteLossError
            Re-raised after the weights are put back to those of the last
            finished epoch (those the loop started from, if none finished).
        """
        n_batches = math.ceil(train.shape[0] / self.batch_size)
        epoch = history[-1]["epoch"] + 1 if history else 0
        stage0 = history[-1]["stage"] + 1 if history else 0
        self._call("on_train_begin", {"stages": stages, "n_batches": n_batches,
                                      "first_epoch": epoch, "first_stage": stage0})
        halves = HalfBatches.create(train.device)
        try:
            for s, stage in enumerate(stages):
                scheduler = make_lr_scheduler(self.optimizer, self.lr,
                                              stage.n_epochs * n_batches,
                                              self.lr_schedule)
                for e in range(stage.n_epochs):
                    start = time.perf_counter()
                    beta = stage.beta_at(e)
                    lr = self.optimizer.param_groups[0]["lr"]
                    train_loss, stop = self.train_epoch(train, beta, scheduler, epoch,
                                                        halves)
                    record = {"epoch": epoch, "stage": stage0 + s, "beta": beta,
                              "lr": lr, "train_loss": train_loss + self.nll_offset}
                    scores = evaluate(self.module, valid, beta, self.batch_size)
                    scores["valid_loss"] += self.nll_offset
                    scores["valid_nll"] += self.nll_offset
                    record.update(scores)
                    record["seconds"] = time.perf_counter() - start
                    history.append(record)
                    self.last_good_state = copy.deepcopy(self.module.state_dict())
                    stop = self._call("on_epoch_end", record) or stop
                    epoch += 1
                    if stop:
                        return "stopped"
                self._call("on_stage_end", {"stage": stage0 + s, "epoch": epoch - 1,
                                            "beta": stage.beta})
            return "completed"
        except (KeyboardInterrupt, NonFiniteLossError):
            self.module.load_state_dict(self.last_good_state)
            raise
        finally:
            if halves is not None:
                halves.close()
            self._call("on_train_end", {"history": history})

    def train_epoch(self, train, beta, scheduler, epoch, halves=None):
        """One pass over ``train`` in a seeded order; returns (mean loss, stop).
        Large batches run as halves with ``halves`` (a :class:`HalfBatches`)."""
        module = self.module.train()
        n = train.shape[0]
        order = torch.randperm(n, generator=self.generator, device=train.device)
        total = torch.zeros((), dtype=torch.float64, device=train.device)
        stop = False
        for b, i in enumerate(range(0, n, self.batch_size)):
            batch = train[order[i:i + self.batch_size]]
            self.optimizer.zero_grad(set_to_none=True)
            loss = forward_backward(module, batch, beta, self.generator, halves)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"The training loss became {loss.item()} at epoch {epoch} "
                    f"(batch {b}, beta={beta:g}). Try a lower lr, a smaller beta, "
                    "or clip_grad_norm."
                )
            if self.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.clip_grad_norm)
            self.optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss * batch.shape[0]
            if self.callbacks:
                record = {"epoch": epoch, "batch": b, "loss": loss.item() + self.nll_offset,
                          "beta": beta,
                          "lr": self.optimizer.param_groups[0]["lr"]}
                if self._call("on_batch_end", record):
                    stop = True
                    break
        return (total / n).item(), stop


def forward_backward(module, batch, beta, generator=None, halves=None):
    """The training loss of ``batch``, with its gradients added to the
    parameters' ``.grad``.

    The loss is the NLL plus ``beta`` times the KL, each a mean over the
    batch. With ``halves`` (a :class:`HalfBatches`) a batch of at least
    ``halves.min_size`` displacements runs as two halves at once. The
    latent noise of the whole batch is drawn from ``generator`` first, so
    that it is the same either way.

    Returns
    -------
    Tensor
        The loss, a detached scalar.
    """
    n = batch.shape[0]
    noise = torch.randn((n, module.n_components), generator=generator,
                        device=batch.device, dtype=batch.dtype)

    def part(rows):
        nll, kl = module.losses(batch[rows], noise=noise[rows])
        loss = (nll.sum() + beta * kl.sum()) / n
        loss.backward()
        return loss.detach()

    if halves is None or batch.numel() < halves.min_size:
        return part(slice(None))
    first, second = halves.map(part, [slice(0, n // 2), slice(n // 2, n)])
    return first + second


# --- evaluation, shared by the loop and the estimator -------------------------

def eval_batch_size(batch_size, device):
    """Rows per forward pass without gradients: 4x the training batch on a GPU,
    2x on a CPU, where larger batches outgrow the caches (measured on 2 cores:
    2,496 fBM trajectories of T = 400 in 0.84 s at 256 or 512 rows at a time,
    1.48 s at 1,024)."""
    return (2 if torch.device(device).type == "cpu" else 4) * batch_size


@torch.no_grad()
def per_trajectory_losses(module, data, batch_size):
    """NLL per scored step and KL per neuron for every trajectory.

    The reconstruction is evaluated at the posterior mean (z = mu): the
    result is deterministic and each trajectory's value does not depend on
    the others in its batch.

    Returns
    -------
    nll : Tensor (n,), kl : Tensor (n, n_components)
    """
    module.eval()
    nll, kl = [], []
    for i in range(0, data.shape[0], batch_size):
        a, b = module.losses(data[i:i + batch_size], sample_latent=False)
        nll.append(a)
        kl.append(b)
    return torch.cat(nll), torch.cat(kl)


def evaluate(module, data, beta, batch_size):
    """Validation record: loss, reconstruction NLL, total and per-neuron KL."""
    if data is None or data.shape[0] == 0:
        nan = float("nan")
        return {"valid_loss": nan, "valid_nll": nan, "kl": nan,
                "kl_per_component": [nan] * module.n_components}
    nll, kl = per_trajectory_losses(module, data, eval_batch_size(batch_size, data.device))
    kl_per = kl.double().mean(dim=0)
    valid_nll = nll.double().mean().item()
    return {"valid_loss": valid_nll + beta * kl_per.sum().item(),
            "valid_nll": valid_nll, "kl": kl_per.sum().item(),
            "kl_per_component": kl_per.tolist()}


@torch.no_grad()
def encode(module, data, batch_size):
    """Latent mean and log-variance, each (n, n_components)."""
    module.eval()
    out = [module.encoder(data[i:i + batch_size])
           for i in range(0, data.shape[0], batch_size)]
    return (torch.cat([m for m, _ in out]), torch.cat([v for _, v in out]))
