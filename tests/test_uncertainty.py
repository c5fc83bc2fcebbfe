"""Where the model is unsure (predict_uncertainty), and prediction at the
training precision."""

import io

import joblib
import numpy as np
import pytest
import torch
from scipy import ndimage

from sksegment import CNNSegmenter, _training
from sksegment.datasets import make_shapes


@pytest.fixture(scope="module")
def trained():
    X, y = make_shapes(n_samples=48, image_size=32, random_state=0)
    seg = CNNSegmenter(width=8, max_epochs=25, learning_rate=3e-3, lr_schedule="onecycle",
                       random_state=0, device="cpu").fit(X[:40], y[:40])
    return seg, X[40:], y[40:]


def _boundary_and_interior(y):
    """Pixels within 1 pixel of a change of label, and pixels at least 3 away."""
    edges = np.zeros(y.shape, dtype=bool)
    edges[:, 1:] |= y[:, 1:] != y[:, :-1]
    edges[:, :-1] |= y[:, 1:] != y[:, :-1]
    edges[:, :, 1:] |= y[:, :, 1:] != y[:, :, :-1]
    edges[:, :, :-1] |= y[:, :, 1:] != y[:, :, :-1]
    far = np.stack([ndimage.distance_transform_edt(~e) for e in edges]) >= 3
    return edges, far


@pytest.mark.parametrize("method", ["entropy", "tta"])
def test_uncertainty_is_higher_on_boundaries_than_inside(trained, method):
    seg, X, y = trained
    u = seg.predict_uncertainty(X, method=method)
    assert u.shape == y.shape and u.dtype == np.float32
    assert u.min() >= 0 and u.max() <= 1
    boundary, interior = _boundary_and_interior(y)
    assert u[boundary].mean() > 2 * u[interior].mean()


def test_uncertainty_is_higher_on_images_unlike_the_training_data(trained):
    seg, X, _ = trained
    unlike = np.random.default_rng(0).integers(0, 256, X.shape).astype(X.dtype)  # noise
    for method in ("entropy", "tta"):
        familiar = seg.predict_uncertainty(X, method=method).mean()
        strange = seg.predict_uncertainty(unlike, method=method).mean()
        assert strange > familiar


def test_entropy_matches_the_probabilities(trained):
    seg, X, _ = trained
    p = seg.predict_proba(X).astype(np.float64)
    expected = -(p * np.log(np.clip(p, 1e-12, None))).sum(-1) / np.log(seg.n_classes_)
    np.testing.assert_allclose(seg.predict_uncertainty(X), expected, atol=1e-5)


def test_uncertainty_tiled_out_and_lists(trained, tmp_path):
    seg, X, _ = trained
    big = np.tile(X[:1], (1, 3, 3))
    whole = seg.predict_uncertainty(big)
    tiler = clone_with(seg, tiling=True, tile_size=32)
    tiled = tiler.predict_uncertainty(big)
    assert tiled.shape == (1, 96, 96)
    # the entropy of the blended tile probabilities
    p = tiler.predict_proba(big).astype(np.float64)
    expected = -(p * np.log(np.clip(p, 1e-12, None))).sum(-1) / np.log(seg.n_classes_)
    np.testing.assert_allclose(tiled, expected, atol=1e-5)
    out = np.zeros((1, 96, 96), dtype=np.float32)
    assert seg.predict_uncertainty(big, out=out) is out
    np.testing.assert_array_equal(out, whole)
    maps = seg.predict_uncertainty([X[0], X[1, :20, :24]], method="tta")
    assert [m.shape for m in maps] == [(32, 32), (20, 24)]
    with pytest.raises(TypeError, match="out"):
        seg.predict_uncertainty(big, out=np.zeros((1, 96, 96), dtype=np.int64))
    with pytest.raises(ValueError, match="method"):
        seg.predict_uncertainty(X, method="variance")


def clone_with(seg, **params):
    """A copy of the fitted segmenter (through a pickle) with other parameters."""
    buf = io.BytesIO()
    joblib.dump(seg, buf)
    buf.seek(0)
    return joblib.load(buf).set_params(**params)


# --------------------------------------------------------------------------- #
# prediction at the training precision
# --------------------------------------------------------------------------- #
def test_prediction_runs_at_the_precision_parameter(trained):
    seg, X, _ = trained
    seg = clone_with(seg, precision="bf16", tta=False)  # one forward pass to compare
    low = seg.predict_proba(X)
    assert low.dtype == np.float32
    np.testing.assert_allclose(low.sum(-1), 1.0, atol=1e-5)
    exact = seg.set_params(precision="fp32").predict_proba(X)
    assert not np.array_equal(low, exact)  # bf16 autocast was used
    assert np.abs(low - exact).max() < 0.1
    with torch.no_grad():
        x = (torch.from_numpy(X[:, None].astype(np.float32)) / 255 - seg.normalization_["shift"][0])
        logits = seg.model_(x / seg.normalization_["scale"][0])
    np.testing.assert_allclose(exact, torch.softmax(logits, 1).permute(0, 2, 3, 1).numpy(),
                               atol=1e-5)


def test_compile_is_used_at_predict_and_not_pickled(trained, monkeypatch):
    seg, X, _ = trained
    seg = clone_with(seg, compile=True)
    calls = []

    def fake_compile(model):
        def forward(x):
            calls.append(x.shape)
            return model(x)
        return forward

    monkeypatch.setattr(_training, "try_compile", fake_compile)
    expected = clone_with(seg, compile=False).predict(X)
    np.testing.assert_array_equal(seg.predict(X), expected)
    seg.predict(X[:2])
    assert len(calls) >= 2 and "_compiled_predict" in vars(seg)
    assert "_compiled_predict" not in vars(clone_with(seg))


def test_uncertainty_out_shape_error_describes_the_map():
    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    seg = CNNSegmenter(width=4, depth=2, max_epochs=1, device="cpu", random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"uncertainty map \(n, H, W\).*\(6, 16, 16\)") as info:
        seg.predict_uncertainty(X, out=np.empty((6, 16, 16, 3), np.float32))
    assert "probabilities" not in str(info.value)
