"""The commands of the ``sksegment`` command line, one function each."""

import ast
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


class CLIError(Exception):
    """A failure to report in one line (exit status 1)."""


class UsageError(Exception):
    """A usage error: unknown option, parameter or bad value (exit status 2)."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog or "sksegment"


# --------------------------------------------------------------------------- #
# shared helpers
# --------------------------------------------------------------------------- #
_WORDS = {"none": None, "null": None, "true": True, "false": False}


def parse_value(text):
    """A ``--set`` value: a Python literal where it is one, else the string."""
    word = text.strip()
    if word.lower() in _WORDS:
        return _WORDS[word.lower()]
    try:
        return ast.literal_eval(word)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_params(items):
    """``{name: value}`` from ``NAME=VALUE`` strings, checked against
    CNNSegmenter's parameters (a UsageError names an unknown one)."""
    from .._segmenter import CNNSegmenter

    valid = CNNSegmenter().get_params(deep=False)
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, e.g. --set depth=3; got {item!r}",
                             prog="sksegment fit")
        if name not in valid:
            raise UsageError(f"unknown parameter {name!r} in --set; valid names: "
                             f"{', '.join(sorted(valid))}", prog="sksegment fit")
        params[name] = parse_value(value)
    return params


def _progress(quiet, message):
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _folder(path, what):
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{what} folder not found: {str(p)!r}")
    if not p.is_dir():
        raise CLIError(f"{what} is not a folder: {str(p)!r}")
    return p


def _palette(args):
    return dict(args.palette) if getattr(args, "palette", None) else None


def load_model(path):
    """``(model, segmenter)`` from a joblib file: a fitted CNNSegmenter, or a
    Pipeline ending in one (then ``segmenter`` is its last step)."""
    import joblib
    from sklearn.pipeline import Pipeline

    from .._segmenter import CNNSegmenter

    path = Path(path)
    if not path.exists():
        raise CLIError(f"model file not found: {str(path)!r}")
    if not path.is_file():
        raise CLIError(f"model file is not a file: {str(path)!r}")
    try:
        model = joblib.load(path)
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CLIError(f"cannot load model file {str(path)!r}: not a joblib file of a "
                       f"segmenter ({reason})") from exc
    seg = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if not isinstance(seg, CNNSegmenter):
        raise CLIError(f"model file {str(path)!r} holds a {type(model).__name__}, not a "
                       "CNNSegmenter (or a Pipeline ending in one)")
    if not hasattr(seg, "model_"):
        raise CLIError(f"model file {str(path)!r} holds a CNNSegmenter that is not fitted")
    return model, seg


def _channels(image):
    return image.shape[2] if image.ndim == 3 else 1


def _model_channels(model, seg):
    """The channel count the model takes (None for a Pipeline, whose steps
    may change it)."""
    return seg.n_channels_in_ if model is seg else None


def _check_channels(X, names, folder, expected=None):
    """Name the first image file whose channel count differs from the
    model's (``expected``) or from the folder's first image."""
    counts = [_channels(x) for x in X]
    for i, count in enumerate(counts):
        if expected is not None and count != expected:
            raise CLIError(f"image {names[i]!r} in {str(folder)!r} has {count} channel(s) but "
                           f"the model was fitted on {expected}; convert it"
                           + (" (--as-gray reads every image as grayscale)"
                              if expected == 1 else ""))
        if expected is None and count != counts[0]:
            raise CLIError(f"images in {str(folder)!r} have different channel counts: "
                           f"{names[0]!r} has {counts[0]}, {names[i]!r} has {count}; convert "
                           "them to one (--as-gray reads every image as grayscale)")


def _describe_data(X, y=None):
    shapes = {x.shape[:2] for x in X}
    size = ("x".join(map(str, next(iter(shapes)))) if len(shapes) == 1
            else f"{len(shapes)} sizes")
    channels = {_channels(x) for x in X}
    text = (f"{len(X)} image(s), {size}, {'/'.join(map(str, sorted(channels)))} channel(s), "
            f"{'/'.join(sorted({str(x.dtype) for x in X}))}")
    if y is not None:
        labels = np.unique(np.concatenate([np.unique(m) for m in y]))
        shown = labels.tolist() if labels.size <= 10 else \
            labels[:10].tolist() + [f"... {labels.size} labels"]
        text += f"; mask labels {shown}"
    return text


