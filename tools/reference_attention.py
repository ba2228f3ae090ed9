"""Independent numpy reference for the linear-attention crate (`crates/attention`).

Regenerate the golden fixture (run from the repository root):

    python3 tools/reference_attention.py

This writes ``crates/attention/tests/fixtures/golden.json``.

The equations follow "The Hedgehog & the Porcupine: Expressive Linear
Attentions with Softmax Mimicry" (Zhang et al., arXiv:2402.04347), Section 3,
and the project's shared/docs/method.md:

* softmax attention:  a_ij = softmax_j(q_i . k_j / sqrt(d)), causal mask j > i,
  y_i = sum_j a_ij v_j.
* linear attention:   A_ij = phi_q(q_i) . phi_k(k_j) (zero for j > i if causal),
  w_ij = A_ij / (sum_j A_ij + eps), y_i = sum_j w_ij v_j, eps = 1e-6.
  Final recurrent state over all T tokens: S = sum_j phi_k(k_j)^T v_j  [F, dv],
  z = sum_j phi_k(k_j)  [F].

Everything is float64 and deterministic (np.random.default_rng(20240212)).
Arrays in the JSON are flat row-major lists; their shapes are:

  q, k                      [B, H, T, d]
  v                         [B, H, T, dv]
  softmax.*_output          [B, H, T, dv]
  softmax.*_weights         [B, H, T, T]
  maps[i].query_features    [B, H, T, F]   (also key_features)
  maps[i].*_output          [B, H, T, dv]
  maps[i].state_s           [B, H, F, dv]
  maps[i].state_z           [B, H, F]
  maps[i].params.projection [m, d]                      (performer)
  maps[i].params.*_weight   [H, d, d'] per-head or [d, d'] shared
  maps[i].params.*_bias     [H, d'] per-head or [d'] shared
  distill.student_weights   [B, H, T, T]
  distill.soft_cross_entropy, distill.kl   [B, H]

Floats are written with 12 significant digits; q, k, v and all params are
rounded to 12 digits *before* use, so outputs are consistent with the stored inputs.
"""

import json
import math
import os

import numpy as np

SEED = 20240212
B, H, T, D, DV = 1, 2, 63, 8, 6
EPS = 1e-6
OUT_PATH = os.path.join("crates", "attention", "tests", "fixtures", "golden.json")


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------

def causal_mask(t):
    """Boolean [T, T] mask, True where j <= i (allowed)."""
    return np.tril(np.ones((t, t), dtype=bool))


