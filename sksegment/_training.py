"""The training loop behind :class:`sksegment.CNNSegmenter`.

It knows nothing of scikit-learn: it takes a model, a loss, a batch sampler
and a few callables, and runs epochs on a device, with mixed precision,
learning-rate schedules, gradient clipping, a guard against non-finite losses,
early stopping with best-weights restore, clean interruption and atomic
checkpoints.
"""

import copy
import math
import sys
import time
import warnings

import numpy as np
import torch

from ._checkpoint import rng_state, save_checkpoint, to_cpu
from ._data import IGNORE, HostArray, host_images, to_tensor
from ._forward import MIN_CELLS, pad_to_multiple
from ._metric_scorers import check_score
from ._prefetch import Prefetcher

#: The clock of time budgets (a module attribute, so that tests can replace it).
_clock = time.perf_counter

#: Batches prepared ahead of the step in a background thread (0: none).
PREFETCH_BATCHES = 2

#: Times a non-finite loss or gradient is answered by restoring the last good
#: state and halving the learning rate before fit gives up.
MAX_NONFINITE_RETRIES = 5


# --------------------------------------------------------------------------- #
# device and precision
# --------------------------------------------------------------------------- #
def resolve_device(device):
    """``"auto"`` -> CUDA when available, else CPU; any other torch device
    string is checked for availability."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device string ({exc}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was asked for but CUDA is not available on this machine; "
                "use device='auto' or 'cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are present."
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device={device!r} was asked for but MPS is not available.")
    elif dev.type != "cpu":
        raise ValueError(f"device={device!r}: only 'auto', 'cpu', 'cuda[:i]' and 'mps' are supported.")
    return dev


def cpu_has_bf16():
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), where
    bf16 autocast makes convolutions faster (a training step of the default
    U-Net on 160x192 patches took 148 ms instead of 203 ms on an AMD EPYC
    with AVX512-BF16). Elsewhere bf16 is emulated and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(check() for check in checks if check is not None)
    except Exception:  # noqa: BLE001 - a private probe that changed: take the safe answer
        return False


def cuda_has_bf16(device):
    """Whether the GPU ``device`` computes in bf16 natively: compute
    capability 8.0 (Ampere) or later. Older GPUs (T4, V100) can emulate bf16
    tensors, which ``torch.cuda.is_bf16_supported()`` counts, but cuDNN has
    no bf16 convolutions there; they train in fp16 with a gradient scaler."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index).major >= 8


def _auto_bf16(device):
    if device.type == "cuda":
        return cuda_has_bf16(device)
    return device.type == "cpu" and cpu_has_bf16()


def resolve_precision(precision, device):
    """Return ``(autocast_dtype or None, use_grad_scaler)``: "auto" is bf16
    where the device computes in bf16 natively (most GPUs, CPUs with
    AVX512-BF16 or AMX), fp16 with a gradient scaler on older GPUs, and fp32
    elsewhere."""
    cuda = device.type == "cuda"
    if precision == "fp32":
        return None, False
    if precision == "auto":
        if _auto_bf16(device):
            return torch.bfloat16, False
        return (torch.float16, True) if cuda else (None, False)
    if precision == "bf16" and (cuda or device.type == "cpu"):
        return torch.bfloat16, False
    if precision == "fp16" and cuda:
        return torch.float16, True
    raise ValueError(f"precision={precision!r} needs a CUDA device; got device {device}.")


def precision_name(precision, device):
    """What ``precision`` resolves to for training on ``device``: "fp32",
    "bf16" or "fp16"."""
    dtype, _ = resolve_precision(precision, device)
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def inference_dtype(precision, device):
    """The autocast dtype of prediction (None: fp32) for the ``precision``
    parameter on ``device``: as in training where the device supports it,
    else fp32 (a model trained with fp16 on a GPU predicts in fp32 on a CPU)."""
    if device.type == "cuda" or (device.type == "cpu" and precision in ("auto", "bf16")):
        return resolve_precision(precision, device)[0]
    return None


