"""Tests of sksegment.augmentation (batched torch augmenters) and sksegment.plot."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sync_counter import SyncCounter

from sksegment._data import IGNORE
from sksegment.augmentation import (
    AugmentationChain,
    AugmentationSampler,
    AugmentedImages,
    ColorJitter,
    ElasticDeformation,
    GaussianBlur,
    GaussianNoise,
    IntensityStandardizer,
    RandomAffine,
    RandomBrightnessContrast,
    RandomCrop,
    RandomFlip,
    RandomGamma,
    RandomResizedCrop,
    RandomRotate90,
    make_chain,
    unwrap,
)

THRESHOLD = 0.5

GEOMETRIC = {
    "flip": RandomFlip(p=0.5),
    "rot90": RandomRotate90(p=1.0),
    "affine": RandomAffine(degrees=40, scale=(0.8, 1.25), translate=(0.2, 0.1), shear=15,
                           p=1.0),
    "affine_border": RandomAffine(degrees=20, p=1.0, padding_mode="border"),
    "crop": RandomCrop(size=(20, 24)),
    "crop_padded": RandomCrop(size=40),
    "resized_crop": RandomResizedCrop(size=(24, 28), scale=(0.4, 1.0)),
    "elastic": ElasticDeformation(alpha=2.0, sigma=8.0, p=1.0),
}
PHOTOMETRIC = {
    "brightness_contrast": RandomBrightnessContrast(brightness=0.3, contrast=0.5, p=1.0),
    "gamma": RandomGamma(gamma=(0.5, 2.0), p=1.0),
    "noise": GaussianNoise(std=(0.05, 0.1), p=1.0),
    "blur": GaussianBlur(sigma=(0.5, 2.0), p=1.0),
    "color": ColorJitter(hue=0.2, saturation=0.5, p=1.0),
}
ALL = {**GEOMETRIC, **PHOTOMETRIC}


def smooth_images(n=6, shape=(32, 32), channels=None, seed=0):
    """Blurred noise rescaled to [0, 1]: large smooth regions above/below 0.5."""
    rng = np.random.default_rng(seed)
    full = (n,) + shape + ((channels,) if channels else ())
    sigma = (0, 3, 3) + ((0,) if channels else ())
    X = ndi.gaussian_filter(rng.random(full), sigma)
    X -= X.min(axis=(1, 2), keepdims=True)
    X /= X.max(axis=(1, 2), keepdims=True)
    return X.astype(np.float32)


def batch(X, y):
    """NumPy channels-last images and 0/1 masks -> device batch."""
    x = torch.from_numpy(X if X.ndim == 4 else X[..., None]).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(y.astype(np.int64))


def near_boundary(y, width=2):
    """Pixels within ``width`` of a change of label (IGNORE counts as a label)
    or of the image's edge (a region boundary may lie just outside it)."""
    size = 2 * width + 1
    out = np.ones(y.shape, dtype=bool)
    for i, m in enumerate(y):
        out[i] = ndi.maximum_filter(m, size) != ndi.minimum_filter(m, size)
    out[:, :width] = out[:, -width:] = out[:, :, :width] = out[:, :, -width:] = True
    return out


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# Masks stay aligned with images
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(GEOMETRIC))
@pytest.mark.parametrize("shape", [(32, 32), (28, 36)])
def test_geometric_keeps_mask_aligned(name, shape):
    X = smooth_images(shape=shape)
    y = (X > THRESHOLD).astype(np.int64)
    x, yt = batch(X, y)
    chain = make_chain(GEOMETRIC[name])
    xa, ya = chain(x, yt, generator=generator(1))
    xa, ya = xa[:, 0].numpy(), ya.numpy()
    assert xa.shape == ya.shape
    assert set(np.unique(ya)) <= {0, 1, IGNORE}
    checked = (ya != IGNORE) & ~near_boundary(ya)
    assert checked.mean() > 0.2  # enough pixels are compared
    assert np.array_equal(xa[checked] > THRESHOLD, ya[checked] == 1)
    # the transform really moved the content (a misaligned mask would show)
    if ya.shape == y.shape and name != "flip":
        assert not np.array_equal(ya, y)


def test_alignment_check_catches_a_misaligned_mask():
    """The alignment criterion above fails when image and mask move apart."""
    X = smooth_images()
    y = (X > THRESHOLD).astype(np.int64)
    x, yt = batch(X, y)
    xa, _ = make_chain(RandomFlip(axes="horizontal", p=1.0))(x, yt, generator=generator())
    xa = xa[:, 0].numpy()
    checked = ~near_boundary(y)
    assert not np.array_equal(xa[checked] > THRESHOLD, y[checked] == 1)


@pytest.mark.parametrize("name", ["affine", "crop_padded", "resized_crop", "elastic"])
def test_multiclass_labels_stay_within_original_labels(name):
    X = smooth_images(n=4)
    y = np.digitize(X, [0.35, 0.65]).astype(np.uint8) * 3 + 2  # labels 2, 5, 8
    Xa, ya = GEOMETRIC[name].sample(X, y, random_state=0, mask_fill=0)
    assert ya.dtype == np.uint8
    assert set(np.unique(ya)) <= {0, 2, 5, 8}
    inside = ya != 0
    checked = inside & ~near_boundary(ya)
    expected = np.digitize(Xa, [0.35, 0.65]) * 3 + 2
    assert np.array_equal(ya[checked], expected[checked])


def test_pixels_from_outside_are_ignored():
    X = np.ones((2, 16, 16), dtype=np.float32)
    y = np.ones((2, 16, 16), dtype=np.int64)
    aug = RandomAffine(degrees=(45, 45), scale=(0.5, 0.5), translate=None, p=1.0)
    xa, ya = make_chain(aug)(*batch(X, y), generator=generator())
    outside = (ya == IGNORE).numpy()
    assert outside[:, 0, 0].all() and not outside[:, 8, 8].any()
    xa = xa[:, 0].numpy()
    assert np.all(xa[outside & ~near_boundary(ya.numpy())] == 0)  # padding_mode="zeros"
    # border padding repeats the edge instead
    xb, _ = make_chain(clone(aug).set_params(padding_mode="border"))(
        *batch(X, y), generator=generator())
    assert torch.allclose(xb, torch.ones_like(xb))


