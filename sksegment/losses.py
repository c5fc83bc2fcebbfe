"""Segmentation losses, chosen by name.

Every loss is an :class:`torch.nn.Module` called as ``loss(logits, target)``:

- ``logits``: float tensor ``(N, K, H, W)`` (any float dtype; the loss is
  computed in float32, float64 stays float64, with autocast turned off);
- ``target``: integer tensor ``(N, H, W)`` of class indices ``0 .. K-1``, where
  ``ignore_index`` (by default :data:`sksegment._data.IGNORE`, -100) marks
  pixels that count in nothing;

and returns a scalar tensor. When every pixel is ignored the loss is ``0``
(still attached to the graph, so ``backward()`` gives zero gradients).

Names, classes and the parameters each takes through ``loss_params``:

- ``"cross_entropy"``, :class:`CrossEntropyLoss`: ``label_smoothing``;
- ``"mae"``, :class:`MAELoss`: none;
- ``"focal"``, :class:`FocalLoss`: ``gamma``;
- ``"dice"``, :class:`DiceLoss`: ``smooth``, ``squared``, ``per_image``,
  ``include_background``, ``penalize_absent``;
- ``"jaccard"``, :class:`JaccardLoss`: ``smooth``, ``per_image``,
  ``include_background``, ``penalize_absent``;
- ``"tversky"``, :class:`TverskyLoss`: ``alpha``, ``beta`` and those of
  ``"jaccard"``;
- ``"lovasz"``, :class:`LovaszLoss`: ``classes``, ``per_image``,
  ``include_background``.

Every loss also takes ``class_weight`` and ``ignore_index`` (given to
:func:`get_loss` directly, not through ``loss_params``).

:func:`get_loss` builds a loss from a name, from a weighted sum written as a
string (``"0.7*dice+0.3*focal"``, a :class:`CompoundLoss`), from a module or
from a callable. :func:`compute_class_weight` turns the scikit-learn style
``class_weight`` (``None``, ``"balanced"`` or ``{label: weight}``) into the
per-class vector the losses take.
"""

import inspect
import math
import numbers
import re
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._data import IGNORE

__all__ = [
    "LOSSES",
    "CompoundLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "LovaszLoss",
    "MAELoss",
    "TverskyLoss",
    "compute_class_weight",
    "get_loss",
    "loss_names",
]

# Smallest denominator any ratio in this module divides by: keeps a degenerate
# sum (all probabilities underflowed to 0, or nothing labelled) finite.
_TINY = 1e-12


# ---------------------------------------------------------------------------
# argument checking helpers
# ---------------------------------------------------------------------------

