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


def median_seconds(fn, repeats, warmup=1, sync=None):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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


def bench_torch(images, masks, device, repeats, threads=None):
    import torch

    from sksegment._data import to_tensor

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        chain = sksegment_chain()
        x = to_tensor(images, device)
        y = torch.from_numpy(masks).to(device)
        g = torch.Generator(device=device).manual_seed(0)
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        chain_s = median_seconds(lambda: chain(x, y, generator=g), repeats, sync=sync)

        def convert_and_augment():
            xb = to_tensor(images, device)
            yb = torch.from_numpy(masks).to(device)
            chain(xb, yb, generator=g)

        full_s = median_seconds(convert_and_augment, repeats, sync=sync)
    finally:
        torch.set_num_threads(previous)
    return chain_s, full_s


def bench_skimage(images, masks, repeats):
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

    return median_seconds(run, repeats)


def bench_albumentations(images, masks, repeats):
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

    return median_seconds(run, repeats), A.__version__


def build_model(channels):
    """sksegment's UNet when it imports, else a small local conv net."""
    import torch
    from torch import nn

    try:
        from sksegment.models import UNet

        return UNet(channels, 2, depth=4, width=16), "sksegment.models.UNet(depth=4, width=16)"
    except ImportError:
        net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 2, 3, padding=1))
        return net.to(torch.float32), "local 4-layer conv net (sksegment.models did not import)"


def bench_train_step(images, masks, device, repeats):
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
    xa, ya = chain(x, y, generator=g)
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xa), ya, ignore_index=IGNORE)
        loss.backward()
        optimizer.step()

    step_s = median_seconds(step, repeats, sync=sync)
    aug_s = median_seconds(lambda: chain(x, y, generator=g), repeats, sync=sync)
    return aug_s, step_s, model_name


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

    chain_s, full_s = bench_torch(images, masks, device, repeats)
    chain1_s, _ = bench_torch(images, masks, device, repeats, threads=1)
    skimage_s = bench_skimage(images, masks, repeats)
    albu_s, albu_version = bench_albumentations(images, masks, repeats)
    aug_s, step_s, model_name = bench_train_step(images, masks, device,
                                                 1 if args.quick else 3)

    def rate(seconds):
        return None if seconds is None else batch / seconds

    results = {
        "batch_size": batch, "size": size, "channels": args.channels, "device": str(device),
        "torch_chain_pairs_per_s": rate(chain_s),
        "torch_chain_1_thread_pairs_per_s": rate(chain1_s),
        "torch_convert_and_chain_pairs_per_s": rate(full_s),
        "skimage_pairs_per_s": rate(skimage_s),
        "albumentations_pairs_per_s": rate(albu_s),
        "albumentations_version": albu_version,
        "train_step_s": step_s, "augment_s": aug_s,
        "augment_share_of_step": aug_s / (aug_s + step_s), "model": model_name,
    }
    rows = [
        ["sksegment, batched torch chain", f"{rate(chain_s):.0f}"],
        ["sksegment, batched, 1 torch thread", f"{rate(chain1_s):.0f}"],
        ["sksegment, host uint8 -> tensor + chain", f"{rate(full_s):.0f}"],
        ["scikit-image, per sample", f"{rate(skimage_s):.0f}"],
        [f"albumentations {albu_version}, per sample" if albu_s else "albumentations",
         f"{rate(albu_s):.0f}" if albu_s else "not installed"],
    ]
    markdown = "\n".join([
        f"Machine: {machine_line(machine)}",
        "",
        (f"Chain: flip (h, v), rot90, affine (+-15 deg, scale 0.9-1.1, shift 10%), "
         f"brightness/contrast, each p=0.5; batches of {batch} pairs of "
         f"{size}x{size}x{args.channels} uint8 images with int64 masks, on {device}; "
         f"median of {repeats} batches."),
        "",
        table(["implementation", "pairs / s"], rows),
        "",
        table(["training step (forward, backward, Adam)", "augmentation", "share of step"],
              [[f"{step_s:.3f} s ({model_name})", f"{aug_s:.3f} s",
                f"{100 * aug_s / (aug_s + step_s):.1f} %"]]),
    ])
    finish(args, NAME, machine, results, markdown)


if __name__ == "__main__":
    main()
