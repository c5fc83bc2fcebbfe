import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from sksegment.metrics import dice_score
from sksegment.postprocessing import (
    FOREGROUND,
    PostProcessor,
    fill_holes,
    keep_largest_component,
    make_postprocessor,
    remove_small_components,
    select_postprocessing,
)


def _blob_and_specks(dtype=np.int64):
    """A 6x6 blob of class 1 and three 1-pixel specks of class 1."""
    img = np.zeros((16, 16), dtype=dtype)
    img[4:10, 4:10] = 1
    img[0, 15] = img[14, 1] = img[15, 15] = 1
    blob = np.zeros_like(img)
    blob[4:10, 4:10] = 1
    return img, blob


def _ring(size=9, lo=2, hi=7, cls=1):
    """A square ring of ``cls`` with a background hole in the middle."""
    img = np.zeros((size, size), dtype=np.int64)
    img[lo:hi, lo:hi] = cls
    img[lo + 1:hi - 1, lo + 1:hi - 1] = 0
    return img


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- #
# the operations
# --------------------------------------------------------------------------- #
def test_remove_small_removes_specks_only():
    img, blob = _blob_and_specks()
    np.testing.assert_array_equal(remove_small_components(img, 1, 2), blob)
    # the blob (36 pixels) stays up to min_size 36, goes at 37
    np.testing.assert_array_equal(remove_small_components(img, 1, 36), blob)
    assert not remove_small_components(img, 1, 37).any()


def test_keep_largest_keeps_the_blob():
    img, blob = _blob_and_specks()
    img[12:15, 10:14] = 1  # a second, smaller blob
    np.testing.assert_array_equal(keep_largest_component(img, 1), blob)
    np.testing.assert_array_equal(keep_largest_component(img, FOREGROUND), blob)


def test_fill_holes_fills_a_ring():
    ring = _ring()
    filled = fill_holes(ring, 1)
    expected = np.zeros_like(ring)
    expected[2:7, 2:7] = 1
    np.testing.assert_array_equal(filled, expected)
    # a hole of 9 pixels stays with max_hole_size 8 and is filled with 9
    np.testing.assert_array_equal(fill_holes(ring, 1, max_hole_size=8), ring)
    np.testing.assert_array_equal(fill_holes(ring, 1, max_hole_size=9), expected)


def test_fill_holes_leaves_open_rings_and_other_classes():
    open_ring = _ring()
    open_ring[2, 4] = 0  # a gap to the outside
    np.testing.assert_array_equal(fill_holes(open_ring, 1), open_ring)
    edge = np.array([[1, 0, 1],
                     [1, 0, 1],
                     [1, 1, 1]])  # the "hole" touches the image edge
    np.testing.assert_array_equal(fill_holes(edge, 1), edge)
    # a nucleus of class 2 inside the cell: neither it nor the background
    # next to it is a hole of class 1; the separate hole is filled
    cell = np.ones((9, 12), dtype=np.int64)
    cell[[0, -1]] = 0
    cell[:, [0, -1]] = 0
    cell[2:7, 2:7] = 0
    cell[4, 4] = 2
    cell[3, 9] = 0
    out = fill_holes(cell, 1)
    assert out[3, 9] == 1
    np.testing.assert_array_equal(out[2:7, 2:7], cell[2:7, 2:7])


def test_fill_holes_connectivity():
    # a diamond closed through its corners encloses its centre only for
    # 8-connected objects (the background then is 4-connected)
    diamond = np.array([[0, 0, 1, 0, 0],
                        [0, 1, 0, 1, 0],
                        [1, 0, 0, 0, 1],
                        [0, 1, 0, 1, 0],
                        [0, 0, 1, 0, 0]])
    out = fill_holes(diamond, 1, connectivity=2)
    assert out[1:4, 2].all() and out[2, 1:4].all()
    np.testing.assert_array_equal(fill_holes(diamond, 1, connectivity=1), diamond)


