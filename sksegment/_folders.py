"""Folders of image files: reading images and masks paired by name, writing
label masks. Public through :mod:`sksegment.datasets`."""

import os
import warnings
from pathlib import Path

import numpy as np

from ._image_io import (
    MASK_FORMATS,
    SUFFIX,
    TIFF_SUFFIXES,
    check_palette,
    colours_to_labels,
    count_pages,
    default_palette,
    is_jpeg,
    mask_storage,
    read_pages,
    write_mask,
)
from ._validation import check_bool, check_option

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


def _check_extensions(extensions):
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
    return exts


def _check_as_gray(as_gray):
    if as_gray is None:
        return False
    return check_bool(as_gray, "as_gray")


def _page_names(path):
    """``[(name, page)]`` of one file: ``[(stem, None)]``, or one name per
    page of a TIFF stack (``stem_000``, ``stem_001``, ...)."""
    n = count_pages(path)
    if n == 1:
        return [(path.stem, None)]
    width = max(3, len(str(n - 1)))
    return [(f"{path.stem}_{i:0{width}d}", i) for i in range(n)]


def _file_page(path, page):
    return path.name if page is None else f"{path.name} (page {page})"


def _describe(path, page):
    return f"{path.name!r}" if page is None else f"{path.name!r} (page {page})"


def _entries(directory, extensions, name):
    """``{name: (path, page)}`` for the image files of a folder, stacks expanded."""
    found = {}
    for p in sorted(directory.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in extensions:
            continue
        for key, page in _page_names(p):
            if key in found:
                raise ValueError(
                    f"{name} has two files with the name {key!r} "
                    f"({_file_page(*found[key])} and {_file_page(p, page)}); images "
                    "and masks are paired by name without extension, so each name must "
                    "occur once."
                )
            found[key] = (p, page)
    return found


def _read(entries, names, mask, colours=False):
    """``{name: array}`` for ``names``, each file read once (indexed masks as
    their colours with ``colours=True``)."""
    by_path = {}
    for key in names:
        path, page = entries[key]
        by_path.setdefault(path, []).append((key, page))
    out = {}
    for path, items in by_path.items():
        pages = read_pages(path, mask=mask, colours=colours)
        for key, page in items:
            index = 0 if page is None else page
            if index >= len(pages):
                raise ValueError(f"{str(path)!r} changed while it was read: it has "
                                 f"{len(pages)} page(s), not {index + 1}.")
            out[key] = pages[index]
    return out


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


def _mask_labels(mask, path, page, palette):
    """A 2-D label image from what a mask file holds."""
    where = f"{str(path)!r}" if page is None else f"{str(path)!r} (page {page})"
    if mask.ndim == 3 and palette is not None and mask.shape[2] in (3, 4):
        return colours_to_labels(mask, palette, where)
    if mask.ndim != 2:
        same = mask.ndim == 3 and bool((mask == mask[..., :1]).all())
        hint = ("its channels are equal, so save (or use) one channel, e.g. mask[..., 0]"
                if same else
                "map each colour to an integer class label and save a 2-D (grayscale, "
                "label or indexed) image, or pass palette={(r, g, b): label} (on the "
                "command line: --colour R,G,B=LABEL for each colour)")
        raise ValueError(
            f"mask {where} has shape {mask.shape}; masks must "
            f"be 2-D label images (H, W): {hint}."
        )
    if mask.dtype.kind == "f":
        _check_whole(mask, where)
    return mask


def _check_whole(mask, where):
    """Refuse a float mask holding NaN, infinities or values that are not
    whole numbers: such values are no class labels."""
    finite = np.isfinite(mask)
    for bad, what, fix in (
            (~finite, "{value} at {n} pixel(s)",
             ("mark those pixels with a label (e.g. the segmenter's ignore_index) and save the "
             "mask with an integer dtype.")),
            (finite & (mask != np.floor(mask)),
             "values that are not whole numbers (such as {value}, at {n} pixel(s))",
             ("round the labels and save the mask with an integer dtype (e.g. uint8), or check "
             "that it is a label image and not a probability or intensity image."))):
        if bad.any():
            found = what.format(value=mask[bad][0], n=int(np.count_nonzero(bad)))
            raise ValueError(f"mask {where} is a float image holding {found}; "
                             f"labels must be whole numbers: {fix}")


_INT_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)
_SIGNED_DTYPES = (np.int8, np.int16, np.int32, np.int64)


