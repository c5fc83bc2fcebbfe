import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist
from sklearn import metrics as skm
from sklearn.base import BaseEstimator
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from sksegment import _metric_base as MB
from sksegment.metrics import (
    SCORERS,
    boundary_f1_score,
    confusion_matrix,
    dice_score,
    get_scorer,
    get_scorer_names,
    hausdorff_distance,
    iou_score,
    make_segmentation_scorer,
    mean_iou,
    pixel_accuracy,
    surface_dice,
)

AVERAGES = [None, "macro", "micro", "weighted"]


def _all_present(rng, shape, values):
    """Random label images in which every value occurs in truth and prediction."""
    t = rng.choice(values, size=shape)
    p = rng.choice(values, size=shape)
    t.reshape(-1)[:len(values)] = values
    p.reshape(-1)[-len(values):] = values
    return t, p


def _flat(y):
    return np.concatenate([np.asarray(a).ravel() for a in y])


def _square_pair(offset, size=20, lo=5, hi=12):
    t = np.zeros((size, size), dtype=np.int64)
    t[lo:hi, lo:hi] = 1
    p = np.zeros_like(t)
    p[lo:hi, lo + offset:hi + offset] = 1
    return t, p


# --------------------------------------------------------------------------- #
# agreement with scikit-learn on flattened pixels
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32])
def test_confusion_matrix_matches_sklearn(rng, dtype):
    t, p = _all_present(rng, (3, 9, 11), np.array([0, 2, 5, 7]))
    t, p = t.astype(dtype), p.astype(dtype)
    expected = skm.confusion_matrix(t.ravel(), p.ravel())
    cm = confusion_matrix(t, p)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_confusion_matrix_matches_sklearn_with_labels(rng):
    t = rng.choice([0, 255], size=(4, 6, 5)).astype(np.uint8)
    p = rng.choice([0, 100, 255], size=(4, 6, 5)).astype(np.uint8)
    labels = [255, 7, 0, 100]  # unsorted, with a value found nowhere
    np.testing.assert_array_equal(confusion_matrix(t, p, labels=labels),
                                  skm.confusion_matrix(t.ravel(), p.ravel(), labels=labels))


def test_confusion_matrix_negative_and_wide_labels(rng):
    # a span too wide for the look-up table takes the binary-search path
    values = np.array([-5, 0, 3, 10**9])
    t, p = _all_present(rng, (2, 7, 7), values)
    np.testing.assert_array_equal(confusion_matrix(t, p),
                                  skm.confusion_matrix(t.ravel(), p.ravel()))
    np.testing.assert_array_equal(confusion_matrix(t, p, labels=values[::-1]),
                                  skm.confusion_matrix(t.ravel(), p.ravel(),
                                                       labels=values[::-1]))


def test_bool_and_list_inputs_match_sklearn(rng):
    t = [rng.random((h, w)) > 0.5 for h, w in [(3, 4), (7, 2), (5, 5)]]
    p = [rng.random(a.shape) > 0.3 for a in t]
    np.testing.assert_array_equal(confusion_matrix(t, p),
                                  skm.confusion_matrix(_flat(t), _flat(p)))
    assert pixel_accuracy(t, p) == pytest.approx(skm.accuracy_score(_flat(t), _flat(p)))


@pytest.mark.parametrize("average", AVERAGES)
def test_iou_and_dice_match_sklearn(rng, average):
    t, p = _all_present(rng, (4, 10, 8), np.array([1, 3, 4]))
    np.testing.assert_allclose(iou_score(t, p, average=average),
                               skm.jaccard_score(t.ravel(), p.ravel(), average=average))
    np.testing.assert_allclose(dice_score(t, p, average=average),
                               skm.f1_score(t.ravel(), p.ravel(), average=average))


def test_pixel_accuracy_and_mean_iou_match_sklearn(rng):
    t, p = _all_present(rng, (3, 6, 6), np.array([0, 1, 2]))
    assert pixel_accuracy(t, p) == pytest.approx(skm.accuracy_score(t.ravel(), p.ravel()))
    assert mean_iou(t, p) == pytest.approx(
        skm.jaccard_score(t.ravel(), p.ravel(), average="macro"))
    assert dice_score(t, p, average="micro") == pytest.approx(pixel_accuracy(t, p))


