#!/usr/bin/env python3
"""Paired comparison of two models' top-1 on the same images (exact McNemar test).

  scripts/py scripts/compare_predictions.py A.csv B.csv

The inputs are `vimvq eval --predictions` files over the same images; rows are matched by path.
The script prints both top-1 accuracies and the number of images that only A or only B gets right.
It then prints the two-sided exact p-value for the hypothesis that A and B are equally accurate.
Two runs a few images apart on 10,000 are usually indistinguishable, and this says so with a
number. Exit status 2 when the files do not cover the same labelled images.
"""
import argparse
import csv
import math
import sys


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label", "pred1"} <= set(rows[0]):
        raise ValueError(f"{path}: not a vimvq predictions file (needs path, label, pred1 columns)")
    return {r["path"]: (r["label"], r["pred1"]) for r in rows}


def right_sets(a, b):
    """The images each of two read() results gets right."""
    return ({p for p, (label, pred) in a.items() if pred == label},
            {p for p, (label, pred) in b.items() if pred == label})


def discordant(right_a, right_b):
    """(images only A gets right, images only B gets right): McNemar's two counts."""
    return len(right_a - right_b), len(right_b - right_a)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    try:
        a, b = read(args.a), read(args.b)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.keys() != b.keys():
        print(f"error: {args.a} and {args.b} cover different images ({len(a)} and {len(b)} rows, "
              f"{len(a.keys() ^ b.keys())} paths in only one)", file=sys.stderr)
        return 2
    if any(a[p][0] != b[p][0] for p in a) or any(a[p][0] == "" for p in a):
        print("error: labels are missing or differ between the two files", file=sys.stderr)
        return 2
    right_a, right_b = right_sets(a, b)
    only_a, only_b = discordant(right_a, right_b)
    n = len(a)
    print(f"images            {n}")
    print(f"top-1  A          {100 * len(right_a) / n:.2f} %  ({args.a})")
    print(f"top-1  B          {100 * len(right_b) / n:.2f} %  ({args.b})")
    print(f"only A right      {only_a}")
    print(f"only B right      {only_b}")
    print(f"exact McNemar p   {mcnemar_exact(only_a, only_b):.3g}  (two-sided; H0: equally accurate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
