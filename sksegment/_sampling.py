"""Drawing training batches from images kept in their own dtype on the host.

A batch is a NumPy triple ``(x, y, valid)``: images ``(B, h, w, C)`` and masks
``(B, h, w)`` in the user's dtypes, and ``valid`` — a boolean ``(B, h, w)``
array, or None when every pixel is real — that marks the pixels which came
from an image rather than from padding. Only the batch is copied, never the
data set.

Images and masks may be array-likes that read on demand
(:class:`sksegment._arrays.LazyArray`): a patch is read as the patch window
of the store (``images[i, top:top + h, left:left + w]``), never as the whole
image, and the foreground scan reads a mask in bounded row bands.
"""

import numpy as np

from ._arrays import image_shape, read_region, row_bands

#: Foreground positions kept per image for ``foreground_fraction``, shared
#: among the image's foreground classes ...
_MAX_FOREGROUND_SAMPLES = 1024
#: ... with at least this many for each class.
_MIN_CLASS_SAMPLES = 32


def _pair(value):
    if value is None:
        return None
    if np.ndim(value) == 0:
        return int(value), int(value)
    return int(value[0]), int(value[1])


class BatchSampler:
    """Shuffled batches of whole images or of random patches.

    Parameters
    ----------
    images : ndarray or LazyArray (n, H, W, C), or list of (H, W, C) arrays
    masks : ndarray or LazyArray (n, H, W), or list of (H, W) arrays
    batch_size : int
    patch_size : int, (int, int) or None
        Random crops of this size; None uses whole images (a batch of images
        of different sizes is padded to the largest).
    foreground_fraction : float
        Share of patches centred on a pixel whose label is not ``background``:
        of a class drawn uniformly among the image's foreground classes.
    background : label value or None
        The background label (``classes_[0]``); pixels equal to it, or to
        ``ignore_label``, are not foreground.
    """

    def __init__(self, images, masks, batch_size, patch_size=None,
                 foreground_fraction=0.0, background=None, ignore_label=None):
        self.images = images
        self.masks = masks
        self.batch_size = batch_size
        self.patch_size = _pair(patch_size)
        self.foreground_fraction = foreground_fraction
        self.background = background
        self.ignore_label = ignore_label
        self.n = len(images)
        # one fancy index reads a batch of whole images only when both are arrays
        self._is_array = not isinstance(images, list) and not isinstance(masks, list)
        self._foreground = {}
        # patches each image gives per epoch: enough to cover its area once
        # (one for whole-image training); sizes are fixed, so counted once
        if self.patch_size is None:
            self._n_patches = np.ones(self.n, dtype=np.int64)
        else:
            areas = np.array([h * w for h, w in (image_shape(masks, i) for i in range(self.n))])
            per_patch = self.patch_size[0] * self.patch_size[1]
            self._n_patches = np.maximum(1, np.round(areas / per_patch)).astype(np.int64)

    def patches_per_image(self, i):
        """Patches image ``i`` gives per epoch (``round(H * W / patch area)``,
        at least one; one for whole-image training)."""
        return int(self._n_patches[i])

    def epoch_items(self, indices=None):
        """Image indices of one epoch, each repeated :meth:`patches_per_image` times."""
        indices = np.arange(self.n) if indices is None else np.asarray(indices)
        return np.repeat(indices, self._n_patches[indices])

    def n_batches(self, indices=None):
        return -(-len(self.epoch_items(indices)) // self.batch_size)

    def epoch(self, rng, indices=None):
        """Yield the batches of one epoch over ``indices`` (default: all), in
        an order drawn from ``rng`` (a NumPy RandomState). With patches, an
        epoch draws as many patches from each image as cover it once."""
        items = self.epoch_items(indices)
        order = items[rng.permutation(len(items))]
        for start in range(0, len(order), self.batch_size):
            yield self.batch(order[start:start + self.batch_size], rng)

    def batch(self, idx, rng):
        if self.patch_size is None:
            # sorted: fancy indexing reads memory in order, and a list of the
            # same images batches (and so trains) as the array does
            idx = np.sort(idx)
            if self._is_array:
                return self.images[idx], self.masks[idx], None
        crops = [self._crop(i, rng) for i in idx]
        return _stack([c[0] for c in crops], [c[1] for c in crops])

    def _crop(self, i, rng):
        H, W = image_shape(self.masks, i)
        if self.patch_size is None:
            return (read_region(self.images, i, 0, 0, H, W),
                    read_region(self.masks, i, 0, 0, H, W))
        ph, pw = self.patch_size
        cy = cx = None
        if self.foreground_fraction > 0 and rng.random_sample() < self.foreground_fraction:
            cy, cx = self._foreground_pixel(i, rng)
        if cy is None:
            top = rng.randint(0, max(H - ph, 0) + 1)
            left = rng.randint(0, max(W - pw, 0) + 1)
        else:
            top = int(np.clip(cy - ph // 2, 0, max(H - ph, 0)))
            left = int(np.clip(cx - pw // 2, 0, max(W - pw, 0)))
        return (read_region(self.images, i, top, left, ph, pw),
                read_region(self.masks, i, top, left, ph, pw))

    def _foreground_in(self, i, top, bottom):
        """Flat positions and labels of the foreground pixels in rows
        ``top:bottom`` of mask ``i``."""
        W = image_shape(self.masks, i)[1]
        msk = read_region(self.masks, i, top, 0, bottom - top, W).ravel()
        fg = msk != self.background
        if self.ignore_label is not None:
            fg &= msk != self.ignore_label
        where = np.flatnonzero(fg)
        return where + top * W, msk[where]

    def _foreground_pixel(self, i, rng):
        """A random foreground pixel of image ``i``: a class drawn uniformly
        among the foreground classes the image holds, then one of its pixels,
        as nnU-Net's sampler does (rare classes are centred as often as
        common ones); (None, None) when the image has no foreground."""
        if i not in self._foreground:
            self._foreground[i] = self._scan_foreground(i, rng)
        per_class = self._foreground[i]
        if not per_class:
            return None, None
        where = per_class[rng.randint(len(per_class))]
        return divmod(int(where[rng.randint(where.size)]), image_shape(self.masks, i)[1])

    def _scan_foreground(self, i, rng):
        """Positions of each foreground class of mask ``i``, sorted by class:
        a subsample of each (as nnU-Net keeps of class locations) of
        ``_MAX_FOREGROUND_SAMPLES`` shared equally among the classes, at
        least ``_MIN_CLASS_SAMPLES`` each, so that what an image keeps stays
        bounded however many classes it holds.

        The mask is read in row bands of bounded size, twice: the first pass
        counts each class's pixels per band, then each class's subsample is
        drawn as ranks (``rng.choice(count, keep, replace=False)``, all of
        them when there are fewer) and the second pass, over the bands that
        hold a drawn rank, picks the positions of those ranks (the band's
        positions grouped by class with one stable sort), so no more than the
        kept positions is ever held.
        """
        H, W = image_shape(self.masks, i)
        bands = row_bands(self.masks, i)
        counts = {}
        for b, (top, bottom) in enumerate(bands):
            labels, n = np.unique(self._foreground_in(i, top, bottom)[1], return_counts=True)
            for label, count in zip(labels.tolist(), n.tolist()):
                counts.setdefault(label, np.zeros(len(bands), dtype=np.int64))[b] = count
        if not counts:
            return []
        keep = max(_MIN_CLASS_SAMPLES, _MAX_FOREGROUND_SAMPLES // len(counts))
        ranks, offsets, kept = {}, {}, {}
        for label in sorted(counts):
            total = int(counts[label].sum())
            ranks[label] = (np.arange(total) if total <= keep
                            else np.sort(rng.choice(total, keep, replace=False)))
            offsets[label] = np.concatenate([[0], np.cumsum(counts[label])])
            kept[label] = np.empty(ranks[label].size, dtype=np.int32 if H * W < 2**31
                                   else np.int64)
        for b, (top, bottom) in enumerate(bands):
            wanted = {label: np.searchsorted(ranks[label], offsets[label][b:b + 2])
                      for label in kept}
            wanted = {label: (lo, hi) for label, (lo, hi) in wanted.items() if hi > lo}
            if not wanted:
                continue
            positions, labels = self._foreground_in(i, top, bottom)
            # grouped by class in one stable sort: each class's positions stay in scan order
            order = np.argsort(labels, kind="stable")
            starts = np.searchsorted(labels[order], list(wanted))
            for (label, (lo, hi)), start in zip(wanted.items(), starts):
                of_class = order[start + ranks[label][lo:hi] - offsets[label][b]]
                kept[label][lo:hi] = positions[of_class]
        return list(kept.values())


def _stack(xs, ys):
    """Stack crops; pad those smaller than the largest (``valid`` marks real pixels)."""
    shapes = {y.shape for y in ys}
    if len(shapes) == 1:
        return np.stack(xs), np.stack(ys), None
    h = max(s[0] for s in shapes)
    w = max(s[1] for s in shapes)
    B, C = len(xs), xs[0].shape[-1]
    x = np.zeros((B, h, w, C), dtype=np.result_type(*[a.dtype for a in xs]))
    y = np.zeros((B, h, w), dtype=np.result_type(*[a.dtype for a in ys]))
    valid = np.zeros((B, h, w), dtype=bool)
    for b, (xi, yi) in enumerate(zip(xs, ys)):
        hi, wi = yi.shape
        x[b, :hi, :wi] = xi
        y[b, :hi, :wi] = yi
        valid[b, :hi, :wi] = True
    return x, y, valid
