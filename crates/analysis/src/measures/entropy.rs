//! Spikiness: the entropy of an attention row.

/// `H = −Σ w ln w` in nats, with `0·ln 0 = 0`.
pub fn entropy(weights: &[f64]) -> f64 {
    -weights
        .iter()
        .filter(|&&w| w > 0.0)
        .map(|&w| w * w.ln())
        .sum::<f64>()
}
