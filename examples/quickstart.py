"""Quickstart: train a U-Net on synthetic shapes, print the mean IoU, save a figure.

Run with ``python examples/quickstart.py`` (under a minute on 2 CPU cores).
"""

import argparse
import sys
import time

from sksegment import CNNSegmenter
from sksegment.datasets import make_shapes
from sksegment.metrics import dice_score, pixel_accuracy

argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, no options

X, y = make_shapes(n_samples=200, image_size=64, random_state=0)
X_train, y_train, X_test, y_test = X[:150], y[:150], X[150:], y[150:]

seg = CNNSegmenter(loss="dice+cross_entropy", depth=3, width=16, max_epochs=15,
                   learning_rate=3e-3, random_state=0)
t0 = time.perf_counter()
seg.fit(X_train, y_train)
print(f"trained {seg.n_iter_} epochs on {seg.device_} in {time.perf_counter() - t0:.1f} s")

y_pred = seg.predict(X_test)
print(f"mean IoU       {seg.score(X_test, y_test):.3f}")
print(f"Dice (macro)   {dice_score(y_test, y_pred, labels=seg.classes_):.3f}")
print(f"pixel accuracy {pixel_accuracy(y_test, y_pred):.3f}")

try:
    import matplotlib

    matplotlib.use("Agg")
    from sksegment.plot import plot_segmentation
except ImportError:
    print("matplotlib is not installed (pip install 'sksegment[plot]'): no figure written")
    sys.exit(0)

fig = plot_segmentation(X_test[0], y_test[0], y_pred[0])
fig.savefig("quickstart.png", dpi=80)
print("wrote quickstart.png")