def test_flip_and_rot90_are_exact():
    X = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    Xh, yh = RandomFlip(axes="horizontal", p=1.0).sample(X, X, random_state=0)
    assert np.array_equal(Xh, X[:, :, ::-1]) and np.array_equal(yh, X[:, :, ::-1])
    Xv, _ = RandomFlip(axes=("vertical",), p=1.0).sample(X, random_state=0)
    assert np.array_equal(Xv, X[:, ::-1])
    Xr, yr = RandomRotate90(p=1.0).sample(np.repeat(X[:1], 30, 0), np.repeat(X[:1], 30, 0),
                                          random_state=0)
    turns = [[k for k in (1, 2, 3) if np.array_equal(a, np.rot90(X[0], k))] for a in Xr]
    assert all(len(t) == 1 for t in turns)
    assert {t[0] for t in turns} == {1, 2, 3}
    assert np.array_equal(Xr, yr)


def test_rot90_on_non_square_images_turns_half_way():
    X = np.arange(3 * 4 * 6, dtype=np.float32).reshape(3, 4, 6)
    Xr, _ = RandomRotate90(p=1.0).sample(X, random_state=1)
    assert Xr.shape == X.shape
    assert np.array_equal(Xr, X[:, ::-1, ::-1])


def test_affine_rotation_matches_rot90_and_turns_counter_clockwise():
    X = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    aug = RandomAffine(degrees=(90, 90), scale=None, translate=None, p=1.0)
    Xa, _ = aug.sample(X, random_state=0)
    np.testing.assert_allclose(Xa[0], np.rot90(X[0], 1), atol=1e-4)


def test_random_crop_is_a_window_of_the_image():
    X = np.arange(2 * 10 * 12, dtype=np.int32).reshape(2, 10, 12)
    Xc, yc = RandomCrop(size=(4, 5)).sample(X, X, random_state=3)
    assert Xc.shape == (2, 4, 5) and np.array_equal(Xc, yc)
    for img, crop in zip(X, Xc):
        r, c = np.argwhere(img == crop[0, 0])[0]
        assert np.array_equal(img[r:r + 4, c:c + 5], crop)
    centre, _ = RandomCrop(size=(4, 5), p=0.0).sample(X, random_state=3)
    assert np.array_equal(centre, X[:, 3:7, 3:8])


def test_random_crop_pads_small_images_with_ignored_pixels():
    x = torch.ones(2, 1, 6, 6)
    y = torch.zeros(2, 6, 6, dtype=torch.int64)
    xc, yc = make_chain(RandomCrop(size=(8, 10)))(x, y, generator=generator())
    assert xc.shape == (2, 1, 8, 10) and yc.shape == (2, 8, 10)
    assert torch.equal(yc == IGNORE, xc[:, 0] == 0)
    assert int((yc == 0).sum()) == 2 * 36


