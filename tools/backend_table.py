#!/usr/bin/env python3
"""The CPU backends side by side: burn-ndarray and burn-flex running the composed code (both
with their threads), and burn-ndarray with the fused kernels, from three runs of the scaling
example:

    for be in ndarray flex; do
      HEDGEHOG_KERNELS=composed target/release/examples/scaling --backend $be \\
        --lengths 256,1024,4096 --variants softmax,hedgehog_split,elu --out results/bench/backend_$be.csv
    done
    target/release/examples/scaling --backend ndarray --lengths 256,1024,4096 \\
        --variants softmax,hedgehog_split,elu --out results/bench/backend_fused.csv
    python3 tools/backend_table.py results/bench > results/bench/backends.md

Standard library only.
"""

import csv
import os
import sys


def load(path):
    with open(path, newline="") as f:
        return {(r["variant"], r["causal"], r["pass"], int(r["seq_len"])): r["ms"] for r in csv.DictReader(f)}


def main(folder):
    composed = load(os.path.join(folder, "backend_ndarray.csv"))
    flex = load(os.path.join(folder, "backend_flex.csv"))
    fused = load(os.path.join(folder, "backend_fused.csv"))
    print("| variant | causal | pass | T | ndarray, composed (ms) | flex, composed (ms) | flex / ndarray | ndarray, fused (ms) | fused / composed |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for key in composed:
        a, b, c = composed[key], flex.get(key, ""), fused.get(key, "")
        ratio = lambda x, y: f"{float(x) / float(y):.2f}" if x and y else ""  # noqa: E731
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {float(a):.1f} | {float(b):.1f} | "
              f"{ratio(b, a)} | {float(c):.1f} | {ratio(c, a)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/bench")
