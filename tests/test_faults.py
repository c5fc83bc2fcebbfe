"""A segmenter that never lies about its state: pickling leaves it alone, a fit
that fails leaves it as it was, checkpoints are safe and their errors name the
file, and what can be checked is checked before training starts."""

import copy
import os
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sksegment import CheckpointError, CNNSegmenter
from sksegment._training import (
    NonFiniteLossError,
    Trainer,
    _clone_state,
    _restore,
    unpickled_device,
)
from sksegment.datasets import make_shapes

TINY = dict(depth=2, width=4, batch_size=4, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    return make_shapes(n_samples=8, image_size=32, n_classes=2, random_state=0)


def _weights(seg):
    return {k: v.detach().clone() for k, v in seg.model_.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class CountingLoss(torch.nn.Module):
    """Cross entropy that counts its calls and can fail at a given call."""

    def __init__(self, fail_at=None, nan_at=()):
        super().__init__()
        self.calls = 0
        self.fail_at, self.nan_at = fail_at, tuple(nan_at)

    def forward(self, logits, target):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("loss failed on purpose")
        loss = F.cross_entropy(logits, target, ignore_index=-100)
        return loss * float("nan") if self.calls in self.nan_at else loss


# --------------------------------------------------------------------------- #
# pickling never changes the live estimator; a pickle continues training
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("save", ["joblib", "deepcopy", "pickle"])
def test_pickling_leaves_the_estimator_unchanged(data, tmp_path, save):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=2, warm_start=True).fit(X, y)
    before = dict(vars(seg))
    if save == "joblib":
        joblib.dump(seg, tmp_path / "seg.joblib")
    elif save == "deepcopy":
        copy.deepcopy(seg)
    else:
        pickle.dumps(seg)
    assert vars(seg).keys() == before.keys()
    assert all(vars(seg)[k] is before[k] for k in before)
    seg.fit(X, y)  # warm start continues
    assert seg.n_iter_ == 4


def test_unpickled_copy_continues_training_with_its_history(data, tmp_path):
    X, y = data
    original = CNNSegmenter(**TINY, max_epochs=2, warm_start=True).fit(X, y)
    joblib.dump(original, tmp_path / "seg.joblib")
    loaded = joblib.load(tmp_path / "seg.joblib")
    assert loaded._saved_versions["torch"] == torch.__version__
    original.fit(X, y)
    loaded.fit(X, y)
    assert loaded.n_iter_ == original.n_iter_ == 4
    assert [h["epoch"] for h in loaded.history_] == [1, 2, 3, 4]
    assert loaded.loss_curve_ == original.loss_curve_
    assert _same_weights(_weights(loaded), _weights(original))


def test_partial_fit_continues_after_a_round_trip(data):
    X, y = data
    seg = CNNSegmenter(**TINY).partial_fit(X, y)
    back = pickle.loads(pickle.dumps(seg))
    seg.partial_fit(X, y)
    back.partial_fit(X, y)
    assert back.n_iter_ == seg.n_iter_ == 2
    assert _same_weights(_weights(back), _weights(seg))


def test_without_warm_start_no_optimizer_state_is_kept(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X, y)
    assert seg._train_state is None
    assert all(p.grad is None for p in seg.model_.parameters())


# --------------------------------------------------------------------------- #
# a fit that raises leaves the estimator as it was
# --------------------------------------------------------------------------- #
def test_divergent_first_fit_leaves_estimator_unfitted(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=20, learning_rate=1e30)
    params = seg.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteLossError):
            seg.fit(X, y)
    assert not hasattr(seg, "model_") and not hasattr(seg, "classes_")
    assert seg.get_params() == params
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        seg.predict_proba(X)


@pytest.mark.parametrize("warm_start", [False, True])
def test_failed_refit_keeps_the_previous_fit(data, warm_start):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=2, warm_start=warm_start).fit(X, y)
    weights, history, proba = _weights(seg), list(seg.history_), seg.predict_proba(X)
    state = dict(vars(seg))
    seg.set_params(loss=CountingLoss(fail_at=3))  # fails in the middle of epoch 2
    with pytest.raises(RuntimeError, match="on purpose"):
        seg.fit(X, y)
    assert _same_weights(_weights(seg), weights)
    assert seg.history_ == history
    assert seg.n_iter_ == 2
    assert {k for k in vars(seg)} == set(state)
    np.testing.assert_array_equal(seg.predict_proba(X), proba)


