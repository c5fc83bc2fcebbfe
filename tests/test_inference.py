"""Prediction on images of any size: padding, tiles, blending, TTA, memory."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sksegment._data import IGNORE
from sksegment._inference import (
    _tile_starts,
    gaussian_importance_map,
    iter_predictions,
    pad_to_multiple,
)


# ---------------------------------------------------------------------- #
# small deterministic networks
# ---------------------------------------------------------------------- #
def _seeded(factory, seed, scale=0.5):
    """Build a module and fill every parameter from a private generator; the
    global RNG (drawn from by default initialisers) is left as it was."""
    with torch.random.fork_rng(devices=[]):
        module = factory()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module.eval()


def small_net(in_channels=1, n_classes=3, seed=0):
    """Two 3x3 convolutions: a receptive field of 5x5 pixels."""
    return _seeded(lambda: nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                                         nn.Conv2d(8, n_classes, 3, padding=1)), seed)


def pointwise_net(in_channels=1, n_classes=3, seed=0):
    """1x1 convolutions only: each pixel's logits depend on that pixel alone."""
    return _seeded(lambda: nn.Sequential(nn.Conv2d(in_channels, 6, 1), nn.Tanh(),
                                         nn.Conv2d(6, n_classes, 1)), seed, scale=2.0)


class PoolNet(nn.Module):
    """Downsampling factor 8 (pooling, then upsampling); refuses other sizes."""

    downsampling_factor = 8

    def __init__(self, in_channels=1, n_classes=3):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.low = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Conv2d(8, n_classes, 1)

    def forward(self, x):
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"PoolNet needs multiples of 8; got {tuple(x.shape)}")
        f = torch.relu(self.inp(x))
        low = torch.relu(self.low(F.max_pool2d(f, 8)))
        return self.head(torch.cat([f, F.interpolate(low, scale_factor=8.0)], dim=1))


def pool_net(seed=0, **kw):
    return _seeded(lambda: PoolNet(**kw), seed)


def symmetric_net(seed=0, n_classes=3):
    """Kernels invariant under the 8 symmetries of the square: the network
    commutes with flips and 90-degree rotations."""
    net = small_net(n_classes=n_classes, seed=seed)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                w = m.weight
                views = [torch.rot90(v, k, dims=(-2, -1)) for v in (w, w.flip(-1))
                         for k in range(4)]
                m.weight.copy_(torch.stack(views).mean(0))
    return net


def unet(depth=2, width=4, n_classes=3, seed=0):
    from sksegment.models import UNet

    with torch.random.fork_rng(devices=[]):  # the global RNG is left as it was
        torch.manual_seed(seed)
        return UNet(1, n_classes, depth=depth, width=width, norm=None).eval()


class Recorder(nn.Module):
    """Wraps a network and records the shape of every input it sees."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.shapes = []
        self.inference_mode = []
        self.channels_last = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        self.inference_mode.append(torch.is_inference_mode_enabled())
        self.channels_last.append(x.stride(1) == 1
                                  and x.is_contiguous(memory_format=torch.channels_last))
        return self.net(x)


def predict(net, images, **kw):
    kw.setdefault("device", "cpu")
    return list(iter_predictions(net, images, **kw))


def direct_proba(net, image):
    """Softmax of one forward pass over an (H, W, C) uint8 image, channels last."""
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return torch.softmax(net(x), dim=1)[0].permute(1, 2, 0).numpy()


def smooth_image(shape, seed=0):
    """uint8 image with structure at several scales (so predictions vary)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    f = np.sin(yy / 7.0) + np.cos(xx / 5.0) + 0.5 * rng.standard_normal((h, w))
    f = (f - f.min()) / (f.max() - f.min())
    return (f * 255).astype(np.uint8)[:, :, None]


# ---------------------------------------------------------------------- #
# pad_to_multiple
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(5, 7), (16, 9), (3, 3), (8, 8)])
def test_pad_reflects_like_numpy(shape, rng):
    x = torch.from_numpy(rng.random((2, 3) + shape).astype(np.float32))
    before = x.clone()
    xp, size = pad_to_multiple(x, 4)
    h, w = shape
    ph, pw = -h % 4, -w % 4
    expected = np.pad(x.numpy(), [(0, 0), (0, 0), (0, ph), (0, pw)], mode="reflect")
    assert size == (h, w)
    assert xp.shape == (2, 3, h + ph, w + pw)
    np.testing.assert_array_equal(xp.numpy(), expected)
    assert torch.equal(x, before)


