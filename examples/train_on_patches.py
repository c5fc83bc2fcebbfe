"""Train on augmented patches, predict whole images in blended tiles.

The ISBI 2012 membrane slices are 512x512. This example trains a U-Net on
128x128 patches inside a scikit-learn Pipeline (a standardiser, random flips,
rotations, a small affine warp and brightness/contrast changes, each batch
augmented afresh on the training device), stops early on held-out slices, and
then predicts the whole held-out slices: once in one pass, once in 256x256
tiles blended with a Gaussian window, and once with test-time augmentation.

Uses the membrane slices when they are found (``--data PATH``,
``$SKSEGMENT_MEMBRANE`` or ``../shared/data/membrane`` next to the repository)
and large synthetic shapes otherwise.

    python examples/train_on_patches.py [--data PATH | --synthetic] [--epochs N]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.pipeline import make_pipeline

from sksegment import (
    CNNSegmenter,
    IntensityStandardizer,
    RandomAffine,
    RandomBrightnessContrast,
    RandomFlip,
    RandomRotate90,
)
from sksegment.datasets import load_membrane, make_shapes
from sksegment.metrics import boundary_f1_score, dice_score, mean_iou


def load_data(path, synthetic=False):
    candidates = [path, os.environ.get("SKSEGMENT_MEMBRANE"),
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "membrane"]
    for candidate in [] if synthetic else candidates:
        if candidate and (Path(candidate) / "images").is_dir():
            X, y = load_membrane(candidate)
            # consecutive slices are correlated: hold out a contiguous block
            return "membrane", (X[:20], y[:20]), (X[20:24], y[20:24]), (X[24:], y[24:])
    X, y = make_shapes(n_samples=30, image_size=384, random_state=0)
    return "make_shapes", (X[:20], y[:20]), (X[20:24], y[20:24]), (X[24:], y[24:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="membrane folder (images/, masks/)")
    parser.add_argument("--synthetic", action="store_true",
                        help="use synthetic shapes even where the membrane data are found")
    parser.add_argument("--epochs", type=int, default=8, help="at most this many epochs")
    parser.add_argument("--figure", default="train_on_patches.png",
                        help="where to write the figure ('' for none)")
    args = parser.parse_args()

    name, (X, y), (X_val, y_val), (X_test, y_test) = load_data(args.data, args.synthetic)
    print(f"data: {name}; train {X.shape}, validation {X_val.shape}, test {X_test.shape}, "
          f"labels {np.unique(y).tolist()}")

    pipe = make_pipeline(
        IntensityStandardizer(),  # fitted on the training images, applied at predict too
        RandomFlip(),
        RandomRotate90(),
        RandomAffine(degrees=10, scale=(0.9, 1.1), p=0.5),
        RandomBrightnessContrast(brightness=0.1, contrast=0.1),
        CNNSegmenter(depth=3, width=16, patch_size=128, batch_size=8,
                     loss="0.5*dice+0.5*cross_entropy", learning_rate=3e-3,
                     lr_schedule="onecycle", max_epochs=args.epochs,
                     early_stopping=True, n_iter_no_change=3,
                     random_state=0, verbose=0),
    )
    t0 = time.perf_counter()
    # the validation slices go to the segmenter as they are; the deterministic
    # steps of the pipeline (the standardiser) are applied to them there
    pipe.fit(X, y, cnnsegmenter__X_val=X_val, cnnsegmenter__y_val=y_val)
    seg = pipe[-1]
    print(f"trained {seg.n_iter_} epochs on {seg.device_} in {time.perf_counter() - t0:.0f} s; "
          f"best validation mean IoU {seg.best_score_:.3f} at epoch {seg.best_epoch_}")
    for record in seg.history_:
        print(f"  epoch {record['epoch']:>2}: train loss {record['train_loss']:.3f}, "
              f"validation {record['val_score']:.3f}, lr {record['lr']:.2g}, "
              f"{record['seconds']:.0f} s")

    print(f"\nwhole {X_test.shape[1]}x{X_test.shape[2]} test images "
          f"(the network saw {seg.patch_size}x{seg.patch_size} patches):")
    print(f"{'prediction':<26} {'mean IoU':>8} {'Dice':>6} {'BF1@2':>6} {'s/image':>8}")
    predictions = {}
    for label, params in [("one pass", {"tiling": False}),
                          ("256x256 tiles, blended", {"tiling": True, "tile_size": 256}),
                          ("tiles + flips/rot90 TTA", {"tiling": True, "tile_size": 256,
                                                       "tta": True})]:
        pipe.set_params(**{f"cnnsegmenter__{k}": v for k, v in params.items()})
        t0 = time.perf_counter()
        y_pred = pipe.predict(X_test)
        seconds = (time.perf_counter() - t0) / len(X_test)
        predictions[label] = y_pred
        print(f"{label:<26} {mean_iou(y_test, y_pred, labels=seg.classes_):>8.3f} "
              f"{dice_score(y_test, y_pred, labels=seg.classes_):>6.3f} "
              f"{boundary_f1_score(y_test, y_pred, labels=seg.classes_):>6.3f} "
              f"{seconds:>8.2f}")
    differ = int(np.sum(predictions["one pass"] != predictions["256x256 tiles, blended"]))
    print(f"one pass and tiles differ on {differ} of {y_test.size} pixels "
          f"({100 * differ / y_test.size:.3f} %)")

    if not args.figure:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        from sksegment.plot import plot_segmentation
    except ImportError:
        print("matplotlib is not installed (pip install 'sksegment[plot]'): no figure written")
        sys.exit(0)
    fig = plot_segmentation(X_test[0], y_test[0], predictions["tiles + flips/rot90 TTA"][0])
    fig.savefig(args.figure, dpi=80)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
