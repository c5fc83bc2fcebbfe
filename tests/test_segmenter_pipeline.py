"""CNNSegmenter with augmenters (in Pipelines and as ``augment``) and with
images of any size (lists, tiles, test-time augmentation)."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline

from sksegment import (
    CNNSegmenter,
    IntensityStandardizer,
    RandomAffine,
    RandomBrightnessContrast,
    RandomFlip,
    RandomRotate90,
)
from sksegment.augmentation import AugmentedImages
from sksegment.datasets import make_shapes
from sksegment.metrics import mean_iou

FAST = dict(depth=2, width=8, batch_size=8, learning_rate=3e-3, loss="cross_entropy",
            lr_schedule="constant", random_state=0, device="cpu")


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_samples=40, image_size=32, random_state=0)


# --------------------------------------------------------------------------- #
# augmentation
# --------------------------------------------------------------------------- #
def test_pipeline_augmenters_reach_the_segmenter_lazily(shapes, monkeypatch):
    X, y = shapes
    got = {}
    original = CNNSegmenter._fit

    def spy(self, X_, y_, *a, **k):
        got["X"] = X_
        return original(self, X_, y_, *a, **k)

    monkeypatch.setattr(CNNSegmenter, "_fit", spy)
    pipe = make_pipeline(RandomFlip(), RandomAffine(degrees=15),
                         CNNSegmenter(max_epochs=1, **FAST))
    pipe.fit(X[:16], y[:16])
    assert isinstance(got["X"], AugmentedImages)
    assert got["X"].images is X[:16] or np.shares_memory(got["X"].images, X)
    assert len(got["X"].chain) == 2


def test_augmenters_change_training_not_prediction(shapes):
    X, y = shapes
    plain = CNNSegmenter(max_epochs=2, **FAST).fit(X[:16], y[:16])
    pipe = make_pipeline(RandomFlip(p=1.0), RandomRotate90(),
                         RandomBrightnessContrast(brightness=0.2, contrast=0.2),
                         CNNSegmenter(max_epochs=2, **FAST)).fit(X[:16], y[:16])
    seg = pipe[-1]
    assert seg.loss_curve_ != plain.loss_curve_  # training saw augmented batches
    # at predict the random augmenters are the identity: the pipeline predicts
    # exactly what its segmenter predicts on the raw images
    np.testing.assert_array_equal(pipe.predict_proba(X[30:]), seg.predict_proba(X[30:]))
    np.testing.assert_array_equal(pipe.predict(X[30:]), seg.predict(X[30:]))


def test_augment_parameter_equals_pipeline(shapes):
    X, y = shapes
    a = CNNSegmenter(augment=[RandomFlip(), RandomAffine(degrees=10)], max_epochs=2,
                     **FAST).fit(X[:16], y[:16])
    b = make_pipeline(RandomFlip(), RandomAffine(degrees=10),
                      CNNSegmenter(max_epochs=2, **FAST)).fit(X[:16], y[:16])
    np.testing.assert_allclose(a.loss_curve_, b[-1].loss_curve_, rtol=1e-6)
    np.testing.assert_array_equal(a.predict(X[30:]), b.predict(X[30:]))


def test_fixed_seed_reproduces_augmented_training(shapes):
    X, y = shapes
    kw = dict(augment=[RandomFlip(), RandomAffine(degrees=20, scale=(0.9, 1.1))],
              max_epochs=2, **FAST)
    a = CNNSegmenter(**kw).fit(X[:16], y[:16])
    b = CNNSegmenter(**kw).fit(X[:16], y[:16])
    assert a.loss_curve_ == b.loss_curve_
    for pa, pb in zip(a.model_.parameters(), b.model_.parameters()):
        assert torch.equal(pa, pb)


def test_standardizer_applies_at_fit_and_predict(shapes):
    X, y = shapes
    Xf = X.astype(np.float32) * 40 + 1000  # far from unit range
    pipe = make_pipeline(IntensityStandardizer(), RandomFlip(),
                         CNNSegmenter(max_epochs=8, **FAST)).fit(Xf[:32], y[:32])
    seg = CNNSegmenter(augment=[IntensityStandardizer(), RandomFlip()], max_epochs=8,
                       **FAST).fit(Xf[:32], y[:32])
    np.testing.assert_array_equal(pipe.predict(Xf[32:]), seg.predict(Xf[32:]))
    # the standardised fit learns (predicting background everywhere scores
    # 0.28); shifting the test images by the same affine map as the training
    # images changes nothing
    assert seg.score(Xf[32:], y[32:]) > mean_iou(y[32:], np.zeros_like(y[32:])) + 0.05


def test_grid_search_over_augmentation(shapes):
    X, y = shapes
    pipe = Pipeline([("flip", RandomFlip()), ("affine", RandomAffine()),
                     ("seg", CNNSegmenter(max_epochs=1, **FAST))])
    grid = GridSearchCV(pipe, {"affine__degrees": [0, 20], "flip__p": [0.0, 0.5]}, cv=2)
    grid.fit(X[:16], y[:16])
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    grid2 = GridSearchCV(CNNSegmenter(max_epochs=1, **FAST),
                         {"augment": [None, [RandomFlip()], [RandomAffine(degrees=10)]]}, cv=2)
    grid2.fit(X[:16], y[:16])
    assert len(grid2.cv_results_["params"]) == 3


def test_bad_augment(shapes):
    X, y = shapes
    with pytest.raises(TypeError, match="augment"):
        CNNSegmenter(augment=["flip"], max_epochs=1, **FAST).fit(X[:8], y[:8])
    with pytest.raises(ValueError, match="degrees"):
        CNNSegmenter(augment=RandomAffine(degrees=-5), max_epochs=1, **FAST).fit(X[:8], y[:8])


# --------------------------------------------------------------------------- #
# images of any size
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def patch_model():
    """A model trained on 32x32 patches of 64x64 images (4 patches per image
    and epoch; measured mean IoU 0.57 on the 8 held-out images, 0.59 with TTA)."""
    X, y = make_shapes(n_samples=40, image_size=64, random_state=3)
    seg = CNNSegmenter(depth=2, width=8, batch_size=8, learning_rate=5e-3, random_state=0,
                       patch_size=32, max_epochs=7).fit(X[:32], y[:32])
    return seg, X[32:], y[32:]


def test_trained_on_patches_predicts_whole_large_images(patch_model):
    seg, X, y = patch_model
    big = np.concatenate([np.concatenate([X[0], X[1]], 1), np.concatenate([X[2], X[3]], 1)], 0)
    pred = seg.predict(big[None])
    assert pred.shape == (1, 128, 128)
    assert seg.score(X, y) > 0.45


def test_tiled_agrees_with_whole_image(patch_model):
    seg, X, _ = patch_model
    big = np.block([[X[0], X[1]], [X[2], X[3]]])[None]
    whole = seg.set_params(tiling=False).predict(big)
    tiled = seg.set_params(tiling=True, tile_size=48, tile_overlap=0.5).predict(big)
    seg.set_params(tiling="auto", tile_size=None, tile_overlap=0.25)
    agree = (whole == tiled).mean()
    assert agree >= 0.99, agree
    # no seam: agreement along the tile borders is as good as elsewhere
    disagree = whole != tiled
    border_rows = [48 - 1, 48, 96 - 1, 96]
    assert disagree[:, border_rows].mean() <= max(0.02, 3 * disagree.mean())


def test_lists_in_fit_and_predict(shapes):
    X, y = shapes
    Xl = [X[0], X[1][:20, :28], X[2][:31, :9]]
    yl = [y[0], y[1][:20, :28], y[2][:31, :9]]
    seg = CNNSegmenter(max_epochs=1, **FAST).fit(Xl, yl)  # padded to one size per batch
    pred = seg.predict(Xl)
    proba = seg.predict_proba(Xl)
    assert isinstance(pred, list) and [p.shape for p in pred] == [m.shape for m in yl]
    assert [p.shape for p in proba] == [m.shape + (3,) for m in yl]
    assert 0 <= seg.score(Xl, yl) <= 1
    same = seg.predict([X[3], X[4]])
    assert isinstance(same, np.ndarray) and same.shape == (2, 32, 32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (5, 7), (33, 65)])
def test_tiny_and_odd_sizes(shape, patch_model):
    seg, X, _ = patch_model
    img = np.resize(X[0], shape)[None]
    for tiling in (False, True):
        seg.set_params(tiling=tiling, tile_size=16)
        assert seg.predict(img).shape == (1,) + shape
        p = seg.predict_proba(img)
        assert p.shape == (1,) + shape + (3,)
        np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
    seg.set_params(tiling="auto", tile_size=None)


def test_tta_keeps_shapes_and_dtypes(patch_model):
    seg, X, y = patch_model
    seg.set_params(tta=True)
    try:
        pred, proba = seg.predict(X[:2]), seg.predict_proba(X[:2])
        assert pred.shape == (2, 64, 64) and pred.dtype == y.dtype
        assert proba.dtype == np.float32
        np.testing.assert_allclose(proba.sum(-1), 1, atol=1e-5)
        assert seg.score(X, y) > 0.45
    finally:
        seg.set_params(tta=False)


def test_bad_prediction_inputs(patch_model):
    seg, X, _ = patch_model
    with pytest.raises(ValueError, match="empty"):
        seg.predict([])
    with pytest.raises(ValueError, match="channel"):
        seg.predict([X[0], np.stack([X[0]] * 3, -1)])
    with pytest.raises(ValueError, match="tile_overlap"):
        seg.set_params(tile_overlap=1.5)._validate_params()
    seg.set_params(tile_overlap=0.25)
    seg.set_params(tiling=True, tile_size=2)
    try:
        with pytest.raises(ValueError, match="tile_size"):
            seg.predict(X[:1])
    finally:
        seg.set_params(tiling="auto", tile_size=None)
