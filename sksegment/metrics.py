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
defined anywhere) is NaN with an ``UndefinedMetricWarning``. With
``labels=None`` and every pixel of ``y_true`` equal to ``ignore_index``
there are no labels to find, and the functions that need them (all but
:func:`pixel_accuracy`) raise a ValueError; pass ``labels`` to get NaN.

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
within that image (at least 1, so a 1 x 1 image that misses a class does
not score as a perfect one): a finite worst case, so a model that misses a class is
penalised rather than excused (left out) or sent to infinity.

Scorers
-------
:func:`get_scorer` returns callables ``scorer(estimator, X, y) -> float`` for
``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate` and ``CNNSegmenter``; greater
is better (the Hausdorff scorer is negated, ``"neg_hausdorff95"``).
:data:`SCORERS` maps every name to its scorer. ``get_scorer`` also takes the
scikit-learn spellings ``"accuracy"``, ``"jaccard"`` and ``"f1"`` (and their
``_macro`` / ``_micro`` forms), and several names at once for a multi-metric
search: ``GridSearchCV(est, grid, scoring=get_scorer(["mean_iou", "dice"]),
refit="mean_iou")``.
"""

from ._metric_boundary import boundary_f1_score, hausdorff_distance, surface_dice
from ._metric_overlap import confusion_matrix, dice_score, iou_score, mean_iou, pixel_accuracy
from ._metric_scorers import (
    SCORERS,
    get_scorer,
    get_scorer_names,
    make_segmentation_scorer,
)

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
