"""Batched torch implementations of the augmentations in
:mod:`sksegment.augmentation`.

Every op is a small picklable object, built by an augmenter's ``_make_op()``
from validated parameters, and called as ``op(x, y, generator)`` on a device
batch: ``x`` float ``(N, C, H, W)``, ``y`` int64 ``(N, H, W)`` holding class
indices and :data:`~sksegment._data.IGNORE`, or None. It returns a new
``(x, y)`` and never writes into its inputs.

Conventions shared by all ops:

- ``p`` is the probability that a sample is transformed; the decision is drawn
  per sample. ``p == 0`` returns the inputs themselves.
- Random numbers come from ``generator`` (a :class:`torch.Generator`, or None
  for torch's default generator of ``x.device``). They are drawn on the
  generator's own device and moved to ``x.device``, so a CPU generator works
  with a CUDA batch (a generator on ``x.device`` avoids the copies).
- Geometric ops resample the image bilinearly and the mask with nearest
  neighbour (so no new label value can appear), both through one grid per
  sample. Mask pixels whose nearest source lies outside the image become
  IGNORE; image pixels there take the op's ``padding_mode`` (zeros by
  default). Flips, quarter turns and crops move pixels exactly instead.
- Photometric ops return ``y`` itself.
- Nothing is read back from the device: no ``.item()``, no ``nonzero()``, no
  boolean-mask indexing, so an op never stalls the host. An op computes its
  transform for the whole batch and keeps it for the selected samples with
  ``torch.where``; the unselected ones come out bit for bit unchanged. Every
  draw has a size fixed by the batch's shape (not by how many samples were
  selected), so the generator's state after an op does not depend on the
  data either.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._data import IGNORE

# Masks are resampled as float with zero padding; shifting labels by this
# amount keeps 0 free to mean "outside the image" (IGNORE maps to 1).
_LABEL_SHIFT = 1 - IGNORE


def _draw(kind, shape, generator, device):
    src = generator.device if generator is not None else device
    fn = torch.rand if kind == "uniform" else torch.randn
    out = fn(shape, generator=generator, device=src, dtype=torch.float32)
    return out.to(device) if out.device != torch.device(device) else out


def _uniform(shape, low, high, generator, device):
    u = _draw("uniform", shape, generator, device)
    return u * (high - low) + low


def _log_uniform(shape, low, high, generator, device):
    return torch.exp(_uniform(shape, math.log(low), math.log(high), generator, device))


def _as_key(value):
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return value


class Op:
    """Base class of the batched ops (see the module docstring)."""

    #: Applied at predict time too (``training=False``).
    deterministic = False
    #: Output keeps the input's intensity range (``sample`` casts back to the
    #: input dtype); False for standardisation.
    keeps_range = True
    #: Name shown in reprs (the augmenter's class name).
    name = "Op"
    #: Parameter names, in repr order.
    fields = ()

    def __init__(self, **params):
        for key in self.fields:
            setattr(self, key, params.pop(key))
        if params:
            raise TypeError(f"unexpected parameters {sorted(params)} for {self.name}")

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.fields
                         if not isinstance(getattr(self, k), np.ndarray))
        return f"{self.name}({args})"

    def _key(self):
        return (type(self),) + tuple(_as_key(getattr(self, k)) for k in self.fields)

    def __eq__(self, other):
        return isinstance(other, Op) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.fields}

    def __setstate__(self, state):
        for key, value in state.items():
            setattr(self, key, value)

    def __call__(self, x, y, generator=None):
        if not self.deterministic and self.p == 0:
            return x, y
        return self._apply(x, y, generator)

    def _select(self, n, generator, device):
        return _draw("uniform", (n,), generator, device) < self.p

    def _apply(self, x, y, generator):  # pragma: no cover - abstract
        raise NotImplementedError


def _where(sel, new, old):
    """Per-sample choice between two batches of the same shape."""
    return torch.where(sel.view((-1,) + (1,) * (new.dim() - 1)), new, old)


def _keep_selected(sel, new, old):
    """``(x, y)`` pairs: ``new`` for the selected samples, ``old`` elsewhere."""
    x = _where(sel, new[0], old[0])
    y = None if old[1] is None else _where(sel, new[1], old[1])
    return x, y


def take_pixels(x, y, rows, cols):
    """Exact per-sample pixel moves: output pixel ``(n, i, j)`` is input pixel
    ``(n, rows[n, i, j], cols[n, i, j])`` of image and mask alike.

    ``rows`` and ``cols`` are int64 and broadcast to ``(N, h, w)``, the output
    size; every index must lie inside the input. The output keeps the batch's
    memory format (``to_tensor`` hands batches over channels last), so the
    network sees the layout it would without the op.
    """
    n, c, h, w = x.shape
    rows, cols = torch.broadcast_tensors(rows, cols)
    out_h, out_w = rows.shape[1:]
    src = (rows * w + cols).reshape(n, out_h * out_w)
    if x.stride(1) == 1 and x.stride(3) == c:  # channels last: gather whole pixels
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        xo = pixels.gather(1, src[:, :, None].expand(n, -1, c))
        xo = xo.view(n, out_h, out_w, c).permute(0, 3, 1, 2)
    else:
        xo = x.reshape(n, c, h * w).gather(2, src[:, None].expand(n, c, -1))
        xo = xo.view(n, c, out_h, out_w)
    if y is None:
        return xo, None
    return xo, y.reshape(n, h * w).gather(1, src).view(n, out_h, out_w)


def _pixel_grid(n, h, w, device):
    """Row and column indices ``(n, h, 1)`` and ``(n, 1, w)``."""
    rows = torch.arange(h, device=device).view(1, h, 1).expand(n, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w).expand(n, 1, w)
    return rows, cols


def warp(x, y, grid, padding_mode="zeros"):
    """Resample images bilinearly and masks with nearest neighbour.

    ``grid`` is ``(N, h, w, 2)`` in :func:`torch.nn.functional.grid_sample`
    coordinates (``align_corners=False``). Mask pixels sampled from outside
    the image become IGNORE.
    """
    xo = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding_mode,
                       align_corners=False)
    if y is None:
        return xo, None
    yf = y.to(torch.float32).add_(_LABEL_SHIFT)[:, None]
    yo = F.grid_sample(yf, grid.to(torch.float32), mode="nearest", padding_mode="zeros",
                       align_corners=False)[:, 0]
    # Nearest sampling returns stored values exactly; 0 (outside) becomes
    # -_LABEL_SHIFT, one below IGNORE, and the clamp turns it into IGNORE.
    yo = yo.sub_(_LABEL_SHIFT).clamp_(min=IGNORE).to(torch.int64)
    return xo, yo


def _gaussian_kernels(sigma, radius):
    """Normalised 1-D Gaussian kernels, one row per sigma: ``(n, 2*radius+1)``."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def _separable_blur(x, kernels, replicate=True):
    """Blur each sample of ``x`` (N, C, H, W) with its own 1-D kernel (N, k)
    along both axes, replicating the border; ``replicate=False`` keeps only
    the pixels the kernel covers whole (H and W shrink by ``k - 1``)."""
    n, c, h, w = x.shape
    k = kernels.shape[1]
    r = k // 2 if replicate else 0
    weight = kernels.to(x.dtype)[:, None].expand(n, c, k).reshape(n * c, k)
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate") if r else flat,
                    weight[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate") if r else flat,
                    weight[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, *flat.shape[-2:])


# --------------------------------------------------------------------------
# Geometric ops
# --------------------------------------------------------------------------

class FlipOp(Op):
    name = "RandomFlip"
    fields = ("axes", "p")

    def _apply(self, x, y, generator):
        n, _, h, w = x.shape
        rows, cols = _pixel_grid(n, h, w, x.device)
        if "horizontal" in self.axes:
            flip = self._select(n, generator, x.device).view(n, 1, 1)
            cols = torch.where(flip, w - 1 - cols, cols)
        if "vertical" in self.axes:
            flip = self._select(n, generator, x.device).view(n, 1, 1)
            rows = torch.where(flip, h - 1 - rows, rows)
        return take_pixels(x, y, rows, cols)


class Rot90Op(Op):
    name = "RandomRotate90"
    fields = ("p",)

    def _apply(self, x, y, generator):
        n, _, h, w = x.shape
        sel = self._select(n, generator, x.device)
        turns = (_draw("uniform", (n,), generator, x.device) * 3).long().clamp_(max=2) + 1
        if h != w:  # a quarter turn would change the shape: half turns only
            turns = torch.full_like(turns, 2)
        turns = torch.where(sel, turns, torch.zeros_like(turns)).view(n, 1, 1)
        i, j = _pixel_grid(n, h, w, x.device)
        # Source of output pixel (i, j) after k counter-clockwise quarter
        # turns, as torch.rot90(t, k, dims=(-2, -1)) takes it.
        rows = torch.where(turns == 1, j, i)
        rows = torch.where(turns == 2, h - 1 - i, rows)
        rows = torch.where(turns == 3, h - 1 - j, rows)
        cols = torch.where(turns == 1, w - 1 - i, j)
        cols = torch.where(turns == 2, w - 1 - j, cols)
        cols = torch.where(turns == 3, i, cols)
        return take_pixels(x, y, rows, cols)


class AffineOp(Op):
    name = "RandomAffine"
    fields = ("degrees", "scale", "translate", "shear", "p", "padding_mode")

    def _apply(self, x, y, generator):
        n, _, h, w = x.shape
        dev = x.device
        sel = self._select(n, generator, dev)
        # Negated: with rows growing downwards, positive angles then turn
        # counter-clockwise as the image is displayed.
        angle = _uniform((n,), *self.degrees, generator, dev) * (-math.pi / 180)
        zoom = _uniform((n,), *self.scale, generator, dev)
        shear = _uniform((n,), *self.shear, generator, dev) * (math.pi / 180)
        t0 = _uniform((n,), -self.translate[0], self.translate[0], generator, dev) * w
        t1 = _uniform((n,), -self.translate[1], self.translate[1], generator, dev) * h
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # Output -> input map in centred pixel units: inverse of
        # rotate(a) @ shear(s) @ scale(z), i.e. scale^-1 @ shear^-1 @ rotate(-a).
        m00 = (cos + tan * sin) / zoom
        m01 = (sin - tan * cos) / zoom
        m10 = -sin / zoom
        m11 = cos / zoom
        theta = torch.stack([
            torch.stack([m00, m01 * h / w, -(m00 * t0 + m01 * t1) * 2 / w], dim=1),
            torch.stack([m10 * w / h, m11, -(m10 * t0 + m11 * t1) * 2 / h], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return _keep_selected(sel, warp(x, y, grid, self.padding_mode), (x, y))


class CropOp(Op):
    name = "RandomCrop"
    fields = ("size", "p")

    def __call__(self, x, y, generator=None):  # never the identity: fixes the size
        return self._apply(x, y, generator)

    def _apply(self, x, y, generator):
        n, _c, h, w = x.shape
        ch, cw = self.size
        dev = x.device
        if ch > h or cw > w:  # pad around the image: x 0, y IGNORE
            ph, pw = max(ch - h, 0), max(cw - w, 0)
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            x = F.pad(x, pad)
            if y is not None:
                y = F.pad(y, pad, value=IGNORE)
            h, w = x.shape[-2:]
        sel = self._select(n, generator, dev)
        top = (_draw("uniform", (n,), generator, dev) * (h - ch + 1)).long().clamp_(max=h - ch)
        left = (_draw("uniform", (n,), generator, dev) * (w - cw + 1)).long().clamp_(max=w - cw)
        top = torch.where(sel, top, torch.full_like(top, (h - ch) // 2))
        left = torch.where(sel, left, torch.full_like(left, (w - cw) // 2))
        rows = (top[:, None] + torch.arange(ch, device=dev))[:, :, None]  # (N, ch, 1)
        cols = (left[:, None] + torch.arange(cw, device=dev))[:, None, :]  # (N, 1, cw)
        return take_pixels(x, y, rows, cols)


class ResizedCropOp(Op):
    name = "RandomResizedCrop"
    fields = ("size", "scale", "ratio", "p")
    _tries = 10

    def __call__(self, x, y, generator=None):  # never the identity: fixes the size
        return self._apply(x, y, generator)

    def _apply(self, x, y, generator):
        n, c, h, w = x.shape
        dev = x.device
        sel = self._select(n, generator, dev)
        area = _uniform((n, self._tries), *self.scale, generator, dev) * (h * w)
        aspect = _log_uniform((n, self._tries), *self.ratio, generator, dev)
        cw = torch.sqrt(area * aspect)
        chh = torch.sqrt(area / aspect)
        fits = (cw <= w) & (chh <= h)
        first = torch.argmax(fits.to(torch.float32), dim=1)  # first try that fits
        found = fits.any(dim=1) & sel
        pick = first[:, None]
        cw = torch.where(found, cw.gather(1, pick)[:, 0], torch.full((n,), float(w), device=dev))
        chh = torch.where(found, chh.gather(1, pick)[:, 0], torch.full((n,), float(h), device=dev))
        left = _draw("uniform", (n,), generator, dev) * (w - cw)
        top = _draw("uniform", (n,), generator, dev) * (h - chh)
        # Crop centre in centred pixel units, then grid_sample's [-1, 1].
        cx = (left + cw / 2 - w / 2) * 2 / w
        cy = (top + chh / 2 - h / 2) * 2 / h
        zeros = torch.zeros_like(cx)
        theta = torch.stack([torch.stack([cw / w, zeros, cx], dim=1),
                             torch.stack([zeros, chh / h, cy], dim=1)], dim=1)
        grid = F.affine_grid(theta, [n, c, *self.size], align_corners=False)
        return warp(x, y, grid, "border")


class ElasticOp(Op):
    name = "ElasticDeformation"
    fields = ("alpha", "sigma", "p", "padding_mode")

    def _field(self, n, h, w, generator, device):
        """Smooth random displacements (n, 2, h, w) with unit standard
        deviation, computed on a grid coarsened by up to sigma / 4."""
        step = max(1, int(self.sigma // 4))
        gh, gw = -(-h // step), -(-w // step)
        s = self.sigma / step
        radius = max(1, math.ceil(3 * s))
        # noise beyond the border too, blurred where the kernel covers it
        # whole: a replicated border sample would move the edges further
        noise = _draw("normal", (n, 2, gh + 2 * radius, gw + 2 * radius), generator, device)
        kernel = _gaussian_kernels(torch.full((n,), s, device=device), radius)
        field = _separable_blur(noise, kernel, replicate=False)
        field = field / (kernel[0] ** 2).sum()  # variance of blurred white noise
        if step > 1:
            field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False)
        return field

    def _apply(self, x, y, generator):
        n, _, h, w = x.shape
        dev = x.device
        sel = self._select(n, generator, dev)
        disp = self._field(n, h, w, generator, dev) * self.alpha
        gy = (torch.arange(h, device=dev, dtype=torch.float32) * 2 + 1) / h - 1
        gx = (torch.arange(w, device=dev, dtype=torch.float32) * 2 + 1) / w - 1
        base = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (h, w, 2)
        grid = base[None] + torch.stack([disp[:, 0] * 2 / w, disp[:, 1] * 2 / h], dim=-1)
        return _keep_selected(sel, warp(x, y, grid, self.padding_mode), (x, y))


# --------------------------------------------------------------------------
# Photometric ops (masks untouched)
# --------------------------------------------------------------------------

class BrightnessContrastOp(Op):
    name = "RandomBrightnessContrast"
    fields = ("brightness", "contrast", "p")

    def _apply(self, x, y, generator):
        n = x.shape[0]
        dev = x.device
        sel = self._select(n, generator, dev)
        shift = _uniform((n,), *self.brightness, generator, dev)
        factor = _uniform((n,), *self.contrast, generator, dev)
        # (x - mean) * factor + mean + shift as one multiply-add; unselected
        # samples get factor 1 and offset 0, which leaves them bit for bit.
        factor = torch.where(sel, factor, torch.ones_like(factor)).to(x.dtype).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        offset = mean * (1 - factor) + shift.to(x.dtype).view(-1, 1, 1, 1)
        offset = torch.where(sel.view(-1, 1, 1, 1), offset, torch.zeros_like(offset))
        return torch.addcmul(offset, x, factor), y


class GammaOp(Op):
    name = "RandomGamma"
    fields = ("gamma", "p")

    def _apply(self, x, y, generator):
        n = x.shape[0]
        dev = x.device
        sel = self._select(n, generator, dev)
        gamma = _log_uniform((n,), *self.gamma, generator, dev).to(x.dtype).view(-1, 1, 1, 1)
        flat = x.reshape(n, -1)
        low = flat.amin(dim=1).view(-1, 1, 1, 1)
        span = flat.amax(dim=1).view(-1, 1, 1, 1) - low
        safe = torch.where(span > 0, span, torch.ones_like(span))
        new = low + span * ((x - low) / safe).clamp_(0, 1).pow_(gamma)
        return _where(sel & (span.view(-1) > 0), new, x), y  # constant images stay


class NoiseOp(Op):
    name = "GaussianNoise"
    fields = ("std", "p")

    def _apply(self, x, y, generator):
        n = x.shape[0]
        dev = x.device
        sel = self._select(n, generator, dev)
        std = _uniform((n,), *self.std, generator, dev).to(x.dtype).view(-1, 1, 1, 1)
        noise = _draw("normal", tuple(x.shape), generator, dev).to(x.dtype)
        return _where(sel, torch.addcmul(x, noise, std), x), y


class BlurOp(Op):
    name = "GaussianBlur"
    fields = ("sigma", "p")

    def _apply(self, x, y, generator):
        n = x.shape[0]
        dev = x.device
        sel = self._select(n, generator, dev)
        sigma = _uniform((n,), *self.sigma, generator, dev)
        radius = max(1, math.ceil(3 * self.sigma[1]))
        return _where(sel, _separable_blur(x, _gaussian_kernels(sigma, radius)), x), y


# RGB <-> YIQ (NTSC). Hue turns the chroma plane (I, Q); saturation scales it.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


class ColorJitterOp(Op):
    name = "ColorJitter"
    fields = ("hue", "saturation", "p")

    def _apply(self, x, y, generator):
        if x.shape[1] != 3:
            raise ValueError(
                f"ColorJitter needs colour batches: x must have 3 channels (RGB); "
                f"got {x.shape[1]}."
            )
        n = x.shape[0]
        dev = x.device
        sel = self._select(n, generator, dev)
        turn = _uniform((n,), -self.hue, self.hue, generator, dev) * (2 * math.pi)
        sat = _uniform((n,), *self.saturation, generator, dev)
        cos, sin = torch.cos(turn) * sat, torch.sin(turn) * sat
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        chroma = torch.stack([torch.stack([one, zero, zero], 1),
                              torch.stack([zero, cos, -sin], 1),
                              torch.stack([zero, sin, cos], 1)], 1)  # (N, 3, 3)
        to_yiq = torch.as_tensor(_RGB_TO_YIQ, dtype=torch.float32, device=dev)
        to_rgb = torch.as_tensor(_YIQ_TO_RGB, dtype=torch.float32, device=dev)
        mats = (to_rgb @ chroma @ to_yiq).to(x.dtype)
        return _where(sel, torch.einsum("nij,njhw->nihw", mats, x), x), y


# --------------------------------------------------------------------------
# Deterministic ops
# --------------------------------------------------------------------------

class StandardizeOp(Op):
    name = "IntensityStandardizer"
    fields = ("mean", "scale")
    deterministic = True
    keeps_range = False

    def __repr__(self):
        return (f"{self.name}(mean={np.round(self.mean, 4).tolist()}, "
                f"scale={np.round(self.scale, 4).tolist()})")

    def _apply(self, x, y, generator):
        c = x.shape[1]
        if len(self.mean) not in (1, c):
            raise ValueError(
                f"IntensityStandardizer was fitted on {len(self.mean)} channels but x has {c}."
            )
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / scale, y