def test_ignore_index_matches_sklearn_on_masked_pixels(rng):
    t, p = _all_present(rng, (3, 8, 8), np.array([0, 1, 2]))
    t[:, :2] = 255
    p[:, 0] = 99  # anything may be predicted where the truth is unlabelled
    keep = t.ravel() != 255
    tm, pm = t.ravel()[keep], p.ravel()[keep]
    np.testing.assert_array_equal(confusion_matrix(t, p, ignore_index=255),
                                  skm.confusion_matrix(tm, pm))
    np.testing.assert_array_equal(confusion_matrix(t, p, labels=[0, 1, 2], ignore_index=255),
                                  skm.confusion_matrix(tm, pm))
    for average in AVERAGES:
        np.testing.assert_allclose(iou_score(t, p, ignore_index=255, average=average),
                                   skm.jaccard_score(tm, pm, average=average))
    assert pixel_accuracy(t, p, ignore_index=255) == pytest.approx(skm.accuracy_score(tm, pm))
    assert mean_iou(t, p, ignore_index=255) == pytest.approx(
        skm.jaccard_score(tm, pm, average="macro"))


# --------------------------------------------------------------------------- #
# chunking
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("chunk", [1, 7, 64, 200])
def test_chunked_counts_equal_unchunked(rng, monkeypatch, chunk):
    t, p = _all_present(rng, (5, 9, 13), np.array([0, 1, 2, 3]))
    t[0, :3] = 255
    lst_t = [rng.integers(0, 4, (h, w)) for h, w in [(9, 13), (4, 30), (17, 3)]]
    lst_p = [rng.integers(0, 4, a.shape) for a in lst_t]
    # a strided, non-contiguous view goes through chunk-sized copies
    tv, pv = np.swapaxes(t, 1, 2), np.swapaxes(p, 1, 2)
    expected = {
        "cm": confusion_matrix(t, p, ignore_index=255),
        "cm_view": confusion_matrix(tv, pv, ignore_index=255),
        "per_image": iou_score(t, p, ignore_index=255, per_image=True, average=None),
        "list": confusion_matrix(lst_t, lst_p),
        "list_per_image": dice_score(lst_t, lst_p, per_image=True),
        "acc": pixel_accuracy(t, p, ignore_index=255),
    }
    monkeypatch.setattr(MB, "_CHUNK", chunk)
    got = {
        "cm": confusion_matrix(t, p, ignore_index=255),
        "cm_view": confusion_matrix(tv, pv, ignore_index=255),
        "per_image": iou_score(t, p, ignore_index=255, per_image=True, average=None),
        "list": confusion_matrix(lst_t, lst_p),
        "list_per_image": dice_score(lst_t, lst_p, per_image=True),
        "acc": pixel_accuracy(t, p, ignore_index=255),
    }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, err_msg=key)
    np.testing.assert_array_equal(got["cm"], got["cm_view"])


def test_blocks_stay_small(rng, monkeypatch):
    monkeypatch.setattr(MB, "_CHUNK", 50)
    t = rng.integers(0, 3, (6, 10, 12))
    sizes = [tb.size for _, _, tb, _ in MB.blocks(t, t)]
    assert sum(sizes) == t.size and max(sizes) <= 50
    monkeypatch.setattr(MB, "_CHUNK", 500)
    blocks = list(MB.blocks(t, t))
    assert all(tb.size <= 500 for _, _, tb, _ in blocks) and blocks[0][1] > 1


# --------------------------------------------------------------------------- #
# absent classes, per-image scores
# --------------------------------------------------------------------------- #
def test_absent_class_is_excluded_not_counted():
    t = np.array([[0, 0, 1], [0, 1, 1]])
    p = np.array([[0, 1, 1], [0, 0, 1]])
    per_class = iou_score(t, p, labels=[0, 1, 2], average=None)
    assert np.isnan(per_class[2])
    np.testing.assert_allclose(per_class[:2], iou_score(t, p, average=None))
    assert iou_score(t, p, labels=[0, 1, 2]) == pytest.approx(iou_score(t, p))
    assert dice_score(t, p, labels=[2, 0, 1]) == pytest.approx(dice_score(t, p))
    assert iou_score(t, p, labels=[0, 1, 2], average="weighted") == pytest.approx(
        iou_score(t, p, average="weighted"))
    # the other conventions on request
    base = iou_score(t, p, average=None)
    assert iou_score(t, p, labels=[0, 1, 2], zero_division=1) == pytest.approx(
        (base.sum() + 1) / 3)
    assert iou_score(t, p, labels=[0, 1, 2], zero_division=0) == pytest.approx(base.sum() / 3)


def test_class_only_predicted_scores_zero():
    t = np.zeros((4, 4), dtype=int)
    p = t.copy()
    p[0, 0] = 1
    np.testing.assert_allclose(iou_score(t, p, average=None), [15 / 16, 0.0])


