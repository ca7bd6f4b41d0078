#!/usr/bin/env python3
"""Sweep bit widths x methods x ablations on one model; CSV + Markdown table; CI accuracy gate.

  scripts/py scripts/sweep.py tests/data/vim_fmnist.pt data/fashion-mnist/calib data/fashion-mnist/test \\
      --bits 1 2 3 --methods rtn kmeans vq4dit vimvq --ablations --out build/sweep --max-drop 2.5 \\
      --config-prefix configs/vim_fmnist -- --threads 2      (after --: passed to every vimvq quantize)

Each run is `vimvq quantize ... --eval-data EVAL --report` (its JSON report is kept in --out). The
table has top-1, its drop from full precision, agreement and mean KL against it, effective bits per weight, file size and wall time.
With --max-drop X the script exits 1 when any `vimvq` run (ablations excluded) loses more than X
top-1 points, so a CI sweep fails on an accuracy regression.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runs(args):
    for bits in args.bits:
        for method in args.methods:
            yield f"{method}_w{bits}", bits, method, []
        if args.ablations:
            yield f"vimvq-no-hull_w{bits}", bits, "vimvq", ["--no-hull-update"]
            yield f"vimvq-no-incremental_w{bits}", bits, "vimvq", ["--no-incremental"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("eval_data")
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--methods", nargs="+", default=["rtn", "kmeans", "vq4dit", "vimvq"])
    ap.add_argument("--ablations", action="store_true", help="add vimvq --no-hull-update and --no-incremental")
    ap.add_argument("--out", default="build/sweep")
    ap.add_argument("--max-drop", type=float, help="fail when a vimvq run loses more top-1 points than this")
    ap.add_argument("--config-prefix", help="e.g. configs/vim_fmnist: uses <prefix>_w<bits>.json where present")
    ap.add_argument("--vimvq", default=os.path.join(REPO, "build", "vimvq"))
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    extra = argv[split + 1:]  # after --: passed to every vimvq quantize
    os.makedirs(args.out, exist_ok=True)
    rows, failed = [], []
    for name, bits, method, flags in runs(args):
        report = os.path.join(args.out, f"{name}.json")
        cmd = [args.vimvq, "quantize", args.model, args.calib, "-o", os.path.join(args.out, f"{name}.vqpk"),
               "--bits", str(bits), "--method", method, "--eval-data", args.eval_data, "--report", report] + flags
        config = f"{args.config_prefix}_w{bits}.json" if args.config_prefix else None
        if config and os.path.exists(config):
            cmd += ["--config", config]  # --bits/--method on the command line still win
        cmd += extra
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(f"{name}: vimvq quantize failed")
            continue
        with open(report) as f:
            r = json.load(f)
        acc = r["accuracy"]
        drop = acc["full_precision"]["top1"] - acc["quantized"]["top1"]
        rows.append({"run": name, "method": method, "bits": bits, "flags": " ".join(flags),
                     "fp_top1": round(acc["full_precision"]["top1"], 2), "top1": round(acc["quantized"]["top1"], 2),
                     "drop": round(drop, 2), "agreement": round(acc["top1_agreement"], 2),
                     "mean_kl": acc["mean_kl"],
                     "effective_bpw": round(r["size"]["effective_bpw"], 3),
                     "file_bytes": r["size"]["packed_bytes"], "seconds": round(r["timing"]["calibration_seconds"], 1)})
        if args.max_drop is not None and method == "vimvq" and not flags and drop > args.max_drop:
            failed.append(f"{name}: top-1 drop {drop:.2f} > --max-drop {args.max_drop}")
    if rows:
        with open(os.path.join(args.out, "sweep.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        lines = ["| run | bits | top-1 | drop | agreement | mean KL | eff. bpw | file bytes | calib. s |",
                 "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['bits']} | {r['top1']:.2f} | {r['drop']:.2f} | {r['agreement']:.2f} | "
                  f"{r['mean_kl']:.4g} | {r['effective_bpw']:.3f} | {r['file_bytes']} | {r['seconds']} |" for r in rows]
        table = "\n".join(lines) + f"\n\nfull precision top-1: {rows[0]['fp_top1']:.2f}\n"
        with open(os.path.join(args.out, "sweep.md"), "w") as f:
            f.write(table)
        print(table)
    for f in failed:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
