"""Independent numpy/scipy reference for the attention measures of `crates/analysis`.

Regenerate the fixture (run from the repository root):

    python3 tools/reference_analysis.py

This writes ``crates/analysis/tests/fixtures/measures.json``; the Rust test
``crates/analysis/tests/measures_reference.rs`` feeds the same inputs to
``AttentionAnalyzer`` and compares every number to 1e-9 relative.

The measures follow shared/docs/method.md section 5 ("The two properties, measured"):

* valid entries: query row i < length_b, key j < length_b, and j <= i when causal;
* entropy  H_i = -sum_j w_ij ln w_ij over valid keys (nats, 0 ln 0 = 0), per row;
* KL(a || a_hat) = sum_j a_ij (ln a_ij - ln max(a_hat_ij, 1e-12)), per row;
* Spearman rho (scipy.stats.spearmanr, average ranks for ties) between the weights
  and the scores q.k/sqrt(d) within each row; rows with < 3 valid keys or constant
  weights or scores are skipped;
* all of these averaged over the valid rows of every batch, per (layer, head);
* monotonicity curves, per query row: with r = argmax_j s_j (the first maximum),
  entry j is at x = s_j - s_r and has y = w_j / w_r for the teacher, the student and
  the kernel each; a row whose w_r is not positive is skipped for that series and
  counted. Equal-width bins over [lo, min(hi, 0)] (default: [lowest x of the first
  batch, 0], [-1, 0] if that is 0); bin = floor((x - lo) / (hi - lo) * bins), x = hi in
  the last bin, entries outside [lo, hi] in no bin and counted; the mean y per bin over
  all valid entries of all rows, per layer and over every layer;
* summaries: means over heads (per layer) and over every (layer, head), leaving out
  heads where a value is undefined.

Inputs are float32, as the Rust API takes them: every input is written as the shortest
decimal of its float32 value and re-read through float64 -> float32 (what serde_json
does), and the measures are computed in float64 from exactly those values. Invalid
(padding or masked) entries hold garbage (scores 1e6, weights -1) that must be ignored.
"""

import json
import os

import numpy as np
from scipy.stats import spearmanr

OUT = os.path.join("crates", "analysis", "tests", "fixtures", "measures.json")
GARBAGE_SCORE = 1.0e6
GARBAGE_WEIGHT = -1.0


def as_f32(values):
    """Round-trip through the decimal text written to JSON, as serde_json reads it."""
    text = [str(np.float32(v)) for v in np.asarray(values, dtype=np.float32).ravel()]
    back = np.array([np.float32(float(t)) for t in text], dtype=np.float32)
    return back.reshape(np.shape(values)), [float(t) for t in text]


def valid_mask(shape, causal, lengths):
    b_n, _, t, s = shape
    mask = np.zeros((b_n, t, s), dtype=bool)
    for b in range(b_n):
        n = t if lengths is None else lengths[b]
        for i in range(min(n, t)):
            for j in range(min(n, s)):
                if not causal or j <= i:
                    mask[b, i, j] = True
    return mask


def feature(kind, x):
    if kind == "elu":
        return np.where(x > 0, x + 1.0, np.exp(x))
    if kind == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(kind)


