"""The ``sksegment`` command line, run as a process (``python -m sksegment``)
for the checks that need one, and in-process (``main(argv)``) for the rest.

One model is fitted once per module (8 images of 32x32, depth 2, width 4, one
epoch) and shared by the prediction, evaluation and info checks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from skimage import io

import sksegment
from sksegment import CNNSegmenter
from sksegment._cli import main
from sksegment._cli._commands import parse_value
from sksegment.datasets import make_shapes, save_masks
from sksegment.metrics import mean_iou

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=600):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", "sksegment", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


def _write_folder(root, X, y, names):
    (root / "images").mkdir(parents=True)
    for x, name in zip(X, names):
        io.imsave(root / "images" / f"{name}.png", x, check_contrast=False)
    save_masks(root / "masks", y, names=names)
    return root / "images", root / "masks"


def _unwritable(folder):
    try:
        with open(os.path.join(folder, ".probe"), "w"):
            pass
    except OSError:
        return os.path.isdir(folder)
    os.remove(os.path.join(folder, ".probe"))
    return False


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    X, y = make_shapes(n_samples=11, image_size=32, random_state=0)
    names = [f"im{i:02d}" for i in range(11)]
    train = _write_folder(root / "train", X[:8], y[:8], names[:8])
    test = _write_folder(root / "test", X[8:], y[8:], names[8:])
    return {"root": root, "train": train, "test": test, "X_test": X[8:], "y_test": y[8:],
            "test_names": names[8:]}


@pytest.fixture(scope="module")
def fitted(data):
    model = data["root"] / "model.joblib"
    out = run_cli("fit", *data["train"], "-o", model, "--set", "depth=2", "--set", "width=4",
                  "--set", "max_epochs=1", "--set", "random_state=0",
                  "--set", "loss=0.5*dice+0.5*cross_entropy", "--set", "patch_size=None",
                  "--val-images", data["test"][0], "--val-masks", data["test"][1])
    assert out.returncode == 0, out.stderr
    return model, out


# --------------------------------------------------------------------------- #
# fit, predict, evaluate, info
# --------------------------------------------------------------------------- #
def test_fit_saves_the_segmenter_and_reports(fitted):
    model, out = fitted
    seg = joblib.load(model)
    assert isinstance(seg, CNNSegmenter)
    assert (seg.depth, seg.width, seg.max_epochs) == (2, 4, 1)
    assert seg.loss == "0.5*dice+0.5*cross_entropy" and seg.patch_size is None
    assert seg.verbose == 0  # progress was shown, but the saved model is quiet
    assert seg.classes_.tolist() == [0, 1, 2] and len(seg.history_) == 1
    # the summary on standard output; progress (epoch lines) on standard error
    assert "1 epoch(s) in" in out.stdout and "validation mean_iou" in out.stdout
    assert "epoch 1: train loss" in out.stderr and "train loss" not in out.stdout
    assert "training data: 8 image(s), 32x32" in out.stderr


def test_predict_writes_one_lossless_mask_per_image(fitted, data, tmp_path):
    from PIL import Image
    tifffile = pytest.importorskip("tifffile")

    model, _ = fitted
    outdir = tmp_path / "pred"
    out = run_cli("predict", model, data["test"][0], "-o", outdir, "--proba", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # --quiet
    assert "wrote 3 label image(s)" in out.stdout and "8-bit indexed PNG" in out.stdout
    assert sorted(p.name for p in outdir.glob("*.png")) == [f"{n}.png" for n in
                                                            data["test_names"]]
    seg = joblib.load(model)
    expected = seg.predict(data["X_test"])
    proba = seg.predict_proba(data["X_test"])
    for i, name in enumerate(data["test_names"]):
        with Image.open(outdir / f"{name}.png") as im:
            assert im.mode == "P"  # values are labels, the palette colours them
            np.testing.assert_array_equal(np.asarray(im), expected[i])
            palette = np.array(im.getpalette()).reshape(-1, 3)[:3]
        assert len({tuple(c) for c in palette}) == 3
        with tifffile.TiffFile(outdir / "proba" / f"{name}.tif") as tif:
            pages = tif.asarray()
            assert tif.shaped_metadata[0]["classes"] == [0, 1, 2]
        assert pages.shape == (3, 32, 32) and pages.dtype == np.float32
        np.testing.assert_allclose(pages, np.moveaxis(proba[i], -1, 0), atol=1e-6)

    # no silent overwrite; --overwrite, --tta and grayscale masks in-process
    assert main(["predict", str(model), str(data["test"][0]), "-o", str(outdir), "-q"]) == 1
    assert main(["predict", str(model), str(data["test"][0]), "-o", str(outdir), "-q",
                 "--overwrite", "--tta", "--no-palette"]) == 0
    with Image.open(outdir / f"{data['test_names'][0]}.png") as im:
        assert im.mode == "L"
    tiff_dir = tmp_path / "tiff"
    assert main(["predict", str(model), str(data["test"][0]), "-o", str(tiff_dir), "-q",
                 "--format", "tiff"]) == 0
    assert len(list(tiff_dir.glob("*.tif"))) == 3
    # the model's tta="auto" averages 8 views; --no-tta predicts once
    assert seg.tta == "auto" and seg.tta_ is True
    once_dir = tmp_path / "once"
    assert main(["predict", str(model), str(data["test"][0]), "-o", str(once_dir), "-q",
                 "--no-tta", "--no-palette"]) == 0
    once = seg.set_params(tta=False).predict(data["X_test"])
    for i, name in enumerate(data["test_names"]):
        with Image.open(once_dir / f"{name}.png") as im:
            np.testing.assert_array_equal(np.asarray(im), once[i])


def test_predict_proba_labels_are_post_processed_like_predict(data, tmp_path):
    from PIL import Image

    X, y = make_shapes(n_samples=8, image_size=32, random_state=1)
    seg = CNNSegmenter(depth=2, width=4, max_epochs=1, patch_size=None, tta=False,
                       postprocess={"remove_small": 40, "fill_holes": True},
                       random_state=0).fit(X, y)
    expected = seg.predict(data["X_test"])
    raw = seg.classes_[seg.predict_proba(data["X_test"]).argmax(-1)]
    assert (raw != expected).any()  # the post-processing changes these labels
    model = tmp_path / "post.joblib"
    joblib.dump(seg, model)
    for flags in ([], ["--proba"]):
        outdir = tmp_path / ("pred" + "".join(flags))
        assert main(["predict", str(model), str(data["test"][0]), "-o", str(outdir), "-q",
                     *flags]) == 0
        for i, name in enumerate(data["test_names"]):
            with Image.open(outdir / f"{name}.png") as im:
                np.testing.assert_array_equal(np.asarray(im), expected[i])


def test_evaluate_json_matches_the_metrics(fitted, data, capsys):
    model, _ = fitted
    out = run_cli("evaluate", model, *data["test"], "--json", "--metric", "mean_iou",
                  "--metric", "dice_score", "--metric", "boundary_f1", "-q")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["metrics"] == ["mean_iou", "dice", "boundary_f1"]
    assert [r["name"] for r in report["per_image"]] == data["test_names"]
    seg = joblib.load(model)
    pred = seg.predict(data["X_test"])
    y = data["y_test"]
    assert report["overall"]["mean_iou"] == pytest.approx(
        mean_iou(y, pred, labels=[0, 1, 2]), abs=1e-12)
    assert report["per_image"][1]["mean_iou"] == pytest.approx(
        mean_iou(y[1], pred[1], labels=[0, 1, 2]), abs=1e-12)
    assert all(0 <= r["boundary_f1"] <= 1 for r in report["per_image"])

    # the table, in-process
    assert main(["evaluate", str(model), *map(str, data["test"]), "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["image", "mean_iou", "dice", "pixel_accuracy"]
    assert [line.split()[0] for line in lines[1:4]] == data["test_names"]
    assert lines[-1].split()[0] == "overall"
    assert float(lines[-1].split()[1]) == pytest.approx(report["overall"]["mean_iou"],
                                                        abs=5e-5)


def test_info_shows_classes_parameters_and_versions(fitted, tmp_path, capsys):
    model, _ = fitted
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    assert "3: [0, 1, 2] (uint8)" in text
    assert "1 channel(s), dtype uint8" in text
    assert f"saved with  sksegment {sksegment.__version__}, torch {torch.__version__}" in text
    assert "choices     whole images, batch" in text.replace("patch whole", "whole")
    params = text.split("parameters (* differs from the default):")[1].splitlines()
    assert any(line.startswith("  * depth ") and line.endswith("2   (default 'auto')")
               for line in params)
    assert any(line.startswith("    optimizer ") for line in params)  # default: unmarked
    assert "1 epoch(s)" in text and "best mean_iou" in text

    seg = joblib.load(model)
    joblib.dump(seg, tmp_path / "v.joblib")  # a pickle records the versions it is written with
    assert main(["info", str(tmp_path / "v.joblib"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["saved_versions"]["torch"] == torch.__version__
    assert info["choices"]["depth"] == 2 and info["choices"]["normalize"] == "zscore"
    assert info["choices"]["precision"] == seg.precision_ in ("fp32", "bf16")
    # one epoch: the flips alone; grayscale: all 8 views at predict
    assert info["choices"]["augment"] == ["RandomFlip", "RandomRotate90"]
    assert info["choices"]["tta"] is True
    assert info["parameters"]["width"]["changed"] is True
    assert info["parameters"]["tta"]["changed"] is False
    assert info["training"]["epochs"] == 1 and info["classes"] == [0, 1, 2]


# --------------------------------------------------------------------------- #
# errors: one line naming the file or option; exit status 1 or 2
# --------------------------------------------------------------------------- #
def test_errors_in_a_process_have_exit_status_and_one_line(data, tmp_path):
    out = run_cli("fit", *data["train"], "-o", tmp_path / "m.joblib", "--epochs", "3")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "sksegment: error: unrecognized arguments: --epochs 3 (see 'sksegment --help')"]
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in data["test"][0].iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    good = (bad / "im08.png").read_bytes()
    (bad / "im08.png").write_bytes(good[: len(good) // 2])
    out = run_cli("fit", bad, data["test"][1], "-o", tmp_path / "m.joblib")
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("sksegment fit: error: cannot read image file")
    assert str(bad / "im08.png") in line and "Traceback" not in out.stderr


def test_usage_errors_exit_2(data, tmp_path, capsys):
    images, masks = map(str, data["train"])
    model = str(tmp_path / "m.joblib")
    assert main(["fit", images, masks, "-o", model, "--set", "dept=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'dept'" in err and "depth, device" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["fit", images, masks, "-o", model, "--set", "depth=0"]) == 2
    assert "'depth' parameter" in capsys.readouterr().err
    assert main(["fit", images, masks, "-o", model, "--set", "depth"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    # values fit would refuse only later (the loss spelling, its loss_params,
    # augment, device): usage errors too, before any data are read
    for value, needle in [("loss=dcie", "did you mean 'dice'"), ("augment=foo", "augment"),
                          ("device=foo", "device='foo'"),
                          ("loss_params={'gamma': 2}", "loss_params")]:
        assert main(["fit", images, masks, "-o", model, "--set", value]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("sksegment fit: error: --set:") and needle in line
    assert main(["fit", images, masks, "-o", model, "--val-images", images]) == 2
    assert main(["fit", images, masks]) == 2  # -o is required
    assert "-o/--output" in capsys.readouterr().err
    assert main(["evaluate", model, images, masks, "--metric", "f1"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'f1'" in err and "boundary_f1" in err
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert not Path(model).exists()


def test_failures_exit_1_and_name_the_file(fitted, data, tmp_path, capsys):
    model, _ = fitted
    images, masks = map(str, data["train"])
    absent = str(tmp_path / "absent")
    assert main(["fit", absent, masks, "-o", str(tmp_path / "m.joblib")]) == 1
    assert f"IMAGES folder not found: '{absent}'" in capsys.readouterr().err
    assert main(["predict", str(model), absent, "-o", str(tmp_path / "o")]) == 1
    assert absent in capsys.readouterr().err
    # an existing model file is not replaced without --overwrite
    assert main(["fit", images, masks, "-o", str(model)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    # model files that are not a segmenter
    (tmp_path / "junk.joblib").write_bytes(os.urandom(64))
    joblib.dump({"weights": [1, 2]}, tmp_path / "dict.joblib")
    joblib.dump(CNNSegmenter(), tmp_path / "unfitted.joblib")
    for name, message in [("junk.joblib", "cannot load model file"),
                          ("dict.joblib", "holds a dict, not a CNNSegmenter"),
                          ("unfitted.joblib", "not fitted"),
                          ("none.joblib", "model file not found")]:
        assert main(["info", str(tmp_path / name)]) == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        assert message in line and name in line
    # no input is replaced: not in the IMAGES folder, nor a file of a mask's name
    assert main(["predict", str(model), images, "-o", images, "--overwrite", "-q"]) == 1
    assert "is the IMAGES folder" in capsys.readouterr().err
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "im08.jpg").write_bytes(b"a photo")
    for flags in ([], ["--overwrite"]):
        assert main(["predict", str(model), str(data["test"][0]), "-o", str(kept), "-q",
                     *flags]) == 1
        assert "'im08.png' to write" in capsys.readouterr().err
    assert sorted(p.name for p in kept.iterdir()) == ["im08.jpg"]
    assert (kept / "im08.jpg").read_bytes() == b"a photo"
    # --overwrite replaces what predict wrote, never the user's own files
    truth = str(data["test"][1])
    before = {p.name: p.read_bytes() for p in Path(truth).iterdir()}
    assert main(["predict", str(model), str(data["test"][0]), "-o", truth, "--overwrite",
                 "-q"]) == 1
    assert "was not written by sksegment predict" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in Path(truth).iterdir()} == before
    mine = tmp_path / "mine"
    for flags in ([], ["--overwrite"]):
        assert main(["predict", str(model), str(data["test"][0]), "-o", str(mine), "-q",
                     *flags]) == 0
    capsys.readouterr()
    # a model that cannot predict the images leaves no folder behind
    rgb = tmp_path / "rgb_images"
    rgb.mkdir()
    io.imsave(rgb / "a.png", np.zeros((16, 16, 3), np.uint8), check_contrast=False)
    assert main(["predict", str(model), str(rgb), "-o", str(tmp_path / "none"), "-q"]) == 1
    assert "channel" in capsys.readouterr().err and not (tmp_path / "none").exists()
    # ... nor when a later image fails (chunks of batch_size_ are written as
    # they are predicted): the files this run added are taken back
    chunk = joblib.load(model).batch_size_
    mixed = tmp_path / "mixed_images"
    mixed.mkdir()
    for i in range(chunk + 1):
        io.imsave(mixed / f"a{i:03d}.png", np.full((16, 16), 9 * i, np.uint8),
                  check_contrast=False)
    io.imsave(mixed / "z.png", np.zeros((16, 16, 3), np.uint8), check_contrast=False)
    assert main(["predict", str(model), str(mixed), "-o", str(tmp_path / "none"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "image 'z' in" in err and "has 3 channel(s) but the model was fitted on 1" in err
    assert not (tmp_path / "none").exists()
    mixed_masks = tmp_path / "mixed_masks"
    save_masks(mixed_masks, np.zeros((chunk + 2, 16, 16), np.uint8),
               names=[p.stem for p in sorted(mixed.iterdir())])
    assert main(["fit", str(mixed), str(mixed_masks), "-o", str(tmp_path / "m.joblib"),
                 "-q"]) == 1
    assert "'a000' has 1, 'z' has 3" in capsys.readouterr().err
    kept = {p.name: p.read_bytes() for p in mine.iterdir()}
    assert main(["predict", str(model), str(mixed), "-o", str(mine), "-q"]) == 1
    capsys.readouterr()
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == kept
    # a model file that cannot be written is named before training
    if _unwritable("/proc"):  # even for root
        assert main(["fit", str(data["train"][0]), str(data["train"][1]),
                     "-o", "/proc/m.joblib", "-q"]) == 1
        assert "cannot write the model file '/proc/m.joblib'" in capsys.readouterr().err
    # a mask of another size, named
    other = tmp_path / "other"
    save_masks(other, np.zeros((3, 16, 16), np.uint8), names=data["test_names"])
    assert main(["evaluate", str(model), str(data["test"][0]), str(other), "-q"]) == 1
    assert "'im08.png'" in capsys.readouterr().err


def test_colour_masks_through_colour_options(fitted, data, tmp_path, capsys):
    model, _ = fitted
    colours = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 0, 255)}
    rgb_dir = tmp_path / "rgb"
    rgb_dir.mkdir()
    for mask, name in zip(data["y_test"], data["test_names"]):
        rgb = np.zeros(mask.shape + (3,), np.uint8)
        for label, colour in colours.items():
            rgb[mask == label] = colour
        io.imsave(rgb_dir / f"{name}.png", rgb, check_contrast=False)
    options = [f"--colour={r},{g},{b}={label}" for label, (r, g, b) in colours.items()]
    args = ["evaluate", str(model), str(data["test"][0]), str(rgb_dir), "-q", "--json"]
    assert main(args + options) == 0
    with_colours = json.loads(capsys.readouterr().out)["overall"]
    assert main(["evaluate", str(model), *map(str, data["test"]), "-q", "--json"]) == 0
    assert with_colours == json.loads(capsys.readouterr().out)["overall"]
    assert main(args + options[:2]) == 1  # blue is not in the palette
    err = capsys.readouterr().err
    assert "colour (0, 0, 255)" in err and "rgb" in err
    assert main(args + ["--colour", "255,0=1"]) == 2
    assert "R,G,B=LABEL" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none.joblib"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_help_and_version(capsys):
    for command in ("fit", "predict", "evaluate", "info"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert f"usage: sksegment {command}" in text and "example:" in text
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sksegment 0.1.0 (torch ")


@pytest.mark.parametrize("text, value", [
    ("128", 128), ("1e-3", 1e-3), ("(128, 96)", (128, 96)), ("128,96", (128, 96)),
    ("None", None), ("none", None), ("true", True), ("False", False),
    ("{0: 1, 255: 3}", {0: 1, 255: 3}), ("dice", "dice"),
    ("0.5*dice+0.5*cross_entropy", "0.5*dice+0.5*cross_entropy"), ("cuda:0", "cuda:0"),
    ("'quoted'", "quoted"),
])
def test_set_values_are_literals_or_strings(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


# --------------------------------------------------------------------------- #
# the example script, end to end
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_cli_example_runs_end_to_end(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "cli_membrane.py"),
                          "--synthetic", "--epochs", "1", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=900, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "$ sksegment fit" in out.stdout and "$ sksegment evaluate" in out.stdout
    assert "overall" in out.stdout
    assert (tmp_path / "model.joblib").exists()
    assert len(list((tmp_path / "predictions").glob("*.png"))) > 0
