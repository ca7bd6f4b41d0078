"""Small helpers shared by the scripts."""
import ctypes
import os

import torch


def set_threads(threads: int = 0) -> int:
    """LibTorch/PyTorch here default to one thread; use all cores unless told otherwise.

    Like the vimvq binary (src/cli/runtime.cpp), it sets a pthreads OpenBLAS pool to one thread:
    its spinning threads and torch's OpenMP workers otherwise compete for the same cores.
    """
    n = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    keep_openblas_pool_off_torch_threads()
    return n


def keep_openblas_pool_off_torch_threads() -> None:
    openblas_pthreads = 1  # openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return  # torch uses another BLAS
    if lib.openblas_get_parallel() == openblas_pthreads:
        lib.openblas_set_num_threads(1)


def atomic_torch_save(obj, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)