def test_per_image_empty_truth_images():
    fg = np.zeros((3, 4, 4), dtype=np.uint8)
    fg[0, 1:3, 1:3] = 1  # image 0 has an object; images 1 and 2 have none
    pred = fg.copy()
    # image 1: empty truth, empty prediction -> foreground left out there
    # image 2: empty truth, one false positive -> foreground IoU 0 there
    pred[2, 0, 0] = 1
    per_class = iou_score(fg, pred, per_image=True, average=None)
    assert per_class[0] == pytest.approx((1 + 1 + 15 / 16) / 3)
    assert per_class[1] == pytest.approx((1 + 0) / 2)  # defined in images 0 and 2 only
    image_scores = [1.0, 1.0, (15 / 16 + 0) / 2]
    assert iou_score(fg, pred, per_image=True) == pytest.approx(np.mean(image_scores))
    for i, s in enumerate(image_scores):
        assert iou_score(fg[i], pred[i]) == pytest.approx(s)
    # an image with an empty truth and a correct empty prediction is perfect
    assert iou_score(fg[1], pred[1], labels=[0, 1]) == 1.0


def test_per_image_skips_fully_ignored_images():
    t = np.array([[[0, 1], [1, 1]], [[9, 9], [9, 9]]])
    p = np.array([[[0, 1], [0, 1]], [[1, 0], [0, 1]]])
    expected = iou_score(t[0], p[0])
    assert iou_score(t, p, ignore_index=9, per_image=True) == pytest.approx(expected)
    assert iou_score(t, p, labels=[0, 1], ignore_index=9, per_image=True) == pytest.approx(
        expected)
    # whatever zero_division says of absent classes, such an image has no score
    for zd in (0, 1):
        for average in ("macro", "micro", "weighted", None):
            for score in (iou_score, dice_score):
                got = score(t, p, ignore_index=9, per_image=True, zero_division=zd,
                            average=average)
                np.testing.assert_allclose(got, score(t[0], p[0], zero_division=zd,
                                                      average=average))


def test_per_image_equals_mean_of_single_images(rng):
    t = [rng.integers(0, 3, (h, w)) for h, w in [(5, 6), (8, 3), (4, 4)]]
    p = [rng.integers(0, 3, a.shape) for a in t]
    for average in ["macro", "micro", "weighted"]:
        single = [dice_score(a, b, labels=[0, 1, 2], average=average) for a, b in zip(t, p)]
        assert dice_score(t, p, average=average, per_image=True) == pytest.approx(
            np.nanmean(single))


def test_nothing_defined_gives_nan_with_warning():
    t = np.full((3, 3), 7)
    p = np.zeros((3, 3), dtype=int)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(iou_score(t, p, labels=[0, 1], ignore_index=7))
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(pixel_accuracy(t, p, ignore_index=7))
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(hausdorff_distance(t, p, labels=[0, 1], ignore_index=7))
    with pytest.raises(ValueError, match="ignore_index=7"):
        iou_score(t, p, ignore_index=7)  # no labels to find


# --------------------------------------------------------------------------- #
# input forms
# --------------------------------------------------------------------------- #
def test_input_forms_agree(rng):
    t, p = _all_present(rng, (3, 5, 6), np.array([0, 1, 2]))
    ref = iou_score(t, p, average=None)
    np.testing.assert_allclose(iou_score(list(t), list(p), average=None), ref)
    np.testing.assert_allclose(iou_score(list(t), p, average=None), ref)
    np.testing.assert_allclose(iou_score(t[..., None], p[..., None], average=None), ref)
    np.testing.assert_allclose(iou_score(t.astype(float), p.astype(np.int8), average=None),
                               ref)
    np.testing.assert_allclose(iou_score(t[0], p[0], average=None),
                               iou_score(t[:1], p[:1], average=None))
    assert hausdorff_distance(t[0], p[0]) == pytest.approx(hausdorff_distance(t[:1], p[:1]))


def test_inputs_are_not_modified(rng):
    t, p = _all_present(rng, (2, 6, 6), np.array([0, 1, 2]))
    t[0, 0] = 255
    t_copy, p_copy = t.copy(), p.copy()
    t.setflags(write=False)
    p.setflags(write=False)
    for f in (iou_score, dice_score, hausdorff_distance, boundary_f1_score, surface_dice):
        f(t, p, ignore_index=255)
    confusion_matrix(t, p, ignore_index=255)
    pixel_accuracy(t, p, ignore_index=255)
    np.testing.assert_array_equal(t, t_copy)
    np.testing.assert_array_equal(p, p_copy)


# --------------------------------------------------------------------------- #
# property tests
# --------------------------------------------------------------------------- #
@st.composite
def label_pairs(draw, max_side=7, max_label=2):
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    elements = st.integers(0, max_label)
    t = draw(arrays(np.int64, (n, h, w), elements=elements))
    p = draw(arrays(np.int64, (n, h, w), elements=elements))
    return t, p