def _chunks(X, names, size):
    for start in range(0, len(names), size):
        yield X[start:start + size], names[start:start + size]


# --------------------------------------------------------------------------- #
# fit
# --------------------------------------------------------------------------- #
def run_fit(args):
    import joblib

    from .._folders import load_image_folder
    from .._segmenter import CNNSegmenter
    from .._validation import InvalidParameterError

    params = parse_params(args.params)
    if (args.val_images is None) != (args.val_masks is None):
        raise UsageError("--val-images and --val-masks go together", prog="sksegment fit")
    wanted_verbose = params.get("verbose", 0)
    if args.quiet:
        params["verbose"] = 0
    else:
        params.setdefault("verbose", 1)
    seg = CNNSegmenter(**params)
    try:
        seg._validate_params()
    except (InvalidParameterError, ValueError, TypeError) as exc:
        raise UsageError(f"--set: {exc}", prog="sksegment fit") from exc

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise CLIError(f"model file exists: {str(output)!r}; pass --overwrite to replace it")
    if output.is_dir():
        raise CLIError(f"output is a folder, not a file: {str(output)!r}")
    if not output.parent.is_dir():
        raise CLIError(f"folder of the output file not found: {str(output.parent)!r}")
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:  # before training: the model file can be written there
        tmp.touch()
        tmp.unlink()
    except OSError as exc:
        raise CLIError(f"cannot write the model file {str(output)!r}: "
                       f"{exc.strerror or exc}") from None

    palette = _palette(args)
    images = _folder(args.images, "IMAGES")
    masks = _folder(args.masks, "MASKS")
    X, y, names = load_image_folder(images, masks, as_gray=args.as_gray, palette=palette,
                                    return_names=True)
    _check_channels(X, names, images)
    _progress(args.quiet, f"training data: {_describe_data(X, y)}")
    X_val = y_val = None
    if args.val_images is not None:
        val_images = _folder(args.val_images, "--val-images")
        X_val, y_val, val_names = load_image_folder(
            val_images, _folder(args.val_masks, "--val-masks"), as_gray=args.as_gray,
            palette=palette, return_names=True)
        _check_channels(X_val, val_names, val_images, expected=_channels(X[0]))
        _progress(args.quiet, f"validation data: {_describe_data(X_val, y_val)}")

    start = time.perf_counter()
    # the training loop writes its epoch lines to standard output: progress
    # belongs on standard error, the summary on standard output
    with contextlib.redirect_stdout(sys.stderr):
        seg.fit(X, y, X_val=X_val, y_val=y_val)
    seconds = time.perf_counter() - start
    seg.set_params(verbose=wanted_verbose)

    try:
        joblib.dump(seg, tmp)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(_fit_summary(seg, output, seconds))
    return 0


def _fit_summary(seg, output, seconds):
    history = seg.history_
    scoring = seg.scoring if isinstance(seg.scoring, str) else "score"
    text = f"{output}: {seg.n_iter_} epoch(s) in {seconds:.1f} s"
    if history:
        text += f"; last training loss {history[-1]['train_loss']:.4f}"
        if "val_score" in history[-1]:
            text += f"; validation {scoring} {history[-1]['val_score']:.4f}"
    if seg.best_score_ is not None:
        text += f" (best {seg.best_score_:.4f} at epoch {seg.best_epoch_})"
    if getattr(seg, "interrupted_", False):
        text += "; interrupted, best weights so far saved"
    return text


# --------------------------------------------------------------------------- #
# predict
# --------------------------------------------------------------------------- #
def _post(post, indices):
    """The class indices of one image after the model's post-processing, if any."""
    return indices if post is None else post.apply(indices)


