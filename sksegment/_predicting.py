"""Prediction plumbing of :class:`sksegment.CNNSegmenter`: checking the
input, the preprocessing a fitted network expects (augmentation chain,
normalisation, padding) and the call into ``_inference``. A mixin; the
public methods are in ``_segmenter``.
"""

import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import _training
from ._arrays import is_dask
from ._data import check_finite, check_images, intensity_scale, n_channels, unique_labels
from ._forward import AutocastForward
from ._inference import make_predictions
from ._normalization import Normalizer
from ._outputs import check_out, collect
from ._parameters import PARAMETERS, PREDICT_PARAMETERS
from ._validation import validate_params
from .augmentation import AugmentationChain, unwrap
from .metrics import get_scorer
from .models import downsampling_factor


class PredictMixin:
    """Prediction plumbing, for :class:`sksegment.CNNSegmenter`."""

    def _normalizer(self):
        n = getattr(self, "normalization_", None)
        return None if n is None else Normalizer(n)

    def _pad_multiple(self, model):
        default = 2 ** self.depth_ if not isinstance(self.model, str) else 1
        return int(downsampling_factor(model, default))

    def _get_scorer(self):
        return get_scorer(self.scoring) if isinstance(self.scoring, str) else self.scoring

    def _check_predict_input(self, X, out=None, output="labels"):
        """Checked images and the chain to apply. ``out`` is checked too,
        before the images are scanned for NaN; a dask array predicted lazily
        (labels or probabilities without ``out``) is scanned block by block
        when it is computed (``_dask``). The parameters prediction reads are
        checked again: ``set_params`` may have changed them after fit."""
        check_is_fitted(self, "model_")
        params = self.get_params(deep=False)
        validate_params(type(self).__name__, {k: params[k] for k in PREDICT_PARAMETERS},
                        {k: PARAMETERS[k] for k in PREDICT_PARAMETERS})
        images, chain = unwrap(X)
        lazy_dask = out is None and is_dask(images) and output in ("labels", "proba")
        images = check_images(images, "X", check_finite=False)
        if n_channels(images) != self.n_channels_in_:
            raise ValueError(
                f"X has {n_channels(images)} channel(s) but the segmenter was fitted on "
                f"{self.n_channels_in_}."
            )
        if out is not None:
            check_out(out, images, output, self.classes_, n_classes=self.n_classes_)
        if not lazy_dask:
            check_finite(images, "X")
            self._warn_other_units(images)
        return images, _join_chains(chain, self._augment_chain)

    # images whose largest value, in the network's units, is this many times
    # larger or smaller than the training images' are in other units
    _UNITS_RATIO = 20.0

    def _warn_other_units(self, images):
        """Images of another dtype than in fit may reach the network in other
        units (uint8 scaled by 1/255, floats as given): compare the first
        image's largest value with the training images' and warn."""
        if not isinstance(images, (list, np.ndarray)) or isinstance(images, np.memmap):
            return  # read on demand: no extra read of a whole image
        first = images[0]
        fitted = np.dtype(getattr(self, "input_dtype_", first.dtype))
        fit_max = (getattr(self, "fingerprint_", None) or {}).get("intensity", {}).get("max")
        if (first.dtype == fitted or not fit_max or type(first) is not np.ndarray
                or first.base is not None and isinstance(first.base, np.memmap)):
            return
        peak = float(np.abs(first).max()) * intensity_scale(first.dtype)
        seen = max(abs(float(v)) for v in fit_max)
        if seen > 0 and peak > 0 and not (1 / self._UNITS_RATIO <= peak / seen
                                          <= self._UNITS_RATIO):
            warnings.warn(
                f"X is {first.dtype} with values up to {float(np.abs(first).max()):g} but the "
                f"segmenter was fitted on {fitted} images; uint8 images are scaled by 1/255 "
                "and uint16 by 1/65535, other dtypes are used as given, so these images "
                f"reach the network about {peak / seen:.3g} times as bright as in fit. Pass "
                f"them as {fitted}, or scaled as the training images were.",
                UserWarning, stacklevel=4)

    def _forward(self, model, device, compiled=True):
        """The network as prediction calls it: under autocast at the training
        precision (``precision`` resolved on the model's device: with "auto",
        bf16 where the device computes in bf16 natively, GPU or CPU; set
        ``precision="fp32"`` to predict in fp32), and compiled with ``compile=True`` (kept for later calls, not
        pickled)."""
        forward = model
        if self.compile and compiled:
            cached = self.__dict__.get("_compiled_predict")
            if cached is None or cached[0] is not model:
                cached = (model, _training.try_compile(model))
                self.__dict__["_compiled_predict"] = cached
            forward = cached[1]
        dtype = _training.inference_dtype(self.precision, device)
        return forward if dtype is None else AutocastForward(forward, device.type, dtype)

    def _predict_images(self, images, chain, output, verbose=None, tta=None, compiled=True):
        """Predictions for checked images, not computed yet: a
        :class:`sksegment._inference.Predictions`, which iterates over one
        array per image (class indices for ``output="labels"``) or writes
        finished rows into an output (:func:`sksegment._outputs.collect`)."""
        model = self.model_
        model.eval()
        device = next(model.parameters()).device if any(True for _ in model.parameters()) \
            else torch.device("cpu")

        normalize = self._normalizer()

        def transform(x):
            if len(chain):
                x = chain(x, None, training=False)[0]
            return x if normalize is None else normalize(x)

        tile_size = self.tile_size
        if tile_size is None and self.patch_size_ is not None:
            # a fully convolutional net predicts larger tiles than its patches
            # well, and fewer tiles cost less
            tile_size = tuple(max(p, 256) for p in self.patch_size_)
        # progress bars of prediction at verbose >= 2 only (1 is training progress)
        verbose = max(0, self.verbose - 1) if verbose is None else verbose
        return make_predictions(
            self._forward(model, device, compiled), images, device=device, output=output,
            batch_size=self.batch_size_, pad_multiple=self._pad_multiple(model),
            transform=transform if len(chain) or normalize is not None else None,
            tiling=self.tiling, tile_size=tile_size, tile_overlap=self.tile_overlap,
            tta=self._tta() if tta is None else tta, verbose=verbose)

    def _predict_labels(self, images, chain, out=None):
        """Label images of checked images, computed here (not lazily), with
        ``postprocessing_`` applied one whole image at a time (connected
        components need whole images)."""
        predictions = self._predict_images(images, chain, "labels")
        post = getattr(self, "postprocessing_", None)
        if post is not None:
            predictions = (post.apply(p) for p in predictions)
        return collect(predictions, images, self.classes_, out=out)

    def _tta(self):
        """The test-time augmentation of prediction: ``tta``, with "auto"
        resolved at fit (``tta_``)."""
        return getattr(self, "tta_", False) if self.tta == "auto" else self.tta

    def _warn_unseen_labels(self, y, name="y"):
        """score, validation: labels in y that the model never saw count as
        errors; say so."""
        try:
            labels = unique_labels(list(y) if isinstance(y, (list, tuple)) else y)
        except (TypeError, ValueError, AttributeError):
            return  # the scorer reports a malformed y
        ignore = self.ignore_index
        unseen = np.setdiff1d(labels[labels != ignore] if ignore is not None else labels,
                              self.classes_)
        if unseen.size:
            warnings.warn(f"{name} has label(s) {unseen.tolist()} that the model never saw "
                          f"in fit (classes_ = {self.classes_.tolist()}); their pixels count "
                          "as errors in the score.", UserWarning, stacklevel=3)


def _join_chains(first, second):
    ops = tuple(first.ops if first is not None else ()) + tuple(
        second.ops if second is not None else ())
    return AugmentationChain(ops)