class _Interrupting(torch.nn.Module):
    def __init__(self, at_call):
        super().__init__()
        self.calls, self.at_call = 0, at_call

    def forward(self, logits, target):
        self.calls += 1
        if self.calls == self.at_call:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, target, ignore_index=-100)


def test_an_epoch_cut_by_an_interrupt_leaves_no_trace(data):
    # Ctrl-C in the middle of an epoch (after one of its two steps) or at its
    # first step: the weights, the optimizer state and the random draws go
    # back to the epoch's start, so the next call continues alike
    X, y = data
    kw = dict(TINY, loss="cross_entropy", augment=None, tta=False)
    fits = []
    for at_call in (2, 1):
        seg = CNNSegmenter(**kw).partial_fit(X, y)
        seg.set_params(loss=_Interrupting(at_call))
        with pytest.warns(RuntimeWarning, match="interrupted after 1 complete epoch"):
            seg.partial_fit(X, y)
        assert seg.interrupted_ and seg.n_iter_ == 1
        fits.append(seg.set_params(loss="cross_entropy").partial_fit(X, y))
    assert fits[0].n_iter_ == fits[1].n_iter_ == 2
    assert _same_weights(_weights(fits[0]), _weights(fits[1]))


def test_a_failed_fit_gives_back_the_draws_of_a_random_state(data):
    X, y = data
    rs = np.random.RandomState(0)
    seg = CNNSegmenter(**{**TINY, "random_state": rs}, max_epochs=1)
    with pytest.raises(ValueError, match="X_val"):
        seg.fit(X, y, X_val=X[:2, ..., None].repeat(3, -1), y_val=y[:2])
    with pytest.raises(RuntimeError, match="on purpose"):
        seg.set_params(loss=CountingLoss(fail_at=2)).fit(X, y)
    assert rs.randint(1000) == np.random.RandomState(0).randint(1000)


def test_nan_guard_restores_batch_norm_statistics(data):
    X, y = data
    loss = CountingLoss(nan_at=(3,))
    with pytest.warns(RuntimeWarning, match="Non-finite"):
        seg = CNNSegmenter(**TINY, max_epochs=2, loss=loss, norm="batch").fit(X, y)
    buffers = [b for b in seg.model_.buffers() if b.is_floating_point()]
    assert buffers and all(torch.isfinite(b).all() for b in buffers)
    assert np.isfinite(seg.predict_proba(X)).all()


def test_nan_guard_restore_point_is_kept_by_value():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2))
    trainer = Trainer(model, lambda lg, t: F.cross_entropy(lg, t), device=torch.device("cpu"))
    x, y = torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8))
    trainer.step(x, y)  # Adam has moments now
    snapshot = (_clone_state(model), copy.deepcopy(trainer.optimizer.state_dict()))
    saved = copy.deepcopy(snapshot[1]["state"])
    for _ in range(2):  # two restores in one epoch, steps in between
        _restore(trainer, snapshot)
        trainer.step(x, y)
    model[1].running_var.fill_(float("nan"))  # what a non-finite forward leaves behind
    _restore(trainer, snapshot)
    assert torch.equal(model[1].running_var, snapshot[0]["1.running_var"])
    live = trainer.optimizer.state_dict()["state"]
    for k in saved:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(live[k][name], saved[k][name])
            assert torch.equal(snapshot[1]["state"][k][name], saved[k][name])


# --------------------------------------------------------------------------- #
# checkpoints
# --------------------------------------------------------------------------- #
def _checkpointed(data, tmp_path, **kw):
    X, y = data
    folder = tmp_path / "ckpt"
    params = dict(TINY, max_epochs=1, checkpoint_dir=str(folder))
    params.update(kw)
    CNNSegmenter(**params).fit(X, y)
    return folder / "checkpoint.pt"


