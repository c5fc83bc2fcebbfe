"""Data augmentation for segmentation, as scikit-learn transformers that run
batched in torch on the training device.

Each augmenter is a scikit-learn estimator with a per-sample probability ``p``.
Put it in a :class:`~sklearn.pipeline.Pipeline` before a segmenter, or pass it
(or a list of them) as the segmenter's ``augment=`` parameter:

- ``fit_transform(X)`` does no work on the images. It returns an
  :class:`AugmentedImages`: the user's images, untouched and not copied, plus
  an :class:`AugmentationChain` of fitted ops. The segmenter unwraps it
  (:func:`unwrap`) and calls the chain on every training batch, on the device,
  with a fresh draw each time.
- ``transform(X)`` (predict time) returns ``X`` itself for the random
  augmenters. :class:`IntensityStandardizer`, the one deterministic step,
  attaches itself lazily as in ``fit_transform`` (the segmenter applies it to
  each prediction batch).
- ``sample(X, y, random_state)`` augments NumPy images directly and returns
  copies in the input's dtype and layout, for looking at the augmentations or
  for offline augmentation. :class:`AugmentationSampler` wraps any augmenter
  as an imbalanced-learn sampler (``fit_resample``).

Geometric augmenters move image and mask with one transform per sample: the
image is resampled bilinearly, the mask with nearest neighbour, so no new
label value appears. Mask pixels brought in from outside the image are
:data:`~sksegment._data.IGNORE` inside torch code (they count in no loss) and
``mask_fill`` in :meth:`~RandomFlip.sample` output; image pixels there are 0
(``padding_mode="zeros"``), or as chosen with ``padding_mode``. Photometric
augmenters leave masks untouched. Intensities are in the units that
:func:`sksegment._data.to_tensor` produces: uint8 images divided by 255,
uint16 by 65535, floats as given.

Randomness comes from a :class:`torch.Generator`. Draws happen on the
generator's device and are moved to the batch's device, so a CPU generator
works for a CUDA batch; a generator on the batch's device is faster.
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _augment_ops as _ops
from ._data import (
    IGNORE,
    LabelCodec,
    check_images,
    check_masks,
    intensity_scale,
    to_tensor,
    unique_labels,
)
from ._data import n_channels as _n_channels

__all__ = [
    "AugmentationChain",
    "AugmentationSampler",
    "AugmentedImages",
    "ColorJitter",
    "ElasticDeformation",
    "GaussianBlur",
    "GaussianNoise",
    "IntensityStandardizer",
    "RandomAffine",
    "RandomBrightnessContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomGamma",
    "RandomResizedCrop",
    "RandomRotate90",
    "make_chain",
    "unwrap",
]

_BATCH = 32  # images per torch batch in sample() and materialisation
_PADDING_MODES = ("zeros", "border", "reflection")


# ---------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------

def _number(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    return value


def _check_p(p):
    p = _number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1]; got {p!r}.")
    return p


def _range(value, name, *, number=None, low=None, high=None, strict_low=False):
    """A ``(low, high)`` pair from ``value``.

    A single non-negative number ``v`` becomes ``number(v)`` (for example
    ``(-v, v)``); a pair must be ordered and lie within ``[low, high]``
    (``low`` excluded if ``strict_low``).
    """
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if number is None:
            raise TypeError(f"{name} must be a (low, high) pair; got {value!r}.")
        v = _number(value, name)
        if v < 0:
            raise ValueError(f"{name} must be non-negative when given as one number; got {v!r}.")
        pair = number(v)
    else:
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is None or len(items) != 2:
            what = "a non-negative number or a (low, high) pair" if number else "a (low, high) pair"
            raise TypeError(f"{name} must be {what}; got {value!r}.")
        pair = (_number(items[0], name), _number(items[1], name))
        if pair[0] > pair[1]:
            raise ValueError(f"{name} must be an increasing (low, high) pair; got {value!r}.")
    pair = (float(pair[0]) + 0.0, float(pair[1]) + 0.0)  # no negative zero
    if low is not None and (pair[0] < low or (strict_low and pair[0] == low)):
        bound = ">" if strict_low else ">="
        raise ValueError(f"{name} must lie in a range {bound} {low}; got {value!r}.")
    if high is not None and pair[1] > high:
        raise ValueError(f"{name} must lie in a range <= {high}; got {value!r}.")
    return pair


def _check_size(size):
    if isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
        size = (size, size)
    try:
        items = tuple(size)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(isinstance(v, numbers.Integral)
                                  and not isinstance(v, (bool, np.bool_)) for v in items):
        raise TypeError(f"size must be an int or a (height, width) pair of ints; got {size!r}.")
    if min(items) < 1:
        raise ValueError(f"size must be positive; got {size!r}.")
    return int(items[0]), int(items[1])


def _check_padding_mode(mode):
    if mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}; got {mode!r}.")
    return mode


def _symmetric(v):
    return (-v, v)


def _around_one(v):
    return (max(0.0, 1.0 - v), 1.0 + v)


# ---------------------------------------------------------------------------
# Chain, lazy images, unwrap, make_chain
# ---------------------------------------------------------------------------

class AugmentationChain:
    """An ordered sequence of fitted augmentation ops, applied to device batches.

    Parameters
    ----------
    ops : sequence of ops, default=()
        Ops made by the augmenters (``aug._make_op()``). Build a chain from
        augmenters with :func:`make_chain`.

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
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W); got {type(x)}.")
        if x.dim() != 4:
            raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}.")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor; got {x.dtype}.")
        if y is not None:
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"y must be a torch.Tensor of shape (N, H, W) or None; "
                                f"got {type(y)}.")
            if tuple(y.shape) != (x.shape[0],) + tuple(x.shape[2:]):
                raise ValueError(f"y must have shape (N, H, W) = "
                                 f"{(x.shape[0],) + tuple(x.shape[2:])}; got {tuple(y.shape)}.")
            if y.is_floating_point() or y.dtype == torch.bool:
                raise TypeError(f"y must hold integer class indices; got {y.dtype}.")
            if y.dtype != torch.int64:
                y = y.long()
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
        return _sample(self, X, y, random_state, mask_fill)

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
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
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
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
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