def _label_dtype(low, high):
    """The smallest integer dtype holding whole numbers in ``[low, high]``."""
    for dtype in _INT_DTYPES if low >= 0 else _SIGNED_DTYPES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return None


def _float_masks_to_int(masks, where):
    """Float masks (whole numbers, checked on reading) cast to one integer
    dtype: the smallest that holds their labels and those of the integer
    masks beside them, which are cast to it too (their values unchanged), so
    that the masks of one folder share a dtype."""
    floats = [i for i, m in enumerate(masks) if m.dtype.kind == "f"]
    if not floats:
        return masks
    low = min((float(masks[i].min()) for i in floats if masks[i].size), default=0.0)
    high = max((float(masks[i].max()) for i in floats if masks[i].size), default=0.0)
    dtype = _label_dtype(low, high)
    if dtype is None:
        i = floats[0]
        raise ValueError(
            f"mask {where[i]} in masks_dir is a float image with labels in [{low:g}, "
            f"{high:g}], which no integer dtype holds; save masks with integer labels."
        )
    others = {m.dtype for m in masks if m.dtype.kind in "iu"}
    common = np.result_type(dtype, *others) if others else dtype
    if common.kind not in "iu":  # uint64 beside signed labels: no common dtype
        common = dtype
    out = []
    for m in masks:
        if m.dtype.kind == "f" or (m.dtype.kind in "iu" and np.can_cast(m.dtype, common)):
            m = m.astype(common, copy=False)
        out.append(m)
    return out


def load_images(images_dir, extensions=_EXTENSIONS, as_gray=False, return_names=False):
    """Read the images of a folder, in order of their names.

    Files are read as :func:`load_image_folder` reads images: indexed PNGs are
    expanded to their colours, 16-bit files stay uint16 (16-bit colour PNGs
    are refused, see there), and every page of a multi-page TIFF file
    ``stem.tif`` is one image named ``stem_000``, ``stem_001``, ... Files
    with other extensions and hidden files are ignored.

    Parameters
    ----------
    images_dir : str or os.PathLike
        Folder of images.
    extensions : sequence of str, default=(".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
        File extensions to read (case-insensitive, with the dot).
    as_gray : bool, default=False
        Convert colour images (RGB or RGBA; alpha is dropped) to grayscale,
        keeping their dtype. None means False.
    return_names : bool, default=False
        Also return the image names (file names without extension).

    Returns
    -------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or list of ndarray
        Images; a list when they differ in shape or dtype.
    names : list of str
        Only with ``return_names=True``: the names, sorted.

    Raises
    ------
    FileNotFoundError
        A folder that does not exist.
    ValueError
        No images found, two files of one name, a file that cannot be read
        (corrupt or truncated) or a 16-bit colour PNG (the message names the
        file).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sksegment.datasets import load_images, save_masks
    >>> tmp = tempfile.TemporaryDirectory()
    >>> paths = save_masks(tmp.name, np.zeros((2, 8, 6), np.uint8), names=["b", "a"])
    >>> X, names = load_images(tmp.name, return_names=True)
    >>> X.shape, names
    ((2, 8, 6), ['a', 'b'])
    >>> tmp.cleanup()
    """
    return_names = check_bool(return_names, "return_names")
    images_dir = _check_dir(images_dir, "images_dir")
    exts = _check_extensions(extensions)
    as_gray = _check_as_gray(as_gray)
    entries = _entries(images_dir, exts, "images_dir")
    if not entries:
        raise ValueError(
            f"images_dir {str(images_dir)!r} holds no files with extensions {sorted(exts)}."
        )
    names = sorted(entries)
    arrays = _read(entries, names, mask=False)
    X = [_to_gray(arrays[n]) if as_gray else arrays[n] for n in names]
    X = _stack_if_uniform(X)
    return (X, names) if return_names else X


