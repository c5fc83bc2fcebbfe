"""Optional matplotlib helpers: look at augmentations and at predictions.

matplotlib is imported only when a function is called; install it with
``pip install sksegment[plot]``.
"""

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._data import IGNORE, LabelCodec, check_images, check_masks, to_tensor, unique_labels
from .augmentation import make_chain, unwrap

__all__ = ["plot_augmentations", "plot_segmentation"]


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
    """An image as matplotlib shows it: (H, W) with a grey colour map, or
    RGB scaled into [0, 1]."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img, "gray"
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                         f"got shape {img.shape}.")
    if img.dtype == np.uint8:
        return img, None
    img = img[..., :3].astype(np.float64)
    low, high = img.min(), img.max()
    return (img - low) / (high - low) if high > low else np.zeros_like(img), None


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
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    images, pre = unwrap(X)
    imgs = check_images(images, "X")
    chain = pre + make_chain(augment, X=X)
    masks = None if y is None else check_masks(y, imgs, "y")
    codec = None if masks is None else LabelCodec(unique_labels(masks))
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
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


def plot_segmentation(image, truth=None, prediction=None, *, ignore_label=None, fig=None,
                      titles=("image", "truth", "prediction"), cmap="viridis"):
    """Show an image, its true mask and a predicted mask side by side.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1) or (H, W, 3)
    truth : ndarray of shape (H, W) or None
        True label image (skipped if None).
    prediction : ndarray of shape (H, W) or None
        Predicted label image (skipped if None).
    ignore_label : label value or None, default=None
        Pixels of ``truth`` with this label are left blank.
    fig : matplotlib Figure or None, default=None
        Figure to draw into (cleared first); a new pyplot figure if None.
    titles : sequence of three str
        Titles of the image, truth and prediction panels.
    cmap : str, default="viridis"
        Colour map of the masks; truth and prediction share its scale.

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
    >>> fig = plot_segmentation(image, truth, 1 - truth, fig=Figure())
    >>> [ax.get_title() for ax in fig.axes]
    ['image', 'truth', 'prediction']
    """
    shown, gray = _display_image(image)
    if len(titles) != 3:
        raise ValueError(f"titles must hold three strings; got {titles!r}.")
    panels = [("image", None)]
    for name, mask in (("truth", truth), ("prediction", prediction)):
        if mask is None:
            continue
        mask = np.asarray(mask)
        if mask.ndim == 3 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        if mask.shape != shown.shape[:2]:
            raise ValueError(f"{name} must have the image's height and width {shown.shape[:2]}; "
                             f"got shape {mask.shape}.")
        if name == "truth" and ignore_label is not None:
            mask = np.ma.masked_equal(mask, ignore_label)
        panels.append((name, mask))
    fig, axes = _figure("plot_segmentation", fig, 1, len(panels), 3.5)
    vmin, vmax = _label_limits(*[m for _, m in panels[1:]])
    title = dict(zip(("image", "truth", "prediction"), titles))
    for ax, (name, mask) in zip(axes[0], panels):
        if mask is None:
            ax.imshow(shown, cmap=gray)
        else:
            _show_mask(ax, mask, vmin, vmax, cmap)
        ax.set_title(title[name])
        ax.set_axis_off()
    return fig
