"""Choosing post-processing steps on validation data (nnU-Net's rule): each
candidate step is kept only when it raises the mean score over the
validation images and makes no class worse, tested on top of the steps
already kept. The public entry point is
:func:`sksegment.postprocessing.select_postprocessing`.
"""

import math

import numpy as np

from ._data import check_ignore_index
from ._validation import check_int, check_number, check_option
from .postprocessing import (
    _REPLACE,
    _SCORING,
    _SIZE_FRACTIONS,
    _WORSE_EPS,
    FOREGROUND,
    PostProcessor,
    _apply_step,
    _check_class_images,
    _check_classes_below,
    _check_step,
    _components,
)


def _check_pair(y_true, y_pred, n_classes, ignore):
    t, _ = _check_class_images(y_true, "y_true", allow_negative=True)
    p, _ = _check_class_images(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} label images but y_pred has {len(p)}.")
    if len(t) == 0:
        raise ValueError("y_true is empty; at least one validation image is required.")
    for i in range(len(t)):
        if t[i].shape != p[i].shape:
            raise ValueError(f"y_true[{i}] has shape {t[i].shape} but y_pred[{i}] has shape "
                             f"{p[i].shape}; each prediction must have the shape of its truth.")
        if p[i].size and p[i].max() >= n_classes:
            raise ValueError(f"y_pred[{i}] holds class index {int(p[i].max())}; expected "
                             f"0 .. {n_classes - 1} for n_classes={n_classes}.")
        labelled = t[i] if ignore is None else t[i][t[i] != ignore]
        if labelled.size and (labelled.min() < 0 or labelled.max() >= n_classes):
            bad = labelled[(labelled < 0) | (labelled >= n_classes)][0]
            raise ValueError(f"y_true[{i}] holds class index {int(bad)}; expected "
                             f"0 .. {n_classes - 1} for n_classes={n_classes}"
                             + ("" if ignore is None else f" or ignore_index={ignore}") + ".")
    return list(t), [img.copy() for img in p]


def _scorer(y_true, n_classes, scoring, ignore):
    """``score(y_pred) -> (mean, per_class)``: each class's score averaged over
    the images where it is defined, and the mean over the foreground classes."""
    metric, labels = _SCORING[scoring], np.arange(n_classes)

    def score(y_pred):
        per_class = metric(y_true, y_pred, labels=labels, average=None, per_image=True,
                           ignore_index=ignore)
        fg = per_class[1:][~np.isnan(per_class[1:])]
        return (float(fg.mean()) if fg.size else math.nan), per_class
    return score


def _size_candidates(y_true, c, connectivity):
    """``remove_small`` steps for class ``c``: fractions of the smallest
    component of ``c`` in the truth (none when ``c`` is absent)."""
    smallest = None
    for img in y_true:
        mask = img == c
        if mask.any():
            _, sizes = _components(mask, connectivity)
            s = int(sizes[1:].min())
            smallest = s if smallest is None else min(smallest, s)
    if smallest is None:
        return []
    sizes = sorted({int(f * smallest) for f in _SIZE_FRACTIONS})
    return [("remove_small", c, s) for s in sizes if s >= 2]


def _default_candidates(y_true, n_classes, connectivity):
    candidates = [("keep_largest", FOREGROUND)]
    for c in range(1, n_classes):
        if n_classes > 2:  # with one class, the same as the foreground step
            candidates.append(("keep_largest", c))
        sizes = _size_candidates(y_true, c, connectivity)
        if sizes:
            candidates.append(sizes)
        candidates.append(("fill_holes", c))
    return candidates


def _check_candidates(candidates, n_classes):
    if not isinstance(candidates, (list, tuple)):
        raise TypeError(f"candidates must be None or a list of steps; got {candidates!r}.")
    out = []
    for i, cand in enumerate(candidates):
        if isinstance(cand, (list, tuple)) and cand and not isinstance(cand[0], str):
            group = [_check_step(s, f"candidates[{i}][{j}]") for j, s in enumerate(cand)]
            _check_classes_below(group, n_classes, f"candidates[{i}]")
        else:
            group = [_check_step(cand, f"candidates[{i}]")]
            _check_classes_below(group, n_classes, "candidates")
        out.append(group)
    return out


