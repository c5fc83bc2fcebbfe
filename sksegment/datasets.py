"""Data sets: synthetic shapes, image folders on disk, and the ISBI 2012
membrane images.

:func:`load_image_folder` reads images and label masks paired by name,
:func:`load_images` the images of one folder and :func:`save_masks` writes
label images losslessly (PNG, 16-bit PNG or TIFF, optionally with a colour
palette) so that they read back as the same labels.

Images are returned channels last, ``(n, H, W)`` or ``(n, H, W, C)``, with
label images ``(n, H, W)``, as every estimator in :mod:`sksegment` expects.
"""

import os
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import draw
from sklearn.utils import check_random_state

from ._folders import load_image_folder, load_images, save_masks
from ._validation import check_int, check_number, check_random_state_arg, check_size

__all__ = ["load_image_folder", "load_images", "load_membrane", "make_shapes", "save_masks"]

#: Shape kind of each foreground class of :func:`make_shapes`.
SHAPE_CLASSES = {1: "textured disc", 2: "square", 3: "triangle", 4: "ring"}

_DTYPES = {"uint8": np.uint8, "float32": np.float32, "float64": np.float64}
_MAX_CLASSES = len(SHAPE_CLASSES) + 1


def _check_dtype(dtype):
    try:
        dt = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise ValueError(
            f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}."
        )
    return dt


def _shape_pixels(kind, center, radius, angle, shape):
    """Row and column indices of one shape, clipped to the image."""
    r0, c0 = center
    if kind == 1:  # disc
        return draw.disk((r0, c0), radius, shape=shape)
    if kind == 4:  # ring: a disc without its centre
        rr, cc = draw.disk((r0, c0), radius, shape=shape)
        keep = (rr - r0) ** 2 + (cc - c0) ** 2 >= (0.55 * radius) ** 2
        return rr[keep], cc[keep]
    # Regular polygon: a square (4 corners) or a triangle (3), rotated.
    corners = 4 if kind == 2 else 3
    scale = radius * (1.05 if corners == 4 else 1.3)
    theta = angle + 2 * np.pi * np.arange(corners) / corners
    return draw.polygon(r0 + scale * np.sin(theta), c0 + scale * np.cos(theta), shape=shape)


