#!/usr/bin/env python3
"""Training throughput, ours against PyTorch, alternating run by run.

    python3 tools/bench_train_compare.py --hedgehog target/release/hedgehog \\
        --out results/bench/train_cpu

Cases: gpt2_tiny at context 64, batch 4 (the quick start's training stage,
experiments/quickstart.yaml stage 0) and GPT-2 125M at context 1024, batch 1
(experiments/bench_gpt2_125m.yaml), each with softmax and with Hedgehog (softmax_split,
d' = 32 for the tiny model as in the quick start, 64 for GPT-2). Ours is `hedgehog
bench-train`, PyTorch is tools/bench_torch_train.py (the same model and optimiser in PyTorch
eager); both get the same threads. Each case runs --rounds times per side, ours and PyTorch
alternating (the first side alternating too), and the table shows the median tokens/s of the
rounds, the ratio ours / PyTorch of those medians, the median step time and the largest peak
resident memory of the process.

Writes <out>.csv (every round) and <out>.md. Needs PyTorch; CI never runs this.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hedgehog", default="target/release/hedgehog")
    p.add_argument("--out", default="results/bench/train_cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cases", default="tiny_softmax,tiny_hedgehog,gpt2_softmax,gpt2_hedgehog")
    return p.parse_args()


ARGS = parse_args()
TOOLS = os.path.dirname(os.path.abspath(__file__))


def hedgehog_attention(feature_dim):
    return ("attention=[{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, "
            f"feature_dim: {feature_dim}}}}}]")


CASES = {
    # name: (label, ours, torch)
    "tiny_softmax": (
        "gpt2_tiny, context 64, batch 4, softmax",
        ["experiments/quickstart.yaml", "--steps", "20", "--warmup", "3"],
        ["--preset", "gpt2_tiny", "--context", "64", "--batch", "4", "--attention", "softmax",
         "--lr", "3e-3", "--steps", "20", "--warmup", "3"],
    ),
    "tiny_hedgehog": (
        "gpt2_tiny, context 64, batch 4, Hedgehog",
        ["experiments/quickstart.yaml", "--steps", "20", "--warmup", "3", "--set", hedgehog_attention(32)],
        ["--preset", "gpt2_tiny", "--context", "64", "--batch", "4", "--attention", "hedgehog",
         "--feature-dim", "32", "--lr", "3e-3", "--steps", "20", "--warmup", "3"],
    ),
    "gpt2_softmax": (
        "GPT-2 125M, context 1024, batch 1, softmax",
        ["experiments/bench_gpt2_125m.yaml", "--steps", "3", "--warmup", "1"],
        ["--preset", "gpt2", "--context", "1024", "--batch", "1", "--attention", "softmax",
         "--lr", "6e-4", "--steps", "3", "--warmup", "1"],
    ),
    "gpt2_hedgehog": (
        "GPT-2 125M, context 1024, batch 1, Hedgehog",
        ["experiments/bench_gpt2_125m.yaml", "--steps", "3", "--warmup", "1", "--set", hedgehog_attention(64)],
        ["--preset", "gpt2", "--context", "1024", "--batch", "1", "--attention", "hedgehog",
         "--feature-dim", "64", "--lr", "6e-4", "--steps", "3", "--warmup", "1"],
    ),
}


def run(command, env):
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{out.stderr[-2000:]}")
    last = [line for line in out.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


def main():
    env = dict(os.environ, RAYON_NUM_THREADS=str(ARGS.threads), OMP_NUM_THREADS=str(ARGS.threads),
               MKL_NUM_THREADS=str(ARGS.threads))
    names = [n.strip() for n in ARGS.cases.split(",") if n.strip()]
    rows = []
    index = 0
    for name in names:
        label, ours_args, torch_args = CASES[name]
        for round_ in range(ARGS.rounds):
            sides = ["ours", "pytorch"] if index % 2 == 0 else ["pytorch", "ours"]
            index += 1
            for side in sides:
                if side == "ours":
                    command = [ARGS.hedgehog, "bench-train"] + ours_args
                else:
                    command = [sys.executable, os.path.join(TOOLS, "bench_torch_train.py"),
                               "--threads", str(ARGS.threads)] + torch_args
                result = run(command, env)
                print(f"{label:<45} round {round_} {side:<8} {result['tokens_per_second']:8.1f} tok/s  "
                      f"median step {statistics.median(result['step_ms']):8.1f} ms  "
                      f"peak {result['peak_rss_mib'] or float('nan'):7.0f} MiB", file=sys.stderr, flush=True)
                rows.append(dict(case=name, label=label, round=round_, side=side,
                                 tokens_per_second=result["tokens_per_second"],
                                 median_step_ms=statistics.median(result["step_ms"]),
                                 peak_rss_mib=result["peak_rss_mib"],
                                 parameters=result["model_parameters"]))
    write(rows, names)


def write(rows, names):
    os.makedirs(os.path.dirname(ARGS.out) or ".", exist_ok=True)
    with open(ARGS.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Training throughput: ours against PyTorch eager, alternating run by run",
        "",
        f"{ARGS.threads} threads, {ARGS.rounds} rounds per side; tokens/s and step time are the "
        "median of the rounds, peak memory the largest resident-set high-water mark.",
        "",
        "Command: `" + " ".join(["python3", "tools/bench_train_compare.py"] + sys.argv[1:]) + "`",
        "",
        "| case | parameters | ours tok/s | PyTorch tok/s | ours / PyTorch | ours step ms | PyTorch step ms | ours peak MiB | PyTorch peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        def side(s):
            return [r for r in rows if r["case"] == name and r["side"] == s]
        ours, torch = side("ours"), side("pytorch")
        tps = lambda rs: statistics.median(r["tokens_per_second"] for r in rs)  # noqa: E731
        step = lambda rs: statistics.median(r["median_step_ms"] for r in rs)  # noqa: E731
        peak = lambda rs: max((r["peak_rss_mib"] or 0) for r in rs)  # noqa: E731
        lines.append(f"| {ours[0]['label']} | {ours[0]['parameters']:,} | {tps(ours):.0f} | {tps(torch):.0f} | "
                     f"{tps(ours) / tps(torch):.2f} | {step(ours):.0f} | {step(torch):.0f} | "
                     f"{peak(ours):.0f} | {peak(torch):.0f} |")
    with open(ARGS.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {ARGS.out}.csv and {ARGS.out}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
