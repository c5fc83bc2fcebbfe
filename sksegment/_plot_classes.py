"""Classes in figures: which labels, their names and colours, overlays and
legends. Used by :mod:`sksegment.plot`; matplotlib is imported lazily."""

import numbers

import numpy as np

from ._image_io import default_palette
from ._validation import did_you_mean


def display_image(image):
    """An image as matplotlib shows it: ``(H, W)`` with a grey colour map, or
    RGB; and a float copy in [0, 1] (grey or RGB) to draw overlays on."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        shown, cmap = img, "gray"
    elif img.ndim == 3 and img.shape[-1] in (3, 4):
        shown, cmap = img[..., :3], None
    else:
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                         f"got shape {img.shape}.")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must have at least one pixel; got shape {img.shape}.")
    if shown.dtype == np.uint8 and cmap is None:
        unit = shown / 255.0
    else:
        unit = shown.astype(np.float64)
        finite = np.isfinite(unit)
        low = unit[finite].min() if finite.any() else 0.0
        high = unit[finite].max() if finite.any() else 0.0
        unit = np.where(finite, (unit - low) / (high - low) if high > low else 0.0, 0.0)
        if cmap is None:
            shown = unit
    return shown, cmap, unit


def check_label_image(labels, shape, name):
    """A 2-D integer or bool label image of ``shape`` (H, W)."""
    lab = np.asarray(labels)
    if lab.ndim == 3 and lab.shape[-1] == 1:
        lab = lab[..., 0]
    if lab.ndim != 2 or lab.shape != tuple(shape):
        raise ValueError(f"{name} must be a label image of the image's height and width "
                         f"{tuple(shape)}; got shape {lab.shape}.")
    if lab.dtype.kind not in "biu" and (
            lab.dtype.kind != "f" or not np.array_equal(lab, np.round(lab))):
        raise TypeError(f"{name} must hold integer or bool labels; got dtype {lab.dtype}.")
    return lab


def resolve_classes(classes, label_images, ignore_label):
    """Label values in the order of the legend: ``classes``, or the sorted
    values found (``ignore_label`` left out)."""
    if classes is None:
        found = [np.unique(np.asarray(m)) for m in label_images if m is not None]
        values = np.unique(np.concatenate(found)) if found else np.array([], dtype=int)
        if ignore_label is not None:
            values = values[values != ignore_label]
        return values
    values = np.asarray(classes).ravel()
    if values.size == 0 or len(np.unique(values)) != values.size:
        raise ValueError(f"classes must be distinct label values; got {classes!r}.")
    return values


def class_names_for(classes, class_names):
    """One display name per class. The keys of a dict must be label values
    (integers); a dict may name classes that these images lack (one dict
    serves every image of a data set)."""
    values = np.asarray(classes).tolist()
    if class_names is None:
        return [str(c) for c in values]
    if isinstance(class_names, dict):
        unknown = [k for k in class_names if not isinstance(k, (numbers.Integral, np.bool_))]
        if unknown:
            raise ValueError(f"class_names must map label values (integers) to names; got "
                             f"key(s) {unknown[:10]!r}.")
        return [str(class_names.get(c, c)) for c in values]
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__"):
        raise TypeError(f"class_names must be None, a list of names (one per class) or a "
                        f"dict {{label: name}}; got {class_names!r}.")
    names = list(class_names)
    if len(names) != len(classes):
        raise ValueError(f"class_names must give one name per class ({len(classes)}: "
                         f"{np.asarray(classes).tolist()}) or be a dict {{label: name}}; got "
                         f"{len(names)} names.")
    return [str(n) for n in names]


def class_colours(classes, cmap=None):
    """RGB colours in [0, 1], one per class: the palette of written masks
    (by rank), or samples of a matplotlib colour map."""
    n = len(classes)
    if cmap is not None:
        from matplotlib import colormaps
        from matplotlib.colors import Colormap

        if not isinstance(cmap, (str, Colormap)):
            raise TypeError(f"cmap must be None, the name of a matplotlib colour map or a "
                            f"Colormap; got {cmap!r}.")
        if isinstance(cmap, str):
            if cmap not in colormaps:
                hint = did_you_mean(cmap, list(colormaps))
                raise ValueError(f"cmap must be None or the name of a matplotlib colour map "
                                 f"(see matplotlib.colormaps); got {cmap!r}"
                                 + (f"; {hint}" if hint else "."))
            cmap = colormaps[cmap]
        sample = cmap.resampled(max(n, 2))
        return [tuple(sample(i)[:3]) for i in range(n)]
    palette = default_palette(np.arange(n))
    by_rank = {rank: colour for colour, rank in palette.items()}
    return [tuple(c / 255.0 for c in by_rank[i]) for i in range(n)]


def background_label(background, classes):
    """The label left uncoloured: ``"auto"`` is the first class (when there
    are two or more), None is none, an integer that label (whether or not
    these images hold it)."""
    if background is None:
        return None
    if isinstance(background, str):
        if background != "auto":
            raise ValueError(f"background must be 'auto', None or a label value; "
                             f"got {background!r}.")
        return classes[0] if len(classes) > 1 else None
    if not isinstance(background, (numbers.Integral, np.bool_)):
        raise TypeError(f"background must be 'auto', None or an integer label value; "
                        f"got {background!r}.")
    return background


def class_overlay(unit_image, labels, classes, colours, background, ignore_label, alpha,
                  name):
    """RGB float image: each class's colour blended over the image with
    :func:`skimage.color.label2rgb`; the background class and ignored pixels
    keep the image."""
    from skimage.color import label2rgb

    index = np.zeros(labels.shape, dtype=np.int32)  # 0: not coloured
    known = np.zeros(labels.shape, dtype=bool)
    for k, c in enumerate(np.asarray(classes).tolist()):
        hit = labels == c
        known |= hit
        if background is None or c != background:
            index[hit] = k + 1
    if ignore_label is not None:
        known |= labels == ignore_label
    if not known.all():
        extra = np.unique(labels[~known])
        raise ValueError(f"{name} holds label(s) {extra[:10].tolist()} that are not in "
                         f"classes {np.asarray(classes).tolist()}.")
    present = [int(k) for k in np.unique(index) if k]
    base = unit_image if unit_image.ndim == 3 else np.stack([unit_image] * 3, axis=-1)
    if not present:
        return base
    colors = [colours[k - 1] for k in present]  # label2rgb colours present labels in order
    out = label2rgb(index, image=base, colors=colors, alpha=alpha, bg_label=0, bg_color=None,
                    saturation=1)
    return np.clip(out, 0.0, 1.0)


def class_legend(ax, classes, names, colours, background, *, outside=True, title=None):
    """A legend of the classes on ``ax``: a colour patch per class, the
    uncoloured background class as an empty box."""
    from matplotlib.patches import Patch

    handles = []
    for c, name, colour in zip(np.asarray(classes).tolist(), names, colours):
        if background is not None and c == background:
            handles.append(Patch(facecolor="none", edgecolor="0.4",
                                 label=f"{name} (not coloured)"))
        else:
            handles.append(Patch(facecolor=colour, edgecolor="0.2", label=name))
    kwargs = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0) \
        if outside else dict(loc="best")
    return ax.legend(handles=handles, title=title, fontsize="small", frameon=False, **kwargs)
