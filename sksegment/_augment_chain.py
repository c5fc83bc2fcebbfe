"""The device side of augmentation: chains of fitted ops, images with a chain
attached lazily, and the NumPy round trip behind ``sample()``.

Public through :mod:`sksegment.augmentation`.
"""

import math

import numpy as np
import torch
from sklearn.utils import check_random_state

from . import _augment_ops as _ops
from ._data import (
    IGNORE,
    LabelCodec,
    check_images,
    check_masks,
    intensity_scale,
    label_dtype,
    to_tensor,
    unique_labels,
)
from ._validation import check_random_state_arg, is_int, is_real

_BATCH = 32  # images per torch batch in sample() and materialisation


class AugmentationChain:
    """An ordered sequence of fitted augmentation ops, applied to device batches.

    Parameters
    ----------
    ops : sequence of ops, default=()
        Ops made by the augmenters (``aug._make_op()``). Build a chain from
        augmenters with :func:`~sksegment.augmentation.make_chain`.

    Attributes
    ----------
    ops : tuple
        The ops, in the order they are applied.

    Examples
    --------
    >>> import torch
    >>> from sksegment.augmentation import RandomFlip, GaussianNoise, make_chain
    >>> chain = make_chain([RandomFlip(p=0.5), GaussianNoise(std=0.1)])
    >>> x = torch.rand(4, 1, 8, 8)
    >>> y = torch.zeros(4, 8, 8, dtype=torch.int64)
    >>> g = torch.Generator().manual_seed(0)
    >>> xa, ya = chain(x, y, generator=g)
    >>> xa.shape, ya.shape
    (torch.Size([4, 1, 8, 8]), torch.Size([4, 8, 8]))
    >>> chain(x, None, training=False)[0] is x  # no deterministic op: identity
    True
    """

    def __init__(self, ops=()):
        if isinstance(ops, _ops.Op):
            ops = (ops,)
        try:
            ops = tuple(ops)
        except TypeError:
            raise TypeError(f"ops must be a sequence of augmentation ops; got {ops!r}.") from None
        for i, op in enumerate(ops):
            if not isinstance(op, _ops.Op):
                raise TypeError(
                    f"ops[{i}] is {op!r}, not an augmentation op; build chains from "
                    "augmenters with sksegment.augmentation.make_chain."
                )
        self.ops = ops

    def __call__(self, x, y=None, *, generator=None, training=True):
        """Apply the ops in order to a device batch.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W), floating point
        y : torch.Tensor of shape (N, H, W), integer, or None
            Class indices with IGNORE for unlabelled pixels.
        generator : torch.Generator or None, default=None
            Source of all random draws (torch's default generator if None).
        training : bool, default=True
            If False only deterministic ops apply (predict time).

        Returns
        -------
        x, y : torch.Tensor
            New tensors (the inputs are never modified); ``y`` is None if it
            was. Crops change H and W.
        """
        _check_images_tensor(x)
        if y is not None:
            y = _checked_masks_tensor(y, x)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}.")
        for op in self.ops:
            if training or op.deterministic:
                x, y = op(x, y, generator)
        return x, y

    def deterministic(self):
        """The chain of the deterministic ops only (what applies at predict).

        Returns
        -------
        chain : AugmentationChain

        Examples
        --------
        >>> import numpy as np
        >>> from sksegment.augmentation import IntensityStandardizer, RandomFlip, make_chain
        >>> X = np.random.default_rng(0).random((3, 8, 8))
        >>> chain = make_chain([RandomFlip(), IntensityStandardizer()], X=X)
        >>> len(chain), len(chain.deterministic())
        (2, 1)
        """
        return AugmentationChain(op for op in self.ops if op.deterministic)

    def sample(self, X, y=None, random_state=None, *, mask_fill=0):
        """Augment NumPy images (and masks) with this chain; see
        :meth:`RandomFlip.sample`.

        Examples
        --------
        >>> import numpy as np
        >>> from sksegment.augmentation import RandomRotate90, make_chain
        >>> X = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
        >>> Xa, _ = make_chain(RandomRotate90(p=1.0)).sample(X, random_state=0)
        >>> Xa.dtype, Xa.shape, sorted(Xa.ravel()) == sorted(X.ravel())
        (dtype('uint8'), (1, 4, 4), True)
        """
        return sample_images(self, X, y, random_state, mask_fill)

    def __len__(self):
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return AugmentationChain(self.ops[index])
        return self.ops[index]

    def __add__(self, other):
        if isinstance(other, _ops.Op):
            return AugmentationChain(self.ops + (other,))
        if isinstance(other, AugmentationChain):
            return AugmentationChain(self.ops + other.ops)
        return NotImplemented

    def __eq__(self, other):
        return isinstance(other, AugmentationChain) and self.ops == other.ops

    def __hash__(self):
        return hash(self.ops)

    def __repr__(self):
        return f"AugmentationChain([{', '.join(map(repr, self.ops))}])"


