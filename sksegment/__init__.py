"""sksegment: deep-learning image segmentation as scikit-learn estimators.

The estimator is :class:`CNNSegmenter`; :mod:`sksegment.augmentation` holds the
augmenters that go before it in a Pipeline, :mod:`sksegment.metrics` the
segmentation scores, :mod:`sksegment.losses` the losses chosen by string,
:mod:`sksegment.models` the networks and :mod:`sksegment.datasets` data.
"""

from ._checkpoint import CheckpointError
from ._segmenter import CNNSegmenter
from ._training import NonFiniteLossError
from .augmentation import (
    ColorJitter,
    ElasticDeformation,
    GaussianBlur,
    GaussianNoise,
    IntensityStandardizer,
    RandomAffine,
    RandomBrightnessContrast,
    RandomCrop,
    RandomFlip,
    RandomGamma,
    RandomResizedCrop,
    RandomRotate90,
)
from .models import FCN, UNet

__version__ = "0.1.0"

__all__ = [
    "FCN",
    "CNNSegmenter",
    "CheckpointError",
    "ColorJitter",
    "ElasticDeformation",
    "GaussianBlur",
    "GaussianNoise",
    "IntensityStandardizer",
    "NonFiniteLossError",
    "RandomAffine",
    "RandomBrightnessContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomGamma",
    "RandomResizedCrop",
    "RandomRotate90",
    "UNet",
]
