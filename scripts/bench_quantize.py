#!/usr/bin/env python3
"""Benchmark (not a test): where a real-scale calibration's time goes, and what the whole model costs.

  scripts/py scripts/bench_quantize.py [--models vim_tiny vim_small vim_base] [--blocks 1] [--iters 60]

For each model: a random-initialised export at the official shapes (224 px, 24 blocks), 256
calibration JPEGs made from the test photographs, then `vimvq quantize --bits 2 --profile` on the
first --blocks blocks at --iters steps (batch 32, the configs' other defaults). vimvq times every
phase and, in the same run, a plain forward+backward of the same block with fixed full-precision
weights (`step / plain`: the physical floor is 1.0). Prints the phase table, then one row per model
with steps/s, warm-up, peak resident memory and the projection for the whole model at the default
budget (400 steps per block, every block):

  projection = load + embedding + agreement check + blocks x (targets + importances + codebooks
               + initial loss + finish + confirmations + hull updates scaled to 400 steps + 400 x step)

(a calibrated block's finish pass is also the quantized chain's advance into the next block.
Binaries before that change advanced the chain in a pass of its own, which this leaves out.)

Exports, images and reports stay in --work (default build/bench_quantize) and are reused; an export
is made again when the export code (scripts/export.py, scripts/vimlib) has changed since.
Run it with the machine otherwise idle: the figures are wall times.

Before/after: `--vimvq OLD NEW --rounds 2` runs each binary in turn (OLD, NEW, OLD, NEW for each
model), so that both see the same machine, and prints each binary's mean step and its ratio to
the first binary's. An entry may carry options for that binary alone, to compare settings:
`--vimvq build/vimvq "build/vimvq --set warmup_images=64"`. This machine's speed drifts by 10 to
15 % over an hour; runs minutes apart in alternation compare better than a figure from another
session.
"""
import argparse
import functools
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib.photos import make_jpegs  # noqa: E402

DEFAULT_ITERATIONS = 400


def hull_events(iterations: int, params: dict) -> int:
    """Hull updates (and confirm-above checks) in a block of `iterations` steps: every
    hull_update_every steps before the codebook-only fine-tune (calib::plan_step)."""
    main = iterations - round(iterations * params["finetune_fraction"])
    return main // params["hull_update_every"]


@functools.lru_cache(maxsize=None)
def export_code_digest() -> str:
    """A digest of the code that writes the exports: a cached export from other code (another mixer
    layout) would be timed as if it were this version's."""
    h = hashlib.sha256()
    lib = os.path.join(REPO, "scripts", "vimlib")
    for path in [os.path.join(REPO, "scripts", "export.py")] + sorted(
            os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".py")):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def prepare(work: str, model: str, images: int) -> tuple:
    path = os.path.join(work, f"{model}.pt")
    stamp = path + ".export-code"
    digest = export_code_digest()
    current = False
    if os.path.exists(path) and os.path.exists(stamp):
        with open(stamp) as f:
            current = f.read() == digest
    if not current:
        if os.path.exists(path):
            print(f"{path}: exported by other code; exporting it again (same seed, same weights)", file=sys.stderr)
        subprocess.run([os.path.join(REPO, "scripts", "py"), os.path.join(REPO, "scripts", "export.py"), "--config",
                        model, "--seed", "0", "-o", path], check=True, stdout=subprocess.DEVNULL)
        with open(stamp, "w") as f:
            f.write(digest)
    calib = os.path.join(work, f"calib{images}")
    if not os.path.isdir(calib):
        make_jpegs(calib, images, seed=0)
    return path, calib


def run(args, model: str, entry: str, tag: str) -> dict:
    path, calib = prepare(args.work, model, args.images)
    binary, *extra = shlex.split(entry)  # extra: options of this entry, after the multi-value --include
    report = os.path.join(args.work, f"{model}{tag}.report.json")
    include = [f"layers.{b}.*" for b in range(args.blocks)]
    cmd = [binary, "quantize", "--bits", "2", "--iters", str(args.iters),
           "--batch-size", "32", "--calib-size", str(args.images), "--threads", str(args.threads), "--profile",
           "--report", report, "-o", os.path.join(args.work, f"{model}{tag}.vqpk"), path, calib,
           "--include", *include, *extra]
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    with open(report) as f:
        r = json.load(f)
    r["bench_wall_seconds"] = wall
    return r


