"""Training users can trust: early stopping, schedules, NaN guard, interruption,
warm start, partial_fit, checkpoints, oversampling, export."""

import copy
import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sksegment import CNNSegmenter, _arrays, _sampling, _training
from sksegment._sampling import BatchSampler
from sksegment._training import Schedule
from sksegment.datasets import make_shapes

TINY = dict(depth=2, width=4, batch_size=4, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    return make_shapes(n_samples=20, image_size=32, random_state=0)


def _params(model):
    return [p.detach().clone() for p in model.state_dict().values()]


# --------------------------------------------------------------------------- #
# early stopping and validation data
# --------------------------------------------------------------------------- #
def test_early_stopping_stops_and_restores_best(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=40, early_stopping=True, n_iter_no_change=2,
                       learning_rate=1e-2)
    seg.fit(X[:16], y[:16], X_val=X[16:], y_val=y[16:])
    assert seg.n_iter_ < 40
    assert len(seg.validation_scores_) == seg.n_iter_
    assert seg.best_score_ == max(seg.validation_scores_)
    assert seg.validation_scores_[seg.best_epoch_ - 1] == seg.best_score_
    assert seg.n_iter_ == seg.best_epoch_ + 2  # stopped n_iter_no_change epochs after the best
    # the weights in the estimator are the best epoch's, not the last one's
    # (validation predicts without test-time augmentation)
    assert seg.set_params(tta=False).score(X[16:], y[16:]) == pytest.approx(seg.best_score_)
    assert all("val_score" in h for h in seg.history_)


def test_early_stopping_internal_split_is_seeded(data):
    X, y = data
    kw = dict(TINY, max_epochs=3, early_stopping=True, validation_fraction=0.25)
    a = CNNSegmenter(**kw).fit(X, y)
    b = CNNSegmenter(**kw).fit(X, y)
    assert len(a.validation_scores_) == 3
    assert a.validation_scores_ == b.validation_scores_


def test_validation_data_without_early_stopping_is_only_recorded(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=3).fit(X[:16], y[:16], X_val=X[16:], y_val=y[16:])
    assert seg.n_iter_ == 3 and len(seg.validation_scores_) == 3
    seg.set_params(tta=False)  # validation predicts without test-time augmentation
    assert seg.score(X[16:], y[16:]) == pytest.approx(seg.validation_scores_[-1])
    # scores that fall epoch by epoch: the last weights are kept all the same,
    # those of a fit without validation data
    scored = []

    def falling(estimator, X, y):
        scored.append(1)
        return -float(len(scored))

    kept = CNNSegmenter(**TINY, max_epochs=3, scoring=falling).fit(
        X[:16], y[:16], X_val=X[16:], y_val=y[16:])
    assert kept.validation_scores_ == [-1.0, -2.0, -3.0]
    plain = CNNSegmenter(**TINY, max_epochs=3).fit(X[:16], y[:16])
    for a, b in zip(kept.model_.state_dict().values(), plain.model_.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_early_stopping_bad_inputs(data):
    X, y = data
    with pytest.raises(ValueError, match="validation_fraction"):
        CNNSegmenter(**TINY, max_epochs=1, early_stopping=True,
                     validation_fraction=0.01).fit(X[:4], y[:4])
    with pytest.raises(ValueError, match="X_val and y_val"):
        CNNSegmenter(**TINY, max_epochs=1).fit(X, y, X_val=X[:2])
    with pytest.raises(ValueError, match="validation_fraction"):
        CNNSegmenter(**TINY, validation_fraction=1.5).fit(X, y)


# --------------------------------------------------------------------------- #
# learning-rate schedules
# --------------------------------------------------------------------------- #
def test_schedules_shape():
    cos = [Schedule("cosine", 1.0, 10).lr(t) for t in range(10)]
    assert cos[0] == pytest.approx(1.0) and all(np.diff(cos) < 0)
    one = [Schedule("onecycle", 1.0, 10).lr(t) for t in range(10)]
    peak = int(np.argmax(one))
    assert 0 < peak < 9 and one[0] < one[peak] and one[-1] < one[peak]
    warm = [Schedule("constant", 1.0, 10, warmup_epochs=3).lr(t) for t in range(5)]
    assert warm[0] < warm[1] < warm[2] < warm[3] == warm[4] == 1.0
    plateau = Schedule("plateau", 1.0, 10, patience=1)
    for score in (0.5, 0.5, 0.5):
        plateau.end_epoch(score)
    assert plateau.lr(3) == 0.5
    plateau = Schedule("plateau", 1.0, 10, patience=5)  # halved after more than 5 bad epochs
    rates = []
    for score in (0.5,) * 7:
        plateau.end_epoch(score)
        rates.append(plateau.lr(1))
    assert rates == [1.0] * 6 + [0.5]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle", "plateau"])
def test_schedule_lr_in_history(schedule, data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=4, lr_schedule=schedule, warmup_epochs=1,
                       learning_rate=1e-2).fit(X[:8], y[:8])
    lrs = [h["lr"] for h in seg.history_]
    assert len(lrs) == 4 and all(0 < lr <= 1e-2 for lr in lrs)
    assert lrs[0] < lrs[1]  # warm-up
    if schedule == "cosine":
        assert lrs[3] < lrs[1]


# --------------------------------------------------------------------------- #
# NaN guard
# --------------------------------------------------------------------------- #
class FlakyLoss(torch.nn.Module):
    """Cross entropy that turns NaN on chosen calls."""

    def __init__(self, bad_calls):
        super().__init__()
        self.bad_calls, self.calls = set(bad_calls), 0

    def forward(self, logits, target):
        self.calls += 1
        loss = F.cross_entropy(logits, target, ignore_index=-100)
        return loss * float("nan") if self.calls in self.bad_calls else loss


def test_nonfinite_step_never_reaches_weights(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=2, loss=FlakyLoss({2}),  # 2 steps per epoch
                       lr_schedule="constant")
    with pytest.warns(RuntimeWarning, match="Non-finite loss"):
        seg.fit(X[:8], y[:8])
    assert all(torch.isfinite(p).all() for p in seg.model_.state_dict().values()
               if p.is_floating_point())
    assert all(math.isfinite(v) for v in seg.loss_curve_)
    # the learning rate was halved after the event
    assert seg.history_[1]["lr"] == pytest.approx(seg.learning_rate / 2)
    # the epoch's start was restored: step 1's update undone by the bad step
    # 2 leaves the weights where two bad steps (no update at all) leave them
    fits = []
    for bad in ({2}, {1, 2}):
        with pytest.warns(RuntimeWarning, match="Non-finite loss"):
            fits.append(CNNSegmenter(**TINY, max_epochs=1, loss=FlakyLoss(bad),
                                     lr_schedule="constant").fit(X[:8], y[:8]))
    one_bad, both_bad = fits
    for a, b in zip(one_bad.model_.state_dict().values(), both_bad.model_.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_persistent_nonfinite_raises_with_advice(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=3, loss=FlakyLoss(range(1, 1000)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="learning_rate.*max_grad_norm"):
            seg.fit(X[:8], y[:8])


def test_huge_learning_rate_is_caught(data):
    """A learning rate of 1e20 makes the weights overflow on the second step:
    the fit warns and ends with finite weights and losses (the restore of the
    epoch's start and the halving: test_nonfinite_step_never_reaches_weights)."""
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=3, learning_rate=1e20, optimizer="sgd")
    with pytest.warns(RuntimeWarning, match="Non-finite loss") as caught:
        seg.fit(X[:8], y[:8])
    assert sum("Non-finite" in str(w.message) for w in caught) >= 1
    assert all(torch.isfinite(p).all() for p in seg.model_.parameters())
    assert all(math.isfinite(v) for v in seg.loss_curve_)


def test_max_grad_norm_clips(data):
    """With SGD and a tiny gradient-norm cap the weights barely move per epoch."""
    X, y = data

    def drift(**kw):
        one = CNNSegmenter(**TINY, optimizer="sgd", max_epochs=1, **kw).fit(X[:8], y[:8])
        two = CNNSegmenter(**TINY, optimizer="sgd", max_epochs=2, **kw).fit(X[:8], y[:8])
        return sum(float((p - q).detach().abs().max()) for p, q in
                   zip(one.model_.parameters(), two.model_.parameters()))

    clipped, free = drift(max_grad_norm=1e-6), drift()
    assert clipped < 1e-6 < free


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_are_fused_and_make_the_plain_update(name):
    """The optimizers use torch's fused kernels where they apply, and the
    weights follow the same path as with torch's per-tensor update."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Conv2d(4, 3, 1))
    twin = copy.deepcopy(net)
    start = [p.detach().clone() for p in net.parameters()]
    fused = _training.make_optimizer(name, net.parameters(), 1e-2, 1e-3)
    plain = _training.make_optimizer(name, twin.parameters(), 1e-2, 1e-3)
    for group in plain.param_groups:
        group["fused"] = False
    assert fused.param_groups[0]["fused"] is True
    x = torch.randn(2, 2, 8, 8)
    for _ in range(3):
        for model, opt in ((net, fused), (twin, plain)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert all(not torch.equal(p, q) for p, q in zip(net.parameters(), start))


def test_optimizer_falls_back_where_fused_kernels_do_not_apply():
    """A network holding a parameter that is not floating point (a frozen
    integer table) trains with the per-tensor update."""
    net = torch.nn.Conv2d(1, 2, 1)
    net.table = torch.nn.Parameter(torch.arange(3), requires_grad=False)
    opt = _training.make_optimizer("adam", net.parameters(), 1e-2, 0.0)
    assert not opt.param_groups[0]["fused"]
    before = net.weight.detach().clone()
    net(torch.randn(1, 1, 4, 4)).sum().backward()
    opt.step()
    assert not torch.equal(before, net.weight)


# --------------------------------------------------------------------------- #
# interruption, warm start, partial_fit
# --------------------------------------------------------------------------- #
class InterruptingLoss(torch.nn.Module):
    def __init__(self, at_call):
        super().__init__()
        self.at_call, self.calls = at_call, 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls == self.at_call:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, target, ignore_index=-100)


def test_keyboard_interrupt_leaves_a_fitted_estimator(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=10, loss=InterruptingLoss(at_call=6))  # 2 steps/epoch
    with pytest.warns(RuntimeWarning, match="interrupted"):
        seg.fit(X[:8], y[:8])
    assert seg.interrupted_ and seg.n_iter_ == 2 and len(seg.history_) == 2
    assert seg.predict(X[8:10]).shape == (2, 32, 32)


def test_warm_start_continues(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=2, warm_start=True).fit(X[:8], y[:8])
    w1 = _params(seg.model_)
    seg.fit(X[:8], y[:8])
    assert seg.n_iter_ == 4 and len(seg.loss_curve_) == 4
    assert any(not torch.equal(a, b) for a, b in zip(w1, _params(seg.model_)))
    cold = CNNSegmenter(**TINY, max_epochs=2).fit(X[:8], y[:8])
    cold.fit(X[:8], y[:8])
    assert cold.n_iter_ == 2  # without warm_start fit starts over


def test_partial_fit(data):
    X, y = data
    seg = CNNSegmenter(**TINY)
    binary = (y[:8] > 0).astype(np.uint8)
    seg.partial_fit(X[:8], binary * 0 + (binary & 0), classes=[0, 1, 2])
    assert seg.n_iter_ == 1 and seg.classes_.tolist() == [0, 1, 2]
    seg.partial_fit(X[:8], y[:8])
    assert seg.n_iter_ == 2
    with pytest.raises(ValueError, match="not seen"):
        seg.partial_fit(X[:8], y[:8] + 5)


def test_continued_fits_draw_new_batches(data, monkeypatch):
    """partial_fit and warm starts go on drawing from the segmenter's random
    state: each call sees other patches in another order, not a replay of the
    first epoch; a fresh fit with the same seed replays it exactly."""
    from sksegment import _sampling

    first_batches = []
    original = _sampling.BatchSampler.epoch

    def recording_epoch(self, rng, indices=None):
        for i, batch in enumerate(original(self, rng, indices)):
            if i == 0:
                first_batches.append(batch[0].copy())
            yield batch

    monkeypatch.setattr(_sampling.BatchSampler, "epoch", recording_epoch)
    X, y = data
    seg = CNNSegmenter(**TINY, patch_size=16)
    for _ in range(3):
        seg.partial_fit(X[:8], y[:8], classes=[0, 1, 2])
    assert len(first_batches) == 3
    assert not np.array_equal(first_batches[0], first_batches[1])
    assert not np.array_equal(first_batches[1], first_batches[2])
    CNNSegmenter(**TINY, patch_size=16).partial_fit(X[:8], y[:8], classes=[0, 1, 2])
    np.testing.assert_array_equal(first_batches[3], first_batches[0])

    first_batches.clear()
    warm = CNNSegmenter(**TINY, patch_size=16, max_epochs=1, warm_start=True)
    warm.fit(X[:8], y[:8]).fit(X[:8], y[:8])
    assert not np.array_equal(first_batches[0], first_batches[1])


def test_partial_fit_needs_classes_for_single_class_first_batch(data):
    X, y = data
    with pytest.raises(ValueError, match="single class"):
        CNNSegmenter(**TINY).partial_fit(X[:4], np.zeros_like(y[:4]))


# --------------------------------------------------------------------------- #
# checkpoints: a killed fit resumes to the same result
# --------------------------------------------------------------------------- #
_CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np, torch, torch.nn.functional as F
    sys.path.insert(0, {root!r})
    from sksegment import CNNSegmenter
    from sksegment.datasets import make_shapes

    class CrashingLoss(torch.nn.Module):
        calls = 0
        def forward(self, logits, target):
            CrashingLoss.calls += 1
            if CrashingLoss.calls == {crash_at}:
                os._exit(3)  # a hard crash: no cleanup, no exception handling
            return F.cross_entropy(logits, target, ignore_index=-100)

    X, y = make_shapes(n_samples=8, image_size=32, random_state=0)
    CNNSegmenter(depth=2, width=4, batch_size=4, random_state=0, max_epochs=4,
                 loss=CrashingLoss(), checkpoint_dir={ckpt!r}).fit(X, y)
""")


class PlainCE(torch.nn.Module):
    def forward(self, logits, target):
        return F.cross_entropy(logits, target, ignore_index=-100)


class CountingCE(PlainCE):
    """PlainCE that counts its calls on the class (fit trains a copy of it)."""

    calls = 0

    def forward(self, logits, target):
        CountingCE.calls += 1
        return super().forward(logits, target)


def test_checkpoint_resume_after_crash_matches_uninterrupted(tmp_path):
    X, y = make_shapes(n_samples=8, image_size=32, random_state=0)
    kw = dict(depth=2, width=4, batch_size=4, random_state=0, max_epochs=4, loss=PlainCE())
    ckpt = tmp_path / "ckpt"
    root = str(Path(__file__).resolve().parents[1])
    script = _CRASH_SCRIPT.format(root=root, crash_at=6, ckpt=str(ckpt))  # mid epoch 3
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 3, proc.stderr
    assert (ckpt / "checkpoint.pt").exists()
    assert not list(ckpt.glob("*.tmp-*"))  # no half-written file left behind
    CountingCE.calls = 0
    resumed = CNNSegmenter(**{**kw, "loss": CountingCE()}, checkpoint_dir=str(ckpt),
                           resume=True).fit(X, y)
    assert CountingCE.calls == 4  # epochs 3 and 4 only (2 steps each), not 1 to 4
    straight = CNNSegmenter(**kw).fit(X, y)
    assert resumed.n_iter_ == straight.n_iter_ == 4
    np.testing.assert_allclose(resumed.loss_curve_, straight.loss_curve_, rtol=1e-6)
    for a, b in zip(resumed.model_.state_dict().values(), straight.model_.state_dict().values()):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- #
# foreground oversampling
# --------------------------------------------------------------------------- #
def test_foreground_oversampling_centres_patches_on_objects():
    rng = np.random.RandomState(0)
    masks = np.zeros((10, 128, 128), dtype=np.uint8)
    masks[:, 60:68, 60:68] = 1  # a small object in a large background
    images = masks * 200
    def share(fraction):
        s = BatchSampler(images, masks, batch_size=10, patch_size=16,
                         foreground_fraction=fraction, background=0)
        hits = [(y == 1).any() for _ in range(20) for y in s.batch(np.arange(10), rng)[1]]
        return np.mean(hits)
    assert share(1.0) > 0.6
    assert share(0.0) < 0.2


@pytest.mark.parametrize("band_rows", [None, 7])
def test_foreground_oversampling_draws_each_class_alike(band_rows, monkeypatch):
    """The class is drawn before the pixel: a class of a few pixels is centred
    about as often as one that covers most of the foreground (the masks
    scanned whole, or in bands of 7 rows)."""
    if band_rows is not None:
        monkeypatch.setattr(_arrays, "SCAN_VALUES", band_rows * 96)
    masks = np.zeros((4, 96, 96), dtype=np.int64)
    masks[:, 10:70, 10:70] = 1  # 3600 pixels of class 1 (more than are kept)
    masks[:, 85:87, 85:87] = 2  # 4 pixels of class 2
    images = masks.astype(np.uint8) * 100
    sampler = BatchSampler(images, masks, batch_size=4, patch_size=8,
                           foreground_fraction=1.0, background=0)
    rng = np.random.RandomState(0)
    centres = [masks[i][sampler._foreground_pixel(i, rng)] for i in range(4) for _ in range(400)]
    share = np.bincount(centres, minlength=3) / len(centres)
    assert share[0] == 0
    assert 0.4 < share[2] < 0.6
    # the kept positions are of their class, the budget shared by the classes
    kept = sampler._foreground[0]
    assert [masks[0].ravel()[k].min() for k in kept] == [1, 2]
    assert [masks[0].ravel()[k].max() for k in kept] == [1, 2]
    assert [k.size for k in kept] == [_sampling._MAX_FOREGROUND_SAMPLES // 2, 4]
    assert len(np.unique(kept[0])) == kept[0].size


def test_foreground_scan_keeps_a_bounded_number_of_positions():
    """However many classes an image holds, it keeps the shared budget of
    positions, or the minimum per class where that is larger."""
    labels = np.arange(128 * 128).reshape(128, 128) % 200  # 200 classes, 81-82 pixels each
    sampler = BatchSampler(labels[None].astype(np.uint8), labels[None], batch_size=1,
                           patch_size=8, foreground_fraction=1.0, background=0)
    kept = sampler._scan_foreground(0, np.random.RandomState(0))
    assert len(kept) == 199
    assert {k.size for k in kept} == {_sampling._MIN_CLASS_SAMPLES}
    few = BatchSampler(labels[None].astype(np.uint8), labels[None] % 3, batch_size=1,
                       patch_size=8, foreground_fraction=1.0, background=0)
    kept = few._scan_foreground(0, np.random.RandomState(0))
    assert sum(k.size for k in kept) <= _sampling._MAX_FOREGROUND_SAMPLES
    assert [k.size for k in kept] == [_sampling._MAX_FOREGROUND_SAMPLES // 2] * 2


# --------------------------------------------------------------------------- #
# precision, compile, export
# --------------------------------------------------------------------------- #
def test_precision_on_cpu(data):
    X, y = data
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        CNNSegmenter(**TINY, max_epochs=1, precision="fp16").fit(X[:4], y[:4])
    seg = CNNSegmenter(**TINY, max_epochs=1, precision="bf16").fit(X[:4], y[:4])
    assert math.isfinite(seg.loss_curve_[0])
    assert seg.precision_ == "bf16"


def test_auto_precision_on_gpus_follows_the_fitted_gpus_compute_capability(monkeypatch):
    """precision="auto" is bf16 on Ampere and later, fp16 with a gradient
    scaler before (where bf16 is only emulated), judged on the GPU fitted on,
    not the current one (checked on CPU with the device properties faked)."""
    majors = {0: 8, 1: 7}  # an A100 and a V100

    class Props:
        def __init__(self, index):
            self.major = majors[index]

    monkeypatch.setattr(torch.cuda, "get_device_properties", Props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation counts
    assert _training.resolve_precision("auto", torch.device("cuda:0")) == (torch.bfloat16, False)
    assert _training.resolve_precision("auto", torch.device("cuda:1")) == (torch.float16, True)
    assert _training.resolve_precision("auto", torch.device("cuda")) == (torch.bfloat16, False)
    assert _training.inference_dtype("auto", torch.device("cuda:1")) is torch.float16


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_follows_native_bf16(native, data, monkeypatch):
    """precision="auto" trains and predicts in bf16 on CPUs that compute in
    bf16 natively, in fp32 on others; "auto" stays in get_params."""
    X, y = data
    monkeypatch.setattr(_training, "cpu_has_bf16", lambda: native)
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if native else None
    assert _training.resolve_precision("auto", cpu) == (expected, False)
    assert _training.inference_dtype("auto", cpu) is expected
    assert _training.resolve_precision("fp32", cpu) == (None, False)
    assert _training.inference_dtype("fp32", cpu) is None

    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X[:4], y[:4])
    assert seg.precision_ == ("bf16" if native else "fp32")
    assert seg.get_params()["precision"] == "auto"
    seen = []
    model = seg.model_
    hook = model.register_forward_hook(
        lambda module, args, out: seen.append(torch.get_autocast_dtype("cpu")
                                              if torch.is_autocast_enabled("cpu") else None))
    try:
        seg.predict(X[:2])
    finally:
        hook.remove()
    assert seen and all(d is expected for d in seen)


@pytest.mark.parametrize("fmt", ["torch.export", "torchscript"])
def test_export_runs_without_sksegment(fmt, data, tmp_path):
    import json

    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X[:8], y[:8])
    path = seg.export(tmp_path / "net.pt", format=fmt)
    meta = json.loads(Path(path + ".json").read_text())
    m = meta["pad_multiple"]
    assert meta["classes"] == seg.classes_.tolist() and m == 4
    assert meta["padding"] == "reflect"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        net = (torch.export.load(path).module() if fmt == "torch.export"
               else torch.jit.load(path))
    # the file computes in float32, as predict does with precision="fp32", and
    # has no test-time augmentation
    seg.set_params(precision="fp32", tta=False)
    norm = meta["normalization"]
    # sizes that need padding (mirrored; the border repeated where the image
    # is no larger than the padding), sizes equal to pad_multiple, and images
    # of one pad_multiple cell (W padded by one more, min_cells)
    assert meta["min_cells"] == 2
    for h, w in [(32, 32), (30, 29), (2, 29), (4, 32), (3, 3), (4, 4)]:
        raw = X[8:10, :h, :w]
        pad = [(0, 0), (0, -h % m), (0, -w % m)]
        rows, cols = (h + pad[1][1]) // m, (w + pad[2][1]) // m
        if rows * cols < meta["min_cells"]:
            pad[2] = (0, -(-meta["min_cells"] // rows) * m - w)
        modes = [meta["padding"] if p[1] < n else "edge" for p, n in zip(pad[1:], (h, w))]
        x = np.pad(raw, [pad[0], pad[1], (0, 0)], mode=modes[0])
        x = np.pad(x, [pad[0], (0, 0), pad[2]], mode=modes[1])
        x = torch.from_numpy(x[:, None].astype(np.float32) * meta["input_scale"])
        x = (x - norm["shift"][0]) / norm["scale"][0]
        proba = torch.softmax(net(x), 1).permute(0, 2, 3, 1).detach().numpy()[:, :h, :w]
        np.testing.assert_allclose(proba, seg.predict_proba(raw), atol=1e-5, err_msg=(h, w))
    with pytest.raises(ValueError, match="format"):
        seg.export(tmp_path / "x", format="pickle")
    with pytest.raises(TypeError, match="path must be a str"):
        seg.export(None)
    with pytest.raises(ValueError, match="path must name a file, not a folder"):
        seg.export(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        seg.export(tmp_path / "absent" / "net.pt")
    assert not (Path.cwd() / "None").exists()


def test_a_failed_export_keeps_the_earlier_files(data, tmp_path, monkeypatch):
    import json

    import sksegment._export as export

    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X[:8], y[:8])
    path = seg.export(tmp_path / "net.pt", format="torchscript")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(obj, fh, **kwargs):
        fh.write('{"classes": [')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.json, "dump", disk_full)
    other = CNNSegmenter(**{**TINY, "width": 2}, max_epochs=1).fit(X[:8], y[:8])
    with pytest.raises(OSError, match="No space left"):
        other.export(path, format="torchscript")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing left over
    assert json.loads(Path(path + ".json").read_text())["classes"] == seg.classes_.tolist()


def test_export_records_the_standardiser_of_augment(data, tmp_path):
    import json

    from sksegment.augmentation import IntensityStandardizer, RandomFlip

    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1, precision="fp32", tta=False,
                       augment=[RandomFlip(), IntensityStandardizer()]).fit(X[:8], y[:8])
    path = seg.export(tmp_path / "net.pt", format="torchscript")
    meta = json.loads(Path(path + ".json").read_text())
    [step] = meta["preprocessing"]
    assert step["kind"] == "standardize" and len(step["mean"]) == len(step["scale"]) == 1
    x = X[8:10, None].astype(np.float32) * meta["input_scale"]
    x = (x - step["mean"][0]) / step["scale"][0]
    norm = meta["normalization"]
    x = torch.from_numpy(((x - norm["shift"][0]) / norm["scale"][0]).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        net = torch.jit.load(path)
    proba = torch.softmax(net(x), 1).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(proba, seg.predict_proba(X[8:10]), atol=1e-5)


def test_onnx_export_runs_without_torch(data, tmp_path):
    import json

    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # torch.onnx.export's exporter needs it
    from onnx.reference import ReferenceEvaluator

    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X[:8], y[:8])
    path = seg.export(tmp_path / "net.onnx", format="onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model)
    # another batch size and an image size that is not the export example's
    x = (X[8:11, :20, :28, None].astype(np.float32) / 255).transpose(0, 3, 1, 2)
    norm = json.loads(Path(path + ".json").read_text())["normalization"]
    x = ((x - norm["shift"][0]) / norm["scale"][0]).astype(np.float32)
    logits = ReferenceEvaluator(model).run(None, {"image": x})[0]
    assert logits.shape == (3, 3, 20, 28)
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.testing.assert_allclose(proba.transpose(0, 2, 3, 1), seg.predict_proba(X[8:11, :20, :28]),
                               atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_amp_and_cpu_reload(data, tmp_path):
    import joblib

    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=2, device="cuda").fit(X[:8], y[:8])
    assert seg.device_.type == "cuda"
    assert next(seg.model_.parameters()).is_cuda
    joblib.dump(seg, tmp_path / "seg.joblib")
    code = ("import joblib, torch, numpy as np; "
            f"s = joblib.load({str(tmp_path / 'seg.joblib')!r}); "
            "print(next(s.model_.parameters()).device)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert "cpu" in out.stdout, out.stderr
    for precision in ("bf16", "fp16"):
        s = CNNSegmenter(**TINY, max_epochs=1, device="cuda", precision=precision).fit(X, y)
        assert math.isfinite(s.loss_curve_[0])
    before = torch.cuda.memory_reserved()
    CNNSegmenter(**TINY, max_epochs=1, device="cuda").fit(X, y)
    assert torch.cuda.memory_reserved() <= before + 64 * 2**20


def test_an_epoch_of_patches_covers_each_image_once():
    masks = np.zeros((3, 64, 48), dtype=np.uint8)
    s = BatchSampler(masks[..., None], masks, batch_size=5, patch_size=16)
    assert s.patches_per_image(0) == 12
    batches = list(s.epoch(np.random.RandomState(0)))
    assert sum(len(b[1]) for b in batches) == 36 and len(batches) == s.n_batches() == 8
    assert all(b[1].shape[1:] == (16, 16) for b in batches)
    whole = BatchSampler(masks[..., None], masks, batch_size=2)
    assert whole.n_batches() == 2


def test_compile_failure_falls_back_to_eager(data, monkeypatch):
    """Where torch.compile fails (at its first call, as compilers do), fit
    warns and trains eagerly, to the same result as compile=False."""
    X, y = data

    def broken_compile(model, *args, **kwargs):
        def compiled(x):
            raise RuntimeError("no C++ compiler")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        compiled = CNNSegmenter(**TINY, max_epochs=2, compile=True).fit(X[:8], y[:8])
    eager = CNNSegmenter(**TINY, max_epochs=2).fit(X[:8], y[:8])
    assert compiled.loss_curve_ == eager.loss_curve_
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):  # predict compiles anew
        pred = compiled.predict(X[8:10])
    np.testing.assert_array_equal(pred, eager.predict(X[8:10]))