def _one_image(rs, height, width, n_classes):
    """One clean image in [0, 1] (float64) and its labels."""
    side = min(height, width)
    # Background: a per-image brightness plus a smooth random texture.
    level = rs.uniform(0.3, 0.7)
    field = ndimage.gaussian_filter(rs.standard_normal((height, width)), sigma=side / 12,
                                    mode="wrap")
    field *= 0.08 / (field.std() + 1e-12)
    image = level + field
    labels = np.zeros((height, width), dtype=np.uint8)
    occupied = np.zeros((height, width), dtype=bool)

    # Every class once (in random order), then a few more of random classes.
    kinds = list(rs.permutation(np.arange(1, n_classes)))
    kinds += list(rs.randint(1, n_classes, size=rs.randint(0, n_classes)))
    r_min = max(3.5, 0.1 * side)
    r_max = max(r_min + 1.0, 0.18 * side)
    for kind in kinds:
        for _ in range(15):  # a few tries to find a free place
            radius = rs.uniform(r_min, r_max)
            margin = radius * 1.3
            center = (rs.uniform(margin, height - margin), rs.uniform(margin, width - margin))
            rr, cc = _shape_pixels(int(kind), center, radius, rs.uniform(0, 2 * np.pi),
                                   (height, width))
            if rr.size and not occupied[rr, cc].any():
                break
        else:
            continue
        # Brighter or darker than the background, by the same amounts for
        # every class: intensity alone does not tell the classes apart.
        contrast = rs.choice((-1.0, 1.0)) * rs.uniform(0.15, 0.35)
        values = np.full(rr.shape, level + contrast)
        if kind == 1:  # fine checkerboard texture with 2x2 cells
            values += 0.14 * (2.0 * (((rr // 2) + (cc // 2)) % 2) - 1.0)
        image[rr, cc] = values
        labels[rr, cc] = kind
        occupied[rr, cc] = True
        # Keep a gap of one pixel between shapes.
        occupied[np.clip(rr + 1, 0, height - 1), cc] = True
        occupied[rr, np.clip(cc + 1, 0, width - 1)] = True
        occupied[np.clip(rr - 1, 0, height - 1), cc] = True
        occupied[rr, np.clip(cc - 1, 0, width - 1)] = True
    return ndimage.gaussian_filter(image, sigma=0.6), labels


def make_shapes(n_samples=100, image_size=64, n_classes=3, noise=0.1, n_channels=1,
                dtype="uint8", random_state=None):
    """Make a synthetic segmentation problem of shapes on a textured background.

    Each image has a smooth random background texture at a random brightness,
    and a few non-overlapping shapes; every foreground class appears in
    (nearly) every image. Class ``k`` is a kind of shape:

    - 0: background;
    - 1: disc filled with a fine checkerboard texture;
    - 2: square (rotated);
    - 3: triangle (rotated);
    - 4: ring.

    Each shape is brighter or darker than its background by a random amount
    drawn from the same distribution for every class, so intensities of all
    classes overlap and no per-pixel intensity rule solves the problem: the
    classes differ by form and texture, which a convolutional network has to
    learn. The images are blurred slightly (Gaussian, sigma 0.6) and Gaussian
    noise of standard deviation ``noise`` is added.

    Parameters
    ----------
    n_samples : int, default=100
        Number of images (>= 1).
    image_size : int or tuple of (int, int), default=64
        Height and width (each >= 16); an int makes square images.
    n_classes : int, default=3
        Number of classes including the background, in [2, 5].
    noise : float, default=0.1
        Standard deviation of the additive Gaussian noise, in units of the
        full intensity range [0, 1]; >= 0.
    n_channels : int, default=1
        1 gives grayscale images ``(n, H, W)``; more gives ``(n, H, W, C)``,
        each channel a randomly scaled and shifted copy with its own noise.
    dtype : {"uint8", "float32", "float64"}, default="uint8"
        dtype of the images: uint8 in [0, 255] or floats in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seed or generator; the same seed gives the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, H, W) or (n_samples, H, W, n_channels)
        Images.
    y : ndarray of shape (n_samples, H, W), dtype uint8
        Label images with values in ``0 .. n_classes - 1``.

    Examples
    --------
    >>> from sksegment.datasets import make_shapes
    >>> X, y = make_shapes(n_samples=4, image_size=32, n_classes=3, random_state=0)
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((4, 32, 32), dtype('uint8'), (4, 32, 32), dtype('uint8'))
    >>> sorted(set(y.ravel().tolist()))
    [0, 1, 2]
    >>> make_shapes(n_samples=2, image_size=(16, 24), n_channels=3,
    ...             random_state=0)[0].shape
    (2, 16, 24, 3)
    """
    n_samples = check_int(n_samples, "n_samples", low=1)
    height, width = check_size(image_size, "image_size", low=16)
    n_classes = check_int(n_classes, "n_classes", low=2, high=_MAX_CLASSES)
    noise = check_number(noise, "noise", low=0)
    n_channels = check_int(n_channels, "n_channels", low=1)
    out_dtype = _check_dtype(dtype)
    rs = check_random_state(check_random_state_arg(random_state))

    shape = (n_samples, height, width) + ((n_channels,) if n_channels > 1 else ())
    X = np.empty(shape, dtype=out_dtype)
    y = np.empty((n_samples, height, width), dtype=np.uint8)
    for i in range(n_samples):
        clean, y[i] = _one_image(rs, height, width, n_classes)
        if n_channels == 1:
            image = clean + noise * rs.standard_normal(clean.shape)
        else:
            gains = rs.uniform(0.6, 1.0, size=n_channels)
            offsets = rs.uniform(-0.1, 0.1, size=n_channels)
            image = (clean[..., None] * gains + offsets
                     + noise * rs.standard_normal(clean.shape + (n_channels,)))
        np.clip(image, 0.0, 1.0, out=image)
        if out_dtype == np.uint8:
            X[i] = np.rint(image * 255.0)
        else:
            X[i] = image
    return X, y


def load_membrane(path=None):
    """Load the ISBI 2012 electron-microscopy membrane segmentation data.

    30 serial sections of 512 x 512 pixels (uint8 grayscale) with masks of
    two values: 0 = membrane (about 22 % of the pixels), 255 = cell interior.
    The sections are consecutive slices of one volume, so hold out a
    contiguous block (e.g. the last six) rather than a random subset.

    Parameters
    ----------
    path : str or os.PathLike, default=None
        Folder holding ``images/00.png .. 29.png`` and ``masks/00.png ..
        29.png``. None uses the environment variable ``SKSEGMENT_MEMBRANE``.

    Returns
    -------
    X : ndarray of shape (30, 512, 512), dtype uint8
        Images.
    y : ndarray of shape (30, 512, 512), dtype uint8
        Masks with values 0 and 255.

    Raises
    ------
    FileNotFoundError
        No path given and ``SKSEGMENT_MEMBRANE`` unset, or the folder or its
        ``images`` / ``masks`` subfolders are missing.

    Examples
    --------
    >>> from sksegment.datasets import load_membrane
    >>> try:
    ...     load_membrane("no/such/folder")
    ... except FileNotFoundError as exc:
    ...     print(type(exc).__name__)
    FileNotFoundError
    >>> X, y = load_membrane()  # doctest: +SKIP
    >>> X.shape, X.dtype, sorted(set(y[0].ravel().tolist()))  # doctest: +SKIP
    ((30, 512, 512), dtype('uint8'), [0, 255])
    """
    if path is None:
        path = os.environ.get("SKSEGMENT_MEMBRANE")
        if not path:
            raise FileNotFoundError(
                "load_membrane needs the folder of the membrane data: pass path=... or set "
                "the environment variable SKSEGMENT_MEMBRANE to a folder holding images/ "
                "and masks/."
            )
    elif not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
    path = Path(path)
    for sub in ("images", "masks"):
        if not (path / sub).is_dir():
            raise FileNotFoundError(
                f"membrane data not found: {str(path / sub)!r} is not a folder; path must "
                "hold images/00.png .. 29.png and masks/00.png .. 29.png."
            )
    return load_image_folder(path / "images", path / "masks")
