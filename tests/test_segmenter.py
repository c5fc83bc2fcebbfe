"""CNNSegmenter: the estimator contract, inputs and outputs, learning."""

import copy
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks

from sksegment import CNNSegmenter
from sksegment.datasets import make_shapes
from sksegment.metrics import mean_iou

TINY = dict(depth=2, width=4, max_epochs=2, batch_size=4, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_samples=24, image_size=32, random_state=0)


@pytest.fixture(scope="module")
def fitted(shapes):
    X, y = shapes
    return CNNSegmenter(**TINY).fit(X[:16], y[:16])


# --------------------------------------------------------------------------- #
# scikit-learn's data-free API checks
# --------------------------------------------------------------------------- #
SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_valid_tag_types",
    "check_mixin_order",
]


def _public_estimators():
    from sklearn.base import BaseEstimator

    import sksegment

    classes = [getattr(sksegment, name) for name in sksegment.__all__]
    return [c for c in classes if isinstance(c, type) and issubclass(c, BaseEstimator)]


PUBLIC_ESTIMATORS = _public_estimators()


def test_every_augmenter_is_among_the_checked_estimators():
    names = {c.__name__ for c in PUBLIC_ESTIMATORS}
    assert {"CNNSegmenter", "IntensityStandardizer", "RandomFlip", "RandomAffine",
            "ColorJitter", "ElasticDeformation"} <= names
    assert len(names) >= 13


# the crops have no natural default size: the one required parameter
REQUIRED_PARAMS = {"RandomCrop": {"size": 32}, "RandomResizedCrop": {"size": 32}}


@pytest.mark.parametrize("estimator", PUBLIC_ESTIMATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_api_checks(check, estimator):
    est = estimator(**REQUIRED_PARAMS.get(estimator.__name__, {}))
    getattr(estimator_checks, check)(type(est).__name__, est)


def test_get_set_params_clone_repr():
    seg = CNNSegmenter(loss="dice", depth=3)
    assert seg.get_params()["loss"] == "dice"
    seg.set_params(depth=2, learning_rate=0.01)
    assert seg.depth == 2 and seg.learning_rate == 0.01
    c = clone(seg)
    assert c.get_params() == seg.get_params() and c is not seg
    assert "depth=2" in repr(seg) and "loss='dice'" in repr(seg)


# --------------------------------------------------------------------------- #
# outputs
# --------------------------------------------------------------------------- #
def test_predict_outputs(shapes, fitted):
    X, y = shapes
    pred = fitted.predict(X[16:])
    assert pred.shape == (8, 32, 32) and pred.dtype == y.dtype
    assert set(np.unique(pred)) <= set(fitted.classes_)
    proba = fitted.predict_proba(X[16:])
    assert proba.shape == (8, 32, 32, fitted.n_classes_) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(-1)], pred)
    s = fitted.score(X[16:], y[16:])
    assert s == pytest.approx(mean_iou(y[16:], pred, labels=fitted.classes_))


def test_fitted_attributes(shapes, fitted):
    _, y = shapes
    np.testing.assert_array_equal(fitted.classes_, np.unique(y[:16]))
    assert fitted.n_classes_ == len(fitted.classes_)
    assert fitted.n_channels_in_ == 1
    assert isinstance(fitted.model_, torch.nn.Module) and not fitted.model_.training
    assert fitted.device_.type == "cpu"
    assert fitted.n_iter_ == 2 and len(fitted.loss_curve_) == 2 and len(fitted.history_) == 2
    h = fitted.history_[0]
    assert {"epoch", "train_loss", "lr", "seconds"} <= set(h) and h["epoch"] == 1
    assert fitted.loss_curve_ == [e["train_loss"] for e in fitted.history_]


@pytest.mark.parametrize("labels,dtype", [((0, 255), np.uint8), ((-3, 7), np.int64),
                                          ((False, True), bool), ((2.0, 5.0), np.float32)])
def test_label_values_and_dtype_round_trip(labels, dtype, shapes):
    X, y = shapes
    binary = np.where(y[:8] > 0, labels[1], labels[0]).astype(dtype)
    seg = CNNSegmenter(**TINY).fit(X[:8], binary)
    np.testing.assert_array_equal(seg.classes_, np.array(labels, dtype=dtype))
    pred = seg.predict(X[8:10])
    assert pred.dtype == np.dtype(dtype)
    assert set(np.unique(pred).tolist()) <= set(np.array(labels, dtype=dtype).tolist())