def test_pad_falls_back_to_replicate_where_reflect_cannot():
    x = torch.tensor([[[[3.0, 5.0]]]])  # 1 x 2 image padded to 8 x 8
    xp, size = pad_to_multiple(x, 8)
    assert size == (1, 2)
    np.testing.assert_array_equal(xp.numpy()[0, 0], np.pad([[3.0, 5.0]], [(0, 7), (0, 6)],
                                                           mode="edge"))
    # one axis reflects, the other replicates
    x = torch.arange(6.0).reshape(1, 6)
    xp, _ = pad_to_multiple(x, (4, 8))
    expected = np.pad(np.pad(x.numpy(), [(0, 3), (0, 0)], mode="edge"), [(0, 0), (0, 2)],
                      mode="reflect")
    np.testing.assert_array_equal(xp.numpy(), expected)


def test_pad_constant_for_label_images_and_bool():
    y = torch.tensor([[[1, 2, 0]]])  # (N, H, W) int64
    yp, size = pad_to_multiple(y, (2, 4), mode="constant", value=IGNORE)
    assert size == (1, 3) and yp.dtype == torch.int64
    assert yp.tolist() == [[[1, 2, 0, IGNORE], [IGNORE] * 4]]
    b = torch.tensor([[True, False, False]])
    bp, _ = pad_to_multiple(b, 4)
    assert bp.dtype == torch.bool
    assert bp.tolist() == [[True, False, False, False]] * 4


def test_pad_is_a_no_op_on_multiples():
    x = torch.zeros(1, 1, 16, 24)
    xp, size = pad_to_multiple(x, 8)
    assert xp is x and size == (16, 24)


@pytest.mark.parametrize("args, exc, match", [
    ((np.zeros((4, 4)), 2), TypeError, "torch.Tensor"),
    ((torch.zeros(4), 2), ValueError, "two axes"),
    ((torch.zeros(4, 4), 0), ValueError, "multiple"),
    ((torch.zeros(4, 4), 2.0), TypeError, "multiple"),
    ((torch.zeros(4, 4), (2, 2, 2)), ValueError, "multiple"),
])
def test_pad_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        pad_to_multiple(*args)
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(torch.zeros(3, 3), 2, mode="circular")


