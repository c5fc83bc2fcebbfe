"""Segmentation quality for a training-time budget: CNNSegmenter with its
defaults alone, against a hand-tuned configuration and scikit-image's
trainable segmenter (a random forest on multiscale features).

Membrane (ISBI 2012, the real data): train on slices 00-23, test on 24-29
(the slices are consecutive sections of one volume, so the test block is
contiguous).

- defaults: ``CNNSegmenter(max_time=T, random_state=0)`` and nothing else:
  the data-driven choices (patch, depth, batch, normalisation, norm layers)
  and the default loss, schedule and augmentation.
- tuned: the configuration tuned by hand on these slices before the defaults
  became data-driven (U-Net depth 3, width 16, 128x128 patches, batch 8,
  ``0.5*dice+0.5*cross_entropy``, learning rate 3e-3 one-cycle, batch norm,
  no normalisation beyond 1/255), with the default augmentation
  (``augment="auto"``) and without test-time augmentation (as it was
  tuned), given the same ``max_time``.
- random forest: ``skimage.feature.multiscale_basic_features`` (intensity,
  edges, texture; sigma 1 to 16) per image, ``RandomForestClassifier(
  n_estimators=50, max_depth=10, n_jobs=-1)`` fitted with
  ``skimage.future.fit_segmenter`` on a random subsample of the training
  pixels, ``predict_segmenter`` per test image. Its fit time includes the
  training features.

Shapes (synthetic, RGB): ``make_shapes(n_channels=3)`` with five classes at
96x96 (160 training and 40 test images), and with four classes at 256x256
(60 training and 20 test images: larger images, fewer epochs in the
budget); the defaults against the defaults the library had before (depth 4,
batch 8, whole images, cross entropy, Adam 1e-3 constant, no augmentation,
no normalisation, batch norm, fp32 on the CPU), both with the same
``max_time``. They check that the rules are not tuned to grayscale membranes
alone.

Reported: mean IoU, Dice of the membrane class (label 0; mean Dice for the
shapes), pixel accuracy, fit seconds (the CNN's include its fingerprint and
validation), epochs and the choices the defaults made.

The membrane folder is ``--data``, else ``$SKSEGMENT_MEMBRANE``, else
``../shared/data/membrane`` beside the repository; without it the membrane
part is skipped and said so.
"""

import os
import warnings
from functools import partial
from pathlib import Path

import _common
import numpy as np

TRAIN = slice(0, 24)
TEST = slice(24, 30)
MEMBRANE = 0  # label value of the membrane class

BUDGETS = {"quick": (60.0,), "full": (60.0, 180.0, 600.0)}
SHAPES_BUDGET = {"quick": 30.0, "full": 60.0}
RF_PIXELS_PER_IMAGE = 4000
#: The synthetic RGB sets: make_shapes arguments and the training images.
SHAPES = {"shapes": dict(n_samples=200, image_size=96, n_classes=5, n_train=160),
          "large shapes": dict(n_samples=80, image_size=256, n_classes=4, n_train=60)}

TUNED = dict(depth=3, width=16, patch_size=128, batch_size=8,
             loss="0.5*dice+0.5*cross_entropy", learning_rate=3e-3, lr_schedule="onecycle",
             norm="batch", normalize=None, tta=False)
OLD_DEFAULTS = dict(depth=4, width=16, patch_size=None, batch_size=8, loss="cross_entropy",
                    optimizer="adam", learning_rate=1e-3, lr_schedule="constant", norm="batch",
                    normalize=None, augment=None, precision="fp32")


def find_data(arg):
    """The membrane folder from --data, $SKSEGMENT_MEMBRANE or the default; None
    when absent."""
    candidates = [arg] if arg else []
    if not arg and os.environ.get("SKSEGMENT_MEMBRANE"):
        candidates.append(os.environ["SKSEGMENT_MEMBRANE"])
    if not candidates:
        candidates.append(_common.REPO_ROOT.parent / "shared" / "data" / "membrane")
    for c in candidates:
        p = Path(c)
        if (p / "images").is_dir() and (p / "masks").is_dir():
            return p
    return None


def scores(y_true, y_pred, focus=MEMBRANE):
    from sksegment.metrics import dice_score, mean_iou, pixel_accuracy

    labels = np.unique(y_true)
    dice = dice_score(y_true, y_pred, labels=labels, average=None)
    return {"mean_iou": float(mean_iou(y_true, y_pred)),
            "dice": float(dice[list(labels).index(focus)] if focus is not None
                          else np.mean(dice)),
            "pixel_accuracy": float(pixel_accuracy(y_true, y_pred))}