def test_sizes_not_multiple_of_downsampling_and_other_size_at_predict():
    X, y = make_shapes(n_samples=6, image_size=(30, 22), random_state=1)
    seg = CNNSegmenter(depth=3, width=4, max_epochs=1, random_state=0).fit(X, y)
    X2, _ = make_shapes(n_samples=2, image_size=(45, 17), random_state=2)
    assert seg.predict(X2).shape == (2, 45, 17)
    assert seg.predict_proba(X2).shape == (2, 45, 17, seg.n_classes_)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, bool, np.int32])
def test_input_dtypes(dtype, shapes):
    X, y = shapes
    if dtype is bool:
        Xd = X[:6] > 128
    elif dtype is np.uint16:
        Xd = X[:6].astype(np.uint16) * 257
    else:
        Xd = X[:6].astype(dtype)
    seg = CNNSegmenter(**TINY).fit(Xd, y[:6])
    assert seg.predict(Xd[:2]).shape == (2, 32, 32)


def test_uint8_and_uint16_scaling_agree(shapes):
    """uint8 / 255 and uint16 / 65535 feed the network the same values."""
    X, y = shapes
    a = CNNSegmenter(**TINY).fit(X[:6], y[:6])
    b = CNNSegmenter(**TINY).fit(X[:6].astype(np.uint16) * 257, y[:6])
    np.testing.assert_allclose(a.predict_proba(X[6:8]),
                               b.predict_proba(X[6:8].astype(np.uint16) * 257), atol=1e-5)


def test_color_images_and_channel_mismatch():
    X, y = make_shapes(n_samples=6, image_size=32, n_channels=3, random_state=0)
    assert X.shape == (6, 32, 32, 3)
    seg = CNNSegmenter(**TINY).fit(X, y)
    assert seg.n_channels_in_ == 3
    assert seg.predict(X[:2]).shape == (2, 32, 32)
    with pytest.raises(ValueError, match="channel"):
        seg.predict(X[:2, :, :, 0])


def test_list_of_different_sizes_with_patch_size():
    Xa, ya = make_shapes(n_samples=3, image_size=40, random_state=0)
    Xb, yb = make_shapes(n_samples=3, image_size=(48, 36), random_state=1)
    X = list(Xa) + list(Xb)
    y = list(ya) + list(yb)
    seg = CNNSegmenter(patch_size=24, **TINY).fit(X, y)
    pred = seg.predict(X)
    assert isinstance(pred, list) and [p.shape for p in pred] == [m.shape for m in y]


def test_image_array_with_a_list_of_masks():
    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    for patch_size in (None, "auto", 8):
        seg = CNNSegmenter(**TINY, patch_size=patch_size).fit(X, list(y))
        assert seg.classes_.tolist() == [0, 1, 2] and seg.n_iter_ == 2


def test_a_list_of_images_trains_as_the_array_does():
    # whole-image batches hold the same images in the same order whether X
    # is an array or a list of its images, so the fits agree
    X, y = make_shapes(n_samples=12, image_size=32, random_state=0)
    params = dict(TINY, augment="auto", tta=False, precision="fp32")
    a = CNNSegmenter(**params).fit(X, y)
    b = CNNSegmenter(**params).fit(list(X), list(y))
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)


def test_masks_of_mixed_dtypes_keep_their_labels():
    from sksegment.augmentation import RandomFlip

    X, _ = make_shapes(n_samples=2, image_size=16, random_state=0)
    a = np.zeros((16, 16), np.uint8)
    a[4:8, 4:8] = 1
    b = np.zeros((16, 16), np.int64)
    b[2:10, 2:10] = 300
    c = np.zeros((12, 16), np.int8)
    c[2:10, 2:10] = -1
    assert CNNSegmenter(**TINY).fit(list(X), [a, b]).classes_.tolist() == [0, 1, 300]
    # images of different sizes go through the padded batches
    seg = CNNSegmenter(**TINY, patch_size=8).fit([X[0], X[1][:12]], [a, c])
    assert seg.classes_.tolist() == [-1, 0, 1]
    _, flipped = RandomFlip(p=1.0).sample(list(X), [a, b], random_state=0)
    assert [m.dtype for m in flipped] == [np.uint8, np.int64]
    assert flipped[1].max() == 300 and flipped[0].max() == 1
    with pytest.raises(ValueError, match="y mixes label dtypes"):
        CNNSegmenter(**TINY).fit(list(X), [a.astype(np.uint64), -a.astype(np.int8)])


