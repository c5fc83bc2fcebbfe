"""Optional matplotlib figures: augmentations, predictions, training and errors.

- :func:`plot_segmentation`: an image, its true labels and the prediction
  over it, with a legend of the classes and the score;
- :func:`plot_overlay`: label colours over an image, with a legend;
- :func:`plot_history`: training loss, validation score and learning rate
  per epoch of a fitted segmenter;
- :func:`plot_confusion_matrix`: the pixel confusion matrix, as counts or
  normalised;
- :func:`plot_uncertainty`: an image beside a heat map of per-pixel
  uncertainty, with the label contours;
- :func:`plot_augmentations`: a grid of augmented images and masks.

Each returns a matplotlib Figure (drawn into ``fig`` when one is given).
Classes are coloured alike in every figure: the colours of the palette
``sksegment predict`` writes (black for the first class, then matplotlib's
tab10 and tab20 tones). matplotlib is imported only when a function is
called; install it with ``pip install sksegment[plot]``.
"""

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._data import IGNORE, LabelCodec, check_images, check_masks, to_tensor, unique_labels
from ._plot_classes import (
    background_label,
    check_label_image,
    class_colours,
    class_legend,
    class_names_for,
    class_overlay,
    display_image,
    resolve_classes,
)
from ._validation import check_bool, check_int, check_number, check_random_state_arg, is_real
from .augmentation import make_chain, unwrap

__all__ = [
    "plot_augmentations",
    "plot_confusion_matrix",
    "plot_history",
    "plot_overlay",
    "plot_segmentation",
    "plot_uncertainty",
]


def _pyplot(caller):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            f"{caller} needs matplotlib; install it with: pip install sksegment[plot]"
        ) from None
    return plt


def _figure(caller, fig, nrows, ncols, size):
    """Axes grid (nrows, ncols) on ``fig``, or on a new pyplot figure."""
    if fig is None:
        plt = _pyplot(caller)
        fig = plt.figure(figsize=(size * ncols, size * nrows))
    else:
        _pyplot(caller)
        if not hasattr(fig, "subplots"):
            raise TypeError(f"fig must be a matplotlib Figure or None; got {fig!r}.")
        fig.clear()
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _display_image(image):
    """An image as matplotlib shows it: (H, W) with a grey colour map, or RGB."""
    shown, cmap, _ = display_image(image)
    return shown, cmap


def _label_limits(*masks):
    values = [np.asarray(m)[~np.ma.getmaskarray(m)] for m in masks if m is not None]
    values = [v for v in values if v.size]
    if not values:
        return 0, 1
    return float(min(v.min() for v in values)), float(max(v.max() for v in values))


