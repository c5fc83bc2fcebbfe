"""Data-parallel training (torch.distributed, gloo on the CPU) and the
environment checks around it.

The two-process tests start ``tests/dist_worker.py`` twice as plain
subprocesses with the variables torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR=127.0.0.1, a free MASTER_PORT); one launch runs several fits in a
row, to pay the start of two Python processes once.
"""

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sksegment import CNNSegmenter, _distributed
from sksegment._distributed import ENV_VARS, TIMEOUT_VAR, Context, ShardedSampler
from sksegment._sampling import BatchSampler
from sksegment.datasets import make_shapes
from sksegment.models import UNet

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("dist_worker.py")

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_dist_env(monkeypatch):
    for name in (*ENV_VARS, TIMEOUT_VAR):
        monkeypatch.delenv(name, raising=False)
    assert not torch.distributed.is_initialized()
    yield monkeypatch
    assert not torch.distributed.is_initialized(), "a test left a process group behind"


@pytest.fixture
def one_thread():
    """One torch thread, as each rank (and each Dask worker) uses: sums in
    convolutions split by thread count, so results compare exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n=8, size=16):
    return make_shapes(n_samples=n, image_size=size, random_state=0)


# --------------------------------------------------------------------------- #
# sharding of batches (no process group needed)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n_images,batch_size,world", [(8, 2, 2), (7, 2, 2), (10, 3, 3), (1, 4, 2)])
def test_shards_are_disjoint_slices_of_one_permutation(n_images, batch_size, world):
    X = np.arange(n_images, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    y = np.zeros((n_images, 4, 4), np.uint8)
    sampler = BatchSampler(X, y, batch_size)
    shards = [list(ShardedSampler(sampler, r, world).epoch(np.random.RandomState(0)))
              for r in range(world)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1  # every rank takes the same number of steps
    assert lengths.pop() == ShardedSampler(sampler, 0, world).n_batches()
    order = np.random.RandomState(0).permutation(n_images)
    per_rank = -(-n_images // world)
    padded = np.resize(order, per_rank * world)
    for k in range(len(shards[0])):
        # the ranks' k-th batches together are the k-th global batch
        together = np.concatenate([shards[r][k][0][:, 0, 0, 0] for r in range(world)])
        chunk = padded[k * batch_size * world:(k + 1) * batch_size * world]
        assert sorted(together.tolist()) == sorted(chunk.tolist())
    seen = np.concatenate([b[0][:, 0, 0, 0] for s in shards for b in s])
    assert set(seen.tolist()) == set(range(n_images))
    if n_images % world == 0:
        assert len(seen) == n_images  # disjoint: no image twice


def test_sharded_patches_draw_from_their_own_stream_without_moving_the_shared_one():
    X, y = _data(4, 32)
    sampler = BatchSampler(X, y, 2, patch_size=8)
    rngs = [np.random.RandomState(0) for _ in range(2)]
    batches = [list(ShardedSampler(sampler, r, 2).epoch(rngs[r])) for r in range(2)]
    reference = np.random.RandomState(0)
    reference.permutation(len(sampler.epoch_items()))
    expected = reference.randint(10**9)
    for rng in rngs:  # the shared state moved by the permutation alone, alike on both ranks
        assert rng.randint(10**9) == expected
    assert not np.array_equal(batches[0][0][0], batches[1][0][0])


def test_sync_batchnorm_shares_its_state_and_is_taken_off_in_place():
    """On CUDA the batch-norm layers train as SyncBatchNorm; the swap shares
    parameters and buffers, and closing puts the very same layers back."""
    model = UNet(1, 3, depth=2, width=4)
    originals = [m for m in model.modules() if type(m) is torch.nn.BatchNorm2d]
    ctx = Context(torch.device("cpu"), 0, 1, created=False)
    ctx._to_sync_batchnorm(model)
    synced = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(synced) == len(originals) > 0
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())
    for s, o in zip(synced, originals):
        assert s.weight is o.weight and s.running_mean is o.running_mean
    with torch.no_grad():
        synced[0].running_mean.add_(1.0)  # what a training step does, in place
    model.eval()
    ctx.close()
    assert [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)] \
        == originals
    assert not originals[0].training and float(originals[0].running_mean[0]) == 1.0


@pytest.mark.parametrize("completed", [True, False])
def test_a_created_group_is_left_together_only_after_a_completed_fit(completed, monkeypatch):
    """After a fit that returned on every rank, the ranks meet at a barrier
    before the group they created is destroyed (gloo ranks that parted
    without one aborted at exit now and then); after a failure they do not
    wait for ranks that may never come."""
    calls = []

    class FakeDist:
        def is_initialized(self):
            return True

        def barrier(self):
            calls.append("barrier")

        def destroy_process_group(self):
            calls.append("destroy")

    ctx = Context(torch.device("cpu"), 0, 2, created=True)
    monkeypatch.setattr(_distributed, "_dist", FakeDist)
    _distributed.finish(ctx, completed)
    assert calls == (["barrier", "destroy"] if completed else ["destroy"])
    _distributed.finish(ctx, completed)  # once only
    assert len(calls) == (2 if completed else 1)


# --------------------------------------------------------------------------- #
# the environment: what is read, what fails and how
# --------------------------------------------------------------------------- #
def test_distributed_parameter_is_checked(no_dist_env):
    X, y = _data(4)
    with pytest.raises(ValueError, match="distributed"):
        CNNSegmenter(distributed="yes", max_epochs=1).fit(X, y)


def test_distributed_true_needs_an_environment(no_dist_env):
    X, y = _data(4)
    seg = CNNSegmenter(distributed=True, depth=2, width=4, max_epochs=1)
    with pytest.raises(ValueError, match=r"distributed=True.*WORLD_SIZE.*torchrun"):
        seg.fit(X, y)
    assert not hasattr(seg, "model_")


def test_world_size_one_and_false_train_in_this_process(no_dist_env):
    X, y = _data(4)
    no_dist_env.setenv("WORLD_SIZE", "1")  # "auto" needs more than one process
    CNNSegmenter(depth=2, width=4, max_epochs=1).fit(X, y)
    no_dist_env.setenv("WORLD_SIZE", "2")  # False never looks
    CNNSegmenter(depth=2, width=4, max_epochs=1, distributed=False).fit(X, y)


def test_incomplete_environment_names_what_is_missing(no_dist_env):
    X, y = _data(4)
    no_dist_env.setenv("WORLD_SIZE", "2")
    no_dist_env.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"MASTER_ADDR, MASTER_PORT are not set.*WORLD_SIZE=2"):
        CNNSegmenter(depth=2, width=4, max_epochs=1).fit(X, y)
    no_dist_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        CNNSegmenter(depth=2, width=4, max_epochs=1).fit(X, y)


def test_unreachable_rank_zero_fails_within_the_timeout(no_dist_env):
    X, y = _data(4)
    port = _free_port()  # nobody listens there
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port), TIMEOUT_VAR: "2"}.items():
        no_dist_env.setenv(name, value)
    seg = CNNSegmenter(depth=2, width=4, max_epochs=1)
    with pytest.raises(RuntimeError) as info:
        seg.fit(X, y)
    message = str(info.value)
    for text in ("WORLD_SIZE=2", "RANK=1", "LOCAL_RANK=<unset>", "MASTER_ADDR=127.0.0.1",
                 f"MASTER_PORT={port}", "waited 2 s", TIMEOUT_VAR, "distributed=False"):
        assert text in message
    assert not hasattr(seg, "model_")
    no_dist_env.setenv(TIMEOUT_VAR, "soon")
    with pytest.raises(ValueError, match=f"{TIMEOUT_VAR}='soon'"):
        seg.fit(X, y)


def test_world_of_one_trains_as_one_process(no_dist_env, one_thread, tmp_path):
    """distributed=True with WORLD_SIZE=1: DDP, sharding and the reductions
    over one rank change nothing; fit creates the group and destroys it."""
    X, y = _data(8)
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(_free_port())}.items():
        no_dist_env.setenv(name, value)
    params = dict(depth=2, width=4, batch_size=4, max_epochs=2, random_state=0, norm="batch",
                  early_stopping=True, validation_fraction=0.25, n_iter_no_change=5)
    seg = CNNSegmenter(distributed=True, checkpoint_dir=tmp_path, **params).fit(X, y)
    assert not torch.distributed.is_initialized()
    assert (tmp_path / "checkpoint.pt").exists()  # rank 0 writes checkpoints
    assert {type(m).__name__ for m in seg.model_.modules()} >= {"UNet", "BatchNorm2d"}
    alone = CNNSegmenter(distributed=False, **params).fit(X, y)
    for k, v in alone.model_.state_dict().items():
        torch.testing.assert_close(seg.model_.state_dict()[k], v, rtol=1e-6, atol=1e-7)
    strip = [{k: v for k, v in h.items() if k not in ("seconds", "time")} for h in alone.history_]
    got = [{k: v for k, v in h.items() if k not in ("seconds", "time")} for h in seg.history_]
    assert got == pytest.approx(strip)


def test_group_of_one_initialised_by_the_user_is_left_alone(no_dist_env):
    X, y = _data(4)
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", world_size=1, rank=0)
    try:
        CNNSegmenter(depth=2, width=4, max_epochs=1).fit(X, y)  # "auto": one process
        CNNSegmenter(depth=2, width=4, max_epochs=1, distributed=True).fit(X, y)
        assert torch.distributed.is_initialized()
    finally:
        torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------- #
# two ranks
# --------------------------------------------------------------------------- #
MISMATCH = {"n_samples": 8, "image_size": 16, "n_used_by_rank": {"1": 6},
            "params": {"depth": 2, "width": 4, "max_epochs": 1, "random_state": 0}}
PATCHES = {"n_samples": 8, "image_size": 16, "params_by_rank": {"1": {"patch_size": [8, 8]}},
           "params": {"depth": 2, "width": 4, "max_epochs": 1, "patch_size": [16, 16]}}
BATCHNORM = {"n_samples": 8, "image_size": 16,
             "params": {"depth": 2, "width": 4, "batch_size": 2, "max_epochs": 3, "norm": "batch",
                        "early_stopping": True, "validation_fraction": 0.25,
                        "n_iter_no_change": 5, "lr_schedule": "plateau", "verbose": 1,
                        "postprocess": "auto"}}
INSTANCE = {"n_samples": 8, "image_size": 16, "net": "instance", "own_group": True,
            "params": {"batch_size": 2, "max_epochs": 3, "learning_rate": 0.01,
                       # a mean over pixels splits over ranks exactly (Dice does not)
                       "loss": "cross_entropy", "augment": None, "random_state": 0,
                       # float32 sums, which split over ranks to rounding
                       "precision": "fp32"}}

BUDGET = {"n_samples": 8, "image_size": 16,
          "params": {"depth": 2, "width": 4, "batch_size": 2, "max_time": 1.5,
                     "random_state": 0}}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run MISMATCH, BATCHNORM, INSTANCE, BUDGET and PATCHES in a row on two gloo ranks."""
    out = tmp_path_factory.mktemp("ranks")
    config = out / "fits.json"
    config.write_text(json.dumps([MISMATCH, BATCHNORM, INSTANCE, BUDGET, PATCHES]))
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
                   WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        env[TIMEOUT_VAR] = "120"  # a failure shows as an error, not as a hang
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(config), str(out)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    logs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        logs.append(stdout + stderr)
        assert p.returncode == 0, stdout + stderr
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return results, logs


