"""Geometric augmenters: flips, quarter turns, affine maps, crops and
elastic deformation. Image and mask move together, one transform per sample.

Public through :mod:`sksegment.augmentation`.
"""

from . import _augment_ops as _ops
from ._augment_base import (
    PADDING_MODES,
    Augmenter,
    check_p,
    doc_example,
    symmetric,
    two_items,
    value_range,
)
from ._validation import check_number, check_option, check_size, is_real

_AXES = ("horizontal", "vertical")


def _check_translate(translate):
    """RandomAffine's ``translate``: None, one fraction or an (fx, fy) pair,
    each in [0, 1]."""
    if translate is None:
        return 0.0, 0.0
    if is_real(translate):
        translate = (translate, translate)
    items = two_items(translate, "translate", "a number or an (fx, fy) pair of fractions")
    return tuple(check_number(v, "translate", low=0, high=1) for v in items)


class RandomFlip(Augmenter):
    """Flip image and mask horizontally and/or vertically.

    Each axis in ``axes`` is flipped independently with probability ``p``.

    Parameters
    ----------
    axes : {"horizontal", "vertical"} or tuple of them, default=("horizontal", "vertical")
    p : float in [0, 1], default=0.5
        Probability, per sample and per axis, of a flip.
    """

    def __init__(self, axes=("horizontal", "vertical"), p=0.5):
        self.axes = axes
        self.p = p

    def _make_op(self):
        axes = (self.axes,) if isinstance(self.axes, str) else self.axes
        try:
            axes = tuple(axes)
        except TypeError:
            raise TypeError(f"axes must be 'horizontal', 'vertical' or a tuple of them; "
                            f"got {self.axes!r}.") from None
        for axis in axes:
            check_option(axis, "axes", _AXES)
        if not axes or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be 'horizontal', 'vertical' or a tuple of distinct "
                             f"ones of them; got {self.axes!r}.")
        return _ops.FlipOp(axes=axes, p=check_p(self.p))


class RandomRotate90(Augmenter):
    """Rotate image and mask by a multiple of 90 degrees (exact, no resampling).

    With probability ``p`` a sample turns by 90, 180 or 270 degrees, chosen
    uniformly. Batches of non-square images turn by 180 degrees only, so
    that the batch keeps its shape.

    Parameters
    ----------
    p : float in [0, 1], default=0.5
    """

    def __init__(self, p=0.5):
        self.p = p

    def _make_op(self):
        return _ops.Rot90Op(p=check_p(self.p))


class RandomAffine(Augmenter):
    """Random rotation, scaling, translation and shear about the image centre.

    The image is resampled bilinearly and the mask with nearest neighbour,
    with one affine map per sample. Mask pixels brought in from outside the
    image are IGNORE (``mask_fill`` in :meth:`sample`).

    Parameters
    ----------
    degrees : float or (low, high), default=15
        Rotation angle in degrees, uniform in ``(-degrees, degrees)`` or in
        ``(low, high)``; positive angles turn counter-clockwise as displayed.
    scale : (low, high) or None, default=(0.9, 1.1)
        Zoom factor, uniform in ``(low, high)`` with ``0 < low <= high``.
    translate : float or (fx, fy), default=(0.1, 0.1)
        Largest shift as a fraction of width / height, each in [0, 1].
    shear : float or (low, high), default=0
        Horizontal shear angle in degrees (within (-90, 90)).
    p : float in [0, 1], default=0.5
    padding_mode : {"zeros", "border", "reflection"}, default="zeros"
        Image values brought in from outside the image.
    """

    def __init__(self, degrees=15, scale=(0.9, 1.1), translate=(0.1, 0.1), shear=0, p=0.5,
                 padding_mode="zeros"):
        self.degrees = degrees
        self.scale = scale
        self.translate = translate
        self.shear = shear
        self.p = p
        self.padding_mode = padding_mode

    def _make_op(self):
        scale = (1.0, 1.0) if self.scale is None else value_range(
            self.scale, "scale", low=0, low_open=True)
        return _ops.AffineOp(
            degrees=value_range(self.degrees, "degrees", from_number=symmetric),
            scale=scale,
            translate=_check_translate(self.translate),
            shear=value_range(self.shear, "shear", from_number=symmetric, low=-90, high=90,
                              low_open=True, high_open=True),
            p=check_p(self.p),
            padding_mode=check_option(self.padding_mode, "padding_mode", PADDING_MODES))


