"""The ``sksegment`` command line: ``fit``, ``predict``, ``evaluate``, ``info``.

Run as ``sksegment COMMAND ...`` (the installed entry point) or
``python -m sksegment COMMAND ...``. Exit status: 0 on success, 1 on a
failure (a missing or unreadable file, a fit that fails), 2 on a usage error
(an unknown option, parameter or metric, a badly written value). Errors are
one line on standard error; ``--debug`` shows the traceback instead.
"""

import argparse
import platform
import sys
import traceback
import warnings

from ._commands import (
    CLIError,
    UsageError,
    run_evaluate,
    run_fit,
    run_info,
    run_predict,
)
from ._report import METRIC_CHOICES, METRICS

__all__ = ["build_parser", "main"]

PROG = "sksegment"


class _Parser(argparse.ArgumentParser):
    """Usage errors become exceptions, so ``main`` prints them in one line
    and returns 2 instead of exiting the interpreter."""

    def error(self, message):
        raise UsageError(message, prog=self.prog)


def _version():
    import numpy
    import sklearn
    import torch

    from .. import __version__

    return (f"{PROG} {__version__} (torch {torch.__version__}, numpy {numpy.__version__}, "
            f"scikit-learn {sklearn.__version__}, Python {platform.python_version()})")


class _Version(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit(0)


def _fit_epilog():
    from .._segmenter import CNNSegmenter

    names = sorted(CNNSegmenter().get_params(deep=False))
    lines, line = [], "  "
    for name in names:
        if len(line) + len(name) + 2 > 78:
            lines.append(line.rstrip())
            line = "  "
        line += name + ", "
    lines.append(line.rstrip(", "))
    return (
        "--set takes any CNNSegmenter parameter as NAME=VALUE. VALUE is read as a\n"
        "Python literal where it is one (128, 1e-3, (128, 96), [1, 2], {0: 1, 255: 3},\n"
        "None, True, False; also none, null, true, false), else as a string (dice,\n"
        "0.5*dice+0.5*cross_entropy, cuda:0).\n\n"
        "parameters:\n" + "\n".join(lines) + "\n\n"
        "example:\n"
        "  sksegment fit train/images train/masks -o model.joblib \\\n"
        "      --set patch_size=128 --set depth=3 --set max_epochs=20 \\\n"
        "      --set 'loss=0.5*dice+0.5*cross_entropy' \\\n"
        "      --val-images val/images --val-masks val/masks\n"
    )


_PREDICT_EPILOG = """\
output files (one per image, named after it; a page of a TIFF stack
vol.tif is named vol_000, vol_001, ...):
  labels that fit 0..255    NAME.png, 8-bit; an indexed PNG whose pixel values
                            are the label values and whose palette gives each
                            class its own colour (--no-palette: grayscale)
  labels that fit 0..65535  NAME.png, 16-bit grayscale; also labels that fit
  or 16-bit masks           0..255 when the training masks were 16-bit
                            (uint16), whose dtype predictions keep
  bool labels               NAME.png, 1-bit black and white
  other labels              NAME.tif, in the labels' own dtype
  --proba                   also proba/NAME.tif: float32 TIFF, one page per
                            class in the order of the model's classes (their
                            label values are in the TIFF description, JSON)

example:
  sksegment predict model.joblib test/images -o predictions --tta
"""

_EVALUATE_EPILOG = """\
Scores each image, then all images together ("overall": IoU and Dice from the
pixels of every image; boundary scores averaged over the images). Classes are
the model's classes; pixels labelled with its ignore_index are not counted.

example:
  sksegment evaluate model.joblib test/images test/masks \\
      --metric mean_iou --metric dice --metric boundary_f1 --json
"""

_INFO_EPILOG = """\
Model files are pickles: load only files you trust.

example:
  sksegment info model.joblib
"""


def _colour_arg(text):
    try:
        colour, label = text.split("=")
        rgb = tuple(int(c) for c in colour.split(","))
        value = int(label)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected R,G,B=LABEL such as 255,0,0=1; got {text!r}") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise argparse.ArgumentTypeError(
            f"expected R,G,B=LABEL with three colour values in 0..255; got {text!r}")
    return rgb, value


