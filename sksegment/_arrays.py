"""Array-likes that read on demand: zarr arrays, h5py datasets, dask arrays.

Such objects are recognised by duck typing (``shape``, ``dtype``, ``ndim``
and NumPy-style slicing), so zarr, h5py and dask are never imported here. A
``numpy.memmap`` is an ndarray already and needs no wrapper.

:class:`LazyArray` puts one face on all of them: indexing it reads only the
selected region from the store and returns a NumPy array (a dask selection is
computed), and :meth:`LazyArray.take` selects whole images by index without
reading anything. :func:`iter_blocks` streams an image set in bounded blocks.
"""

import numbers

import numpy as np

#: Values read at most per block by :func:`iter_blocks` (unless one row of
#: the store's chunks is larger: a read never splits a chunk along the rows).
SCAN_VALUES = 1 << 22


def is_dask(obj):
    """Whether ``obj`` is a dask array (without importing dask)."""
    return (hasattr(obj, "__dask_graph__") and hasattr(obj, "chunks")
            and hasattr(obj, "dtype") and hasattr(obj, "ndim"))


def is_array_like(obj):
    """Whether ``obj`` reads like an array on demand: not an ndarray, a list
    or a tensor, but an object with ``shape``, ``dtype``, ``ndim`` and
    ``__getitem__`` (a zarr array, an h5py dataset, a dask array, ...)."""
    if isinstance(obj, (np.ndarray, np.generic, list, tuple, str, bytes, LazyArray)):
        return False
    if type(obj).__module__.split(".")[0] == "torch":
        return False
    return all(hasattr(type(obj), a) or hasattr(obj, a)
               for a in ("shape", "dtype", "ndim", "__getitem__"))


def _read(store, key):
    """``store[key]`` as a NumPy array (a dask selection is computed)."""
    out = store[key]
    if is_dask(out):
        out = out.compute()
    return np.asarray(out)


def store_chunks(store):
    """Chunk shape of a zarr array / h5py dataset / dask array (the largest
    chunk along each axis for dask), or None when unknown or unchunked."""
    chunks = getattr(store, "chunks", None)
    if chunks is None:
        return None
    try:
        return tuple(int(max(c)) if isinstance(c, tuple) else int(c) for c in chunks)
    except (TypeError, ValueError):
        return None


def _is_int(k):
    return isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_))


def _describe(store):
    return f"{type(store).__module__.split('.')[0]}.{type(store).__name__}"


