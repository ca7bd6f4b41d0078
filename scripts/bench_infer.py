#!/usr/bin/env python3
"""Inference of a packed model: the fp32 original, the dequantized dense model and the compressed
one (codes and codebooks through vimvq::vq_linear), side by side in one run.

  scripts/py scripts/bench_infer.py [--models vim_tiny vim_small vim_base] [--bits 1 2 3]
      [--batches 1 8 64] [--threads 2] [--rounds 7] [--work build/bench_infer]

Models are random-initialised native exports at the official shapes (224 px); each is packed by
`vimvq quantize --method kmeans` (the codes' values do not change the speed, and k-means gives
the vimvq layout without optimisation steps).

Speed: for each (model, bits, batch) one process loads the three forms and alternates them: each
round times every form in turn (the order rotating from round to round), each for at least
--min-seconds of whole forwards, after three warm-up forwards per form (the TorchScript executor
optimises the graph after its first runs). A slow spell of the machine then hits all three forms
of a round alike; the ratio to fp32 is the median of the per-round ratios, its range printed
beside it, and then the best round's images/s against fp32's best round.

Memory: every (model, bits, batch, form) also runs in its own process, so that its peak RSS is
its own: it loads the model and runs the three warm-up forwards and one more. Reported: the peak
RSS above the process's floor (the RSS after importing torch and the ops library, before the
model) and the resident model bytes (parameters, buffers, codes and codebooks).

`vimvq eval` (--eval-rounds, 3 by default, 0: off): for each model and bits, at batch 1 on the 8
calibration images (as a flat folder), the fp32 original, the packed file on its codes and with
--dense, each in its own process, rounds alternating; the peak RSS of each (the kernel's
ru_maxrss of that child) above the peak of `vimvq --version`, run beside them: the process's floor,
the libraries loaded and nothing else. A last table gives each round's ratio to fp32.
"""
import argparse
import json
import os
import resource
import statistics
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


def load_form(args, form: str):
    import torch
    from vimlib.packed import load, read_packed
    if form == "fp32":
        model = torch.jit.load(args.model)
    elif form == "dense":
        model = read_packed(args.packed)[2]
    else:
        model = load(args.packed)
    model.eval()
    for p in model.parameters():  # as the packed forms' weights: TorchScript's executor otherwise
        p.requires_grad_(False)   # profiles the original for autograd, a different graph
    return model


def resident_bytes(model) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    for module in model.modules():  # compressed linears hold their codes as plain attributes
        if hasattr(module, "vq_d") and module.vq_d > 0:
            tensors += [module.vq_codes, module.vq_codebook]
    return sum(t.numel() * t.element_size() for t in tensors)


def child_setup(args):
    import torch
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from vimlib.native import load_ops
    torch.set_num_threads(args.threads)
    load_ops()
    return torch


def child_memory(args) -> None:
    """The peak RSS of one form, alone in this process: prints a JSON line."""
    torch = child_setup(args)
    floor = rss_mb()
    model = load_form(args, args.form)
    size = json.loads(model.metadata())["input"]["image_size"]
    images = torch.randn(args.batch, 3, size, size)
    with torch.no_grad():
        for _ in range(WARMUP + 1):
            model(images)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_above_floor_mb": peak - floor, "resident_mb": resident_bytes(model) / 2**20}))


def timed_rate(model, images, min_seconds: float) -> float:
    """Images/s over whole forwards lasting at least min_seconds."""
    forwards, start = 0, time.perf_counter()
    while True:
        model(images)
        forwards += 1
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            return forwards * images.shape[0] / seconds


def child_speed(args) -> None:
    """The three forms alternating in this process: prints a JSON line of per-round rates."""
    torch = child_setup(args)
    models = {form: load_form(args, form) for form in FORMS}
    size = json.loads(models["fp32"].metadata())["input"]["image_size"]
    images = torch.randn(args.batch, 3, size, size)
    rates = {form: [] for form in FORMS}
    with torch.no_grad():
        for form in FORMS:
            for _ in range(WARMUP):
                models[form](images)
        for round_index in range(args.rounds):
            shift = round_index % len(FORMS)
            for form in FORMS[shift:] + FORMS[:shift]:
                rates[form].append(timed_rate(models[form], images, args.min_seconds))
    print(json.dumps(rates))