def run_predict(args):
    from tqdm.auto import tqdm

    from .._folders import _same_names, load_images
    from .._image_io import SUFFIX, default_palette, mask_storage

    model, seg = load_model(args.model)
    images = _folder(args.images, "IMAGES")
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise CLIError(f"output is not a folder: {str(outdir)!r}")
    if outdir.is_dir() and outdir.resolve() == Path(images).resolve():
        raise CLIError(f"output {str(outdir)!r} is the IMAGES folder: the masks would replace "
                       "or pair with the images; write them to another folder")
    classes = np.asarray(seg.classes_)
    kind, dtype = mask_storage(classes.dtype, int(classes.min()), int(classes.max()),
                               args.format)
    colours = default_palette(classes) if kind == "png8" and not args.no_palette else None

    X, names = load_images(images, as_gray=args.as_gray, return_names=True)
    _check_channels(X, names, images, expected=_model_channels(model, seg))
    _progress(args.quiet, f"images: {_describe_data(X)}")
    targets = [outdir / f"{n}{SUFFIX[kind]}" for n in names]
    if args.proba:
        targets += [outdir / "proba" / f"{n}.tif" for n in names]
    written = _written_before(outdir)
    existing = [t for t in targets if t.exists()]
    foreign = [t for t in existing if _relative(t, outdir) not in written]
    if existing and not args.overwrite or foreign:
        first = (foreign or existing)[0]
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CLIError(
            f"output file exists: {str(first)!r}{more}; "
            + ("pass --overwrite to replace" if not foreign else
               "it was not written by sksegment predict, so --overwrite does not replace it: "
               "remove it or write to another folder"))
    # a file of a mask's name with another extension (an input image, say) is
    # never replaced, --overwrite or not: the folder would pair both by name
    clashes = _same_names(outdir, targets[:len(names)])
    if clashes:
        path, others = next(iter(clashes.items()))
        raise CLIError(f"output folder holds {str(others[0])!r}, a file named {path.stem!r} "
                       f"like the mask {path.name!r} to write; files pair by name without "
                       "extension, so write the masks to another folder")
    if args.tta is not None:
        seg.set_params(tta=args.tta)
    seg.set_params(verbose=0)

    fmt = "tiff" if kind == "tiff" else "png"
    post = getattr(seg, "postprocessing_", None)  # predict applies it; so must --proba
    chunk = max(1, int(getattr(seg, "batch_size_", 8)))
    folder_was_there = outdir.exists()
    before = set(written) | {_relative(t, outdir) for t in existing}
    try:
        _predict_chunks(args, model, X, names, chunk, outdir, classes, post, colours, fmt,
                        dtype, written, tqdm)
    except BaseException:
        # a later chunk that fails (an image of another channel count) takes
        # back the files this run added, and the folder where it made it
        _take_back(outdir, written - before, before & written, folder_was_there)
        raise

    what = {"png1": "1-bit PNG", "png8": "8-bit indexed PNG" if colours else "8-bit PNG",
            "png16": "16-bit PNG", "tiff": f"TIFF ({np.dtype(dtype)})"}[kind]
    text = f"wrote {len(names)} label image(s) to {outdir} ({what})"
    if args.proba:
        text += (f" and {len(names)} probability TIFF(s) to {outdir / 'proba'} "
                 f"(float32, one page per class: {classes.tolist()})")
    print(text)
    return 0


