"""Exporting a fitted network for deployment without sksegment.

The exported file holds the network alone: float32 ``(N, C, H, W)`` in,
logits ``(N, K, H, W)`` out. A JSON file beside it (``<path>.json``) records
the preprocessing that must come before it and the labels that come after:

- ``input_scale``: multiply the raw image values by it (1/255 for uint8,
  1/65535 for uint16, 1 otherwise);
- ``preprocessing``: the deterministic steps of the segmenter's ``augment``,
  in order, after the scale: ``{"kind": "standardize", "mean", "scale"}``
  computes ``(x - mean[c]) / scale[c]`` (an ``IntensityStandardizer``);
- ``normalization``: null, or ``{"kind", "shift", "scale"}``: then compute
  ``(x - shift[c]) / scale[c]`` for each channel ``c``, and move channels
  first;
- ``pad_multiple``: pad H and W (bottom/right) up to multiples of it and crop
  the output back;
- ``padding``: how ``predict`` pads: ``"reflect"`` mirrors the image without
  repeating the border pixel (``numpy.pad(mode="reflect")``), or, along an
  axis where the padding is not smaller than the image, repeats the border
  pixel (``mode="edge"``). Zeros instead change the logits near the bottom and
  right edges;
- ``classes``: ``classes[argmax(logits, axis=1)]`` are the label values.
"""

import contextlib
import copy
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ._forward import MIN_CELLS

FORMATS = ("torch.export", "torchscript", "onnx")


def export_network(model, path, *, format, n_channels, pad_multiple, metadata):
    """Write ``model`` to ``path`` in ``format`` and the metadata beside it."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}; got {format!r}.")
    _check_path(path)
    net = copy.deepcopy(model).cpu().float().eval()
    m = max(int(pad_multiple), 1)
    example = torch.zeros(2, n_channels, 2 * m, 2 * m)
    path = str(path)
    # both files are written beside their targets under temporary names and
    # renamed into place once both are complete: a failure leaves an earlier
    # pair as it was (and no half-written file)
    folder, name = os.path.split(os.path.abspath(path))
    stem, suffix = os.path.splitext(name)
    tmp = os.path.join(folder, f".{stem}.tmp-{os.getpid()}{suffix}")
    try:
        _write_network(net, tmp, format, example, m)
        meta = dict(metadata, format=format, pad_multiple=m, min_cells=MIN_CELLS,
                    padding="reflect", n_channels=n_channels)
        with open(tmp + ".json", "w") as fh:
            json.dump(meta, fh, indent=2, default=_jsonable)
        os.replace(tmp, path)
        os.replace(tmp + ".json", path + ".json")
    finally:
        for leftover in (tmp, tmp + ".json"):
            with contextlib.suppress(OSError):
                os.remove(leftover)
    return path


def _write_network(net, path, format, example, m):
    """The network alone, in ``format``, at ``path``."""
    with warnings.catch_warnings():
        # TorchScript and the tracer announce their own deprecation and the
        # shape checks they freeze; the exported graph is checked below.
        warnings.simplefilter("ignore")
        if format == "torch.export":
            from torch.export import Dim

            hh, ww = Dim("hh", min=1, max=65536 // m), Dim("ww", min=1, max=65536 // m)
            with _size_one_not_special():
                program = torch.export.export(
                    net, (example,),
                    dynamic_shapes=({0: Dim("batch", min=1, max=4096), 2: m * hh, 3: m * ww},))
            torch.export.save(program, path)
        elif format == "torchscript":
            traced = torch.jit.trace(net, example)
            traced.save(path)
        else:
            try:
                import onnx  # noqa: F401
                import onnxscript  # noqa: F401  (torch.onnx.export's exporter)
            except ImportError as exc:
                raise ImportError(f"format='onnx' needs the onnx and onnxscript packages ({exc}): "
                                  "pip install 'sksegment[onnx]'") from None
            # the exporter logs a warning per torchvision operator it cannot
            # register when torchvision is absent; none of them is used here
            onnx_log = logging.getLogger("torch.onnx")
            level = onnx_log.level
            onnx_log.setLevel(logging.ERROR)
            try:
                torch.onnx.export(net, (example,), path, input_names=["image"],
                                  output_names=["logits"], verbose=False,
                                  dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                                "logits": {0: "batch", 2: "height", 3: "width"}})
            finally:
                onnx_log.setLevel(level)


def preprocessing_steps(chain):
    """The deterministic ops of a segmenter's own augmentation chain as JSON
    steps; an op the JSON cannot describe raises (nothing is left out)."""
    steps = []
    for op in chain.deterministic().ops:
        if op.name != "IntensityStandardizer":
            raise ValueError(f"export cannot describe the deterministic step {op!r} of "
                             "augment in its JSON file; apply it before the exported network "
                             "yourself, or use normalize= instead.")
        steps.append({"kind": "standardize",
                      "mean": [float(v) for v in np.ravel(op.mean)],
                      "scale": [float(v) for v in np.ravel(op.scale)]})
    return steps


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like object; got {type(path).__name__}.")
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise ValueError(f"path must name a file, not a folder; got {str(path)!r}.")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"path {str(path)!r}: its folder {str(p.parent)!r} does not "
                                "exist; create it first.")
    for target in (p, Path(f"{path}.json")):
        if target.is_dir():
            raise ValueError(f"path {str(path)!r}: {str(target)!r} is a folder; the export "
                             "writes a file there.")


def _size_one_not_special():
    """Trace with sizes of 1 treated like any other size.

    torch.export specialises a dynamic size that is 1 at run time (an image
    of H == pad_multiple has a 1-pixel bottleneck), so the exported program
    would reject sizes that ``predict`` handles. The switch is a private
    setting of torch; without it the export still works for larger sizes.
    """
    try:
        from torch.fx.experimental import _config

        return _config.patch(backed_size_oblivious=True)
    except (ImportError, AttributeError, KeyError):
        return contextlib.nullcontext()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