def load_image_folder(images_dir, masks_dir, extensions=_EXTENSIONS, as_gray=False,
                      return_names=False, palette=None):
    """Read images and their label masks from two folders, paired by name.

    An image ``images_dir/name.ext`` is paired with the mask
    ``masks_dir/name.ext2`` of the same name without extension (extensions may
    differ, e.g. ``a.jpg`` with ``a.png``). Pairs are returned in order of
    their names. Files with other extensions and hidden files are ignored.

    How files are read:

    - PNG, JPEG and BMP files with Pillow, TIFF files with tifffile; 16-bit
      files stay uint16, 1-bit files are bool. 16-bit colour PNGs (RGB, RGBA
      or gray with alpha) are refused with a ``ValueError`` naming the file:
      Pillow would read them as 8 bits per channel, so save them as 16-bit
      TIFF files instead.
    - Every page of a multi-page TIFF file ``stem.tif`` of n pages is one
      image named ``stem_000`` .. ``stem_{n-1}`` (three digits or more), so a
      stack of images pairs with a stack of masks of the same name, or with
      mask files ``stem_000.png``, ... A one-page TIFF keeps its name.
    - An indexed (palette, mode "P") PNG *mask* is read as its indices: they
      are the labels, the palette only colours them (as :func:`save_masks`
      writes them) -- unless ``palette`` is given: then its pixels are read
      as the colours they show and mapped through ``palette``, as colour
      masks are. An indexed *image* is expanded to its colours.
    - Colour (RGB or RGBA) masks need ``palette``, which maps each colour to
      its label; a colour not in it is an error naming the file and the
      colour.
    - Float masks (such as float TIFFs from ImageJ) must hold whole numbers:
      they are cast to the smallest integer dtype that holds the labels
      (uint8, uint16, uint32, uint64, or int8 .. int64 for negative labels);
      integer masks beside them are cast to the dtype that holds every label
      (values unchanged). NaN, infinities or values that are not whole
      numbers are an error naming the file.
    - JPEG masks are read, with a ``UserWarning`` naming them: JPEG is
      lossy, so their labels may hold compression noise.

    Parameters
    ----------
    images_dir : str or os.PathLike
        Folder of images.
    masks_dir : str or os.PathLike
        Folder of label masks: 2-D images whose pixel values are class labels
        (or colour masks with ``palette``).
    extensions : sequence of str, default=(".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
        File extensions to read (case-insensitive, with the dot).
    as_gray : bool, default=False
        Convert colour images (RGB or RGBA; alpha is dropped) to grayscale,
        keeping their dtype. Masks are never converted. None means False.
    return_names : bool, default=False
        Also return the shared names (file names without extension).
    palette : dict or None, default=None
        ``{(r, g, b): label}`` with integer colours in 0..255 and integer
        labels: how colour masks, and indexed masks by the colours they show,
        are read (the alpha channel of RGBA masks is not used). The labels
        get the smallest dtype that holds them (uint8 for labels in 0..255).
        Masks that are neither colour nor indexed images are read as they
        are.

    Returns
    -------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or list of ndarray
        Images; a list when they differ in shape or dtype.
    y : ndarray of shape (n, H, W), or list of ndarray
        Masks in the dtype stored in the files (float masks cast to an
        integer dtype, see above); a list when they differ in shape or dtype.
    names : list of str
        Only with ``return_names=True``: the shared names, sorted.

    Raises
    ------
    FileNotFoundError
        A folder that does not exist.
    ValueError
        No images found, an image without a mask or a mask without an image,
        a mask that is not 2-D, a mask whose size differs from its image's, a
        colour not in ``palette``, a float mask holding NaN or values that
        are not whole numbers, a 16-bit colour PNG, or a file that cannot be
        read (corrupt or truncated; the message names the file).

    Warns
    -----
    UserWarning
        Masks stored as JPEG files (lossy), once per call, naming them.

    See Also
    --------
    load_images : the images of one folder, without masks.
    save_masks : write label images that this function reads back.

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

    Colour masks are read through a palette:

    >>> rgb = np.zeros((8, 6, 3), np.uint8)
    >>> rgb[:4] = (255, 0, 0)
    >>> for name in ("a", "b"):
    ...     io.imsave(root / "lbl" / f"{name}.png", rgb, check_contrast=False)
    >>> X, y = load_image_folder(root / "img", root / "lbl",
    ...                          palette={(0, 0, 0): 0, (255, 0, 0): 1})
    >>> y[0, :, 0].tolist()
    [1, 1, 1, 1, 0, 0, 0, 0]
    >>> tmp.cleanup()
    """
    return_names = check_bool(return_names, "return_names")
    images_dir = _check_dir(images_dir, "images_dir")
    masks_dir = _check_dir(masks_dir, "masks_dir")
    exts = _check_extensions(extensions)
    as_gray = _check_as_gray(as_gray)
    if palette is not None:
        palette = check_palette(palette)

    images = _entries(images_dir, exts, "images_dir")
    masks = _entries(masks_dir, exts, "masks_dir")
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
    jpegs = sorted({path.name for path, _ in masks.values() if is_jpeg(path)})
    if jpegs:
        warnings.warn(
            f"{len(jpegs)} mask file(s) in masks_dir {str(masks_dir)!r} are JPEG files: "
            f"{_listing(jpegs)}. JPEG compression is lossy, so their labels may hold "
            "compression noise (values or colours of no class, mostly along the edges); "
            "save masks losslessly, as PNG or TIFF (sksegment.datasets.save_masks).",
            UserWarning, stacklevel=2,
        )
    image_arrays = _read(images, names, mask=False)
    mask_arrays = _read(masks, names, mask=True, colours=palette is not None)
    X, y = [], []
    for name in names:
        image = image_arrays.pop(name)
        if as_gray:
            image = _to_gray(image)
        mask = _mask_labels(mask_arrays.pop(name), *masks[name], palette)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"image {_describe(*images[name])} is {image.shape[:2]} (H, W) but its mask "
                f"{_describe(*masks[name])} is {mask.shape}; they must have the same size."
            )
        X.append(image)
        y.append(mask)
    y = _float_masks_to_int(y, [_describe(*masks[name]) for name in names])
    X, y = _stack_if_uniform(X), _stack_if_uniform(y)
    return (X, y, names) if return_names else (X, y)


