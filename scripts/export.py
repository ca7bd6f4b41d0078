#!/usr/bin/env python3
"""Export a Vim to TorchScript under vimvq's model contract (docs/MODEL_CONTRACT.md).

  scripts/py scripts/export.py --config vim_tiny --checkpoint vim_t_midclstok_76p1acc.pth -o vim_t.pt
  scripts/py scripts/export.py --config vim_micro --seed 3 -o micro.pt          # seeded random init
  scripts/py scripts/export.py --config vim_tiny --scan torch -o portable.pt    # no native library needed
  scripts/py scripts/export.py --from-model old.pt -o new.pt    # an earlier export, with this version's code

Loading is strict: a missing or unexpected key, or a wrong shape, is an error naming the key.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vimlib.configs import CONFIGS, get_config  # noqa: E402
from vimlib.export import CheckpointError, make_model, remake_model, save_torchscript  # noqa: E402
from vimlib.native import load_ops  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), help="required unless --from-model")
    ap.add_argument("--from-model", metavar="MODEL.pt",
                    help="re-export a vimvq TorchScript model (its weights and metadata) with this version's code")
    ap.add_argument("--checkpoint", help="official .pth (weights under ['model']) or a bare state dict")
    ap.add_argument("--seed", type=int, default=0, help="random-init seed when no checkpoint is given")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--scan", choices=["native", "torch"], default="native",
                    help="native (default): the token-major operators of build/libvimvq_ops.so "
                         "(vimvq::bimamba_conv, vimvq::bimamba_scan); torch: the portable pure-PyTorch loop, "
                         "no library needed")
    ap.add_argument("--class-names", help="text file, one class name per line")
    for key in ("img_size", "patch_size", "stride", "in_chans", "num_classes", "embed_dim", "depth", "d_state",
                "resize", "crop"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, dest=key, help="override the config's " + key)
    args = ap.parse_args(argv)

    if args.from_model:
        return reexport(args)
    if not args.config:
        ap.error("--config is required (or --from-model)")
    overrides = {k: getattr(args, k) for k in ("img_size", "patch_size", "stride", "in_chans", "num_classes",
                                                 "embed_dim", "depth", "d_state", "resize", "crop")}
    cfg = get_config(args.config, overrides)
    class_names = None
    if args.class_names:
        with open(args.class_names) as f:
            class_names = [line.strip() for line in f if line.strip()]
        if len(class_names) != cfg["num_classes"]:
            print(f"{args.class_names}: {len(class_names)} names for {cfg['num_classes']} classes", file=sys.stderr)
            return 2
    if not ops_loaded(args):
        return 2
    try:
        model = make_model(cfg, checkpoint=args.checkpoint, seed=args.seed, use_native_scan=args.scan == "native",
                           class_names=class_names)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return write(model, args.output)


def ops_loaded(args) -> bool:
    """A native export (and reading one) needs the operator library."""
    if args.scan != "native" and not args.from_model:
        return True
    try:
        load_ops(required=True)
    except RuntimeError as e:
        print(f"error: {e}; or export with --scan torch", file=sys.stderr)
        return False
    return True


def reexport(args) -> int:
    if args.config or args.checkpoint:
        print("error: --from-model takes the config and weights from the model: no --config or --checkpoint",
              file=sys.stderr)
        return 2
    if not ops_loaded(args):
        return 2
    try:
        model = remake_model(args.from_model, use_native_scan=args.scan == "native")
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return write(model, args.output)


def write(model, output: str) -> int:
    save_torchscript(model, output)
    meta = json.loads(model.metadata_json)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {output}: {meta['config_name']}, {n_params:,} parameters, {meta['num_blocks']} blocks, "
          f"scan {meta['scan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
