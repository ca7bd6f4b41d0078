#!/usr/bin/env python3
"""Sweep models x methods x bit widths (or exact budgets) x seeds: one manifest of points, each point
one `vimvq quantize` + `vimvq eval`, run here one after another or as a Slurm array; one gather step
builds the table (CSV, Markdown), the plots, and the exit status.

  scripts/py scripts/sweep.py tests/data/vim_fmnist.pt data/fashion-mnist/calib data/fashion-mnist/test \\
      --bits 1 2 3 --methods rtn kmeans vq4dit vimvq --out build/sweep --max-drop 2.5 \\
      --config-prefix configs/vim_fmnist -- --threads 2      (after --: passed to every vimvq quantize)

  ... --budgets 2.0 2.5 3.0 4.0 --no-e2e --out build/sweep_budget -- --config configs/vim_fmnist_w2.json
      every method at exactly each budget (`--target-bpw`, codebooks counted), and vimvq without its
      end-to-end stage beside it

  ... --slurm --throttle 4 --partition gpu --gpus-per-task 1 --time 2:00:00 [--dry-run] [--wait]
      the same points as a Slurm array job, and the gather step as a job that runs after it

MODEL may be given several times (MODEL [MODEL ...] CALIB EVAL); --seeds adds seeds. Points:
`OUT/manifest.jsonl`, one JSON line each (model, method, bits or budget, seed, config, and the two
commands). A point is done when `OUT/<name>.result.json` exists: it is written, atomically, only
after both commands succeeded (or, for a budget below what the method can write, as
"unreachable"). Running the sweep again runs (or submits) only the points without a result.

A point's quantize runs with `--resume`: a point stopped by SIGUSR1 or SIGTERM (which it forwards to
vimvq, which then stops cleanly and keeps its resume state) continues where it stopped, and ends
with the bytes of an uninterrupted run. Under Slurm the array script asks for `--requeue` and
`--signal=B:USR1@120`, forwards the signal and requeues the task.

Gather (`sweep.py gather OUT [--max-drop X]`, run by both modes): `sweep.csv` and `sweep.md` with a
status per point (ok, unreachable, failed, missing), top-1, its drop from full precision, McNemar's
exact p against vimvq at the same model, width and seed, agreement, mean KL, effective bits per
weight, file size and calibration time; `sweep_accuracy.png` (top-1, agreement and KL against
effective bits per weight, one line per method) and `sweep_block_loss.png` (each run's loss per
block). It exits 1 when a point is missing or failed, a budget is not met, or a `vimvq` run (its
ablations excluded) loses more than --max-drop top-1 points.
"""
import argparse
import csv
import json
import os
import shlex
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)
MANIFEST = "manifest.jsonl"


# ----- points


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def method_variants(args):
    """(label, --method, extra flags) of each method, ablation and end-to-end variant."""
    for method in args.methods:
        yield method, method, []
    if args.ablations:
        yield "vimvq-no-hull", "vimvq", ["--no-hull-update"]
        yield "vimvq-no-incremental", "vimvq", ["--no-incremental"]
    if args.no_e2e:
        yield "vimvq-no-e2e", "vimvq", ["--set", "e2e_steps=0"]
    if args.e2e_steps:
        yield "vimvq+e2e", "vimvq", ["--set", f"e2e_steps={args.e2e_steps}"]