def test_elastic_displacement_has_requested_size():
    h, w = 48, 48
    X = np.tile(np.arange(w, dtype=np.float32), (8, h, 1))  # value = column
    Xa, ya = ElasticDeformation(alpha=1.5, sigma=6.0, p=1.0).sample(
        X, np.zeros(X.shape, dtype=np.int64), random_state=0, mask_fill=1)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    shift = (Xa - X)[inner]
    assert ya[inner].max() == 0  # interior never comes from outside
    assert 0.9 < shift.std() < 2.1
    np.testing.assert_allclose(ElasticDeformation(alpha=0.0, p=1.0).sample(X)[0], X, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_sample_of_a_list_never_returns_the_callers_memory(dtype):
    from sksegment.augmentation import AugmentationSampler

    X = [np.zeros((8, 8), dtype), np.ones((6, 8), dtype)]
    y = [np.zeros((8, 8), np.int64), np.zeros((6, 8), np.int64)]
    outs = [RandomFlip(p=0.0).sample(X, y)[0],
            AugmentationSampler(None, random_state=0).fit_resample(X, y)[0]]
    for Xo in outs:
        for a, b in zip(Xo, X):
            assert not np.shares_memory(a, b)
            np.testing.assert_array_equal(a, b)
            a[...] = 7  # writing to the result leaves the input alone
    assert X[0].max() == 0 and X[1].min() == 1


def test_elastic_displacement_is_as_large_at_the_border_as_inside():
    h = w = 48
    rows, cols = np.mgrid[:h, :w]
    y = np.broadcast_to(rows * w + cols, (120, h, w)).copy()  # each pixel its own label
    _, ya = ElasticDeformation(alpha=3.0, sigma=8.0, p=1.0).sample(
        np.zeros((120, h, w), np.float32), y, random_state=0, mask_fill=-1)
    inside = ya >= 0
    moved = np.where(inside, ya // w, 0) - rows  # rows each pixel came from

    def rms(columns):
        return np.sqrt((moved[:, :, columns][inside[:, :, columns]] ** 2).mean())

    centre, edge = rms(slice(20, 28)), rms(slice(0, 2))
    assert 2.0 < centre < 4.0
    assert 0.75 < edge / centre < 1.3  # a replicated border sample made it 2.4 times


# ---------------------------------------------------------------------------
# Photometric augmenters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PHOTOMETRIC))
def test_photometric_leave_masks_untouched(name):
    X = smooth_images(n=4, channels=3)
    y = (X[..., 0] > THRESHOLD).astype(np.int64)
    x, yt = batch(X, y)
    xa, ya = make_chain(PHOTOMETRIC[name])(x, yt, generator=generator())
    assert ya is yt
    assert xa.shape == x.shape and not torch.equal(xa, x)


def test_brightness_contrast_formula():
    x = torch.rand(3, 2, 8, 8)
    aug = RandomBrightnessContrast(brightness=(0.1, 0.1), contrast=(2.0, 2.0), p=1.0)
    xa, _ = make_chain(aug)(x, None, generator=generator())
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(xa, (x - mean) * 2 + mean + 0.1)


def test_gamma_is_a_power_on_unit_range_images():
    x = torch.rand(2, 1, 8, 8)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    xa, _ = make_chain(RandomGamma(gamma=(2.0, 2.0), p=1.0))(x, None, generator=generator())
    torch.testing.assert_close(xa, x ** 2)


def test_noise_has_requested_std():
    x = torch.zeros(4, 1, 64, 64)
    xa, _ = make_chain(GaussianNoise(std=0.2, p=1.0))(x, None, generator=generator())
    assert abs(float(xa.std()) - 0.2) < 0.01


def test_blur_smooths_and_keeps_constants():
    x = torch.rand(3, 2, 16, 16)
    x[0] = 0.25
    xa, _ = make_chain(GaussianBlur(sigma=(1.0, 2.0), p=1.0))(x, None, generator=generator())
    torch.testing.assert_close(xa[0], x[0])
    assert float(xa[1:].var()) < 0.5 * float(x[1:].var())
    torch.testing.assert_close(xa.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.03, rtol=0)


def test_color_jitter_keeps_grey_and_brightness():
    x = torch.rand(4, 3, 8, 8)
    x[:, :, :4] = x[:, :1, :4]  # top half grey
    xa, _ = make_chain(ColorJitter(hue=0.3, saturation=0.5, p=1.0))(
        x, None, generator=generator())
    torch.testing.assert_close(xa[:, :, :4], x[:, :, :4], atol=1e-5, rtol=0)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((xa * luma).sum(1), (x * luma).sum(1), atol=1e-5, rtol=0)
    assert not torch.allclose(xa[:, :, 4:], x[:, :, 4:])
    grey, _ = make_chain(ColorJitter(hue=0, saturation=(0, 0), p=1.0))(x, None)
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-5)


def test_color_jitter_rejects_grayscale():
    X = np.zeros((2, 8, 8), dtype=np.uint8)
    for call in (lambda: ColorJitter().fit(X), lambda: ColorJitter().fit_transform(X),
                 lambda: ColorJitter().sample(X)):
        with pytest.raises(ValueError, match="X must have 3 channels"):
            call()
    with pytest.raises(ValueError, match="x must have 3 channels"):
        make_chain(ColorJitter(p=1.0))(torch.zeros(2, 1, 8, 8), None)


# ---------------------------------------------------------------------------
# Probability, randomness
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in ALL if "crop" not in n])
def test_p_zero_is_the_identity(name):
    x = torch.rand(4, 3, 12, 12)
    y = torch.randint(0, 3, (4, 12, 12))
    aug = clone(ALL[name]).set_params(p=0.0)
    xa, ya = make_chain(aug)(x, y, generator=generator())
    assert torch.equal(xa, x) and torch.equal(ya, y)


def test_crops_with_p_zero_are_deterministic():
    x = torch.rand(2, 1, 12, 12)
    xa, _ = make_chain(RandomResizedCrop(size=12, p=0.0))(x, None, generator=generator())
    torch.testing.assert_close(xa, x)  # whole image resized to its own size
    xb, _ = make_chain(RandomCrop(size=8, p=0.0))(x, None, generator=generator(5))
    assert torch.equal(xb, x[:, :, 2:10, 2:10])


def test_p_is_a_per_sample_probability():
    x = torch.rand(400, 1, 4, 4)
    xa, _ = make_chain(RandomRotate90(p=0.3))(x, None, generator=generator())
    changed = (xa != x).flatten(1).any(1).float().mean()
    assert 0.22 < float(changed) < 0.38


@pytest.mark.parametrize("name", [n for n in ALL if "crop" not in n])
def test_unselected_samples_come_out_bit_for_bit(name):
    """With p = 0.5 each sample is either transformed or left exactly as it
    was (the op computes the whole batch and keeps the selected samples)."""
    x = torch.rand(16, 3, 12, 12)
    y = torch.randint(0, 3, (16, 12, 12))
    aug = clone(ALL[name]).set_params(p=0.5)
    xa, ya = make_chain(aug)(x, y, generator=generator(3))
    same = [torch.equal(xa[i], x[i]) and torch.equal(ya[i], y[i]) for i in range(16)]
    assert 0 < sum(same) < 16


@pytest.mark.parametrize("aug", [RandomFlip(p=0.5), RandomRotate90(p=1.0), RandomCrop(size=6)])
def test_exact_moves_keep_a_channels_last_batch_channels_last(aug):
    x = torch.rand(4, 8, 8, 3).permute(0, 3, 1, 2)  # as to_tensor hands batches over
    xa, _ = make_chain(aug)(x, None, generator=generator())
    assert xa.is_contiguous(memory_format=torch.channels_last)
    xb, _ = make_chain(aug)(x.contiguous(), None, generator=generator())
    assert xb.is_contiguous() and torch.equal(xa, xb)


@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("name", list(ALL) + ["standardizer"])
def test_ops_read_nothing_back_from_the_device(name, with_mask):
    """No .item(), nonzero() or boolean-mask indexing: on a GPU no op makes
    the host wait (counted through the dispatcher, so the CPU shows it)."""
    x = torch.rand(6, 3, 16, 16)
    y = torch.randint(0, 3, (6, 16, 16)) if with_mask else None
    if name == "standardizer":
        chain = make_chain(IntensityStandardizer(), X=np.random.default_rng(0).random((2, 8, 8, 3)))
    else:
        chain = make_chain(clone(ALL[name]).set_params(p=0.5))
    with SyncCounter() as counter:
        chain(x, y, generator=generator(1), training=True)
    assert counter.syncs == []


