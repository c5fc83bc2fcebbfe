"""Prediction benchmark: ``iter_predictions`` against a raw forward pass.

Measures, on one small U-Net (``sksegment.models.UNet``, eval mode):

* whole-image throughput (megapixels per second) of ``iter_predictions``
  (conversion of each uint8 batch, softmax, copy to NumPy channels last, or
  class indices) against a bare ``model(x)`` over the same images already
  converted to float tensors on the device; the goal is a ratio >= 0.9;
* the cost of sliding-window tiling (overlap 0.25, Gaussian blending) against
  whole-image prediction of one image, and against a bare forward pass over
  the same tiles (the share of the network in the tiled time);
* the cost of test-time augmentation (8 views for square images, 4 otherwise);
* the peak resident memory growth of predicting one 8192 x 8192 uint8 image
  with ``output="labels"`` (tiled, in row bands; a smaller U-Net), in a fresh
  subprocess: the kernel's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs``; where refused, the peak so far is the baseline,
  as with ``ru_maxrss``).

Times are the best of several runs, the runs of the compared variants
interleaved so that they see the same machine load. On the CPU the figures
(and the ratios) are CPU times of the process (``time.process_time``) with
one torch thread by default: on a shared machine the wall time of the same
work varies several-fold with what else runs, its CPU time hardly. Wall
times are recorded too; on CUDA the wall time is the measure.

Usage: ``python benchmarks/bench_predict.py [--quick] [--json PATH]
[--device DEV] [--threads N] [--rss-size N] [--skip-rss]``.
"""

import argparse
import json
import subprocess
import sys
import time

import _common
import numpy as np
import torch

from sksegment._data import to_tensor
from sksegment._inference import _tile_starts, iter_predictions

MODEL = {"depth": 3, "width": 8}  # throughput, tiling, TTA
RSS_MODEL = {"depth": 2, "width": 4}  # the 8192 x 8192 image (67 megapixels)
SETTINGS = {
    "quick": {"repeat": 3, "whole": (8, 128), "tiling": (512, 128), "tta": (4, 128, 96),
              "rss": 2048},
    "full": {"repeat": 7, "whole": (16, 256), "tiling": (1024, 256), "tta": (4, 256, 192),
             "rss": 8192},
}


def make_unet(depth, width, device, n_classes=2):
    from sksegment.models import UNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return UNet(1, n_classes, depth=depth, width=width).eval().to(device)


def images_of(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 1), dtype=np.uint8)


def best_times(variants, repeat, device):
    """Best time of each callable over ``repeat`` interleaved rounds (after
    one warm-up call each): process CPU time on the CPU, wall time on CUDA.
    Returns ``(times, wall_times)``."""
    for fn in variants.values():
        fn()
    cpu = {name: float("inf") for name in variants}
    wall = dict(cpu)
    for _ in range(repeat):
        for name, fn in variants.items():
            c0 = time.process_time()
            with _common.timer(device) as t:
                fn()
            cpu[name] = min(cpu[name], time.process_time() - c0)
            wall[name] = min(wall[name], t.seconds)
    return (cpu if torch.device(device).type == "cpu" else wall), wall


def _raw(model, batches):
    def run():
        with torch.inference_mode():
            for x in batches:
                model(x)
    return run


def bench_whole(model, device, n, size, repeat):
    images = images_of(n, size, size)
    batch_size = 8
    batches = [to_tensor(images[s:s + batch_size], device) for s in range(0, n, batch_size)]
    factor = model.downsampling_factor

    def ours(output):
        return lambda: list(iter_predictions(model, images, device=device, output=output,
                                             batch_size=batch_size, pad_multiple=factor,
                                             tiling=False))

    t, wall = best_times({"raw forward": _raw(model, batches),
                          "iter_predictions proba": ours("proba"),
                          "iter_predictions labels": ours("labels")}, repeat, device)
    mp = n * size * size / 1e6
    return {"images": [n, size, size], "batch_size": batch_size,
            "seconds": t, "wall_seconds": wall,
            "megapixels_per_s": {k: mp / v for k, v in t.items()},
            "ratio_vs_raw": {k: t["raw forward"] / v for k, v in t.items()}}