def test_checkpoint_is_plain_data_on_the_cpu(data, tmp_path):
    path = _checkpointed(data, tmp_path)
    state = torch.load(path, weights_only=True)  # no arbitrary objects inside

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from tensors(v)

    assert all(t.device.type == "cpu" for t in tensors(state))
    assert "generator" not in state  # the NumPy state alone reseeds each epoch


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_checkpoint_does_not_run_code(data, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    marker = tmp_path / "owned"
    torch.save({"format": 1, "meta": {}, "payload": _Planted(str(marker))},
               folder / "checkpoint.pt")
    seg = CNNSegmenter(**TINY, max_epochs=1, checkpoint_dir=str(folder), resume=True)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        seg.fit(*data)
    assert not marker.exists()
    assert not hasattr(seg, "model_")


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "four bytes"])
def test_damaged_checkpoint_names_the_file(data, tmp_path, damage):
    path = _checkpointed(data, tmp_path)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "random":
        path.write_bytes(np.random.RandomState(0).bytes(2000))
    elif damage == "four bytes":  # torch.load's legacy reader: a struct.error
        path.write_bytes(b"junk")
    else:
        path.write_bytes(b"")
    seg = CNNSegmenter(**TINY, max_epochs=2, checkpoint_dir=str(path.parent), resume=True)
    with pytest.raises(CheckpointError) as info:
        seg.fit(*data)
    message = str(info.value)
    assert str(path) in message and "resume=False" in message and "Delete" in message
    assert "\n" not in message


@pytest.mark.parametrize("change", [dict(width=8), dict(depth=3), dict(model="fcn")])
def test_checkpoint_of_another_network_names_the_file(data, tmp_path, change):
    path = _checkpointed(data, tmp_path)
    seg = CNNSegmenter(**dict(TINY, **change), max_epochs=2, checkpoint_dir=str(path.parent),
                       resume=True)
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
        seg.fit(*data)


def test_checkpoint_of_other_classes_names_the_file(data, tmp_path):
    X, y = data
    path = _checkpointed(data, tmp_path)
    seg = CNNSegmenter(**TINY, max_epochs=2, checkpoint_dir=str(path.parent), resume=True)
    with pytest.raises(CheckpointError, match="classes"):
        seg.fit(X, (y + 5).astype(y.dtype))


def test_unwritable_checkpoint_dir_fails_before_training(data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    loss = CountingLoss()
    seg = CNNSegmenter(**TINY, max_epochs=1, loss=loss, checkpoint_dir=str(blocker / "sub"))
    with pytest.raises(ValueError, match="checkpoint_dir=.*a-file"):
        seg.fit(*data)
    assert loss.calls == 0 and not hasattr(seg, "model_")


@pytest.mark.parametrize("first, second", [("adam", "sgd"), ("adam", "adamw"),
                                           ("sgd", "adam")])
def test_checkpoint_of_another_optimizer_names_the_file(data, tmp_path, first, second):
    path = _checkpointed(data, tmp_path, optimizer=first)
    loss = CountingLoss()
    seg = CNNSegmenter(**TINY, optimizer=second, loss=loss, max_epochs=2,
                       checkpoint_dir=str(path.parent), resume=True)
    with pytest.raises(CheckpointError) as info:
        seg.fit(*data)
    message = str(info.value)
    names = {"adam": "'Adam'", "adamw": "'AdamW'", "sgd": "'SGD(momentum=0.9"}
    assert str(path) in message and "optimizer" in message
    assert names[first] in message and names[second] in message
    assert loss.calls == 0 and not hasattr(seg, "model_")


def test_optimizer_state_that_does_not_load_names_the_file(data, tmp_path):
    path = _checkpointed(data, tmp_path)
    state = torch.load(path, weights_only=True)
    state["trainer"]["optimizer"]["state"] = [1, 2]  # no .items(): AttributeError in torch
    torch.save(state, path)
    seg = CNNSegmenter(**TINY, max_epochs=2, checkpoint_dir=str(path.parent), resume=True)
    with pytest.raises(CheckpointError, match="optimizer") as info:
        seg.fit(*data)
    assert str(path) in str(info.value) and not hasattr(seg, "model_")


def test_directory_in_place_of_the_checkpoint_fails_before_training(data, tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "checkpoint.pt").mkdir(parents=True)
    loss = CountingLoss()
    seg = CNNSegmenter(**TINY, max_epochs=1, loss=loss, checkpoint_dir=str(folder))
    with pytest.raises(ValueError) as info:
        seg.fit(*data)
    assert str(folder / "checkpoint.pt") in str(info.value)
    assert "directory" in str(info.value)
    assert loss.calls == 0 and not hasattr(seg, "model_")


def test_resume_without_checkpoint_dir_is_an_error(data):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        CNNSegmenter(**TINY, resume=True).fit(*data)


def test_resume_continues_after_the_stored_epochs(data, tmp_path):
    X, y = data
    # a constant rate: a schedule over 1 epoch and one over 3 differ from the start
    path = _checkpointed(data, tmp_path, lr_schedule="constant")  # one epoch stored
    seg = CNNSegmenter(**TINY, max_epochs=3, checkpoint_dir=str(path.parent), resume=True,
                       lr_schedule="constant")
    seg.fit(X, y)
    straight = CNNSegmenter(**TINY, max_epochs=3, lr_schedule="constant").fit(X, y)
    assert seg.n_iter_ == 3
    np.testing.assert_allclose(seg.loss_curve_, straight.loss_curve_, rtol=1e-6)


# --------------------------------------------------------------------------- #
# checked before training starts
# --------------------------------------------------------------------------- #
def test_wrong_number_of_output_channels_is_named(data):
    X, y = data
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match=r"gives 1 output channel\(s\), but y has 2 classes"):
        CNNSegmenter(model=net, max_epochs=1, device="cpu").fit(X, y)


