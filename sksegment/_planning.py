"""Data-driven defaults: a fingerprint of the data and the device, and the
rules that turn it into a patch size, a network depth and a batch size.

The rules are adapted from nnU-Net v2's 2-D experiment planner
(``experiment_planning/experiment_planners/default_experiment_planner.py``
and ``network_topology.py``), which showed that fixed rules over a data
fingerprint beat hand tuning on most segmentation problems:

- **Patch**: start from the median image shape (nnU-Net clips its initial
  patch to the median shape), then, while one training step of the smallest
  batch (2) does not fit the step budget of the device, shrink the axis whose
  patch is largest relative to the median image (the longer one on a tie),
  by one unit of divisibility (nnU-Net's reduction loop). When the patch covers the largest
  image, the segmenter trains on whole images.
- **Depth**: downsample while the bottleneck keeps at least 4 pixels along
  the shorter patch axis (nnU-Net pools an axis while it is at least 8
  pixels long) and the widest level has at most 512 feature maps (nnU-Net's
  cap for 2-D networks); the patch is then a multiple of ``2 ** depth``
  (a side shorter than twice that stays whole and is padded: rounding it
  down would leave one pixel at the bottleneck). Patches too small for
  one such halving get the least depth, 1.
- **Batch**: as many patches as the step budget allows (nnU-Net:
  ``round(reference / estimate * 12)``), at most as many as cover 5 % of
  all training pixels per step, and at least 2 (whole images: at most as
  many as there are).

The step budget depends on the device. On a GPU it is memory, as in nnU-Net:
the activations a training step keeps (estimated from the network's
feature-map sizes, about 8 bytes per feature-map element with gradients and
workspace, which is nnU-Net's reference of 85e6 elements at batch 12 in
8 GB) may take 60 % of the GPU's memory. On a CPU, memory is rarely the
limit, time is: the budget is a number of multiply-accumulates per step,
:data:`CPU_STEP_MACS`, chosen so that a step takes a fraction of a second
on a laptop-class CPU (short steps give many updates within a time budget).
"""

import math

import numpy as np
import torch

from ._data import image_shape, n_channels

#: Multiply-accumulates of one training step (forward, for the batch) on a CPU.
CPU_STEP_MACS = 4.0e9
#: Device memory per feature-map element kept by a training step, in bytes
#: (nnU-Net's 2-D reference: 85e6 elements per image x 12 images in 8 GB).
BYTES_PER_UNIT = 8.0
#: Share of a GPU's memory a training step may plan to use.
GPU_MEMORY_SHARE = 0.6
#: Bottleneck edge kept at the deepest level, in pixels.
MIN_BOTTLENECK = 4
#: Most feature maps at the widest level.
MAX_FEATURES = 512
#: Largest share of all training pixels one batch may cover.
MAX_DATA_SHARE = 0.05
#: Smallest batch.
MIN_BATCH = 2
#: Deepest network the rules choose.
MAX_DEPTH = 6
#: Epochs of ``max_epochs="auto"`` without a time budget.
MAX_EPOCHS = 50
#: Epochs of ``max_epochs="auto"`` with a time budget: the time decides.
UNBOUNDED = 10**9
#: Epochs from which ``augment="auto"`` adds random affine and intensity
#: changes to its flips (see :func:`augment_extras`).
MIN_EPOCHS_FOR_EXTRAS = 20
#: Batches from this size up keep batch norm under ``norm="auto"``.
MIN_BATCH_FOR_BATCH_NORM = 8
#: Largest brightness shift of ``augment="auto"``, in standard deviations of
#: the training intensities (see :func:`default_augmenters`).
BRIGHTNESS_SHIFT = 0.15


def norm_for(batch_size):
    """``norm="auto"``: batch norm for batches of :data:`MIN_BATCH_FOR_BATCH_NORM`
    or more, instance norm (nnU-Net's choice) for smaller ones, whose batch
    statistics are noisy."""
    return "batch" if batch_size >= MIN_BATCH_FOR_BATCH_NORM else "instance"