def test_connectivity_of_components():
    img = np.array([[1, 0, 0],
                    [0, 1, 0],
                    [0, 0, 1]])
    np.testing.assert_array_equal(remove_small_components(img, 1, 2), img)  # one of 3
    assert not remove_small_components(img, 1, 2, connectivity=1).any()  # three of 1


def test_multiclass_other_classes_untouched():
    img = np.zeros((12, 12), dtype=np.int64)
    img[1:5, 1:5] = 1
    img[10, 10] = 1  # speck of class 1
    img[6:11, 1:6] = 2
    img[0, 11] = 2  # speck of class 2
    img[1:4, 7:10] = 3
    out = remove_small_components(img, 2, 3)
    assert out[0, 11] == 0
    changed = out != img
    np.testing.assert_array_equal(np.argwhere(changed), [[0, 11]])
    out = keep_largest_component(img, 1)
    np.testing.assert_array_equal(np.argwhere(out != img), [[10, 10]])


@pytest.mark.parametrize("replace, expected", [("neighbour", 1), ("background", 0)])
def test_replace_rule(replace, expected):
    img = np.ones((7, 7), dtype=np.int64)
    img[0] = 0
    img[3, 3] = 2  # a speck of 2 inside class 1
    out = remove_small_components(img, 2, 2, replace=replace)
    assert out[3, 3] == expected
    out = keep_largest_component(np.where(img == 2, 1, img), 1, replace=replace)
    np.testing.assert_array_equal(out, np.where(img == 2, 1, img))
    # a speck at the image corner with background on most of its border
    img[6, 6] = 2
    img[5, 5:7] = 0
    img[6, 5] = 0
    out = remove_small_components(img, 2, 2, replace=replace)
    assert out[6, 6] == 0


def test_forms_and_dtypes_kept_and_input_not_modified():
    img, blob = _blob_and_specks(np.uint8)
    pp = PostProcessor([("remove_small", 1, 2), ("fill_holes", 1)])
    stack = _readonly(np.stack([img, img]))
    out = pp.apply(stack)
    assert out.dtype == np.uint8 and out.shape == (2, 16, 16)
    np.testing.assert_array_equal(out, np.stack([blob, blob]))
    assert stack[0, 0, 15] == 1
    single = _readonly(img)
    out = pp.apply(single)
    assert out.shape == (16, 16) and out.dtype == np.uint8
    images = [_readonly(img), _readonly(img[:10, :12])]
    out = pp.apply(images)
    assert isinstance(out, list) and [o.shape for o in out] == [(16, 16), (10, 12)]
    np.testing.assert_array_equal(out[0], blob)
    assert images[0][0, 15] == 1
    empty = PostProcessor().apply(single)
    assert empty is not single
    np.testing.assert_array_equal(empty, single)
    assert pp.apply([]) == []
    boolean = pp.apply(img.astype(bool))
    assert boolean.dtype == bool
    np.testing.assert_array_equal(boolean, blob.astype(bool))


