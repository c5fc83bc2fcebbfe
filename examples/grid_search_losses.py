"""Grid-search the loss and the depth of a U-Net like any other hyper-parameter.

Uses the ISBI 2012 membrane slices when they are found (``--data PATH``,
``$SKSEGMENT_MEMBRANE`` or ``../shared/data/membrane`` next to the repository)
and synthetic shapes otherwise. Folds are contiguous blocks of slices, since
neighbouring slices are correlated.

    python examples/grid_search_losses.py [--data PATH] [--epochs N]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from sksegment import CNNSegmenter
from sksegment.datasets import load_membrane, make_shapes
from sksegment.metrics import get_scorer


def load_data(path):
    candidates = [path, os.environ.get("SKSEGMENT_MEMBRANE"),
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "membrane"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "images").is_dir():
            X, y = load_membrane(candidate)
            # 12 slices; with 64x64 patches an epoch is 64 patches per slice
            return "membrane", X[:12], y[:12], {"patch_size": 64}
    X, y = make_shapes(n_samples=96, image_size=48, random_state=0)
    return "make_shapes", X, y, {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="membrane folder (images/, masks/)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fit (default: 1 on membrane, 8 on shapes)")
    args = parser.parse_args()

    name, X, y, extra = load_data(args.data)
    epochs = args.epochs or (1 if name == "membrane" else 8)
    print(f"data: {name}, {X.shape[0]} images of {X.shape[1]}x{X.shape[2]}")
    seg = CNNSegmenter(width=8, batch_size=8, max_epochs=epochs, learning_rate=3e-3,
                       random_state=0, **extra)
    grid = GridSearchCV(
        seg,
        {"loss": ["cross_entropy", "dice", "dice+cross_entropy", "focal"], "depth": [2, 3]},
        scoring={"mean_iou": get_scorer("mean_iou"), "dice": get_scorer("dice")},
        refit="mean_iou", cv=KFold(3), n_jobs=1,
    )
    t0 = time.perf_counter()
    grid.fit(X, y)
    print(f"{len(grid.cv_results_['params'])} candidates x 3 folds in "
          f"{time.perf_counter() - t0:.0f} s\n")

    res = grid.cv_results_
    order = np.argsort(res["rank_test_mean_iou"])
    print(f"{'rank':>4}  {'loss':<20} {'depth':>5}  {'mean IoU':>14}  {'Dice':>14}  {'fit s':>6}")
    for i in order:
        p = res["params"][i]
        print(f"{res['rank_test_mean_iou'][i]:>4}  {p['loss']:<20} {p['depth']:>5}  "
              f"{res['mean_test_mean_iou'][i]:.3f} ± {res['std_test_mean_iou'][i]:.3f}  "
              f"{res['mean_test_dice'][i]:.3f} ± {res['std_test_dice'][i]:.3f}  "
              f"{res['mean_fit_time'][i]:>6.1f}")
    print(f"\nbest: {grid.best_params_}")


if __name__ == "__main__":
    main()
