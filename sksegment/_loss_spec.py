"""Building a loss from what the user wrote: a name, a weighted sum written
as a string (``"0.7*dice+0.3*focal"``), ``loss_params`` and ``class_weight``.

Public through :mod:`sksegment.losses`.
"""

import math
import re
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ._data import IGNORE
from ._loss_base import as_weight_tensor
from ._loss_pixel import CrossEntropyLoss, FocalLoss, MAELoss
from ._loss_region import DiceLoss, JaccardLoss, LovaszLoss, TverskyLoss
from ._validation import check_int, check_number, did_you_mean

#: Loss name -> loss class.
LOSSES = {
    "cross_entropy": CrossEntropyLoss,
    "mae": MAELoss,
    "focal": FocalLoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "tversky": TverskyLoss,
    "lovasz": LovaszLoss,
}


def loss_names():
    """Names accepted by :func:`get_loss`, sorted.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from sksegment.losses import loss_names
    >>> "dice" in loss_names()
    True
    """
    return sorted(LOSSES)


class CompoundLoss(nn.Module):
    """Weighted sum of losses: ``sum_j weight_j * loss_j(logits, target)``.

    :func:`get_loss` builds one from a string such as ``"0.7*dice+0.3*focal"``.

    Parameters
    ----------
    terms : sequence of (float, nn.Module) or (float, nn.Module, str)
        Positive weight, loss and optionally a name used in the repr.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import CompoundLoss, CrossEntropyLoss, DiceLoss
    >>> loss = CompoundLoss([(0.5, DiceLoss()), (1.0, CrossEntropyLoss())])
    >>> logits, target = torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, 1]]])
    >>> expected = 0.5 * DiceLoss()(logits, target) + CrossEntropyLoss()(logits, target)
    >>> bool(torch.isclose(loss(logits, target), expected))
    True
    """

    def __init__(self, terms):
        super().__init__()
        if isinstance(terms, (str, bytes, dict, nn.Module)) or not hasattr(terms, "__iter__"):
            raise TypeError("terms must be a sequence of (weight, loss) pairs; got "
                            f"{type(terms).__name__}.")
        terms = list(terms)
        if not terms:
            raise ValueError("terms must hold at least one (weight, loss) pair.")
        weights, losses, names = [], [], []
        for j, term in enumerate(terms):
            if not isinstance(term, (tuple, list)) or len(term) not in (2, 3):
                raise TypeError(f"terms[{j}] must be a (weight, loss) or (weight, loss, name) "
                                f"tuple; got {term!r}.")
            weight = check_number(term[0], f"terms[{j}] weight", low=0, low_open=True)
            if not isinstance(term[1], nn.Module):
                raise TypeError(f"terms[{j}] loss must be an nn.Module; got {term[1]!r}.")
            weights.append(weight)
            losses.append(term[1])
            names.append(str(term[2]) if len(term) == 3 else type(term[1]).__name__)
        self.weights = tuple(weights)
        self.names = tuple(names)
        self.losses = nn.ModuleList(losses)

    def forward(self, logits, target):
        total = None
        for weight, loss in zip(self.weights, self.losses):
            value = weight * loss(logits, target)
            total = value if total is None else total + value
        return total

    def extra_repr(self):
        return "+".join(f"{w:g}*{n}" for w, n in zip(self.weights, self.names))


