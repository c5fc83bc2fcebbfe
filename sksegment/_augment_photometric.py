"""Photometric augmenters (intensities only; masks untouched) and the
deterministic :class:`IntensityStandardizer`.

Public through :mod:`sksegment.augmentation`.
"""

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from . import _augment_ops as _ops
from ._augment_base import Augmenter, around_one, check_p, doc_example, symmetric, value_range
from ._augment_chain import AugmentationChain, AugmentedImages, sample_images, unwrap
from ._data import check_images, intensity_scale, to_tensor
from ._data import n_channels as _n_channels
from ._normalization import merge_moments
from ._validation import check_bool, check_number


def _fixed(v):
    """``v -> (v, v)``, for :func:`value_range`."""
    return (v, v)


class RandomBrightnessContrast(Augmenter):
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
            brightness=value_range(self.brightness, "brightness", from_number=symmetric),
            contrast=value_range(self.contrast, "contrast", from_number=around_one, low=0),
            p=check_p(self.p))


class RandomGamma(Augmenter):
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
        return _ops.GammaOp(gamma=value_range(self.gamma, "gamma", low=0, low_open=True),
                            p=check_p(self.p))


class GaussianNoise(Augmenter):
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
        return _ops.NoiseOp(std=value_range(self.std, "std", from_number=_fixed, low=0),
                            p=check_p(self.p))


class GaussianBlur(Augmenter):
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
        return _ops.BlurOp(sigma=value_range(self.sigma, "sigma", from_number=_fixed, low=0),
                           p=check_p(self.p))


class ColorJitter(Augmenter):
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
        return _ops.ColorJitterOp(
            hue=check_number(self.hue, "hue", low=0, high=0.5),
            saturation=value_range(self.saturation, "saturation", from_number=around_one, low=0),
            p=check_p(self.p))


class IntensityStandardizer(Augmenter):
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
        per_channel = check_bool(self.per_channel, "per_channel")
        images, pre = unwrap(X)
        imgs = check_images(images, "X")
        c = _n_channels(imgs)
        mean, std = _mean_and_std(imgs, pre.deterministic(), c if per_channel else 1)
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
        return sample_images(AugmentationChain([est.op_]), X, y, random_state, mask_fill)


def _mean_and_std(imgs, det, k):
    """Mean and population standard deviation, ``(k,)`` float64 each, of
    checked images (channels last) after the chain ``det``: per channel
    (``k`` = C) or over all channels (``k`` = 1), merged chunk by chunk."""
    c = _n_channels(imgs)
    count, mean, m2 = 0, np.zeros(k), np.zeros(k)
    for batch in _chunks(imgs):
        if len(det):
            xt, _ = det(to_tensor(batch, "cpu"), None, training=False)
            values = xt.double().transpose(0, 1).reshape(xt.shape[1], -1).numpy()
        else:
            values = (batch.astype(np.float64) * intensity_scale(batch.dtype))
            values = values.reshape(-1, c).T
        values = values.reshape(k, -1)
        bmean = values.mean(axis=1)
        bm2 = ((values - bmean[:, None]) ** 2).sum(axis=1)
        count, mean, m2 = merge_moments((count, mean, m2), (values.shape[1], bmean, bm2))
    return mean, np.sqrt(m2 / count)


def _chunks(imgs, max_values=1 << 22):
    if isinstance(imgs, list):
        for img in imgs:
            yield img[None]
        return
    per_image = max(1, int(np.prod(imgs.shape[1:])))
    step = max(1, max_values // per_image)
    for start in range(0, len(imgs), step):
        yield imgs[start:start + step]


for _cls, _call, _rgb in [
    (RandomBrightnessContrast, "RandomBrightnessContrast(p=1.0)", False),
    (RandomGamma, "RandomGamma(p=1.0)", False),
    (GaussianNoise, "GaussianNoise(std=0.02)", False),
    (GaussianBlur, "GaussianBlur(sigma=(0.5, 1.0))", False),
    (ColorJitter, "ColorJitter(hue=0.1, saturation=0.3)", True),
]:
    _cls.__doc__ += doc_example(_cls.__name__, _call, _rgb,
                                "(4, 16, 16, 3)" if _rgb else "(4, 16, 16)")
del _cls, _call, _rgb
