"""Data-driven defaults: the planning rules on synthetic fingerprints, "auto"
parameters that stay "auto", normalisation, and training for a time budget."""

import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sksegment import CNNSegmenter, _training
from sksegment._planning import CPU_STEP_MACS, MAX_DATA_SHARE, plan, unet_cost
from sksegment.datasets import make_shapes

CPU = {"type": "cpu", "name": "cpu", "memory_bytes": None}
TINY = dict(width=4, max_epochs=1, random_state=0, device="cpu")


def fingerprint(shape, n, channels=1):
    return {"shape_median": shape, "shape_min": shape, "shape_max": shape,
            "n_pixels": n * shape[0] * shape[1], "n_images": n, "n_channels": channels}


@pytest.fixture(scope="module")
def data():
    return make_shapes(n_samples=12, image_size=32, random_state=0)


# --------------------------------------------------------------------------- #
# the rules
# --------------------------------------------------------------------------- #
def test_small_images_train_whole():
    choice = plan(fingerprint((32, 32), 200), CPU)
    assert choice["patch_size"] is None
    assert choice["depth"] == 3  # 32 -> 4 pixels at the bottleneck
    assert choice["batch_size"] >= 2


def test_one_large_image_gives_patches_and_a_small_batch():
    choice = plan(fingerprint((4096, 4096), 1), CPU)
    h, w = choice["patch_size"]
    assert h < 4096 and w < 4096 and h % 2 ** choice["depth"] == 0
    assert choice["batch_size"] == 2  # the smallest batch
    _, macs = unet_cost((h, w), choice["depth"], 16)
    assert macs * 2 <= CPU_STEP_MACS


def test_batch_covers_a_small_share_of_the_data():
    choice = plan(fingerprint((64, 64), 100), CPU)
    pixels = (choice["batch_size"] * 64 * 64)
    assert pixels <= max(2 * 64 * 64, MAX_DATA_SHARE * 100 * 64 * 64)


def test_many_channels_cost_more_than_few():
    few = plan(fingerprint((512, 512), 30, channels=1), CPU)
    many = plan(fingerprint((512, 512), 30, channels=256), CPU)
    assert np.prod(many["patch_size"]) < np.prod(few["patch_size"])


def test_a_tall_image_gives_a_tall_patch():
    h, w = plan(fingerprint((2048, 96), 10), CPU)["patch_size"]
    assert h > 4 * w


def test_a_bigger_gpu_takes_bigger_steps():
    fp = fingerprint((1024, 1024), 400)
    small = plan(fp, {"type": "cuda", "name": "x", "memory_bytes": 4e9})
    large = plan(fp, {"type": "cuda", "name": "y", "memory_bytes": 80e9})
    size = [c["batch_size"] * np.prod(c["patch_size"] or (1024, 1024)) for c in (small, large)]
    assert size[1] > size[0]


def test_explicit_values_win():
    choice = plan(fingerprint((512, 512), 30), CPU, patch_size=64, depth=2, batch_size=3)
    assert (choice["patch_size"], choice["depth"], choice["batch_size"]) == ((64, 64), 2, 3)
    choice = plan(fingerprint((512, 512), 30), CPU, patch_size=(64, 128))
    assert choice["patch_size"] == (64, 128) and choice["depth"] == 4


# --------------------------------------------------------------------------- #
# the estimator
# --------------------------------------------------------------------------- #
def test_auto_is_resolved_in_fitted_attributes_only(data):
    X, y = data
    seg = CNNSegmenter(**TINY).fit(X, y)
    params = seg.get_params()
    assert params["patch_size"] == params["batch_size"] == params["depth"] == "auto"
    assert seg.patch_size_ is None and seg.depth_ == 3 and seg.batch_size_ >= 2
    assert seg.norm_ in ("batch", "instance")
    fp = seg.fingerprint_
    assert fp["shape_median"] == (32, 32) and fp["n_channels"] == 1
    assert sum(fp["class_frequencies"].values()) == pytest.approx(1.0)
    assert fp["device"]["type"] == "cpu"
    assert clone(seg).get_params() == params


