"""What every loss of :mod:`sksegment.losses` shares: the checks of logits,
target and class weights, and the base module that runs them.

Nothing here reads a value back from the device: every selection is a mask
or a ``torch.where``. The one exception is the check that the target holds
valid class indices, which runs on the CPU only (see
:meth:`_SegmentationLoss.forward`).
"""

import inspect
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ._data import IGNORE
from ._validation import check_int

# Smallest denominator any ratio of the losses divides by: keeps a degenerate
# sum (all probabilities underflowed to 0, or nothing labelled) finite.
TINY = 1e-12


def as_weight_tensor(class_weight, n_classes=None, name="class_weight"):
    """A per-class weight vector, checked, as a float32 CPU tensor (or None)."""
    if class_weight is None:
        return None
    if isinstance(class_weight, (str, Mapping)):
        raise TypeError(
            f"{name} must be None or a sequence of {n_classes or 'K'} per-class weights here; "
            f"got {class_weight!r}. Use compute_class_weight to turn 'balanced' or a "
            "{label: weight} dict into such a vector."
        )
    try:
        if isinstance(class_weight, torch.Tensor):
            w = class_weight.detach().to("cpu", torch.float64)
        else:
            w = torch.as_tensor(np.asarray(class_weight, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of real numbers; got {class_weight!r} "
                        f"({exc}).") from None
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one weight per class); got shape "
                         f"{tuple(w.shape)}.")
    if n_classes is not None and w.shape[0] != n_classes:
        raise ValueError(f"{name} must have one weight per class ({n_classes}); got "
                         f"{w.shape[0]}.")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must hold finite non-negative weights; got {w.tolist()}.")
    if not (w > 0).any():
        raise ValueError(f"{name} must hold at least one positive weight; got {w.tolist()}.")
    return w.to(torch.float32)


def _described(value):
    """``Tensor of dtype torch.int64`` or the type name, for error messages."""
    name = type(value).__name__
    return f"{name} of dtype {value.dtype}" if isinstance(value, torch.Tensor) else name


def check_inputs(logits, target, class_weight):
    """Types and shapes of ``logits`` (N, K, H, W) and ``target`` (N, H, W)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating point torch.Tensor of shape (N, K, H, W); "
                        f"got {_described(logits)}.")
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, K, H, W); got {tuple(logits.shape)}.")
    if not isinstance(target, torch.Tensor) or target.is_floating_point() \
            or target.is_complex() or target.dtype == torch.bool:
        raise TypeError("target must be an integer torch.Tensor of class indices of shape "
                        f"(N, H, W); got {_described(target)}.")
    n, k, h, w = logits.shape
    if k < 1:
        raise ValueError(f"logits must have at least one class (K >= 1) on axis 1; got shape "
                         f"{tuple(logits.shape)}.")
    if tuple(target.shape) != (n, h, w):
        raise ValueError(f"target must have shape (N, H, W) = {(n, h, w)} to match logits of "
                         f"shape {tuple(logits.shape)}; got {tuple(target.shape)}.")
    if class_weight is not None and class_weight.shape[0] != k:
        raise ValueError(f"the loss has {class_weight.shape[0]} class weights but logits have "
                         f"{k} classes.")


def check_target_values(target, valid, n_classes, ignore_index):
    """Raise if a labelled pixel of ``target`` is not in ``0 .. n_classes-1``.

    Reads one flag back from the tensor's device: call it on CPU tensors only.
    """
    bad = valid & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        found = torch.unique(target[bad]).tolist()[:10]
        raise ValueError(f"target holds values {found} outside the class indices "
                         f"0..{n_classes - 1} (ignore_index={ignore_index}).")


def probabilities(logits, target, valid):
    """Softmax probabilities ``p`` and one-hot target ``q``, ``(N, K, H, W)`` in
    the dtype of ``logits``, both zero at ignored pixels."""
    n_classes = logits.shape[1]
    v = valid.unsqueeze(1)
    p = torch.where(v, logits.softmax(dim=1), torch.zeros((), device=logits.device))
    classes = torch.arange(n_classes, device=target.device).view(1, -1, 1, 1)
    q = ((target.unsqueeze(1) == classes) & v).to(logits.dtype)
    return p, q


def pixel_weights(target, valid, weight):
    """``weight[target]`` at labelled pixels and 0 elsewhere, ``(N, H, W)``
    float32 (1 at labelled pixels when ``weight`` is None)."""
    if weight is None:
        return valid.to(torch.float32)
    safe = torch.where(valid, target, torch.zeros_like(target))
    return weight[safe] * valid


class _SegmentationLoss(nn.Module):
    """Common machinery of the losses: class weights, ignore index, the input
    checks, and the float32 computation with autocast off.

    Subclasses implement ``_loss(logits, target, valid, weight)`` with
    ``valid`` the mask of labelled pixels and ``weight`` the class weights in
    the dtype of ``logits`` (or None).
    """

    def __init__(self, *, class_weight=None, ignore_index=IGNORE):
        super().__init__()
        self.ignore_index = check_int(ignore_index, "ignore_index")
        self.register_buffer("class_weight", as_weight_tensor(class_weight), persistent=False)

    def forward(self, logits, target):
        check_inputs(logits, target, self.class_weight)
        target = target.long()
        valid = target != self.ignore_index
        # The class-index check reads a flag back from the device: it runs on
        # the CPU, where that costs nothing, and not on accelerators, where it
        # would stall every step (the segmenter's targets are valid by
        # construction).
        if target.device.type == "cpu":
            check_target_values(target, valid, logits.shape[1], self.ignore_index)
        # float32 (float64 stays float64) with autocast off, so that every sum
        # is accurate also for float16/bfloat16 logits.
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        weight = None
        if self.class_weight is not None:
            weight = self.class_weight.to(logits.device, dtype)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._loss(logits.to(dtype), target, valid, weight)

    def _loss(self, logits, target, valid, weight):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self):
        parts = [f"{k}={getattr(self, k)!r}" for k in self._param_names()]
        if self.ignore_index != IGNORE:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.class_weight is not None:
            parts.append(f"class_weight={[round(x, 4) for x in self.class_weight.tolist()]}")
        return ", ".join(parts)

    @classmethod
    def _param_names(cls):
        """Names of the parameters a user may set through ``loss_params``."""
        sig = inspect.signature(cls.__init__)
        return [name for name, par in sig.parameters.items()
                if name not in ("self", "class_weight", "ignore_index")
                and par.kind is inspect.Parameter.KEYWORD_ONLY]
