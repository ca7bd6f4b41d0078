#!/usr/bin/env python3
"""Train the shipped Fashion-MNIST Vim (config vim_fmnist): seeded, resumable, CPU or GPU.

  scripts/py scripts/train_fashion_mnist.py --out tests/data/vim_fmnist.pt

Checkpoints every --checkpoint-every steps to --checkpoint (resumed automatically). Uses the native
scan operator for speed when the library is built (`--scan torch` for the portable loop); the
exported file always uses the scan that --export-scan names (default: torch, portable).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vimlib import fashion_mnist  # noqa: E402
from vimlib.common import atomic_torch_save, set_threads  # noqa: E402
from vimlib.configs import get_config  # noqa: E402
from vimlib.export import make_model, save_torchscript  # noqa: E402
from vimlib.native import load_ops  # noqa: E402


def normalize(images: np.ndarray, cfg: dict) -> torch.Tensor:
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    return (x - cfg["mean"][0]) / cfg["std"][0]


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return 100.0 * correct / len(x)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=fashion_mnist.DEFAULT_DIR)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--scan", choices=["native", "torch"], default="native")
    ap.add_argument("--export-scan", choices=["native", "torch"], default="native")
    ap.add_argument("--checkpoint", default="build/fmnist_train.ckpt")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--out", default="tests/data/vim_fmnist.pt")
    ap.add_argument("--train-images", type=int, default=0, help="use only the first N (smoke runs)")
    ap.add_argument("--test-images", type=int, default=0, help="evaluate only the first N (smoke runs)")
    args = ap.parse_args()

    threads = set_threads(args.threads)
    if args.scan == "native" or args.export_scan == "native":
        load_ops(required=True)
    cfg = get_config("vim_fmnist")
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    train_images, train_labels = fashion_mnist.load_split("train", args.data)
    test_images, test_labels = fashion_mnist.load_split("test", args.data)
    x_train, y_train = normalize(train_images, cfg), torch.from_numpy(train_labels)
    x_test, y_test = normalize(test_images, cfg), torch.from_numpy(test_labels)
    if args.train_images:
        x_train, y_train = x_train[:args.train_images], y_train[:args.train_images]
    if args.test_images:
        x_test, y_test = x_test[:args.test_images], y_test[:args.test_images]

    model = make_model(cfg, seed=args.seed, use_native_scan=args.scan == "native").to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "A_log" not in n and "A_b_log" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "A_log" not in n and "A_b_log" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = len(x_train) // args.batch_size
    total = steps_per_epoch * args.epochs
    step, train_seconds = 0, 0.0
    os.makedirs(os.path.dirname(os.path.abspath(args.checkpoint)), exist_ok=True)
    if os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)  # our own file: args, optimizer
        if ck["args"]["seed"] != args.seed or ck["args"]["epochs"] != args.epochs:
            print(f"{args.checkpoint}: made with other settings; delete it to start over", file=sys.stderr)
            return 2
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, train_seconds = ck["step"], ck["train_seconds"]
        print(f"resumed at step {step}/{total}", flush=True)

    def save_checkpoint():
        atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                           "train_seconds": train_seconds, "args": vars(args)}, args.checkpoint)

    model.train()
    loss_sum, n_sum = 0.0, 0
    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        # The permutation depends on (seed, epoch) only, so a resumed run sees the same batches.
        perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        idx = perm[pos * args.batch_size:(pos + 1) * args.batch_size]
        aug = torch.Generator().manual_seed(args.seed * 10_000_000 + step)
        xb = x_train[idx]
        flip = torch.rand(len(idx), generator=aug) < 0.5
        xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb).to(dev)
        yb = y_train[idx].to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args.lr, args.warmup_steps)
        t0 = time.time()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_seconds += time.time() - t0
        step += 1
        loss_sum += loss.item() * len(idx)
        n_sum += len(idx)
        if step % 50 == 0 or step == total:
            rate = step * args.batch_size / max(train_seconds, 1e-9)
            eta = (total - step) * args.batch_size / rate
            print(f"step {step}/{total} epoch {epoch + 1} loss {loss_sum / n_sum:.4f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} {rate:.1f} img/s eta {eta / 60:.1f} min", flush=True)
            loss_sum, n_sum = 0.0, 0
        if step % args.checkpoint_every == 0 or step % steps_per_epoch == 0:
            save_checkpoint()
        if step % steps_per_epoch == 0:
            acc = evaluate(model, x_test[:2000].to(dev), y_test[:2000].to(dev))
            print(f"epoch {step // steps_per_epoch}: test top-1 on the first 2000 images {acc:.2f} %", flush=True)
            model.train()
    save_checkpoint()

    # Export: the exported scan, evaluated on the whole test split with exactly that computation.
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    training = {"dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)", "epochs": args.epochs,
                "batch_size": args.batch_size, "optimizer": "AdamW", "lr": args.lr, "schedule": "warmup+cosine",
                "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay, "grad_clip": 1.0,
                "augmentation": "horizontal flip", "seed": args.seed, "device": str(dev), "threads": threads,
                "train_scan": args.scan, "train_seconds": round(train_seconds, 1),
                "train_images_per_second": round(total * args.batch_size / train_seconds, 1)}
    final = make_model(cfg, seed=args.seed, use_native_scan=args.export_scan == "native",
                       class_names=fashion_mnist.CLASS_NAMES)
    final.load_state_dict(state)
    t0 = time.time()
    acc = evaluate(final, x_test, y_test)
    meta = json.loads(final.metadata_json)
    meta["source"] = {"kind": "trained", "script": "scripts/train_fashion_mnist.py", "seed": args.seed}
    meta["training"] = training
    meta["accuracy"] = {"split": "test", "images": len(x_test), "top1": round(acc, 2)}
    meta["class_folders"] = fashion_mnist.FOLDER_NAMES
    final.metadata_json = json.dumps(meta, sort_keys=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_torchscript(final, args.out)
    print(f"test top-1 {acc:.2f} % ({len(x_test)} images, eval {time.time() - t0:.0f} s); wrote {args.out}")
    print(json.dumps(training))
    return 0


if __name__ == "__main__":
    sys.exit(main())