# ---------------------------------------------------------------------- #
# gaussian_importance_map
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("h, w", [(33, 17), (64, 64), (1, 8), (2, 5)])
def test_gaussian_map_shape_symmetry_and_values(h, w):
    g = gaussian_importance_map(h, w)
    assert g.shape == (h, w) and g.dtype == torch.float32
    assert torch.equal(g, g.flip(0)) and torch.equal(g, g.flip(1))
    assert float(g.min()) > 0 and float(g.max()) <= 1.0
    # separable: g[i, j] * g[k, l] == g[i, l] * g[k, j]
    g64 = g.double()
    outer = torch.outer(g64[:, 0], g64[0, :]) / g64[0, 0]
    torch.testing.assert_close(g64, outer, rtol=1e-5, atol=0)
    # the central row follows exp(-d^2 / (2 sigma^2)) with sigma = w / 8
    row = g64[(h - 1) // 2] / g64[(h - 1) // 2].max()
    d = np.arange(w) - (w - 1) / 2
    expected = np.exp(-0.5 * (d / (w / 8)) ** 2)
    np.testing.assert_allclose(row.numpy(), expected / expected.max(), rtol=1e-5)


def test_gaussian_map_clamp_and_sigma():
    narrow = gaussian_importance_map(64, 64, sigma_scale=1 / 32, min_weight=1e-3)
    assert float(narrow.min()) == pytest.approx(1e-6, rel=1e-4)  # min_weight ** 2 at corners
    wide = gaussian_importance_map(64, 64, sigma_scale=1 / 2)
    default = gaussian_importance_map(64, 64)
    assert float(wide[0, 32]) > float(default[0, 32])
    assert float(default[0, 32]) == pytest.approx(np.exp(-0.5 * (31.5 / 8) ** 2)
                                                  / np.exp(-0.5 * (0.5 / 8) ** 2), rel=1e-4)


@pytest.mark.parametrize("kw, exc", [
    ({"tile_h": 0, "tile_w": 4}, ValueError),
    ({"tile_h": 4.0, "tile_w": 4}, TypeError),
    ({"tile_h": 4, "tile_w": 4, "sigma_scale": 0}, ValueError),
    ({"tile_h": 4, "tile_w": 4, "sigma_scale": "1/8"}, TypeError),
    ({"tile_h": 4, "tile_w": 4, "min_weight": 0.0}, ValueError),
])
def test_gaussian_map_bad_arguments(kw, exc):
    with pytest.raises(exc):
        gaussian_importance_map(**kw)


# ---------------------------------------------------------------------- #
# tile grid
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("length", [1, 7, 32, 33, 100, 257, 1000])
@pytest.mark.parametrize("tile", [1, 8, 32, 64])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
def test_tile_grid_covers_with_overlap(length, tile, overlap):
    tile = min(tile, length)
    starts = _tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    gaps = np.diff(starts)
    assert (gaps > 0).all()
    assert (gaps <= max(1, int(np.ceil(tile * (1 - overlap))))).all()
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()


# ---------------------------------------------------------------------- #
# whole-image prediction
# ---------------------------------------------------------------------- #
def test_whole_image_equals_direct_forward(rng):
    net = small_net()
    images = rng.integers(0, 256, (3, 24, 32, 1), dtype=np.uint8)
    rec = Recorder(net)
    proba = predict(rec, images, batch_size=2, tiling=False)
    labels = predict(net, images, batch_size=2, tiling=False, output="labels")
    assert [s[0] for s in rec.shapes] == [2, 1]
    for img, p, lab in zip(images, proba, labels):
        assert p.dtype == np.float32 and p.shape == (24, 32, 3)
        np.testing.assert_allclose(p, direct_proba(net, img), atol=1e-6)
        assert lab.dtype == np.int64 and lab.shape == (24, 32)
        np.testing.assert_array_equal(lab, p.argmax(-1))


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (17, 33), (65, 64), (8, 8)])
def test_padding_and_crop_for_a_downsampling_net(shape, rng):
    net = pool_net()
    img = rng.integers(0, 256, shape + (1,), dtype=np.uint8)
    (p,) = predict(net, img[None], pad_multiple=8)
    assert p.shape == shape + (3,)
    # independent reference: numpy padding (mirror where it fits, else edge),
    # W one multiple more where H and W would pad to a single 8 x 8 cell
    h, w = shape
    ph, pw = -h % 8, -w % 8
    if h + ph == 8 and w + pw == 8:
        pw += 8
    padded = np.pad(img, [(0, ph), (0, 0), (0, 0)], mode="reflect" if ph < h else "edge")
    padded = np.pad(padded, [(0, 0), (0, pw), (0, 0)], mode="reflect" if pw < w else "edge")
    np.testing.assert_allclose(p, direct_proba(net, padded)[:h, :w], atol=1e-6)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (17, 33), (65, 64)])
def test_unet_with_factor_8_on_odd_sizes(shape, rng):
    net = unet(depth=3)
    img = rng.integers(0, 256, shape + (1,), dtype=np.uint8)
    for output in ("proba", "labels"):
        (out,) = predict(net, [img], pad_multiple=net.downsampling_factor, output=output)
        assert out.shape == (shape + (3,) if output == "proba" else shape)


def test_list_of_sizes_keeps_order_and_batches_by_shape(rng):
    net = small_net()
    sizes = [(20, 30), (16, 16), (20, 30), (9, 5), (16, 16), (20, 30)]
    images = [rng.integers(0, 256, s + (1,), dtype=np.uint8) for s in sizes]
    rec = Recorder(net)
    out = predict(rec, images, batch_size=2)
    assert [o.shape[:2] for o in out] == sizes
    for img, o in zip(images, out):
        np.testing.assert_allclose(o, direct_proba(net, img), atol=1e-6)
    # 3 images of (20, 30) in batches of 2, 2 of (16, 16), 1 of (9, 5)
    assert sorted(rec.shapes) == sorted([(2, 1, 20, 30), (1, 1, 20, 30), (2, 1, 16, 16),
                                         (1, 1, 9, 5)])


def test_max_tile_pixels_caps_whole_image_batches(rng):
    images = rng.integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    rec = Recorder(small_net())
    predict(rec, images, batch_size=8, max_tile_pixels=600, tiling=False)
    assert [s[0] for s in rec.shapes] == [2, 2, 1]


