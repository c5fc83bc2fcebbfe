"""CNNSegmenter with every loss, class weights, unlabelled pixels and scoring."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_validate

from sksegment import CNNSegmenter
from sksegment.datasets import make_shapes
from sksegment.losses import loss_names
from sksegment.metrics import dice_score, get_scorer, mean_iou

# fp32: the same arithmetic on every CPU (precision="auto" is bf16 on some)
FAST = dict(depth=2, width=8, batch_size=8, learning_rate=3e-3, random_state=0, device="cpu",
            precision="fp32", tta=False)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_samples=56, image_size=32, random_state=0)


def _majority_iou(y_train, y_test, classes):
    majority = np.full_like(y_test, np.bincount(y_train.ravel()).argmax())
    return mean_iou(y_test, majority, labels=classes)


# Mean IoU on 16 held-out images after 20 epochs on 40 images of 32x32,
# measured on 2 CPU cores: cross_entropy 0.53, dice 0.54, focal 0.57, jaccard
# 0.54, lovasz 0.52, mae 0.44, tversky 0.54, 0.7*dice+0.3*focal 0.55.
# Predicting the majority class everywhere scores about 0.30.
@pytest.mark.parametrize("loss", sorted(loss_names()) + ["0.7*dice+0.3*focal"])
def test_every_loss_trains(loss, shapes):
    X, y = shapes
    seg = CNNSegmenter(loss=loss, **{**FAST, "max_epochs": 20, "learning_rate": 5e-3})
    seg.fit(X[:40], y[:40])
    score = seg.score(X[40:], y[40:])
    assert score > 0.38 > _majority_iou(y[:40], y[40:], seg.classes_) + 0.05, score
    assert seg.loss_curve_[-1] < seg.loss_curve_[0]


def test_scribbles_with_ignore_index(shapes):
    """90 % of the pixels unlabelled: it still learns, and 255 is no class."""
    X, y = shapes
    rng = np.random.default_rng(0)
    scribbles = y[:40].copy()
    scribbles[rng.random(scribbles.shape) < 0.9] = 255
    seg = CNNSegmenter(ignore_index=255, **{**FAST, "max_epochs": 30, "learning_rate": 1e-2})
    seg.fit(X[:40], scribbles)
    assert seg.classes_.tolist() == [0, 1, 2]
    pred = seg.predict(X[40:])
    assert 255 not in np.unique(pred)
    # measured 0.45 (the majority class scores about 0.30)
    assert seg.score(X[40:], y[40:]) > 0.38
    # unlabelled pixels in the truth count nowhere in the score
    masked = y[40:].copy()
    masked[:, :16] = 255
    expected = mean_iou(masked, np.where(masked == 255, 255, pred), labels=seg.classes_,
                        ignore_index=255)
    assert seg.score(X[40:], masked) == pytest.approx(expected)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 0.2, 1: 1.0, 2: 3.0}])
def test_class_weight_changes_the_fit(class_weight, shapes):
    X, y = shapes
    base = CNNSegmenter(max_epochs=2, **FAST).fit(X[:16], y[:16])
    weighted = CNNSegmenter(class_weight=class_weight, max_epochs=2, **FAST).fit(X[:16], y[:16])
    assert weighted.loss_curve_ != base.loss_curve_


@pytest.mark.parametrize("class_weight,match", [
    ({0: -1.0, 1: 1.0}, "class_weight"),
    ({7: 1.0}, "class_weight"),
    ("heavy", "class_weight"),
])
def test_bad_class_weight(class_weight, match, shapes):
    X, y = shapes
    with pytest.raises((ValueError, TypeError), match=match):
        CNNSegmenter(class_weight=class_weight, max_epochs=1, **FAST).fit(X[:8], y[:8])


def test_bad_loss_params(shapes):
    X, y = shapes
    with pytest.raises(ValueError, match="loss_params"):
        CNNSegmenter(loss="focal", loss_params={"beta": 3}, max_epochs=1,
                     **FAST).fit(X[:8], y[:8])
    with pytest.raises(ValueError, match="loss"):
        CNNSegmenter(loss="0.5*dice+", max_epochs=1, **FAST).fit(X[:8], y[:8])


def test_ignore_index_that_is_a_class_in_partial_fit(shapes):
    X, y = shapes
    with pytest.raises(ValueError, match="ignore_index"):
        CNNSegmenter(ignore_index=2, **FAST).partial_fit(X[:8], y[:8], classes=[0, 1, 2])


def test_scoring_parameter_chooses_score(shapes):
    X, y = shapes
    seg = CNNSegmenter(scoring="dice", max_epochs=2, **FAST).fit(X[:16], y[:16])
    pred = seg.predict(X[40:])
    assert seg.score(X[40:], y[40:]) == pytest.approx(
        dice_score(y[40:], pred, labels=seg.classes_))


def test_grid_search_with_scorers_and_multimetric_refit(shapes):
    X, y = shapes
    grid = GridSearchCV(
        CNNSegmenter(max_epochs=1, **FAST), {"loss": ["cross_entropy", "dice+cross_entropy"]},
        scoring={"mean_iou": get_scorer("mean_iou"), "dice": get_scorer("dice"),
                 "acc": get_scorer("pixel_accuracy")},
        refit="mean_iou", cv=2)
    grid.fit(X[:16], y[:16])
    for key in ("mean_test_mean_iou", "mean_test_dice", "mean_test_acc"):
        assert np.all(np.isfinite(grid.cv_results_[key]))
    assert grid.best_index_ == int(np.argmax(grid.cv_results_["mean_test_mean_iou"]))
    res = cross_validate(CNNSegmenter(max_epochs=1, **FAST), X[:12], y[:12], cv=2,
                         scoring=get_scorer("dice"))
    assert res["test_score"].shape == (2,)


def test_multimetric_grid_search_with_scorers_from_names():
    """scikit-learn takes none of our names itself; get_scorer(list) gives the
    dict it takes, with refit by name."""
    X, y = make_shapes(n_samples=8, image_size=16, random_state=0)
    seg = CNNSegmenter(depth=1, width=4, max_epochs=1, batch_size=4, random_state=0)
    grid = GridSearchCV(seg, {"loss": ["cross_entropy", "dice"]},
                        scoring=get_scorer(["mean_iou", "f1", "accuracy"]), refit="mean_iou",
                        cv=2).fit(X, y)
    for name in ("mean_iou", "f1", "accuracy"):
        scores = grid.cv_results_[f"mean_test_{name}"]
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert grid.best_index_ == int(np.argmax(grid.cv_results_["mean_test_mean_iou"]))
    assert grid.score(X, y) == pytest.approx(mean_iou(y, grid.predict(X),
                                                      labels=grid.best_estimator_.classes_))
    with pytest.raises(ValueError, match="did you mean 'mean_iou'"):
        get_scorer(["mean_iuo", "dice"])


def _tiny_shapes():
    return make_shapes(n_samples=6, image_size=16, random_state=0)


TINY = dict(width=4, depth=2, max_epochs=1, device="cpu", random_state=0)


@pytest.mark.parametrize("loss", [
    lambda logits, target: torch.tensor(1.0),
    lambda logits, target: logits.detach().mean(),
])
def test_loss_not_computed_from_logits_is_named(loss):
    X, y = _tiny_shapes()
    seg = CNNSegmenter(loss=loss, **TINY)
    with pytest.raises(ValueError, match=r"loss .*does not depend on them \(requires_grad"):
        seg.fit(X, y)
    assert not hasattr(seg, "model_")


@pytest.mark.parametrize("value", ["x", None, np.array([0.1, 0.2])])
def test_scoring_must_return_a_number(value):
    X, y = _tiny_shapes()
    seg = CNNSegmenter(scoring=lambda est, X, y: value, early_stopping=True,
                       validation_fraction=0.34, **TINY)
    with pytest.raises(TypeError, match="scoring must return a real number"):
        seg.fit(X, y)
    assert not hasattr(seg, "model_")


def test_check_score_accepts_numbers():
    from sksegment._metric_scorers import check_score

    assert check_score(np.float32(0.5)) == 0.5
    assert check_score(torch.tensor(0.25)) == 0.25
    assert check_score(np.array([2])) == 2.0
    assert np.isnan(check_score(float("nan")))
    with pytest.raises(TypeError, match="scoring must return a real number"):
        check_score(True)
