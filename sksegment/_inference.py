"""Prediction on images of any size: padding, sliding-window tiles, test-time augmentation.

:func:`iter_predictions` yields one prediction per image, in order. An image
is predicted either whole (images of one shape batched together) or, when it
is large, in overlapping tiles whose class probabilities are blended with a
Gaussian importance map. Tiled prediction keeps memory bounded: only a band of
tile rows is accumulated in float32 at any time, and rows that no later tile
touches are finalised (divided by the summed weights, and turned into class
indices for ``output="labels"``) and released.

Network inputs must have a height and width that are multiples of the model's
downsampling factor (``pad_multiple``); :func:`pad_to_multiple` pads at the
bottom and right, and the prediction is cropped back.
"""

import math
import numbers

import numpy as np
import torch

from ._arrays import LazyArray, TileReader, image_shape, is_array_like
from ._forward import (  # noqa: F401  (pad_to_multiple and gaussian_importance_map: public here)
    AutocastForward,
    _argmax_classes,
    _finish,
    _forward_proba,
    _logits,
    _prepare,
    gaussian_importance_map,
    pad_to_multiple,
)
from ._validation import check_bool, check_int, check_number, is_int

#: Default pixel budget of ``iter_predictions``: with ``tiling="auto"`` an
#: image with more pixels than this is predicted in tiles, and a whole-image
#: batch holds at most this many pixels (but always at least one image).
MAX_TILE_PIXELS = 1024 * 1024

#: Default tile side of ``iter_predictions`` (rounded up to ``pad_multiple``).
DEFAULT_TILE_SIZE = 256

_OUTPUTS = ("proba", "labels", "views")


