"""Label images as metric input: checking them, passing over their pixels in
chunks, encoding label values as class positions, counting confusion
matrices, and the NaN-aware averaging every metric shares.

Used by :mod:`sksegment.metrics`.
"""

import math
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from ._data import _as_array, check_ignore_index
from ._validation import check_option

# Pixels handled at once: no temporary is larger than a few arrays of this
# many elements, however large the data set.
_CHUNK = 1 << 20
# Label values spanning fewer than this many integers are encoded through a
# look-up table; wider spans through a binary search.
_LUT_SPAN = 1 << 20
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


def check_pair(y_true, y_pred):
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


def check_labels(labels):
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


def check_average(average, allowed=_AVERAGES):
    return check_option(average, "average", allowed)


# --------------------------------------------------------------------------- #
# chunked passes over the pixels
# --------------------------------------------------------------------------- #
def blocks(t, p):
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


def as_int64(block, name):
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
        raise ValueError(
            f"{name} has label values above {_INT64_MAX} (2**63 - 1), which the metrics "
            "cannot compare; map the labels to smaller values first, for example "
            "np.unique(y, return_inverse=True), and score those.")
    return block.astype(np.int64)


def _unique_int(x):
    if x.size == 0:
        return x[:0]
    lo, hi = int(x.min()), int(x.max())
    if hi - lo < _LUT_SPAN:
        return np.flatnonzero(np.bincount((x - lo).ravel(), minlength=hi - lo + 1)) + lo
    return np.unique(x)


def found_labels(t, p, ignore):
    """Sorted label values in y_true and y_pred (int64), without the pixels
    where y_true is ``ignore`` and without ``ignore`` itself."""
    found = []
    for _, _, tb, pb in blocks(t, p):
        t64, p64 = as_int64(tb, "y_true"), as_int64(pb, "y_pred")
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


def resolve_labels(t, p, labels, ignore_index):
    labels = check_labels(labels)
    ignore = _check_ignore(ignore_index, labels)
    if labels is None:
        labels = found_labels(t, p, ignore)
        if labels.size == 0:
            raise ValueError(
                f"every pixel of y_true equals ignore_index={ignore}; there is nothing to score."
            )
    return labels, ignore


class Encoder:
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
        t64, p64 = as_int64(tb, "y_true"), as_int64(pb, "y_pred")
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


def count_pixels(t, p, labels, ignore, per_image):
    """Confusion matrix (K, K), or one per image (n, K, K), int64."""
    enc = Encoder(labels)
    k = enc.k
    kk = k * k
    out = np.zeros((len(t), k, k) if per_image else (k, k), dtype=np.int64)
    for first, m, tb, pb in blocks(t, p):
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


def nanmean(a, axis):
    defined = ~np.isnan(a)
    n = defined.sum(axis=axis)
    total = np.where(defined, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def finish(score, what):
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