# --------------------------------------------------------------------------- #
# optimizer and learning-rate schedule
# --------------------------------------------------------------------------- #
def _can_fuse(parameters):
    """Whether torch's fused optimizer kernels can update ``parameters``: all
    floating point, on one CPU or CUDA device."""
    devices = {p.device for p in parameters}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(torch.is_floating_point(p) for p in parameters))


def make_optimizer(name, parameters, learning_rate, weight_decay):
    """The optimizer ``name`` over ``parameters``, with torch's fused kernels
    where they apply: one kernel updates every tensor instead of a handful of
    small ops per tensor (the same update, faster; a training step of the
    default U-Net on 2 CPU cores takes 0.108 s instead of 0.122 s)."""
    parameters = list(parameters)
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay, "fused": _can_fuse(parameters)}
    if name == "adam":
        return torch.optim.Adam(parameters, **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(parameters, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(parameters, momentum=0.9, nesterov=True, **kwargs)
    raise ValueError(f"optimizer={name!r}; expected one of 'adam', 'adamw', 'sgd'.")


class Schedule:
    """Learning rate as a function of training progress.

    Progress is the fraction of ``max_epochs`` done or, with ``max_time``,
    of the time budget spent, whichever is further: a schedule laid over a
    time budget reaches its end when the time runs out. ``constant``,
    ``cosine`` (to 1 % of the base rate at the end), ``onecycle`` (linear rise
    to the base rate over the first 30 %, cosine fall to 0.04 % of it) and
    ``plateau`` (halved when the monitored figure has not improved for
    more than ``patience`` epochs in a row, as torch's ``ReduceLROnPlateau``). ``warmup_epochs`` ramps the rate linearly from 1 %
    of its value over the first epochs.
    """

    def __init__(self, kind, base_lr, max_epochs, warmup_epochs=0, patience=5, max_time=None):
        self.kind, self.base_lr, self.max_epochs = kind, base_lr, max(max_epochs, 1)
        self.warmup_epochs, self.patience, self.max_time = warmup_epochs, patience, max_time
        self.scale = 1.0  # plateau halvings and non-finite-loss halvings
        self._best = -math.inf
        self._bad_epochs = 0

    def progress(self, t, elapsed=0.0):
        """Fraction of the schedule done after ``t`` (fractional) epochs and
        ``elapsed`` seconds."""
        frac = t / self.max_epochs
        if self.max_time is not None:
            frac = max(frac, elapsed / self.max_time)
        return min(frac, 1.0)

    def lr(self, t, elapsed=0.0):
        lr = self.base_lr * self.scale
        frac = self.progress(t, elapsed)
        if self.kind == "cosine":
            lr *= 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac))
        elif self.kind == "onecycle":
            rise = 0.3
            if frac < rise:
                lr *= 0.04 + 0.96 * frac / rise
            else:
                lr *= 0.0004 + (1 - 0.0004) * 0.5 * (1 + math.cos(math.pi * (frac - rise) / (1 - rise)))
        if self.warmup_epochs and t < self.warmup_epochs:
            lr *= 0.01 + 0.99 * t / self.warmup_epochs
        return lr

    def end_epoch(self, monitored):
        """Feed the figure to watch (greater is better) to the plateau rule."""
        if self.kind != "plateau" or monitored is None:
            return
        if monitored > self._best + 1e-4 * abs(self._best if math.isfinite(self._best) else 0):
            self._best, self._bad_epochs = monitored, 0
        else:
            self._bad_epochs += 1
            if self._bad_epochs > self.patience:
                self.scale *= 0.5
                self._bad_epochs = 0

    def state_dict(self):
        # the horizon (max_epochs, max_time) belongs to the run that loads the
        # state, not to the one that saved it
        return {"scale": self.scale, "best": self._best, "bad_epochs": self._bad_epochs}

    def load_state_dict(self, state):
        self.scale, self._best, self._bad_epochs = state["scale"], state["best"], state["bad_epochs"]