def _flatten(augment, where="augment"):
    if augment is None:
        return []
    if isinstance(augment, (_Augmenter, AugmentationChain)):
        return [augment]
    if isinstance(augment, Pipeline):
        steps = []
        for name, step in augment.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if not isinstance(step, (_Augmenter, Pipeline)):
                raise TypeError(
                    f"{where} is a Pipeline whose step {name!r} is {step!r}; a Pipeline given "
                    "as augment may only contain sksegment.augmentation augmenters."
                )
            steps.extend(_flatten(step, where))
        return steps
    if isinstance(augment, (list, tuple)):
        steps = []
        for i, item in enumerate(augment):
            if not isinstance(item, (_Augmenter, AugmentationChain, Pipeline)):
                raise TypeError(
                    f"{where}[{i}] is {item!r}; augment must hold sksegment.augmentation "
                    "augmenters (for example RandomFlip(), RandomAffine())."
                )
            steps.extend(_flatten(item, f"{where}[{i}]"))
        return steps
    raise TypeError(
        f"augment must be None, an augmenter from sksegment.augmentation, a list or tuple "
        f"of augmenters, or a Pipeline made only of augmenters; got {augment!r}."
    )


def make_chain(augment, *, X=None):
    """Build an :class:`AugmentationChain` from a segmenter's ``augment=``.

    Parameters are validated here. The user's augmenters are never modified:
    the chain holds ops made from validated copies.

    Parameters
    ----------
    augment : None, augmenter, list or tuple of augmenters, Pipeline of
        augmenters, or AugmentationChain
    X : ndarray, list of arrays or AugmentedImages, default=None
        Training images, used only to fit an :class:`IntensityStandardizer`
        that is not fitted yet (after the deterministic ops before it). A
        fitted standardiser keeps its statistics.

    Returns
    -------
    chain : AugmentationChain
        Empty for ``augment=None``.

    Raises
    ------
    TypeError
        If ``augment`` holds anything but augmenters.
    ValueError
        If a parameter is invalid, or an unfitted IntensityStandardizer comes
        without ``X``.

    Examples
    --------
    >>> from sksegment.augmentation import RandomFlip, RandomAffine, make_chain
    >>> chain = make_chain([RandomFlip(axes="horizontal"), RandomAffine(degrees=10, p=1.0)])
    >>> chain[0]
    RandomFlip(axes=('horizontal',), p=0.5)
    >>> chain[1].degrees, chain[1].p
    ((-10.0, 10.0), 1.0)
    >>> len(make_chain(None))
    0
    """
    pending = []
    for step in _flatten(augment):
        if isinstance(step, AugmentationChain):
            pending.extend(step.ops)
        elif isinstance(step, IntensityStandardizer):
            if hasattr(step, "op_"):
                pending.append(step.op_)
            elif X is None:
                raise ValueError(
                    "augment contains an IntensityStandardizer that is not fitted; fit it "
                    "on the training images first, or pass them as make_chain(augment, X=...)."
                )
            else:
                images, pre = unwrap(X)
                target = AugmentedImages(images, pre + AugmentationChain(pending))
                pending.append(clone(step).fit(target).op_)
        else:
            pending.append(clone(step)._make_op())
    return AugmentationChain(pending)


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
    if isinstance(mask_fill, (bool, np.bool_)):
        mask_fill = int(mask_fill)
    if not isinstance(mask_fill, numbers.Real):
        raise TypeError(f"mask_fill must be a label value (a number); got {mask_fill!r}.")
    stored = np.array(mask_fill).astype(dtype)
    if stored != mask_fill:
        raise ValueError(f"mask_fill={mask_fill!r} cannot be stored in the masks' dtype {dtype}.")
    return stored