SCORES = [
    lambda t, p: iou_score(t, p),
    lambda t, p: iou_score(t, p, average="micro"),
    lambda t, p: iou_score(t, p, average="weighted", per_image=True),
    lambda t, p: dice_score(t, p),
    lambda t, p: dice_score(t, p, per_image=True),
    lambda t, p: pixel_accuracy(t, p),
    lambda t, p: boundary_f1_score(t, p, tolerance=1),
    lambda t, p: surface_dice(t, p, tolerance=1),
]


@settings(max_examples=40, deadline=None)
@given(label_pairs())
def test_scores_in_unit_interval_and_perfect_is_one(pair):
    t, p = pair
    for score in SCORES:
        s = score(t, p)
        assert 0.0 <= s <= 1.0
        assert score(t, t) == pytest.approx(1.0)
    assert hausdorff_distance(t, t) == 0.0
    assert hausdorff_distance(t, p) >= 0.0


@settings(max_examples=30, deadline=None)
@given(label_pairs(), st.randoms(use_true_random=False))
def test_image_order_does_not_matter(pair, random):
    t, p = pair
    order = list(range(len(t)))
    random.shuffle(order)
    for f in (iou_score, dice_score, hausdorff_distance, boundary_f1_score, surface_dice):
        np.testing.assert_allclose(f(t[order], p[order], average=None),
                                   f(t, p, average=None))
    np.testing.assert_array_equal(confusion_matrix(t[order], p[order]), confusion_matrix(t, p))
    assert iou_score(t[order], p[order], per_image=True) == pytest.approx(
        iou_score(t, p, per_image=True))


@settings(max_examples=30, deadline=None)
@given(label_pairs())
def test_symmetric_scores(pair):
    t, p = pair
    for f in (hausdorff_distance, boundary_f1_score, surface_dice, iou_score, dice_score):
        np.testing.assert_allclose(f(t, p, average=None), f(p, t, average=None))
    assert hausdorff_distance(t, p, percentile=95) == pytest.approx(
        hausdorff_distance(p, t, percentile=95))
    np.testing.assert_array_equal(confusion_matrix(t, p), confusion_matrix(p, t).T)


# --------------------------------------------------------------------------- #
# boundary metrics against a brute-force reference
# --------------------------------------------------------------------------- #
def _ref_boundary(region):
    """Inner 4-connected boundary, outside the image counting as outside."""
    pad = np.pad(region, 1, constant_values=False)
    all_inside = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return region & ~all_inside


def _ref_boundary_metric(t, p, labels, pair, empty):
    per_class = []
    for c in labels:
        values = []
        for ti, pi in zip(t, p):
            rt, rp = ti == c, pi == c
            if not rt.any() and not rp.any():
                continue
            if not rt.any() or not rp.any():
                values.append(empty(*ti.shape))
                continue
            bt, bp = np.argwhere(_ref_boundary(rt)), np.argwhere(_ref_boundary(rp))
            d = cdist(bp, bt)
            values.append(pair(d.min(axis=1), d.min(axis=0)))
        per_class.append(np.mean(values) if values else np.nan)
    return np.array(per_class)


@settings(max_examples=40, deadline=None)
@given(label_pairs(max_side=9), st.sampled_from([100, 95, 50]), st.sampled_from([0, 1, 1.5]))
def test_boundary_metrics_match_brute_force(pair, q, tol):
    t, p = pair
    labels = [0, 1, 2]

    def hd(a, b):
        return max(np.percentile(a, q), np.percentile(b, q))

    def bf(a, b):
        prec, rec = np.mean(a <= tol), np.mean(b <= tol)
        return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)

    def nsd(a, b):
        return (np.sum(a <= tol) + np.sum(b <= tol)) / (a.size + b.size)

    np.testing.assert_allclose(
        hausdorff_distance(t, p, labels=labels, percentile=q, average=None),
        _ref_boundary_metric(t, p, labels, hd, lambda h, w: max(math.hypot(h - 1, w - 1), 1)))
    np.testing.assert_allclose(
        boundary_f1_score(t, p, labels=labels, tolerance=tol, average=None),
        _ref_boundary_metric(t, p, labels, bf, lambda h, w: 0.0))
    np.testing.assert_allclose(
        surface_dice(t, p, labels=labels, tolerance=tol, average=None),
        _ref_boundary_metric(t, p, labels, nsd, lambda h, w: 0.0))


def test_hausdorff_of_offset_squares():
    t, p = _square_pair(3)
    np.testing.assert_allclose(hausdorff_distance(t, p, average=None), [3.0, 3.0])
    assert hausdorff_distance(t, p) == pytest.approx(3.0)
    assert hausdorff_distance(t, p, percentile=95) <= 3.0
    t2, p2 = _square_pair(1)
    assert hausdorff_distance(np.stack([t, t2]), np.stack([p, p2])) == pytest.approx(2.0)


