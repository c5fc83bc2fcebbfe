"""What the command line prints: metric tables and model descriptions."""

import math
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from .. import metrics as _m


def _overlap(func, average):
    def score(y_true, y_pred, labels, ignore_index):
        return func(y_true, y_pred, labels=labels, average=average, ignore_index=ignore_index)
    return score


def _boundary(func, **kwargs):
    def score(y_true, y_pred, labels, ignore_index):
        return func(y_true, y_pred, labels=labels, ignore_index=ignore_index, **kwargs)
    return score


def _accuracy(y_true, y_pred, labels, ignore_index):
    return _m.pixel_accuracy(y_true, y_pred, ignore_index=ignore_index)


#: Metrics of ``sksegment evaluate``: name -> (score(y_true, y_pred, labels,
#: ignore_index), description).
METRICS = {
    "mean_iou": (_overlap(_m.iou_score, "macro"), "IoU averaged over the classes"),
    "iou_micro": (_overlap(_m.iou_score, "micro"), "IoU of all pixels pooled"),
    "dice": (_overlap(_m.dice_score, "macro"), "Dice averaged over the classes"),
    "dice_micro": (_overlap(_m.dice_score, "micro"), "Dice of all pixels pooled"),
    "pixel_accuracy": (_accuracy, "share of pixels labelled right"),
    "boundary_f1": (_boundary(_m.boundary_f1_score, tolerance=2),
                    "boundary F1 within 2 pixels"),
    "surface_dice": (_boundary(_m.surface_dice, tolerance=2),
                     "surface Dice within 2 pixels"),
    "hausdorff95": (_boundary(_m.hausdorff_distance, percentile=95),
                    "95th percentile Hausdorff distance, pixels (lower is better)"),
    "hausdorff": (_boundary(_m.hausdorff_distance, percentile=100),
                  "Hausdorff distance, pixels (lower is better)"),
}

#: Other names accepted by ``--metric``: the functions of sksegment.metrics.
ALIASES = {
    "iou_score": "mean_iou",
    "dice_score": "dice",
    "boundary_f1_score": "boundary_f1",
    "hausdorff_distance": "hausdorff",
}

METRIC_CHOICES = list(METRICS) + list(ALIASES)
DEFAULT_METRICS = ("mean_iou", "dice", "pixel_accuracy")


def evaluation_labels(classes, ignore_index, y_true, y_pred):
    """The model's classes, then any other value found in the truth or the
    prediction (it then counts as a class the model missed)."""
    classes = np.asarray(classes).astype(np.int64)
    found = set()
    for arrs in (y_true, y_pred):
        for a in arrs:
            found.update(np.unique(a).astype(np.int64).tolist())
    if ignore_index is not None:
        found.discard(int(ignore_index))
        classes = classes[classes != ignore_index]
    extra = sorted(found - set(classes.tolist()))
    return np.concatenate([classes, np.asarray(extra, dtype=np.int64)])


def score_images(names, y_true, y_pred, metric_names, labels, ignore_index):
    """``(per_image, overall)``: a list of {name, metric: value} and one dict."""
    funcs = [(name, METRICS[name][0]) for name in metric_names]
    per_image = []
    with warnings.catch_warnings():
        # an undefined score (NaN) is shown as nan or null, not warned about
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for i, name in enumerate(names):
            row = {"name": name}
            for metric, func in funcs:
                row[metric] = float(func(y_true[i], y_pred[i], labels, ignore_index))
            per_image.append(row)
        overall = {metric: float(func(y_true, y_pred, labels, ignore_index))
                   for metric, func in funcs}
    return per_image, overall


def _number(value):
    return "nan" if value is None or math.isnan(value) else f"{value:.4f}"


