#!/usr/bin/env python3
"""Sweep bit widths (or exact budgets) x methods x ablations on one model; CSV + Markdown table;
CI accuracy gate.

  scripts/py scripts/sweep.py tests/data/vim_fmnist.pt data/fashion-mnist/calib data/fashion-mnist/test \\
      --bits 1 2 3 --methods rtn kmeans vq4dit vimvq --ablations --out build/sweep --max-drop 2.5 \\
      --config-prefix configs/vim_fmnist -- --threads 2      (after --: passed to every vimvq quantize)

Each run is `vimvq quantize ... --eval-data EVAL --report` (its JSON report is kept in --out). The
table has top-1, its drop from full precision, agreement and mean KL against it, effective bits per weight, file size and wall time.
With --max-drop X the script exits 1 when any `vimvq` run (ablations excluded) loses more than X
top-1 points, so a CI sweep fails on an accuracy regression.

Equal-size mode, every method at exactly each budget (`--target-bpw`, codebooks counted):

  scripts/py scripts/sweep.py tests/data/vim_fmnist.pt data/fashion-mnist/calib data/fashion-mnist/test \
      --budgets 2.0 2.5 3.0 4.0 --e2e-steps 100 --out build/sweep_budget -- --config configs/vim_fmnist_w2.json

Each file is evaluated by `vimvq eval --reference MODEL --predictions`; the table adds whether the
budget was met, and McNemar's exact p of each method's top-1 against vimvq's at the same budget; a
budget a method cannot reach is listed as such. With matplotlib, sweep_budget.png plots agreement
and KL against effective bits per weight, one line per method.
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


def budget_runs(args):
    for budget in args.budgets:
        for method in args.methods:
            yield f"{method}_bpw{budget:g}", budget, method, ["--method", method]
        if args.e2e_steps:
            yield f"vimvq+e2e_bpw{budget:g}", budget, "vimvq+e2e", ["--method", "vimvq", "--set",
                                                                    f"e2e_steps={args.e2e_steps}"]


def run_budgets(args, extra) -> int:
    """Equal-size mode: see the module doc."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compare_predictions import mcnemar_exact, read
    rows, failed = [], []
    for name, budget, method, flags in budget_runs(args):
        out = os.path.join(args.out, name)
        cmd = [args.vimvq, "quantize", args.model, args.calib, "-o", out + ".vqpk", "--target-bpw", f"{budget:g}",
               "--agreement-images", "0", "--report", out + ".json"] + flags + extra
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        q = subprocess.run(cmd, capture_output=True, text=True)
        row = {"run": name, "method": method, "budget": budget}
        if q.returncode != 0:
            if "--target-bpw" in q.stderr and ("below what" in q.stderr or "above what" in q.stderr):
                rows.append(dict(row, status="unreachable: " + q.stderr.strip().splitlines()[-1].split(": ", 2)[-1]))
            else:
                failed.append(f"{name}: vimvq quantize failed: {q.stderr.strip()[-300:]}")
            continue
        e = subprocess.run([args.vimvq, "eval", out + ".vqpk", "--data", args.eval_data, "--reference", args.model,
                            "--predictions", out + ".csv", "--report", out + ".eval.json"] + args.eval_args,
                           capture_output=True, text=True)
        if e.returncode != 0:
            failed.append(f"{name}: vimvq eval failed: {e.stderr.strip()[-300:]}")
            continue
        with open(out + ".json") as f:
            r = json.load(f)
        with open(out + ".eval.json") as f:
            ev = json.load(f)
        bpw = r["size"]["effective_bpw"]
        met = 0.99 * budget <= bpw <= budget
        if not met:
            failed.append(f"{name}: {bpw:.4f} bits per weight, outside [{0.99 * budget:.4f}, {budget}]")
        rows.append(dict(row, status="ok", effective_bpw=round(bpw, 4), budget_met=met, top1=ev["top1"],
                         agreement=ev["reference"]["top1_agreement"], mean_kl=ev["reference"]["mean_kl"],
                         file_bytes=r["size"]["packed_bytes"], seconds=round(r["timing"]["calibration_seconds"], 1),
                         predictions=out + ".csv"))
    for row in rows:  # McNemar against vimvq at the same budget
        ref = next((x for x in rows if x["method"] == "vimvq" and x["budget"] == row["budget"] and x["status"] == "ok"),
                   None)
        if row["status"] != "ok" or ref is None or ref is row:
            continue
        a, b = read(row["predictions"]), read(ref["predictions"])
        right_a = {k for k, (label, pred) in a.items() if label == pred}
        right_b = {k for k, (label, pred) in b.items() if label == pred}
        only_a, only_b = len(right_a - right_b), len(right_b - right_a)
        row["mcnemar_p_vs_vimvq"] = mcnemar_exact(only_a, only_b)
        row["only_this_right"], row["only_vimvq_right"] = only_a, only_b
    write_budget_tables(args.out, rows)
    for f in failed:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failed else 0


def write_budget_tables(out, rows) -> None:
    fields = ["run", "method", "budget", "status", "effective_bpw", "budget_met", "top1", "mcnemar_p_vs_vimvq",
              "only_this_right", "only_vimvq_right", "agreement", "mean_kl", "file_bytes", "seconds"]
    with open(os.path.join(out, "sweep_budget.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["| budget | method | eff. bpw | top-1 | p vs vimvq (only it / only vimvq right) | agreement | mean KL | "
             "file | calib. s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['budget']:g} | {r['method']} | {r['status']} | | | | | | |")
            continue
        p = (f"{r['mcnemar_p_vs_vimvq']:.3g} ({r['only_this_right']} / {r['only_vimvq_right']})"
             if "mcnemar_p_vs_vimvq" in r else "-")
        lines.append(f"| {r['budget']:g} | {r['method']} | {r['effective_bpw']:.4f} | {r['top1']:.2f} | {p} | "
                     f"{r['agreement']:.2f} % | {r['mean_kl']:.4g} | {r['file_bytes']:,} B | {r['seconds']} |")
    table = "\n".join(lines) + "\n\n![agreement and KL against bits per weight](sweep_budget.png)\n"
    with open(os.path.join(out, "sweep_budget.md"), "w") as f:
        f.write(table)
    print(table)
    plot_budgets(out, [r for r in rows if r["status"] == "ok"])


def plot_budgets(out, rows) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["effective_bpw"])
        x = [r["effective_bpw"] for r in mine]
        left.plot(x, [r["agreement"] for r in mine], marker="o", label=method)
        right.plot(x, [r["mean_kl"] for r in mine], marker="o", label=method)
    left.set(xlabel="effective bits per weight", ylabel="top-1 agreement with full precision (%)")
    right.set(xlabel="effective bits per weight", ylabel="mean KL(full precision || quantized)", yscale="log")
    left.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sweep_budget.png"), dpi=120)


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
    ap.add_argument("--budgets", type=float, nargs="+", help="equal-size mode: effective bits per weight")
    ap.add_argument("--e2e-steps", type=int, default=0, help="equal-size mode: add vimvq with the end-to-end stage")
    ap.add_argument("--eval-args", nargs="*", default=["--threads", "2"], help="extra vimvq eval arguments")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    extra = argv[split + 1:]  # after --: passed to every vimvq quantize
    os.makedirs(args.out, exist_ok=True)
    if args.budgets:
        return run_budgets(args, extra)
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