@pytest.mark.parametrize("name", list(ALL))
def test_fixed_seed_reproduces_and_draws_differ(name):
    x = torch.rand(8, 3, 48, 48)
    y = torch.randint(0, 2, (8, 48, 48))
    chain = make_chain(ALL[name])
    a = chain(x, y, generator=generator(7))
    b = chain(x, y, generator=generator(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g = generator(7)
    first, second = chain(x, y, generator=g), chain(x, y, generator=g)
    assert not torch.equal(first[0], second[0])


def test_sample_random_state():
    X = smooth_images(n=4)
    aug = RandomAffine(p=1.0)
    assert np.array_equal(aug.sample(X, random_state=3)[0], aug.sample(X, random_state=3)[0])
    assert not np.array_equal(aug.sample(X, random_state=3)[0], aug.sample(X, random_state=4)[0])
    rs = np.random.RandomState(0)
    assert not np.array_equal(aug.sample(X, random_state=rs)[0], aug.sample(X, random_state=rs)[0])


def test_inputs_are_not_modified():
    x = torch.rand(4, 3, 16, 16)
    y = torch.randint(0, 2, (4, 16, 16))
    x0, y0 = x.clone(), y.clone()
    for aug in ALL.values():
        make_chain(aug)(x, y, generator=generator())
    assert torch.equal(x, x0) and torch.equal(y, y0)
    X = smooth_images(n=3, channels=3)
    X0 = X.copy()
    for aug in ALL.values():
        aug.sample(X, (X[..., 0] > 0.5), random_state=0)
    assert np.array_equal(X, X0)


# ---------------------------------------------------------------------------
# sample(): NumPy round trip
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64, bool])
@pytest.mark.parametrize("channels", [None, 3])
def test_sample_keeps_dtype_and_layout(dtype, channels):
    X = smooth_images(n=3, shape=(12, 14), channels=channels)
    if dtype is bool:
        X = X > 0.5
    elif np.issubdtype(dtype, np.integer):
        X = (X * (np.iinfo(dtype).max if dtype != np.int16 else 1000)).astype(dtype)
    else:
        X = X.astype(dtype)
    y = np.zeros(X.shape[:3], dtype=np.int32)
    y[:, 4:] = 7
    Xa, ya = RandomFlip(p=1.0, axes="vertical").sample(X, y, random_state=0)
    assert Xa.dtype == X.dtype and Xa.shape == X.shape
    assert np.array_equal(Xa, X[:, ::-1])  # integers survive the round trip exactly
    assert ya.dtype == y.dtype and np.array_equal(ya, y[:, ::-1])


def test_sample_clips_integer_images():
    X = np.full((2, 8, 8), 250, dtype=np.uint8)
    X[:, :4] = 5
    Xa, _ = RandomBrightnessContrast(brightness=(0.2, 0.2), contrast=(1, 1), p=1.0).sample(X)
    assert Xa.dtype == np.uint8 and Xa.max() == 255 and Xa.min() > 5


def test_sample_on_lists_and_augmented_images():
    X = [smooth_images(n=1, shape=(10, 12))[0], smooth_images(n=1, shape=(14, 9))[0]]
    y = [(img > 0.5).astype(np.uint8) for img in X]
    Xa, ya = RandomFlip(axes="horizontal", p=1.0).sample(X, y, random_state=0)
    assert isinstance(Xa, list) and [a.shape for a in Xa] == [(10, 12), (14, 9)]
    assert all(np.array_equal(a, img[:, ::-1]) for a, img in zip(Xa, X))
    assert all(np.array_equal(m, t[:, ::-1]) for m, t in zip(ya, y))
    Xc, _ = RandomCrop(size=6).sample(X, random_state=0)
    assert [a.shape for a in Xc] == [(6, 6), (6, 6)]
    # an AugmentedImages' chain runs before the augmenter's own op
    lazy = RandomFlip(axes="horizontal", p=1.0).fit_transform(np.stack([X[0]] * 2))
    Xv, _ = RandomFlip(axes="vertical", p=1.0).sample(lazy, random_state=0)
    assert np.array_equal(Xv[0], X[0][::-1, ::-1])


def test_sample_mask_fill():
    X = np.ones((2, 16, 16), dtype=np.float32)
    y = np.full((2, 16, 16), 3, dtype=np.uint8)
    aug = RandomAffine(degrees=(45, 45), translate=None, scale=None, p=1.0)
    _, ya = aug.sample(X, y, random_state=0, mask_fill=255)
    assert set(np.unique(ya)) == {3, 255}
    with pytest.raises(ValueError, match="mask_fill"):
        aug.sample(X, y, mask_fill=-1)
    with pytest.raises(TypeError, match="mask_fill"):
        aug.sample(X, y, mask_fill="none")
    with pytest.raises(ValueError, match="mask_fill must be a finite label value"):
        aug.sample(X, y.astype(np.float32), mask_fill=np.inf)


# ---------------------------------------------------------------------------
# Lazy attachment, chains, AugmentedImages
# ---------------------------------------------------------------------------

def test_fit_transform_attaches_lazily_without_copy():
    X = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    first = RandomFlip().fit_transform(X)
    assert isinstance(first, AugmentedImages) and first.images is X
    second = RandomAffine().fit_transform(first)
    assert second.images is X and np.shares_memory(second.images, X)
    assert len(first.chain) == 1 and len(second.chain) == 2  # first not mutated
    assert [op.name for op in second.chain] == ["RandomFlip", "RandomAffine"]
    images, chain = unwrap(second)
    assert images is X and chain is second.chain
    listed = [np.zeros((4, 4)), np.zeros((5, 5))]
    assert RandomFlip().fit_transform(listed).images is listed