# --------------------------------------------------------------------------- #
# the PostProcessor object
# --------------------------------------------------------------------------- #
def test_postprocessor_normalises_compares_and_pickles():
    pp = PostProcessor([["keep_largest", np.int64(1)], ("fill_holes", 2, None),
                        ("remove_small", FOREGROUND, 5)], connectivity=1)
    assert pp.steps == (("keep_largest", 1), ("fill_holes", 2),
                        ("remove_small", "foreground", 5))
    assert type(pp.steps[0][1]) is int
    same = PostProcessor((("keep_largest", 1), ("fill_holes", 2),
                          ("remove_small", "foreground", 5)), 1)
    assert pp == same and hash(pp) == hash(same)
    assert pp != PostProcessor(pp.steps)  # another connectivity
    assert pickle.loads(pickle.dumps(pp)) == pp
    assert repr(pp) == ("PostProcessor(steps=(('keep_largest', 1), ('fill_holes', 2), "
                        "('remove_small', 'foreground', 5)), connectivity=1, "
                        "replace='neighbour')")
    assert eval(repr(pp), {"PostProcessor": PostProcessor}) == pp
    with pytest.raises(AttributeError):
        pp.steps = ()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(steps=[("erode", 1)]), ValueError, "unknown operation 'erode'"),
    (dict(steps=[("keep_largest", 0)]), ValueError, "0 is the background"),
    (dict(steps=[("keep_largest", 1.0)]), TypeError, "class index"),
    (dict(steps=[("keep_largest", "background")]), ValueError, "class index"),
    (dict(steps=[("keep_largest", 1, 3)]), ValueError, r"steps\[0\] must be"),
    (dict(steps=[("remove_small", 1)]), ValueError, "min_size"),
    (dict(steps=[("remove_small", 1, -4)]), ValueError, r"min_size of steps\[0\]"),
    (dict(steps=[("fill_holes", 1, 0)]), ValueError, "max_hole_size"),
    (dict(steps=["keep_largest"]), TypeError, r"steps\[0\]"),
    (dict(steps="keep_largest"), TypeError, "steps"),
    (dict(connectivity=3), ValueError, "connectivity"),
    (dict(connectivity=True), TypeError, "connectivity"),
    (dict(replace="nearest"), ValueError, "replace"),
])
def test_postprocessor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        PostProcessor(**kwargs)


@pytest.mark.parametrize("labels, error, match", [
    (np.zeros((4, 4), dtype=np.float32), TypeError, "integer class indices"),
    (np.full((4, 4), -1), ValueError, "negative"),
    (np.zeros((1, 4, 4, 1), dtype=np.int64), ValueError, "shape"),
    ([np.zeros((2, 4, 4), dtype=np.int64)], ValueError, r"labels\[0\]"),
])
def test_apply_validation(labels, error, match):
    with pytest.raises(error, match=match):
        PostProcessor([("keep_largest", 1)]).apply(labels)


# --------------------------------------------------------------------------- #
# explicit options
# --------------------------------------------------------------------------- #
def test_make_postprocessor_common_and_per_class():
    pp = make_postprocessor({"remove_small": 64, "keep_largest": True, "fill_holes": True,
                             "classes": {2: {"keep_largest": False, "fill_holes": 30},
                                         np.int64(3): {"remove_small": None}},
                             "foreground": {"keep_largest": True},
                             "connectivity": 1, "replace": "background"}, 4)
    assert pp.steps == (
        ("keep_largest", "foreground"),
        ("keep_largest", 1), ("remove_small", 1, 64), ("fill_holes", 1),
        ("remove_small", 2, 64), ("fill_holes", 2, 30),
        ("keep_largest", 3), ("fill_holes", 3),
    )
    assert pp.connectivity == 1 and pp.replace == "background"
    assert make_postprocessor({}, 2) == PostProcessor()
    assert make_postprocessor(None, 2) == PostProcessor()
    given_pp = PostProcessor([("keep_largest", 2)])
    assert make_postprocessor(given_pp, 3) is given_pp