# --------------------------------------------------------------------------- #
# writing masks
# --------------------------------------------------------------------------- #
def _check_mask_stack(y):
    if isinstance(y, (list, tuple)):
        masks = [np.asarray(m) for m in y]
        for i, m in enumerate(masks):
            if m.ndim != 2:
                raise ValueError(f"y[{i}] must be a 2-D label image (H, W); got shape {m.shape}.")
            if m.size == 0:
                raise ValueError(f"y[{i}] is an empty mask of shape {m.shape}; each mask needs "
                                 "at least one pixel (an image file cannot hold none).")
    else:
        masks = np.asarray(y)
        if masks.ndim != 3:
            hint = " (for one mask pass y[None])" if masks.ndim == 2 else ""
            raise ValueError(f"y must be label images of shape (n, H, W) or a list of (H, W) "
                             f"arrays{hint}; got shape {masks.shape}.")
    if len(masks) == 0:
        raise ValueError("y holds no masks.")
    if isinstance(masks, np.ndarray) and masks.size == 0:
        raise ValueError(f"y holds empty masks: shape {masks.shape} (n, H, W) has no pixels; "
                         "each mask needs at least one pixel (an image file cannot hold none).")
    dtypes = {m.dtype for m in masks}
    if len(dtypes) > 1:
        raise TypeError(f"y must have one dtype; got {sorted(map(str, dtypes))}.")
    dtype = dtypes.pop()
    if dtype.kind not in "biuf":  # float masks get their own advice (mask_storage)
        raise TypeError(f"y must hold integer or bool labels; got dtype {dtype}.")
    return masks