def test_chain_applies_ops_in_order():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    flip = RandomFlip(axes="horizontal", p=1.0)
    centre = RandomCrop(size=(4, 3), p=0.0)  # columns 0..2
    a, _ = make_chain([flip, centre])(x, None)
    b, _ = make_chain([centre, flip])(x, None)
    assert torch.equal(a[0, 0, 0], torch.tensor([3.0, 2.0, 1.0]))
    assert torch.equal(b[0, 0, 0], torch.tensor([2.0, 1.0, 0.0]))
    std = IntensityStandardizer().fit(np.arange(16.0).reshape(1, 4, 4))
    shift = RandomBrightnessContrast(brightness=(1, 1), contrast=(1, 1), p=1.0)
    scale = float(std.scale_[0])
    out, _ = make_chain([std, shift])(x, None)
    torch.testing.assert_close(out, (x - 7.5) / scale + 1)
    out, _ = make_chain([shift, std])(x, None)
    torch.testing.assert_close(out, (x + 1 - 7.5) / scale)


def test_transform_is_identity_at_predict():
    X = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    for aug in ALL.values():
        assert clone(aug).fit(X).transform(X) is X
    x = torch.rand(2, 3, 8, 8)
    chain = make_chain(list(ALL.values()))
    out, y = chain(x, None, training=False)
    assert out is x and y is None


def test_transform_requires_fit():
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        RandomFlip().transform(np.zeros((1, 4, 4)))
    with pytest.raises(NotFittedError):
        IntensityStandardizer().transform(np.zeros((1, 4, 4)))


def test_make_chain_accepts_the_documented_forms_and_copies():
    flip, affine = RandomFlip(p=0.3), RandomAffine(degrees=5)
    before = (flip.get_params(), affine.get_params())
    for augment in (flip, [flip, affine], (flip, affine), make_pipeline(flip, affine),
                    Pipeline([("a", flip), ("skip", "passthrough"), ("b", affine)]),
                    make_chain([flip, affine])):
        chain = make_chain(augment)
        assert isinstance(chain, AugmentationChain)
        assert chain[0].name == "RandomFlip" and chain[0].p == 0.3
    assert len(make_chain(None)) == 0
    assert (flip.get_params(), affine.get_params()) == before
    assert not hasattr(flip, "op_") and not hasattr(affine, "op_")


@pytest.mark.parametrize("augment", ["flip", 3, [RandomFlip(), "rot"],
                                     make_pipeline(RandomFlip(), KFold())])
def test_make_chain_rejects_non_augmenters(augment):
    with pytest.raises(TypeError, match="augment"):
        make_chain(augment)


def test_make_chain_validates_parameters():
    with pytest.raises(ValueError, match="p must be"):
        make_chain([RandomFlip(), RandomAffine(p=2)])


def test_make_chain_fits_standardizer_on_X_or_keeps_a_fitted_one():
    X = smooth_images(n=3) * 4 + 1
    with pytest.raises(ValueError, match="not fitted"):
        make_chain(IntensityStandardizer())
    std = IntensityStandardizer()
    chain = make_chain([RandomFlip(), std], X=X)
    assert not hasattr(std, "mean_")
    np.testing.assert_allclose(chain[1].mean, [X.mean()], rtol=1e-6)
    fitted = IntensityStandardizer().fit(X[:1])
    np.testing.assert_allclose(make_chain(fitted)[0].mean, fitted.mean_)


def test_chain_validates_batches():
    chain = make_chain(RandomFlip())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        chain(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="x must have shape"):
        chain(torch.zeros(1, 4, 4))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        chain(torch.zeros(1, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="y must have shape"):
        chain(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64))
    with pytest.raises(TypeError, match="y must hold integer"):
        chain(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(TypeError, match="generator"):
        chain(torch.zeros(1, 1, 4, 4), generator=0)
    with pytest.raises(TypeError, match="ops"):
        AugmentationChain([RandomFlip()])
    _, y = chain(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int32))
    assert y.dtype == torch.int64


def test_augmented_images_list_indexing_refuses_what_arrays_refuse():
    images = [np.zeros((4, 4)), np.ones((4, 5))]
    lazy = RandomFlip().fit_transform(images)
    assert [x.shape for x in lazy[np.array([False, True])].images] == [(4, 5)]
    for key, match in [([True], "one entry per image"), ("a", "integer or boolean"),
                       ([[0]], "integer or boolean"), ([0, 5], "index 5 is out of range")]:
        with pytest.raises(IndexError, match=match):
            lazy[key]


def test_a_failed_fit_resample_keeps_the_fitted_chain():
    X = np.random.RandomState(0).rand(2, 8, 8).astype(np.float32)
    y = np.zeros((2, 8, 8), np.uint8)
    sampler = AugmentationSampler([IntensityStandardizer()]).fit(X)
    before = repr(sampler.chain_)
    with pytest.raises(ValueError, match="y has 1 masks but X has 2 images"):
        sampler.fit_resample(10 * X, y[:1])
    assert repr(sampler.chain_) == before


def test_augmented_images_array_indexing_and_repr():
    X = (np.arange(4 * 3 * 3) % 7).reshape(4, 3, 3).astype(np.uint8)
    lazy = RandomFlip().fit_transform(X)
    assert np.asarray(lazy) is X and lazy.shape == X.shape and len(lazy) == 4
    sub = lazy[1:3]
    assert isinstance(sub, AugmentedImages) and np.shares_memory(sub.images, X)
    assert sub.chain == lazy.chain
    assert np.array_equal(lazy[[0, 2], ...].images, X[[0, 2]])
    assert np.array_equal(lazy[np.array([True, False, False, True])].images, X[[0, 3]])
    assert np.array_equal(lazy[-1], X[-1])
    with pytest.raises(IndexError):
        lazy[4]
    assert "RandomFlip" in repr(lazy) and "(4, 3, 3)" in repr(lazy)
    listed = RandomFlip().fit_transform([np.zeros((2, 2)), np.ones((3, 3))])
    assert not hasattr(listed, "shape")
    assert len(listed[1:]) == 1
    with pytest.raises(ValueError, match="different sizes"):
        np.asarray(listed)