def default_augmenters(n_channels, extras=True, spread=1.0):
    """``augment="auto"``, after nnU-Net's 2-D augmentation, milder (short
    CPU budgets train few epochs):

    - geometry: images of 3 channels are taken for photographs of scenes,
      which have an up and a down: left-right flips only; any other image
      (grayscale or multichannel microscopy, medical and remote-sensing
      data) is flipped along both axes and turned by multiples of 90 degrees
      (half turns on non-square batches), which keep every pixel and label;
    - with ``extras``, each image with probability 0.3: a small rotation and
      scaling (+-15 degrees, 0.85-1.15), a change of brightness and contrast,
      a gamma change (0.7-1.5). :func:`augment_extras` says when.

    The contrast (+-15 %) and gamma changes are relative to each image. The
    brightness shift is sized to the data, as nnU-Net's intensity changes
    act on images it has normalised: at most :data:`BRIGHTNESS_SHIFT` times
    ``spread``, the training images' intensity standard deviation (the
    mean over channels, in the units the augmenters see: uint8 / 255,
    uint16 / 65535, floats as given). A fixed shift would swamp 12-bit
    microscopy stored as uint16 (values up to 4095, a standard deviation
    near 0.01 in those units) and vanish in floats of large range.
    Measured on 2 CPU cores against a fixed shift of 0.15 (one run per
    seed): RGB shapes of 96 x 96 after 60 s 0.910 and 0.856 mean IoU
    against 0.908 and 0.814 (seeds 0, 1); membrane slices after 600 s 0.798
    against 0.797 (seed 1).
    """
    from .augmentation import (
        RandomAffine,
        RandomBrightnessContrast,
        RandomFlip,
        RandomGamma,
        RandomRotate90,
    )

    geometry = ([RandomFlip(axes=("horizontal",))] if n_channels == 3
                else [RandomFlip(), RandomRotate90()])
    if not extras:
        return geometry
    return geometry + [
        RandomAffine(degrees=15, scale=(0.85, 1.15), translate=(0, 0), p=0.3),
        RandomBrightnessContrast(brightness=BRIGHTNESS_SHIFT * float(spread), contrast=0.15,
                                 p=0.3),
        RandomGamma(gamma=(0.7, 1.5), p=0.3),
    ]


