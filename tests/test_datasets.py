
import numpy as np
import pytest
from scipy import ndimage
from skimage import io

from sksegment.datasets import (
    load_image_folder,
    load_images,
    load_membrane,
    make_shapes,
    save_masks,
)


def _mean_iou(pred, y, n_classes):
    ious = []
    for k in range(n_classes):
        union = np.logical_or(pred == k, y == k).sum()
        if union:
            ious.append(np.logical_and(pred == k, y == k).sum() / union)
    return float(np.mean(ious))


# ---------------------------------------------------------------- make_shapes

def test_make_shapes_shapes_and_dtypes():
    X, y = make_shapes(n_samples=5, image_size=32, n_classes=4, random_state=0)
    assert X.shape == (5, 32, 32) and X.dtype == np.uint8
    assert y.shape == (5, 32, 32) and y.dtype == np.uint8
    assert set(np.unique(y)) <= {0, 1, 2, 3}
    assert X.std() > 10  # not a blank image

    X, y = make_shapes(n_samples=3, image_size=(20, 48), n_channels=3, random_state=0)
    assert X.shape == (3, 20, 48, 3) and y.shape == (3, 20, 48)
    # channels are related (tinted copies) but not identical
    assert not np.array_equal(X[..., 0], X[..., 1])
    assert np.corrcoef(X[..., 0].ravel(), X[..., 1].ravel())[0, 1] > 0.5


@pytest.mark.parametrize("dtype", ["float32", np.float64])
def test_make_shapes_float_images_in_unit_range(dtype):
    X, _ = make_shapes(n_samples=3, image_size=24, dtype=dtype, random_state=0)
    assert X.dtype == np.dtype(dtype)
    assert X.min() >= 0.0 and X.max() <= 1.0
    Xu, _ = make_shapes(n_samples=3, image_size=24, random_state=0)
    np.testing.assert_allclose(X * 255, Xu, atol=0.51)


def test_make_shapes_is_deterministic():
    a = make_shapes(n_samples=4, image_size=32, random_state=3)
    b = make_shapes(n_samples=4, image_size=32, random_state=np.random.RandomState(3))
    c = make_shapes(n_samples=4, image_size=32, random_state=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_make_shapes_noise_level():
    clean, y0 = make_shapes(n_samples=4, image_size=32, noise=0.0, dtype="float64",
                            random_state=0)
    noisy, y1 = make_shapes(n_samples=4, image_size=32, noise=0.05, dtype="float64",
                            random_state=0)
    np.testing.assert_array_equal(y0, y1)
    inside = (clean > 0.2) & (clean < 0.8)  # away from clipping
    assert (noisy - clean)[inside].std() == pytest.approx(0.05, rel=0.1)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_make_shapes_classes_present(n_classes):
    _, y = make_shapes(n_samples=40, image_size=64, n_classes=n_classes, random_state=0)
    assert y.max() == n_classes - 1
    for k in range(1, n_classes):
        assert (y == k).any(axis=(1, 2)).mean() >= 0.9
        assert 0.02 < (y == k).mean() < 0.2
    assert 0.5 < (y == 0).mean() < 0.95


def test_make_shapes_classes_differ_by_form_and_texture():
    X, y = make_shapes(n_samples=30, image_size=64, n_classes=5, noise=0.0,
                       dtype="float64", random_state=0)
    # Class 1 carries a fine texture, class 2 is smooth: compare the local
    # variation inside the shapes (eroded, to stay off the edges).
    lap = np.abs(np.stack([ndimage.laplace(x) for x in X]))
    inner = [np.stack([ndimage.binary_erosion(m == k, iterations=2) for m in y])
             for k in (1, 2)]
    assert lap[inner[0]].mean() > 3 * lap[inner[1]].mean()
    # Class 4 (ring) has a hole, class 1 (disc) has none.
    def hole_fraction(k):
        masks = y == k
        filled = np.stack([ndimage.binary_fill_holes(m) for m in masks])
        return (filled.sum() - masks.sum()) / masks.sum()
    assert hole_fraction(4) > 0.15
    assert hole_fraction(1) < 0.01


def test_no_intensity_threshold_solves_it():
    X, y = make_shapes(n_samples=100, image_size=64, n_classes=2, random_state=0)
    # Best global threshold, in either polarity.
    best = max(
        _mean_iou((X > t) if bright else (X <= t), y, 2)
        for t in range(0, 255, 3) for bright in (True, False)
    )
    assert best < 0.6

    X, y = make_shapes(n_samples=100, image_size=64, n_classes=3, random_state=0)
    # The best per-pixel rule on intensity alone: the majority class of each
    # of the 256 intensity values, fitted on the very same pixels.
    counts = np.zeros((256, 3))
    np.add.at(counts, (X.ravel(), y.ravel()), 1)
    pred = counts.argmax(axis=1)[X]
    assert _mean_iou(pred, y, 3) < 0.45
    # Every class spans most of the intensity range.
    for k in range(3):
        lo, hi = np.percentile(X[y == k], [10, 90])
        assert lo < 100 and hi > 155


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_samples": 0}, ValueError, "n_samples"),
    ({"n_samples": 2.0}, TypeError, "n_samples"),
    ({"image_size": 15}, ValueError, "image_size"),
    ({"image_size": (32, 8)}, ValueError, "image_size"),
    ({"image_size": (32, 32, 3)}, ValueError, "image_size"),
    ({"image_size": "64"}, TypeError, "image_size"),
    ({"n_classes": 1}, ValueError, r"n_classes must be an integer in \[2, 5\]"),
    ({"n_classes": 6}, ValueError, "n_classes"),
    ({"noise": -0.1}, ValueError, "noise"),
    ({"noise": float("nan")}, ValueError, "noise"),
    ({"noise": "0.1"}, TypeError, "noise"),
    ({"n_channels": 0}, ValueError, "n_channels"),
    ({"dtype": "int16"}, ValueError, "dtype"),
    ({"random_state": "seed"}, TypeError, "random_state must be None, an integer"),
])
def test_make_shapes_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_shapes(**{"n_samples": 2, "image_size": 16} | kwargs)


