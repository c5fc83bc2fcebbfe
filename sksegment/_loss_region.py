"""Region losses, computed from per-class sums over pixels: Dice, Jaccard
and Tversky (one formula), and the Lovasz-softmax surrogate of Jaccard.

Public through :mod:`sksegment.losses`.
"""

import torch

from ._data import IGNORE
from ._loss_base import TINY, _SegmentationLoss, probabilities
from ._validation import check_bool, check_number, check_option


def _included_classes(n_classes, include_background, device):
    """Bool mask ``(K,)`` of the classes that count: all, or all but class 0."""
    first = 0 if include_background else 1
    return torch.arange(n_classes, device=device) >= first


def _tversky_index(tp, pred, true, alpha, beta, smooth, present):
    """Per-class Tversky index ``(TP + s) / (TP + alpha FP + beta FN + s)``.

    ``tp``, ``pred`` and ``true`` are the sums of ``p q``, of ``p`` (or of
    ``p^2``) and of ``q``, so ``FP = pred - tp`` and ``FN = true - tp``. The
    denominator is written ``alpha pred + beta true + (1 - alpha - beta) tp``:
    with ``alpha = beta = 1`` it is Jaccard's ``pred + true - tp`` and with
    ``alpha = beta = 1/2`` half of Dice's ``pred + true``, operation for
    operation. Classes outside ``present`` enter no mean; their denominator
    is replaced by 1 so that neither value nor gradient is NaN.
    """
    den = alpha * pred + beta * true + (1.0 - alpha - beta) * tp + smooth
    safe = torch.where(present, den, torch.ones_like(den))
    return (tp + smooth) / safe.clamp_min(TINY)


class _RegionLoss(_SegmentationLoss):
    """Dice, Jaccard and Tversky: ``1 - `` the mean Tversky index over the
    classes present, plus the predicted mass on absent classes.

    Subclasses give the index's ``(alpha, beta, smooth, squared)`` in
    ``_tversky_terms()``; ``squared`` sums ``p^2`` instead of ``p`` in the
    denominator.
    """

    def __init__(self, *, smooth, per_image, include_background, penalize_absent,
                 class_weight, ignore_index):
        super().__init__(class_weight=class_weight, ignore_index=ignore_index)
        self.smooth = check_number(smooth, "smooth", low=0)
        self.per_image = check_bool(per_image, "per_image")
        self.include_background = check_bool(include_background, "include_background")
        self.penalize_absent = check_bool(penalize_absent, "penalize_absent")

    def _tversky_terms(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sums(self, t):
        """Per-class sums ``(B, K)`` of ``t`` (N, K, H, W): one row per image
        with ``per_image``, else one row for the batch."""
        if self.per_image:
            return t.sum(dim=(2, 3))
        return t.sum(dim=(0, 2, 3)).unsqueeze(0)

    def _loss(self, logits, target, valid, weight):
        alpha, beta, smooth, squared = self._tversky_terms()
        p, q = probabilities(logits, target, valid)
        tp, pred, true = self._sums(p * q), self._sums(p), self._sums(q)
        pred_term = self._sums(p * p) if squared else pred
        n_labelled = valid.sum(dim=(1, 2)) if self.per_image else valid.sum().reshape(1)
        n_labelled = n_labelled.to(torch.float32)
        n_classes = logits.shape[1]
        included = _included_classes(n_classes, self.include_background, logits.device)
        present = (true > 0) & included  # (B, K)
        score = _tversky_index(tp, pred_term, true, alpha, beta, smooth, present)
        w = torch.ones(n_classes, device=logits.device) if weight is None else weight
        w_present = w * present
        region = (w_present * (1.0 - score)).sum(dim=1) / w_present.sum(dim=1).clamp_min(TINY)
        if self.penalize_absent:
            # Mass on absent classes, weighted by w / (mean of w over the
            # included classes); 0 when no class is included.
            w_mean = (w * included).sum() / included.sum().clamp_min(1)
            absent = included & ~present
            false_mass = (w / w_mean.clamp_min(TINY) * absent * pred).sum(dim=1)
            region = region + false_mass / n_labelled.clamp_min(1.0)
        has_pixels = (n_labelled > 0).to(torch.float32)
        return (region * has_pixels).sum() / has_pixels.sum().clamp_min(1.0)


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
        self.squared = check_bool(squared, "squared")

    def _tversky_terms(self):
        # (2 TP + s) / (P + Q + s) is the Tversky index with alpha = beta = 1/2
        # and s / 2 (numerator and denominator halved); q is 0/1, so sum q^2 ==
        # sum q and only P changes with ``squared``.
        return 0.5, 0.5, self.smooth / 2, self.squared


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

    def _tversky_terms(self):
        return 1.0, 1.0, self.smooth, False


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
    the Dice loss with the plain denominator (``DiceLoss(squared=False)``, whose
    ``smooth`` is twice this one's) and ``alpha = beta = 1`` the Jaccard loss.
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
        self.alpha = check_number(alpha, "alpha", low=0)
        self.beta = check_number(beta, "beta", low=0)
        if self.alpha + self.beta == 0:
            raise ValueError("alpha and beta must not both be 0.")

    def _tversky_terms(self):
        return self.alpha, self.beta, self.smooth, False


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
        self.classes = check_option(classes, "classes", ("present", "all"))
        self.per_image = check_bool(per_image, "per_image")
        self.include_background = check_bool(include_background, "include_background")

    def _loss(self, logits, target, valid, weight):
        p, q = probabilities(logits, target, valid)
        n_classes = p.shape[1]
        if self.per_image:
            p, q = p.flatten(2), q.flatten(2)  # (N, K, HW)
            labelled = valid.flatten(1).any(dim=1)
        else:
            p = p.transpose(0, 1).reshape(1, n_classes, -1)  # (1, K, NHW)
            q = q.transpose(0, 1).reshape(1, n_classes, -1)
            labelled = valid.any().reshape(1)
        # Ignored pixels have p = q = 0, hence error 0: they sort last and
        # contribute 0 whatever their gradient weight. The sort (one per class
        # and group, along the pixels) runs on the device and reads nothing back.
        errors = (q - p).abs()
        errors, order = errors.sort(dim=2, descending=True)
        fg = q.gather(2, order)
        n_fg = fg.sum(dim=2, keepdim=True)
        intersection = n_fg - fg.cumsum(dim=2)
        union = n_fg + (1.0 - fg).cumsum(dim=2)  # >= 1 everywhere
        jaccard = 1.0 - intersection / union
        grad = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=2)
        per_class = (errors * grad).sum(dim=2)  # (B, K)
        counts = _included_classes(n_classes, self.include_background, p.device)
        counts = counts.expand_as(per_class)
        if self.classes == "present":
            counts = counts & (n_fg[..., 0] > 0)
        w = torch.ones(n_classes, device=p.device) if weight is None else weight
        w_counts = w * counts
        per_group = (w_counts * per_class).sum(dim=1) / w_counts.sum(dim=1).clamp_min(TINY)
        labelled = labelled.to(torch.float32)
        return (per_group * labelled).sum() / labelled.sum().clamp_min(1.0)
