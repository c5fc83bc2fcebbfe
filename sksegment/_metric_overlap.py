"""Overlap metrics of label images, from pixel confusion matrices:
confusion matrix, IoU, Dice, mean IoU, pixel accuracy.

Public through :mod:`sksegment.metrics`.
"""

import math
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from ._data import check_ignore_index
from ._metric_base import (
    as_int64,
    blocks,
    check_average,
    check_pair,
    count_pixels,
    finish,
    nanmean,
    resolve_labels,
)
from ._validation import check_bool, is_real


def _check_zero_division(zero_division):
    if isinstance(zero_division, str) and zero_division == "exclude":
        return None
    if is_real(zero_division) and zero_division in (0, 1):
        return float(zero_division)
    raise ValueError(f'zero_division must be "exclude", 0 or 1; got {zero_division!r}.')


def _ratio(num, den, zero_division):
    fill = np.nan if zero_division is None else zero_division
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), fill)


def _overlap_from_cm(cm, kind, average, zero_division):
    """IoU or Dice from confusion matrices of shape (..., K, K); the result
    has shape (...) or (..., K) for ``average=None``."""
    cm = cm.astype(np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    if kind == "iou":
        num, den = tp, support + predicted - tp
    else:
        num, den = 2 * tp, support + predicted
    if average == "micro":
        return _ratio(num.sum(axis=-1), den.sum(axis=-1), zero_division)
    per_class = _ratio(num, den, zero_division)
    if average is None:
        return per_class
    if average == "macro":
        return nanmean(per_class, axis=-1)
    # weighted by true support; undefined classes have no support
    weights = np.where(np.isnan(per_class), 0.0, support)
    weighted = (weights * np.nan_to_num(per_class)).sum(axis=-1)
    return _ratio(weighted, weights.sum(axis=-1), zero_division)


def _overlap_score(kind, y_true, y_pred, labels, average, per_image, ignore_index,
                   zero_division):
    average = check_average(average)
    zd = _check_zero_division(zero_division)
    per_image = check_bool(per_image, "per_image")
    t, p = check_pair(y_true, y_pred)
    labels, ignore = resolve_labels(t, p, labels, ignore_index)
    cm = count_pixels(t, p, labels, ignore, per_image=per_image)
    score = _overlap_from_cm(cm, kind, average, zd)
    if per_image:
        # an image with no counted pixel has no score, whatever zero_division says
        empty = cm.sum(axis=(-2, -1)) == 0
        if empty.any():
            score = np.where(empty.reshape((-1,) + (1,) * (np.ndim(score) - 1)), np.nan, score)
        score = nanmean(score, axis=0)
    return finish(score, "IoU" if kind == "iou" else "Dice")


# --------------------------------------------------------------------------- #
# public overlap metrics
# --------------------------------------------------------------------------- #
def confusion_matrix(y_true, y_pred, labels=None, ignore_index=None):
    """Pixel confusion matrix of label images.

    Rows are true labels and columns predicted labels, as in
    :func:`sklearn.metrics.confusion_matrix`. The pixels are counted in
    chunks, so no temporary of the data set's size is made.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images (integer, bool or integral float values).
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold, in the order of the rows and
        columns. None takes the sorted union of the values in ``y_true`` and
        ``y_pred`` (``ignore_index`` excluded). Unlike scikit-learn, a pixel
        of ``y_true`` or ``y_pred`` holding a value outside ``labels`` raises
        a ValueError instead of being dropped.
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": pixels where ``y_true`` equals it
        are not counted. It may not be in ``labels``.

    Returns
    -------
    cm : ndarray of shape (K, K), int64
        ``cm[i, j]`` counts pixels of true label ``labels[i]`` predicted as
        ``labels[j]``.

    Raises
    ------
    ValueError
        On images of different shapes, values outside ``labels``,
        non-integral values, or ``ignore_index`` in ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import confusion_matrix
    >>> y_true = np.array([[0, 0, 255], [0, 255, 255]], dtype=np.uint8)
    >>> y_pred = np.array([[0, 255, 255], [0, 0, 255]], dtype=np.uint8)
    >>> confusion_matrix(y_true, y_pred)
    array([[2, 1],
           [1, 2]])
    >>> confusion_matrix(y_true, y_pred, labels=[255, 0])
    array([[2, 1],
           [1, 2]])
    """
    t, p = check_pair(y_true, y_pred)
    labels, ignore = resolve_labels(t, p, labels, ignore_index)
    return count_pixels(t, p, labels, ignore, per_image=False)


_OVERLAP_DOC = """
    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images (integer, bool or integral float values).
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold; per-class results follow its
        order. None takes the sorted union of the values in ``y_true`` and
        ``y_pred`` (``ignore_index`` excluded). A value outside ``labels``
        raises a ValueError.
    average : {"macro", "micro", "weighted"} or None, default="macro"
        None returns one score per class. "macro" is the mean over the
        classes, "weighted" the mean weighted by the true pixel count of each
        class, "micro" pools true positives, false positives and false
        negatives over the classes before dividing.
    per_image : bool, default=False
        False computes the score on all pixels of the data set at once. True
        computes it for each image, then averages over the images: a class
        absent from both truth and prediction *of one image* is left out for
        that image, and an image whose score is undefined (every pixel
        ``ignore_index``) is left out of the average. With ``average=None``
        each class is averaged over the images where it is defined.
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": pixels where ``y_true`` equals it
        count nowhere.
    zero_division : "exclude", 0 or 1, default="exclude"
        Score of a class absent from both truth and prediction. "exclude"
        leaves it out of the averages (NaN in per-class results); 0 or 1
        count it with that score.

    Returns
    -------
    score : float, or ndarray of shape (K,) for ``average=None``
        In [0, 1]; NaN (with an ``UndefinedMetricWarning``) when no class is
        defined.
"""


def iou_score(y_true, y_pred, *, labels=None, average="macro", per_image=False,
              ignore_index=None, zero_division="exclude"):
    """Intersection over union (Jaccard index) of label images.

    For class c, ``IoU = TP / (TP + FP + FN)`` counted in pixels. A class
    absent from both truth and prediction has no IoU: it is left out of the
    averages and NaN in per-class results, never counted as 1 or 0.
    {params}
    See Also
    --------
    mean_iou : the macro average with fewer options.
    dice_score : Dice (F1) coefficient.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import iou_score
    >>> y_true = np.array([[0, 0, 1], [0, 1, 1]])
    >>> y_pred = np.array([[0, 1, 1], [0, 0, 1]])
    >>> iou_score(y_true, y_pred, average=None)
    array([0.5, 0.5])
    >>> iou_score(y_true, y_pred, labels=[0, 1, 2], average=None)
    array([0.5, 0.5, nan])
    >>> iou_score(y_true, y_pred, labels=[0, 1, 2])
    0.5
    """
    return _overlap_score("iou", y_true, y_pred, labels, average, per_image, ignore_index,
                          zero_division)


def dice_score(y_true, y_pred, *, labels=None, average="macro", per_image=False,
               ignore_index=None, zero_division="exclude"):
    """Dice coefficient (pixel F1 score) of label images.

    For class c, ``Dice = 2 TP / (2 TP + FP + FN)`` counted in pixels. A
    class absent from both truth and prediction has no Dice: it is left out
    of the averages and NaN in per-class results, never counted as 1 or 0.
    With ``average="micro"`` Dice equals pixel accuracy.
    {params}
    See Also
    --------
    iou_score : intersection over union.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import dice_score
    >>> y_true = np.array([[0, 0, 1], [0, 1, 1]])
    >>> y_pred = np.array([[0, 1, 1], [0, 0, 1]])
    >>> dice_score(y_true, y_pred, average=None)
    array([0.66666667, 0.66666667])
    >>> dice_score([y_true, y_true[:, :2]], [y_pred, y_true[:, :2]], per_image=True)
    0.8333333333333333
    """
    return _overlap_score("dice", y_true, y_pred, labels, average, per_image, ignore_index,
                          zero_division)


iou_score.__doc__ = iou_score.__doc__.replace("{params}", _OVERLAP_DOC)
dice_score.__doc__ = dice_score.__doc__.replace("{params}", _OVERLAP_DOC)


def mean_iou(y_true, y_pred, labels=None, ignore_index=None):
    """Mean intersection over union over the classes.

    The same as ``iou_score(y_true, y_pred, labels=labels,
    ignore_index=ignore_index, average="macro")``: a class absent from both
    truth and prediction is left out of the mean.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    labels : array-like of shape (K,) or None, default=None
        Every label value the images may hold (None: the values found).
    ignore_index : int or None, default=None
        Label value meaning "unlabelled"; those pixels count nowhere.

    Returns
    -------
    score : float
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import mean_iou
    >>> y_true = np.array([[0, 0, 1], [0, 1, 1]])
    >>> mean_iou(y_true, y_true)
    1.0
    >>> mean_iou(y_true, np.zeros_like(y_true))
    0.25
    """
    return iou_score(y_true, y_pred, labels=labels, ignore_index=ignore_index,
                     average="macro")


def pixel_accuracy(y_true, y_pred, ignore_index=None):
    """Share of pixels whose predicted label equals the true label.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    ignore_index : int or None, default=None
        Label value meaning "unlabelled": pixels where ``y_true`` equals it
        are not counted. A prediction equal to it elsewhere is simply wrong.

    Returns
    -------
    accuracy : float
        In [0, 1]; NaN (with a warning) when every pixel is ``ignore_index``.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import pixel_accuracy
    >>> y_true = np.array([[0, 0, 1], [0, 1, 255]])
    >>> y_pred = np.array([[0, 1, 1], [0, 0, 0]])
    >>> pixel_accuracy(y_true, y_pred)
    0.5
    >>> pixel_accuracy(y_true, y_pred, ignore_index=255)
    0.6
    """
    t, p = check_pair(y_true, y_pred)
    ignore = check_ignore_index(ignore_index)
    correct = total = 0
    for _, _, tb, pb in blocks(t, p):
        t64, p64 = as_int64(tb, "y_true"), as_int64(pb, "y_pred")
        hit = t64 == p64
        if ignore is not None:
            valid = t64 != ignore
            hit &= valid
            total += int(np.count_nonzero(valid))
        else:
            total += t64.size
        correct += int(np.count_nonzero(hit))
    if total == 0:
        warnings.warn(f"pixel_accuracy is undefined: every pixel of y_true equals "
                      f"ignore_index={ignore}; returning NaN.", UndefinedMetricWarning,
                      stacklevel=2)
        return math.nan
    return correct / total