def test_images_of_differently_scaled_dtypes_are_refused():
    X, y = make_shapes(n_samples=2, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY)
    with pytest.raises(ValueError, match=r"X mixes image dtypes \['float32', 'uint8'\]"):
        seg.fit([X[0], X[1].astype(np.float32) / 255], list(y))
    assert not hasattr(seg, "classes_")
    # dtypes of one scale mix freely
    seg.fit([X[0].astype(np.float64), X[1].astype(np.float32)], list(y))
    with pytest.raises(ValueError, match="X mixes image dtypes"):
        seg.predict([X[0], X[1].astype(np.float32)])


@pytest.mark.parametrize("classes, match", [
    ([-1, 0, 1, 2], "holds -1, which masks of dtype uint8 cannot hold"),
    ([0, 1, 2, 300], "holds 300"),
    ([0, 0.5, 1, 2], "holds 0.5"),
    ([0, 1, 1, 2], "repeats a label value"),
    ([], "non-empty"),
])
def test_partial_fit_checks_classes(classes, match):
    X, y = make_shapes(n_samples=4, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY)
    with pytest.raises(ValueError, match=match):
        seg.partial_fit(X, y, classes=classes)
    assert not hasattr(seg, "classes_")
    with pytest.raises(TypeError, match="classes must hold"):
        seg.partial_fit(X, y, classes=["a", "b"])


def test_partial_fit_refuses_other_classes_later():
    X, y = make_shapes(n_samples=4, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY).partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="differs from the classes of the first"):
        seg.partial_fit(X, y, classes=[0, 1, 2])
    assert seg.n_iter_ == 1
    seg.partial_fit(X, y, classes=[3, 2, 1, 0]).partial_fit(X, y)
    assert seg.classes_.tolist() == [0, 1, 2, 3] and seg.n_iter_ == 3
    wide = CNNSegmenter(**TINY).partial_fit(X, y.astype(np.int16), classes=[-1, 0, 1, 2])
    assert wide.classes_.tolist() == [-1, 0, 1, 2]


def test_predict_warns_when_images_come_in_other_units():
    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY).fit(X, y)
    with pytest.warns(UserWarning, match="fitted on uint8 images.*255 times as bright"):
        seg.predict(X.astype(np.float32))  # uint8 values as floats: not divided by 255
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seg.predict(X.astype(np.float32) / 255)  # the units of fit
        seg.predict(X)
    floats = CNNSegmenter(**TINY).fit(X.astype(np.float32), y)  # trained on 0 .. 255
    with pytest.warns(UserWarning, match="fitted on float32 images"):
        floats.predict(list(X))


@pytest.mark.parametrize("params, match", [
    (dict(depth=12), (r"depth=12 is too deep for the median training image \(16 x 16\): "
                      r"halving .* less than one pixel.* Give depth=4 or less")),
    (dict(depth=3, patch_size=4), r"too deep for patch_size_ \(4, 4\).* Give depth=2 or less"),
    # a patch larger than the images crops no more than them
    (dict(depth=5, patch_size=32), r"too deep for the median training image \(16 x 16\)"),
])
def test_a_network_too_deep_for_the_images_is_refused_before_training(params, match):
    X, y = make_shapes(n_samples=7, image_size=16, random_state=0)
    seg = CNNSegmenter(**{**TINY, "batch_size": 2, **params})
    with pytest.raises(ValueError, match=match):
        seg.fit(X, y)
    assert not hasattr(seg, "model_")


