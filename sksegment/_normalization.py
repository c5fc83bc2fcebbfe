"""Intensity normalisation: statistics of a training set, streamed, and the
per-batch transform they define.

Statistics are computed on what the network would see without normalisation:
each batch converted by :func:`sksegment._data.to_tensor` (uint8 / 255, ...)
and passed through the deterministic steps of the augmentation chain (an
``IntensityStandardizer`` of a Pipeline, say). The images are read a few at
a time (from memory) or in bands of rows (from a store on disk or a list)
and converted on the device; no float copy of the data set is made.

A normalisation is stored as plain numbers, ``{"kind", "shift", "scale"}``
with one shift and scale per channel, and applied as ``(x - shift) / scale``
on the device, after augmentation (photometric augmenters work on the
unnormalised range) and before the network. The same numbers go into the
export's JSON.
"""

import math

import numpy as np
import torch

from ._arrays import row_bands
from ._data import image_shape, n_channels, to_tensor

NORMALIZATIONS = ("zscore", "minmax", "imagenet")

#: ImageNet channel means and standard deviations of RGB images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Pixels sampled per image (with replacement) for the percentiles (the
#: means are exact).
_SAMPLES_PER_IMAGE = 4096
#: Pixels converted per step of the pass over the images.
_BATCH_PIXELS = 1 << 20
#: At most about twice this many pixels are kept for the percentiles, however
#: large the data set (the sample is thinned uniformly as it grows).
_MAX_SAMPLES = 1 << 20


def intensity_statistics(images, transform=None, device="cpu", percentiles=(0.5, 99.5),
                         random_state=0):
    """Per-channel statistics of a set of images.

    Parameters
    ----------
    images : ndarray (n, H, W, C) or list of (H, W, C) arrays
        As returned by :func:`sksegment._data.check_images`.
    transform : callable or None
        Deterministic ``x -> x`` on float tensors ``(N, C, H, W)`` applied
        after the conversion.
    device : torch.device or str
        Where the batches are converted.
    percentiles : tuple of float
        Percentiles to estimate from a uniform sample of the pixels (4096
        per image, thinned to at most about two million pixels in all).
    random_state : int
        Seeds the pixel sample.

    Returns
    -------
    stats : dict
        ``mean``, ``std``, ``min``, ``max`` (exact) and ``percentiles``
        (a dict from each percentile to its per-channel values), each a
        list of one float per channel, all finite: the moments are
        accumulated in float64 (Chan et al.'s parallel update of each
        image's mean and variance, values scaled by a power of two where
        their squares could overflow in float32).

    Raises
    ------
    ValueError
        Naming X, when ``transform`` makes values NaN or infinite (images
        beyond float32's range are refused before, by
        :func:`sksegment._data.check_finite`).

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment._normalization import intensity_statistics
    >>> images = np.full((2, 4, 4, 1), 51, dtype=np.uint8)
    >>> stats = intensity_statistics(images)
    >>> round(stats["mean"][0], 3), round(stats["std"][0], 3)
    (0.2, 0.0)
    """
    rng = np.random.RandomState(random_state)
    c = n_channels(images)
    moments = _Moments(c)
    low = torch.full((c,), float("inf"), dtype=torch.float64)
    high = torch.full((c,), -float("inf"), dtype=torch.float64)
    samples, kept, rate = [], 0, 1.0  # a uniform sample of at most 2 * _MAX_SAMPLES pixels
    positions = {}  # image -> the pixels it gives to the sample (flat indices)
    for x, spans in _batches(images, transform, device):
        batch_low = x.amin(dim=(0, 2, 3)).double().cpu()
        batch_high = x.amax(dim=(0, 2, 3)).double().cpu()
        if not (torch.isfinite(batch_low).all() and torch.isfinite(batch_high).all()):
            raise ValueError("X: the deterministic augmentation steps (an "
                             "IntensityStandardizer, say) turn the images into NaN or infinite "
                             "values; their intensity statistics cannot be computed.")
        low, high = torch.minimum(low, batch_low), torch.maximum(high, batch_high)
        moments.add(x, torch.maximum(batch_low.abs(), batch_high.abs()))
        # each image draws its sample positions from a generator of its own,
        # and the thinning runs at image ends: the sample does not depend on
        # how the images are batched or cut into bands (in memory, or a
        # store's chunks)
        for j, (i, top, bottom, height) in enumerate(spans):
            width = x.shape[3]
            if top == 0:
                own = np.random.RandomState([random_state, i])
                take = int(own.binomial(min(height * width, _SAMPLES_PER_IMAGE), rate))
                positions[i] = own.randint(0, height * width, take)
            pos = positions[i]
            pos = pos[(pos >= top * width) & (pos < bottom * width)] - top * width
            pixels = x[j].permute(1, 2, 0).reshape(-1, c)
            idx = torch.from_numpy(pos).to(pixels.device)
            # a copy the NumPy allocator owns: small torch blocks kept alive
            # between the batches' large ones fragment the heap (measured:
            # RSS grew by about a batch per batch)
            samples.append(pixels[idx].cpu().numpy().copy())
            kept += len(pos)
            if bottom == height:  # the image is complete
                del positions[i]
                while kept > 2 * _MAX_SAMPLES:  # halve what is kept, and the rate from now on
                    samples = [np.concatenate(samples)[rng.rand(kept) < 0.5]]
                    kept, rate = len(samples[0]), rate / 2
    # the sample is bounded: float64 keeps the percentiles' interpolation
    # (hi - lo) finite for values near float32's limits
    sample = np.concatenate(samples).astype(np.float64)
    del samples
    stats = {"mean": moments.mean.tolist(), "std": moments.std.tolist(), "min": low.tolist(),
             "max": high.tolist(),
             "percentiles": {float(q): np.percentile(sample, q, axis=0).tolist()
                             for q in percentiles}}
    values = [*stats["mean"], *stats["std"],
              *(v for p in stats["percentiles"].values() for v in p)]
    if not np.isfinite(values).all():  # not expected: float64 holds float32's squares
        raise ValueError(f"X: the intensity statistics of images with values from "
                         f"{min(stats['min']):.4g} to {max(stats['max']):.4g} are not "
                         "finite; rescale X (divide it by a constant) before fitting.")
    return stats


