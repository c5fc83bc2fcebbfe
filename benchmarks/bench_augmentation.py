"""Throughput of the batched torch augmentation against per-sample libraries.

A typical chain (random flips, 90-degree turns, affine warp, brightness and
contrast; each with p=0.5) on batches of image + mask pairs:

- sksegment: one batched call of the chain on device tensors (also with one
  torch thread, for a per-core comparison with the single-threaded libraries);
- scikit-image: the same operations applied image by image
  (``skimage.transform.warp`` for the affine map, NumPy for the rest);
- albumentations, when installed: ``A.Compose`` applied image by image.

It also times a training step of a small U-Net on the augmented batch, to
give the share of a step that augmentation takes.

Run: ``python benchmarks/bench_augmentation.py [--quick] [--device cpu] [--json PATH]``.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # the benchmark folder's shared helpers
    finish,
    load_average,
    machine_info,
    machine_line,
    make_parser,
    resolve_device,
    table,
    wait_for_quiet,
)

NAME = "augmentation"


def make_data(n, size, channels, seed=0):
    """Smooth uint8 images and 0/1 masks (threshold of the first channel)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    shape = (n, size, size, channels)
    smooth = ndi.gaussian_filter(rng.random(shape, dtype=np.float32), (0, 4, 4, 0))
    smooth -= smooth.min()
    smooth /= smooth.max()
    images = (smooth * 255).astype(np.uint8)
    masks = (images[..., 0] > 127).astype(np.int64)
    return images, masks


def interleaved_times(methods, repeats, sync=None):
    """Seconds of each callable in ``methods`` (a dict) per round, timed in
    rounds that run every method once, so that changes in the load of a
    shared machine touch all of them alike. One untimed warm-up call each."""
    for fn in methods.values():
        fn()
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            if sync:
                sync()
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(methods, repeats, sync=None):
    """Median seconds of each callable, timed as :func:`interleaved_times`."""
    times = interleaved_times(methods, repeats, sync)
    return {name: float(np.median(t)) for name, t in times.items()}


def sksegment_chain():
    from sksegment.augmentation import (
        RandomAffine,
        RandomBrightnessContrast,
        RandomFlip,
        RandomRotate90,
        make_chain,
    )

    return make_chain([RandomFlip(p=0.5), RandomRotate90(p=0.5),
                       RandomAffine(degrees=15, scale=(0.9, 1.1), translate=(0.1, 0.1), p=0.5),
                       RandomBrightnessContrast(brightness=0.2, contrast=0.2, p=0.5)])


def torch_methods(images, masks, device):
    """Batched sksegment chain: on device tensors (default threads and one
    thread), and with the host uint8 -> device float conversion."""
    import torch

    from sksegment._data import to_tensor

    chain = sksegment_chain()
    x = to_tensor(images, device)
    y = torch.from_numpy(masks).to(device)
    g = torch.Generator(device=device).manual_seed(0)

    def chain_only():
        chain(x, y, generator=g)

    def convert_and_chain():
        xb = to_tensor(images, device)
        yb = torch.from_numpy(masks).to(device)
        chain(xb, yb, generator=g)

    return {"torch_chain": chain_only, "torch_convert_and_chain": convert_and_chain}


def one_thread_seconds(images, masks, repeats):
    """The chain on CPU with one torch thread (a per-core comparison with the
    single-threaded libraries). Timed apart: switching the thread count
    between calls would slow the multi-threaded calls next to it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        methods = torch_methods(images, masks, torch.device("cpu"))
        return interleaved_medians({"torch_chain_1_thread": methods["torch_chain"]}, repeats)
    finally:
        torch.set_num_threads(previous)


def skimage_method(images, masks):
    """The same chain image by image with scikit-image and NumPy."""
    from skimage.transform import AffineTransform, warp

    rng = np.random.default_rng(0)
    h, w = images.shape[1:3]
    centre = np.array([(w - 1) / 2, (h - 1) / 2])

    def one(image, mask):
        img = image.astype(np.float32) / 255
        if rng.random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        if rng.random() < 0.5:
            img, mask = img[::-1], mask[::-1]
        if rng.random() < 0.5:
            k = 2 if h != w else int(rng.integers(1, 4))
            img, mask = np.rot90(img, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            angle = np.deg2rad(rng.uniform(-15, 15))
            shift = rng.uniform(-0.1, 0.1, 2) * (w, h)
            tform = (AffineTransform(translation=-centre)
                     + AffineTransform(rotation=angle, scale=rng.uniform(0.9, 1.1))
                     + AffineTransform(translation=centre + shift))
            img = warp(img, tform.inverse, order=1, mode="constant", cval=0.0)
            mask = warp(mask, tform.inverse, order=0, mode="constant", cval=-100,
                        preserve_range=True).astype(np.int64)
        if rng.random() < 0.5:
            factor = rng.uniform(0.8, 1.2)
            mean = img.mean()
            img = (img - mean) * factor + mean + rng.uniform(-0.2, 0.2)
        return np.ascontiguousarray(img), np.ascontiguousarray(mask)

    def run():
        for image, mask in zip(images, masks):
            one(image, mask)

    return run


def albumentations_method(images, masks):
    """The same chain image by image with albumentations (None if absent)."""
    try:
        import albumentations as A
    except ImportError:
        return None, None
    transform = A.Compose([
        A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5),
        A.Affine(rotate=(-15, 15), scale=(0.9, 1.1), translate_percent=(-0.1, 0.1), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ], seed=0)
    masks8 = masks.astype(np.uint8)

    def run():
        for image, mask in zip(images, masks8):
            transform(image=image, mask=mask)

    return run, A.__version__


def build_model(channels):
    """The network of the training step: sksegment's UNet."""
    from sksegment.models import UNet

    return UNet(channels, 2, depth=4, width=16), "sksegment.models.UNet(depth=4, width=16)"