def _sample(chain, X, y, random_state, mask_fill):
    images, pre = unwrap(X)
    chain = pre + chain
    imgs = check_images(images, "X")
    masks = None if y is None else check_masks(y, imgs, "y")
    codec = fill = None
    if masks is not None:
        mdtype = masks[0].dtype if isinstance(masks, list) else masks.dtype
        fill = _check_mask_fill(mask_fill, mdtype)
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
        y_out = None if masks is None else [m[0] for m in ys]
    else:
        X_out = np.concatenate(xs)
        if _is_grayscale(images) and X_out.shape[-1] == 1:
            X_out = X_out[..., 0]
        y_out = None if masks is None else np.concatenate(ys)
    return X_out, y_out


# ---------------------------------------------------------------------------
# Augmenters
# ---------------------------------------------------------------------------

class _Augmenter(TransformerMixin, BaseEstimator):
    """Shared behaviour: lazy fit_transform, identity transform, sample()."""

    def _make_op(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_channels(self, imgs):
        """Hook for augmenters that need a given channel count."""

    def fit(self, X, y=None):
        """Validate the parameters (and ``X``); nothing is learned.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), list of arrays, or
            AugmentedImages
        y : ignored

        Returns
        -------
        self
        """
        op = self._make_op()
        self._check_channels(check_images(unwrap(X)[0], "X"))
        self.op_ = op
        return self

    def fit_transform(self, X, y=None):
        """Attach this augmenter to ``X`` lazily.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), list of arrays, or
            AugmentedImages
        y : ignored (masks are augmented with the images, batch by batch)

        Returns
        -------
        X_aug : AugmentedImages
            ``X``'s images (the same object, not copied) with this op appended
            to ``X``'s chain (``X`` itself is not changed).
        """
        self.fit(X, y)
        images, chain = unwrap(X)
        return AugmentedImages(images, chain + self.op_)

    def transform(self, X):
        """Return ``X`` unchanged: random augmentation applies only in training.

        Parameters
        ----------
        X : array-like or AugmentedImages

        Returns
        -------
        X : the same object
        """
        check_is_fitted(self, "op_")
        return X

    def sample(self, X, y=None, random_state=None, *, mask_fill=0):
        """Augment NumPy images (and masks) now and return copies.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), list of arrays, or
            AugmentedImages (its chain applies first)
        y : ndarray of shape (n, H, W), list of arrays, or None
            Label images.
        random_state : int, RandomState instance or None, default=None
            Seeds the torch generator; a fixed value gives the same result.
        mask_fill : label value, default=0
            Label given to mask pixels brought in from outside the image.

        Returns
        -------
        X_aug : ndarray or list
            Same layout and dtype as ``X`` (integers rounded and clipped,
            bool thresholded at 0.5), except that :class:`IntensityStandardizer`
            makes float32. Crops give their ``size``.
        y_aug : ndarray, list or None
            The original label values in ``y``'s dtype, plus ``mask_fill``.
        """
        op = self._make_op()
        images, _ = unwrap(X)
        self._check_channels(check_images(images, "X"))
        return _sample(AugmentationChain([op]), X, y, random_state, mask_fill)


_SAMPLE_EXAMPLE = """
    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.augmentation import {name}
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(4, 16, 16{channels}), dtype=np.uint8)
    >>> y = (X{first} > 127).astype(np.uint8)
    >>> aug = {call}
    >>> X_aug, y_aug = aug.sample(X, y, random_state=0)
    >>> X_aug.shape, X_aug.dtype, y_aug.dtype
    ({shape}, dtype('uint8'), dtype('uint8'))
    >>> lazy = aug.fit_transform(X)  # for a segmenter: applied per batch on the device
    >>> lazy.images is X
    True
"""


def _doc_example(name, call, channels="", shape="(4, 16, 16)"):
    return _SAMPLE_EXAMPLE.format(
        name=name, call=call, channels=", 3" if channels else "",
        first="[..., 0]" if channels else "", shape=shape)


class RandomFlip(_Augmenter):
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
        if not axes or len(set(axes)) != len(axes) or not set(axes) <= {"horizontal", "vertical"}:
            raise ValueError(f"axes must be 'horizontal', 'vertical' or a tuple of distinct "
                             f"ones of them; got {self.axes!r}.")
        return _ops.FlipOp(axes=axes, p=_check_p(self.p))


class RandomRotate90(_Augmenter):
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
        return _ops.Rot90Op(p=_check_p(self.p))


class RandomAffine(_Augmenter):
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
        degrees = _range(self.degrees, "degrees", number=_symmetric)
        scale = (1.0, 1.0) if self.scale is None else _range(self.scale, "scale", low=0,
                                                             strict_low=True)
        translate = (0.0, 0.0) if self.translate is None else self.translate
        if isinstance(translate, numbers.Real):
            translate = (translate, translate)
        try:
            translate = tuple(_number(v, "translate") for v in translate)
        except TypeError:
            raise TypeError(f"translate must be a number or an (fx, fy) pair; "
                            f"got {self.translate!r}.") from None
        if len(translate) != 2 or not all(0 <= v <= 1 for v in translate):
            raise ValueError(f"translate must be an (fx, fy) pair of fractions in [0, 1]; "
                             f"got {self.translate!r}.")
        shear = _range(self.shear, "shear", number=_symmetric)
        if not -90 < shear[0] <= shear[1] < 90:
            raise ValueError(f"shear must lie within (-90, 90) degrees; got {self.shear!r}.")
        return _ops.AffineOp(degrees=degrees, scale=scale, translate=translate, shear=shear,
                            p=_check_p(self.p), padding_mode=_check_padding_mode(self.padding_mode))


class RandomCrop(_Augmenter):
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
        return _ops.CropOp(size=_check_size(self.size), p=_check_p(self.p))


class RandomResizedCrop(_Augmenter):
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
            size=_check_size(self.size),
            scale=_range(self.scale, "scale", low=0, high=1, strict_low=True),
            ratio=_range(self.ratio, "ratio", low=0, strict_low=True),
            p=_check_p(self.p))