def test_early_stopping_keeps_the_best_weights_whatever_tol():
    X, y = make_shapes(n_samples=8, image_size=32, random_state=0)
    kw = dict(TINY, max_epochs=3, precision="fp32", augment=None, tta=False,
              lr_schedule="constant", early_stopping=True, validation_fraction=0.25,
              n_iter_no_change=5)
    seg = CNNSegmenter(**kw, tol=1.0).fit(X, y)  # no gain counts against n_iter_no_change
    scores = seg.validation_scores_
    assert seg.best_score_ == max(scores) and seg.best_epoch_ == 1 + int(np.argmax(scores))
    refit = CNNSegmenter(**{**kw, "max_epochs": seg.best_epoch_}, tol=1.0).fit(X, y)
    np.testing.assert_array_equal(seg.predict_proba(X), refit.predict_proba(X))


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_inputs_of_one_bottleneck_pixel_are_padded_to_two(norm):
    # 16 x 16 under depth 4, and a lone 4 x 4 crop under depth 2, would leave
    # one pixel at the bottleneck, which these norms cannot normalise
    X, y = make_shapes(n_samples=7, image_size=16, random_state=0)
    seg = CNNSegmenter(**{**TINY, "batch_size": 1, "depth": 4, "norm": norm}).fit(X, y)
    assert seg.predict(X).shape == X.shape
    small = CNNSegmenter(**{**TINY, "batch_size": 1, "patch_size": 4, "norm": norm}).fit(X, y)
    proba = small.predict_proba([X[0, :4, :4], X[1, :1, :3]])
    assert [p.shape for p in proba] == [(4, 4, 3), (1, 3, 3)]
    assert all(np.allclose(p.sum(-1), 1, atol=1e-5) for p in proba)
    small.set_params(tiling=True, tile_size=4)  # tiles of one cell are padded alike
    assert small.predict(X).shape == X.shape


def test_a_small_image_among_large_ones_trains_with_the_planned_depth():
    rng = np.random.RandomState(0)
    shapes = [(64, 64), (64, 64), (64, 64), (12, 12)]
    X = [rng.randint(0, 256, s, dtype=np.uint8) for s in shapes]
    y = [(x > 128).astype(np.uint8) for x in X]
    # whole images: the depth follows the median image; a lone small image is padded
    seg = CNNSegmenter(width=4, max_epochs=2, batch_size=1, random_state=0).fit(X, y)
    assert seg.patch_size_ is None and seg.depth_ == 4 and seg.norm_ == "instance"
    assert [p.shape for p in seg.predict(X)] == shapes
    # patches: a crop of the small image, alone in its batch, is padded too
    CNNSegmenter(width=4, max_epochs=2, batch_size=1, patch_size=32, depth=4,
                 random_state=0).fit(X, y)


@pytest.mark.parametrize("param, value", [("precision", "fp8"), ("verbose", "2"),
                                          ("tta", None), ("compile", "yes")])
def test_parameters_set_after_fit_are_checked_at_predict(param, value, fitted, shapes):
    X, _ = shapes
    seg = copy.deepcopy(fitted).set_params(**{param: value})
    for call in (seg.predict, seg.predict_proba,
                 lambda x: seg.predict_uncertainty(x, method="tta")):
        with pytest.raises(ValueError, match=f"The '{param}' parameter of CNNSegmenter"):
            call(X[:1])


def test_images_beyond_float32_are_refused_at_predict():
    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY).fit(X.astype(np.float64), y)
    with pytest.raises(ValueError, match=r"X\[1\] holds values as large as .* rescale X\[1\]"):
        seg.predict([X[0].astype(np.float64), X[1].astype(np.float64) * 1e300])
    assert seg.predict(X.astype(np.float64) * 1e30).shape == (6, 16, 16)  # within float32


def test_numpy_booleans_and_strings_are_parameter_values():
    X, y = make_shapes(n_samples=4, image_size=16, random_state=0)
    flags, names = np.array([True, False]), np.array(["dice", "instance"])
    seg = CNNSegmenter(**TINY, warm_start=flags[0], tta=flags[1], loss=names[0],
                       norm=names[1]).fit(X, y)
    assert seg.norm_ == "instance" and seg.n_iter_ == 2


def test_validation_data_errors_name_x_val_and_come_before_training():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    steps = []
    seg = CNNSegmenter(**{**TINY, "norm": "instance"},
                       loss=lambda logits, target: steps.append(1) or logits.mean())
    with pytest.raises(ValueError, match="y_val has 4 masks but X_val has 8 images"):
        seg.fit(X, y, X_val=X, y_val=y[:4])
    with pytest.raises(ValueError, match=r"y_val\[0\] has shape \(8, 8\) but image 0 of X_val"):
        seg.fit(X, y, X_val=list(X[:3]), y_val=[m[:8, :8] for m in y[:3]])
    assert not steps and not hasattr(seg, "model_")  # no training step was taken
    seg.fit(X, y, X_val=X[:2], y_val=y[:2])
    assert steps  # the loss does record the steps of a fit


