"""Building, strictly loading and exporting Vim models to TorchScript under the model contract."""
import hashlib
import json
import os
from typing import Dict, Optional

import torch

from .configs import build_metadata, model_kwargs
from .model import Vim, init_weights


class CheckpointError(ValueError):
    pass


def build_model(cfg: dict, use_native_scan: bool = False, metadata: Optional[dict] = None) -> Vim:
    return Vim(**model_kwargs(cfg), use_native_scan=use_native_scan, metadata=metadata)


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """An official checkpoint keeps its weights under ['model']; a bare state dict is accepted too."""
    try:
        # Official checkpoints pickle an argparse.Namespace beside the weights: PyTorch >= 2.6
        # refuses that by default. Only load checkpoints you trust.
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: cannot read checkpoint: {e}") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict (expected a dict of tensors, or one under 'model')")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_strict(model: Vim, state: Dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:5])}"
                        f"{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shape(s): {'; '.join(wrong[:5])}")
    if problems:
        raise CheckpointError(f"{source}: does not match config '{model_config_name(model)}': " + " | ".join(problems))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def model_config_name(model: Vim) -> str:
    return json.loads(model.metadata_json).get("config_name", "?")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_model(cfg: dict, checkpoint: Optional[str] = None, seed: int = 0, use_native_scan: bool = False,
               class_names=None, extra: Optional[dict] = None) -> Vim:
    """A model with metadata, from a checkpoint (strictly) or from a seeded random init."""
    if checkpoint:
        source = {"kind": "checkpoint", "file": os.path.basename(checkpoint), "sha256": file_sha256(checkpoint)}
    else:
        source = {"kind": "random_init", "seed": seed}
    probe = build_model(cfg)
    meta = build_metadata(cfg, probe.token_position, class_names=class_names, source=source, extra=extra)
    meta["scan"] = "native" if use_native_scan else "torch"
    model = build_model(cfg, use_native_scan=use_native_scan, metadata=meta)
    if checkpoint:
        load_strict(model, read_state_dict(checkpoint), checkpoint)
    else:
        init_weights(model, seed)
    return model.eval()


def remake_model(path: str, use_native_scan: bool) -> Vim:
    """A vimvq TorchScript model rebuilt from its own weights and metadata with this export's code:
    how an earlier export moves to the current mixer layout or to the other scan."""
    try:
        old = torch.jit.load(path, map_location="cpu")
        meta = json.loads(old.metadata())
    except Exception as e:  # TorchScript and JSON errors come in many types
        raise CheckpointError(f"{path}: not a vimvq TorchScript model: {str(e).splitlines()[0]}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: its metadata has no 'config'")
    meta["scan"] = "native" if use_native_scan else "torch"
    model = Vim(**meta["config"], use_native_scan=use_native_scan, metadata=meta)
    load_strict(model, dict(old.state_dict()), path)
    return model.eval()


def save_torchscript(model: Vim, out_path: str) -> None:
    """torch.jit.script (never trace: tracing unrolls the scan loop), written atomically."""
    scripted = torch.jit.script(model.eval())
    tmp = f"{out_path}.tmp{os.getpid()}"
    try:
        torch.jit.save(scripted, tmp, _extra_files={"vimvq_metadata.json": model.metadata_json})
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
