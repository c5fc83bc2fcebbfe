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
"""

import json
import subprocess
import sys

import _common

SIZES = {"quick": (100, 400), "full": (500, 2000)}
IMAGE_SIZE = 256
KINDS = ("fit", "label_scan", "float32")
FIT = {"depth": 2, "width": 4, "batch_size": 8, "patch_size": 128, "max_epochs": 1}


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
def measure(kind, n, size, device):
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--size", str(size),
           "--device", device]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"child {kind} n={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--child", choices=KINDS, help=argparse_hidden())
    parser.add_argument("--n", type=int, default=None, help=argparse_hidden())
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, help=argparse_hidden())
    args = parser.parse_args(argv)
    device = _common.resolve_device(args.device)
    if args.child:
        child(args.child, args.n, args.size, str(device))
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
    for n in SIZES[mode]:
        for kind in KINDS:
            r = measure(kind, n, IMAGE_SIZE, str(device))
            rows.append(r)
            print(f"  {kind:8s} n={n:5d}: data {r['data_bytes'] / 2**20:7.1f} MiB, baseline "
                  f"{r['baseline_bytes'] / 2**20:7.1f} MiB, peak {r['peak_bytes'] / 2**20:7.1f}"
                  f" MiB, growth {r['growth_bytes'] / 2**20:7.1f} MiB ({r['seconds']:.1f} s)")
    results = {"fit_settings": FIT, "image_size": IMAGE_SIZE, "runs": rows}
    markdown = render(results, machine, mode)
    _common.finish(args, "memory", machine, results, markdown)
    return results


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
    if not all(r["peak_reset"] for r in results["runs"]):
        lines += ["", ("The kernel refused to reset the peak counter in some runs; there the "
                      "baseline is the peak before fit.")]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
