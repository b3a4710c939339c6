"""The scikit-learn face of SPIVAE: :class:`SPIVAE`."""

import copy
import os
import threading
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import _lr_finder, _summary, _training
from ._io import read_model_file, write_model_file
from ._schedules import CURVES, SCHEDULES, Stage, make_stages
from ._utils import POSITIVE_INT, Interval, StrOptions
from .callbacks import EarlyStopping, EpochTable, ProgressBar
from .nn import SPIVAEModule, gaussian_covariance, generate

# Estimator parameters that define the torch module, with its keyword names.
_ARCHITECTURE = ("n_components", "encoder_channels", "encoder_layers", "kernel_size",
                 "pool_size", "encoder_hidden", "decoder_hidden", "residual_channels",
                 "skip_channels", "wavenet_kernel_size", "layer_size", "stack_size",
                 "n_mixtures", "decoder", "memory")


class SPIVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Beta-VAE with an autoregressive decoder for 1D diffusion trajectories.

    A convolutional encoder maps the displacements of a trajectory to
    ``n_components`` Gaussian latent neurons; a decoder conditioned on the
    latent predicts every displacement from the previous ones. Training
    minimises the negative log-likelihood of the displacements plus ``beta``
    times the KL divergence to the prior, with beta annealed upward so that
    only the neurons the process needs survive.

    The default decoder, ``decoder="gaussian"``, is the exact predictor of a
    Gaussian process whose correlations (partial autocorrelations over
    ``memory`` lags) and scale ``sigma(t) = exp(a + b log t)`` come from the
    latent alone, through one small network per neuron; the encoder sees
    each trajectory divided by its own scale. It learns fBM's alpha and
    log D as two neurons in minutes on a CPU, and generates trajectories
    with the chosen features. ``decoder="wavenet"`` is the paper's model
    (262,885 parameters), a WaveNet that reads the past 32 displacements;
    with ``beta_schedule="fbm_paper"`` and ``batch_size=256`` it is the
    paper's recipe. See the user guide for how the two compare.

    Parameters
    ----------
    n_components : int, default=6
        Number of latent neurons.
    decoder : {"gaussian", "wavenet"}, default="gaussian"
        The Gaussian autoregressive decoder
        (:class:`~skspivae.nn.GaussianDecoder`), or the paper's conditioning
        decoder and WaveNet.
    memory : int, default=128
        Gaussian decoder: past displacements a prediction uses (the lags of
        its partial autocorrelations); beyond them the process continues as
        an autoregression of this order.
    encoder_scaling : {"auto", "trajectory", "global"}, default="auto"
        "trajectory": the encoder sees each trajectory divided by the root
        mean square of its own displacements, and the log of that scale
        moves the latent means along a learned direction (scale-equivariant
        encoder); "global": only the global ``input_scale`` (the paper's
        choice). "auto" is "trajectory" with the Gaussian decoder and
        "global" with the WaveNet.
    encoder_channels : int, default=16
        Filters of the encoder's convolutions (and of the conditioning
        decoder's transposed convolutions).
    encoder_layers : int, default=4
        Unpadded convolutions of the encoder (and transposed ones of the
        conditioning decoder).
    kernel_size : int, default=3
        Kernel of the encoder's and conditioning decoder's convolutions.
    pool_size : int, default=16
        Positions kept by each of the encoder's adaptive average and max pools.
    encoder_hidden : tuple of int, default=(200, 100)
        Dense layers from the pooled features to the latent.
    decoder_hidden : tuple of int, default=(100, 200)
        Dense layers from the latent to the conditioning.
    residual_channels, skip_channels : int, default=16
        Channels of the WaveNet's residual and skip paths.
    wavenet_kernel_size : int, default=3
        Kernel of the WaveNet's dilated convolutions.
    layer_size : int, default=4
        Dilated layers per stack, with dilations 1, 2, ..., 2**(layer_size-1).
    stack_size : int, default=1
        Repetitions of the dilation stack.
    n_mixtures : int, default=1
        WaveNet: Normal components of the output distribution of each
        displacement.
    beta : float, default=2e-2
        Weight of the KL term (per trajectory, against the NLL per scored
        step) for the "default", "constant", "linear" and "tanh" schedules.
        ``beta * (n_timesteps - 1)`` weighs the KL against a trajectory's
        whole log-likelihood: the default is about 4 at 200 time steps.
    beta_schedule : str or list of tuples, default="default"
        "default": a linear warm-up of beta from 0 over
        ``beta_warmup_epochs`` epochs, held until ``m = min(10, max_epochs
        // 4)`` epochs before the end (this leaves alive only the neurons
        the data need), then ``m`` epochs at ``beta / 20`` (which sharpens
        the survivors), each part its own one-cycle. "constant"; "linear"
        or "tanh" warm-up of beta from 0 over ``beta_warmup_epochs`` epochs
        (as osl-dynamics' KL annealing); "fbm_paper" or "sbm_paper" for the
        paper's staged recipes; or a list of stages, each run as its own
        one-cycle: ``(n_epochs, beta)``, or ``(n_epochs, beta, curve,
        warmup_epochs)`` with curve "linear" or "tanh". The paper's and
        listed schedules set the number of epochs and the betas themselves
        (``max_epochs`` and ``beta`` are then not used).
    beta_warmup_epochs : int, default=10
        Epochs of the "default", "linear" and "tanh" warm-ups.
    beta_sharpness : float, default=10.0
        Sharpness of the "tanh" warm-up.
    max_epochs : int, default=45
        Epochs of the "default", "constant", "linear" and "tanh" schedules.
    batch_size : int, default=64
        Trajectories per optimiser step.
    lr : float, default=1e-3
        Peak learning rate of Adam.
    lr_schedule : {"one_cycle", "constant"} or callable, default="one_cycle"
        Per-stage learning-rate schedule; a callable gets
        ``(optimizer, lr, total_steps)`` and returns a torch scheduler stepped
        once per batch.
    validation_fraction : float, default=0.2
        Fraction of trajectories held out (seeded split) for the validation
        columns of ``history_`` and for ``kl_divergence_``; 0 uses none.
    clip_grad_norm : float or None, default=None
        Clip the gradient norm to this value before each step.
    n_iter_no_change : int or None, default=None
        Early stopping as scikit-learn's MLP: stop when the validation loss
        (the training loss when ``validation_fraction=0``) has not decreased
        by ``tol`` for more than this many epochs in a row; the count restarts
        at each beta stage. None trains all epochs. Implemented by
        :class:`~skspivae.callbacks.EarlyStopping`.
    tol : float, default=1e-4
        Smallest decrease that counts as an improvement for early stopping.
    n_init : int, default=1
        Random restarts before the full fit, as osl-dynamics'
        ``random_subset_initialization``: ``n_init`` short fits, each from its
        own initialisation (seeded from ``random_state``) on its own random
        subset of the training data; the one with the lowest validation loss
        is kept, with its trained weights, and the full fit continues from it
        (with a fresh optimiser). Not used on a warm start. 1 makes no restart.
    init_epochs : int, default=2
        Epochs of each restart, at the beta of the schedule's first epoch.
    init_fraction : float, default=0.25
        Fraction of the training trajectories each restart trains on.
    kl_threshold : float, default=0.1
        A neuron whose KL divergence (nats, mean over the validation set)
        exceeds this is active; collapsed neurons sit near 0.
    input_type : {"positions", "increments"}, default="positions"
        Whether rows of ``X`` are positions x(0..T-1) or displacements.
    input_scale : "auto", float or None, default="auto"
        One global constant that displacements are divided by before entering
        the network: "auto" takes the root mean square of the training
        displacements at the first fit; None keeps the raw units (the paper's
        choice, which trains slowly when displacements are small). Likelihoods
        and scores are always reported in the raw units (the log of the scale
        is accounted for), and ``sample`` returns raw units.
    callbacks : list or None, default=None
        Objects of :mod:`skspivae.callbacks` called during ``fit``.
    warm_start : bool, default=False
        Continue from the current weights, optimiser and history when refitting.
    device : str, default="auto"
        "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the train/validation split, the batch order
        and the latent noise. On CPU the same seed gives bitwise the same model.
    verbose : int, default=0
        Print an epoch table during ``fit`` (and a line per restart) when > 0;
        >= 2 adds a :class:`~skspivae.callbacks.ProgressBar` of the batches on
        stderr.

    Attributes
    ----------
    module_ : SPIVAEModule
        The fitted torch module.
    history_ : list of dict
        One entry per epoch: "epoch", "stage", "beta", "lr", "train_loss",
        "valid_loss", "valid_nll", "kl", "kl_per_component", "seconds".
        Losses are in nats per scored step of the raw displacements (the
        units of ``score_samples``, whatever ``input_scale``).
    kl_divergence_ : ndarray of shape (n_components,)
        KL divergence of each neuron to the prior, mean over the validation set
        (the training set when ``validation_fraction=0``).
    active_components_ : ndarray of int
        Indices of the neurons with ``kl_divergence_ > kl_threshold``.
    receptive_field_ : int
        Past displacements one prediction depends on. The WaveNet does not
        score the first ``receptive_field_`` displacements of a trajectory;
        the Gaussian decoder scores all of them.
    min_timesteps_ : int
        Shortest trajectory (in columns of ``X``) that ``fit``, ``transform``
        and ``score`` accept: 2 positions or 1 displacement. Trajectories
        shorter than the networks need are preceded by zero displacements
        (only their own displacements are scored); for the WaveNet, one of
        ``receptive_field_`` displacements or fewer is preceded by
        ``receptive_field_`` zeros, the history generation starts from.
    n_features_in_ : int
        Length of the trajectories seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of ``X`` when it was a DataFrame with string names.
    n_iter_ : int
        Epochs run in total.
    input_scale_ : float
        The scale displacements were divided by (1.0 when ``input_scale=None``).
    init_scores_ : ndarray of shape (n_init,) or None
        Validation loss at the end of each restart (None when ``n_init=1``);
        the full fit started from the restart ``argmin(init_scores_)``.
    init_history_ : list of dict
        The restarts' epochs, entries as ``history_`` with a "restart" key
        (their number); ``history_`` holds the full fit only.

    See Also
    --------
    skspivae.datasets.make_fbm : Simulate fractional Brownian motion.
    sklearn.decomposition.PCA : A linear latent-variable model with the same API.

    References
    ----------
    G. Fernandez-Fernandez, C. Manzo, M. Lewenstein, A. Dauphin and
    G. Munoz-Gil, "Learning minimal representations of stochastic processes
    with variational autoencoders", arXiv:2307.11608 (2023).

    Examples
    --------
    >>> from skspivae import SPIVAE
    >>> from skspivae.datasets import make_fbm
    >>> X, y = make_fbm(64, n_timesteps=48, alpha=[0.5, 1.5], D=[1e-3], random_state=0)
    >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
    ...              layer_size=2, max_epochs=2, batch_size=32, random_state=0)
    >>> est.fit(X).transform(X).shape
    (64, 2)
    >>> len(est.history_)
    2
    >>> est.get_feature_names_out()
    array(['spivae0', 'spivae1'], dtype=object)
    """

    _parameter_constraints = {
        "n_components": [POSITIVE_INT],
        "decoder": [StrOptions({"gaussian", "wavenet"})],
        "memory": [POSITIVE_INT],
        "encoder_scaling": [StrOptions({"auto", "trajectory", "global"})],
        "encoder_channels": [POSITIVE_INT],
        "encoder_layers": [POSITIVE_INT],
        "kernel_size": [POSITIVE_INT],
        "pool_size": [POSITIVE_INT],
        "encoder_hidden": ["array-like"],
        "decoder_hidden": ["array-like"],
        "residual_channels": [POSITIVE_INT],
        "skip_channels": [POSITIVE_INT],
        "wavenet_kernel_size": [Interval(Integral, 2, None, closed="left")],
        "layer_size": [POSITIVE_INT],
        "stack_size": [POSITIVE_INT],
        "n_mixtures": [POSITIVE_INT],
        "beta": [Interval(Real, 0, None, closed="left")],
        "beta_schedule": [StrOptions({"default", *CURVES, *SCHEDULES}), list, tuple],
        "beta_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "beta_sharpness": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"one_cycle", "constant"}), callable],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "clip_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [None, Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [POSITIVE_INT],
        "init_epochs": [POSITIVE_INT],
        "init_fraction": [Interval(Real, 0, 1, closed="right")],
        "kl_threshold": [Interval(Real, 0, None, closed="left")],
        "input_type": [StrOptions({"positions", "increments"})],
        "input_scale": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"),
                        None],
        "callbacks": [None, list],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=6, *, decoder="gaussian", memory=128,
                 encoder_scaling="auto", encoder_channels=16, encoder_layers=4,
                 kernel_size=3, pool_size=16, encoder_hidden=(200, 100),
                 decoder_hidden=(100, 200), residual_channels=16, skip_channels=16,
                 wavenet_kernel_size=3, layer_size=4, stack_size=1, n_mixtures=1,
                 beta=2e-2, beta_schedule="default", beta_warmup_epochs=10,
                 beta_sharpness=10.0, max_epochs=45, batch_size=64, lr=1e-3,
                 lr_schedule="one_cycle", validation_fraction=0.2,
                 clip_grad_norm=None, n_iter_no_change=None, tol=1e-4, n_init=1,
                 init_epochs=2, init_fraction=0.25, kl_threshold=0.1,
                 input_type="positions",
                 input_scale="auto", callbacks=None, warm_start=False, device="auto",
                 random_state=None, verbose=0):
        self.n_components = n_components
        self.decoder = decoder
        self.memory = memory
        self.encoder_scaling = encoder_scaling
        self.encoder_channels = encoder_channels
        self.encoder_layers = encoder_layers
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.encoder_hidden = encoder_hidden
        self.decoder_hidden = decoder_hidden
        self.residual_channels = residual_channels
        self.skip_channels = skip_channels
        self.wavenet_kernel_size = wavenet_kernel_size
        self.layer_size = layer_size
        self.stack_size = stack_size
        self.n_mixtures = n_mixtures
        self.beta = beta
        self.beta_schedule = beta_schedule
        self.beta_warmup_epochs = beta_warmup_epochs
        self.beta_sharpness = beta_sharpness
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.clip_grad_norm = clip_grad_norm
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_init = n_init
        self.init_epochs = init_epochs
        self.init_fraction = init_fraction
        self.kl_threshold = kl_threshold
        self.input_type = input_type
        self.input_scale = input_scale
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # --- fitting --------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on trajectories ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
            Positions (or displacements, see ``input_type``), one trajectory
            per row.
        y : None
            Ignored.

        Returns
        -------
        self : SPIVAE
            The fitted estimator.

        Raises
        ------
        KeyboardInterrupt
            Re-raised after Ctrl-C, so that a script or a search stops. The
            estimator keeps the weights and history of the last epoch that
            finished in this call (``warm_start=True`` continues from it);
            interrupted before one finished, it is left as it was.
        NonFiniteLossError
            When the training loss becomes NaN or infinite.

        Notes
        -----
        ``fit`` loses nothing when it fails: every parameter and the data are
        checked before training, and if anything raises (bad data, a
        non-finite loss, a callback) the estimator is left exactly as it was
        before the call: a fitted model keeps its weights, optimiser,
        history and every fitted attribute, an unfitted one stays unfitted.
        """
        saved, progress = self._snapshot(), {"epochs": 0}
        try:
            return self._fit(X, progress)
        except KeyboardInterrupt:
            if not progress["epochs"]:
                self._restore(saved)  # not one epoch finished: nothing to keep
            raise
        except BaseException:
            self._restore(saved)
            raise

    def _fit(self, X, progress):
        """The steps of ``fit``: check, prepare the data, build or restore the
        module, train, summarise. Sets the fitted attributes as it goes;
        ``fit`` puts back the old ones if a step raises."""
        stages, config, device, warm, rng = self._check_fit_parameters()
        module = (self.module_ if warm else
                  _new_module(config, rng.randint(np.iinfo(np.int32).max)))
        # reset=True for a warm start too: the module takes any length.
        X = validate_data(self, X, dtype=[np.float64, np.float32],
                          ensure_min_samples=2, reset=True)
        dx = self._increments(X, module)
        if not warm:
            self.input_scale_ = _scale(dx, self.input_scale)
        train, valid = self._split(dx, rng, device)
        generator = _generator(rng, device)
        module = module.to(device)
        if not warm:
            self.init_scores_, self.init_history_ = None, []
            if self.n_init > 1:
                module = self._restarts(module, config, train, valid,
                                        stages[0].beta_at(0), rng)
            self.module_ = module
            self._config = config
            self._set_optimizer()
            self.history_ = []
        status, early = self._train(train, valid, stages, generator, progress)
        if status == "completed" and early is not None:
            warnings.warn(f"All {len(stages)} stage(s) ran to their last epoch and "
                          f"{early.monitor} was still improving by more than "
                          f"tol={self.tol} within n_iter_no_change="
                          f"{self.n_iter_no_change} epochs; the fit has not "
                          "converged.", ConvergenceWarning, stacklevel=3)
        return self

    def _check_fit_parameters(self):
        """The stages, module configuration, device, whether this is a warm
        start, and the random state, checked before anything else is done."""
        stages = make_stages(self.beta_schedule, self.beta, self.max_epochs,
                             self.beta_warmup_epochs, self.beta_sharpness)
        config = self._module_config()
        device = _resolve_device(self.device)
        warm = self.warm_start and hasattr(self, "module_")
        if warm and config != self._config:
            raise ValueError(
                "warm_start=True needs the architecture of the fitted model; "
                "these parameters changed: "
                + ", ".join(k for k in config if config[k] != self._config[k])
            )
        return stages, config, device, warm, check_random_state(self.random_state)

    def _split(self, dx, rng, device):
        """Scaled displacements -> (train, valid) tensors (n, 1, length) on
        ``device``, split by a seeded permutation."""
        dx = dx / np.float32(self.input_scale_)  # never in place: dx may be X
        n = dx.shape[0]
        order = rng.permutation(n)
        n_valid = int(round(self.validation_fraction * n))
        if n - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no "
                f"training trajectory out of {n}."
            )
        data = torch.as_tensor(dx, device=device).unsqueeze(1)
        return (data[torch.as_tensor(order[n_valid:], device=device)],
                data[torch.as_tensor(order[:n_valid], device=device)])

    def _train(self, train, valid, stages, generator, progress):
        """Run the training loop over ``stages`` on ``module_``, then set the
        summaries of the weights it leaves. Returns the loop's status and the
        early-stopping callback (or None); ``progress["epochs"]`` counts the
        epochs that finished, also when the loop is interrupted."""
        callbacks = list(self.callbacks or [])
        early = None
        if self.n_iter_no_change is not None:
            early = EarlyStopping("valid_loss" if valid.shape[0] else "train_loss",
                                  self.n_iter_no_change, self.tol)
            callbacks.append(early)
        if self.verbose >= 2:
            callbacks.append(ProgressBar(leave=False))
        if self.verbose:
            callbacks.append(EpochTable())
        trainer = _training.Trainer(
            self.module_, self._optimizer, batch_size=self.batch_size, lr=self.lr,
            lr_schedule=self.lr_schedule, clip_grad_norm=self.clip_grad_norm,
            generator=generator, callbacks=callbacks, owner=self,
            nll_offset=float(np.log(self.input_scale_)),
        )
        # The summaries of a previous fit (warm start) go stale as training
        # moves the weights; they are measured again below.
        for name in ("kl_divergence_", "active_components_"):
            self.__dict__.pop(name, None)
        n_records = len(self.history_)
        interrupt = None
        try:
            status = trainer.run(train, valid, stages, self.history_)
        except KeyboardInterrupt as exc:  # the loop put back the last epoch's weights
            status, interrupt = None, exc
        progress["epochs"] = len(self.history_) - n_records
        if interrupt is None or progress["epochs"]:
            self._set_fitted_summaries(valid if valid.shape[0] else train,
                                       self._final_kl(trainer, valid.shape[0], n_records))
        if interrupt is not None:
            raise interrupt
        return status, early

    def _snapshot(self):
        """What ``fit`` puts back when it fails: the attributes, and for a warm
        start copies of what training changes in place (the weights, the
        optimiser, the history); a cold fit builds new ones and leaves the old
        ones as they are."""
        saved = dict(self.__dict__)
        if self.warm_start and "module_" in saved:
            saved["module_"] = copy.deepcopy(self.module_)
            saved["_optimizer_state"] = copy.deepcopy(self._optimizer.state_dict())
            saved["history_"] = list(self.history_)
            saved["init_history_"] = list(getattr(self, "init_history_", []))
        return saved

    def _restore(self, saved):
        saved = dict(saved)
        optimizer_state = saved.pop("_optimizer_state", None)
        self.__dict__.clear()
        self.__dict__.update(saved)
        if optimizer_state is not None:
            self._set_optimizer(optimizer_state)

    def _set_optimizer(self, state=None):
        """A fresh Adam for ``module_``, with ``state`` (a state dict) if given."""
        self._optimizer = _training.make_optimizer(self.module_.parameters(), self.lr)
        if state is not None:
            self._optimizer.load_state_dict(state)

    def _restarts(self, module, config, train, valid, beta, rng):
        """Short fits from ``n_init`` starts; returns the best trained module.

        Start 0 is ``module`` (the initialisation a single start would use);
        each start draws its own seed from ``rng`` for its weights, its subset
        of ``train`` and its batch order. Fills ``init_scores_`` and
        ``init_history_``.
        """
        device = train.device
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_init)
        n_sub = max(1, round(self.init_fraction * train.shape[0]))
        scores, best = [], None
        for i, seed in enumerate(seeds):
            candidate = module if i == 0 else _new_module(config, seed).to(device)
            subset = np.random.RandomState(seed).choice(train.shape[0], n_sub,
                                                        replace=False)
            generator = _generator(seed, device)
            trainer = _training.Trainer(
                candidate, _training.make_optimizer(candidate.parameters(), self.lr),
                batch_size=self.batch_size, lr=self.lr, lr_schedule=self.lr_schedule,
                clip_grad_norm=self.clip_grad_norm, generator=generator,
                nll_offset=float(np.log(self.input_scale_)),
            )
            history = []
            try:
                trainer.run(train[torch.as_tensor(subset, device=device)], valid,
                            [Stage(self.init_epochs, beta)], history)
                score = (history[-1]["valid_loss"] if valid.shape[0] else
                         _training.evaluate(candidate, train, beta,
                                            self.batch_size)["valid_loss"])
            except _training.NonFiniteLossError:
                score = np.inf  # a start that diverges loses
            self.init_history_ += [{"restart": i, **record} for record in history]
            scores.append(score)
            if score <= min(scores):
                best = candidate
            if self.verbose:
                print(f"restart {i}: valid_loss {score:.4f}", flush=True)
        self.init_scores_ = np.asarray(scores)
        return best

    def _module_config(self):
        config = {k: getattr(self, k) for k in _ARCHITECTURE}
        scaling = self.encoder_scaling
        if scaling == "auto":
            scaling = "trajectory" if self.decoder == "gaussian" else "global"
        config["normalize_encoder"] = scaling == "trajectory"
        for name in ("encoder_hidden", "decoder_hidden"):
            sizes = config[name]
            if isinstance(sizes, Integral):
                sizes = (sizes,)
            sizes = tuple(sizes)
            if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1
                       for s in sizes):
                raise ValueError(f"{name} must be a sequence of integers >= 1; "
                                 f"got {getattr(self, name)!r}.")
            config[name] = tuple(int(s) for s in sizes)
        return config

    def _final_kl(self, trainer, n_valid, n_records):
        """The validation KL per neuron of the last epoch of this fit, if the
        weights are still those it was measured with; else None.

        That epoch's record holds the very numbers a new pass over the
        validation set would give (same weights, data and batches), so the
        pass is saved: about 0.5 s for 2,496 trajectories of T = 400 on 2
        cores.
        A callback that restored other weights, or a fit that finished no
        epoch, gets the pass.
        """
        if not n_valid or len(self.history_) == n_records:
            return None
        last = trainer.last_good_state
        state = self.module_.state_dict()
        if not all(torch.equal(state[k], last[k]) for k in state):
            return None
        return self.history_[-1]["kl_per_component"]

    def _set_fitted_summaries(self, data, kl_divergence=None):
        """KL per neuron of the final weights on ``data`` (unless given), and
        what follows."""
        if kl_divergence is None:
            _, kl = _training.per_trajectory_losses(
                self.module_, data,
                _training.eval_batch_size(self.batch_size, data.device))
            kl_divergence = kl.double().mean(dim=0).cpu().numpy()
        self._set_derived_attributes(kl_divergence)

    def _set_derived_attributes(self, kl_divergence):
        """Fitted attributes derived from module_, history_ and the KL per neuron;
        shared by fit and load."""
        self.receptive_field_ = self.module_.receptive_field
        self.min_timesteps_ = self._min_timesteps(self.module_)
        self.n_iter_ = len(self.history_)
        self.kl_divergence_ = np.asarray(kl_divergence, dtype=np.float64)
        self.active_components_ = np.flatnonzero(self.kl_divergence_ > self.kl_threshold)

    def _min_timesteps(self, module):
        """Shortest row of X that ``module`` accepts (one more for positions)."""
        return module.min_length + (self.input_type == "positions")

    # --- training conveniences -----------------------------------------------

    def lr_find(self, X, *, start_lr=1e-7, end_lr=10.0, num_it=100, stop_div=4.0,
                beta=None):
        """Learning-rate finder: train briefly with an exponentially growing lr.

        As fastai's ``lr_find``: the lr grows from ``start_lr`` to ``end_lr``
        over ``num_it`` batches of ``X`` (through the same training loop as
        ``fit``) and the sweep stops early when the smoothed loss diverges.
        It trains a copy: a fresh model (initialised as ``fit`` would, from
        ``random_state``) when unfitted, a copy of ``module_`` when fitted;
        the estimator, its weights, optimiser and history are left untouched.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
        start_lr, end_lr : float, default=1e-7, 10.0
            First and last learning rates of the sweep.
        num_it : int, default=100
            Batches of the sweep (over as many epochs of ``X`` as needed).
        stop_div : float or None, default=4.0
            Stop once the smoothed loss rises above the lowest one by
            ``stop_div - 1`` times the loss's size (fastai's
            ``loss > 4 * best`` for positive losses); None never stops early.
        beta : float, default=None
            KL weight of the loss; None takes the beta of the schedule's first
            epoch (of the last trained epoch when fitted).

        Returns
        -------
        result : LRFinderResult
            ``lrs``, smoothed ``losses`` and the suggestions ``valley``
            (fastai's default), ``steep`` and ``minimum``; plot it with
            ``plot_lr_finder(result)``.

        Examples
        --------
        >>> from skspivae import SPIVAE
        >>> from skspivae.datasets import make_fbm
        >>> X, _ = make_fbm(64, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
        >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
        ...              layer_size=2, batch_size=16, random_state=0)
        >>> result = est.lr_find(X, num_it=40)
        >>> 1e-7 <= result.valley <= 10
        True
        >>> est.set_params(lr=result.valley).fit(X)  # doctest: +SKIP
        """
        if not (isinstance(num_it, Integral) and num_it >= 2):
            raise ValueError(f"num_it must be an integer >= 2; got {num_it!r}.")
        if not 0 < start_lr < end_lr:
            raise ValueError(f"Need 0 < start_lr < end_lr; got {start_lr}, {end_lr}.")
        fitted = hasattr(self, "module_")
        # Never advance the caller's RandomState (or numpy's global one).
        rng = (np.random.RandomState() if self.random_state is None else
               check_random_state(copy.deepcopy(self.random_state)))
        if fitted:
            module = copy.deepcopy(self.module_)
        else:
            self._validate_params()
            seed = rng.randint(np.iinfo(np.int32).max)
            module = _new_module(self._module_config(), seed).to(
                _resolve_device(self.device))
        if beta is None:
            beta = (self.history_[-1]["beta"] if fitted and self.history_ else
                    make_stages(self.beta_schedule, self.beta, self.max_epochs,
                                self.beta_warmup_epochs,
                                self.beta_sharpness)[0].beta_at(0))
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        dx = self._increments(X, module)
        scale = self.input_scale_ if fitted else _scale(dx, self.input_scale)
        device = next(module.parameters()).device
        data = torch.as_tensor(dx / np.float32(scale), device=device).unsqueeze(1)
        return _lr_finder.find_lr(
            module, data, batch_size=self.batch_size, generator=_generator(rng, device),
            beta=beta, clip_grad_norm=self.clip_grad_norm, start_lr=start_lr,
            end_lr=end_lr, num_it=num_it, stop_div=stop_div)

    def summary(self, n_timesteps=None):
        """Layers with output shapes, parameter counts and the receptive field.

        As fastai's ``learn.summary()``. Works before ``fit`` (on a model built
        from the parameters).

        Parameters
        ----------
        n_timesteps : int, default=None
            Trajectory length (rows of ``X``) for the shapes; None uses the
            fitted length, or 400 (the paper's) when unfitted.

        Returns
        -------
        ModelSummary
            Prints as a table; ``total_params``, ``trainable_params``,
            ``receptive_field`` and ``layers`` hold the numbers.

        Examples
        --------
        >>> from skspivae import SPIVAE
        >>> s = SPIVAE(decoder="wavenet").summary()  # the paper's model
        >>> s.total_params, s.receptive_field
        (262885, 32)
        >>> print(s)  # doctest: +ELLIPSIS
        SPIVAE, trajectories of 400 time steps (B = batch size)
        ...
        encoder.convs.0 (Conv1d)           (B, 16, 397) *        64  True
        ...
        Total params: 262,885
        ...
        """
        if hasattr(self, "module_"):
            module = self.module_
            n_timesteps = self.n_features_in_ if n_timesteps is None else n_timesteps
        else:
            self._validate_params()
            module = _new_module(self._module_config(), 0)
            n_timesteps = 400 if n_timesteps is None else n_timesteps
        length = n_timesteps - (self.input_type == "positions")
        return _summary.summarize(module, length, n_timesteps)

    # --- data -----------------------------------------------------------------

    def _increments(self, X, module):
        """Validated 2-D array -> float32 displacements, checking the length."""
        minimum = self._min_timesteps(module)
        if X.shape[1] < minimum:
            raise ValueError(
                f"X has {X.shape[1]} time steps per trajectory (n_features = "
                f"{X.shape[1]}); SPIVAE needs at least {minimum} ({self.input_type})."
            )
        dx = np.diff(X, axis=1) if self.input_type == "positions" else X
        _check_float32_range(dx, "X" if self.input_type == "increments"
                             else "the displacements of X")
        return np.ascontiguousarray(dx, dtype=np.float32)

    def _as_tensor(self, X):
        """Validate X for a fitted model; any length down to ``min_timesteps_``.
        Returns float64 displacements (n, 1, length) for :meth:`_inference_module`."""
        check_is_fitted(self)
        self._check_feature_names(X)
        X = check_array(X, dtype=[np.float64, np.float32])
        dx = self._increments(X, self.module_).astype(np.float64) / self.input_scale_
        return torch.as_tensor(dx, device=self._device).unsqueeze(1)

    def _inference_module(self):
        """The fitted module in float64, for ``encode`` and ``score_samples``.

        In float32 a trajectory's latent depends on the other trajectories of
        its batch by about one rounding unit: the matrix products and
        convolutions choose their kernels by the number of rows. In float64
        those differences are 1e-16, so that the result of a trajectory does
        not depend, to any precision that matters, on what else is passed.
        """
        return copy.deepcopy(self.module_).double()

    def _check_feature_names(self, X):
        """As scikit-learn's estimators, for a model that takes any length: a
        warning when ``X`` has column names and the fit had none, or the other
        way round, and an error when the names differ at the fitted length."""
        names = getattr(X, "columns", None)
        if names is not None:
            names = np.asarray(names, dtype=object)
            if not all(isinstance(n, str) for n in names):
                names = None
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None and names is not None:
            warnings.warn("X has feature names, but SPIVAE was fitted without feature "
                          "names", UserWarning, stacklevel=4)
        elif fitted is not None and names is None:
            warnings.warn("X does not have valid feature names, but SPIVAE was fitted "
                          "with feature names", UserWarning, stacklevel=4)
        elif (fitted is not None and len(names) == len(fitted)
              and not np.array_equal(names, fitted)):
            raise ValueError("The feature names of X should match those that were "
                             "passed during fit (trajectories of the fitted length "
                             "with other column names).")

    @property
    def _device(self):
        return next(self.module_.parameters()).device

    # --- inference ------------------------------------------------------------

    def encode(self, X):
        """Mean and log-variance of each trajectory's latent distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
            Any length of at least ``min_timesteps_``.

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, n_components)

        Examples
        --------
        >>> from skspivae import SPIVAE
        >>> from skspivae.datasets import make_fbm
        >>> X, _ = make_fbm(8, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
        >>> est = SPIVAE(n_components=3, layer_size=2, max_epochs=1,
        ...              random_state=0).fit(X)
        >>> mu, logvar = est.encode(X)
        >>> mu.shape, logvar.shape
        ((8, 3), (8, 3))
        """
        data = self._as_tensor(X)
        mu, logvar = _training.encode(
            self._inference_module(), data,
            _training.eval_batch_size(self.batch_size, data.device))
        return (mu.cpu().numpy().astype(np.float64),
                logvar.cpu().numpy().astype(np.float64))

    def transform(self, X):
        """Latent means of the trajectories.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
            Any length of at least ``min_timesteps_``.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        return self.encode(X)[0]

    def score_samples(self, X):
        """Evidence lower bound (beta = 1) of each trajectory, nats per step.

        The sum of the log-likelihoods of the scored displacements (all of
        them with the Gaussian decoder, all but the first
        ``receptive_field_`` with the WaveNet), minus the KL divergence of the latent
        to the prior, divided by the number of scored steps. The
        reconstruction is evaluated at the posterior mean, so the value is
        deterministic. It does not depend on the training beta and compares
        across lengths.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        data = self._as_tensor(X)
        nll, kl = _training.per_trajectory_losses(
            self._inference_module(), data,
            _training.eval_batch_size(self.batch_size, data.device))
        n_scored = self.module_.n_scored(data.shape[-1])
        elbo = -nll.double() - kl.double().sum(dim=1) / n_scored
        return elbo.cpu().numpy() - np.log(self.input_scale_)

    def score(self, X, y=None):
        """Mean evidence lower bound per scored step (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps)
        y : None
            Ignored.

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, *, z=None, n_timesteps=None, random_state=None):
        """Generate new trajectories, each conditioned on its own latent.

        The latent is drawn from the prior N(0, I), or given: fixing the
        active neurons (``active_components_``) to chosen values and the
        collapsed ones to 0 controls the features of the trajectories, and
        ``sample(z=transform(X))`` makes look-alikes of ``X``. Displacements
        are then drawn one at a time from the WaveNet's predicted
        distribution given the previous ones, with cached layer activations
        (:func:`skspivae.nn.generate`): the cost grows linearly with
        ``n_timesteps`` and does not depend on the receptive field.

        Parameters
        ----------
        n_samples : int, default=1
            Number of trajectories.
        z : array-like of shape (n_samples, n_components) or (n_components,), \
