"""Prediction of dask arrays as lazy dask arrays.

:func:`predict_dask` turns the images of a dask array into a dask array of
predictions, one task per block, without computing anything. Dask is
imported only here, and only when the caller passed a dask array.

Blocks hold one image along the first axis and every channel. An image that
is predicted whole (below the pixel budget of tiled prediction) is one block.
An image predicted in tiles keeps the chunks of its rows and columns (chunks
smaller than a tile are merged with a neighbour), and each block is extended
by one tile size on every side (``dask.array.overlap.overlap``, no padding at
the image border): every tile of the whole image's grid that touches the
block's interior then lies inside the extended block. The block computes
those tiles and blends them in the same order as the in-memory prediction,
so the prediction of its interior does not depend on where the image was
cut: it is the in-memory prediction, up to the float rounding of
convolutions run on differently composed batches of tiles.

The network is put into the graph once, as one ``dask.delayed`` object that
every block task depends on.
"""

import uuid

import numpy as np
import torch

from ._data import check_finite
from ._inference import (
    _is_tiled,
    _NoBar,
    _predict_tiled,
    _predict_whole,
    _tile_region,
)


def _merge_chunks(chunks, minimum):
    """Chunk sizes with each at least ``minimum`` (small ones merged into a
    neighbour); one chunk when the axis is shorter than ``minimum``."""
    out = []
    for c in chunks:
        if out and out[-1] < minimum:
            out[-1] += c
        else:
            out.append(c)
    if len(out) > 1 and out[-1] < minimum:
        last = out.pop()
        out[-1] += last
    return tuple(out)


class _Window:
    """The part of one image that a block holds, addressed in image coordinates."""

    def __init__(self, block, top, left, shape):
        self.block, self.top, self.left = block, top, left
        self.shape = (1,) + tuple(shape) + block.shape[3:]
        self.dtype = block.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        _, rows, cols = key
        r0, r1 = rows.start - self.top, rows.stop - self.top
        c0, c1 = cols.start - self.left, cols.stop - self.left
        if r0 < 0 or c0 < 0 or r1 > self.block.shape[1] or c1 > self.block.shape[2]:
            raise RuntimeError("a tile reaches outside the block's overlap; the overlap depth "
                               "is smaller than the tile.")
        return self.block[0, r0:r1, c0:c1]


class _BlockPredictor:
    """What every block task needs: the network, the settings and the label values."""

    def __init__(self, model, cfg, classes):
        self.model, self.cfg, self.classes = model, cfg, classes

    @torch.inference_mode()
    def __call__(self, block, top, left, image_shape, region):
        """Prediction of ``region`` = (top, bottom, left, right) of an image
        of ``image_shape``, from ``block`` = (1, h, w, C) holding the image
        from row ``top`` and column ``left`` on."""
        r0, r1, c0, c1 = region
        cfg = self.cfg
        check_finite(block, "X")  # predict left this to the computation
        if not _is_tiled(image_shape, cfg):
            result = _predict_whole(self.model, block, [0], cfg)[0]
        else:
            window = _Window(block, top, left, image_shape)
            result = None

            def write(row, part):
                nonlocal result
                if result is None:
                    result = np.empty((r1 - r0, c1 - c0) + part.shape[2:], dtype=part.dtype)
                result[row - r0:row - r0 + len(part)] = part

            _predict_tiled(self.model, window, 0, cfg, _NoBar(), write, region=region)
        if self.classes is not None:
            result = self.classes[result]
        return result[None]


def _predict_block(block, predictor, depth, image_shape, block_info=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"][1:3]
    top = r0 - depth[0] if r0 > 0 else 0
    left = c0 - depth[1] if c0 > 0 else 0
    expected = (min(image_shape[0], r1 + depth[0]) - top,
                min(image_shape[1], c1 + depth[1]) - left)
    if tuple(block.shape[1:3]) != expected:
        raise RuntimeError(f"dask handed a block of shape {block.shape[1:3]} for the region "
                           f"rows {r0}:{r1}, columns {c0}:{c1}; expected {expected}.")
    return predictor(block, top, left, image_shape, (r0, r1, c0, c1))


def predict_dask(predictions, x, classes, n_classes):
    """A lazy dask array of the predictions of the dask array ``x``.

    Parameters
    ----------
    predictions : sksegment._inference.Predictions
        Gives the network and the settings (its images are not used).
    x : dask array of shape (n, H, W) or (n, H, W, C)
    classes : ndarray
        Label values: labels come out in their values and dtype.
    n_classes : int
        Width of the probability output.

    Returns
    -------
    dask array of shape (n, H, W) in the dtype of ``classes`` (labels), or
    (n, H, W, n_classes) float32 (probabilities); one image per chunk along
    the first axis, the input's chunks of rows and columns otherwise (see the
    module notes for merged chunks and whole images).
    """
    import dask
    import dask.array as da

    cfg = dict(predictions.cfg, verbose=0)
    labels = cfg["output"] == "labels"
    if x.ndim == 3:
        x = x[..., None]
    _, height, width, _ = x.shape
    x = x.rechunk({0: 1, 3: -1})
    if _is_tiled((height, width), cfg):
        rh, rw = _tile_region((height, width), cfg["tile"])
        x = x.rechunk({1: _merge_chunks(x.chunks[1], rh), 2: _merge_chunks(x.chunks[2], rw)})
        depth = (rh, rw)
        blocks = da.overlap.overlap(x, depth={0: 0, 1: rh, 2: rw, 3: 0}, boundary="none")
    else:
        x = x.rechunk({1: -1, 2: -1})
        depth = (0, 0)
        blocks = x
    predictor = dask.delayed(
        _BlockPredictor(predictions.model, cfg, classes if labels else None),
        name=f"sksegment-model-{uuid.uuid4().hex}", traverse=False)
    dtype = classes.dtype if labels else np.dtype(np.float32)
    chunks = x.chunks[:3] if labels else x.chunks[:3] + ((n_classes,),)
    return da.map_blocks(
        _predict_block, blocks, predictor, depth=depth, image_shape=(height, width),
        chunks=chunks, drop_axis=3 if labels else None, dtype=dtype,
        meta=np.empty((0,) * len(chunks), dtype=dtype),
        name=f"sksegment-{'predict' if labels else 'predict-proba'}-{uuid.uuid4().hex}")


class EagerView:
    """The segmenter, but ``predict`` computes a dask input in memory (for
    scorers, which compare the prediction with ``y`` right away)."""

    def __init__(self, seg):
        self._seg = seg

    def __getattr__(self, name):
        return getattr(self._seg, name)

    def predict(self, X):
        images, chain = self._seg._check_predict_input(X)
        check_finite(images, "X")  # the lazy path leaves this to the computation
        return self._seg._predict_labels(images, chain)


def postprocess_dask(labels, post, classes):
    """Apply a post-processor to a lazy dask array of label images: each image
    is brought into one chunk (connected components need the whole image),
    mapped to class indices, post-processed and mapped back."""
    whole = labels.rechunk({1: -1, 2: -1})

    def apply(block):
        out = np.empty_like(block)
        for j, image in enumerate(block):
            out[j] = classes[post.apply(np.searchsorted(classes, image))]
        return out

    return whole.map_blocks(apply, dtype=labels.dtype)
