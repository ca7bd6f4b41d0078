#!/usr/bin/env python3
"""Benchmark (not a test): the native scan operator against the pure-PyTorch scan.

  scripts/py scripts/bench_scan.py [--threads N] [--repeats 3] [--eval-images 1000] [--device cuda]
  scripts/py scripts/bench_scan.py --compare OLD.so NEW.so [--rounds 2] [--threads N] [--repeats 7]

Shapes: Vim-T (B = 8 and 32, L = 197, 2E = 768 stacked channels, N = 16, 2 groups) and the shipped
Fashion-MNIST model (B = 128, L = 50, 2E = 384). Forward, and forward+backward, median of
--repeats. Then whole-model eval throughput of the shipped model, portable scan against native
scan, on the first --eval-images test images, with their top-1. All ratios come from this one run.

--compare times only the native operators at those shapes (selective_scan, and the token-major
bimamba_scan where every library given has it), for each library, in a fresh process per library
(loaded operators cannot be swapped), the libraries in turn for --rounds rounds; it prints each
library's median times and their ratio to the first library's.
"""
import argparse
import json
import os
import statistics
import subprocess
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


def token_major_inputs(batch, channels, length, n_state=16, grad=False):
    """vimvq::bimamba_scan's inputs at the same sizes: (batch, L, channels) rows, both directions."""
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(batch, length, channels, generator=g) * 0.5,
         torch.randn(batch, length, channels, generator=g) * 0.5, -torch.rand(channels, n_state, generator=g) * 3 - 0.1,
         torch.randn(batch, 2, length, n_state, generator=g), torch.randn(batch, 2, length, n_state, generator=g),
         torch.randn(channels, generator=g), torch.randn(batch, length, channels // 2, generator=g),
         torch.randn(channels, generator=g) * 0.3]
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


SHAPES = [("Vim-T B=8  L=197 2E=768", (8, 768, 197)), ("Vim-T B=32 L=197 2E=768", (32, 768, 197)),
          ("Fashion-MNIST B=128 L=50 2E=384", (128, 384, 50))]


def scan_times(fn, shape, repeats, make_inputs=inputs):
    """(forward s, forward+backward s) of a scan function at shape (batch, channels, L)."""
    with torch.no_grad():
        x = make_inputs(*shape)
        forward = timed(lambda: fn(*x), repeats)
    xg = make_inputs(*shape, grad=True)
    return forward, timed(lambda: fn(*xg).sum().backward(), repeats)


def native_times(repeats):
    """{shape label: (forward s, forward+backward s)} of the loaded library's selective_scan, and of
    its token-major bimamba_scan (both directions, the same sizes) when it has one."""
    times = {label: scan_times(torch.ops.vimvq.selective_scan, shape, repeats) for label, shape in SHAPES}
    try:
        token_major = torch.ops.vimvq.bimamba_scan
    except (AttributeError, RuntimeError):  # a library from before the token-major operators
        return times
    for label, shape in SHAPES:
        times["bimamba_scan " + label] = scan_times(token_major, shape, repeats, token_major_inputs)
    return times


def compare_libraries(args):
    runs = {lib: [] for lib in args.compare}
    for _ in range(args.rounds):
        for lib in args.compare:
            child = [sys.executable, os.path.abspath(__file__), "--native-times", "--threads", str(args.threads),
                     "--repeats", str(args.repeats), "--device", args.device]
            out = subprocess.run(child, env=dict(os.environ, VIMVQ_OPS_LIBRARY=os.path.abspath(lib)), check=True,
                                 stdout=subprocess.PIPE, text=True).stdout
            runs[lib].append(json.loads(out.strip().splitlines()[-1]))
    print(f"| shape | library | forward ms | forward+backward ms | f+b / first library's |\n|---|---|---|---|---|")
    first = args.compare[0]
    labels = [label for label in runs[first][0] if all(label in r for rs in runs.values() for r in rs)]
    for label in labels:
        base = statistics.median(r[label][1] for r in runs[first])
        for lib in args.compare:
            fwd = ", ".join(f"{r[label][0] * 1e3:.1f}" for r in runs[lib])
            fb = [r[label][1] for r in runs[lib]]
            print(f"| {label} | {lib} | {fwd} | {', '.join(f'{t * 1e3:.1f}' for t in fb)} "
                  f"| {statistics.median(fb) / base:.2f} |")


def bench_shapes(repeats):
    print(f"{'shape':38s} {'torch fwd':>10s} {'native fwd':>10s} {'ratio':>7s} {'torch f+b':>10s} "
          f"{'native f+b':>10s} {'ratio':>7s}")
    for label, shape in SHAPES:
        tf, tb = scan_times(selective_scan_torch, shape, repeats)
        nf, nb = scan_times(torch.ops.vimvq.selective_scan, shape, repeats)
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
    ap.add_argument("--compare", nargs="+", metavar="LIBRARY", help="libvimvq_ops.so files to time in turn")
    ap.add_argument("--rounds", type=int, default=2, help="with --compare: runs of each library, alternating")
    ap.add_argument("--native-times", action="store_true", help=argparse.SUPPRESS)  # --compare's child
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.compare:
        compare_libraries(args)
        return
    threads = set_threads(args.threads)
    load_ops(required=True)
    if args.native_times:
        print(json.dumps(native_times(args.repeats)))
        return
    print(f"threads: {threads}, device: {DEVICE}")
    bench_shapes(args.repeats)
    if args.eval_images:
        bench_model(args.eval_images, args.fmnist_root)


if __name__ == "__main__":
    main()