class LazyArray:
    """A read-on-demand view of an array-like store.

    Parameters
    ----------
    store : array-like
        A zarr array, h5py dataset, dask array or any object with ``shape``,
        ``dtype``, ``ndim`` and NumPy-style slicing. Never modified.
    name : str
        Argument name used in error messages.

    Notes
    -----
    Indexing takes integers, slices and, on the first axis only, a 1-D
    integer array; it reads that region and returns an ndarray. Two keys give
    views instead, for code that adds or drops a length-1 axis: ``a[None]``
    (a leading axis) and ``a[..., 0]`` (drops a trailing axis of length 1).
    ``np.asarray(a)`` reads everything.
    """

    def __init__(self, store, name="X", *, rows=None, lead=False, tail=0):
        self.store = store
        self.name = name
        self.rows = rows      # image indices along the store's first axis, or None
        self.lead = lead      # a new leading axis of length 1
        self.tail = tail      # +1: a new trailing axis of length 1; -1: the last axis dropped
        try:
            base = tuple(int(s) for s in store.shape)
            self.dtype = np.dtype(store.dtype)
        except (RuntimeError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # a closed h5py file, a broken store
            raise ValueError(f"{name} ({_describe(store)}) cannot be read: {exc}") from None
        if rows is not None:
            base = (len(rows),) + base[1:]
        if tail == 1:
            base = base + (1,)
        elif tail == -1:
            base = base[:-1]
        self.shape = ((1,) if lead else ()) + base

    # ------------------------------------------------------------------ #
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        return self.shape[0]

    @property
    def is_dask(self):
        return is_dask(self.store)

    @property
    def chunks(self):
        """Chunk shape along the view's axes, or None when unknown."""
        c = store_chunks(self.store)
        if c is None or len(c) != len(self.store.shape):
            return None
        c = list(c)
        if self.rows is not None:
            c[0] = 1
        if self.tail == 1:
            c.append(1)
        elif self.tail == -1:
            c.pop()
        return tuple(([1] if self.lead else []) + c)

    def _view(self, **changes):
        kw = {"rows": self.rows, "lead": self.lead, "tail": self.tail}
        kw.update(changes)
        return LazyArray(self.store, self.name, **kw)

    def take(self, indices):
        """A view of the images ``indices`` (nothing is read)."""
        if self.lead:
            raise IndexError("take() selects images along the first axis of the store.")
        idx = np.arange(self.shape[0])[np.asarray(indices, dtype=np.int64)]
        return self._view(rows=idx if self.rows is None else self.rows[idx])

    def with_channel_axis(self):
        """A view with a trailing axis of length 1 (grayscale images)."""
        if self.tail != 0:
            raise ValueError("the view already changes its last axis.")
        return self._view(tail=1)

    def reshape(self, *shape):
        """``reshape(-1)`` only: a flat view whose slices read the rows they span."""
        if shape not in ((-1,), ((-1,),), (self.size,), ((self.size,),)):
            raise ValueError(f"{self.name} is read lazily; only reshape(-1) is supported.")
        return _Flat(self)

    def __repr__(self):
        return f"LazyArray({_describe(self.store)}, shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype=None, copy=None):
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype, copy=False)

    # ------------------------------------------------------------------ #
    def _normalise(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...').")
        if any(k is Ellipsis for k in key):
            at = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:at] + (slice(None),) * max(fill, 0) + key[at + 1:]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for {self!r}: {len(key)} given.")
        key = key + (slice(None),) * (self.ndim - len(key))
        out = []
        for axis, k in enumerate(key):
            if _is_int(k):
                n = self.shape[axis]
                if not -n <= k < n:
                    raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}.")
                out.append(int(k) % n)
            elif isinstance(k, slice):
                out.append(k)
            elif axis == 0 and not self.lead:
                arr = np.asarray(k)
                if arr.dtype == bool:
                    arr = np.flatnonzero(arr)
                if arr.ndim != 1 or arr.dtype.kind not in "iu":
                    raise IndexError(f"{self.name}: the first axis takes integers, slices or a "
                                     f"1-D integer array; got {k!r}.")
                out.append(np.arange(self.shape[0])[arr])
            else:
                raise IndexError(f"{self.name} is read in regions: use integers and slices "
                                 f"(an integer array on the first axis only); got {k!r}.")
        return out

    def __getitem__(self, key):
        if key is None or (isinstance(key, tuple) and len(key) >= 1 and key[0] is None
                           and all(k is Ellipsis for k in key[1:])):
            if self.lead:
                raise IndexError("the view has a leading axis already.")
            return self._view(lead=True)
        if (isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis
                and _is_int(key[1]) and key[1] in (0, -1) and self.shape[-1] == 1
                and self.tail != -1 and self.ndim > 1):
            return self._view(tail=0) if self.tail == 1 else self._view(tail=-1)
        keys = self._normalise(key)
        lead_key = keys.pop(0) if self.lead else None
        tail_key = keys.pop() if self.tail == 1 else None
        if self.tail == -1:
            keys.append(0)
        first = keys[0]
        if self.rows is not None:
            first = (np.arange(len(self.rows))[first] if isinstance(first, slice)
                     else np.asarray(first))
            first = self.rows[first]
            first = int(first) if first.ndim == 0 else first
        rest = tuple(keys[1:])
        if isinstance(first, np.ndarray):
            res = self._read_rows(first, rest)
        else:
            res = _read(self.store, (first,) + rest)
        # new axes by reshape: strides as in a fresh array (``a[..., None]``
        # would give a stride of 0, which torch reads as another memory format)
        if tail_key is not None:
            res = res.reshape(res.shape + (1,))[..., tail_key]
        if self.lead:
            res = res.reshape((1,) + res.shape)[lead_key]
        return res

    def _read_rows(self, idx, rest):
        """Images ``idx`` (any order) of the store, each with the key ``rest``."""
        if idx.size and np.all(np.diff(idx) == 1):
            return _read(self.store, (slice(int(idx[0]), int(idx[-1]) + 1),) + rest)
        if idx.size == 0:
            return _read(self.store, (slice(0, 0),) + rest)
        return np.stack([_read(self.store, (int(j),) + rest) for j in idx])


