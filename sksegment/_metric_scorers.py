"""Scorers for ``scoring=`` in scikit-learn model selection, built from the
segmentation metrics.

Public through :mod:`sksegment.metrics`.
"""

import inspect
import types
from collections.abc import Mapping

import numpy as np

from ._data import check_ignore_index
from ._metric_base import check_labels, check_pair, found_labels
from ._metric_boundary import boundary_f1_score, hausdorff_distance, surface_dice
from ._metric_overlap import dice_score, iou_score, pixel_accuracy
from ._validation import check_bool, did_you_mean, is_real


def _accepts(func, name):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_score(value, name="scoring"):
    """A scorer's result as ``float``, or a ``TypeError`` naming ``name``.

    A real number (NumPy scalars, and one-element arrays or tensors, count; a
    bool does not) is returned as ``float``; NaN is kept (a score may be
    undefined).

    Parameters
    ----------
    value : object
        What ``scorer(estimator, X, y)`` returned.
    name : str, default="scoring"
        The argument the scorer came from, for the message.

    Returns
    -------
    score : float

    Raises
    ------
    TypeError
        ``value`` is not a real number.

    Examples
    --------
    >>> import numpy as np
    >>> check_score(np.float32(0.5))
    0.5
    >>> check_score("x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: scoring must return a real number (a float, greater is better); it returned 'x'...
    """
    number = value
    if not is_real(number) and hasattr(number, "item"):
        try:  # a one-element array or tensor
            number = number.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if not is_real(number):
        raise TypeError(
            f"{name} must return a real number (a float, greater is better); it returned "
            f"{value!r} ({type(value).__name__}). Make the scorer (estimator, X, y) return "
            "one number, e.g. float(...) of a metric.")
    return float(number)


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
            classes = check_labels(np.asarray(classes).ravel())
            ignore = check_ignore_index(ignore)
            if ignore is not None:
                classes = classes[classes != ignore]
            # Values the model never saw still count (as missed classes)
            # rather than failing the scorer.
            t, p = check_pair(y_true, y_pred)
            found = found_labels(t, p, ignore)
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
        score = check_score(score, f"the metric of {self!r}")
        return score if self.greater_is_better else -score

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
    _check_kwargs(metric, kwargs)
    return _SegmentationScorer(metric, check_bool(greater_is_better, "greater_is_better"),
                               **kwargs)


def _check_kwargs(metric, kwargs):
    """A keyword ``metric`` does not take fails when the scorer is made, not
    when it first scores (after a training run)."""
    try:
        params = inspect.signature(metric).parameters
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in names[2:]:  # the first two take y_true and y_pred
            hint = did_you_mean(key, names[2:])
            raise TypeError(f"metric {getattr(metric, '__name__', metric)!r} takes no keyword "
                            f"{key!r}{' (' + hint + ')' if hint else ''}; its keywords are "
                            f"{names[2:]}.")


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


#: scikit-learn's names of the same figures -> our scorer names.
_SKLEARN_SPELLINGS = types.MappingProxyType({
    "accuracy": "pixel_accuracy",
    "jaccard": "mean_iou",
    "jaccard_macro": "mean_iou",
    "jaccard_micro": "iou_micro",
    "f1": "dice",
    "f1_macro": "dice",
    "f1_micro": "dice_micro",
})

_WORKING_FORM = ('GridSearchCV(est, grid, scoring=get_scorer(["mean_iou", "dice"]), '
                 'refit="mean_iou")')