def test_explicit_values_reach_the_network(data):
    X, y = data
    seg = CNNSegmenter(**TINY, depth=2, batch_size=3, patch_size=16, norm="group").fit(X, y)
    assert (seg.depth_, seg.batch_size_, seg.patch_size_, seg.norm_) == (2, 3, (16, 16), "group")
    assert seg.model_.depth == 2
    assert any(isinstance(m, torch.nn.GroupNorm) for m in seg.model_.modules())


def test_grid_search_over_auto_and_numbers(data):
    X, y = data
    grid = GridSearchCV(CNNSegmenter(**TINY), {"depth": ["auto", 2]}, cv=2).fit(X, y)
    assert list(grid.cv_results_["param_depth"]) == ["auto", 2]
    assert grid.best_estimator_.get_params()["batch_size"] == "auto"


def test_verbose_prints_the_choices(data, capsys):
    X, y = data
    CNNSegmenter(**TINY, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "depth 3" in err and "whole images" in err and "normalize 'zscore'" in err
    assert "precision 'fp32'" in err or "precision 'bf16'" in err


# --------------------------------------------------------------------------- #
# intensity normalisation
# --------------------------------------------------------------------------- #
def test_zscore_statistics_are_stored_and_used(data):
    X, y = data
    seg = CNNSegmenter(**TINY).fit(X, y)
    scaled = X / 255.0
    assert seg.normalization_["kind"] == "zscore"
    assert seg.normalization_["shift"][0] == pytest.approx(scaled.mean(), rel=1e-5)
    assert seg.normalization_["scale"][0] == pytest.approx(scaled.std(), rel=1e-5)
    # the same images as floats in [0, 1] and as uint8 predict alike
    np.testing.assert_allclose(seg.predict_proba(scaled.astype(np.float32)),
                               seg.predict_proba(X), atol=1e-5)


def test_minmax_and_none(data):
    X, y = data
    mm = CNNSegmenter(**TINY, normalize="minmax").fit(X, y)
    lo, hi = np.percentile(X / 255.0, [0.5, 99.5])
    assert mm.normalization_["shift"][0] == pytest.approx(lo, abs=0.02)
    assert mm.normalization_["scale"][0] == pytest.approx(hi - lo, abs=0.03)
    assert CNNSegmenter(**TINY, normalize=None).fit(X, y).normalization_ is None


def test_imagenet_needs_rgb(data):
    X, y = data
    with pytest.raises(ValueError, match="normalize='imagenet' needs RGB"):
        CNNSegmenter(**TINY, normalize="imagenet").fit(X, y)
    Xc, yc = make_shapes(n_samples=6, image_size=32, n_channels=3, random_state=0)
    seg = CNNSegmenter(**TINY, normalize="imagenet").fit(Xc, yc)
    assert seg.normalization_["shift"] == pytest.approx([0.485, 0.456, 0.406])


def test_float_images_in_0_255_warn_without_normalization(data):
    X, y = data
    with pytest.warns(UserWarning, match="divide by 255"):
        CNNSegmenter(**TINY, normalize=None).fit(X.astype(np.float32), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        CNNSegmenter(**TINY).fit(X.astype(np.float32), y)


def test_export_records_the_normalization(data, tmp_path):
    X, y = data
    seg = CNNSegmenter(**TINY).fit(X, y)
    path = seg.export(tmp_path / "net.pt", format="torchscript")
    meta = json.loads(Path(path + ".json").read_text())
    assert meta["normalization"] == seg.normalization_
    net = torch.jit.load(path)
    x = torch.from_numpy(X[:2, None].astype(np.float32)) * meta["input_scale"]
    x = (x - meta["normalization"]["shift"][0]) / meta["normalization"]["scale"][0]
    np.testing.assert_allclose(torch.softmax(net(x), 1).permute(0, 2, 3, 1).detach().numpy(),
                               seg.set_params(precision="fp32", tta=False).predict_proba(X[:2]),
                               atol=1e-5)


# --------------------------------------------------------------------------- #
# a time budget
# --------------------------------------------------------------------------- #
class FakeClock:
    """A clock that advances by ``step`` seconds each time the loss runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_training, "_clock", clock)
    return clock


def _timed_loss(clock, step=1.0):
    def loss(logits, target):
        clock.now += step
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
    return loss


def test_max_time_stops_after_the_step_that_spends_it(data, fake_clock):
    X, y = data
    seg = CNNSegmenter(**dict(TINY, max_epochs="auto"), batch_size=4, max_time=5.5,
                       loss=_timed_loss(fake_clock), lr_schedule="onecycle")
    seg.fit(X, y)
    steps = sum(h.get("steps", h.get("n_batches", 3)) for h in seg.history_)
    assert steps == 6  # 3 batches per epoch: two whole epochs, the budget ends in neither
    assert seg.n_iter_ == 2 and seg.history_[-1]["time"] == pytest.approx(6.0)
    # the budget ended with the second epoch's last step: no epoch was cut short
    assert all("steps" not in h and "n_batches" not in h for h in seg.history_)


def test_max_time_counts_the_scans_before_training(data, fake_clock, monkeypatch):
    from sksegment import _fitting

    X, y = data
    scan = _fitting.intensity_statistics

    def slow_scan(*args, **kwargs):  # the fingerprint's scan takes 2.5 s
        fake_clock.now += 2.5
        return scan(*args, **kwargs)

    monkeypatch.setattr(_fitting, "intensity_statistics", slow_scan)
    seg = CNNSegmenter(**dict(TINY, max_epochs="auto"), batch_size=4, max_time=5.5,
                       loss=_timed_loss(fake_clock), lr_schedule="onecycle")
    seg.fit(X, y)
    # 3 of the 5.5 s are left for steps: one epoch of 3 steps ends the budget
    assert seg.n_iter_ == 1 and seg.history_[-1]["time"] == pytest.approx(3.0)


def test_max_time_cuts_an_epoch_and_lays_the_schedule_over_the_budget(data, fake_clock):
    X, y = data
    lrs = []

    class Recorder(torch.nn.Module):
        def forward(self, logits, target):
            fake_clock.now += 1.0
            return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)

    seg = CNNSegmenter(**dict(TINY, max_epochs="auto"), batch_size=4, max_time=4.5,
                       loss=Recorder(), lr_schedule="cosine", learning_rate=1e-2)
    original = _training.Trainer._set_lr
    try:
        _training.Trainer._set_lr = lambda self, lr: (lrs.append(lr), original(self, lr))[1]
        seg.fit(X, y)
    finally:
        _training.Trainer._set_lr = original
    assert seg.n_iter_ == 2
    assert seg.history_[-1]["steps"] == 2 and seg.history_[-1]["n_batches"] == 3
    # the cosine schedule is laid over 4.5 s: it falls towards 1 % of the base rate
    assert lrs[0] == pytest.approx(1e-2)
    assert lrs[-1] < 0.2e-2 and all(a >= b for a, b in itertools.pairwise(lrs))


def test_explicit_max_epochs_bounds_a_time_budget(data, fake_clock):
    X, y = data
    seg = CNNSegmenter(**dict(TINY, max_epochs=1), batch_size=4, max_time=100.0,
                       loss=_timed_loss(fake_clock))
    assert seg.fit(X, y).n_iter_ == 1


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, "10"])
def test_bad_max_time(data, value):
    with pytest.raises((ValueError, TypeError), match="max_time"):
        CNNSegmenter(**TINY, max_time=value).fit(*data)


def test_norm_with_a_custom_network_is_an_error(data):
    net = torch.nn.Conv2d(1, 3, 3, padding=1)
    with pytest.raises(ValueError, match="norm='batch' applies to the built-in networks"):
        CNNSegmenter(model=net, norm="batch", max_epochs=1).fit(*data)


def test_postprocess_auto_needs_validation_data(data):
    with pytest.raises(ValueError, match="postprocess='auto'.*X_val"):
        CNNSegmenter(**TINY, postprocess="auto").fit(*data)


# --------------------------------------------------------------------------- #
# post-processing
# --------------------------------------------------------------------------- #
def _raw_labels(seg, X):
    return seg.classes_[seg.predict_proba(X).argmax(-1)]


def test_postprocess_auto_is_chosen_on_validation_and_applied_by_predict(data):
    X, y = data
    seg = CNNSegmenter(**TINY, postprocess="auto").fit(X[:8], y[:8], X_val=X[8:], y_val=y[8:])
    post = seg.postprocessing_
    assert seg.postprocessing_report_  # every tried step is reported
    kept = [r["step"] for r in seg.postprocessing_report_ if r["kept"]]
    assert list(post.steps) == kept
    for r in seg.postprocessing_report_:
        if r["kept"]:
            assert r["score_after"] > r["score_before"]
    raw = seg.predict_proba(X).argmax(-1)
    expected = seg.classes_[np.stack([post.apply(r) for r in raw])]
    np.testing.assert_array_equal(seg.predict(X), expected)


def test_postprocess_options_are_applied(data):
    X, y = data
    seg = CNNSegmenter(**TINY, postprocess={"remove_small": 10_000}).fit(X, y)
    # every component is smaller than that: each class is folded into its surroundings
    raw = _raw_labels(seg, X)
    pred = seg.predict(X)
    assert (pred != raw).any()
    np.testing.assert_array_equal(
        pred, seg.classes_[np.stack([seg.postprocessing_.apply(r)
                                     for r in seg.predict_proba(X).argmax(-1)])])


def test_bad_postprocess_options_name_the_key_before_training(data):
    calls = []

    def loss(logits, target):
        calls.append(1)
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)

    with pytest.raises((ValueError, TypeError), match="remove_small"):
        CNNSegmenter(**TINY, loss=loss, postprocess={"remove_small": -3}).fit(*data)
    assert not calls


def test_deep_network_with_instance_norm_trains():
    # depth 5: the output check probes at 64 x 64, so that the bottleneck
    # keeps the two pixels instance norm needs
    X, y = make_shapes(n_samples=4, image_size=64, random_state=0)
    seg = CNNSegmenter(width=2, depth=5, norm="instance", max_epochs=1, device="cpu").fit(X, y)
    assert seg.predict(X).shape == y.shape


def test_auto_augmentation_follows_the_channels():
    from sksegment._planning import default_augmenters

    photo = [type(a).__name__ for a in default_augmenters(3)]
    other = [type(a).__name__ for a in default_augmenters(1)]
    assert "RandomRotate90" not in photo and default_augmenters(3)[0].axes == ("horizontal",)
    assert other[:2] == ["RandomFlip", "RandomRotate90"]
    assert {"RandomAffine", "RandomBrightnessContrast", "RandomGamma"} <= set(photo) & set(other)
    assert [type(a).__name__ for a in default_augmenters(1, extras=False)] == other[:2]


def test_default_brightness_shift_is_sized_to_the_intensity_spread():
    from sksegment._planning import BRIGHTNESS_SHIFT, default_augmenters, intensity_spread

    def brightness(augmenters):
        (b,) = [a for a in augmenters if type(a).__name__ == "RandomBrightnessContrast"]
        return b.brightness

    assert brightness(default_augmenters(1, spread=0.01)) == pytest.approx(BRIGHTNESS_SHIFT * 0.01)
    assert brightness(default_augmenters(3, spread=40.0)) == pytest.approx(BRIGHTNESS_SHIFT * 40)
    assert intensity_spread({"intensity": {"std": [0.1, 0.2, 0.3]}}) == pytest.approx(0.2)
    assert intensity_spread(None) == 1.0


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_fit_sizes_the_default_brightness_shift_to_the_data(scale):
    # the same images as uint8 and as floats 1000 / 255 times larger: the
    # shift follows the data's units (a fixed shift would be 0.15 in both)
    X, y = make_shapes(n_samples=2, image_size=16, random_state=0)
    data = X if scale == 1.0 else X.astype(np.float32) * (scale / 255)
    seg = CNNSegmenter(width=2, depth=1, max_epochs=20, batch_size=2, device="cpu",
                       random_state=0).fit(data, y)
    (b,) = [a for a in seg.augment_ if type(a).__name__ == "RandomBrightnessContrast"]
    expected = 0.15 * float(np.std(X / 255.0)) * scale
    assert b.brightness == pytest.approx(expected, rel=1e-4)
    assert np.mean(seg.fingerprint_["intensity"]["std"]) == pytest.approx(expected / 0.15,
                                                                           rel=1e-4)


def test_the_extra_augmentation_waits_for_a_long_enough_fit():
    from sksegment._planning import MIN_EPOCHS_FOR_EXTRAS, augment_extras, projected_epochs

    assert projected_epochs(50, None, None) == 50  # no budget: the epochs
    assert projected_epochs(10**9, 60.0, None) is None  # budget: wait for epoch 1
    assert projected_epochs(10**9, 60.0, 2.0) == 30
    assert projected_epochs(12, 60.0, 2.0) == 12  # max_epochs still caps
    assert not augment_extras(None) and not augment_extras(MIN_EPOCHS_FOR_EXTRAS - 1)
    assert augment_extras(MIN_EPOCHS_FOR_EXTRAS)


def _names(seg):
    return [type(a).__name__ for a in seg.augment_]


def test_auto_augmentation_follows_the_epochs(data, monkeypatch):
    from sksegment import _planning

    X, y = data
    monkeypatch.setattr(_planning, "MIN_EPOCHS_FOR_EXTRAS", 3)
    short = CNNSegmenter(**{**TINY, "max_epochs": 2}).fit(X, y)
    assert _names(short) == ["RandomFlip", "RandomRotate90"]
    long = CNNSegmenter(**{**TINY, "max_epochs": 3}).fit(X, y)
    assert _names(long)[:2] == ["RandomFlip", "RandomRotate90"] and len(long.augment_) == 5
    assert long.get_params()["augment"] == "auto"
    assert CNNSegmenter(**TINY, augment=None).fit(X, y).augment_ is None
    # partial_fit is not a budget: the whole chain
    assert len(CNNSegmenter(**TINY).partial_fit(X, y).augment_) == 5

    # under max_time the first epoch trains with the flips and tells the pace
    seen = []
    rule = _planning.augment_extras
    monkeypatch.setattr(_planning, "augment_extras", lambda e: seen.append(e) or rule(e))
    timed = CNNSegmenter(**{**TINY, "max_epochs": 3, "max_time": 600}).fit(X, y)
    assert seen == [None, 3, 3] and len(timed.augment_) == 5
    seen.clear()
    timed = CNNSegmenter(**{**TINY, "max_epochs": 2, "max_time": 600}).fit(X, y)
    assert seen == [None, 2] and _names(timed) == ["RandomFlip", "RandomRotate90"]
    # a warm start measures its own pace, not that of the fit before it
    warm = CNNSegmenter(**{**TINY, "max_epochs": 2, "max_time": 600, "warm_start": True})
    warm.fit(X, y)
    seen.clear()
    warm.fit(X, y)
    assert seen == [None, 2] and len(warm.history_) == 4


def test_auto_augmentation_is_printed(data, monkeypatch, capsys):
    from sksegment import _planning

    X, y = data
    monkeypatch.setattr(_planning, "MIN_EPOCHS_FOR_EXTRAS", 3)
    CNNSegmenter(**{**TINY, "max_epochs": 2, "verbose": 1}).fit(X, y)
    err = capsys.readouterr().err
    assert "augment: flips and turns only (about 2 epochs; the changes from 3)" in err


def test_partial_fit_trains_at_the_learning_rate(data):
    X, y = data
    seg = CNNSegmenter(**TINY, learning_rate=2e-3)  # lr_schedule="onecycle" by default
    seg.partial_fit(X, y).partial_fit(X, y)
    assert [h["lr"] for h in seg.history_] == [2e-3, 2e-3]


def test_auto_tta_uses_the_views_the_augmentation_trained(data):
    X, y = data
    gray = CNNSegmenter(**TINY).fit(X, y)  # "auto" is the default
    assert gray.get_params()["tta"] == "auto" and gray.tta_ is True
    np.testing.assert_array_equal(gray.predict_proba(X[:2]),
                                  gray.set_params(tta=True).predict_proba(X[:2]))
    plain = gray.set_params(tta=False).predict_proba(X[:2])
    assert not np.array_equal(plain, gray.set_params(tta="auto").predict_proba(X[:2]))
    Xc, yc = make_shapes(n_samples=6, image_size=32, n_channels=3, random_state=0)
    assert CNNSegmenter(**TINY, tta="auto").fit(Xc, yc).tta_ == "horizontal"
    assert CNNSegmenter(**TINY, tta="auto", augment=None).fit(X, y).tta_ is False


def test_intensity_statistics_exact_moments_and_a_bounded_sample(monkeypatch):
    from sksegment import _normalization
    rng = np.random.RandomState(0)
    X = rng.randint(0, 256, (40, 48, 40, 2), dtype=np.uint8)
    X[..., 1] //= 4  # channels of different ranges
    kept = []
    real_percentile = np.percentile
    monkeypatch.setattr(_normalization, "_MAX_SAMPLES", 5000)
    monkeypatch.setattr(_normalization.np, "percentile",
                        lambda a, q, axis: kept.append(len(a)) or real_percentile(a, q, axis=axis))
    stats = _normalization.intensity_statistics(X)
    flat = X.reshape(-1, 2) / 255.0
    np.testing.assert_allclose(stats["mean"], flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], flat.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats["min"], flat.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], flat.max(0), rtol=1e-6)
    assert max(kept) <= 2 * 5000 < 40 * 48 * 40  # thinned, never the whole data set
    for q, values in stats["percentiles"].items():
        np.testing.assert_allclose(values, np.percentile(flat, q, axis=0), atol=0.02)


def test_the_percentile_sample_does_not_depend_on_how_images_are_stored(tmp_path):
    from sksegment._arrays import LazyArray
    from sksegment._normalization import intensity_statistics

    zarr = pytest.importorskip("zarr")
    X = np.random.RandomState(0).randn(6, 32, 40, 2).astype(np.float32)
    z = zarr.open(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, dtype=X.dtype,
                  chunks=(1, 7, 40, 2))  # bands of 7 rows, not whole images
    z[:] = X
    q = (0.5, 37.0, 99.5)
    got = [intensity_statistics(v, percentiles=q)["percentiles"]
           for v in (X, LazyArray(X), list(X), LazyArray(z))]
    assert all(g == got[0] for g in got[1:])


def test_auto_depth_takes_a_custom_network_s_own_depth(data):
    from sksegment.models import UNet
    X, y = data
    n_classes = len(np.unique(y))
    seg = CNNSegmenter(model=UNet(1, n_classes, depth=2, width=4), max_epochs=1,
                       random_state=0, device="cpu").fit(X, y)
    assert seg.get_params()["depth"] == "auto" and seg.depth_ == 2
    assert seg.patch_size_ is None or all(p % 4 == 0 for p in seg.patch_size_)


@pytest.mark.parametrize("kind", ["float64", "float32", "uint64"])
def test_large_finite_intensities_fit_with_finite_statistics(kind):
    # their squares overflow float32 (the float64 and float32 images) or
    # their sums of squares do (uint64 near its maximum); the brightness
    # shift of augment="auto" was then NaN or infinite
    from sksegment._normalization import intensity_statistics
    from sksegment._planning import intensity_spread

    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    data = {"float64": X.astype(np.float64) * 1e30,
            "float32": (X.astype(np.float32) / 255 * np.float32(3e38)).astype(np.float32),
            "uint64": np.iinfo(np.uint64).max - X.astype(np.uint64) * (2 ** 55)}[kind]
    seg = CNNSegmenter(width=4, depth=2, max_epochs=1, random_state=0, device="cpu").fit(data, y)
    stats = seg.fingerprint_["intensity"]
    exact = data.astype(np.float32).astype(np.float64)  # what the network sees
    assert stats["mean"][0] == pytest.approx(exact.mean(), rel=1e-5)
    assert stats["std"][0] == pytest.approx(exact.std(), rel=1e-5)
    assert np.isfinite(stats["percentiles"][99.5]).all()
    # the shift of augment="auto" (applied from 20 epochs) is finite
    assert intensity_spread(seg.fingerprint_) == pytest.approx(exact.std(), rel=1e-5)
    assert seg.predict(data[:2]).shape == (2, 16, 16)
    # a large offset keeps its small spread (E[x^2] - E[x]^2 lost it)
    offset = 1000 + 0.01 * np.random.RandomState(0).randn(3, 16, 16, 1).astype(np.float32)
    assert intensity_statistics(offset)["std"][0] == pytest.approx(
        offset.astype(np.float64).std(), rel=1e-3)


def test_images_beyond_float32_are_refused_naming_x():
    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    seg = CNNSegmenter(width=4, depth=2, max_epochs=1, device="cpu")
    with pytest.raises(ValueError, match=r"X holds values as large as 2\.55e\+154.*float32.*"
                                         r"rescale X"):
        seg.fit(X.astype(np.float64) * 1e152, y)
    assert not hasattr(seg, "fingerprint_") and not hasattr(seg, "model_")


def test_intensity_spread_is_always_finite():
    from sksegment._planning import intensity_spread

    assert intensity_spread({"intensity": {"std": [float("nan"), 2.0, float("inf")]}}) == 2.0
    assert intensity_spread({"intensity": {"std": [float("nan")]}}) == 1.0
    assert intensity_spread({"intensity": {"std": [1.5e308, 1.5e308]}}) == pytest.approx(1.5e308)


@pytest.mark.parametrize("size, depth, kept, patch", [
    ((2, 2), 1, "(1, 1); one pixel", None), ((3, 3), 1, "(2, 2)", None),
    ((4, 4), 1, "(2, 2)", None), ((3, 40), 1, "(2, 20)", None)])
def test_tiny_images_log_the_bottleneck_they_keep(size, depth, kept, patch):
    choice = plan(fingerprint(size, 8), CPU)
    assert (choice["patch_size"], choice["depth"]) == (patch, depth)
    (reason,) = [r for r in choice["reasons"] if r.startswith("depth")]
    assert reason == (f"depth 1: the median image {size} is too small to keep 4 pixels along its "
                      f"shorter axis at the bottleneck; the least depth keeps {kept} (padded to "
                      "multiples of 2)")


def test_short_patch_sides_stay_whole_rather_than_keep_one_bottleneck_pixel():
    # 3 x 3 was rounded down to a patch of 2 x 2 (a one-pixel bottleneck)
    assert plan(fingerprint((3, 3), 8), CPU)["patch_size"] is None
    # an explicit depth: 12 was rounded down to 8, one pixel at depth 3
    assert plan(fingerprint((12, 12), 8), CPU, depth=3)["patch_size"] is None
    choice = plan(fingerprint((8, 8), 8), CPU)
    assert choice["depth"] == 1 and "bottleneck of at least 4 pixels on (8, 8)" in \
        choice["reasons"][1]


@pytest.mark.parametrize("size", [3, 4, 8])
def test_default_fit_on_tiny_images_trains_and_predicts(size):
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    o = 8 - size // 2
    X, y = X[:, o:o + size, o:o + size], y[:, o:o + size, o:o + size]
    seg = CNNSegmenter(max_epochs=1, random_state=0, device="cpu").fit(X, y)
    assert seg.norm_ == "instance" and seg.depth_ == 1 and seg.patch_size_ is None
    assert seg.predict(X).shape == y.shape


def test_default_fit_on_tiny_images():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    X, y = X[:, 7:9, 7:9], y[:, 7:9, 7:9]
    seg = CNNSegmenter(max_epochs=1, random_state=0, device="cpu").fit(X, y)
    assert seg.depth_ == 1 and seg.predict(X).shape == (8, 2, 2)  # padded to 2 x 4
    one = CNNSegmenter(max_epochs=1, random_state=0, device="cpu")
    with pytest.raises(ValueError, match=r"1 x 1 pixels down to 1/2 leaves less than one pixel"):
        one.fit(X[:, :1, :1], y[:, :1, :1])
    assert not hasattr(one, "model_")


def test_data_parallel_ranks_plan_for_their_smallest_gpu(monkeypatch):
    """Ranks on GPUs of different sizes plan with the smallest (faked here:
    this rank's GPU has 24 GiB, another rank's 6 GiB), so that they all run
    the same patches, batches and steps per epoch."""
    from sksegment._planning import device_fingerprint

    class Props:
        name, total_memory = "big", 24 * 2**30

    class TwoRanks:  # max_float as the other rank (6 GiB) joins it
        def max_float(self, number):
            return max(number, -6.0 * 2**30)

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    alone = device_fingerprint("cuda:0")
    shared = device_fingerprint("cuda:0", TwoRanks())
    assert alone["memory_bytes"] == 24 * 2**30 and shared["memory_bytes"] == 6 * 2**30
    fp = fingerprint((1024, 1024), 400)
    small = {"type": "cuda", "name": "small", "memory_bytes": 6 * 2**30}
    assert plan(fp, shared) == plan(fp, small)
    assert plan(fp, shared)["batch_size"] < plan(fp, alone)["batch_size"]
    # a CPU rank joins the collective too and keeps no memory figure
    assert device_fingerprint("cpu", TwoRanks())["memory_bytes"] is None