def softmax_attention(q, k, v, causal):
    """Return (output [B,H,T,dv], weights [B,H,T,T])."""
    d = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
    if causal:
        scores = np.where(causal_mask(q.shape[-2]), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    a = e / e.sum(axis=-1, keepdims=True)
    return a @ v, a


def linear_weights(fq, fk, causal):
    """w_ij = A_ij / (sum_j A_ij + eps), A_ij = fq_i . fk_j (zeroed for j > i if causal)."""
    a = fq @ np.swapaxes(fk, -1, -2)
    if causal:
        a = np.where(causal_mask(fq.shape[-2]), a, 0.0)
    return a / (a.sum(axis=-1, keepdims=True) + EPS)


def linear_attention(fq, fk, v, causal):
    """Quadratic-form linear attention. Returns (output, weights)."""
    w = linear_weights(fq, fk, causal)
    return w @ v, w


def linear_state(fk, v):
    """S = sum_j fk_j^T v_j  [B,H,F,dv];  z = sum_j fk_j  [B,H,F]."""
    s = np.swapaxes(fk, -1, -2) @ v
    z = fk.sum(axis=-2)
    return s, z


def recurrent_causal_linear_attention(fq, fk, v):
    """Token-by-token causal linear attention with running sums (S, z)."""
    b, h, t, f = fq.shape
    s = np.zeros((b, h, f, v.shape[-1]))
    z = np.zeros((b, h, f))
    out = np.zeros(v.shape)
    for i in range(t):
        s = s + fk[:, :, i, :, None] * v[:, :, i, None, :]
        z = z + fk[:, :, i, :]
        num = np.einsum("bhf,bhfe->bhe", fq[:, :, i, :], s)
        den = np.einsum("bhf,bhf->bh", fq[:, :, i, :], z)
        out[:, :, i, :] = num / (den[..., None] + EPS)
    return out, s, z


# ---------------------------------------------------------------------------
# Feature maps (each acts on the last axis of x: [B, H, T, d])
# ---------------------------------------------------------------------------

def phi_elu(x):
    """elu(x) + 1."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def phi_relu(x):
    """max(x, 1e-6)."""
    return np.maximum(x, 1e-6)


def phi_performer(x, projection):
    """m^-1/2 exp(P x~ - |x~|^2 / 2), x~ = x d^-1/4."""
    m, d = projection.shape
    xt = x * d ** -0.25
    proj = xt @ projection.T
    sq = 0.5 * np.sum(xt * xt, axis=-1, keepdims=True)
    return m ** -0.5 * np.exp(proj - sq)


def phi_cosformer(x, max_len):
    """concat(relu(x) sin(pi p / 2M), relu(x) cos(pi p / 2M)), p = t + 1."""
    t = x.shape[-2]
    p = np.arange(1, t + 1, dtype=np.float64)
    angle = (math.pi * p / (2.0 * max_len))[:, None]  # [T, 1]
    r = np.maximum(x, 0.0)
    return np.concatenate([r * np.sin(angle), r * np.cos(angle)], axis=-1)


def phi_exp(x, temp):
    """exp(t x)."""
    return np.exp(temp * x)


def phi_taylor(x):
    """concat(1, x / d^1/4, vec(x x^T) / (sqrt2 sqrt d)), row-major outer product."""
    d = x.shape[-1]
    ones = np.ones(x.shape[:-1] + (1,))
    outer = (x[..., :, None] * x[..., None, :]).reshape(x.shape[:-1] + (d * d,))
    return np.concatenate(
        [ones, x / d ** 0.25, outer / (math.sqrt(2.0) * math.sqrt(d))], axis=-1)


def phi_taylor_compressed(x):
    """concat(1, x / d^1/4, upper triangle i<=j of x x^T with diag / (sqrt2 sqrt d), off-diag / sqrt d)."""
    d = x.shape[-1]
    ones = np.ones(x.shape[:-1] + (1,))
    quad = []
    for i in range(d):
        for j in range(i, d):
            scale = math.sqrt(2.0) * math.sqrt(d) if i == j else math.sqrt(d)
            quad.append(x[..., i] * x[..., j] / scale)
    return np.concatenate([ones, x / d ** 0.25, np.stack(quad, axis=-1)], axis=-1)


def affine(x, weight, bias, per_head):
    """y = x @ W + b; per-head W [H,d,d'], b [H,d'] (head h uses W[h], b[h])."""
    if per_head:
        return np.einsum("bhtd,hde->bhte", x, weight) + bias[None, :, None, :]
    return x @ weight + bias


def softmax_last(y):
    y = y - y.max(axis=-1, keepdims=True)
    e = np.exp(y)
    return e / e.sum(axis=-1, keepdims=True)


def phi_hedgehog(x, weight, bias, activation, per_head):
    y = affine(x, weight, bias, per_head)
    if activation == "exp":
        return np.concatenate([np.exp(y), np.exp(-y)], axis=-1)
    if activation == "softmax_split":
        return np.concatenate([softmax_last(y), softmax_last(-y)], axis=-1)
    if activation == "softmax_joint":
        return softmax_last(np.concatenate([2.0 * y, -2.0 * y], axis=-1))
    raise ValueError(activation)


def phi_t2r(x, weight, bias, per_head):
    """max(x @ W + b, 0)."""
    return np.maximum(affine(x, weight, bias, per_head), 0.0)


def draw_affine(rng, d, d_out, heads):
    """W = I_rect + 0.3 N(0,1), b = 0.1 N(0,1); heads=None for shared weights."""
    eye = np.eye(d, d_out)
    if heads is None:
        w = eye + 0.3 * rng.standard_normal((d, d_out))
        b = 0.1 * rng.standard_normal(d_out)
    else:
        w = eye[None] + 0.3 * rng.standard_normal((heads, d, d_out))
        b = 0.1 * rng.standard_normal((heads, d_out))
    return round12(w), round12(b)


def draw_qk_params(rng, d, d_out, heads):
    qw, qb = draw_affine(rng, d, d_out, heads)
    kw, kb = draw_affine(rng, d, d_out, heads)
    return {"query_weight": qw, "query_bias": qb, "key_weight": kw, "key_bias": kb}


# ---------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------

def round12(a):
    """Round every entry to 12 significant digits (what the JSON stores).

    Inputs and parameters are rounded *before* use, so the stored outputs are
    exactly the float64 result of the stored inputs.
    """
    a = np.asarray(a, dtype=np.float64)
    return np.array([float(f"{x:.11e}") for x in a.reshape(-1)]).reshape(a.shape)


def flat(a):
    """Flat row-major list of floats rounded to 12 significant digits."""
    return round12(a).reshape(-1).tolist()


def build_maps(rng):
    """Return a list of (name, config, params(np), phi_q, phi_k)."""
    maps = []

    def tied(name, config, fn, params=None):
        maps.append((name, config, params or {}, fn, fn))

    tied("elu", {"kind": "elu"}, phi_elu)
    tied("relu", {"kind": "relu"}, phi_relu)

    projection = round12(rng.standard_normal((16, D)))
    tied("performer", {"kind": "performer", "num_features": 16, "seed": 0},
         lambda x: phi_performer(x, projection), {"projection": projection})

    tied("cosformer", {"kind": "cosformer", "max_len": 100},
         lambda x: phi_cosformer(x, 100))
    tied("exp_t1", {"kind": "exp", "t": 1.0}, lambda x: phi_exp(x, 1.0))
    tied("exp_t2", {"kind": "exp", "t": 2.0}, lambda x: phi_exp(x, 2.0))
    tied("taylor", {"kind": "taylor", "compressed": False}, phi_taylor)
    tied("taylor_compressed", {"kind": "taylor", "compressed": True}, phi_taylor_compressed)

    for name, activation, per_head in [
        ("hedgehog_exp", "exp", True),
        ("hedgehog_softmax_split", "softmax_split", True),
        ("hedgehog_softmax_joint", "softmax_joint", False),
    ]:
        p = draw_qk_params(rng, D, 5, H if per_head else None)
        config = {"kind": "hedgehog", "activation": activation,
                  "feature_dim": 5, "per_head": per_head}
        fq = (lambda p, a, ph: lambda x: phi_hedgehog(
            x, p["query_weight"], p["query_bias"], a, ph))(p, activation, per_head)
        fk = (lambda p, a, ph: lambda x: phi_hedgehog(
            x, p["key_weight"], p["key_bias"], a, ph))(p, activation, per_head)
        maps.append((name, config, p, fq, fk))

    p = draw_qk_params(rng, D, 7, H)
    maps.append(("t2r", {"kind": "t2r", "feature_dim": 7, "per_head": True}, p,
                 lambda x: phi_t2r(x, p["query_weight"], p["query_bias"], True),
                 lambda x: phi_t2r(x, p["key_weight"], p["key_bias"], True)))
    return maps


def check_taylor(q, k):
    """phi(q) . phi(k) == 1 + s + s^2 / 2, s = q . k / sqrt(d), both variants."""
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    expected = 1.0 + s + 0.5 * s * s
    for fn in (phi_taylor, phi_taylor_compressed):
        got = fn(q) @ np.swapaxes(fn(k), -1, -2)
        err = np.max(np.abs(got - expected))
        assert err < 1e-10, (fn.__name__, err)


def safe_log(x):
    """log(x) where x > 0, 0 elsewhere (those entries are always multiplied by a_ij == 0)."""
    return np.log(np.where(x > 0, x, 1.0))


def main():
    rng = np.random.default_rng(SEED)
    q = round12(1.2 * rng.standard_normal((B, H, T, D)))
    k = round12(1.2 * rng.standard_normal((B, H, T, D)))
    v = round12(rng.standard_normal((B, H, T, DV)))

    check_taylor(q, k)

    sm_causal_out, sm_causal_w = softmax_attention(q, k, v, causal=True)
    sm_nc_out, sm_nc_w = softmax_attention(q, k, v, causal=False)
    assert np.allclose(sm_causal_w.sum(-1), 1.0) and np.allclose(sm_nc_w.sum(-1), 1.0)

    out = {
        "generator": "tools/reference_attention.py",
        "command": "python3 tools/reference_attention.py",
        "batch": B, "heads": H, "seq_len": T, "head_dim": D, "value_dim": DV,
        "eps": EPS,
        "q": flat(q), "k": flat(k), "v": flat(v),
        "softmax": {
            "causal_output": flat(sm_causal_out),
            "noncausal_output": flat(sm_nc_out),
            "causal_weights": flat(sm_causal_w),
            "noncausal_weights": flat(sm_nc_w),
        },
        "maps": [],
    }

    student_w = None
    for name, config, params, phi_q, phi_k in build_maps(rng):
        fq, fk = phi_q(q), phi_k(k)
        f = fq.shape[-1]
        assert fk.shape == (B, H, T, f)
        causal_out, causal_w = linear_attention(fq, fk, v, causal=True)
        nc_out, _ = linear_attention(fq, fk, v, causal=False)
        s, z = linear_state(fk, v)

        rec_out, rec_s, rec_z = recurrent_causal_linear_attention(fq, fk, v)
        err = np.max(np.abs(rec_out - causal_out))
        assert err < 1e-10, (name, "recurrent vs quadratic", err)
        scale = max(1.0, np.max(np.abs(s)), np.max(np.abs(z)))
        assert np.max(np.abs(rec_s - s)) < 1e-10 * scale, name
        assert np.max(np.abs(rec_z - z)) < 1e-10 * scale, name

        if name == "hedgehog_exp":
            student_w = causal_w

        out["maps"].append({
            "name": name, "config": config,
            "params": {key: flat(val) for key, val in params.items()},
            "feature_dim": f,
            "query_features": flat(fq), "key_features": flat(fk),
            "causal_output": flat(causal_out), "noncausal_output": flat(nc_out),
            "state_s": flat(s), "state_z": flat(z),
        })

    # Distillation losses between softmax (teacher) and hedgehog_exp (student), causal.
    a = sm_causal_w
    allowed = np.broadcast_to(causal_mask(T), a.shape)
    assert np.all(student_w[allowed] > 0) and np.all(a[allowed] > 0)
    terms_ce = np.where(a > 0, -a * safe_log(student_w), 0.0)
    terms_kl = np.where(a > 0, a * (safe_log(a) - safe_log(student_w)), 0.0)
    ce = terms_ce.sum(-1).mean(-1)  # [B, H]
    kl = terms_kl.sum(-1).mean(-1)  # [B, H]
    assert np.all(kl >= -1e-12)
    out["distill"] = {
        "student": "hedgehog_exp", "causal": True,
        "student_weights": flat(student_w),
        "soft_cross_entropy": flat(ce),
        "kl": flat(kl),
    }

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as fh:
        json.dump(out, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {OUT_PATH} ({os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
