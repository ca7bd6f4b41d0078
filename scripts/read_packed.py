#!/usr/bin/env python3
"""Rebuild the full state dict of a vimvq packed checkpoint with Debian's python3-torch.

  scripts/py scripts/read_packed.py model.vqpk [--state-dict out.pth] [--torchscript out.pt]

--state-dict writes {'model': state_dict} (the official checkpoint layout, so scripts/export.py can
re-export it); --torchscript writes the architecture with the dequantized weights.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vimlib.native import load_ops  # noqa: E402
from vimlib.packed import PackedFormatError, read_packed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packed")
    ap.add_argument("--state-dict")
    ap.add_argument("--torchscript")
    args = ap.parse_args()
    load_ops(required=False)  # models exported with the native scan need the operator library
    try:
        state, provenance, arch = read_packed(args.packed)
    except (OSError, PackedFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(provenance, indent=2))
    print(f"{len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")
    if args.state_dict:
        torch.save({"model": state}, args.state_dict)
    if args.torchscript:
        for name, value in state.items():
            owner = arch
            *path, leaf = name.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, leaf, value)
        torch.jit.save(arch, args.torchscript)
    return 0


if __name__ == "__main__":
    sys.exit(main())