def plan_points(args, extra):
    out = os.path.abspath(args.out)
    widths = [("budget", b) for b in args.budgets] if args.budgets else [("bits", b) for b in args.bits]
    points = []
    for model in args.models:
        for kind, width in widths:
            for seed in args.seeds or [None]:
                for label, method, flags in method_variants(args):
                    name = "_".join(filter(None, [stem(model) if len(args.models) > 1 else "", label,
                                                  f"w{width}" if kind == "bits" else f"bpw{width:g}",
                                                  f"s{seed}" if seed is not None else ""]))
                    config = f"{args.config_prefix}_w{width}.json" if args.config_prefix and kind == "bits" else None
                    if config and not os.path.exists(config):
                        config = None
                    base = os.path.join(out, name)
                    quantize = [os.path.abspath(args.vimvq), "quantize", os.path.abspath(model),
                                os.path.abspath(args.calib), "-o", base + ".vqpk", "--report", base + ".json",
                                "--agreement-images", "0", "--resume", "--method", method]
                    quantize += ["--bits", str(width)] if kind == "bits" else ["--target-bpw", f"{width:g}"]
                    if config:
                        quantize += ["--config", os.path.abspath(config)]  # flags after it still win
                    if seed is not None:
                        quantize += ["--seed", str(seed)]
                    quantize += flags + extra
                    evaluate = [os.path.abspath(args.vimvq), "eval", base + ".vqpk", "--data",
                                os.path.abspath(args.eval_data), "--reference", os.path.abspath(model),
                                "--predictions", base + ".csv", "--report", base + ".eval.json"] + args.eval_args
                    points.append({"index": len(points), "name": name, "model": os.path.abspath(model),
                                   "method": label, kind: width,
                                   "seed": seed, "config": config, "quantize": quantize, "eval": evaluate})
    names = [p["name"] for p in points]
    if len(set(names)) != len(names):
        raise SystemExit("sweep: two points share a name (the same model stem twice?)")
    return points


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(out: str, points) -> str:
    path = os.path.join(out, MANIFEST)
    write_atomic(path, "".join(json.dumps(p) + "\n" for p in points))
    return path


def read_manifest(path: str):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def point_base(point) -> str:
    """OUT/NAME: the point's files are NAME.vqpk, .json (quantize report), .csv, .eval.json, .result.json."""
    return os.path.splitext(point["quantize"][point["quantize"].index("-o") + 1])[0]


def result_path(point) -> str:
    return point_base(point) + ".result.json"


def pending(points):
    return [p for p in points if not os.path.exists(result_path(p))]


# ----- one point: the local loop and each Slurm task alike


class Forwarder:
    """Forwards SIGUSR1 and SIGTERM to the running child (vimvq stops cleanly on both)."""

    def __init__(self):
        self.child, self.signal = None, None
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, self.forward)

    def forward(self, sig, _frame):
        self.signal = sig
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(sig)

    def run(self, cmd):
        """(exit code, stderr); None when a signal came before the command started."""
        print("+ " + shlex.join(cmd), flush=True)
        if self.signal is not None:
            return None
        self.child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        errors = self.child.communicate()[1]
        sys.stdout.flush()
        sys.stderr.write(errors)
        return self.child.returncode, errors


def run_point(point) -> int:
    """0 when the point has its result; 1 when it failed; 128 + signal when stopped by one."""
    if os.path.exists(result_path(point)):  # a requeued task whose point had ended: never run twice
        print(f"sweep: {point['name']}: already has its result", flush=True)
        return 0
    forwarder = Forwarder()
    q = forwarder.run(point["quantize"])
    if forwarder.signal is not None:
        print(f"sweep: {point['name']}: stopped by signal {forwarder.signal}; its resume state is kept", flush=True)
        return 128 + forwarder.signal
    code, output = q
    if code != 0:
        last = (output.strip().splitlines() or [""])[-1]
        if "budget" in point and "--target-bpw" in last and ("below what" in last or "above what" in last):
            write_atomic(result_path(point), json.dumps({"status": "unreachable: " + last.split(": ", 2)[-1]}))
            return 0
        print(f"sweep: {point['name']}: vimvq quantize failed (exit {code})", flush=True)
        return 1
    e = forwarder.run(point["eval"])
    if forwarder.signal is not None:
        return 128 + forwarder.signal
    if e[0] != 0:
        print(f"sweep: {point['name']}: vimvq eval failed (exit {e[0]})", flush=True)
        return 1
    base = point_base(point)
    with open(base + ".json") as f:
        report = json.load(f)
    with open(base + ".eval.json") as f:
        ev = json.load(f)
    result = {"status": "ok", "effective_bpw": round(report["size"]["effective_bpw"], 4),
              "top1": ev["top1"], "fp_top1": ev["reference"]["top1"],
              "agreement": ev["reference"]["top1_agreement"], "mean_kl": ev["reference"]["mean_kl"],
              "file_bytes": report["size"]["packed_bytes"],
              "seconds": round(report["timing"]["calibration_seconds"], 1),
              "block_loss": [b["loss_final"] for b in report["blocks"]], "predictions": base + ".csv"}
    write_atomic(result_path(point), json.dumps(result) + "\n")
    return 0


# ----- gather


