"""The parameter table of :class:`sksegment.CNNSegmenter`: the values each
parameter accepts (checked in ``fit`` by ``_validation.validate_params``),
and the names that prediction reads, checked again at predict since
``set_params`` may have changed them after fit.
"""

import os

import numpy as np
import torch

from ._validation import InstanceOf, Interval, IsCallable, IsSize, Options
from .models import MODELS

_PATCH = [Options(None), IsSize()]
_AUTO = Options("auto")

PARAMETERS = {
    "model": [Options(*MODELS), InstanceOf(torch.nn.Module), IsCallable()],
    "depth": [_AUTO, Interval(int, 1, None)],
    "width": [Interval(int, 1, None)],
    "loss": [InstanceOf(str), InstanceOf(torch.nn.Module), IsCallable()],
    "loss_params": [Options(None), InstanceOf(dict)],
    "class_weight": [Options(None, "balanced"), InstanceOf(dict)],
    "ignore_index": [Options(None), Interval(int, None, None)],
    "optimizer": [Options("adam", "adamw", "sgd")],
    "learning_rate": [Interval(float, 0, None, closed="neither")],
    "weight_decay": [Interval(float, 0, None)],
    "batch_size": [_AUTO, Interval(int, 1, None)],
    "max_epochs": [_AUTO, Interval(int, 1, None)],
    "max_time": [Options(None), Interval(float, 0, None, closed="neither")],
    "patch_size": [_AUTO] + _PATCH,
    "norm": [Options("auto", "batch", "instance", "group", None)],
    "normalize": [Options("auto", "zscore", "minmax", "imagenet", None)],
    "postprocess": [Options(None, "auto"), InstanceOf(dict, label="a dict of options")],
    "lr_schedule": [Options("constant", "cosine", "onecycle", "plateau")],
    "warmup_epochs": [Interval(int, 0, None)],
    "early_stopping": [Options(True, False)],
    "validation_fraction": [Interval(float, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(int, 1, None)],
    "tol": [Interval(float, 0, None)],
    "scoring": [InstanceOf(str), IsCallable()],
    "max_grad_norm": [Options(None), Interval(float, 0, None, closed="neither")],
    "precision": [Options("auto", "fp32", "bf16", "fp16")],
    "compile": [Options(True, False)],
    "foreground_oversampling": [Interval(float, 0, 1)],
    "tiling": [Options("auto", True, False)],
    "tile_size": _PATCH,
    "tile_overlap": [Interval(float, 0, 1, closed="left")],
    "tta": [Options("auto", True, False)],
    "checkpoint_dir": [Options(None), InstanceOf(str, os.PathLike, label="a path")],
    "resume": [Options(True, False)],
    "warm_start": [Options(True, False)],
    "device": [InstanceOf(str, torch.device, label="a device string")],
    "distributed": [Options("auto", True, False)],
    "random_state": [Options(None), Interval(int, 0, 2**32 - 1),
                     InstanceOf(np.random.RandomState)],
    "verbose": [Interval(int, 0, None), Options(True, False)],
}


# read by predict, predict_proba, predict_uncertainty and score
PREDICT_PARAMETERS = ("precision", "compile", "tiling", "tile_size", "tile_overlap", "tta",
                      "verbose")