def test_input_dtypes_and_user_arrays_untouched(rng):
    net = small_net()
    base = rng.integers(0, 256, (2, 12, 10, 1), dtype=np.uint8)
    ref = predict(net, base)
    u16 = base.astype(np.uint16) * 257  # the same intensities on a 16-bit scale
    f64 = base / 255.0
    for arr in (u16, f64):
        arr.setflags(write=False)
        copy = arr.copy()
        out = predict(net, arr)
        np.testing.assert_array_equal(arr, copy)
        for a, b in zip(out, ref):
            np.testing.assert_allclose(a, b, atol=1e-5)
    mask = base > 128
    out = predict(net, mask, tiling=True, tile_size=8)
    assert out[0].shape == (12, 10, 3)
    # a 3-D array and 2-D list entries are one-channel images
    np.testing.assert_allclose(predict(net, base[..., 0])[1], ref[1], atol=1e-6)
    np.testing.assert_allclose(predict(net, [base[1, :, :, 0]])[0], ref[1], atol=1e-6)


def test_transform_is_applied_on_the_device_tensor(rng):
    net = small_net()
    images = rng.integers(0, 256, (2, 12, 10, 1), dtype=np.uint8)
    seen = []

    def standardise(x):
        seen.append(x.dtype)
        return (x - 0.5) / 0.25

    out = predict(net, images, transform=standardise)
    expected = predict(net, ((images / 255.0 - 0.5) / 0.25).astype(np.float32))
    assert seen == [torch.float32]
    for a, b in zip(out, expected):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # applied to every tile too
    tiled = predict(pointwise_net(), images, transform=standardise, tiling=True, tile_size=4)
    plain = predict(pointwise_net(), ((images / 255.0 - 0.5) / 0.25).astype(np.float32))
    np.testing.assert_allclose(tiled[0], plain[0], atol=1e-5)


def test_empty_input_yields_nothing():
    net = small_net()
    assert predict(net, []) == []
    assert predict(net, np.zeros((0, 4, 4, 1), np.uint8)) == []


# ---------------------------------------------------------------------- #
# tiled prediction
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("tile_size, overlap", [(8, 0.0), (8, 0.25), (16, 0.5), ((5, 12), 0.3),
                                                (64, 0.25)])
def test_tiled_equals_whole_for_a_pointwise_net(tile_size, overlap, rng):
    net = pointwise_net()
    img = rng.integers(0, 256, (1, 37, 29, 1), dtype=np.uint8)
    whole = predict(net, img, tiling=False)[0]
    tiled = predict(net, img, tiling=True, tile_size=tile_size, tile_overlap=overlap,
                    batch_size=3)[0]
    np.testing.assert_allclose(tiled, whole, atol=2e-6)


def test_tiles_are_batched_and_sized(rng):
    rec = Recorder(small_net())
    img = rng.integers(0, 256, (1, 40, 40, 1), dtype=np.uint8)
    predict(rec, img, tiling=True, tile_size=16, tile_overlap=0.25, batch_size=4)
    # starts 0, 12, 24 along each axis: 9 tiles, in batches of 4, 4, 1
    assert rec.shapes == [(4, 1, 16, 16), (4, 1, 16, 16), (1, 1, 16, 16)]
    assert all(rec.inference_mode)
    assert not torch.is_inference_mode_enabled()


def test_tile_size_rounded_up_to_pad_multiple(rng):
    rec = Recorder(pool_net())
    img = rng.integers(0, 256, (1, 50, 50, 1), dtype=np.uint8)
    (p,) = predict(rec, img, tiling=True, tile_size=20, pad_multiple=8)
    assert p.shape == (50, 50, 3)
    assert {s[2:] for s in rec.shapes} == {(24, 24)}


def test_auto_tiling_uses_the_pixel_budget(rng):
    img = rng.integers(0, 256, (1, 20, 30, 1), dtype=np.uint8)
    rec = Recorder(small_net())
    predict(rec, img, max_tile_pixels=599, tile_size=8)
    assert {s[2:] for s in rec.shapes} == {(8, 8)}
    rec = Recorder(small_net())
    predict(rec, img, max_tile_pixels=600, tile_size=8)
    assert rec.shapes == [(1, 1, 20, 30)]
    rec = Recorder(small_net())
    predict(rec, img, max_tile_pixels=10, tile_size=8, tiling=False)
    assert rec.shapes == [(1, 1, 20, 30)]


