"""Data larger than memory: array-likes read on demand, out=, dask predictions,
and label values of every integer dtype."""

import copy

import numpy as np
import pytest
import torch

import sksegment._arrays as arrays
from sksegment import CNNSegmenter
from sksegment._arrays import LazyArray
from sksegment._data import LabelCodec, count_pixels, unique_labels
from sksegment.datasets import make_shapes

KW = {"depth": 2, "width": 4, "max_epochs": 1, "batch_size": 4, "random_state": 0,
      "device": "cpu"}  # exact equality of weights needs deterministic kernels


@pytest.fixture(scope="module")
def data():
    X, y = make_shapes(n_samples=8, image_size=32, random_state=0)
    return X, y


def _weights(seg):
    return {k: v.detach().clone() for k, v in seg.model_.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Counting:
    """An array-like that records every read: its key and the values returned."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = []

    def __getitem__(self, key):
        out = self.array[key]
        self.reads.append((key, np.size(out)))
        return out


# ---------------------------------------------------------------------- #
# stores
# ---------------------------------------------------------------------- #
def _memmap(tmp_path, name, a):
    m = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=a.dtype,
                                  shape=a.shape)
    m[:] = a
    m.flush()
    return np.load(tmp_path / f"{name}.npy", mmap_mode="r")


def _zarr(tmp_path, name, a, mode="r"):
    zarr = pytest.importorskip("zarr")
    z = zarr.open(str(tmp_path / f"{name}.zarr"), mode="w", shape=a.shape, dtype=a.dtype,
                  chunks=(1, 16, 16) + a.shape[3:])
    z[:] = a
    return zarr.open(str(tmp_path / f"{name}.zarr"), mode=mode)


@pytest.fixture
def h5file(tmp_path):
    h5py = pytest.importorskip("h5py")
    f = h5py.File(tmp_path / "data.h5", "w")
    yield f
    f.close()


def _store(kind, tmp_path, name, a, h5file=None):
    if kind == "memmap":
        return _memmap(tmp_path, name, a)
    if kind == "zarr":
        return _zarr(tmp_path, name, a)
    if kind == "h5py":
        return h5file.create_dataset(name, data=a, chunks=(1, 16, 16) + a.shape[3:])
    if kind == "dask":
        da = pytest.importorskip("dask.array")
        return da.from_array(a, chunks=(3, 16, 16) + a.shape[3:])
    raise AssertionError(kind)


KINDS = ["memmap", "zarr", "h5py", "dask"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("params", [
    {},
    {"patch_size": 16, "foreground_oversampling": 0.5},
    {"early_stopping": True, "validation_fraction": 0.25, "class_weight": "balanced"},
], ids=["whole", "patches", "validation"])
def test_lazy_fit_and_predict_match_in_memory(kind, params, data, tmp_path, h5file):
    X, y = data
    ref = CNNSegmenter(**KW, **params).fit(X, y)
    Xs = _store(kind, tmp_path, "X", X, h5file)
    ys = _store(kind, tmp_path, "y", y, h5file)
    seg = CNNSegmenter(**KW, **params).fit(Xs, ys)
    assert _same_weights(_weights(ref), _weights(seg))
    np.testing.assert_array_equal(seg.classes_, ref.classes_)
    expected = ref.predict(X)
    got = seg.predict(Xs)
    if kind == "dask":
        got = got.compute()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert seg.score(Xs, ys) == pytest.approx(ref.score(X, y), abs=0)


def test_lazy_list_of_images_of_different_sizes(tmp_path):
    zarr = pytest.importorskip("zarr")
    X, y = make_shapes(n_samples=3, image_size=32, random_state=1)
    sizes = [(32, 32), (24, 32), (32, 20)]
    Xl = [X[i, :h, :w] for i, (h, w) in enumerate(sizes)]
    yl = [y[i, :h, :w] for i, (h, w) in enumerate(sizes)]
    Xz = [zarr.array(a, chunks=(8, 8)) for a in Xl]
    yz = [zarr.array(a, chunks=(8, 8)) for a in yl]
    params = dict(KW, patch_size=16)
    ref = CNNSegmenter(**params).fit(Xl, yl)
    seg = CNNSegmenter(**params).fit(Xz, yz)
    assert _same_weights(_weights(ref), _weights(seg))
    for a, b in zip(ref.predict(Xl), seg.predict(Xz)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- #
# what is read
# ---------------------------------------------------------------------- #
def test_patch_fit_reads_patch_windows_and_streams_the_label_scan(data, monkeypatch):
    X, y = data
    scan = 96  # 3 rows of 32: the streamed scans read bands, not images
    monkeypatch.setattr(arrays, "SCAN_VALUES", scan)
    Xc, yc = Counting(X), Counting(y)
    seg = CNNSegmenter(**dict(KW, max_epochs=2), patch_size=8,
                       foreground_oversampling=0.5).fit(Xc, yc)
    assert seg.n_iter_ == 2
    patch = 8 * 8

    def is_window(key):
        return (isinstance(key, tuple) and len(key) >= 3
                and all(k.start is not None and k.stop - k.start == 8 for k in key[1:3]))

    # the intensity statistics stream bands of rows, bounded by the scan budget
    scans = [n for key, n in Xc.reads if not is_window(key)]
    assert scans and max(scans) <= scan and sum(scans) == X.size
    # every other image read is one patch window; an epoch reads 16 per image
    image_reads = [n for key, n in Xc.reads if is_window(key)]
    assert image_reads and max(image_reads) == patch
    assert sum(image_reads) == 2 * len(X) * round(32 * 32 / patch) * patch
    for key, _ in Xc.reads:
        assert isinstance(key, tuple) and isinstance(key[0], int)
    # masks: patch windows, the label scan and the foreground scan, each read
    # bounded by the scan budget
    mask_reads = [n for _, n in yc.reads]
    assert max(mask_reads) <= scan
    assert sum(n == patch for n in mask_reads) >= 2 * len(X) * 16


def test_whole_image_fit_reads_the_batch_images(data):
    X, y = data
    Xc, yc = Counting(X), Counting(y)
    CNNSegmenter(**KW).fit(Xc, yc)
    batch_reads = [n for key, n in Xc.reads]
    # the intensity statistics and one epoch: every image twice, in reads of
    # one image or of consecutive images
    assert sum(batch_reads) == 2 * X.size
    assert max(batch_reads) <= KW["batch_size"] * 32 * 32


def test_validation_split_is_a_lazy_view(data):
    X, y = data
    Xc, yc = Counting(X), Counting(y)
    CNNSegmenter(**{**KW, "max_epochs": 2}, early_stopping=True,
                 validation_fraction=0.25).fit(Xc, yc)
    # the intensity statistics, then each epoch the training images and the
    # validation images: those are read where they are scored, every epoch
    # (a copy made at the start would be read once)
    assert sum(n for _, n in Xc.reads) == 3 * X.size
    # no read of the whole data set (a copy of the validation images would be
    # one fancy-indexed read of them)
    assert max(n for _, n in Xc.reads) <= KW["batch_size"] * 32 * 32
    assert all(not isinstance(k, np.ndarray) and not (isinstance(k, tuple)
               and isinstance(k[0], np.ndarray)) for k, _ in Xc.reads)


def test_tiled_predict_reads_each_pixel_a_bounded_number_of_times(data, tmp_path,
                                                                   monkeypatch):
    X, y = data
    seg = CNNSegmenter(**KW, tiling=True, tile_size=16, tile_overlap=0.25).fit(X, y)
    big = np.tile(X[:1], (1, 2, 3))  # one 64 x 96 image
    expected = seg.predict(big)
    Xc = Counting(big)
    out = _zarr(tmp_path, "out", np.zeros_like(expected), mode="r+")
    assert seg.predict(Xc, out=out) is out
    np.testing.assert_array_equal(out[:], expected)
    cover = np.zeros(big.shape[1:], dtype=np.int64)
    for key, n in Xc.reads:
        i, rows, cols = key
        assert i == 0 and n <= 16 * 96  # a band of one tile row, never the image
        cover[rows, cols] += 1
    assert cover.min() >= 1
    # 25 % overlap: at most two tile rows cover a pixel (two tiles along each
    # axis, four in all, when the store is read tile by tile)
    assert cover.max() <= 2
    monkeypatch.setattr(arrays, "BAND_VALUES", 16 * 16)  # bands too wide: tile by tile
    Xc = Counting(big)
    np.testing.assert_array_equal(seg.predict(Xc), expected)
    cover[:] = 0
    for key, n in Xc.reads:
        assert n <= 16 * 16
        cover[key[1:]] += 1
    assert cover.min() >= 1 and cover.max() <= 4


# ---------------------------------------------------------------------- #
# out=
# ---------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return CNNSegmenter(**KW, tiling=True, tile_size=16).fit(X, y)


@pytest.mark.parametrize("kind", ["ndarray", "memmap", "zarr"])
def test_out_for_labels_and_probabilities(kind, fitted, data, tmp_path):
    X, _ = data
    labels, proba = fitted.predict(X), fitted.predict_proba(X)

    def make(name, shape, dtype):
        if kind == "ndarray":
            return np.zeros(shape, dtype)
        if kind == "memmap":
            return np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=dtype,
                                             shape=shape)
        return _zarr(tmp_path, name, np.zeros(shape, dtype), mode="r+")

    out = make("labels", labels.shape, labels.dtype)
    assert fitted.predict(X, out=out) is out
    np.testing.assert_array_equal(out[:], labels)
    wide = make("wide", labels.shape, np.int64)  # any dtype that holds the classes
    np.testing.assert_array_equal(fitted.predict(X, out=wide)[:], labels)
    out = make("proba", proba.shape, np.float32)
    assert fitted.predict_proba(X, out=out) is out
    np.testing.assert_array_equal(out[:], proba)
    half = make("half", proba.shape, np.float16)
    fitted.predict_proba(X, out=half)
    np.testing.assert_allclose(half[:], proba, atol=1e-3)


def test_out_for_images_of_different_sizes(fitted, data):
    X, _ = data
    images = [X[0], X[1, :20, :24]]
    expected = fitted.predict(images)
    outs = [np.zeros((32, 32), np.uint8), np.zeros((20, 24), np.uint8)]
    assert fitted.predict(images, out=outs) is outs
    for a, b in zip(outs, expected):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="different sizes.*list"):
        fitted.predict(images, out=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"out\[1\] has shape"):
        fitted.predict(images, out=[outs[0], np.zeros((20, 20), np.uint8)])


@pytest.fixture
def no_prediction(monkeypatch):
    """Any prediction work fails the test: errors must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("prediction started before out= was checked")
    monkeypatch.setattr(CNNSegmenter, "_predict_images", refuse)


@pytest.mark.parametrize("method, out, exc, match", [
    ("predict", np.zeros((8, 32, 31), np.uint8), ValueError, r"out has shape .*\(8, 32, 32\)"),
    ("predict", np.zeros((8, 32, 32, 1), np.uint8), ValueError, "out has shape"),
    ("predict", np.zeros((8, 32, 32), np.complex64), TypeError, "out has dtype"),
    ("predict", [np.zeros((32, 32), np.uint8)], ValueError, "out is a list of 1"),
    ("predict", "labels.npy", TypeError, "out must be an array"),
    ("predict_proba", np.zeros((8, 32, 32, 3), np.int32), TypeError, "floating dtype"),
    ("predict_proba", np.zeros((8, 32, 32), np.float32), ValueError, "out has shape"),
])
def test_bad_out_raises_before_predicting(method, out, exc, match, fitted, data, no_prediction):
    X, _ = data
    with pytest.raises(exc, match=match):
        getattr(fitted, method)(X, out=out)


def test_out_dtype_must_hold_the_label_values(data):
    X, y = data
    X, y = X[:2, :16, :16], y[:2, :16, :16]
    values = np.array([0, 300, 70000], dtype=np.int64)
    seg = CNNSegmenter(**KW).fit(X, values[y])
    shape = (2, 16, 16)
    with pytest.raises(TypeError, match=r"out has dtype int16.*70000"):
        seg.predict(X, out=np.zeros(shape, np.int16))
    with pytest.raises(TypeError, match="out has dtype uint8"):
        seg.predict(X, out=np.zeros(shape, np.uint8))
    out = np.zeros(shape, np.float32)  # float32 holds these values exactly
    np.testing.assert_array_equal(seg.predict(X, out=out), seg.predict(X))
    values = np.array([1, 2**63 + 5, 2**63 + 6], dtype=np.uint64)
    seg = CNNSegmenter(**KW).fit(X, values[y])
    with pytest.raises(TypeError, match="out has dtype float64"):
        seg.predict(X, out=np.zeros(shape, np.float64))
    with pytest.raises(TypeError, match="out has dtype int64"):
        seg.predict(X, out=np.zeros(shape, np.int64))


def test_read_only_and_closed_outputs(fitted, data, tmp_path, no_prediction):
    X, _ = data
    shape = (8, 32, 32)
    frozen = np.zeros(shape, np.uint8)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fitted.predict(X, out=frozen)
    np.save(tmp_path / "m.npy", np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="out is read-only"):
        fitted.predict(X, out=np.load(tmp_path / "m.npy", mmap_mode="r"))
    z = _zarr(tmp_path, "ro", np.zeros(shape, np.uint8), mode="r")
    with pytest.raises(ValueError, match=r"out \(zarr.Array\) is read-only"):
        fitted.predict(X, out=z)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "o.h5", "w") as f:
        dset = f.create_dataset("labels", shape=shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="closed file"):
        fitted.predict(X, out=dset)
    with h5py.File(tmp_path / "o.h5", "r") as f, pytest.raises(ValueError, match="read-only"):
        fitted.predict(X, out=f["labels"])
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="out is a dask array"):
        fitted.predict(X, out=da.zeros(shape, dtype=np.uint8))
    with pytest.raises(ValueError, match="shares memory with X"):
        fitted.predict(X, out=X[..., 0] if X.ndim == 4 else X)