class _CallableLoss(nn.Module):
    """Wraps a callable ``(logits, target) -> scalar tensor``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, logits, target):
        value = self.fn(logits, target)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TypeError(f"the custom loss {self.fn!r} must return a scalar tensor; got "
                            f"{type(value).__name__}"
                            + (f" of shape {tuple(value.shape)}"
                               if isinstance(value, torch.Tensor) else "") + ".")
        return value.reshape(())

    def extra_repr(self):
        return repr(self.fn)


# A name may hold hyphens between its characters ("cross-entropy" is one
# name, reported as unknown with a suggestion, not "cross" minus "entropy").
_TOKEN = re.compile(r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)|(?P<op>[*+-]))")


def _loss_error(spec, reason):
    end = "" if reason.endswith("?") else "."
    return ValueError(
        f"loss={spec!r} is not a valid loss: {reason}{end} Give one of the names "
        f"{', '.join(loss_names())}, or a weighted sum of them such as "
        "'dice+cross_entropy' or '0.7*dice+0.3*cross_entropy'."
    )


def _tokens(spec):
    """``[(kind, text), ...]`` with kind "number", "name" or "op"."""
    tokens, pos, text = [], 0, spec.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _loss_error(spec, f"unexpected character {text[pos:].lstrip()[:1]!r}")
        tokens.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    if not tokens:
        raise _loss_error(spec, "it is empty")
    return tokens


def _term(spec, tokens, i):
    """Parse ``[number "*"] name`` from ``tokens[i]``; returns
    ``(weight, name, next i)``."""
    weight = 1.0
    if i < len(tokens) and tokens[i] == ("op", "-"):
        raise _loss_error(spec, "weights must be positive")
    if i < len(tokens) and tokens[i][0] == "number":
        text = tokens[i][1]
        if tokens[i + 1:i + 2] != [("op", "*")]:
            raise _loss_error(spec, f"expected '*' and a loss name after {text}")
        weight = float(text)
        if not math.isfinite(weight) or weight <= 0:
            raise _loss_error(spec, f"weights must be finite and positive; got {text}")
        i += 2
    if i >= len(tokens) or tokens[i][0] != "name":
        found = "the end" if i >= len(tokens) else repr(tokens[i][1])
        raise _loss_error(spec, f"expected a loss name, found {found}")
    name = tokens[i][1].lower()
    if name not in LOSSES:
        hint = did_you_mean(tokens[i][1], loss_names())
        raise _loss_error(spec, f"unknown loss {tokens[i][1]!r}" + (f"; {hint}" if hint else ""))
    return weight, name, i + 1


def _parse(spec):
    """Parse ``"0.7*dice + 0.3*focal"`` into ``[(0.7, "dice"), (0.3, "focal")]``."""
    tokens = _tokens(spec)
    terms, i = [], 0
    while True:
        weight, name, i = _term(spec, tokens, i)
        if any(name == n for _, n in terms):
            raise _loss_error(spec, f"{name!r} appears more than once")
        terms.append((weight, name))
        if i == len(tokens):
            return terms
        if tokens[i] != ("op", "+"):
            raise _loss_error(spec, f"expected '+' between terms, found {tokens[i][1]!r}")
        i += 1


def _unknown_keys(unknown, accepted):
    """``[...]`` plus a suggestion for the first unknown key, for messages."""
    hint = did_you_mean(unknown[0], accepted)
    return f"{unknown}" + (f" ({hint})" if hint else "")


def _keyed_params(loss_params, names):
    """``{"focal": {"gamma": 3}}``: each component's own parameters."""
    out = {name: {} for name in names}
    for key, params in loss_params.items():
        if key not in out:
            raise ValueError(f"loss_params has parameters for {key!r}, which is not part "
                             f"of the loss ({'+'.join(names)}).")
        if not isinstance(params, Mapping):
            raise TypeError(f"loss_params[{key!r}] must be a dict of parameters; got "
                            f"{params!r}.")
        accepted = LOSSES[key]._param_names()
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"loss_params[{key!r}] has {_unknown_keys(unknown, accepted)}, "
                             f"which {key!r} does not take; it accepts {accepted}.")
        out[key] = dict(params)
    return out


def _flat_params(loss_params, names):
    """``{"gamma": 3}``: each key to every component that takes it."""
    out = {name: {} for name in names}
    for key, value in loss_params.items():
        takers = [name for name in names if key in LOSSES[name]._param_names()]
        if not takers:
            accepted = {name: LOSSES[name]._param_names() for name in names}
            known = [k for keys in accepted.values() for k in keys] + loss_names()
            raise ValueError(f"loss_params has {_unknown_keys([key], known)}, which no part "
                             f"of the loss takes; accepted keys: {accepted}.")
        for name in takers:
            out[name][key] = value
    return out


