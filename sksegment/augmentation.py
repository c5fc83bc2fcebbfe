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

from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

from ._augment_base import Augmenter
from ._augment_chain import AugmentationChain, AugmentedImages, unwrap
from ._augment_geometric import (
    ElasticDeformation,
    RandomAffine,
    RandomCrop,
    RandomFlip,
    RandomResizedCrop,
    RandomRotate90,
)
from ._augment_photometric import (
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    IntensityStandardizer,
    RandomBrightnessContrast,
    RandomGamma,
)

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


def _flatten(augment, where="augment"):
    if augment is None:
        return []
    if isinstance(augment, (Augmenter, AugmentationChain)):
        return [augment]
    if isinstance(augment, Pipeline):
        steps = []
        for name, step in augment.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if not isinstance(step, (Augmenter, Pipeline)):
                raise TypeError(
                    f"{where} is a Pipeline whose step {name!r} is {step!r}; a Pipeline given "
                    "as augment may only contain sksegment.augmentation augmenters."
                )
            steps.extend(_flatten(step, where))
        return steps
    if isinstance(augment, (list, tuple)):
        steps = []
        for i, item in enumerate(augment):
            if not isinstance(item, (Augmenter, AugmentationChain, Pipeline)):
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


def check_augment(augment):
    """Check ``augment`` as ``make_chain`` would (its structure and each
    augmenter's parameters) without fitting anything; "auto" passes."""
    if isinstance(augment, str) and augment == "auto":
        return
    for step in _flatten(augment):
        if isinstance(step, Augmenter) and not isinstance(step, IntensityStandardizer):
            clone(step)._make_op()


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
        """Return augmented copies ``(X_aug, y_aug)`` of ``X`` and ``y``
        (the fitted ``chain_`` is replaced only when they are returned)."""
        chain = make_chain(self.augment, X=X)
        out = chain.sample(X, y, self.random_state, mask_fill=self.mask_fill)
        self.chain_ = chain
        return out