def test_hausdorff_empty_cases():
    t, _ = _square_pair(0, size=10)
    empty = np.zeros_like(t)
    diagonal = math.hypot(9, 9)
    # the class is missing from the prediction: the image diagonal. The
    # square fills the corner rows/cols 5..9, so the predicted background's
    # corner pixel (9, 9) is 5 px from the true background's nearest boundary
    # pixels (4, 9) and (9, 4).
    np.testing.assert_allclose(hausdorff_distance(t, empty, labels=[0, 1], average=None),
                               [5.0, diagonal])
    assert hausdorff_distance(empty, t, labels=[0, 1], average=None)[1] == pytest.approx(
        diagonal)
    # absent from both: left out (NaN per class, not in the mean)
    per_class = hausdorff_distance(t, t, labels=[0, 1, 2], average=None)
    assert np.isnan(per_class[2]) and np.all(per_class[:2] == 0)
    assert hausdorff_distance(t, t, labels=[0, 1, 2]) == 0.0


def test_hausdorff_penalises_a_missed_class_in_a_one_pixel_image():
    one = np.array([[1]])
    assert hausdorff_distance(one, one) == 0.0
    np.testing.assert_allclose(hausdorff_distance(one, 0 * one, average=None), [1.0, 1.0])


def test_boundary_f1_drops_beyond_tolerance():
    t, _ = _square_pair(0)
    assert boundary_f1_score(t, t) == 1.0
    scores = [boundary_f1_score(*_square_pair(s), tolerance=2) for s in range(6)]
    assert scores[0] == scores[1] == scores[2] == 1.0
    assert scores[3] < 1.0 and scores[5] < scores[3]
    assert boundary_f1_score(*_square_pair(3), tolerance=3) == 1.0
    assert boundary_f1_score(*_square_pair(1), tolerance=0) < 1.0
    # a class missing from the prediction scores 0
    assert boundary_f1_score(t, np.zeros_like(t), labels=[0, 1], average=None)[1] == 0.0


def test_surface_dice_drops_beyond_tolerance():
    scores = [surface_dice(*_square_pair(s), tolerance=2) for s in range(6)]
    assert scores[0] == scores[2] == 1.0
    assert scores[3] < 1.0 and scores[5] < scores[3]
    t, _ = _square_pair(0)
    assert surface_dice(np.zeros_like(t), t, labels=[0, 1], average=None)[1] == 0.0


def test_boundary_metrics_ignore_index():
    t, p = _square_pair(0, size=12)
    t_ign = t.copy()
    t_ign[:, 9:] = 5  # unlabelled: belongs to no region on either side
    p_other = p.copy()
    p_other[:, 9:] = 1  # whatever is predicted there does not count
    for f in (hausdorff_distance, boundary_f1_score, surface_dice):
        assert f(t_ign, p_other, ignore_index=5) == f(t_ign, p, ignore_index=5)
        assert f(t_ign, np.where(t_ign == 5, 0, t_ign), ignore_index=5) == f(t, t)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
Z = np.zeros((2, 4, 4), dtype=int)

ALL_METRICS = [
    confusion_matrix, iou_score, dice_score, pixel_accuracy, mean_iou,
    hausdorff_distance, boundary_f1_score, surface_dice,
]


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("y_true,y_pred,exc,match", [
    (Z, Z[:, :3], ValueError, r"y_true .*\(2, 4, 4\).*y_pred .*\(2, 3, 4\)"),
    (Z, Z[:1], ValueError, "same shape"),
    ([Z[0], Z[1]], [Z[0], Z[1, :2]], ValueError, r"y_true\[1\].*y_pred\[1\]"),
    ([Z[0]], [Z[0], Z[1]], ValueError, "1 label images but y_pred has 2"),
    (Z[0, 0], Z[0, 0], ValueError, "y_true must be label images"),
    (Z, np.zeros((2, 4, 4, 3)), ValueError, "y_pred must be label images"),
    ([], [], ValueError, "y_true is an empty list"),
    (np.zeros((0, 4, 4)), np.zeros((0, 4, 4)), ValueError, "y_true is empty"),
    ([Z], [Z], ValueError, r"y_true\[0\] must be a 2-D"),
    (Z.astype(str), Z, TypeError, "y_true must hold integer"),
    (Z, Z.astype(complex), TypeError, "y_pred must hold integer"),
    (Z, Z + 0.5, ValueError, "y_pred has non-integer values"),
    (Z.astype(float) * np.nan, Z, ValueError, "y_true contains NaN"),
])
def test_bad_label_images(metric, y_true, y_pred, exc, match):
    with pytest.raises(exc, match=match):
        metric(y_true, y_pred)


