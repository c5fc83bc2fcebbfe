"""Segmentation networks: U-Net, FCN and the registry that builds them by name."""

from ._fcn import FCN
from ._registry import MODELS, build_model, downsampling_factor
from ._unet import UNet

__all__ = ["FCN", "MODELS", "UNet", "build_model", "downsampling_factor"]