def test_a_refit_drops_the_earlier_postprocessing_report():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY, postprocess="auto").fit(X[:6], y[:6], X_val=X[6:], y_val=y[6:])
    assert hasattr(seg, "postprocessing_report_")
    seg.set_params(postprocess=None).fit(X[:6], y[:6])
    assert not hasattr(seg, "postprocessing_report_") and seg.postprocessing_ is None


def test_warm_start_with_early_stopping_keeps_the_runs_best_weights():
    X, y = make_shapes(n_samples=10, image_size=16, random_state=0)
    seg = CNNSegmenter(**{**TINY, "max_epochs": 40}, warm_start=True, early_stopping=True,
                       n_iter_no_change=2, tta=False, learning_rate=0.05,
                       lr_schedule="constant")
    first = None
    for _ in range(3):
        seg.fit(X[:6], y[:6], X_val=X[6:], y_val=y[6:])
        # the weights kept are those that scored best_score_ in this run
        assert seg.score(X[6:], y[6:]) == pytest.approx(seg.best_score_)
        assert seg.best_epoch_ > (first or 0)
        first = first or seg.n_iter_
    assert len(seg.history_) == seg.n_iter_ > first


@pytest.mark.parametrize("change", [dict(optimizer="sgd"), dict(width=8), dict(depth=1),
                                    dict(normalize="minmax"), dict(norm="batch")])
def test_a_continued_fit_refuses_another_network_or_optimizer(change):
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    for continued in ("warm_start", "partial_fit"):
        seg = CNNSegmenter(**{**TINY, "norm": "instance"}, warm_start=continued == "warm_start")
        seg = seg.fit(X, y) if continued == "warm_start" else seg.partial_fit(X, y)
        before = seg.predict_proba(X[:2])
        seg.set_params(**change)
        with pytest.raises(ValueError, match=f"{next(iter(change))}=.* differs from the fitted "):
            seg.fit(X, y) if continued == "warm_start" else seg.partial_fit(X, y)
        np.testing.assert_array_equal(seg.predict_proba(X[:2]), before)


def test_a_continued_fit_applies_explicit_batch_and_patch_sizes():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    seg = CNNSegmenter(**{**TINY, "batch_size": "auto"}, warm_start=True).fit(X, y)
    seg.set_params(batch_size=3, patch_size=8, depth=seg.depth_, norm=seg.norm_).fit(X, y)
    assert (seg.batch_size_, seg.patch_size_, seg.n_iter_) == (3, (8, 8), 4)
    assert seg.get_params()["normalize"] == "auto"


def test_a_scoring_callable_sees_the_segmenter_during_validation():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)

    def confidence(est, X, y):
        proba = est.predict_proba(X)
        assert proba.shape[-1] == est.n_classes_ == 3
        return float(proba.max(-1).mean())

    seg = CNNSegmenter(**TINY, scoring=confidence, tta=False).fit(
        X[:6], y[:6], X_val=X[6:], y_val=y[6:])
    scores = [h["val_score"] for h in seg.history_]
    assert len(scores) == 2 and all(1 / 3 < v <= 1 for v in scores)
    assert scores[-1] == pytest.approx(confidence(seg, X[6:], y[6:]), abs=1e-6)


class _TinyNet(torch.nn.Module):
    def __init__(self, c=1, k=3, detach=False):
        super().__init__()
        self.conv, self.detach = torch.nn.Conv2d(c, k, 3, padding=1), detach

    def forward(self, x):
        out = self.conv(x)
        return out.detach() if self.detach else out


def test_a_factory_network_is_copied_never_trained_or_wiped():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    shared = _TinyNet()
    before = shared.conv.weight.detach().clone()
    seg = CNNSegmenter(**TINY, model=lambda c, k: shared).fit(X, y)
    assert seg.model_ is not shared and torch.equal(shared.conv.weight, before)
    with pytest.raises(ValueError, match="channels"):  # a failed fit leaves it alone too
        CNNSegmenter(**TINY, model=lambda c, k: shared).fit(
            X, y, X_val=np.zeros((2, 16, 16, 3), np.uint8), y_val=y[:2])
    assert shared.conv.weight.device.type == "cpu"
    assert torch.equal(shared.conv.weight, before)