#: Largest magnitude a batch's channel may reach before its moments are
#: taken on a scaled copy: float32 squares (and their sums over an image,
#: on devices that accumulate in float32) stay far below float32's limit.
_SAFE_MAGNITUDE = 2.0 ** 40


def merge_moments(a, b):
    """Count, mean and sum of squared deviations (M2) of two parts taken
    together: Chan et al.'s parallel update. ``a`` and ``b`` are ``(count,
    mean, m2)`` with per-channel arrays or tensors (float64)."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    total = n_a + n_b
    delta = mean_b - mean_a
    return (total, mean_a + delta * (n_b / total),
            m2_a + m2_b + delta * delta * (n_a * (n_b / total)))


class _Moments:
    """Per-channel count, mean and sum of squared deviations (M2), streamed
    over batches in float64 with Chan et al.'s parallel update (each image's
    moments from :func:`torch.var_mean`, a stable one-pass algorithm).

    Values larger than :data:`_SAFE_MAGNITUDE` are scaled by a power of two
    (exact) for :func:`torch.var_mean`, so that neither sums nor squares
    overflow in float32; the moments are scaled back in float64, which holds
    the square of any float32.
    """

    def __init__(self, c):
        self.count = 0
        self.mean_ = torch.zeros(c, dtype=torch.float64)
        self.m2 = torch.zeros(c, dtype=torch.float64)

    def add(self, x, magnitude):
        """``x`` float (N, C, H, W); ``magnitude`` its largest ``|value|``
        per channel (float64, on the CPU)."""
        scale = torch.ones_like(magnitude)
        large = magnitude > _SAFE_MAGNITUDE
        if large.any():
            exponents = [math.frexp(m)[1] if big else 0
                         for m, big in zip(magnitude.tolist(), large.tolist())]
            scale = torch.tensor([2.0 ** e for e in exponents], dtype=torch.float64)
            inverse = (1.0 / scale).to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            x = x * inverse  # a copy of this batch only
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0)  # (N, C)
        var = var.double().cpu() * scale.square()
        mean = mean.double().cpu() * scale
        n_images, per_image = x.shape[0], x.shape[2] * x.shape[3]
        batch_mean = mean.mean(0)
        batch_m2 = (var.sum(0) + (mean - batch_mean).square().sum(0)) * per_image
        self.count, self.mean_, self.m2 = merge_moments(
            (self.count, self.mean_, self.m2), (n_images * per_image, batch_mean, batch_m2))

    @property
    def mean(self):
        return self.mean_

    @property
    def std(self):
        return (self.m2 / max(self.count, 1)).clamp(min=0).sqrt()


def _batches(images, transform, device):
    """Float tensors (N, C, H, W) of the images with what each holds: a few
    whole images at a time from an in-memory array, bands of rows (bounded
    reads) from a store or a list; see :func:`_host_batches`."""
    with torch.no_grad():
        for batch, spans in _host_batches(images):
            x = to_tensor(batch, device)  # within float32's range: check_images saw to it
            yield (transform(x) if transform is not None else x), spans


def _host_batches(images):
    """``(batch, spans)``: ``spans[j] = (image, top, bottom, height)`` says
    which rows of which image ``batch[j]`` holds."""
    if isinstance(images, np.ndarray):
        n = len(images)
        h, w = image_shape(images, 0)
        step = max(1, _BATCH_PIXELS // (h * w))
        for i in range(0, n, step):
            yield images[i:i + step], [(k, 0, h, h) for k in range(i, min(n, i + step))]
        return
    for i in range(len(images)):
        height = image_shape(images, i)[0]
        for top, bottom in row_bands(images, i):
            band = images[i][top:bottom] if isinstance(images, list) \
                else images[i, top:bottom]
            yield np.asarray(band)[None], [(i, top, bottom, height)]


def make_normalization(kind, stats, n_channels_in):
    """The stored form ``{"kind", "shift", "scale"}`` of a normalisation.

    Parameters
    ----------
    kind : {"zscore", "minmax", "imagenet"}
        "zscore": subtract the mean and divide by the standard deviation of
        each channel over the training set; "minmax": map each channel's 0.5
        and 99.5 percentiles to 0 and 1 (without clipping); "imagenet": the
        fixed ImageNet channel statistics of RGB images in [0, 1].
    stats : dict or None
        From :func:`intensity_statistics` (not used for "imagenet").
    n_channels_in : int

    Returns
    -------
    normalization : dict
    """
    if kind == "imagenet":
        if n_channels_in != 3:
            raise ValueError(f"normalize='imagenet' needs RGB images (3 channels); X has "
                             f"{n_channels_in}. Use normalize='zscore' instead.")
        shift, scale = list(IMAGENET_MEAN), list(IMAGENET_STD)
    elif kind == "zscore":
        shift, scale = stats["mean"], stats["std"]
    elif kind == "minmax":
        shift = stats["percentiles"][0.5]
        scale = [hi - lo for lo, hi in zip(shift, stats["percentiles"][99.5])]
    else:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, 'auto' or None; "
                         f"got {kind!r}.")
    # a constant channel is only shifted
    scale = [float(s) if s > 1e-8 else 1.0 for s in scale]
    return {"kind": kind, "shift": [float(v) for v in shift], "scale": scale}


class Normalizer:
    """``(x - shift) / scale`` per channel on float tensors ``(N, C, H, W)``."""

    def __init__(self, normalization):
        self.normalization = normalization
        self._cache = {}

    def __call__(self, x):
        key = (x.device, x.dtype)
        if key not in self._cache:
            n = self.normalization
            shift = torch.tensor(n["shift"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            scale = torch.tensor(n["scale"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            self._cache[key] = (shift, 1.0 / scale)
        shift, inv = self._cache[key]
        return (x - shift) * inv

    def __getstate__(self):
        return {"normalization": self.normalization, "_cache": {}}
