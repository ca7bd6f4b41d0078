"""Reading Debian's Fashion-MNIST (dataset-fashion-mnist) idx files."""
import gzip
import os
import struct

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
# Folder names sort in label order ("0_tshirt_top" < "1_trouser" < ...), so ImageFolder indices
# equal the dataset labels.
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot"]
FOLDER_NAMES = ["0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal", "6_shirt",
                "7_sneaker", "8_bag", "9_ankle_boot"]


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: truncated ({arr.size} bytes for shape {dims})")
    return arr.reshape(dims)


def load_split(split: str, root: str = DEFAULT_DIR):
    """Returns (images uint8 (n, 28, 28), labels int64 (n,)) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    def find(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(root, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(f"{os.path.join(root, stem)}(.gz) not found: install dataset-fashion-mnist")
    images = _read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return images, labels
