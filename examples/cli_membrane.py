"""The ``sksegment`` command line end to end: fit, predict, evaluate, info.

Splits the ISBI 2012 membrane slices into folders (slices 00-23 to train,
24-29 to test: neighbouring slices are correlated, so the test block is
contiguous), then runs, printing each command and what it prints:

    sksegment fit train/images train/masks -o model.joblib --set patch_size=128 ...
    sksegment predict model.joblib test/images -o predictions
    sksegment evaluate model.joblib test/images test/masks --metric ...
    sksegment info model.joblib

A short training (three epochs on 128x128 patches, depth 3, width 8): under two
minutes on 2 CPU cores. Uses the membrane slices when they are found
(``--data PATH``, ``$SKSEGMENT_MEMBRANE`` or ``../shared/data/membrane`` next
to the repository) and synthetic shapes, written to folders with
:func:`sksegment.datasets.save_masks`, otherwise.

    python examples/cli_membrane.py [--data PATH | --synthetic] [--epochs N] [--workdir DIR]
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from skimage import io

from sksegment.datasets import make_shapes, save_masks

REPO = Path(__file__).resolve().parents[1]


def membrane_folder(path, synthetic):
    if synthetic:
        return None
    for candidate in (path, os.environ.get("SKSEGMENT_MEMBRANE"),
                      REPO.parent / "shared" / "data" / "membrane"):
        if candidate and (Path(candidate) / "images").is_dir():
            return Path(candidate)
    return None


def split_membrane(source, workdir):
    """Copy slices 00-23 to train/ and 24-29 to test/ (images and masks)."""
    for part, names in (("train", range(24)), ("test", range(24, 30))):
        for kind in ("images", "masks"):
            folder = workdir / part / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in names:
                shutil.copyfile(source / kind / f"{i:02d}.png", folder / f"{i:02d}.png")


def write_shapes(workdir):
    """Synthetic 256x256 shapes: 16 images to train, 4 to test."""
    X, y = make_shapes(n_samples=20, image_size=256, random_state=0)
    for part, idx in (("train", range(16)), ("test", range(16, 20))):
        names = [f"{i:02d}" for i in idx]
        folder = workdir / part / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in zip(idx, names):
            io.imsave(folder / f"{name}.png", X[i], check_contrast=False)
        save_masks(workdir / part / "masks", y[list(idx)], names=names, overwrite=True)


def sksegment(*args, cwd):
    """Run ``python -m sksegment ARGS`` in ``cwd``, printing the command and
    its output; stop the example when it fails."""
    print(f"\n$ sksegment {shlex.join(args)}", flush=True)
    env = dict(os.environ)
    if (REPO / "sksegment").is_dir():  # run from a checkout: use its sksegment
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "sksegment", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, text=True, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        sys.exit(f"sksegment {args[0]} failed with exit status {done.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="membrane folder (images/, masks/)")
    parser.add_argument("--synthetic", action="store_true",
                        help="use synthetic shapes even where the membrane data are found")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--workdir", default="sksegment_cli_example",
                        help="folder for the data, the model and the predictions "
                             "(default: ./sksegment_cli_example)")
    args = parser.parse_args()

    workdir = Path(args.workdir).resolve()
    for part in ("train", "test", "predictions"):
        shutil.rmtree(workdir / part, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    source = membrane_folder(args.data, args.synthetic)
    if source is not None:
        print(f"data: membrane slices from {source}, in {workdir}")
        split_membrane(source, workdir)
    else:
        print(f"data: synthetic shapes (make_shapes), in {workdir}")
        write_shapes(workdir)

    sksegment("fit", "train/images", "train/masks", "-o", "model.joblib", "--overwrite",
              "--set", "patch_size=128", "--set", "depth=3", "--set", "width=8",
              "--set", f"max_epochs={args.epochs}", "--set", "loss=0.5*dice+0.5*cross_entropy",
              "--set", "random_state=0",
              "--val-images", "test/images", "--val-masks", "test/masks", cwd=workdir)
    sksegment("predict", "model.joblib", "test/images", "-o", "predictions", "--quiet",
              cwd=workdir)
    sksegment("evaluate", "model.joblib", "test/images", "test/masks", "--quiet",
              "--metric", "mean_iou", "--metric", "dice", "--metric", "boundary_f1",
              cwd=workdir)
    sksegment("info", "model.joblib", cwd=workdir)


if __name__ == "__main__":
    main()
