"""Training throughput of ``CNNSegmenter.fit`` against a hand-written PyTorch loop.

Both sides train the same U-Net (same depth, width and initial weights),
with Adam at the same learning rate, cross entropy, the same batch size,
device and precision, on the same uint8 images, whole images per step. The
runs are interleaved in one process (in rotating order) so that load from
other programs hits every side alike; each side gets one untimed warm-up
run first.

The hand-written loop does what a typical user writes:

- builds the model (``torch.manual_seed`` then ``UNet(...)``), moves it to
  the device, makes ``torch.optim.Adam`` and ``nn.CrossEntropyLoss``;
- each epoch draws a permutation of the images (NumPy) and walks it in
  batches;
- per batch: ``torch.from_numpy(X[idx]).to(device).float() / 255`` with a
  channel axis added, ``torch.from_numpy(y[idx]).to(device).long()``,
  ``zero_grad``, forward (under ``torch.autocast`` for bf16), loss,
  ``backward``, ``step``, and one ``loss.item()`` for its running loss.

It runs twice: as written above, which gives NCHW batches, and with the
model and each batch in ``channels_last`` memory. sksegment's batches come
channels last (``to_tensor`` permutes the NumPy ``(N, H, W, C)`` batch, so
the channel stride is 1), and PyTorch then runs the whole network in NHWC,
also on the CPU; the second loop compares like with like.

Two figures are compared:

- end to end: the wall time of ``fit(X, y)`` with ``max_epochs=E`` against E
  epochs of the hand loop *including* its model and optimizer construction;
  it counts everything a user waits for (input checks, label scan, batch
  sampling, per-epoch bookkeeping);
- steady state: epochs 2..E only, from ``history_[i]["seconds"]`` for
  sksegment and a timer around each epoch of the hand loop; it leaves out the
  one-time setup and the first epoch.

Run ``python benchmarks/bench_overhead.py --help`` for the options.
"""

import math
import re
import time

import _common
import numpy as np
import torch
from torch import nn

#: Dense peak throughput in TFLOP/s from NVIDIA's data sheets, by the kind of
#: arithmetic: "fp32" (CUDA cores), "tf32" and "bf16" (tensor cores).
PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},  # SXM5
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0},
}

CONFIGS = {
    # device type -> mode -> settings
    "cpu": {
        "quick": {"n_images": 48, "image_size": 64, "batch_size": 16, "depth": 3, "width": 16,
                      "epochs": 3, "repeats": 5},
        "full": {"n_images": 96, "image_size": 64, "batch_size": 16, "depth": 3, "width": 16,
                     "epochs": 3, "repeats": 5},
    },
    "cuda": {
        "quick": {"n_images": 256, "image_size": 256, "batch_size": 16, "depth": 4, "width": 32,
                      "epochs": 3, "repeats": 3},
        "full": {"n_images": 512, "image_size": 256, "batch_size": 16, "depth": 4, "width": 32,
                     "epochs": 4, "repeats": 5},
    },
}


# --------------------------------------------------------------------------- #
# model FLOPs
# --------------------------------------------------------------------------- #
def conv_macs_per_image(model, in_channels, image_size, device):
    """Multiply-accumulates of the convolutions in one forward pass of one
    image, counted with forward hooks."""
    total = [0]

    def hook(module, inputs, output):
        k = math.prod(module.kernel_size)
        if isinstance(module, nn.ConvTranspose2d):
            # every input pixel is spread over k output pixels per output channel
            total[0] += inputs[0].numel() * (module.out_channels // module.groups) * k
        else:
            total[0] += output.numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


def peak_tflops(device_name, precision, override=None):
    """The dense peak for this GPU and precision (None when unknown)."""
    if override is not None:
        return override
    kind = "bf16" if precision == "bf16" else (
        "tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
    tokens = {t.lower() for t in re.split(r"[^0-9A-Za-z]+", device_name) if t}
    for key, peaks in PEAK_TFLOPS.items():  # "H100 PCIe" is tried before "H100"
        if all(w.lower() in tokens for w in key.split()):
            return peaks[kind]
    return None


# --------------------------------------------------------------------------- #
# the two trainers
# --------------------------------------------------------------------------- #
def init_seed(random_state):
    """The torch seed CNNSegmenter draws from ``random_state`` before it builds
    its network; the hand loop seeds with it too, so both start from the same
    weights."""
    return int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))


