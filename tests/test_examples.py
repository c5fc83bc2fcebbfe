"""The example scripts run end to end and report what they promise.

Each runs in its own process, from a temporary folder (they write figures),
with few epochs; they are marked slow (``python3 -m pytest -m slow``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.slow


def run_example(name, *args, cwd, env=None):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                         check=False, capture_output=True, text=True, timeout=900,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", cwd=tmp_path)
    iou = float(re.search(r"mean IoU\s+([0-9.]+)", out).group(1))
    assert iou > 0.7, out  # 0.872 measured on 2 CPU cores
    assert (tmp_path / "quickstart.png").stat().st_size > 0


def test_grid_search_losses_prints_a_ranked_table(tmp_path):
    out = run_example("grid_search_losses.py", "--epochs", "1", cwd=tmp_path)
    rows = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\d)\s+([0-9.]+) ±", out, flags=re.MULTILINE)
    assert len(rows) == 8, out  # 4 losses x 2 depths
    ranks = [int(r[0]) for r in rows]
    assert ranks == sorted(ranks)
    assert {r[1] for r in rows} == {"cross_entropy", "dice", "dice+cross_entropy", "focal"}
    assert "best: {" in out


@pytest.mark.parametrize("source", ["synthetic", "membrane"])
def test_train_on_patches_predicts_whole_images(source, tmp_path, request):
    args = ["--epochs", "2", "--figure", "fig.png"]
    if source == "synthetic":
        args.append("--synthetic")
    else:
        args += ["--data", str(request.getfixturevalue("membrane_dir"))]
    out = run_example("train_on_patches.py", *args, cwd=tmp_path)
    assert out.startswith(f"data: {'make_shapes' if source == 'synthetic' else 'membrane'}")
    assert len(re.findall(r"^\s+epoch\s+\d+:", out, flags=re.MULTILINE)) == 2, out
    rows = re.findall(r"^(one pass|256x256 tiles, blended|tiles \+ flips/rot90 TTA)\s+"
                      r"([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+[0-9.]+$", out, flags=re.MULTILINE)
    assert len(rows) == 3, out
    assert all(0 < float(v) <= 1 for row in rows for v in row[1:]), out
    differ = float(re.search(r"\(([0-9.]+) %\)", out).group(1))
    assert differ < 1.0, out  # tiled and one-pass predictions agree
    assert (tmp_path / "fig.png").stat().st_size > 0
