"""Run every benchmark, gather the JSON results and refresh benchmarks/README.md.

Each benchmark runs in its own Python process as
``python benchmarks/<script> --json <out>/<name>.json [--quick] [--device DEV]``
(its output is shown and also saved to ``<out>/<name>.log``). A script that is
missing is reported and skipped; one that fails is reported and the others
still run. Afterwards ``<out>/summary.json`` lists what ran, and each table in
``benchmarks/README.md`` that sits between ``<!-- BEGIN name:mode -->`` and
``<!-- END name:mode -->`` markers (or ``<!-- BEGIN name -->`` /
``<!-- END name -->``) is replaced by the ``markdown`` the benchmark wrote;
nothing outside the markers is touched. ``machine:mode`` markers receive the
machine description and the list of runs.

Usage: ``python benchmarks/run_all.py [--quick] [--out DIR] [--device DEV]
[--only NAME ...] [--no-readme] [--wait-quiet MINUTES]``.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import _common

HERE = Path(__file__).resolve().parent

#: (name, script) in the order they run. The name is also the README marker.
BENCHMARKS = [
    ("overhead", "bench_overhead.py"),
    ("quality", "bench_quality.py"),
    ("memory", "bench_memory.py"),
    ("augmentation", "bench_augmentation.py"),
    ("prediction", "bench_predict.py"),
    ("distributed", "bench_distributed.py"),
]


def run_one(name, script, out_dir, quick, device, timeout):
    """Run one benchmark script; return a status dict (and its JSON, if any)."""
    path = HERE / script
    status = {"name": name, "script": script}
    if not path.exists():
        print(f"== {name}: {script} not found; skipped", flush=True)
        status["status"] = "missing"
        return status, None
    json_path = out_dir / f"{name}.json"
    if json_path.exists():
        json_path.unlink()  # never report a previous run's numbers as this one's
    base = [sys.executable, str(path), "--json", str(json_path)]
    if quick:
        base.append("--quick")
    attempts = [base + ["--device", device], base] if device != "auto" else [base]
    start = time.perf_counter()
    load = _common.load_average()
    status["load_start"] = None if load is None else load[0]
    for cmd in attempts:
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        rc, output = _stream(cmd, out_dir / f"{name}.log", timeout)
        # a script that does not know --device: run it again without
        if rc == 2 and "unrecognized arguments" in output and cmd is not attempts[-1]:
            continue
        break
    status["seconds"] = round(time.perf_counter() - start, 1)
    load = _common.load_average()
    status["load_end"] = None if load is None else load[0]
    status["returncode"] = rc
    payload = None
    if json_path.exists():
        try:
            payload = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            status["json_error"] = str(exc)
    if rc != 0:
        status["status"] = "timeout" if rc is None else "failed"
        status["output_tail"] = output[-2000:]
    elif payload is None:
        status["status"] = "no json"
    elif payload.get("skipped"):
        status["status"] = "skipped"
        status["reason"] = payload["skipped"]
    else:
        status["status"] = "ok"
    print(f"== {name}: {status['status']} in {status['seconds']} s", flush=True)
    return status, payload


def _stream(cmd, log_path, timeout):
    """Run ``cmd``, echo its output live and save it; return (returncode, or
    None when it was killed at ``timeout`` seconds, and the output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    lines = []
    killed = threading.Event()
    with open(log_path, "w") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            cwd=_common.REPO_ROOT) as proc:

        def kill():
            killed.set()
            proc.kill()

        watchdog = threading.Timer(timeout, kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                sys.stdout.write("   " + line)
                sys.stdout.flush()
                log.write(line)
                lines.append(line)
            rc = proc.wait()
        finally:
            watchdog.cancel()
    if killed.is_set():
        return None, "".join(lines) + f"\n[killed after {timeout:.0f} s]\n"
    return rc, "".join(lines)


# --------------------------------------------------------------------------- #
# README
# --------------------------------------------------------------------------- #
def replace_block(text, key, content):
    """Replace what lies between ``<!-- BEGIN key -->`` and ``<!-- END key -->``;
    return (new text, whether the markers were found)."""
    pattern = re.compile(r"(<!-- BEGIN " + re.escape(key) + r" -->\n)(.*?)(<!-- END "
                         + re.escape(key) + r" -->)", re.DOTALL)
    if not pattern.search(text):
        return text, False
    # blank lines around the content keep tables apart from the markers
    body = "\n" + content.strip("\n") + "\n\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text, count=1), True


def update_readme(readme, mode, machine, statuses, payloads):
    text = readme.read_text()
    lines = [f"Machine: {_common.machine_line(machine)}.", "",
             _common.table(["benchmark", "status", "seconds", "load average (1 min) at start",
                            "at end"],
                           [[s["name"], s["status"] + (f" ({s['reason']})" if s.get("reason")
                                                         else ""), s.get("seconds", ""),
                             _common.fmt(s.get("load_start"), 2),
                             _common.fmt(s.get("load_end"), 2)]
                            for s in statuses])]
    text, found = replace_block(text, f"machine:{mode}", "\n".join(lines))
    updated = ["machine"] if found else []
    for status, payload in zip(statuses, payloads):
        if not payload or not payload.get("markdown"):
            continue
        name = payload.get("benchmark") or status["name"]
        for key in (f"{name}:{mode}", name):
            text, found = replace_block(text, key, payload["markdown"])
            if found:
                updated.append(key)
                break
    readme.write_text(text)
    return updated


def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"),
                        help="folder for the JSON results and logs (benchmarks/results)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        choices=[name for name, _ in BENCHMARKS],
                        help="run only these benchmarks")
    parser.add_argument("--no-readme", action="store_true",
                        help="do not rewrite the tables in benchmarks/README.md")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark before it is killed "
                             "(default 600 quick, 1800 full)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="MINUTES",
                        help="first wait up to MINUTES for the 1-minute load average to "
                             "fall below 1.5 (default 0: start at once)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    if args.wait_quiet > 0:
        _common.wait_for_quiet(tries=max(1, int(args.wait_quiet * 2)), pause=30.0)
    timeout = args.timeout or (600.0 if args.quick else 1800.0)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a busy machine may hold each benchmark back a little, not for minutes
    os.environ.setdefault("SKSEGMENT_BENCH_MAX_WAIT", "30" if args.quick else "120")

    machine = _common.machine_info(_common.resolve_device(args.device))
    print(f"run_all ({mode}) on {_common.machine_line(machine)}", flush=True)
    statuses, payloads = [], []
    start = time.perf_counter()
    for name, script in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        status, payload = run_one(name, script, out_dir, args.quick, args.device, timeout)
        statuses.append(status)
        payloads.append(payload)
    total = time.perf_counter() - start
    summary = {"mode": mode, "machine": machine, "seconds": round(total, 1),
               "benchmarks": statuses}
    _common.write_json(out_dir / "summary.json", summary)
    if args.json:
        _common.write_json(args.json, summary)

    print(f"\nrun_all ({mode}) finished in {total:.0f} s; results in {out_dir}")
    for s in statuses:
        print(f"  {s['name']:13s} {s['status']:8s} {s.get('seconds', '')}")
    readme = HERE / "README.md"
    if not args.no_readme and readme.exists():
        updated = update_readme(readme, mode, machine, statuses, payloads)
        print(f"README tables refreshed: {', '.join(updated) if updated else 'none'}")
    failed = [s["name"] for s in statuses if s["status"] in ("failed", "timeout", "no json")]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