def test_augmented_images_materialise_deterministic_ops():
    X = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    lazy = RandomFlip().fit_transform(X)
    lazy = IntensityStandardizer().fit_transform(lazy)
    Z = np.asarray(lazy)
    expected = (X / 255 - (X / 255).mean(axis=(0, 1, 2))) / (X / 255).std(axis=(0, 1, 2))
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z, expected, atol=1e-5)
    np.testing.assert_allclose(lazy[2], expected[2], atol=1e-5)
    gray = IntensityStandardizer().fit_transform(X[..., 0])
    assert np.asarray(gray).shape == X.shape[:3]


def test_augmented_images_pickle_and_hash():
    X = np.random.default_rng(0).random((3, 8, 8))
    lazy = RandomAffine(degrees=10).fit_transform(IntensityStandardizer().fit_transform(X))
    back = pickle.loads(pickle.dumps(lazy))
    assert np.array_equal(back.images, X) and back.chain == lazy.chain
    np.testing.assert_array_equal(np.asarray(back), np.asarray(lazy))
    same = RandomAffine(degrees=10).fit_transform(IntensityStandardizer().fit_transform(X))
    assert joblib.hash(lazy) == joblib.hash(same)
    other = RandomAffine(degrees=11).fit_transform(IntensityStandardizer().fit_transform(X))
    assert joblib.hash(lazy) != joblib.hash(other)
    make_chain(lazy.chain)(torch.rand(2, 1, 8, 8), None)  # using a chain keeps its hash
    assert joblib.hash(lazy) == joblib.hash(same)


# ---------------------------------------------------------------------------
# IntensityStandardizer
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_standardizer_statistics_match_numpy(per_channel, dtype):
    rng = np.random.default_rng(1)
    X = rng.random((7, 9, 11, 3)) * [1, 2, 3] + [0, 1, 5]
    if dtype == np.uint8:
        X = (X * 40).astype(np.uint8)
    elif dtype == np.uint16:
        X = (X * 9000).astype(np.uint16)
    scaled = X.astype(np.float64) * {np.uint8: 1 / 255, np.uint16: 1 / 65535}.get(dtype, 1)
    axes = (0, 1, 2) if per_channel else None
    std = IntensityStandardizer(per_channel=per_channel).fit(X)
    np.testing.assert_allclose(std.mean_, np.atleast_1d(scaled.mean(axis=axes)), rtol=1e-10)
    np.testing.assert_allclose(std.scale_, np.atleast_1d(scaled.std(axis=axes)), rtol=1e-8)
    assert std.n_channels_ == 3


def test_standardizer_in_chunks_lists_and_constants(monkeypatch):
    from sksegment import _augment_photometric

    rng = np.random.default_rng(2)
    X = rng.random((10, 8, 8)) * 3
    real = _augment_photometric._chunks
    monkeypatch.setattr(_augment_photometric, "_chunks", lambda imgs: real(imgs, max_values=100))
    std = IntensityStandardizer().fit(X)  # many small chunks
    np.testing.assert_allclose([std.mean_[0], std.scale_[0]], [X.mean(), X.std()], rtol=1e-10)
    listed = [X[0], X[1, :5, :7]]
    flat = np.concatenate([a.ravel() for a in listed])
    std = IntensityStandardizer().fit(listed)
    np.testing.assert_allclose([std.mean_[0], std.scale_[0]], [flat.mean(), flat.std()])
    const = IntensityStandardizer().fit(np.full((2, 3, 3), 7.0))
    assert const.scale_[0] == 1.0


def test_standardizer_after_a_deterministic_op_sees_its_output():
    X = np.random.default_rng(3).random((4, 6, 6)) * 5 + 2
    twice = IntensityStandardizer().fit(IntensityStandardizer().fit_transform(X))
    np.testing.assert_allclose([twice.mean_[0], twice.scale_[0]], [0, 1], atol=1e-6)


def test_standardizer_transform_and_sample():
    X = np.random.default_rng(4).random((4, 6, 6, 2)).astype(np.float32)
    std = IntensityStandardizer().fit(X)
    out = std.transform(X)
    assert isinstance(out, AugmentedImages) and out.images is X
    assert np.asarray(out).mean() == pytest.approx(0, abs=1e-5)
    Xs, _ = IntensityStandardizer().sample(X)
    assert Xs.dtype == np.float32
    np.testing.assert_allclose(Xs, np.asarray(out), atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        std.transform(X[..., :1])


# ---------------------------------------------------------------------------
# scikit-learn integration
# ---------------------------------------------------------------------------

class Recorder(BaseEstimator):
    """Final estimator that records what it was fitted and scored on."""

    def fit(self, X, y=None):
        self.seen_ = X
        self.images_, self.chain_ = unwrap(X)
        return self

    def predict(self, X):
        self.predicted_on_ = X
        return np.zeros(len(X))

    def score(self, X, y=None):
        if not isinstance(X, np.ndarray):
            raise TypeError("augmenters must not change X at scoring time")
        return float(self.chain_[0].p)


def test_pipeline_hands_lazy_images_to_the_final_estimator():
    X = np.random.default_rng(0).random((6, 8, 8))
    y = (X > 0.5).astype(int)
    pipe = make_pipeline(RandomFlip(), RandomAffine(p=1.0), Recorder()).fit(X, y)
    rec = pipe[-1]
    assert rec.images_ is X and [op.name for op in rec.chain_] == ["RandomFlip", "RandomAffine"]
    pipe.predict(X)
    assert rec.predicted_on_ is X


def test_pipeline_memory_caches_augmenters(tmp_path):
    X = np.random.default_rng(0).random((6, 8, 8))
    y = (X > 0.5).astype(int)

    def cached_calls():
        return len(list(tmp_path.rglob("output.pkl")))

    pipe = Pipeline([("flip", RandomFlip()), ("std", IntensityStandardizer()),
                     ("rec", Recorder())], memory=str(tmp_path))
    pipe.fit(X, y)
    first = cached_calls()
    assert first == 2
    chain = pipe[-1].chain_
    pipe.fit(X, y)  # both steps come from the cache
    assert cached_calls() == first
    assert pipe[-1].chain_ == chain and np.array_equal(pipe[-1].images_, X)
    pipe.set_params(flip__p=0.9).fit(X, y)  # a new parameter is computed anew
    assert cached_calls() == first + 2
    assert pipe[-1].chain_[0].p == 0.9


def test_grid_search_over_an_augmenter_parameter():
    X = np.random.default_rng(0).random((8, 6, 6))
    y = (X > 0.5).astype(int)
    pipe = Pipeline([("aug", RandomFlip()), ("rec", Recorder())])
    search = GridSearchCV(pipe, {"aug__p": [0.1, 0.7, 0.4]}, cv=KFold(2)).fit(X, y)
    assert search.best_params_ == {"aug__p": 0.7}
    assert search.best_estimator_[-1].chain_[0].p == 0.7
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [0.1, 0.7, 0.4])