def test_closed_h5py_input_is_named(fitted, data, tmp_path):
    h5py = pytest.importorskip("h5py")
    X, _ = data
    with h5py.File(tmp_path / "x.h5", "w") as f:
        dset = f.create_dataset("X", data=X)
    with pytest.raises(ValueError, match="X .*cannot be read"):
        fitted.predict(dset)


# ---------------------------------------------------------------------- #
# dask
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("tiled", [False, True], ids=["whole", "tiled"])
def test_dask_prediction_is_lazy_and_equals_in_memory(tiled, data):
    da = pytest.importorskip("dask.array")
    import dask

    X, y = data
    seg = CNNSegmenter(**KW, tiling=tiled, tile_size=16).fit(X, y)
    big = np.concatenate([np.tile(X[:2], (1, 2, 3)), np.tile(X[2:4], (1, 2, 3))])  # 64 x 96
    dx = da.from_array(big, chunks=(2, 24, 40))
    lazy = seg.predict(dx)
    assert isinstance(lazy, da.Array) and lazy.dtype == seg.classes_.dtype
    if tiled:  # the chunks of X (one image each); 24 rows >= the tile, so none merged
        assert lazy.chunks == ((1,) * 4, (24, 24, 16), (40, 40, 16))
    else:
        assert lazy.chunks == ((1,) * 4, (64,), (96,))
    # the network is one node of the graph, shared by every block
    graph = dict(lazy.__dask_graph__())
    assert sum(str(k).startswith("sksegment-model") for k in graph) == 1
    with dask.config.set(scheduler="threads"):
        got = lazy.compute()
        proba = seg.predict_proba(dx).compute()
    np.testing.assert_array_equal(got, seg.predict(big))
    assert proba.shape == big.shape + (seg.n_classes_,) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, seg.predict_proba(big), rtol=0, atol=1e-5)