def train_sksegment(X, y, cfg, *, epochs, device, precision, compile, random_state):
    from sksegment import CNNSegmenter

    # what the hand loops do: whole images, batch norm, images scaled by 1/255
    # only, no augmentation
    seg = CNNSegmenter(model="unet", depth=cfg["depth"], width=cfg["width"], norm="batch",
                       loss="cross_entropy", optimizer="adam", learning_rate=1e-3,
                       batch_size=cfg["batch_size"], max_epochs=epochs, patch_size=None,
                       normalize=None, augment=None, precision=precision, compile=compile,
                       device=str(device), random_state=random_state)
    with _common.timer(device) as t:
        seg.fit(X, y)
    return t.seconds, [h["seconds"] for h in seg.history_]


class _HandLoop:
    """What both hand-written loops share: the network (seeded alike), Adam
    (fused in the channels_last loop), cross entropy, optional compile and
    bf16 autocast, and one training step."""

    def __init__(self, y, cfg, *, device, precision, compile, random_state, channels_last):
        from sksegment.models import UNet

        torch.manual_seed(init_seed(random_state))
        self.model = UNet(1, int(y.max()) + 1, depth=cfg["depth"], width=cfg["width"]).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # the like-with-like loop also updates with Adam's fused kernels, as fit does
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=channels_last)
        self.criterion = nn.CrossEntropyLoss()
        self.forward = torch.compile(self.model) if compile else self.model
        self.device, self.autocast = device, precision == "bf16"
        self.model.train()

    def step(self, xb, yb):
        """One step on a float batch (N, 1, H, W) and int64 targets; the loss
        read back as a hand loop's ``loss.item()`` does."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.forward(xb)
        loss = self.criterion(logits.float(), yb)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def train_by_hand(X, y, cfg, *, epochs, device, precision, compile, random_state,
                  channels_last):
    """The loop a user would write; returns (total seconds, seconds per epoch)."""
    sync = _common.synchronize
    sync(device)
    start = time.perf_counter()
    loop = _HandLoop(y, cfg, device=device, precision=precision, compile=compile,
                     random_state=random_state, channels_last=channels_last)
    rng = np.random.RandomState(random_state)
    batch_size = cfg["batch_size"]
    epoch_seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(X))
        running = 0.0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            xb = torch.from_numpy(X[idx]).to(device).float().unsqueeze(1) / 255
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            running += loop.step(xb, torch.from_numpy(y[idx]).to(device).long())
        sync(device)
        epoch_seconds.append(time.perf_counter() - t0)
    sync(device)
    return time.perf_counter() - start, epoch_seconds


def train_with_dataloader(X, y, cfg, *, epochs, device, precision, compile, random_state,
                          num_workers=4):
    """The well-written loop: a ``DataLoader`` with worker processes and
    pinned memory, asynchronous copies, the model and batches channels last;
    returns (total seconds, seconds per epoch)."""
    from torch.utils.data import DataLoader, TensorDataset

    sync = _common.synchronize
    sync(device)
    start = time.perf_counter()
    loop = _HandLoop(y, cfg, device=device, precision=precision, compile=compile,
                     random_state=random_state, channels_last=True)
    data = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = DataLoader(data, batch_size=cfg["batch_size"], shuffle=True,
                        num_workers=num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(random_state))
    epoch_seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        running = 0.0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True).unsqueeze(1).float().div_(255)
            xb = xb.contiguous(memory_format=torch.channels_last)
            running += loop.step(xb, yb.to(device, non_blocking=True).long())
        sync(device)
        epoch_seconds.append(time.perf_counter() - t0)
    sync(device)
    return time.perf_counter() - start, epoch_seconds


def gpu_idle_share(train, device):
    """Share of the wall time of ``train()`` in which no kernel ran on the GPU:
    1 - (the summed kernel time from torch.profiler) / (the wall time)."""
    from torch.profiler import ProfilerActivity, profile

    _common.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        train()
        _common.synchronize(device)
        wall = time.perf_counter() - t0
    busy = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6
    return max(0.0, 1.0 - busy / wall), busy, wall


def gpu_checks(X, y, cfg, device, log):
    """CUDA only: fit against the DataLoader loop in bf16, and the share of
    each step in which the GPU idles, for both."""
    common = {"device": device, "precision": "bf16", "compile": False, "random_state": 0}
    epochs = cfg["epochs"]
    out = {}
    train_with_dataloader(X[:4 * cfg["batch_size"]], y[:4 * cfg["batch_size"]], cfg,
                          epochs=1, **common)  # warm-up
    for who, run in (("sksegment", lambda: train_sksegment(X, y, cfg, epochs=epochs, **common)),
                     ("dataloader", lambda: train_with_dataloader(X, y, cfg, epochs=epochs,
                                                                  **common))):
        seconds = [run() for _ in range(cfg["repeats"])]
        steady = [len(X) * (epochs - 1) / sum(e[1:]) for _, e in seconds]
        idle, busy, wall = gpu_idle_share(run, device)
        out[who] = {"steady_images_per_s": _common.median(steady), "gpu_idle_share": idle,
                    "kernel_seconds": busy, "wall_seconds": wall}
        log(f"  {who}: {out[who]['steady_images_per_s']:.1f} images/s (epochs 2+), GPU idle "
            f"{100 * idle:.1f} % of the wall time")
    out["ratio"] = _ratio(out["sksegment"]["steady_images_per_s"],
                          out["dataloader"]["steady_images_per_s"])
    return out


# --------------------------------------------------------------------------- #
# skorch
# --------------------------------------------------------------------------- #
SKORCH_HAND_WRITTEN = [
    ("a module wrapper that turns the uint8 batch into float32 / 255 (skorch passes "
    "NumPy arrays to the module as they are)"),
    "a channel axis on X (skorch takes (N, C, H, W); sksegment takes (N, H, W))",
    "y converted to int64 for CrossEntropyLoss (a full copy, 8x the uint8 masks)",
    "criterion=nn.CrossEntropyLoss (the default NLLLoss expects probabilities)",
    "train_split=None (the default 5-fold stratified split needs a 1-D y)",
    "iterator_train__shuffle=True (skorch does not shuffle by default)",
    ("predict_nonlinearity=None (the 'auto' softmax runs over the last axis, "
    "the image width, not the class axis)"),
]


def train_skorch(X, y, cfg, *, epochs, device, random_state):
    """The same training through skorch.NeuralNet; returns (seconds, per-epoch seconds)."""
    import skorch

    from sksegment.models import UNet

    class ScaledInput(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x.float() / 255)

    n_classes = int(y.max()) + 1
    with _common.timer(device) as t:
        torch.manual_seed(init_seed(random_state))
        module = ScaledInput(UNet(1, n_classes, depth=cfg["depth"], width=cfg["width"]))
        net = skorch.NeuralNet(
            module=module, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
            lr=1e-3, batch_size=cfg["batch_size"], max_epochs=epochs, train_split=None,
            iterator_train__shuffle=True, predict_nonlinearity=None, device=str(device),
            verbose=0)
        net.fit(X[:, None], y.astype(np.int64))
    return t.seconds, [float(h["dur"]) for h in net.history]


def skorch_available():
    try:
        import skorch  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- #
# one comparison
# --------------------------------------------------------------------------- #
#: The hand loops compared with sksegment: the typical one (the batch as
#: ``from_numpy(...).float() / 255`` gives NCHW memory), and the same loop
#: with the model and each batch in channels_last memory, the layout
#: sksegment's batches have (see the README).
HANDS = {"hand": False, "hand_channels_last": True}


def compare(X, y, cfg, *, device, precision, compile, random_state, log, hands=None):
    """Interleaved repeats of sksegment and the hand loops for one setting."""
    hands = HANDS if hands is None else hands
    epochs, repeats, n = cfg["epochs"], cfg["repeats"], len(X)
    common = {"device": device, "precision": precision, "compile": compile,
              "random_state": random_state}
    warm = slice(0, 2 * cfg["batch_size"])
    # warm-up: kernels, allocator, oneDNN primitive caches, compilation caches
    train_sksegment(X[warm], y[warm], cfg, epochs=1, **common)
    for channels_last in hands.values():
        train_by_hand(X[warm], y[warm], cfg, epochs=1, channels_last=channels_last, **common)
    names = ["sksegment", *hands]
    runs = {name: [] for name in names}
    for r in range(repeats):
        # rotate the order so that no side is always first or last
        order = names[r % len(names):] + names[:r % len(names)]
        for who in order:
            if who == "sksegment":
                total, per_epoch = train_sksegment(X, y, cfg, epochs=epochs, **common)
            else:
                total, per_epoch = train_by_hand(X, y, cfg, epochs=epochs,
                                                 channels_last=hands[who], **common)
            runs[who].append({"seconds": total, "epoch_seconds": per_epoch})
            log(f"  repeat {r + 1}/{repeats} {who:18s}: {total:7.2f} s "
                f"({n * epochs / total:7.1f} images/s end to end; epochs "
                + ", ".join(f"{s:.2f}" for s in per_epoch) + " s)")
    return summarize(runs, n, epochs)


def summarize(runs, n, epochs):
    out = {}
    for who, rs in runs.items():
        e2e = [n * epochs / r["seconds"] for r in rs]
        steady = [n * (epochs - 1) / sum(r["epoch_seconds"][1:]) for r in rs
                  if epochs > 1 and sum(r["epoch_seconds"][1:]) > 0]
        out[who] = {"runs": rs,
                    "images_per_s": _common.median(e2e),
                    "steady_images_per_s": _common.median(steady)}
    sk = out["sksegment"]
    out["ratios"] = {}
    for who in runs:
        if who == "sksegment":
            continue
        pairs = [h["seconds"] / s["seconds"] for s, h in zip(runs["sksegment"], runs[who])]
        out["ratios"][who] = {
            "end_to_end": _ratio(sk["images_per_s"], out[who]["images_per_s"]),
            "end_to_end_pairs_median": _common.median(pairs),
            "steady": _ratio(sk["steady_images_per_s"], out[who]["steady_images_per_s"]),
        }
    return out


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats of each side (default: 5)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per training run (default: from the configuration)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak TFLOP/s of the GPU for the share of peak (default: "
                             "from a table of known GPUs)")
    args = parser.parse_args(argv)
    device = _common.resolve_device(args.device)
    machine = _common.machine_info(device)
    mode = "quick" if args.quick else "full"
    cfg = dict(CONFIGS["cuda" if device.type == "cuda" else "cpu"][mode])
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        cfg["repeats"] = args.repeats
    if args.epochs is not None:
        if args.epochs < 2:
            parser.error("--epochs must be >= 2 (the steady-state figure leaves out epoch 1)")
        cfg["epochs"] = args.epochs

    from sksegment.datasets import make_shapes
    from sksegment.models import UNet

    X, y = make_shapes(n_samples=cfg["n_images"], image_size=cfg["image_size"], n_classes=3,
                       random_state=0)
    n_classes = int(y.max()) + 1
    macs = conv_macs_per_image(UNet(1, n_classes, cfg["depth"], cfg["width"]).to(device), 1,
                               cfg["image_size"], device)
    train_flops = 3 * 2 * macs  # forward, plus a backward pass of about twice its cost

    print(f"# bench_overhead ({mode}) on {machine['device_name']}")
    print(f"data: {X.shape} {X.dtype}, {n_classes} classes; UNet depth {cfg['depth']} "
          f"width {cfg['width']}; batch {cfg['batch_size']}; {cfg['epochs']} epochs x "
          f"{cfg['repeats']} interleaved repeats; {macs / 1e9:.3f} GMAC per image forward")

    if device.type == "cuda":
        variants = [("fp32", {"precision": "fp32", "compile": False}),
                    ("bf16", {"precision": "bf16", "compile": False}),
                    ("bf16 + compile", {"precision": "bf16", "compile": True})]
    else:
        variants = [("fp32", {"precision": "fp32", "compile": False})]
        print("CPU: fp32 only; the bf16 and torch.compile variants run on CUDA devices only "
              "(skipped).")

    if any(v["compile"] for _, v in variants):
        # every fit builds a new network; let dynamo keep the compiled graphs
        # of all of them instead of falling back to eager after 8
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)

    results = {"config": cfg, "n_classes": n_classes, "macs_per_image": macs,
               "train_flops_per_image": train_flops, "variants": {}}
    if device.type != "cuda":
        results["gpu_variants"] = "skipped: CPU device"
    for label, v in variants:
        print(f"variant {label}:")
        res = compare(X, y, cfg, device=device, random_state=0, log=print, **v)
        res["settings"] = v
        if device.type == "cuda":
            peak = peak_tflops(machine["device_name"], v["precision"], args.peak_tflops)
            for who in ("sksegment", *HANDS):
                ips = res[who]["steady_images_per_s"] or res[who]["images_per_s"]
                achieved = ips * train_flops / 1e12
                res[who]["achieved_tflops"] = achieved
                res[who]["share_of_peak"] = None if peak is None else achieved / peak
            res["peak_tflops"] = peak
        results["variants"][label] = res

    if device.type == "cuda":
        print("bf16: fit against a DataLoader(num_workers=4, pin_memory=True) loop:")
        try:
            results["dataloader"] = gpu_checks(X, y, cfg, device, print)
        except Exception as exc:  # noqa: BLE001  (reported in the table, not hidden)
            results["dataloader"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        results["dataloader"] = "not measured: needs a CUDA device"

    if skorch_available():
        print("skorch (fp32):")
        try:
            skorch_runs = [train_skorch(X, y, cfg, epochs=cfg["epochs"], device=device,
                                        random_state=0)
                           for _ in range(max(1, cfg["repeats"] // 2))]
            ips = [len(X) * cfg["epochs"] / s for s, _ in skorch_runs]
            results["skorch"] = {"images_per_s": _common.median(ips),
                                 "hand_written": SKORCH_HAND_WRITTEN}
        except Exception as exc:  # noqa: BLE001  (reported in the table, not hidden)
            results["skorch"] = {"error": f"{type(exc).__name__}: {exc}",
                                 "hand_written": SKORCH_HAND_WRITTEN}
    else:
        results["skorch"] = "skorch not installed"
    print(f"skorch: {results['skorch'] if isinstance(results['skorch'], str) else 'run'}")

    markdown = render(results, machine, mode)
    _common.finish(args, "overhead", machine, results, markdown)
    return results


def render(results, machine, mode):
    cfg = results["config"]
    lines = [f"Machine: {_common.machine_line(machine)}.", "",
             (f"Mode `{mode}`: {cfg['n_images']} uint8 images {cfg['image_size']}x"
              f"{cfg['image_size']}, 3 classes, UNet depth {cfg['depth']} width "
              f"{cfg['width']}, batch {cfg['batch_size']}, Adam lr 1e-3, cross entropy, "
              f"{cfg['epochs']} epochs per run, {cfg['repeats']} interleaved repeats "
              f"(median); {results['macs_per_image'] / 1e9:.3f} GMAC per image forward. "
              "Images per second; ratio = sksegment / hand loop."), ""]
    has_peak = any("share_of_peak" in r["sksegment"] for r in results["variants"].values())
    for key, title in (("images_per_s", "end to end"), ("steady_images_per_s", "epochs 2+")):
        ratio_key = "end_to_end" if key == "images_per_s" else "steady"
        header = [f"variant ({title})", "sksegment", "hand loop", "ratio",
                  "hand loop, channels_last", "ratio"]
        if has_peak and key == "steady_images_per_s":
            header += ["sksegment TFLOP/s", "share of peak"]
        rows = []
        for label, r in results["variants"].items():
            row = [label, _common.fmt(r["sksegment"][key], 1)]
            for who in HANDS:
                row += [_common.fmt(r[who][key], 1),
                        _common.fmt(r["ratios"][who][ratio_key], 3)]
            if has_peak and key == "steady_images_per_s":
                share = r["sksegment"].get("share_of_peak")
                row += [_common.fmt(r["sksegment"].get("achieved_tflops"), 1),
                        "n/a" if share is None else f"{100 * share:.1f} %"]
            rows.append(row)
        lines += [_common.table(header, rows), ""]
    if "gpu_variants" in results:
        lines.append("bf16 and torch.compile variants: skipped (CPU device).")
    dl = results.get("dataloader")
    if isinstance(dl, str):
        lines.append(f"DataLoader baseline and GPU idle share: {dl}.")
    elif dl is not None and "error" in dl:
        lines.append(f"DataLoader baseline: failed ({dl['error']}).")
    elif dl is not None:
        lines += ["", _common.table(
            ["bf16, epochs 2+", "images/s", "GPU idle share of the wall time"],
            [[who, _common.fmt(dl[who]["steady_images_per_s"], 1),
              f"{100 * dl[who]['gpu_idle_share']:.1f} %"] for who in ("sksegment", "dataloader")]),
            "", (f"fit / DataLoader loop: {_common.fmt(dl['ratio'], 3)} (goal >= 1.0; GPU idle "
            "share goal < 10 %)."), ""]
    sk = results["skorch"]
    if isinstance(sk, str):
        lines.append(f"skorch: {sk}.")
    elif "error" in sk:
        lines.append(f"skorch: failed ({sk['error']}).")
    else:
        lines.append(f"skorch (fp32): {_common.fmt(sk['images_per_s'], 1)} img/s end to end.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
