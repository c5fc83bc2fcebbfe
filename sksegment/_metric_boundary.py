"""Boundary metrics of label images: Hausdorff distance, boundary F1 score
and normalised surface Dice (boundaries and the rules for absent classes are
described in :mod:`sksegment.metrics`).

Public through :mod:`sksegment.metrics`.
"""

import math

import numpy as np
from scipy import ndimage

from ._metric_base import Encoder, check_average, check_pair, finish, nanmean, resolve_labels
from ._validation import check_number

_CROSS = ndimage.generate_binary_structure(2, 1)


def _inner_boundary(region):
    return region & ~ndimage.binary_erosion(region, structure=_CROSS, border_value=0)


def _boundary_distances(bt, bp):
    """Distances from each pixel of ``bp`` to the nearest pixel of ``bt`` and
    from each pixel of ``bt`` to the nearest of ``bp`` (both non-empty). The
    transforms run on the bounding box of both boundaries, which holds every
    nearest pixel, so the distances are exact."""
    both = bt | bp
    rows = np.flatnonzero(both.any(axis=1))
    cols = np.flatnonzero(both.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    bt, bp = bt[box], bp[box]
    pred_to_true = ndimage.distance_transform_edt(~bt)[bp]
    true_to_pred = ndimage.distance_transform_edt(~bp)[bt]
    return pred_to_true, true_to_pred


def _class_score(rt, rp, pair_score, empty_score):
    """Score of one class in one image from its true and predicted regions:
    NaN when both are empty, ``empty_score`` when one is."""
    has_t, has_p = rt.any(), rp.any()
    if not (has_t or has_p):
        return np.nan
    if not (has_t and has_p):
        return empty_score
    return pair_score(*_boundary_distances(_inner_boundary(rt), _inner_boundary(rp)))


def _boundary_score(y_true, y_pred, labels, ignore_index, average, pair_score, empty_score):
    """Per (image, class) scores from ``pair_score(pred_to_true, true_to_pred)``
    (``empty_score(h, w)`` when one region is empty), aggregated as documented
    in :mod:`sksegment.metrics`."""
    average = check_average(average, (None, "macro"))
    t, p = check_pair(y_true, y_pred)
    labels, ignore = resolve_labels(t, p, labels, ignore_index)
    enc = Encoder(labels)
    scores = np.full((len(t), enc.k), np.nan)
    for i in range(len(t)):
        ti, pi, valid = enc.encode(t[i], p[i], ignore)
        if valid is not None:
            pi = np.where(valid, pi, -1)
        empty = empty_score(*t[i].shape)
        scores[i] = [_class_score(ti == c, pi == c, pair_score, empty) for c in range(enc.k)]
    per_class = nanmean(scores, axis=0)
    if average is None:
        return per_class
    return nanmean(per_class, axis=0)


def _matched_boundary_score(y_true, y_pred, tolerance, labels, average, ignore_index, combine):
    """Boundary scores built from counts of boundary pixels within
    ``tolerance`` of the other boundary: per image and class,
    ``combine(matched_pred, n_pred, matched_true, n_true)``; 0 when only one
    region is empty."""
    tol = check_number(tolerance, "tolerance", low=0)

    def pair(pred_to_true, true_to_pred):
        return combine(np.count_nonzero(pred_to_true <= tol), pred_to_true.size,
                       np.count_nonzero(true_to_pred <= tol), true_to_pred.size)

    return _boundary_score(y_true, y_pred, labels, ignore_index, average, pair,
                           lambda h, w: 0.0)


def _f1(matched_pred, n_pred, matched_true, n_true):
    """Harmonic mean of precision and recall of the boundary pixels."""
    precision = matched_pred / n_pred
    recall = matched_true / n_true
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _surface_share(matched_pred, n_pred, matched_true, n_true):
    """Share of all boundary pixels, of both boundaries, that are matched."""
    return (matched_pred + matched_true) / (n_pred + n_true)


def hausdorff_distance(y_true, y_pred, *, labels=None, percentile=100, average="macro",
                       ignore_index=None):
    """Symmetric Hausdorff distance between true and predicted class boundaries.

    For each image and class, the distances (in pixels) from every predicted
    boundary pixel to the nearest true boundary pixel, and from every true
    boundary pixel to the nearest predicted one, are summarised by their
    ``percentile``; the larger of the two is the distance. ``percentile=100``
    is the Hausdorff distance, ``percentile=95`` the robust HD95. Lower is
    better.

    Boundaries are inner boundaries with 4-connectivity, the image edge
    counting as a boundary (see :mod:`sksegment.metrics`). A class absent from
    both images is left out for that image; a class present in only one of
    them scores the image diagonal ``sqrt((H-1)**2 + (W-1)**2)``, the largest
    possible distance (at least 1). Each class is averaged over the images where it is
    scored, then ``average="macro"`` averages the classes.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold (None: the values found); a
        value outside it raises a ValueError.
    percentile : float, default=100
        In (0, 100]; percentile of the boundary distances in each direction.
    average : {"macro"} or None, default="macro"
        None returns one distance per class (NaN for a class scored in no
        image).
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": those pixels belong to no region.

    Returns
    -------
    distance : float, or ndarray of shape (K,) for ``average=None``
        In pixels, >= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import hausdorff_distance
    >>> y_true = np.zeros((12, 12), dtype=int)
    >>> y_true[2:7, 2:7] = 1
    >>> y_pred = np.roll(y_true, 3, axis=1)
    >>> hausdorff_distance(y_true, y_pred, average=None)
    array([3., 3.])
    >>> hausdorff_distance(y_true, y_true)
    0.0
    """
    q = check_number(percentile, "percentile", low=0, high=100, low_open=True)

    def pair(pred_to_true, true_to_pred):
        return max(np.percentile(pred_to_true, q), np.percentile(true_to_pred, q))

    score = _boundary_score(y_true, y_pred, labels, ignore_index, average, pair,
                            lambda h, w: max(math.hypot(h - 1, w - 1), 1.0))
    return finish(score, "hausdorff_distance")


def boundary_f1_score(y_true, y_pred, *, tolerance=2, labels=None, average="macro",
                      ignore_index=None):
    """Boundary F1 score (BF score) of label images.

    For each image and class, precision is the share of predicted boundary
    pixels within ``tolerance`` pixels (Euclidean) of a true boundary pixel,
    recall the share of true boundary pixels within ``tolerance`` of a
    predicted one, and the score is their harmonic mean (Csurka et al.,
    2013). Boundaries are inner boundaries with 4-connectivity, the image edge
    counting as a boundary (see :mod:`sksegment.metrics`).

    A class absent from both images is left out for that image; a class
    present in only one of them scores 0. Each class is averaged over the
    images where it is scored, then ``average="macro"`` averages the classes.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    tolerance : float, default=2
        Distance in pixels, >= 0, within which boundary pixels match.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold (None: the values found); a
        value outside it raises a ValueError.
    average : {"macro"} or None, default="macro"
        None returns one score per class.
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": those pixels belong to no region.

    Returns
    -------
    score : float, or ndarray of shape (K,) for ``average=None``
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import boundary_f1_score
    >>> y_true = np.zeros((12, 12), dtype=int)
    >>> y_true[2:7, 2:7] = 1
    >>> boundary_f1_score(y_true, y_true)
    1.0
    >>> shifted = np.roll(y_true, 3, axis=1)
    >>> boundary_f1_score(y_true, shifted, tolerance=3)
    1.0
    >>> bool(boundary_f1_score(y_true, shifted, tolerance=2) < 1.0)
    True
    """
    score = _matched_boundary_score(y_true, y_pred, tolerance, labels, average, ignore_index,
                                    _f1)
    return finish(score, "boundary_f1_score")


def surface_dice(y_true, y_pred, *, tolerance=2, labels=None, average="macro",
                 ignore_index=None):
    """Normalised surface Dice of label images (Nikolov et al., 2021).

    For each image and class: the number of predicted boundary pixels within
    ``tolerance`` pixels of the true boundary plus the number of true boundary
    pixels within ``tolerance`` of the predicted boundary, divided by the
    number of boundary pixels of both. On a pixel grid each boundary pixel
    stands for a unit of boundary length. Boundaries are inner boundaries with
    4-connectivity, the image edge counting as a boundary (see
    :mod:`sksegment.metrics`).

    A class absent from both images is left out for that image; a class
    present in only one of them scores 0. Each class is averaged over the
    images where it is scored, then ``average="macro"`` averages the classes.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    tolerance : float, default=2
        Distance in pixels, >= 0, within which boundary pixels match.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold (None: the values found); a
        value outside it raises a ValueError.
    average : {"macro"} or None, default="macro"
        None returns one score per class.
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": those pixels belong to no region.

    Returns
    -------
    score : float, or ndarray of shape (K,) for ``average=None``
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import surface_dice
    >>> y_true = np.zeros((12, 12), dtype=int)
    >>> y_true[2:7, 2:7] = 1
    >>> surface_dice(y_true, y_true)
    1.0
    >>> surface_dice(y_true, np.roll(y_true, 1, axis=0), tolerance=1)
    1.0
    """
    score = _matched_boundary_score(y_true, y_pred, tolerance, labels, average, ignore_index,
                                    _surface_share)
    return finish(score, "surface_dice")