def test_ranks_given_different_data_fail_alike(two_ranks):
    (mismatch, *_), (mismatch1, *_) = two_ranks[0]
    for result in (mismatch, mismatch1):
        assert result["error"].startswith("ValueError: The ranks of this distributed fit were "
                                          "called with different data")
        assert "rank 0 has" in result["error"] and "rank 1 has" in result["error"]
        assert "[8, 16, 16" in result["error"] and "[6, 16, 16" in result["error"]
        assert not result["fitted"] and not result["group_left"]


def test_ranks_given_different_patch_sizes_fail_alike(two_ranks):
    (*_, a), (*_, b) = two_ranks[0]
    for result in (a, b):  # a tuple is compared too, not only plain numbers
        assert "parameter patch_size: rank 0 has [16, 16], rank 1 has [8, 8]" in result["error"]
        assert not result["fitted"]


def test_ranks_end_with_identical_ordinary_estimators(two_ranks):
    (_, a, *_), (_, b, *_) = two_ranks[0]
    # post-processing chosen on rank 0's validation score, the same everywhere
    assert a["post"] == b["post"]
    for k in a["state"]:  # batch-norm statistics too
        assert torch.equal(a["state"][k], b["state"][k]), k
    # one history: the epochs' seconds are rank 0's everywhere (the budget's
    # augmentation rule reads them), only the wall time "time" is each rank's
    assert a["history"] == b["history"] and len(a["history"]) == 3
    assert all(h["seconds"] > 0 for h in a["history"])
    assert all("val_score" in h for h in a["history"])
    np.testing.assert_array_equal(a["predict"], b["predict"])
    assert not a["group_left"]  # fit created the group and destroyed it
    assert a["wrappers_alive"] == 0
    assert "BatchNorm2d" in a["modules"] and "SyncBatchNorm" not in a["modules"]
    seg = pickle.loads(a["pickle"])
    assert type(seg.model_).__name__ == "UNet"
    X, _ = _data(8)
    np.testing.assert_array_equal(seg.predict(X[:2]), a["predict"])
    # progress shows on rank 0 only
    logs = two_ranks[1]
    assert "epoch 1: train loss" in logs[0] and "epoch 1: train loss" not in logs[1]


