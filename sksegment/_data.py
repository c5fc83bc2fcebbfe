"""Checking images and label masks, and converting them one batch at a time.

Images stay in the dtype the user gave (uint8 stays uint8) on the host. A batch
is moved to the device in that dtype and only there turned into float32
``(N, C, H, W)``. Labels are encoded into class indices ``0 .. K-1`` on the
device as well, with :data:`IGNORE` marking pixels that count in no loss and no
metric.
"""

import numbers

import numpy as np
import torch

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


def _check_dtype(arr, name):
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float); got dtype {arr.dtype}."
        )


def _check_finite(arr, name, chunk=16):
    """Reject NaN/inf without making a full-size temporary."""
    if arr.dtype.kind != "f":
        return
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[None]
    for start in range(0, flat.shape[0], chunk):
        if not np.isfinite(flat[start:start + chunk]).all():
            raise ValueError(f"{name} contains NaN or infinity; clean or impute it before fitting.")


def _as_array(obj, name):
    if isinstance(obj, torch.Tensor):
        raise TypeError(
            f"{name} must be a NumPy array (channels last), not a torch.Tensor; "
            f"use {name}.cpu().numpy() and move the channel axis last."
        )
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} could not be read as an array: {exc}") from None
    return arr


def check_images(X, name="X", allow_list=True):
    """Validate images and return them channels-last without copying.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or list of arrays of shape
        (H, W) or (H, W, C)
    name : str
        Argument name used in error messages.
    allow_list : bool
        Whether a list of images (possibly of different sizes) is accepted.

    Returns
    -------
    images : ndarray of shape (n, H, W, C) or list of ndarray of shape (H, W, C)
        Views of the input (a grayscale axis is added as a view).
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
                arr = arr[:, :, None]
            elif arr.ndim != 3:
                raise ValueError(
                    f"{name}[{i}] must be 2-D (H, W) or 3-D (H, W, C); got shape {arr.shape}."
                )
            if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
                raise ValueError(f"{name}[{i}] is empty (shape {arr.shape}).")
            _check_finite(arr[None], f"{name}[{i}]")
            images.append(arr)
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
        arr = arr[..., None]
    elif arr.ndim != 4:
        raise ValueError(
            f"{name} must be 3-D (n, H, W) for grayscale or 4-D (n, H, W, C) channels last; "
            f"got an array of shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one image is required.")
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has an empty image axis (shape {arr.shape}).")
    _check_finite(arr, name)
    return arr


def n_images(images):
    return len(images)


def image_shape(images, i):
    """(H, W) of image ``i``."""
    return tuple(images[i].shape[:2])


def n_channels(images):
    return images[0].shape[-1] if isinstance(images, list) else images.shape[-1]


def check_masks(y, images, name="y"):
    """Validate label images against ``images`` (from :func:`check_images`).

    Returns y as an ndarray (n, H, W) or a list of (H, W) arrays, unchanged in
    dtype and never copied.
    """
    n = len(images)
    if isinstance(y, (list, tuple)):
        if len(y) != n:
            raise ValueError(f"{name} has {len(y)} masks but X has {n} images.")
        masks = [_as_array(m, f"{name}[{i}]") for i, m in enumerate(y)]
    else:
        masks = _as_array(y, name)
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.ndim != 3:
            raise ValueError(
                f"{name} must be label images of shape (n, H, W); got shape {masks.shape}."
            )
        if masks.shape[0] != n:
            raise ValueError(f"{name} has {masks.shape[0]} masks but X has {n} images.")
    for i in range(n):
        m = masks[i]
        if m.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D label image; got shape {m.shape}.")
        if m.shape != tuple(images[i].shape[:2]):
            raise ValueError(
                f"{name}[{i}] has shape {m.shape} but image {i} of X is {images[i].shape[:2]}; "
                "masks and images must have the same height and width."
            )
    dtypes = {m.dtype for m in masks} if isinstance(masks, list) else {masks.dtype}
    for dt in dtypes:
        if dt.kind not in "biuf":
            raise TypeError(f"{name} must hold integer or bool labels; got dtype {dt}.")
        if dt.kind == "f":
            arrs = masks if isinstance(masks, list) else [masks]
            for a in arrs:
                flat = a.reshape(-1)
                for s in range(0, flat.size, 1 << 22):
                    part = flat[s:s + (1 << 22)]
                    if not np.isfinite(part).all() or (part != np.round(part)).any():
                        raise ValueError(
                            f"{name} must hold class labels; it has non-integer values "
                            "(continuous targets are not segmentation labels)."
                        )
    return masks


def unique_labels(masks):
    """Sorted unique label values over all masks, without a full-size sort for
    small integer dtypes."""
    arrs = masks if isinstance(masks, list) else [masks]
    found = []
    for a in arrs:
        flat = a.reshape(-1)
        chunk = 1 << 22  # bincount and unique make temporaries of a chunk only
        if a.dtype == bool or a.dtype == np.uint8:
            counts = np.zeros(256, dtype=np.int64)
            for s in range(0, flat.size, chunk):
                counts += np.bincount(flat[s:s + chunk].view(np.uint8), minlength=256)
            found.append(np.flatnonzero(counts).astype(a.dtype))
        else:
            found.extend(np.unique(flat[s:s + chunk]) for s in range(0, flat.size, chunk))
    values = np.unique(np.concatenate(found))
    dtype = arrs[0].dtype
    return values.astype(dtype, copy=False)


def check_ignore_index(ignore_index):
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be None or an integer label value; got {ignore_index!r}.")
    return int(ignore_index)


class LabelCodec:
    """Maps label values to class indices (and back) for one fitted segmenter.

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
        self._table = None
        if self.classes.dtype == bool or self.classes.dtype == np.uint8:
            table = np.full(256, IGNORE, dtype=np.int64)
            table[self.classes.astype(np.int64)] = np.arange(len(self.classes))
            self._table = torch.from_numpy(table)
        self._device_cache = {}

    def _on(self, device, what):
        key = (str(device), what)
        if key not in self._device_cache:
            src = self._table if what == "table" else torch.as_tensor(
                self.classes.astype(np.float64 if self.classes.dtype.kind == "f" else np.int64))
            self._device_cache[key] = src.to(device)
        return self._device_cache[key]

    def encode(self, masks, device):
        """Encode a batch ``(N, H, W)`` of label values into an int64 tensor of
        class indices on ``device``; unknown values and the ignore label become
        :data:`IGNORE`."""
        masks = np.ascontiguousarray(masks)
        if not masks.flags.writeable:
            masks = masks.copy()  # torch.from_numpy warns on read-only memory
        if self._table is not None:
            raw = torch.from_numpy(masks.view(np.uint8)).to(device, non_blocking=True)
            return self._on(device, "table")[raw.long()]
        if masks.dtype.kind == "f":
            raw = torch.from_numpy(masks.astype(np.float64, copy=False)).to(device)
        else:
            raw = torch.from_numpy(masks.astype(np.int64, copy=False)).to(device)
        classes = self._on(device, "classes")
        idx = torch.searchsorted(classes, raw).clamp_(max=len(self.classes) - 1)
        known = classes[idx] == raw
        return torch.where(known, idx, torch.full_like(idx, IGNORE))

    def decode(self, indices):
        """Class indices (NumPy) back to label values in the dtype of y."""
        return self.classes[indices]


def to_tensor(batch, device):
    """Move a channels-last image batch to ``device`` and make it float32
    ``(N, C, H, W)`` there, scaled by :func:`intensity_scale`.

    Only this batch is converted; the caller's array is never changed.
    """
    batch = np.asarray(batch)
    scale = intensity_scale(batch.dtype)
    if batch.dtype == bool:
        batch = batch.view(np.uint8)
    elif batch.dtype not in _TORCH_NATIVE:
        batch = batch.astype(np.float32)  # uint16/uint32/uint64: this batch only
    if not batch.flags.c_contiguous:
        batch = np.ascontiguousarray(batch)
    if not batch.flags.writeable:
        batch = batch.copy()  # torch.from_numpy warns on read-only memory
    t = torch.from_numpy(batch).to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).to(torch.float32)
    if scale != 1.0:
        t = t * scale
    return t