def bench_train_step(images, masks, device, repeats):
    """Median seconds of the chain and of a training step on its output,
    timed alternately, and the median share of the chain in their sum."""
    import torch
    import torch.nn.functional as F

    from sksegment._data import IGNORE, to_tensor

    model, model_name = build_model(images.shape[-1])
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    chain = sksegment_chain()
    g = torch.Generator(device=device).manual_seed(0)
    x = to_tensor(images, device)
    y = torch.from_numpy(masks).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    state = {}

    def augment():
        state["batch"] = chain(x, y, generator=g)

    def step():
        xa, ya = state["batch"]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xa), ya, ignore_index=IGNORE)
        loss.backward()
        optimizer.step()

    times = interleaved_times({"augment": augment, "step": step}, repeats, sync)
    aug, steps = times["augment"], times["step"]
    share = float(np.median([a / (a + s) for a, s in zip(aug, steps)]))
    return float(np.median(aug)), float(np.median(steps)), share, model_name


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per batch (32)")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (256)")
    parser.add_argument("--channels", type=int, default=3, help="image channels (3)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    batch = args.batch_size or (8 if args.quick else 32)
    size = args.size or (128 if args.quick else 256)
    repeats = 2 if args.quick else 5
    images, masks = make_data(batch, size, args.channels)
    if device.type == "cpu":
        wait_for_quiet(tries=0 if args.quick else 4)
    machine = machine_info(device)  # load average at the start

    methods = torch_methods(images, masks, device)
    methods["skimage"] = skimage_method(images, masks)
    albu, albu_version = albumentations_method(images, masks)
    if albu is not None:
        methods["albumentations"] = albu
    sync = None
    if device.type == "cuda":
        import torch

        sync = torch.cuda.synchronize
    seconds = interleaved_medians(methods, repeats, sync=sync)
    if device.type == "cpu":
        seconds.update(one_thread_seconds(images, masks, repeats))
    aug_s, step_s, share, model_name = bench_train_step(images, masks, device,
                                                        1 if args.quick else 3)

    end_load = load_average()

    def rate(name):
        return batch / seconds[name] if name in seconds else None

    results = {
        "batch_size": batch, "size": size, "channels": args.channels, "device": str(device),
        "seconds_per_batch": seconds,
        "pairs_per_s": {name: rate(name) for name in seconds},
        "albumentations_version": albu_version,
        "train_step_s": step_s, "augment_s": aug_s, "augment_share_of_step": share,
        "model": model_name, "load_average_at_end": end_load,
    }

    def cell(name):
        return f"{rate(name):.0f}" if name in seconds else "n/a"

    rows = [
        ["sksegment, batched torch chain", cell("torch_chain")],
        ["sksegment, batched, 1 torch thread", cell("torch_chain_1_thread")],
        ["sksegment, host uint8 -> tensor + chain", cell("torch_convert_and_chain")],
        ["scikit-image, per sample", cell("skimage")],
        [f"albumentations {albu_version}, per sample" if albu else "albumentations",
         cell("albumentations") if albu else "not installed"],
    ]
    markdown = "\n".join([
        f"Machine: {machine_line(machine)}",
        "",
        (f"Chain: flip (h, v), rot90, affine (+-15 deg, scale 0.9-1.1, shift 10%), "
         f"brightness/contrast, each p=0.5; batches of {batch} pairs of "
         f"{size}x{size}x{args.channels} uint8 images with int64 masks, on {device}; "
         f"median of {repeats} rounds, each timing every implementation once."),
        "",
        table(["implementation", "pairs / s"], rows),
        "",
        table(["training step (forward, backward, Adam)", "augmentation",
               "augmentation / (augmentation + step)"],
              [[f"{step_s:.3f} s ({model_name})", f"{aug_s:.3f} s", f"{100 * share:.1f} %"]]),
        "",
        f"Load average at the end: {' / '.join(f'{v:.2f}' for v in end_load or [])}",
    ])
    finish(args, NAME, machine, results, markdown)


if __name__ == "__main__":
    main()
