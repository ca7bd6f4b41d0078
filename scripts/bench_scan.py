#!/usr/bin/env python3
"""Benchmark (not a test): the native scan operator against the pure-PyTorch scan.

  scripts/py scripts/bench_scan.py [--threads N] [--repeats 3] [--eval-images 1000] [--device cuda]

Shapes: Vim-T (B = 8 and 32, L = 197, 2E = 768 stacked channels, N = 16, 2 groups) and the shipped
Fashion-MNIST model (B = 128, L = 50, 2E = 384). Forward, and forward+backward, median of
--repeats. Then whole-model eval throughput of the shipped model, portable scan against native
scan, on the first --eval-images test images, with their top-1. All ratios come from this one run.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib import fashion_mnist  # noqa: E402
from vimlib.common import set_threads  # noqa: E402
from vimlib.configs import get_config  # noqa: E402
from vimlib.export import make_model  # noqa: E402
from vimlib.native import load_ops  # noqa: E402
from vimlib.scan import selective_scan_torch  # noqa: E402


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def inputs(batch, dim, length, n_state=16, groups=2, grad=False):
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(batch, dim, length, generator=g) * 0.5, torch.randn(batch, dim, length, generator=g) * 0.5,
         -torch.rand(dim, n_state, generator=g) * 3 - 0.1, torch.randn(batch, groups, n_state, length, generator=g),
         torch.randn(batch, groups, n_state, length, generator=g), torch.randn(dim, generator=g),
         torch.randn(batch, dim, length, generator=g), torch.randn(dim, generator=g) * 0.3]
    return [x.to(DEVICE).requires_grad_(grad) for x in t]


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_shapes(repeats):
    native = torch.ops.vimvq.selective_scan
    print(f"{'shape':38s} {'torch fwd':>10s} {'native fwd':>10s} {'ratio':>7s} {'torch f+b':>10s} "
          f"{'native f+b':>10s} {'ratio':>7s}")
    for label, (b, d, l) in [("Vim-T B=8  L=197 2E=768", (8, 768, 197)), ("Vim-T B=32 L=197 2E=768", (32, 768, 197)),
                             ("Fashion-MNIST B=128 L=50 2E=384", (128, 384, 50))]:
        with torch.no_grad():
            x = inputs(b, d, l)
            tf = timed(lambda: selective_scan_torch(*x), repeats)
            nf = timed(lambda: native(*x), repeats)
        xg = inputs(b, d, l, grad=True)

        def fb(fn):
            return lambda: fn(*xg).sum().backward()
        tb = timed(fb(selective_scan_torch), repeats)
        nb = timed(fb(native), repeats)
        print(f"{label:38s} {tf * 1e3:8.1f}ms {nf * 1e3:8.1f}ms {tf / nf:6.1f}x {tb * 1e3:8.1f}ms {nb * 1e3:8.1f}ms "
              f"{tb / nb:6.1f}x")


def bench_model(images, data_root):
    shipped = torch.jit.load(os.path.join(REPO, "tests", "data", "vim_fmnist.pt"))
    meta = json.loads(shipped.metadata())
    state = shipped.state_dict()
    x, y = fashion_mnist.load_split("test", data_root)
    x = (torch.from_numpy(x[:images].copy()).float().div(255).unsqueeze(1) - meta["input"]["mean"][0]) \
        / meta["input"]["std"][0]
    x, y = x.to(DEVICE), torch.from_numpy(y[:images]).to(DEVICE)
    rates, accuracy = {}, {}
    for scan in ("torch", "native"):
        model = make_model(get_config("vim_fmnist"), use_native_scan=scan == "native")
        model.load_state_dict(state)
        scripted = torch.jit.script(model.to(DEVICE))
        with torch.inference_mode():
            scripted(x[:100])
            sync()
            t0 = time.perf_counter()
            # Counted on the device, so that the timed loop does not wait for each batch.
            correct = torch.zeros((), dtype=torch.long, device=DEVICE)
            for i in range(0, len(x), 100):
                correct += (scripted(x[i:i + 100]).argmax(1) == y[i:i + 100]).sum()
            sync()
            rates[scan] = len(x) / (time.perf_counter() - t0)
            accuracy[scan] = 100.0 * correct.item() / len(x)
    print(f"\nshipped model eval on {DEVICE} ({len(x)} images, batch 100): "
          f"torch scan {rates['torch']:.1f} img/s (top-1 {accuracy['torch']:.2f} %), "
          f"native {rates['native']:.1f} img/s (top-1 {accuracy['native']:.2f} %), "
          f"ratio {rates['native'] / rates['torch']:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eval-images", type=int, default=1000, help="0: skip the whole-model comparison")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fmnist-root", default=fashion_mnist.DEFAULT_DIR, help="folder of the Fashion-MNIST idx files")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    print(f"threads: {set_threads(args.threads)}, device: {DEVICE}")
    load_ops(required=True)
    bench_shapes(args.repeats)
    if args.eval_images:
        bench_model(args.eval_images, args.fmnist_root)


if __name__ == "__main__":
    main()