# --------------------------------------------------------------------------- #
# batches on the device
# --------------------------------------------------------------------------- #
def pad_batch(x, y, multiple):
    """Pad ``x`` with zeros and ``y`` with IGNORE on the bottom/right so H and W
    are multiples of ``multiple`` and hold at least :data:`MIN_CELLS` of them
    (a lone small image or crop keeps two bottleneck pixels); padded pixels
    cost nothing."""
    x, _ = pad_to_multiple(x, multiple, mode="constant", value=0, min_cells=MIN_CELLS)
    if y is not None:
        y, _ = pad_to_multiple(y, multiple, mode="constant", value=IGNORE, min_cells=MIN_CELLS)
    return x, y


class BatchPreparer:
    """NumPy batch -> device tensors: convert, encode labels, augment,
    normalise, pad.

    :meth:`host` does the host half (dtype conversion, pinning for CUDA) and
    may run in a background thread; calling the preparer does the rest on the
    device, from a NumPy batch or from what :meth:`host` returned.
    """

    def __init__(self, codec, device, pad_multiple=1, chain=None, generator=None,
                 channels_last=False, normalize=None):
        self.codec, self.device, self.pad_multiple = codec, device, pad_multiple
        self.chain, self.generator, self.channels_last = chain, generator, channels_last
        self.normalize = normalize

    def host(self, batch):
        x, y, valid = batch
        pin = self.device.type == "cuda"
        return (host_images(x, pin), self.codec.host(y, pin),
                None if valid is None else HostArray(torch.from_numpy(valid), bool, pin))

    def __call__(self, x_np, y_np, valid=None, training=True):
        x = to_tensor(x_np, self.device)
        y = self.codec.encode(y_np, self.device)
        if valid is not None:
            valid = valid.tensor if isinstance(valid, HostArray) else torch.from_numpy(valid)
            y = y.masked_fill(~valid.to(self.device, non_blocking=True), IGNORE)
        if self.chain is not None:
            x, y = self.chain(x, y, generator=self.generator, training=training)
        if self.normalize is not None:
            x = self.normalize(x)
        x, y = pad_batch(x, y, self.pad_multiple)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


# --------------------------------------------------------------------------- #
# the loop
# --------------------------------------------------------------------------- #
class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or gradient again and again.

    A subclass of ``FloatingPointError``. Before raising it, ``fit`` skips
    each non-finite step, restores the weights of the epoch's start and
    halves the learning rate; the message says what to change. The
    estimator is left as it was before the call.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment import CNNSegmenter, NonFiniteLossError
    >>> X = np.zeros((2, 16, 16), dtype=np.uint8)
    >>> y = np.zeros((2, 16, 16), dtype=np.uint8); y[:, 4:8, 4:8] = 1
    >>> def nan_loss(logits, target):
    ...     return logits.sum() * float("nan")
    >>> seg = CNNSegmenter(width=2, max_epochs=20, loss=nan_loss, batch_size=2,
    ...                    patch_size=None, device="cpu")
    >>> try:
    ...     seg.fit(X, y)
    ... except NonFiniteLossError:
    ...     print(hasattr(seg, "model_"))
    False
    """


def _nonfinite_message(lr, max_grad_norm):
    return (
        f"Training diverged: the loss or its gradient was NaN/inf {MAX_NONFINITE_RETRIES + 1} "
        f"times even after restoring the last good weights and halving the learning rate "
        f"(now {lr:.3g}). Likely causes and fixes: a learning_rate that is too high (lower it "
        f"10x); exploding gradients (set max_grad_norm, for example 1.0"
        f"{'' if max_grad_norm is None else f'; it is {max_grad_norm} now, try a smaller one'}); "
        "NaN or huge values in X (check the inputs and their scaling); precision='fp16' "
        "overflow (use 'bf16' or 'fp32')."
    )


def _loss_label(loss_fn):
    """The user's loss in a few words: the callable a ``_CallableLoss`` wraps,
    or the module's class."""
    fn = getattr(loss_fn, "fn", None)
    return repr(fn) if fn is not None else type(loss_fn).__name__