# ---------------------------------------------------------- load_image_folder

def _write(path, array):
    io.imsave(path, array, check_contrast=False)


@pytest.fixture
def folders(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    return images, masks


def test_load_image_folder_png(folders, rng):
    images, masks = folders
    data = {}
    for name in ("c", "a", "b"):
        img = rng.integers(0, 256, (12, 10), dtype=np.uint8)
        mask = rng.integers(0, 3, (12, 10), dtype=np.uint8)
        _write(images / f"{name}.png", img)
        _write(masks / f"{name}.png", mask)
        data[name] = (img, mask)
    (images / "notes.txt").write_text("not an image")
    _write(images / ".hidden.png", np.zeros((3, 3), np.uint8))

    X, y, names = load_image_folder(images, str(masks), return_names=True)
    assert names == ["a", "b", "c"]
    assert X.shape == (3, 12, 10) and X.dtype == np.uint8
    assert y.shape == (3, 12, 10) and y.dtype == np.uint8
    for i, name in enumerate(names):
        np.testing.assert_array_equal(X[i], data[name][0])
        np.testing.assert_array_equal(y[i], data[name][1])


def test_load_image_folder_tif_and_mixed_extensions(folders, rng):
    images, masks = folders
    img = rng.integers(0, 65536, (2, 9, 7), dtype=np.uint16)
    mask = rng.integers(0, 1000, (2, 9, 7)).astype(np.uint16)
    _write(images / "x0.tif", img[0])
    _write(images / "x1.TIFF", img[1])
    _write(masks / "x0.tif", mask[0])
    _write(masks / "x1.png", mask[1])
    X, y = load_image_folder(images, masks)
    assert X.dtype == np.uint16 and y.dtype == np.uint16
    np.testing.assert_array_equal(X, img)
    np.testing.assert_array_equal(y, mask)
    # restricting the extensions leaves x1 without its image
    with pytest.raises(ValueError, match="'x1'"):
        load_image_folder(images, masks, extensions=(".tif", ".png"))


def test_load_image_folder_lists_for_mixed_sizes(folders):
    images, masks = folders
    _write(images / "a.png", np.zeros((8, 8), np.uint8))
    _write(images / "b.png", np.zeros((8, 12), np.uint8))
    _write(masks / "a.png", np.ones((8, 8), np.uint8))
    _write(masks / "b.png", np.ones((8, 12), np.uint8))
    X, y = load_image_folder(images, masks)
    assert isinstance(X, list) and isinstance(y, list)
    assert [x.shape for x in X] == [(8, 8), (8, 12)]
    assert [m.shape for m in y] == [(8, 8), (8, 12)]


def test_load_image_folder_rgb_and_as_gray(folders, rng):
    images, masks = folders
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    _write(images / "a.png", rgb)
    _write(masks / "a.png", np.zeros((6, 5), np.uint8))
    X, _ = load_image_folder(images, masks)
    assert X.shape == (1, 6, 5, 3)
    G, _ = load_image_folder(images, masks, as_gray=True)
    assert G.shape == (1, 6, 5) and G.dtype == np.uint8
    expected = rgb.astype(float) @ [0.2125, 0.7154, 0.0721]
    assert np.abs(G[0] - expected).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("which", ["images_dir", "masks_dir"])
def test_load_image_folder_missing_directory(folders, which):
    images, masks = folders
    args = {"images_dir": images, "masks_dir": masks}
    args[which] = images.parent / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{which} does not exist"):
        load_image_folder(**args)
    file = images.parent / "file.png"
    file.write_bytes(b"")
    args[which] = file
    with pytest.raises(NotADirectoryError, match=which):
        load_image_folder(**args)
    args[which] = 3
    with pytest.raises(TypeError, match=which):
        load_image_folder(**args)


def test_load_image_folder_unpaired_files(folders):
    images, masks = folders
    for i in range(8):
        _write(images / f"im{i}.png", np.zeros((4, 4), np.uint8))
    _write(masks / "im0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"7 image\(s\).*'im1', .*'im5' and 2 more"):
        load_image_folder(images, masks)
    for i in range(1, 8):
        _write(masks / f"im{i}.png", np.zeros((4, 4), np.uint8))
    _write(masks / "extra.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"1 mask\(s\).*'extra'"):
        load_image_folder(images, masks)


def test_load_image_folder_no_images(folders):
    images, masks = folders
    (images / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="holds no files"):
        load_image_folder(images, masks)


def test_load_image_folder_rgb_mask(folders, rng):
    images, masks = folders
    _write(images / "a.png", np.zeros((6, 6), np.uint8))
    gray = rng.integers(0, 3, (6, 6), dtype=np.uint8)
    _write(masks / "a.png", np.repeat(gray[..., None], 3, axis=2))
    with pytest.raises(ValueError, match=r"a.png'.*\(6, 6, 3\).*mask\[\.\.\., 0\]"):
        load_image_folder(images, masks)
    colour = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    _write(masks / "a.png", colour)
    with pytest.raises(ValueError, match="map each colour to an integer class label"):
        load_image_folder(images, masks)


def test_load_image_folder_shape_mismatch(folders):
    images, masks = folders
    _write(images / "a.png", np.zeros((6, 6), np.uint8))
    _write(images / "b.png", np.zeros((6, 6), np.uint8))
    _write(masks / "a.png", np.zeros((6, 6), np.uint8))
    _write(masks / "b.png", np.zeros((6, 7), np.uint8))
    with pytest.raises(ValueError, match=r"'b.png' is \(6, 6\).*\(6, 7\)"):
        load_image_folder(images, masks)


def test_load_image_folder_argument_errors(folders):
    images, masks = folders
    _write(images / "a.png", np.zeros((5, 6), np.uint8))
    _write(images / "a.tif", np.zeros((5, 6), np.uint8))
    _write(masks / "a.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match="two files with the name 'a'"):
        load_image_folder(images, masks)
    with pytest.raises(ValueError, match="extensions"):
        load_image_folder(images, masks, extensions=("png",))
    with pytest.raises(ValueError, match="extensions"):
        load_image_folder(images, masks, extensions=())
    with pytest.raises(TypeError, match="extensions"):
        load_image_folder(images, masks, extensions=5)
    with pytest.raises(TypeError, match="as_gray"):
        load_image_folder(images, masks, extensions=".png", as_gray="yes")
    X, _ = load_image_folder(images, masks, extensions=".png", as_gray=None)
    assert X.shape == (1, 5, 6)


# ------------------------------------------------- save_masks and reading back

def _images_like(folder, masks):
    """Write an image of each mask's size, under the mask's name, into folder."""
    folder.mkdir(exist_ok=True)
    for i, m in enumerate(masks):
        _write(folder / f"{i:03d}.png", np.zeros(np.shape(m), np.uint8))


@pytest.mark.parametrize("dtype, high, suffix, mode", [
    (np.uint8, 255, ".png", "L"),
    (np.uint16, 60000, ".png", "I;16"),
    (np.uint16, 3, ".png", "I;16"),   # dtype decides: uint16 stays 16-bit
    (bool, 1, ".png", "1"),
])
def test_save_masks_round_trip(tmp_path, rng, dtype, high, suffix, mode):
    from PIL import Image

    y = rng.integers(0, high + 1, (3, 9, 7)).astype(dtype)
    paths = save_masks(tmp_path / "new" / "masks", y)
    assert [p.name for p in paths] == [f"00{i}{suffix}" for i in range(3)]
    with Image.open(paths[0]) as im:
        assert im.mode == mode
    _images_like(tmp_path / "images", y)
    _, back = load_image_folder(tmp_path / "images", tmp_path / "new" / "masks")
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, y)


@pytest.mark.parametrize("values, dtype, kind", [
    ([0, 1, 7], np.uint8, "png8"),        # int64 labels in 0..255: 8-bit PNG
    ([0, 300], np.uint16, "png16"),       # up to 65535: 16-bit PNG
    ([-1, 2], np.int64, "tiff"),          # negative: a TIFF in the dtype
    ([0, 70000], np.int64, "tiff"),
])
def test_save_masks_other_integers_losslessly(tmp_path, values, dtype, kind):
    y = np.zeros((2, 6, 5), np.int64)
    y[0, :2] = values[0]
    y[1, 3:] = values[-1]
    y[0, 4, 4] = values[1]
    paths = save_masks(tmp_path / "m", y)
    assert all(p.suffix == (".tif" if kind == "tiff" else ".png") for p in paths)
    _images_like(tmp_path / "i", y)
    _, back = load_image_folder(tmp_path / "i", tmp_path / "m")
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, y)


def test_save_masks_formats_and_refusals(tmp_path):
    y = np.ones((1, 4, 4), np.int32) * 70000
    with pytest.raises(ValueError, match="format='tiff'"):
        save_masks(tmp_path / "a", y, format="png")
    assert not (tmp_path / "a").exists()  # nothing written on refusal
    paths = save_masks(tmp_path / "b", y.astype(np.uint8) * 0 + 3, format="tiff")
    assert paths[0].suffix == ".tif"
    with pytest.raises(TypeError, match="integer or bool labels.*float32"):
        save_masks(tmp_path / "c", np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"y\[None\]"):
        save_masks(tmp_path / "c", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="format"):
        save_masks(tmp_path / "c", np.zeros((1, 4, 4), np.uint8), format="jpeg")
    with pytest.raises(ValueError, match="names has 2 names"):
        save_masks(tmp_path / "c", np.zeros((1, 4, 4), np.uint8), names=["a", "b"])
    with pytest.raises(ValueError, match="without a folder"):
        save_masks(tmp_path / "c", np.zeros((1, 4, 4), np.uint8), names=["../a"])
    with pytest.raises(ValueError, match="'a' twice"):
        save_masks(tmp_path / "c", np.zeros((2, 4, 4), np.uint8), names=["a", "a"])
    ragged = [np.zeros((4, 4), np.uint8), np.ones((3, 5), np.uint8)]
    paths = save_masks(tmp_path / "ragged", ragged, names=["p", "q"])
    back = load_images(tmp_path / "ragged")
    assert [b.shape for b in back] == [(4, 4), (3, 5)] and back[1].max() == 1
    with pytest.raises(TypeError, match="one dtype"):
        save_masks(tmp_path / "c", [ragged[0], ragged[1].astype(np.uint16)])
    with pytest.raises(ValueError, match="palette must be None, 'auto'"):
        save_masks(tmp_path / "c", np.zeros((1, 4, 4), np.uint8), palette="jet")


def test_save_masks_does_not_overwrite_unless_asked(tmp_path):
    y = np.zeros((2, 4, 4), np.uint8)
    save_masks(tmp_path, y, names=["a", "b"])
    (tmp_path / "a.png").unlink()
    before = (tmp_path / "b.png").read_bytes()
    with pytest.raises(FileExistsError, match="b.png exists"):
        save_masks(tmp_path, y + 1, names=["a", "b"])
    assert not (tmp_path / "a.png").exists()  # checked before anything is written
    assert (tmp_path / "b.png").read_bytes() == before
    save_masks(tmp_path, y + 1, names=["a", "b"], overwrite=True)
    assert load_images(tmp_path).max() == 1


def test_save_masks_palette_indexed_png(tmp_path):
    from PIL import Image

    y = np.zeros((2, 6, 6), np.uint8)
    y[0, :3] = 255
    y[1, 3:] = 7
    paths = save_masks(tmp_path / "auto", y, palette="auto")
    with Image.open(paths[0]) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), y[0])  # pixel values stay labels
        colours = np.array(im.getpalette()).reshape(-1, 3)
    # each label its own colour, the smallest black
    assert colours[0].tolist() == [0, 0, 0]
    assert len({tuple(colours[v]) for v in (0, 7, 255)}) == 3
    _images_like(tmp_path / "img", y)
    _, back = load_image_folder(tmp_path / "img", tmp_path / "auto")
    np.testing.assert_array_equal(back, y)

    palette = {(0, 0, 0): 0, (255, 0, 0): 7, (0, 0, 255): 255}
    save_masks(tmp_path / "own", y, palette=palette)
    # read back as indices, or as colours through the same palette
    rgb = io.imread(tmp_path / "own" / "000.png")
    assert rgb.shape == (6, 6, 3) and rgb[0, 0].tolist() == [0, 0, 255]
    _, back = load_image_folder(tmp_path / "img", tmp_path / "own")
    np.testing.assert_array_equal(back, y)
    with pytest.raises(ValueError, match=r"no colour for the label\(s\) \[255\]"):
        save_masks(tmp_path / "x", y, palette={(0, 0, 0): 0, (9, 9, 9): 7})
    with pytest.raises(ValueError, match="only 8-bit PNG"):
        save_masks(tmp_path / "x", y.astype(np.uint16), palette=palette)
    with pytest.raises(ValueError, match="colours"):
        save_masks(tmp_path / "x", y, palette={(0, 0): 0})
    # "auto" is simply not applied where labels need 16 bits
    assert save_masks(tmp_path / "w", y.astype(np.uint16), palette="auto")[0].exists()