def _show_mask(ax, mask, vmin, vmax, cmap):
    ax.imshow(mask, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")


def plot_augmentations(augment, X, y=None, *, n=4, random_state=None, fig=None,
                       cmap="viridis"):
    """Draw ``n`` augmented versions of images and masks, in a grid.

    Column ``j`` shows image ``j % len(X)`` after one draw of ``augment``
    (on the CPU, as :meth:`~sksegment.augmentation.AugmentationChain.sample`
    computes it): the image on the top row, its mask below (pixels brought
    in from outside the image are left blank).

    Parameters
    ----------
    augment : augmenter, list of augmenters, Pipeline of augmenters or
        AugmentationChain
        As for :func:`sksegment.augmentation.make_chain` (an unfitted
        IntensityStandardizer is fitted on ``X``).
    X : ndarray of shape (n_images, H, W) or (n_images, H, W, C), or list
    y : ndarray of shape (n_images, H, W), list, or None
    n : int, default=4
        Number of augmented pairs (columns).
    random_state : int, RandomState instance or None, default=None
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.
    cmap : str, default="viridis"
        Colour map of the masks.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sksegment.augmentation import RandomAffine, RandomFlip
    >>> from sksegment.plot import plot_augmentations
    >>> X = np.random.default_rng(0).random((2, 32, 32))
    >>> y = (X > 0.5).astype(np.uint8)
    >>> fig = plot_augmentations([RandomFlip(), RandomAffine(p=1.0)], X, y, n=3,
    ...                          random_state=0, fig=Figure())
    >>> len(fig.axes)
    6
    """
    n = check_int(n, "n", low=1)
    images, pre = unwrap(X)
    imgs = check_images(images, "X")
    chain = pre + make_chain(augment, X=X)
    masks = None if y is None else check_masks(y, imgs, "y")
    codec = None if masks is None else LabelCodec(unique_labels(masks))
    seed = int(check_random_state(check_random_state_arg(random_state)).randint(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)

    fig, axes = _figure("plot_augmentations", fig, 1 if masks is None else 2, n, 2.5)
    pairs = []
    for j in range(n):
        i = j % len(imgs)
        xt = to_tensor(imgs[i][None], "cpu")
        yt = None if masks is None else codec.encode(np.asarray(masks[i])[None], "cpu")
        xt, yt = chain(xt, yt, generator=generator, training=True)
        image = xt[0].permute(1, 2, 0).numpy()
        mask = None
        if yt is not None:
            idx = yt[0].numpy()
            blank = idx == IGNORE
            mask = np.ma.array(codec.decode(np.where(blank, 0, idx)), mask=blank)
        pairs.append((i, image, mask))
    vmin, vmax = _label_limits(*[m for _, _, m in pairs])
    for j, (i, image, mask) in enumerate(pairs):
        shown, gray = _display_image(image)
        axes[0, j].imshow(shown, cmap=gray)
        axes[0, j].set_title(f"image {i}, draw {j}", fontsize=8)
        if mask is not None:
            _show_mask(axes[1, j], mask, vmin, vmax, cmap)
        for ax in axes[:, j]:
            ax.set_axis_off()
    return fig


# --------------------------------------------------------------------------- #
# segmentations
# --------------------------------------------------------------------------- #
_SCORES = ("mean_iou", "dice", "pixel_accuracy")
_SCORE_TITLES = {"mean_iou": "mean IoU", "dice": "Dice", "pixel_accuracy": "pixel accuracy"}


def _layout_figure(caller, fig, width, height):
    """A cleared figure with constrained layout (a new pyplot one if None)."""
    if fig is None:
        plt = _pyplot(caller)
        fig = plt.figure(figsize=(width, height), layout="constrained")
    else:
        _pyplot(caller)
        if not hasattr(fig, "subplots"):
            raise TypeError(f"fig must be a matplotlib Figure or None; got {fig!r}.")
        fig.clear()
        fig.set_layout_engine("constrained")
    return fig


def _panel_size(shape, height=3.2):
    h, w = shape[:2]
    return height * min(max(w / h, 0.4), 2.5), height


def _score(kind, truth, prediction, classes, ignore_label):
    from .metrics import dice_score, iou_score, pixel_accuracy

    labels = np.asarray(classes)
    if kind == "pixel_accuracy":
        return pixel_accuracy(truth, prediction, ignore_index=ignore_label)
    func = iou_score if kind == "mean_iou" else dice_score
    return func(truth, prediction, labels=labels, ignore_index=ignore_label)


def plot_segmentation(image, truth=None, prediction=None, *, classes=None, class_names=None,
                      ignore_label=None, background="auto", alpha=0.45, score="mean_iou",
                      fig=None, titles=("image", "truth", "prediction"), cmap=None):
    """Show an image, its true labels over it and the predicted labels over it.

    Three panels side by side: the image, the truth coloured over the image
    and the prediction coloured over the image (panels of missing masks are
    left out), with a legend of the classes and, when both masks are given,
    the score in the figure's title. Truth and prediction share the colours.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
    truth : ndarray of shape (H, W) or None
        True label image (skipped if None).
    prediction : ndarray of shape (H, W) or None
        Predicted label image (skipped if None).
    classes : array-like or None, default=None
        Label values, in the order of the legend and colours; None takes the
        values found in ``truth`` and ``prediction``.
    class_names : list of str, dict or None, default=None
        Names in the legend: one per class, or ``{label: name}``.
    ignore_label : int or None, default=None
        Pixels of ``truth`` with this label are not coloured and not scored.
    background : "auto", label value or None, default="auto"
        Class shown without colour (the image shows through): a label
        value; "auto" is the first class (when there are two or more), None
        colours every class.
    alpha : float in [0, 1], default=0.45
        Opacity of the class colours.
    score : {"mean_iou", "dice", "pixel_accuracy"} or None, default="mean_iou"
        Score of the prediction shown in the title (over ``classes``); None
        shows none.
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.
    titles : sequence of three str or None, default=("image", "truth", "prediction")
        Titles of the image, truth and prediction panels; None gives the
        default ones.
    cmap : str, matplotlib Colormap or None, default=None
        A matplotlib colour map to sample the class colours from, instead of
        the palette of written masks.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sksegment.plot import plot_segmentation
    >>> image = np.random.default_rng(0).random((16, 16))
    >>> truth = (image > 0.5).astype(int)
    >>> fig = plot_segmentation(image, truth, 1 - truth, class_names=["bg", "cell"],
    ...                         fig=Figure())
    >>> [ax.get_title() for ax in fig.axes]
    ['image', 'truth', 'prediction']
    >>> fig.get_suptitle()
    'mean IoU 0.000'
    >>> [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    ['bg (not coloured)', 'cell']
    """
    shown, gray, unit = display_image(image)
    if titles is None:
        titles = ("image", "truth", "prediction")
    if isinstance(titles, (str, bytes)) or not hasattr(titles, "__iter__"):
        raise TypeError(f"titles must be None or a sequence of three strings; got {titles!r}.")
    titles = tuple(titles)
    if len(titles) != 3:
        raise ValueError(f"titles must hold three strings; got {titles!r}.")
    if ignore_label is not None:
        ignore_label = check_int(ignore_label, "ignore_label")
    if score is not None and score not in _SCORES:
        raise ValueError(f"score must be one of {_SCORES} or None; got {score!r}.")
    alpha = check_number(alpha, "alpha", low=0, high=1)
    masks = {}
    for name, mask in (("truth", truth), ("prediction", prediction)):
        if mask is not None:
            masks[name] = check_label_image(mask, shown.shape[:2], name)
    classes = resolve_classes(classes, list(masks.values()), ignore_label)
    names = class_names_for(classes, class_names)
    colours = class_colours(classes, cmap)
    bg = background_label(background, classes)

    width, height = _panel_size(shown.shape)
    legend_width = 1.8 if masks else 0.0
    fig = _layout_figure("plot_segmentation", fig, width * (1 + len(masks)) + legend_width,
                         height + 0.5)
    axes = np.atleast_1d(fig.subplots(1, 1 + len(masks)))
    axes[0].imshow(shown, cmap=gray)
    axes[0].set_title(titles[0])
    title = dict(zip(("truth", "prediction"), titles[1:]))
    for ax, (name, mask) in zip(axes[1:], masks.items()):
        ignore = ignore_label if name == "truth" else None
        over = class_overlay(unit, mask, classes, colours, bg, ignore, alpha, name)
        ax.imshow(over, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title[name])
    for ax in axes:
        ax.set_axis_off()
    if masks:
        class_legend(axes[-1], classes, names, colours, bg, title="classes")
    if score is not None and len(masks) == 2:
        import warnings

        from sklearn.exceptions import UndefinedMetricWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = _score(score, masks["truth"], masks["prediction"], classes, ignore_label)
        fig.suptitle(f"{_SCORE_TITLES[score]} {value:.3f}")
    return fig


def plot_overlay(image, labels, *, classes=None, class_names=None, background="auto",
                 ignore_label=None, alpha=0.45, legend=True, title=None, cmap=None,
                 fig=None):
    """Colour label images over an image, with a legend of the classes.

    The colours are blended over the image with
    :func:`skimage.color.label2rgb` (a colour image is shown in its colours).

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
    labels : ndarray of shape (H, W)
        Label image (integer or bool).
    classes : array-like or None, default=None
        Label values, in the order of the legend and colours; None takes the
        values found in ``labels``. A label outside ``classes`` is an error.
    class_names : list of str, dict or None, default=None
        Names in the legend: one per class, or ``{label: name}`` (one dict
        may serve many images: labels absent from these are left out).
    background : "auto", label value or None, default="auto"
        Class shown without colour: a label value; "auto" is the first
        class (when there are two or more), None colours every class.
    ignore_label : int or None, default=None
        Pixels with this label are not coloured and not in the legend.
    alpha : float in [0, 1], default=0.45
        Opacity of the class colours.
    legend : bool, default=True
        Draw the legend (beside the image).
    title : str or None, default=None
    cmap : str, matplotlib Colormap or None, default=None
        A matplotlib colour map to sample the class colours from, instead of
        the palette of written masks.
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sksegment.datasets import make_shapes
    >>> from sksegment.plot import plot_overlay
    >>> X, y = make_shapes(n_samples=1, image_size=32, n_classes=3, random_state=0)
    >>> fig = plot_overlay(X[0], y[0], class_names={0: "background", 1: "disc",
    ...                                              2: "square"}, fig=Figure())
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['background (not coloured)', 'disc', 'square']
    """
    shown, _, unit = display_image(image)
    lab = check_label_image(labels, shown.shape[:2], "labels")
    if ignore_label is not None:
        ignore_label = check_int(ignore_label, "ignore_label")
    legend = check_bool(legend, "legend")
    classes = resolve_classes(classes, [lab], ignore_label)
    names = class_names_for(classes, class_names)
    colours = class_colours(classes, cmap)
    bg = background_label(background, classes)
    alpha = check_number(alpha, "alpha", low=0, high=1)
    width, height = _panel_size(shown.shape, 4.0)
    fig = _layout_figure("plot_overlay", fig, width + (1.8 if legend else 0.0), height)
    ax = fig.subplots()
    over = class_overlay(unit, lab, classes, colours, bg, ignore_label, alpha, "labels")
    ax.imshow(over, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    if legend:
        class_legend(ax, classes, names, colours, bg, title="classes")
    return fig


# --------------------------------------------------------------------------- #
# training history
# --------------------------------------------------------------------------- #
def _history_of(seg):
    if isinstance(seg, (list, tuple)):
        history = list(seg)
        best_epoch, scoring = None, "score"
    else:
        if hasattr(seg, "steps"):  # a Pipeline: its last step
            seg = seg.steps[-1][1]
        history = getattr(seg, "history_", None)
        if history is None:
            raise ValueError(f"{type(seg).__name__} is not fitted: it has no history_; "
                             "fit it first, or pass the list of history records.")
        best_epoch = getattr(seg, "best_epoch_", None)
        scoring = getattr(seg, "scoring", "score")
        scoring = scoring if isinstance(scoring, str) else "score"
    if not history:
        raise ValueError("the history is empty: no epoch was trained.")
    for i, record in enumerate(history):
        if not isinstance(record, dict) or "epoch" not in record or "train_loss" not in record:
            raise ValueError(f"history[{i}] must be a dict with 'epoch' and 'train_loss' (as "
                             f"in CNNSegmenter.history_); got {record!r}.")
        check_int(record["epoch"], f"history[{i}]['epoch']")
        for key in ("train_loss", "val_score", "lr"):
            value = record.get(key)
            if not (is_real(value) or (value is None and key != "train_loss")):
                raise TypeError(f"history[{i}][{key!r}] must be a number"
                                + ("" if key == "train_loss" else " or None")
                                + f"; got {value!r}.")
    return history, best_epoch, scoring


def plot_history(seg, *, fig=None):
    """Training loss, validation score and learning rate per epoch.

    Parameters
    ----------
    seg : fitted CNNSegmenter, Pipeline ending in one, or list of dict
        Its ``history_``: one dict per epoch with ``epoch``, ``train_loss``,
        ``lr``, ``seconds`` and ``val_score`` when there was validation data.
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.

    Returns
    -------
    fig : matplotlib Figure
        One panel each for the training loss, the validation score (only
        when the history has one; the best epoch is marked) and the learning
        rate (only when the history has one).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sksegment.plot import plot_history
    >>> history = [{"epoch": 1, "train_loss": 0.9, "lr": 1e-3, "seconds": 2.0,
    ...             "val_score": 0.5},
    ...            {"epoch": 2, "train_loss": 0.6, "lr": 1e-3, "seconds": 2.0,
    ...             "val_score": 0.7}]
    >>> fig = plot_history(history, fig=Figure())
    >>> [ax.get_title() for ax in fig.axes]
    ['training loss', 'validation score', 'learning rate']
    """
    history, best_epoch, scoring = _history_of(seg)
    epochs = np.array([r["epoch"] for r in history])
    panels = [("training loss", "loss", [r["train_loss"] for r in history])]
    if any("val_score" in r for r in history):
        panels.append((f"validation {scoring}", scoring,
                       [r.get("val_score", np.nan) for r in history]))
    if any("lr" in r for r in history):
        panels.append(("learning rate", "learning rate", [r.get("lr", np.nan) for r in history]))
    fig = _layout_figure("plot_history", fig, 3.4 * len(panels), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    marker = "o" if len(epochs) <= 30 else None
    for ax, (title, ylabel, values) in zip(axes, panels):
        values = np.asarray(values, dtype=float)
        ax.plot(epochs, values, marker=marker, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if title.startswith("validation"):
            if best_epoch is None and np.isfinite(values).any():
                best_epoch = int(epochs[np.nanargmax(values)])
            if best_epoch is not None:
                ax.axvline(best_epoch, color="0.5", linestyle="--", linewidth=1,
                           label=f"best: epoch {best_epoch}")
                ax.legend(fontsize="small", frameon=False)
        if title == "learning rate":
            finite = values[np.isfinite(values) & (values > 0)]
            if finite.size and finite.max() / finite.min() > 20:
                ax.set_yscale("log")
    return fig


# --------------------------------------------------------------------------- #
# confusion matrix
# --------------------------------------------------------------------------- #
def _compact(value):
    if float(value).is_integer():
        value = int(value)
        for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(value) >= 10 * size:
                return f"{value / size:.0f}{unit}"
        return str(value)
    return f"{value:.2f}"


def plot_confusion_matrix(y_true, y_pred, labels=None, normalize=None, *, class_names=None,
                          ignore_index=None, cmap="Blues", values=True, fig=None):
    """The pixel confusion matrix of label images, with a colour bar.

    Rows are true labels and columns predicted labels, counted with
    :func:`sksegment.metrics.confusion_matrix`.

    Parameters
    ----------
    y_true : ndarray of shape (n, H, W) or (H, W), or list of 2-D arrays
        True label images.
    y_pred : ndarray or list of 2-D arrays
        Predicted label images, of the shapes of ``y_true``.
    labels : array-like or None, default=None
        Label values in the order of the rows and columns; None takes the
        sorted values found in both.
    normalize : {None, "true", "pred", "all"}, default=None
        Pixel counts (None), or shares: of each true label (rows sum to 1),
        of each predicted label (columns sum to 1), or of all pixels. A row
        or column without pixels shows 0.
    class_names : list of str, dict or None, default=None
        Tick labels: one per label, or ``{label: name}``.
    ignore_index : int or None, default=None
        Label value of unlabelled pixels in ``y_true``; they are not counted.
    cmap : str, default="Blues"
    values : bool, default=True
        Write each cell's value (for up to 30 labels).
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sksegment.plot import plot_confusion_matrix
    >>> y_true = np.array([[0, 0, 1], [0, 1, 1]])
    >>> y_pred = np.array([[0, 1, 1], [0, 0, 1]])
    >>> fig = plot_confusion_matrix(y_true, y_pred, normalize="true",
    ...                             class_names=["bg", "cell"], fig=Figure())
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['0.67', '0.33', '0.33', '0.67']
    """
    from .metrics import confusion_matrix

    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all'; got {normalize!r}.")
    values = check_bool(values, "values")
    if labels is None:
        found = [np.unique(np.asarray(m)) for m in (
            list(y_true) if isinstance(y_true, list) else [y_true])]
        found += [np.unique(np.asarray(m)) for m in (
            list(y_pred) if isinstance(y_pred, list) else [y_pred])]
        labels = np.unique(np.concatenate(found))
        if ignore_index is not None:
            labels = labels[labels != ignore_index]
    cm = confusion_matrix(y_true, y_pred, labels=labels, ignore_index=ignore_index)
    labels = np.asarray(labels)
    shown = cm.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            shown = shown / shown.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            shown = shown / shown.sum(axis=0, keepdims=True)
        elif normalize == "all":
            shown = shown / shown.sum()
    shown = np.nan_to_num(shown, nan=0.0)
    names = class_names_for(labels, class_names)
    k = len(labels)
    side = min(2.5 + 0.45 * k, 12.0)
    fig = _layout_figure("plot_confusion_matrix", fig, side + 1.2, side)
    ax = fig.subplots()
    vmax = 1.0 if normalize else max(shown.max(), 1.0)
    image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="pixels" if normalize is None else "share")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 3 else 0,
                  ha="right" if max(map(len, names)) > 3 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    of = {None: "pixels", "true": "share of each true label",
          "pred": "share of each predicted label", "all": "share of all pixels"}[normalize]
    ax.set_title(f"confusion matrix ({of})")
    if values and k <= 30:
        for i in range(k):
            for j in range(k):
                v = shown[i, j]
                ax.text(j, i, _compact(v), ha="center", va="center", fontsize="small",
                        color="white" if v > 0.6 * vmax else "black")
    return fig


# --------------------------------------------------------------------------- #
# uncertainty
# --------------------------------------------------------------------------- #
def _contours(ax, labels, color):
    """Boundaries between classes of ``labels`` as contour lines."""
    values = np.unique(labels)
    if values.size < 2:
        return None
    index = np.searchsorted(values, labels)
    return ax.contour(index, levels=np.arange(values.size - 1) + 0.5, colors=[color],
                      linewidths=0.8)


def plot_uncertainty(image, uncertainty, labels=None, *, cmap="magma", vmin=None, vmax=None,
                     label="uncertainty", contour_color="cyan", fig=None):
    """An image beside a heat map of per-pixel uncertainty, with a colour bar.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
    uncertainty : ndarray of shape (H, W)
        Per-pixel values, for example the entropy of ``predict_proba``.
    labels : ndarray of shape (H, W) or None, default=None
        Label image (for example the prediction) whose class boundaries are
        drawn as contours on both panels.
    cmap : str, default="magma"
    vmin, vmax : float or None, default=None
        Range of the colour map (None: the data's range); ``vmin < vmax``
        when both are given.
    label : str, default="uncertainty"
        Title of the heat map and of its colour bar.
    contour_color : color, default="cyan"
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.

    Returns
    -------
    fig : matplotlib Figure
        Two panels (image, heat map) and the colour bar's axes.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sksegment.plot import plot_uncertainty
    >>> proba = np.random.default_rng(0).dirichlet([1, 1, 1], size=(16, 16))
    >>> entropy = -(proba * np.log(proba)).sum(-1)
    >>> fig = plot_uncertainty(proba[..., 0], entropy, labels=proba.argmax(-1),
    ...                        label="entropy", fig=Figure())
    >>> [ax.get_title() for ax in fig.axes[:2]], fig.axes[2].get_ylabel()
    (['image', 'entropy'], 'entropy')
    """
    shown, gray, _ = display_image(image)
    heat = np.asarray(uncertainty)
    if heat.ndim == 3 and heat.shape[-1] == 1:
        heat = heat[..., 0]
    if heat.shape != shown.shape[:2]:
        raise ValueError(f"uncertainty must have the image's height and width "
                         f"{shown.shape[:2]}; got shape {heat.shape}.")
    if heat.dtype.kind not in "biuf":
        raise TypeError(f"uncertainty must hold numbers; got dtype {heat.dtype}.")
    lab = None if labels is None else check_label_image(labels, shown.shape[:2], "labels")
    vmin = None if vmin is None else check_number(vmin, "vmin")
    vmax = None if vmax is None else check_number(vmax, "vmax")
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ValueError(f"vmin must be less than vmax; got vmin={vmin!r} and vmax={vmax!r}.")
    width, height = _panel_size(shown.shape)
    fig = _layout_figure("plot_uncertainty", fig, 2 * width + 0.8, height + 0.3)
    axes = fig.subplots(1, 2)
    axes[0].imshow(shown, cmap=gray)
    axes[0].set_title("image")
    im = axes[1].imshow(heat, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    axes[1].set_title(label)
    fig.colorbar(im, ax=axes[1], label=label, shrink=0.9)
    for ax in axes:
        if lab is not None:
            _contours(ax, lab, contour_color)
        ax.set_axis_off()
    return fig
