"""PyTorch eager implementations of the attention the Rust benchmark times, for the side-by-side
comparison in tools/bench_compare.py (PyTorch is the anchor, not a dependency of hedgehog).

Shapes: q, k [B, H, T, d], v [B, H, T, dv], float32. The same math as hedgehog-attention:

* softmax eager: scores = q k^T / sqrt(d), causal mask (-inf above the diagonal), softmax, @ v;
  softmax SDPA: torch.nn.functional.scaled_dot_product_attention.
* linear maps (method.md §2): 1+ELU; Taylor-2 [1, x/d^(1/4), vec(x x^T)/(sqrt2 sqrt d)]
  (1 + d + d^2 features); Hedgehog exp / softmax_split / softmax_joint with per-head
  W [H, d, d'] (identity init), b zeros, separate query and key maps.
* causal: the chunked form (chunk 64): intra-chunk masked quadratic, exclusive prefix sums of
  the per-chunk states; non-causal: the parallel form phi(Q) (phi(K)^T V).

`check()` verifies chunked == quadratic and eager == SDPA before anything is timed.
"""

import math

import torch
import torch.nn.functional as Fn

CHUNK = 64
EPS = 1e-6

LINEAR_VARIANTS = ("elu", "taylor", "hedgehog_exp", "hedgehog_split", "hedgehog_joint")
VARIANTS = ("softmax",) + LINEAR_VARIANTS


def softmax_eager(q, k, v, causal):
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def softmax_sdpa(q, k, v, causal):
    return Fn.scaled_dot_product_attention(q, k, v, is_causal=causal)


def feature_dim(variant, d):
    if variant == "taylor":
        return 1 + d + d * d
    if variant.startswith("hedgehog"):
        return 2 * d
    return d


def make_params(variant, heads, d, requires_grad):
    """Per-head (W, b) for the query and the key map of a Hedgehog variant; [] otherwise."""
    if not variant.startswith("hedgehog"):
        return []
    eye = torch.eye(d, dtype=torch.float32).expand(heads, d, d).contiguous()
    params = [eye.clone(), torch.zeros(heads, d), eye.clone(), torch.zeros(heads, d)]
    for p in params:
        p.requires_grad_(requires_grad)
    return params


def feature_map(variant, x, w=None, b=None):
    d = x.shape[-1]
    if variant == "elu":
        return Fn.elu(x) + 1
    if variant == "taylor":
        outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (math.sqrt(2) * math.sqrt(d))
        ones = torch.ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
        return torch.cat([ones, x / d ** 0.25, outer], dim=-1)
    y = torch.einsum("bhtd,hde->bhte", x, w) + b[None, :, None, :]
    if variant == "hedgehog_exp":
        return torch.cat([torch.exp(y), torch.exp(-y)], dim=-1)
    if variant == "hedgehog_split":
        return torch.cat([torch.softmax(y, dim=-1), torch.softmax(-y, dim=-1)], dim=-1)
    if variant == "hedgehog_joint":
        return torch.softmax(torch.cat([2 * y, -2 * y], dim=-1), dim=-1)
    raise ValueError(f"unknown variant {variant}")


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


def linear_attention(variant, q, k, v, params, causal):
    if params:
        wq, bq, wk, bk = params
        fq, fk = feature_map(variant, q, wq, bq), feature_map(variant, k, wk, bk)
    else:
        fq, fk = feature_map(variant, q), feature_map(variant, k)
    if causal:
        return linear_causal_chunked(fq, fk, v)
    return linear_noncausal(fq, fk, v)


def attention_fn(variant, impl, q, k, v, params, causal):
    """A zero-argument callable computing the case's output."""
    if variant == "softmax":
        fn = softmax_sdpa if impl == "torch_sdpa" else softmax_eager
        return lambda: fn(q, k, v, causal)
    return lambda: linear_attention(variant, q, k, v, params, causal)


def check(tol=1e-4, seed=1):
    """Chunked == quadratic for every linear variant, eager == SDPA; raises on a mismatch."""
    g = torch.Generator().manual_seed(seed)
    b, h, t, d = 1, 2, 100, 8
    q, k, v = (torch.randn(b, h, t, d, generator=g) for _ in range(3))
    with torch.no_grad():
        for causal in (True, False):
            diff = (softmax_eager(q, k, v, causal) - softmax_sdpa(q, k, v, causal)).abs().max().item()
            if not diff < tol:
                raise AssertionError(f"softmax eager vs SDPA (causal={causal}): {diff:.3e}")
        for variant in LINEAR_VARIANTS:
            params = [p + 0.1 * torch.randn(p.shape, generator=g) for p in make_params(variant, h, d, False)]
            if params:
                wq, bq, wk, bk = params
                fq, fk = feature_map(variant, q, wq, bq), feature_map(variant, k, wk, bk)
            else:
                fq, fk = feature_map(variant, q), feature_map(variant, k)
            assert fq.shape[-1] == feature_dim(variant, d), variant
            for causal in (True, False):
                fast = linear_causal_chunked(fq, fk, v) if causal else linear_noncausal(fq, fk, v)
                diff = (fast - linear_quadratic(fq, fk, v, causal)).abs().max().item()
                if not diff < tol:
                    raise AssertionError(f"{variant} (causal={causal}) fast vs quadratic: {diff:.3e}")