@pytest.mark.parametrize("shape", [(20, 30), (5, 3), (1, 1), (20, 100)])
def test_image_smaller_than_a_tile(shape, rng):
    net = pool_net()
    img = rng.integers(0, 256, shape + (1,), dtype=np.uint8)
    whole = predict(net, [img], tiling=False, pad_multiple=8)[0]
    tiled = predict(net, [img], tiling=True, tile_size=32, pad_multiple=8)[0]
    assert tiled.shape == shape + (3,)
    if shape[1] <= 32:  # one tile covers the image: the same computation
        np.testing.assert_allclose(tiled, whole, atol=1e-6)
    np.testing.assert_allclose(tiled.sum(-1), 1.0, atol=1e-5)


def _tile_edges(length, tile, overlap):
    starts = _tile_starts(length, tile, overlap)
    return sorted({s for s in starts if s > 0} | {s + tile for s in starts if s + tile < length})


def _jump(p, row_edges, col_edges):
    """Mean absolute change of the probabilities across the given rows and columns."""
    return np.mean([np.abs(p[e] - p[e - 1]).mean() for e in row_edges]
                   + [np.abs(p[:, e] - p[:, e - 1]).mean() for e in col_edges])


def test_tiled_agrees_with_whole_and_shows_no_seams():
    net = small_net()  # receptive field 5x5, far smaller than the 8-pixel overlap
    img = smooth_image((160, 150))[None]
    whole = predict(net, img, tiling=False)[0]
    tiled = predict(net, img, tiling=True, tile_size=32, tile_overlap=0.25)[0]
    agree = whole.argmax(-1) == tiled.argmax(-1)
    assert agree.mean() >= 0.999
    assert np.abs(tiled - whole).max() < 0.02
    rows, cols = _tile_edges(160, 32, 0.25), _tile_edges(150, 32, 0.25)
    near = np.zeros((160, 150), bool)
    for e in rows:
        near[max(0, e - 3):e + 3] = True
    for e in cols:
        near[:, max(0, e - 3):e + 3] = True
    assert agree[near].mean() >= agree[~near].mean() - 1e-3
    # no step across tile borders beyond the one the whole-image prediction has
    typical = np.abs(np.diff(whole, axis=1)).mean()
    assert _jump(tiled, rows, cols) <= _jump(whole, rows, cols) + 0.2 * typical


def test_unet_tiled_blends_without_seams():
    """A U-Net's receptive field exceeds the overlap: tiles disagree with the
    whole-image prediction near their borders. Blending must spread that
    difference smoothly: it changes across tile borders no faster than
    elsewhere (with hard-edged averaging it jumps there, several times faster)."""
    net = unet(depth=2, width=4)
    img = smooth_image((160, 160), seed=1)[None]
    whole = predict(net, img, tiling=False, pad_multiple=4)[0]
    tiled = predict(net, img, tiling=True, tile_size=64, pad_multiple=4)[0]
    assert (whole.argmax(-1) == tiled.argmax(-1)).mean() >= 0.95
    err = tiled - whole
    edges = _tile_edges(160, 64, 0.25)
    elsewhere = 0.5 * (np.abs(np.diff(err, axis=0)).mean() + np.abs(np.diff(err, axis=1)).mean())
    assert _jump(err, edges, edges) <= 1.6 * elsewhere


def test_labels_are_argmax_of_proba_in_every_mode(rng):
    img = rng.integers(0, 256, (2, 33, 27, 1), dtype=np.uint8)
    net = small_net(n_classes=4)
    for kw in ({"tiling": False}, {"tiling": True, "tile_size": 16},
               {"tiling": True, "tile_size": 16, "tta": True}, {"tta": True}):
        probas = predict(net, img, output="proba", **kw)
        labels = predict(net, img, output="labels", **kw)
        for p, lab in zip(probas, labels):
            assert p.shape == (33, 27, 4) and p.dtype == np.float32
            np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
            assert lab.shape == (33, 27) and lab.dtype == np.int64
            np.testing.assert_array_equal(lab, p.argmax(-1))


def test_single_class_model(rng):
    net = small_net(n_classes=1)
    img = rng.integers(0, 256, (1, 9, 9, 1), dtype=np.uint8)
    (p,) = predict(net, img, tiling=True, tile_size=4)
    (lab,) = predict(net, img, output="labels")
    np.testing.assert_allclose(p, 1.0)
    assert (lab == 0).all()


