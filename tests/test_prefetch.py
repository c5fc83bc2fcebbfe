"""Keeping the device busy: batches prepared ahead in a background thread,
no host-device sync beyond one flag per step, and prediction at the training
precision."""

import threading
import time

import pytest
import torch
from sync_counter import SyncCounter

from sksegment import CNNSegmenter, _training
from sksegment._prefetch import Prefetcher
from sksegment.datasets import make_shapes

KW = dict(depth=2, width=4, batch_size=4, max_epochs=2, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    return make_shapes(n_samples=12, image_size=32, random_state=0)


def _weights(seg):
    return [t.detach().clone() for t in seg.model_.state_dict().values()]


@pytest.mark.parametrize("params", [{}, {"patch_size": 16, "foreground_oversampling": 0.5}])
def test_prefetching_changes_no_weight(data, monkeypatch, params):
    X, y = data
    monkeypatch.setattr(_training, "PREFETCH_BATCHES", 0)
    inline = CNNSegmenter(**KW, **params).fit(X, y)
    monkeypatch.setattr(_training, "PREFETCH_BATCHES", 2)
    ahead = CNNSegmenter(**KW, **params).fit(X, y)
    assert all(torch.equal(a, b) for a, b in zip(_weights(inline), _weights(ahead)))
    assert inline.loss_curve_ == ahead.loss_curve_


class SlowStore:
    """An image store whose reads take ``delay`` seconds (like a network
    file system) and record when they happened."""

    def __init__(self, array, delay, log):
        self.array, self.delay, self.log = array, delay, log
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        start = time.perf_counter()
        time.sleep(self.delay)
        self.log.append(("read", start, time.perf_counter()))
        return self.array[key]


def test_reads_of_the_next_batch_overlap_the_step(data):
    X, y = data
    log = []
    store = SlowStore(X, 0.01, log)

    class SlowLoss(torch.nn.Module):
        def forward(self, logits, target):
            start = time.perf_counter()
            time.sleep(0.05)  # the device's share of a step
            log.append(("step", start, time.perf_counter()))
            return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)

    CNNSegmenter(**dict(KW, max_epochs=1), patch_size=16, loss=SlowLoss()).fit(store, y)
    steps = [(a, b) for kind, a, b in log if kind == "step"]
    reads = [(a, b) for kind, a, b in log if kind == "read" and a > steps[0][0]]
    # the store is read while training (not all at once before it) ...
    assert len(steps) >= 2 and len(reads) >= len(steps) - 1
    # ... and the reads made while a step ran: the next batches were being prepared then
    during = sum(any(s0 < r0 < s1 for s0, s1 in steps) for r0, _ in reads)
    assert during >= len(reads) // 2


def test_a_failing_read_is_raised_and_the_thread_ends(data):
    X, y = data

    class Broken:
        shape, dtype, ndim = X.shape, X.dtype, X.ndim
        calls = 0

        def __len__(self):
            return len(X)

        def __getitem__(self, key):
            Broken.calls += 1
            if Broken.calls > 40:
                raise OSError("the store went away")
            return X[key]

    before = threading.active_count()
    seg = CNNSegmenter(**KW, patch_size=16)
    with pytest.raises(OSError, match="went away"):
        seg.fit(Broken(), y)
    assert not hasattr(seg, "model_")
    for _ in range(50):
        if threading.active_count() <= before:
            break
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_prefetcher_stops_early_and_forwards_errors():
    produced = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    with Prefetcher(items(), depth=2) as ahead:
        first = [next(iter(ahead)) for _ in range(3)]
    assert first == [0, 1, 2] and len(produced) < 10

    def failing():
        yield 1
        raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"), Prefetcher(failing()) as ahead:
        list(ahead)


def test_one_sync_per_step(data, monkeypatch):
    X, y = data
    counted = []
    original = _training._train_epoch

    def counting(trainer, batches, *args):
        # Adam's step counter lives on the host; the loss checks its target
        # on the CPU only: neither is a device sync
        with SyncCounter(ignore=("torch/optim/", "_loss_base.py:check_target_values")) as c:
            result = original(trainer, batches, *args)
        counted.append((c.syncs, result[2]))
        return result

    monkeypatch.setattr(_training, "_train_epoch", counting)
    CNNSegmenter(**KW, loss="dice+cross_entropy", patch_size=16).fit(X, y)
    for syncs, steps in counted:
        assert steps > 1 and len(syncs) == steps  # the finiteness flag, once a step
        assert set(syncs) == {"aten._local_scalar_dense"}
