"""What every augmenter shares: the scikit-learn transformer behaviour
(lazy ``fit_transform``, identity ``transform``, ``sample``) and the checks of
the parameters augmenters have in common.

Public through :mod:`sksegment.augmentation`.
"""

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._augment_chain import AugmentationChain, AugmentedImages, sample_images, unwrap
from ._data import check_images
from ._validation import check_number, check_random_state_arg, is_real

PADDING_MODES = ("zeros", "border", "reflection")


def check_p(p):
    """The per-sample probability ``p``, in [0, 1]."""
    return check_number(p, "p", low=0, high=1)


def symmetric(v):
    """``v -> (-v, v)``, for :func:`value_range`."""
    return (-v, v)


def around_one(v):
    """``v -> (max(0, 1 - v), 1 + v)``, for :func:`value_range`."""
    return (max(0.0, 1.0 - v), 1.0 + v)


def two_items(value, name, expected):
    """The two items of a pair (any iterable but a string), or a TypeError
    saying ``name`` must be ``expected``."""
    items = ()
    if not isinstance(value, (str, bytes)):
        try:
            items = tuple(value)
        except TypeError:
            pass
    if len(items) != 2:
        raise TypeError(f"{name} must be {expected}; got {value!r}.")
    return items


def _interval_text(low, high, low_open, high_open):
    left = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    right = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"{left}, {right}"


def value_range(value, name, *, from_number=None, low=None, high=None, low_open=False,
                high_open=False):
    """A ``(low, high)`` pair of finite floats from ``value``.

    With ``from_number``, a single number ``v >= 0`` becomes
    ``from_number(v)`` (for example :func:`symmetric`); otherwise a pair is
    required. The pair must be increasing and lie within the interval from
    ``low`` to ``high`` (ends excluded with ``low_open`` / ``high_open``).
    """
    if from_number is not None and is_real(value):
        pair = from_number(check_number(value, f"{name} given as one number", low=0))
    else:
        expected = "a number >= 0 or a (low, high) pair" if from_number else "a (low, high) pair"
        items = two_items(value, name, expected)
        pair = tuple(check_number(v, f"{name}[{i}]") for i, v in enumerate(items))
        if pair[0] > pair[1]:
            raise ValueError(f"{name} must be an increasing (low, high) pair; got {value!r}.")
    pair = (pair[0] + 0.0, pair[1] + 0.0)  # no negative zero
    too_low = low is not None and (pair[0] < low or (low_open and pair[0] == low))
    too_high = high is not None and (pair[1] > high or (high_open and pair[1] == high))
    if too_low or too_high:
        raise ValueError(f"{name} must lie within {_interval_text(low, high, low_open, high_open)}"
                         f"; got {value!r}.")
    return pair


class Augmenter(TransformerMixin, BaseEstimator):
    """Base class of the augmenters: lazy fit_transform, identity transform,
    sample(). Subclasses build their op from validated parameters in
    ``_make_op()``."""

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
        check_random_state_arg(random_state)
        op = self._make_op()
        images, _ = unwrap(X)
        self._check_channels(check_images(images, "X"))
        return sample_images(AugmentationChain([op]), X, y, random_state, mask_fill)


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


def doc_example(name, call, channels="", shape="(4, 16, 16)"):
    return _SAMPLE_EXAMPLE.format(
        name=name, call=call, channels=", 3" if channels else "",
        first="[..., 0]" if channels else "", shape=shape)