class ElasticDeformation(_Augmenter):
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
        alpha = _number(self.alpha, "alpha")
        sigma = _number(self.sigma, "sigma")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha!r}.")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0; got {sigma!r}.")
        return _ops.ElasticOp(alpha=alpha, sigma=sigma, p=_check_p(self.p),
                             padding_mode=_check_padding_mode(self.padding_mode))


class RandomBrightnessContrast(_Augmenter):
    """Random brightness shift and contrast change; masks untouched.

    ``x -> (x - mean) * contrast + mean + brightness`` with ``mean`` the
    sample's mean intensity. No clipping is done on the device; :meth:`sample`
    clips integer images to their dtype's range.

    Parameters
    ----------
    brightness : float or (low, high), default=0.2
        Additive shift (in to_tensor units, 1 = white for uint8), uniform in
        ``(-brightness, brightness)`` or ``(low, high)``.
    contrast : float or (low, high), default=0.2
        Contrast factor, uniform in ``(max(0, 1 - contrast), 1 + contrast)``
        or in ``(low, high)`` with ``low >= 0``.
    p : float in [0, 1], default=0.5
    """

    def __init__(self, brightness=0.2, contrast=0.2, p=0.5):
        self.brightness = brightness
        self.contrast = contrast
        self.p = p

    def _make_op(self):
        return _ops.BrightnessContrastOp(
            brightness=_range(self.brightness, "brightness", number=_symmetric),
            contrast=_range(self.contrast, "contrast", number=_around_one, low=0),
            p=_check_p(self.p))