default=None
            One latent per trajectory; None draws them from the prior. A
            single row (or a 1-D ``z``) is used for all ``n_samples``
            trajectories; when ``n_samples=1`` and ``z`` has ``m`` rows, ``m``
            trajectories are returned, one per row.
        n_timesteps : int, default=None
            Length of each trajectory, in the units of ``X``: positions, or
            displacements when ``input_type="increments"``. Default
            ``n_features_in_``; any length from 2 positions (1 displacement),
            shorter or longer than the training trajectories.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws and the sampling noise. On CPU the same
            seed (and ``batch_size``) gives the same trajectories.

        Returns
        -------
        ndarray of shape (n_samples, n_timesteps)
            Positions starting at x(0) = 0, or displacements when the
            estimator was fitted with ``input_type="increments"``, in the raw
            units of ``X`` (the network's output times ``input_scale_``).

        Notes
        -----
        The Gaussian decoder needs no warm-up: it was trained to predict every
        displacement from the first, each from all those before it (the
        first from none), so generation starts at x(0) = 0 from an empty
        history, exactly as the training trajectories did, and the law of
        the generated trajectory is the model's, step for step.

        With the WaveNet, warm-up as in the paper: the history starts as
        ``receptive_field_`` zero displacements, which are not returned.
        The conditioning c(t) is
        decoded for the whole sequence, ``receptive_field_`` plus the
        generated steps, and the prediction of the displacement at time t
        reads c(t), exactly as training aligns c with its targets: a
        generated displacement plays the part of a scored displacement of a
        training trajectory ``receptive_field_`` steps longer. The generated
        process therefore starts about ``receptive_field_ + 1`` steps after
        time 0; for an ageing process such as SBM, compare it with the
        rescaling ``((1 + t) / (t + receptive_field_ + 1))**(alpha - 1)``.

        Trajectories are generated ``4 * batch_size`` at a time on the
        module's device, which bounds the memory.

        Examples
        --------
        >>> from skspivae import SPIVAE
        >>> from skspivae.datasets import make_fbm
        >>> X, _ = make_fbm(64, n_timesteps=48, alpha=[0.5, 1.5], D=[1e-3],
        ...                 random_state=0)
        >>> est = SPIVAE(n_components=2, encoder_hidden=(16,), decoder_hidden=(16,),
        ...              layer_size=2, max_epochs=2, batch_size=32,
        ...              random_state=0).fit(X)
        >>> est.sample(3, random_state=0).shape
        (3, 48)
        >>> new = est.sample(z=est.transform(X[:5]), n_timesteps=100, random_state=0)
        >>> new.shape, bool((new[:, 0] == 0).all())
        ((5, 100), True)
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool):
            raise TypeError(f"n_samples must be an integer, got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
        n_steps = self._n_steps(n_timesteps)
        increments = self.input_type == "increments"
        device = self._device
        generator = _generator(check_random_state(random_state), device)
        if z is None:
            latent = torch.randn((n_samples, self.n_components), generator=generator,
                                 device=device)
        else:
            latent = self._check_z(z)
            if latent.shape[0] == 1:
                latent = np.repeat(latent, n_samples, axis=0)
            elif n_samples not in (1, latent.shape[0]):
                raise ValueError(
                    f"z has {latent.shape[0]} rows but n_samples={n_samples}; give "
                    "one row, n_samples rows, or n_samples=1 with any number.")
        dx = generate(self.module_, latent, n_steps, generator=generator,
                      batch_size=4 * self.batch_size)
        dx = dx.cpu().numpy().astype(np.float64) * self.input_scale_
        if increments:
            return dx
        return np.concatenate([np.zeros((dx.shape[0], 1)), np.cumsum(dx, axis=1)],
                              axis=1)

    def _check_z(self, z):
        """``z`` as a float64 array of shape (n, n_components)."""
        if np.ndim(z) not in (1, 2):
            raise ValueError(f"z must be 1-D or 2-D; got {np.ndim(z)} dimensions.")
        latent = check_array(z, dtype=np.float64, ensure_2d=False, input_name="z")
        _check_float32_range(latent, "z")
        latent = latent.reshape(1, -1) if latent.ndim == 1 else latent
        if latent.shape[1] != self.n_components:
            raise ValueError(f"z must have n_components={self.n_components} "
                             f"columns; got shape {np.shape(z)}.")
        return latent

    def _n_steps(self, n_timesteps):
        """Displacements per trajectory of ``n_timesteps`` in the units of ``X``."""
        increments = self.input_type == "increments"
        n_timesteps = self.n_features_in_ if n_timesteps is None else n_timesteps
        shortest = 1 if increments else 2
        if not isinstance(n_timesteps, Integral) or isinstance(n_timesteps, bool):
            raise TypeError(f"n_timesteps must be an integer, got {n_timesteps!r}.")
        if n_timesteps < shortest:
            raise ValueError(f"n_timesteps must be >= {shortest}, got {n_timesteps} "
                             f"({self.input_type}).")
        return n_timesteps if increments else n_timesteps - 1

    @available_if(lambda est: est.decoder == "gaussian")
    def increment_covariance(self, z, *, n_timesteps=None):
        """The exact covariance of the displacements generated at each latent.

        The Gaussian decoder turns a latent into a Gaussian process (see the
        user guide), so what :meth:`sample` draws at ``z`` is known exactly:
        its covariance, and from it the ensemble mean squared displacement of
        infinitely many samples, ``MSD(t) = sum over s, s' <= t of Cov(dx(s),
        dx(s'))``. Only with ``decoder="gaussian"``: the WaveNet's process has
        no closed form.

        Parameters
        ----------
        z : array-like of shape (n_latents, n_components) or (n_components,)
            Latents, e.g. ``transform(X)`` or its mean over trajectories.
        n_timesteps : int, default=None
            Length of the trajectories, in the units of ``X`` as in
            :meth:`sample`; default ``n_features_in_``.

        Returns
        -------
        ndarray of shape (n_latents, n_steps, n_steps)
            ``Cov(dx(s), dx(t))`` in the squared units of ``X``, with
            ``n_steps`` displacements (``n_timesteps - 1`` for positions).

        Examples
        --------
        >>> import numpy as np
        >>> from skspivae import SPIVAE
        >>> from skspivae.datasets import make_fbm
        >>> X, _ = make_fbm(64, 40, alpha=[0.5, 1.5], D=[1e-3], random_state=0)
        >>> est = SPIVAE(n_components=2, max_epochs=2, random_state=0).fit(X)
        >>> cov = est.increment_covariance(est.transform(X[:3]))
        >>> cov.shape
        (3, 39, 39)
        >>> msd = np.cumsum(np.cumsum(cov, axis=1), axis=2).diagonal(axis1=1, axis2=2)
        >>> msd.shape  # MSD(t), t = 1..39, of each latent's process
        (3, 39)
        """
        check_is_fitted(self)
        latent = self._check_z(z)
        n_steps = self._n_steps(n_timesteps)
        with torch.no_grad():
            params = self.module_.decoder(torch.as_tensor(latent, dtype=torch.float32,
                                                          device=self._device))
            cov = gaussian_covariance(*(p.double() for p in params), n_steps)
        return cov.cpu().numpy() * self.input_scale_ ** 2

    @property
    def _n_features_out(self):
        return self.n_components

    def get_feature_names_out(self, input_features=None):
        """Names of the latent neurons: ``spivae0``, ``spivae1``, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (the names do not depend on the input's).

        Returns
        -------
        ndarray of str objects of shape (n_components,)
        """
        check_is_fitted(self)
        return super().get_feature_names_out(input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        tags.non_deterministic = self.random_state is None
        return tags

    # --- persistence ----------------------------------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        if "module_" in state:
            state["module_"] = _copy_to_cpu(state["module_"])
            state["_optimizer_state"] = _state_to_cpu(state.pop("_optimizer").state_dict())
        return state

    def __setstate__(self, state):
        opt_state = state.pop("_optimizer_state", None)
        self.__dict__.update(state)
        if "module_" in state:
            device = _resolve_device(self.device, strict=False)
            self.module_.to(device)
            self._set_optimizer(opt_state)

    def save(self, path, *, overwrite=False):
        """Write the fitted model (weights, parameters, history) to ``path``.

        The file is read back by :meth:`load` with
        ``torch.load(weights_only=True)``: loading runs no code. The write is
        atomic: an interrupted save never destroys an existing file.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, default=False
            Replace an existing file; otherwise an existing ``path`` raises
            ``FileExistsError``.

        Examples
        --------
        >>> import os, tempfile
        >>> from skspivae import SPIVAE
        >>> from skspivae.datasets import make_fbm
        >>> X, _ = make_fbm(8, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
        >>> est = SPIVAE(n_components=2, layer_size=2, max_epochs=1,
        ...              random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
        >>> est.save(path)
        >>> again = SPIVAE.load(path)
        >>> bool((again.transform(X) == est.transform(X)).all())
        True
        """
        check_is_fitted(self)
        path = os.fspath(path)
        if os.path.exists(path) and not overwrite:  # before any work or warning
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        params = self.get_params(deep=False)
        if params["callbacks"] is not None:
            warnings.warn("callbacks are not saved.", UserWarning, stacklevel=2)
            params["callbacks"] = None
        if callable(params["lr_schedule"]):
            raise ValueError("A callable lr_schedule cannot be saved; set "
                             "lr_schedule to a string before save().")
        if not isinstance(params["random_state"], (Integral, type(None))):
            params["random_state"] = None
        payload = {
            "params": params,
            "state_dict": _state_to_cpu(self.module_.state_dict()),
            "fitted": {
                "history_": self.history_,
                "n_features_in_": self.n_features_in_,
                "input_scale_": self.input_scale_,
                "kl_divergence_": self._saved_kl_divergence(),
                "init_history_": getattr(self, "init_history_", []),
                "init_scores_": getattr(self, "init_scores_", None),
                "feature_names_in_": getattr(self, "feature_names_in_", None),
            },
        }
        write_model_file(path, payload, overwrite=overwrite)

    def _saved_kl_divergence(self):
        """``kl_divergence_``; during fit (a Checkpoint at a stage's end) it is
        not set yet, and the last epoch's validation KL of the same weights
        stands in for it."""
        if hasattr(self, "kl_divergence_"):
            return self.kl_divergence_.tolist()
        if self.history_:
            return list(self.history_[-1]["kl_per_component"])
        return [float("nan")] * self.n_components

    @classmethod
    def load(cls, path, *, device=None):
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        device : str or None, default=None
            Where to put the weights; None uses the saved ``device`` parameter
            ("auto" falls back to the CPU without CUDA).

        Returns
        -------
        SPIVAE
            A fitted estimator.
        """
        payload = read_model_file(os.fspath(path))
        params = payload["params"]
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(f"{path} has parameters this version of SPIVAE does not "
                             f"know: {', '.join(unknown)}; it was written by another "
                             "version of skspivae.")
        if device is not None:
            params["device"] = device
        est = cls(**params)
        config = est._module_config()
        module = SPIVAEModule(**config)
        module.load_state_dict(payload["state_dict"])
        est.module_ = module.to(_resolve_device(est.device, strict=False))
        est._config = config
        est._set_optimizer()
        fitted = payload["fitted"]
        est.history_ = fitted["history_"]
        est.n_features_in_ = fitted["n_features_in_"]
        est.input_scale_ = fitted["input_scale_"]
        est.init_history_ = fitted.get("init_history_", [])
        scores = fitted.get("init_scores_")
        est.init_scores_ = None if scores is None else np.asarray(scores)
        if fitted["feature_names_in_"] is not None:
            est.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        est._set_derived_attributes(fitted["kl_divergence_"])
        return est


# Module initialisation draws from torch's global CPU generator (fork_rng keeps
# it unchanged for the caller); the lock makes seed-and-build atomic when fits
# run in threads (joblib's threading backend, Dask thread workers).
_INIT_LOCK = threading.Lock()


def _new_module(config, seed):
    """A freshly initialised module; the global torch RNG is left as it was."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SPIVAEModule(**config)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(values, name):
    """A clear error for finite values that float32, the network's precision,
    cannot hold."""
    largest = float(np.max(np.abs(values), initial=0.0))
    if largest > _FLOAT32_MAX:
        raise ValueError(
            f"{name} reaches {largest:.3g} in magnitude, beyond {_FLOAT32_MAX:.4g}, "
            "the largest float32 value (SPIVAE computes in float32); rescale it.")


def _generator(seed, device):
    """A torch generator on ``device`` seeded from ``seed`` (an int) or from
    one draw of ``seed`` (a RandomState)."""
    if isinstance(seed, np.random.RandomState):
        seed = seed.randint(np.iinfo(np.int32).max)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _scale(dx, input_scale):
    """The constant displacements are divided by (see ``input_scale``)."""
    if input_scale is None:
        return 1.0
    if input_scale == "auto":
        rms = float(np.sqrt(np.mean(np.square(dx, dtype=np.float64))))
        return rms if rms > 0 and np.isfinite(rms) else 1.0
    return float(input_scale)


def _resolve_device(device, strict=True):
    """"auto" -> "cuda" when available else "cpu"; check a CUDA request."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', "
                         "'cpu', 'cuda' or 'cuda:N'.") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not supported: SPIVAE trains on "
                         "'cpu' or 'cuda' ('cuda:N'), or 'auto'.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise ValueError(f"device={device!r} but CUDA is not available here; "
                             "use device='cpu' or 'auto'.")
        return torch.device("cpu")
    if (resolved.type == "cuda" and resolved.index is not None
            and resolved.index >= torch.cuda.device_count()):
        raise ValueError(f"device={device!r} but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    return resolved


def _state_to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _state_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_state_to_cpu(v) for v in obj]
    return obj


def _copy_to_cpu(module):
    if next(module.parameters()).device.type == "cpu":
        return module
    return copy.deepcopy(module).cpu()