def mcnemar_against_vimvq(rows) -> None:
    sys.path.insert(0, os.path.dirname(SCRIPT))
    from compare_predictions import discordant, mcnemar_exact, read, right_sets
    for row in rows:
        width = row.get("bits", row.get("budget"))
        ref = next((x for x in rows if x["method"] == "vimvq" and x["status"] == "ok" and x["model"] == row["model"]
                    and x.get("bits", x.get("budget")) == width and x["seed"] == row["seed"]), None)
        if row["status"] != "ok" or ref is None or ref is row:
            continue
        row["only_this_right"], row["only_vimvq_right"] = discordant(
            *right_sets(read(row["predictions"]), read(ref["predictions"])))
        row["mcnemar_p_vs_vimvq"] = mcnemar_exact(row["only_this_right"], row["only_vimvq_right"])


def gather(out: str, max_drop=None) -> int:
    points = read_manifest(os.path.join(out, MANIFEST))
    rows, problems = [], []
    for p in points:
        row = {k: p[k] for k in ("name", "model", "method", "seed")}
        row.update({k: p[k] for k in ("bits", "budget") if k in p})
        row["model"] = stem(row["model"])
        path = result_path(p)
        if os.path.exists(path):
            with open(path) as f:
                row.update(json.load(f))
        else:
            row["status"] = "missing"
        rows.append(row)
        if row["status"] == "missing":
            problems.append(f"{p['name']}: no result (failed, or not run yet)")
        elif row["status"] == "ok":
            row["drop"] = round(row["fp_top1"] - row["top1"], 2)
            if "budget" in row:
                row["budget_met"] = 0.99 * row["budget"] <= row["effective_bpw"] <= row["budget"]
                if not row["budget_met"]:
                    problems.append(f"{p['name']}: {row['effective_bpw']:.4f} bits per weight, outside "
                                    f"[{0.99 * row['budget']:.4f}, {row['budget']}]")
            if max_drop is not None and row["method"] == "vimvq" and row["drop"] > max_drop:
                problems.append(f"{p['name']}: top-1 drop {row['drop']:.2f} > --max-drop {max_drop}")
    mcnemar_against_vimvq(rows)
    write_tables(out, rows)
    done = [r for r in rows if r["status"] == "ok"]
    if done:
        plot(out, done)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


def write_tables(out: str, rows) -> None:
    fields = ["name", "model", "method", "bits", "budget", "seed", "status", "effective_bpw", "budget_met", "top1",
              "drop", "mcnemar_p_vs_vimvq", "only_this_right", "only_vimvq_right", "agreement", "mean_kl",
              "file_bytes", "seconds"]
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["| point | status | eff. bpw | top-1 | drop | p vs vimvq (only it / only vimvq right) | agreement | "
             "mean KL | file | calib. s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['status']} | | | | | | | | |")
            continue
        p = (f"{r['mcnemar_p_vs_vimvq']:.3g} ({r['only_this_right']} / {r['only_vimvq_right']})"
             if "mcnemar_p_vs_vimvq" in r else "-")
        lines.append(f"| {r['name']} | ok | {r['effective_bpw']:.4f} | {r['top1']:.2f} | {r['drop']:.2f} | {p} | "
                     f"{r['agreement']:.2f} % | {r['mean_kl']:.4g} | {r['file_bytes']:,} B | {r['seconds']} |")
    fp = next((r["fp_top1"] for r in rows if r["status"] == "ok"), None)
    table = "\n".join(lines) + "\n"
    if fp is not None:
        table += (f"\nFull precision top-1: {fp:.2f}.\n\n![top-1, agreement and KL against effective bits per weight]"
                  f"(sweep_accuracy.png)\n\n![each run's loss per block](sweep_block_loss.png)\n")
    write_atomic(os.path.join(out, "sweep.md"), table)
    print(table)


def plot(out: str, rows) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    many_models = len({r["model"] for r in rows}) > 1
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in dict.fromkeys((r["model"], r["method"]) for r in rows):
        mine = sorted((r for r in rows if (r["model"], r["method"]) == key), key=lambda r: r["effective_bpw"])
        label = " ".join(key) if many_models else key[1]
        x = [r["effective_bpw"] for r in mine]
        for ax, field in zip(axes, ("top1", "agreement", "mean_kl")):
            ax.plot(x, [r[field] for r in mine], marker="o", label=label)
    for ax, ylabel in zip(axes, ("top-1 (%)", "top-1 agreement with full precision (%)",
                                 "mean KL(full precision || quantized)")):
        ax.set(xlabel="effective bits per weight", ylabel=ylabel)
    axes[2].set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sweep_accuracy.png"), dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        if r["block_loss"] and any(v > 0 for v in r["block_loss"]):
            ax.plot(range(len(r["block_loss"])), r["block_loss"], marker=".", label=r["name"])
    ax.set(xlabel="block", ylabel="block loss after calibration", yscale="log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sweep_block_loss.png"), dpi=120)
    plt.close(fig)


