"""Segmentation quality on the ISBI 2012 membrane data: CNNSegmenter against
scikit-image's trainable segmenter (a random forest on multiscale features).

Both train on slices 00-23 and are scored on slices 24-29 (the slices are
consecutive sections of one volume, so the test block is contiguous).

- sksegment: ``CNNSegmenter`` (U-Net on random 128x128 patches, Dice + cross
  entropy, flips and 90-degree rotations on the device, one-cycle learning
  rate) under a wall-clock budget. A short calibration fit (3 epochs on 4
  of the training images, not counted in the budget, reported) measures an
  epoch (median of epochs 2 and 3, scaled to the 24 images); ``max_epochs``
  is then what fits in the budget. Should the machine
  slow down after the calibration, the fit is interrupted at 1.5 times the
  budget (CNNSegmenter then keeps the weights of its last complete epoch) and
  the table says so.
- random forest: ``skimage.feature.multiscale_basic_features`` (intensity,
  edges, texture; sigma 1 to 16) per image, ``RandomForestClassifier(
  n_estimators=50, max_depth=10, n_jobs=-1)`` fitted with
  ``skimage.future.fit_segmenter`` on a random subsample of the training
  pixels (the other pixels are marked unlabelled, 0, as in scikit-image's
  trainable segmentation example), ``predict_segmenter`` per test image. Its
  fit time includes computing the training features.

Reported for both: mean IoU over the two classes, Dice of the membrane class
(label 0), pixel accuracy, fit seconds and predict seconds per image
(prediction includes feature computation for the forest).

The data folder is ``--data``, else ``$SKSEGMENT_MEMBRANE``, else
``../shared/data/membrane`` beside the repository; without it the script says
so and exits 0.
"""

import os
import signal
import warnings
from functools import partial
from pathlib import Path

import _common
import numpy as np

TRAIN = slice(0, 24)
TEST = slice(24, 30)
MEMBRANE = 0  # label value of the membrane class

BUDGETS = {"quick": 60.0, "full": 180.0}
RF_PIXELS_PER_IMAGE = {"quick": 2000, "full": 4000}
#: The CNN fit is interrupted (keeping its last complete epoch) past this
#: multiple of the budget, which protects the run time on a machine whose
#: load rises after the calibration.
CAP_FACTOR = 1.5


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


def scores(y_true, y_pred):
    from sksegment.metrics import dice_score, mean_iou, pixel_accuracy

    labels = np.unique(y_true)
    dice = dice_score(y_true, y_pred, labels=labels, average=None)
    return {"mean_iou": float(mean_iou(y_true, y_pred)),
            "dice_membrane": float(dice[list(labels).index(MEMBRANE)]),
            "pixel_accuracy": float(pixel_accuracy(y_true, y_pred))}


# --------------------------------------------------------------------------- #
# sksegment
# --------------------------------------------------------------------------- #
def make_segmenter(args, device, max_epochs):
    from sksegment import CNNSegmenter
    from sksegment.augmentation import RandomFlip, RandomRotate90

    return CNNSegmenter(
        depth=args.depth, width=args.width, loss=args.loss, batch_size=args.batch_size,
        patch_size=args.patch_size, learning_rate=args.lr, lr_schedule=args.schedule,
        augment=[RandomFlip(), RandomRotate90()], max_epochs=max_epochs,
        device=str(device), random_state=0)


class _OverBudget(KeyboardInterrupt):
    """Raised by the alarm at the hard cap; fit treats it as an interruption."""


def _fit_capped(seg, X, y, device, cap_seconds):
    """``seg.fit(X, y)``, interrupted (CNNSegmenter keeps the weights of the
    last complete epoch) when it runs past ``cap_seconds``; returns seconds."""
    def alarm(signum, frame):
        raise _OverBudget

    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, cap_seconds)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Training interrupted")
            with _common.timer(device) as t:
                seg.fit(X, y)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return t.seconds


#: Training images of the calibration fit.
CALIBRATION_IMAGES = 4