# ---------------------------------------------------------------------- #
# test-time augmentation
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(16, 16), (12, 20)])
def test_tta_equals_plain_for_an_equivariant_net(shape, rng):
    net = symmetric_net()
    img = rng.integers(0, 256, (2,) + shape + (1,), dtype=np.uint8)
    plain = predict(net, img)
    tta = predict(net, img, tta=True)
    for a, b in zip(plain, tta):
        assert b.shape == shape + (3,) and b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5)
    labels = predict(net, img, tta=True, output="labels")
    assert labels[0].shape == shape and labels[0].dtype == np.int64


@pytest.mark.parametrize("shape", [(16, 16), (17, 33)])
def test_tta_makes_predictions_flip_equivariant(shape, rng):
    net = pool_net()
    img = rng.integers(0, 256, shape + (1,), dtype=np.uint8)
    plain = predict(net, [img], pad_multiple=8)[0]
    tta = predict(net, [img], pad_multiple=8, tta=True)[0]
    assert np.abs(plain - tta).max() > 1e-3  # the net is not symmetric: TTA changes things
    np.testing.assert_allclose(tta.sum(-1), 1.0, atol=1e-5)
    flipped = predict(net, [img[:, ::-1]], pad_multiple=8, tta=True)[0]
    np.testing.assert_allclose(flipped, tta[:, ::-1], atol=1e-5)
    flipped = predict(net, [img[::-1]], pad_multiple=8, tta=True)[0]
    np.testing.assert_allclose(flipped, tta[::-1], atol=1e-5)
    if shape[0] == shape[1]:
        rotated = predict(net, [np.rot90(img)], pad_multiple=8, tta=True)[0]
        np.testing.assert_allclose(rotated, np.rot90(tta), atol=1e-5)


def test_every_network_input_has_one_layout(rng):
    """Padded, flipped and rotated inputs reach the network laid out like the
    converted batches (channels last), whatever the transform returns."""
    rec = Recorder(pool_net())
    predict(rec, [rng.integers(0, 256, (17, 17, 1), dtype=np.uint8)], pad_multiple=8, tta=True,
            transform=lambda x: x.contiguous())
    predict(rec, rng.integers(0, 256, (1, 40, 30, 1), dtype=np.uint8), pad_multiple=8,
            tiling=True, tile_size=16)
    assert len(rec.channels_last) > 8 and all(rec.channels_last)


def test_argmax_takes_the_first_class_on_ties():
    from sksegment._inference import _argmax_classes

    g = torch.Generator().manual_seed(0)
    for k in (1, 2, 3, 6):
        p = torch.randint(0, 3, (k, 40, 50), generator=g).float()  # many ties
        np.testing.assert_array_equal(_argmax_classes(p).numpy(), p.numpy().argmax(0))


def test_tta_runs_the_views_per_batch(rng):
    img = rng.integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
    rec = Recorder(small_net())
    predict(rec, img, tta=True)
    assert len(rec.shapes) == 8  # the 8 symmetries of the square
    rec = Recorder(small_net())
    predict(rec, img[:, :, :12], tta=True)
    assert len(rec.shapes) == 4  # flips only


# ---------------------------------------------------------------------- #
# iteration, progress, errors
# ---------------------------------------------------------------------- #
def test_lazy_iteration_and_early_close(rng):
    rec = Recorder(small_net())
    images = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    it = iter_predictions(rec, images, device=torch.device("cpu"), batch_size=2)
    assert rec.shapes == []
    first = next(it)
    assert first.shape == (8, 8, 3) and len(rec.shapes) == 1
    assert not torch.is_inference_mode_enabled()
    first[:] = 0  # the caller owns the array
    it.close()
    assert len(rec.shapes) == 1


def test_verbose_shows_a_progress_bar(rng, capsys):
    img = rng.integers(0, 256, (1, 20, 20, 1), dtype=np.uint8)
    predict(small_net(), img, verbose=0, tiling=True, tile_size=8)
    assert "predict" not in capsys.readouterr().err
    predict(small_net(), img, verbose=1, tiling=True, tile_size=8)
    assert "predict" in capsys.readouterr().err


