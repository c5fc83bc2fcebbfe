"""Where predictions go: a new array, a list, or the caller's ``out``.

:func:`check_out` validates an ``out=`` argument of ``predict`` /
``predict_proba`` before any prediction work (shape, dtype, writability), and
:func:`collect` runs a :class:`sksegment._inference.Predictions` and writes
each image's finished rows straight into their place, mapped to label values
for labels, so that no per-image or whole-set copy is made on the way.
"""

import numpy as np

from ._arrays import image_shape, is_dask
from ._data import representable


def _describe(obj):
    return f"{type(obj).__module__.split('.')[0]}.{type(obj).__name__}"


def _check_writable(out, name):
    """Raise unless ``out`` is an array or store that takes slice assignment."""
    if is_dask(out):
        raise TypeError(
            f"{name} is a dask array, which cannot be written into; pass a writable store "
            "(a zarr array, an h5py dataset, a memmap) or leave out=None to get a dask array.")
    ident = getattr(out, "id", None)
    if ident is not None and hasattr(ident, "valid") and not ident.valid:
        raise ValueError(f"{name} ({_describe(out)}) belongs to a closed file; open the file "
                         "again (mode='r+' or 'a') and pass the dataset.")
    if not all(hasattr(type(out), a) or hasattr(out, a)
               for a in ("shape", "dtype", "__setitem__")):
        raise TypeError(f"{name} must be an array with shape, dtype and slice assignment (an "
                        f"ndarray, memmap, zarr array or h5py dataset); got {_describe(out)}.")
    if isinstance(out, np.ndarray):
        if not out.flags.writeable:
            raise ValueError(f"{name} is read-only (flags.writeable is False); pass a writable "
                             "array, for example a memmap opened with mode='r+' or 'w+'.")
        return
    if getattr(out, "read_only", False) is True:
        raise ValueError(f"{name} ({_describe(out)}) is read-only (opened with mode='r'); "
                         "open it with mode='r+' or 'a'.")
    mode = getattr(getattr(out, "file", None), "mode", None)
    if mode == "r":
        raise ValueError(f"{name} ({_describe(out)}) belongs to a file opened read-only "
                         "(mode='r'); open it with mode='r+' or 'a'.")
    try:
        shape = tuple(int(s) for s in out.shape)
        np.dtype(out.dtype)
    except (RuntimeError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{name} ({_describe(out)}) cannot be used: {exc}") from None
    if len(shape) == 0:
        raise ValueError(f"{name} must have at least one axis; got shape {shape}.")


def _check_dtype(out, name, output, classes):
    dtype = np.dtype(out.dtype)
    if output == "labels":
        if not all(representable(v, dtype) for v in classes.tolist()):
            raise TypeError(
                f"{name} has dtype {dtype}, which cannot hold every class value exactly "
                f"(classes_ = {classes.tolist()} of dtype {classes.dtype}); use dtype "
                f"{classes.dtype} or another that holds them.")
    elif dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype for probabilities and "
                        f"uncertainty (float32, or float16 to halve the size); got dtype "
                        f"{dtype}.")


#: What each ``output`` kind writes, for messages: the whole array, one image.
_WHAT = {"labels": "labels (n, H, W)", "proba": "probabilities (n, H, W, n_classes)",
         "uncertainty": "uncertainty map (n, H, W)"}
_PER_IMAGE = {"labels": "(H, W) for labels", "proba": "(H, W, n_classes) for probabilities",
              "uncertainty": "(H, W) for the uncertainty map"}


def _expected(hw, output, n_classes):
    return tuple(hw) + ((n_classes,) if output == "proba" else ())


def check_out(out, images, output, classes, *, n_classes=None, name="out"):
    """Validate ``out`` for the predictions of ``images`` before any work.

    Parameters
    ----------
    out : array-like or list of array-likes
        One array ``(n, H, W)`` (labels) or ``(n, H, W, K)`` (probabilities)
        when every image has one size; for images of different sizes, a list
        with one ``(H, W)`` / ``(H, W, K)`` array per image.
    images : checked images (ndarray, LazyArray or list)
    output : {"labels", "proba", "uncertainty"}
        What is written: label images, class probabilities, or a per-pixel
        uncertainty map (``(n, H, W)`` floats).
    classes : ndarray
        ``classes_``: label outputs must hold each value exactly.
    n_classes : int, default=len(classes)

    Returns
    -------
    out : the same object

    Raises
    ------
    TypeError
        ``out`` is no writable array, or its dtype cannot hold the values.
    ValueError
        A wrong shape, or a read-only or closed store.
    """
    n_classes = len(classes) if n_classes is None else n_classes
    n = len(images)
    shapes = [image_shape(images, i) for i in range(n)]
    what = _WHAT[output]
    if isinstance(out, (list, tuple)):
        if len(out) != n:
            raise ValueError(f"{name} is a list of {len(out)} arrays but X has {n} images.")
        for i, (o, hw) in enumerate(zip(out, shapes)):
            _check_writable(o, f"{name}[{i}]")
            want = _expected(hw, output, n_classes)
            if tuple(o.shape) != want:
                raise ValueError(f"{name}[{i}] has shape {tuple(o.shape)}; image {i} needs "
                                 f"{want}.")
            _check_dtype(o, f"{name}[{i}]", output, classes)
        _check_no_overlap(out, images, name)
        return out
    _check_writable(out, name)
    if len(set(shapes)) > 1:
        raise ValueError(
            f"X holds images of different sizes, which do not fit one array {name}; pass "
            f"{name} as a list with one array per image (shape {_PER_IMAGE[output]}).")
    want = (n,) + _expected(shapes[0], output, n_classes)
    if tuple(out.shape) != want:
        raise ValueError(f"{name} has shape {tuple(out.shape)}; for the {what} of X it "
                         f"needs shape {want}.")
    _check_dtype(out, name, output, classes)
    _check_no_overlap([out], images, name)
    return out