def intensity_spread(fingerprint):
    """The training intensities' standard deviation, the mean over channels,
    from a fingerprint (:func:`data_fingerprint`); 1.0 without one. Always
    finite: channels whose value is not (a fingerprint of an older version)
    are left out, and 1.0 stands in when none is."""
    std = (fingerprint or {}).get("intensity", {}).get("std")
    values = np.asarray(std if std else [], dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if not values.size:
        return 1.0
    return float(np.sum(values / values.size))  # divided first: no overflow near float64's limit


def projected_epochs(max_epochs, max_time, first_epoch_seconds):
    """The epochs a fit will train: ``max_epochs``, or under a time budget as
    many as fit at the first epoch's pace (at most ``max_epochs``); None
    under a time budget before the first epoch has run."""
    if max_time is None:
        return max_epochs
    if first_epoch_seconds is None:
        return None
    return min(max_epochs, max_time / max(first_epoch_seconds, 1e-9))


def augment_extras(epochs):
    """Whether ``augment="auto"`` adds its random affine and intensity changes
    to the flips: only for fits of at least :data:`MIN_EPOCHS_FOR_EXTRAS`
    epochs (``epochs`` from :func:`projected_epochs`; None, before the
    first epoch of a time budget, counts as few).

    They are a regulariser that pays off over many passes through the data
    and slows fitting before that. Measured on 2 CPU cores (bf16, one run
    each, mean IoU of the flips alone vs with the changes): RGB shapes of
    256 x 256 (4 classes, 60 images) 0.548 vs 0.515 after 8 epochs and 0.596
    vs 0.564 after 15; RGB shapes of 96 x 96 (5 classes, 160 images) 0.719
    vs 0.724 after 14 epochs, 0.861 vs 0.876 after 28; membrane slices
    0.791 vs 0.794 after 13 epochs.
    """
    return epochs is not None and epochs >= MIN_EPOCHS_FOR_EXTRAS


def tta_for(n_channels, default_augmentation):
    """``tta="auto"``: the views the default augmentation trained the network
    for, as nnU-Net predicts with the mirrorings it trained with: left-right
    mirroring for images of 3 channels, flips and quarter turns for others;
    none when the augmentation was chosen by the user."""
    if not default_augmentation:
        return False
    return "horizontal" if n_channels == 3 else True


def device_fingerprint(device, dist=None):
    """``{"type", "name", "memory_bytes"}`` of a torch device (memory is
    None on a CPU). With ``dist`` (a data-parallel context, which has
    ``max_float``), the memory is the smallest over its ranks' GPUs: every
    rank then plans the same patches, batches and depth (ranks on GPUs of
    different sizes otherwise ran different numbers of steps per epoch)."""
    device = torch.device(device)
    memory = name = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        memory, name = int(props.total_memory), props.name
    if dist is not None:  # every rank joins the collective, whatever its device
        smallest = -dist.max_float(-(math.inf if memory is None else memory))
        memory = None if memory is None else int(smallest)
    return {"type": device.type, "name": name or device.type, "memory_bytes": memory}


def data_fingerprint(images, class_counts, classes, intensities):
    """The data half of the fingerprint.

    Parameters
    ----------
    images : ndarray or list
        Checked training images (channels last).
    class_counts : array of int
        Labelled pixels per class.
    classes : ndarray
        The label values of the classes.
    intensities : dict
        From :func:`sksegment._normalization.intensity_statistics`.

    Returns
    -------
    fingerprint : dict
        ``n_images``, ``shape_median``, ``shape_min``, ``shape_max``,
        ``n_pixels``, ``n_channels``, ``dtype``, ``intensity`` and
        ``class_frequencies`` ({label: share of the labelled pixels}).
    """
    shapes = np.array([image_shape(images, i) for i in range(len(images))])
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum()
    dtype = (images[0] if isinstance(images, list) else images).dtype
    return {
        "n_images": len(images),
        "shape_median": tuple(int(v) for v in np.median(shapes, axis=0)),
        "shape_min": tuple(int(v) for v in shapes.min(axis=0)),
        "shape_max": tuple(int(v) for v in shapes.max(axis=0)),
        "n_pixels": int(shapes.prod(axis=1).sum()),
        "n_channels": int(n_channels(images)),
        "dtype": str(dtype),
        "intensity": intensities,
        "class_frequencies": {c.item() if hasattr(c, "item") else c:
                              float(n / total) if total else 0.0
                              for c, n in zip(classes, counts)},
    }


def unet_cost(patch, depth, width, in_channels=1, n_classes=2):
    """Feature-map elements a training step keeps and multiply-accumulates of
    a forward pass, for one image through the U-Net of sksegment.

    Each level ``l`` (``width * 2**l`` maps, ``patch / 2**l`` pixels) has two
    3x3 convolutions in the encoder and, above the bottleneck, a 2x2
    transposed convolution, a concatenation and two 3x3 convolutions in the
    decoder.
    """
    h, w = patch
    units = 0.0
    macs = 0.0
    previous = in_channels
    for level in range(depth + 1):
        c = width * 2 ** level
        px = (h / 2 ** level) * (w / 2 ** level)
        units += 2 * c * px
        macs += 9 * (previous * c + c * c) * px
        if level < depth:
            units += 5 * c * px + c * px / 4  # decoder maps and the pooled map
            macs += 4 * (2 * c) * c * px / 4 + 9 * (2 * c * c + c * c) * px
        previous = c
    macs += width * n_classes * h * w
    return units, macs


def depth_for(patch, width, max_depth=MAX_DEPTH):
    """Downsampling steps for a patch: the bottleneck keeps at least
    :data:`MIN_BOTTLENECK` pixels along the shorter axis and the widest level
    at most :data:`MAX_FEATURES` maps (at least 1)."""
    by_size = math.floor(math.log2(max(min(patch) / MIN_BOTTLENECK, 1)))
    by_width = math.floor(math.log2(max(MAX_FEATURES / width, 1)))
    return max(1, min(by_size, by_width, max_depth))


def _round_to(value, multiple):
    return max(multiple, int(value // multiple) * multiple)


def bottleneck(shape, depth):
    """The bottleneck a U-Net of ``depth`` keeps of an input ``shape``
    padded to multiples of ``2 ** depth``."""
    return tuple(-(-int(v) // 2 ** depth) for v in shape)


def _depth_reason(shape, depth, what):
    """The log line of ``depth="auto"``: what the depth keeps of ``shape``."""
    kept = bottleneck(shape, depth)
    if min(shape) < 2 * MIN_BOTTLENECK:  # below one halving that keeps MIN_BOTTLENECK
        one = "; one pixel" if math.prod(kept) < 2 else ""
        return (f"depth {depth}: the {what} {tuple(shape)} is too small to keep "
                f"{MIN_BOTTLENECK} pixels along its shorter axis at the bottleneck; the least "
                f"depth keeps {kept}{one} (padded to multiples of {2 ** depth})")
    return (f"depth {depth}: bottleneck of at least {MIN_BOTTLENECK} pixels on {tuple(shape)}, "
            f"at most {MAX_FEATURES} feature maps")


def _step_fits(cost, batch, device):
    units, macs = cost
    if device["type"] == "cuda" and device["memory_bytes"]:
        return units * batch * BYTES_PER_UNIT <= GPU_MEMORY_SHARE * device["memory_bytes"]
    return macs * batch <= CPU_STEP_MACS


def _batch_within(cost, device):
    """The largest batch whose step fits the device budget."""
    units, macs = cost
    if device["type"] == "cuda" and device["memory_bytes"]:
        return int(GPU_MEMORY_SHARE * device["memory_bytes"] // (units * BYTES_PER_UNIT))
    return int(CPU_STEP_MACS // macs)


def plan(fingerprint, device, *, patch_size="auto", depth="auto", batch_size="auto", width=16,
         n_classes=2):
    """Patch size, depth and batch size from a fingerprint; explicit values win.

    Parameters
    ----------
    fingerprint : dict
        From :func:`data_fingerprint`.
    device : dict
        From :func:`device_fingerprint`.
    patch_size : "auto", None, int or (int, int)
    depth : "auto" or int
    batch_size : "auto" or int
    width : int
        Feature maps at the first level.
    n_classes : int

    Returns
    -------
    choices : dict
        ``patch_size`` ((h, w), or None for whole images), ``depth``,
        ``batch_size`` and ``reasons`` (one line per rule that decided).

    Examples
    --------
    >>> from sksegment._planning import plan
    >>> fp = {"shape_median": (512, 512), "shape_max": (512, 512), "n_pixels": 30 * 512 * 512,
    ...       "n_channels": 1}
    >>> choice = plan(fp, {"type": "cpu", "memory_bytes": None})
    >>> choice["patch_size"], choice["depth"], choice["batch_size"]
    ((160, 192), 5, 2)
    """
    median = tuple(fingerprint["shape_median"])
    largest = tuple(fingerprint["shape_max"])
    c_in = fingerprint["n_channels"]
    reasons = []

    def depth_of(p):
        return depth if depth != "auto" else depth_for(p, width)

    def cost(p):
        return unet_cost(p, depth_of(p), width, c_in, n_classes)

    if patch_size == "auto":
        patch = list(median)
        min_batch = MIN_BATCH if batch_size == "auto" else batch_size
        while not _step_fits(cost(tuple(patch)), min_batch, device):
            unit = 2 ** depth_of(tuple(patch))
            # the axis largest relative to the median image; on a tie the longer one
            axis = max((0, 1), key=lambda a: (patch[a] / median[a], patch[a]))
            if patch[axis] <= max(unit, 2 * MIN_BOTTLENECK):
                break
            patch[axis] = max(unit, patch[axis] - unit)
        unit = 2 ** depth_of(tuple(patch))
        # a multiple of the unit that keeps at least 2 bottleneck pixels per
        # axis; a shorter side stays whole (padded): rounding 3 down to 2
        # would leave one pixel at the bottleneck, which instance norm cannot
        # normalise
        patch = tuple(_round_to(p, unit) if p >= 2 * unit else p for p in patch)
        if patch[0] >= largest[0] and patch[1] >= largest[1]:
            planned_patch = None
            reasons.append(f"whole images: the median image {median} fits the step budget "
                           f"of the {device['type']}")
        else:
            planned_patch = patch
            reasons.append(f"patch {patch}: the median image {median}, shrunk until a step "
                           f"of {min_batch} fits the {device['type']}'s budget")
    else:
        planned_patch = None if patch_size is None else (
            (patch_size, patch_size) if np.ndim(patch_size) == 0 else tuple(patch_size))
    shape = planned_patch if planned_patch is not None else median

    if depth == "auto":
        # a patch larger than the median image crops no more than the image
        seen = tuple(min(p, m) for p, m in zip(shape, median))
        planned_depth = depth_for(seen, width)
        reasons.append(_depth_reason(seen, planned_depth, "median image" if
                                     planned_patch is None or seen != shape else "patch"))
    else:
        planned_depth = depth

    if batch_size == "auto":
        step_cost = unet_cost(shape, planned_depth, width, c_in, n_classes)
        by_budget = _batch_within(step_cost, device)
        by_share = int(MAX_DATA_SHARE * fingerprint["n_pixels"] // (shape[0] * shape[1]))
        planned_batch = max(MIN_BATCH, min(by_budget, by_share))
        reason = (f"batch {planned_batch}: {by_budget} fit the budget, {by_share} cover "
                  f"{MAX_DATA_SHARE:.0%} of the training pixels, at least {MIN_BATCH}")
        n_images = fingerprint.get("n_images", planned_batch)
        if planned_patch is None and n_images < planned_batch:  # whole images: no more
            planned_batch = max(1, n_images)
            reason = f"batch {planned_batch}: every training image, trained whole"
        reasons.append(reason)
    else:
        planned_batch = batch_size
    return {"patch_size": planned_patch, "depth": planned_depth, "batch_size": planned_batch,
            "reasons": reasons}
