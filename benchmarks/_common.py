"""Helpers shared by the benchmark scripts: command line, machine description,
device handling, timing and JSON output.

Every benchmark script in this folder follows one contract so that
``run_all.py`` can drive it:

- it runs as ``python benchmarks/<script>.py [--quick] [--json PATH] [--device DEV]``;
- ``--quick`` is a short run (all of ``run_all.py --quick`` stays within a
  few minutes on a 2-core CPU);
- ``--json PATH`` writes one JSON object to PATH: ``{"benchmark": name,
  "mode": "quick" | "full", "machine": {...}, "results": {...},
  "markdown": "..."}``. ``markdown`` is the table ``run_all.py`` puts into
  ``benchmarks/README.md`` between ``<!-- BEGIN name:mode -->`` and
  ``<!-- END name:mode -->`` (or ``<!-- BEGIN name -->`` / ``<!-- END name -->``);
- a benchmark that cannot run here (missing data, no GPU) prints why and
  exits 0, with ``"skipped": "<reason>"`` in its JSON.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Root of the repository (the folder holding ``sksegment/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

if str(REPO_ROOT) not in sys.path:
    # the scripts run from a fresh checkout without installing sksegment
    sys.path.insert(0, str(REPO_ROOT))


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #
def make_parser(description):
    """An ``argparse`` parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="short run (smaller data, fewer repeats)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the results as one JSON object to PATH")
    parser.add_argument("--device", default="auto",
                        help='"auto" (CUDA when available, else CPU), "cpu" or "cuda[:i]"')
    return parser


def resolve_device(name):
    """Turn ``--device`` into a ``torch.device`` (the segmenter's own rule);
    exit with its message when the device asked for is not available."""
    from sksegment._training import resolve_device as _resolve

    try:
        return _resolve(name)
    except ValueError as exc:
        raise SystemExit(f"--device: {exc}") from None


# --------------------------------------------------------------------------- #
# machine description
# --------------------------------------------------------------------------- #
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def load_average():
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(device=None):
    """A dict describing the machine, the software and the device used."""
    import numpy as np
    import torch

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": load_average(),
        "commit": _git_commit(),
    }
    try:
        import sksegment

        info["sksegment"] = getattr(sksegment, "__version__", None)
    except ImportError:  # the header must not fail because the package does not import
        info["sksegment"] = None
    if device is not None:
        import torch

        device = torch.device(device)
        info["device"] = str(device)
        if device.type == "cuda":
            info["device_name"] = torch.cuda.get_device_name(device)
        else:
            info["device_name"] = info["cpu"]
    return info


def machine_line(info):
    """One line of Markdown naming the machine, for the top of a table."""
    load = info.get("load_average")
    load_text = "n/a" if not load else " / ".join(f"{v:.2f}" for v in load)
    device = info.get("device", "cpu")
    if device.startswith("cuda"):
        device = f"{device} ({info.get('device_name')})"
    return (f"{info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads), "
            f"{info['ram_gib']} GiB RAM; device {device}; Python {info['python']}, "
            f"torch {info['torch']}, sksegment {info.get('sksegment')} "
            f"(commit {info.get('commit')}); {info['date']}; "
            f"load average at the start {load_text} (1/5/15 min)")


# --------------------------------------------------------------------------- #
# timing
# --------------------------------------------------------------------------- #
def synchronize(device):
    """Wait for queued CUDA work so that a timer measures it (no-op on CPU)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timer(device=None):
    """``with timer(device) as t: ...`` then ``t.seconds``; synchronises CUDA
    before starting and before stopping."""

    class _T:
        seconds = None

    t = _T()
    if device is not None:
        synchronize(device)
    start = time.perf_counter()
    try:
        yield t
    finally:
        if device is not None:
            synchronize(device)
        t.seconds = time.perf_counter() - start


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def wait_for_quiet(threshold=1.5, tries=6, pause=30.0, log=print):
    """Wait (up to ``tries`` pauses) until the 1-minute load average is below
    ``threshold``; return the load average when starting.

    The environment variable ``SKSEGMENT_BENCH_MAX_WAIT`` (seconds) caps the
    total wait; ``run_all.py`` sets it so that a busy machine does not stretch
    a quick run.
    """
    cap = os.environ.get("SKSEGMENT_BENCH_MAX_WAIT")
    if cap is not None:
        try:
            tries = min(tries, int(float(cap) // pause)) if pause > 0 else 0
        except ValueError:
            pass
    for attempt in range(tries + 1):
        load = load_average()
        if load is None or load[0] <= threshold:
            return load
        if attempt < tries:
            log(f"load average {load[0]:.2f} > {threshold}; waiting {pause:.0f} s "
                f"({attempt + 1}/{tries})")
            time.sleep(pause)
    log(f"load average still {load[0]:.2f}; measuring anyway (recorded with the results)")
    return load


# --------------------------------------------------------------------------- #
# output
# --------------------------------------------------------------------------- #
def write_json(path, payload):
    """Write ``payload`` as JSON to ``path`` (atomically; folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    return str(obj)


def finish(args, name, machine, results, markdown, skipped=None):
    """Print the Markdown table and write the JSON file when ``--json`` was given."""
    payload = {"benchmark": name, "mode": "quick" if args.quick else "full",
               "machine": machine, "results": results, "markdown": markdown}
    if skipped is not None:
        payload["skipped"] = skipped
    print(markdown)
    if args.json:
        write_json(args.json, payload)
    return payload


def fmt(value, digits=3):
    """A number for a Markdown table ("n/a" for None)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header, rows):
    """A Markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
