#!/usr/bin/env python3
"""Attention, ours against PyTorch, in one invocation, alternating case by case.

    python3 tools/bench_compare.py --rust target/release/examples/scaling \\
        --out results/bench/compare_cpu

For every case (variant, causal, pass, T) the Rust benchmark (`scaling --serve`, one process
kept running) and PyTorch eager (and SDPA for softmax) run back to back, which one first
alternating from case to case, so both see the same machine: absolute times drift by 2x within
an hour on a shared machine, the ratios of neighbouring runs do not. Each side does one
warm-up run, then --repeats timed runs; the median is reported, min and max are in the CSV.

Columns: ms, peak MiB (ours: heap high-water above what was live before the case; PyTorch:
resident-set high-water above the RSS before it, reset through /proc/self/clear_refs), the
ratio ours / PyTorch, and GFLOP/s: the algorithm's useful floating-point operations (masked
halves not counted, backward counted as twice the forward, the same count for both sides)
over the time, next to the machine's peak (threads x 32 flop/cycle x clock: two 256-bit FMA
pipes a core).

With --device cuda both sides run on the GPU (ours: `scaling --serve --backend cuda` from a
`--features cuda` build; PyTorch: eager and SDPA, which is FlashAttention there, timed with
torch.cuda.synchronize()); peak MiB is then ours: the device memory the process holds after the
case: the GPU's memory in use (nvidia-smi) above what it was before the first case, PyTorch's
context included there and its cache emptied after each of its cases; PyTorch:
torch.cuda.max_memory_allocated above the allocation before the case. No machine peak there.
PyTorch's float32 matrix products stay full f32 (its default) where burn's may run as TF32, and
SDPA in float32 picks its memory-efficient kernel, not FlashAttention (which needs 16 bits).
Interrupted (SIGINT, e.g. `timeout -s INT`), it writes the rows it has.

Writes <out>.csv and <out>.md. Needs PyTorch (`pip install torch`); CI never runs this.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rust", default="target/release/examples/scaling")
    p.add_argument("--out", default="results/bench/compare_cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--lengths", default="256,1024,4096,16384")
    p.add_argument("--variants", default="softmax,hedgehog_exp,hedgehog_split,hedgehog_joint,elu,taylor")
    p.add_argument("--passes", default="forward,forward_backward")
    p.add_argument("--causal", default="true,false")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-gib", type=float, default=6.0,
                   help="skip a side whose estimated memory passes this")
    p.add_argument("--max-gflop", type=float, default=600.0,
                   help="skip cases of more useful GFLOP than this (time budget)")
    return p.parse_args()


ARGS = parse_args()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_attention as ta  # noqa: E402

B, H, D, DV, CHUNK = 1, 12, 64, 64, 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def useful_gflop(variant, causal, pass_, t, impl="torch_eager"):
    """Useful floating-point work of a case, in GFLOP (see the module docstring). Ours runs
    Taylor-2's attention through its compressed basis (1 + d + d(d+1)/2 features, the same
    kernel), so its count uses that width."""
    if variant == "softmax":
        forward = 2 * 2 * t * t * D * (0.5 if causal else 1.0)  # q k^T and p v
    else:
        f = ta.feature_dim(variant, D)
        if variant == "taylor" and impl == "ours":
            f = 1 + D + D * (D + 1) // 2
        maps = 2 * 2 * t * D * (f // 2) if variant.startswith("hedgehog") else 0
        if causal:
            intra = 2 * t * CHUNK * (f + DV) * 0.5              # masked scores and their @ v
            inter = 2 * 2 * t * f * DV                          # q S and k^T v per chunk
            forward = maps + intra + inter
        else:
            forward = maps + 2 * 2 * t * f * DV
    total = forward if pass_ == "forward" else 3 * forward
    return total * B * H / 1e9


def estimated_gib(variant, impl, causal, pass_, t):
    """Memory a side needs, roughly: the T x T matrices of eager softmax, the features and the
    per-chunk states of linear attention (the PyTorch chunked form keeps [N, F, dv])."""
    factor = 1.0 if pass_ == "forward" else 2.5
    if variant == "softmax":
        if impl == "torch_eager":
            per_head = 3.0 * t * t
        else:
            per_head = 4.0 * t * D  # ours and SDPA stream over blocks
    else:
        f = ta.feature_dim(variant, D)
        per_head = 4.0 * t * f + (t / CHUNK) * f * DV * (3.0 if impl != "ours" else 0.0)
    return per_head * B * H * 4.0 * factor / 2 ** 30


def peak_gflops():
    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    mhz = max(mhz, float(line.split(":")[1]))
    except OSError:
        pass
    return ARGS.threads * 32 * mhz / 1e3, mhz


class Rust:
    def __init__(self, path):
        self.proc = subprocess.Popen(
            [path, "--serve", "--backend", "ndarray" if ARGS.device == "cpu" else "cuda"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def run(self, variant, causal, pass_, t):
        self.proc.stdin.write(f"{variant} {'true' if causal else 'false'} {pass_} {t} {ARGS.repeats}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Rust benchmark exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ms"], answer["peak_mib"]

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:  # it was interrupted with us
            pass
        self.proc.wait()


def sync():
    if ARGS.device == "cuda":
        torch.cuda.synchronize()


def run_torch(variant, impl, causal, pass_, t, gen):
    backward = pass_ == "forward_backward"
    dev = ARGS.device
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        reset, base = True, torch.cuda.memory_allocated() / 2 ** 20
    else:
        reset, base = reset_peak_rss(), status_mib("VmRSS")

    def leaf(x):
        return x.to(dev).requires_grad_(backward)
    q = leaf(torch.randn(B, H, t, D, generator=gen).mul_(0.5))
    k = leaf(torch.randn(B, H, t, D, generator=gen).mul_(0.5))
    v = leaf(torch.randn(B, H, t, DV, generator=gen))
    params = [leaf(p.detach()) for p in ta.make_params(variant, H, D, backward)]
    leaves = [q, k, v] + params
    fn = ta.attention_fn(variant, impl, q, k, v, params, causal)

    def once():
        if backward:
            for x in leaves:
                x.grad = None
            sync()
            start = time.perf_counter()
            fn().sum().backward()
            sync()
            return time.perf_counter() - start
        with torch.no_grad():
            sync()
            start = time.perf_counter()
            y = fn()
            sync()
            elapsed = time.perf_counter() - start
        del y
        return elapsed

    once()
    times = sorted(once() * 1e3 for _ in range(ARGS.repeats))
    if dev == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 - base
        del q, k, v, params, leaves, fn
        torch.cuda.empty_cache()
    else:
        peak = status_mib("VmHWM") - base if reset else float("nan")
    return times, peak


def main():
    torch.set_num_threads(ARGS.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    ta.check()
    lengths = [int(x) for x in ARGS.lengths.split(",") if x.strip()]
    variants = [v.strip() for v in ARGS.variants.split(",") if v.strip()]
    passes = [p.strip() for p in ARGS.passes.split(",") if p.strip()]
    causals = [c.strip() == "true" for c in ARGS.causal.split(",") if c.strip()]
    for v in variants:
        if v not in ta.VARIANTS:
            sys.exit(f"unknown variant {v}; known: {', '.join(ta.VARIANTS)}")
    peak, mhz = peak_gflops()
    if ARGS.device == "cuda":
        peak, mhz = float("nan"), float("nan")
        torch.zeros(1, device="cuda")  # PyTorch's context exists before ours reads its baseline
        log(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    else:
        log(f"torch {torch.__version__}, {ARGS.threads} threads, peak ~{peak:.0f} GFLOP/s "
        f"({ARGS.threads} x 32 flop/cycle x {mhz:.0f} MHz)")
    rust = Rust(ARGS.rust)
    gen = torch.Generator().manual_seed(0)
    rows = []
    index = 0
    started = time.perf_counter()
    try:
        for variant in variants:
            for causal in causals:
                for pass_ in passes:
                    for t in lengths:
                        gflop = useful_gflop(variant, causal, pass_, t)
                        impls = ["ours", "torch_eager"] + (["torch_sdpa"] if variant == "softmax" else [])
                        if index % 2:
                            impls = impls[1:] + impls[:1]
                        index += 1
                        for impl in impls:
                            work = useful_gflop(variant, causal, pass_, t, impl)
                            row = dict(implementation=impl, variant=variant, causal=str(causal).lower(),
                                       pass_=pass_, seq_len=t, gflop=work, ms="", min_ms="", max_ms="",
                                       peak_mib="", gflops="", note="")
                            gib = estimated_gib(variant, impl, causal, pass_, t)
                            if gflop > ARGS.max_gflop:
                                row["note"] = f"skipped: {gflop:.0f} GFLOP > --max-gflop {ARGS.max_gflop:.0f}"
                            elif gib > ARGS.max_gib:
                                row["note"] = f"skipped: needs ~{gib:.1f} GiB > --max-gib {ARGS.max_gib}"
                            else:
                                if impl == "ours":
                                    times, mib = rust.run(variant, causal, pass_, t)
                                else:
                                    times, mib = run_torch(variant, impl, causal, pass_, t, gen)
                                ms = statistics.median(times)
                                row.update(ms=f"{ms:.3f}", min_ms=f"{min(times):.3f}", max_ms=f"{max(times):.3f}",
                                           peak_mib="" if mib is None else f"{mib:.1f}", gflops=f"{work / ms * 1e3:.1f}",
                                           note=f"loadavg1={os.getloadavg()[0]:.2f}")
                            log(f"{impl:>11} {variant:>15} causal={causal!s:<5} {pass_:<16} T={t:<6} "
                                f"{row['ms'] or row['note']}")
                            rows.append(row)
    except KeyboardInterrupt:
        log(f"interrupted: writing the {len(rows)} rows measured so far")
    rust.close()
    log(f"done in {time.perf_counter() - started:.0f} s")
    write(rows, peak, mhz, lengths)


def crossover(get, impl, causal, pass_, lengths):
    """Where hedgehog_split's time falls below softmax's, interpolated log-log between the two
    measured lengths that bracket the sign change."""
    import math
    previous = None
    for t in lengths:
        h, s = get(impl, "hedgehog_split", causal, pass_, t), get(impl, "softmax", causal, pass_, t)
        if not (h and s and h["ms"] and s["ms"]):
            if h and h["ms"] and previous is not None:
                return f"<= {t} (softmax skipped there)"
            continue
        r = math.log(float(h["ms"]) / float(s["ms"]))
        if r < 0:
            if previous is None:
                return f"<= {t} (faster at every measured length)"
            t0, r0 = previous
            x = math.log(t0) + (math.log(t) - math.log(t0)) * r0 / (r0 - r)
            return f"~ {math.exp(x):.0f} (between {t0} and {t})"
        previous = (t, r)
    return "not reached at the measured lengths"


def write(rows, peak, mhz, lengths):
    os.makedirs(os.path.dirname(ARGS.out) or ".", exist_ok=True)
    fields = ["implementation", "variant", "causal", "pass_", "seq_len", "gflop", "ms", "min_ms",
              "max_ms", "peak_mib", "gflops", "note"]
    with open(ARGS.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "gflop": f"{r['gflop']:.3f}"})

    def get(impl, variant, causal, pass_, t):
        for r in rows:
            if (r["implementation"], r["variant"], r["causal"], r["pass_"], r["seq_len"]) == (
                    impl, variant, causal, pass_, t):
                return r
        return None

    lines = [
        f"# Attention: ours against PyTorch {torch.__version__} eager, alternating case by case",
        "",
        f"B={B}, H={H}, d={D}, dv={DV}, chunk {CHUNK}, float32, "
        + (f"on {torch.cuda.get_device_name(0)}" if ARGS.device == "cuda" else f"{ARGS.threads} threads")
        + f"; median of {ARGS.repeats} runs after a warm-up. "
        + ("" if ARGS.device == "cuda" else f"Machine peak ~{peak:.0f} GFLOP/s "
           f"({ARGS.threads} x 32 flop/cycle x {mhz:.0f} MHz). ")
        + "Cells: ms (peak MiB); ratio = ours / "
        "PyTorch eager (below 1: ours is faster); GFLOP/s of ours (and of PyTorch eager).",
        "",
        "Command: `" + " ".join(["python3", "tools/bench_compare.py"] + sys.argv[1:]) + "`",
        "",
    ]
    variants = []
    for r in rows:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    passes = sorted({r["pass_"] for r in rows}, key=["forward", "forward_backward"].index)
    causals = sorted({r["causal"] for r in rows}, reverse=True)

    def cell(r):
        if r is None or not r["ms"]:
            return "skipped"
        mib = f"{float(r['peak_mib']):.0f}" if r["peak_mib"] else "-"
        return f"{float(r['ms']):.1f} ({mib})"

    for pass_ in passes:
        for causal in causals:
            lines += [f"## {'causal' if causal == 'true' else 'non-causal'} {pass_}", ""]
            lines.append("| variant | T | ours | PyTorch eager | SDPA | ours / eager | ours / SDPA | GFLOP/s ours (eager) |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for variant in variants:
                for t in lengths:
                    ours = get("ours", variant, causal, pass_, t)
                    eager = get("torch_eager", variant, causal, pass_, t)
                    sdpa = get("torch_sdpa", variant, causal, pass_, t)
                    if ours is None:
                        continue

                    def ratio(other):
                        if other is None or not other["ms"] or not ours["ms"]:
                            return ""
                        return f"{float(ours['ms']) / float(other['ms']):.2f}"
                    flops = ours["gflops"] or "-"
                    if eager is not None and eager["gflops"]:
                        flops += f" ({eager['gflops']})"
                    lines.append(f"| {variant} | {t} | {cell(ours)} | {cell(eager)} | "
                                 f"{cell(sdpa) if variant == 'softmax' else ''} | {ratio(eager)} | "
                                 f"{ratio(sdpa)} | {flops} |")
            lines.append("")
            for impl, name in (("ours", "ours"), ("torch_eager", "PyTorch eager")):
                lines.append(f"Hedgehog (softmax_split) beats softmax ({name}) from T "
                             f"{crossover(get, impl, causal, pass_, lengths)}.")
            lines.append("")
    with open(ARGS.out + ".md", "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {ARGS.out}.csv and {ARGS.out}.md")


if __name__ == "__main__":
    main()