def _split_params(loss_params, names):
    """Per component name, the keyword arguments from ``loss_params``."""
    if loss_params is None:
        return {name: {} for name in names}
    if not isinstance(loss_params, Mapping):
        raise TypeError(f"loss_params must be None or a dict; got {loss_params!r}.")
    for key in loss_params:
        if not isinstance(key, str):
            raise TypeError(f"loss_params keys must be strings; got {key!r}.")
    keyed = [key for key in loss_params if key in LOSSES]
    if not keyed:
        return _flat_params(loss_params, names)
    if len(keyed) != len(loss_params):
        raise ValueError(
            "loss_params must either be keyed by loss name ({'focal': {'gamma': 3}}) or "
            f"be a flat dict of parameters; got a mix of both: {sorted(loss_params)}."
        )
    return _keyed_params(loss_params, names)


def _named_loss(spec, loss_params, weight, ignore_index):
    """The loss a string names: one loss, or a CompoundLoss of several."""
    terms = _parse(spec)
    params = _split_params(loss_params, [name for _, name in terms])
    modules = []
    for weight_j, name in terms:
        try:
            module = LOSSES[name](**params[name], class_weight=weight, ignore_index=ignore_index)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"loss_params for {name!r}: {exc}") from None
        modules.append((weight_j, module, name))
    if len(modules) == 1 and modules[0][0] == 1.0:
        return modules[0][1]
    return CompoundLoss(modules)


def get_loss(loss, *, n_classes, loss_params=None, class_weight=None, ignore_index=IGNORE):
    """Build a segmentation loss.

    Parameters
    ----------
    loss : str, nn.Module or callable
        - a name from :func:`loss_names`;
        - a weighted sum of names, ``"dice+cross_entropy"`` or
          ``"0.7*dice + 0.3*focal"`` (positive weights, default 1, each name
          at most once; numbers such as ``1e-1`` are fine), built as a
          :class:`CompoundLoss`;
        - an ``nn.Module`` instance, used as is;
        - a callable ``(logits, target) -> scalar tensor``, wrapped in a module.
    n_classes : int
        Number of classes ``K``.
    loss_params : dict, default=None
        Parameters of the named losses. Either flat (``{"gamma": 3}``): each
        key goes to every component of the loss that takes it, and a key no
        component takes is an error; or keyed by component name
        (``{"focal": {"gamma": 3}, "dice": {"smooth": 1.0}}``). Only for named
        losses.
    class_weight : array-like of shape (n_classes,), default=None
        Non-negative weight of each class (see :func:`compute_class_weight`),
        given to every component. Not accepted with a custom loss.
    ignore_index : int, default=-100
        Target value of pixels that count in nothing.

    Returns
    -------
    loss : nn.Module
        Called as ``loss(logits, target)``, returns a scalar tensor.

    Raises
    ------
    ValueError
        For an unknown or malformed ``loss`` string, parameters a loss does not
        take, or a bad ``class_weight``.
    TypeError
        For a ``loss`` that is neither a string, a module nor a callable.

    Examples
    --------
    >>> import torch
    >>> from sksegment.losses import get_loss
    >>> loss = get_loss("0.5*dice + cross_entropy", n_classes=2)
    >>> loss
    CompoundLoss(
      0.5*dice+1*cross_entropy
      (losses): ModuleList(
        (0): DiceLoss(smooth=0.0, squared=True, per_image=False, include_background=True, penalize_absent=True)
        (1): CrossEntropyLoss(label_smoothing=0.0)
      )
    )
    >>> logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    >>> target = torch.randint(0, 2, (2, 8, 8))
    >>> value = loss(logits, target)
    >>> value.backward()
    >>> value.ndim, logits.grad.shape
    (0, torch.Size([2, 2, 8, 8]))
    """
    n_classes = check_int(n_classes, "n_classes", low=1)
    ignore_index = check_int(ignore_index, "ignore_index")
    weight = as_weight_tensor(class_weight, n_classes)
    if isinstance(loss, str):
        return _named_loss(loss, loss_params, weight, ignore_index)
    if isinstance(loss, type):
        raise TypeError(f"loss must be a loss name, an nn.Module instance or a callable; got "
                        f"the class {loss.__name__}. Pass an instance, e.g. {loss.__name__}().")
    if isinstance(loss, nn.Module) or callable(loss):
        if loss_params is not None:
            raise ValueError("loss_params only applies to named losses; configure the custom "
                             f"loss {loss!r} yourself (got loss_params={loss_params!r}).")
        if weight is not None:
            raise ValueError("class_weight cannot be applied to a custom loss; build the "
                             "weights into the loss yourself, or leave class_weight=None.")
        return loss if isinstance(loss, nn.Module) else _CallableLoss(loss)
    raise TypeError(f"loss must be a loss name (str), an nn.Module instance or a callable "
                    f"(logits, target) -> scalar tensor; got {type(loss).__name__}.")