def summarise(model: str, r: dict, iters: int) -> dict:
    prof = r["profile"]
    blocks = [b for b in prof["blocks"] if b["steps"] > 0]
    n = len(blocks)
    mean = lambda key: sum(b[key] for b in blocks) / n  # noqa: E731
    phase = lambda name: sum(b["seconds"].get(name, 0) for b in blocks) / n  # noqa: E731
    # "init" is the codebooks and the initial loss together, as binaries before the split report it.
    per_block_fixed = sum(phase(p) for p in ("targets", "importances", "init", "codebooks", "initial_loss", "finish",
                                             "confirm", "chain_advance"))
    params = r["params"]
    hull = phase("hull_update") / max(1, hull_events(iters, params)) * hull_events(DEFAULT_ITERATIONS, params)
    step = mean("step_seconds")
    # Everything outside the blocks' calibration: loading, decoding, embedding, writing, and the
    # agreement check against the original (once per run, as in a whole-model run).
    outside = r["timing"]["wall_seconds"] - r["timing"]["calibration_seconds"] + prof["embed_seconds"]
    depth = 24
    projected = outside + depth * (per_block_fixed + hull + DEFAULT_ITERATIONS * step)
    return {"model": model, "blocks": n, "step_ms": 1e3 * step, "steps_per_s": 1 / step if step else 0,
            "plain_ms": 1e3 * mean("reference_step_seconds"), "ratio": mean("step_to_reference"),
            "warmup_s": mean("warmup_seconds"), "block_overhead_s": per_block_fixed + hull,
            "peak_mb": r["peak_memory_mb"], "projected_min": projected / 60, "wall_s": r["bench_wall_seconds"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["vim_tiny", "vim_small", "vim_base"])
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench_quantize"))
    ap.add_argument("--json", help="also write the summary rows here")
    ap.add_argument("--vimvq", nargs="+", default=[os.path.join(REPO, "build", "vimvq")],
                    help="binaries to compare, run in turn, each optionally with its own options "
                         "('build/vimvq --set key=value'; default: build/vimvq)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each binary per model, alternating")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for model in args.models:
        for rnd in range(args.rounds):
            for i, binary in enumerate(args.vimvq):
                tag = "" if len(args.vimvq) == 1 and args.rounds == 1 else f".bin{i}.round{rnd}"
                r = run(args, model, binary, tag)
                print(f"\n### {model}" + (f" ({binary}, round {rnd + 1})" if tag else "") + "\n")
                with open(os.path.join(args.work, f"{model}{tag}.report.md")) as f:
                    text = f.read()
                print(text[text.index("## Profile"):].strip())
                rows.append(dict(summarise(model, r, args.iters), binary=i, round=rnd))
    print(f"\n2 bits, batch 32, {args.images} JPEGs, {args.threads} threads, {args.iters} steps on {args.blocks} "
          f"block(s); projection at {DEFAULT_ITERATIONS} steps x 24 blocks\n")
    print("| model | step ms | steps/s | plain f+b ms | step/plain | warm-up s | other s/block | peak MB "
          "| projected whole model |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in rows:
        print(f"| {s['model']} | {s['step_ms']:.0f} | {s['steps_per_s']:.2f} | {s['plain_ms']:.0f} | {s['ratio']:.2f} "
              f"| {s['warmup_s']:.2f} | {s['block_overhead_s']:.1f} | {s['peak_mb']:.0f} "
              f"| {s['projected_min']:.0f} min |")
    if len(args.vimvq) > 1:
        print("\n| model | binary | mean step ms | mean plain ms | step / first binary's step |\n|---|---|---|---|---|")
        for model in args.models:
            mean = lambda i, key: sum(r[key] for r in rows if r["model"] == model and r["binary"] == i) / args.rounds  # noqa: E731
            for i, binary in enumerate(args.vimvq):
                print(f"| {model} | {binary} | {mean(i, 'step_ms'):.0f} | {mean(i, 'plain_ms'):.0f} "
                      f"| {mean(i, 'step_ms') / mean(0, 'step_ms'):.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