@pytest.mark.parametrize("kw, exc, match", [
    ({"tile_overlap": 1.0}, ValueError, "tile_overlap"),
    ({"tile_overlap": -0.1}, ValueError, "tile_overlap"),
    ({"tile_overlap": "0.5"}, TypeError, "tile_overlap"),
    ({"tile_size": 4, "pad_multiple": 8}, ValueError, "tile_size"),
    ({"tile_size": 0}, ValueError, "tile_size"),
    ({"tile_size": 2.5}, TypeError, "tile_size"),
    ({"tile_size": (8, 8, 8)}, ValueError, "tile_size"),
    ({"tiling": "yes"}, ValueError, "tiling"),
    ({"tiling": 1}, ValueError, "tiling"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.0}, TypeError, "batch_size"),
    ({"output": "probs"}, ValueError, "output"),
    ({"tta": "yes"}, TypeError, "tta"),
    ({"max_tile_pixels": 0}, ValueError, "max_tile_pixels"),
    ({"pad_multiple": 0}, ValueError, "pad_multiple"),
    ({"transform": 3}, TypeError, "transform"),
    ({"verbose": "loud"}, TypeError, "verbose"),
    ({"device": "nonsense"}, ValueError, "device"),
    ({"device": 3.5}, TypeError, "device"),
])
def test_bad_arguments_raise_at_call(kw, exc, match):
    kw.setdefault("device", "cpu")
    img = np.zeros((1, 8, 8, 1), np.uint8)
    with pytest.raises(exc, match=match):
        iter_predictions(small_net(), img, **kw)  # no iteration needed


@pytest.mark.parametrize("images, exc", [
    (torch.zeros(1, 8, 8, 1), TypeError),
    (np.zeros((8, 8)), ValueError),
    (np.zeros((1, 0, 8, 1)), ValueError),
    (np.zeros((1, 8, 8, 1), dtype=object), TypeError),
    ([np.zeros((8, 8, 1)), "image"], TypeError),
    ([np.zeros((8,))], ValueError),
    ("images", TypeError),
])
def test_bad_images(images, exc):
    with pytest.raises(exc, match="images"):
        iter_predictions(small_net(), images, device="cpu")
    with pytest.raises(TypeError, match="model"):
        iter_predictions("unet", np.zeros((1, 8, 8, 1)), device="cpu")


def test_model_or_transform_with_wrong_output_shape():
    img = np.zeros((1, 8, 8, 1), np.uint8)
    with pytest.raises(ValueError, match="logits"):
        predict(_seeded(lambda: nn.Conv2d(1, 2, 3), 0), img)  # no padding: output shrinks
    with pytest.raises(ValueError, match="transform"):
        predict(small_net(), img, transform=lambda x: x[:, :, :4])


# ---------------------------------------------------------------------- #
# bounded memory
# ---------------------------------------------------------------------- #
def _status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (the peak resident set) to the current RSS
        _status_bytes("VmHWM:")
    except (OSError, KeyError):
        pytest.skip("peak RSS cannot be reset here (needs Linux /proc/self/clear_refs)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_tiled_labels_hold_one_band_not_the_image():
    import tracemalloc

    n_classes, size = 16, 2048
    net = _seeded(lambda: nn.Conv2d(1, n_classes, 1), 0)
    img = np.zeros((1, size, size, 1), np.uint8)
    img[0, ::7, ::5] = 200
    kw = {"device": "cpu", "output": "labels", "tiling": True, "tile_size": 64,
          "batch_size": 8}
    next(iter_predictions(net, img[:, :300, :300], **kw))  # warm up allocators
    _reset_peak_rss()
    before = _status_bytes("VmRSS:")
    tracemalloc.start()
    try:
        out = next(iter_predictions(net, img, **kw))
        numpy_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    growth = _status_bytes("VmHWM:") - before
    full_proba = n_classes * size * size * 4  # 256 MiB: what an unbanded blend would hold
    assert out.shape == (size, size) and out.dtype == np.int64
    assert growth < out.nbytes + full_proba // 4
    # on the host, NumPy holds the output and small batches of tiles only
    assert numpy_peak < out.nbytes + 8 * 2**20
    # the band's result is right: class from a per-pixel net, image rows 0 and 7 differ
    with torch.no_grad():
        expected = net(torch.tensor([[[[0.0]], [[200 / 255]]]]).reshape(2, 1, 1, 1))
    assert out[0, 0] == int(expected[1].argmax()) and out[1, 0] == int(expected[0].argmax())
    assert out[7, 5] == out[0, 0] and out[2047, 2045] == out[0, 1]