def test_model_that_changes_the_size_is_named(data):
    X, y = data
    net = torch.nn.Conv2d(1, 2, 3)  # no padding: 32 -> 30
    with pytest.raises(ValueError, match="keep N, H and W"):
        CNNSegmenter(model=net, max_epochs=1, device="cpu").fit(X, y)


@pytest.mark.parametrize("name", ["learning_rate", "weight_decay", "tol", "validation_fraction",
                                  "max_grad_norm", "tile_overlap", "foreground_oversampling"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_float_parameters_must_be_finite(data, name, value):
    loss = CountingLoss()
    with pytest.raises(ValueError, match=name):
        CNNSegmenter(**TINY, loss=loss, **{name: value}).fit(*data)
    assert loss.calls == 0


def test_patch_larger_than_every_image_warns(data):
    X, y = data
    with pytest.warns(UserWarning, match="larger than the largest training image"):
        CNNSegmenter(**TINY, max_epochs=1, patch_size=(48, 16)).fit(X, y)


def test_tile_size_is_checked_before_training(data):
    loss = CountingLoss()
    seg = CNNSegmenter(**TINY, loss=loss, max_epochs=1, tile_size=1)
    with pytest.raises(ValueError, match="tile_size"):
        seg.fit(*data)
    assert loss.calls == 0


# --------------------------------------------------------------------------- #
# the user's objects are never moved or changed
# --------------------------------------------------------------------------- #
def test_loss_module_of_the_user_is_not_used_in_place(data):
    loss = CountingLoss()
    seg = CNNSegmenter(**TINY, max_epochs=1, loss=loss).fit(*data)
    assert seg.loss is loss and loss.calls == 0  # a copy trained


def test_unpickling_a_model_of_a_missing_gpu_falls_back(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.warns(UserWarning, match="cuda:0"):
        assert unpickled_device(torch.device("cuda", 1)) == torch.device("cuda", 0)
    assert unpickled_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert unpickled_device(torch.device("cuda", 1)) == torch.device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warm_start_across_devices(data, tmp_path):
    X, y = data
    seg = CNNSegmenter(**dict(TINY, device="cuda"), max_epochs=1, warm_start=True,
                       loss=CountingLoss()).fit(X, y)
    assert seg._train_state["trainer"]["optimizer"]["state"]
    seg.set_params(device="cpu").fit(X, y)
    seg.set_params(device="cuda").fit(X, y)
    assert seg.n_iter_ == 3
    # a checkpoint written on the GPU resumes on the CPU
    folder = tmp_path / "ckpt"
    CNNSegmenter(**dict(TINY, device="cuda"), max_epochs=1, checkpoint_dir=str(folder)).fit(X, y)
    resumed = CNNSegmenter(**TINY, max_epochs=2, checkpoint_dir=str(folder), resume=True)
    assert resumed.fit(X, y).n_iter_ == 2
    assert os.path.exists(folder / "checkpoint.pt")


# --------------------------------------------------------------------------- #
# messages that say what to do
# --------------------------------------------------------------------------- #
def test_channels_first_images_are_recognised():
    X, y = make_shapes(n_samples=4, image_size=32, n_channels=3, random_state=0)
    with pytest.raises(ValueError, match=r"channels-first.*np.moveaxis\(X, 1, -1\)"):
        CNNSegmenter(**TINY, max_epochs=1).fit(np.moveaxis(X, -1, 1), y)


def test_score_warns_about_labels_the_model_never_saw(data):
    X, y = data
    seg = CNNSegmenter(**TINY, max_epochs=1).fit(X, y)
    other = y.copy()
    other[0, :4, :4] = 7
    with pytest.warns(UserWarning, match=r"label\(s\) \[7\] that the model never saw"):
        seg.score(X, other)
