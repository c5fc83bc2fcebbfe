"""One forward pass of a segmentation network on a batch: padding to the
network's multiple, the channels-last layout, test-time augmentation, the
Gaussian weights that blend tiles, and the finished per-image arrays.
"""

import torch
import torch.nn.functional as F

from ._data import to_tensor
from ._validation import check_int, check_number, check_size


# ---------------------------------------------------------------------- #
# public helpers
# ---------------------------------------------------------------------- #
def pad_to_multiple(x, multiple, *, mode="reflect", value=0, min_cells=1):
    """Pad the last two axes of a tensor, at the bottom and right, to multiples.

    Parameters
    ----------
    x : torch.Tensor of shape (..., H, W)
        Images ``(N, C, H, W)``, label images ``(N, H, W)`` or any tensor with
        at least two axes. Not modified.
    multiple : int or (int, int)
        H is padded to a multiple of ``multiple`` (or of its first entry), W
        to a multiple of ``multiple`` (or of its second entry).
    mode : {"reflect", "replicate", "constant"}, default="reflect"
        "reflect" mirrors the image without repeating the border pixel; along
        an axis where the padding is not smaller than the image (a 1-pixel
        wide image, say) it falls back to "replicate", which repeats the
        border pixel. "constant" fills with ``value``.
    value : scalar, default=0
        Fill value for ``mode="constant"`` (for example ``IGNORE`` for label
        images).
    min_cells : int, default=1
        The least number of ``multiple``-sized cells the padded tensor holds
        (``H' / mh * W' / mw``); W is padded further where there would be
        fewer. With 2, a network that halves its input down to
        ``1/multiple`` keeps at least two pixels at its bottleneck, which
        instance normalisation needs: an image no larger than one cell
        (16 x 16 for a factor of 16) is padded to two (16 x 32).

    Returns
    -------
    x_padded : torch.Tensor of shape (..., H', W')
        ``x`` itself when H and W already are multiples, else a new tensor.
    size : (int, int)
        The original ``(H, W)``; ``x_padded[..., :H, :W]`` is ``x``.

    Examples
    --------
    >>> import torch
    >>> from sksegment._inference import pad_to_multiple
    >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> xp, (h, w) = pad_to_multiple(x, (3, 4))
    >>> xp.shape, (h, w)
    (torch.Size([1, 1, 3, 4]), (2, 3))
    >>> xp[0, 0]
    tensor([[0., 1., 2., 1.],
            [3., 4., 5., 4.],
            [0., 1., 2., 1.]])
    >>> bool(torch.equal(xp[..., :h, :w], x))
    True

    Padding wider than the image repeats the border pixel:

    >>> pad_to_multiple(torch.tensor([[7, 8]]), 4)[0]
    tensor([[7, 8, 8, 8],
            [7, 8, 8, 8],
            [7, 8, 8, 8],
            [7, 8, 8, 8]])
    >>> pad_to_multiple(torch.zeros(1, 1, 3, 3), 4, min_cells=2)[0].shape
    torch.Size([1, 1, 4, 8])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim < 2:
        raise ValueError(f"x must have at least two axes (..., H, W); got shape {tuple(x.shape)}.")
    mh, mw = check_size(multiple, "multiple")
    if mode not in ("reflect", "replicate", "constant"):
        raise ValueError(f"mode must be 'reflect', 'replicate' or 'constant'; got {mode!r}.")
    min_cells = check_int(min_cells, "min_cells", low=1)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = -h % mh, -w % mw
    rows = (h + ph) // mh
    if rows * ((w + pw) // mw) < min_cells:  # more cells along W
        pw = -(-min_cells // rows) * mw - w
    if ph == 0 and pw == 0:
        return x, (h, w)
    lead = tuple(x.shape[:-2])
    y = x.reshape((-1, h, w))  # F.pad's 2-D modes take (C, H, W)
    if mode == "constant":
        y = F.pad(y, (0, pw, 0, ph), mode="constant", value=value)
    else:
        is_bool = y.dtype == torch.bool
        if is_bool:
            y = y.to(torch.uint8)  # the reflect/replicate kernels reject bool
        if ph:
            y = F.pad(y, (0, 0, 0, ph), mode="reflect" if mode == "reflect" and ph < h
                      else "replicate")
        if pw:
            y = F.pad(y, (0, pw, 0, 0), mode="reflect" if mode == "reflect" and pw < w
                      else "replicate")
        if is_bool:
            y = y.to(torch.bool)
    return y.reshape(lead + (h + ph, w + pw)), (h, w)


#: Cells of the network's multiple every input is padded to hold at least
#: (``pad_to_multiple(min_cells=)``): two pixels at the bottleneck, which
#: instance normalisation (and batch normalisation in training) needs.
MIN_CELLS = 2


def too_deep(h, w, multiple):
    """Why a network that halves its training inputs of ``h x w`` down to
    ``1/multiple`` is too deep for them (it would learn from padding, not
    image), or None when it is not."""
    if multiple > max(h, w):
        return (f"halving {h} x {w} pixels down to 1/{multiple} leaves less than one pixel of "
                "image at the bottleneck")
    return None


def gaussian_importance_map(tile_h, tile_w, sigma_scale=1 / 8, *, min_weight=1e-4,
                            device=None, dtype=torch.float32):
    """Gaussian weights for blending overlapping tile predictions.

    The map is the outer product of two 1-D Gaussian profiles centred on the
    tile (at ``(n - 1) / 2``, so that it is symmetric under flips), with
    standard deviations ``sigma_scale * tile_h`` and ``sigma_scale * tile_w``.
    Each profile is scaled to a maximum of 1 and clamped below at
    ``min_weight``, so that every pixel keeps a positive weight (the blended
    sum is never divided by 0) while the map stays separable: along a row,
    the ratio of two tiles' weights does not depend on the row, also near
    the tile corners. ``sigma_scale=1/8`` is the choice of nnU-Net and MONAI;
    with it a profile falls to ``exp(-8)`` (about 3.4e-4) at the tile border,
    above the default ``min_weight``.

    Parameters
    ----------
    tile_h, tile_w : int
        Tile height and width (>= 1).
    sigma_scale : float, default=1/8
        Standard deviation as a fraction of the tile side (> 0).
    min_weight : float, default=1e-4
        Lower bound of each 1-D profile, in (0, 1]; the map is at least
        ``min_weight ** 2``.
    device : torch.device or str, optional
        Where to create the map (default: the CPU).
    dtype : torch.dtype, default=torch.float32
        Floating dtype of the map.

    Returns
    -------
    weights : torch.Tensor of shape (tile_h, tile_w)
        Values in ``[min_weight ** 2, 1]``, largest at the centre.

    Examples
    --------
    >>> from sksegment._inference import gaussian_importance_map
    >>> g = gaussian_importance_map(64, 32)
    >>> g.shape, float(g.max()) <= 1.0, float(g.min()) > 0.0
    (torch.Size([64, 32]), True, True)
    >>> bool((g[32, 16] > g[0, 0]) and (g[32, 16] > g[32, 0]))
    True
    """
    tile_h = check_int(tile_h, "tile_h", low=1)
    tile_w = check_int(tile_w, "tile_w", low=1)
    sigma_scale = check_number(sigma_scale, "sigma_scale", low=0, low_open=True)
    min_weight = check_number(min_weight, "min_weight", low=0, high=1, low_open=True)

    def profile(n):
        d = torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0
        p = torch.exp(-0.5 * (d / (sigma_scale * n)) ** 2)
        return (p / p.max()).clamp_(min=float(min_weight))

    return torch.outer(profile(tile_h), profile(tile_w)).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------- #
# one forward pass (with padding and test-time augmentation)
# ---------------------------------------------------------------------- #
def _channels_last(x):
    """``x`` laid out channels last, with the channel stride 1 even for one
    channel (torch picks the convolution layout from the strides).

    The batches of :func:`sksegment._data.to_tensor` are laid out so;
    padded, flipped or rotated copies are brought back to it, so that every
    input reaches the network in one layout (on the CPU the channels-last
    convolutions are also the faster ones).
    """
    if x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last):
        return x
    out = torch.empty(tuple(x.shape), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    return out.copy_(x)


def _logits(model, x, pad_multiple):
    """Float32 logits (N, K, H, W) of the images x (N, C, H, W): padded, then cropped."""
    xp, (h, w) = pad_to_multiple(x, pad_multiple, min_cells=MIN_CELLS)
    logits = model(_channels_last(xp))
    if (not isinstance(logits, torch.Tensor) or logits.ndim != 4
            or logits.shape[0] != xp.shape[0] or tuple(logits.shape[2:]) != tuple(xp.shape[2:])):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"model must map inputs (N, C, H, W) to logits (N, K, H, W) of the same N, H and "
            f"W; for an input of shape {tuple(xp.shape)} it returned {shape}."
        )
    if (h, w) != tuple(xp.shape[2:]):
        logits = logits[:, :, :h, :w]
    return logits.float()


def _proba(model, x, pad_multiple):
    """Softmax probabilities (N, K, H, W) float32 of the images x (N, C, H, W)."""
    return torch.softmax(_logits(model, x, pad_multiple), dim=1)


def _tta_views(h, w, mode=True):
    """(k, flip) pairs: flip along W, then rotate by k * 90 degrees.

    ``mode=True``: a square input gets the eight symmetries of the square,
    any other the four flips (none, horizontal, vertical, both = 180-degree
    rotation). ``mode="horizontal"``: the input and its left-right mirror.
    """
    if mode == "horizontal":
        return [(0, False), (0, True)]
    ks = (0, 1, 2, 3) if h == w else (0, 2)
    return [(k, flip) for k in ks for flip in (False, True)]


def _entropy(p, dim):
    """Entropy (nats) of probabilities along ``dim``; 0 * log 0 counts 0."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


