#!/usr/bin/env python3
"""Turn Debian's Fashion-MNIST idx files into ImageNet-style ImageFolder trees of PNG files.

  scripts/py scripts/prepare_fashion_mnist.py --out data/fashion-mnist
    -> data/fashion-mnist/calib/<class>/train_NNNNN.png   (default 256, seeded, balanced over classes)
    -> data/fashion-mnist/test/<class>/test_NNNNN.png     (the full 10,000-image test split)
  --val-size N adds
    -> data/fashion-mnist/val/<class>/train_NNNNN.png     (N seeded training images, balanced, none of them a
                                                           calibration image: to check a finding off the test split)

Class folder names sort in label order, so ImageFolder indices equal the dataset labels and the
class names in the shipped model's metadata. Each tree is written to a temporary folder and renamed
into place; an existing complete tree is kept.
"""
import argparse
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vimlib import fashion_mnist  # noqa: E402


def balanced_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    per_class = [count // len(classes) + (1 if c < count % len(classes) else 0) for c in range(len(classes))]
    picked = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, per_class)]
    return np.sort(np.concatenate(picked))


def held_out_sample(labels: np.ndarray, count: int, excluded: np.ndarray, seed: int) -> np.ndarray:
    rest = np.setdiff1d(np.arange(len(labels)), excluded)
    return rest[balanced_sample(labels[rest], count, seed)]


def write_tree(root: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, prefix: str) -> None:
    if os.path.isdir(root) and sum(len(f) for _, _, f in os.walk(root)) == len(indices):
        print(f"{root}: already complete ({len(indices)} images)")
        return
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for name in fashion_mnist.FOLDER_NAMES:
        os.makedirs(os.path.join(tmp, name))
    for i in indices:
        folder = fashion_mnist.FOLDER_NAMES[labels[i]]
        Image.fromarray(images[i], mode="L").save(os.path.join(tmp, folder, f"{prefix}_{i:05d}.png"))
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    print(f"{root}: wrote {len(indices)} images")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=fashion_mnist.DEFAULT_DIR, help="folder of the idx files")
    ap.add_argument("--out", default="data/fashion-mnist")
    ap.add_argument("--calib-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-limit", type=int, default=0, help="write only the first N test images")
    ap.add_argument("--val-size", type=int, default=0,
                    help="also write N training images that are not calibration images to val/")
    args = ap.parse_args()
    try:
        train_x, train_y = fashion_mnist.load_split("train", args.data)
        test_x, test_y = fashion_mnist.load_split("test", args.data)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.calib_size <= len(train_y):
        print(f"error: --calib-size must be in 1..{len(train_y)}", file=sys.stderr)
        return 2
    if args.val_size < 0:
        print("error: --val-size must be 0 or more", file=sys.stderr)
        return 2
    calib = balanced_sample(train_y, args.calib_size, args.seed)
    val = held_out_sample(train_y, args.val_size, calib, args.seed + 1)
    if len(val) < args.val_size:
        print(f"error: after {args.calib_size} calibration images, too few training images are left for a balanced "
              f"--val-size {args.val_size}", file=sys.stderr)
        return 2
    write_tree(os.path.join(args.out, "calib"), train_x, train_y, calib, "train")
    if args.val_size:
        write_tree(os.path.join(args.out, "val"), train_x, train_y, val, "train")
    n_test = args.test_limit or len(test_y)
    write_tree(os.path.join(args.out, "test"), test_x, test_y, np.arange(n_test), "test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
