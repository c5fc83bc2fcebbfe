"""Segmentation losses, chosen by name.

Every loss is an :class:`torch.nn.Module` called as ``loss(logits, target)``:

- ``logits``: float tensor ``(N, K, H, W)`` (any float dtype; the loss is
  computed in float32, float64 stays float64, with autocast turned off);
- ``target``: integer tensor ``(N, H, W)`` of class indices ``0 .. K-1``, where
  ``ignore_index`` (by default :data:`sksegment._data.IGNORE`, -100) marks
  pixels that count in nothing;

and returns a scalar tensor. When every pixel is ignored the loss is ``0``
(still attached to the graph, so ``backward()`` gives zero gradients).

Names, classes and the parameters each takes through ``loss_params``:

- ``"cross_entropy"``, :class:`CrossEntropyLoss`: ``label_smoothing``;
- ``"mae"``, :class:`MAELoss`: none;
- ``"focal"``, :class:`FocalLoss`: ``gamma``;
- ``"dice"``, :class:`DiceLoss`: ``smooth``, ``squared``, ``per_image``,
  ``include_background``, ``penalize_absent``;
- ``"jaccard"``, :class:`JaccardLoss`: ``smooth``, ``per_image``,
  ``include_background``, ``penalize_absent``;
- ``"tversky"``, :class:`TverskyLoss`: ``alpha``, ``beta`` and those of
  ``"jaccard"``;
- ``"lovasz"``, :class:`LovaszLoss`: ``classes``, ``per_image``,
  ``include_background``.

Every loss also takes ``class_weight`` and ``ignore_index`` (given to
:func:`get_loss` directly, not through ``loss_params``).

:func:`get_loss` builds a loss from a name, from a weighted sum written as a
string (``"0.7*dice+0.3*focal"``, a :class:`CompoundLoss`), from a module or
from a callable. :func:`compute_class_weight` turns the scikit-learn style
``class_weight`` (``None``, ``"balanced"`` or ``{label: weight}``) into the
per-class vector the losses take.

Every loss runs on the device without reading anything back to the host
(no ``.item()``, no boolean-mask indexing), so a training step is never
stalled by the loss. The one check that would need it, that ``target`` holds
class indices in ``0 .. K-1`` (or ``ignore_index``), runs when the target is
on the CPU only; on an accelerator out-of-range values are not checked (the
segmenter's targets are valid by construction).
"""

from ._loss_pixel import CrossEntropyLoss, FocalLoss, MAELoss
from ._loss_region import DiceLoss, JaccardLoss, LovaszLoss, TverskyLoss
from ._loss_spec import LOSSES, CompoundLoss, compute_class_weight, get_loss, loss_names

__all__ = [
    "LOSSES",
    "CompoundLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "LovaszLoss",
    "MAELoss",
    "TverskyLoss",
    "compute_class_weight",
    "get_loss",
    "loss_names",
]
