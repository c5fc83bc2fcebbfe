"""Post-processing of predicted label images, chosen on validation data.

The rules follow nnU-Net v2 (Isensee et al., *Nature Methods* 18, 2021;
``nnunetv2/postprocessing/remove_connected_components.py``): after training,
try keeping only the largest connected component of the whole foreground on
the validation predictions, and keep that step only if the mean Dice over the
validation images rises and no class gets worse; then make the same test for
each class, every test on top of the steps already kept. This module adds two
more steps of the same kind, each tested the same way: removing the components
of a class smaller than a size read from the validation truth, and filling
holes of a class.

Label images
------------
Every function works on label images of class indices: an integer array
``(n, H, W)``, a single image ``(H, W)``, or a list of ``(H, W)`` arrays whose
sizes may differ. Index 0 is the background; ``1 .. K-1`` are the foreground
classes. A result has the form and dtype of its input and is always a new
array: the input is never modified.

Conventions
-----------
- **Connectivity** ``1`` joins pixels through their 4 edge neighbours, ``2``
  also through the 4 diagonal ones. The default, 2, is scikit-image's
  default for 2-D labelling (:func:`skimage.measure.label`). The background
  around a class uses the other connectivity (``3 - connectivity``), so that
  a ring closed through its diagonals has an inside.
- **Removed pixels** (of a component too small, or not the largest) take, with
  ``replace="neighbour"`` (the default), the label found most often on the
  pixels that border their component, the background winning ties: a speck
  in the background becomes background, a speck of one class inside a region
  of another becomes that class, so removing it opens no hole. With
  ``replace="background"`` they become 0, as in nnU-Net.
- **A hole** of class ``c`` is a connected region of background pixels that
  ``c`` encloses completely: it touches neither the image edge nor any pixel
  of another class. Its pixels were background (0) and become ``c``. A region
  of another class inside ``c`` (a nucleus inside a cell) is no hole, and
  neither is the background next to it. A hole of the whole foreground (a
  background region enclosed by foreground pixels of any class) takes the
  class found most often on its border.

What to apply is a :class:`PostProcessor`: a small, picklable list of steps,
built by :func:`select_postprocessing` from validation data or by
:func:`make_postprocessor` from explicit options such as
``{"remove_small": 64, "fill_holes": True}``.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import measure

from ._data import _as_array
from ._validation import check_bool, check_int, check_option, is_int
from .metrics import dice_score, iou_score

__all__ = [
    "FOREGROUND",
    "PostProcessor",
    "fill_holes",
    "keep_largest_component",
    "make_postprocessor",
    "remove_small_components",
    "select_postprocessing",  # noqa: F822 - from the module __getattr__ below
]

#: Step target meaning all foreground classes together (every nonzero pixel).
FOREGROUND = "foreground"

# each operation: the lengths a step may have, and its form in words
_FORMS = {"keep_largest": ((2,), "('keep_largest', class_index)"),
          "remove_small": ((3,), "('remove_small', class_index, min_size)"),
          "fill_holes": ((2, 3), "('fill_holes', class_index[, max_hole_size])")}
_OPERATIONS = tuple(_FORMS)
_REPLACE = ("neighbour", "background")
_SCORING = {"dice": dice_score, "iou": iou_score}
# Sizes tried for "remove_small" during selection: these fractions of the
# smallest component of the class in the validation truth.
_SIZE_FRACTIONS = (0.1, 0.25, 0.5)
# A class "gets worse" when its score drops by more than rounding error.
_WORSE_EPS = 1e-9

_EDGE = ((0, 1), (1, 0), (0, -1), (-1, 0))
_DIAGONAL = ((1, 1), (1, -1), (-1, 1), (-1, -1))
_OFFSETS = {1: _EDGE, 2: _EDGE + _DIAGONAL}


# --------------------------------------------------------------------------- #
# checking
# --------------------------------------------------------------------------- #
def _check_class_images(labels, name, allow_negative=False):
    """Label images of class indices as ``(images, form)``: ``images`` is the
    3-D array, or a list of 2-D arrays; ``form`` is "2d", "3d" or "list"."""
    if isinstance(labels, (list, tuple)):
        images = [_check_one(img, f"{name}[{i}]", 2, allow_negative)
                  for i, img in enumerate(labels)]
        return images, "list"
    arr = _as_array(labels, name)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be label images of shape (n, H, W), one image of shape "
                         f"(H, W) or a list of 2-D arrays; got an array of shape {arr.shape}.")
    arr = _check_one(arr, name, arr.ndim, allow_negative)
    return (arr[None], "2d") if arr.ndim == 2 else (arr, "3d")


def _check_one(img, name, ndim, allow_negative):
    arr = _as_array(img, name)
    if not isinstance(arr, np.ndarray):  # read on demand (dask, zarr, h5py): the steps
        arr = np.asarray(arr[(slice(None),) * arr.ndim])  # need whole images in memory
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a 2-D label image (H, W); got shape {arr.shape}.")
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold integer class indices; got dtype {arr.dtype}.")
    if not allow_negative and arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative values; label images hold class indices "
                         "0 .. K-1 with 0 the background.")
    return arr


def _check_target(value, name):
    if isinstance(value, str) and value == FOREGROUND:
        return value
    text = f"{name} must be a class index >= 1 or {FOREGROUND!r}"
    if not is_int(value):
        raise (ValueError if isinstance(value, str) else TypeError)(f"{text}; got {value!r}.")
    if value < 1:
        raise ValueError(f"{text} (0 is the background, which is not post-processed); "
                         f"got {value!r}.")
    return int(value)


def _check_step(step, name, plain=False):
    """A step as a normalised tuple; ``plain``: its values were given as the
    arguments ``class_index``, ``min_size``, ``max_hole_size`` of a function,
    which the messages name."""
    if not isinstance(step, (tuple, list)) or not step or not isinstance(step[0], str):
        raise TypeError(f"{name} must be a tuple (operation, class_index, ...) with operation "
                        f"one of {', '.join(map(repr, _OPERATIONS))}; got {step!r}.")
    op = step[0]
    if op not in _OPERATIONS:
        raise ValueError(f"{name} has an unknown operation {op!r}; expected one of "
                         f"{', '.join(map(repr, _OPERATIONS))}.")
    arity, form = _FORMS[op]
    if len(step) not in arity:
        raise ValueError(f"{name} must be {form}; got {step!r}.")
    def arg(what):
        return what if plain else f"the {what} of {name}"

    target = _check_target(step[1], arg("class_index" if plain else "class index"))
    if op == "keep_largest":
        return op, target
    if op == "remove_small":
        return op, target, check_int(step[2], arg("min_size"), low=1)
    if len(step) == 3 and step[2] is not None:
        return op, target, check_int(step[2], arg("max_hole_size"), low=1)
    return op, target


def _check_steps(steps):
    if not isinstance(steps, (tuple, list)):
        raise TypeError(f"steps must be a tuple or list of steps; got {steps!r}.")
    return tuple(_check_step(s, f"steps[{i}]") for i, s in enumerate(steps))


def _check_classes_below(steps, n_classes, name):
    for i, step in enumerate(steps):
        if step[1] != FOREGROUND and step[1] >= n_classes:
            raise ValueError(f"{name}[{i}] = {step!r} names class {step[1]}, but there are only "
                             f"n_classes={n_classes} (indices 0 .. {n_classes - 1}).")


# --------------------------------------------------------------------------- #
# the operations, in place on one 2-D image
# --------------------------------------------------------------------------- #
def _shifted(shape, dy, dx):
    """Slices ``(src, dst)`` such that ``a[dst]`` is ``a[src]`` moved by (dy, dx)."""
    h, w = shape
    src = (slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
    dst = (slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
    return src, dst


def _border_majority(regions, n_regions, img, connectivity):
    """For each region 1 .. n of ``regions`` (0: none), the label of ``img``
    found most often on the pixels next to it and outside it (the smallest
    label on ties, 0 when the region has no neighbour). Returns an array of
    length ``n_regions + 1``."""
    owners, values = [], []
    for dy, dx in _OFFSETS[connectivity]:
        src, dst = _shifted(img.shape, dy, dx)
        r, other = regions[src], regions[dst]
        edge = (r > 0) & (other != r)
        owners.append(r[edge])
        values.append(img[dst][edge])
    owners, values = np.concatenate(owners), np.concatenate(values)
    out = np.zeros(n_regions + 1, dtype=img.dtype)
    if owners.size == 0:
        return out
    found, which = np.unique(values, return_inverse=True)
    counts = np.bincount(owners.astype(np.int64) * found.size + which.ravel(),
                         minlength=(n_regions + 1) * found.size).reshape(n_regions + 1, -1)
    has = counts.any(axis=1)
    out[has] = found[counts[has].argmax(axis=1)]
    return out


def _mask(img, target):
    return img != 0 if target == FOREGROUND else img == target


def _components(mask, connectivity):
    comp, n = measure.label(mask, connectivity=connectivity, background=0, return_num=True)
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    sizes[0] = 0
    return comp, sizes


def _drop_components(img, comp, drop, connectivity, replace):
    removed = drop[comp]
    if not removed.any():
        return
    if replace == "background":
        img[removed] = 0
        return
    new = _border_majority(np.where(removed, comp, 0), len(drop) - 1, img, connectivity)
    img[removed] = new[comp[removed]]


def _keep_largest(img, target, connectivity, replace):
    mask = _mask(img, target)
    if not mask.any():
        return
    comp, sizes = _components(mask, connectivity)
    if len(sizes) <= 2:
        return
    drop = np.ones(len(sizes), dtype=bool)
    drop[0] = False
    drop[np.argmax(sizes)] = False  # the first in raster order on ties
    _drop_components(img, comp, drop, connectivity, replace)


def _remove_small(img, target, min_size, connectivity, replace):
    mask = _mask(img, target)
    if not mask.any():
        return
    comp, sizes = _components(mask, connectivity)
    drop = sizes < min_size
    drop[0] = False
    _drop_components(img, comp, drop, connectivity, replace)


def _fill_holes(img, target, max_hole_size, connectivity):
    mask = _mask(img, target)
    if not mask.any():
        return
    around = 3 - connectivity
    structure = ndimage.generate_binary_structure(2, around)
    enclosed = ndimage.binary_fill_holes(mask, structure=structure) & ~mask
    if not enclosed.any():
        return
    comp, n = measure.label(enclosed, connectivity=around, background=0, return_num=True)
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    labelled = np.bincount(comp[img != 0], minlength=n + 1)
    fill = labelled == 0  # regions of background pixels only
    if max_hole_size is not None:
        fill &= sizes <= max_hole_size
    fill[0] = False
    holes = fill[comp]
    if not holes.any():
        return
    if target == FOREGROUND:
        new = _border_majority(np.where(holes, comp, 0), n, img, around)
        img[holes] = new[comp[holes]]
    else:
        img[holes] = target


def _apply_step(img, step, connectivity, replace):
    op, target = step[0], step[1]
    if op == "keep_largest":
        _keep_largest(img, target, connectivity, replace)
    elif op == "remove_small":
        _remove_small(img, target, step[2], connectivity, replace)
    else:
        _fill_holes(img, target, step[2] if len(step) == 3 else None, connectivity)


# --------------------------------------------------------------------------- #
# the post-processor
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class PostProcessor:
    """Steps of post-processing to apply to predicted label images.

    Parameters
    ----------
    steps : sequence of tuples, default=()
        Applied in order, each to the result of the previous one:

        - ``("keep_largest", c)``: keep only the largest connected component
          of class ``c`` (the first in raster order on ties);
        - ``("remove_small", c, min_size)``: remove the connected components
          of class ``c`` with fewer than ``min_size`` pixels;
        - ``("fill_holes", c)`` or ``("fill_holes", c, max_hole_size)``:
          fill the holes of class ``c`` (those of at most ``max_hole_size``
          pixels).

        ``c`` is a foreground class index (>= 1) or ``"foreground"``, all
        foreground classes taken together. A step on a class that an image
        does not hold leaves it unchanged. Stored as a tuple of tuples.
    connectivity : {1, 2}, default=2
        1: pixels touch through edges (4 neighbours); 2: also through
        corners (8 neighbours), scikit-image's default in 2-D.
    replace : {"neighbour", "background"}, default="neighbour"
        What removed pixels become: the label most frequent on the border of
        their component (background on ties), or the background, 0.

    See Also
    --------
    make_postprocessor : one from explicit options.
    select_postprocessing : one chosen on validation data.

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.postprocessing import PostProcessor
    >>> labels = np.array([[1, 1, 0, 0, 1],
    ...                    [1, 1, 0, 0, 0],
    ...                    [0, 0, 0, 2, 2]])
    >>> pp = PostProcessor([("keep_largest", 1)])
    >>> pp
    PostProcessor(steps=(('keep_largest', 1),), connectivity=2, replace='neighbour')
    >>> pp.apply(labels)
    array([[1, 1, 0, 0, 0],
           [1, 1, 0, 0, 0],
           [0, 0, 0, 2, 2]])
    >>> pp == PostProcessor((("keep_largest", 1),))
    True
    """

    steps: tuple = ()
    connectivity: int = 2
    replace: str = "neighbour"

    def __post_init__(self):
        object.__setattr__(self, "steps", _check_steps(self.steps))
        object.__setattr__(self, "connectivity",
                           check_int(self.connectivity, "connectivity", low=1, high=2))
        object.__setattr__(self, "replace", check_option(self.replace, "replace", _REPLACE))

    def apply(self, labels):
        """Post-process label images.

        Parameters
        ----------
        labels : ndarray of shape (n, H, W) or (H, W), or list of (H, W) arrays
            Integer class indices, 0 the background.

        Returns
        -------
        labels : ndarray or list
            New label images of the same form, shape and dtype; the input is
            not modified.
        """
        images, form = _check_class_images(labels, "labels")
        out = [img.copy() for img in images] if form == "list" else images.copy()
        for img in out:
            for step in self.steps:
                _apply_step(img, step, self.connectivity, self.replace)
        return out[0] if form == "2d" else out


def _one_step(labels, step, connectivity, replace="neighbour"):
    step = _check_step(step, "step", plain=True)  # errors name the function's arguments
    return PostProcessor((step,), connectivity, replace).apply(labels)


_LABELS_DOC = """labels : ndarray of shape (n, H, W) or (H, W), or list of (H, W) arrays
        Integer class indices, 0 the background.
    class_index : int or "foreground"
        The class (>= 1), or all foreground classes together."""
_RETURNS_DOC = """Returns
    -------
    labels : ndarray or list
        New label images of the same form and dtype; the input is not modified."""


def remove_small_components(labels, class_index, min_size, *, connectivity=2,
                            replace="neighbour"):
    """Remove the connected components of a class smaller than ``min_size``.

    Parameters
    ----------
    {labels}
    min_size : int
        Components with fewer pixels are removed.
    connectivity : {1, 2}, default=2
        4- or 8-neighbour connectivity.
    replace : {"neighbour", "background"}, default="neighbour"
        What removed pixels become (see :class:`PostProcessor`).

    {returns}

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.postprocessing import remove_small_components
    >>> labels = np.array([[1, 1, 1, 0, 0],
    ...                    [1, 2, 1, 0, 1],
    ...                    [1, 1, 1, 0, 0]])
    >>> remove_small_components(labels, 1, 2)
    array([[1, 1, 1, 0, 0],
           [1, 2, 1, 0, 0],
           [1, 1, 1, 0, 0]])
    >>> remove_small_components(labels, 2, 2)  # the speck of 2 becomes 1 around it
    array([[1, 1, 1, 0, 0],
           [1, 1, 1, 0, 1],
           [1, 1, 1, 0, 0]])
    """
    return _one_step(labels, ("remove_small", class_index, min_size), connectivity, replace)


def keep_largest_component(labels, class_index, *, connectivity=2, replace="neighbour"):
    """Keep only the largest connected component of a class.

    Parameters
    ----------
    {labels}
    connectivity : {1, 2}, default=2
        4- or 8-neighbour connectivity.
    replace : {"neighbour", "background"}, default="neighbour"
        What removed pixels become (see :class:`PostProcessor`).

    {returns}

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.postprocessing import keep_largest_component
    >>> labels = np.array([[1, 0, 0, 2],
    ...                    [0, 1, 0, 2],
    ...                    [0, 0, 0, 2]])
    >>> keep_largest_component(labels, "foreground")
    array([[0, 0, 0, 2],
           [0, 0, 0, 2],
           [0, 0, 0, 2]])
    >>> keep_largest_component(labels, 1)  # touching through a corner: one component
    array([[1, 0, 0, 2],
           [0, 1, 0, 2],
           [0, 0, 0, 2]])
    >>> keep_largest_component(labels, 1, connectivity=1)  # two: the first one stays
    array([[1, 0, 0, 2],
           [0, 0, 0, 2],
           [0, 0, 0, 2]])
    """
    return _one_step(labels, ("keep_largest", class_index), connectivity, replace)


def fill_holes(labels, class_index, *, max_hole_size=None, connectivity=2):
    """Fill the holes of a class.

    A hole of class ``c`` is a connected region of background pixels that
    ``c`` encloses completely (it touches neither the image edge nor another
    class); its pixels, background before, become ``c``. A region of another
    class inside ``c`` is left as it is. The holes of ``"foreground"`` take
    the class found most often on their border.

    Parameters
    ----------
    {labels}
    max_hole_size : int or None, default=None
        Fill only holes of at most this many pixels; None fills all.
    connectivity : {1, 2}, default=2
        Connectivity of the class; its holes use the other one.

    {returns}

    Examples
    --------
    >>> import numpy as np
    >>> from sksegment.postprocessing import fill_holes
    >>> labels = np.array([[1, 1, 1, 0],
    ...                    [1, 0, 1, 0],
    ...                    [1, 1, 1, 0]])
    >>> fill_holes(labels, 1)
    array([[1, 1, 1, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 0]])
    """
    return _one_step(labels, ("fill_holes", class_index, max_hole_size), connectivity)


for _f in (remove_small_components, keep_largest_component, fill_holes):
    _f.__doc__ = _f.__doc__.replace("{labels}", _LABELS_DOC).replace("{returns}", _RETURNS_DOC)
del _f


# --------------------------------------------------------------------------- #
# explicit options
# --------------------------------------------------------------------------- #
_CLASS_KEYS = ("keep_largest", "remove_small", "fill_holes")
_TOP_KEYS = _CLASS_KEYS + ("foreground", "classes", "connectivity", "replace")


def _check_class_options(opts, name):
    if not isinstance(opts, dict):
        raise TypeError(f"{name} must be a dict with keys among {list(_CLASS_KEYS)}; "
                        f"got {opts!r}.")
    for key in opts:
        if key not in _CLASS_KEYS:
            raise ValueError(f"{name} has an unknown key {key!r}; expected keys among "
                             f"{list(_CLASS_KEYS)}.")
    out = {}
    if "keep_largest" in opts:
        out["keep_largest"] = check_bool(opts["keep_largest"], f"{name}['keep_largest']")
    if "remove_small" in opts:
        value = opts["remove_small"]
        value = 0 if value is None or value is False else value
        out["remove_small"] = check_int(value, f"{name}['remove_small']", low=0)
    if "fill_holes" in opts:
        value = opts["fill_holes"]
        if value is None or isinstance(value, (bool, np.bool_)):
            out["fill_holes"] = bool(value)
        elif is_int(value):
            out["fill_holes"] = check_int(value, f"{name}['fill_holes']", low=1)
        else:
            raise TypeError(f"{name}['fill_holes'] must be True, False or a largest hole size "
                            f"(an integer >= 1); got {value!r}.")
    return out


def _steps_for(target, opts):
    steps = []
    if opts.get("keep_largest", False):
        steps.append(("keep_largest", target))
    if opts.get("remove_small", 0):
        steps.append(("remove_small", target, opts["remove_small"]))
    fill = opts.get("fill_holes", False)
    if fill:
        steps.append(("fill_holes", target) if fill is True else ("fill_holes", target, fill))
    return steps


def make_postprocessor(options, n_classes, *, name="options"):
    """A :class:`PostProcessor` from explicit options.

    Parameters
    ----------
    options : dict, PostProcessor or None
        None means no post-processing. A dict may hold:

        - ``"keep_largest"`` (bool), ``"remove_small"`` (int >= 0, the
          ``min_size``; 0 or None: off) and ``"fill_holes"`` (bool, or an int
          >= 1: the largest hole filled), applied to every foreground class;
        - ``"classes"``: a dict ``{class_index: {...}}`` with the same three
          keys for single classes, overriding the ones above for that class;
        - ``"foreground"``: a dict with the same three keys for all
          foreground classes taken together (applied first);
        - ``"connectivity"`` (1 or 2, default 2) and ``"replace"``
          (``"neighbour"`` or ``"background"``), see :class:`PostProcessor`.

        The steps are made in this order: the foreground steps, then for each
        class in increasing index: keep the largest component, remove small
        components, fill holes. A PostProcessor is checked against
        ``n_classes`` and returned as it is.
    n_classes : int
        Number of classes, background included (>= 2).
    name : str, default="options"
        How error messages name ``options`` (the caller's argument name).

    Returns
    -------
    postprocessor : PostProcessor

    Examples
    --------
    >>> from sksegment.postprocessing import make_postprocessor
    >>> make_postprocessor({"remove_small": 16, "classes": {2: {"fill_holes": True}}}, 3)
    ... # doctest: +NORMALIZE_WHITESPACE
    PostProcessor(steps=(('remove_small', 1, 16), ('remove_small', 2, 16), ('fill_holes', 2)),
                  connectivity=2, replace='neighbour')
    >>> make_postprocessor({"foreground": {"keep_largest": True}}, 2).steps
    (('keep_largest', 'foreground'),)
    """
    n_classes = check_int(n_classes, "n_classes", low=2)
    if options is None:
        return PostProcessor()
    if isinstance(options, PostProcessor):
        _check_classes_below(options.steps, n_classes, "steps")
        return options
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict, a PostProcessor or None; got {options!r}.")
    for key in options:
        if key not in _TOP_KEYS:
            raise ValueError(f"{name} has an unknown key {key!r}; expected keys among "
                             f"{list(_TOP_KEYS)}.")
    common = _check_class_options({k: options[k] for k in _CLASS_KEYS if k in options}, name)
    per_class = options.get("classes", {})
    if not isinstance(per_class, dict):
        raise TypeError(f"{name}['classes'] must be a dict {{class_index: {{...}}}}; "
                        f"got {per_class!r}.")
    checked = {}
    for c, opts in per_class.items():
        if not is_int(c):
            raise TypeError(f"{name}['classes'] has the key {c!r}; keys are class indices "
                            f"(integers 1 .. {n_classes - 1}).")
        if not 1 <= c < n_classes:
            raise ValueError(f"{name}['classes'] has the key {c}, which is not a foreground "
                             f"class index: expected 1 .. {n_classes - 1} for "
                             f"n_classes={n_classes} (0 is the background).")
        checked[int(c)] = _check_class_options(opts, f"{name}['classes'][{c}]")
    steps = _steps_for(FOREGROUND, _check_class_options(options.get("foreground", {}),
                                                        f"{name}['foreground']"))
    for c in range(1, n_classes):
        steps += _steps_for(c, {**common, **checked.get(c, {})})
    connectivity = check_int(options.get("connectivity", 2), f"{name}['connectivity']",
                             low=1, high=2)
    replace = check_option(options.get("replace", "neighbour"), f"{name}['replace']", _REPLACE)
    return PostProcessor(steps, connectivity=connectivity, replace=replace)


def __getattr__(name):
    # select_postprocessing lives in a module of its own that imports this
    # one; importing it here, when it is asked for, lets either module be
    # imported first (PEP 562)
    if name == "select_postprocessing":
        from ._postprocess_selection import select_postprocessing

        return select_postprocessing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"select_postprocessing"})
