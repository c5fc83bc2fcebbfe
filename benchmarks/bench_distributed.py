"""Beyond one process: a grid search on a Dask cluster, and data-parallel
training on several processes.

Three measurements, all on this machine:

- **search**: one small ``GridSearchCV`` of ``CNNSegmenter`` (the same
  candidates, folds and ``random_state``) run in this process with
  ``n_jobs=1`` (one torch thread, as a Dask worker's nanny sets), then under
  ``joblib.parallel_backend("dask")`` on a ``LocalCluster`` of 1 and of 2
  worker processes with one thread each. Reported: the wall time, the fit and
  score time the search records (``cv_results_``), and the cost of the
  scheduling per fit, ``(wall * workers - sum(fit + score)) / fits``. With a
  single one-thread worker joblib sees ``n_jobs=1`` and runs the search in
  the calling process (the table says where the fits ran).
- **data**: how a large uint8 ``X`` reaches the workers. Two candidates, two
  folds given as index arrays of a few images each (so the fits are short and
  the transfer is what is timed), ``max_epochs=1``, 2 workers; once with the
  plain backend (joblib scatters every argument larger than 1 kB once per
  search, to one worker, and the others fetch it from there) and once with
  ``parallel_backend("dask", scatter=[X, y])`` (sent to every worker before
  the first task). Reported: the bytes the client process (with the
  scheduler) wrote to sockets, the bytes the workers wrote (to each other and
  to the scheduler), and the wall time.
- **ddp**: ``CNNSegmenter.fit`` in one process against the same fit under
  ``torchrun --nproc_per_node=2`` (gloo, CPU), the same global batch
  (``batch_size`` per rank x 2 ranks against ``2 * batch_size`` in one
  process), each side using all the cores (one process with every torch
  thread; two with half each). Reported: images per second over epochs 2..E
  (``history_[i]["seconds"]``) and the share of a step an all-reduce of the
  gradients takes (a standalone ``all_reduce`` of as many floats as the
  network has parameters, timed on the group, against the step time; an
  upper bound, since DDP overlaps it with the backward pass).

Run ``python benchmarks/bench_distributed.py --help`` for the options.
"""

import json
import os
import subprocess
import sys
import time

import _common
import numpy as np

CONFIGS = {
    "quick": {"search": {"n_images": 8, "image_size": 32, "depth": 2, "width": 4,
                         "max_epochs": 1},
              "data_mb": 20, "data_image_size": 512,
              "ddp": {"n_images": 16, "image_size": 32, "depth": 2, "width": 4,
                      "batch_size": 2, "max_epochs": 3}},
    "full": {"search": {"n_images": 32, "image_size": 64, "depth": 3, "width": 8,
                        "max_epochs": 3},
             "data_mb": 200, "data_image_size": 512,
             "ddp": {"n_images": 128, "image_size": 64, "depth": 3, "width": 8,
                     "batch_size": 8, "max_epochs": 4}},
}
GRID = {"learning_rate": [1e-3, 1e-2], "loss": ["cross_entropy", "dice"]}


# --------------------------------------------------------------------------- #
# Dask: grid search and data transfer
# --------------------------------------------------------------------------- #
def _count_socket_writes():
    """Count the bytes this process writes through Dask's TCP comms (on the
    class, so that the count survives between calls of ``client.run``)."""
    from distributed.comm import tcp

    if getattr(tcp.TCP, "_bench_written", None) is not None:
        tcp.TCP._bench_written = 0
        return
    original = tcp.TCP.write

    async def write(self, msg, serializers=None, on_error="message"):
        n = await original(self, msg, serializers=serializers, on_error=on_error)
        tcp.TCP._bench_written += n
        return n

    tcp.TCP._bench_written = 0
    tcp.TCP.write = write


def _socket_writes():
    from distributed.comm import tcp

    return tcp.TCP._bench_written


def _executed(dask_worker):
    return dask_worker.state.executed_count