def _check_number(value, name, *, low=0.0, low_inclusive=True, high=None,
                  high_inclusive=True):
    """A finite real number within bounds, as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        lo = "" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be a finite number in {lo}, {hi}; got {value!r}.")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _check_ignore_index(ignore_index):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an integer; got {ignore_index!r}.")
    return int(ignore_index)


def _as_weight_tensor(class_weight, n_classes=None, name="class_weight"):
    """Validate a per-class weight vector and return it as float32 tensor
    (or None)."""
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


def _check_inputs(logits, target, class_weight):
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating point torch.Tensor of shape (N, K, H, W); "
                        f"got {type(logits).__name__}"
                        + (f" of dtype {logits.dtype}" if isinstance(logits, torch.Tensor)
                           else "") + ".")
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, K, H, W); got {tuple(logits.shape)}.")
    if not isinstance(target, torch.Tensor) or target.is_floating_point() \
            or target.is_complex() or target.dtype == torch.bool:
        raise TypeError("target must be an integer torch.Tensor of class indices of shape "
                        f"(N, H, W); got {type(target).__name__}"
                        + (f" of dtype {target.dtype}" if isinstance(target, torch.Tensor)
                           else "") + ".")
    n, k, h, w = logits.shape
    if tuple(target.shape) != (n, h, w):
        raise ValueError(f"target must have shape (N, H, W) = {(n, h, w)} to match logits of "
                         f"shape {tuple(logits.shape)}; got {tuple(target.shape)}.")
    if class_weight is not None and class_weight.shape[0] != k:
        raise ValueError(f"the loss has {class_weight.shape[0]} class weights but logits have "
                         f"{k} classes.")


# ---------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------

class _SegmentationLoss(nn.Module):
    """Common machinery: class weights, ignore index, input checks, the
    probabilities and the one-hot target restricted to labelled pixels."""

    def __init__(self, *, class_weight=None, ignore_index=IGNORE):
        super().__init__()
        self.ignore_index = _check_ignore_index(ignore_index)
        self.register_buffer("class_weight", _as_weight_tensor(class_weight), persistent=False)

    def forward(self, logits, target):
        _check_inputs(logits, target, self.class_weight)
        target = target.long()
        n_classes = logits.shape[1]
        valid = target != self.ignore_index
        # The range check reads a flag back from the device: done on the CPU,
        # where that costs nothing, and skipped on accelerators, where it would
        # stall every training step (the segmenter's targets are in range by
        # construction).
        bad = valid & ((target < 0) | (target >= n_classes)) if target.device.type == "cpu" \
            else None
        if bad is not None and bool(bad.any()):
            found = torch.unique(target[bad]).tolist()[:10]
            raise ValueError(f"target holds values {found} outside the class indices "
                             f"0..{n_classes - 1} (ignore_index={self.ignore_index}).")
        # float32 (float64 stays float64) with autocast off, so that every sum
        # below is accurate also for float16/bfloat16 logits.
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        weight = None
        if self.class_weight is not None:
            weight = self.class_weight.to(logits.device, dtype)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._loss(logits.to(dtype), target, valid, weight)

    def _loss(self, logits, target, valid, weight):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _probabilities(logits, target, valid):
        """Softmax probabilities and one-hot target, in the dtype of logits,
        ``(N, K, H, W)`` and zero at ignored pixels."""
        n_classes = logits.shape[1]
        safe = torch.where(valid, target, torch.zeros_like(target))
        v = valid.unsqueeze(1)
        p = torch.where(v, logits.softmax(dim=1), torch.zeros((), device=logits.device))
        q = F.one_hot(safe, n_classes).permute(0, 3, 1, 2).to(logits.dtype) * v
        return p, q

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


# ---------------------------------------------------------------------------
# pixel-wise losses
# ---------------------------------------------------------------------------

class CrossEntropyLoss(_SegmentationLoss):
    """Pixel-wise cross-entropy (``"cross_entropy"``).

    The mean over labelled pixels of ``-w[y] log softmax(logits)[y]``, divided by
    the sum of ``w[y]`` over those pixels, exactly as
    :func:`torch.nn.functional.cross_entropy` with ``weight=class_weight`` and
    ``ignore_index``; but ``0`` (not NaN) when every pixel is ignored.

    Parameters
    ----------
    label_smoothing : float, default=0.0
        In ``[0, 1)``; the target becomes ``(1 - label_smoothing)`` on the true
        class plus ``label_smoothing / K`` everywhere.
    class_weight : array-like of shape (K,), default=None
        Weight of each class.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import CrossEntropyLoss
    >>> logits = torch.zeros(1, 2, 2, 2)
    >>> target = torch.tensor([[[0, 1], [1, -100]]])
    >>> round(CrossEntropyLoss()(logits, target).item(), 4)  # log(2)
    0.6931
    """

    def __init__(self, *, label_smoothing=0.0, class_weight=None, ignore_index=IGNORE):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)
        self.label_smoothing = _check_number(label_smoothing, "label_smoothing", high=1.0,
                                             high_inclusive=False)

    def _loss(self, logits, target, valid, weight):
        per_pixel = F.cross_entropy(logits, torch.where(valid, target, self.ignore_index),
                                    weight=weight, ignore_index=self.ignore_index,
                                    reduction="none", label_smoothing=self.label_smoothing)
        if weight is None:
            denominator = valid.sum().to(torch.float32)
        else:
            safe = torch.where(valid, target, torch.zeros_like(target))
            denominator = (weight[safe] * valid).sum()
        return per_pixel.sum() / denominator.clamp_min(_TINY)


class MAELoss(_SegmentationLoss):
    """Mean absolute error between probabilities and one-hot target (``"mae"``).

    With ``p`` the softmax probabilities and ``q`` the one-hot target, the loss
    of a labelled pixel ``i`` is ``(1/K) * sum_k |p_ik - q_ik|`` (which equals
    ``2 (1 - p_i,y_i) / K``), and the loss is the mean of that over labelled
    pixels. With ``class_weight`` it is the weighted mean
    ``sum_i w[y_i] l_i / sum_i w[y_i]``. It lies in ``[0, 2/K]``.

    Parameters
    ----------
    class_weight : array-like of shape (K,), default=None
        Weight of each class; a pixel counts with the weight of its true class.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import MAELoss
    >>> logits = torch.zeros(1, 2, 1, 2)  # p = 0.5 everywhere
    >>> target = torch.tensor([[[0, 1]]])
    >>> MAELoss()(logits, target).item()
    0.5
    """

    def __init__(self, *, class_weight=None, ignore_index=IGNORE):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)

    def _loss(self, logits, target, valid, weight):
        p, q = self._probabilities(logits, target, valid)
        per_pixel = (p - q).abs().mean(dim=1)  # zero at ignored pixels
        if weight is None:
            pixel_weight = valid.to(torch.float32)
        else:
            safe = torch.where(valid, target, torch.zeros_like(target))
            pixel_weight = weight[safe] * valid
        return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(_TINY)


class FocalLoss(_SegmentationLoss):
    """Focal loss (``"focal"``; Lin et al., ICCV 2017).

    The mean over labelled pixels of ``-alpha_t (1 - p_t)^gamma log p_t``,
    with ``p_t`` the softmax probability of the true class and ``alpha_t`` the
    ``class_weight`` of the true class (1 without ``class_weight``). As in the
    paper the sum is divided by the number of labelled pixels (not by the sum
    of ``alpha_t``), so with ``gamma=0`` and no class weights it equals
    ``"cross_entropy"``.

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter, >= 0.
    class_weight : array-like of shape (K,), default=None
        Per-class ``alpha``.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import FocalLoss
    >>> logits = torch.zeros(1, 2, 1, 2)  # p_t = 0.5: 0.25 * log(2)
    >>> round(FocalLoss()(logits, torch.tensor([[[0, 1]]])).item(), 4)
    0.1733
    """

    def __init__(self, *, gamma=2.0, class_weight=None, ignore_index=IGNORE):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)
        self.gamma = _check_number(gamma, "gamma")

    def _loss(self, logits, target, valid, weight):
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_pt = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1))[:, 0]
        per_pixel = -log_pt
        if self.gamma > 0:
            # 1 - p_t computed as -expm1(log p_t) for accuracy near p_t = 1;
            # the clamp keeps the gradient of x**gamma finite at x = 0.
            one_minus = (-torch.expm1(log_pt)).clamp_min(_TINY)
            per_pixel = per_pixel * one_minus.pow(self.gamma)
        if weight is not None:
            per_pixel = per_pixel * weight[safe]
        per_pixel = torch.where(valid, per_pixel, torch.zeros((), device=logits.device))
        return per_pixel.sum() / valid.sum().clamp_min(1).to(torch.float32)


# ---------------------------------------------------------------------------
# region losses
# ---------------------------------------------------------------------------

class _RegionLoss(_SegmentationLoss):
    """Losses built from per-class sums over pixels: Dice, Jaccard, Tversky.

    Subclasses define ``_score(sums)`` giving the per-class score in [0, 1]
    (1 is perfect) from a dict of sums of shape ``(B, K)``.
    """

    def __init__(self, *, smooth, per_image, include_background, penalize_absent,
                 class_weight, ignore_index):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)
        self.smooth = _check_number(smooth, "smooth")
        self.per_image = _check_bool(per_image, "per_image")
        self.include_background = _check_bool(include_background, "include_background")
        self.penalize_absent = _check_bool(penalize_absent, "penalize_absent")

    def _loss(self, logits, target, valid, weight):
        p, q = self._probabilities(logits, target, valid)
        dims = (2, 3) if self.per_image else (0, 2, 3)
        pq = p * q
        sums = {
            "pq": pq.sum(dim=dims),
            "p": p.sum(dim=dims),
            "q": q.sum(dim=dims),
            "p2": (p * p).sum(dim=dims),
        }
        if not self.per_image:
            sums = {k: v.unsqueeze(0) for k, v in sums.items()}
        n_labelled = valid.sum(dim=(1, 2)) if self.per_image else valid.sum().reshape(1)
        n_labelled = n_labelled.to(torch.float32)
        n_classes = logits.shape[1]
        included = torch.ones(n_classes, dtype=torch.bool, device=logits.device)
        if not self.include_background:
            included[0] = False
        present = (sums["q"] > 0) & included  # (B, K)
        absent = ~present & included
        score = self._score(sums, present)
        w = torch.ones(n_classes, device=logits.device) if weight is None else weight
        w_present = w * present
        region = (w_present * (1.0 - score)).sum(dim=1) / w_present.sum(dim=1).clamp_min(_TINY)
        if self.penalize_absent:
            w_incl = w[included]
            scale = w / w_incl.mean().clamp_min(_TINY) if w_incl.numel() else w
            false_mass = (scale * absent * sums["p"]).sum(dim=1)
            region = region + false_mass / n_labelled.clamp_min(1.0)
        has_pixels = (n_labelled > 0).to(torch.float32)
        return (region * has_pixels).sum() / has_pixels.sum().clamp_min(1.0)

    @staticmethod
    def _ratio(numerator, denominator, present):
        # Classes outside ``present`` do not enter the mean; give them a
        # harmless denominator so neither the value nor the gradient is NaN.
        safe = torch.where(present, denominator, torch.ones_like(denominator))
        return numerator / safe.clamp_min(_TINY)


_REGION_RULES = """
    The sums run over the labelled pixels of the whole batch ("batch {name}"),
    or of each image when ``per_image=True`` (then the loss is the mean over
    images that have labelled pixels).

    **Which classes count.** The mean over classes runs over the classes
    *present* in the target (at least one labelled pixel of that class in the
    batch, or in the image with ``per_image=True``), weighted by
    ``class_weight`` when given. A class absent from the target enters this
    mean neither as 0 (that would punish predicting it correctly nowhere) nor
    as 1. With ``include_background=False`` class 0 is left out of everything.

    **False positives on absent classes.** With ``penalize_absent=True``
    (default) the loss adds, for every included class absent from the target,
    the probability mass the prediction puts on it, as a fraction of the
    labelled pixels: ``sum_k absent (w_k / mean(w)) * sum_i p_ik / n_labelled``
    (``w`` = 1 without ``class_weight``; the mean runs over the included
    classes). This term is 0 when nothing is predicted for absent classes, at
    most 1 with uniform weights, has gradient ``1 / n_labelled`` per pixel, and
    is what makes a target of background only still penalise foreground
    predictions when ``include_background=False``. The loss thus lies in
    ``[0, 2]`` with uniform weights, and is 0 for a perfect prediction.
    Denominators of excluded classes are replaced by 1 and every denominator
    is clamped at 1e-12, so values and gradients stay finite. When every pixel
    is ignored the loss is 0.