def _check_images_tensor(x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W); got {type(x)}.")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}.")


def _checked_masks_tensor(y, x):
    """``y`` checked against the batch ``x``, as int64."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of shape (N, H, W) or None; got {type(y)}.")
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if tuple(y.shape) != expected:
        raise ValueError(f"y must have shape (N, H, W) = {expected}; got {tuple(y.shape)}.")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class indices; got {y.dtype}.")
    return y if y.dtype == torch.int64 else y.long()


class AugmentedImages:
    """Images with augmentations attached lazily (nothing is computed or copied).

    Returned by the augmenters' ``fit_transform`` (and by
    :meth:`IntensityStandardizer.transform`). Segmenters unwrap it with
    :func:`unwrap` and apply :attr:`chain` to each training batch on the
    device.

    Parameters
    ----------
    images : ndarray of shape (n, H, W) or (n, H, W, C), or list of arrays
        The images, kept as given (same object, never copied or modified).
    chain : AugmentationChain, default=None
        The ops to apply (empty if None).

    Attributes
    ----------
    images : ndarray or list
        The original images, untouched.
    chain : AugmentationChain
        The fitted ops, in order.

    Notes
    -----
    ``np.asarray(augmented)`` materialises the images with the deterministic
    ops applied (the ones that apply at predict time). Without deterministic
    ops it returns the stored images as they are (same dtype and layout, no
    copy for an array). With them it returns a new float32 array in the
    stored layout ((n, H, W) stays (n, H, W); channels last otherwise) and in
    :func:`~sksegment._data.to_tensor` units.

    Indexing with a slice, an integer array or a boolean mask returns a new
    :class:`AugmentedImages` over the selected images with the same chain (so
    scikit-learn's cross-validation can split it); an integer returns that
    image materialised. Instances pickle and hash with :func:`joblib.hash`,
    so ``Pipeline(memory=...)`` caches steps that produce or receive them
    (a cached result holds its own copy of the images).

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.augmentation import RandomFlip, unwrap
    >>> X = np.zeros((5, 16, 16), dtype=np.uint8)
    >>> Xa = RandomFlip().fit_transform(X)
    >>> Xa.images is X, len(Xa), Xa.shape
    (True, 5, (5, 16, 16))
    >>> images, chain = unwrap(Xa)
    >>> chain
    AugmentationChain([RandomFlip(axes=('horizontal', 'vertical'), p=0.5)])
    >>> np.asarray(Xa) is X  # only random ops: the images themselves
    True
    """

    def __init__(self, images, chain=None):
        if isinstance(images, AugmentedImages):
            raise TypeError("images is already an AugmentedImages; add ops to its chain "
                            "instead of nesting wrappers.")
        if chain is None:
            chain = AugmentationChain()
        if not isinstance(chain, AugmentationChain):
            raise TypeError(f"chain must be an AugmentationChain or None; got {type(chain)}.")
        self.images = images
        self.chain = chain

    def __len__(self):
        return len(self.images)

    @property
    def shape(self):
        """Shape of the stored image array (only when the images are one array)."""
        if isinstance(self.images, np.ndarray):
            return self.images.shape
        raise AttributeError("shape is only defined when the images are one NumPy array; "
                             "these are a list of images.")

    def __array__(self, dtype=None, copy=None):
        det = self.chain.deterministic()
        if len(det) == 0:
            if isinstance(self.images, np.ndarray):
                return np.array(self.images, dtype=dtype, copy=copy)
            return np.array(_stack(self.images), dtype=dtype)
        if copy is False:
            raise ValueError("materialising AugmentedImages with deterministic ops needs a copy.")
        imgs = check_images(self.images, "images")
        grayscale = _is_grayscale(self.images)
        if isinstance(imgs, list) and len({img.shape for img in imgs}) > 1:
            raise ValueError("the images have different sizes and cannot form one array.")
        batches = []
        for batch in _batches(imgs):
            xt, _ = det(to_tensor(batch, "cpu"), None, training=False)
            batches.append(xt.permute(0, 2, 3, 1).numpy())
        out = np.concatenate(batches)
        if grayscale and out.shape[-1] == 1:
            out = out[..., 0]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            else:
                raise IndexError("AugmentedImages selects whole images only: "
                                 "use one index, slice or index array.")
        if is_int(key):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} is out of range for {n} images.")
            return np.asarray(self[[int(key) % n]])[0]
        if isinstance(self.images, np.ndarray):
            sub = self.images[key]
            if sub.ndim != self.images.ndim:
                raise IndexError("AugmentedImages selects whole images only.")
        elif isinstance(key, slice):
            sub = list(self.images[key])
        else:
            idx = np.asarray(key)
            n = len(self.images)
            if idx.dtype == bool:
                if idx.shape != (n,):
                    raise IndexError(f"a boolean index must have one entry per image ({n}); "
                                     f"got shape {idx.shape}.")
                idx = np.flatnonzero(idx)
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise IndexError("AugmentedImages takes an index, a slice, or a 1-D array of "
                                 f"integer or boolean indices; got {key!r}.")
            if idx.size and not (-n <= idx.min() and idx.max() < n):
                raise IndexError(f"index {int(idx[(idx < -n) | (idx >= n)][0])} is out of "
                                 f"range for {n} images.")
            sub = [self.images[int(i)] for i in idx]
        return AugmentedImages(sub, self.chain)

    def __repr__(self):
        if isinstance(self.images, np.ndarray):
            what = f"array of shape {self.images.shape}, dtype {self.images.dtype}"
        else:
            what = f"list of {len(self.images)} images"
        return f"AugmentedImages({what}, chain={self.chain!r})"


def unwrap(X):
    """Split possibly augmented images into ``(images, chain)``.

    Parameters
    ----------
    X : AugmentedImages, ndarray or list of arrays

    Returns
    -------
    images : ndarray or list
        The stored images for an :class:`AugmentedImages`, otherwise ``X``
        itself.
    chain : AugmentationChain
        Its chain, or an empty chain.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.augmentation import unwrap
    >>> X = np.zeros((2, 4, 4))
    >>> images, chain = unwrap(X)
    >>> images is X, len(chain)
    (True, 0)
    """
    if isinstance(X, AugmentedImages):
        return X.images, X.chain
    return X, AugmentationChain()


# ---------------------------------------------------------------------------
# NumPy round trip for sample()
# ---------------------------------------------------------------------------

def _is_grayscale(images):
    if isinstance(images, np.ndarray):
        return images.ndim == 3
    return all(np.ndim(img) == 2 for img in images)


def _stack(images):
    arrays = [np.asarray(img) for img in images]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("the images have different sizes and cannot form one array; "
                         "select or resize them first.")
    return np.stack(arrays)


def _batches(imgs):
    """Batches of a checked image set: slices of an array, one image of a list."""
    if isinstance(imgs, list):
        for img in imgs:
            yield img[None]
    else:
        for start in range(0, len(imgs), _BATCH):
            yield imgs[start:start + _BATCH]


def _restore_images(arr, dtype):
    """float32 channels-last (to_tensor units) back to ``dtype``."""
    if dtype == bool:
        return arr >= 0.5
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        values = np.rint(arr.astype(np.float64) / intensity_scale(dtype))
        return np.clip(values, info.min, info.max).astype(dtype)
    return arr.astype(dtype, copy=False)


def _check_mask_fill(mask_fill, dtype):
    """The label of pixels from outside the image, as a value of the masks'
    ``dtype`` (a bool counts as 0 or 1)."""
    if isinstance(mask_fill, (bool, np.bool_)):
        mask_fill = int(mask_fill)
    if not is_real(mask_fill):
        raise TypeError(f"mask_fill must be a label value (a number); got {mask_fill!r}.")
    if not math.isfinite(mask_fill):
        raise ValueError(f"mask_fill must be a finite label value; got {mask_fill!r}.")
    stored = np.array(mask_fill).astype(dtype)
    if stored != mask_fill:
        raise ValueError(f"mask_fill={mask_fill!r} cannot be stored in the masks' dtype {dtype}.")
    return stored


def sample_images(chain, X, y, random_state, mask_fill):
    """Apply ``chain`` (after the chain attached to ``X``) to NumPy images and
    masks, batch by batch on the CPU; returns copies in the input's dtype and
    layout (see :meth:`sksegment.augmentation.RandomFlip.sample`)."""

    check_random_state_arg(random_state)
    images, pre = unwrap(X)
    chain = pre + chain
    imgs = check_images(images, "X")
    masks = None if y is None else check_masks(y, imgs, "y")
    codec = fill = None
    if masks is not None:
        for dtype in ({m.dtype for m in masks} if isinstance(masks, list) else {masks.dtype}):
            _check_mask_fill(mask_fill, dtype)
        fill = _check_mask_fill(mask_fill, label_dtype(masks))
        codec = LabelCodec(unique_labels(masks))
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    keeps_range = all(op.keeps_range for op in chain.ops)
    is_list = isinstance(imgs, list)
    xs, ys = [], []
    start = 0
    for batch in _batches(imgs):
        stop = start + len(batch)
        xt = to_tensor(batch, "cpu")
        yt = None
        if masks is not None:
            mb = masks[start][None] if is_list else masks[start:stop]
            yt = codec.encode(mb, "cpu")
        xt, yt = chain(xt, yt, generator=generator, training=True)
        out = xt.permute(0, 2, 3, 1).numpy()
        dtype = (batch.dtype if keeps_range else np.dtype(np.float32))
        xs.append(_restore_images(out, dtype))
        if yt is not None:
            idx = yt.numpy()
            ignored = idx == IGNORE
            labels = codec.decode(np.where(ignored, 0, idx))
            labels[ignored] = fill
            ys.append(labels)
        start = stop
    if is_list:
        X_out = [a[0, ..., 0] if np.ndim(img) == 2 and a.shape[-1] == 1 else a[0]
                 for a, img in zip(xs, images)]
        # an image no op changed may still be the caller's memory: copy it
        X_out = [a.copy() if isinstance(img, np.ndarray) and np.shares_memory(a, img) else a
                 for a, img in zip(X_out, images)]
        # each mask back in its own dtype (it holds its own labels and the fill)
        y_out = None if masks is None else [m[0].astype(mk.dtype, copy=False)
                                            for m, mk in zip(ys, masks)]
    else:
        X_out = np.concatenate(xs)
        if _is_grayscale(images) and X_out.shape[-1] == 1:
            X_out = X_out[..., 0]
        y_out = None if masks is None else np.concatenate(ys)
    return X_out, y_out