def check_loss_value(loss, logits, loss_fn):
    """Raise a clear error when a training step's loss cannot be back-propagated.

    Reads only tensor metadata (type, shape, ``requires_grad``): no device sync.

    Raises
    ------
    TypeError
        The loss did not return a scalar tensor.
    ValueError
        The logits do not depend on the network's parameters (a detached
        output, integer logits), or the loss does not depend on the logits
        (``requires_grad`` is False while the logits require it): it was
        computed from detached tensors, NumPy values, or is a constant.
    """
    if not logits.requires_grad:
        raise ValueError(
            "model must return logits computed from its trainable parameters; its output "
            "does not depend on them (requires_grad is False): a detached output, integer "
            "logits or frozen parameters. Return the float output of the network's layers.")
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"loss {_loss_label(loss_fn)} must return a scalar tensor; got "
                        f"{type(loss).__name__}"
                        + (f" of shape {tuple(loss.shape)}"
                           if isinstance(loss, torch.Tensor) else "") + ".")
    if logits.requires_grad and not loss.requires_grad:
        raise ValueError(
            f"loss {_loss_label(loss_fn)} must be computed from the logits with torch "
            "operations; its value does not depend on them (requires_grad is False), so "
            "the network cannot learn from it. Do not detach the logits, call .item(), "
            ".numpy() or torch.tensor(...) on them, or return a constant.")