def calibrate(X, y, args, device):
    """Seconds of a 3-epoch fit on a few training images, and the seconds of
    one epoch over all training images estimated from it (the median of its
    epochs 2 and 3, scaled by the number of images: the slices all have the
    same size, so an epoch's patches are in proportion to the images)."""
    Xc, yc = X[TRAIN][:CALIBRATION_IMAGES], y[TRAIN][:CALIBRATION_IMAGES]
    seg = make_segmenter(args, device, max_epochs=3)
    with _common.timer(device) as t:
        seg.fit(Xc, yc)
    small_epoch = float(np.median([h["seconds"] for h in seg.history_[1:]]))
    return t.seconds, small_epoch * len(X[TRAIN]) / len(Xc)


def run_sksegment(X, y, args, device, budget, log, calibration):
    calibration_seconds, epoch_seconds = calibration
    epochs = max(1, int(budget / epoch_seconds))
    cap = CAP_FACTOR * budget
    log(f"sksegment: calibration {calibration_seconds:.1f} s, {epoch_seconds:.2f} s per "
        f"epoch -> max_epochs={epochs} for a {budget:.0f} s budget (hard cap {cap:.0f} s)")

    seg = make_segmenter(args, device, max_epochs=epochs)
    fit_seconds = _fit_capped(seg, X[TRAIN], y[TRAIN], device, cap)
    interrupted = bool(getattr(seg, "interrupted_", False))
    with _common.timer(device) as t:
        pred = seg.predict(X[TEST])
    predict_seconds = t.seconds / len(pred)
    res = scores(y[TEST], pred)
    res.update(fit_seconds=fit_seconds, predict_seconds_per_image=predict_seconds,
               calibration_seconds=calibration_seconds, epochs=epochs,
               epochs_run=int(seg.n_iter_), interrupted=interrupted,
               final_train_loss=seg.loss_curve_[-1] if seg.loss_curve_ else None,
               settings={"depth": args.depth, "width": args.width, "loss": args.loss,
                         "batch_size": args.batch_size, "patch_size": args.patch_size,
                         "learning_rate": args.lr, "lr_schedule": args.schedule,
                         "augment": "RandomFlip, RandomRotate90"})
    log(f"sksegment: fit {fit_seconds:.1f} s ({seg.n_iter_} of {epochs} epochs"
        f"{', stopped at the cap' if interrupted else ''}), predict "
        f"{predict_seconds:.2f} s/image, mean IoU {res['mean_iou']:.4f}")
    return res


# --------------------------------------------------------------------------- #
# random forest on multiscale features (scikit-image)
# --------------------------------------------------------------------------- #
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
    predict_seconds = t.seconds / len(pred)
    res = scores(y[TEST], pred)
    res.update(fit_seconds=fit_seconds, predict_seconds_per_image=predict_seconds,
               training_pixels=int(pixels_per_image * len(X[TRAIN])),
               n_features=int(features(X[0][:32, :32]).shape[-1]))
    log(f"random forest: fit {fit_seconds:.1f} s on {res['training_pixels']} pixels, "
        f"predict {predict_seconds:.2f} s/image, mean IoU {res['mean_iou']:.4f}")
    return res


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def main(argv=None):
    parser = _common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with images/ and masks/")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the CNN fit (default: 60 quick, 180 full)")
    parser.add_argument("--rf-pixels", type=int, default=None,
                        help="training pixels per image for the forest "
                             "(default: 2000 quick, 4000 full)")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--schedule", default="onecycle")
    parser.add_argument("--loss", default="0.5*dice+0.5*cross_entropy")
    parser.add_argument("--skip-forest", action="store_true", help="run the CNN only")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    budget = BUDGETS[mode] if args.budget is None else args.budget
    if budget <= 0:
        parser.error("--budget must be > 0 seconds")
    rf_pixels = RF_PIXELS_PER_IMAGE[mode] if args.rf_pixels is None else args.rf_pixels
    if not 1 <= rf_pixels <= 512 * 512:
        parser.error("--rf-pixels must be in [1, 262144]")
    device = _common.resolve_device(args.device)
    machine = _common.machine_info(device)

    path = find_data(args.data)
    if path is None:
        reason = ("membrane data not found (looked at --data, $SKSEGMENT_MEMBRANE and "
                  "../shared/data/membrane)")
        print(f"skipped: {reason}")
        _common.finish(args, "quality", machine, {}, f"Skipped: {reason}.", skipped=reason)
        return None

    from sksegment.datasets import load_membrane

    X, y = load_membrane(path)
    print(f"# bench_quality ({mode}) on {machine['device_name']}: membrane {X.shape} "
          f"{X.dtype}, train 00-23, test 24-29; CNN budget {budget:.0f} s")
    results = {"budget_seconds": budget, "data": str(path)}
    if not args.skip_forest:
        results["random_forest"] = run_forest(X, y, rf_pixels, print)
    calibration = calibrate(X, y, args, device)
    results["sksegment"] = run_sksegment(X, y, args, device, budget, print, calibration)
    if not args.quick and not args.skip_forest:
        # the same network given only the time the forest took to fit
        same = results["random_forest"]["fit_seconds"]
        print(f"sksegment with the forest's fit time ({same:.0f} s):")
        results["sksegment_forest_time"] = run_sksegment(X, y, args, device, same, print,
                                                         calibration)
    markdown = render(results, machine, mode)
    _common.finish(args, "quality", machine, results, markdown)
    return results


