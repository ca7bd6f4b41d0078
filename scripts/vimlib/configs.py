"""Named Vim configurations and the metadata that the model contract carries."""
import copy
from typing import Dict, Optional

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

_OFFICIAL = {"img_size": 224, "patch_size": 16, "stride": 16, "in_chans": 3, "num_classes": 1000,
             "depth": 24, "d_state": 16, "resize": 256, "crop": 224, **IMAGENET}

CONFIGS: Dict[str, dict] = {
    "vim_tiny": {**_OFFICIAL, "embed_dim": 192},
    "vim_small": {**_OFFICIAL, "embed_dim": 384},
    "vim_base": {**_OFFICIAL, "embed_dim": 768},
    "vim_tiny_stride8": {**_OFFICIAL, "embed_dim": 192, "stride": 8},
    "vim_small_stride8": {**_OFFICIAL, "embed_dim": 384, "stride": 8},
    "vim_base_stride8": {**_OFFICIAL, "embed_dim": 768, "stride": 8},
    # The shipped Fashion-MNIST model: grayscale 28x28, patch 4 (49 patches + class token).
    "vim_fmnist": {"img_size": 28, "patch_size": 4, "stride": 4, "in_chans": 1, "num_classes": 10,
                   "depth": 8, "d_state": 16, "embed_dim": 96, "resize": 28, "crop": 28,
                   "mean": [0.2860], "std": [0.3530]},
    # Small test models: other sizes, channel counts and class counts; seconds to run.
    "vim_micro": {"img_size": 32, "patch_size": 8, "stride": 8, "in_chans": 3, "num_classes": 7,
                  "depth": 3, "d_state": 16, "embed_dim": 32, "resize": 36, "crop": 32, **IMAGENET},
    "vim_micro_gray": {"img_size": 28, "patch_size": 7, "stride": 7, "in_chans": 1, "num_classes": 10,
                       "depth": 2, "d_state": 8, "embed_dim": 24, "resize": 28, "crop": 28,
                       "mean": [0.5], "std": [0.5]},
}

MODEL_KEYS = ("img_size", "patch_size", "stride", "in_chans", "num_classes", "embed_dim", "depth",
              "d_state")


def get_config(name: str, overrides: Optional[dict] = None) -> dict:
    if name not in CONFIGS:
        raise KeyError(f"unknown config '{name}'; known: {', '.join(sorted(CONFIGS))}")
    cfg = copy.deepcopy(CONFIGS[name])
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg["name"] = name
    return cfg


def model_kwargs(cfg: dict) -> dict:
    return {k: cfg[k] for k in MODEL_KEYS}


def build_metadata(cfg: dict, token_position: int, class_names=None, source=None, extra=None) -> dict:
    from .model import CONTRACT_VERSION, QUANTIZABLE_LAYERS
    meta = {
        "contract_version": CONTRACT_VERSION,
        "architecture": "vim_bimamba_v2_midclstok",
        "config_name": cfg["name"],
        "config": model_kwargs(cfg),
        "input": {"channels": cfg["in_chans"], "image_size": cfg["img_size"], "resize": cfg["resize"],
                  "crop": cfg["crop"], "interpolation": "bicubic", "antialias": True,
                  "mean": cfg["mean"], "std": cfg["std"]},
        "num_classes": cfg["num_classes"],
        "class_names": class_names,
        "cls_token_position": token_position,
        "num_blocks": cfg["depth"],
        "quantizable_layers": QUANTIZABLE_LAYERS,
        "source": source or {},
    }
    meta.update(extra or {})
    return meta