def test_networks_that_cannot_learn_are_named():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    frozen = _TinyNet().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        CNNSegmenter(**TINY, model=frozen).fit(X, y)
    with pytest.raises(ValueError, match="model must return logits computed from its"):
        CNNSegmenter(**TINY, model=_TinyNet(detach=True)).fit(X, y)


def test_a_network_instance_trains_and_predicts_on_small_inputs():
    from sksegment.models import UNet

    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    net = UNet(1, 3, depth=2, width=4, norm="instance")
    seg = CNNSegmenter(**TINY, model=net, patch_size=4).fit(X, y)  # one cell per patch
    assert seg.predict(X[:, :4, :4]).shape == (8, 4, 4)


def test_validation_sees_x_val_as_predict_does():
    from sksegment.augmentation import IntensityStandardizer

    X, y = make_shapes(n_samples=10, image_size=16, random_state=0)
    std = IntensityStandardizer().fit(X[:6])
    seen = []

    def record(est, X, y):
        seen.append(est.predict_proba(X))
        return 0.0

    seg = CNNSegmenter(**{**TINY, "max_epochs": 1}, scoring=record, tta=False)
    seg.fit(std.transform(X[:6]), y[:6], X_val=std.transform(X[6:]), y_val=y[6:])
    np.testing.assert_allclose(seen[-1], seg.predict_proba(std.transform(X[6:])), atol=1e-6)


def test_a_continued_fit_keeps_the_fitted_standardiser():
    from sksegment.augmentation import IntensityStandardizer, RandomFlip

    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY, augment=[IntensityStandardizer()], optimizer="sgd",
                       learning_rate=1e-12)
    seg.partial_fit(X[:4], y[:4], classes=[0, 1, 2])
    before = seg.predict_proba(X)
    seg.partial_fit(X[4:] // 4, y[4:])  # other intensities: the steps do not refit
    np.testing.assert_allclose(seg.predict_proba(X), before, atol=1e-6)
    seg.set_params(augment=[IntensityStandardizer(), RandomFlip()])
    with pytest.raises(ValueError, match="augment differs from the fitted"):
        seg.partial_fit(X, y)
    seg.set_params(augment=[IntensityStandardizer()]).partial_fit(X, y)  # equal: continues


def test_augment_is_recorded_by_value():
    from sklearn.pipeline import make_pipeline

    from sksegment.augmentation import IntensityStandardizer, RandomFlip

    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    seg = CNNSegmenter(**TINY, augment=RandomFlip(p=0.0)).fit(X, y)
    assert seg.augment_ is not seg.augment
    seg.set_params(augment__p=1.0)  # the parameter changes, not what trained
    assert seg.augment_.p == 0.0
    pipe = make_pipeline(IntensityStandardizer(), RandomFlip(p=0.0))
    warm = CNNSegmenter(**TINY, augment=pipe, warm_start=True).fit(X, y)
    warm.set_params(augment__randomflip__p=1.0)  # a change in place is a change
    with pytest.raises(ValueError, match="augment differs from the fitted"):
        warm.fit(X, y)


def test_y_val_labels_never_seen_in_fit_are_announced():
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    y_val = y[6:].copy()
    y_val[:, :2, :2] = 7
    with pytest.warns(UserWarning, match=r"y_val has label\(s\) \[7\] that the model never"):
        CNNSegmenter(**TINY).fit(X[:6], y[:6], X_val=X[6:], y_val=y_val)


def test_not_fitted():
    X, _ = make_shapes(n_samples=2, image_size=32, random_state=0)
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(CNNSegmenter(), method)(X)


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_user_arrays_not_modified_and_read_only_ok(shapes, class_weight):
    X, y = shapes
    Xc, yc = X[:8].copy(), y[:8].copy()
    Xc.setflags(write=False)
    yc.setflags(write=False)
    with warnings.catch_warnings():
        # torch warns when it is handed read-only NumPy memory
        warnings.simplefilter("error")
        seg = CNNSegmenter(**TINY, class_weight=class_weight).fit(Xc, yc)
        seg.predict(Xc)
        seg.score(Xc, yc)
    np.testing.assert_array_equal(Xc, X[:8])
    np.testing.assert_array_equal(yc, y[:8])


def test_same_seed_same_weights_and_predictions(shapes):
    X, y = shapes
    a = CNNSegmenter(**TINY).fit(X[:8], y[:8])
    b = CNNSegmenter(**TINY).fit(X[:8], y[:8])
    for pa, pb in zip(a.model_.parameters(), b.model_.parameters()):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(a.predict_proba(X[8:10]), b.predict_proba(X[8:10]))
    c = CNNSegmenter(**{**TINY, "random_state": 1}).fit(X[:8], y[:8])
    assert not torch.equal(next(a.model_.parameters()), next(c.model_.parameters()))


def test_fit_does_not_touch_global_torch_rng(shapes):
    X, y = shapes
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    CNNSegmenter(**TINY).fit(X[:4], y[:4])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("model", ["unet", "fcn"])
def test_models_by_name(model, shapes):
    X, y = shapes
    seg = CNNSegmenter(model=model, **TINY).fit(X[:6], y[:6])
    assert seg.predict(X[6:8]).shape == (2, 32, 32)


def test_custom_module_and_callable(shapes):
    X, y = shapes
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 1))
    before = [p.detach().clone() for p in net.parameters()]
    seg = CNNSegmenter(model=net, **TINY).fit(X[:6], y[:6])
    # the user's module is copied, never trained in place
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert seg.model_ is not net
    built = []

    def factory(in_channels, n_classes):
        built.append((in_channels, n_classes))
        return torch.nn.Conv2d(in_channels, n_classes, 3, padding=1)

    seg = CNNSegmenter(model=factory, **TINY).fit(X[:6], y[:6])
    assert built == [(1, 3)]
    assert seg.predict(X[6:7]).shape == (1, 32, 32)