def test_load_image_folder_colour_masks_through_a_palette(folders):
    images, masks = folders
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[4, 5] = (0, 255, 0)
    _write(images / "a.png", np.zeros((5, 6), np.uint8))
    _write(masks / "a.png", rgb)
    palette = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 300}
    # without the palette: refused, naming the file's path and both ways to pass one
    with pytest.raises(ValueError, match=r"mask '.*masks/a\.png' has shape \(5, 6, 3\).*"
                                         r"palette=\{\(r, g, b\): label\}.*--colour R,G,B=LABEL"):
        load_image_folder(images, masks)
    _, y = load_image_folder(images, masks, palette=palette)
    assert y.dtype == np.uint16
    assert y[0, 0, 0] == 1 and y[0, 4, 5] == 300 and y[0, 3, 0] == 0
    _write(masks / "a.png", np.dstack([rgb, np.full((5, 6), 255, np.uint8)]))  # RGBA
    _, y2 = load_image_folder(images, masks, palette=palette)
    np.testing.assert_array_equal(y2, y)
    with pytest.raises(ValueError, match=r"a\.png.*colour \(0, 255, 0\).*1 pixel"):
        load_image_folder(images, masks, palette={(0, 0, 0): 0, (255, 0, 0): 1})
    with pytest.raises(TypeError, match="palette"):
        load_image_folder(images, masks, palette=[(0, 0, 0)])
    with pytest.raises(TypeError, match="integer labels"):
        load_image_folder(images, masks, palette={(0, 0, 0): "bg"})