def test_ranks_share_the_clock_of_a_time_budget(two_ranks):
    (*_, a, _), (*_, b, _) = two_ranks[0]
    # the schedule over the budget reads one elapsed time (the ranks' largest),
    # so the learning rates, the epochs and the stopping step agree
    assert a["history"] == b["history"] and len(a["history"]) > 1
    assert len({h["lr"] for h in a["history"]}) > 1  # the rate follows the clock
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks, one_thread):
    (_, _, a, *_), (_, _, b, *_) = two_ranks[0]
    assert a["group_left"] and b["group_left"]  # the group the script made is left alone
    X, y = _data(8)
    torch.manual_seed(0)
    model = UNet(1, 3, depth=2, width=4, norm="instance")
    params = dict(INSTANCE["params"], batch_size=4)  # 2 per rank x 2 ranks
    single = CNNSegmenter(model=model, **params).fit(X, y)
    for k, v in single.model_.state_dict().items():
        assert torch.equal(a["state"][k], b["state"][k])
        torch.testing.assert_close(a["state"][k], v, rtol=1e-4, atol=1e-5)
    assert [h["train_loss"] for h in a["history"]] == pytest.approx(single.loss_curve_, rel=1e-5)


# --------------------------------------------------------------------------- #
# a grid search on a Dask cluster
# --------------------------------------------------------------------------- #
def test_grid_search_on_dask_matches_the_search_in_process(one_thread):
    pytest.importorskip("distributed")
    import joblib
    from dask.distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV

    X, y = _data(8)
    grid = {"learning_rate": [1e-3, 1e-2], "loss": ["cross_entropy", "dice"]}
    est = CNNSegmenter(depth=2, width=4, max_epochs=1, batch_size=4, random_state=0)
    # The reference runs with one torch thread (the fixture): a Dask worker's
    # nanny sets OMP_NUM_THREADS=MKL_NUM_THREADS=1, and float sums split by
    # thread count.
    reference = GridSearchCV(est, grid, cv=2, n_jobs=1, refit=False).fit(X, y)
    saved = dict(os.environ)  # the nanny writes those variables into this process
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, \
                Client(cluster.scheduler_address) as client:  # as for a remote scheduler
            client.wait_for_workers(2)
            with joblib.parallel_backend("dask"):
                search = GridSearchCV(est, grid, cv=2, n_jobs=-1, refit=False).fit(X, y)
            executed = sum(client.run(lambda dask_worker: dask_worker.state.executed_count)
                           .values())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert executed >= 2  # the fits ran on the workers
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], reference.cv_results_[key])