def _forward_proba(model, x, pad_multiple, tta, views=False):
    """Probabilities (N, K, H, W), averaged over the TTA views when ``tta``
    (True: flips and quarter turns; "horizontal": left-right mirroring).

    With ``views``, one more channel follows the K probabilities: the mean
    over the views of each view's entropy, from which the disagreement of
    the views (the entropy of the mean minus the mean entropy) is computed
    once the tiles are blended.
    """
    if not tta:
        p = _proba(model, x, pad_multiple)
        return torch.cat([p, _entropy(p, 1)[:, None]], 1) if views else p
    total = None
    entropy = None
    views_ = _tta_views(x.shape[-2], x.shape[-1], tta)
    for k, flip in views_:
        v = x.flip(-1) if flip else x
        if k:
            v = torch.rot90(v, k, dims=(-2, -1))
        p = _proba(model, v, pad_multiple)
        if k:
            p = torch.rot90(p, -k, dims=(-2, -1))
        if flip:
            p = p.flip(-1)
        if views:
            h = _entropy(p, 1)
            entropy = h if entropy is None else entropy.add_(h)
        total = p if total is None else total.add_(p)
    total.div_(len(views_))
    if views:
        return torch.cat([total, entropy.div_(len(views_))[:, None]], 1)
    return total