class Trainer:
    """Owns the model, optimizer, schedule and precision for one fit.

    ``state_dict`` / ``load_state_dict`` capture everything needed to resume.
    """

    def __init__(self, model, loss_fn, *, device, optimizer="adam", learning_rate=1e-3,
                 weight_decay=0.0, lr_schedule="constant", warmup_epochs=0, max_epochs=1,
                 max_time=None, plateau_patience=5, precision="auto", compile=False,
                 max_grad_norm=None):
        self.model, self.loss_fn, self.device = model, loss_fn, device
        self.optimizer = make_optimizer(optimizer, model.parameters(), learning_rate, weight_decay)
        self.schedule = Schedule(lr_schedule, learning_rate, max_epochs, warmup_epochs,
                                 plateau_patience, max_time)
        self.autocast_dtype, use_scaler = resolve_precision(precision, device)
        self.scaler = _grad_scaler() if use_scaler else None
        self.max_grad_norm = max_grad_norm
        self.forward = model
        if compile:
            self.forward = try_compile(model)
        self.nonfinite_events = 0
        self.dist = None  # a data-parallel fit's Context (sksegment._distributed) sets itself

    def _set_lr(self, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def step(self, x, y):
        """One optimisation step; returns the detached loss, or None when the
        step was skipped because the loss or a gradient was not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.forward(x)
        logits = logits.float()
        loss = self.loss_fn(logits, y)
        check_loss_value(loss, logits, self.loss_fn)
        finite = torch.isfinite(loss)
        if self.dist is not None:  # every rank skips a step when any rank must
            finite = self.dist.all_finite(finite)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            # GradScaler skips the step by itself when it finds inf/NaN in the
            # fp16 gradients and lowers its scale; only the loss is checked here.
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return loss.detach() if bool(finite) else None
        loss.backward()
        if self.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        else:
            norm = _grad_norm(self.model.parameters())
        # One bool read per step (the same device sync GradScaler makes) keeps
        # a non-finite step from ever reaching the weights.
        if not bool(finite & torch.isfinite(norm)):
            return None
        self.optimizer.step()
        return loss.detach()

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "nonfinite_events": self.nonfinite_events,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.nonfinite_events = state.get("nonfinite_events", 0)


def _grad_scaler():
    # torch.amp.GradScaler("cuda") from torch 2.3; torch.cuda.amp.GradScaler before
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def _grad_norm(parameters):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def try_compile(model):
    if not hasattr(torch, "compile"):
        warnings.warn("compile=True: torch.compile is not available; running eagerly.",
                      RuntimeWarning, stacklevel=3)
        return model
    current = torch.compile(model)

    def forward(x):
        nonlocal current
        try:
            return current(x)
        except Exception as exc:  # compilers fail lazily, at the first call
            if current is model:
                raise
            warnings.warn(f"compile=True: torch.compile failed ({type(exc).__name__}: {exc}); "
                          "falling back to eager execution.", RuntimeWarning, stacklevel=2)
            current = model
            return model(x)

    return forward


def _clone_state(module):
    """Parameters and buffers (batch-norm statistics too), by value."""
    return _clone_tree(module.state_dict())


def _clone_tree(obj):
    """A copy of nested dicts, lists and tuples with every tensor cloned (by
    value): an optimizer's state_dict, at a fraction of ``deepcopy``'s cost."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tree(v) for v in obj)
    return copy.deepcopy(obj)


def seed_torch(seed, device):
    """Seed torch's CPU generator and, on CUDA, the generator of ``device``
    (not every GPU's, as ``torch.manual_seed`` would)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)


class TrainingLog:
    """What the loop remembers between epochs (and across warm starts)."""

    def __init__(self):
        self.history = []
        self.validation_scores = []
        self.best_score = -math.inf
        self.best_epoch = None
        self.best_state = None
        self.no_improvement = 0
        self.train_time = 0.0  # seconds of training over every call

    def state_dict(self):
        return dict(vars(self))

    def load_state_dict(self, state):
        vars(self).update(state)


def _train_epoch(trainer, batches, prepare, snapshot, epoch, n_batches, elapsed, start,
                 max_time):
    """The steps of one epoch. Returns the summed loss (a device tensor, read
    once per epoch), the steps that counted, the steps taken, and whether the
    time budget ran out (the epoch then ends after that step). ``elapsed()``
    gives the seconds of the budget spent (the same on every rank), read
    once after each step; ``start`` is its value at the epoch's start."""
    loss_sum = torch.zeros((), device=trainer.device)
    n_done = steps = 0
    out_of_time = False
    t = start
    for b, (x_np, y_np, valid) in enumerate(batches):
        trainer._set_lr(trainer.schedule.lr(epoch + b / n_batches, t))
        x, y = prepare(x_np, y_np, valid)
        loss = trainer.step(x, y)
        steps += 1
        t = elapsed()
        out_of_time = max_time is not None and t >= max_time
        if loss is None:
            trainer.nonfinite_events += 1
            if trainer.nonfinite_events > MAX_NONFINITE_RETRIES:
                raise NonFiniteLossError(_nonfinite_message(
                    trainer.schedule.lr(epoch), trainer.max_grad_norm))
            _restore(trainer, snapshot)
            trainer.schedule.scale *= 0.5
            warnings.warn(
                f"Non-finite loss or gradient at epoch {epoch + 1}: weights restored to the "
                f"start of the epoch and learning rate halved to "
                f"{trainer.schedule.lr(epoch, t):.3g}.", RuntimeWarning, stacklevel=3)
        else:
            loss_sum += loss
            n_done += 1
        if out_of_time:
            break
    return loss_sum, n_done, steps, out_of_time


def _ahead(batches, host):
    """The epoch's batches, prepared :data:`PREFETCH_BATCHES` ahead in a
    background thread (their host half, ``host``, done there too)."""
    if PREFETCH_BATCHES > 0:
        return Prefetcher(batches, depth=PREFETCH_BATCHES, transform=host)
    return _Inline(batches, host)


class _Inline:
    """:class:`Prefetcher`'s interface without a thread."""

    def __init__(self, batches, host):
        self._it = batches if host is None else map(host, batches)

    def __iter__(self):
        return iter(self._it)

    def close(self):
        pass


def _restore(trainer, snapshot):
    """Put the weights, buffers and optimizer state of ``snapshot`` back, by
    value: the snapshot stays intact for a later restore in the same epoch
    (``Optimizer.load_state_dict`` would otherwise share its tensors)."""
    trainer.model.load_state_dict(snapshot[0])
    trainer.optimizer.load_state_dict(_clone_tree(snapshot[1]))


def run_epochs(trainer, sampler, prepare, rng, log, *, n_epochs, train_indices=None,
               validate=None, early_stopping=False, n_iter_no_change=10, tol=1e-4,
               generator=None, checkpoint_path=None, checkpoint_meta=None, verbose=0,
               max_time=None, time_offset=0.0, before_epoch=None):
    """Train for up to ``n_epochs`` more epochs, or until ``max_time`` seconds
    (counted from ``time_offset``, the seconds an interrupted run already
    spent) are spent.

    ``validate`` (or None) returns a score, greater is better. With
    ``early_stopping`` the loop stops after ``n_iter_no_change`` epochs whose
    score did not beat the best by ``tol``, and the best weights are put back.
    The time budget is checked after every step: when it is spent, the epoch
    ends there (its history entry has ``"steps"`` < ``"n_batches"``), is
    validated and recorded, and training stops with the weights of that last
    step (or the best on validation).
    Each epoch first draws a seed from ``rng`` (a NumPy RandomState) and seeds
    torch and ``generator`` (the augmentation generator) with it, so the
    NumPy state alone decides the rest of a run: a checkpoint stores it, and
    resumes on any device. ``before_epoch`` (or None) is called with the
    history so far (``log.history``) before each epoch's batches are drawn.
    Returns True when training was interrupted by KeyboardInterrupt.
    """
    model = trainer.model
    dist = trainer.dist  # data parallel (sksegment._distributed): shared figures
    if dist is not None and not dist.is_main:
        verbose, checkpoint_path = 0, None  # progress and checkpoints on rank 0 only
    interrupted = in_epoch = False
    start_epoch = len(log.history)
    snapshot = None
    clock = _clock
    call_start = clock()
    time_before = log.train_time

    def elapsed():  # seconds of the budget spent
        return time_offset + clock() - call_start

    def budget_elapsed():  # under data parallelism the ranks' largest: one schedule, one stop
        if dist is None or max_time is None:
            return elapsed()
        return dist.max_float(elapsed())

    try:
        for epoch in range(start_epoch, start_epoch + n_epochs):
            if before_epoch is not None:
                before_epoch(log.history)
            t0 = clock()
            rng_before, n_scores = rng.get_state(), len(log.validation_scores)
            epoch_seed = int(rng.randint(np.iinfo(np.int32).max))
            # the epoch's batches come from a generator of its own, alike on
            # every rank (one permutation to share): how far the prefetching
            # thread has drawn never changes later epochs
            batch_rng = np.random.RandomState(epoch_seed)
            if dist is not None:
                epoch_seed = dist.rank_seed(epoch_seed)  # own augmentation draws per rank
            seed_torch(epoch_seed, trainer.device)
            if generator is not None:
                generator.manual_seed(epoch_seed)
            snapshot = (_clone_state(model), _clone_tree(trainer.optimizer.state_dict()))
            in_epoch = True  # until its record is in the history
            model.train()
            n_batches = sampler.n_batches(train_indices)
            ahead = _ahead(sampler.epoch(batch_rng, train_indices), getattr(prepare, "host", None))
            batches = ahead
            if verbose and sys.stderr.isatty():  # a bar on a terminal; log files get lines
                from tqdm.auto import tqdm
                batches = tqdm(ahead, total=n_batches, leave=False, desc=f"epoch {epoch + 1}",
                               file=sys.stderr)
            start = budget_elapsed()
            lr_epoch = trainer.schedule.lr(epoch, start)
            try:
                loss_sum, n_done, steps, out_of_time = _train_epoch(
                    trainer, batches, prepare, snapshot, epoch, n_batches, budget_elapsed,
                    start, max_time)
            finally:
                ahead.close()
                if batches is not ahead:
                    batches.close()
            if dist is not None:  # the loss over all ranks; rank 0's weights everywhere
                loss_sum, n_done = dist.end_epoch(model, loss_sum, n_done)
            train_loss = float(loss_sum) / max(n_done, 1)
            record = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr_epoch}
            if out_of_time and steps < n_batches:  # an epoch the budget cut short
                record.update(steps=steps, n_batches=n_batches)
            score = None
            if validate is not None:
                model.eval()
                score = check_score(validate())
                record["val_score"] = score
                log.validation_scores.append(score)
            record["seconds"] = clock() - t0
            if dist is not None:  # one history, one pace for rules that read it
                record["seconds"] = dist.broadcast_float(record["seconds"])
            log.train_time = time_before + clock() - call_start
            record["time"] = log.train_time
            log.history.append(record)
            in_epoch = False
            trainer.schedule.end_epoch(score if score is not None else -train_loss)

            stop = False
            if score is not None and early_stopping:
                # tol decides whether training goes on (as in scikit-learn's
                # MLP); the best weights are those of the highest score
                if score > log.best_score + tol:
                    log.no_improvement = 0
                else:
                    log.no_improvement += 1
                    stop = log.no_improvement >= n_iter_no_change
            if score is not None and score > log.best_score:
                log.best_score, log.best_epoch = score, epoch + 1
                if early_stopping:
                    log.best_state = _clone_state(model)
            if verbose:
                from tqdm.auto import tqdm
                extra = "" if score is None else f", validation score {score:.4f}"
                tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.4f}{extra}, "
                           f"lr {lr_epoch:.3g}, {record['seconds']:.1f}s", file=sys.stderr)
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, {
                    "meta": checkpoint_meta or {},
                    "trainer": to_cpu(trainer.state_dict()),
                    "log": to_cpu(log.state_dict()),
                    "rng": rng_state(rng),
                })
            if stop or out_of_time:
                break
    except KeyboardInterrupt:
        interrupted = True
        keeps_best = early_stopping and log.best_state is not None
        if in_epoch:  # cut mid-epoch: back to its start (weights, optimizer, draws)
            _restore(trainer, snapshot)
            rng.set_state(rng_before)
            del log.validation_scores[n_scores:]
        kept = ("the best weights on the validation data so far" if keeps_best
                else "the weights of the last complete epoch")
        warnings.warn(
            f"Training interrupted after {len(log.history)} complete epoch(s); the estimator "
            f"keeps {kept} and its history.", RuntimeWarning, stacklevel=2)
    if early_stopping and log.best_state is not None:
        model.load_state_dict(log.best_state)
    model.eval()
    return interrupted


