#!/usr/bin/env python3
"""PyTorch CPU reference benchmark: softmax attention vs. Hedgehog linear attention.

Usage:

    python3 tools/bench_torch.py --out results/bench/torch_cpu.csv

Options: --threads N (default 2), --lengths 256,1024,4096,16384, --repeats 3,
--max-gib 6, --seed 0.

Shapes: B=1, H=12, d=64, dv=64, float32, CPU only.

Variants / implementations:
  * softmax / torch_eager : explicit math, scores = q@k^T/sqrt(d), causal mask
    (-inf above the diagonal), softmax, @v.
  * softmax / torch_sdpa  : torch.nn.functional.scaled_dot_product_attention
    (is_causal flag).
  * hedgehog / torch_eager: Hedgehog linear attention with feature map
    phi(x) = concat(softmax(xW+b), softmax(-(xW+b))) (per-head W [H,64,64],
    identity-init, b zeros, separate query/key maps; F = 128).
      non-causal: y = (phi_q @ (phi_k^T @ v)) / (phi_q . sum_t phi_k + 1e-6)
      causal    : chunked form, chunk size 64 (zero padding), exclusive prefix
                  sums of per-chunk states over chunks.

Passes: "forward" (run under torch.no_grad()) and "forward_backward"
(forward, then y.sum().backward() with q, k, v and W, b requiring grad).
Each case: one warm-up run, then the median of --repeats runs timed with
time.perf_counter.

peak_rss_mib is the process RSS high-water mark (ru_maxrss) after the case,
i.e. "peak for the process so far"; the note column holds the increase of the
high-water mark during the case (hwm_delta_mib), which is 0 when the case did
not exceed an earlier peak, and the 1-minute load average after the case
(loadavg1): with --threads equal to the core count, any concurrent CPU load
(e.g. a cargo build) can inflate timings by 10-50x, so check it.

Softmax cases whose materialised T x T matrices would exceed --max-gib
(estimate: 4 bytes * B*H*T^2 * (3 forward, 6 forward_backward)) are skipped;
SDPA forward is never skipped by that rule (it need not materialise T x T),
SDPA forward_backward is.

Before timing, correctness is checked once at T=100: chunked causal Hedgehog
vs. quadratic masked linear attention, and softmax eager vs. SDPA (causal and
non-causal); max abs diff must be < 1e-4 or the script aborts.
"""

import argparse
import csv
import math
import os
import resource
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/bench/torch_cpu.csv")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lengths", default="256,1024,4096,16384")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-gib", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


ARGS = parse_args()
# Keep OpenMP/MKL pools at the requested size even before torch starts them.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(ARGS.threads))

import torch  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402

B, H, D, DV = 1, 12, 64, 64
CHUNK = 64
EPS = 1e-6
DTYPE = torch.float32


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def maxrss_mib():
    # Linux: ru_maxrss is in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------
# Softmax attention
# --------------------------------------------------------------------------

def softmax_eager(q, k, v, causal):
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return p @ v


def softmax_sdpa(q, k, v, causal):
    return Fn.scaled_dot_product_attention(q, k, v, is_causal=causal)


# --------------------------------------------------------------------------
# Hedgehog linear attention
# --------------------------------------------------------------------------

def hedgehog_feature(x, w, b):
    """x [B,H,T,d], w [H,d,d], b [H,d] -> [B,H,T,2d]."""
    z = torch.einsum("bhtd,hde->bhte", x, w) + b[None, :, None, :]
    return torch.cat([torch.softmax(z, dim=-1), torch.softmax(-z, dim=-1)], dim=-1)


def linear_noncausal(fq, fk, v):
    kv = fk.transpose(-2, -1) @ v                      # [B,H,F,dv]
    ksum = fk.sum(dim=-2)                              # [B,H,F]
    num = fq @ kv                                      # [B,H,T,dv]
    den = (fq * ksum[..., None, :]).sum(dim=-1) + EPS  # [B,H,T]
    return num / den[..., None]