def peak_rss_mb(command) -> float:
    """The peak RSS of one child process, from the kernel's accounting of that child alone."""
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)}: exit {child.returncode}: {child.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024


def eval_peaks(args, model: str, packed: str, images: str) -> list:
    """Per round: `vimvq eval` peaks above `vimvq --version`'s, fp32 / compressed / dense."""
    evaluate = [args.vimvq, "eval", "--data", images, "--batch-size", "1", "--threads", str(args.threads)]
    forms = {"fp32": evaluate + [model], "compressed": evaluate + [packed], "dense": evaluate + [packed, "--dense"]}
    rounds = []
    for _ in range(args.eval_rounds):
        floor = peak_rss_mb([args.vimvq, "--version"])
        rounds.append({form: peak_rss_mb(command) - floor for form, command in forms.items()} | {"floor": floor})
    return rounds


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
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per (model, bits, batch)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="least time per form and round")
    ap.add_argument("--eval-rounds", type=int, default=3, help="vimvq eval peak RSS rounds (0: off)")
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench_infer"))
    ap.add_argument("--vimvq", default=os.path.join(REPO, "build", "vimvq"))
    ap.add_argument("--child", choices=FORMS + ("speed",), dest="form", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--packed", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.form == "speed":
        child_speed(args)
        return 0
    if args.form:
        child_memory(args)
        return 0

    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from vimlib.photos import make_jpegs
    os.makedirs(args.work, exist_ok=True)
    calib = os.path.join(args.work, "calib")
    if not os.path.isdir(calib):
        make_jpegs(calib, 8, seed=0)
    images = os.path.join(args.work, "eval_images")  # flat: the random models have 1000 classes
    if not os.path.isdir(images):
        os.makedirs(images)
        for root, _, files in os.walk(calib):
            for f in files:
                os.link(os.path.join(root, f), os.path.join(images, f))
    rows, peaks = [], []
    print("| model | bits | batch | form | images/s | vs fp32 (range) | best vs best | peak RSS above floor | "
          "resident model |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        model = os.path.join(args.work, f"{name}.pt")
        ensure(model, [sys.executable, os.path.join(REPO, "scripts", "export.py"), "--config", name, "--seed", "0",
                       "-o", model])
        fp32_memory = {}  # the original does not depend on the bits: its peak is measured once per batch
        for bits in args.bits:
            packed = os.path.join(args.work, f"{name}.w{bits}.vqpk")
            ensure(packed, [args.vimvq, "quantize", model, calib, "-o", packed, "--method", "kmeans", "--bits",
                            str(bits), "--calib-size", "8", "--agreement-images", "0"])
            peaks += [dict(r, model=name, bits=bits) for r in eval_peaks(args, model, packed, images)]
            for batch in args.batches:
                def run_child(form: str) -> dict:
                    out = subprocess.run([sys.executable, __file__, "--child", form, "--model", model, "--packed",
                                          packed, "--batch", str(batch), "--threads", str(args.threads), "--rounds",
                                          str(args.rounds), "--min-seconds", str(args.min_seconds)],
                                         capture_output=True, text=True, check=True)
                    return json.loads(out.stdout.strip().splitlines()[-1])
                rates = run_child("speed")
                for form in FORMS:
                    if form == "fp32" and batch in fp32_memory:
                        memory = fp32_memory[batch]
                    else:
                        memory = run_child(form)
                        if form == "fp32":
                            fp32_memory[batch] = memory
                    ratios = sorted(r / f for r, f in zip(rates[form], rates["fp32"]))
                    r = dict(memory, model=name, bits=bits, batch=batch, form=form,
                             images_per_second=statistics.median(rates[form]),
                             vs_fp32=statistics.median(ratios), vs_fp32_min=ratios[0], vs_fp32_max=ratios[-1],
                             best_vs_best=max(rates[form]) / max(rates["fp32"]), rates=rates[form])
                    rows.append(r)
                    spread = "" if form == "fp32" else f" ({ratios[0]:.3f}-{ratios[-1]:.3f})"
                    print(f"| {name} | {bits} | {batch} | {form} | {r['images_per_second']:.2f} | "
                          f"{r['vs_fp32']:.3f}{spread} | {r['best_vs_best']:.3f} | {r['peak_above_floor_mb']:.0f} MB | "
                          f"{r['resident_mb']:.1f} MB |", flush=True)
    if peaks:
        print("\n`vimvq eval`, batch 1, peak RSS above `vimvq --version`'s (floor), per round:\n")
        print("| model | bits | floor | fp32 | compressed | dense | compressed / fp32 |")
        print("|---|---|---|---|---|---|---|")
        for p in peaks:
            print(f"| {p['model']} | {p['bits']} | {p['floor']:.0f} MB | {p['fp32']:.0f} MB | {p['compressed']:.0f} MB | "
                  f"{p['dense']:.0f} MB | {p['compressed'] / p['fp32']:.3f} |")
    with open(os.path.join(args.work, "bench_infer.json"), "w") as f:
        json.dump({"speed_and_memory": rows, "eval_peaks": peaks}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