@pytest.mark.parametrize("options, error, match", [
    ({"remove_smal": 3}, ValueError, "unknown key 'remove_smal'"),
    ({"remove_small": -1}, ValueError, r"options\['remove_small'\]"),
    ({"remove_small": 2.5}, TypeError, r"options\['remove_small'\]"),
    ({"keep_largest": 1}, TypeError, r"options\['keep_largest'\]"),
    ({"fill_holes": "yes"}, TypeError, r"options\['fill_holes'\]"),
    ({"fill_holes": 0}, ValueError, r"options\['fill_holes'\]"),
    ({"classes": {3: {"keep_largest": True}}}, ValueError, "key 3.*1 .. 2"),
    ({"classes": {0: {"keep_largest": True}}}, ValueError, "background"),
    ({"classes": {"1": {"keep_largest": True}}}, TypeError, "class indices"),
    ({"classes": [1, 2]}, TypeError, r"options\['classes'\]"),
    ({"classes": {1: {"remove_small": -2}}}, ValueError, r"options\['classes'\]\[1\]"),
    ({"classes": {1: {"dilate": 2}}}, ValueError, "unknown key 'dilate'"),
    ({"classes": {1: True}}, TypeError, r"options\['classes'\]\[1\]"),
    ({"foreground": {"remove_small": -3}}, ValueError, r"options\['foreground'\]"),
    ({"connectivity": 4}, ValueError, "connectivity"),
    ({"replace": "zero"}, ValueError, "replace"),
    ("remove_small", TypeError, "dict"),
    (PostProcessor([("fill_holes", 3)]), ValueError, "class 3"),
])
def test_make_postprocessor_validation(options, error, match):
    with pytest.raises(error, match=match):
        make_postprocessor(options, 3)


def test_make_postprocessor_names_the_argument():
    with pytest.raises(ValueError, match=r"postprocessing\['classes'\]\[1\]\['remove_small'\]"):
        make_postprocessor({"classes": {1: {"remove_small": -1}}}, 2, name="postprocessing")
    with pytest.raises(ValueError, match=r"postprocessing\['connectivity'\]"):
        make_postprocessor({"connectivity": 0}, 2, name="postprocessing")
    with pytest.raises(TypeError, match="postprocessing must be a dict"):
        make_postprocessor(3, 2, name="postprocessing")


def test_make_postprocessor_n_classes():
    with pytest.raises(ValueError, match="n_classes"):
        make_postprocessor({}, 1)
    with pytest.raises(TypeError, match="n_classes"):
        make_postprocessor({}, 2.0)