def test_load_image_folder_tiff_stacks(folders, rng):
    tifffile = pytest.importorskip("tifffile")
    images, masks = folders
    stack = rng.integers(0, 256, (3, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 4, (3, 6, 5), dtype=np.uint16)
    tifffile.imwrite(images / "vol.tif", stack, photometric="minisblack")
    tifffile.imwrite(masks / "vol.tif", labels, photometric="minisblack")
    _write(images / "z.png", stack[0])
    _write(masks / "z.png", labels[0].astype(np.uint8))
    X, y, names = load_image_folder(images, masks, return_names=True)
    assert names == ["vol_000", "vol_001", "vol_002", "z"]
    np.testing.assert_array_equal(X[:3], stack)
    np.testing.assert_array_equal(y[2], labels[2])
    # a stack of images pairs with one mask file per page, by name
    (masks / "vol.tif").unlink()
    for i in range(3):
        _write(masks / f"vol_{i:03d}.png", labels[i].astype(np.uint8))
    X, y = load_image_folder(images, masks)
    np.testing.assert_array_equal(y[:3], labels)
    # an RGB TIFF is one colour image, not a stack of three
    tifffile.imwrite(images / "rgb.tif", np.zeros((6, 5, 3), np.uint8))
    X, names = load_images(images, return_names=True)
    assert names[0] == "rgb" and X[0].shape == (6, 5, 3) and len(names) == 5
    # a page name colliding with a file name
    _write(images / "vol_001.png", stack[0])
    with pytest.raises(ValueError, match=r"'vol_001' \(vol.tif \(page 1\) and vol_001.png\)"):
        load_images(images)


def test_load_image_folder_indexed_image_is_colour(folders):
    from PIL import Image

    images, masks = folders
    im = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8))
    im.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    im.save(images / "a.png")
    im.save(masks / "a.png")
    X, y = load_image_folder(images, masks)
    assert X.shape == (1, 2, 2, 3) and X[0, 0, 1].tolist() == [200, 100, 0]
    assert y.tolist() == [[[0, 1], [1, 0]]]


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "truncated tiff",
                                    "tiff header only"])
