"""Peak host memory of ``CNNSegmenter.fit`` on a uint8 data set, against the
size of the data.

Each measurement runs in a fresh Python process. The process imports torch
and sksegment, builds uint8 images (random pixels) and masks (two classes)
chunk by chunk, then reads its resident set size: that is the baseline. It
resets the kernel's peak counter (``/proc/self/clear_refs``, value 5; where
that is refused the peak so far is the baseline instead), runs one epoch of
``fit`` with a small U-Net, and reads the peak (``VmHWM`` in
``/proc/self/status``). Growth = peak - baseline, set against the size of
the images and against the float32 copy of them (4x) that a naive pipeline
makes. Two more kinds of child run one piece each, the same way: the label
scan ``fit`` starts with (``sksegment._data.unique_labels(y)``), and the
float32 copy itself (``torch.from_numpy(X).float().div_(255)``), for a
measured reference.

Two data sizes are measured: growth that stays flat from one to the other
does not scale with the data.

Data on disk (zarr, needs the ``io`` extra), in a temporary folder:

- ``fit_zarr``: the same ``fit`` over a uint8 zarr data set (chunks of one
  image) at growing sizes. The child opens the store read-only; ``fit``
  reads patch windows from it, so growth should stay flat as the data grows.
- ``predict_zarr``: ``predict`` of one large uint8 image in a zarr store
  (chunks of 1024 x 1024; 30,000 x 30,000 in the full run) into a zarr
  output store, with a progress bar (``verbose=1``) on stderr; peak RSS
  growth and megapixels per second.
- ``predict_memory``: ``predict`` of an in-memory crop of that image
  (4096 x 4096 in the full run), for the throughput reference.

The network of the predict runs is fitted for one epoch on a few small
random images before the baseline is read: a U-Net of depth 4 and width 16
on a GPU, of depth 3 and width 4 on a CPU (the memory bound does not depend
on the width; the time does). ``--size``, ``--n``, ``--predict-size`` and ``--crop-size`` change the
sizes (tiny values check that the script runs); ``--skip-lazy`` leaves the
zarr runs out.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common

SIZES = {"quick": (100, 400), "full": (500, 2000)}
LAZY_SIZES = {"quick": (100, 400), "full": (500, 2000, 8000)}
PREDICT_SIZES = {"quick": (4096, 1024), "full": (30000, 4096)}  # (store image, in-memory crop)
IMAGE_SIZE = 256
KINDS = ("fit", "label_scan", "float32")
LAZY_KINDS = ("fit_zarr", "predict_zarr", "predict_memory")
#: fp32: the same arithmetic on every CPU (precision="auto" is bf16 on some).
FIT = {"depth": 2, "width": 4, "batch_size": 8, "patch_size": 128, "max_epochs": 1,
       "precision": "fp32"}
#: The network of the predict runs: a default-sized U-Net on a GPU; on a CPU a
#: narrow one, so that the 30,000 x 30,000 run takes minutes, not hours (the
#: memory bound does not depend on the network's width). One forward pass
#: per tile (tta=False): the memory bound is the same with test-time
#: augmentation, the time 8x.
PREDICT = {"cuda": {"depth": 4, "width": 16, "batch_size": 8, "tta": False},
           "cpu": {"depth": 3, "width": 4, "batch_size": 8, "precision": "fp32", "tta": False}}
STORE_CHUNK = 1024


# --------------------------------------------------------------------------- #
# inside the child process
# --------------------------------------------------------------------------- #
def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak():
    """Reset VmHWM to the current RSS; True when the kernel allowed it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024