def test_cross_validation_can_split_augmented_images():
    from sklearn.model_selection import cross_val_score

    X = np.random.default_rng(0).random((6, 5, 5))
    lazy = RandomFlip(p=0.25).fit_transform(X)
    scores = cross_val_score(Recorder(), lazy, (X > 0.5).astype(int), cv=KFold(3),
                             scoring=lambda est, X, y: float(len(est.images_)))
    np.testing.assert_array_equal(scores, [4, 4, 4])


def test_augmentation_sampler():
    X = smooth_images(n=4)
    y = (X > THRESHOLD).astype(np.uint8)
    sampler = AugmentationSampler([RandomFlip(p=1.0, axes="horizontal")], random_state=0)
    Xr, yr = sampler.fit_resample(X, y)
    assert np.array_equal(Xr, X[:, :, ::-1]) and np.array_equal(yr, y[:, :, ::-1])
    assert not hasattr(sampler, "transform")


def test_augmentation_sampler_in_an_imblearn_pipeline():
    imblearn_pipeline = pytest.importorskip("imblearn.pipeline")
    X = smooth_images(n=4)
    y = (X > THRESHOLD).astype(np.uint8)
    pipe = imblearn_pipeline.Pipeline([
        ("aug", AugmentationSampler(RandomRotate90(p=1.0), random_state=0)),
        ("rec", Recorder())]).fit(X, y)
    seen = pipe[-1].seen_
    assert isinstance(seen, np.ndarray) and not np.array_equal(seen, X)
    pipe.predict(X)
    assert pipe[-1].predicted_on_ is X  # samplers only act while fitting


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

BAD = [
    (RandomFlip(p=1.5), ValueError, r"p must be a finite number in \[0, 1\]"),
    (RandomFlip(p=-0.1), ValueError, r"p must be a finite number in \[0, 1\]"),
    (RandomFlip(p="half"), TypeError, "p must be a finite number"),
    (RandomFlip(p=True), TypeError, "p must be a finite number"),
    (RandomFlip(axes="diagonal"), ValueError, "axes"),
    (RandomFlip(axes=()), ValueError, "axes"),
    (RandomFlip(axes=5), TypeError, "axes"),
    (RandomRotate90(p=np.nan), ValueError, "p must be a finite number"),
    (RandomAffine(degrees=-5), ValueError, "degrees given as one number must be a finite number >= 0"),
    (RandomAffine(degrees=(10, -10)), ValueError, "degrees must be an increasing"),
    (RandomAffine(degrees=(1, 2, 3)), TypeError, "degrees"),
    (RandomAffine(scale=(1.2, 0.8)), ValueError, "scale must be an increasing"),
    (RandomAffine(scale=(-1, 1)), ValueError, "scale must lie"),
    (RandomAffine(scale=0.5), TypeError, "scale must be a"),
    (RandomAffine(translate=(0.5, 1.5)), ValueError, "translate"),
    (RandomAffine(translate="x"), TypeError, "translate"),
    (RandomAffine(shear=(10, 95)), ValueError, "shear"),
    (RandomAffine(padding_mode="wrap"), ValueError, "padding_mode"),
    (RandomCrop(size=0), ValueError, "size must be an integer >= 1"),
    (RandomCrop(size=(4, 4.5)), TypeError, "size"),
    (RandomResizedCrop(size=8, scale=(0.5, 1.5)), ValueError, "scale must lie"),
    (RandomResizedCrop(size=8, scale=(0.9, 0.1)), ValueError, "scale must be an increasing"),
    (RandomResizedCrop(size=8, ratio=(0, 1)), ValueError, "ratio"),
    (ElasticDeformation(alpha=-1), ValueError, "alpha must be a finite number >= 0"),
    (ElasticDeformation(sigma=0), ValueError, "sigma must be a finite number > 0"),
    (RandomBrightnessContrast(brightness=-0.1), ValueError, "brightness"),
    (RandomBrightnessContrast(contrast=(1.5, 0.5)), ValueError, "contrast"),
    (RandomBrightnessContrast(contrast=(-1, 1)), ValueError, "contrast"),
    (RandomGamma(gamma=(2.0, 0.5)), ValueError, "gamma must be an increasing"),
    (RandomGamma(gamma=(0, 1)), ValueError, "gamma must lie"),
    (RandomGamma(gamma=1.5), TypeError, "gamma must be a"),
    (GaussianNoise(std=-0.1), ValueError, "std given as one number must be a finite number >= 0"),
    (GaussianNoise(std=(0.2, 0.1)), ValueError, "std must be an increasing"),
    (GaussianBlur(sigma=(2.0, 1.0)), ValueError, "sigma must be an increasing"),
    (GaussianBlur(sigma=(-1.0, 1.0)), ValueError, "sigma must lie"),
    (ColorJitter(hue=0.7), ValueError, "hue"),
    (ColorJitter(saturation=-1), ValueError, "saturation"),
    (IntensityStandardizer(per_channel="yes"), TypeError, "per_channel"),
    (RandomAffine(degrees=np.inf), ValueError, "degrees"),
    (RandomAffine(translate=(np.inf, 0.1)), ValueError, "translate"),
    (RandomAffine(shear=(np.nan, 10)), ValueError, r"shear\[0\] must be a finite number"),
    (RandomGamma(gamma=(0.5, np.inf)), ValueError, r"gamma\[1\] must be a finite number"),
    (GaussianBlur(sigma=np.nan), ValueError, "sigma"),
    (ColorJitter(hue=np.nan), ValueError, "hue must be a finite number"),
    (ElasticDeformation(sigma=np.inf), ValueError, "sigma"),
    (RandomFlip(axes="horizonal"), ValueError, "did you mean 'horizontal'"),
    (RandomAffine(padding_mode="zero"), ValueError, "did you mean 'zeros'"),
    (ElasticDeformation(padding_mode="reflect"), ValueError, "did you mean 'reflection'"),
]