def test_dask_small_chunks_are_merged_and_tta(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    seg = CNNSegmenter(**KW, tiling=True, tile_size=16, tta=True).fit(X, y)
    big = np.tile(X[:1], (1, 2, 2))
    lazy = seg.predict(da.from_array(big, chunks=(1, 10, 30)))
    assert lazy.chunks[1] == (20, 20, 24) and lazy.chunks[2] == (30, 34)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), seg.predict(big))


def test_dask_with_out_and_score(fitted, data, tmp_path):
    da = pytest.importorskip("dask.array")
    X, y = data
    dx = da.from_array(X, chunks=(4, 32, 32))
    out = np.zeros(y.shape, y.dtype)
    assert fitted.predict(dx, out=out) is out
    np.testing.assert_array_equal(out, fitted.predict(X))
    assert fitted.score(dx, da.from_array(y)) == fitted.score(X, y)


def test_dask_score_applies_the_postprocessing(data):
    da = pytest.importorskip("dask.array")
    X, y = data
    seg = CNNSegmenter(**{**KW, "max_epochs": 20, "width": 8}, learning_rate=0.01,
                       postprocess={"remove_small": 30}).fit(X, y)
    post = seg.predict(X)
    seg_raw = copy.copy(seg)
    seg_raw.postprocessing_ = None
    assert not np.array_equal(post, seg_raw.predict(X))  # the step changes the labels
    dx = da.from_array(X, chunks=(4, 32, 32))
    np.testing.assert_array_equal(seg.predict(dx).compute(), post)
    assert seg.score(dx, y) == seg.score(X, y) != seg_raw.score(X, y)


