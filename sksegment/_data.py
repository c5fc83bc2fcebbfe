"""Checking images and label masks, and converting them one batch at a time.

Images stay in the dtype the user gave (uint8 stays uint8) on the host, and
array-likes that read on demand (``numpy.memmap``, zarr arrays, h5py datasets,
dask arrays) stay where they are: they are checked from their metadata and
read in bounded blocks (see :mod:`sksegment._arrays`). A batch
is moved to the device in that dtype and only there turned into float32
``(N, C, H, W)``. Labels are encoded into class indices ``0 .. K-1`` on the
device as well, with :data:`IGNORE` marking pixels that count in no loss and no
metric.
"""

import numbers

import numpy as np
import torch

from ._arrays import LazyArray, is_array_like, iter_blocks
from ._arrays import image_shape as _image_shape

#: Class index used inside torch code for pixels that carry no label
#: (the user's ``ignore_index``, or pixels an augmentation brought in from
#: outside the image). Matches the default of ``torch.nn.functional.cross_entropy``.
IGNORE = -100

# Integer dtypes torch.from_numpy takes without complaint on every supported
# torch version; anything else is converted per batch on the host.
_TORCH_NATIVE = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64,
                                       np.float16, np.float32, np.float64)}


def intensity_scale(dtype):
    """Factor that maps an image dtype onto [0, 1]: 1/255 for uint8, 1/65535
    for uint16, 1 for everything else (bool becomes 0/1, floats stay as given)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 1.0 / 255.0
    if dtype == np.uint16:
        return 1.0 / 65535.0
    return 1.0


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_dtype(arr, name):
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float); got dtype {arr.dtype}."
        )


def _check_finite(arr, name):
    """Reject NaN/inf, reading ``arr`` in bounded blocks (no full-size temporary)."""
    if arr.dtype.kind != "f":
        return
    wide = arr.dtype.itemsize > 4  # float64 values may lie beyond float32, the network's
    for block in iter_blocks(arr):
        if not np.isfinite(block).all():
            raise ValueError(f"{name} contains NaN or infinity; clean or impute it first.")
        if wide and block.size and float(np.abs(block).max()) > _FLOAT32_MAX:
            raise ValueError(
                f"{name} holds values as large as {float(np.abs(block).max()):.3g}, beyond the "
                f"range of float32 ({_FLOAT32_MAX:.3g}) in which the network computes; rescale "
                f"{name} (for example divide it by its largest absolute value).")


def _as_array(obj, name):
    """``obj`` as an ndarray, or as a :class:`~sksegment._arrays.LazyArray`
    when it is an array-like that reads on demand (zarr, h5py, dask)."""
    if isinstance(obj, torch.Tensor):
        raise TypeError(
            f"{name} must be a NumPy array (channels last), not a torch.Tensor; "
            f"use {name}.cpu().numpy() and move the channel axis last."
        )
    if isinstance(obj, LazyArray):
        return obj
    if is_array_like(obj):
        return LazyArray(obj, name)
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} could not be read as an array: {exc}") from None
    return arr


def _add_channel(arr):
    return arr.with_channel_axis() if isinstance(arr, LazyArray) else arr[..., None]


def check_images(X, name="X", allow_list=True, check_finite=True):
    """Validate images and return them channels-last without copying or reading them.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C), array-like of that shape
        that reads on demand (``numpy.memmap``, zarr array, h5py dataset,
        dask array), or list of such images of shape (H, W) or (H, W, C)
    name : str
        Argument name used in error messages.
    allow_list : bool
        Whether a list of images (possibly of different sizes) is accepted.
    check_finite : bool
        Whether float images are scanned for NaN and infinity (block by
        block). A dask array whose prediction stays lazy is not scanned.

    Returns
    -------
    images : ndarray or LazyArray of shape (n, H, W, C), or list of them of shape (H, W, C)
        Views of the input (a grayscale axis is added as a view). Shape and
        dtype come from metadata; float images are checked for NaN and
        infinity block by block.
    """
    if isinstance(X, (list, tuple)):
        if not allow_list:
            raise TypeError(f"{name} must be a NumPy array of shape (n, H, W) or (n, H, W, C).")
        if len(X) == 0:
            raise ValueError(f"{name} is an empty list; at least one image is required.")
        images = []
        for i, img in enumerate(X):
            arr = _as_array(img, f"{name}[{i}]")
            _check_dtype(arr, f"{name}[{i}]")
            if arr.ndim == 2:
                arr = _add_channel(arr)
            elif arr.ndim != 3:
                raise ValueError(
                    f"{name}[{i}] must be 2-D (H, W) or 3-D (H, W, C); got shape {arr.shape}."
                )
            if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
                raise ValueError(f"{name}[{i}] is empty (shape {arr.shape}).")
            if check_finite:
                _check_finite(arr, f"{name}[{i}]")
            images.append(arr)
        scales = {}
        for img in images:
            scales.setdefault(intensity_scale(img.dtype), img.dtype)
        if len(scales) > 1:
            raise ValueError(
                f"{name} mixes image dtypes {sorted({str(d) for d in scales.values()})}, which "
                "are scaled differently (uint8 by 1/255, uint16 by 1/65535, other dtypes as "
                "given); convert every image to one dtype, for example "
                f"[np.asarray(img, dtype=np.float32) / 255 for img in {name}] for uint8 images "
                "beside floats in [0, 1].")
        channels = {img.shape[2] for img in images}
        if len(channels) > 1:
            raise ValueError(
                f"{name} mixes images with different channel counts {sorted(channels)}; "
                "convert them to one channel count (for example all grayscale or all RGB)."
            )
        return images
    arr = _as_array(X, name)
    _check_dtype(arr, name)
    if arr.ndim == 3:
        arr = _add_channel(arr)
    elif arr.ndim != 4:
        raise ValueError(
            f"{name} must be 3-D (n, H, W) for grayscale or 4-D (n, H, W, C) channels last; "
            f"got an array of shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one image is required.")
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has an empty image axis (shape {arr.shape}).")
    if check_finite:
        _check_finite(arr, name)
    return arr


def check_finite(images, name="X"):
    """Reject NaN/inf in checked float images (an array, a LazyArray or a
    list), reading them block by block; integer images pass at once."""
    if isinstance(images, list):
        for i, img in enumerate(images):
            _check_finite(img, f"{name}[{i}]")
    else:
        _check_finite(images, name)


def image_shape(images, i):
    """(H, W) of image ``i``, from metadata (nothing is read)."""
    return _image_shape(images, i)


def n_channels(images):
    return images[0].shape[-1] if isinstance(images, list) else images.shape[-1]


def check_masks(y, images, name="y", images_name="X"):
    """Validate label images against ``images`` (from :func:`check_images`).

    Returns y as an ndarray or LazyArray (n, H, W), or a list of (H, W)
    arrays, unchanged in dtype and never copied. Shapes are checked from
    metadata; float labels are checked to be integral block by block.
    """
    n = len(images)
    if isinstance(y, (list, tuple)):
        if len(y) != n:
            raise ValueError(f"{name} has {len(y)} masks but {images_name} has {n} images.")
        masks = [_as_array(m, f"{name}[{i}]") for i, m in enumerate(y)]
        shapes = [m.shape for m in masks]
    else:
        masks = _as_array(y, name)
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.ndim != 3:
            raise ValueError(
                f"{name} must be label images of shape (n, H, W); got shape {masks.shape}."
            )
        if masks.shape[0] != n:
            raise ValueError(f"{name} has {masks.shape[0]} masks but {images_name} has {n} "
                             "images.")
        shapes = [tuple(masks.shape[1:])] * n
    for i in range(n):
        shape = tuple(shapes[i])
        if len(shape) != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D label image; got shape {shape}.")
        if shape != _image_shape(images, i):
            _raise_if_channels_first(images, i, shape, name, images_name)
            raise ValueError(
                f"{name}[{i}] has shape {shape} but image {i} of {images_name} is "
                f"{_image_shape(images, i)}; masks and images must have the same height and "
                "width."
            )
    dtypes = {m.dtype for m in masks} if isinstance(masks, list) else {masks.dtype}
    for dt in dtypes:
        if dt.kind not in "biuf":
            raise TypeError(f"{name} must hold integer or bool labels; got dtype {dt}.")
    if label_dtype(masks).kind == "f" and all(dt.kind != "f" for dt in dtypes):
        raise ValueError(
            f"{name} mixes label dtypes {sorted(map(str, dtypes))} that no integer dtype holds "
            "together (uint64 beside signed integers); convert the masks to one dtype.")
    if any(dt.kind == "f" for dt in dtypes):
        for part in iter_blocks(masks):
            if part.dtype.kind == "f" and (not np.isfinite(part).all()
                                           or (part != np.round(part)).any()):
                raise ValueError(
                    f"{name} must hold class labels; it has non-integer values "
                    "(continuous targets are not segmentation labels)."
                )
    return masks


def _block_labels(block):
    """Sorted unique values of one block, by counting for 1- and 2-byte dtypes."""
    dtype = block.dtype
    if dtype.kind in "biu" and dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{dtype.itemsize}")
        counts = np.bincount(block.reshape(-1).view(unsigned), minlength=256 ** dtype.itemsize)
        return np.sort(np.flatnonzero(counts).astype(unsigned).view(dtype))
    return np.unique(block)


def _raise_if_channels_first(images, i, mask_shape, name, images_name="X"):
    """A mismatch that a channels-first X explains gets its own message."""
    h, w = _image_shape(images, i)
    c = (images[i] if isinstance(images, list) else images).shape[-1]
    if (w, c) == tuple(mask_shape) and h <= 4:
        layout = "(C, H, W)" if isinstance(images, list) else "(n, C, H, W)"
        move = ("np.moveaxis(X[i], 0, -1) for each image" if isinstance(images, list)
                else "np.moveaxis(X, 1, -1)")
        raise ValueError(
            f"{images_name} looks channels-first {layout} ({h} channels of {w} x {c}) while "
            f"{name} has "
            f"label images of {mask_shape[0]} x {mask_shape[1]}; sksegment takes images "
            f"channels last (n, H, W, C), as scikit-image does: pass {move}.")


def label_dtype(masks):
    """The dtype that holds the labels of every mask (masks of a list may
    differ in dtype: uint8 beside int64 gives int64)."""
    if isinstance(masks, list):
        return np.result_type(*{m.dtype for m in masks})
    return masks.dtype


def unique_labels(masks):
    """Sorted unique label values over all masks, in their common dtype.

    The masks (an ndarray, a LazyArray or a list) are read in blocks of at
    most :data:`sksegment._arrays.SCAN_VALUES` values (or one row of the
    store's chunks); only the values found are kept.
    """
    dtype = label_dtype(masks)
    values = None
    for block in iter_blocks(masks):
        found = _block_labels(block)
        values = found if values is None else np.union1d(values, found)
    if values is None:
        return np.empty(0, dtype=dtype)
    return values.astype(dtype, copy=False)


def count_pixels(masks, codec, n_classes, chunk=None):
    """Labelled pixels per class (for the fingerprint and
    ``class_weight="balanced"``), counted on the host block by block (blocks
    of at most ``chunk`` values, default
    :data:`sksegment._arrays.SCAN_VALUES`, or one row of the store's
    chunks), for in-memory and lazy masks alike.

    Parameters
    ----------
    masks : ndarray, LazyArray or list of them
        Label images as returned by :func:`check_masks`.
    codec : LabelCodec
    n_classes : int

    Returns
    -------
    counts : ndarray of shape (n_classes,), int64
    """
    counts = np.zeros(n_classes, dtype=np.int64)
    for block in iter_blocks(masks, chunk):
        idx = codec.encode(block, "cpu").reshape(-1)
        idx = idx[idx >= 0]
        counts += np.bincount(idx.numpy(), minlength=n_classes)
    return counts


def check_classes(classes, dtype, name="classes"):
    """Sorted label values given to ``partial_fit``, checked to be distinct
    labels that masks of ``dtype`` can hold; returned in ``dtype``."""
    arr = np.asarray(classes)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of label values; got shape "
                         f"{arr.shape}.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integer or bool label values; got dtype {arr.dtype}.")
    bad = [v for v in arr.tolist() if not representable(v, dtype)]
    if bad:
        raise ValueError(
            f"{name} holds {bad[0]!r}, which masks of dtype {dtype} cannot hold (not a whole "
            "number, or out of range); give y a dtype that holds every class (for example "
            "y.astype(np.int32)) or correct classes.")
    values = arr.astype(dtype)
    unique = np.unique(values)
    if unique.size != values.size:
        raise ValueError(f"{name} repeats a label value: {arr.tolist()}.")
    return unique


def check_ignore_index(ignore_index):
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be None or an integer label value; got {ignore_index!r}.")
    return int(ignore_index)


def representable(value, dtype):
    """Whether the label value (a Python int, float or bool) is exactly a
    value of ``dtype`` (stored and read back unchanged)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        return False
    if dtype.kind == "f":
        return bool(np.isfinite(value)) and np.array(value, dtype=dtype).item() == value
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    value = int(value)
    if dtype.kind == "b":
        return value in (0, 1)
    info = np.iinfo(dtype)
    return int(info.min) <= value <= int(info.max)


class LabelCodec:
    """Maps label values to class indices (and back) for one fitted segmenter.

    Every integer dtype (int8 to int64, uint8 to uint64, bool) round-trips
    exactly, as do floats with integral values: masks of 1 and 2 bytes per
    value are encoded through a look-up table on the device, wider integers
    by a binary search over the class values in a 64-bit form that keeps
    their order and identity (uint64 through its bit pattern), floats by a
    binary search in float64. A mask value that is no class, or is the
    ignore label, becomes :data:`IGNORE`.

    Parameters
    ----------
    classes : ndarray
        Sorted label values, ``classes_``.
    ignore_label : int or None
        Label value that means "unlabelled"; encoded as :data:`IGNORE`.
    """

    def __init__(self, classes, ignore_label=None):
        self.classes = np.asarray(classes)
        self.ignore_label = ignore_label
        self._plans = {}
        self._device_cache = {}

    def _plan(self, dtype):
        """How masks of ``dtype`` are encoded (built once per dtype):
        ``("table", table)`` or ``("search", keys, index)``, host arrays."""
        dtype = np.dtype(dtype)
        if dtype in self._plans:
            return self._plans[dtype]
        pairs = [(v, k) for k, v in enumerate(self.classes.tolist())
                 if representable(v, dtype)
                 and (self.ignore_label is None or v != self.ignore_label)]
        if dtype.kind in "biu" and dtype.itemsize <= 2:
            unsigned = np.dtype(f"u{dtype.itemsize}")
            table = np.full(256 ** dtype.itemsize, IGNORE, dtype=np.int64)
            for v, k in pairs:
                table[int(np.array(int(v), dtype=dtype).view(unsigned))] = k
            plan = ("table", table)
        else:
            if dtype.kind == "f":
                keys = np.array([float(v) for v, _ in pairs], dtype=np.float64)
            elif dtype == np.uint64:
                keys = np.array([int(v) for v, _ in pairs], dtype=np.uint64).view(np.int64)
            else:
                keys = np.array([int(v) for v, _ in pairs], dtype=np.int64)
            index = np.array([k for _, k in pairs], dtype=np.int64)
            keys, first = np.unique(keys, return_index=True)  # sorted, one entry per key
            plan = ("search", keys, index[first])
        self._plans[dtype] = plan
        return plan

    def _on(self, device, dtype, j):
        key = (str(device), np.dtype(dtype), j)
        if key not in self._device_cache:
            self._device_cache[key] = torch.from_numpy(self._plan(dtype)[j]).to(device)
        return self._device_cache[key]

    def host(self, masks, pin=False):
        """The host half of :meth:`encode`: the masks in the raw form the
        device half reads, as a :class:`HostArray` (pinned when ``pin``)."""
        masks = np.asarray(masks)
        if self._plan(masks.dtype)[0] == "table":
            # 1 byte: the bit pattern as uint8; 2 bytes: as int16 (torch holds
            # int16 everywhere), masked back to 16 bits on the device
            raw = masks.view(np.uint8 if masks.dtype.itemsize == 1 else np.int16)
        elif masks.dtype.kind == "f":
            raw = masks.astype(np.float64, copy=False)
        elif masks.dtype == np.uint64:
            raw = masks.view(np.int64)  # the keys were made the same way
        else:
            raw = masks.astype(np.int64, copy=False)
        return HostArray(torch.from_numpy(_torch_ready(raw)), masks.dtype, pin)

    def encode(self, masks, device):
        """Encode label values (any shape) into an int64 tensor of class
        indices on ``device``; unknown values and the ignore label become
        :data:`IGNORE`. ``masks`` is an array or the :meth:`host` form."""
        host = masks if isinstance(masks, HostArray) else self.host(masks)
        plan = self._plan(host.dtype)
        raw = host.tensor.to(device, non_blocking=True)
        if plan[0] == "table":
            t = raw.long()
            if host.dtype.itemsize == 2:
                t = t.bitwise_and_(0xFFFF)
            return self._on(device, host.dtype, 1)[t]
        keys = self._on(device, host.dtype, 1)
        if keys.numel() == 0:
            return torch.full(raw.shape, IGNORE, dtype=torch.int64, device=raw.device)
        pos = torch.searchsorted(keys, raw).clamp_(max=keys.numel() - 1)
        known = keys[pos] == raw
        index = self._on(device, host.dtype, 2)[pos]
        return torch.where(known, index, torch.full_like(index, IGNORE))

    def decode(self, indices):
        """Class indices (NumPy) back to label values in the dtype of y."""
        return self.classes[indices]


def _torch_ready(arr):
    """A C-contiguous, writable array torch.from_numpy takes without warning."""
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        arr = arr.copy()  # torch.from_numpy warns on read-only memory
    return arr


class HostArray:
    """A batch made ready on the host for the copy to a device: a CPU tensor
    (page-locked when ``pin``, so that the copy can be asynchronous) and the
    NumPy dtype it came from (which sets the intensity scale or the label
    encoding)."""

    __slots__ = ("dtype", "tensor")

    def __init__(self, tensor, dtype, pin=False):
        self.tensor = tensor.pin_memory() if pin else tensor
        self.dtype = np.dtype(dtype)


def host_images(batch, pin=False):
    """The host half of :func:`to_tensor`: the batch as a CPU tensor of a
    dtype torch holds, in a :class:`HostArray` (pinned when ``pin``)."""
    batch = np.asarray(batch)
    dtype = batch.dtype
    if batch.dtype == bool:
        batch = batch.view(np.uint8)
    elif batch.dtype not in _TORCH_NATIVE:
        batch = batch.astype(np.float32)  # uint16/uint32/uint64: this batch only
    return HostArray(torch.from_numpy(_torch_ready(batch)), dtype, pin)


def to_tensor(batch, device):
    """Move a channels-last image batch to ``device`` and make it float32
    ``(N, C, H, W)`` there, scaled by :func:`intensity_scale`.

    ``batch`` is an array or its :func:`host_images` form. Only this batch
    is converted; the caller's array is never changed.
    """
    host = batch if isinstance(batch, HostArray) else host_images(batch)
    t = host.tensor.to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).to(torch.float32)
    scale = intensity_scale(host.dtype)
    if scale != 1.0:
        t = t * scale
    return t