def _warm_up():
    """Import what a fit needs (paid once per worker process, before the timer)."""
    import time

    t0 = time.perf_counter()
    import sklearn.model_selection  # noqa: F401
    import torch  # noqa: F401

    import sksegment  # noqa: F401

    return time.perf_counter() - t0


def _cluster(n_workers):
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None)


def _search(cfg, X, y, n_jobs):
    from sklearn.model_selection import GridSearchCV

    from sksegment import CNNSegmenter

    est = CNNSegmenter(depth=cfg["depth"], width=cfg["width"], max_epochs=cfg["max_epochs"],
                       batch_size=4, random_state=0, precision="fp32")
    return GridSearchCV(est, GRID, cv=2, n_jobs=n_jobs, refit=False)


def _search_figures(search, wall, n_workers):
    res = search.cv_results_
    n_fits = len(res["params"]) * search.n_splits_
    busy = float(np.sum(res["mean_fit_time"] + res["mean_score_time"]) * search.n_splits_)
    return {"wall_s": wall, "fits": n_fits, "fit_s_per_fit": float(np.mean(res["mean_fit_time"])),
            "score_s_per_fit": float(np.mean(res["mean_score_time"])),
            "overhead_s_per_fit": (wall * n_workers - busy) / n_fits,
            "mean_test_score": [float(s) for s in res["mean_test_score"]]}


def measure_search(cfg, log, then=None):
    """The search in this process, then on 1 and on 2 workers; ``then(client)``
    runs on the 2-worker cluster afterwards (one cluster start less)."""
    import joblib
    import torch
    from dask.distributed import Client

    from sksegment.datasets import make_shapes

    X, y = make_shapes(n_samples=cfg["n_images"], image_size=cfg["image_size"], random_state=0)
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Dask worker
    try:
        search = _search(cfg, X, y, 1)
        t0 = time.perf_counter()
        search.fit(X, y)
        out["in process"] = dict(_search_figures(search, time.perf_counter() - t0, 1),
                                 ran_in="this process")
    finally:
        torch.set_num_threads(threads)
    log(f"search in process: {out['in process']['wall_s']:.1f} s")
    for n_workers in (1, 2):
        with _cluster(n_workers) as cluster, Client(cluster) as client:
            client.wait_for_workers(n_workers)
            warm = max(client.run(_warm_up).values())
            search = _search(cfg, X, y, -1)
            t0 = time.perf_counter()
            with joblib.parallel_backend("dask"):
                search.fit(X, y)
            wall = time.perf_counter() - t0
            tasks = sum(client.run(_executed).values())
            figures = _search_figures(search, wall, n_workers)
            figures["dask_tasks"] = tasks
            figures["worker_import_s"] = warm
            figures["ran_in"] = (f"{n_workers} Dask worker(s)" if tasks
                                 else "this process (joblib: n_jobs=1)")
            out[f"{n_workers} worker(s)"] = figures
            log(f"search on {n_workers} worker(s): {wall:.1f} s, {tasks} Dask task(s)")
            if n_workers == 2 and then is not None:
                then(client)
    return out


