"""Figures of sksegment.plot, drawn with the Agg backend: each has the axes
and artists it should."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure

from sksegment import CNNSegmenter
from sksegment.metrics import mean_iou
from sksegment.plot import (
    plot_confusion_matrix,
    plot_history,
    plot_overlay,
    plot_segmentation,
    plot_uncertainty,
)


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24))
    truth = np.zeros((20, 24), np.uint8)
    truth[2:8, 2:10] = 1
    truth[10:18, 12:20] = 2
    truth[12:16, 2:6] = 3
    pred = truth.copy()
    pred[2:8, 8:10] = 0
    pred[12:16, 2:6] = 2
    return image, truth, pred


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ------------------------------------------------------------- segmentation

def test_plot_segmentation_overlays_legend_and_score(scene):
    image, truth, pred = scene
    names = {0: "bg", 1: "a", 2: "b", 3: "c"}
    fig = plot_segmentation(image, truth, pred, class_names=names, fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == ["image", "truth", "prediction"]
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert _legend_texts(fig.axes[2]) == ["bg (not coloured)", "a", "b", "c"]
    expected = mean_iou(truth, pred, labels=[0, 1, 2, 3])
    assert fig.get_suptitle() == f"mean IoU {expected:.3f}"
    t_rgb = fig.axes[1].get_images()[0].get_array()
    p_rgb = fig.axes[2].get_images()[0].get_array()
    assert t_rgb.shape == (20, 24, 3)
    # the background shows the (grey) image; classes are coloured alike in
    # both panels
    grey = (image - image.min()) / np.ptp(image)
    np.testing.assert_allclose(t_rgb[0, 0], [grey[0, 0]] * 3, atol=1e-6)
    assert np.ptp(t_rgb[3, 3]) > 0.1  # class 1 is coloured
    np.testing.assert_allclose(t_rgb[11, 13], p_rgb[11, 13])  # class 2 in both

    fig = plot_segmentation(image, truth, pred, score="pixel_accuracy", fig=Figure())
    assert fig.get_suptitle().startswith("pixel accuracy ")
    fig = plot_segmentation(image, truth, pred, score=None, fig=Figure())
    assert fig.get_suptitle() == ""
    fig = plot_segmentation(image, prediction=pred, fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == ["image", "prediction"]
    fig = plot_segmentation(image, fig=Figure())
    assert len(fig.axes) == 1 and fig.axes[0].get_legend() is None


def test_plot_segmentation_errors(scene):
    image, truth, pred = scene
    with pytest.raises(ValueError, match="prediction"):
        plot_segmentation(image, truth, pred[:5], fig=Figure())
    with pytest.raises(ValueError, match="score"):
        plot_segmentation(image, truth, pred, score="f1", fig=Figure())
    with pytest.raises(ValueError, match=r"label\(s\) \[3\] that are not in classes"):
        plot_segmentation(image, truth, pred, classes=[0, 1, 2], fig=Figure())
    with pytest.raises(ValueError, match="one name per class"):
        plot_segmentation(image, truth, pred, class_names=["x"], fig=Figure())


def test_plot_segmentation_ignore_label_is_not_coloured(scene):
    image, truth, _ = scene
    truth = truth.copy()
    truth[0:2, :] = 255
    fig = plot_segmentation(image, truth, fig=Figure(), ignore_label=255, background=None)
    rgb = fig.axes[1].get_images()[0].get_array()
    grey = (image - image.min()) / np.ptp(image)
    np.testing.assert_allclose(rgb[0, :, 0], grey[0], atol=1e-6)  # ignored: the image
    assert not np.allclose(rgb[5, 0], grey[5, 0])  # class 0 coloured (background=None)
    assert len(_legend_texts(fig.axes[1])) == 4  # 255 is no class


# ------------------------------------------------------------------ overlay

def test_plot_overlay_colours_follow_the_classes_not_the_image(scene):
    image, truth, _ = scene
    fig = plot_overlay(image, truth, classes=[0, 1, 2, 3], fig=Figure())
    assert len(fig.axes) == 1 and len(fig.axes[0].get_images()) == 1
    assert _legend_texts(fig.axes[0]) == ["0 (not coloured)", "1", "2", "3"]
    full = fig.axes[0].get_images()[0].get_array()
    missing = truth.copy()
    missing[truth == 2] = 0  # class 2 absent from this image
    rgb = plot_overlay(image, missing, classes=[0, 1, 2, 3],
                       fig=Figure()).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(rgb[13, 3], full[13, 3])  # class 3 keeps its colour
    fig = plot_overlay(image, truth, legend=False, title="t", background=None,
                       class_names=["w", "x", "y", "z"], fig=Figure())
    assert fig.axes[0].get_legend() is None and fig.axes[0].get_title() == "t"
    rgb = plot_overlay(np.dstack([image] * 3), truth, cmap="viridis", fig=Figure())
    assert rgb.axes[0].get_images()[0].get_array().shape == (20, 24, 3)
    with pytest.raises(ValueError, match="alpha"):
        plot_overlay(image, truth, alpha=2, fig=Figure())
    with pytest.raises(ValueError, match="labels must be a label image"):
        plot_overlay(image, truth[:4], fig=Figure())
    with pytest.raises(TypeError, match="integer or bool labels"):
        plot_overlay(image, truth + 0.5, fig=Figure())


@pytest.mark.parametrize("plot", [plot_segmentation, plot_overlay])
@pytest.mark.parametrize("alpha, exc", [(5, ValueError), (-0.1, ValueError),
                                        (float("nan"), ValueError), (float("inf"), ValueError),
                                        ("0.5", TypeError), (True, TypeError)])
def test_alpha_is_checked_alike_by_every_plot(scene, plot, alpha, exc):
    image, truth, _ = scene
    fig = Figure()
    with pytest.raises(exc, match=r"alpha must be a finite number in \[0, 1\]"):
        plot(image, truth, alpha=alpha, fig=fig)
    assert not fig.axes  # refused before anything is drawn
    # the bounds themselves are fine: alpha=0 leaves the image as it is
    a0 = plot(image, truth, alpha=0, fig=Figure()).axes[-1].get_images()[0].get_array()
    a1 = plot(image, truth, alpha=1, fig=Figure()).axes[-1].get_images()[0].get_array()
    grey = (image - image.min()) / np.ptp(image)
    np.testing.assert_allclose(a0[3, 3], [grey[3, 3]] * 3, atol=1e-6)
    assert np.ptp(a1[3, 3]) > 0.1


def test_plot_overlay_with_pyplot(scene, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    image, truth, _ = scene
    fig = plot_overlay(image, truth)
    try:
        assert fig.get_layout_engine() is not None
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ history

HISTORY = (
    {"epoch": 1, "train_loss": 1.0, "lr": 1e-2, "seconds": 1.0, "val_score": 0.4},
    {"epoch": 2, "train_loss": 0.5, "lr": 1e-3, "seconds": 1.0, "val_score": 0.6},
    {"epoch": 3, "train_loss": 0.4, "lr": 1e-4, "seconds": 1.0, "val_score": 0.5},
)


class _Fitted:
    def __init__(self):
        self.scoring, self.best_epoch_, self.history_ = "dice", 2, list(HISTORY)


def test_plot_history_panels_lines_and_best_epoch():
    fig = plot_history(_Fitted(), fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "validation dice",
                                                   "learning rate"]
    loss, score, lr = fig.axes
    np.testing.assert_array_equal(loss.get_lines()[0].get_ydata(), [1.0, 0.5, 0.4])
    assert len(score.get_lines()) == 2  # the scores and the best epoch
    assert score.get_lines()[1].get_xdata()[0] == 2
    assert _legend_texts(score) == ["best: epoch 2"]
    assert lr.get_yscale() == "log"  # spans two decades

    no_val = [{k: v for k, v in r.items() if k != "val_score"} for r in HISTORY]
    fig = plot_history(no_val, fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "learning rate"]


def test_plot_history_of_a_fitted_segmenter():
    from sksegment.datasets import make_shapes

    X, y = make_shapes(n_samples=4, image_size=16, random_state=0)
    seg = CNNSegmenter(depth=1, width=2, max_epochs=2, random_state=0).fit(
        X[:3], y[:3], X_val=X[3:], y_val=y[3:])
    fig = plot_history(seg, fig=Figure())
    assert len(fig.axes) == 3
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 2
    with pytest.raises(ValueError, match="not fitted"):
        plot_history(CNNSegmenter(), fig=Figure())
    with pytest.raises(ValueError, match="empty"):
        plot_history([], fig=Figure())
    with pytest.raises(ValueError, match=r"history\[0\]"):
        plot_history([{"loss": 1}], fig=Figure())


# --------------------------------------------------------- confusion matrix

def test_plot_confusion_matrix_counts_and_normalisations(scene):
    _, truth, pred = scene
    fig = plot_confusion_matrix(truth, pred, fig=Figure())
    ax, bar = fig.axes
    assert bar.get_ylabel() == "pixels"
    cm = ax.get_images()[0].get_array()
    assert cm.shape == (4, 4) and cm.sum() == truth.size
    assert len(ax.texts) == 16
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
    rows = plot_confusion_matrix(truth, pred, normalize="true",
                                 fig=Figure()).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(rows.sum(axis=1), [1, 1, 1, 1])
    cols = plot_confusion_matrix(truth, pred, normalize="pred",
                                 fig=Figure()).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(cols.sum(axis=0), [1, 1, 1, 0])  # nothing predicted as 3
    total = plot_confusion_matrix([truth], [pred], normalize="all",
                                  fig=Figure()).axes[0].get_images()[0].get_array()
    assert total.sum() == pytest.approx(1.0)
    fig = plot_confusion_matrix(truth, pred, labels=[3, 2, 1, 0], values=False,
                                class_names={0: "bg"}, ignore_index=None, fig=Figure())
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["3", "2", "1", "bg"]
    assert len(fig.axes[0].texts) == 0
    fig = plot_confusion_matrix(truth, pred, ignore_index=3, fig=Figure())
    assert fig.axes[0].get_images()[0].get_array().shape == (3, 3)
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion_matrix(truth, pred, normalize="rows", fig=Figure())


# -------------------------------------------------------------- uncertainty

def test_plot_uncertainty_heat_map_colour_bar_and_contours(scene):
    image, truth, _ = scene
    heat = np.linspace(0, 1, truth.size).reshape(truth.shape)
    fig = plot_uncertainty(image, heat, labels=truth, fig=Figure())
    img_ax, heat_ax, bar = fig.axes
    assert heat_ax.get_title() == "uncertainty" and bar.get_ylabel() == "uncertainty"
    np.testing.assert_array_equal(heat_ax.get_images()[0].get_array(), heat)
    assert len(img_ax.collections) >= 1 and len(heat_ax.collections) >= 1  # contours
    fig = plot_uncertainty(image, heat, vmin=0, vmax=2, fig=Figure())
    assert fig.axes[1].get_images()[0].get_clim() == (0, 2)
    assert len(fig.axes[1].collections) == 0  # no labels, no contours
    with pytest.raises(ValueError, match="uncertainty must have"):
        plot_uncertainty(image, heat[:3], fig=Figure())
    with pytest.raises(ValueError, match="labels must be"):
        plot_uncertainty(image, heat, labels=truth[:3], fig=Figure())


# --------------------------------------------------- argument checks

def test_empty_image_is_a_value_error_naming_image():
    for plot, args in ((plot_segmentation, ()), (plot_overlay, (np.zeros((0, 8), int),)),
                       (plot_uncertainty, (np.zeros((0, 8)),))):
        with pytest.raises(ValueError, match="image must have at least one pixel"):
            plot(np.zeros((0, 8)), *args, fig=Figure())


@pytest.mark.parametrize("plot", [plot_segmentation, plot_overlay])
def test_bad_cmap_names_cmap(scene, plot):
    image, truth, _ = scene
    fig = Figure()
    with pytest.raises(ValueError, match="cmap must be None or the name of a matplotlib"):
        plot(image, truth, cmap="nope", fig=fig)
    with pytest.raises(TypeError, match="cmap must be None"):
        plot(image, truth, cmap=5, fig=fig)
    assert not fig.axes
    from matplotlib import colormaps

    by_name = plot(image, truth, cmap="viridis", fig=Figure()).axes[-1]
    by_map = plot(image, truth, cmap=colormaps["viridis"], fig=Figure()).axes[-1]
    np.testing.assert_array_equal(by_name.get_images()[0].get_array(),
                                  by_map.get_images()[0].get_array())


def test_class_names_and_titles_are_checked(scene):
    image, truth, pred = scene
    for bad in (5, "abcd"):
        with pytest.raises(TypeError, match="class_names must be None, a list"):
            plot_overlay(image, truth, class_names=bad, fig=Figure())
        with pytest.raises(TypeError, match="class_names must be None, a list"):
            plot_segmentation(image, truth, pred, class_names=bad, fig=Figure())
    for plot in (lambda **kw: plot_overlay(image, truth, fig=Figure(), **kw),
                 lambda **kw: plot_confusion_matrix(truth, pred, fig=Figure(), **kw)):
        with pytest.raises(ValueError, match=r"class_names must map label values .* \['bg'\]"):
            plot(class_names={"bg": 0})  # the dict turned round
    # one dict serves every image: it may name classes this image lacks
    fig = plot_overlay(image, truth, class_names={0: "bg", 1: "one", 7: "rare"}, fig=Figure())
    assert "one" in _legend_texts(fig.axes[0]) and "rare" not in _legend_texts(fig.axes[0])
    fig = plot_overlay(image, truth, classes=[0, 1, 2, 3, 7],
                       class_names={0: "bg", 7: "rare"}, fig=Figure())
    assert _legend_texts(fig.axes[0])[-1] == "rare"
    plot_confusion_matrix(truth, pred, ignore_index=3, class_names={3: "void"}, fig=Figure())
    with pytest.raises(TypeError, match="titles must be None or a sequence"):
        plot_segmentation(image, truth, pred, titles="abc", fig=Figure())
    with pytest.raises(TypeError, match="titles must be None or a sequence"):
        plot_segmentation(image, truth, pred, titles=3, fig=Figure())
    fig = plot_segmentation(image, truth, pred, titles=None, fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == ["image", "truth", "prediction"]


@pytest.mark.parametrize("plot", [plot_segmentation, plot_overlay])
def test_ignore_label_and_background_are_checked(scene, plot):
    image, truth, _ = scene
    for bad in ("x", 0.5):
        with pytest.raises(TypeError, match="ignore_label must be an integer"):
            plot(image, truth, ignore_label=bad, fig=Figure())
    with pytest.raises(TypeError, match="background must be"):
        plot(image, truth, background=0.5, fig=Figure())
    fig = plot(image, truth, background=2, ignore_label=np.int64(3), fig=Figure())
    assert "2 (not coloured)" in _legend_texts(fig.axes[-1])


def test_flags_vmin_vmax_and_history_fields_are_checked(scene):
    image, truth, pred = scene
    with pytest.raises(TypeError, match="values must be True or False"):
        plot_confusion_matrix(truth, pred, values="no", fig=Figure())
    with pytest.raises(TypeError, match="legend must be True or False"):
        plot_overlay(image, truth, legend="no", fig=Figure())
    assert plot_overlay(image, truth, legend=np.False_, fig=Figure()).axes[0].get_legend() is None
    heat = np.linspace(0, 1, truth.size).reshape(truth.shape)
    with pytest.raises(TypeError, match="vmin must be a finite number"):
        plot_uncertainty(image, heat, vmin="a", fig=Figure())
    with pytest.raises(ValueError, match="vmax must be a finite number"):
        plot_uncertainty(image, heat, vmax=float("nan"), fig=Figure())
    for vmin, vmax in ((1, 0), (0.5, 0.5)):
        with pytest.raises(ValueError, match="vmin must be less than vmax"):
            plot_uncertainty(image, heat, vmin=vmin, vmax=vmax, fig=Figure())
    assert plot_uncertainty(image, heat, vmin=0.2, fig=Figure()).axes[1].get_images()[
        0].get_clim() == (0.2, 1.0)
    record = {"epoch": 1, "train_loss": "x", "lr": 0.1, "seconds": 1}
    with pytest.raises(TypeError, match=r"history\[0\]\['train_loss'\] must be a number"):
        plot_history([record], fig=Figure())
    with pytest.raises(TypeError, match=r"history\[1\]\['lr'\] must be a number or None"):
        plot_history([dict(HISTORY[0]), dict(HISTORY[1], lr="fast")], fig=Figure())
    with pytest.raises(TypeError, match=r"history\[0\]\['epoch'\]"):
        plot_history([dict(HISTORY[0], epoch="1")], fig=Figure())
    fig = plot_history([dict(HISTORY[0], train_loss=float("nan"), val_score=None)],
                       fig=Figure())
    assert len(fig.axes) == 3


# ------------------------------------------------------------------ gallery

@pytest.mark.slow
def test_make_gallery_writes_small_figures(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "examples" / "make_gallery.py"),
                          "--epochs", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, check=False,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("history", "overlay", "confusion", "uncertainty"):
        size = (tmp_path / f"{name}.png").stat().st_size
        assert 5_000 < size < 150_000, (name, size)
    bad = subprocess.run([sys.executable, str(root / "examples" / "make_gallery.py"), "pie"],
                         capture_output=True, text=True, timeout=300, check=False,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert bad.returncode == 2 and "unknown figure" in bad.stderr
