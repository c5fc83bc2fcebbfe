"""Segmentation metrics on label images, and scorers for model selection.

Every function here works on NumPy label images and needs no fitted model.

Inputs
------
``y_true`` and ``y_pred`` are label images: an array ``(n, H, W)``, a single
image ``(H, W)``, or a list of 2-D arrays whose sizes may differ from one
image to the next (``y_true[i]`` and ``y_pred[i]`` must have the same shape).
They hold label *values* (bool, any integers such as ``{0, 255}``, or floats
with integral values), not necessarily ``0 .. K-1``.

``labels`` is the complete set of label values, in the order per-class
results are reported; by default the sorted union of the values found in
``y_true`` and ``y_pred``. A pixel holding a value outside ``labels`` raises a
``ValueError`` (a wrong label map should not be dropped silently). To look at
some classes only, ask for per-class results (``average=None``) and index
them.

``ignore_index`` is a label value meaning "unlabelled": pixels where
``y_true`` equals it count nowhere, whatever ``y_pred`` holds there. It
cannot also be one of ``labels``. ``y_pred`` holding it at a labelled pixel is
an error in the functions that take ``labels`` (it is no class).

Absent classes
--------------
A class absent from both the truth and the prediction (in the data set, or
in one image with ``per_image=True``) has no defined IoU or Dice: the
denominator is 0. **Such a class is left out of every average and reported as
NaN in per-class results; it never counts as 1 or as 0.** So a score does not
depend on which classes a cross-validation fold happens to contain, and the
figures of different folds stay on one scale. ``zero_division=0`` or ``1``
chooses the other conventions instead. An average over nothing (no class
defined anywhere) is NaN with an ``UndefinedMetricWarning``.

Boundaries
----------
The boundary of a class region is its *inner* boundary: the pixels of the
region with at least one 4-neighbour outside it, computed as
``region & ~scipy.ndimage.binary_erosion(region, cross, border_value=0)``.
Outside the image counts as outside the region, so pixels on the image edge
are boundary pixels (as in the surface-distance code of Nikolov et al. and
MONAI). Distances are Euclidean, in pixels, between pixel centres (from
``scipy.ndimage.distance_transform_edt``). Pixels labelled ``ignore_index``
belong to no region, in the truth and in the prediction alike.

Boundary scores are computed per image and class, averaged over the images
where they are defined for each class, then (``average="macro"``) over the
classes. For one image and class:

==========================  ===========  ============  ===============
truth / prediction          hausdorff    boundary F1   surface Dice
==========================  ===========  ============  ===============
both empty                  left out     left out      left out
one empty, the other not    diagonal     0             0
both non-empty              distance     F1            share
==========================  ===========  ============  ===============

where "diagonal" is ``sqrt((H-1)**2 + (W-1)**2)``, the largest distance
within that image: a finite worst case, so a model that misses a class is
penalised rather than excused (left out) or sent to infinity.

Scorers
-------
:func:`get_scorer` returns callables ``scorer(estimator, X, y) -> float`` for
``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate` and ``CNNSegmenter``; greater
is better (the Hausdorff scorer is negated, ``"neg_hausdorff95"``).
:data:`SCORERS` maps every name to its scorer.
"""

import inspect
import math
import numbers
import types
import warnings

import numpy as np
from scipy import ndimage
from sklearn.exceptions import UndefinedMetricWarning

from ._data import _as_array, check_ignore_index

__all__ = [
    "SCORERS",
    "boundary_f1_score",
    "confusion_matrix",
    "dice_score",
    "get_scorer",
    "get_scorer_names",
    "hausdorff_distance",
    "iou_score",
    "make_segmentation_scorer",
    "mean_iou",
    "pixel_accuracy",
    "surface_dice",
]

# Pixels handled at once: no temporary is larger than a few arrays of this
# many elements, however large the data set.
_CHUNK = 1 << 20
# Label values spanning fewer than this many integers are encoded through a
# look-up table; wider spans through a binary search.
_LUT_SPAN = 1 << 20
_CROSS = ndimage.generate_binary_structure(2, 1)
_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------- #
# input checking
# --------------------------------------------------------------------------- #
def _check_label_dtype(arr, name):
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold integer, bool or integral float labels; got dtype {arr.dtype}."
        )