@pytest.mark.parametrize("aug, error, match", BAD, ids=lambda v: repr(v)[:40])
def test_bad_parameters_are_named(aug, error, match):
    X = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    for call in (lambda: clone(aug).fit(X), lambda: clone(aug).fit_transform(X),
                 lambda: clone(aug).sample(X), lambda: make_chain(aug, X=X)):
        with pytest.raises(error, match=match):
            call()


def test_constructors_do_no_validation():
    aug = RandomAffine(degrees=-5, p=3)
    assert aug.get_params()["degrees"] == -5 and clone(aug).p == 3


@pytest.mark.parametrize("X", [np.zeros((8, 8)), np.zeros((1, 2, 8, 8, 3)),
                               np.zeros((2, 8, 8), dtype=object)])
def test_bad_images_are_named(X):
    for aug in (RandomFlip(), IntensityStandardizer()):
        with pytest.raises((ValueError, TypeError), match="X"):
            aug.fit_transform(X)
        with pytest.raises((ValueError, TypeError), match="X"):
            aug.sample(X)


def test_bad_masks_are_named():
    with pytest.raises(ValueError, match="y"):
        RandomFlip().sample(np.zeros((2, 8, 8)), np.zeros((2, 8, 7), dtype=int))


def test_augmented_images_rejects_bad_arguments():
    X = np.zeros((2, 4, 4))
    with pytest.raises(TypeError, match="chain"):
        AugmentedImages(X, chain=[RandomFlip()])
    with pytest.raises(TypeError, match="images"):
        AugmentedImages(RandomFlip().fit_transform(X))


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_with_cpu_or_cuda_generator():
    x = torch.rand(4, 3, 16, 16, device="cuda")
    y = torch.randint(0, 2, (4, 16, 16), device="cuda")
    chain = make_chain(list(ALL.values()))
    for g in (torch.Generator().manual_seed(0), torch.Generator("cuda").manual_seed(0)):
        xa, ya = chain(x, y, generator=g)
        assert xa.device == x.device and ya.device == y.device
    a = chain(x, y, generator=torch.Generator().manual_seed(3))[0]
    b = chain(x, y, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def test_plot_augmentations_draws_a_grid():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from sksegment.plot import plot_augmentations

    X = smooth_images(n=2, channels=3)
    y = (X[..., 0] > THRESHOLD).astype(np.uint8)
    fig = plot_augmentations([RandomAffine(p=1.0), ColorJitter()], X, y, n=3,
                             random_state=0, fig=Figure())
    assert len(fig.axes) == 6
    shown = fig.axes[3].get_images()[0].get_array()
    assert np.ma.is_masked(shown)  # pixels from outside are blank
    fig = plot_augmentations(RandomFlip(), X[..., 0], n=2, fig=Figure())
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="n must be"):
        plot_augmentations(RandomFlip(), X, n=0, fig=Figure())
    for bad, error in (("x", TypeError), (-1, ValueError)):
        with pytest.raises(error, match="random_state must be None, an integer"):
            plot_augmentations(RandomFlip(), X, random_state=bad, fig=Figure())


def test_plot_segmentation_panels(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    from sksegment.plot import plot_segmentation

    image = smooth_images(n=1, channels=3)[0]
    truth = (image[..., 0] > 0.5).astype(int)
    fig = plot_segmentation(image, truth, 1 - truth)
    try:
        assert [ax.get_title() for ax in fig.axes] == ["image", "truth", "prediction"]
        limits = [ax.get_images()[0].get_clim() for ax in fig.axes[1:]]
        assert limits[0] == limits[1]
    finally:
        plt.close(fig)
    from matplotlib.figure import Figure
    fig = plot_segmentation(image[..., 0], truth, fig=Figure(), ignore_label=0)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="prediction"):
        plot_segmentation(image, truth, truth[:5], fig=Figure())


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    import sys

    from sksegment.plot import plot_segmentation

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install sksegment\[plot\]"):
        plot_segmentation(np.zeros((4, 4)))


@pytest.mark.parametrize("random_state, error", [(-1, ValueError), (2**32, ValueError),
                                                 (1.5, TypeError), (True, TypeError)])
def test_sample_random_state_is_named(random_state, error):
    X = np.zeros((2, 8, 8), np.uint8)
    y = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(error, match="random_state must be None, an integer"):
        RandomFlip().sample(X, y, random_state=random_state)


def test_sample_accepts_random_states():
    X = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    a, _ = RandomFlip().sample(X, random_state=np.random.RandomState(3))
    b, _ = RandomFlip().sample(X, random_state=3)
    np.testing.assert_array_equal(a, b)
    RandomFlip().sample(X, random_state=np.int64(2**32 - 1))