class RandomCrop(Augmenter):
    """Crop a fixed-size window at a random position (exact, no resampling).

    Every output has shape ``size``. Images smaller than ``size`` are padded
    around (image 0, mask IGNORE) first. With probability ``1 - p`` the
    centre window is taken instead of a random one.

    Parameters
    ----------
    size : int or (height, width)
    p : float in [0, 1], default=1.0
        Probability of a random (rather than centred) window.
    """

    def __init__(self, size, p=1.0):
        self.size = size
        self.p = p

    def _make_op(self):
        return _ops.CropOp(size=check_size(self.size, "size"), p=check_p(self.p))


class RandomResizedCrop(Augmenter):
    """Crop a random area and aspect ratio, resized to ``size``.

    As in torchvision: the crop covers a fraction of the image area uniform
    in ``scale`` and has an aspect ratio (width / height) log-uniform in
    ``ratio``; if ten draws do not fit in the image, or with probability
    ``1 - p``, the whole image is resized. Images are resampled bilinearly,
    masks with nearest neighbour.

    Parameters
    ----------
    size : int or (height, width)
    scale : (low, high), default=(0.08, 1.0)
        Area fractions, ``0 < low <= high <= 1``.
    ratio : (low, high), default=(3/4, 4/3)
    p : float in [0, 1], default=1.0
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), p=1.0):
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.p = p

    def _make_op(self):
        return _ops.ResizedCropOp(
            size=check_size(self.size, "size"),
            scale=value_range(self.scale, "scale", low=0, high=1, low_open=True),
            ratio=value_range(self.ratio, "ratio", low=0, low_open=True),
            p=check_p(self.p))


class ElasticDeformation(Augmenter):
    """Smooth random elastic deformation (Simard et al., 2003).

    A displacement field of Gaussian white noise, smoothed with a Gaussian of
    width ``sigma`` and scaled to a standard deviation of ``alpha`` pixels,
    moves every pixel of image and mask.

    Parameters
    ----------
    alpha : float >= 0, default=4.0
        Standard deviation of the displacement, in pixels.
    sigma : float > 0, default=10.0
        Smoothness of the field, in pixels.
    p : float in [0, 1], default=0.5
    padding_mode : {"zeros", "border", "reflection"}, default="zeros"
    """

    def __init__(self, alpha=4.0, sigma=10.0, p=0.5, padding_mode="zeros"):
        self.alpha = alpha
        self.sigma = sigma
        self.p = p
        self.padding_mode = padding_mode

    def _make_op(self):
        return _ops.ElasticOp(
            alpha=check_number(self.alpha, "alpha", low=0),
            sigma=check_number(self.sigma, "sigma", low=0, low_open=True),
            p=check_p(self.p),
            padding_mode=check_option(self.padding_mode, "padding_mode", PADDING_MODES))


for _cls, _call, _shape in [
    (RandomFlip, "RandomFlip(p=0.5)", "(4, 16, 16)"),
    (RandomRotate90, "RandomRotate90(p=0.5)", "(4, 16, 16)"),
    (RandomAffine, "RandomAffine(degrees=20, p=1.0)", "(4, 16, 16)"),
    (RandomCrop, "RandomCrop(size=8)", "(4, 8, 8)"),
    (RandomResizedCrop, "RandomResizedCrop(size=(8, 12), scale=(0.5, 1.0))", "(4, 8, 12)"),
    (ElasticDeformation, "ElasticDeformation(alpha=2.0, sigma=4.0)", "(4, 16, 16)"),
]:
    _cls.__doc__ += doc_example(_cls.__name__, _call, shape=_shape)
del _cls, _call, _shape