class _Flat:
    """``LazyArray.reshape(-1)``: slicing ``[start:stop]`` (step 1) reads only
    the rows of the images it spans and returns a new 1-D array."""

    def __init__(self, arr):
        self.arr = arr
        self.dtype = arr.dtype
        self.shape = (arr.size,)
        self.ndim = 1
        self.size = arr.size

    def __len__(self):
        return self.size

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise IndexError("a flat lazy view takes slices [start:stop] only.")
        start, stop, _ = key.indices(self.size)
        arr = self.arr
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        if arr.ndim == 1:
            return np.asarray(arr[start:stop]).reshape(-1)
        row = int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim == 2 else \
            int(np.prod(arr.shape[2:], dtype=np.int64))
        if arr.ndim == 2:  # one image (H, W): rows along the first axis
            r0, r1 = start // row, -(-stop // row)
            return np.asarray(arr[r0:r1]).reshape(-1)[start - r0 * row:stop - r0 * row]
        per_image = arr.shape[1] * row
        parts = []
        for i in range(start // per_image, -(-stop // per_image)):
            a = max(start, i * per_image) - i * per_image
            b = min(stop, (i + 1) * per_image) - i * per_image
            r0, r1 = a // row, -(-b // row)
            parts.append(np.asarray(arr[i, r0:r1]).reshape(-1)[a - r0 * row:b - r0 * row])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def is_dask_images(images):
    """Whether checked images are a view of a whole dask array (what
    ``predict`` turns into a dask array of predictions)."""
    return (isinstance(images, LazyArray) and images.is_dask and images.rows is None
            and not images.lead)


def as_lazy(obj, name="X"):
    """``obj`` as a :class:`LazyArray` (an ndarray is wrapped too: its reads
    are then copies of the selected region, its views stay views)."""
    if isinstance(obj, LazyArray):
        return obj
    return LazyArray(obj, name)


def take(data, indices):
    """Images ``indices`` of a list (a new list), an ndarray or a LazyArray
    (a lazy view: nothing is read or copied)."""
    if isinstance(data, list):
        return [data[i] for i in indices]
    return as_lazy(data).take(indices)


def image_shape(images, i):
    """(H, W) of image ``i`` of an image set, from metadata (nothing is read)."""
    if isinstance(images, list):
        return tuple(int(s) for s in images[i].shape[:2])
    return tuple(int(s) for s in images.shape[1:3])


def read_region(data, i, top, left, height, width):
    """Rows ``top:top+height`` and columns ``left:left+width`` of image ``i``
    of an image set (list, ndarray or LazyArray); only that region is read.
    A view for an in-memory array."""
    rows, cols = slice(top, top + height), slice(left, left + width)
    if isinstance(data, list):
        return np.asarray(data[i][rows, cols])
    return np.asarray(data[i, rows, cols])


#: Values of one band of tile rows that :class:`TileReader` reads from a
#: store at once; wider bands are read tile by tile.
BAND_VALUES = 1 << 24


class TileReader:
    """Reads the tiles of image ``i``. An in-memory image is sliced per tile
    (views). A store (:class:`LazyArray`) is read one band
    of tile rows at a time (rows ``y:y + h`` over the columns the tiles span),
    once per row of tiles, so a pixel is read once per tile row covering it
    and compressed chunks are not decoded again for every tile; a band of
    more than :data:`BAND_VALUES` values is read tile by tile instead."""

    def __init__(self, images, i, positions, tile):
        item = images[i] if isinstance(images, list) else images
        self.images, self.i, (self.h, self.w) = images, i, tile
        self.left = min((x for _, x in positions), default=0)
        right = max((x for _, x in positions), default=0) + self.w
        self.band_width = right - self.left
        self.banded = (isinstance(item, LazyArray)
                       and self.h * self.band_width * item.shape[-1] <= BAND_VALUES)
        self.top, self.band = None, None

    def __call__(self, y, x):
        if not self.banded:
            return read_region(self.images, self.i, y, x, self.h, self.w)
        if y != self.top:
            self.band = None  # release the previous band before reading the next
            self.band = read_region(self.images, self.i, y, self.left, self.h, self.band_width)
            self.top = y
        return self.band[:, x - self.left:x - self.left + self.w]


def _row_step(width_values, chunk_rows, budget):
    rows = max(1, budget // max(width_values, 1))
    if chunk_rows is not None and chunk_rows > 1:
        rows = max(chunk_rows, rows // chunk_rows * chunk_rows)
    return rows


def row_bands(data, i, budget=None):
    """``(top, bottom)`` row bands of image ``i`` holding about ``budget``
    values each, aligned to the store's chunk rows where it has chunks."""
    budget = SCAN_VALUES if budget is None else budget
    item = data[i] if isinstance(data, list) else data
    shape = item.shape if isinstance(data, list) else item.shape[1:]
    chunks = getattr(item, "chunks", None) if isinstance(item, LazyArray) else None
    if isinstance(data, list):
        chunk_rows = chunks[0] if chunks else None
    else:
        chunk_rows = chunks[1] if chunks else None
    height = int(shape[0])
    per_row = int(np.prod(shape[1:], dtype=np.int64))
    step = _row_step(per_row, chunk_rows, budget)
    return [(r, min(height, r + step)) for r in range(0, height, step)]


def iter_blocks(data, budget=None):
    """Yield NumPy blocks that together cover an image set once.

    ``data`` is an ndarray, a :class:`LazyArray` (first axis: images) or a
    list of either (one image each). A block holds at most ``budget`` values
    (default :data:`SCAN_VALUES`), or one row of the store's chunks where
    that is larger; blocks of an in-memory array are views where the layout
    allows.
    """
    budget = SCAN_VALUES if budget is None else budget
    if isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, np.ndarray) and item.flags.c_contiguous:
                flat = item.reshape(-1)
                for s in range(0, flat.size, budget):
                    yield flat[s:s + budget]
            else:
                for top, bottom in row_bands(data, i, budget):
                    yield np.asarray(item[top:bottom])
        return
    if isinstance(data, np.ndarray) and data.flags.c_contiguous:
        flat = data.reshape(-1)
        for s in range(0, flat.size, budget):
            yield flat[s:s + budget]
        return
    n = data.shape[0]
    per_image = int(np.prod(data.shape[1:], dtype=np.int64))
    if per_image <= budget:
        step = max(1, budget // max(per_image, 1))
        for s in range(0, n, step):
            yield np.asarray(data[s:s + step])
        return
    for i in range(n):
        for top, bottom in row_bands(data, i, budget):
            yield np.asarray(data[i, top:bottom])
