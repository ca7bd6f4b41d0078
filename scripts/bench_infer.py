#!/usr/bin/env python3
"""Inference of a packed model: the fp32 original, the dequantized dense model and the compressed
one (codes and codebooks through vimvq::vq_linear), side by side in one run.

  scripts/py scripts/bench_infer.py [--models vim_tiny vim_small vim_base] [--bits 1 2 3]
      [--batches 1 8 64] [--threads 2] [--repeats 3] [--work build/bench_infer]

Models are random-initialised native exports at the official shapes (224 px); each is packed by
`vimvq quantize --method kmeans` (the codes' values do not change the speed, and k-means gives
the vimvq layout without optimisation steps). Every (model, bits, batch, form) runs in its own
process, so that its peak RSS is its own: it loads the model, runs three warm-up forwards (the
TorchScript executor optimises the graph after its first runs) and then --repeats timed forwards
on random images. Reported per row: images/s, the ratio to fp32 at the
same batch, the peak RSS above the process's floor (the RSS after importing torch and the ops
library, before the model), and the resident model bytes (parameters and buffers).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMS = ("fp32", "dense", "compressed")
WARMUP = 3


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(args) -> None:
    """One measurement in this process: prints a JSON line."""
    import torch
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from vimlib.native import load_ops
    from vimlib.packed import load, read_packed
    torch.set_num_threads(args.threads)
    load_ops()
    floor = rss_mb()
    if args.form == "fp32":
        model = torch.jit.load(args.model)
    elif args.form == "dense":
        model = read_packed(args.packed)[2]
    else:
        model = load(args.packed)
    model.eval()
    for p in model.parameters():  # as the packed forms' weights: TorchScript's executor otherwise
        p.requires_grad_(False)   # profiles the original for autograd, a different graph
    tensors = list(model.parameters()) + list(model.buffers())
    for module in model.modules():  # compressed linears hold their codes as plain attributes
        if hasattr(module, "vq_d") and module.vq_d > 0:
            tensors += [module.vq_codes, module.vq_codebook]
    resident = sum(t.numel() * t.element_size() for t in tensors)
    size = json.loads(model.metadata())["input"]["image_size"]
    images = torch.randn(args.batch, 3, size, size)
    with torch.no_grad():
        for _ in range(WARMUP):  # TorchScript's profiling executor optimises after its first runs
            model(images)
        start = time.perf_counter()
        for _ in range(args.repeats):
            model(images)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_second": args.batch * args.repeats / seconds, "peak_above_floor_mb": peak - floor,
                      "resident_mb": resident / 2**20}))


def ensure(path: str, command) -> None:
    if os.path.exists(path):
        return
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["vim_tiny", "vim_small", "vim_base"])
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench_infer"))
    ap.add_argument("--vimvq", default=os.path.join(REPO, "build", "vimvq"))
    ap.add_argument("--child", choices=FORMS, dest="form", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--packed", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.form:
        child(args)
        return 0

    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from vimlib.photos import make_jpegs
    os.makedirs(args.work, exist_ok=True)
    calib = os.path.join(args.work, "calib")
    if not os.path.isdir(calib):
        make_jpegs(calib, 8, seed=0)
    rows = []
    print("| model | bits | batch | form | images/s | vs fp32 | peak RSS above floor | resident model |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        model = os.path.join(args.work, f"{name}.pt")
        ensure(model, [sys.executable, os.path.join(REPO, "scripts", "export.py"), "--config", name, "--seed", "0",
                       "-o", model])
        for bits in args.bits:
            packed = os.path.join(args.work, f"{name}.w{bits}.vqpk")
            ensure(packed, [args.vimvq, "quantize", model, calib, "-o", packed, "--method", "kmeans", "--bits",
                            str(bits), "--calib-size", "8", "--agreement-images", "0"])
            for batch in args.batches:
                fp32_rate = None
                for form in FORMS:
                    if form == "fp32" and bits != args.bits[0]:
                        fp32_rate = next(r for r in rows if r["model"] == name and r["batch"] == batch
                                         and r["form"] == "fp32")["images_per_second"]
                        continue  # the original does not depend on the bits: measured once per batch
                    out = subprocess.run([sys.executable, __file__, "--child", form, "--model", model, "--packed",
                                          packed, "--batch", str(batch), "--threads", str(args.threads),
                                          "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    r.update(model=name, bits=bits, batch=batch, form=form)
                    rows.append(r)
                    if form == "fp32":
                        fp32_rate = r["images_per_second"]
                    print(f"| {name} | {bits if form != 'fp32' else '-'} | {batch} | {form} | "
                          f"{r['images_per_second']:.2f} | {r['images_per_second'] / fp32_rate:.3f} | "
                          f"{r['peak_above_floor_mb']:.0f} MB | {r['resident_mb']:.1f} MB |", flush=True)
    with open(os.path.join(args.work, "bench_infer.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