def select_postprocessing(y_true, y_pred, n_classes, candidates=None, scoring="dice", *,
                          connectivity=2, replace="neighbour", tol=1e-4, ignore_index=None):
    """Choose post-processing steps on validation data, as nnU-Net does.

    Candidate steps are tried in order, each on the validation predictions as
    post-processed by the steps already kept. A step is kept when

    - the mean score rises by more than ``tol``: the score of each
      foreground class averaged over the validation images where the class
      is defined (present in the truth or the prediction), then averaged
      over the foreground classes;
    - and no foreground class gets worse (a class undefined before or after
      counts as not worse).

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or list of (H, W) arrays
        Validation truth, class indices ``0 .. n_classes-1`` (and
        ``ignore_index`` where unlabelled).
    y_pred : ndarray of shape (n, H, W) or list of (H, W) arrays
        Predicted class indices for the same images. Not modified.
    n_classes : int
        Number of classes, background included (>= 2).
    candidates : list or None, default=None
        Steps to try, in order (see :class:`PostProcessor`). An entry may
        also be a list of alternative steps: each is tested on top of the
        steps kept so far, and the best one that passes is kept. None tries:
        keep the largest component of the whole foreground; then for each
        foreground class: keep its largest component (with more than one
        foreground class), remove its components smaller than 10 %, 25 % or
        50 % of its smallest component in ``y_true`` (alternatives; sizes
        below 2 pixels are skipped, and the step too when the class is not in
        ``y_true``), fill its holes.
    scoring : {"dice", "iou"}, default="dice"
        Per-class score (:func:`sksegment.metrics.dice_score` or
        :func:`~sksegment.metrics.iou_score`).
    connectivity : {1, 2}, default=2
        Connectivity of every step (and of the truth's components).
    replace : {"neighbour", "background"}, default="neighbour"
        What removed pixels become (see :class:`PostProcessor`).
    tol : float, default=1e-4
        Smallest rise of the mean score for which a step is kept.
    ignore_index : int or None, default=None
        Value of ``y_true`` at pixels that count nowhere.

    Returns
    -------
    postprocessor : PostProcessor
        The kept steps; no steps when none helped.
    report : list of dict
        One dict per tried step, in order, with keys ``"step"``,
        ``"score_before"``, ``"score_after"``, ``"kept"``,
        ``"per_class_before"``, ``"per_class_after"`` (lists of
        ``n_classes`` floats, index = class, NaN where undefined) and
        ``"worse_classes"`` (foreground classes whose score fell). A step that
        changes no pixel is reported with equal scores, not kept.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.postprocessing import select_postprocessing
    >>> y_true = np.zeros((2, 8, 8), dtype=int)
    >>> y_true[:, 2:6, 2:6] = 1
    >>> y_pred = y_true.copy()
    >>> y_pred[:, 0, 7] = 1  # a false speck in each image
    >>> pp, report = select_postprocessing(y_true, y_pred, n_classes=2)
    >>> pp.steps
    (('keep_largest', 'foreground'),)
    >>> for r in report:
    ...     print(r["step"], round(r["score_before"], 3), round(r["score_after"], 3), r["kept"])
    ('keep_largest', 'foreground') 0.97 1.0 True
    ('remove_small', 1, 4) 1.0 1.0 False
    ('remove_small', 1, 8) 1.0 1.0 False
    ('fill_holes', 1) 1.0 1.0 False
    """
    n_classes = check_int(n_classes, "n_classes", low=2)
    scoring = check_option(scoring, "scoring", tuple(_SCORING))
    tol = check_number(tol, "tol", low=0)
    ignore = check_ignore_index(ignore_index)
    connectivity = check_int(connectivity, "connectivity", low=1, high=2)
    replace = check_option(replace, "replace", _REPLACE)
    truth, current = _check_pair(y_true, y_pred, n_classes, ignore)
    if candidates is None:
        groups = [c if isinstance(c, list) else [c]
                  for c in _default_candidates(truth, n_classes, connectivity)]
    else:
        groups = _check_candidates(candidates, n_classes)

    score = _scorer(truth, n_classes, scoring, ignore)
    mean, per_class = score(current)
    kept, report = [], []
    for group in groups:
        best = None
        for step in group:
            trial = [img.copy() for img in current]
            for img in trial:
                _apply_step(img, step, connectivity, replace)
            if all(np.array_equal(a, b) for a, b in zip(trial, current)):
                after_mean, after = mean, per_class
            else:
                after_mean, after = score(trial)
            worse = [c for c in range(1, n_classes)
                     if after[c] < per_class[c] - _WORSE_EPS]  # False when either is NaN
            passes = after_mean > mean + tol and not worse
            entry = {"step": step, "score_before": mean, "score_after": after_mean,
                     "kept": False, "per_class_before": [float(v) for v in per_class],
                     "per_class_after": [float(v) for v in after], "worse_classes": worse}
            report.append(entry)
            if passes and (best is None or after_mean > best[1]):
                best = (entry, after_mean, after, trial)
        if best is not None:
            entry, mean, per_class, current = best
            entry["kept"] = True
            kept.append(entry["step"])
    return PostProcessor(kept, connectivity=connectivity, replace=replace), report