class RandomGamma(_Augmenter):
    """Random gamma correction; masks untouched.

    Intensities are scaled to [0, 1] with the sample's own minimum and
    maximum, raised to ``gamma`` and scaled back, so any intensity range
    works (for images that span [0, 1] this is ``x ** gamma``).

    Parameters
    ----------
    gamma : (low, high), default=(0.7, 1.5)
        Exponent, log-uniform in ``(low, high)``, ``0 < low <= high``.
    p : float in [0, 1], default=0.5
    """

    def __init__(self, gamma=(0.7, 1.5), p=0.5):
        self.gamma = gamma
        self.p = p

    def _make_op(self):
        return _ops.GammaOp(gamma=_range(self.gamma, "gamma", low=0, strict_low=True),
                           p=_check_p(self.p))


class GaussianNoise(_Augmenter):
    """Additive Gaussian noise; masks untouched.

    Parameters
    ----------
    std : float or (low, high), default=0.05
        Standard deviation of the noise (to_tensor units), fixed or uniform in
        ``(low, high)`` per sample.
    p : float in [0, 1], default=0.5
    """

    def __init__(self, std=0.05, p=0.5):
        self.std = std
        self.p = p

    def _make_op(self):
        return _ops.NoiseOp(std=_range(self.std, "std", number=lambda v: (v, v), low=0),
                           p=_check_p(self.p))


class GaussianBlur(_Augmenter):
    """Gaussian blur with a random width; masks untouched.

    Parameters
    ----------
    sigma : float or (low, high), default=(0.1, 1.5)
        Standard deviation of the kernel in pixels, fixed or uniform in
        ``(low, high)`` per sample, ``low >= 0``.
    p : float in [0, 1], default=0.5
    """

    def __init__(self, sigma=(0.1, 1.5), p=0.5):
        self.sigma = sigma
        self.p = p

    def _make_op(self):
        return _ops.BlurOp(sigma=_range(self.sigma, "sigma", number=lambda v: (v, v), low=0),
                          p=_check_p(self.p))