def get_scorer_names():
    """Names accepted by :func:`get_scorer` (which also takes scikit-learn's
    spellings "accuracy", "jaccard", "f1" and their ``_macro`` / ``_micro``
    forms).

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


def _named_scorer(name):
    key = _SKLEARN_SPELLINGS.get(name, name)
    if key in SCORERS:
        return SCORERS[key]
    hint = did_you_mean(name, [*SCORERS, *_SKLEARN_SPELLINGS])
    raise ValueError(
        f"{name!r} is not a known segmentation scorer" + (f"; {hint}" if hint else ".")
        + f" Use one of {get_scorer_names()}, a scikit-learn spelling "
        f"({', '.join(_SKLEARN_SPELLINGS)}) or a callable (estimator, X, y) -> float. "
        "scikit-learn's own searches do not know these names; give them the scorers: "
        f"{_WORKING_FORM}."
    )


def _scorer_dict(scoring):
    """``{name: scorer}`` from names or from a dict of names and callables."""
    if isinstance(scoring, Mapping):
        items = list(scoring.items())
    else:
        names = sorted(scoring) if isinstance(scoring, (set, frozenset)) else list(scoring)
        items = [(name, name) for name in names]
    if not items:
        raise ValueError(f"scoring must name at least one scorer; got {scoring!r}.")
    out = {}
    for key, value in items:
        if not isinstance(key, str):
            raise TypeError(f"scoring must hold scorer names (str), or be a dict with such "
                            f"names as keys; got {key!r}. For several metrics use "
                            f"{_WORKING_FORM}.")
        if key in out:
            raise ValueError(f"scoring names {key!r} more than once.")
        out[key] = _single_scorer(value, f"scoring[{key!r}]")
    return out


def _single_scorer(scoring, name):
    if isinstance(scoring, str):
        return _named_scorer(scoring)
    if callable(scoring):
        return scoring
    raise TypeError(f"{name} must be a scorer name or a callable (estimator, X, y) -> float; "
                    f"got {scoring!r}.")


def get_scorer(scoring):
    """Scorers for ``scoring=`` in scikit-learn model selection.

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

    The spellings scikit-learn users bring are accepted too: ``"accuracy"`` is ``"pixel_accuracy"``,
    ``"jaccard"`` and ``"jaccard_macro"`` are ``"mean_iou"``,
    ``"jaccard_micro"`` is ``"iou_micro"``, ``"f1"`` and ``"f1_macro"`` are
    ``"dice"``, ``"f1_micro"`` is ``"dice_micro"``.

    Each scorer is called as ``scorer(estimator, X, y)``, predicts once, and
    scores with ``labels=estimator.classes_`` and the estimator's
    ``ignore_index`` (see :func:`make_segmentation_scorer`). Greater is
    better.

    scikit-learn's :class:`~sklearn.model_selection.GridSearchCV` and
    :func:`~sklearn.model_selection.cross_validate` only know their own
    names, so pass them what this function returns, not the names: for one
    metric ``scoring=get_scorer("mean_iou")``, for several
    ``GridSearchCV(est, grid, scoring=get_scorer(["mean_iou", "dice"]),
    refit="mean_iou")``.

    Parameters
    ----------
    scoring : str, callable, list, tuple or set of str, or dict
        A name (from :func:`get_scorer_names` or a scikit-learn spelling); a
        callable, returned as is; several names; or a dict
        ``{name: name or callable}``.

    Returns
    -------
    scorer : callable or dict
        ``scorer(estimator, X, y) -> float`` for a name or a callable; a dict
        ``{name: scorer}`` (the names as given, in order) for several, as
        scikit-learn's multi-metric ``scoring`` takes it.

    Raises
    ------
    ValueError
        For an unknown name (with the closest known one), an empty or
        repeated list of names.
    TypeError
        For anything else.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.metrics import get_scorer
    >>> get_scorer("dice")
    make_segmentation_scorer(dice_score, average='macro')
    >>> get_scorer("f1") is get_scorer("dice")
    True
    >>> class Identity:
    ...     classes_ = np.array([0, 1])
    ...     def predict(self, X):
    ...         return X
    >>> y = np.array([[[0, 1], [1, 1]]])
    >>> get_scorer("pixel_accuracy")(Identity(), np.zeros_like(y), y)
    0.25
    >>> scorers = get_scorer(["mean_iou", "accuracy"])
    >>> {name: scorer(Identity(), np.zeros_like(y), y) for name, scorer in scorers.items()}
    {'mean_iou': 0.125, 'accuracy': 0.25}
    """
    if isinstance(scoring, (str, Mapping, list, tuple, set, frozenset)):
        return _named_scorer(scoring) if isinstance(scoring, str) else _scorer_dict(scoring)
    if callable(scoring):
        return scoring
    raise TypeError(
        f"scoring must be a scorer name, a callable, a list, tuple or set of names, or a dict "
        f"{{name: name or callable}}; got {scoring!r}. For several metrics use {_WORKING_FORM}."
    )