def _check_names(names, n):
    if names is None:
        width = max(3, len(str(n - 1)))
        return [f"{i:0{width}d}" for i in range(n)]
    if not isinstance(names, (list, tuple, np.ndarray)):  # a set or dict has no order
        raise TypeError(f"names must be a list of {n} strings or None; got {names!r}.")
    names = list(names)
    if len(names) != n:
        raise ValueError(f"names has {len(names)} names but y has {n} masks.")
    for name in names:
        if not isinstance(name, str) or not name or name in (".", "..") \
                or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"names must be file names without a folder; got {name!r}.")
        if "\0" in name:
            raise ValueError(f"names must be file names without null bytes ('\\0'); "
                             f"got {name!r}.")
        if name.startswith("."):
            raise ValueError(
                f"names must not start with '.': load_image_folder and load_images skip "
                f"hidden files, so the mask would never be read back; got {name!r}."
            )
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"names holds {name!r} twice; each mask needs its own name.")
        seen.add(name)
    return names


def _same_names(folder, paths):
    """``{path: [other files]}``: for each path to write, the files of
    ``folder`` with the same name (without extension) and another image
    extension, which the loading functions would pair with the same name."""
    if not folder.is_dir():
        return {}
    by_stem = {}
    for p in folder.iterdir():
        if p.suffix.lower() in _EXTENSIONS and p.is_file():
            by_stem.setdefault(p.stem, []).append(p)
    out = {}
    for path in paths:
        others = [p for p in sorted(by_stem.get(path.stem, ()))
                  if p.name != path.name and not (path.exists() and os.path.samefile(p, path))
                  and count_pages(p) == 1]  # a stack's pages have names of their own
        if others:
            out[path] = others
    return out


def _page_clash(folder, paths):
    """The first ``(path, stack, page)`` where a name to write is the name of
    a page of a multi-page TIFF in ``folder`` (``stem_000``, ...), or None.
    Only TIFF files whose stem, with "_", begins a name to write are opened."""
    if not folder.is_dir():
        return None
    stacks = [p for p in sorted(folder.iterdir())
              if p.suffix.lower() in TIFF_SUFFIXES and p.is_file() and not p.name.startswith(".")
              and any(path.stem.startswith(p.stem + "_") for path in paths)]
    for stack in stacks:
        pages = dict(_page_names(stack))
        for path in paths:
            if pages.get(path.stem) is not None:
                return path, stack, pages[path.stem]
    return None


def _label_range(masks):
    low = min(int(m.min()) for m in masks if m.size)
    high = max(int(m.max()) for m in masks if m.size)
    return low, high