class ColorJitter(_Augmenter):
    """Random hue rotation and saturation change of RGB images; masks untouched.

    Works in the YIQ colour space: hue turns the chroma plane, saturation
    scales it, luma is kept. Needs images with 3 channels.

    Parameters
    ----------
    hue : float in [0, 0.5], default=0.05
        Hue turn, uniform in ``(-hue, hue)`` full turns.
    saturation : float or (low, high), default=0.2
        Saturation factor, uniform in ``(max(0, 1 - saturation), 1 + saturation)``
        or in ``(low, high)`` with ``low >= 0``.
    p : float in [0, 1], default=0.5
    """

    def __init__(self, hue=0.05, saturation=0.2, p=0.5):
        self.hue = hue
        self.saturation = saturation
        self.p = p

    def _check_channels(self, imgs):
        c = _n_channels(imgs)
        if c != 3:
            raise ValueError(f"ColorJitter needs colour images: X must have 3 channels "
                             f"(n, H, W, 3); got {c} channel(s).")

    def _make_op(self):
        hue = _number(self.hue, "hue")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5] (a fraction of a full turn); got {hue!r}.")
        return _ops.ColorJitterOp(
            hue=hue, saturation=_range(self.saturation, "saturation", number=_around_one, low=0),
            p=_check_p(self.p))


class IntensityStandardizer(_Augmenter):
    """Standardise intensities with the training images' mean and standard
    deviation (deterministic: applies at training and predict time).

    ``fit`` computes the statistics in float64, a few images at a time (no
    float copy of the data set), in :func:`~sksegment._data.to_tensor` units
    (uint8 divided by 255, ...), after any deterministic op already attached
    to ``X``. ``fit_transform`` and ``transform`` attach the standardisation
    lazily (an :class:`AugmentedImages`); the segmenter applies it per batch.

    Parameters
    ----------
    per_channel : bool, default=True
        One mean and standard deviation per channel, or one for all.

    Attributes
    ----------
    mean_ : ndarray of shape (C,) or (1,)
    scale_ : ndarray of shape (C,) or (1,)
        Standard deviation (population); 1 where it is 0.
    n_channels_ : int
        Channels of the training images.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.augmentation import IntensityStandardizer
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    >>> std = IntensityStandardizer().fit(X)
    >>> bool(np.allclose(std.mean_, (X / 255).mean(axis=(0, 1, 2))))
    True
    >>> Z = np.asarray(std.transform(X))
    >>> Z.dtype, bool(np.allclose(Z.mean(axis=(0, 1, 2)), 0, atol=1e-5))
    (dtype('float32'), True)
    """

    def __init__(self, per_channel=True):
        self.per_channel = per_channel

    def _make_op(self):
        check_is_fitted(self, ["mean_", "scale_"])
        return _ops.StandardizeOp(mean=self.mean_.copy(), scale=self.scale_.copy())

    def fit(self, X, y=None):
        """Compute the mean and standard deviation of the training images.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), list of arrays, or
            AugmentedImages
        y : ignored

        Returns
        -------
        self
        """
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise TypeError(f"per_channel must be True or False; got {self.per_channel!r}.")
        images, pre = unwrap(X)
        imgs = check_images(images, "X")
        det = pre.deterministic()
        c = _n_channels(imgs)
        k = c if self.per_channel else 1
        count, mean, m2 = 0, np.zeros(k), np.zeros(k)
        for batch in _chunks(imgs):
            if len(det):
                xt, _ = det(to_tensor(batch, "cpu"), None, training=False)
                values = xt.double().transpose(0, 1).reshape(xt.shape[1], -1).numpy()
            else:
                values = (batch.astype(np.float64) * intensity_scale(batch.dtype))
                values = values.reshape(-1, c).T
            values = values.reshape(k, -1)
            m = values.shape[1]
            bmean = values.mean(axis=1)
            bm2 = ((values - bmean[:, None]) ** 2).sum(axis=1)
            delta = bmean - mean
            total = count + m
            mean = mean + delta * (m / total)
            m2 = m2 + bm2 + delta ** 2 * (count * m / total)
            count = total
        std = np.sqrt(m2 / count)
        tiny = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        self.mean_ = mean
        self.scale_ = np.where(tiny, 1.0, std)
        self.n_channels_ = c
        self.op_ = self._make_op()
        return self

    def transform(self, X):
        """Attach the standardisation to ``X`` lazily.

        Parameters
        ----------
        X : ndarray, list of arrays, or AugmentedImages

        Returns
        -------
        X_std : AugmentedImages
            ``np.asarray(X_std)`` gives the standardised float32 images.
        """
        check_is_fitted(self, "op_")
        images, chain = unwrap(X)
        c = _n_channels(check_images(images, "X"))
        if c != self.n_channels_:
            raise ValueError(f"X has {c} channels but IntensityStandardizer was fitted on "
                             f"{self.n_channels_}.")
        return AugmentedImages(images, chain + self.op_)

    def sample(self, X, y=None, random_state=None, *, mask_fill=0):
        """Standardise NumPy images now (fitting on ``X`` if not fitted);
        returns float32 images and ``y`` unchanged (copied)."""
        est = self if hasattr(self, "op_") else clone(self).fit(X)
        return _sample(AugmentationChain([est.op_]), X, y, random_state, mask_fill)


