#!/usr/bin/env python3
"""Benchmark (not a test): `vimvq eval` against the Python way and against the bare model forward.

  scripts/py scripts/bench_eval.py [--threads 2] [--fmnist-limit 0] [--jpegs 64]

Three throughputs per data set, measured one after the other in this run:
  vimvq   : the C++ binary end to end (decode + preprocess + forward), from its JSON report;
  python  : torchvision ImageFolder + DataLoader (num_workers = threads) + the same TorchScript model;
  forward : the same model on batches preloaded in memory (the limit: no decoding at all).
Data sets: the Fashion-MNIST test folder with the shipped model, and a folder of 224-px-and-up
JPEG photographs (made from tests/data/images) with a random-init vim_tiny. Both pipelines must
give the same top-1 on Fashion-MNIST.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib.common import set_threads  # noqa: E402
from vimlib.native import load_ops  # noqa: E402
from vimlib.photos import make_jpegs  # noqa: E402


def python_transform(meta):
    inp = meta["input"]
    return transforms.Compose([transforms.Resize(inp["resize"], interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(inp["crop"]), transforms.ToTensor(),
                               transforms.Normalize(inp["mean"], inp["std"])])


def run_python(model, meta, folder, batch, workers, limit):
    mode = "L" if meta["input"]["channels"] == 1 else "RGB"
    ds = datasets.ImageFolder(folder, transform=python_transform(meta), loader=lambda p: Image.open(p).convert(mode))
    if limit:
        ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False)
    correct = n = 0
    preloaded = []
    t0 = time.time()
    with torch.inference_mode():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            n += len(y)
            preloaded.append(x)
    return n / (time.time() - t0), 100.0 * correct / n, preloaded


def run_forward(model, batches):
    t0 = time.time()
    n = 0
    with torch.inference_mode():
        for x in batches:
            model(x)
            n += len(x)
    return n / (time.time() - t0)


def run_vimvq(model_path, folder, batch, threads, limit):
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "r.json")
        cmd = [os.path.join(REPO, "build", "vimvq"), "eval", model_path, "--data", folder, "--batch-size", str(batch),
               "--threads", str(threads), "--report", report]
        if limit:
            cmd += ["--limit", str(limit)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(report) as f:
            r = json.load(f)
    return r["images_per_second"], r["top1"]


def bench(name, model_path, folder, batch, threads, limit):
    model = torch.jit.load(model_path)
    meta = json.loads(model.metadata())
    v_ips, v_top1 = run_vimvq(model_path, folder, batch, threads, limit)
    p_ips, p_top1, preloaded = run_python(model, meta, folder, batch, threads, limit)
    f_ips = run_forward(model, preloaded)
    print(f"\n{name}: batch {batch}, {threads} threads")
    print(f"  vimvq eval        {v_ips:8.1f} img/s   top-1 {v_top1:.2f}")
    print(f"  python pipeline   {p_ips:8.1f} img/s   top-1 {p_top1:.2f}")
    print(f"  bare forward      {f_ips:8.1f} img/s")
    print(f"  vimvq / python  = {v_ips / p_ips:.3f}    vimvq / forward = {v_ips / f_ips:.3f}")
    return v_top1, p_top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--fmnist", default=os.path.join(REPO, "data", "fashion-mnist", "test"))
    ap.add_argument("--fmnist-limit", type=int, default=0)
    ap.add_argument("--jpegs", type=int, default=48)
    args = ap.parse_args()
    set_threads(args.threads)
    load_ops(required=True)  # exported models call the native scan
    ok = True
    if os.path.isdir(args.fmnist):
        v, p = bench("Fashion-MNIST test folder, shipped model", os.path.join(REPO, "tests", "data", "vim_fmnist.pt"),
                     args.fmnist, 100, args.threads, args.fmnist_limit)
        if abs(v - p) > 1e-9:
            print(f"  MISMATCH: vimvq top-1 {v} != python top-1 {p}")
            ok = False
    else:
        print(f"{args.fmnist} missing: run scripts/prepare_fashion_mnist.py first")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "vim_tiny.pt")
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "export.py"), "--config", "vim_tiny",
                        "--num-classes", "4", "-o", model_path], check=True, stdout=subprocess.DEVNULL)
        make_jpegs(os.path.join(tmp, "jpegs"), args.jpegs, seed=0)
        bench(f"{args.jpegs} JPEG photographs (224 px and up), random-init vim_tiny", model_path,
              os.path.join(tmp, "jpegs"), 16, args.threads, 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