def run_cnn(X, y, X_test, y_test, params, budget, device, log, name, focus=MEMBRANE):
    from sksegment import CNNSegmenter

    seg = CNNSegmenter(max_time=budget, random_state=0, device=str(device), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with _common.timer(device) as t:
            seg.fit(X, y)
    with _common.timer(device) as tp:
        pred = seg.predict(X_test)
    res = scores(y_test, pred, focus)
    res.update(fit_seconds=t.seconds, predict_seconds_per_image=tp.seconds / len(pred),
               epochs=int(seg.n_iter_), budget_seconds=budget,
               choices={"patch_size": seg.patch_size_, "batch_size": seg.batch_size_,
                        "depth": seg.depth_, "norm": seg.norm_,
                        "normalize": seg.normalization_ and seg.normalization_["kind"],
                        "augment": _augment_name(seg.augment_), "tta": seg._tta()})
    log(f"{name} ({budget:.0f} s): fit {t.seconds:.1f} s, {seg.n_iter_} epochs, "
        f"choices {res['choices']}, mean IoU {res['mean_iou']:.4f}")
    return res


def _augment_name(augmenters):
    if not augmenters:
        return None
    flips = {"RandomFlip", "RandomRotate90"}
    names = [type(a).__name__ for a in augmenters]
    return "flips" if set(names) <= flips else "flips and changes"


def run_forest(X, y, pixels_per_image, log):
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    features = partial(multiscale_basic_features, intensity=True, edges=True, texture=True,
                       sigma_min=1, sigma_max=16)
    values = np.unique(y[TRAIN])  # label values; the forest sees 1..K, 0 = unlabelled
    rng = np.random.RandomState(0)
    with _common.timer() as t:
        train_features = np.stack([features(img).astype(np.float32) for img in X[TRAIN]])
        sparse = np.zeros(y[TRAIN].shape, dtype=np.uint8)
        for i, mask in enumerate(y[TRAIN]):
            picked = rng.choice(mask.size, size=pixels_per_image, replace=False)
            sparse[i].flat[picked] = np.searchsorted(values, mask.flat[picked]) + 1
        clf = RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=-1, random_state=0)
        fit_segmenter(sparse, train_features, clf)
    fit_seconds = t.seconds
    del train_features
    with _common.timer() as t:
        pred = np.stack([values[predict_segmenter(features(img).astype(np.float32), clf) - 1]
                         for img in X[TEST]])
    res = scores(y[TEST], pred)
    res.update(fit_seconds=fit_seconds, predict_seconds_per_image=t.seconds / len(pred),
               training_pixels=int(pixels_per_image * len(X[TRAIN])))
    log(f"random forest: fit {fit_seconds:.1f} s, mean IoU {res['mean_iou']:.4f}")
    return res


def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with images/ and masks/")
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="seconds of training (default: 60 quick; 60 180 600 full)")
    parser.add_argument("--skip-forest", action="store_true")
    parser.add_argument("--skip-tuned", action="store_true")
    parser.add_argument("--skip-shapes", action="store_true")
    parser.add_argument("--ablation", type=float, default=None, metavar="SECONDS",
                        help="instead: the defaults against one change each (loss, schedule, "
                             "learning rate, norm layers, normalisation, augmentation, patch "
                             "rule, Dice without the background, test-time augmentation) on "
                             "the membrane data, each with this max_time")
    args = parser.parse_args(argv)
    if args.ablation is not None:
        return ablation(args)
    mode = "quick" if args.quick else "full"
    budgets = tuple(args.budgets or BUDGETS[mode])
    if min(budgets) <= 0:
        parser.error("--budgets must be > 0 seconds")
    device = _common.resolve_device(args.device)
    machine = _common.machine_info(device)
    results = {"budgets": budgets}

    path = find_data(args.data)
    if path is None:
        print("membrane data not found (looked at --data, $SKSEGMENT_MEMBRANE and "
              "../shared/data/membrane): membrane part skipped")
    else:
        from sksegment.datasets import load_membrane

        X, y = load_membrane(path)
        print(f"# bench_quality ({mode}) on {machine['device_name']}: membrane {X.shape}")
        if not args.skip_forest:
            results["random_forest"] = run_forest(X, y, RF_PIXELS_PER_IMAGE, print)
        results["defaults"] = [run_cnn(X[TRAIN], y[TRAIN], X[TEST], y[TEST], {}, b, device,
                                       print, "defaults") for b in budgets]
        if not args.skip_tuned:
            results["tuned"] = [run_cnn(X[TRAIN], y[TRAIN], X[TEST], y[TEST], TUNED, b, device,
                                        print, "tuned") for b in budgets]
    if not args.skip_shapes:
        from sksegment.datasets import make_shapes

        b = SHAPES_BUDGET[mode]
        for key, spec in SHAPES.items():
            spec = dict(spec)
            n = spec.pop("n_train")
            Xs, ys = make_shapes(**spec, n_channels=3, random_state=0)
            results[key] = {
                name: run_cnn(Xs[:n], ys[:n], Xs[n:], ys[n:], params, b, device, print,
                              f"{key} {name}", focus=None)
                for name, params in (("defaults", {}), ("previous defaults", OLD_DEFAULTS))}
    markdown = render(results, machine, mode)
    _common.finish(args, "quality", machine, results, markdown)
    return results


