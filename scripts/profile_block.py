#!/usr/bin/env python3
"""Benchmark helper (not a test): where a plain forward+backward of one block spends its time, by
operator (torch.profiler), on a vimvq TorchScript model.

  scripts/py scripts/profile_block.py MODEL.pt [--block 0] [--batch 32] [--steps 5] [--threads 2]

The block's quantizable weights are the only leaves that need a gradient, as in a calibration
step; the input is the embedding of random images at the model's resolution. Three untimed steps
first. Prints torch.profiler's table sorted by self CPU time. Run it with the machine otherwise idle.
"""
import argparse
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib.common import set_threads  # noqa: E402
from vimlib.native import load_ops  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--block", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", type=int, default=25, help="operators listed")
    args = ap.parse_args()
    set_threads(args.threads)
    load_ops()
    model = torch.jit.load(args.model)
    meta = json.loads(model.metadata())
    block = getattr(model.layers, str(args.block))
    for p in model.parameters():
        p.requires_grad_(False)
    names = set(block.quantizable_layers())
    for name, p in block.named_parameters():
        p.requires_grad_(name in names)
    shape = (args.batch, meta["input"]["channels"], meta["input"]["crop"], meta["input"]["crop"])
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden, residual = model.forward_embed(images)

    def step():
        out, _ = block(hidden, residual)
        out.square().mean().backward()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
    print(f"{args.model}: block {args.block}, batch {args.batch}, {args.threads} threads: "
          f"{total / args.steps:.1f} ms of operator self time per forward+backward ({args.steps} steps)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