def save_masks(folder, y, names=None, palette=None, format="auto", overwrite=False):
    """Write label images to a folder, one lossless file per mask.

    The file type follows the dtype of ``y`` (one type for every file), so
    that :func:`load_image_folder` reads the same labels back:

    =========================  ==============================  ==============
    y                          file (``format="auto"``)        read back as
    =========================  ==============================  ==============
    bool                       1-bit PNG (black and white)     bool
    uint8                      8-bit PNG                       uint8
    uint16                     16-bit PNG                      uint16
    other integers in 0..255   8-bit PNG                       uint8
    other integers in 0..65535 16-bit PNG                      uint16
    other integers             TIFF in their dtype (zlib)      their dtype
    =========================  ==============================  ==============

    ``format="tiff"`` writes every mask as a TIFF in its dtype (bool as uint8
    0/1); ``format="png"`` refuses labels outside 0..65535. Float masks are
    refused (a ``TypeError``): cast them to an integer dtype first.

    An 8-bit PNG with a ``palette`` is an indexed PNG: its pixel values are
    still the labels (read back by :func:`load_image_folder` as such), and
    viewers show each class in its colour. Note that
    :func:`skimage.io.imread` expands such a file to RGB; read it with
    :func:`load_image_folder`, or with Pillow as ``np.asarray(Image.open(f))``.

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder; created (with its parents) if absent.
    y : ndarray of shape (n, H, W), or list of (H, W) arrays
        Label images, integer or bool, of one dtype.
    names : list of str or None, default=None
        File names without extension, one per mask; None numbers the masks
        ``000``, ``001``, ... A name may not hold a folder or a null byte, nor
        start with "." (hidden files are not read back).
    palette : None, "auto" or dict, default=None
        Colours of the labels in 8-bit PNGs: None writes grayscale PNGs;
        "auto" gives each label value found in ``y`` its own colour (black
        for the smallest); ``{(r, g, b): label}`` (as ``load_image_folder``
        takes it) sets them and must cover every label of ``y``. "auto" is
        ignored where labels do not fit 8 bits; a dict is then an error.
    format : {"auto", "png", "tiff"}, default="auto"
        See above.
    overwrite : bool, default=False
        Replace existing files. A mask name is one file, whatever its
        extension (the loading functions pair files by name without it), so
        this covers the file to write and files of the same name with
        another image extension (.png, .tif, .tiff, .jpg, .jpeg, .bmp,
        any case), such as ``a.png`` when ``a.tif`` is written: with
        ``overwrite=True`` they are removed once the new file is written.
        When False, any such file raises ``FileExistsError`` naming it,
        before anything is written. A multi-page TIFF is never removed: a
        mask named after one of its pages (``vol_000`` beside a stack
        ``vol.tif``) raises ``FileExistsError`` either way.

    Returns
    -------
    paths : list of pathlib.Path
        The files written, in the order of ``y``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sksegment.datasets import load_image_folder, save_masks
    >>> tmp = tempfile.TemporaryDirectory()
    >>> y = np.zeros((2, 4, 5), np.uint8)
    >>> y[:, 1:3, 1:4] = [[1], [2]]
    >>> [p.name for p in save_masks(tmp.name, y, names=["a", "b"], palette="auto")]
    ['a.png', 'b.png']
    >>> _, back = load_image_folder(tmp.name, tmp.name)
    >>> np.array_equal(back, y)
    True
    >>> save_masks(tmp.name, y, names=["a", "b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: ...a.png exists; pass overwrite=True to replace it.
    >>> tmp.cleanup()
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike); got "
                        f"{type(folder).__name__}.")
    folder = Path(folder)
    masks = _check_mask_stack(y)
    names = _check_names(names, len(masks))
    check_option(format, "format", MASK_FORMATS)
    overwrite = check_bool(overwrite, "overwrite")
    low, high = _label_range(masks)
    kind, dtype = mask_storage(masks[0].dtype, low, high, format)

    colours = None
    if isinstance(palette, str):
        if palette != "auto":
            raise ValueError(f"palette must be None, 'auto' or a dict {{(r, g, b): label}}; "
                             f"got {palette!r}.")
        if kind == "png8":
            labels = np.unique(np.concatenate([np.unique(m) for m in masks]))
            colours = default_palette(labels)
    elif palette is not None:
        colours = check_palette(palette)
        if kind != "png8":
            raise ValueError(
                f"palette colours only 8-bit PNG masks (labels in 0..255, not bool); these "
                f"masks are written as {kind}. Pass palette=None."
            )
        labels = np.unique(np.concatenate([np.unique(m) for m in masks]))
        missing = sorted(set(labels.tolist()) - set(colours.values()))
        if missing:
            raise ValueError(f"palette has no colour for the label(s) {missing}.")

    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"folder is not a directory: {str(folder)!r}.")
    paths = [folder / f"{name}{SUFFIX[kind]}" for name in names]
    clashes = _same_names(folder, paths)
    if not overwrite:
        for path in paths:
            if path.exists():
                raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
            if path in clashes:
                other = clashes[path][0]
                raise FileExistsError(
                    f"{other} exists: a file named {path.stem!r} with another extension than "
                    f"{path.name!r}; files are paired by name without extension, so the "
                    f"folder would hold two files named {path.stem!r} and could not be read "
                    "back. Pass overwrite=True to replace it (it is removed), or use another "
                    "name or folder."
                )
    clash = _page_clash(folder, paths)
    if clash is not None:  # refused even with overwrite: the stack holds other pages
        path, stack, page = clash
        raise FileExistsError(
            f"{stack} is a multi-page TIFF whose page {page} is read as the image "
            f"{path.stem!r}, the name of a mask to write; the folder would hold two images "
            f"named {path.stem!r}. Use other names or another folder.")
    folder.mkdir(parents=True, exist_ok=True)
    for path, mask in zip(paths, masks):
        write_mask(path, mask, kind, dtype, colours)
        for other in clashes.get(path, ()):  # the mask of this name, in another format
            other.unlink()
    return paths
