"""Data sets: synthetic shapes, image folders on disk, and the ISBI 2012
membrane images.

Images are returned channels last, ``(n, H, W)`` or ``(n, H, W, C)``, with
label images ``(n, H, W)``, as every estimator in :mod:`sksegment` expects.
"""

import numbers
import os
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import draw
from skimage import io as skio
from sklearn.utils import check_random_state

__all__ = ["load_image_folder", "load_membrane", "make_shapes"]

#: Shape kind of each foreground class of :func:`make_shapes`.
SHAPE_CLASSES = {1: "textured disc", 2: "square", 3: "triangle", 4: "ring"}

_DTYPES = {"uint8": np.uint8, "float32": np.float32, "float64": np.float64}
_MAX_CLASSES = len(SHAPE_CLASSES) + 1


def _check_int(value, name, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {expected}; got {value}.")
    return int(value)


def _check_image_size(image_size):
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        sizes = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        sizes = tuple(image_size)
    else:
        raise TypeError(
            f"image_size must be an integer or a pair of integers (H, W); got {image_size!r}."
        )
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(
                f"image_size must be an integer or a pair of integers (H, W); got {image_size!r}."
            )
        if s < 16:
            raise ValueError(f"image_size must be at least 16 pixels per side; got {image_size!r}.")
    return int(sizes[0]), int(sizes[1])


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
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
    n_samples = _check_int(n_samples, "n_samples", 1)
    height, width = _check_image_size(image_size)
    n_classes = _check_int(n_classes, "n_classes", 2, _MAX_CLASSES)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a non-negative float; got {noise!r}.")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a non-negative finite float; got {noise}.")
    n_channels = _check_int(n_channels, "n_channels", 1)
    out_dtype = _check_dtype(dtype)
    rs = check_random_state(random_state)

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


_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def _check_dir(path, name):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike); got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} does not exist: {str(path)!r}.")
    if not path.is_dir():
        raise NotADirectoryError(f"{name} is not a directory: {str(path)!r}.")
    return path


def _files_by_stem(directory, extensions, name):
    found = {}
    for p in sorted(directory.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in extensions:
            continue
        if p.stem in found:
            raise ValueError(
                f"{name} has two files with the name {p.stem!r} ({found[p.stem].name} and "
                f"{p.name}); images and masks are paired by name without extension, so "
                "each name must occur once."
            )
        found[p.stem] = p
    return found


def _listing(names, limit=5):
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _to_gray(image):
    """Colour (H, W, 3/4) image to grayscale in the same dtype (ITU-R 601 weights)."""
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return image
    gray = image[..., :3].astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    if image.dtype.kind in "ui":
        return np.rint(gray).astype(image.dtype)
    return gray.astype(image.dtype)


def _stack_if_uniform(arrays):
    if len({(a.shape, a.dtype) for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def load_image_folder(images_dir, masks_dir, extensions=_EXTENSIONS, as_gray=False,
                      return_names=False):
    """Read images and their label masks from two folders, paired by name.

    An image ``images_dir/name.ext`` is paired with the mask
    ``masks_dir/name.ext2`` of the same name without extension (extensions may
    differ, e.g. ``a.jpg`` with ``a.png``). Files are read with
    :func:`skimage.io.imread` and returned in order of their names. Files with
    other extensions and hidden files are ignored.

    Parameters
    ----------
    images_dir : str or os.PathLike
        Folder of images.
    masks_dir : str or os.PathLike
        Folder of label masks: 2-D images whose pixel values are class labels.
    extensions : sequence of str, default=(".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
        File extensions to read (case-insensitive, with the dot).
    as_gray : bool, default=False
        Convert colour images (RGB or RGBA; alpha is dropped) to grayscale,
        keeping their dtype. Masks are never converted. None means False.
    return_names : bool, default=False
        Also return the file names without extension.

    Returns
    -------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or list of ndarray
        Images; a list when they differ in shape or dtype.
    y : ndarray of shape (n, H, W), or list of ndarray
        Masks in the dtype stored in the files; a list when they differ in
        shape or dtype.
    names : list of str
        Only with ``return_names=True``: the shared names, sorted.

    Raises
    ------
    FileNotFoundError
        A folder that does not exist.
    ValueError
        No images found, an image without a mask or a mask without an image,
        a mask that is not 2-D, or a mask whose size differs from its image's.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from skimage import io
    >>> from sksegment.datasets import load_image_folder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = pathlib.Path(tmp.name)
    >>> (root / "img").mkdir(); (root / "lbl").mkdir()
    >>> for name in ("b", "a"):
    ...     io.imsave(root / "img" / f"{name}.png", np.arange(48, dtype=np.uint8).reshape(8, 6))
    ...     io.imsave(root / "lbl" / f"{name}.png", np.eye(8, 6, dtype=np.uint8),
    ...               check_contrast=False)
    >>> X, y, names = load_image_folder(root / "img", root / "lbl", return_names=True)
    >>> X.shape, y.dtype, names
    ((2, 8, 6), dtype('uint8'), ['a', 'b'])
    >>> tmp.cleanup()
    """
    images_dir = _check_dir(images_dir, "images_dir")
    masks_dir = _check_dir(masks_dir, "masks_dir")
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        exts = {str(e).lower() for e in extensions}
    except TypeError:
        raise TypeError(
            f"extensions must be a sequence of file extensions such as ('.png', '.tif'); "
            f"got {extensions!r}."
        ) from None
    bad = sorted(e for e in exts if not e.startswith(".") or len(e) < 2)
    if not exts or bad:
        raise ValueError(
            f"extensions must be non-empty and each start with a dot, like '.png'; "
            f"got {extensions!r}."
        )
    if as_gray is None:
        as_gray = False
    if not isinstance(as_gray, (bool, np.bool_)):
        raise TypeError(f"as_gray must be True or False; got {as_gray!r}.")

    images = _files_by_stem(images_dir, exts, "images_dir")
    masks = _files_by_stem(masks_dir, exts, "masks_dir")
    if not images:
        raise ValueError(
            f"images_dir {str(images_dir)!r} holds no files with extensions "
            f"{sorted(exts)}."
        )
    no_mask = images.keys() - masks.keys()
    if no_mask:
        raise ValueError(
            f"{len(no_mask)} image(s) in images_dir have no mask of the same name in "
            f"masks_dir {str(masks_dir)!r}: {_listing(no_mask)}."
        )
    no_image = masks.keys() - images.keys()
    if no_image:
        raise ValueError(
            f"{len(no_image)} mask(s) in masks_dir have no image of the same name in "
            f"images_dir {str(images_dir)!r}: {_listing(no_image)}."
        )

    names = sorted(images)
    X, y = [], []
    for name in names:
        image = skio.imread(images[name])
        if as_gray:
            image = _to_gray(image)
        mask = skio.imread(masks[name])
        if mask.ndim != 2:
            same = mask.ndim == 3 and bool((mask == mask[..., :1]).all())
            hint = ("its channels are equal, so save (or use) one channel, e.g. mask[..., 0]"
                    if same else
                    "map each colour to an integer class label and save a 2-D (grayscale "
                    "or label) image")
            raise ValueError(
                f"mask {masks[name].name!r} in masks_dir has shape {mask.shape}; masks must "
                f"be 2-D label images (H, W): {hint}."
            )
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"image {images[name].name!r} is {image.shape[:2]} (H, W) but its mask "
                f"{masks[name].name!r} is {mask.shape}; they must have the same size."
            )
        X.append(image)
        y.append(mask)
    X, y = _stack_if_uniform(X), _stack_if_uniform(y)
    return (X, y, names) if return_names else (X, y)


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