def compute_class_weight(class_weight, classes, counts):
    """Per-class weights from a scikit-learn style ``class_weight``.

    Parameters
    ----------
    class_weight : None, "balanced" or dict
        ``None``: no weights. ``"balanced"``: ``n / (K * counts[k])`` with ``n``
        the number of labelled pixels, as in
        :func:`sklearn.utils.class_weight.compute_class_weight`. A dict
        ``{label: weight}``: the given weights, 1 for labels not in it.
    classes : array-like of shape (K,)
        Label values of the classes, in class-index order (``classes_``).
    counts : array-like of shape (K,)
        Number of labelled pixels of each class.

    Returns
    -------
    weights : ndarray of shape (K,), dtype float64, or None
        ``None`` when ``class_weight`` is None.

    Examples
    --------
    >>> from sksegment.losses import compute_class_weight
    >>> compute_class_weight("balanced", [0, 1], [30, 10]).tolist()
    [0.6666666666666666, 2.0]
    >>> compute_class_weight({1: 5.0}, [0, 1], [30, 10]).tolist()
    [1.0, 5.0]
    """
    if class_weight is None:
        return None
    classes = np.asarray(classes)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"classes must be a non-empty 1-D array of labels; got shape "
                         f"{classes.shape}.")
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            hint = did_you_mean(class_weight, ["balanced"])
            raise ValueError(f"class_weight must be None, 'balanced' or a dict "
                             f"{{label: weight}}; got {class_weight!r}"
                             + (f"; {hint}" if hint else "."))
        return _balanced_weights(classes, counts)
    if isinstance(class_weight, Mapping):
        return _dict_weights(classes, class_weight)
    raise TypeError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; "
                    f"got {type(class_weight).__name__}.")


def _balanced_weights(classes, counts):
    """``n / (K * counts[k])``, as scikit-learn's "balanced"."""
    k = classes.shape[0]
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    counts = np.asarray(counts)
    if counts.shape != (k,) or counts.dtype.kind not in "biuf":
        raise ValueError(f"counts must hold one pixel count per class ({k}); got {counts!r}.")
    counts = counts.astype(np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"counts must be non-negative; got {counts.tolist()}.")
    missing = classes[counts == 0]
    if missing.size:
        raise ValueError(f"class_weight='balanced' needs labelled pixels of every class; "
                         f"classes {missing.tolist()} have none.")
    return counts.sum() / (k * counts)


def _dict_weights(classes, class_weight):
    """The weights of a ``{label: weight}`` dict, 1 for the labels not in it."""
    weights = np.ones(classes.shape[0], dtype=np.float64)
    labels = classes.tolist()
    for label, value in class_weight.items():
        matches = [i for i, c in enumerate(labels) if _same_label(c, label)]
        if not matches:
            raise ValueError(f"class_weight has label {label!r}, which is not among the "
                             f"classes {labels}.")
        weights[matches[0]] = check_number(value, f"class_weight[{label!r}]", low=0)
    if not (weights > 0).any():
        raise ValueError("class_weight must give at least one class a positive weight.")
    return weights


def _same_label(a, b):
    """Whether a class label equals a dict key (a string never equals a number)."""
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # incomparable types
        return False