def test_nan_in_a_dask_array_is_refused(fitted, data):
    da = pytest.importorskip("dask.array")
    X = data[0].astype(np.float32)
    X[3, 5, 7] = np.nan
    dx = da.from_array(X, chunks=(4, 32, 32))
    for lazy in (fitted.predict(dx), fitted.predict_proba(dx)):  # found when computed
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            lazy.compute(scheduler="synchronous")
    for call in (fitted.predict_uncertainty, lambda x: fitted.score(x, data[1])):
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            call(dx)


@pytest.mark.slow
def test_dask_distributed_local_cluster(fitted, data):
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    X, _ = data
    # in-process workers; the scheduler's HTTP server on a free loopback port
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address="127.0.0.1:0",
                                  scheduler_kwargs={"dashboard": False}) as cluster, \
            distributed.Client(cluster) as client:
        got = client.compute(fitted.predict(da.from_array(X, chunks=(2, 16, 16)))).result()
    np.testing.assert_array_equal(got, fitted.predict(X))


# ---------------------------------------------------------------------- #
# label values of every integer dtype
# ---------------------------------------------------------------------- #
INT_DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64]


def _extremes(dtype):
    if dtype == np.bool_:
        return False, True
    info = np.iinfo(dtype)
    return info.min, info.max


@pytest.fixture(scope="module")
def binary():
    X, y = make_shapes(n_samples=4, image_size=16, random_state=3)
    y01 = (y > 0).astype(np.uint8)
    seg = CNNSegmenter(**KW).fit(X, y01)
    return X, y01, seg


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_integer_dtype_round_trips(dtype, binary):
    X, y01, ref = binary
    lo, hi = _extremes(dtype)
    y = np.where(y01 == 1, np.array(hi, dtype), np.array(lo, dtype)).astype(dtype)
    seg = CNNSegmenter(**KW).fit(X, y)
    assert seg.classes_.dtype == np.dtype(dtype)
    assert seg.classes_.tolist() == [lo, hi]
    # the same partition trains the same network, whatever the label values
    assert _same_weights(_weights(ref), _weights(seg))
    pred = seg.predict(X)
    assert pred.dtype == np.dtype(dtype)
    expected = np.where(ref.predict(X) == 1, np.array(hi, dtype), np.array(lo, dtype))
    np.testing.assert_array_equal(pred, expected)


