#!/usr/bin/env python3
"""Reference values for the GLUE metrics, computed with scikit-learn and SciPy.

Usage (from the repository root):

    python3 tools/reference_metrics.py            # writes crates/tasks/tests/fixtures/metrics.json
    python3 tools/reference_metrics.py --out F    # writes F instead

Needs numpy, scikit-learn and scipy. Deterministic: the output depends only on the fixed cases below
(and, in the last digits, on the library versions, which are recorded in the file).

Two lists of cases:

* "classification": integer labels `y_true`, `y_pred` with
    accuracy = sklearn.metrics.accuracy_score(y_true, y_pred)
    f1       = sklearn.metrics.f1_score(y_true, y_pred, pos_label=1, average="binary",
                                        zero_division=0)        (binary cases only, else null)
    mcc      = sklearn.metrics.matthews_corrcoef(y_true, y_pred)
  Edge cases follow scikit-learn: F1 is 0 when there is no true positive (zero_division=0), MCC is
  0 when its denominator is 0 (a constant prediction, or a single class in y_true).
* "correlation": float vectors `x` (gold) and `y` (prediction) with
    pearson  = scipy.stats.pearsonr(x, y).statistic
    spearman = scipy.stats.spearmanr(x, y).statistic   (average ranks for ties)
  null = undefined (NaN in SciPy: a constant input).

Every value is rounded to 12 significant digits (inputs are short decimals and exact).
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "crates" / "tasks" / "tests" / "fixtures" / "metrics.json"


def sig12(v: float) -> float | None:
    v = float(v)
    if math.isnan(v):
        return None
    v = float(f"{v:.12g}")
    return 0.0 if v == 0 else v


def classification_cases() -> list[dict]:
    rng = np.random.RandomState(20240611)
    cola_true = (rng.rand(40) < 0.7).astype(int)          # imbalanced, CoLA-like (70% acceptable)
    flip = rng.rand(40) < 0.25
    cola_pred = np.where(flip, 1 - cola_true, cola_true)
    mixed_true = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    mixed_pred = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0]
    perfect = [0, 1, 1, 0, 1, 0, 0, 1]
    return [
        dict(name="mixed", y_true=mixed_true, y_pred=mixed_pred),
        dict(name="perfect", y_true=perfect, y_pred=list(perfect)),
        dict(name="inverted", y_true=perfect, y_pred=[1 - v for v in perfect]),
        dict(name="all_one_prediction", y_true=mixed_true, y_pred=[1] * len(mixed_true)),
        dict(name="all_zero_prediction", y_true=mixed_true, y_pred=[0] * len(mixed_true)),
        dict(name="single_class_gold_and_prediction", y_true=[1] * 6, y_pred=[1] * 6),
        dict(name="imbalanced_40", y_true=cola_true.tolist(), y_pred=cola_pred.tolist()),
        dict(name="three_class", y_true=[0, 1, 2, 2, 1, 0, 2, 1, 0, 2, 1, 1],
             y_pred=[0, 2, 2, 1, 1, 0, 2, 1, 1, 2, 0, 1]),
    ]


def correlation_cases() -> list[dict]:
    rng = np.random.RandomState(7)
    gold = np.round(rng.rand(50) * 5, 3)
    pred = np.round(gold * 0.6 + rng.randn(50) * 0.8 + 1.0, 3)
    x_lin = [0.5, 1.25, 2.0, 3.5, 4.0, 4.75]
    return [
        dict(name="mixed", x=[0.1, 0.4, 0.35, 0.8, 0.55, 0.2, 0.9],
             y=[0.0, 0.5, 0.3, 0.6, 0.65, 0.1, 1.0]),
        dict(name="ties_both", x=[0.0, 1.0, 1.0, 2.5, 2.5, 2.5, 4.0, 5.0],
             y=[0.5, 1.5, 0.5, 2.0, 3.0, 2.0, 4.5, 4.5]),
        dict(name="ties_in_prediction", x=[1.2, 0.4, 3.3, 2.8, 4.9, 0.0, 2.2],
             y=[1.0, 1.0, 3.0, 3.0, 3.0, 0.0, 2.0]),
        dict(name="perfect_linear", x=x_lin, y=[2 * v + 1 for v in x_lin]),
        dict(name="perfect_monotone_nonlinear", x=x_lin, y=[v ** 3 for v in x_lin]),
        dict(name="inverted", x=x_lin, y=[-v for v in x_lin]),
        dict(name="constant_prediction", x=x_lin, y=[2.5] * len(x_lin)),
        dict(name="stsb_like_50", x=gold.tolist(), y=pred.tolist()),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    classification = []
    for c in classification_cases():
        yt, yp = np.asarray(c["y_true"]), np.asarray(c["y_pred"])
        binary = set(yt.tolist()) | set(yp.tolist()) <= {0, 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f1 = f1_score(yt, yp, pos_label=1, average="binary", zero_division=0) if binary else None
            mcc = matthews_corrcoef(yt, yp)
        classification.append(dict(
            name=c["name"], y_true=yt.tolist(), y_pred=yp.tolist(),
            accuracy=sig12(accuracy_score(yt, yp)),
            f1=None if f1 is None else sig12(f1),
            mcc=sig12(mcc)))

    correlation = []
    for c in correlation_cases():
        x = [float(f"{v:.12g}") for v in c["x"]]
        y = [float(f"{v:.12g}") for v in c["y"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = pearsonr(x, y).statistic
            s = spearmanr(x, y).statistic
        correlation.append(dict(name=c["name"], x=x, y=y, pearson=sig12(p), spearman=sig12(s)))

    doc = {
        "generator": "python3 tools/reference_metrics.py",
        "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "scipy": scipy.__version__},
        "conventions": {
            "accuracy": "sklearn.metrics.accuracy_score",
            "f1": "sklearn.metrics.f1_score(pos_label=1, average='binary', zero_division=0); "
                  "null for non-binary cases",
            "mcc": "sklearn.metrics.matthews_corrcoef; 0 when the denominator is 0",
            "pearson": "scipy.stats.pearsonr(x, y).statistic; null = undefined (constant input)",
            "spearman": "scipy.stats.spearmanr(x, y).statistic, average ranks for ties; "
                        "null = undefined (constant input)",
            "precision": "values rounded to 12 significant digits",
        },
        "classification": classification,
        "correlation": correlation,
    }
    # one case per line: compact but diff-friendly
    parts = ["{"]
    keys = list(doc)
    for i, k in enumerate(keys):
        comma = "," if i + 1 < len(keys) else ""
        if k in ("classification", "correlation"):
            rows = [f"    {json.dumps(r)}" for r in doc[k]]
            parts.append(f"  {json.dumps(k)}: [\n" + ",\n".join(rows) + f"\n  ]{comma}")
        else:
            parts.append(f"  {json.dumps(k)}: {json.dumps(doc[k])}{comma}")
    parts.append("}")
    text = "\n".join(parts) + "\n"
    json.loads(text)  # sanity
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(classification)} classification + "
          f"{len(correlation)} correlation cases)")


if __name__ == "__main__":
    main()