def _epochs(n):
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def render(results, machine, mode):
    sk = results["sksegment"]
    s = sk["settings"]
    lines = [f"Machine: {_common.machine_line(machine)}.", "",
             (f"Mode `{mode}`: train on slices 00-23, test on 24-29 (512x512 each). "
             f"CNNSegmenter: UNet depth {s['depth']} width {s['width']}, patches "
             f"{s['patch_size']}, batch {s['batch_size']}, loss `{s['loss']}`, lr "
             f"{s['learning_rate']} ({s['lr_schedule']}), augment {s['augment']}, "
             f"{_epochs(sk['epochs'])} chosen for a {results['budget_seconds']:.0f} s budget "
             f"(calibration fit {sk['calibration_seconds']:.1f} s, not counted)"
             + (f"; stopped at the 1.5x cap after {_epochs(sk['epochs_run'])}."
                if sk.get("interrupted") else "."))]
    rows = [[f"sksegment CNNSegmenter ({_epochs(sk['epochs_run'])})", _common.fmt(sk["mean_iou"], 4),
             _common.fmt(sk["dice_membrane"], 4), _common.fmt(sk["pixel_accuracy"], 4),
             _common.fmt(sk["fit_seconds"], 1), _common.fmt(sk["predict_seconds_per_image"], 2)]]
    same = results.get("sksegment_forest_time")
    if same is not None:
        rows.append([f"sksegment CNNSegmenter, forest's fit time ({_epochs(same['epochs_run'])})",
                     _common.fmt(same["mean_iou"], 4), _common.fmt(same["dice_membrane"], 4),
                     _common.fmt(same["pixel_accuracy"], 4), _common.fmt(same["fit_seconds"], 1),
                     _common.fmt(same["predict_seconds_per_image"], 2)])
    rf = results.get("random_forest")
    if rf is not None:
        lines[-1] += (f" Random forest: {rf['n_features']} multiscale features, 50 trees of "
                      f"depth <= 10, trained on {rf['training_pixels']} randomly drawn "
                      f"pixels ({rf['training_pixels'] // 24} per image); its fit time "
                      "includes the training features.")
        rows.append(["scikit-image features + random forest", _common.fmt(rf["mean_iou"], 4),
                     _common.fmt(rf["dice_membrane"], 4), _common.fmt(rf["pixel_accuracy"], 4),
                     _common.fmt(rf["fit_seconds"], 1),
                     _common.fmt(rf["predict_seconds_per_image"], 2)])
    lines += ["", _common.table(["method", "mean IoU", "Dice (membrane)", "pixel accuracy",
                                 "fit s", "predict s / image"], rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