def test_label_codec_encodes_across_dtypes():
    classes = np.array([1, 2**63 + 5], dtype=np.uint64)
    codec = LabelCodec(classes)
    masks = np.array([[1, 2**63 + 5, 0, 2**64 - 1]], dtype=np.uint64)
    assert codec.encode(masks, "cpu").tolist() == [[0, 1, -100, -100]]
    # masks of another dtype: values outside the classes' dtype are unknown
    assert codec.encode(np.array([[1, -1, 5]], np.int64), "cpu").tolist() == [[0, -100, -100]]
    assert codec.encode(np.array([[1, 0]], np.int8), "cpu").tolist() == [[0, -100]]
    codec = LabelCodec(np.array([-128, 0, 127], np.int8), ignore_label=0)
    got = codec.encode(np.array([[-128, 0, 127, 5]], np.int8), "cpu")
    assert got.tolist() == [[0, -100, 2, -100]]
    assert codec.encode(np.array([[127, -128]], np.int64), "cpu").tolist() == [[2, 0]]
    codec = LabelCodec(np.array([0, 40000, 65535], np.uint16))
    assert codec.encode(np.array([[65535, 40000, 3]], np.uint16), "cpu").tolist() == \
        [[2, 1, -100]]
    codec = LabelCodec(np.array([0.0, 255.0]))
    assert codec.encode(np.array([[255, 0, 7]], np.uint8), "cpu").tolist() == [[1, 0, -100]]
    np.testing.assert_array_equal(codec.decode(np.array([1, 0])), [255.0, 0.0])