# --------------------------------------------------------------------------- #
# selection on validation data
# --------------------------------------------------------------------------- #
def _speckled(rng, n=6, size=32, n_specks=6, k_blobs=1):
    """Truth with ``k_blobs`` square blobs of class 1 per image; predictions
    equal to the truth plus isolated 1-pixel specks."""
    t = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        for b in range(k_blobs):
            r, c = 3 + 14 * (b // 2), 3 + 14 * (b % 2)
            t[i, r:r + 8 + i % 3, c:c + 8] = 1
    p = t.copy()
    for i in range(n):
        near = ndimage.binary_dilation(t[i] > 0, np.ones((3, 3)))
        free = np.argwhere(~near)
        free = free[(free % 3 == 0).all(axis=1)]  # not touching a blob nor each other
        pick = free[rng.choice(len(free), n_specks, replace=False)]
        p[i, pick[:, 0], pick[:, 1]] = 1
    return t, p


def _fg_dice(t, p, k):
    per = dice_score(t, p, labels=np.arange(k), average=None, per_image=True)
    return float(np.nanmean(per[1:]))


def test_selection_removes_specks(rng):
    t, p = _speckled(rng)
    before = _fg_dice(t, p, 2)
    p_orig = p.copy()
    pp, report = select_postprocessing(t, p, 2)
    np.testing.assert_array_equal(p, p_orig)
    assert pp.steps[0] == ("keep_largest", FOREGROUND)
    assert report[0]["kept"] and report[0]["score_after"] > report[0]["score_before"]
    assert math.isclose(report[0]["score_before"], before)
    after = _fg_dice(t, pp.apply(p), 2)
    assert after == pytest.approx(1.0) and after > before
    kept = [r for r in report if r["kept"]]
    assert [r["step"] for r in kept] == list(pp.steps)
    assert kept[-1]["score_after"] == pytest.approx(after)


def test_selection_keeps_several_true_components(rng):
    # the truth has four blobs per image: keeping the largest would hurt,
    # removing small components helps
    t, p = _speckled(rng, k_blobs=4)
    pp, report = select_postprocessing(t, p, 2)
    assert ("keep_largest", FOREGROUND) not in pp.steps
    assert report[0]["step"] == ("keep_largest", FOREGROUND)
    assert not report[0]["kept"] and report[0]["score_after"] < report[0]["score_before"]
    assert report[0]["worse_classes"] == [1]
    assert len(pp.steps) == 1 and pp.steps[0][0] == "remove_small"
    assert _fg_dice(t, pp.apply(p), 2) == pytest.approx(1.0)
    # the report lists every tried step, in the documented order; the
    # smallest true blob has 64 pixels
    assert [r["step"] for r in report] == [
        ("keep_largest", FOREGROUND), ("remove_small", 1, 6), ("remove_small", 1, 16),
        ("remove_small", 1, 32), ("fill_holes", 1)]
    assert sum(r["kept"] for r in report) == 1
    for r in report:
        assert set(r) == {"step", "score_before", "score_after", "kept",
                          "per_class_before", "per_class_after", "worse_classes"}
        assert len(r["per_class_before"]) == len(r["per_class_after"]) == 2


def test_selection_rejects_a_step_that_hurts_one_class(rng):
    # class 1 gains from keeping the largest foreground component (its specks
    # go), but in one image class 2 lies apart from the class-1 blob and
    # would vanish: the mean rises, class 2 gets worse, the step is refused
    t, p = _speckled(rng, n=16, n_specks=20)
    t[:, 3:11, 11:14] = 2  # class 2 touching the class-1 blob
    t[0, 3:11, 11:14] = 0
    t[0, 24:30, 24:30] = 2  # apart in image 0
    p = np.where(t == 2, 2, p)
    pp, report = select_postprocessing(t, p, 3)
    first = report[0]
    assert first["step"] == ("keep_largest", FOREGROUND) and not first["kept"]
    assert first["score_after"] > first["score_before"]
    assert first["worse_classes"] == [2]
    assert ("keep_largest", 1) in pp.steps
    out = pp.apply(p)
    np.testing.assert_array_equal(out == 2, t == 2)
    assert _fg_dice(t, out, 3) == pytest.approx(1.0)


def test_selection_tolerance_and_empty_result(rng):
    t, p = _speckled(rng, n_specks=1)
    pp, report = select_postprocessing(t, p, 2, tol=0.5)
    assert pp == PostProcessor() and not any(r["kept"] for r in report)
    # perfect predictions: nothing to gain
    pp, report = select_postprocessing(t, t, 2)
    assert pp.steps == ()
    assert all(r["score_after"] == r["score_before"] == 1.0 for r in report)


def test_selection_candidates_groups_lists_and_ignore(rng):
    t, p = _speckled(rng)
    t_list, p_list = [t[0], t[1][:30, :28]], [p[0], p[1][:30, :28]]
    pp, report = select_postprocessing(
        t_list, p_list, 2, candidates=[("fill_holes", 1),
                                       [("remove_small", 1, 2), ("remove_small", 1, 50)]])
    assert [r["step"] for r in report] == [("fill_holes", 1), ("remove_small", 1, 2),
                                           ("remove_small", 1, 50)]
    # both sizes remove the specks; the first of equal scores is kept
    assert pp.steps == (("remove_small", 1, 2),)
    t_ign = t.copy()
    t_ign[:, :2] = 255
    pp, _ = select_postprocessing(t_ign.astype(np.uint8), p, 2, ignore_index=255,
                                  scoring="iou")
    assert pp.steps == (("keep_largest", FOREGROUND),)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_classes=1), ValueError, "n_classes"),
    (dict(scoring="accuracy"), ValueError, "scoring"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(candidates=[("remove_small", 3, 2)]), ValueError, "class 3"),
    (dict(candidates=[("grow", 1)]), ValueError, r"candidates\[0\]"),
    (dict(candidates="keep_largest"), TypeError, "candidates"),
    (dict(y_pred=np.full((2, 5, 5), 2)), ValueError, r"y_pred\[0\] holds class index 2"),
    (dict(y_true=np.full((2, 5, 5), 7)), ValueError, r"y_true\[0\] holds class index 7"),
    (dict(y_pred=np.zeros((2, 5, 4), dtype=int)), ValueError, "shape"),
    (dict(y_pred=np.zeros((3, 5, 5), dtype=int)), ValueError, "y_pred has 3"),
    (dict(y_pred=np.zeros((2, 5, 5))), TypeError, "y_pred"),
])
def test_selection_validation(kwargs, error, match):
    args = dict(y_true=np.zeros((2, 5, 5), dtype=int), y_pred=np.zeros((2, 5, 5), dtype=int),
                n_classes=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        select_postprocessing(**args)


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #
_labels = arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
                 elements=st.integers(0, 3))