def _chunks(imgs, max_values=1 << 22):
    if isinstance(imgs, list):
        for img in imgs:
            yield img[None]
        return
    per_image = max(1, int(np.prod(imgs.shape[1:])))
    step = max(1, max_values // per_image)
    for start in range(0, len(imgs), step):
        yield imgs[start:start + step]


class AugmentationSampler(BaseEstimator):
    """Augmentation as an imbalanced-learn sampler (``fit_resample``).

    In an ``imblearn.pipeline.Pipeline`` a sampler runs only during ``fit``,
    on NumPy data: this one returns augmented copies of the training images
    and masks (same number, dtype and layout). The augmenters themselves are
    transformers (they have ``transform``), which imbalanced-learn's Pipeline
    does not accept as samplers; wrap them here instead.

    Parameters
    ----------
    augment : augmenter, list of augmenters, Pipeline of augmenters or None
        As for :func:`make_chain`.
    mask_fill : label value, default=0
        Label of mask pixels brought in from outside the image.
    random_state : int, RandomState instance or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.augmentation import AugmentationSampler, RandomFlip
    >>> X = np.arange(32, dtype=np.uint8).reshape(2, 4, 4)
    >>> y = (X > 10).astype(np.int64)
    >>> Xr, yr = AugmentationSampler(RandomFlip(p=1.0), random_state=0).fit_resample(X, y)
    >>> bool(((Xr > 10) == yr).all())
    True
    """

    def __init__(self, augment=None, mask_fill=0, random_state=None):
        self.augment = augment
        self.mask_fill = mask_fill
        self.random_state = random_state

    def fit(self, X, y=None):
        """Validate ``augment``; returns self."""
        self.chain_ = make_chain(self.augment, X=X)
        return self

    def fit_resample(self, X, y):
        """Return augmented copies ``(X_aug, y_aug)`` of ``X`` and ``y``."""
        self.fit(X, y)
        return self.chain_.sample(X, y, self.random_state, mask_fill=self.mask_fill)


for _cls, _call, _rgb, _shape in [
    (RandomFlip, "RandomFlip(p=0.5)", False, None),
    (RandomRotate90, "RandomRotate90(p=0.5)", False, None),
    (RandomAffine, "RandomAffine(degrees=20, p=1.0)", False, None),
    (RandomCrop, "RandomCrop(size=8)", False, "(4, 8, 8)"),
    (RandomResizedCrop, "RandomResizedCrop(size=(8, 12), scale=(0.5, 1.0))", False,
     "(4, 8, 12)"),
    (ElasticDeformation, "ElasticDeformation(alpha=2.0, sigma=4.0)", False, None),
    (RandomBrightnessContrast, "RandomBrightnessContrast(p=1.0)", False, None),
    (RandomGamma, "RandomGamma(p=1.0)", False, None),
    (GaussianNoise, "GaussianNoise(std=0.02)", False, None),
    (GaussianBlur, "GaussianBlur(sigma=(0.5, 1.0))", False, None),
    (ColorJitter, "ColorJitter(hue=0.1, saturation=0.3)", True, "(4, 16, 16, 3)"),
]:
    _cls.__doc__ += _doc_example(_cls.__name__, _call, _rgb,
                                 _shape or ("(4, 16, 16, 3)" if _rgb else "(4, 16, 16)"))
del _cls, _call, _rgb, _shape