#: One change each from the defaults, for --ablation.
ABLATION = (
    ("defaults", {}),
    ("loss cross_entropy", {"loss": "cross_entropy"}),
    ("constant learning rate 1e-3", {"lr_schedule": "constant", "learning_rate": 1e-3}),
    ("learning rate 1e-3", {"learning_rate": 1e-3}),
    ("batch norm", {"norm": "batch"}),
    ("no normalisation", {"normalize": None}),
    ("no augmentation", {"augment": None}),
    ("patches of 128, batch 8, depth 3", {"patch_size": 128, "batch_size": 8, "depth": 3}),
    ("Dice without the background class", {"loss_params": {"dice": {"include_background": False}}}),
    ("affine and intensity changes from the first epoch", "extras"),
    ("no test-time augmentation", {"tta": False}),
)


def _ablation_params(params):
    """A row's parameters; "extras" is the default chain with the changes
    whatever the budget (the 8 test-time views kept, as the defaults')."""
    if params == "extras":
        from sksegment._planning import default_augmenters

        return {"augment": default_augmenters(1, extras=True), "tta": True}
    return params


def ablation(args):
    """The defaults against one change each, on the membrane data."""
    device = _common.resolve_device(args.device)
    machine = _common.machine_info(device)
    path = find_data(args.data)
    if path is None:
        print("membrane data not found: ablation skipped")
        return None
    from sksegment.datasets import load_membrane

    X, y = load_membrane(path)
    rows = {name: run_cnn(X[TRAIN], y[TRAIN], X[TEST], y[TEST], _ablation_params(params),
                          args.ablation, device, print, name)
            for name, params in ABLATION}
    header = ["change from the defaults", "mean IoU", "Dice", "pixel accuracy", "fit s",
              "epochs", "choices"]
    markdown = "\n".join([f"Machine: {_common.machine_line(machine)}.", "",
                           (f"Membrane, train 00-23, test 24-29, max_time={args.ablation:.0f} s "
                           "each."), "",
                           _common.table(header, [_row(n, r) for n, r in rows.items()])])
    _common.finish(args, "quality_ablation", machine, {"ablation": rows}, markdown)
    return rows


def _row(name, r):
    return [name, _common.fmt(r["mean_iou"], 4), _common.fmt(r["dice"], 4),
            _common.fmt(r["pixel_accuracy"], 4), _common.fmt(r["fit_seconds"], 1),
            str(r.get("epochs", "")), _choices(r.get("choices"))]


def _choices(c):
    if not c:
        return ""
    patch = "whole images" if c["patch_size"] is None else "x".join(map(str, c["patch_size"]))
    text = (f"patch {patch}, batch {c['batch_size']}, depth {c['depth']}, {c['norm']} norm, "
            f"normalize {c['normalize']}")
    if "augment" in c:  # older result files lack them
        text += f", augment {c['augment']}, tta {c['tta']}"
    return text


def render(results, machine, mode):
    header = ["method", "mean IoU", "Dice", "pixel accuracy", "fit s", "epochs", "choices"]
    lines = [f"Machine: {_common.machine_line(machine)}.", ""]
    if "defaults" in results:
        rows = []
        for i, b in enumerate(results["budgets"]):
            rows.append(_row(f"defaults, max_time={b:.0f}", results["defaults"][i]))
            if "tuned" in results:
                rows.append(_row(f"tuned, max_time={b:.0f}", results["tuned"][i]))
        if "random_forest" in results:
            rows.append(_row("scikit-image features + random forest", results["random_forest"]))
        lines += [(f"Membrane, mode `{mode}`: train on slices 00-23, test on 24-29 (512x512); "
                  "Dice of the membrane class."), "", _common.table(header, rows), ""]
    for key, spec in SHAPES.items():
        if key not in results:
            continue
        rows = [_row(name, r) for name, r in results[key].items()]
        b = next(iter(results[key].values()))["budget_seconds"]
        n_test = spec["n_samples"] - spec["n_train"]
        size = spec["image_size"]
        title = (f"{key.capitalize()} (RGB, {spec['n_classes']} classes, {size}x{size}; "
                 f"{spec['n_train']} training and {n_test} test images), "
                 f"max_time={b:.0f} s for both; mean Dice over the classes.")
        lines += [""] * (lines[-1] != "") + [title, "", _common.table(header, rows), ""]
    return "\n".join(lines).rstrip("\n")


if __name__ == "__main__":
    main()