def measure_data(cfg, client, log):
    import joblib
    from sklearn.model_selection import GridSearchCV

    from sksegment import CNNSegmenter

    size = cfg["data_image_size"]
    n = max(8, int(cfg["data_mb"] * 2**20 // (size * size)))
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    y = (X > 127).astype(np.uint8)
    # two folds of a few images: the fits are short, the transfer is timed
    cv = [(np.arange(0, 4), np.arange(4, 6)), (np.arange(6, 10) % n, np.arange(10, 12) % n)]
    est = CNNSegmenter(depth=1, width=2, max_epochs=1, batch_size=4, random_state=0)
    grid = {"learning_rate": [1e-3, 1e-2]}
    out = {"X_bytes": int(X.nbytes), "y_bytes": int(y.nbytes)}
    for label, backend_args in (("auto scatter", {}), ("scatter=[X, y]", {"scatter": [X, y]})):
        client.run(_count_socket_writes)
        _count_socket_writes()
        t0 = time.perf_counter()
        # (scatter= sends X and y when the backend is made, inside the timer)
        with joblib.parallel_backend("dask", **backend_args):
            GridSearchCV(est, grid, cv=cv, n_jobs=-1, refit=False).fit(X, y)
        wall = time.perf_counter() - t0
        sent = _socket_writes()
        workers = sum(client.run(_socket_writes).values())
        out[label] = {"wall_s": wall, "client_and_scheduler_bytes": sent,
                      "worker_bytes": workers,
                      "copies_of_X_and_y": (sent + workers) / (X.nbytes + y.nbytes)}
        log(f"data {label}: {wall:.1f} s, client+scheduler wrote {sent / 2**20:.0f} MiB, "
            f"workers {workers / 2**20:.0f} MiB")
    return out


# --------------------------------------------------------------------------- #
# DDP: one process against torchrun with two
# --------------------------------------------------------------------------- #
def ddp_child(cfg_json, threads):
    import torch
    import torch.distributed as dist

    from sksegment import CNNSegmenter
    from sksegment.datasets import make_shapes

    cfg = json.loads(cfg_json)
    torch.set_num_threads(threads)
    X, y = make_shapes(n_samples=cfg["n_images"], image_size=cfg["image_size"], random_state=0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    seg = CNNSegmenter(depth=cfg["depth"], width=cfg["width"], max_epochs=cfg["max_epochs"],
                       batch_size=cfg["batch_size"] * (2 // world), random_state=0,
                       device="cpu", precision="fp32")  # the same arithmetic on every CPU
    if world > 1:
        dist.init_process_group("gloo")  # the group outlives fit: the all-reduce is timed on it
    seg.fit(X, y)
    epochs = [h["seconds"] for h in seg.history_[1:]]
    steps = -(-cfg["n_images"] // (cfg["batch_size"] * 2))
    result = {"world_size": world, "threads": threads,
              "images_per_s": cfg["n_images"] / float(np.median(epochs)),
              "step_s": float(np.median(epochs)) / steps,
              "n_parameters": sum(p.numel() for p in seg.model_.parameters())}
    if world > 1:
        grads = torch.zeros(result["n_parameters"])
        for _ in range(3):
            dist.all_reduce(grads)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(20):
            dist.all_reduce(grads)
        result["all_reduce_s"] = (time.perf_counter() - t0) / 20
        result["all_reduce_share"] = result["all_reduce_s"] / result["step_s"]
        dist.barrier()  # gloo ranks that part without one can abort at exit
        dist.destroy_process_group()
        if int(os.environ["RANK"]) != 0:
            return
    print("RESULT " + json.dumps(result), flush=True)


def measure_ddp(cfg, log):
    cores = os.cpu_count() or 1
    env = dict(os.environ, PYTHONPATH=str(_common.REPO_ROOT), OMP_NUM_THREADS="1")
    out = {}
    runs = [("1 process", [sys.executable, __file__], 1),
            ("1 process", [sys.executable, __file__], cores),
            ("2 processes (torchrun, gloo)",
             [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node=2", __file__], max(1, cores // 2))]
    for label, cmd, threads in runs:
        full = cmd + ["--ddp-child", json.dumps(cfg), "--threads", str(threads)]
        proc = subprocess.run(full, env=env, capture_output=True, text=True, timeout=1800,
                              check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        # torch's gloo teardown aborts now and then at process exit, after the
        # measurement ("terminate called without an active exception"): the
        # result printed before it stands
        teardown = "terminate called without an active exception" in proc.stderr
        if proc.returncode != 0 and lines and teardown:
            log(f"ddp {label}: a rank aborted at exit after the measurement (gloo teardown)")
        elif proc.returncode != 0 or not lines:
            raise RuntimeError(f"{label} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        label = f"{label}, {threads} thread(s) each"
        out[label] = json.loads(lines[-1][len("RESULT "):])
        log(f"ddp {label}: {out[label]['images_per_s']:.1f} images/s")
    return out


# --------------------------------------------------------------------------- #
def markdown(machine, results, cfg, mode):
    lines = [f"Machine: {_common.machine_line(machine)}", ""]
    s = cfg["search"]
    lines.append(f"Grid search: {len(GRID['learning_rate']) * len(GRID['loss'])} candidates x 2 "
                 f"folds, {s['n_images']} images {s['image_size']}x{s['image_size']}, U-Net depth "
                 f"{s['depth']} width {s['width']}, {s['max_epochs']} epoch(s); workers with one "
                 "thread each.")
    lines.append("")
    rows = [[label, r["ran_in"], _common.fmt(r["wall_s"], 1), _common.fmt(r["fit_s_per_fit"], 2),
             _common.fmt(r["overhead_s_per_fit"], 2)]
            for label, r in results["search"].items()]
    lines.append(_common.table(["search", "fits ran in", "wall (s)", "fit per fit (s)",
                                "scheduling per fit (s)"], rows))
    warm = [r["worker_import_s"] for r in results["search"].values() if "worker_import_s" in r]
    if warm:
        lines += ["", (f"Before the timer each worker imported torch and sksegment "
                  f"({max(warm):.1f} s at most); the wall times leave that out.")]
    d = results["data"]
    lines += ["", (f"Shipping X ({d['X_bytes'] / 2**20:.0f} MiB uint8) and y to 2 workers, 2 "
              "candidates x 2 folds:"), ""]
    rows = [[label, _common.fmt(r["wall_s"], 1),
             _common.fmt(r["client_and_scheduler_bytes"] / 2**20, 0),
             _common.fmt(r["worker_bytes"] / 2**20, 0), _common.fmt(r["copies_of_X_and_y"], 2)]
            for label, r in d.items() if isinstance(r, dict)]
    lines.append(_common.table(["backend", "wall (s)", "client + scheduler wrote (MiB)",
                                "workers wrote (MiB)", "copies of X and y"], rows))
    c = cfg["ddp"]
    lines += ["", (f"Data-parallel fit: {c['n_images']} images {c['image_size']}x"
              f"{c['image_size']}, U-Net depth {c['depth']} width {c['width']}, global batch "
              f"{2 * c['batch_size']}, {c['max_epochs']} epochs (images/s over epochs 2..):"), ""]
    rows = []
    for label, r in results["ddp"].items():
        share = r.get("all_reduce_share")
        rows.append([label, _common.fmt(r["images_per_s"], 1),
                     _common.fmt(r["step_s"] * 1e3, 1),
                     "n/a" if share is None else f"{100 * share:.0f} %"])
    lines.append(_common.table(["run", "images/s", "step (ms)",
                                "all-reduce share of a step"], rows))
    return "\n".join(lines)


def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--ddp-child", default=None, help=argparse_hidden())
    parser.add_argument("--threads", type=int, default=1, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.ddp_child is not None:
        ddp_child(args.ddp_child, args.threads)
        return None
    device = _common.resolve_device("cpu")
    mode = "quick" if args.quick else "full"
    cfg = CONFIGS[mode]
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return _common.finish(args, "distributed", _common.machine_info(device), {},
                              "skipped: dask.distributed is not installed",
                              skipped="dask.distributed is not installed")
    if not args.quick:
        _common.wait_for_quiet()
    machine = _common.machine_info(device)
    print(f"# bench_distributed ({mode}); the Dask workers and DDP ranks run on the CPU")
    results = {"config": cfg}

    def data(client):
        results["data"] = measure_data(cfg, client, print)

    # data-parallel training first: run after the Dask clusters, its processes
    # trained at about half the speed on this 2-core machine
    results["ddp"] = measure_ddp(cfg["ddp"], print)
    results["search"] = measure_search(cfg["search"], print, then=data)
    return _common.finish(args, "distributed", machine, results,
                          markdown(machine, results, cfg, mode))


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