_target = st.one_of(st.integers(1, 3), st.just(FOREGROUND))
_step = st.one_of(
    st.tuples(st.just("keep_largest"), _target),
    st.tuples(st.just("remove_small"), _target, st.integers(1, 10)),
    st.tuples(st.just("fill_holes"), _target),
    st.tuples(st.just("fill_holes"), _target, st.integers(1, 10)),
)


@settings(max_examples=60, deadline=None)
@given(labels=_labels, steps=st.lists(_step, max_size=4), connectivity=st.sampled_from([1, 2]),
       replace=st.sampled_from(["neighbour", "background"]))
def test_apply_properties(labels, steps, connectivity, replace):
    original = labels.copy()
    np.testing.assert_array_equal(PostProcessor().apply(labels), labels)
    out = PostProcessor(steps, connectivity, replace).apply(labels)
    np.testing.assert_array_equal(labels, original)
    assert out.shape == labels.shape and out.dtype == labels.dtype
    for img, new in zip(labels, out):
        assert set(np.unique(new)) <= set(np.unique(img)) | {0}


@settings(max_examples=60, deadline=None)
@given(labels=_labels, step=_step, connectivity=st.sampled_from([1, 2]))
def test_a_class_step_changes_only_its_class_or_background(labels, step, connectivity):
    out = PostProcessor([step], connectivity).apply(labels)
    changed = out != labels
    if step[0] == "fill_holes":
        assert (labels[changed] == 0).all()
        if step[1] != FOREGROUND:
            assert (out[changed] == step[1]).all()
    else:
        source = labels[changed]
        assert (source != 0).all()
        if step[1] != FOREGROUND:
            assert (source == step[1]).all()


def test_steps_read_arrays_that_read_on_demand():
    da = pytest.importorskip("dask.array")
    labels = np.zeros((2, 6, 6), np.uint8)
    labels[:, 1:3, 1:3] = 1
    labels[:, 4, 4] = 1
    expected = keep_largest_component(labels, 1)
    got = keep_largest_component(da.from_array(labels, chunks=(1, 3, 3)), 1)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(labels[:, 4, 4], 1)  # the input is not modified


@pytest.mark.parametrize("call, match", [
    (lambda y: keep_largest_component(y, 0), r"^class_index must be a class index >= 1"),
    (lambda y: keep_largest_component(y, "x"), r"^class_index must be"),
    (lambda y: remove_small_components(y, 1, 0), r"^min_size must be an integer >= 1"),
    (lambda y: fill_holes(y, 1, max_hole_size=0), r"^max_hole_size must be an integer >= 1"),
])
def test_the_functions_name_their_own_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((8, 8), np.int64))


@pytest.mark.parametrize("first", ["sksegment._postprocess_selection", "sksegment.postprocessing"])
def test_either_postprocessing_module_imports_first(first):
    # a fresh interpreter: the test session has imported both already
    code = (f"import {first}; from sksegment.postprocessing import select_postprocessing; "
            "import sksegment._postprocess_selection as m; "
            "assert select_postprocessing is m.select_postprocessing")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