def make_batch(rng, layer, heads, t, d, causal, lengths, scale, feature_map):
    """Random q, k per head; softmax teacher, and the student/kernel of `feature_map`."""
    b_n = 2 if lengths is None else len(lengths)
    shape = (b_n, heads, t, t)
    head_scale = scale * np.linspace(0.6, 1.6, heads)[None, :, None, None]
    q = rng.standard_normal((b_n, heads, t, d)) * head_scale
    k = rng.standard_normal((b_n, heads, t, d))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    mask = valid_mask(shape, causal, lengths)[:, None, :, :]
    mask = np.broadcast_to(mask, shape)
    masked = np.where(mask, scores, -np.inf)
    row_max = np.max(masked, axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.where(mask, np.exp(masked - row_max), 0.0)
    denom = e.sum(-1, keepdims=True)
    teacher = np.where(mask, e / np.where(denom > 0, denom, 1.0), GARBAGE_WEIGHT)
    batch = {
        "layer": layer,
        "shape": list(shape),
        "causal": causal,
        "lengths": lengths,
        "teacher": teacher,
        "scores": np.where(mask, scores, GARBAGE_SCORE),
        "student": None,
        "kernel": None,
    }
    if feature_map is not None:
        kernel = feature(feature_map, q) @ feature(feature_map, k).transpose(0, 1, 3, 2)
        kernel = np.where(mask, kernel, 0.0)
        ksum = kernel.sum(-1, keepdims=True)
        student = kernel / np.where(ksum > 0, ksum, 1.0)
        batch["student"] = np.where(mask, student, GARBAGE_WEIGHT)
        batch["kernel"] = np.where(mask, kernel, GARBAGE_WEIGHT)
    return batch


def freeze(batch):
    """float32 inputs as Rust sees them, plus their JSON form."""
    arrays, json_batch = {}, {k: batch[k] for k in ("layer", "shape", "causal", "lengths")}
    for key in ("teacher", "student", "kernel", "scores"):
        if batch[key] is None:
            arrays[key], json_batch[key] = None, None
        else:
            arrays[key], json_batch[key] = as_f32(batch[key])
            arrays[key] = arrays[key].astype(np.float64)
    return arrays, json_batch


def rho(x, y):
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(spearmanr(x, y).statistic)


def entropy(w):
    w = w[w > 0]
    return float(-(w * np.log(w)).sum())


def kl(a, s):
    keep = a > 0
    a, s = a[keep], s[keep]
    return float((a * (np.log(a) - np.log(np.maximum(s, 1e-12)))).sum())


def mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


SERIES = (("t", "teacher"), ("s", "student"), ("k", "kernel"))


def empty_curve(bins):
    curve = {key: [[] for _ in range(bins)] for key, _ in SERIES}
    curve.update(count=np.zeros(bins, dtype=np.int64), outside=0,
                 skipped={key: 0 for key, _ in SERIES})
    return curve


def default_range(scores, mask):
    """[lowest centred score of the batch's valid entries, 0]; [-1, 0] if that is 0."""
    lowest = 0.0
    b_n, heads, t, _ = scores.shape
    for b in range(b_n):
        for h in range(heads):
            for i in range(t):
                s = scores[b, h, i][mask[b, i]]
                if s.size:
                    lowest = min(lowest, float(s.min() - s.max()))
    return (lowest, 0.0) if lowest < 0.0 else (-1.0, 0.0)


def add_row(curve, s, weights, lo, hi, bins):
    """One row's entries into `curve`: y = w / w[top] at x = s - s[top], top = first argmax."""
    top = int(np.argmax(s))
    x = s - s[top]
    inside = (x >= lo) & (x <= hi)
    idx = np.minimum(np.floor((x - lo) / (hi - lo) * bins), bins - 1).astype(int)
    curve["outside"] += int((~inside).sum())
    for bin_ in idx[inside]:
        curve["count"][bin_] += 1
    for key, _ in SERIES:
        w = weights[key]
        if w is None:
            continue
        if not w[top] > 0:
            curve["skipped"][key] += 1
            continue
        for n in np.flatnonzero(inside):
            curve[key][idx[n]].append(w[n] / w[top])


def analyse(case):
    layers, heads, bins = case["layers"], case["heads"], case["bins"]
    score_range = case["score_range"]
    per_head = {
        (l, h): {"rows": 0, "te": [], "se": [], "kl": [], "tr": [], "sr": [], "kr": []}
        for l in range(layers)
        for h in range(heads)
    }
    curves = {l: empty_curve(bins) for l in range(layers)}
    for arrays, meta in case["frozen"]:
        shape, causal, lengths = meta["shape"], meta["causal"], meta["lengths"]
        mask = valid_mask(shape, causal, lengths)
        if score_range is None:
            score_range = default_range(arrays["scores"], mask)
        lo, hi = score_range[0], min(score_range[1], 0.0)
        layer = meta["layer"]
        b_n, _, t, _ = shape
        for b in range(b_n):
            for h in range(heads):
                for i in range(t):
                    keys = mask[b, i]
                    if not keys.any():
                        continue
                    acc = per_head[(layer, h)]
                    a = arrays["teacher"][b, h, i][keys]
                    s = arrays["scores"][b, h, i][keys]
                    acc["rows"] += 1
                    acc["te"].append(entropy(a))
                    acc["tr"].append(rho(a, s))
                    st = kr = None
                    if arrays["student"] is not None:
                        st = arrays["student"][b, h, i][keys]
                        acc["se"].append(entropy(st))
                        acc["kl"].append(kl(a, st))
                        acc["sr"].append(rho(st, s))
                    if arrays["kernel"] is not None:
                        kr = arrays["kernel"][b, h, i][keys]
                        acc["kr"].append(rho(kr, s))
                    add_row(curves[layer], s, {"t": a, "s": st, "k": kr}, lo, hi, bins)

    lo, hi = (score_range[0], min(score_range[1], 0.0)) if score_range else (-1.0, 0.0)
    edges = [lo + (hi - lo) * e / bins for e in range(bins + 1)]

    def bin_means(lists):
        return [float(np.mean(v)) if v else None for v in lists]

    def curve_json(parts):
        return {
            "edges": edges,
            "count": [int(c) for c in parts["count"]],
            "teacher": bin_means(parts["t"]),
            "student": bin_means(parts["s"]),
            "kernel": bin_means(parts["k"]),
            "outside": int(parts["outside"]),
            "skipped_rows": {name: int(parts["skipped"][key]) for key, name in SERIES},
        }

    def summary(stats):
        keys = ["teacher_entropy", "student_entropy", "kl",
                "teacher_spearman", "student_spearman", "kernel_spearman"]
        return {k: mean_or_none([s[k] for s in stats]) for k in keys}

    def rho_mean(values):
        defined = [v for v in values if v is not None]
        return (float(np.mean(defined)) if defined else None), len(defined)

    out_layers, all_stats = [], []
    pooled = empty_curve(bins)
    for l in range(layers):
        heads_json = []
        for h in range(heads):
            acc = per_head[(l, h)]
            tr, trn = rho_mean(acc["tr"])
            sr, srn = rho_mean(acc["sr"])
            kr, krn = rho_mean(acc["kr"])
            heads_json.append({
                "layer": l,
                "head": h,
                "rows": acc["rows"],
                "teacher_entropy": mean_or_none(acc["te"]),
                "student_entropy": mean_or_none(acc["se"]),
                "kl": mean_or_none(acc["kl"]),
                "teacher_spearman": tr,
                "student_spearman": sr,
                "kernel_spearman": kr,
                "spearman_rows": {"teacher": trn, "student": srn, "kernel": krn},
            })
        all_stats.extend(heads_json)
        out_layers.append({
            "layer": l,
            "heads": heads_json,
            "summary": summary(heads_json),
            "row_curve": curve_json(curves[l]),
        })
        pooled["count"] += curves[l]["count"]
        pooled["outside"] += curves[l]["outside"]
        for key, _ in SERIES:
            pooled["skipped"][key] += curves[l]["skipped"][key]
            for bin_ in range(bins):
                pooled[key][bin_].extend(curves[l][key][bin_])
    return {
        "attention": case["attention"],
        "layers": out_layers,
        "row_curve": curve_json(pooled),
        "summary": summary(all_stats),
        "example": None,
    }


def build_case(rng, name, attention, layers, heads, bins, score_range, batches):
    frozen, inputs = [], []
    for spec in batches:
        arrays, json_batch = freeze(make_batch(rng, heads=heads, **spec))
        frozen.append((arrays, json_batch))
        inputs.append(json_batch)
    case = {"attention": attention, "layers": layers, "heads": heads, "bins": bins,
            "score_range": score_range, "frozen": frozen}
    return {
        "name": name,
        "layers": layers,
        "heads": heads,
        "config": {"bins": bins, "score_range": score_range},
        "batches": inputs,
        "expected": analyse(case),
    }


def main():
    rng = np.random.default_rng(20240212)
    d = 8
    cases = []
    for causal in (True, False):
        batches = [
            dict(layer=0, t=7, d=d, causal=causal, lengths=[7, 5], scale=1.0, feature_map="elu"),
            dict(layer=1, t=7, d=d, causal=causal, lengths=None, scale=1.5, feature_map="elu"),
            # larger scores than the first batch: some centred scores fall below the range
            dict(layer=0, t=13, d=d, causal=causal, lengths=[13, 9], scale=2.5, feature_map="elu"),
            dict(layer=1, t=13, d=d, causal=causal, lengths=[11, 13], scale=2.0, feature_map="elu"),
        ]
        name = "causal_elu" if causal else "noncausal_elu"
        cases.append(build_case(rng, name, "1+ELU", 2, 3, 12, None, batches))
    cases.append(build_case(rng, "softmax_fixed_range", "softmax", 1, 3, 5, [-1.0, 1.0], [
        dict(layer=0, t=7, d=d, causal=True, lengths=[7, 4], scale=1.0, feature_map=None),
        dict(layer=0, t=13, d=d, causal=True, lengths=[13, 2], scale=1.0, feature_map=None),
    ]))
    # ReLU zeroes many kernel entries: ties, and rows whose kernel is constant (skipped)
    cases.append(build_case(rng, "relu_ties", "ReLU", 1, 3, 8, None, [
        dict(layer=0, t=13, d=2, causal=False, lengths=[13, 6], scale=1.0, feature_map="relu"),
    ]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/reference_analysis.py", "cases": cases}, f,
                  separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