def linear_causal_chunked(fq, fk, v, chunk=CHUNK):
    b, h, t, f = fq.shape
    dv = v.shape[-1]
    pad = (-t) % chunk
    if pad:
        fq = Fn.pad(fq, (0, 0, 0, pad))
        fk = Fn.pad(fk, (0, 0, 0, pad))
        v = Fn.pad(v, (0, 0, 0, pad))
    n = (t + pad) // chunk
    fq = fq.reshape(b, h, n, chunk, f)
    fk = fk.reshape(b, h, n, chunk, f)
    v = v.reshape(b, h, n, chunk, dv)

    kv = fk.transpose(-2, -1) @ v                      # [B,H,N,F,dv]
    z = fk.sum(dim=-2)                                 # [B,H,N,F]
    s_prev = kv.cumsum(dim=2) - kv                     # exclusive prefix
    z_prev = z.cumsum(dim=2) - z

    a = (fq @ fk.transpose(-2, -1)).tril()             # [B,H,N,C,C]
    num = a @ v + fq @ s_prev                          # [B,H,N,C,dv]
    den = a.sum(dim=-1) + (fq * z_prev[..., None, :]).sum(dim=-1) + EPS
    y = num / den[..., None]
    return y.reshape(b, h, n * chunk, dv)[:, :, :t]


def linear_quadratic(fq, fk, v, causal):
    a = fq @ fk.transpose(-2, -1)
    if causal:
        a = a.tril()
    return (a @ v) / (a.sum(dim=-1, keepdim=True) + EPS)


def hedgehog(q, k, v, params, causal):
    wq, bq, wk, bk = params
    fq = hedgehog_feature(q, wq, bq)
    fk = hedgehog_feature(k, wk, bk)
    if causal:
        return linear_causal_chunked(fq, fk, v)
    return linear_noncausal(fq, fk, v)


def make_hedgehog_params(requires_grad):
    eye = torch.eye(D, dtype=DTYPE).expand(H, D, D).contiguous()
    params = [eye.clone(), torch.zeros(H, D, dtype=DTYPE),
              eye.clone(), torch.zeros(H, D, dtype=DTYPE)]
    for p in params:
        p.requires_grad_(requires_grad)
    return params


# --------------------------------------------------------------------------
# Correctness check
# --------------------------------------------------------------------------

def verify(tol=1e-4):
    g = torch.Generator().manual_seed(ARGS.seed + 1)
    t = 100
    q = torch.randn(B, H, t, D, generator=g, dtype=DTYPE)
    k = torch.randn(B, H, t, D, generator=g, dtype=DTYPE)
    v = torch.randn(B, H, t, DV, generator=g, dtype=DTYPE)
    failures = []
    with torch.no_grad():
        for causal in (True, False):
            diff = (softmax_eager(q, k, v, causal) - softmax_sdpa(q, k, v, causal)).abs().max().item()
            log(f"[verify] softmax eager vs sdpa causal={causal}: max abs diff {diff:.3e}")
            if not diff < tol:
                failures.append(f"softmax eager vs sdpa (causal={causal}) diff {diff:.3e}")

        # identity-init params (as benchmarked) and a perturbed set
        p0 = make_hedgehog_params(False)
        p1 = [p + 0.1 * torch.randn(p.shape, generator=g, dtype=DTYPE) for p in p0]
        for name, (wq, bq, wk, bk) in (("identity-init", p0), ("perturbed", p1)):
            fq = hedgehog_feature(q, wq, bq)
            fk = hedgehog_feature(k, wk, bk)
            diff = (linear_causal_chunked(fq, fk, v) - linear_quadratic(fq, fk, v, True)).abs().max().item()
            log(f"[verify] hedgehog chunked causal vs quadratic ({name}): max abs diff {diff:.3e}")
            if not diff < tol:
                failures.append(f"hedgehog causal chunked vs quadratic ({name}) diff {diff:.3e}")
            diff = (linear_noncausal(fq, fk, v) - linear_quadratic(fq, fk, v, False)).abs().max().item()
            log(f"[verify] hedgehog non-causal vs quadratic ({name}): max abs diff {diff:.3e}")
            if not diff < tol:
                failures.append(f"hedgehog non-causal vs quadratic ({name}) diff {diff:.3e}")
    if failures:
        log("CORRECTNESS CHECK FAILED: " + "; ".join(failures))
        sys.exit(1)
    log("[verify] all checks passed (tol 1e-4)")


