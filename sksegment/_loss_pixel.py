"""Pixel-wise losses: cross-entropy, mean absolute error and focal loss.

Public through :mod:`sksegment.losses`.
"""

import torch
import torch.nn.functional as F

from ._data import IGNORE
from ._loss_base import TINY, _SegmentationLoss, pixel_weights, probabilities
from ._validation import check_number


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
        self.label_smoothing = check_number(label_smoothing, "label_smoothing", low=0, high=1,
                                            high_open=True)

    def _loss(self, logits, target, valid, weight):
        per_pixel = F.cross_entropy(logits, torch.where(valid, target, self.ignore_index),
                                    weight=weight, ignore_index=self.ignore_index,
                                    reduction="none", label_smoothing=self.label_smoothing)
        if weight is None:
            denominator = valid.sum().to(torch.float32)
        else:
            denominator = pixel_weights(target, valid, weight).sum()
        return per_pixel.sum() / denominator.clamp_min(TINY)


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
        p, q = probabilities(logits, target, valid)
        per_pixel = (p - q).abs().mean(dim=1)  # zero at ignored pixels
        pixel_weight = pixel_weights(target, valid, weight)
        return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(TINY)


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
        self.gamma = check_number(gamma, "gamma", low=0)

    def _loss(self, logits, target, valid, weight):
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_pt = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1))[:, 0]
        per_pixel = -log_pt
        if self.gamma > 0:
            # 1 - p_t computed as -expm1(log p_t) for accuracy near p_t = 1;
            # the clamp keeps the gradient of x**gamma finite at x = 0.
            one_minus = (-torch.expm1(log_pt)).clamp_min(TINY)
            per_pixel = per_pixel * one_minus.pow(self.gamma)
        if weight is not None:
            per_pixel = per_pixel * weight[safe]
        per_pixel = torch.where(valid, per_pixel, torch.zeros((), device=logits.device))
        return per_pixel.sum() / valid.sum().clamp_min(1).to(torch.float32)
