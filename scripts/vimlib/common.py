"""Small helpers shared by the scripts."""
import os

import torch


def set_threads(threads: int = 0) -> int:
    """LibTorch/PyTorch here default to one thread; use all cores unless told otherwise."""
    n = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def atomic_torch_save(obj, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)