LABELLED = [confusion_matrix, iou_score, dice_score, mean_iou, hausdorff_distance,
            boundary_f1_score, surface_dice]


@pytest.mark.parametrize("metric", LABELLED)
def test_bad_labels_and_ignore_index(metric):
    t = np.array([[0, 1], [2, 255]])
    with pytest.raises(ValueError, match=r"y_true contains labels \[2\] not in labels"):
        metric(t, np.zeros_like(t), labels=[0, 1], ignore_index=255)
    with pytest.raises(ValueError, match=r"y_pred contains labels \[3\] not in labels"):
        metric(t, np.full_like(t, 3), labels=[0, 1, 2], ignore_index=255)
    with pytest.raises(ValueError, match=r"y_true contains labels \[255\]"):
        metric(t, t, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="y_pred holds the ignore_index value 255"):
        metric(t, np.full_like(t, 255), ignore_index=255)
    with pytest.raises(ValueError, match="ignore_index=255 is also in labels"):
        metric(t, t, labels=[0, 1, 2, 255], ignore_index=255)
    with pytest.raises(TypeError, match="ignore_index"):
        metric(t, t, ignore_index=2.5)
    with pytest.raises(ValueError, match="labels must be a 1-D"):
        metric(t, t, labels=[[0, 1]])
    with pytest.raises(ValueError, match="labels is empty"):
        metric(t, t, labels=[])
    with pytest.raises(ValueError, match="labels has repeated"):
        metric(t, t, labels=[0, 1, 1, 2, 255])
    with pytest.raises(ValueError, match="labels must hold integer"):
        metric(t, t, labels=[0, 1.5, 2, 255])
    with pytest.raises(TypeError, match="labels must hold integer"):
        metric(t, t, labels=["a", "b"])


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"average": "binary"}, ValueError, "average must be one of"),
    ({"average": 1}, ValueError, "average must be one of"),
    ({"zero_division": "warn"}, ValueError, "zero_division"),
    ({"zero_division": 0.5}, ValueError, "zero_division"),
    ({"per_image": "yes"}, TypeError, "per_image"),
])
@pytest.mark.parametrize("metric", [iou_score, dice_score])
def test_bad_overlap_options(metric, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        metric(Z, Z, **kwargs)


@pytest.mark.parametrize("metric,kwargs,exc,match", [
    (hausdorff_distance, {"percentile": 0}, ValueError,
     r"percentile must be a finite number in \(0, 100\]"),
    (hausdorff_distance, {"percentile": 100.5}, ValueError, "percentile"),
    (hausdorff_distance, {"percentile": float("nan")}, ValueError, "percentile"),
    (hausdorff_distance, {"percentile": "95"}, TypeError, "percentile"),
    (boundary_f1_score, {"tolerance": -1}, ValueError, "tolerance must be a finite number >= 0"),
    (surface_dice, {"tolerance": float("inf")}, ValueError, "tolerance"),
    (surface_dice, {"tolerance": None}, TypeError, "tolerance"),
    (boundary_f1_score, {"average": "micro"}, ValueError, "average must be one of"),
    (hausdorff_distance, {"average": "weighted"}, ValueError, "average must be one of"),
])
def test_bad_boundary_options(metric, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        metric(Z, Z, **kwargs)


# --------------------------------------------------------------------------- #
# scorers
# --------------------------------------------------------------------------- #
class ThresholdSegmenter(BaseEstimator):
    """Labels a pixel foreground when its intensity exceeds ``threshold``."""

    def __init__(self, threshold=0.5, ignore_index=None):
        self.threshold = threshold
        self.ignore_index = ignore_index

    def fit(self, X, y):
        values = np.unique(y)
        self.classes_ = values[values != self.ignore_index]
        return self

    def predict(self, X):
        return np.where(np.asarray(X) > self.threshold, self.classes_[-1], self.classes_[0])


@pytest.fixture
def blobs(rng):
    y = np.zeros((12, 10, 10), dtype=np.uint8)
    for i in range(12):
        r, c = rng.integers(1, 6, size=2)
        y[i, r:r + 4, c:c + 4] = 255
    X = y / 255.0 + rng.normal(0, 0.25, size=y.shape)
    return X, y


def test_scorer_calls_predict_once_and_uses_classes(blobs):
    X, y = blobs
    calls = []

    class Counting(ThresholdSegmenter):
        def predict(self, X):
            calls.append(1)
            return super().predict(X)

    est = Counting(threshold=0.5).fit(X, y)
    pred = est.predict(X)
    calls.clear()
    assert get_scorer("mean_iou")(est, X, y) == pytest.approx(mean_iou(y, pred))
    assert len(calls) == 1
    assert get_scorer("dice_micro")(est, X, y) == pytest.approx(
        dice_score(y, pred, average="micro"))
    assert get_scorer("neg_hausdorff95")(est, X, y) == pytest.approx(
        -hausdorff_distance(y, pred, percentile=95))
    assert get_scorer("boundary_f1")(est, X, y) == pytest.approx(boundary_f1_score(y, pred))
    assert get_scorer("surface_dice")(est, X, y) == pytest.approx(surface_dice(y, pred))
    assert get_scorer("pixel_accuracy")(est, X, y) == pytest.approx(pixel_accuracy(y, pred))
    assert get_scorer("iou_micro")(est, X, y) == pytest.approx(
        iou_score(y, pred, average="micro"))


def test_scorer_takes_ignore_index_and_labels_from_estimator(blobs):
    X, y = blobs
    y = y.copy()
    y[:, 0] = 7  # unlabelled band
    est = ThresholdSegmenter(ignore_index=7).fit(X, y)
    pred = est.predict(X)
    assert list(est.classes_) == [0, 255]
    expected = mean_iou(y, pred, labels=est.classes_, ignore_index=7)
    assert get_scorer("mean_iou")(est, X, y) == pytest.approx(expected)
    assert get_scorer("pixel_accuracy")(est, X, y) == pytest.approx(
        pixel_accuracy(y, pred, ignore_index=7))
    # a class the model never saw counts as missed instead of failing
    y_new = y.copy()
    y_new[:, -1] = 9
    assert get_scorer("mean_iou")(est, X, y_new) == pytest.approx(
        mean_iou(y_new, pred, labels=[0, 255, 9], ignore_index=7))
    assert iou_score(y_new, pred, labels=[0, 255, 9], ignore_index=7, average=None)[2] == 0


def test_make_segmentation_scorer_with_user_metric(blobs):
    X, y = blobs
    est = ThresholdSegmenter().fit(X, y)

    def foreground_share(y_true, y_pred):
        return float(np.mean(np.asarray(y_pred) > 0))

    scorer = make_segmentation_scorer(foreground_share, greater_is_better=False)
    assert scorer(est, X, y) == pytest.approx(-np.mean(est.predict(X) > 0))
    assert "foreground_share" in repr(scorer) and "greater_is_better=False" in repr(scorer)
    per_class = make_segmentation_scorer(iou_score, labels=[0, 255, 3], average=None)
    with pytest.raises(TypeError, match="single number"):
        per_class(est, X, y)
    fixed = make_segmentation_scorer(iou_score, labels=[255, 0, 3])
    assert fixed(est, X, y) == pytest.approx(mean_iou(y, est.predict(X)))
    with pytest.raises(TypeError, match="metric must be a callable"):
        make_segmentation_scorer("iou")
    with pytest.raises(TypeError, match="greater_is_better"):
        make_segmentation_scorer(iou_score, greater_is_better="no")
    # a keyword the metric does not take fails here, not at the first score
    with pytest.raises(TypeError, match=r"'iou_score' takes no keyword 'averag' \(did you mean "
                                        r"'average'\?\)"):
        make_segmentation_scorer(iou_score, averag="macro")
    with pytest.raises(TypeError, match="takes no keyword 'tolerance'"):
        make_segmentation_scorer(foreground_share, tolerance=2)
    assert make_segmentation_scorer(lambda a, b, **kw: 0.0, anything=1) is not None


def test_get_scorer_names_and_errors():
    names = get_scorer_names()
    assert names == sorted(SCORERS) and "mean_iou" in names and "neg_hausdorff95" in names
    for name in names:
        assert get_scorer(name) is SCORERS[name]
        pickle.loads(pickle.dumps(get_scorer(name)))  # picklable for n_jobs > 1
    with pytest.raises(ValueError, match="'nope' is not a known.*mean_iou"):
        get_scorer("nope")
    with pytest.raises(TypeError, match="scoring"):
        get_scorer(3)

    def custom(estimator, X, y):
        return 0.0

    assert get_scorer(custom) is custom
    with pytest.raises(TypeError):
        SCORERS["new"] = custom


@pytest.mark.parametrize("spelling, name", [
    ("accuracy", "pixel_accuracy"), ("jaccard", "mean_iou"), ("jaccard_macro", "mean_iou"),
    ("jaccard_micro", "iou_micro"), ("f1", "dice"), ("f1_macro", "dice"),
    ("f1_micro", "dice_micro"),
])
def test_get_scorer_takes_scikit_learn_spellings(spelling, name):
    assert get_scorer(spelling) is SCORERS[name]


def test_get_scorer_of_several_names_is_a_dict_for_multimetric_scoring(blobs):
    X, y = blobs
    est = ThresholdSegmenter().fit(X, y)
    scorers = get_scorer(["mean_iou", "f1", "neg_hausdorff95"])
    assert list(scorers) == ["mean_iou", "f1", "neg_hausdorff95"]
    assert scorers["f1"] is SCORERS["dice"]
    assert get_scorer(("dice", "mean_iou")) == {"dice": SCORERS["dice"],
                                                "mean_iou": SCORERS["mean_iou"]}
    assert list(get_scorer({"mean_iou", "dice"})) == ["dice", "mean_iou"]

    def custom(estimator, X, y):
        return 0.5

    named = get_scorer({"iou": "jaccard", "mine": custom})
    assert named == {"iou": SCORERS["mean_iou"], "mine": custom}
    assert named["iou"](est, X, y) == pytest.approx(mean_iou(y, est.predict(X)))


@pytest.mark.parametrize("scoring, exc, needles", [
    ("mean_iuo", ValueError, ["'mean_iuo' is not a known", "did you mean 'mean_iou'?"]),
    ("acuracy", ValueError, ["did you mean 'accuracy'?"]),
    (["mean_iou", "dcie"], ValueError, ["'dcie'", "did you mean 'dice'?"]),
    ({"iou": "f_1"}, ValueError, ["'f_1'", "did you mean 'f1'?"]),
    ("roc_auc", ValueError, ["'roc_auc' is not a known", "mean_iou"]),
    ([], ValueError, ["at least one"]),
    (["dice", "dice"], ValueError, ["more than once"]),
    ({1: "dice"}, TypeError, ["names"]),
    ({"iou": 3}, TypeError, ["scoring['iou']"]),
    (3, TypeError, ["scoring"]),
])
def test_get_scorer_errors_name_the_problem_and_show_the_working_form(scoring, exc, needles):
    with pytest.raises(exc) as info:
        get_scorer(scoring)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    if exc is ValueError and "known" in message:
        assert 'scoring=get_scorer(["mean_iou", "dice"]), refit="mean_iou"' in message


def test_grid_search_and_cross_validate(blobs):
    X, y = blobs
    cv = KFold(3)
    grid = GridSearchCV(ThresholdSegmenter(), {"threshold": [-0.5, 0.5, 1.5]},
                        scoring=get_scorer("mean_iou"), cv=cv).fit(X, y)
    assert grid.best_params_ == {"threshold": 0.5}
    for i, thr in enumerate([-0.5, 0.5, 1.5]):
        folds = [mean_iou(y[test], ThresholdSegmenter(thr).fit(X[train], y[train])
                          .predict(X[test]), labels=[0, 255])
                 for train, test in cv.split(X)]
        assert grid.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(folds))

    scoring = {name: get_scorer(name) for name in ["mean_iou", "dice", "neg_hausdorff95",
                                                   "boundary_f1"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scoring failure may pass silently
        res = cross_validate(ThresholdSegmenter(), X, y, scoring=scoring, cv=cv)
        multi = GridSearchCV(ThresholdSegmenter(), {"threshold": [-0.5, 0.5, 1.5]},
                             scoring=scoring, refit="mean_iou", cv=cv).fit(X, y)
    assert np.all((res["test_mean_iou"] > 0.5) & (res["test_mean_iou"] <= 1))
    assert np.all(res["test_neg_hausdorff95"] <= 0)
    assert multi.best_params_ == {"threshold": 0.5}
    assert multi.best_score_ == pytest.approx(
        multi.cv_results_["mean_test_mean_iou"][multi.best_index_])
    assert multi.score(X, y) == pytest.approx(mean_iou(y, multi.predict(X)))


def test_labels_above_int64_are_refused_with_the_fix():
    from sksegment.metrics import mean_iou
    y = np.array([[1, 2**63 + 5]], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"y_true has label values above .*return_inverse"):
        mean_iou(y, y)


def test_numpy_strings_are_options():
    t = np.zeros((4, 4), int)
    t[1:3, 1:3] = 1
    assert iou_score(t, t, average=np.array(["micro"])[0]) == 1.0


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_scorer_checks_what_the_metric_returns(value):
    from sksegment.metrics import make_segmentation_scorer

    class Identity:
        classes_ = np.array([0, 1])
        ignore_index = None

        def predict(self, X):
            return X

    t = np.zeros((1, 4, 4), int)
    scorer = make_segmentation_scorer(lambda y_true, y_pred: value)
    with pytest.raises(TypeError, match="must return a real number"):
        scorer(Identity(), t, t)
