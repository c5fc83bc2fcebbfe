"""Tests of sksegment.losses: every loss against a NumPy reference written
from its formula, the class rules of the region losses, ignored pixels, edge
cases of the gradients, the string grammar of weighted sums, the builder's
errors, and that each loss trains a tiny network."""

import copy
import itertools
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight as sk_compute_class_weight
from sync_counter import SyncCounter
from torch import nn

from sksegment._data import IGNORE
from sksegment.losses import (
    LOSSES,
    CompoundLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LovaszLoss,
    MAELoss,
    TverskyLoss,
    compute_class_weight,
    get_loss,
    loss_names,
)

ALL = ["cross_entropy", "mae", "focal", "dice", "jaccard", "tversky", "lovasz"]
REGION = ["dice", "jaccard", "tversky"]


# ---------------------------------------------------------------------------
# NumPy references, written from the formulas with explicit loops
# ---------------------------------------------------------------------------

def softmax_np(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def labelled_pixels(target):
    """(n, h, w) of every labelled pixel."""
    return [idx for idx in np.ndindex(*target.shape) if target[idx] != IGNORE]


def ref_cross_entropy(logits, target, weight=None, label_smoothing=0.0):
    p = softmax_np(logits)
    k = logits.shape[1]
    w = np.ones(k) if weight is None else np.asarray(weight, float)
    num = den = 0.0
    for n, i, j in labelled_pixels(target):
        t = target[n, i, j]
        nll = -np.log(p[n, :, i, j])
        num += (1 - label_smoothing) * w[t] * nll[t]
        num += label_smoothing / k * sum(w[c] * nll[c] for c in range(k))
        den += w[t]
    return num / den if den else 0.0


def ref_mae(logits, target, weight=None):
    p = softmax_np(logits)
    k = logits.shape[1]
    w = np.ones(k) if weight is None else np.asarray(weight, float)
    num = den = 0.0
    for n, i, j in labelled_pixels(target):
        t = target[n, i, j]
        err = sum(abs(p[n, c, i, j] - (1.0 if c == t else 0.0)) for c in range(k)) / k
        num += w[t] * err
        den += w[t]
    return num / den if den else 0.0


def ref_focal(logits, target, gamma=2.0, weight=None):
    p = softmax_np(logits)
    pixels = labelled_pixels(target)
    total = 0.0
    for n, i, j in pixels:
        t = target[n, i, j]
        alpha = 1.0 if weight is None else weight[t]
        pt = p[n, t, i, j]
        total += -alpha * (1 - pt) ** gamma * np.log(pt)
    return total / len(pixels) if pixels else 0.0


def region_sums(p, target, images, k):
    """Per-class sums over the labelled pixels of ``images``."""
    s = {name: np.zeros(k) for name in ("pq", "p", "q", "p2")}
    n_lab = 0
    for n in images:
        for i in range(target.shape[1]):
            for j in range(target.shape[2]):
                if target[n, i, j] == IGNORE:
                    continue
                n_lab += 1
                for c in range(k):
                    pc = p[n, c, i, j]
                    qc = 1.0 if target[n, i, j] == c else 0.0
                    s["pq"][c] += pc * qc
                    s["p"][c] += pc
                    s["q"][c] += qc
                    s["p2"][c] += pc * pc
    return s, n_lab


def dice_score(s, c, smooth=0.0, squared=True):
    den = (s["p2"][c] + s["q"][c]) if squared else (s["p"][c] + s["q"][c])
    return (2 * s["pq"][c] + smooth) / (den + smooth)


def jaccard_score(s, c, smooth=0.0):
    return (s["pq"][c] + smooth) / (s["p"][c] + s["q"][c] - s["pq"][c] + smooth)


def tversky_score(s, c, alpha, beta, smooth=0.0):
    tp = s["pq"][c]
    fp = s["p"][c] - tp  # sum p (1 - q)
    fn = s["q"][c] - tp  # sum (1 - p) q
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def ref_region(logits, target, score, *, per_image=False, include_background=True,
               penalize_absent=True, weight=None):
    """Documented rule: 1 - weighted mean of the score over present classes,
    plus the mass predicted on absent classes per labelled pixel."""
    p = softmax_np(logits)
    n_images, k = logits.shape[:2]
    w = np.ones(k) if weight is None else np.asarray(weight, float)
    groups = [[n] for n in range(n_images)] if per_image else [list(range(n_images))]
    included = [c for c in range(k) if include_background or c != 0]
    losses = []
    for images in groups:
        s, n_lab = region_sums(p, target, images, k)
        if n_lab == 0:
            continue
        present = [c for c in included if s["q"][c] > 0]
        absent = [c for c in included if s["q"][c] == 0]
        wsum = sum(w[c] for c in present)
        loss = sum(w[c] * (1 - score(s, c)) for c in present) / wsum if wsum else 0.0
        if penalize_absent:
            wmean = np.mean([w[c] for c in included])
            loss += sum(w[c] / wmean * s["p"][c] for c in absent) / n_lab
        losses.append(loss)
    return float(np.mean(losses)) if losses else 0.0


def jaccard_set_loss(mispredicted, gt):
    """Jaccard loss of class c given the set of mispredicted pixels."""
    if not mispredicted:
        return 0.0
    return len(mispredicted) / len(gt | mispredicted)


def lovasz_by_thresholds(m, gt):
    """Lovász extension of the Jaccard set loss at m >= 0, as the integral
    over t of Delta({i : m_i >= t})."""
    values = sorted(set(m.tolist()), reverse=True) + [0.0]
    total = 0.0
    for hi, lo in itertools.pairwise(values):
        level_set = {i for i in range(len(m)) if m[i] >= hi}
        total += (hi - lo) * jaccard_set_loss(level_set, gt)
    return total


def lovasz_by_permutations(m, gt):
    """Same extension as a maximum of greedy sums over all orderings (valid
    because the Jaccard set loss is submodular)."""
    best = -np.inf
    for order in itertools.permutations(range(len(m))):
        total, prefix, prev = 0.0, set(), 0.0
        for i in order:
            prefix = prefix | {i}
            now = jaccard_set_loss(prefix, gt)
            total += m[i] * (now - prev)
            prev = now
        best = max(best, total)
    return best


def ref_lovasz(logits, target, *, per_image=False, classes="present", weight=None,
               extension=lovasz_by_thresholds):
    p = softmax_np(logits)
    n_images, k = logits.shape[:2]
    w = np.ones(k) if weight is None else np.asarray(weight, float)
    groups = [[n] for n in range(n_images)] if per_image else [list(range(n_images))]
    losses = []
    for images in groups:
        pixels = [idx for idx in labelled_pixels(target) if idx[0] in images]
        if not pixels:
            continue
        num = den = 0.0
        for c in range(k):
            gt = {a for a, idx in enumerate(pixels) if target[idx] == c}
            if classes == "present" and not gt:
                continue
            m = np.array([abs((1.0 if a in gt else 0.0) - p[idx[0], c, idx[1], idx[2]])
                          for a, idx in enumerate(pixels)])
            num += w[c] * extension(m, gt)
            den += w[c]
        losses.append(num / den if den else 0.0)
    return float(np.mean(losses)) if losses else 0.0


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def case(seed=0, n=1, k=3, h=2, w=3, absent=None, ignored=((0, 0, 1),)):
    """Random logits and a target with every class present (unless
    ``absent``), some pixels ignored."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, k, h, w))
    classes = [c for c in range(k) if c != absent]
    target = np.array(classes * (n * h * w))[: n * h * w].reshape(n, h, w)
    target = rng.permuted(target.reshape(-1)).reshape(n, h, w)
    for idx in ignored:
        target[idx] = IGNORE
    return logits, target


def as_torch(logits, target, grad=False):
    x = torch.tensor(logits, dtype=torch.float32, requires_grad=grad)
    return x, torch.tensor(target, dtype=torch.int64)


def value(loss, logits, target):
    return loss(*as_torch(logits, target)).item()


def perfect_logits(target, k, margin=30.0):
    safe = np.where(target == IGNORE, 0, target)
    onehot = np.moveaxis(np.eye(k)[safe], -1, 1)
    return margin * onehot


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_reference_and_torch(seed, smoothing, weighted):
    logits, target = case(seed)
    weight = [0.5, 2.0, 1.0] if weighted else None
    loss = get_loss("cross_entropy", n_classes=3, loss_params={"label_smoothing": smoothing},
                    class_weight=weight)
    got = value(loss, logits, target)
    assert got == pytest.approx(ref_cross_entropy(logits, target, weight, smoothing), rel=1e-5)
    x, t = as_torch(logits, target)
    expected = F.cross_entropy(x, t, weight=None if weight is None else torch.tensor(weight),
                               label_smoothing=smoothing)
    assert got == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_mae_matches_reference(weighted):
    logits, target = case(2)
    weight = [3.0, 1.0, 0.5] if weighted else None
    got = value(get_loss("mae", n_classes=3, class_weight=weight), logits, target)
    assert got == pytest.approx(ref_mae(logits, target, weight), rel=1e-5)


def test_mae_normalisation_is_mean_over_classes_and_pixels():
    # p = 1/K everywhere: every pixel has error (1/K)(2 (K-1)/K) = 2 (K-1)/K^2.
    target = np.array([[[0, 1, 2, 3]]])
    got = value(MAELoss(), np.zeros((1, 4, 1, 4)), target)
    assert got == pytest.approx(2 * 3 / 16)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_matches_reference(gamma, weighted):
    logits, target = case(3)
    weight = [0.25, 0.75, 1.0] if weighted else None
    loss = get_loss("focal", n_classes=3, loss_params={"gamma": gamma}, class_weight=weight)
    assert value(loss, logits, target) == pytest.approx(
        ref_focal(logits, target, gamma, weight), rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, target = case(4, n=2, h=3, w=3)
    x, t = as_torch(logits, target)
    focal = FocalLoss(gamma=0.0)(x, t)
    assert torch.allclose(focal, CrossEntropyLoss()(x, t))
    assert torch.allclose(focal, F.cross_entropy(x, t))


def test_focal_down_weights_easy_pixels():
    logits, target = case(5)
    ce = value(CrossEntropyLoss(), logits, target)
    assert 0 < value(FocalLoss(gamma=2.0), logits, target) < value(FocalLoss(gamma=1.0),
                                                                  logits, target) < ce


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_matches_reference(squared, per_image, smooth):
    logits, target = case(6, n=2, k=3, absent=2, ignored=((0, 1, 1), (1, 0, 0)))
    target[1] = np.where(target[1] == 1, 0, target[1])  # image 1 holds class 0 only
    loss = DiceLoss(squared=squared, per_image=per_image, smooth=smooth)
    expected = ref_region(logits, target,
                          lambda s, c: dice_score(s, c, smooth, squared), per_image=per_image)
    assert value(loss, logits, target) == pytest.approx(expected, rel=1e-5)


def test_dice_is_the_design_formula_when_every_class_is_present():
    # D = 2 sum(p q) / (sum(p^2) + sum(q^2)), summed over the batch, 1 - mean.
    logits, target = case(7, n=2, k=3, h=2, w=3, ignored=())
    p = softmax_np(logits)
    q = np.moveaxis(np.eye(3)[target], -1, 1)
    axes = (0, 2, 3)
    d = 2 * (p * q).sum(axes) / ((p ** 2).sum(axes) + (q ** 2).sum(axes))
    assert value(get_loss("dice", n_classes=3), logits, target) == pytest.approx(
        1 - d.mean(), rel=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_jaccard_matches_reference(per_image):
    logits, target = case(8, n=2, absent=1)
    expected = ref_region(logits, target, jaccard_score, per_image=per_image)
    assert value(JaccardLoss(per_image=per_image), logits, target) == pytest.approx(
        expected, rel=1e-5)


def test_tversky_matches_reference():
    logits, target = case(9, n=2)
    expected = ref_region(logits, target, lambda s, c: tversky_score(s, c, 0.7, 0.3))
    loss = get_loss("tversky", n_classes=3, loss_params={"alpha": 0.7, "beta": 0.3})
    assert value(loss, logits, target) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tversky_half_half_is_plain_dice_and_one_one_is_jaccard(seed):
    logits, target = case(seed, n=2, h=3, w=3, absent=seed % 3)
    x, t = as_torch(logits, target)
    tversky = TverskyLoss(alpha=0.5, beta=0.5)(x, t)
    assert torch.allclose(tversky, DiceLoss(squared=False)(x, t), atol=1e-6)
    assert not torch.allclose(tversky, DiceLoss(squared=True)(x, t), atol=1e-4)
    assert torch.allclose(TverskyLoss(alpha=1.0, beta=1.0)(x, t), JaccardLoss()(x, t),
                          atol=1e-6)


@pytest.mark.parametrize("smooth", [0.0, 0.7])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5]])
def test_dice_and_jaccard_are_tversky_exactly(smooth, per_image, weight):
    """Dice(smooth=s, squared=False) is Tversky(1/2, 1/2, smooth=s/2) and Jaccard
    is Tversky(1, 1): one formula, so the values and gradients are equal bit
    for bit, with smoothing, per image and with class weights."""
    logits, target = case(3, n=2, h=3, w=4, absent=2)
    common = {"per_image": per_image, "class_weight": weight}
    pairs = [(DiceLoss(smooth=smooth, squared=False, **common),
              TverskyLoss(alpha=0.5, beta=0.5, smooth=smooth / 2, **common)),
             (JaccardLoss(smooth=smooth, **common),
              TverskyLoss(alpha=1.0, beta=1.0, smooth=smooth, **common))]
    for named, tversky in pairs:
        x1, t = as_torch(logits, target, grad=True)
        x2, _ = as_torch(logits, target, grad=True)
        a, b = named(x1, t), tversky(x2, t)
        a.backward()
        b.backward()
        assert torch.equal(a, b) and torch.equal(x1.grad, x2.grad)


def test_tversky_alpha_beta_trade_false_positives_against_false_negatives():
    # class 1 over-predicted (false positives) on a 1-D strip.
    target = np.array([[[0, 0, 0, 1]]])
    logits = np.zeros((1, 2, 1, 4))
    logits[0, 1] = [1.0, 1.0, 1.0, 3.0]
    fp_heavy = TverskyLoss(alpha=0.9, beta=0.1, include_background=False)
    fn_heavy = TverskyLoss(alpha=0.1, beta=0.9, include_background=False)
    assert value(fp_heavy, logits, target) > value(fn_heavy, logits, target) + 0.1
    logits[0, 1] = [-3.0, -3.0, -3.0, -1.0]  # now class 1 under-predicted
    assert value(fp_heavy, logits, target) < value(fn_heavy, logits, target) - 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_grad_is_the_lovasz_extension_by_brute_force(seed):
    # one group of 5 labelled pixels: thresholds and all 120 orderings.
    logits, target = case(seed, n=1, k=3, h=2, w=3)
    x, t = as_torch(logits, target)
    for c in range(3):
        weight = np.zeros(3)
        weight[c] = 1.0
        got = LovaszLoss(class_weight=weight)(x, t).item()
        assert got == pytest.approx(
            ref_lovasz(logits, target, weight=weight, extension=lovasz_by_thresholds), rel=1e-5)
        assert got == pytest.approx(
            ref_lovasz(logits, target, weight=weight, extension=lovasz_by_permutations),
            rel=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_matches_reference(per_image, classes):
    logits, target = case(11, n=2, k=3, h=2, w=2, absent=1, ignored=((1, 1, 0),))
    target[1] = np.where(target[1] == 2, 0, target[1])
    got = value(LovaszLoss(per_image=per_image, classes=classes), logits, target)
    assert got == pytest.approx(ref_lovasz(logits, target, per_image=per_image,
                                           classes=classes), rel=1e-5)


def test_lovasz_of_hard_prediction_is_the_jaccard_loss():
    # With 0/1 probabilities the extension equals the set function itself:
    # the mean over present classes of 1 - IoU.
    target = np.array([[[0, 0, 1, 1, 1]]])
    logits = perfect_logits(np.array([[[0, 1, 1, 1, 0]]]), 2, margin=60.0)
    iou0, iou1 = 1 / 3, 2 / 4
    assert value(LovaszLoss(), logits, target) == pytest.approx(
        1 - (iou0 + iou1) / 2, abs=1e-6)


# ---------------------------------------------------------------------------
# class rules of the region losses
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", REGION + ["lovasz"])
def test_absent_class_predicted_nowhere_counts_neither_as_zero_nor_one(name):
    # K=3 with class 2 absent and never predicted equals the K=2 loss.
    logits2, target = case(12, k=2)
    logits3 = np.concatenate([logits2, np.full((1, 1, 2, 3), -60.0)], axis=1)
    got3 = value(get_loss(name, n_classes=3), logits3, target)
    got2 = value(get_loss(name, n_classes=2), logits2, target)
    assert got3 == pytest.approx(got2, abs=1e-6)


@pytest.mark.parametrize("name", REGION)
def test_false_positive_on_an_absent_class_costs_and_gets_a_gradient(name):
    target = np.array([[[0, 0, 1, 1]]])
    logits = perfect_logits(target, 3, margin=8.0)
    clean = value(get_loss(name, n_classes=3), logits, target)
    logits_fp = logits.copy()
    logits_fp[0, 2, 0, 0] = 20.0  # pixel 0 predicted as absent class 2
    x, t = as_torch(logits_fp, target, grad=True)
    loss = get_loss(name, n_classes=3)(x, t)
    loss.backward()
    assert loss.item() > clean + 0.1
    assert x.grad[0, 2, 0, 0] > 0  # descending lowers the false positive
    assert torch.isfinite(x.grad).all()
    # the penalty alone: same value minus the present-class part
    off = get_loss(name, n_classes=3, loss_params={"penalize_absent": False})
    assert value(off, logits_fp, target) < loss.item()


@pytest.mark.parametrize("name", REGION)
def test_background_only_target_without_background_still_penalises_foreground(name):
    target = np.zeros((1, 2, 3), dtype=np.int64)
    params = {"include_background": False}
    loss = get_loss(name, n_classes=2, loss_params=params)
    right = value(loss, perfect_logits(target, 2), target)
    wrong_logits = perfect_logits(target, 2)
    wrong_logits[0, 1, 0, :] = 40.0
    x, t = as_torch(wrong_logits, target, grad=True)
    wrong = loss(x, t)
    wrong.backward()
    assert right == pytest.approx(0.0, abs=1e-6)
    assert wrong.item() == pytest.approx(0.5, abs=1e-4)  # half the pixels predicted 1
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", REGION)
def test_include_background_false_leaves_class_zero_out(name):
    logits, target = case(13)
    loss = get_loss(name, n_classes=3, loss_params={"include_background": False})
    weighted = get_loss(name, n_classes=3, class_weight=[0.0, 1.0, 1.0])
    # both ignore class 0 in the mean over present classes
    assert value(loss, logits, target) == pytest.approx(value(weighted, logits, target),
                                                        rel=1e-6)
    assert value(loss, logits, target) != value(get_loss(name, n_classes=3), logits, target)


# ---------------------------------------------------------------------------
# class weights
# ---------------------------------------------------------------------------

REFS = {
    "cross_entropy": lambda lg, t, w: ref_cross_entropy(lg, t, w),
    "mae": lambda lg, t, w: ref_mae(lg, t, w),
    "focal": lambda lg, t, w: ref_focal(lg, t, 2.0, w),
    "dice": lambda lg, t, w: ref_region(lg, t, dice_score, weight=w),
    "jaccard": lambda lg, t, w: ref_region(lg, t, jaccard_score, weight=w),
    "tversky": lambda lg, t, w: ref_region(lg, t, lambda s, c: tversky_score(s, c, .5, .5),
                                           weight=w),
    "lovasz": lambda lg, t, w: ref_lovasz(lg, t, weight=w),
}


@pytest.mark.parametrize("name", ALL)
def test_class_weights_match_reference_and_change_the_loss(name):
    logits, target = case(14, n=2, absent=2)
    weight = np.array([4.0, 0.5, 2.0])
    got = value(get_loss(name, n_classes=3, class_weight=weight), logits, target)
    plain = value(get_loss(name, n_classes=3), logits, target)
    assert got == pytest.approx(REFS[name](logits, target, weight), rel=1e-5)
    assert got != pytest.approx(plain, rel=1e-3)
    ones = value(get_loss(name, n_classes=3, class_weight=np.ones(3)), logits, target)
    assert ones == pytest.approx(plain, rel=1e-6)


def test_class_weight_is_not_modified_and_accepts_tensors():
    weight = np.array([1.0, 2.0, 3.0])
    loss = get_loss("dice+cross_entropy", n_classes=3, class_weight=weight)
    loss.losses[0].class_weight.mul_(0)
    assert weight.tolist() == [1.0, 2.0, 3.0]
    tensor_weight = torch.tensor([1.0, 2.0, 3.0])
    get_loss("dice", n_classes=3, class_weight=tensor_weight).class_weight.mul_(0)
    assert tensor_weight.tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------
# ignored pixels, edge cases, precision
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("per_image", [False, True])
def test_ignored_pixels_change_nothing(name, per_image):
    logits, target = case(15, n=2, h=3, w=3, ignored=((0, 0, 0), (0, 2, 1), (1, 1, 1)))
    params = {"per_image": per_image} if name in REGION + ["lovasz"] else None
    loss = get_loss(name, n_classes=3, loss_params=params)
    x, t = as_torch(logits, target, grad=True)
    base = loss(x, t)
    base.backward()
    ignored = torch.tensor(target == IGNORE)
    assert (x.grad.permute(0, 2, 3, 1)[ignored] == 0).all()
    rng = np.random.default_rng(1)
    noisy = logits + rng.normal(scale=10.0, size=logits.shape) * (target == IGNORE)[:, None]
    assert value(loss, noisy, target) == pytest.approx(base.item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", REGION + ["lovasz"])
def test_per_image_skips_images_without_labelled_pixels(name):
    logits, target = case(24, n=2, h=2, w=3, ignored=())
    target[1] = IGNORE
    loss = get_loss(name, n_classes=3, loss_params={"per_image": True})
    assert value(loss, logits, target) == pytest.approx(
        value(loss, logits[:1], target[:1]), rel=1e-6)


def _grad(loss, logits, target, dtype=torch.float32):
    x = torch.tensor(logits, dtype=dtype, requires_grad=True)
    out = loss(x, torch.tensor(target))
    out.backward()
    return out, x.grad


@pytest.mark.parametrize("name", ALL)
def test_finite_gradients_at_the_edges(name):
    loss = get_loss(name, n_classes=3)
    logits, target = case(16, n=2, absent=1)
    out, grad = _grad(loss, logits, target)  # a class absent from the batch
    assert torch.isfinite(out) and torch.isfinite(grad).all()
    out, grad = _grad(loss, perfect_logits(target, 3, margin=100.0), target)  # perfect
    assert torch.isfinite(out) and torch.isfinite(grad).all()
    assert out.item() == pytest.approx(0.0, abs=1e-6)
    everything_ignored = np.full_like(target, IGNORE)
    out, grad = _grad(loss, logits, everything_ignored)
    assert out.item() == 0.0 and out.requires_grad and (grad == 0).all()
    one_class = np.ones_like(target)
    out, grad = _grad(loss, logits, one_class)  # one class everywhere
    assert torch.isfinite(out) and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("gamma", [0.3, 1.0])
def test_focal_gradient_is_finite_at_a_perfect_prediction_for_small_gamma(gamma):
    target = np.array([[[0, 1, 1]]])
    out, grad = _grad(FocalLoss(gamma=gamma), perfect_logits(target, 2, margin=200.0), target)
    assert out.item() == 0.0 and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", ALL)
def test_float64_logits_are_computed_in_float64(name):
    logits, target = case(25)
    x = torch.tensor(logits, dtype=torch.float64)
    out = get_loss(name, n_classes=3)(x, torch.tensor(target))
    assert out.dtype == torch.float64
    assert out.item() == pytest.approx(REFS[name](logits, target, None), rel=1e-12)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_and_autocast(name, dtype):
    loss = get_loss(name, n_classes=3, loss_params={"smooth": 0.0} if name in REGION else None)
    logits, target = case(17, n=2, h=4, w=4)
    reference = value(loss, logits.astype(np.float32), target)
    out, grad = _grad(loss, logits, target, dtype=dtype)
    assert out.dtype == torch.float32 and grad.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(grad).all()
    assert out.item() == pytest.approx(reference, rel=0.05, abs=1e-3)
    x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits_cast = F.conv2d(x, torch.eye(3).reshape(3, 3, 1, 1))  # bf16 under autocast
        assert logits_cast.dtype == torch.bfloat16
        out = loss(logits_cast, torch.tensor(target))
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert out.item() == pytest.approx(reference, rel=0.05, abs=1e-3)
    # perfect half-precision logits still give finite gradients
    _, grad = _grad(loss, perfect_logits(target, 3, margin=60.0), target, dtype=dtype)
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------

@st.composite
def batches(draw):
    n, k = draw(st.integers(1, 2)), draw(st.integers(2, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    size = n * k * h * w
    logits = draw(st.lists(st.floats(-6, 6, allow_nan=False), min_size=size, max_size=size))
    labels = draw(st.lists(st.integers(-1, k - 1), min_size=n * h * w, max_size=n * h * w))
    target = np.array(labels).reshape(n, h, w)
    target[target == -1] = IGNORE
    return np.array(logits).reshape(n, k, h, w), target


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=25, deadline=None)
@given(batch=batches())
def test_loss_is_non_negative_and_minimal_at_the_truth(name, batch):
    logits, target = batch
    k = logits.shape[1]
    loss = get_loss(name, n_classes=k)
    x, t = as_torch(logits, target, grad=True)
    out = loss(x, t)
    out.backward()
    assert out.ndim == 0 and torch.isfinite(out) and torch.isfinite(x.grad).all()
    assert out.item() >= -1e-6
    best = value(loss, perfect_logits(target, k), target)
    assert best == pytest.approx(0.0, abs=1e-5)
    assert best <= out.item() + 1e-6


# ---------------------------------------------------------------------------
# weighted sums written as strings
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("dice+cross_entropy", [(1.0, DiceLoss), (1.0, CrossEntropyLoss)]),
    ("0.7*dice+0.3*focal", [(0.7, DiceLoss), (0.3, FocalLoss)]),
    ("  0.7 * dice +\t3e-1*focal ", [(0.7, DiceLoss), (0.3, FocalLoss)]),
    ("1E-1*lovasz + .5*jaccard+2.*mae", [(0.1, LovaszLoss), (0.5, JaccardLoss),
                                         (2.0, MAELoss)]),
    ("2*tversky", [(2.0, TverskyLoss)]),
    ("Dice + CROSS_ENTROPY", [(1.0, DiceLoss), (1.0, CrossEntropyLoss)]),
])
def test_weighted_sums_parse_into_compound_losses(spec, expected):
    loss = get_loss(spec, n_classes=3)
    assert isinstance(loss, CompoundLoss)
    assert [type(m) for m in loss.losses] == [cls for _, cls in expected]
    assert loss.weights == pytest.approx([w for w, _ in expected])
    logits, target = case(18)
    parts = sum(w * value(cls(), logits, target) for w, cls in expected)
    assert value(loss, logits, target) == pytest.approx(parts, rel=1e-6)


def test_a_single_name_gives_the_loss_itself():
    assert type(get_loss("  focal ", n_classes=2)) is FocalLoss
    assert type(get_loss("1*focal", n_classes=2)) is FocalLoss


@pytest.mark.parametrize("spec, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("dice+", "expected a loss name"),
    ("+dice", "expected a loss name"),
    ("0.7*", "expected a loss name"),
    ("dice*0.3", "expected '+'"),
    ("0.7 dice", "expected '*'"),
    ("2*unknown", "unknown loss 'unknown'"),
    ("diec", "unknown loss"),
    ("-0.5*dice", "positive"),
    ("dice+-1*focal", "positive"),
    ("0*dice", "positive"),
    ("0.0*dice+focal", "positive"),
    ("1e999*dice", "positive"),
    ("dice++focal", "expected a loss name"),
    ("dice,focal", "unexpected character ','"),
    ("dice+dice", "more than once"),
    ("0.5*0.5*dice", "expected a loss name"),
])
def test_malformed_strings_raise_value_errors_naming_loss(spec, reason):
    with pytest.raises(ValueError) as info:
        get_loss(spec, n_classes=2)
    message = str(info.value)
    assert "loss=" in message and reason in message
    for name in loss_names():
        assert name in message


@pytest.mark.parametrize("spec, unknown, suggestion", [
    ("cross-entropy", "cross-entropy", "cross_entropy"),
    ("0.5*dice + Cross-Entropy", "Cross-Entropy", "cross_entropy"),
    ("diec", "diec", "dice"),
    ("dice+lovaz", "lovaz", "lovasz"),
])
def test_unknown_loss_names_come_with_a_suggestion(spec, unknown, suggestion):
    with pytest.raises(ValueError) as info:
        get_loss(spec, n_classes=2)
    assert f"unknown loss {unknown!r}; did you mean {suggestion!r}?" in str(info.value)


def test_unknown_loss_params_come_with_a_suggestion():
    with pytest.raises(ValueError, match="'gama'.*did you mean 'gamma'"):
        get_loss("focal", n_classes=2, loss_params={"gama": 1.0})
    with pytest.raises(ValueError, match="'smoth'.*did you mean 'smooth'"):
        get_loss("dice", n_classes=2, loss_params={"dice": {"smoth": 1.0}})


# ---------------------------------------------------------------------------
# loss_params
# ---------------------------------------------------------------------------

def test_flat_loss_params_go_to_every_component_that_takes_them():
    loss = get_loss("dice+jaccard+focal", n_classes=2,
                    loss_params={"smooth": 2.0, "gamma": 3.0})
    dice, jaccard, focal = loss.losses
    assert dice.smooth == 2.0 and jaccard.smooth == 2.0 and focal.gamma == 3.0


def test_keyed_loss_params_go_to_their_component():
    loss = get_loss("dice+jaccard", n_classes=2,
                    loss_params={"dice": {"smooth": 2.0, "squared": False}})
    assert loss.losses[0].smooth == 2.0 and not loss.losses[0].squared
    assert loss.losses[1].smooth == 0.0
    single = get_loss("focal", n_classes=2, loss_params={"focal": {"gamma": 1.0}})
    assert single.gamma == 1.0


@pytest.mark.parametrize("spec, params, needles", [
    ("dice", {"gamma": 2.0}, ["loss_params", "'gamma'", "smooth", "squared"]),
    ("dice+focal", {"label_smoothing": 0.1}, ["loss_params", "label_smoothing", "gamma"]),
    ("dice+focal", {"focal": {"smooth": 1.0}}, ["loss_params['focal']", "smooth", "gamma"]),
    ("dice+focal", {"jaccard": {"smooth": 1.0}}, ["loss_params", "'jaccard'", "not part"]),
    ("dice+focal", {"focal": {"gamma": 1.0}, "smooth": 1.0}, ["loss_params", "mix"]),
    ("focal", {"gamma": -1.0}, ["loss_params", "'focal'", "gamma"]),
    ("dice", {"class_weight": [1, 2]}, ["loss_params", "class_weight"]),
    ("tversky", {"alpha": 0.0, "beta": 0.0}, ["loss_params", "alpha and beta"]),
    ("lovasz", {"classes": "some"}, ["loss_params", "classes"]),
    ("cross_entropy", {"label_smoothing": 1.0}, ["loss_params", "label_smoothing"]),
])
def test_bad_loss_params_raise_value_errors(spec, params, needles):
    with pytest.raises(ValueError) as info:
        get_loss(spec, n_classes=2, loss_params=params)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize("spec, key", [("cross_entropy", "label_smoothing"), ("focal", "gamma"),
                                       ("dice", "smooth"), ("tversky", "alpha"),
                                       ("tversky", "beta"), ("jaccard", "smooth")])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_float_loss_params_must_be_finite(spec, key, bad):
    with pytest.raises(ValueError, match=f"{key} must be a finite number"):
        get_loss(spec, n_classes=2, loss_params={key: bad})


@pytest.mark.parametrize("params", [[("gamma", 2)], {"focal": 3}, {1: 2}, {"per_image": 1}])
def test_loss_params_of_the_wrong_type_raise_type_errors(params):
    spec = "dice" if params == {"per_image": 1} else "focal"
    with pytest.raises(TypeError, match="loss_params|per_image"):
        get_loss(spec, n_classes=2, loss_params=params)


# ---------------------------------------------------------------------------
# custom losses and argument checking
# ---------------------------------------------------------------------------

def test_a_module_is_used_as_is_and_a_callable_is_wrapped():
    module = nn.Identity()
    assert get_loss(module, n_classes=2) is module

    def mean_logit(logits, target):
        return logits.mean() + 0 * target.sum()

    loss = get_loss(mean_logit, n_classes=2)
    assert isinstance(loss, nn.Module)
    x, t = as_torch(*case(19, k=2))
    assert torch.equal(loss(x, t), x.mean())


def test_custom_callable_must_return_a_scalar_tensor():
    with pytest.raises(TypeError, match="scalar tensor"):
        get_loss(lambda x, t: 1.0, n_classes=2)(*as_torch(*case(20, k=2)))
    with pytest.raises(TypeError, match="scalar tensor"):
        get_loss(lambda x, t: x.sum(1), n_classes=2)(*as_torch(*case(20, k=2)))


@pytest.mark.parametrize("bad, error, needle", [
    (3, TypeError, "loss must be"),
    (None, TypeError, "loss must be"),
    (DiceLoss, TypeError, "DiceLoss()"),
    (["dice"], TypeError, "loss must be"),
])
def test_bad_loss_types_raise(bad, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)")):
        get_loss(bad, n_classes=2)


@pytest.mark.parametrize("terms", [5, None, "dice", DiceLoss()])
def test_compound_loss_names_terms(terms):
    with pytest.raises(TypeError, match="terms must be a sequence of \\(weight, loss\\) pairs"):
        CompoundLoss(terms)


@pytest.mark.parametrize("name", ["dice", "cross_entropy", "focal", "lovasz", "jaccard"])
def test_logits_without_classes_are_named(name):
    loss = get_loss(name, n_classes=2)
    with pytest.raises(ValueError, match=r"logits must have at least one class \(K >= 1\)"):
        loss(torch.zeros(1, 0, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_custom_losses_refuse_loss_params_and_class_weight():
    with pytest.raises(ValueError, match="loss_params"):
        get_loss(nn.Identity(), n_classes=2, loss_params={"gamma": 1})
    with pytest.raises(ValueError, match="class_weight"):
        get_loss(lambda x, t: x.sum(), n_classes=2, class_weight=[1.0, 2.0])


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"n_classes": 0}, ValueError, "n_classes"),
    ({"n_classes": 2.0}, TypeError, "n_classes"),
    ({"n_classes": 3, "class_weight": [1.0, 2.0]}, ValueError, "class_weight"),
    ({"n_classes": 2, "class_weight": [1.0, -2.0]}, ValueError, "non-negative"),
    ({"n_classes": 2, "class_weight": [0.0, 0.0]}, ValueError, "positive"),
    ({"n_classes": 2, "class_weight": [1.0, np.nan]}, ValueError, "class_weight"),
    ({"n_classes": 2, "class_weight": "balanced"}, TypeError, "compute_class_weight"),
    ({"n_classes": 2, "class_weight": [[1.0, 2.0]]}, ValueError, "1-D"),
    ({"n_classes": 2, "ignore_index": 1.5}, TypeError, "ignore_index"),
])
def test_get_loss_checks_its_arguments(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        get_loss("dice", **kwargs)


@pytest.mark.parametrize("name", ALL)
def test_inputs_are_checked(name):
    loss = get_loss(name, n_classes=3)
    x, t = as_torch(*case(21))
    with pytest.raises(ValueError, match="logits must have shape"):
        loss(x[0], t)
    with pytest.raises(ValueError, match="target must have shape"):
        loss(x, t[:, :1])
    with pytest.raises(TypeError, match="target must be an integer"):
        loss(x, t.float())
    with pytest.raises(TypeError, match="logits must be a floating point"):
        loss(x.long(), t)
    with pytest.raises(ValueError, match="outside the class indices"):
        loss(x, torch.where(t == 1, 3, t))
    with pytest.raises(ValueError, match="class weights"):
        get_loss(name, n_classes=2, class_weight=[1.0, 1.0])(x, t)


SYNC_CASES = ([(name, None) for name in ALL]
              + [(name, {"per_image": True}) for name in ("dice", "jaccard", "tversky", "lovasz")]
              + [("cross_entropy", {"label_smoothing": 0.1}), ("dice", {"squared": False}),
                 ("lovasz", {"classes": "all"}), ("0.5*dice+focal+0.2*lovasz", None)])


@pytest.mark.parametrize("spec, params", SYNC_CASES)
def test_forward_and_backward_read_nothing_back_but_the_cpu_target_check(spec, params):
    """No .item(), nonzero() or boolean-mask indexing in any loss: on a GPU
    none stalls a training step. On the CPU each loss checks its target's
    class indices once, which reads one flag back (aten._local_scalar_dense);
    that check runs on the CPU only."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (3, 8, 8), generator=g)
    target[:, :2] = IGNORE
    loss = get_loss(spec, n_classes=3, class_weight=[1.0, 2.0, 0.5], loss_params=params)
    n_components = len(loss.losses) if isinstance(loss, CompoundLoss) else 1
    with SyncCounter() as counter:
        loss(logits, target).backward()
    assert counter.syncs == ["aten._local_scalar_dense"] * n_components
    assert torch.isfinite(logits.grad).all()


def test_a_custom_ignore_index():
    logits, target = case(22)
    moved = np.where(target == IGNORE, 255, target)
    loss = get_loss("dice+cross_entropy", n_classes=3, ignore_index=255)
    assert value(loss, logits, moved) == pytest.approx(
        value(get_loss("dice+cross_entropy", n_classes=3), logits, target))


@pytest.mark.parametrize("spec", ALL + ["0.5*dice+focal"])
def test_losses_pickle_and_copy(spec):
    loss = get_loss(spec, n_classes=3, class_weight=[1.0, 2.0, 0.5])
    logits, target = case(23)
    expected = value(loss, logits, target)
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert value(other, logits, target) == pytest.approx(expected)
    assert repr(loss)


def test_loss_names_and_registry():
    assert loss_names() == sorted(ALL)
    for name, cls in LOSSES.items():
        assert issubclass(cls, nn.Module)
        assert type(get_loss(name, n_classes=2)) is cls


# ---------------------------------------------------------------------------
# compute_class_weight
# ---------------------------------------------------------------------------

def test_compute_class_weight_balanced_matches_sklearn():
    classes = np.array([3, 7, 9])
    counts = np.array([50, 5, 20])
    pixels = np.repeat(classes, counts)
    expected = sk_compute_class_weight("balanced", classes=classes, y=pixels)
    np.testing.assert_allclose(compute_class_weight("balanced", classes, counts), expected)


def test_compute_class_weight_dict_none_and_labels():
    assert compute_class_weight(None, [0, 1], [1, 1]) is None
    out = compute_class_weight({7: 3.0}, np.array([3, 7, 9], dtype=np.uint8), [1, 1, 1])
    assert out.tolist() == [1.0, 3.0, 1.0]
    out = compute_class_weight({True: 2.0}, np.array([False, True]), [4, 1])
    assert out.tolist() == [1.0, 2.0]
    out = compute_class_weight({"sky": 0.5}, np.array(["road", "sky"]), [4, 1])
    assert out.tolist() == [1.0, 0.5]
    counts = np.array([3, 1])
    out = compute_class_weight("balanced", [0, 1], counts)
    assert counts.tolist() == [3, 1]
    np.testing.assert_allclose(compute_class_weight("balanced", [0, 1], torch.tensor([3, 1])),
                               out)


@pytest.mark.parametrize("class_weight, counts, error, needle", [
    ({5: 1.0}, [1, 1], ValueError, "class_weight has label 5"),
    ({"1": 1.0}, [1, 1], ValueError, "class_weight has label '1'"),
    ({1: -1.0}, [1, 1], ValueError, r"class_weight\[1\] must be a finite number >= 0"),
    ({0: 0.0, 1: 0.0}, [1, 1], ValueError, "positive"),
    ({1: float("inf")}, [1, 1], ValueError, "finite"),
    ("balanced", [3, 0], ValueError, "no labelled|have none"),
    ("balanced", [3, -1], ValueError, "non-negative"),
    ("balanced", [3], ValueError, "counts"),
    ("auto", [1, 1], ValueError, "'balanced'"),
    ([1.0, 2.0], [1, 1], TypeError, "class_weight"),
])
def test_compute_class_weight_errors(class_weight, counts, error, needle):
    with pytest.raises(error, match=needle):
        compute_class_weight(class_weight, [0, 1], counts)


# ---------------------------------------------------------------------------
# each loss trains a tiny network
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ALL + ["0.5*dice+0.5*cross_entropy"])
def test_each_loss_trains_a_tiny_conv_net(spec):
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 12, 12, generator=g) > 0.7).long()
    x = (0.6 * target + 0.4 * torch.rand(4, 12, 12, generator=g)).unsqueeze(1)
    labels = target.clone()
    labels[:, 0, :] = IGNORE  # an unlabelled border row
    net = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        net.weight.copy_(0.1 * torch.randn(net.weight.shape, generator=g))
        net.bias.zero_()
        initial = (net(x).argmax(1) == target)[:, 1:].float().mean().item()
    loss_fn = get_loss(spec, n_classes=2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(net(x), labels)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    with torch.no_grad():
        pred = net(x).argmax(1)
    accuracy = (pred == target)[:, 1:].float().mean().item()
    assert initial < 0.9 and accuracy >= 0.98
    assert loss_fn(net(x), labels).item() < 0.5 * first