def _check_label_images(y, name):
    """A 3-D array (n, H, W) (views only) or a list of 2-D arrays."""
    if isinstance(y, (list, tuple)):
        if len(y) == 0:
            raise ValueError(f"{name} is an empty list; at least one label image is required.")
        images = []
        for i, img in enumerate(y):
            arr = _as_array(img, f"{name}[{i}]")
            if arr.ndim != 2:
                raise ValueError(
                    f"{name}[{i}] must be a 2-D label image (H, W); got shape {arr.shape}."
                )
            _check_label_dtype(arr, f"{name}[{i}]")
            if arr.size == 0:
                raise ValueError(f"{name}[{i}] is empty (shape {arr.shape}).")
            images.append(arr)
        return images
    arr = _as_array(y, name)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim != 3:
        raise ValueError(
            f"{name} must be label images of shape (n, H, W), one image of shape (H, W) "
            f"or a list of 2-D arrays; got an array of shape {arr.shape}."
        )
    _check_label_dtype(arr, name)
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one pixel is required.")
    return arr


def _check_pair(y_true, y_pred):
    t = _check_label_images(y_true, "y_true")
    p = _check_label_images(y_pred, "y_pred")
    if isinstance(t, np.ndarray) and isinstance(p, np.ndarray):
        if t.shape != p.shape:
            raise ValueError(
                "y_true and y_pred must have the same shape; got y_true of shape "
                f"{np.shape(y_true)} and y_pred of shape {np.shape(y_pred)}."
            )
        return t, p
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} label images but y_pred has {len(p)}.")
    for i in range(len(t)):
        if t[i].shape != p[i].shape:
            raise ValueError(
                f"y_true[{i}] has shape {t[i].shape} but y_pred[{i}] has shape "
                f"{p[i].shape}; each prediction must have the shape of its truth."
            )
    return t, p


def _check_labels(labels):
    """Validated ``labels`` as a 1-D int64 array (order kept) or None."""
    if labels is None:
        return None
    arr = _as_array(labels, "labels")
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D list of label values; got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError("labels is empty; give at least one label value or None.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"labels must hold integer label values; got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.trunc(arr)).any()):
        raise ValueError(f"labels must hold integer label values; got {arr.tolist()}.")
    arr = arr.astype(np.int64)
    if np.unique(arr).size != arr.size:
        raise ValueError(f"labels has repeated values: {arr.tolist()}.")
    return arr


def _check_ignore(ignore_index, labels):
    ignore = check_ignore_index(ignore_index)
    if ignore is not None and labels is not None and ignore in labels:
        raise ValueError(
            f"ignore_index={ignore} is also in labels {labels.tolist()}; the value that "
            "means 'unlabelled' cannot be a class."
        )
    return ignore


_AVERAGES = (None, "macro", "micro", "weighted")


def _check_average(average, allowed=_AVERAGES):
    if not (average is None or isinstance(average, str)) or average not in allowed:
        raise ValueError(f"average must be one of {list(allowed)}; got {average!r}.")
    return average


def _check_zero_division(zero_division):
    if isinstance(zero_division, str) and zero_division == "exclude":
        return None
    if (isinstance(zero_division, numbers.Real) and not isinstance(zero_division, bool)
            and zero_division in (0, 1)):
        return float(zero_division)
    raise ValueError(f'zero_division must be "exclude", 0 or 1; got {zero_division!r}.')


def _check_real(value, name, low, high, low_open, text):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number {text}; got {value!r}.")
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        raise ValueError(f"{name} must be {text}; got {value!r}.")
    return value


