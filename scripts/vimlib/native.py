"""Finding and loading the native operator library (libvimvq_ops.so) built by CMake."""
import os
from typing import Optional

import torch

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_loaded: Optional[str] = None


def library_path() -> Optional[str]:
    candidates = [os.environ.get("VIMVQ_OPS_LIBRARY", ""), os.path.join(_REPO, "build", "libvimvq_ops.so")]
    return next((p for p in candidates if p and os.path.exists(p)), None)


def load_ops(required: bool = True) -> bool:
    """Loads torch.ops.vimvq; returns False (or raises, when required) if the library is missing."""
    global _loaded
    if _loaded:
        return True
    path = library_path()
    if path is None:
        if required:
            raise RuntimeError("libvimvq_ops.so not found: run scripts/setup.sh (or set VIMVQ_OPS_LIBRARY)")
        return False
    torch.ops.load_library(path)
    _loaded = path
    return True