def test_unreadable_files_name_the_file(folders, rng, damage):
    images, masks = folders
    good = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    suffix = ".tif" if "tiff" in damage else ".png"
    _write(images / f"a{suffix}", good)
    data = (images / f"a{suffix}").read_bytes()
    bad = {"truncated": data[: len(data) // 2], "random bytes": rng.bytes(300),
           "empty": b"", "truncated tiff": data[: len(data) - 200],
           "tiff header only": b"II*\x00garbage"}[damage]
    (images / f"a{suffix}").write_bytes(bad)
    _write(masks / "a.png", np.zeros((32, 32), np.uint8))
    # a readable pair beside it: the broken file is never silently left out
    _write(images / "b.png", good)
    _write(masks / "b.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match=rf"cannot read (image|TIFF) file '.*a\{suffix}'"):
        load_image_folder(images, masks)
    with pytest.raises(ValueError, match=r"cannot read (image|TIFF) file"):
        load_images(images)


def _png16(path, array, colour_type):
    """Write a 16-bit PNG by hand (Pillow cannot write 16-bit colour PNGs)."""
    import struct
    import zlib

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = array.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels, colour_type, kind", [(3, 2, "RGB"), (4, 6, "RGBA"),
                                                         (2, 4, "gray with alpha")])
def test_16bit_colour_png_is_refused_not_truncated(folders, rng, channels, colour_type, kind):
    tifffile = pytest.importorskip("tifffile")
    images, masks = folders
    image = rng.integers(0, 65536, (5, 6, channels), dtype=np.uint16)
    _png16(images / "a.png", image, colour_type)
    _write(masks / "a.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match=rf"image file '.*a\.png'.* 16-bit {kind} PNG.*TIFF"):
        load_images(images)
    with pytest.raises(ValueError, match=rf"image file '.*a\.png'.* 16-bit {kind} PNG"):
        load_image_folder(images, masks)
    # as a mask, too, even through a palette
    _png16(masks / "a.png", image, colour_type)
    _write(images / "a.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match=rf"mask file '.*a\.png'.* 16-bit {kind} PNG"):
        load_image_folder(images, masks, palette={(0, 0, 0): 0})
    # the fix the message gives reads every bit back
    (images / "a.png").unlink()
    tifffile.imwrite(images / "a.tif", image[..., :1] if channels == 2 else image,
                     photometric="minisblack" if channels == 2 else "rgb")
    expected = image[..., 0] if channels == 2 else image
    np.testing.assert_array_equal(load_images(images), expected[None])


def test_16bit_gray_png_stays_uint16(folders, rng):
    images, masks = folders
    image = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    labels = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    _png16(images / "a.png", image, 0)
    _png16(masks / "a.png", labels, 0)
    X, y = load_image_folder(images, masks)
    assert X.dtype == y.dtype == np.uint16
    np.testing.assert_array_equal(X[0], image)
    np.testing.assert_array_equal(y[0], labels)


@pytest.mark.parametrize("values, dtype", [
    ([0, 1, 2], np.uint8), ([0, 300], np.uint16), ([-1, 0, 3], np.int8),
    ([-1, 200], np.int16), ([0, 70000], np.uint32),
])
def test_float_masks_with_whole_values_become_integer_labels(folders, values, dtype):
    tifffile = pytest.importorskip("tifffile")
    images, masks = folders
    labels = np.zeros((2, 5, 6), np.float32)
    labels[0, :2] = values[0]
    labels[1, 3:] = values[-1]
    labels[0, 4, :len(values)] = values
    for i, m in enumerate(labels):
        _write(images / f"{i}.png", np.zeros((5, 6), np.uint8))
        tifffile.imwrite(masks / f"{i}.tif", m)  # float32, as ImageJ writes them
    _, y = load_image_folder(images, masks)
    assert isinstance(y, np.ndarray) and y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, labels)
    # with an integer mask beside them: one dtype that holds all labels
    (masks / "1.tif").unlink()
    _write(masks / "1.png", np.full((5, 6), 255, np.uint8))
    _, y = load_image_folder(images, masks)
    assert isinstance(y, np.ndarray) and y.dtype == np.result_type(dtype, np.uint8)
    np.testing.assert_array_equal(y[0], labels[0])
    assert (y[1] == 255).all()


@pytest.mark.parametrize("bad, match", [(0.5, "not whole numbers.*0.5"), (np.nan, "nan"),
                                        (np.inf, "inf")])
def test_float_masks_with_other_values_name_the_file(folders, bad, match):
    tifffile = pytest.importorskip("tifffile")
    images, masks = folders
    for name in ("a", "b"):
        _write(images / f"{name}.png", np.zeros((4, 4), np.uint8))
        tifffile.imwrite(masks / f"{name}.tif", np.ones((4, 4), np.float64))
    mask = np.ones((4, 4), np.float64)
    mask[1, 1:3] = bad
    tifffile.imwrite(masks / "b.tif", mask)
    with pytest.raises(ValueError, match=rf"mask '.*b\.tif'.*{match}.* at 2 pixel\(s\)"):
        load_image_folder(images, masks)


def test_jpeg_masks_warn_once_naming_them(folders, rng):
    import warnings

    images, masks = folders
    for name in ("a", "b", "c"):
        _write(images / f"{name}.jpg", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    _write(masks / "a.png", np.zeros((16, 16), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JPEG images and PNG masks: no warning
        _write(masks / "b.png", np.zeros((16, 16), np.uint8))
        _write(masks / "c.png", np.zeros((16, 16), np.uint8))
        load_image_folder(images, masks)
    labels = np.zeros((16, 16), np.uint8)
    labels[4:12, 4:12] = 100
    labels[6:10, 6:10] = 200
    (masks / "b.png").unlink()
    (masks / "c.png").unlink()
    _write(masks / "b.jpg", labels)
    _write(masks / "c.jpeg", labels)
    with pytest.warns(UserWarning) as record:
        _, y = load_image_folder(images, masks)
    assert len(record) == 1
    text = str(record[0].message)
    assert "'b.jpg', 'c.jpeg'" in text and "compression noise" in text
    assert "PNG or TIFF" in text and "a.png" not in text
    assert record[0].filename == __file__  # points at the caller
    assert len(np.unique(y[1])) > 3  # the noise the warning is about


def test_palette_maps_indexed_masks_by_their_colours(folders):
    from PIL import Image

    images, masks = folders
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.fromarray(indices)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    im.save(masks / "a.png")
    _write(images / "a.png", np.zeros((2, 3), np.uint8))
    # no palette: the indices are the labels
    _, y = load_image_folder(images, masks)
    np.testing.assert_array_equal(y[0], indices)
    # the user's palette names the colours shown: it decides the labels
    palette = {(0, 0, 0): 0, (255, 0, 0): 7, (0, 0, 255): 300}
    _, y = load_image_folder(images, masks, palette=palette)
    assert y.dtype == np.uint16
    np.testing.assert_array_equal(y[0], [[0, 7, 300], [300, 7, 0]])
    # a shown colour not in it is an error naming the file and the colour
    with pytest.raises(ValueError, match=r"a\.png.*colour \(0, 0, 255\).*2 pixel"):
        load_image_folder(images, masks, palette={(0, 0, 0): 0, (255, 0, 0): 1})
    # save_masks' indexed PNGs read back through their own palette
    y = np.array([[[0, 7], [255, 0]]], np.uint8)
    own = {(0, 0, 0): 0, (255, 0, 0): 7, (0, 0, 255): 255}
    save_masks(masks, y, names=["a"], palette=own, overwrite=True)
    _write(images / "a.png", np.zeros((2, 2), np.uint8))
    _, back = load_image_folder(images, masks, palette=own)
    np.testing.assert_array_equal(back, y)


def test_save_masks_refuses_what_cannot_be_read_back(tmp_path):
    with pytest.raises(ValueError, match=r"y holds empty masks: shape \(2, 0, 8\)"):
        save_masks(tmp_path / "m", np.zeros((2, 0, 8), np.uint8))
    with pytest.raises(ValueError, match=r"y\[1\] is an empty mask of shape \(3, 0\)"):
        save_masks(tmp_path / "m", [np.zeros((3, 3), np.uint8), np.zeros((3, 0), np.uint8)])
    y = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="names must be file names without null bytes"):
        save_masks(tmp_path / "m", y, names=["a", "b\0c"])
    with pytest.raises(ValueError, match=r"names must not start with '\.'.*hidden.*'\.b'"):
        save_masks(tmp_path / "m", y, names=["a", ".b"])
    assert not (tmp_path / "m").exists()  # nothing written on refusal


@pytest.mark.parametrize("old_suffix", [".png", ".PNG", ".jpg"])
def test_save_masks_one_file_per_name_whatever_the_extension(tmp_path, old_suffix):
    images, masks = tmp_path / "images", tmp_path / "masks"
    masks.mkdir()
    _write(masks / f"a{old_suffix}", np.ones((4, 4), np.uint8))
    (masks / "notes.txt").write_text("other files are left alone")
    y = np.full((2, 4, 4), 70000, np.int32)  # written as TIFF files
    with pytest.raises(FileExistsError, match=rf"a\{old_suffix} exists.*two files named 'a'"
                                              r".*overwrite=True"):
        save_masks(masks, y, names=["b", "a"])
    assert sorted(p.name for p in masks.iterdir()) == [f"a{old_suffix}", "notes.txt"]
    paths = save_masks(masks, y, names=["b", "a"], overwrite=True)
    assert sorted(p.name for p in masks.iterdir()) == ["a.tif", "b.tif", "notes.txt"]
    _images_like(images, y)
    for i, name in enumerate(["b", "a"]):
        (images / f"{i:03d}.png").rename(images / f"{name}.png")
    _, back = load_image_folder(images, masks)
    np.testing.assert_array_equal(back, y)
    assert [p.name for p in paths] == ["b.tif", "a.tif"]


def test_save_masks_never_removes_a_stack_nor_shadows_its_pages(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    stack = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4) % 3
    tifffile.imwrite(tmp_path / "vol.tif", stack, photometric="minisblack")
    y = np.ones((1, 4, 4), np.uint8)
    for overwrite in (False, True):  # a page name is refused either way
        with pytest.raises(FileExistsError, match=r"vol.tif is a multi-page TIFF whose page 1 "
                                                  r"is read as the image 'vol_001'"):
            save_masks(tmp_path, y, names=["vol_001"], overwrite=overwrite)
    save_masks(tmp_path, y, names=["vol"], overwrite=True)  # its pages are named vol_000, ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.png", "vol.tif"]
    _, back = load_image_folder(tmp_path, tmp_path)
    np.testing.assert_array_equal(back[1:], stack)  # vol, vol_000, vol_001, vol_002


def test_load_images_reads_one_folder(tmp_path, rng):
    X = rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    for i, x in enumerate(X):
        _write(tmp_path / f"im{i}.png", x)
    got, names = load_images(tmp_path, return_names=True)
    np.testing.assert_array_equal(got, X)
    assert names == ["im0", "im1", "im2"]
    assert load_images(tmp_path, as_gray=True).shape == (3, 5, 4)
    with pytest.raises(ValueError, match="holds no files"):
        load_images(tmp_path, extensions=".bmp")
    with pytest.raises(FileNotFoundError, match="images_dir does not exist"):
        load_images(tmp_path / "absent")


# -------------------------------------------------------------- load_membrane

def test_load_membrane(membrane_dir):
    X, y = load_membrane(membrane_dir)
    assert X.shape == (30, 512, 512) and X.dtype == np.uint8
    assert y.shape == (30, 512, 512) and y.dtype == np.uint8
    assert set(np.unique(y).tolist()) == {0, 255}
    assert 0.1 < (y == 0).mean() < 0.35  # membranes are the minority class
    assert X.std() > 20


def test_load_membrane_from_environment(membrane_dir, monkeypatch):
    monkeypatch.setenv("SKSEGMENT_MEMBRANE", str(membrane_dir))
    X, y = load_membrane()
    assert X.shape == (30, 512, 512) and y.shape == X.shape


def test_load_membrane_not_found(tmp_path, monkeypatch):
    monkeypatch.delenv("SKSEGMENT_MEMBRANE", raising=False)
    with pytest.raises(FileNotFoundError, match="SKSEGMENT_MEMBRANE"):
        load_membrane()
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="masks"):
        load_membrane(tmp_path)
    monkeypatch.setenv("SKSEGMENT_MEMBRANE", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="absent"):
        load_membrane()
    with pytest.raises(TypeError, match="path"):
        load_membrane(5)


def test_folder_functions_and_make_shapes_name_bad_arguments(tmp_path):
    y = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(TypeError, match=r"names must be a list of 2 strings or None"):
        save_masks(tmp_path, y, names={"a", "b"})  # a set has no order
    with pytest.raises(TypeError, match=r"y must hold integer or bool labels; got dtype <U"):
        save_masks(tmp_path, y.astype(str))
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"dtype must be one of .*; got None"):
        make_shapes(dtype=None)
    for bad, error in (("x", TypeError), (-1, ValueError)):
        with pytest.raises(error, match=r"random_state must be None, an integer"):
            make_shapes(random_state=bad)
    save_masks(tmp_path, y, names=["a", "b"])
    for call in (lambda: load_images(tmp_path, return_names="no"),
                 lambda: load_image_folder(tmp_path, tmp_path, return_names=1)):
        with pytest.raises(TypeError, match="return_names must be"):
            call()