def test_verbose_prints_one_line_per_epoch(shapes, capsys):
    X, y = shapes
    CNNSegmenter(**{**TINY, "verbose": 1}).fit(X[:4], y[:4])
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.startswith("epoch ") and "loss" in ln]
    assert len(lines) == 2


def test_verbose_validation_draws_no_prediction_bars(shapes, capsys):
    X, y = shapes
    seg = CNNSegmenter(**{**TINY, "verbose": 1}).fit(X[:4], y[:4], X_val=X[4:6], y_val=y[4:6])
    out = capsys.readouterr()
    assert "validation score" in out.err + out.out
    assert "predict" not in out.err + out.out
    seg.predict(X[6:8])
    seg.score(X[6:8], y[6:8])
    assert "predict" not in capsys.readouterr().err  # verbose=1 is training progress only
    seg.set_params(verbose=2).predict(X[6:8])
    assert "predict" in capsys.readouterr().err  # verbose=2 adds prediction bars


# --------------------------------------------------------------------------- #
# model selection, pipelines, persistence
# --------------------------------------------------------------------------- #
def test_cross_val_score(shapes):
    X, y = shapes
    scores = cross_val_score(CNNSegmenter(**{**TINY, "max_epochs": 1}), X[:12], y[:12], cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_losses_and_depth(shapes, n_jobs):
    X, y = shapes
    grid = GridSearchCV(CNNSegmenter(width=4, max_epochs=1, batch_size=4, random_state=0),
                        {"loss": ["cross_entropy", "dice", "mae"], "depth": [2, 3]},
                        cv=2, n_jobs=n_jobs)
    grid.fit(X[:8], y[:8])
    assert len(grid.cv_results_["params"]) == 6
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.predict(X[8:10]).shape == (2, 32, 32)


def test_last_step_of_pipeline(shapes):
    from sklearn.preprocessing import FunctionTransformer

    X, y = shapes
    pipe = make_pipeline(FunctionTransformer(lambda a: a), CNNSegmenter(**TINY))
    pipe.fit(X[:8], y[:8])
    assert pipe.predict(X[8:10]).shape == (2, 32, 32)
    assert 0 <= pipe.score(X[8:10], y[8:10]) <= 1


def test_joblib_round_trip(shapes, fitted, tmp_path):
    X, _ = shapes
    path = tmp_path / "seg.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X[16:]), fitted.predict_proba(X[16:]))
    np.testing.assert_array_equal(loaded.predict(X[16:]), fitted.predict(X[16:]))


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
def _X(n=4, size=32):
    return make_shapes(n_samples=n, image_size=size, random_state=0)


@pytest.mark.parametrize("params,match", [
    ({"loss": "nope"}, "loss"),
    ({"model": "nope"}, "model"),
    ({"optimizer": "nope"}, "optimizer"),
    ({"depth": 0}, "depth"),
    ({"depth": 1.5}, "depth"),
    ({"width": 0}, "width"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": -1e-3}, "learning_rate"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"patch_size": (8, 0)}, "patch_size"),
    ({"device": "nonsense"}, "device"),
    ({"precision": "fp8"}, "precision"),
    ({"scoring": "nope"}, "nope"),
    ({"tile_overlap": 1.0}, "tile_overlap"),
])
def test_bad_parameters(params, match):
    X, y = _X()
    with pytest.raises((ValueError, TypeError), match=match):
        CNNSegmenter(**{**TINY, **params}).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_device():
    X, y = _X()
    with pytest.raises(ValueError, match="CUDA is not available"):
        CNNSegmenter(**{**TINY, "device": "cuda"}).fit(X, y)


def test_bad_data():
    X, y = _X()
    seg = CNNSegmenter(**TINY)
    with pytest.raises(ValueError, match="y has 3 masks but X has 4"):
        seg.fit(X, y[:3])
    with pytest.raises(ValueError, match="same height and width"):
        seg.fit(X, y[:, :30])
    Xn = X.astype(np.float32)
    Xn[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        seg.fit(Xn, y)
    Xn[1, 3, 3] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        seg.fit(Xn, y)
    with pytest.raises(ValueError, match="non-integer"):
        seg.fit(X, y + 0.5)
    with pytest.raises(ValueError, match="single class"):
        seg.fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match=r"no labelled pixel besides ignore_index=7"):
        clone(seg).set_params(ignore_index=7).fit(X, np.full_like(y, 7))
    for bad in (X[0, 0], X[0], X[None, ..., None], X[:0]):
        with pytest.raises(ValueError, match="X"):
            seg.fit(bad, y)
    with pytest.raises(TypeError, match="X"):
        seg.fit(X.astype(complex), y)
    with pytest.raises(TypeError, match="X"):
        seg.fit(torch.from_numpy(X), y)
    with pytest.raises(ValueError, match="y"):
        seg.fit(X, y[..., None].repeat(2, -1))


def test_bad_data_at_predict(fitted):
    X, _ = _X()
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.predict(np.full((1, 32, 32), np.nan))
    with pytest.raises(ValueError, match="X"):
        fitted.predict(X[0, 0])


# --------------------------------------------------------------------------- #
# it learns
# --------------------------------------------------------------------------- #
def test_learns_shapes():
    """A short fit on make_shapes is far above chance on held-out images.

    Chance (a constant or a random prediction) stays below 0.35 mean IoU here;
    this fit measured 0.6-0.7 (see the threshold below for the margin).
    """
    X, y = make_shapes(n_samples=64, image_size=32, random_state=0)
    seg = CNNSegmenter(depth=2, width=8, max_epochs=25, batch_size=8, learning_rate=3e-3,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean fit raises no warning
        seg.fit(X[:48], y[:48])
    assert seg.loss_curve_[-1] < 0.6 * seg.loss_curve_[0]
    majority = np.full_like(y[48:], np.bincount(y[:48].ravel()).argmax())
    baseline = mean_iou(y[48:], majority, labels=seg.classes_)
    score = seg.score(X[48:], y[48:])
    assert score > 0.5 and score > baseline + 0.2


def test_learns_membrane(membrane_dir):
    """On the EM membrane slices a short fit on patches beats the majority class.

    One epoch over 6 slices is 384 patches of 64x64 (48 steps). Measured: mean
    IoU 0.69 against 0.41 for predicting "interior" everywhere.
    """
    from sksegment.datasets import load_membrane

    X, y = load_membrane(membrane_dir)
    seg = CNNSegmenter(depth=3, width=8, patch_size=64, batch_size=8, max_epochs=1,
                       learning_rate=3e-3, random_state=0)
    seg.fit(X[0:24:4], y[0:24:4])
    Xt, yt = X[24:26, :256, :256], y[24:26, :256, :256]
    majority = np.full_like(yt, 255)
    base = mean_iou(yt, majority, labels=seg.classes_)
    score = seg.score(Xt, yt)
    assert score > base + 0.15