# ---------------------------------------------------------------------- #
# argument checking
# ---------------------------------------------------------------------- #
def _check_pair(value, name):
    """An int or a pair of ints, each >= 1, as a tuple ``(h, w)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair (h, w); got {value!r}.")
        return tuple(check_int(v, name, low=1) for v in value)
    if not is_int(value):
        raise TypeError(f"{name} must be an integer >= 1 or a pair (h, w) of them; "
                        f"got {value!r}.")
    v = check_int(value, name, low=1)
    return v, v


def check_tile_size(tile_size, pad_multiple):
    """Tile (h, w): each a multiple of pad_multiple (rounded up)."""
    if tile_size is None:
        tile = (DEFAULT_TILE_SIZE, DEFAULT_TILE_SIZE)
    else:
        tile = _check_pair(tile_size, "tile_size")
        for t, m in zip(tile, pad_multiple):
            if t < m:
                raise ValueError(
                    f"tile_size must be at least pad_multiple (the model's downsampling "
                    f"factor) {m} along each axis; got tile_size={tile_size!r}."
                )
    return tuple(-(-t // m) * m for t, m in zip(tile, pad_multiple))


def _check_tiling(tiling):
    if isinstance(tiling, (bool, np.bool_)):
        return bool(tiling)
    if isinstance(tiling, str) and tiling == "auto":
        return "auto"
    raise ValueError(f"tiling must be True, False or 'auto'; got {tiling!r}.")


def _check_device(device):
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str) and not is_int(device):
        raise TypeError(f"device must be a torch.device, a string such as 'cpu' or 'cuda', or "
                        f"a CUDA device index; got {device!r}.")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None


def _check_image_set(images):
    """Images as a 4-D array (n, H, W, C) or a list of (H, W, C) arrays, without
    copying or reading; array-likes that read on demand are wrapped in a
    :class:`~sksegment._arrays.LazyArray`."""
    if isinstance(images, torch.Tensor):
        raise TypeError("images must be NumPy arrays (channels last), not a torch.Tensor.")
    if isinstance(images, (list, tuple)):
        out = []
        for i, img in enumerate(images):
            if is_array_like(img):
                img = LazyArray(img, f"images[{i}]")
            if not isinstance(img, (np.ndarray, LazyArray)):
                raise TypeError(f"images[{i}] must be a NumPy array; got {type(img).__name__}.")
            if img.ndim == 2:
                img = img.with_channel_axis() if isinstance(img, LazyArray) else img[:, :, None]
            if img.ndim != 3 or 0 in img.shape:
                raise ValueError(f"images[{i}] must be a non-empty (H, W, C) array; "
                                 f"got shape {img.shape}.")
            if img.dtype.kind not in "biuf":
                raise TypeError(f"images[{i}] must hold real numbers; got dtype {img.dtype}.")
            out.append(img)
        return out
    if is_array_like(images):
        images = LazyArray(images, "images")
    if not isinstance(images, (np.ndarray, LazyArray)):
        raise TypeError("images must be a NumPy array (n, H, W, C) or a list of (H, W, C) "
                        f"arrays; got {type(images).__name__}.")
    if images.ndim == 3:
        images = (images.with_channel_axis() if isinstance(images, LazyArray)
                  else images[..., None])
    if images.ndim != 4 or 0 in images.shape[1:]:
        raise ValueError("images must be a 4-D array (n, H, W, C) with non-empty images; "
                         f"got shape {images.shape}.")
    if images.dtype.kind not in "biuf":
        raise TypeError(f"images must hold real numbers; got dtype {images.dtype}.")
    return images


# ---------------------------------------------------------------------- #
# tiles
# ---------------------------------------------------------------------- #
def _tile_starts(length, tile, overlap):
    """Start offsets of tiles of size ``tile`` covering ``range(length)``.

    Evenly spaced, the first at 0 and the last flush with the end, with a
    step of at most ``tile * (1 - overlap)`` (at least 1).
    """
    if length <= tile:
        return [0]
    step = max(1.0, tile * (1.0 - overlap))
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _tile_region(shape, tile):
    """Size of the image region a tile covers: the tile, or the image extent
    where the image is smaller (the region is then padded like a whole image)."""
    return tuple(min(t, s) for t, s in zip(tile, shape))


class _Band:
    """Float32 accumulator of the blended probabilities of ``height`` rows
    starting at image row ``start``, over the columns of the predicted region
    (rows above are final and handed to ``write``)."""

    def __init__(self, n_classes, height, width, start, write, output, device):
        self.acc = torch.zeros((n_classes, height, width), dtype=torch.float32, device=device)
        self.weight = torch.zeros((height, width), dtype=torch.float32, device=device)
        self.height = height
        self.start = start
        self.write = write
        self.output = output

    def add(self, p, weights, row, col):
        h, w = p.shape[-2:]
        self.acc[:, row:row + h, col:col + w].addcmul_(p, weights)
        self.weight[row:row + h, col:col + w].add_(weights)

    def flush(self, rows):
        """Hand the first ``rows`` rows of the band to ``write`` and move it down."""
        if rows <= 0:
            return
        prob = self.acc[:, :rows].div_(self.weight[:rows])  # in place: these rows are done
        self.write(self.start, _finish(prob, self.output))
        keep = self.height - rows
        if keep > 0:
            self.acc[:, :keep] = self.acc[:, rows:].clone()
            self.weight[:keep] = self.weight[rows:].clone()
        self.acc[:, keep:].zero_()
        self.weight[keep:].zero_()
        self.start += rows


def _tiles_in(shape, cfg, region):
    """Tile offsets (row-major) of an image of ``shape`` whose tile touches
    ``region`` = (top, bottom, left, right), and the tile size."""
    rh, rw = _tile_region(shape, cfg["tile"])
    r0, r1, c0, c1 = region
    ys = [y for y in _tile_starts(shape[0], rh, cfg["overlap"]) if y < r1 and y + rh > r0]
    xs = [x for x in _tile_starts(shape[1], rw, cfg["overlap"]) if x < c1 and x + rw > c0]
    return [(y, x) for y in ys for x in xs], (rh, rw)


def _n_tiles(shape, cfg):
    return len(_tiles_in(shape, cfg, (0, shape[0], 0, shape[1]))[0])


def _predict_tiled(model, images, i, cfg, bar, write, region=None):
    """Blend the tile predictions of image ``i`` over ``region`` = (top,
    bottom, left, right) (default: the whole image); ``write(row, block)``
    receives the finished rows of the region, top to bottom, as
    :func:`_finish` makes them.

    Tiles are read with :class:`TileReader` (from a store: a band of tile
    rows at a time, never the whole image). The result at a pixel depends only on
    the tiles of the whole image's grid that cover it, added in row-major
    order, so a region gives the values of the whole image there.
    """
    height, width = image_shape(images, i)
    region = (0, height, 0, width) if region is None else region
    r0, r1, c0, c1 = region
    positions, (rh, rw) = _tiles_in((height, width), cfg, region)
    device = cfg["device"]
    weights = gaussian_importance_map(rh, rw, device=device)
    band = None
    bs = cfg["batch_size"]
    read = TileReader(images, i, positions, (rh, rw))
    for s in range(0, len(positions), bs):
        chunk = positions[s:s + bs]
        batch = np.stack([read(y, x) for y, x in chunk])
        x_in = _prepare(batch, device, cfg["transform"])
        del batch
        p = _forward_proba(model, x_in, cfg["pad_multiple"], cfg["tta"],
                           views=cfg["output"] == "views")
        del x_in
        if band is None:
            band = _Band(p.shape[1], rh, c1 - c0, r0, write, cfg["output"], device)
        for (y, x), pi in zip(chunk, p):
            band.flush(y - band.start)  # rows above this tile row are final
            ty0, ty1 = max(y, r0), min(y + rh, r1)
            tx0, tx1 = max(x, c0), min(x + rw, c1)
            if (ty0, ty1, tx0, tx1) != (y, y + rh, x, x + rw):  # the tile leaves the region
                pi = pi[:, ty0 - y:ty1 - y, tx0 - x:tx1 - x]
                w = weights[ty0 - y:ty1 - y, tx0 - x:tx1 - x]
            else:
                w = weights
            band.add(pi, w, ty0 - band.start, tx0 - c0)
        del p
        bar.update(1)
    band.flush(r1 - band.start)


# ---------------------------------------------------------------------- #
# scheduling
# ---------------------------------------------------------------------- #
def _is_tiled(shape, cfg):
    return cfg["tiling"] is True or (cfg["tiling"] == "auto"
                                     and shape[0] * shape[1] > cfg["max_pixels"])


def _jobs(images, cfg):
    """Work items in an order that lets outputs be yielded early:
    ("whole", [indices of one shape]) or ("tiles", [index])."""
    n = len(images)
    uniform = not isinstance(images, list)
    window = max(n, 1) if uniform else 8 * cfg["batch_size"]
    for start in range(0, n, window):
        jobs = []
        groups = {}
        for i in range(start, min(n, start + window)):
            shape = image_shape(images, i)
            if _is_tiled(shape, cfg):
                jobs.append(("tiles", [i]))
            else:
                groups.setdefault(shape, []).append(i)
        for shape, members in groups.items():
            cap = min(cfg["batch_size"], max(1, cfg["max_pixels"] // (shape[0] * shape[1])))
            jobs.extend(("whole", members[j:j + cap]) for j in range(0, len(members), cap))
        jobs.sort(key=lambda job: job[1][0])
        yield from jobs


def _n_steps(images, cfg):
    total = 0
    for kind, idx in _jobs(images, cfg):
        if kind == "whole":
            total += 1
        else:
            total += -(-_n_tiles(image_shape(images, idx[0]), cfg) // cfg["batch_size"])
    return total


def _predict_whole(model, images, idx, cfg):
    if isinstance(images, list):
        batch = np.stack([np.asarray(images[i][:, :]) for i in idx])
    else:
        batch = np.asarray(images[idx[0]:idx[-1] + 1])  # consecutive indices: a view
    x = _prepare(batch, cfg["device"], cfg["transform"])
    del batch
    if cfg["tta"] or cfg["output"] == "views":
        p = _forward_proba(model, x, cfg["pad_multiple"], cfg["tta"],
                           views=cfg["output"] == "views")
        del x
        return [_finish(p[j], cfg["output"]) for j in range(len(idx))]
    logits = _logits(model, x, cfg["pad_multiple"])
    del x
    # the softmax one image at a time: one image's probabilities at most in memory
    return [_finish(torch.softmax(logits[j], dim=0), cfg["output"]) for j in range(len(idx))]


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(images, cfg):
    if cfg["verbose"] < 1:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=_n_steps(images, cfg), unit="batch", desc="predict", leave=False)


@torch.inference_mode()
def _steps(model, images, cfg, write, bar):
    """Predict every image, handing finished rows to ``write(i, row, block)``;
    yields the indices of the images finished after each job."""
    for kind, idx in _jobs(images, cfg):
        if kind == "whole":
            for i, block in zip(idx, _predict_whole(model, images, idx, cfg)):
                write(i, 0, block)
            bar.update(1)
        else:
            i = idx[0]
            _predict_tiled(model, images, i, cfg, bar, lambda row, block, i=i: write(i, row, block))
        yield idx


class Predictions:
    """The predictions of a set of images, not computed yet.

    Iterating gives one array per image, in order (as
    :func:`iter_predictions`); :meth:`write_into` hands the finished rows of
    each image to a callback instead, so that they can go straight into an
    output array or store without a per-image array in between.

    Attributes
    ----------
    model, images, cfg
        The network, the checked images and the checked settings.
    """

    def __init__(self, model, images, cfg):
        self.model, self.images, self.cfg = model, images, cfg

    @property
    def output(self):
        return self.cfg["output"]

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        return _generate(self.model, self.images, self.cfg)

    def write_into(self, write):
        """Run the predictions: ``write(i, row, block)`` gets rows
        ``row:row + len(block)`` of image ``i`` (class indices ``(rows, W)``
        int64, or probabilities ``(rows, W, K)`` float32), each row once."""
        bar = _progress(self.images, self.cfg)
        try:
            for _ in _steps(self.model, self.images, self.cfg, write, bar):
                pass
        finally:
            bar.close()


def _generate(model, images, cfg):
    bar = _progress(images, cfg)
    ready, partial = {}, {}

    def write(i, row, block):
        if row == 0 and len(block) == image_shape(images, i)[0]:
            partial[i] = block  # a whole image at once: no copy
            return
        if i not in partial:
            partial[i] = np.empty(image_shape(images, i) + block.shape[2:], dtype=block.dtype)
        partial[i][row:row + len(block)] = block

    try:
        next_out = 0
        for idx in _steps(model, images, cfg, write, bar):
            for i in idx:
                ready[i] = partial.pop(i)
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
    finally:
        bar.close()


def make_predictions(model, images, *, device, output="proba", batch_size=8, pad_multiple=1,
                     transform=None, tiling="auto", tile_size=None, tile_overlap=0.25,
                     tta=False, max_tile_pixels=MAX_TILE_PIXELS, verbose=0):
    """The arguments of :func:`iter_predictions`, checked, as a
    :class:`Predictions` (nothing is computed yet)."""
    if not callable(model):
        raise TypeError(f"model must be a torch.nn.Module or a callable; got {model!r}.")
    images = _check_image_set(images)
    device = _check_device(device)
    if output not in _OUTPUTS:
        raise ValueError(f"output must be 'proba', 'labels' or 'views'; got {output!r}.")
    batch_size = check_int(batch_size, "batch_size", low=1)
    pad = _check_pair(pad_multiple, "pad_multiple")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be None or a callable; got {transform!r}.")
    tiling = _check_tiling(tiling)
    tile = check_tile_size(tile_size, pad)
    overlap = check_number(tile_overlap, "tile_overlap", low=0, high=1, high_open=True)
    if not (isinstance(tta, str) and tta == "horizontal"):
        tta = check_bool(tta, "tta")
    max_pixels = check_int(max_tile_pixels, "max_tile_pixels", low=1)
    if isinstance(verbose, bool) or not isinstance(verbose, numbers.Real):
        raise TypeError(f"verbose must be an integer >= 0; got {verbose!r}.")
    cfg = {"device": device, "output": output, "batch_size": batch_size, "pad_multiple": pad,
           "transform": transform, "tiling": tiling, "tile": tile, "overlap": overlap,
           "tta": tta, "max_pixels": max_pixels, "verbose": verbose}
    return Predictions(model, images, cfg)


def iter_predictions(model, images, *, device, output="proba", batch_size=8, pad_multiple=1,
                     transform=None, tiling="auto", tile_size=None, tile_overlap=0.25,
                     tta=False, max_tile_pixels=MAX_TILE_PIXELS, verbose=0):
    """Predict images of any size, one image at a time, with bounded memory.

    Each image is predicted either whole or in overlapping tiles. Whole
    images of one shape are batched together (a list of images of different
    sizes is grouped by shape; outputs keep the input order). In tiled mode,
    the tiles lie on a grid of evenly spaced offsets, the first at the image
    border and the last flush with the opposite border, neighbours
    overlapping by at least ``tile_overlap`` of the tile; their softmax
    probabilities are weighted with :func:`gaussian_importance_map` and
    normalised by the summed weights. Only a band of one tile height of the
    blended float32 probabilities is held at a time: rows that no later tile
    touches are finalised and written into the output.

    Arguments are checked when the function is called; the predictions are
    computed as the returned iterator is consumed, under
    ``torch.inference_mode()`` (which does not leak into the caller).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps float32 ``(N, C, H, W)`` to logits ``(N, K, H, W)`` for H and W
        multiples of ``pad_multiple``. Used as is: put it in eval mode first.
    images : ndarray of shape (n, H, W, C) or list of ndarray of shape (H, W, C)
        Channels-last images in any real dtype (see :func:`sksegment._data.to_tensor`),
        as returned by :func:`sksegment._data.check_images`; a 3-D array
        ``(n, H, W)`` or 2-D list entries are taken as one channel. Never
        modified; converted to tensors one batch (or batch of tiles) at a time.
        Array-likes that read on demand (zarr arrays, h5py datasets, dask
        arrays) are read one batch of images, or one tile, at a time.
    device : torch.device, str or int
        Device of the model; batches are moved there.
    output : {"proba", "labels", "views"}, default="proba"
        Yield probabilities ``(H, W, K)`` float32 or class indices ``(H, W)``
        int64 (the argmax of the probabilities, first index on ties);
        "views" yields ``(H, W, K + 1)``: the probabilities and, last, the
        mean entropy of the test-time-augmented views (of the one view
        without ``tta``), blended across tiles like the probabilities.
    batch_size : int, default=8
        Images (at most; see ``max_tile_pixels``) or tiles per forward pass.
    pad_multiple : int or (int, int), default=1
        The model's downsampling factor. Inputs are padded at the bottom and
        right to multiples of it (:func:`pad_to_multiple`: mirrored, or the
        border pixel repeated along an axis shorter than the padding), and
        predictions are cropped back.
    transform : callable or None, default=None
        Deterministic preprocessing ``x -> x`` of the float device tensor
        ``(N, C, H, W)``, applied right after the conversion, before padding
        (to tiles in tiled mode, so it should act per pixel or locally). It
        must keep N, H and W.
    tiling : {"auto", True, False}, default="auto"
        True predicts every image in tiles, False every image whole, and
        "auto" tiles the images with more than ``max_tile_pixels`` pixels.
    tile_size : int, (int, int) or None, default=None
        Tile height and width; None means 256. Each must be at least
        ``pad_multiple`` and is rounded up to a multiple of it. Along an axis
        where the image is smaller than the tile, one tile covers the image
        (padded to ``pad_multiple`` as in whole-image mode).
    tile_overlap : float, default=0.25
        Smallest overlap of neighbouring tiles, as a fraction of the tile, in
        [0, 1).
    tta : bool or "horizontal", default=False
        Test-time augmentation: average the probabilities over flipped (and,
        for a square image or tile, rotated) copies of the input, each
        prediction mapped back first. A square input is seen in the 8
        orientations of the square, any other in 4 (unflipped, flipped left
        to right, flipped top to bottom, both); the cost grows accordingly.
        "horizontal" averages the input and its left-right mirror only.
    max_tile_pixels : int, default=MAX_TILE_PIXELS (1024 * 1024)
        Pixel budget of one forward pass in whole-image mode: "auto" tiling
        predicts larger images in tiles, and a whole-image batch holds at most
        this many pixels (always at least one image).
    verbose : int, default=0
        1 or more shows a tqdm progress bar over forward batches (whole-image
        batches and batches of tiles).

    Returns
    -------
    predictions : iterator of ndarray
        For each image, in order: ``(H, W, K)`` float32 probabilities summing
        to 1 over the last axis (``output="proba"``) or ``(H, W)`` int64 class
        indices (``output="labels"``). Each array is a new one, owned by the
        caller.

    Raises
    ------
    ValueError
        A bad value of an argument (``tile_overlap`` outside [0, 1), a
        ``tile_size`` smaller than ``pad_multiple``, ``tiling`` not True,
        False or "auto", ``batch_size`` < 1, ...); at iteration, a model or
        transform that returns tensors of the wrong shape.
    TypeError
        An argument of the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sksegment._inference import iter_predictions
    >>> net = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1).eval()
    >>> images = np.zeros((2, 40, 30, 1), dtype=np.uint8)
    >>> [p.shape for p in iter_predictions(net, images, device="cpu")]
    [(40, 30, 3), (40, 30, 3)]
    >>> labels = next(iter_predictions(net, [images[0, :7]], device="cpu", output="labels",
    ...                                tiling=True, tile_size=16, tta=True))
    >>> labels.shape, labels.dtype
    ((7, 30), dtype('int64'))
    """
    return iter(make_predictions(
        model, images, device=device, output=output, batch_size=batch_size,
        pad_multiple=pad_multiple, transform=transform, tiling=tiling, tile_size=tile_size,
        tile_overlap=tile_overlap, tta=tta, max_tile_pixels=max_tile_pixels, verbose=verbose))