def format_table(per_image, overall, metric_names):
    """A plain-text table: one row per image, then the overall scores."""
    rows = [[r["name"]] + [_number(r[m]) for m in metric_names] for r in per_image]
    rows.append(["overall"] + [_number(overall[m]) for m in metric_names])
    header = ["image"] + list(metric_names)
    widths = [max(len(str(row[j])) for row in [header] + rows) for j in range(len(header))]
    lines = []
    for k, row in enumerate([header] + rows):
        if k == len(rows):  # before the overall row
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(c).rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def json_safe(value):
    """NaN and infinities as None, NumPy scalars and arrays as plain values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- #
# model description
# --------------------------------------------------------------------------- #
def _differs(value, default):
    if value is default:
        return False
    try:
        return not bool(value == default)
    except Exception:  # noqa: BLE001 - arrays, modules: compared by identity
        return True


def _short(value, limit=70):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(model, seg, path):
    """Everything ``sksegment info`` reports, as a JSON-able dict."""
    import torch

    from .. import __version__
    from .._segmenter import CNNSegmenter

    defaults = CNNSegmenter().get_params(deep=False)
    params = seg.get_params(deep=False)
    history = list(getattr(seg, "history_", []) or [])
    n_weights = sum(p.numel() for p in seg.model_.parameters())
    classes = np.asarray(seg.classes_)
    steps = None
    if model is not seg:
        steps = [name for name, _ in model.steps]
    saved = getattr(seg, "_saved_versions", None)
    import numpy
    import sklearn

    return {
        "file": str(path),
        "estimator": type(seg).__name__,
        "pipeline_steps": steps,
        "classes": classes.tolist(),
        "labels_dtype": str(classes.dtype),
        "n_classes": int(seg.n_classes_),
        "n_channels": int(seg.n_channels_in_),
        "input_dtype": str(np.dtype(seg.input_dtype_)),
        "network": type(seg.model_).__name__,
        "n_weights": int(n_weights),
        "device": str(getattr(seg, "device_", "")),
        "parameters": {name: {"value": _short(value),
                              "default": _short(defaults.get(name)),
                              "changed": name not in defaults
                              or _differs(value, defaults[name])}
                       for name, value in params.items()},
        "training": {
            "epochs": int(getattr(seg, "n_iter_", len(history))),
            "history_length": len(history),
            "seconds": float(sum(h.get("seconds", 0.0) for h in history)),
            "last_train_loss": history[-1]["train_loss"] if history else None,
            "last_val_score": history[-1].get("val_score") if history else None,
            "best_score": getattr(seg, "best_score_", None),
            "best_epoch": getattr(seg, "best_epoch_", None),
            "scoring": seg.scoring if isinstance(seg.scoring, str) else "custom",
            "interrupted": bool(getattr(seg, "interrupted_", False)),
        },
        "choices": _choices(seg),
        "saved_versions": dict(saved) if isinstance(saved, dict) else None,
        "running_versions": {"sksegment": __version__, "torch": torch.__version__,
                             "numpy": numpy.__version__, "scikit-learn": sklearn.__version__},
    }


def _choices(seg):
    """What the data-driven defaults resolved to (None for what is absent)."""
    patch = getattr(seg, "patch_size_", None)
    normalization = getattr(seg, "normalization_", None)
    post = getattr(seg, "postprocessing_", None)
    return {"patch_size": list(patch) if patch is not None else None,
            "batch_size": getattr(seg, "batch_size_", None),
            "depth": getattr(seg, "depth_", None),
            "norm": getattr(seg, "norm_", None),
            "normalize": normalization["kind"] if normalization else None,
            "precision": getattr(seg, "precision_", None),
            "augment": _augment_names(getattr(seg, "augment_", None)),
            "tta": seg._tta() if hasattr(seg, "tta_") or seg.tta != "auto" else None,
            "postprocessing": repr(post) if post is not None else None}


def _augment_names(augment):
    """The class names of the augmenters (of the one object given, when
    ``augment`` was not a list), or None."""
    if augment is None:
        return None
    items = augment if isinstance(augment, (list, tuple)) else [augment]
    return [type(a).__name__ for a in items]


def _format_choices(c):
    patch = "whole images" if c["patch_size"] is None else "x".join(map(str, c["patch_size"]))
    text = (f"patch {patch}, batch {c['batch_size']}, depth {c['depth']}, "
            f"{c['norm']} norm, normalize {c['normalize']}")
    if c.get("precision"):  # absent from the reports of older fits
        text += f", {c['precision']}"
    if c.get("augment"):
        text += f", augment {'+'.join(c['augment'])}"
    if c.get("tta"):
        text += f", tta {c['tta']}"
    return text + (f", post-processing {c['postprocessing']}" if c["postprocessing"] else "")


def _versions(versions):
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def format_info(d, bold=False):
    """The text of ``sksegment info``; ``bold`` also sets the changed
    parameters in bold (ANSI), for a terminal."""
    t = d["training"]
    estimator = d["estimator"]
    if d["pipeline_steps"]:
        estimator += f" (last step of a Pipeline: {' -> '.join(d['pipeline_steps'])})"
    training = f"{t['epochs']} epoch(s) in {t['seconds']:.1f} s"
    if t["last_train_loss"] is not None:
        training += f"; last training loss {t['last_train_loss']:.4f}"
    if t["last_val_score"] is not None:
        training += f"; last validation {t['scoring']} {t['last_val_score']:.4f}"
    if t["best_score"] is not None:
        training += f"; best {t['scoring']} {t['best_score']:.4f} at epoch {t['best_epoch']}"
    if t["interrupted"]:
        training += " (interrupted)"
    rows = [
        ("file", d["file"]),
        ("estimator", estimator),
        ("classes", f"{d['n_classes']}: {d['classes']} ({d['labels_dtype']})"),
        ("input", f"{d['n_channels']} channel(s), dtype {d['input_dtype']}"),
        ("network", f"{d['network']}, {d['n_weights']:,} weights, trained on {d['device']}"),
        ("choices", _format_choices(d["choices"])),
        ("training", training),
        ("history", f"{t['history_length']} entries"),
        ("saved with", _versions(d["saved_versions"]) if d["saved_versions"]
         else "not recorded"),
        ("running", _versions(d["running_versions"])),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("parameters (* differs from the default):")
    pwidth = max(len(n) for n in d["parameters"])
    for name, p in d["parameters"].items():
        mark = "*" if p["changed"] else " "
        extra = f"   (default {p['default']})" if p["changed"] else ""
        line = f"  {mark} {name.ljust(pwidth)}  {p['value']}{extra}"
        lines.append(f"\033[1m{line}\033[0m" if bold and p["changed"] else line)
    return "\n".join(lines)