def build_parser():
    """The argument parser of the ``sksegment`` command."""
    parser = _Parser(
        prog=PROG,
        description="Train, apply and inspect CNN segmenters on folders of images.",
        epilog="Run 'sksegment COMMAND --help' for the options and an example of each "
               "command.",
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the versions of sksegment and its libraries and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    common.add_argument("--quiet", "-q", action="store_true",
                        help="no progress on standard error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    fit = commands.add_parser(
        "fit", parents=[common], formatter_class=raw, epilog=_fit_epilog(),
        help="train a segmenter on a folder of images and a folder of masks",
        description="Train a CNNSegmenter on images and label masks paired by file name\n"
                    "(a.png with a.png or a.tif, ...) and save it with joblib.")
    fit.add_argument("images", metavar="IMAGES", help="folder of training images")
    fit.add_argument("masks", metavar="MASKS", help="folder of label masks")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="model file to write (joblib), e.g. model.joblib")
    fit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     dest="params", help="a CNNSegmenter parameter (repeatable)")
    fit.add_argument("--val-images", metavar="DIR", help="folder of validation images")
    fit.add_argument("--val-masks", metavar="DIR", help="folder of validation masks")
    _data_options(fit)
    fit.add_argument("--overwrite", action="store_true", help="replace an existing MODEL")
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict", parents=[common], formatter_class=raw, epilog=_PREDICT_EPILOG,
        help="write a label image for every image of a folder",
        description="Predict a label image for every image of a folder and write them,\n"
                    "losslessly, to an output folder.")
    predict.add_argument("model", metavar="MODEL", help="model file written by 'fit'")
    predict.add_argument("images", metavar="IMAGES", help="folder of images")
    predict.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                         help="output folder (created if absent)")
    predict.add_argument("--proba", action="store_true",
                         help="also write class probabilities to OUTDIR/proba/NAME.tif")
    predict.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                         help="test-time augmentation: --tta averages over all flips and "
                              "rotations, --no-tta predicts once (default: the model's "
                              "setting; 'auto' for a model fitted with the defaults)")
    predict.add_argument("--no-palette", action="store_true",
                         help="8-bit masks as grayscale PNGs instead of indexed ones")
    predict.add_argument("--format", choices=("auto", "png", "tiff"), default="auto",
                         help="file type of the label images (default: auto, see below)")
    predict.add_argument("--as-gray", action="store_true",
                         help="convert colour images to grayscale")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace the files an earlier predict wrote in OUTDIR "
                              "(other files are never replaced)")
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], formatter_class=raw, epilog=_EVALUATE_EPILOG,
        help="score a segmenter on a folder of images and masks",
        description="Predict the images of a folder and score the predictions against\n"
                    "the masks, per image and overall.")
    evaluate.add_argument("model", metavar="MODEL", help="model file written by 'fit'")
    evaluate.add_argument("images", metavar="IMAGES", help="folder of images")
    evaluate.add_argument("masks", metavar="MASKS", help="folder of label masks")
    evaluate.add_argument(
        "--metric", action="append", choices=METRIC_CHOICES, metavar="NAME", dest="metrics",
        help="a metric (repeatable; default: mean_iou, dice, pixel_accuracy); one of "
             + ", ".join(METRICS))
    evaluate.add_argument("--json", action="store_true", help="print JSON, not a table")
    evaluate.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                          help="test-time augmentation: --tta averages over all flips and "
                               "rotations, --no-tta predicts once (default: the model's "
                               "setting)")
    _data_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    info = commands.add_parser(
        "info", parents=[common], formatter_class=raw, epilog=_INFO_EPILOG,
        help="describe a saved segmenter",
        description="Show a model file's classes, input, parameters (those that differ\n"
                    "from the defaults marked with *), training summary and the library\n"
                    "versions it was saved with.")
    info.add_argument("model", metavar="MODEL", help="model file written by 'fit'")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=run_info)
    return parser


def _data_options(sub):
    sub.add_argument("--as-gray", action="store_true",
                     help="convert colour images to grayscale")
    sub.add_argument("--colour", "--color", action="append", type=_colour_arg, default=[],
                     metavar="R,G,B=LABEL", dest="palette",
                     help="read colour masks: this colour is this label (repeatable)")


def _one_line(text):
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success, 1 on a failure, 2 on a usage error.
    """
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog}: error: {_one_line(exc)} (see '{exc.prog} --help')",
              file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    debug = debug or getattr(args, "debug", False)
    prog = f"{PROG} {args.command}"
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        try:
            return args.run(args) or 0
        except UsageError as exc:
            if debug:
                traceback.print_exc()
            print(f"{prog}: error: {_one_line(exc)} (see '{prog} --help')", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - every failure is reported in one line
            if debug:
                traceback.print_exc()
            text = str(exc) if isinstance(exc, (CLIError, ValueError, TypeError, OSError)) \
                else f"{type(exc).__name__}: {exc}"
            print(f"{prog}: error: {_one_line(text)}", file=sys.stderr)
            return 1