"""


class DiceLoss(_RegionLoss):
    """Soft Dice loss (``"dice"``).

    With ``p`` the softmax probabilities and ``q`` the one-hot target, the
    Dice score of class ``k`` is::

        D_k = (2 sum_i p_ik q_ik + smooth) / (sum_i p_ik^2 + sum_i q_ik^2 + smooth)

    (``squared=True``, the default), or with the plain denominator
    ``sum_i p_ik + sum_i q_ik + smooth`` (``squared=False``). The loss is
    ``1 - mean_k D_k`` over the classes that count (see below).
    {rules}
    Parameters
    ----------
    smooth : float, default=0.0
        Added to numerator and denominator. 0 keeps the formula exact; it is
        safe because only classes present in the target (denominator >= 1)
        enter the mean.
    squared : bool, default=True
        Squared (``sum p^2 + sum q^2``) or plain (``sum p + sum q``) denominator.
    per_image : bool, default=False
        Sums per image instead of over the batch.
    include_background : bool, default=True
        Whether class 0 counts.
    penalize_absent : bool, default=True
        Whether predicted mass on classes absent from the target is added.
    class_weight : array-like of shape (K,), default=None
        Weights of the mean over classes.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import DiceLoss
    >>> target = torch.tensor([[[0, 1], [1, 1]]])
    >>> perfect = 20.0 * torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float()
    >>> round(DiceLoss()(perfect, target).item(), 6)
    0.0
    >>> round(DiceLoss()(torch.zeros(1, 2, 2, 2), target).item(), 4)
    0.375
    """

    def __init__(self, *, smooth=0.0, squared=True, per_image=False, include_background=True,
                 penalize_absent=True, class_weight=None, ignore_index=IGNORE):
        super().__init__(smooth=smooth, per_image=per_image,
                         include_background=include_background,
                         penalize_absent=penalize_absent, class_weight=class_weight,
                         ignore_index=ignore_index)
        self.squared = _check_bool(squared, "squared")

    def _score(self, sums, present):
        # q is 0/1, so sum q^2 == sum q.
        den = (sums["p2"] if self.squared else sums["p"]) + sums["q"]
        return self._ratio(2.0 * sums["pq"] + self.smooth, den + self.smooth, present)


DiceLoss.__doc__ = DiceLoss.__doc__.format(rules=_REGION_RULES.format(name="dice"))


class JaccardLoss(_RegionLoss):
    """Soft Jaccard (intersection over union) loss (``"jaccard"``).

    With ``p`` the softmax probabilities and ``q`` the one-hot target, the soft
    IoU of class ``k`` is::

        J_k = (sum_i p_ik q_ik + smooth)
              / (sum_i p_ik + sum_i q_ik - sum_i p_ik q_ik + smooth)

    and the loss is ``1 - mean_k J_k`` over the classes that count (see below).
    {rules}
    Parameters
    ----------
    smooth : float, default=0.0
        Added to numerator and denominator (the denominator of a present class
        is at least 1, so 0 is safe).
    per_image : bool, default=False
        Sums per image instead of over the batch.
    include_background : bool, default=True
        Whether class 0 counts.
    penalize_absent : bool, default=True
        Whether predicted mass on classes absent from the target is added.
    class_weight : array-like of shape (K,), default=None
        Weights of the mean over classes.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import JaccardLoss
    >>> target = torch.tensor([[[0, 1], [1, 1]]])
    >>> round(JaccardLoss()(torch.zeros(1, 2, 2, 2), target).item(), 4)  # 1 - (0.5/2.5 + 1.5/3.5)/2
    0.6857
    """

    def __init__(self, *, smooth=0.0, per_image=False, include_background=True,
                 penalize_absent=True, class_weight=None, ignore_index=IGNORE):
        super().__init__(smooth=smooth, per_image=per_image,
                         include_background=include_background,
                         penalize_absent=penalize_absent, class_weight=class_weight,
                         ignore_index=ignore_index)

    def _score(self, sums, present):
        union = sums["p"] + sums["q"] - sums["pq"]
        return self._ratio(sums["pq"] + self.smooth, union + self.smooth, present)


JaccardLoss.__doc__ = JaccardLoss.__doc__.format(rules=_REGION_RULES.format(name="jaccard"))


class TverskyLoss(_RegionLoss):
    """Tversky loss (``"tversky"``, Salehi et al. 2017).

    With ``p`` the softmax probabilities and ``q`` the one-hot target, the
    Tversky index of class ``k`` is::

        TI_k = (sum_i p q + smooth)
               / (sum_i p q + alpha sum_i p (1 - q) + beta sum_i (1 - p) q + smooth)

    (sums over pixels ``i`` of class ``k``'s channel) and the loss is
    ``1 - mean_k TI_k`` over the classes that count (see below). ``alpha``
    weighs false positives, ``beta`` false negatives; ``alpha = beta = 0.5`` is
    the Dice loss with the plain denominator (``DiceLoss(squared=False)``) and
    ``alpha = beta = 1`` the Jaccard loss.
    {rules}
    Parameters
    ----------
    alpha : float, default=0.5
        Weight of false positives, >= 0.
    beta : float, default=0.5
        Weight of false negatives, >= 0 (``alpha + beta > 0``).
    smooth : float, default=0.0
        Added to numerator and denominator.
    per_image : bool, default=False
        Sums per image instead of over the batch.
    include_background : bool, default=True
        Whether class 0 counts.
    penalize_absent : bool, default=True
        Whether predicted mass on classes absent from the target is added.
    class_weight : array-like of shape (K,), default=None
        Weights of the mean over classes.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import DiceLoss, TverskyLoss
    >>> logits, target = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    >>> tversky = TverskyLoss(alpha=0.5, beta=0.5)(logits, target)
    >>> bool(torch.isclose(tversky, DiceLoss(squared=False)(logits, target)))
    True
    """

    def __init__(self, *, alpha=0.5, beta=0.5, smooth=0.0, per_image=False,
                 include_background=True, penalize_absent=True, class_weight=None,
                 ignore_index=IGNORE):
        super().__init__(smooth=smooth, per_image=per_image,
                         include_background=include_background,
                         penalize_absent=penalize_absent, class_weight=class_weight,
                         ignore_index=ignore_index)
        self.alpha = _check_number(alpha, "alpha")
        self.beta = _check_number(beta, "beta")
        if self.alpha + self.beta == 0:
            raise ValueError("alpha and beta must not both be 0.")

    def _score(self, sums, present):
        tp = sums["pq"]
        fp = sums["p"] - tp
        fn = sums["q"] - tp
        den = tp + self.alpha * fp + self.beta * fn + self.smooth
        return self._ratio(tp + self.smooth, den, present)


TverskyLoss.__doc__ = TverskyLoss.__doc__.format(rules=_REGION_RULES.format(name="tversky"))


class LovaszLoss(_SegmentationLoss):
    """Lovász-softmax loss (``"lovasz"``; Berman, Rannen Triki and Blaschko,
    CVPR 2018), a convex surrogate of the Jaccard loss.

    For each class ``c``, the errors ``m_i = |q_ic - p_ic|`` of the labelled
    pixels are sorted in decreasing order (permutation ``pi``) and::

        loss_c = sum_i m_pi(i) * (Delta_c({pi(1) .. pi(i)}) - Delta_c({pi(1) .. pi(i-1)}))

    the Lovász extension of the Jaccard loss
    ``Delta_c(M) = |M| / |G_c union M|`` of the set ``M`` of mispredicted pixels
    (``G_c`` the pixels of class ``c``). The loss is the mean of ``loss_c``
    (weighted by ``class_weight``) over the classes present in the target
    (``classes="present"``, as in the paper) or over all classes
    (``classes="all"``; an absent class then costs its largest predicted
    probability). The pixels are those of the whole batch, or of each image
    with ``per_image=True`` (then the mean over images with labelled pixels).
    When no class counts the loss is 0.

    Parameters
    ----------
    classes : {"present", "all"}, default="present"
        Which classes enter the mean.
    per_image : bool, default=False
        Computed per image and averaged, instead of over the batch.
    include_background : bool, default=True
        Whether class 0 counts.
    class_weight : array-like of shape (K,), default=None
        Weights of the mean over classes.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import LovaszLoss
    >>> target = torch.tensor([[[0, 1], [1, 1]]])
    >>> round(LovaszLoss()(torch.zeros(1, 2, 2, 2), target).item(), 4)  # all errors 0.5
    0.5
    """

    def __init__(self, *, classes="present", per_image=False, include_background=True,
                 class_weight=None, ignore_index=IGNORE):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be 'present' or 'all'; got {classes!r}.")
        self.classes = classes
        self.per_image = _check_bool(per_image, "per_image")
        self.include_background = _check_bool(include_background, "include_background")

    def _loss(self, logits, target, valid, weight):
        p, q = self._probabilities(logits, target, valid)
        n_classes = p.shape[1]
        if self.per_image:
            p, q = p.flatten(2), q.flatten(2)  # (N, K, HW)
            labelled = valid.flatten(1).any(dim=1)
        else:
            p = p.transpose(0, 1).reshape(1, n_classes, -1)  # (1, K, NHW)
            q = q.transpose(0, 1).reshape(1, n_classes, -1)
            labelled = valid.any().reshape(1)
        # Ignored pixels have p = q = 0, hence error 0: they sort last and
        # contribute 0 whatever their gradient weight.
        errors = (q - p).abs()
        errors, order = errors.sort(dim=2, descending=True)
        fg = q.gather(2, order)
        n_fg = fg.sum(dim=2, keepdim=True)
        intersection = n_fg - fg.cumsum(dim=2)
        union = n_fg + (1.0 - fg).cumsum(dim=2)  # >= 1 everywhere
        jaccard = 1.0 - intersection / union
        grad = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=2)
        per_class = (errors * grad).sum(dim=2)  # (B, K)
        counts = torch.ones_like(per_class, dtype=torch.bool)
        if self.classes == "present":
            counts = n_fg[..., 0] > 0
        if not self.include_background:
            counts[:, 0] = False
        w = torch.ones(n_classes, device=p.device) if weight is None else weight
        w_counts = w * counts
        per_group = (w_counts * per_class).sum(dim=1) / w_counts.sum(dim=1).clamp_min(_TINY)
        labelled = labelled.to(torch.float32)
        return (per_group * labelled).sum() / labelled.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------
# registry, weighted sums, builder
# ---------------------------------------------------------------------------

#: Loss name -> loss class.
LOSSES = {
    "cross_entropy": CrossEntropyLoss,
    "mae": MAELoss,
    "focal": FocalLoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "tversky": TverskyLoss,
    "lovasz": LovaszLoss,
}


def loss_names():
    """Names accepted by :func:`get_loss`, sorted.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from sksegment.losses import loss_names
    >>> "dice" in loss_names()
    True
    """
    return sorted(LOSSES)


class CompoundLoss(nn.Module):
    """Weighted sum of losses: ``sum_j weight_j * loss_j(logits, target)``.

    :func:`get_loss` builds one from a string such as ``"0.7*dice+0.3*focal"``.

    Parameters
    ----------
    terms : sequence of (float, nn.Module) or (float, nn.Module, str)
        Positive weight, loss and optionally a name used in the repr.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import CompoundLoss, CrossEntropyLoss, DiceLoss
    >>> loss = CompoundLoss([(0.5, DiceLoss()), (1.0, CrossEntropyLoss())])
    >>> logits, target = torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, 1]]])
    >>> expected = 0.5 * DiceLoss()(logits, target) + CrossEntropyLoss()(logits, target)
    >>> bool(torch.isclose(loss(logits, target), expected))
    True
    """

    def __init__(self, terms):
        super().__init__()
        terms = list(terms)
        if not terms:
            raise ValueError("terms must hold at least one (weight, loss) pair.")
        weights, losses, names = [], [], []
        for j, term in enumerate(terms):
            if not isinstance(term, (tuple, list)) or len(term) not in (2, 3):
                raise TypeError(f"terms[{j}] must be a (weight, loss) or (weight, loss, name) "
                                f"tuple; got {term!r}.")
            weight = _check_number(term[0], f"terms[{j}] weight", low=0.0, low_inclusive=False)
            if not isinstance(term[1], nn.Module):
                raise TypeError(f"terms[{j}] loss must be an nn.Module; got {term[1]!r}.")
            weights.append(weight)
            losses.append(term[1])
            names.append(str(term[2]) if len(term) == 3 else type(term[1]).__name__)
        self.weights = tuple(weights)
        self.names = tuple(names)
        self.losses = nn.ModuleList(losses)

    def forward(self, logits, target):
        total = None
        for weight, loss in zip(self.weights, self.losses):
            value = weight * loss(logits, target)
            total = value if total is None else total + value
        return total

    def extra_repr(self):
        return "+".join(f"{w:g}*{n}" for w, n in zip(self.weights, self.names))


class _CallableLoss(nn.Module):
    """Wraps a callable ``(logits, target) -> scalar tensor``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, logits, target):
        value = self.fn(logits, target)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TypeError(f"the custom loss {self.fn!r} must return a scalar tensor; got "
                            f"{type(value).__name__}"
                            + (f" of shape {tuple(value.shape)}"
                               if isinstance(value, torch.Tensor) else "") + ".")
        return value.reshape(())

    def extra_repr(self):
        return repr(self.fn)