def _make_data(n, size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.empty((n, size, size), dtype=np.uint8)
    y = np.empty((n, size, size), dtype=np.uint8)
    for s in range(0, n, 64):  # chunks keep temporaries small
        X[s:s + 64] = rng.integers(0, 256, size=(min(64, n - s), size, size), dtype=np.uint8)
        np.greater(X[s:s + 64], 127, out=y[s:s + 64], casting="unsafe")
    return X, y


def _pattern(top, left, height, width):
    """A deterministic uint8 texture (blobs on a gradient) for any window of a
    large image: the store compresses it like a real image, not like noise."""
    import numpy as np

    yy = np.arange(top, top + height, dtype=np.int64)[:, None]
    xx = np.arange(left, left + width, dtype=np.int64)[None, :]
    blobs = (((yy // 61) * 7 + (xx // 47) * 13) % 5 == 0) * 120
    return (blobs + (yy + xx) % 97 + 20).astype(np.uint8)


def make_zarr_dataset(folder, n, size):
    """uint8 images and masks (n, size, size) in zarr stores, one image per chunk."""
    import zarr

    X = zarr.open(str(Path(folder) / f"X_{n}_{size}.zarr"), mode="w", shape=(n, size, size),
                  chunks=(1, size, size), dtype="uint8")
    y = zarr.open(str(Path(folder) / f"y_{n}_{size}.zarr"), mode="w", shape=(n, size, size),
                  chunks=(1, size, size), dtype="uint8")
    step = max(1, (1 << 24) // (size * size))
    for s in range(0, n, step):
        Xs, ys = _make_data(min(step, n - s), size, seed=s)
        X[s:s + len(Xs)] = Xs
        y[s:s + len(ys)] = ys
    return str(X.store_path), str(y.store_path)


def make_zarr_image(folder, size):
    """One uint8 image (1, size, size) in a zarr store, written chunk by chunk."""
    import zarr

    path = Path(folder) / f"image_{size}.zarr"
    z = zarr.open(str(path), mode="w", shape=(1, size, size),
                  chunks=(1, STORE_CHUNK, STORE_CHUNK), dtype="uint8")
    for top in range(0, size, STORE_CHUNK):
        for left in range(0, size, STORE_CHUNK):
            h, w = min(STORE_CHUNK, size - top), min(STORE_CHUNK, size - left)
            z[0, top:top + h, left:left + w] = _pattern(top, left, h, w)
    return str(path)


def _fitted_predictor(device):
    """A default U-Net fitted for one epoch on a few small images (the
    weights do not matter; the network's size does)."""
    import numpy as np

    from sksegment import CNNSegmenter

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    y = (X > 127).astype(np.uint8)
    settings = PREDICT["cuda" if device.startswith("cuda") else "cpu"]
    return CNNSegmenter(device=device, random_state=0, max_epochs=1, **settings).fit(X, y)


def child_lazy(kind, n, size, device, path, crop, verbose):
    import numpy as np
    import torch
    import zarr

    import sksegment  # noqa: F401

    if device.startswith("cuda"):
        torch.zeros(1, device=device)
    seg = None if kind == "fit_zarr" else _fitted_predictor(device)
    if kind == "fit_zarr":
        x_path, y_path = path.split("::")
        X, y = zarr.open(x_path, mode="r"), zarr.open(y_path, mode="r")
        pixels = int(np.prod(X.shape))
    elif kind == "predict_zarr":
        X = zarr.open(path, mode="r")
        out_path = str(Path(path).with_name(Path(path).stem + "_labels.zarr"))
        out = zarr.open(out_path, mode="w", shape=X.shape, chunks=(1, STORE_CHUNK, STORE_CHUNK),
                        dtype=seg.classes_.dtype)
        pixels = int(np.prod(X.shape))
    else:
        X = np.asarray(zarr.open(path, mode="r")[:1, :crop, :crop])  # read before the baseline
        pixels = int(X.size)
    baseline_kib = _status_kib("VmRSS")
    reset = _reset_peak()
    if not reset:
        baseline_kib = _status_kib("VmHWM")
    with _common.timer(device) as t:
        if kind == "fit_zarr":
            from sksegment import CNNSegmenter

            CNNSegmenter(device=device, random_state=0, **FIT).fit(X, y)
        elif kind == "predict_zarr":
            seg.set_params(verbose=verbose)
            seg.predict(X, out=out)
        else:
            seg.predict(X)
    peak_kib = _status_kib("VmHWM")
    row = {"kind": kind, "n_images": int(X.shape[0]), "image_size": int(X.shape[1]),
           "data_bytes": pixels, "baseline_bytes": baseline_kib * 1024,
           "peak_bytes": peak_kib * 1024, "growth_bytes": (peak_kib - baseline_kib) * 1024,
           "peak_reset": reset, "seconds": t.seconds}
    if kind != "fit_zarr":
        row["megapixels_per_second"] = pixels / 1e6 / t.seconds
    print(json.dumps(row))


def child(kind, n, size, device):
    import numpy as np  # noqa: F401
    import torch

    import sksegment  # noqa: F401  (its import cost belongs to the baseline)

    if device.startswith("cuda"):
        torch.zeros(1, device=device)  # the CUDA context's host memory is baseline too
    X, y = _make_data(n, size)
    baseline_kib = _status_kib("VmRSS")
    reset = _reset_peak()
    if not reset:
        baseline_kib = _status_kib("VmHWM")
    with _common.timer(device) as t:
        if kind == "fit":
            from sksegment import CNNSegmenter

            CNNSegmenter(device=device, random_state=0, **FIT).fit(X, y)
        elif kind == "label_scan":
            from sksegment._data import unique_labels

            unique_labels(y)
        elif kind == "float32":
            Xf = torch.from_numpy(X).float().div_(255)
            assert Xf.dtype == torch.float32
        else:
            raise ValueError(f"unknown kind {kind!r}")
    peak_kib = _status_kib("VmHWM")
    print(json.dumps({"kind": kind, "n_images": n, "image_size": size,
                      "data_bytes": int(X.nbytes), "mask_bytes": int(y.nbytes),
                      "baseline_bytes": baseline_kib * 1024, "peak_bytes": peak_kib * 1024,
                      "growth_bytes": (peak_kib - baseline_kib) * 1024,
                      "peak_reset": reset, "seconds": t.seconds}))


# --------------------------------------------------------------------------- #
# parent
# --------------------------------------------------------------------------- #
def measure(kind, n, size, device, path=None, crop=0, verbose=0):
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--size", str(size),
           "--device", device]
    if path is not None:
        cmd += ["--path", path, "--crop-size", str(crop), "--child-verbose", str(verbose)]
    # the progress bar of predict_zarr goes to this terminal (stderr is not captured)
    out = subprocess.run(cmd, check=False, stdout=subprocess.PIPE,
                         stderr=None if verbose else subprocess.PIPE, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"child {kind} n={n} failed:\n{(out.stderr or '')[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(r):
    line = (f"  {r['kind']:14s} n={r['n_images']:5d} size={r['image_size']:6d}: data "
            f"{r['data_bytes'] / 2**20:8.1f} MiB, baseline {r['baseline_bytes'] / 2**20:7.1f} "
            f"MiB, peak {r['peak_bytes'] / 2**20:7.1f} MiB, growth "
            f"{r['growth_bytes'] / 2**20:7.1f} MiB ({r['seconds']:.1f} s")
    if "megapixels_per_second" in r:
        line += f", {r['megapixels_per_second']:.2f} MP/s"
    print(line + ")")


def measure_lazy(args, mode, device):
    """The zarr runs; the stores live in a temporary folder removed afterwards."""
    try:
        import zarr  # noqa: F401
    except ImportError:
        print("  zarr runs skipped: zarr is not installed (pip install -e '.[io]')")
        return []
    rows = []
    folder = tempfile.mkdtemp(prefix="sksegment-bench-", dir=args.workdir)
    try:
        size = args.size
        for n in args.n or LAZY_SIZES[mode]:
            x_path, y_path = make_zarr_dataset(folder, n, size)
            rows.append(measure("fit_zarr", n, size, device, f"{x_path}::{y_path}"))
            _report(rows[-1])
            shutil.rmtree(x_path, ignore_errors=True)
            shutil.rmtree(y_path, ignore_errors=True)
        big = args.predict_size or PREDICT_SIZES[mode][0]
        crop = min(big, args.crop_size or PREDICT_SIZES[mode][1])
        path = make_zarr_image(folder, big)
        rows.append(measure("predict_zarr", 1, big, device, path, crop, verbose=1))
        _report(rows[-1])
        rows.append(measure("predict_memory", 1, crop, device, path, crop))
        _report(rows[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--child", choices=KINDS + LAZY_KINDS, help=argparse_hidden())
    parser.add_argument("--path", default=None, help=argparse_hidden())
    parser.add_argument("--child-verbose", type=int, default=0, help=argparse_hidden())
    parser.add_argument("--n", type=_int_list, default=None,
                        help="image counts of the fit runs, comma-separated (default: "
                             f"{SIZES['quick']} quick, {SIZES['full']} full; zarr fit: "
                             f"{LAZY_SIZES['full']} full)")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE,
                        help=f"image side of the fit runs (default {IMAGE_SIZE})")
    parser.add_argument("--predict-size", type=int, default=None,
                        help="side of the zarr image predicted into a zarr store (default "
                             f"{PREDICT_SIZES['quick'][0]} quick, {PREDICT_SIZES['full'][0]} full)")
    parser.add_argument("--crop-size", type=int, default=None,
                        help="side of the in-memory crop predicted for reference (default "
                             f"{PREDICT_SIZES['quick'][1]} quick, {PREDICT_SIZES['full'][1]} full)")
    parser.add_argument("--skip-lazy", action="store_true", help="leave out the zarr runs")
    parser.add_argument("--workdir", default=None,
                        help="folder for the temporary zarr stores, made if missing "
                             "(default: the system's)")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        os.makedirs(args.workdir, exist_ok=True)
    device = _common.resolve_device(args.device)
    if args.child in LAZY_KINDS:
        child_lazy(args.child, args.n[0], args.size, str(device), args.path, args.crop_size,
                   args.child_verbose)
        return None
    if args.child:
        child(args.child, args.n[0], args.size, str(device))
        return None

    mode = "quick" if args.quick else "full"
    machine = _common.machine_info(device)
    try:
        open("/proc/self/status").close()
    except OSError:
        reason = "needs /proc/self/status (Linux)"
        print(f"skipped: {reason}")
        _common.finish(args, "memory", machine, {}, f"Skipped: {reason}.", skipped=reason)
        return None
    print(f"# bench_memory ({mode}) on {machine['device_name']}")
    rows = []
    for n in args.n or SIZES[mode]:
        for kind in KINDS:
            rows.append(measure(kind, n, args.size, str(device)))
            _report(rows[-1])
    lazy = [] if args.skip_lazy else measure_lazy(args, mode, str(device))
    predict_settings = PREDICT["cuda" if device.type == "cuda" else "cpu"]
    results = {"fit_settings": FIT, "predict_settings": predict_settings, "image_size": args.size,
               "runs": rows, "lazy_runs": lazy}
    markdown = render(results, machine, mode)
    _common.finish(args, "memory", machine, results, markdown)
    return results


def _int_list(text):
    return tuple(int(v) for v in text.split(",") if v.strip())


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def render(results, machine, mode):
    mib = 2 ** 20
    f = results["fit_settings"]
    lines = [f"Machine: {_common.machine_line(machine)}.", "",
             (f"Mode `{mode}`: uint8 images {results['image_size']}x{results['image_size']} "
             f"and uint8 masks (2 classes); `fit` = one epoch of CNNSegmenter(depth="
             f"{f['depth']}, width={f['width']}, batch_size={f['batch_size']}, patch_size="
             f"{f['patch_size']}); `label scan` = `sksegment._data.unique_labels(y)`, the "
             "step of fit that finds the classes; `float32 copy` = "
             "`torch.from_numpy(X).float().div_(255)` alone. Growth = peak RSS (VmHWM) - RSS after import and data creation."), ""]
    rows = []
    for r in results["runs"]:
        data = r["data_bytes"]
        what = {"fit": "CNNSegmenter.fit", "label_scan": "label scan alone (part of fit)",
                "float32": "float32 copy (reference)"}[r["kind"]]
        rows.append([what, r["n_images"], f"{data / mib:.0f}", f"{4 * data / mib:.0f}",
                     f"{r['baseline_bytes'] / mib:.0f}", f"{r['peak_bytes'] / mib:.0f}",
                     f"{r['growth_bytes'] / mib:.0f}", f"{r['growth_bytes'] / data:.2f}",
                     f"{r['growth_bytes'] / (4 * data):.2f}"])
    lines.append(_common.table(
        ["run", "images", "X MiB (uint8)", "float32 X MiB", "baseline MiB", "peak MiB",
         "growth MiB", "growth / X", "growth / float32 X"], rows))
    lazy = results.get("lazy_runs") or []
    fits = [r for r in lazy if r["kind"] == "fit_zarr"]
    if fits:
        lines += ["", ("`fit` over a uint8 zarr data set on disk (chunks of one image, opened "
                      "read-only; the same fit settings): growth should not follow the data."),
                  ""]
        lines.append(_common.table(
            ["images", "X on disk MiB (uint8)", "baseline MiB", "peak MiB", "growth MiB",
             "seconds"],
            [[r["n_images"], f"{r['data_bytes'] / mib:.0f}", f"{r['baseline_bytes'] / mib:.0f}",
              f"{r['peak_bytes'] / mib:.0f}", f"{r['growth_bytes'] / mib:.0f}",
              f"{r['seconds']:.1f}"] for r in fits]))
    preds = [r for r in lazy if r["kind"] != "fit_zarr"]
    if preds:
        p = results["predict_settings"]
        lines += ["", (f"`predict` with a U-Net (depth={p['depth']}, width={p['width']}, "
                       f"batch_size={p['batch_size']}, tiles of 256): one uint8 image in a zarr "
                       f"store (chunks {STORE_CHUNK}x{STORE_CHUNK}) into a zarr output store, "
                       "against an in-memory crop of it into a new array."), ""]
        lines.append(_common.table(
            ["run", "image", "baseline MiB", "peak MiB", "growth MiB", "seconds", "MP/s"],
            [[{"predict_zarr": "zarr -> zarr (out=)", "predict_memory": "in memory"}[r["kind"]],
              f"{r['image_size']}x{r['image_size']}", f"{r['baseline_bytes'] / mib:.0f}",
              f"{r['peak_bytes'] / mib:.0f}", f"{r['growth_bytes'] / mib:.0f}",
              f"{r['seconds']:.1f}", f"{r['megapixels_per_second']:.2f}"] for r in preds]))
    if not all(r["peak_reset"] for r in results["runs"] + lazy):
        lines += ["", ("The kernel refused to reset the peak counter in some runs; there the "
                      "baseline is the peak before fit.")]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
