#!/usr/bin/env python3
"""Side-by-side table of the Rust scaling benchmark and the PyTorch CPU reference.

    python3 tools/compare_bench.py results/bench/rust_cpu.csv results/bench/torch_cpu.csv

Both CSVs have the columns
``implementation,variant,causal,pass,seq_len,ms,peak_*,note`` (written by
``cargo run --release -p hedgehog-attention --example scaling -- --out ...`` and by
``tools/bench_torch.py --out ...``). The Rust ``hedgehog_split`` variant is the same
computation as PyTorch's ``hedgehog`` (softmax-split feature map, d' = 64, chunk 64).
Standard library only.
"""

import csv
import sys


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(rust_path, torch_path):
    rows = load(rust_path) + load(torch_path)
    rust_impl = next(r["implementation"] for r in load(rust_path))

    def ms(impl, variant, causal, pass_, t):
        for r in rows:
            if (r["implementation"], r["variant"], r["causal"], r["pass"], r["seq_len"]) == (
                impl, variant, causal, pass_, t
            ):
                return float(r["ms"]) if r["ms"] else None
        return None

    def cell(value):
        return "skipped" if value is None else f"{value:.1f}"

    def ratio(a, b):
        return "" if a is None or b is None else f"{a / b:.2f}"

    lengths = sorted({r["seq_len"] for r in rows}, key=int)
    print(f"| pass | causal | T | softmax {rust_impl} | softmax torch eager | softmax torch SDPA "
          f"| Hedgehog {rust_impl} | Hedgehog torch | Hedgehog ours/torch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for pass_ in ("forward", "forward_backward"):
        for causal in ("true", "false"):
            for t in lengths:
                ours_soft = ms(rust_impl, "softmax", causal, pass_, t)
                ours_hh = ms(rust_impl, "hedgehog_split", causal, pass_, t)
                torch_hh = ms("torch_eager", "hedgehog", causal, pass_, t)
                print(
                    f"| {pass_} | {causal} | {t} | {cell(ours_soft)} "
                    f"| {cell(ms('torch_eager', 'softmax', causal, pass_, t))} "
                    f"| {cell(ms('torch_sdpa', 'softmax', causal, pass_, t))} "
                    f"| {cell(ours_hh)} | {cell(torch_hh)} | {ratio(ours_hh, torch_hh)} |"
                )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