def check_model_output(model, n_channels_in, n_classes, pad_multiple, device):
    """One small forward pass before training: the network must map
    (N, C, H, W) to logits (N, n_classes, H, W)."""
    # at least 32 pixels and 2 at the deepest level (instance norm needs more than one)
    side = pad_multiple * max(2, -(-32 // pad_multiple))
    x = torch.zeros(2, n_channels_in, side, side, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ValueError(f"The model failed on a test input of shape {tuple(x.shape)} "
                         f"(N, C, H, W): {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"The model must return logits of shape (N, K, H, W); for an input of "
                         f"shape {tuple(x.shape)} it returned {got}.")
    if out.shape[1] != n_classes:
        raise ValueError(f"The model gives {out.shape[1]} output channel(s), but y has "
                         f"{n_classes} classes: the network must output one logit channel "
                         "per class (for a factory model, use its n_classes argument).")
    if tuple(out.shape[2:]) != (side, side) or out.shape[0] != 2:
        raise ValueError(f"The model must keep N, H and W: for an input of shape "
                         f"{tuple(x.shape)} it returned {tuple(out.shape)}.")


def unpickled_device(device):
    """Where an unpickled network goes: the device it was fitted on when this
    machine has it; else cuda:0 (with a warning) for a missing GPU index; else
    the CPU (a model fitted on CUDA predicts on a machine without one)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return torch.device("cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        warnings.warn(f"This segmenter was fitted on {device}, which this machine does not "
                      f"have ({torch.cuda.device_count()} CUDA device(s)); its network is "
                      "placed on cuda:0.", UserWarning, stacklevel=3)
        return torch.device("cuda", 0)
    return device


def discard(model=None, trainer=None):
    """Free what a fit holds on its device: gradients and optimizer state
    (and, for a network that is being thrown away, its weights)."""
    if trainer is not None:
        trainer.optimizer.state.clear()
        trainer.optimizer.zero_grad(set_to_none=True)
    if model is not None:
        model.to_empty(device="meta")


def release_cuda_memory(device):
    """Hand cached CUDA blocks back after fit so many fits can share a GPU."""
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()