class AutocastForward:
    """A network called under ``torch.autocast`` with ``dtype`` (prediction
    at the training precision); the callers take its logits as float32."""

    def __init__(self, model, device_type, dtype):
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def __call__(self, x):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x)


def _prepare(batch, device, transform):
    x = to_tensor(batch, device)
    if transform is not None:
        n, _, h, w = x.shape
        x = transform(x)
        if (not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != n
                or tuple(x.shape[2:]) != (h, w)):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"transform must return a tensor (N, C, H, W) with the N, H and W of its input "
                f"{(n, batch.shape[-1], h, w)}; got {shape}."
            )
    return x


def _host(t, dtype):
    """A C-contiguous NumPy array owning a copy of tensor ``t``."""
    out = torch.empty(tuple(t.shape), dtype=dtype)
    out.copy_(t)
    return out.numpy()


def _argmax_classes(p):
    """Index of the largest entry along axis 0 (the first one on ties).

    Same result as ``p.argmax(0)``, but one pass per class over contiguous
    memory: torch's reduction over a short leading axis is many times slower.
    """
    n_classes = p.shape[0]
    if n_classes == 1:
        return torch.zeros(p.shape[1:], dtype=torch.int64, device=p.device)
    idx = (p[1] > p[0]).long()
    if n_classes == 2:
        return idx
    best = torch.maximum(p[0], p[1])
    for k in range(2, n_classes):
        idx.masked_fill_(p[k] > best, k)
        torch.maximum(best, p[k], out=best)
    return idx


def _finish(p, output):
    """One image's probabilities (K, H, W) as the yielded array (``"views"``:
    the K probabilities and the mean view entropy, ``(H, W, K + 1)``)."""
    if output == "labels":
        return _host(_argmax_classes(p), torch.int64)
    return _host(p.permute(1, 2, 0), torch.float32)