# ----- Slurm


def array_spec(indices, throttle: int) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8%K'."""
    parts, start = [], None
    for i, index in enumerate(indices):
        if start is None:
            start = index
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts) + f"%{throttle}"


def sbatch_header(args, job_name: str, log: str, gpus: bool):
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --output={log}", "#SBATCH --open-mode=append"]
    for flag, value in (("partition", args.partition), ("account", args.account), ("time", args.time),
                        ("gpus-per-task", args.gpus_per_task if gpus else None), ("mem", args.mem)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {a}" for a in args.sbatch_arg]
    return lines


def slurm_scripts(args, out: str, manifest: str):
    logs = os.path.join(out, "logs")
    task = sbatch_header(args, args.job_name, os.path.join(logs, "%x_%A_%a.log"), gpus=True) + [
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@120",
        "# One point of the manifest per array task. USR1 (Slurm's warning before the time limit, or",
        "# `scancel -b -s USR1`) goes to the point, which stops vimvq cleanly; the task is then requeued",
        "# and the point resumes where it stopped.",
        'echo "sweep: task ${SLURM_ARRAY_TASK_ID} start $(date +%s.%N) on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"',
        f"{shlex.quote(sys.executable)} {shlex.quote(SCRIPT)} point {shlex.quote(manifest)} \"$SLURM_ARRAY_TASK_ID\" &",
        "child=$!",
        "stopped=0",
        "trap 'stopped=1; kill -USR1 \"$child\" 2>/dev/null' USR1",
        "wait \"$child\"; rc=$?",
        "while kill -0 \"$child\" 2>/dev/null; do wait \"$child\"; rc=$?; done  # a trap ends the first wait",
        "echo \"sweep: task ${SLURM_ARRAY_TASK_ID} end $(date +%s.%N) rc $rc\"",
        "if [ \"$stopped\" = 1 ] && [ \"$rc\" != 0 ]; then",
        "  echo \"sweep: task ${SLURM_ARRAY_TASK_ID} stopped by USR1: requeued\"",
        "  scontrol requeue \"$SLURM_JOB_ID\"",
        "  exit 0",
        "fi",
        "exit $rc",
    ]
    gather_cmd = [sys.executable, SCRIPT, "gather", out] + (["--max-drop", str(args.max_drop)]
                                                           if args.max_drop is not None else [])
    gather_job = sbatch_header(args, args.job_name + "-gather", os.path.join(logs, "%x_%j.log"), gpus=False) + [
        "# The table and plots of every point, after the array ends whatever its tasks' states;",
        "# exits 1 when a point has no result.",
        shlex.join(gather_cmd),
    ]
    return "\n".join(task) + "\n", "\n".join(gather_job) + "\n"


def submit(args, out: str, points) -> int:
    todo = [p["index"] for p in pending(points)]
    task_script, gather_script = slurm_scripts(args, out, os.path.join(out, MANIFEST))
    task_path, gather_path = os.path.join(out, "sweep.sbatch"), os.path.join(out, "gather.sbatch")
    array = ["sbatch", "--parsable", f"--array={array_spec(todo, args.throttle)}", task_path] if todo else None
    after = ["sbatch", "--parsable"] + (["--wait"] if args.wait else []) + ["--dependency=afterany:ARRAY_JOB_ID",
                                                                           gather_path]
    if args.dry_run:
        print(f"# {len(points)} points, {len(todo)} without a result\n# {task_path}\n{task_script}\n"
              f"# {gather_path}\n{gather_script}")
        print("# would run:\n" + (shlex.join(array) if array else "# (no point to submit)") + "\n" + shlex.join(after))
        return 0
    write_manifest(out, points)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    write_atomic(task_path, task_script)
    write_atomic(gather_path, gather_script)
    if not array:
        print("sweep: every point has a result; gathering here")
        return gather(out, args.max_drop)
    job = subprocess.run(array, check=True, capture_output=True, text=True).stdout.strip().split(";")[0]
    print(f"sweep: submitted {len(todo)} of {len(points)} points as array job {job} ({array[2]})", flush=True)
    after[after.index("--dependency=afterany:ARRAY_JOB_ID")] = f"--dependency=afterany:{job}"
    g = subprocess.run(after, capture_output=not args.wait, text=True)
    if not args.wait:
        print(f"sweep: gather job {g.stdout.strip().split(';')[0]} runs after it: {out}/sweep.md")
    return g.returncode


# ----- command line


def run_local(args, out: str, points) -> int:
    write_manifest(out, points)
    todo = pending(points)
    print(f"sweep: {len(points)} points, {len(todo)} to run", flush=True)
    for i, p in enumerate(todo):
        print(f"== [{i + 1}/{len(todo)}] {p['name']}", flush=True)
        code = run_point(p)
        if code > 128:
            return code
    return gather(out, args.max_drop)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["point"]:  # sweep.py point MANIFEST INDEX: one point (a Slurm array task)
        points = read_manifest(argv[1])
        return run_point(points[int(argv[2])])
    if argv[:1] == ["gather"]:
        g = argparse.ArgumentParser(prog="sweep.py gather")
        g.add_argument("out")
        g.add_argument("--max-drop", type=float)
        a = g.parse_args(argv[1:])
        return gather(os.path.abspath(a.out), a.max_drop)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", metavar="MODEL")
    ap.add_argument("calib")
    ap.add_argument("eval_data")
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--budgets", type=float, nargs="+", help="exact effective bits per weight instead of --bits")
    ap.add_argument("--methods", nargs="+", default=["rtn", "kmeans", "vq4dit", "vimvq"])
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the tool's or the config's)")
    ap.add_argument("--ablations", action="store_true", help="add vimvq --no-hull-update and --no-incremental")
    ap.add_argument("--no-e2e", action="store_true",
                    help="add vimvq without its end-to-end stage (e2e_steps=0: the block-wise pass alone)")
    ap.add_argument("--e2e-steps", type=int, default=0, help="add vimvq with an end-to-end stage of N steps")
    ap.add_argument("--out", default="build/sweep")
    ap.add_argument("--max-drop", type=float, help="fail when a vimvq run loses more top-1 points than this")
    ap.add_argument("--config-prefix", help="e.g. configs/vim_fmnist: uses <prefix>_w<bits>.json where present")
    ap.add_argument("--vimvq", default=os.path.join(REPO, "build", "vimvq"))
    ap.add_argument("--eval-args", type=shlex.split, default=["--threads", "2"],
                    help="vimvq eval arguments, one string: --eval-args='--threads 4 --device cuda'")
    slurm = ap.add_argument_group("Slurm")
    slurm.add_argument("--slurm", action="store_true", help="submit the points as an array job and a gather job")
    slurm.add_argument("--throttle", type=int, default=4, help="at most this many tasks at once (%%K)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--time", help="per task, e.g. 2:00:00")
    slurm.add_argument("--gpus-per-task")
    slurm.add_argument("--mem")
    slurm.add_argument("--sbatch-arg", action="append", default=[], help="another #SBATCH line, e.g. --qos=long")
    slurm.add_argument("--job-name", default="vimvq-sweep")
    slurm.add_argument("--dry-run", action="store_true",
                       help="print what would run (with --slurm: the two scripts), run and submit nothing")
    slurm.add_argument("--wait", action="store_true", help="return when the gather job ends, with its status")
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    extra = argv[split + 1:]  # after --: passed to every vimvq quantize
    out = os.path.abspath(args.out)
    points = plan_points(args, extra)
    if args.dry_run and not args.slurm:
        todo = pending(points)
        print(f"# {len(points)} points, {len(todo)} without a result; each runs:")
        for p in todo:
            print(f"# {p['name']}\n{shlex.join(p['quantize'])}\n{shlex.join(p['eval'])}")
        return 0
    if args.slurm:
        if not args.dry_run:
            os.makedirs(out, exist_ok=True)
        return submit(args, out, points)
    os.makedirs(out, exist_ok=True)
    return run_local(args, out, points)


if __name__ == "__main__":
    sys.exit(main())