_TOKEN = re.compile(r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[*+-]))")


def _loss_error(spec, reason):
    return ValueError(
        f"loss={spec!r} is not a valid loss: {reason}. Give one of the names "
        f"{', '.join(loss_names())}, or a weighted sum of them such as "
        "'dice+cross_entropy' or '0.7*dice+0.3*cross_entropy'."
    )


def _parse(spec):
    """Parse ``"0.7*dice + 0.3*focal"`` into ``[(0.7, "dice"), (0.3, "focal")]``."""
    tokens, pos, text = [], 0, spec.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _loss_error(spec, f"unexpected character {text[pos:].lstrip()[:1]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    if not tokens:
        raise _loss_error(spec, "it is empty")
    terms, i = [], 0
    while True:
        weight = 1.0
        if i < len(tokens) and tokens[i] == ("op", "-"):
            raise _loss_error(spec, "weights must be positive")
        if i < len(tokens) and tokens[i][0] == "number":
            weight = float(tokens[i][1])
            if not (i + 1 < len(tokens) and tokens[i + 1] == ("op", "*")):
                raise _loss_error(spec, f"expected '*' and a loss name after {tokens[i][1]}")
            i += 2
            if not math.isfinite(weight) or weight <= 0:
                raise _loss_error(spec, f"weights must be finite and positive; got "
                                        f"{tokens[i - 2][1]}")
        if i >= len(tokens) or tokens[i][0] != "name":
            found = "the end" if i >= len(tokens) else repr(tokens[i][1])
            raise _loss_error(spec, f"expected a loss name, found {found}")
        name = tokens[i][1].lower()
        if name not in LOSSES:
            raise _loss_error(spec, f"unknown loss {tokens[i][1]!r}")
        if any(name == n for _, n in terms):
            raise _loss_error(spec, f"{name!r} appears more than once")
        terms.append((weight, name))
        i += 1
        if i == len(tokens):
            return terms
        if tokens[i] != ("op", "+"):
            raise _loss_error(spec, f"expected '+' between terms, found {tokens[i][1]!r}")
        i += 1


def _split_params(loss_params, names):
    """Per component name, the keyword arguments from ``loss_params``."""
    if loss_params is None:
        return {name: {} for name in names}
    if not isinstance(loss_params, Mapping):
        raise TypeError(f"loss_params must be None or a dict; got {loss_params!r}.")
    for key in loss_params:
        if not isinstance(key, str):
            raise TypeError(f"loss_params keys must be strings; got {key!r}.")
    keyed = [key for key in loss_params if key in LOSSES]
    if keyed:
        if len(keyed) != len(loss_params):
            raise ValueError(
                "loss_params must either be keyed by loss name ({'focal': {'gamma': 3}}) or "
                f"be a flat dict of parameters; got a mix of both: {sorted(loss_params)}."
            )
        out = {name: {} for name in names}
        for key, params in loss_params.items():
            if key not in out:
                raise ValueError(f"loss_params has parameters for {key!r}, which is not part "
                                 f"of the loss ({'+'.join(names)}).")
            if not isinstance(params, Mapping):
                raise TypeError(f"loss_params[{key!r}] must be a dict of parameters; got "
                                f"{params!r}.")
            accepted = LOSSES[key]._param_names()
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise ValueError(f"loss_params[{key!r}] has {unknown}, which {key!r} does not "
                                 f"take; it accepts {accepted}.")
            out[key] = dict(params)
        return out
    out = {name: {} for name in names}
    for key, value in loss_params.items():
        takers = [name for name in names if key in LOSSES[name]._param_names()]
        if not takers:
            accepted = {name: LOSSES[name]._param_names() for name in names}
            raise ValueError(f"loss_params has {key!r}, which no part of the loss takes; "
                             f"accepted keys: {accepted}.")
        for name in takers:
            out[name][key] = value
    return out


def get_loss(loss, *, n_classes, loss_params=None, class_weight=None, ignore_index=IGNORE):
    """Build a segmentation loss.

    Parameters
    ----------
    loss : str, nn.Module or callable
        - a name from :func:`loss_names`;
        - a weighted sum of names, ``"dice+cross_entropy"`` or
          ``"0.7*dice + 0.3*focal"`` (positive weights, default 1, each name
          at most once; numbers such as ``1e-1`` are fine), built as a
          :class:`CompoundLoss`;
        - an ``nn.Module`` instance, used as is;
        - a callable ``(logits, target) -> scalar tensor``, wrapped in a module.
    n_classes : int
        Number of classes ``K``.
    loss_params : dict, default=None
        Parameters of the named losses. Either flat (``{"gamma": 3}``): each
        key goes to every component of the loss that takes it, and a key no
        component takes is an error; or keyed by component name
        (``{"focal": {"gamma": 3}, "dice": {"smooth": 1.0}}``). Only for named
        losses.
    class_weight : array-like of shape (n_classes,), default=None
        Non-negative weight of each class (see :func:`compute_class_weight`),
        given to every component. Not accepted with a custom loss.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Returns
    -------
    loss : nn.Module
        Called as ``loss(logits, target)``, returns a scalar tensor.

    Raises
    ------
    ValueError
        For an unknown or malformed ``loss`` string, parameters a loss does not
        take, or a bad ``class_weight``.
    TypeError
        For a ``loss`` that is neither a string, a module nor a callable.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import get_loss
    >>> loss = get_loss("0.5*dice + cross_entropy", n_classes=2)
    >>> loss
    CompoundLoss(
      0.5*dice+1*cross_entropy
      (losses): ModuleList(
        (0): DiceLoss(smooth=0.0, squared=True, per_image=False, include_background=True, penalize_absent=True)
        (1): CrossEntropyLoss(label_smoothing=0.0)
      )
    )
    >>> logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    >>> target = torch.randint(0, 2, (2, 8, 8))
    >>> value = loss(logits, target)
    >>> value.backward()
    >>> value.ndim, logits.grad.shape
    (0, torch.Size([2, 2, 8, 8]))
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) \
            or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}.")
    n_classes = int(n_classes)
    ignore_index = _check_ignore_index(ignore_index)
    weight = _as_weight_tensor(class_weight, n_classes)
    if isinstance(loss, str):
        terms = _parse(loss)
        params = _split_params(loss_params, [name for _, name in terms])
        modules = []
        for weight_j, name in terms:
            try:
                module = LOSSES[name](**params[name], class_weight=weight,
                                      ignore_index=ignore_index)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"loss_params for {name!r}: {exc}") from None
            modules.append((weight_j, module, name))
        if len(modules) == 1 and modules[0][0] == 1.0:
            return modules[0][1]
        return CompoundLoss(modules)
    if isinstance(loss, type):
        raise TypeError(f"loss must be a loss name, an nn.Module instance or a callable; got "
                        f"the class {loss.__name__}. Pass an instance, e.g. {loss.__name__}().")
    if isinstance(loss, nn.Module) or callable(loss):
        if loss_params is not None:
            raise ValueError("loss_params only applies to named losses; configure the custom "
                             f"loss {loss!r} yourself (got loss_params={loss_params!r}).")
        if weight is not None:
            raise ValueError("class_weight cannot be applied to a custom loss; build the "
                             "weights into the loss yourself, or leave class_weight=None.")
        return loss if isinstance(loss, nn.Module) else _CallableLoss(loss)
    raise TypeError(f"loss must be a loss name (str), an nn.Module instance or a callable "
                    f"(logits, target) -> scalar tensor; got {type(loss).__name__}.")


def compute_class_weight(class_weight, classes, counts):
    """Per-class weights from a scikit-learn style ``class_weight``.

    Parameters
    ----------
    class_weight : None, "balanced" or dict
        ``None``: no weights. ``"balanced"``: ``n / (K * counts[k])`` with ``n``
        the number of labelled pixels, as in
        :func:`sklearn.utils.class_weight.compute_class_weight`. A dict
        ``{label: weight}``: the given weights, 1 for labels not in it.
    classes : array-like of shape (K,)
        Label values of the classes, in class-index order (``classes_``).
    counts : array-like of shape (K,)
        Number of labelled pixels of each class.

    Returns
    -------
    weights : ndarray of shape (K,), dtype float64, or None
        ``None`` when ``class_weight`` is None.

    Examples
    --------
    >>> from sksegment.losses import compute_class_weight
    >>> compute_class_weight("balanced", [0, 1], [30, 10]).tolist()
    [0.6666666666666666, 2.0]
    >>> compute_class_weight({1: 5.0}, [0, 1], [30, 10]).tolist()
    [1.0, 5.0]
    """
    if class_weight is None:
        return None
    classes = np.asarray(classes)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"classes must be a non-empty 1-D array of labels; got shape "
                         f"{classes.shape}.")
    k = classes.shape[0]
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict "
                             f"{{label: weight}}; got {class_weight!r}.")
        if isinstance(counts, torch.Tensor):
            counts = counts.detach().cpu().numpy()
        counts = np.asarray(counts)
        if counts.shape != (k,) or counts.dtype.kind not in "biuf":
            raise ValueError(f"counts must hold one pixel count per class ({k}); got "
                             f"{counts!r}.")
        counts = counts.astype(np.float64)
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"counts must be non-negative; got {counts.tolist()}.")
        missing = classes[counts == 0]
        if missing.size:
            raise ValueError(f"class_weight='balanced' needs labelled pixels of every class; "
                             f"classes {missing.tolist()} have none.")
        return counts.sum() / (k * counts)
    if isinstance(class_weight, Mapping):
        weights = np.ones(k, dtype=np.float64)
        labels = classes.tolist()
        for label, value in class_weight.items():
            matches = [i for i, c in enumerate(labels) if _same_label(c, label)]
            if not matches:
                raise ValueError(f"class_weight has label {label!r}, which is not among the "
                                 f"classes {labels}.")
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"class_weight[{label!r}] must be a finite non-negative "
                                 f"number; got {value!r}.")
            weights[matches[0]] = float(value)
        if not (weights > 0).any():
            raise ValueError("class_weight must give at least one class a positive weight.")
        return weights
    raise TypeError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; "
                    f"got {type(class_weight).__name__}.")


def _same_label(a, b):
    """Whether a class label equals a dict key (a string never equals a number)."""
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # incomparable types
        return False