def _check_no_overlap(outs, images, name):
    """An in-memory ``out`` must not share memory with the images it is
    computed from (tiles are read after earlier rows are written)."""
    sources = images if isinstance(images, list) else [images]
    sources = [getattr(s, "store", s) for s in sources]
    for o in outs:
        if not isinstance(o, np.ndarray):
            continue
        for src in sources:
            if isinstance(src, np.ndarray) and np.may_share_memory(o, src):
                raise ValueError(f"{name} shares memory with X; predictions cannot overwrite "
                                 "the images they are computed from.")


def collect(predictions, images, classes=None, out=None, transform=None):
    """Run ``predictions`` and return them gathered.

    Parameters
    ----------
    predictions : sksegment._inference.Predictions, or an iterable of
        per-image arrays
    images : the checked images (their shapes size the result)
    classes : ndarray or None
        Map class indices through ``classes`` (labels); None keeps the
        arrays as they come (probabilities).
    out : checked output (see :func:`check_out`) or None
    transform : callable or None
        Applied to each block of rows before it is stored (for example the
        per-pixel uncertainty of a block of probabilities).

    Returns
    -------
    ndarray ``(n, H, W[, K])`` for an array, or for a list whose images share
    one size; else a list of arrays. ``out`` itself when given.
    """
    n = len(images)
    shapes = [image_shape(images, i) for i in range(n)]
    uniform = len(set(shapes)) == 1
    state = {"out": out}

    def target(i, block):
        dest = state["out"]
        if dest is None:
            dtype = block.dtype if classes is None else classes.dtype
            tail = block.shape[2:]
            if uniform:
                dest = np.empty((n,) + shapes[0] + tail, dtype=dtype)
            else:
                dest = [np.empty(hw + tail, dtype=dtype) for hw in shapes]
            state["out"] = dest
        return dest

    pending = {}

    def store(i, row, values):
        dest = state["out"]
        if isinstance(dest, (list, tuple)):
            dest[i][row:row + len(values)] = values
        else:
            dest[i, row:row + len(values)] = values

    def write(i, row, block):
        if transform is not None:
            block = transform(block)
        dest = target(i, block)
        values = block if classes is None else classes[block]
        dst = dest[i] if isinstance(dest, (list, tuple)) else dest
        dtype = np.dtype(dst.dtype)
        if values.dtype != dtype:
            values = values.astype(dtype)
        if isinstance(dst, np.ndarray):
            store(i, row, values)
            return
        if i not in pending:
            pending[i] = _ChunkRows(dst, shapes[i][0], list_entry=dst is not dest)
        for start, part in pending[i].add(row, values):
            store(i, start, part)

    if hasattr(predictions, "write_into"):
        predictions.write_into(write)
    else:
        for i, p in enumerate(predictions):
            write(i, 0, p)
    return state["out"]


#: Values buffered at most per image by :class:`_ChunkRows`.
BUFFER_VALUES = 1 << 24


class _ChunkRows:
    """Rows of one image bound for a chunked store (zarr, h5py), held back
    until they fill whole chunk rows, so that each chunk is written once
    rather than read, changed and compressed again for every band of rows.
    Stores without chunks, or whose chunk rows would hold more than
    :data:`BUFFER_VALUES` values, get each band as it comes."""

    def __init__(self, dst, height, list_entry):
        chunks = getattr(dst, "chunks", None)
        try:
            rows = int(chunks[0 if list_entry else 1]) if chunks else 1
        except (TypeError, ValueError, IndexError):
            rows = 1
        row_values = int(np.prod(dst.shape[1 if list_entry else 2:], dtype=np.int64))
        self.rows = rows if rows * row_values <= BUFFER_VALUES else 1
        self.height = height
        self.start, self.parts = None, []

    def add(self, row, values):
        """Blocks ``(start, values)`` ready to be written, whole chunk rows
        (and the image's last rows) only."""
        if self.rows <= 1:
            return [(row, values)]
        if self.start is None:
            self.start = row
        self.parts.append(values)
        end = row + len(values)
        cut = end if end == self.height else end // self.rows * self.rows
        if cut <= self.start:
            return []
        held = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        ready = held[:cut - self.start]
        rest = held[cut - self.start:]
        self.parts = [rest] if len(rest) else []
        start, self.start = self.start, (cut if len(rest) else None)
        return [(start, ready)]