# --------------------------------------------------------------------------- #
# chunked passes over the pixels
# --------------------------------------------------------------------------- #
def _blocks(t, p):
    """Yield ``(first_image, n_images, t_block, p_block)``, blocks of shape
    (n_images, pixels) holding at most about ``_CHUNK`` pixels: several whole
    images of a 3-D array, or a band of rows of one image. Blocks are views
    where the memory layout allows and chunk-sized copies otherwise."""
    chunk = _CHUNK
    if isinstance(t, np.ndarray) and isinstance(p, np.ndarray):
        n, h, w = t.shape
        per = chunk // (h * w)
        if per >= 2:
            for s in range(0, n, per):
                e = min(n, s + per)
                yield s, e - s, t[s:e].reshape(e - s, -1), p[s:e].reshape(e - s, -1)
            return
    for i in range(len(t)):
        ti, pi = t[i], p[i]
        h, w = ti.shape
        rows = max(1, chunk // w)
        for r in range(0, h, rows):
            yield i, 1, ti[r:r + rows].reshape(1, -1), pi[r:r + rows].reshape(1, -1)


def _as_int64(block, name):
    """A new int64 array with the values of ``block``, checked to be labels."""
    if block.dtype.kind == "f":
        if not np.isfinite(block).all():
            raise ValueError(f"{name} contains NaN or infinity; label images hold class values.")
        if (block != np.trunc(block)).any():
            raise ValueError(
                f"{name} has non-integer values; label images hold integer class values "
                "(threshold or argmax continuous outputs first)."
            )
    elif block.dtype == np.uint64 and block.size and block.max() > _INT64_MAX:
        raise ValueError(f"{name} has label values above {_INT64_MAX}.")
    return block.astype(np.int64)


def _unique_int(x):
    if x.size == 0:
        return x[:0]
    lo, hi = int(x.min()), int(x.max())
    if hi - lo < _LUT_SPAN:
        return np.flatnonzero(np.bincount((x - lo).ravel(), minlength=hi - lo + 1)) + lo
    return np.unique(x)


def _found_labels(t, p, ignore):
    """Sorted label values in y_true and y_pred (int64), without the pixels
    where y_true is ``ignore`` and without ``ignore`` itself."""
    found = []
    for _, _, tb, pb in _blocks(t, p):
        t64, p64 = _as_int64(tb, "y_true"), _as_int64(pb, "y_pred")
        if ignore is not None:
            keep = t64 != ignore
            if not keep.all():
                t64, p64 = t64[keep], p64[keep]
        found.append(_unique_int(t64))
        found.append(_unique_int(p64))
    values = np.unique(np.concatenate(found))
    # y_pred may hold the ignore value at a labelled pixel: that is reported
    # as an error when the pixels are encoded, not treated as a class.
    return values[values != ignore] if ignore is not None else values


def _resolve_labels(t, p, labels, ignore_index):
    labels = _check_labels(labels)
    ignore = _check_ignore(ignore_index, labels)
    if labels is None:
        labels = _found_labels(t, p, ignore)
        if labels.size == 0:
            raise ValueError(
                f"every pixel of y_true equals ignore_index={ignore}; there is nothing to score."
            )
    return labels, ignore


class _Encoder:
    """Maps int64 label values to positions in ``labels`` (-1 if absent)."""

    def __init__(self, labels):
        self.labels = labels
        self.k = len(labels)
        order = np.argsort(labels, kind="stable")
        self.sorted, self.position = labels[order], order
        self.lo = int(self.sorted[0])
        span = int(self.sorted[-1]) - self.lo + 1
        self.lut = None
        if span <= _LUT_SPAN:
            self.lut = np.full(span, -1, dtype=np.int64)
            self.lut[labels - self.lo] = np.arange(self.k)

    def __call__(self, x):
        if self.lut is not None:
            x = x - self.lo
            span = len(self.lut)
            if x.size and (x.min() < 0 or x.max() >= span):
                outside = (x < 0) | (x >= span)
                np.clip(x, 0, span - 1, out=x)
                idx = self.lut[x]
                idx[outside] = -1
                return idx
            return self.lut[x]
        j = np.searchsorted(self.sorted, x)
        np.minimum(j, self.k - 1, out=j)
        return np.where(self.sorted[j] == x, self.position[j], -1)

    def encode(self, tb, pb, ignore):
        """Encode one block pair; returns (t_idx, p_idx, valid or None)."""
        t64, p64 = _as_int64(tb, "y_true"), _as_int64(pb, "y_pred")
        ti, pi = self(t64), self(p64)
        valid = None
        if ignore is not None:
            valid = t64 != ignore
            if valid.all():
                valid = None
        for name, raw, idx in (("y_true", t64, ti), ("y_pred", p64, pi)):
            bad = idx < 0
            if valid is not None:
                bad &= valid
            if bad.any():
                self._raise_unknown(name, raw[bad], ignore)
        return ti, pi, valid

    def _raise_unknown(self, name, values, ignore):
        values = np.unique(values)
        if name == "y_pred" and ignore is not None and ignore in values:
            raise ValueError(
                f"y_pred holds the ignore_index value {ignore} at pixels where y_true is "
                "labelled; a prediction must be one of the labels "
                f"{self.labels.tolist()}."
            )
        shown = values[:10].tolist()
        more = f" (and {values.size - 10} more)" if values.size > 10 else ""
        raise ValueError(
            f"{name} contains labels {shown}{more} not in labels {self.labels.tolist()}; "
            "pass every label value in labels (or mark unlabelled pixels with ignore_index)."
        )


def _count(t, p, labels, ignore, per_image):
    """Confusion matrix (K, K), or one per image (n, K, K), int64."""
    enc = _Encoder(labels)
    k = enc.k
    kk = k * k
    out = np.zeros((len(t), k, k) if per_image else (k, k), dtype=np.int64)
    for first, m, tb, pb in _blocks(t, p):
        ti, pi, valid = enc.encode(tb, pb, ignore)
        codes = ti * k + pi
        if per_image and m > 1:
            codes += (np.arange(m, dtype=np.int64) * kk)[:, None]
        bins = m * kk if per_image else kk
        if valid is not None:
            codes[~valid] = bins  # an extra bin, dropped below
        counts = np.bincount(codes.ravel(), minlength=bins + 1)[:bins]
        if per_image:
            out[first:first + m] += counts.reshape(m, k, k)
        else:
            out += counts.reshape(k, k)
    return out


# --------------------------------------------------------------------------- #
# scores from confusion matrices
# --------------------------------------------------------------------------- #
def _nanmean(a, axis):
    defined = ~np.isnan(a)
    n = defined.sum(axis=axis)
    total = np.where(defined, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


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
        return _nanmean(per_class, axis=-1)
    # weighted by true support; undefined classes have no support
    weights = np.where(np.isnan(per_class), 0.0, support)
    weighted = (weights * np.nan_to_num(per_class)).sum(axis=-1)
    return _ratio(weighted, weights.sum(axis=-1), zero_division)


def _finish(score, what):
    """Scalar results become floats; NaN (nothing to average) warns."""
    if np.ndim(score) == 0:
        score = float(score)
        if math.isnan(score):
            warnings.warn(
                f"{what} is undefined: no class is present in y_true or y_pred "
                "(after ignore_index); returning NaN.",
                UndefinedMetricWarning, stacklevel=3,
            )
        return score
    return np.asarray(score, dtype=np.float64)


def _overlap_score(kind, y_true, y_pred, labels, average, per_image, ignore_index,
                   zero_division):
    average = _check_average(average)
    zd = _check_zero_division(zero_division)
    if not isinstance(per_image, (bool, np.bool_)):
        raise TypeError(f"per_image must be True or False; got {per_image!r}.")
    t, p = _check_pair(y_true, y_pred)
    labels, ignore = _resolve_labels(t, p, labels, ignore_index)
    cm = _count(t, p, labels, ignore, per_image=bool(per_image))
    score = _overlap_from_cm(cm, kind, average, zd)
    if per_image:
        score = _nanmean(score, axis=0)
    return _finish(score, "IoU" if kind == "iou" else "Dice")


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
    t, p = _check_pair(y_true, y_pred)
    labels, ignore = _resolve_labels(t, p, labels, ignore_index)
    return _count(t, p, labels, ignore, per_image=False)


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
    t, p = _check_pair(y_true, y_pred)
    ignore = check_ignore_index(ignore_index)
    correct = total = 0
    for _, _, tb, pb in _blocks(t, p):
        t64, p64 = _as_int64(tb, "y_true"), _as_int64(pb, "y_pred")
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


# --------------------------------------------------------------------------- #
# boundary metrics
# --------------------------------------------------------------------------- #
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


def _boundary_score(y_true, y_pred, labels, ignore_index, average, pair_score, empty_score):
    """Per (image, class) scores from ``pair_score(pred_to_true, true_to_pred)``
    aggregated as documented in the module docstring."""
    average = _check_average(average, (None, "macro"))
    t, p = _check_pair(y_true, y_pred)
    labels, ignore = _resolve_labels(t, p, labels, ignore_index)
    enc = _Encoder(labels)
    scores = np.full((len(t), enc.k), np.nan)
    for i in range(len(t)):
        h, w = t[i].shape
        ti, pi, valid = enc.encode(t[i], p[i], ignore)
        if valid is not None:
            pi = np.where(valid, pi, -1)
        for c in range(enc.k):
            rt, rp = ti == c, pi == c
            has_t, has_p = rt.any(), rp.any()
            if not (has_t or has_p):
                continue
            if not (has_t and has_p):
                scores[i, c] = empty_score(h, w)
                continue
            scores[i, c] = pair_score(*_boundary_distances(_inner_boundary(rt),
                                                           _inner_boundary(rp)))
    per_class = _nanmean(scores, axis=0)
    if average is None:
        return per_class
    return _nanmean(per_class, axis=0)


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
    possible distance. Each class is averaged over the images where it is
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
    q = _check_real(percentile, "percentile", 0.0, 100.0, True, "in (0, 100]")

    def pair(pred_to_true, true_to_pred):
        return max(np.percentile(pred_to_true, q), np.percentile(true_to_pred, q))

    score = _boundary_score(y_true, y_pred, labels, ignore_index, average, pair,
                            lambda h, w: math.hypot(h - 1, w - 1))
    return _finish(score, "hausdorff_distance")


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
    tol = _check_real(tolerance, "tolerance", 0.0, math.inf, False, ">= 0")

    def pair(pred_to_true, true_to_pred):
        precision = np.mean(pred_to_true <= tol)
        recall = np.mean(true_to_pred <= tol)
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)

    score = _boundary_score(y_true, y_pred, labels, ignore_index, average, pair,
                            lambda h, w: 0.0)
    return _finish(score, "boundary_f1_score")


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
    tol = _check_real(tolerance, "tolerance", 0.0, math.inf, False, ">= 0")

    def pair(pred_to_true, true_to_pred):
        matched = np.count_nonzero(pred_to_true <= tol) + np.count_nonzero(true_to_pred <= tol)
        return matched / (pred_to_true.size + true_to_pred.size)

    score = _boundary_score(y_true, y_pred, labels, ignore_index, average, pair,
                            lambda h, w: 0.0)
    return _finish(score, "surface_dice")


# --------------------------------------------------------------------------- #
# scorers
# --------------------------------------------------------------------------- #
def _accepts(func, name):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class _SegmentationScorer:
    """``scorer(estimator, X, y) -> float``: predicts once and scores the
    prediction against ``y``, negated when lower is better."""

    def __init__(self, metric, greater_is_better=True, **kwargs):
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.kwargs = kwargs
        self._pass_labels = "labels" not in kwargs and _accepts(metric, "labels")
        self._pass_ignore = "ignore_index" not in kwargs and _accepts(metric, "ignore_index")

    def _context(self, estimator, y_true, y_pred):
        """labels and ignore_index taken from the estimator."""
        extra = {}
        ignore = getattr(estimator, "ignore_index", None) if self._pass_ignore else None
        if self._pass_ignore and ignore is not None:
            extra["ignore_index"] = ignore
        classes = getattr(estimator, "classes_", None) if self._pass_labels else None
        if classes is not None:
            classes = _check_labels(np.asarray(classes).ravel())
            ignore = check_ignore_index(ignore)
            if ignore is not None:
                classes = classes[classes != ignore]
            # Values the model never saw still count (as missed classes)
            # rather than failing the scorer.
            t, p = _check_pair(y_true, y_pred)
            found = _found_labels(t, p, ignore)
            extra["labels"] = np.concatenate([classes, np.setdiff1d(found, classes)])
        return extra

    def __call__(self, estimator, X, y_true):
        y_pred = estimator.predict(X)
        kwargs = {**self._context(estimator, y_true, y_pred), **self.kwargs}
        score = self.metric(y_true, y_pred, **kwargs)
        if np.ndim(score) != 0:
            raise TypeError(
                f"{self!r} must give a single number to be a score; the metric returned "
                f"an array of shape {np.shape(score)} (for per-class metrics pass an "
                "average)."
            )
        return float(score) if self.greater_is_better else -float(score)

    def __repr__(self):
        name = getattr(self.metric, "__name__", repr(self.metric))
        args = [name]
        if not self.greater_is_better:
            args.append("greater_is_better=False")
        args.extend(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"make_segmentation_scorer({', '.join(args)})"


def make_segmentation_scorer(metric, greater_is_better=True, **kwargs):
    """Make a scorer for ``scoring=`` from a segmentation metric.

    The scorer is called as ``scorer(estimator, X, y)``: it calls
    ``estimator.predict(X)`` once and returns ``metric(y, y_pred, **kwargs)``,
    negated when ``greater_is_better`` is False (so that greater is always
    better, as scikit-learn expects).

    When ``metric`` takes ``labels`` and the estimator has ``classes_``, it
    gets ``labels=estimator.classes_`` (plus any label value of ``y`` or of
    the prediction outside ``classes_``, which then counts as a missed class),
    so that the scores of all cross-validation folds are on one scale. When
    ``metric`` takes ``ignore_index`` it gets the estimator's
    ``ignore_index``. Values given in ``kwargs`` take precedence.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred, **kwargs) -> float``.
    greater_is_better : bool, default=True
        False for losses and distances; the scorer then returns
        ``-metric(...)``.
    **kwargs
        Further arguments of ``metric``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import hausdorff_distance, make_segmentation_scorer
    >>> scorer = make_segmentation_scorer(hausdorff_distance, greater_is_better=False,
    ...                                   percentile=100)
    >>> scorer
    make_segmentation_scorer(hausdorff_distance, greater_is_better=False, percentile=100)
    >>> class Identity:
    ...     def predict(self, X):
    ...         return X
    >>> y = np.zeros((1, 8, 8), dtype=int)
    >>> y[0, 2:5, 2:5] = 1
    >>> scorer(Identity(), np.roll(y, 2, axis=2), y)
    -2.0
    """
    if not callable(metric):
        raise TypeError(f"metric must be a callable (y_true, y_pred, **kwargs) -> float; "
                        f"got {metric!r}.")
    if not isinstance(greater_is_better, (bool, np.bool_)):
        raise TypeError(f"greater_is_better must be True or False; got {greater_is_better!r}.")
    return _SegmentationScorer(metric, bool(greater_is_better), **kwargs)


#: Read-only mapping of scorer names to scorers (see :func:`get_scorer`).
SCORERS = types.MappingProxyType({
    "mean_iou": make_segmentation_scorer(iou_score, average="macro"),
    "iou_micro": make_segmentation_scorer(iou_score, average="micro"),
    "dice": make_segmentation_scorer(dice_score, average="macro"),
    "dice_micro": make_segmentation_scorer(dice_score, average="micro"),
    "pixel_accuracy": make_segmentation_scorer(pixel_accuracy),
    "boundary_f1": make_segmentation_scorer(boundary_f1_score, tolerance=2),
    "surface_dice": make_segmentation_scorer(surface_dice, tolerance=2),
    "neg_hausdorff95": make_segmentation_scorer(hausdorff_distance, greater_is_better=False,
                                                percentile=95),
})


def get_scorer_names():
    """Names accepted by :func:`get_scorer`.

    Returns
    -------
    names : list of str
        Sorted.

    Examples
    --------
    >>> from sksegment.metrics import get_scorer_names
    >>> get_scorer_names()  # doctest: +NORMALIZE_WHITESPACE
    ['boundary_f1', 'dice', 'dice_micro', 'iou_micro', 'mean_iou', 'neg_hausdorff95',
     'pixel_accuracy', 'surface_dice']
    """
    return sorted(SCORERS)


def get_scorer(scoring):
    """A scorer for ``scoring=`` in scikit-learn model selection.

    ============================  ==================================================
    name                          scorer
    ============================  ==================================================
    ``"mean_iou"``                :func:`iou_score`, ``average="macro"``
    ``"iou_micro"``               :func:`iou_score`, ``average="micro"``
    ``"dice"``                    :func:`dice_score`, ``average="macro"``
    ``"dice_micro"``              :func:`dice_score`, ``average="micro"``
    ``"pixel_accuracy"``          :func:`pixel_accuracy`
    ``"boundary_f1"``             :func:`boundary_f1_score`, ``tolerance=2``
    ``"surface_dice"``            :func:`surface_dice`, ``tolerance=2``
    ``"neg_hausdorff95"``         minus :func:`hausdorff_distance`, ``percentile=95``
    ============================  ==================================================

    Each is called as ``scorer(estimator, X, y)``, predicts once, and scores
    with ``labels=estimator.classes_`` and the estimator's ``ignore_index``
    (see :func:`make_segmentation_scorer`). Greater is better.

    Parameters
    ----------
    scoring : str or callable
        A name from :func:`get_scorer_names`; a callable is returned as is.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import get_scorer
    >>> get_scorer("dice")
    make_segmentation_scorer(dice_score, average='macro')
    >>> class Identity:
    ...     classes_ = np.array([0, 1])
    ...     def predict(self, X):
    ...         return X
    >>> y = np.array([[[0, 1], [1, 1]]])
    >>> get_scorer("pixel_accuracy")(Identity(), np.zeros_like(y), y)
    0.25
    """
    if callable(scoring) and not isinstance(scoring, str):
        return scoring
    if not isinstance(scoring, str):
        raise TypeError(f"scoring must be a scorer name or a callable; got {scoring!r}.")
    try:
        return SCORERS[scoring]
    except KeyError:
        raise ValueError(
            f"{scoring!r} is not a known segmentation scorer; use one of "
            f"{get_scorer_names()} or a callable (estimator, X, y) -> float."
        ) from None