# --------------------------------------------------------------------------
# Benchmark driver
# --------------------------------------------------------------------------

def softmax_est_gib(t, pass_):
    factor = 3 if pass_ == "forward" else 6
    return 4.0 * B * H * t * t * factor / 2**30


def run_case(variant, impl, causal, pass_, t, gen):
    backward = pass_ == "forward_backward"
    q = torch.randn(B, H, t, D, generator=gen, dtype=DTYPE).requires_grad_(backward)
    k = torch.randn(B, H, t, D, generator=gen, dtype=DTYPE).requires_grad_(backward)
    v = torch.randn(B, H, t, DV, generator=gen, dtype=DTYPE).requires_grad_(backward)
    leaves = [q, k, v]
    if variant == "hedgehog":
        params = make_hedgehog_params(backward)
        leaves += params
        fn = lambda: hedgehog(q, k, v, params, causal)  # noqa: E731
    elif impl == "torch_eager":
        fn = lambda: softmax_eager(q, k, v, causal)  # noqa: E731
    else:
        fn = lambda: softmax_sdpa(q, k, v, causal)  # noqa: E731

    def once():
        if backward:
            for x in leaves:
                x.grad = None
            t0 = time.perf_counter()
            y = fn()
            y.sum().backward()
            return time.perf_counter() - t0
        with torch.no_grad():
            t0 = time.perf_counter()
            y = fn()
            dt = time.perf_counter() - t0
        del y
        return dt

    once()  # warm-up
    times = [once() for _ in range(ARGS.repeats)]
    return statistics.median(times) * 1e3


def main():
    torch.set_num_threads(ARGS.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    lengths = [int(x) for x in ARGS.lengths.split(",") if x.strip()]
    log(f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
        f"B={B} H={H} d={D} dv={DV} float32, lengths={lengths}, repeats={ARGS.repeats}, "
        f"max_gib={ARGS.max_gib}")
    verify()

    out_dir = os.path.dirname(ARGS.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)

    cases = []
    for variant, impl in (("softmax", "torch_eager"), ("softmax", "torch_sdpa"),
                          ("hedgehog", "torch_eager")):
        for causal in (True, False):
            for pass_ in ("forward", "forward_backward"):
                for t in lengths:
                    cases.append((variant, impl, causal, pass_, t))

    gen = torch.Generator().manual_seed(ARGS.seed)
    t_start = time.perf_counter()
    with open(ARGS.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["implementation", "variant", "causal", "pass", "seq_len",
                    "ms", "peak_rss_mib", "note"])
        fh.flush()
        for i, (variant, impl, causal, pass_, t) in enumerate(cases, 1):
            tag = f"[{i}/{len(cases)}] {impl} {variant} causal={causal} {pass_} T={t}"
            causal_s = "true" if causal else "false"
            if variant == "softmax":
                est = softmax_est_gib(t, pass_)
                skip = est > ARGS.max_gib and (impl == "torch_eager" or pass_ == "forward_backward")
                if skip:
                    note = f"skipped: estimated memory {est:.1f} GiB"
                    log(f"{tag}: SKIPPED (estimated T x T memory 4 B * B*H*T^2 * "
                        f"{3 if pass_ == 'forward' else 6} = {est:.1f} GiB > --max-gib {ARGS.max_gib})")
                    w.writerow([impl, variant, causal_s, pass_, t, "", "", note])
                    fh.flush()
                    continue
            rss0 = maxrss_mib()
            c0 = time.perf_counter()
            ms = run_case(variant, impl, causal, pass_, t, gen)
            rss1 = maxrss_mib()
            log(f"{tag}: {ms:.3f} ms (case wall {time.perf_counter() - c0:.1f} s, "
                f"peak rss {rss1:.0f} MiB, +{rss1 - rss0:.0f})")
            load1 = os.getloadavg()[0]
            w.writerow([impl, variant, causal_s, pass_, t, f"{ms:.3f}", f"{rss1:.1f}",
                        f"hwm_delta_mib={rss1 - rss0:.1f}; loadavg1={load1:.2f}"])
            fh.flush()
    log(f"done in {time.perf_counter() - t_start:.1f} s; wrote {ARGS.out}")


if __name__ == "__main__":
    main()
