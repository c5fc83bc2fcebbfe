"""Reading and writing single image files: images, label masks, probabilities.

PNG, JPEG and BMP files go through Pillow, TIFF files through tifffile, so
that what a file holds is read as it is stored:

- an indexed (palette, mode "P") PNG mask is read as its indices, which are
  its labels, unless its colours are asked for (a mask read through a
  palette {(r, g, b): label}); an indexed *image* is expanded to its colours;
- 16-bit grayscale PNGs are uint16, 1-bit PNGs bool; 16-bit colour PNGs
  (RGB, RGBA, gray with alpha) are refused with a ``ValueError``, as Pillow
  would read them as 8 bits per channel (save them as TIFF instead);
- every page of a TIFF file is one image (a stack of n pages gives n images;
  reduced-resolution pages are skipped).

Any failure to decode a file (random bytes, a truncated or corrupt file) is
raised as one ``ValueError`` that names the file.
"""

import colorsys
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")

# Distinct colours for the classes of a default palette, after black for the
# first class (matplotlib's tab10, then the light tab20 tones).
_COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]


def _decode_error(path, what, exc):
    return ValueError(
        f"cannot read {what} file {str(path)!r}: not a readable image (corrupt, truncated or "
        f"of another format): {type(exc).__name__}: {exc}"
    )


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
def _tiff_pages(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
        out = []
        for page in pages:
            arr = page.asarray()
            axes = getattr(page, "axes", "")
            if arr.ndim == 3 and axes.startswith("S"):  # planar colour: samples first
                arr = np.moveaxis(arr, 0, -1)
            if arr.ndim not in (2, 3):
                raise ValueError(f"a page has shape {arr.shape}; expected (H, W) or (H, W, C)")
            out.append(arr)
    if not out:
        raise ValueError("the file holds no image")
    return out


def count_pages(path):
    """Number of images in a file: pages of a TIFF file, 1 for the others."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return 1
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n = sum(1 for p in tif.pages if not getattr(p, "is_reduced", False))
    except Exception as exc:  # any decoding failure names the file
        raise _decode_error(path, "TIFF", exc) from exc
    if n == 0:  # tifffile only logs a page it cannot parse: a broken file has none
        raise _decode_error(path, "TIFF", ValueError("no image page could be read"))
    return n


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types with more than one channel: gray + alpha, RGB, RGBA
_PNG_COLOUR_TYPES = {4: "gray with alpha", 2: "RGB", 6: "RGBA"}


def _png_header(path):
    """``(bit_depth, colour_type)`` of a PNG file, or None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def check_png_depth(path, what="image"):
    """Refuse a 16-bit colour PNG, which Pillow reads as 8 bits per channel.

    Pillow keeps 16-bit grayscale PNGs (mode "I;16") but converts 16-bit RGB,
    RGBA and gray-with-alpha PNGs to 8 bits per channel without a word; no
    reader installed with sksegment reads them losslessly.
    """
    try:
        header = _png_header(path)
    except OSError:
        return  # reading the file reports it, naming the file
    if header is None or header[0] != 16 or header[1] not in _PNG_COLOUR_TYPES:
        return
    raise ValueError(
        f"cannot read {what} file {str(path)!r}: it is a 16-bit "
        f"{_PNG_COLOUR_TYPES[header[1]]} PNG, which Pillow (the PNG reader) would read as 8 "
        "bits per channel, losing precision. Save it as a 16-bit TIFF instead (e.g. "
        "tifffile.imwrite('name.tif', array)), or as an 8-bit PNG if 8 bits are enough."
    )


def is_jpeg(path):
    """Whether a file holds JPEG data (lossy), by its first bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def _pil_array(path, mask, colours=False):
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mask and mode in ("P", "PA") and not colours:
            # indices are the labels; the palette only gives them colours
            arr = np.asarray(im)
            return arr[..., 0] if arr.ndim == 3 else arr
        if mode in ("P", "PA"):
            transparent = mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if transparent else "RGB")
        elif mode.startswith("I;16"):
            return np.asarray(im).astype(np.uint16)  # native byte order
        elif mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "F"):
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
        return np.array(im)


def read_pages(path, *, mask=False, colours=False):
    """All images of one file, as a list of arrays ``(H, W)`` or ``(H, W, C)``.

    TIFF files give one array per page; other files one array. ``mask=True``
    reads indexed PNGs as their indices, unless ``colours=True`` (then as
    their colours, RGB or RGBA). Any decoding failure raises a ``ValueError``
    that names the file, as does a 16-bit colour PNG (Pillow would read it
    as 8 bits).
    """
    path = Path(path)
    what = "mask" if mask else "image"
    is_tiff = path.suffix.lower() in TIFF_SUFFIXES
    if not is_tiff:
        check_png_depth(path, what)
    try:
        if is_tiff:
            return _tiff_pages(path)
        return [_pil_array(path, mask, colours)]
    except Exception as exc:  # any decoding failure names the file
        raise _decode_error(path, what, exc) from exc


# --------------------------------------------------------------------------- #
# palettes
# --------------------------------------------------------------------------- #
def check_palette(palette, name="palette"):
    """A palette ``{(r, g, b): label}`` checked and cleaned (ints 0..255, int labels)."""
    if not isinstance(palette, dict) or not palette:
        raise TypeError(f"{name} must be a non-empty dict {{(r, g, b): label}}; "
                        f"got {palette!r}.")
    clean = {}
    for colour, label in palette.items():
        ok = (isinstance(colour, tuple) and len(colour) == 3
              and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                      and 0 <= c <= 255 for c in colour))
        if not ok:
            raise ValueError(f"{name} keys must be colours (r, g, b) of integers in 0..255; "
                             f"got {colour!r}.")
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"{name} values must be integer labels; got {label!r} for colour "
                            f"{colour}.")
        clean[tuple(int(c) for c in colour)] = int(label)
    return clean


def default_palette(labels):
    """A palette ``{(r, g, b): label}`` giving each label value its own colour:
    black for the first (sorted) label, then distinct colours."""
    colours, used = {}, set()
    for rank, label in enumerate(sorted({int(v) for v in np.asarray(labels).ravel()})):
        if rank == 0:
            colour = (0, 0, 0)
        elif rank <= len(_COLOURS):
            colour = _COLOURS[rank - 1]
        else:  # golden-ratio hues, alternating saturation and value
            h = (rank * 0.6180339887) % 1.0
            s = 0.55 + 0.45 * ((rank // 7) % 2)
            v = 0.6 + 0.4 * ((rank // 3) % 2)
            colour = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))
        while colour in used:  # keep every colour distinct
            colour = (colour[0], colour[1], (colour[2] + 1) % 256)
        used.add(colour)
        colours[colour] = label
    return colours


def colours_to_labels(rgb, palette, where):
    """Labels of an RGB(A) mask through ``palette`` {(r, g, b): label};
    ``where`` names the mask in errors."""
    rgb = np.asarray(rgb)[..., :3].astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    table = sorted(((r << 16) | (g << 8) | b, label) for (r, g, b), label in palette.items())
    codes = np.array([c for c, _ in table], dtype=np.int64)
    values = np.array([v for _, v in table])
    dtype = np.result_type(*[np.min_scalar_type(v) for v in values.tolist()])
    pos = np.clip(np.searchsorted(codes, keys), 0, len(codes) - 1)
    unknown = codes[pos] != keys
    if unknown.any():
        missing = np.unique(keys[unknown])
        first = int(missing[0])
        colour = (first >> 16, (first >> 8) & 255, first & 255)
        more = f" (and {missing.size - 1} other colours)" if missing.size > 1 else ""
        raise ValueError(
            f"mask {where} has the colour {colour}{more} at "
            f"{int(np.count_nonzero(keys == first))} pixel(s), which is not in the palette "
            f"{{(r, g, b): label}}; add it to the palette."
        )
    return values[pos].astype(dtype)


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
MASK_FORMATS = ("auto", "png", "tiff")


def mask_storage(dtype, low, high, format="auto"):
    """How label images of ``dtype`` with values in ``[low, high]`` are stored.

    Returns ``(kind, dtype)`` where kind is "png1", "png8", "png16" or "tiff"
    and dtype the dtype the labels are written in (values unchanged).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "biu":
        raise TypeError(
            f"masks must hold integer or bool labels; got dtype {dtype}. Labels are written "
            "losslessly, so round and cast float masks to an integer dtype first."
        )
    if dtype.kind == "b":
        return ("tiff", np.dtype(np.uint8)) if format == "tiff" else ("png1", dtype)
    if format == "tiff":
        return "tiff", dtype
    if dtype == np.uint8 or (dtype != np.uint16 and low >= 0 and high <= 255):
        return "png8", np.dtype(np.uint8)
    if low >= 0 and high <= 65535:
        return "png16", np.dtype(np.uint16)
    if format == "png":
        raise ValueError(
            f"labels in [{low}, {high}] do not fit a 16-bit PNG (0..65535); use "
            "format='tiff' or format='auto'."
        )
    return "tiff", dtype


SUFFIX = {"png1": ".png", "png8": ".png", "png16": ".png", "tiff": ".tif"}


def palette_bytes(palette):
    """Pillow's flat 768-value palette from {(r, g, b): label} (labels 0..255;
    the first colour of a label wins)."""
    flat = [0] * 768
    seen = set()
    for colour, label in palette.items():
        if 0 <= label <= 255 and label not in seen:
            seen.add(label)
            flat[3 * label:3 * label + 3] = colour
    return flat


def write_mask(path, mask, kind, dtype, palette=None):
    """Write one label image ``(H, W)`` as ``kind`` (see :func:`mask_storage`)."""
    from PIL import Image

    mask = np.ascontiguousarray(mask, dtype=dtype)
    if kind == "tiff":
        import tifffile

        tifffile.imwrite(path, mask, photometric="minisblack", compression="zlib")
        return
    im = Image.fromarray(mask)
    if kind == "png8" and palette is not None:
        im.putpalette(palette_bytes(palette))
    im.save(path, format="PNG")


def write_proba(path, proba, classes):
    """Write probabilities ``(H, W, K)`` as a float32 TIFF of K pages, page k
    for ``classes[k]``; the label values are in the description (JSON)."""
    import tifffile

    pages = np.ascontiguousarray(np.moveaxis(np.asarray(proba, dtype=np.float32), -1, 0))
    tifffile.imwrite(path, pages, photometric="minisblack", compression="zlib",
                     metadata={"axes": "CYX", "classes": [_plain(c) for c in classes]})


def _plain(value):
    return value.item() if hasattr(value, "item") else value