def test_streamed_label_scan_and_pixel_counts(data, monkeypatch):
    _, y = data
    monkeypatch.setattr(arrays, "SCAN_VALUES", 100)
    yc = Counting(y)
    lazy = LazyArray(yc, "y")
    np.testing.assert_array_equal(unique_labels(lazy), np.unique(y))
    assert max(n for _, n in yc.reads) <= 100
    codec = LabelCodec(np.unique(y))
    counts = count_pixels(lazy, codec, 3, chunk=100)
    np.testing.assert_array_equal(counts, np.bincount(y.ravel(), minlength=3))
    big = np.zeros((1, 40, 30), np.int32)
    big[0, 3:7, 4:9] = 7
    yc = Counting(big)
    np.testing.assert_array_equal(unique_labels(LazyArray(yc)), [0, 7])
    assert max(n for _, n in yc.reads) <= 100


def test_lazy_array_reads_like_numpy():
    a = np.arange(3 * 5 * 7).reshape(3, 5, 7)
    lazy = LazyArray(a)
    for key in [0, -1, (1, slice(1, 3)), (slice(None), 2, slice(0, 7, 2)),
                np.array([2, 0]), (np.array([2, 0]), slice(1, 2), 3), (Ellipsis, 3)]:
        np.testing.assert_array_equal(lazy[key], a[key])
    flat = lazy.reshape(-1)
    for start, stop in [(0, 105), (3, 9), (30, 80), (34, 36), (70, 70)]:
        np.testing.assert_array_equal(flat[start:stop], a.reshape(-1)[start:stop])
    view = lazy.take([2, 0]).with_channel_axis()
    assert view.shape == (2, 5, 7, 1)
    np.testing.assert_array_equal(np.asarray(view), a[[2, 0]][..., None])
    np.testing.assert_array_equal(view[1, 1:3, 2:5, 0], a[0, 1:3, 2:5])
    assert view[..., 0].shape == (2, 5, 7)
    with pytest.raises(IndexError, match="regions"):
        lazy[:, np.array([0, 1])]


def test_optional_packages_are_not_imported(data):
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from sksegment import CNNSegmenter\n"
            "from sksegment.datasets import make_shapes\n"
            "X, y = make_shapes(n_samples=4, image_size=16, random_state=0)\n"
            "seg = CNNSegmenter(depth=1, width=2, max_epochs=1).fit(X, y)\n"
            "seg.predict(X, out=np.zeros(y.shape, y.dtype))\n"
            "print(sorted(m for m in ('zarr', 'h5py', 'dask') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert result.stdout.strip().splitlines()[-1] == "[]"


class Recording:
    """A chunked output store that records the rows of every write."""

    def __init__(self, shape, dtype, chunks):
        self.array = np.zeros(shape, dtype)
        self.shape, self.dtype, self.chunks = shape, np.dtype(dtype), chunks
        self.writes = []

    def __setitem__(self, key, value):
        self.writes.append(key)
        self.array[key] = value


def test_writes_into_a_chunked_store_fill_whole_chunk_rows(fitted, data):
    X, _ = data
    big = np.tile(X[:2], (1, 2, 3))  # 64 x 96; tiles of 16 with 25 % overlap finish 12 rows
    out = Recording((2, 64, 96), np.uint8, chunks=(1, 16, 96))
    assert fitted.predict(big, out=out) is out
    np.testing.assert_array_equal(out.array, fitted.predict(big))
    rows = [key[1] for key in out.writes]
    assert all(r.start % 16 == 0 and r.stop % 16 == 0 for r in rows)
    assert len(out.writes) == 2 * 64 // 16  # each chunk row written once


def test_nan_in_a_lazy_float_store_is_found_block_by_block(data, tmp_path, monkeypatch):
    X, y = data
    Xf = (X / 255.0).astype(np.float32)
    Xf[7, 31, 31] = np.nan  # the very last pixel
    monkeypatch.setattr(arrays, "SCAN_VALUES", 256)
    Xc = Counting(Xf)
    with pytest.raises(ValueError, match="X contains NaN"):
        CNNSegmenter(**KW).fit(Xc, y)
    assert max(n for _, n in Xc.reads) <= 256
    fitted = CNNSegmenter(**KW).fit(Xf[:7], y[:7])
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.predict(_zarr(tmp_path, "Xf", Xf))
    da = pytest.importorskip("dask.array")
    lazy = fitted.predict(da.from_array(Xf, chunks=(4, 32, 32)))  # nothing computed yet
    assert isinstance(lazy, da.Array)
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.score(da.from_array(Xf, chunks=(4, 32, 32)), y)
