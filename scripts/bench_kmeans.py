#!/usr/bin/env python3
"""Benchmark (not a test): vimvq's k-means against faiss on every quantizable layer of a model.

  scripts/py scripts/bench_kmeans.py [--bits 2] [--iterations 25] [--threads N]

Default model: a random-init vim_tiny (exported on the fly). Both sides cluster the same
sub-vectors (docs/METHOD.md section 1) with the same k and iteration count, unweighted; faiss's
subsampling is off (max_points_per_centroid large), and neither stops early; OpenBLAS's own thread
pool is held at one thread, faiss's fastest setting on this machine. Prints total time and
final objective (sum of squared distances to the nearest final centroid) and their ratios.
Needs Debian's python3-faiss and build/vimvq_kmeans_bench.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib.common import keep_openblas_pool_off_torch_threads  # noqa: E402
from vimlib.native import load_ops  # noqa: E402


def subvectors(weight: torch.Tensor, d: int) -> np.ndarray:
    flat = weight.detach().reshape(-1).float().numpy()
    pad = (-len(flat)) % d
    return np.ascontiguousarray(np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, d))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=25)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import faiss
    load_ops(required=True)  # exported models call the native scan
    faiss.omp_set_num_threads(args.threads)
    # faiss's best setting here: with OpenBLAS's own pthreads pool beside faiss's OpenMP threads,
    # its k-means ran 2.5x slower on 2 cores (39.1 s against 15.4 s at 2 bits).
    keep_openblas_pool_off_torch_threads()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if not model_path:
            model_path = os.path.join(tmp, "vim_tiny.pt")
            subprocess.run([sys.executable, os.path.join(REPO, "scripts", "export.py"), "--config", "vim_tiny",
                            "-o", model_path], check=True, stdout=subprocess.DEVNULL)
        ours = subprocess.run([os.path.join(REPO, "build", "vimvq_kmeans_bench"), model_path, str(args.bits),
                               str(args.iterations), str(args.threads)], check=True, capture_output=True, text=True)
        rows = [json.loads(line) for line in ours.stdout.splitlines() if line.startswith("{")]
        params = dict(torch.jit.load(model_path).named_parameters())
    ours_time = sum(r["seconds"] for r in rows)
    ours_obj = sum(r["objective"] for r in rows)
    faiss_time = faiss_obj = 0.0
    for r in rows:
        x = subvectors(params[r["layer"]], r["d"])
        km = faiss.Kmeans(r["d"], r["k"], niter=args.iterations, seed=1234, max_points_per_centroid=1 << 30,
                          min_points_per_centroid=1, verbose=False)
        t0 = time.perf_counter()
        km.train(x)
        faiss_time += time.perf_counter() - t0
        dist, _ = km.index.search(x, 1)
        faiss_obj += float(dist.astype(np.float64).sum())
    print(f"{len(rows)} layers, {sum(r['n'] for r in rows):,} sub-vectors, {args.bits} bits, "
          f"{args.iterations} iterations, {args.threads} threads")
    print(f"  vimvq  {ours_time:8.2f} s   objective {ours_obj:.6g}")
    print(f"  faiss  {faiss_time:8.2f} s   objective {faiss_obj:.6g}")
    print(f"  time ratio vimvq/faiss = {ours_time / faiss_time:.3f}   objective ratio vimvq/faiss = "
          f"{ours_obj / faiss_obj:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