def _predict_chunks(args, model, X, names, chunk, outdir, classes, post, colours, fmt, dtype,
                    written, tqdm):
    """Predict and write ``chunk`` images at a time, adding what is written
    to ``written`` (and to the folder's record of it)."""
    from .._folders import save_masks
    from .._image_io import write_proba

    with tqdm(total=len(names), desc="predict", unit="image", disable=args.quiet,
              file=sys.stderr, leave=False) as bar:
        for X_part, part in _chunks(X, names, chunk):
            # predicted before anything is written: a model that cannot
            # predict these images leaves no folder behind
            if args.proba:
                proba = model.predict_proba(X_part)
                labels = [classes[_post(post, p.argmax(-1))] for p in proba]
            else:
                labels = list(model.predict(X_part))
            (outdir / "proba" if args.proba else outdir).mkdir(parents=True, exist_ok=True)
            if args.proba:
                for p, name in zip(proba, part):
                    write_proba(outdir / "proba" / f"{name}.tif", p, classes)
            paths = save_masks(outdir, [m.astype(dtype) for m in labels], names=part,
                               palette=colours, format=fmt, overwrite=True)
            written |= {_relative(p, outdir) for p in paths}
            if args.proba:
                written |= {f"proba/{name}.tif" for name in part}
            _record_written(outdir, written)
            bar.update(len(part))


def _take_back(outdir, added, kept, folder_was_there):
    """Remove the files ``added`` (relative names) of a predict that failed;
    the record keeps the files ``kept``; a folder the run made goes when empty."""
    for name in added:
        (outdir / name).unlink(missing_ok=True)
    if not outdir.is_dir():
        return
    if kept:
        _record_written(outdir, kept)
    else:
        (outdir / _WRITTEN).unlink(missing_ok=True)
    if not folder_was_there:
        for folder in (outdir / "proba", outdir):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass


#: Files ``predict`` wrote in its output folder, which ``--overwrite`` may
#: replace (a hidden file: the folder readers skip it).
_WRITTEN = ".sksegment-predict.json"


def _relative(path, outdir):
    return Path(path).relative_to(outdir).as_posix()


def _written_before(outdir):
    try:
        return set(json.loads((outdir / _WRITTEN).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _record_written(outdir, written):
    tmp = outdir / f"{_WRITTEN}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"files": sorted(written)}, indent=1))
    os.replace(tmp, outdir / _WRITTEN)


# --------------------------------------------------------------------------- #
# evaluate
# --------------------------------------------------------------------------- #
def run_evaluate(args):
    from .._folders import load_image_folder
    from ._report import (
        ALIASES,
        DEFAULT_METRICS,
        evaluation_labels,
        format_table,
        json_safe,
        score_images,
    )

    metric_names = []
    for name in args.metrics or DEFAULT_METRICS:
        name = ALIASES.get(name, name)
        if name not in metric_names:
            metric_names.append(name)
    model, seg = load_model(args.model)
    images = _folder(args.images, "IMAGES")
    masks = _folder(args.masks, "MASKS")
    X, y, names = load_image_folder(images, masks, as_gray=args.as_gray,
                                    palette=_palette(args), return_names=True)
    _check_channels(X, names, images, expected=_model_channels(model, seg))
    _progress(args.quiet, f"data: {_describe_data(X, y)}")
    if args.tta is not None:
        seg.set_params(tta=args.tta)
    seg.set_params(verbose=0 if args.quiet else 1)
    with contextlib.redirect_stdout(sys.stderr):
        y_pred = model.predict(X)
    seg.set_params(verbose=0)
    y_true, y_pred = list(y), list(y_pred)
    labels = evaluation_labels(seg.classes_, seg.ignore_index, y_true, y_pred)
    per_image, overall = score_images(names, y_true, y_pred, metric_names, labels,
                                      seg.ignore_index)
    if args.json:
        print(json.dumps(json_safe({
            "model": str(args.model), "images": str(images), "masks": str(masks),
            "labels": labels.tolist(), "ignore_index": seg.ignore_index,
            "metrics": metric_names, "per_image": per_image, "overall": overall,
        }), indent=2))
    else:
        print(format_table(per_image, overall, metric_names))
    return 0


# --------------------------------------------------------------------------- #
# info
# --------------------------------------------------------------------------- #
def run_info(args):
    from ._report import describe, format_info, json_safe

    model, seg = load_model(args.model)
    info = describe(model, seg, args.model)
    if args.json:
        print(json.dumps(json_safe(info), indent=2))
    else:
        bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(format_info(info, bold=bold))
    return 0