def bench_precision(device, n, size, repeat):
    """Prediction at the training precision. A depth-4 width-32 U-Net over
    ``n`` images ``size`` x ``size``, fp32 eager against bf16 autocast (what
    ``predict`` does after a bf16 fit, and with ``precision="auto"`` on a
    CPU with native bf16) and, on CUDA, bf16 with torch.compile. Wall time
    on CUDA, CPU time of the process on the CPU."""
    from sksegment._forward import AutocastForward
    from sksegment._training import try_compile

    model = make_unet(4, 32, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    images = images_of(n, size, size)
    variants = {"fp32 eager": model,
                "bf16": AutocastForward(model, device.type, torch.bfloat16)}
    if device.type == "cuda":
        variants["bf16 + compile"] = AutocastForward(try_compile(model), device.type,
                                                     torch.bfloat16)

    def ours(forward):
        return lambda: list(iter_predictions(forward, images, device=device, output="labels",
                                             batch_size=16, pad_multiple=16, tiling=False))

    seconds, _ = best_times({k: ours(v) for k, v in variants.items()}, repeat, device)
    mp = n * size * size / 1e6
    return {"images": [n, size, size], "wall_seconds": seconds,
            "clock": "CPU" if device.type == "cpu" else "wall",
            "megapixels_per_s": {k: mp / v for k, v in seconds.items()},
            "ratio_vs_fp32": {k: seconds["fp32 eager"] / v for k, v in seconds.items()}}


def bench_tiling(model, device, size, tile, repeat, batch_sizes=(2, 8)):
    image = images_of(1, size, size, seed=1)
    starts = _tile_starts(size, tile, 0.25)
    tiles = np.stack([image[0, y:y + tile, x:x + tile] for y in starts for x in starts])
    factor = model.downsampling_factor
    mp = size * size / 1e6
    out = {"image": [size, size], "tile": tile, "overlap": 0.25, "tiles": len(tiles),
           "network_pixels_per_image_pixel": tiles.size / image.size, "runs": []}
    for batch_size in batch_sizes:
        batches = [to_tensor(tiles[s:s + batch_size], device)
                   for s in range(0, len(tiles), batch_size)]

        def run(tiling, batch_size=batch_size):
            return lambda: next(iter_predictions(model, image, device=device, output="labels",
                                                 batch_size=batch_size, pad_multiple=factor,
                                                 tiling=tiling, tile_size=tile,
                                                 tile_overlap=0.25))

        t, wall = best_times({"whole": run(False), "tiled": run(True),
                              "raw forward over the tiles": _raw(model, batches)},
                             repeat, device)
        out["runs"].append({"batch_size": batch_size, "seconds": t, "wall_seconds": wall,
                            "megapixels_per_s": {k: mp / v for k, v in t.items()}})
    return out


def bench_tta(model, device, n, h, w, repeat):
    images = images_of(n, h, w, seed=2)
    factor = model.downsampling_factor

    def run(tta):
        return lambda: list(iter_predictions(model, images, device=device, output="labels",
                                             batch_size=n, pad_multiple=factor, tiling=False,
                                             tta=tta))

    t, wall = best_times({"plain": run(False), "tta": run(True)}, repeat, device)
    return {"images": [n, h, w], "views": 8 if h == w else 4, "seconds": t,
            "wall_seconds": wall}


# ---------------------------------------------------------------------- #
# peak RSS, in a child process
# ---------------------------------------------------------------------- #
def _status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _rss_child(size, device, threads):
    torch.set_num_threads(threads)
    device = torch.device(device)
    model = make_unet(RSS_MODEL["depth"], RSS_MODEL["width"], device)
    image = images_of(1, size, size, seed=3)
    kw = {"device": device, "output": "labels", "pad_multiple": model.downsampling_factor}
    next(iter_predictions(model, image[:, :600, :600], tiling=True, **kw))  # warm-up
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
        method = "VmHWM after clear_refs"
        before = _status_bytes("VmRSS:")
    except OSError:
        method = "VmHWM, peak before as baseline"
        before = _status_bytes("VmHWM:")
    start, cpu_start = time.perf_counter(), time.process_time()
    out = next(iter_predictions(model, image, **kw))  # tiling="auto" tiles it
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    growth = _status_bytes("VmHWM:") - before
    print(json.dumps({
        "image": [size, size], "method": method,
        "model": "UNet(depth={depth}, width={width}, n_classes=2)".format(**RSS_MODEL),
        "input_bytes": image.nbytes, "output_bytes": out.nbytes, "peak_growth_bytes": growth,
        "wall_seconds": seconds, "cpu_seconds": cpu_seconds,
        "megapixels_per_s": size * size / 1e6 / (cpu_seconds if device.type == "cpu"
                                                  else seconds),
    }))


def bench_rss(size, device, threads):
    cmd = [sys.executable, __file__, "--rss-child", str(size), str(device), str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- #
# report
# ---------------------------------------------------------------------- #
def markdown(machine, results):
    f = _common.fmt
    clock = results["clock"]
    w = results["whole_image"]
    n, h, wd = w["images"]
    lines = [_common.machine_line(machine), "",
             (f"Seconds are the best of {results['repeat']} interleaved runs, as {clock} time "
              "(wall time in brackets)."), "",
             (f"Whole images: {n} x {h}x{wd} uint8, batch {w['batch_size']}, "
              f"{results['model']}."), ""]
    lines.append(_common.table(
        ["variant", "seconds", "megapixels/s", "throughput vs raw forward"],
        [[k, f"{f(v)} ({f(w['wall_seconds'][k])})", f(w["megapixels_per_s"][k], 2),
          f(w["ratio_vs_raw"][k], 2)] for k, v in w["seconds"].items()]))
    t = results["tiling"]
    lines += ["", (f"Tiling one {t['image'][0]}x{t['image'][1]} image: {t['tiles']} tiles of "
                   f"{t['tile']}, overlap {t['overlap']} "
                   f"({t['network_pixels_per_image_pixel']:.2f} network pixels per image "
                   "pixel), output labels."), ""]
    rows = []
    for r in t["runs"]:
        s, ws = r["seconds"], r["wall_seconds"]
        raw = "raw forward over the tiles"
        rows.append([r["batch_size"], f"{f(s['whole'], 2)} ({f(ws['whole'], 2)})",
                     f"{f(s['tiled'], 2)} ({f(ws['tiled'], 2)})",
                     f"{f(s[raw], 2)} ({f(ws[raw], 2)})", f(s["tiled"] / s["whole"], 2),
                     f(s[raw] / s["tiled"], 2)])
    lines.append(_common.table(
        ["batch", "whole s", "tiled s", "raw forward over the tiles s", "tiled / whole",
         "network share of tiled"], rows))
    lines += ["", "Test-time augmentation (whole images, output labels):", ""]
    rows = []
    for r in results["tta"]:
        s, ws = r["seconds"], r["wall_seconds"]
        rows.append(["{} x {}x{}".format(*r["images"]), r["views"],
                     f"{f(s['plain'], 2)} ({f(ws['plain'], 2)})",
                     f"{f(s['tta'], 2)} ({f(ws['tta'], 2)})", f(s["tta"] / s["plain"], 2)])
    lines.append(_common.table(["images", "views", "plain s", "TTA s", "TTA / plain"], rows))
    prec = results.get("precision")
    if isinstance(prec, str):
        lines += ["", f"Prediction at the training precision (bf16 against fp32): {prec}."]
    elif prec and "error" in prec:
        lines += ["", f"Prediction at the training precision: failed ({prec['error']})."]
    elif prec:
        lines += ["", ("Prediction at the training precision: {} x {}x{} uint8, UNet depth 4 "
                       "width 32, batch 16, output labels (goal: bf16 >= 1.5x fp32).").format(
                           *prec["images"]), ""]
        lines.append(_common.table(
            ["variant", "{} s".format(prec.get("clock", "wall")), "megapixels/s",
             "vs fp32 eager"],
            [[k, f(v, 3), f(prec["megapixels_per_s"][k], 1), f(prec["ratio_vs_fp32"][k], 2)]
             for k, v in prec["wall_seconds"].items()]))
    rss = results.get("rss")
    if rss and "error" not in rss:
        mib = 2 ** 20
        lines += ["", (f"Peak RSS growth predicting one {rss['image'][0]}x{rss['image'][1]} "
                       "uint8 image, output labels, defaults (tiling 'auto': tiles of 256, "
                       f"overlap 0.25, batch 8), {rss['model']}, {rss['method']}:"), ""]
        lines.append(_common.table(
            ["input MiB", "output MiB", "peak growth MiB", "growth beyond the output MiB",
             f"{clock} s (wall s)", "megapixels/s"],
            [[f(rss["input_bytes"] / mib, 0), f(rss["output_bytes"] / mib, 0),
              f(rss["peak_growth_bytes"] / mib, 0),
              f((rss["peak_growth_bytes"] - rss["output_bytes"]) / mib, 0),
              (f"{f(rss['cpu_seconds'] if clock == 'CPU' else rss['wall_seconds'], 1)} "
              f"({f(rss['wall_seconds'], 1)})"), f(rss["megapixels_per_s"], 2)]]))
    elif rss:
        lines += ["", "Peak RSS measurement failed: " + rss["error"].splitlines()[-1]]
    return "\n".join(lines)


def main(argv=None):
    parser = _common.make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: see the module docstring)")
    parser.add_argument("--rss-size", type=int, default=None,
                        help="side of the image of the memory measurement "
                             "(default 8192; 2048 with --quick)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the memory measurement")
    parser.add_argument("--rss-child", nargs=3, metavar=("SIZE", "DEVICE", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        size, device, threads = args.rss_child
        _rss_child(int(size), device, int(threads))
        return None

    torch.set_num_threads(args.threads)
    device = _common.resolve_device(args.device)
    mode = "quick" if args.quick else "full"
    cfg = SETTINGS[mode]
    load = _common.wait_for_quiet(tries=0 if args.quick else 4)
    machine = _common.machine_info(device)
    machine["load_average"] = load
    model = make_unet(MODEL["depth"], MODEL["width"], device)
    results = {"model": "UNet(depth={depth}, width={width}, n_classes=2)".format(**MODEL),
               "clock": "CPU" if device.type == "cpu" else "wall", "repeat": cfg["repeat"]}

    print(f"whole-image throughput, {results['model']} ...", flush=True)
    results["whole_image"] = bench_whole(model, device, *cfg["whole"], cfg["repeat"])
    print("tiling ...", flush=True)
    results["tiling"] = bench_tiling(model, device, *cfg["tiling"], cfg["repeat"])
    print("test-time augmentation ...", flush=True)
    n, h, w = cfg["tta"]
    results["tta"] = [bench_tta(model, device, n, h, h, cfg["repeat"]),
                      bench_tta(model, device, n, h, w, cfg["repeat"])]
    from sksegment._training import cpu_has_bf16

    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        print("prediction precision (fp32, bf16[, bf16 + compile]) ...", flush=True)
        try:
            n = 64 if device.type == "cuda" else 16
            results["precision"] = bench_precision(device, n, 256, cfg["repeat"])
        except Exception as exc:  # noqa: BLE001  (reported in the table, not hidden)
            results["precision"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        results["precision"] = "not measured: needs a CUDA device or a CPU with native bf16"
    if not args.skip_rss:
        size = args.rss_size or cfg["rss"]
        print(f"peak RSS growth, one {size}x{size} uint8 image ...", flush=True)
        results["rss"] = bench_rss(size, device, args.threads)
    results["load_average_at_end"] = _common.load_average()
    return _common.finish(args, "prediction", machine, results, markdown(machine, results))


if __name__ == "__main__":
    main()
