#!/usr/bin/env python3
"""Training throughput of one process against two ranks of a `distributed:` run on this
machine, alternating case by case: steps/s and tokens/s of the whole batch (from rank 0's
metrics.csv: the training stage's tokens over its time), and the all-reduce cost per step
(each rank prints it at the end of the run).

    python3 tools/bench_distributed.py --hedgehog target/release/hedgehog \
        --out results/bench/distributed_cpu --repeats 3

`just bench-distributed` builds the binary and runs this; needs PyYAML.
"""

import argparse
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

import yaml

# (name, spec, overrides): the first training stage only, no evaluation inside it.
CASES = [
    (
        "quick-start GPT (6.9M parameters, batch 4 × 64 tokens)",
        "experiments/quickstart.yaml",
        ["stages.0.steps=60", "stages.0.log_every=60", "stages.0.eval_every=100000"],
    ),
    (
        "GPT-2 125M (batch 2 × 512 tokens)",
        "experiments/bench_gpt2_125m.yaml",
        ["stages.0.steps=4", "stages.0.batch_size=2", "task.context=512"],
    ),
]

SUMS = re.compile(r"rank (\d+) of \d+: (\d+) sums over the ranks, ([0-9.]+) ms each")


def first_stage_only(spec_path):
    """`--set stages=[...]` keeping the spec's first stage (as JSON, which is YAML)."""
    with open(spec_path) as f:
        return "stages=[" + json.dumps(yaml.safe_load(f)["stages"][0]) + "]"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(hedgehog, spec, overrides, nodes, results, threads=None):
    command = [hedgehog, "run", spec, "--results", results]
    for o in overrides:
        command += ["--set", o]
    env = dict(os.environ)
    for key in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "RAYON_NUM_THREADS"):
        env.pop(key, None)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    if nodes == 1:
        outputs = [subprocess.run(command, env=env, capture_output=True, text=True)]
    else:
        port = free_port()
        procs = []
        for rank in range(nodes):
            rank_env = dict(env, WORLD_SIZE=str(nodes), RANK=str(rank), MASTER_PORT=str(port))
            procs.append(
                subprocess.Popen(
                    command, env=rank_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        outputs = []
        for p in procs:
            out, err = p.communicate()
            outputs.append(subprocess.CompletedProcess(command, p.returncode, out, err))
    for rank, out in enumerate(outputs):
        if out.returncode != 0:
            sys.exit(f"rank {rank} of {' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")
    name = next(d for d in os.listdir(results) if not d.startswith("."))
    with open(os.path.join(results, name, "run-001", "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["loss"]]
    last = rows[-1]
    tokens_per_s = float(last["tokens_per_second"])
    sums = [SUMS.search(o.stdout) for o in outputs]
    sum_ms = [float(m.group(3)) for m in sums if m]
    return {
        "steps": int(last["step"]),
        "tokens_per_s": tokens_per_s,
        # The rank that arrives last at a sum waits only for the exchange itself; the others
        # wait for it too.
        "sum_ms": min(sum_ms) if sum_ms else None,
        "sum_ms_max": max(sum_ms) if sum_ms else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hedgehog", required=True)
    parser.add_argument("--out", default="results/bench/distributed_cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hedgehog = os.path.abspath(args.hedgehog)
    rows = []
    for name, spec, overrides in CASES:
        overrides = [first_stage_only(spec)] + overrides
        # (processes, RAYON_NUM_THREADS per process): one process with rayon's default, two
        # ranks with the default (each as many rayon threads as cores), two ranks with one
        # rayon thread each. matrixmultiply's own threads (MATMUL_NUM_THREADS) are left as they are.
        configs = [(1, None), (2, None), (2, 1)]
        measured = {c: [] for c in configs}
        for repeat in range(args.repeats):
            for nodes, threads in configs:
                results = tempfile.mkdtemp(prefix="hedgehog-bench-dist-")
                try:
                    m = run(hedgehog, spec, overrides, nodes, results, threads)
                finally:
                    shutil.rmtree(results, ignore_errors=True)
                measured[(nodes, threads)].append(m)
                print(
                    f"{name} · {nodes} process(es), RAYON_NUM_THREADS {threads or 'default'} · try "
                    f"{repeat + 1}: {m['tokens_per_s']:.0f} tok/s, sum {m['sum_ms']} ms/step "
                    f"(waited {m['sum_ms_max']} ms on the earliest rank)",
                    flush=True,
                )
        one = measured[(1, None)]
        row = {"model": name, "steps": one[0]["steps"]}
        row["one_process_tok_s"] = round(statistics.median(m["tokens_per_s"] for m in one), 1)
        for key, config in (("two_ranks", (2, None)), ("two_ranks_1_thread", (2, 1))):
            runs = measured[config]
            ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(one, runs)]
            row[f"{key}_tok_s"] = round(statistics.median(m["tokens_per_s"] for m in runs), 1)
            row[f"{key}_ratio_median"] = round(statistics.median(ratios), 3)
            row[f"{key}_ratio_min"] = round(min(ratios), 3)
            row[f"{key}_ratio_max"] = round(max(ratios), 3)
            row[f"{key}_sum_ms"] = round(statistics.median(m["sum_ms"] for m in runs), 1)
        rows.append(row)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(args.out + ".md", "w") as f:
        f.write(
            f"Training tokens/s (whole batch), one process vs two ranks on 127.0.0.1, "
            f"median of {args.repeats} alternating tries (ratio: two ranks / one process, per "
            f"try); sum ms/step: the wait at a gradient sum of the rank that arrives last "
            f"(the exchange itself); `python3 tools/bench_distributed.py "
            f"--hedgehog {args.hedgehog} --out {args.out} --repeats {args.repeats}`\n\n"
        )
        f.write(
            "| model | steps | 1 process tok/s | 2 ranks tok/s (ratio, min–max) | sum ms/step | "
            "2 ranks, RAYON_NUM_THREADS=1 tok/s (ratio, min–max) | sum ms/step |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        for r in rows:
            cells = [r["model"], str(r["steps"]), f"{r['one_process_tok_s']:.0f}"]
            for key in ("two_ranks", "two_ranks_1_thread"):
                cells.append(
                    f"{r[key + '_tok_s']:.0f} ({r[key + '_ratio_median']:.2f}, "
                    f"{r[key + '_ratio_min']:.2f}–{r[key + '_ratio_max']:.2f})"
                )
                cells.append(f"{r[key + '_sum_ms']}")
            f.write("| " + " | ".join(cells) + " |\n")
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    main()
