"""One rank of data-parallel fits, run by tests/test_distributed.py as a
subprocess with the torch.distributed environment variables set.

``python tests/dist_worker.py CONFIG.json OUT_DIR``. CONFIG holds a list of
fits, run one after the other in this process; each has the segmenter's
parameters (``"params"``), the data (``"n_samples"``, ``"image_size"``, and
``"n_used_by_rank"``: images this rank keeps, to hand ranks different data),
``"params_by_rank"``: parameters a rank overrides, to hand ranks different
ones), ``"net"`` ("instance" for a U-Net with instance norm, else the built-in
network) and ``"own_group"`` (initialise the process group here, before
fit). The rank writes ``OUT_DIR/rank<RANK>.pt``: per fit, the error it raised
or its weights, history, a pickle of the estimator and its predictions.
"""

import gc
import json
import os
import pickle
import sys
import warnings


def run_fit(config, rank):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from sksegment import CNNSegmenter
    from sksegment.datasets import make_shapes
    from sksegment.models import UNet

    X, y = make_shapes(n_samples=config["n_samples"], image_size=config["image_size"],
                       random_state=0)
    n_used = config.get("n_used_by_rank", {}).get(rank, len(X))
    X, y = X[:n_used], y[:n_used]
    params = dict(config["params"], **config.get("params_by_rank", {}).get(rank, {}))
    if config.get("net") == "instance":
        torch.manual_seed(0)  # the same initial weights in every process
        params["model"] = UNet(1, 3, depth=2, width=4, norm="instance")
    if config.get("own_group"):
        dist.init_process_group("gloo")
    seg = CNNSegmenter(**params)
    try:
        seg.fit(X, y)
    except (ValueError, TypeError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}",
                "fitted": hasattr(seg, "model_"), "group_left": dist.is_initialized()}
    # the fitted network is an ordinary module: a backward pass outside the
    # process group must not reach for it
    seg.model_(torch.zeros(1, 1, 16, 16)).sum().backward()
    gc.collect()
    with warnings.catch_warnings():  # isinstance on deprecated torch names warns
        warnings.simplefilter("ignore")
        wrappers = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    result = {"state": {k: v.clone() for k, v in seg.model_.state_dict().items()},
              "history": [{k: v for k, v in h.items() if k != "time"} for h in seg.history_],
              "group_left": dist.is_initialized(), "wrappers_alive": wrappers,
              "modules": sorted({type(m).__name__ for m in seg.model_.modules()}),
              "pickle": pickle.dumps(seg), "predict": seg.predict(X[:2]),
              "post": repr(getattr(seg, "postprocessing_", None))}
    if config.get("own_group"):
        dist.destroy_process_group()
    return result


def main(config_path, out_dir):
    import faulthandler

    import torch

    # a rank that hangs prints where, long before the test gives up on it
    faulthandler.dump_traceback_later(float(os.environ.get("DIST_WORKER_DUMP_AFTER", "300")))

    torch.set_num_threads(1)
    with open(config_path) as f:
        fits = json.load(f)
    rank = os.environ.get("RANK", "single")
    results = [run_fit(config, rank) for config in fits]
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
